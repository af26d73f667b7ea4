-- Queries both dialects run as written. Parameters are :name; "= ANY(:list)" matches a list parameter
-- (PostgreSQL arrays; the SQLite store rewrites it to IN (SELECT value FROM json_each(:list))).
-- No credit rule lives here: the ledger reads rows, decides in Python, and writes absolute values back.

-- name: meta_get
SELECT value FROM meta WHERE key = :key;

-- name: meta_set
INSERT INTO meta (key, value) VALUES (:key, :value) ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- ------------------------------------------------------------------------------------------ lots

-- name: lots_due_to_expire
SELECT id, channel, remaining, expired, expires_on FROM credit_lots
WHERE remaining > 0 AND expires_on <= :today ORDER BY channel, id;

-- name: channels_due_to_expire
SELECT DISTINCT channel FROM credit_lots WHERE remaining > 0 AND expires_on <= :today ORDER BY channel;

-- name: lot_by_ref
SELECT amount, channel, purchased_on FROM credit_lots WHERE ref = :ref;

-- name: lot_by_id
SELECT id, channel, amount, remaining, expired, purchased_on, expires_on, ref FROM credit_lots WHERE id = :id;

-- name: lots_to_bring_forward
SELECT id, remaining, expired FROM credit_lots
WHERE channel = :channel AND expires_on > :on AND expires_on < :expires ORDER BY id;

-- name: update_lot
UPDATE credit_lots SET remaining = :remaining, expired = :expired, expires_on = :expires_on WHERE id = :id;

-- name: insert_lot
INSERT INTO credit_lots (channel, amount, remaining, purchased_on, expires_on, ref, recorded_at)
VALUES (:channel, :amount, :amount, :purchased_on, :expires_on, :ref, :now) RETURNING id;

-- name: spendable_lots
SELECT id, remaining, expired, expires_on FROM credit_lots
WHERE channel = :channel AND remaining > 0 AND expires_on > :today ORDER BY expires_on, id;

-- name: unexpired_by_expiry
SELECT channel, expires_on, SUM(remaining) FROM credit_lots
WHERE remaining > 0 AND expires_on > :today GROUP BY channel, expires_on ORDER BY expires_on;

-- name: all_lots
SELECT id, channel, amount, remaining, expired, purchased_on, expires_on, ref FROM credit_lots
ORDER BY expires_on, id;

-- name: lots_of_channel
SELECT id, channel, amount, remaining, expired, purchased_on, expires_on, ref FROM credit_lots
WHERE channel = :channel ORDER BY expires_on, id;

-- ----------------------------------------------------------------------------------------- holds

-- name: held_by_channel
SELECT channel, SUM(amount) FROM holds WHERE amount > 0 GROUP BY channel;

-- name: channel_held
SELECT COALESCE(SUM(amount), 0) FROM holds WHERE channel = :channel;

-- name: hold_of
SELECT channel, amount FROM holds WHERE campaign_id = :campaign_id;

-- name: save_hold
INSERT INTO holds (campaign_id, channel, amount, updated_at) VALUES (:campaign_id, :channel, :amount, :now)
ON CONFLICT (campaign_id) DO UPDATE SET amount = excluded.amount, updated_at = excluded.updated_at;

-- ------------------------------------------------------------------------------------- movements

-- name: insert_movement
INSERT INTO movements (kind, channel, amount, on_date, recorded_at, lot_id, campaign_id, transmission_id,
                       from_hold, ref, note)
VALUES (:kind, :channel, :amount, :on_date, :now, :lot_id, :campaign_id, :transmission_id, :from_hold, :ref, :note);

-- name: debits_of_transmission
SELECT m.lot_id, m.amount FROM movements m
WHERE m.transmission_id = :transmission_id AND m.kind = 'debit' ORDER BY m.id;

-- ------------------------------------------------------------------------------------- campaigns

-- name: campaign_by_id
SELECT id, name, channel, provider, fingerprint, attestation, state, created_at FROM campaigns WHERE id = :id;

-- name: campaign_by_name
SELECT id, name, channel, provider, fingerprint, attestation, state, created_at FROM campaigns WHERE name = :name;

