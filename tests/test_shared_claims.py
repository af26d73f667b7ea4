"""Many senders, one campaign (issue 10 item 4): claims under a lease, recovery that spares live senders,
one hold topped up and released by whoever is last.

On PostgreSQL (``BULKSEND_TEST_POSTGRES``) each test uses its own schema; on SQLite claims carry no lease
and recovery settles every ``sending`` row, as before (one sender per campaign: the home lock).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from ledger_backends import Backend

from bulksend.fleet import home_sender
from bulksend.ledger import NewTransmission


@pytest.fixture
def shared():
    backend = Backend("postgresql")
    ledger = backend.open()
    yield backend, ledger
    ledger.close()
    backend.drop()


def _campaign(ledger, rows: int = 6):
    ledger.topup("sms", 100)
    c = ledger.open_campaign("spring", "sms", "outbox", "fp")
    ledger.add_transmissions(c.id, [NewTransmission(f"+4479111{i:05d}", "hi", 1, 1) for i in range(rows)])
    ledger.hold_shortfall(c.id)
    return c


def _claims(backend) -> dict[int, str | None]:
    import psycopg

    with psycopg.connect(backend.url) as conn:
        return dict(conn.execute("SELECT id, claimed_by FROM transmissions WHERE state = 'sending'").fetchall())


def test_a_claim_records_its_sender_and_recovery_spares_a_live_sender(shared, tmp_path):
    backend, ledger = shared
    c = _campaign(ledger)
    home_a, alive = home_sender(tmp_path / "a")
    _, dead = home_sender(tmp_path / "b")
    home_c, me = home_sender(tmp_path / "c")
    live_rows = [r.id for r in ledger.claim(c.id, 2, sender=alive, lease=60)]
    dying_rows = [r.id for r in ledger.claim(c.id, 2, sender=dead, lease=0.5)]
    assert _claims(backend) == {**{i: alive for i in live_rows}, **{i: dead for i in dying_rows}}

    # While both leases hold, a sender from a third home may settle nothing.
    assert ledger.sending_to_recover(c.id, home=home_c, sender=me) == []
    time.sleep(1.0)
    # The dead sender's lease ran out: its rows (not this home's) are settled; the live sender's never.
    found = ledger.sending_to_recover(c.id, home=home_c, sender=me)
    assert found == [(i, False) for i in dying_rows]
    assert ledger.recover_sending(c.id, [i for i, _ in found]) == 2
    states = {t.id: t.state for t in ledger.transmissions(c.id)}
    assert [states[i] for i in dying_rows] == ["unknown", "unknown"]
    assert [states[i] for i in live_rows] == ["sending", "sending"]

    # A later sender of the live sender's own home settles its rows at once (the home lock says that run
    # is over), and knows them as its home's: its journal may speak for them.
    _, successor = home_sender(tmp_path / "a")
    assert ledger.sending_to_recover(c.id, home=home_a, sender=successor) == [(i, True) for i in live_rows]
    # …but never a sender's own rows.
    assert ledger.sending_to_recover(c.id, home=home_a, sender=alive) == []


def test_renewing_keeps_a_lease_alive(shared, tmp_path):
    backend, ledger = shared
    c = _campaign(ledger)
    _, sender = home_sender(tmp_path / "a")
    home_b, other = home_sender(tmp_path / "b")
    rows = [r.id for r in ledger.claim(c.id, 3, sender=sender, lease=0.6)]
    for _ in range(3):
        time.sleep(0.3)
        assert ledger.renew_leases(c.id, sender, 0.6) == set(rows)
    assert ledger.sending_to_recover(c.id, home=home_b, sender=other) == []
    assert ledger.live_leases_of_others(c.id, other) == 3
    assert ledger.live_leases_of_others(c.id, sender) == 0
    time.sleep(0.8)
    assert [i for i, _ in ledger.sending_to_recover(c.id, home=home_b, sender=other)] == rows
    assert ledger.live_leases_of_others(c.id, other) == 0


def test_joining_senders_hold_the_shortfall_once_and_the_last_releases(shared):
    _, ledger = shared
    c = _campaign(ledger, rows=6)
    assert ledger.held(c.id) == 6
    assert ledger.hold_shortfall(c.id) == 0  # a second sender joining holds nothing more
    ledger.claim(c.id, 2, sender="x:y:1:a")
    for row in ledger.transmissions(c.id, states=("sending",)):
        ledger.mark_sent(row.id, f"id-{row.id}")
    assert ledger.held(c.id) == 4
    assert ledger.trim_hold(c.id) == 0  # every credit held is still needed
    ledger.add_transmissions(c.id, [NewTransmission("+447911199999", "hi", 1, 1)])
    assert ledger.hold_shortfall(c.id) == 1
    for row in ledger.transmissions(c.id, states=("queued",)):
        ledger.mark_failed(row.id, "x", "no")
    assert ledger.trim_hold(c.id) == 5
    assert ledger.held(c.id) == 0
    assert ledger.audit().consistent


def test_sqlite_claims_carry_no_lease(tmp_path):
    backend = Backend("sqlite")
    ledger = backend.open()
    try:
        c = _campaign(ledger)
        rows = ledger.claim(c.id, 2, sender="x:y:1:a", lease=1)
        assert len(rows) == 2
        assert ledger.renew_leases(c.id, "x:y:1:a", 1) == set()
        assert ledger.live_leases_of_others(c.id, "other") == 0
        assert ledger.recover_sending(c.id) == 2
    finally:
        ledger.close()
        backend.drop()


def test_an_engine_joining_a_campaign_sends_around_a_live_sender_and_settles_a_dead_one(shared, tmp_path):
    """Engine.recover at the start of a run from another home: a live sender's rows stay ``sending``
    (before leases they all became ``unknown``); an expired sender's rows become ``unknown`` and are
    looked up, never sent again blindly."""
    from fakeprovider import ScriptedProvider, accept_all

    from bulksend.engine import Engine, EngineSettings
    from bulksend.ledger import Ledger
    from bulksend.stores.postgres import PostgresStore

    backend, ledger = shared
    c = _campaign(ledger, rows=8)
    _, alive = home_sender(tmp_path / "a")
    _, dead = home_sender(tmp_path / "b")
    live_rows = {r.id for r in ledger.claim(c.id, 2, sender=alive, lease=60)}
    dead_rows = {r.id: r.e164 for r in ledger.claim(c.id, 2, sender=dead, lease=0.3)}
    time.sleep(0.6)

    joining = Ledger(PostgresStore.open(backend.url), home=tmp_path / "c")
    try:
        provider = ScriptedProvider(accept_all, can_lookup=True)
        result = Engine(joining, provider, c, EngineSettings(concurrency=2, reconcile_after=0)).run()
    finally:
        joining.close()
    rows = {t.id: t for t in ledger.transmissions(c.id)}
    assert {rows[i].state for i in live_rows} == {"sending"}  # never touched: its sender is alive
    assert not {rows[i].e164 for i in live_rows} & set(provider.attempts)
    assert result.stats.recovered == 2
    # The dead sender's rows were looked up first (not found), then sent: once each by this sender.
    assert sorted(provider.lookups) == sorted(dead_rows.values())
    assert {rows[i].state for i in set(rows) - live_rows} == {"sent"}
    assert set(provider.attempts.values()) == {1}


def test_unclaim_gives_back_only_rows_the_sender_still_holds(shared, tmp_path):
    """A sender whose lease ran out may find its rows settled and claimed by another: giving back what it
    did not send must not put the other sender's claim back in the queue (it would be sent twice)."""
    backend, ledger = shared
    c = _campaign(ledger, rows=4)
    _, slow = home_sender(tmp_path / "a")
    home_b, quick = home_sender(tmp_path / "b")
    mine = [r.id for r in ledger.claim(c.id, 2, sender=slow, lease=0.3)]
    time.sleep(0.6)
    # The slow sender's lease ran out: another sender settles its rows (unknown), looks them up (not found)
    # and claims them again.
    with ledger.transaction():
        found = [i for i, _ in ledger.sending_to_recover(c.id, home=home_b, sender=quick)]
        assert sorted(found) == sorted(mine)
        ledger.recover_sending(c.id, found)
        for i in found:
            ledger.mark_retry(i, datetime.now(timezone.utc))  # the lookup found nothing: queued again
    retaken = [r.id for r in ledger.claim(c.id, 4, sender=quick, lease=60)]
    assert set(mine) <= set(retaken)
    assert ledger.unclaim(mine, sender=slow) == 0
    assert _claims(backend) == {i: quick for i in retaken}
    # The holder itself may give them back.
    assert ledger.unclaim(mine, sender=quick) == 2


