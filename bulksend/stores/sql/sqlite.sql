-- SQLite's own queries. Every write runs under BEGIN IMMEDIATE, which locks the whole file: a plain SELECT
-- inside it is already as good as SELECT … FOR UPDATE.

-- name: transmission_for_update
SELECT id, campaign_id, e164, state, attempts, not_before, message, units, cost, row_number, country, provider_id,
       error_code, error_text, debited, refunded, created_at, updated_at, sent_at, params, timezone,
       report_status, reported_at
FROM transmissions WHERE id = :id;

-- name: transmissions_for_update_by_ids
-- Ledger.mark_sent_many: a batch's rows at once, in id order (two writers lock overlapping batches in one order).
SELECT id, campaign_id, e164, state, attempts, not_before, message, units, cost, row_number, country, provider_id,
       error_code, error_text, debited, refunded, created_at, updated_at, sent_at, params, timezone,
       report_status, reported_at
FROM transmissions WHERE id = ANY(:ids) ORDER BY id;

-- name: hold_for_update
SELECT channel, amount FROM holds WHERE campaign_id = :campaign_id;

-- name: claim_candidates
SELECT id, cost FROM transmissions
WHERE campaign_id = :campaign_id AND state = :state AND (not_before IS NULL OR not_before <= :now)
ORDER BY id LIMIT :limit;

-- name: history
SELECT id, kind, channel, amount, on_date, recorded_at, lot_id, campaign_id, transmission_id, from_hold, ref, note
FROM movements
WHERE (:channel IS NULL OR channel = :channel) AND (:since IS NULL OR on_date >= :since)
ORDER BY on_date DESC, id DESC;

-- name: rate_bucket_session
-- The rate limiter's own connection: in WAL mode NORMAL syncs at checkpoints, not at every lease's commit; a
-- power loss may lose the last leases, and with them the senders that took them: nobody spends them twice.
PRAGMA synchronous = NORMAL;

-- name: rate_bucket_lease
-- Lease :span seconds of slots from max(next_at, now) under BEGIN IMMEDIATE (the whole file is this writer's);
-- returns the new next_at and the clock: the machine's ('now', in milliseconds, the same within one statement).
UPDATE rate_buckets SET next_at = MAX(next_at, (julianday('now') - 2440587.5) * 86400.0) + :span, updated_at = :now
WHERE profile = :profile
RETURNING next_at, (julianday('now') - 2440587.5) * 86400.0;

-- name: receipt_row_by_id
-- The row a receipt names by our echoed id, only in a campaign sent through the receipt's own profile.
SELECT t.id, t.campaign_id, t.e164, t.state, t.attempts, t.not_before, t.message, t.units, t.cost, t.row_number,
       t.country, t.provider_id, t.error_code, t.error_text, t.debited, t.refunded, t.created_at, t.updated_at,
       t.sent_at, t.params, t.timezone, t.report_status, t.reported_at
FROM transmissions t JOIN campaigns c ON c.id = t.campaign_id WHERE t.id = :id AND c.provider = :profile;

-- name: receipt_row_by_provider_id
SELECT t.id, t.campaign_id, t.e164, t.state, t.attempts, t.not_before, t.message, t.units, t.cost, t.row_number,
       t.country, t.provider_id, t.error_code, t.error_text, t.debited, t.refunded, t.created_at, t.updated_at,
       t.sent_at, t.params, t.timezone, t.report_status, t.reported_at
FROM transmissions t JOIN campaigns c ON c.id = t.campaign_id
WHERE t.provider_id = :provider_id AND c.provider = :profile ORDER BY t.id LIMIT 1;

-- name: receipt_rows_by_ids
-- The rows many receipts name by our echoed ids (the bulk path of the receiver), only of the profile's campaigns.
SELECT t.id, t.campaign_id, t.e164, t.state, t.attempts, t.not_before, t.message, t.units, t.cost, t.row_number,
       t.country, t.provider_id, t.error_code, t.error_text, t.debited, t.refunded, t.created_at, t.updated_at,
       t.sent_at, t.params, t.timezone, t.report_status, t.reported_at
FROM transmissions t JOIN campaigns c ON c.id = t.campaign_id WHERE t.id = ANY(:ids) AND c.provider = :profile;