-- name: all_campaigns
SELECT id, name, channel, provider, fingerprint, attestation, state, created_at FROM campaigns ORDER BY id;

-- name: insert_campaign
INSERT INTO campaigns (name, channel, provider, fingerprint, attestation, created_at, updated_at)
VALUES (:name, :channel, :provider, :fingerprint, :attestation, :now, :now) ON CONFLICT (name) DO NOTHING;

-- name: set_campaign_state
UPDATE campaigns SET state = :state, updated_at = :now WHERE id = :id;

-- name: campaign_settings
SELECT settings FROM campaigns WHERE id = :id;

-- name: save_campaign_settings
UPDATE campaigns SET settings = :settings, updated_at = :now WHERE id = :id;

-- --------------------------------------------------------------------------------- transmissions

-- name: insert_transmission
INSERT INTO transmissions (campaign_id, e164, message, units, cost, row_number, country, created_at, updated_at,
                           params, not_before, timezone)
VALUES (:campaign_id, :e164, :message, :units, :cost, :row_number, :country, :now, :now, :params, :not_before,
        :timezone)
ON CONFLICT (campaign_id, e164) DO NOTHING;

-- name: transmission_by_id
SELECT id, campaign_id, e164, state, attempts, not_before, message, units, cost, row_number, country, provider_id,
       error_code, error_text, debited, refunded, created_at, updated_at, sent_at, params, timezone,
       report_status, reported_at
FROM transmissions WHERE id = :id;

-- name: transmission_by_provider_id
SELECT id, campaign_id, e164, state, attempts, not_before, message, units, cost, row_number, country, provider_id,
       error_code, error_text, debited, refunded, created_at, updated_at, sent_at, params, timezone,
       report_status, reported_at
FROM transmissions WHERE provider_id = :provider_id ORDER BY id LIMIT 1;

-- name: transmissions_of_campaign
SELECT id, campaign_id, e164, state, attempts, not_before, message, units, cost, row_number, country, provider_id,
       error_code, error_text, debited, refunded, created_at, updated_at, sent_at, params, timezone,
       report_status, reported_at
FROM transmissions WHERE campaign_id = :campaign_id ORDER BY id LIMIT :limit;

-- name: transmissions_in_states
SELECT id, campaign_id, e164, state, attempts, not_before, message, units, cost, row_number, country, provider_id,
       error_code, error_text, debited, refunded, created_at, updated_at, sent_at, params, timezone,
       report_status, reported_at
FROM transmissions WHERE campaign_id = :campaign_id AND state = ANY(:states) ORDER BY id LIMIT :limit;

-- name: transmission_page
-- Keyset paging by id (reports): a page never shifts when rows change state meanwhile.
SELECT id, campaign_id, e164, state, attempts, not_before, message, units, cost, row_number, country, provider_id,
       error_code, error_text, debited, refunded, created_at, updated_at, sent_at, params, timezone,
       report_status, reported_at
FROM transmissions WHERE campaign_id = :campaign_id AND id > :after_id ORDER BY id LIMIT :limit;

-- name: transmission_page_in_states
SELECT id, campaign_id, e164, state, attempts, not_before, message, units, cost, row_number, country, provider_id,
       error_code, error_text, debited, refunded, created_at, updated_at, sent_at, params, timezone,
       report_status, reported_at
FROM transmissions WHERE campaign_id = :campaign_id AND id > :after_id AND state = ANY(:states) ORDER BY id LIMIT :limit;

-- name: transmissions_by_ids
SELECT id, campaign_id, e164, state, attempts, not_before, message, units, cost, row_number, country, provider_id,
       error_code, error_text, debited, refunded, created_at, updated_at, sent_at, params, timezone,
       report_status, reported_at
FROM transmissions WHERE id = ANY(:ids) ORDER BY id;

-- name: save_transmission
UPDATE transmissions SET state = :state, attempts = :attempts, not_before = :not_before, cost = :cost,
       provider_id = :provider_id, error_code = :error_code, error_text = :error_text, debited = :debited,
       refunded = :refunded, sent_at = :sent_at, updated_at = :now
WHERE id = :id;