def test_an_engine_that_falls_behind_its_lease_gives_rows_back_unsent(shared, tmp_path, monkeypatch):
    """A sender whose main thread stops renewing (a starved or paused process) starts no request for a row
    once its claim is older than two thirds of the lease: the row goes back to the queue and is claimed
    again, never left to race the sender that would settle it when the lease runs out."""
    import threading

    from fakeprovider import ScriptedProvider, accept_all

    from bulksend.engine import Engine, EngineSettings
    from bulksend.ledger import Ledger
    from bulksend.stores.postgres import PostgresStore

    backend, ledger = shared
    c = _campaign(ledger, rows=12)
    monkeypatch.setattr(Engine, "_tend_leases", lambda self: None)  # the renewals never come
    sender = Ledger(PostgresStore.open(backend.url), home=tmp_path / "a")
    stop = threading.Event()
    # One request at a time, 0.15 s each: of a batch of 12 claimed together, those reached after 0.4 s
    # (two thirds of the 0.6 s lease) are given back, and claimed again in the next batch.
    provider = ScriptedProvider(accept_all, latency=0.15)
    engine = Engine(sender, provider, c, EngineSettings(concurrency=1, batch_size=12, lease=0.6), stop=stop)
    outcome: list = []
    runner = threading.Thread(target=lambda: outcome.append(engine.run()))
    try:
        runner.start()
        runner.join(120)  # a bound against hanging: the run takes a few seconds
        stop.set()
        runner.join(30)
    finally:
        sender.close()
    assert outcome, "the run did not end"
    rows = ledger.transmissions(c.id)
    assert {t.state for t in rows} == {"sent"}
    assert set(provider.attempts.values()) == {1} and len(provider.attempts) == 12
    assert outcome[0].stats.lease_lapsed > 0


