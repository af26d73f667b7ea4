-- SQLite's own queries. Every write runs under BEGIN IMMEDIATE, which locks the whole file: a plain SELECT
-- inside it is already as good as SELECT … FOR UPDATE.

-- name: transmission_for_update
SELECT id, campaign_id, e164, state, attempts, not_before, message, units, cost, row_number, country, provider_id,
       error_code, error_text, debited, refunded, created_at, updated_at, sent_at, params, timezone
FROM transmissions WHERE id = :id;

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

-- name: rate_bucket_for_update
-- Under BEGIN IMMEDIATE the whole file is this writer's; the clock is the machine's ('now', in milliseconds).
SELECT next_at, (julianday('now') - 2440587.5) * 86400.0 FROM rate_buckets WHERE profile = :profile;