-- name: set_state_of_ids
UPDATE transmissions SET state = :state, updated_at = :now WHERE id = ANY(:ids);

-- name: move_campaign_rows
UPDATE transmissions SET state = :target, error_code = :error_code, error_text = :error_text, updated_at = :now
WHERE campaign_id = :campaign_id AND state = :source;

-- name: move_rows_of_ids
UPDATE transmissions SET state = :target, error_code = :error_code, error_text = :error_text, updated_at = :now
WHERE id = ANY(:ids) AND state = :source;

-- name: cost_in_state
SELECT COALESCE(SUM(cost), 0) FROM transmissions WHERE campaign_id = :campaign_id AND state = ANY(:states);

-- name: counts_by_state
SELECT state, COUNT(*) FROM transmissions WHERE campaign_id = :campaign_id GROUP BY state;

-- name: failure_codes
SELECT error_code, COUNT(*) AS n FROM transmissions WHERE campaign_id = :campaign_id AND state = :state
GROUP BY error_code ORDER BY n DESC, error_code;

-- name: campaign_credits
SELECT COALESCE(SUM(debited), 0), COALESCE(SUM(refunded), 0) FROM transmissions WHERE campaign_id = :campaign_id;

-- name: recent_sends
-- Sends to these numbers on a channel since a moment, in other campaigns than one (frequency caps): accepted
-- rows by sent_at, rows in flight (sending, unknown) by when they were claimed (their updated_at).
SELECT t.e164, COALESCE(t.sent_at, t.updated_at) FROM transmissions t JOIN campaigns c ON c.id = t.campaign_id
WHERE c.channel = :channel AND t.campaign_id != :other_than AND t.e164 = ANY(:numbers) AND (
    (t.state IN ('sent', 'delivered', 'undelivered') AND t.sent_at > :since)
    OR (t.state IN ('sending', 'unknown') AND t.updated_at > :since));

-- name: recent_sends_all
-- The same for every number (validation checks a whole file against it).
SELECT t.e164, COALESCE(t.sent_at, t.updated_at) FROM transmissions t JOIN campaigns c ON c.id = t.campaign_id
WHERE c.channel = :channel AND t.campaign_id != :other_than AND (
    (t.state IN ('sent', 'delivered', 'undelivered') AND t.sent_at > :since)
    OR (t.state IN ('sending', 'unknown') AND t.updated_at > :since));

-- name: earliest_queued
SELECT COUNT(*), MIN(COALESCE(not_before, '')) FROM transmissions WHERE campaign_id = :campaign_id AND state = :state;

-- -------------------------------------------------------------------------------------- opt-outs

-- name: insert_optout
INSERT INTO optouts (e164, added_at, reason, source) VALUES (:e164, :now, :reason, :source)
ON CONFLICT (e164) DO NOTHING;

-- name: delete_optout
DELETE FROM optouts WHERE e164 = :e164;

-- name: all_optouts
SELECT e164, added_at, reason, source FROM optouts ORDER BY e164;

-- name: suppressed
SELECT e164 FROM optouts;

-- name: suppressed_among
SELECT e164 FROM optouts WHERE e164 = ANY(:numbers);

-- ----------------------------------------------------------------------------------------- audit
-- Sums per key; the ledger compares them in Python.

-- name: audit_lot_movements
SELECT lot_id, kind, SUM(amount) FROM movements WHERE lot_id IS NOT NULL GROUP BY lot_id, kind;

-- name: audit_log_by_channel
SELECT c.channel, SUM(t.debited), SUM(t.refunded) FROM transmissions t
JOIN campaigns c ON c.id = t.campaign_id WHERE t.debited > 0 GROUP BY c.channel;

-- name: audit_movements_by_channel
SELECT channel, kind, SUM(amount) FROM movements GROUP BY channel, kind;

-- name: audit_lots_by_channel
SELECT channel, SUM(amount), SUM(remaining) FROM credit_lots GROUP BY channel;

