"""The ledger knows who it is: a missing, empty, truncated, replaced or rolled-back ledger never starts afresh.

Each case runs a campaign through the outbox provider to completion, damages the ledger the way a user
or a disk would, and then runs every writing command: each must exit 1 with a message saying what was
found, and the outbox file (the messages "sent") must not get a single new line.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest

from bulksend.ledger import LEDGER_ID, SCHEMA_VERSION, SqliteLedger
from bulksend.locks import CampaignLock
from sendhelpers import write_campaign


@pytest.fixture
def funded(cli):
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    return cli


def outbox_lines(home: Path, campaign: str = "spring") -> int:
    path = home / "outbox" / f"{campaign}.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def record(home: Path) -> dict:
    return json.loads((home / "ledger.id").read_text())


def ledger_id(path: Path) -> str | None:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (LEDGER_ID,)).fetchone()
    finally:
        conn.close()
    return row and row[0]


def forget_wal(home: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{home / 'ledger.db'}{suffix}").unlink(missing_ok=True)


@pytest.fixture
def sent(funded, home, tmp_path):
    """A finished 5-recipient campaign 'spring' (outbox), and a copy of the ledger from before it."""
    before = tmp_path / "before.db"
    shutil.copy(home / "ledger.db", before)  # at rest: the last close checkpointed everything into the file
    campaign, _ = write_campaign(tmp_path / "c", "spring", 5)
    result = funded("send", campaign, "--yes")
    assert result.exit_code == 0, result.stderr
    assert outbox_lines(home) == 5
    return campaign, before


# --------------------------------------------------------------------------------------- the damages


def damage_missing(home, tmp_path, before):
    (home / "ledger.db").unlink()
    forget_wal(home)


def damage_zero_bytes(home, tmp_path, before):
    os.truncate(home / "ledger.db", 0)
    forget_wal(home)


def damage_truncated(home, tmp_path, before):
    os.truncate(home / "ledger.db", 8192)
    forget_wal(home)


def damage_replaced(home, tmp_path, before):
    other = tmp_path / "other.db"
    SqliteLedger.open(other).close()  # a perfectly good ledger: just not this home's
    shutil.copy(other, home / "ledger.db")
    forget_wal(home)


def damage_rolled_back(home, tmp_path, before):
    shutil.copy(before, home / "ledger.db")  # restored from a copy taken before the campaign
    forget_wal(home)


DAMAGES = {
    "missing": (damage_missing, "ledger.db is missing, but this home shows earlier work"),
    "zero_bytes": (damage_zero_bytes, "ledger.db is empty (0 bytes), but this home shows earlier work"),
    "truncated": (damage_truncated, "the ledger is damaged (database disk image is malformed)"),
    "replaced": (damage_replaced, "is not the ledger this home has been using: it is ledger"),
    "rolled_back": (damage_rolled_back, "it is behind what this home has seen: campaigns up to #0 (the home has seen #1)"),
}


def writing_commands(campaign: Path, tmp_path: Path) -> list[tuple[str, ...]]:
    optouts = tmp_path / "optouts.txt"
    optouts.write_text("+447400999001\n")
    return [
        ("send", str(campaign), "--yes"),
        ("send-one", "+447400999002", "--message", "hello"),
        ("credits", "topup", "1000", "--channel", "sms"),
        ("optout", "add", "+447400999003"),
        ("optout", "import", str(optouts)),
        ("optout", "remove", "+447400999003"),
        ("campaigns", "resume", "spring", "--yes"),
        ("campaigns", "cancel", "spring"),
        ("campaigns", "reconcile", "spring"),
    ]


@pytest.mark.parametrize("damage", DAMAGES)
def test_every_writing_command_refuses_a_damaged_ledger_and_nothing_is_sent_again(
    damage, sent, cli, home, tmp_path
):
    campaign, before = sent
    spoil, expected = DAMAGES[damage]
    spoil(home, tmp_path, before)
    size = (home / "ledger.db").stat().st_size if (home / "ledger.db").exists() else None
    for command in writing_commands(campaign, tmp_path):
        result = cli(*command)
        assert result.exit_code == 1, (command, result.stdout, result.stderr)
        assert expected in result.stderr, (command, result.stderr)
        assert "bug" not in result.stderr
        assert outbox_lines(home) == 5, command
        assert not list((home / "outbox").glob("send-one*"))
    # nothing took the damaged file for a new ledger
    assert ((home / "ledger.db").stat().st_size if (home / "ledger.db").exists() else None) == size


def test_the_refusal_says_what_was_found_and_how_to_restore(sent, cli, home, tmp_path):
    campaign, before = sent
    damage_zero_bytes(home, tmp_path, before)
    result = cli("send", campaign, "--yes")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"Error: {home / 'ledger.db'} is empty (0 bytes), but this home shows earlier work: ")
    assert "the record ledger.id (ledger " in lines[0] and "seen up to campaign #1, transmission #5" in lines[0]
    assert "1 campaign lock file (locks/spring.lock)" in lines[0]
    assert "1 outbox file (outbox/spring.jsonl)" in lines[0]
    assert lines[0].endswith("A new ledger here could send those campaigns again; nothing was done.")
    assert "bulksend ledger restore FILE" in result.stderr and "bulksend ledger adopt --yes" in result.stderr


def test_a_lost_wal_is_a_rollback_and_the_campaign_is_not_sent_again(funded, home, tmp_path):
    """Commits that only reached the -wal are lost with it: the home's high-water mark knows they happened."""
    campaign, _ = write_campaign(tmp_path / "c", "spring", 5)
    holder = sqlite3.connect(home / "ledger.db")  # keeps the run's last close from checkpointing the -wal
    holder.execute("SELECT 1 FROM meta").fetchall()
    try:
        assert funded("send", campaign, "--yes").exit_code == 0
        assert Path(f"{home / 'ledger.db'}-wal").stat().st_size > 0
        shutil.copy(home / "ledger.db", tmp_path / "main-file-only.db")
    finally:
        holder.close()
    shutil.copy(tmp_path / "main-file-only.db", home / "ledger.db")  # what the disk held without the -wal
    forget_wal(home)
    assert outbox_lines(home) == 5
    result = funded("send", campaign, "--yes")
    assert result.exit_code == 1
    assert "it is behind what this home has seen: campaigns up to #0 (the home has seen #1), transmissions up to #0 " \
        "(the home has seen #5)" in result.stderr
    assert "its -wal file was lost" in result.stderr
    assert outbox_lines(home) == 5


