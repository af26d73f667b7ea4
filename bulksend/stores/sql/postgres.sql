-- PostgreSQL's own queries. Writes run in READ COMMITTED; the rules take row locks before they read what
-- they decide on: the channel's pool row for credits, the transmission row for a transition, the hold row
-- for a claim. Each statement after a lock sees everything committed before the lock was granted.

-- name: lock_pool
SELECT channel FROM credit_pools WHERE channel = :channel FOR UPDATE;

-- name: lock_numbers
-- Frequency caps: one transaction-scoped advisory lock per number (key space 1212, the issue that asked for
-- caps), in sorted order, so a claim's count of recent sends and its claim are one step (Store.lock_numbers).
SELECT pg_advisory_xact_lock(1212, hashtext(n)) FROM (
    SELECT n FROM unnest(CAST(:numbers AS text[])) AS n ORDER BY n
) AS sorted_numbers;

-- name: transmission_for_update
SELECT id, campaign_id, e164, state, attempts, not_before, message, units, cost, row_number, country, provider_id,
       error_code, error_text, debited, refunded, created_at, updated_at, sent_at, params, timezone,
       report_status, reported_at
FROM transmissions WHERE id = :id FOR UPDATE;

-- name: transmissions_for_update_by_ids
-- Ledger.mark_sent_many: a batch's rows at once, in id order (two writers lock overlapping batches in one order).
SELECT id, campaign_id, e164, state, attempts, not_before, message, units, cost, row_number, country, provider_id,
       error_code, error_text, debited, refunded, created_at, updated_at, sent_at, params, timezone,
       report_status, reported_at
FROM transmissions WHERE id = ANY(:ids) ORDER BY id FOR UPDATE;

-- name: hold_for_update
SELECT channel, amount FROM holds WHERE campaign_id = :campaign_id FOR UPDATE;

-- name: claim_candidates
-- SKIP LOCKED: rows another sender is claiming right now are left to it, never waited for.
SELECT id, cost FROM transmissions
WHERE campaign_id = :campaign_id AND state = :state AND (not_before IS NULL OR not_before <= :now)
ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED;

-- name: history
SELECT id, kind, channel, amount, on_date, recorded_at, lot_id, campaign_id, transmission_id, from_hold, ref, note
FROM movements
WHERE (CAST(:channel AS text) IS NULL OR channel = :channel)
  AND (CAST(:since AS date) IS NULL OR on_date >= CAST(:since AS date))
ORDER BY on_date DESC, id DESC;

-- name: schema_version
SELECT COALESCE(MAX(version), 0) FROM bulksend_schema;

