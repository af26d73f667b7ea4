-- SQLite's schema 4: a row's own time zone (its timezone column) for quiet hours at claim time, and recent
-- sends to a number across campaigns for frequency caps (bulksend/schedule.py).
ALTER TABLE transmissions ADD COLUMN timezone TEXT;
CREATE INDEX transmissions_by_e164 ON transmissions (e164, sent_at);