def test_an_attempt_journal_of_a_campaign_the_ledger_lacks_is_a_rollback(funded, home):
    (home / "journal").mkdir()
    (home / "journal" / "7.attempts").write_text("bulksend-attempts 1 boot x\n")
    result = funded("optout", "add", "+447400999003")
    assert result.exit_code == 1
    assert "attempt journals in journal/ name campaign #7, which it does not have (it has campaigns up to #0)" \
        in result.stderr


def test_reading_commands_warn_and_still_answer(sent, cli, home, tmp_path):
    campaign, before = sent
    damage_replaced(home, tmp_path, before)
    balance = cli("balance", "--json")
    assert balance.exit_code == 0
    assert json.loads(balance.stdout)["sms"]["available"] == 0
    assert "Warning: " in balance.stderr and "is not the ledger this home has been using" in balance.stderr
    damage_zero_bytes(home, tmp_path, before)
    history = cli("credits", "history", "--json")
    assert (history.exit_code, json.loads(history.stdout)["movements"]) == (0, [])
    assert "is empty (0 bytes), but this home shows earlier work" in history.stderr
    assert (home / "ledger.db").stat().st_size == 0  # a read never turns the empty file into a new ledger


# ------------------------------------------------------------------------------------- a home's record


def test_a_new_home_gets_a_ledger_with_an_identity_and_a_private_record(cli, home):
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    doc = record(home)
    assert doc["ledger_id"] == ledger_id(home / "ledger.db")
    assert (doc["campaigns"], doc["transmissions"], doc["movements"]) == (0, 0, 1)
    assert stat.S_IMODE((home / "ledger.id").stat().st_mode) == 0o600
    assert not list(home.glob(".ledger.id.*"))  # written atomically: no temporary file left


def test_the_record_follows_every_commit_of_a_run(sent, home):
    doc = record(home)
    assert (doc["campaigns"], doc["transmissions"]) == (1, 5)
    assert doc["movements"] >= 1 + 1 + 5  # the top-up, the hold, five debits (and the release)


