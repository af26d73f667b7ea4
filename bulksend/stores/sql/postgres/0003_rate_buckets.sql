-- One rate per provider account (bulksend/fleet.py): the next free send slot of each profile, in seconds since
-- the epoch on the server's clock, shared by every run, process and machine that sends through the profile.
-- Numbered 0003: 0002 is the scheduling work's migration (transmissions.timezone), merged separately.

CREATE TABLE IF NOT EXISTS rate_buckets (
    profile    TEXT PRIMARY KEY,
    next_at    DOUBLE PRECISION NOT NULL,
    updated_at TEXT NOT NULL
);