def test_a_sender_that_renews_after_its_lease_ran_out_sends_and_records_nothing_over_the_sender_that_took_over(
    shared, tmp_path, monkeypatch
):
    """A sender stalls past its lease (its renewals held back) while its first two requests hang at the
    provider; another sender settles its eight rows and claims seven of them again. When the stalled sender
    renews at last, the renewal covers none of them, so its workers start no request for the six rows still
    in their queue (a renewal used to make every claimed row look held again: those rows went out twice),
    and of the two answers that come back it records only the one that settles a row nobody claimed since:
    the acceptance of a row still ``unknown``. Nothing it does touches the other sender's claims."""
    import math
    import threading

    from fakeprovider import ScriptedProvider

    from bulksend.engine import Engine, EngineSettings
    from bulksend.ledger import Ledger
    from bulksend.providers.base import Outcome, OutcomeKind
    from bulksend.stores.postgres import PostgresStore

    backend, ledger = shared
    c = _campaign(ledger, rows=8)
    numbers = [t.e164 for t in ledger.transmissions(c.id)]
    ids = [t.id for t in ledger.transmissions(c.id)]
    home_b, other = home_sender(tmp_path / "b")
    taken = threading.Event()  # the other sender settled and claimed the stalled sender's rows
    renewed = threading.Event()  # the stalled sender renewed after that
    tend = Engine._tend_leases

    def late_renewals(self):
        if taken.is_set() and not renewed.is_set():
            self._lease_checked = -math.inf
            tend(self)
            renewed.set()

    monkeypatch.setattr(Engine, "_tend_leases", late_renewals)
    answers = {
        numbers[0]: Outcome(OutcomeKind.ACCEPTED, provider_id="SM-late"),
        numbers[1]: Outcome(OutcomeKind.AMBIGUOUS, code="read_timeout", text="no answer"),
    }

    def script(delivery, attempt):
        renewed.wait(60)  # the two first requests hang until the stalled sender has renewed
        return answers.get(delivery.to, Outcome(OutcomeKind.ACCEPTED, provider_id=f"SM-{delivery.to}"))

    stalled = Ledger(PostgresStore.open(backend.url), home=tmp_path / "a")
    provider = ScriptedProvider(script)
    engine = Engine(stalled, provider, c, EngineSettings(concurrency=2, batch_size=8, lease=0.6))
    outcome: list = []
    runner = threading.Thread(target=lambda: outcome.append(engine.run()))
    try:
        runner.start()
        deadline = time.monotonic() + 30
        while len(ledger.sending_to_recover(c.id, home=home_b, sender=other)) < 8:  # the lease runs out
            assert time.monotonic() < deadline, "the stalled sender's lease never ran out"
            time.sleep(0.05)
        with ledger.transaction():
            found = [i for i, _ in ledger.sending_to_recover(c.id, home=home_b, sender=other)]
            assert ledger.recover_sending(c.id, found) == 8
            for i in ids[1:]:
                ledger.mark_retry(i, datetime.now(timezone.utc))  # looked up, not found: queued again
        assert sorted(r.id for r in ledger.claim(c.id, 8, sender=other, lease=60)) == ids[1:]
        taken.set()
        runner.join(60)  # a bound against hanging: the run ends a moment after the renewal
    finally:
        taken.set()
        renewed.set()
        runner.join(30)
        stalled.close()
    assert outcome, "the run did not end"
    assert provider.attempts == {numbers[0]: 1, numbers[1]: 1}  # the six rows still queued were never sent
    rows = {t.id: t for t in ledger.transmissions(c.id)}
    assert (rows[ids[0]].state, rows[ids[0]].provider_id, rows[ids[0]].debited) == ("sent", "SM-late", 1)
    assert _claims(backend) == {i: other for i in ids[1:]}  # the ambiguous answer did not touch row 2
    assert (outcome[0].stats.lease_lost, outcome[0].stats.lease_lapsed) == (2, 6)
    assert ledger.audit().consistent