def test_a_ledger_from_before_identities_is_adopted_by_its_first_write(cli, home):
    SqliteLedger.open(home / "ledger.db").close()
    conn = sqlite3.connect(home / "ledger.db")
    conn.execute("DELETE FROM meta")
    conn.commit()
    conn.close()
    assert cli("balance").exit_code == 0
    assert not (home / "ledger.id").exists()  # reading writes nothing
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    assert record(home)["ledger_id"] == ledger_id(home / "ledger.db") is not None


def test_an_unreadable_record_stops_writes(funded, home):
    (home / "ledger.id").write_text("{not json")
    result = funded("credits", "topup", 1000, "--channel", "sms")
    assert result.exit_code == 1
    assert "ledger.id is not a bulksend ledger record" in result.stderr


# --------------------------------------------------------------------------------------- adopt


def test_adopt_starts_afresh_only_when_asked(sent, cli, home, tmp_path):
    campaign, before = sent
    damage_zero_bytes(home, tmp_path, before)
    (home / "journal").mkdir(exist_ok=True)
    (home / "journal" / "1.attempts").write_text("bulksend-attempts 1 boot x\n")
    refused = cli("ledger", "adopt")
    assert refused.exit_code == 2 and "--yes" in refused.stderr
    adopted = cli("ledger", "adopt", "--yes", "--json")
    assert adopted.exit_code == 0, adopted.stderr
    doc = json.loads(adopted.stdout)
    assert doc["created"] is True and doc["ledger_id"] == ledger_id(home / "ledger.db")
    assert doc["previous"] != doc["ledger_id"]
    assert not (home / "journal" / "1.attempts").exists()
    assert (Path(doc["journals_moved_to"]) / "1.attempts").exists()
    assert cli("ledger", "check").exit_code == 0
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0


# ------------------------------------------------------------------------------ backup and restore


def test_backup_and_restore_round_trip_with_a_clean_audit(sent, cli, home, tmp_path):
    campaign, before = sent
    backed = cli("ledger", "backup", tmp_path / "nightly.db", "--json")
    assert backed.exit_code == 0, backed.stderr
    copy = Path(json.loads(backed.stdout)["backup"])
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".nightly.db.*"))
    balance_before = cli("balance", "--json").stdout

    damage_zero_bytes(home, tmp_path, before)
    assert cli("send", campaign, "--yes").exit_code == 1
    restored = cli("ledger", "restore", copy, "--yes")
    assert restored.exit_code == 0, restored.stderr
    assert "Restored the ledger from" in restored.stdout
    assert list(home.glob("ledger.db.before-restore-*.bak"))  # the damaged one is kept, never destroyed

    assert cli("ledger", "check").exit_code == 0
    audit = cli("credits", "audit")
    assert (audit.exit_code, audit.stdout.strip()) == (0, "consistent")
    assert cli("balance", "--json").stdout == balance_before
    again = cli("send", campaign, "--yes")
    assert again.exit_code == 0, again.stderr
    assert outbox_lines(home) == 5  # finished: nothing sent twice


def test_restoring_an_older_backup_needs_adopt_before_writes(sent, cli, home, tmp_path):
    campaign, before = sent
    restored = cli("ledger", "restore", before, "--yes")
    assert restored.exit_code == 0
    assert "it is behind what this home has seen" in restored.stdout
    assert "ledger adopt --yes" in restored.stderr
    check = cli("ledger", "check", "--json")
    assert check.exit_code == 1
    assert json.loads(check.stdout)["identity"][0].startswith("it is behind what this home has seen")
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 1
    assert cli("ledger", "adopt", "--yes").exit_code == 0
    assert cli("ledger", "check").exit_code == 0


def test_restore_is_refused_while_a_run_holds_a_campaign_lock(sent, cli, home, tmp_path):
    campaign, before = sent
    with CampaignLock.acquire(home, "spring"):
        result = cli("ledger", "restore", before, "--yes")
    assert result.exit_code == 5
    assert "a run holds locks/spring.lock" in result.stderr and "Nothing was changed." in result.stderr
    assert cli("ledger", "check").exit_code == 0  # the ledger is the same


def test_restore_refuses_a_file_that_is_not_a_ledger(sent, cli, home, tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 300)
    result = cli("ledger", "restore", junk, "--yes")
    assert result.exit_code == 2
    assert "not a usable bulksend ledger (file is not a database)" in result.stderr
    assert cli("ledger", "check").exit_code == 0