-- name: rate_bucket_session
-- The rate limiter's own connection: a lease's commit does not wait for the WAL flush (a server crash that
-- loses the last leases ends every sender's connection too: nobody spends them twice).
SET synchronous_commit TO off;

-- name: rate_bucket_lease
-- Lease :span seconds of slots from max(next_at, the server's clock) in one statement (the row locked while it
-- runs); returns the new next_at and that clock, read once, so senders whose clocks disagree share one time.
WITH clock AS (SELECT EXTRACT(EPOCH FROM clock_timestamp())::double precision AS now)
UPDATE rate_buckets SET next_at = GREATEST(rate_buckets.next_at, clock.now) + :span, updated_at = :now
FROM clock WHERE profile = :profile
RETURNING rate_buckets.next_at, clock.now;

-- name: receipt_row_by_id
-- The row a receipt names, locked: two receipts for one message (two receivers) apply one after the other.
SELECT t.id, t.campaign_id, t.e164, t.state, t.attempts, t.not_before, t.message, t.units, t.cost, t.row_number,
       t.country, t.provider_id, t.error_code, t.error_text, t.debited, t.refunded, t.created_at, t.updated_at,
       t.sent_at, t.params, t.timezone, t.report_status, t.reported_at
FROM transmissions t JOIN campaigns c ON c.id = t.campaign_id WHERE t.id = :id AND c.provider = :profile
FOR UPDATE OF t;

-- name: receipt_row_by_provider_id
SELECT t.id, t.campaign_id, t.e164, t.state, t.attempts, t.not_before, t.message, t.units, t.cost, t.row_number,
       t.country, t.provider_id, t.error_code, t.error_text, t.debited, t.refunded, t.created_at, t.updated_at,
       t.sent_at, t.params, t.timezone, t.report_status, t.reported_at
FROM transmissions t JOIN campaigns c ON c.id = t.campaign_id
WHERE t.provider_id = :provider_id AND c.provider = :profile ORDER BY t.id LIMIT 1 FOR UPDATE OF t;

-- name: receipt_rows_by_ids
-- The rows many receipts name by our echoed ids (the bulk path of the receiver), locked in id order.
SELECT t.id, t.campaign_id, t.e164, t.state, t.attempts, t.not_before, t.message, t.units, t.cost, t.row_number,
       t.country, t.provider_id, t.error_code, t.error_text, t.debited, t.refunded, t.created_at, t.updated_at,
       t.sent_at, t.params, t.timezone, t.report_status, t.reported_at
FROM transmissions t JOIN campaigns c ON c.id = t.campaign_id WHERE t.id = ANY(:ids) AND c.provider = :profile
ORDER BY t.id FOR UPDATE OF t;

-- Cooperating senders (bulksend/engine.py, docs/ledger.md "Several senders"): a claimed row carries who
-- claimed it and until when (the server's clock, so machines whose clocks disagree share one time).

-- name: lease_rows
UPDATE transmissions
SET claimed_by = :sender, lease_until = CAST(clock_timestamp() + make_interval(secs => :lease) AS text)
WHERE id = ANY(:ids);

-- name: claimed_by
-- Who holds a row's claim (a shared ledger): a sender gives back or records only rows it still holds.
SELECT claimed_by FROM transmissions WHERE id = :id;

-- name: renew_leases
-- The rows renewed: a row missing from them is no longer this sender's (its lease ran out and another took it).
UPDATE transmissions
SET lease_until = CAST(clock_timestamp() + make_interval(secs => :lease) AS text)
WHERE campaign_id = :campaign_id AND claimed_by = :sender AND state = 'sending'
RETURNING id;

-- name: claims_of_ids
-- Engine._commit on a shared ledger: a batch's rows locked in id order (as mark_sent_many locks them), each with
-- its state and whether the sender still holds it.
SELECT id, state, state = 'sending' AND claimed_by IS NOT DISTINCT FROM :sender FROM transmissions
WHERE id = ANY(:ids) ORDER BY id FOR UPDATE;

-- name: sending_to_recover
-- Rows left `sending` that this sender may settle: a lease that expired (its sender died), or a claim made
-- from this sender's home (the home lock says that run is over), never this very sender's own rows.
-- The second column: whether the row is the home's (its journal can tell what became of it).
SELECT id, starts_with(COALESCE(claimed_by, ''), :home) FROM transmissions
WHERE campaign_id = :campaign_id AND state = 'sending' AND claimed_by IS DISTINCT FROM :sender
  AND (lease_until IS NULL OR CAST(lease_until AS timestamptz) < clock_timestamp()
       OR starts_with(COALESCE(claimed_by, ''), :home))
ORDER BY id FOR UPDATE SKIP LOCKED;

-- name: live_leases_of_others
SELECT COUNT(*) FROM transmissions
WHERE campaign_id = :campaign_id AND state = 'sending' AND claimed_by IS DISTINCT FROM :sender
  AND lease_until IS NOT NULL AND CAST(lease_until AS timestamptz) >= clock_timestamp();

-- name: cost_in_flight
-- What the rows some sender has in flight under a lease that still holds may cost (a cancelled campaign's hold).
SELECT COALESCE(SUM(cost), 0) FROM transmissions
WHERE campaign_id = :campaign_id AND state = 'sending'
  AND lease_until IS NOT NULL AND CAST(lease_until AS timestamptz) >= clock_timestamp();

-- ---------------------------------------------------------------------- Store.many, set-based
-- PostgresStore.many runs `<name>__json` when it exists instead of `<name>` once per row: the rows as one JSON
-- array of objects (json.dumps, in C), one statement and one round trip however many rows, in the rows' order
-- (WITH ORDINALITY: identity ids follow it, as they would one statement after the other). Each is its twin's
-- statement (common.sql) over json_to_recordset().

-- name: insert_transmission__json
INSERT INTO transmissions (campaign_id, e164, message, units, cost, row_number, country, created_at, updated_at,
                           params, not_before, timezone)
SELECT r.campaign_id, r.e164, r.message, r.units, r.cost, r.row_number, r.country, r.now, r.now, r.params,
       r.not_before, r.timezone
FROM ROWS FROM (json_to_recordset(CAST(:rows AS json))
                AS (campaign_id bigint, e164 text, message text, units integer, cost integer, row_number integer,
                    country text, now text, params text, not_before text, timezone text))
     WITH ORDINALITY AS r(campaign_id, e164, message, units, cost, row_number, country, now, params, not_before,
                          timezone, n)
ORDER BY r.n
ON CONFLICT (campaign_id, e164) DO NOTHING;

-- name: save_transmission__json
UPDATE transmissions t
SET state = r.state, attempts = r.attempts, not_before = r.not_before, cost = r.cost, provider_id = r.provider_id,
    error_code = r.error_code, error_text = r.error_text, debited = r.debited, refunded = r.refunded,
    sent_at = r.sent_at, updated_at = r.now
FROM json_to_recordset(CAST(:rows AS json))
     AS r(id bigint, state text, attempts integer, not_before text, cost integer, provider_id text, error_code text,
          error_text text, debited integer, refunded integer, sent_at text, now text)
WHERE t.id = r.id;

-- name: insert_movement__json
INSERT INTO movements (kind, channel, amount, on_date, recorded_at, lot_id, campaign_id, transmission_id, from_hold,
                       ref, note)
SELECT r.kind, r.channel, r.amount, r.on_date, r.now, r.lot_id, r.campaign_id, r.transmission_id, r.from_hold, r.ref,
       r.note
FROM ROWS FROM (json_to_recordset(CAST(:rows AS json))
                AS (kind text, channel text, amount integer, on_date date, now text, lot_id bigint,
                    campaign_id bigint, transmission_id bigint, from_hold integer, ref text, note text))
     WITH ORDINALITY AS r(kind, channel, amount, on_date, now, lot_id, campaign_id, transmission_id, from_hold, ref,
                          note, n)
ORDER BY r.n;
