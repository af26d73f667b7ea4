-- SQLite's own queries. Every write runs under BEGIN IMMEDIATE, which locks the whole file: a plain SELECT
-- inside it is already as good as SELECT … FOR UPDATE.

-- name: transmission_for_update
SELECT id, campaign_id, e164, state, attempts, not_before, message, units, cost, row_number, country, provider_id,
       error_code, error_text, debited, refunded, created_at, updated_at, sent_at, params, timezone,
       report_status, reported_at
FROM transmissions WHERE id = :id;

-- name: transmissions_for_update_by_ids
SELECT id, campaign_id, e164, state, attempts, not_before, message, units, cost, row_number, country, provider_id,
       error_code, error_text, debited, refunded, created_at, updated_at, sent_at, params, timezone,
       report_status, reported_at
FROM transmissions WHERE id = ANY(:ids) ORDER BY id;

-- name: mark_sent_ids
-- Ledger.mark_sent_many: the rows (read in this transaction) become sent, debited their cost.
-- :sent is a JSON array of [transmission id, provider id] pairs.
UPDATE transmissions
SET state = 'sent', provider_id = json_extract(s.value, '$[1]'), not_before = NULL, error_code = NULL,
    error_text = NULL, debited = transmissions.cost, sent_at = :now, updated_at = :now
FROM json_each(:sent) AS s
WHERE transmissions.id = json_extract(s.value, '$[0]');

-- name: insert_debits
-- Ledger.mark_sent_many: debit movements of one campaign, in the order given (ids are assigned in that order).
-- :debits is a JSON array of [amount, lot id, transmission id, from hold] rows.
INSERT INTO movements (kind, channel, amount, on_date, recorded_at, lot_id, campaign_id, transmission_id, from_hold)
SELECT 'debit', :channel, json_extract(d.value, '$[0]'), :on_date, :now, json_extract(d.value, '$[1]'),
       :campaign_id, json_extract(d.value, '$[2]'), json_extract(d.value, '$[3]')
FROM json_each(:debits) AS d
ORDER BY d.key;

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