def test_backup_never_overwrites_the_live_ledger_and_takes_a_directory(funded, home, tmp_path):
    live = funded("ledger", "backup", home / "ledger.db")
    assert live.exit_code == 2 and "is the live ledger" in live.stderr
    into = funded("ledger", "backup", tmp_path)
    assert into.exit_code == 0
    (written,) = tmp_path.glob("ledger-*.db")
    conn = sqlite3.connect(written)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("SELECT COUNT(*) FROM movements").fetchone() == (1,)
    conn.close()


def test_check_is_a_cron_line_ok_and_fails_on_damage(sent, cli, home, tmp_path):
    ok = cli("ledger", "check")
    assert ok.exit_code == 0 and ok.stdout.startswith("ok: ")
    corrupt_tables(home / "ledger.db", "movements")
    bad = cli("ledger", "check", "--json")
    assert bad.exit_code == 1
    doc = json.loads(bad.stdout)
    assert doc["ok"] is False and doc["integrity"]


def test_a_migration_is_preceded_by_a_backup(home, capsys):
    path = home / "ledger.db"
    SqliteLedger.open(path).close()
    conn = sqlite3.connect(path)  # back to schema 2: no meta table
    conn.executescript(
        "DROP INDEX transmissions_by_e164; ALTER TABLE transmissions DROP COLUMN timezone; "  # schema 4's
        "DROP TABLE IF EXISTS rate_buckets; DROP TABLE pending_receipts; DROP TABLE inbound_messages; "
        "ALTER TABLE transmissions DROP COLUMN report_status; ALTER TABLE transmissions DROP COLUMN reported_at; "
        "DROP TABLE meta; PRAGMA user_version = 2;"
    )
    conn.close()
    with SqliteLedger.open(path) as ledger:
        assert ledger.meta(LEDGER_ID)  # the upgrade gives the ledger its identity
    from bulksend.stores.sqlite import SCHEMA_VERSION

    (saved,) = home.glob(f"ledger.db.pre-v{SCHEMA_VERSION}-*.bak")  # named after the schema it upgrades to
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    conn = sqlite3.connect(saved)
    assert conn.execute("PRAGMA user_version").fetchone() == (2,)
    conn.close()
    assert f"a copy was saved first: {saved}" in capsys.readouterr().err


# ------------------------------------------------------------------------ storage failures (item 2)


