"""The rate a run reports leaves out the time it spent idle, waiting for unknown rows to become lookup-able."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakeprovider import ScriptedProvider

from bulksend.engine import Engine, EngineSettings, RunStats, StopReason
from bulksend.ledger import NewTransmission, SqliteLedger
from bulksend.providers.base import LookupResult


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_rate_is_requests_per_second_of_work_not_of_waiting():
    clock = Clock()
    stats = RunStats(clock=clock)
    stats.attempts = 30
    clock.now += 40.0  # 40 s in all…
    stats.waited = 30.0  # …30 of them idle before the lookups
    assert stats.elapsed == 40.0
    assert stats.per_second == 3.0


def test_a_run_that_only_waited_reports_no_rate():
    clock = Clock()
    stats = RunStats(clock=clock)
    clock.now += 5.0
    stats.waited = 5.0
    assert stats.per_second == 0.0


@pytest.fixture
def ledger(tmp_path: Path):
    with SqliteLedger.open(tmp_path / "ledger.db") as opened:
        opened.topup("sms", 10_000)
        yield opened


def test_a_resumed_run_counts_the_wait_before_its_lookups_apart(ledger):
    numbers = [f"+4479111{i:05d}" for i in range(6)]
    campaign = ledger.open_campaign("spring", "sms", "scripted", "fp-spring")
    ledger.add_transmissions(campaign.id, [NewTransmission(n, "Hi", 1, 1, row_number=i + 1) for i, n in enumerate(numbers)])
    ledger.hold(campaign.id, "sms", ledger.outstanding_cost(campaign.id))
    with ledger.transaction():
        for row in ledger.claim(campaign.id, 2):
            ledger.mark_unknown(row.id, "read_timeout", "no answer")  # just now: not ripe for 0.5 s

    provider = ScriptedProvider(can_lookup=True, lookup_answer=LookupResult.FOUND)
    settings = EngineSettings(concurrency=2, reconcile_after=0.5, max_wait=5.0)
    result = Engine(ledger, provider, campaign, settings).run()

    assert result.reason is StopReason.DONE
    assert ledger.counts(campaign.id) == {"sent": 6}
    stats = result.stats
    assert stats.attempts == 4 and stats.found == 2
    assert stats.waited >= 0.3, "the run waited for the unknown rows to ripen"
    end = stats.clock()
    stats.clock = lambda: end  # freeze the clock to compare exact figures
    assert stats.per_second == pytest.approx(4 / (end - stats.started - stats.waited))
    assert stats.per_second > 4 / stats.elapsed
