"""The attempt journal: its records, when it is believed, and how recovery settles a crash's ``sending`` rows with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulksend import journal as journal_module
from bulksend.engine import Engine, EngineSettings, reconcile_campaign
from bulksend.journal import (
    HEADER,
    AttemptJournal,
    Verdict,
    accepted_record,
    attempt_record,
    declined_record,
    journal_path,
    parse,
    read_boot_id,
)
from bulksend.ledger import NewTransmission, SqliteLedger

from fakeprovider import ScriptedProvider

BOOT = "36e39f66-7a4d-497b-bc93-db5603ebf723"
FAST = dict(backoff_base=0.01, backoff_cap=0.05, reconcile_after=0.0, max_wait=5.0, concurrency=4)


@pytest.fixture
def ledger(tmp_path: Path):
    with SqliteLedger.open(tmp_path / "ledger.db") as opened:
        opened.topup("sms", 1_000)
        yield opened


def crashed_campaign(ledger: SqliteLedger, n: int = 8, claimed: int = 6, *, retried: int = 0, hold: bool = True):
    """A campaign of ``n`` rows of which a "crashed run" left the first ``claimed`` in ``sending``.

    The first ``retried`` rows had already been attempted twice (attempts = 2) before that run.
    """
    campaign = ledger.open_campaign("spring", "sms", "scripted", "fp-spring")
    ledger.add_transmissions(
        campaign.id, [NewTransmission(f"+4479111{i:05d}", "Hi", 1, 1, row_number=i + 1) for i in range(n)]
    )
    if hold:
        ledger.hold(campaign.id, "sms", n)
    for _ in range(2 if retried else 0):
        with ledger.transaction():
            for row in ledger.claim(campaign.id, retried):
                ledger.mark_retry(row.id, _epoch(), "429", "busy")
    with ledger.transaction():
        rows = ledger.claim(campaign.id, claimed, within_hold=hold)
    assert len(rows) == claimed
    return campaign, rows


def _epoch():
    from datetime import datetime, timezone

    return datetime(2000, 1, 1, tzinfo=timezone.utc)


def write_journal(path: Path, *records: bytes, boot: str = BOOT) -> None:
    journal = AttemptJournal(path, boot)
    journal.open()
    for record in records:
        journal.record(record)
    journal.close()


def engine(ledger, campaign, boot: str | None = BOOT, provider=None) -> Engine:
    path = journal_path(ledger.path.parent, campaign.id)
    return Engine(ledger, provider or ScriptedProvider(), campaign, EngineSettings(**FAST),
                  journal=AttemptJournal(path, boot))


def by_state(ledger, campaign) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for row in ledger.transmissions(campaign.id):
        out.setdefault(row.state, set()).add(row.id)
    return out


# ------------------------------------------------------------------------------------------ records


def test_records_round_trip_to_verdicts():
    text = (
        f"{HEADER}{BOOT}\n".encode()
        + attempt_record(1, 0) + attempt_record(2, 3) + attempt_record(3, 0) + attempt_record(4, 0)
        + accepted_record(2, 3, "SM two") + declined_record(3, 0) + accepted_record(4, 0, None)
    )
    attempts = parse(text, BOOT)
    assert attempts is not None
    assert attempts.verdict(1, 0) == (Verdict.STARTED, None)
    assert attempts.verdict(2, 3) == (Verdict.ACCEPTED, "SM two")
    assert attempts.verdict(3, 0) == (Verdict.DECLINED, None)
    assert attempts.verdict(4, 0) == (Verdict.ACCEPTED, None)
    assert attempts.verdict(5, 0) == (Verdict.NOT_STARTED, None)
    assert attempts.verdict(2, 4) == (Verdict.NOT_STARTED, None)  # a later attempt of row 2 never started


def test_a_provider_id_with_a_newline_or_unicode_stays_on_one_line():
    record = accepted_record(7, 1, "wamid.é\nforged 9 0")
    assert record.count(b"\n") == 1 and record.isascii()
    attempts = parse(f"{HEADER}{BOOT}\n".encode() + attempt_record(7, 1) + record, BOOT)
    assert attempts.verdict(7, 1) == (Verdict.ACCEPTED, "wamid.é\nforged 9 0")
    assert attempts.verdict(9, 0) == (Verdict.NOT_STARTED, None)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"1 0\n2 0", "the last line was cut short"),
        (b"1 0\n+1 0 \"SM", "an outcome cut short"),
        (b"1 0\n2 x\n", "a line that is not a record"),
        (b"1 0\n\n", "an empty line"),
        (b"1 0\n+2 0 \"SM2\"\n", "an outcome without its attempt"),
        (b"1 0\n+1 0 SM1\n", "a provider id that is not JSON"),
        (b"1 0\n+1 0 17\n", "a provider id that is not a string"),
        (b"1 0\n+1 0 \"SM1\"\n-1 0\n", "accepted and declined at once"),
        (b"1 0\n\xff\n", "bytes that are not ASCII"),
    ],
)
def test_a_journal_torn_or_not_as_written_is_not_believed(body, why):
    assert parse(f"{HEADER}{BOOT}\n".encode() + body, BOOT) is None, why


@pytest.mark.parametrize(
    "text",
    [b"", b"bulksend-attempts 1 boot ", f"{HEADER}{BOOT}".encode(), f"{HEADER}other-boot\n1 0\n".encode(),
     b"1 0\n2 0\n"],
)
def test_a_journal_from_another_boot_or_without_its_header_is_not_believed(text):
    assert parse(text, BOOT) is None


def test_without_a_boot_id_nothing_is_believed_and_nothing_is_written(tmp_path):
    text = f"{HEADER}{BOOT}\n".encode() + attempt_record(1, 0)
    assert parse(text, None) is None
    journal = AttemptJournal(tmp_path / "journal" / "1.attempts", None)
    journal.open()
    assert not journal.active and not journal.path.exists()


def test_the_boot_id_is_the_kernels(tmp_path):
    assert read_boot_id(tmp_path / "missing") is None
    (tmp_path / "boot_id").write_text(BOOT + "\n")
    assert read_boot_id(tmp_path / "boot_id") == BOOT
    (tmp_path / "boot_id").write_text("")
    assert read_boot_id(tmp_path / "boot_id") is None
    if journal_module.BOOT_ID_FILE.exists():  # Linux
        assert journal_module.boot_id() == journal_module.BOOT_ID_FILE.read_text().strip()


def test_every_journal_takes_its_boot_id_from_one_function(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_module, "boot_id", lambda: "patched-boot")
    assert AttemptJournal.for_campaign(tmp_path, 3).boot == "patched-boot"
    monkeypatch.setattr(journal_module, "boot_id", lambda: None)  # macOS, Windows: no journal
    assert AttemptJournal.for_campaign(tmp_path, 3).boot is None



def test_open_truncates_and_writes_the_header_owner_only(tmp_path):
    path = tmp_path / "journal" / "4.attempts"
    write_journal(path, attempt_record(1, 0))
    journal = AttemptJournal(path, BOOT)
    journal.open()
    journal.record(attempt_record(2, 0))
    journal.close()
    assert path.read_bytes() == f"{HEADER}{BOOT}\n2 0\n".encode()
    assert path.stat().st_mode & 0o777 == 0o600


# ----------------------------------------------------------------------------------------- recovery


def test_recovery_queues_what_never_started_and_leaves_unknown_only_what_may_be_out(ledger):
    campaign, rows = crashed_campaign(ledger, retried=2)
    ids = [r.id for r in rows]
    assert [r.attempts for r in rows] == [2, 2, 0, 0, 0, 0]
    path = journal_path(ledger.path.parent, campaign.id)
    write_journal(
        path,
        attempt_record(ids[0], 2),  # started, no answer: may be out
        attempt_record(ids[1], 2) + attempt_record(ids[2], 0),
        accepted_record(ids[1], 2, "SM-b") + attempt_record(ids[3], 0),  # the answer came back: accepted
        declined_record(ids[3], 0),  # came back: not accepted
        # ids[4], ids[5]: claimed, never started
    )
    run = engine(ledger, campaign)
    recovery = run.recover()

    assert (recovery.unknown, recovery.requeued, recovery.sent, recovery.credits) == (2, 3, 1, 1)
    states = by_state(ledger, campaign)
    assert states["unknown"] == {ids[0], ids[2]}
    assert states["sent"] == {ids[1]}
    assert states["queued"] == {ids[3], ids[4], ids[5], *(r.id for r in ledger.transmissions(campaign.id)[6:])}
    assert "sending" not in states
    after = {r.id: r for r in ledger.transmissions(campaign.id)}
    assert after[ids[1]].provider_id == "SM-b" and after[ids[1]].debited == 1
    assert [after[i].attempts for i in ids] == [2, 2, 0, 0, 0, 0]  # recovery spends no attempt
    assert after[ids[0]].error_text == "interrupted while sending"
    assert ledger.campaign_credits(campaign.id) == (1, 0) and ledger.audit().consistent
    assert not path.exists()  # removed once the ledger committed
    stats = run.stats
    assert (stats.recovered, stats.requeued, stats.journal_sent, stats.sent, stats.credits) == (2, 3, 1, 1, 1)


def test_an_outcome_written_late_never_settles_a_later_attempt_of_the_same_row(ledger):
    campaign, rows = crashed_campaign(ledger, claimed=1, retried=1)
    row = rows[0]
    assert row.attempts == 2
    path = journal_path(ledger.path.parent, campaign.id)
    # Attempt 1 was declined, but its worker wrote that only after attempt 2 of the row had started.
    write_journal(path, attempt_record(row.id, 1), attempt_record(row.id, 2), declined_record(row.id, 1))
    engine(ledger, campaign).recover()
    assert ledger.transmission(row.id).state == "unknown"


@pytest.mark.parametrize(
    ("boot", "content", "why"),
    [
        ("another-boot", None, "the machine restarted since the journal was written"),
        (BOOT, b"", "the journal is empty"),
        (BOOT, "missing", "there is no journal"),
        (BOOT, b"torn", "the last line is torn"),
        (None, None, "the boot id cannot be read now"),
    ],
)
def test_a_journal_that_cannot_be_trusted_makes_every_sending_row_unknown(ledger, boot, content, why):
    campaign, rows = crashed_campaign(ledger)
    ids = [r.id for r in rows]
    path = journal_path(ledger.path.parent, campaign.id)
    write_journal(path, attempt_record(ids[0], 0) + accepted_record(ids[0], 0, "SM") + attempt_record(ids[1], 0))
    if content == "missing":
        path.unlink()
    elif content == b"torn":
        with open(path, "ab") as f:
            f.write(b"%d " % ids[2])
    elif content is not None:
        path.write_bytes(content)
    recovery = engine(ledger, campaign, boot=boot).recover()
    assert (recovery.unknown, recovery.requeued, recovery.sent) == (6, 0, 0), why
    assert by_state(ledger, campaign)["unknown"] == set(ids)
    assert not path.exists()


def test_a_journal_is_kept_when_the_ledger_could_not_commit_the_recovery(ledger, monkeypatch):
    campaign, rows = crashed_campaign(ledger)
    path = journal_path(ledger.path.parent, campaign.id)
    write_journal(path, attempt_record(rows[0].id, 0))
    before = path.read_bytes()

    def broken(campaign_id):
        raise OSError("disk I/O error")

    monkeypatch.setattr(ledger, "recover_sending", broken)
    with pytest.raises(OSError):
        engine(ledger, campaign).recover()
    assert path.read_bytes() == before
    assert by_state(ledger, campaign)["sending"] == {r.id for r in rows}  # rolled back, nothing lost
    monkeypatch.undo()
    assert engine(ledger, campaign).recover().requeued == 5 and not path.exists()


def test_an_accepted_row_that_cannot_be_debited_now_is_left_unknown(tmp_path):
    with SqliteLedger.open(tmp_path / "ledger.db") as ledger:  # no credits at all
        campaign, rows = crashed_campaign(ledger, claimed=2, hold=False)
        write_journal(journal_path(tmp_path, campaign.id), attempt_record(rows[0].id, 0),
                      accepted_record(rows[0].id, 0, "SM1"))
        recovery = engine(ledger, campaign).recover()
        assert (recovery.unknown, recovery.requeued, recovery.sent) == (1, 1, 0)
        assert ledger.transmission(rows[0].id).state == "unknown"
        assert ledger.audit().consistent


def test_a_run_recovers_with_the_journal_then_sends_only_what_never_went_out(ledger):
    campaign, rows = crashed_campaign(ledger)
    ids = [r.id for r in rows]
    write_journal(journal_path(ledger.path.parent, campaign.id),
                  attempt_record(ids[0], 0), attempt_record(ids[1], 0) + accepted_record(ids[0], 0, "SM0"))
    provider = ScriptedProvider()
    result = engine(ledger, campaign, provider=provider).run()
    everyone = {r.id for r in ledger.transmissions(campaign.id)}
    assert by_state(ledger, campaign) == {"sent": everyone - {ids[1]}, "unknown": {ids[1]}}
    sent_now = {r.e164 for r in ledger.transmissions(campaign.id) if r.id not in ids[:2]}
    assert set(provider.attempts) == sent_now and set(provider.attempts.values()) == {1}
    assert (result.stats.recovered, result.stats.requeued, result.stats.journal_sent) == (1, 4, 1)
    assert result.stats.sent == 7 and result.stats.credits == 7


def test_a_provider_that_can_look_up_still_reconciles_what_the_journal_cannot_settle(ledger):
    campaign, rows = crashed_campaign(ledger, n=3, claimed=3)
    ids = [r.id for r in rows]
    write_journal(journal_path(ledger.path.parent, campaign.id), attempt_record(ids[0], 0), attempt_record(ids[1], 0))
    provider = ScriptedProvider(can_lookup=True)
    provider.accepted[rows[0].e164] = 1  # the first reached the provider; the second did not
    result = engine(ledger, campaign, provider=provider).run()
    assert by_state(ledger, campaign) == {"sent": set(ids)}
    assert sorted(provider.lookups) == sorted([rows[0].e164, rows[1].e164])  # only what may have been out
    assert (result.stats.found, result.stats.not_found, result.stats.requeued) == (1, 1, 1)
    assert set(provider.accepted.values()) == {1}


def test_campaigns_reconcile_recovers_with_the_journal_and_counts_only_the_unknown(ledger, monkeypatch):
    monkeypatch.setattr(journal_module, "boot_id", lambda: BOOT)  # reconcile_campaign asks the machine
    campaign, rows = crashed_campaign(ledger)
    path = journal_path(ledger.path.parent, campaign.id)
    write_journal(path, attempt_record(rows[0].id, 0))
    result, recovered = reconcile_campaign(ledger, ScriptedProvider(), campaign, EngineSettings(**FAST))
    assert recovered == 1 and result.undecided == 1
    assert by_state(ledger, campaign)["unknown"] == {rows[0].id}
    assert len(by_state(ledger, campaign)["queued"]) == 7
    assert not path.exists()
