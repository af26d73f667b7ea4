"""The send loop on a real ledger with a scripted provider: every outcome class, recovery, limits, stopping."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bulksend.engine import Engine, EngineSettings, StopReason, TokenBucket, reconcile_campaign
from bulksend.ledger import NewTransmission, SqliteLedger
from bulksend.providers.base import LookupResult, Outcome, OutcomeKind

from fakeprovider import ScriptedProvider, accept_all

FAST = dict(backoff_base=0.01, backoff_cap=0.05, reconcile_after=0.0, max_wait=5.0)


@pytest.fixture
def ledger(tmp_path: Path):
    with SqliteLedger.open(tmp_path / "ledger.db") as opened:
        opened.topup("sms", 10_000)
        yield opened


def numbers(n: int) -> list[str]:
    return [f"+4479111{i:05d}" for i in range(n)]


def queue(ledger: SqliteLedger, n: int, cost: int = 1, name: str = "spring", hold: bool = True):
    campaign = ledger.open_campaign(name, "sms", "scripted", f"fp-{name}")
    ledger.add_transmissions(
        campaign.id, [NewTransmission(e164, "Hi there", cost, cost, row_number=i + 1) for i, e164 in enumerate(numbers(n))]
    )
    if hold:
        ledger.hold(campaign.id, "sms", ledger.outstanding_cost(campaign.id))
    return campaign


def run(ledger, provider, campaign, **settings):
    merged = {**FAST, "concurrency": 4, **settings}
    return Engine(ledger, provider, campaign, EngineSettings(**merged)).run()


def states(ledger, campaign) -> dict[str, int]:
    return ledger.counts(campaign.id)


def test_every_accepted_row_is_sent_once_and_debited_from_the_hold(ledger):
    campaign = queue(ledger, 50, cost=2)
    provider = ScriptedProvider()
    result = run(ledger, provider, campaign, batch_size=8)
    assert result.reason is StopReason.DONE
    assert states(ledger, campaign) == {"sent": 50}
    assert set(provider.accepted.values()) == {1} and len(provider.accepted) == 50
    assert result.stats.sent == 50 and result.stats.credits == 100
    assert ledger.campaign_credits(campaign.id) == (100, 0)
    assert ledger.held(campaign.id) == 0
    assert ledger.balance("sms")["sms"].total == 10_000 - 100
    assert ledger.audit().consistent
    sent = ledger.transmissions(campaign.id)
    assert all(t.provider_id == f"SM{t.id}-1" for t in sent)


def test_requests_run_concurrently_but_never_above_the_limit(ledger):
    campaign = queue(ledger, 40)
    provider = ScriptedProvider(latency=0.02)
    run(ledger, provider, campaign, concurrency=8, batch_size=16)
    assert 2 <= provider.max_in_flight <= 8


def test_the_rate_limit_spaces_requests(ledger):
    campaign = queue(ledger, 21)
    provider = ScriptedProvider()
    started = time.monotonic()
    run(ledger, provider, campaign, rate=100, concurrency=8)
    assert time.monotonic() - started >= 0.19  # 21 requests, 10 ms apart
    times = sorted(t for ts in provider.sent_at.values() for t in ts)
    assert times[-1] - times[0] >= 0.19


def test_token_bucket_is_fair_across_threads():
    bucket = TokenBucket(200)
    halt = threading.Event()
    stamps: list[float] = []
    lock = threading.Lock()

    def take():
        for _ in range(10):
            assert bucket.acquire(halt)
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=take) for _ in range(4)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.monotonic() - started >= 39 / 200 - 0.005
    halt.set()
    assert bucket.acquire(halt) is False


def test_retryable_outcomes_wait_at_least_retry_after_then_succeed(ledger):
    campaign = queue(ledger, 5)

    def script(delivery, attempt):
        if attempt == 1:
            return Outcome(OutcomeKind.RETRYABLE, code="429", text="Too Many Requests", retry_after=0.3)
        return accept_all(delivery, attempt)

    provider = ScriptedProvider(script)
    result = run(ledger, provider, campaign)
    assert result.reason is StopReason.DONE
    assert states(ledger, campaign) == {"sent": 5}
    assert result.stats.retried == 5
    for times in provider.sent_at.values():
        assert len(times) == 2 and times[1] - times[0] >= 0.3
    assert all(t.attempts == 1 for t in ledger.transmissions(campaign.id))


def test_retryable_rows_fail_with_the_last_code_after_max_attempts(ledger):
    campaign = queue(ledger, 3)
    provider = ScriptedProvider(lambda d, a: Outcome(OutcomeKind.RETRYABLE, code=f"c{a}", text="busy"))
    result = run(ledger, provider, campaign, max_attempts=3, breaker=0)
    assert states(ledger, campaign) == {"failed": 3}
    assert set(provider.attempts.values()) == {3}
    row = ledger.transmissions(campaign.id)[0]
    assert row.error_code == "c3" and "gave up after 3 attempts" in row.error_text
    assert result.stats.failures == {"c3": 3}
    assert ledger.campaign_credits(campaign.id) == (0, 0)


def test_ambiguous_rows_stay_unknown_when_the_provider_cannot_look_up(ledger):
    campaign = queue(ledger, 4)
    provider = ScriptedProvider(
        lambda d, a: Outcome(OutcomeKind.AMBIGUOUS, code="read_timeout", text="no answer"), ambiguous_accepted=True
    )
    result = run(ledger, provider, campaign)
    assert result.reason is StopReason.DONE
    assert states(ledger, campaign) == {"unknown": 4}
    assert set(provider.attempts.values()) == {1}  # never sent again on a guess
    assert result.stats.unknown == 4


def test_retry_unknown_accepts_the_risk_and_sends_again(ledger):
    campaign = queue(ledger, 3)

    def script(delivery, attempt):
        if attempt == 1:
            return Outcome(OutcomeKind.AMBIGUOUS, code="500", text="server error")
        return accept_all(delivery, attempt)

    result = run(ledger, ScriptedProvider(script), campaign, retry_unknown=True)
    assert states(ledger, campaign) == {"sent": 3}
    assert result.stats.undecided == 3


def test_unknown_rows_are_looked_up_before_any_retry(ledger):
    campaign = queue(ledger, 10)

    # Even rows: the provider took the message but the answer was lost. Odd rows: it never got it.
    def script(delivery, attempt):
        if attempt == 1:
            if delivery.transmission_id % 2 == 0:
                with provider.lock:
                    provider.accepted[delivery.to] += 1
            return Outcome(OutcomeKind.AMBIGUOUS, code="connection_dropped", text="dropped")
        return accept_all(delivery, attempt)

    provider = ScriptedProvider(script, can_lookup=True)
    result = run(ledger, provider, campaign)
    assert result.reason is StopReason.DONE
    assert states(ledger, campaign) == {"sent": 10}
    assert set(provider.accepted.values()) == {1}, "nobody accepted twice"
    assert result.stats.found == 5 and result.stats.not_found == 5
    assert ledger.campaign_credits(campaign.id) == (10, 0)
    found = [t for t in ledger.transmissions(campaign.id) if t.id % 2 == 0]
    assert all(t.provider_id.startswith("SM-found-") for t in found)
    assert ledger.audit().consistent


def test_unknown_rows_wait_for_the_settle_time_before_the_lookup(ledger):
    campaign = queue(ledger, 2)
    provider = ScriptedProvider(
        lambda d, a: Outcome(OutcomeKind.AMBIGUOUS, code="read_timeout") if a == 1 else accept_all(d, a),
        can_lookup=True,
    )
    started = time.monotonic()
    run(ledger, provider, campaign, reconcile_after=0.4)
    assert time.monotonic() - started >= 0.4
    assert states(ledger, campaign) == {"sent": 2}


def test_permanent_and_opted_out_rows_fail_and_opt_outs_join_the_list(ledger):
    campaign = queue(ledger, 6)
    out = numbers(6)

    def script(delivery, attempt):
        if delivery.to == out[1]:
            return Outcome(OutcomeKind.PERMANENT, code="21211", text="invalid To")
        if delivery.to == out[2]:
            return Outcome(OutcomeKind.OPTED_OUT, code="21610", text="unsubscribed recipient")
        return accept_all(delivery, attempt)

    result = run(ledger, ScriptedProvider(script), campaign)
    assert states(ledger, campaign) == {"sent": 4, "failed": 2}
    assert [o.e164 for o in ledger.optouts()] == [out[2]]
    assert ledger.optouts()[0].source == "provider"
    assert result.stats.failures == {"21211": 1, "21610": 1}
    rows = {t.e164: t for t in ledger.transmissions(campaign.id)}
    assert (rows[out[1]].error_code, rows[out[1]].error_text) == ("21211", "invalid To")


def test_numbers_opted_out_after_queueing_are_never_sent(ledger):
    campaign = queue(ledger, 5)
    ledger.add_optouts([numbers(5)[3]], "STOP by email")
    provider = ScriptedProvider()
    result = run(ledger, provider, campaign)
    assert numbers(5)[3] not in provider.attempts
    row = [t for t in ledger.transmissions(campaign.id) if t.e164 == numbers(5)[3]][0]
    assert (row.state, row.error_code, row.debited) == ("failed", "suppressed", 0)
    assert result.stats.suppressed == 1


def test_a_list_that_opted_out_entirely_fails_as_suppressed_batch_after_batch(ledger):
    campaign = queue(ledger, 30)
    ledger.add_optouts(numbers(30), "complaint")
    provider = ScriptedProvider()
    result = run(ledger, provider, campaign, batch_size=4)
    assert result.reason is StopReason.DONE
    assert states(ledger, campaign) == {"failed": 30}
    assert not provider.attempts and result.stats.suppressed == 30


def test_a_fatal_outcome_stops_the_run_and_leaves_the_rest_queued(ledger):
    campaign = queue(ledger, 100)

    def script(delivery, attempt):
        if delivery.transmission_id >= 10:
            return Outcome(OutcomeKind.FATAL, code="20003", text="Authenticate")
        return accept_all(delivery, attempt)

    provider = ScriptedProvider(script, latency=0.005)
    result = run(ledger, provider, campaign, concurrency=2, batch_size=4)
    assert result.reason is StopReason.FATAL
    assert result.fatal.code == "20003"
    counts = states(ledger, campaign)
    assert counts["sent"] == 9
    assert counts["queued"] == 91 and "sending" not in counts
    assert sum(provider.attempts.values()) <= 9 + 2  # at most the requests already in flight
    assert all(t.attempts == 0 for t in ledger.transmissions(campaign.id, ("queued",)))


def test_the_circuit_breaker_stops_after_consecutive_failures(ledger):
    campaign = queue(ledger, 200)
    provider = ScriptedProvider(lambda d, a: Outcome(OutcomeKind.AMBIGUOUS, code="500", text="Internal Server Error"))
    result = run(ledger, provider, campaign, breaker=10, concurrency=2, batch_size=4)
    assert result.reason is StopReason.BREAKER
    assert result.tripped_by.code == "500"
    counts = states(ledger, campaign)
    assert 10 <= counts["unknown"] <= 14
    assert counts["queued"] == 200 - counts["unknown"]


def test_opt_outs_do_not_trip_the_breaker(ledger):
    campaign = queue(ledger, 30)
    provider = ScriptedProvider(lambda d, a: Outcome(OutcomeKind.OPTED_OUT, code="21610"))
    result = run(ledger, provider, campaign, breaker=5)
    assert result.reason is StopReason.DONE
    assert states(ledger, campaign) == {"failed": 30}


def test_stop_finishes_the_requests_in_flight_and_requeues_the_rest(ledger):
    campaign = queue(ledger, 200)
    stop = threading.Event()
    provider = ScriptedProvider(latency=0.01)
    engine = Engine(ledger, provider, campaign, EngineSettings(concurrency=4, batch_size=20, **FAST), stop=stop)
    threading.Timer(0.15, stop.set).start()
    result = engine.run()
    assert result.reason is StopReason.INTERRUPTED
    counts = states(ledger, campaign)
    assert set(counts) == {"sent", "queued"}
    assert counts["sent"] == sum(provider.accepted.values()) == result.stats.sent
    assert all(t.attempts == 0 for t in ledger.transmissions(campaign.id, ("queued",)))
    again = run(ledger, ScriptedProvider(), campaign)
    assert again.reason is StopReason.DONE and states(ledger, campaign) == {"sent": 200}


def test_rows_left_sending_by_a_crash_become_unknown_and_are_reconciled(ledger):
    campaign = queue(ledger, 6)
    with ledger.transaction():
        crashed = ledger.claim(campaign.id, 4)  # a run that died with these in flight
    provider = ScriptedProvider(can_lookup=True)
    provider.accepted[crashed[0].e164] = 1  # only the first had reached the provider
    result = run(ledger, provider, campaign)
    assert result.stats.recovered == 4 and result.stats.found == 1 and result.stats.not_found == 3
    assert states(ledger, campaign) == {"sent": 6}
    assert set(provider.accepted.values()) == {1}


def test_a_provider_that_cannot_tell_leaves_crashed_rows_unknown(ledger):
    campaign = queue(ledger, 3)
    with ledger.transaction():
        ledger.claim(campaign.id, 2)
    provider = ScriptedProvider()
    result = run(ledger, provider, campaign)
    assert states(ledger, campaign) == {"unknown": 2, "sent": 1}
    assert len(provider.attempts) == 1
    assert result.stats.recovered == 2


def test_limit_attempts_only_that_many_rows(ledger):
    campaign = queue(ledger, 30)
    provider = ScriptedProvider()
    result = run(ledger, provider, campaign, limit=7, batch_size=4)
    assert result.reason is StopReason.LIMIT
    assert states(ledger, campaign) == {"sent": 7, "queued": 23}
    assert sum(provider.attempts.values()) == 7


def test_rows_due_later_than_the_longest_wait_end_the_run(ledger):
    campaign = queue(ledger, 2)
    provider = ScriptedProvider(lambda d, a: Outcome(OutcomeKind.RETRYABLE, code="429", retry_after=3600))
    result = run(ledger, provider, campaign, max_wait=1.0)
    assert result.reason is StopReason.WAITING
    assert (result.next_due - datetime.now(timezone.utc)).total_seconds() > 3500
    assert states(ledger, campaign) == {"queued": 2}


def test_a_raising_adapter_is_a_bug_but_its_row_stays_unknown(ledger):
    campaign = queue(ledger, 3)

    def script(delivery, attempt):
        raise RuntimeError("adapter bug")

    with pytest.raises(RuntimeError, match="adapter bug"):
        run(ledger, ScriptedProvider(script), campaign, concurrency=1, batch_size=1)
    counts = states(ledger, campaign)
    assert counts.get("unknown") == 1 and "sending" not in counts


def test_reconcile_campaign_applies_the_users_decision_to_rows_nobody_can_tell_about(ledger):
    campaign = queue(ledger, 3)
    with ledger.transaction():
        rows = ledger.claim(campaign.id, 3)
        for row in rows:
            ledger.mark_unknown(row.id, "read_timeout", "no answer")
    provider = ScriptedProvider(can_lookup=True, lookup_answer=LookupResult.CANNOT_TELL)
    result, recovered = reconcile_campaign(ledger, provider, campaign, EngineSettings(**FAST))
    assert (result.looked_up, result.undecided, recovered) == (3, 3, 0)
    assert states(ledger, campaign) == {"unknown": 3}
    result, _ = reconcile_campaign(ledger, provider, campaign, EngineSettings(**FAST), assume="failed")
    assert result.failed == 3
    assert states(ledger, campaign) == {"failed": 3}
    assert ledger.failure_codes(campaign.id) == {"unreconciled": 3}


def test_backoff_is_full_jitter_under_an_exponential_ceiling_and_never_below_retry_after():
    settings = EngineSettings(backoff_base=1.0, backoff_cap=10.0)
    for attempts, ceiling in ((1, 2.0), (2, 4.0), (3, 8.0), (4, 10.0), (9, 10.0)):
        waits = [settings.backoff(attempts, None) for _ in range(400)]
        assert all(0 <= w <= ceiling for w in waits), (attempts, max(waits))
        assert max(waits) > ceiling * 0.8 and min(waits) < ceiling * 0.2, "spread over the whole window"
    assert all(settings.backoff(3, 30.0) == 30.0 for _ in range(50))  # Retry-After beyond the window wins
    assert all(settings.backoff(1, 0.5) >= 0.5 for _ in range(200))  # and is a floor inside it