-- name: audit_transmissions
-- Transmissions whose debits and refunds disagree with their movements or their state (at most 101).
SELECT t.id, t.state, t.cost, t.debited, t.refunded, COALESCE(m.d, 0), COALESCE(m.r, 0)
FROM transmissions t LEFT JOIN (
    SELECT transmission_id AS tid, SUM(CASE kind WHEN 'debit' THEN amount ELSE 0 END) AS d,
           SUM(CASE kind WHEN 'refund' THEN amount ELSE 0 END) AS r
    FROM movements WHERE transmission_id IS NOT NULL GROUP BY transmission_id
) m ON m.tid = t.id
WHERE (t.debited != 0 OR t.refunded != 0 OR m.tid IS NOT NULL OR t.state = ANY(:accepted)) AND (
    COALESCE(m.d, 0) != t.debited OR COALESCE(m.r, 0) != t.refunded
    OR t.refunded NOT IN (0, t.debited)
    OR (t.state = ANY(:accepted) AND t.debited != t.cost)
    OR (NOT (t.state = ANY(:accepted)) AND t.debited != 0)
) ORDER BY t.id LIMIT 101;

-- name: audit_hold_movements
SELECT campaign_id, kind, SUM(amount), SUM(from_hold) FROM movements
WHERE campaign_id IS NOT NULL AND kind IN ('hold', 'release', 'debit') GROUP BY campaign_id, kind;

-- name: audit_holds
SELECT campaign_id, amount FROM holds;

-- name: channel_total
SELECT COALESCE(SUM(remaining), 0) FROM credit_lots WHERE channel = :channel AND remaining > 0 AND expires_on > :today;

-- ---------------------------------------------------------------------------------- rate buckets
-- One row per provider profile: the next free send slot (bulksend/fleet.py). Not part of a ledger copy.

-- name: rate_bucket_create
INSERT INTO rate_buckets (profile, next_at, updated_at) VALUES (:profile, 0, :now) ON CONFLICT (profile) DO NOTHING;


-- ------------------------------------------------------------------- receipts and replies (docs/webhooks.md)

-- name: save_report_fields
-- The provider's last status word, the time of the final report, and its message id when the row had none.
UPDATE transmissions SET report_status = COALESCE(:status, report_status), reported_at = :reported_at,
       provider_id = COALESCE(provider_id, :provider_id)
WHERE id = :id;

-- name: insert_pending_receipt
INSERT INTO pending_receipts (profile, state, provider_id, transmission_id, status, code, text, fault, opt_out,
                              reported_at, exact_id, received_at)
VALUES (:profile, :state, :provider_id, :transmission_id, :status, :code, :text, :fault, :opt_out, :reported_at,
        :exact_id, :now);

-- name: pending_receipts_due
SELECT id, profile, state, provider_id, transmission_id, status, code, text, fault, opt_out, reported_at, exact_id
FROM pending_receipts WHERE tries < :max_tries ORDER BY id LIMIT :limit;

-- name: pending_receipt_tried
UPDATE pending_receipts SET tries = tries + 1 WHERE id = :id;

-- name: delete_pending_receipt
DELETE FROM pending_receipts WHERE id = :id;

-- name: pending_receipts_count
SELECT COUNT(*) FROM pending_receipts;

-- name: insert_inbound
-- A provider's retry of a message already kept (same profile and message id) changes nothing.
INSERT INTO inbound_messages (profile, channel, sender, text, provider_id, keyword, opt_out, sent_at, received_at)
VALUES (:profile, :channel, :sender, :text, :provider_id, :keyword, :opt_out, :sent_at, :now)
ON CONFLICT (profile, provider_id) DO NOTHING;

-- name: inbound_recent
SELECT id, profile, channel, sender, text, provider_id, keyword, opt_out, sent_at, received_at
FROM inbound_messages ORDER BY id DESC LIMIT :limit;

-- name: apply_receipt_reports
-- Many `sent` rows get the same final report at once (the receiver's bulk path: what mark_report and
-- save_report_fields do one row at a time); `provider_id` only fills rows that had none.
UPDATE transmissions SET state = :state, error_code = :code, error_text = :text,
       report_status = COALESCE(:status, report_status), reported_at = :reported_at,
       provider_id = COALESCE(provider_id, :provider_id), updated_at = :now
WHERE id = ANY(:ids) AND state = 'sent';