def corrupt_tables(path: Path, *tables: str) -> None:
    """Overwrite the root page of each table with garbage, as a bad sector would."""
    conn = sqlite3.connect(path)
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    roots = dict(conn.execute("SELECT name, rootpage FROM sqlite_master"))
    conn.close()
    forget_wal(path.parent)
    with open(path, "r+b") as f:
        for table in tables:
            f.seek((roots[table] - 1) * page)
            f.write(b"\xde\xad" * (page // 2))


DAMAGED = "the ledger is damaged (database disk image is malformed)."


@pytest.mark.parametrize(
    "command",
    [("balance",), ("credits", "history"), ("credits", "audit"), ("campaigns", "list"), ("optout", "list"),
     ("send", "CAMPAIGN", "--yes"), ("credits", "topup", "1000", "--channel", "sms"), ("ledger", "backup", "B")],
)
def test_a_corrupt_page_is_a_clear_exit_1(command, sent, cli, home, tmp_path):
    campaign, _ = sent
    corrupt_tables(home / "ledger.db", "credit_lots", "movements", "transmissions", "optouts", "campaigns")
    args = [str(campaign) if a == "CAMPAIGN" else str(tmp_path / "b.db") if a == "B" else a for a in command]
    result = cli(*args)
    assert result.exit_code == 1
    assert f"Error: {home / 'ledger.db'}: {DAMAGED}" in result.stderr
    assert "bulksend ledger restore FILE" in result.stderr
    assert "bug" not in result.stderr
    assert outbox_lines(home) == 5


@pytest.fixture
def connect_with(monkeypatch):
    """Open every ledger connection with a PRAGMA or URI change, as a full disk or a read-only file would."""
    from bulksend.stores import sqlite as module  # the SQLite store opens every connection

    real = module._connect

    def install(*, pragma: str | None = None, read_only: bool = False):
        def connect(uri, path, **kwargs):
            if read_only:
                uri = uri.replace("mode=rw", "mode=ro")  # what SQLite falls back to on a write-protected file
            conn = real(uri, path, **kwargs)
            if pragma == "full":  # no page beyond the ones the file has: SQLite says "database or disk is full"
                pages = conn.execute("PRAGMA page_count").fetchone()[0]
                conn.execute(f"PRAGMA max_page_count = {pages}")
            return conn

        monkeypatch.setattr(module, "_connect", connect)

    return install


def test_a_full_disk_names_the_real_cause_and_records_nothing(sent, cli, home, tmp_path, connect_with):
    campaign, _ = sent
    history = cli("credits", "history", "--json").stdout
    connect_with(pragma="full")
    big, _ = write_campaign(tmp_path / "big", "big", 300, message="A long enough message {name} " * 3)
    for command in (("send", big, "--yes"), ("credits", "topup", "1000", "--channel", "sms", "--ref", "R" * 9000)):
        result = cli(*command)
        assert result.exit_code == 1, result.stderr
        assert "cannot write the ledger: database or disk is full; the operation was rolled back" in result.stderr
        assert "Free some space on the disk" in result.stderr and "bug" not in result.stderr
    assert outbox_lines(home, "big") == 0
    assert cli("credits", "history", "--json").stdout == history
    assert cli("credits", "audit").exit_code == 0


def test_a_read_only_ledger_reads_and_refuses_writes(sent, cli, home, connect_with):
    connect_with(read_only=True)
    assert cli("balance").exit_code == 0
    result = cli("credits", "topup", "1000", "--channel", "sms")
    assert result.exit_code == 1
    assert f"Error: {home / 'ledger.db'}: cannot write the ledger: attempt to write a readonly database." \
        in result.stderr
    assert "writable by this user" in result.stderr


def test_a_ledger_locked_too_long_is_busy(funded, home, monkeypatch):
    monkeypatch.setattr("bulksend.stores.sqlite.BUSY_TIMEOUT_SECONDS", 0.05)
    other = sqlite3.connect(home / "ledger.db", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        result = funded("credits", "topup", "1000", "--channel", "sms")
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert result.exit_code == 1
    assert "the ledger is busy: database is locked" in result.stderr


def test_the_guard_looks_where_the_locks_are():
    from bulksend import ledger_guard, locks

    assert ledger_guard.LOCK_DIR == locks.LOCK_DIR


def test_a_left_over_wal_without_its_ledger_is_not_replayed_onto_a_new_one(cli, home):
    Path(f"{home / 'ledger.db'}-wal").write_bytes(b"\x37\x7f\x06\x82" + bytes(28))
    result = cli("credits", "topup", "1000", "--channel", "sms")
    assert result.exit_code == 1
    assert "ledger.db is missing, but this home shows earlier work: a left-over ledger.db-wal file" in result.stderr
    assert not (home / "ledger.db").exists()


@pytest.mark.parametrize("first", [["--dry-run"], ["--yes"]])
def test_a_new_homes_first_command_may_be_a_send(first, cli, home, tmp_path):
    # The send takes its campaign lock before it opens the ledger: the lock file it has just made is no
    # sign of earlier work (it once made a new home refuse every writing command, exit 1, for good).
    (tmp_path / "new.csv").write_text("phone,consent\n+447400123456,yes\n")
    refused = cli("send", tmp_path / "new.csv", "-m", "Hi", *first)
    assert refused.exit_code == 3, refused.stderr  # no credits yet: the real reason, not "a ledger existed here"
    assert "earlier work" not in refused.stderr
    assert cli("credits", "topup", "1000", "--channel", "sms").exit_code == 0
    assert cli("send", tmp_path / "new.csv", "-m", "Hi", "--yes").exit_code == 0
    assert cli("ledger", "check").exit_code == 0


def test_a_lock_file_left_by_an_earlier_run_still_counts_without_a_ledger(cli, home, tmp_path):
    (tmp_path / "new.csv").write_text("phone,consent\n+447400123456,yes\n")
    CampaignLock.acquire(home, "new").release()  # an earlier run of this very campaign
    refused = cli("send", tmp_path / "new.csv", "-m", "Hi", "--yes")
    assert refused.exit_code == 1 and "1 campaign lock file (locks/new.lock)" in refused.stderr
    assert not (home / "ledger.db").exists()
