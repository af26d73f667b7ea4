"""The send loop and its attempt journal: every request recorded before it starts, failures that stop the run, a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from bulksend.engine import Engine, EngineSettings, StopReason
from bulksend.errors import LedgerError
from bulksend.journal import HEADER, AttemptJournal, journal_path
from bulksend.ledger import NewTransmission, SqliteLedger

from fakeprovider import ScriptedProvider, accept_all

BOOT = "36e39f66-7a4d-497b-bc93-db5603ebf723"
FAST = dict(backoff_base=0.01, backoff_cap=0.05, reconcile_after=0.0, max_wait=5.0)
TESTS = Path(__file__).resolve().parent


@pytest.fixture
def ledger(tmp_path: Path):
    with SqliteLedger.open(tmp_path / "ledger.db") as opened:
        opened.topup("sms", 10_000)
        yield opened


def queue(ledger: SqliteLedger, n: int):
    campaign = ledger.open_campaign("spring", "sms", "scripted", "fp-spring")
    ledger.add_transmissions(
        campaign.id, [NewTransmission(f"+4479111{i:05d}", "Hi", 1, 1, row_number=i + 1) for i in range(n)]
    )
    ledger.hold(campaign.id, "sms", n)
    return campaign


def engine(ledger, campaign, provider, *, boot: str | None = BOOT, **settings) -> Engine:
    journal = AttemptJournal(journal_path(ledger.path.parent, campaign.id), boot)
    return Engine(ledger, provider, campaign, EngineSettings(**{**FAST, "concurrency": 4, **settings}), journal=journal)


def test_every_request_starts_only_once_its_attempt_is_in_the_journal(ledger):
    campaign = queue(ledger, 60)
    path = journal_path(ledger.path.parent, campaign.id)
    unrecorded: list[int] = []

    def script(delivery, attempt):
        # What a SIGKILL at this instant would leave on disk (the kernel's copy): this request must be in it.
        lines = path.read_bytes().split(b"\n")
        if lines[0] != f"{HEADER}{BOOT}".encode() or f"{delivery.transmission_id} {attempt - 1}".encode() not in lines:
            unrecorded.append(delivery.transmission_id)
        if attempt == 1 and delivery.transmission_id % 3 == 0:
            from bulksend.providers.base import Outcome, OutcomeKind

            return Outcome(OutcomeKind.RETRYABLE, code="429", text="busy")
        return accept_all(delivery, attempt)

    provider = ScriptedProvider(script, latency=0.002)
    result = engine(ledger, campaign, provider, batch_size=8).run()
    assert result.reason is StopReason.DONE and ledger.counts(campaign.id) == {"sent": 60}
    assert sum(provider.attempts.values()) == 80 and not unrecorded
    assert not path.exists()  # a run that recorded every outcome leaves no journal behind


def test_without_a_boot_id_a_run_sends_as_before_and_writes_no_journal(ledger):
    campaign = queue(ledger, 20)
    provider = ScriptedProvider()
    seen: list[bool] = []
    path = journal_path(ledger.path.parent, campaign.id)
    provider.script = lambda d, a: (seen.append(path.exists()), accept_all(d, a))[1]
    result = engine(ledger, campaign, provider, boot=None).run()
    assert result.reason is StopReason.DONE and ledger.counts(campaign.id) == {"sent": 20}
    assert not any(seen)


def test_a_journal_write_that_fails_never_lets_its_request_out_and_stops_the_run(ledger):
    campaign = queue(ledger, 100)
    full = os.open("/dev/full", os.O_WRONLY)

    def script(delivery, attempt):
        if delivery.transmission_id == 6:
            # From now on the journal's file descriptor answers every write with ENOSPC, as a full disk does.
            os.dup2(full, run.journal._fd)
        return accept_all(delivery, attempt)

    provider = ScriptedProvider(script)
    run = engine(ledger, campaign, provider, concurrency=1, batch_size=4)
    try:
        with pytest.raises(LedgerError) as raised:
            run.run()
    finally:
        os.close(full)
    path = journal_path(ledger.path.parent, campaign.id)
    assert raised.value.message == (
        f"cannot write the attempt journal {path} (No space left on device): the run stopped, and the message "
        "it was about to send was not sent (it is queued, like the rest)."
    )
    rows = ledger.transmissions(campaign.id)
    assert provider.attempts == {r.e164: 1 for r in rows[:6]}  # row 7's request never started
    assert [r.state for r in rows[:6]] == ["sent"] * 6
    assert ledger.counts(campaign.id) == {"sent": 6, "queued": 94}
    assert all(r.attempts == 0 for r in rows[6:])
    assert ledger.held(campaign.id) == 94 and ledger.audit().consistent


def test_a_journal_that_cannot_be_started_stops_the_run_before_any_request(ledger, tmp_path):
    campaign = queue(ledger, 10)
    (tmp_path / "journal").write_text("a file where the journal directory should be")
    provider = ScriptedProvider()
    with pytest.raises(LedgerError, match=r"cannot start the attempt journal .*1\.attempts .*nothing was sent\."):
        engine(ledger, campaign, provider).run()
    assert not provider.attempts and ledger.counts(campaign.id) == {"queued": 10}


def test_a_journal_that_cannot_be_removed_stops_the_run_after_a_conservative_recovery(ledger, tmp_path):
    campaign = queue(ledger, 10)
    with ledger.transaction():
        ledger.claim(campaign.id, 3)
    path = journal_path(tmp_path, campaign.id)
    path.mkdir(parents=True)  # unreadable as a journal, and unlink() refuses it
    provider = ScriptedProvider()
    with pytest.raises(LedgerError, match=r"cannot remove the attempt journal .*; nothing was sent\."):
        engine(ledger, campaign, provider).run()
    assert not provider.attempts and ledger.counts(campaign.id) == {"unknown": 3, "queued": 7}


def test_stopping_a_run_requeues_what_never_went_out_and_removes_the_journal(ledger):
    campaign = queue(ledger, 200)
    stop = threading.Event()
    provider = ScriptedProvider(latency=0.01)
    run = Engine(ledger, provider, campaign, EngineSettings(concurrency=4, batch_size=20, **FAST), stop=stop)
    threading.Timer(0.15, stop.set).start()
    assert run.run().reason is StopReason.INTERRUPTED
    assert set(ledger.counts(campaign.id)) == {"sent", "queued"}
    assert not journal_path(ledger.path.parent, campaign.id).exists()


CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from bulksend.engine import Engine, EngineSettings
    from bulksend.ledger import SqliteLedger
    from fakeprovider import ScriptedProvider, accept_all

    ledger = SqliteLedger.open(Path(sys.argv[1]))
    campaign = ledger.get_campaign("spring")
    log = os.open(sys.argv[2], os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    def script(delivery, attempt):
        os.write(log, b"received %d\\n" % delivery.transmission_id)
        time.sleep(0.01)
        if delivery.transmission_id == 70:
            time.sleep(0.005)
            os.kill(os.getpid(), signal.SIGKILL)  # mid-request, with others in flight and answers uncommitted
        os.write(log, b"accepted %d\\n" % delivery.transmission_id)
        return accept_all(delivery, attempt)

    Engine(ledger, ScriptedProvider(script), campaign,
           EngineSettings(concurrency=4, batch_size=16, reconcile_after=0.0)).run()
    """
)


def test_after_a_sigkill_only_requests_without_an_answer_are_unknown(ledger, tmp_path):
    campaign = queue(ledger, 200)
    (tmp_path / "child.py").write_text(CHILD)
    log = tmp_path / "provider.log"
    child = subprocess.run([sys.executable, str(tmp_path / "child.py"), str(ledger.path), str(log), str(TESTS)],
                           capture_output=True, text=True, timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr
    events = [line.split() for line in log.read_text().splitlines()]
    received = {int(i) for what, i in events if what == "received"}
    accepted = {int(i) for what, i in events if what == "accepted"}
    left_sending = {r.id for r in ledger.transmissions(campaign.id, ("sending",))}
    assert left_sending and 70 in received - accepted

    run = Engine(ledger, ScriptedProvider(), campaign, EngineSettings(concurrency=4, **FAST))
    recovery = run.recover()
    rows = {r.id: r for r in ledger.transmissions(campaign.id)}
    unknown = {i for i, r in rows.items() if r.state == "unknown"}
    assert received - accepted <= unknown  # reached the provider, no answer: unknown
    assert len(unknown) <= 4  # at most one per worker thread
    assert {i for i, r in rows.items() if r.state == "sent"} <= accepted  # nothing sent on a guess
    requeued = {i for i in left_sending if rows[i].state == "queued"}
    assert left_sending - received - unknown <= requeued and all(rows[i].attempts == 0 for i in requeued)
    assert (recovery.unknown, recovery.requeued) == (len(unknown), len(requeued)) and requeued
    assert recovery.sent == len((left_sending & accepted) - unknown)

    assert run.run().reason is StopReason.DONE
    assert ledger.counts(campaign.id) == {"sent": 200 - len(unknown), "unknown": len(unknown)}
    rows = {r.id: r for r in ledger.transmissions(campaign.id)}
    resent = {i for i, r in rows.items() if r.e164 in run.provider.attempts}
    assert not resent & accepted  # nobody the provider accepted was sent again
    assert ledger.audit().consistent
