"""`--ledger URL` / BULKSEND_LEDGER_URL / `[ledger] url`, `ledger migrate` and `ledger copy --to`, run in-process.

PostgreSQL tests run when BULKSEND_TEST_POSTGRES names a server; each uses a schema of its own.
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest
import time_machine

from bulksend.ledger import NewTransmission, SqliteLedger
from ledger_backends import Backend


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(datetime(2026, 11, 24, 12, 0), tick=False) as traveller:
        yield traveller


@pytest.fixture
def server():
    """An empty PostgreSQL schema (skipped without BULKSEND_TEST_POSTGRES)."""
    made = Backend("postgresql")
    yield made
    made.drop()


def test_commands_use_the_ledger_the_url_names(cli, home, server, monkeypatch):
    topup = cli("--ledger", server.url, "credits", "topup", "1000", "--channel", "sms")
    assert topup.exit_code == 0, topup.stderr
    assert not (home / "ledger.db").exists()  # nothing went to the file in the home
    monkeypatch.setenv("BULKSEND_LEDGER_URL", server.url)
    result = cli("balance", "--json")
    assert json.loads(result.stdout)["sms"]["available"] == 1000
    monkeypatch.delenv("BULKSEND_LEDGER_URL")
    (home / "config.toml").write_text(f'[ledger]\nurl = "{server.url}"\n')
    assert json.loads(cli("balance", "--json").stdout)["sms"]["available"] == 1000
    assert cli("credits", "audit").stdout == "consistent\n"


def test_reading_commands_create_nothing_on_an_empty_server(cli, server):
    assert json.loads(cli("--ledger", server.url, "balance", "--json").stdout)["sms"]["available"] == 0
    with server.open() as ledger:  # the balance above did not create the schema; this open does
        assert ledger.store.migrate() == 0


def test_migrate_runs_once(cli, server):
    from bulksend.stores.postgres import migrations as pg_migrations

    first = cli("--ledger", server.url, "ledger", "migrate")
    assert first.exit_code == 0, first.stderr
    from bulksend.stores.postgres import migrations

    latest = len(migrations())  # 0001_ledger.sql, 0002_schedule.sql, …
    assert first.stdout.startswith("Migrated the ledger at postgresql://")
    assert f"to schema {latest} ({latest} migrations)" in first.stdout
    again = cli("--ledger", server.url, "ledger", "migrate", "--json")
    assert json.loads(again.stdout)["migrations_run"] == 0


def test_migrate_on_the_sqlite_file(cli, home):
    assert cli("ledger", "migrate").stdout.startswith(f"Migrated the ledger at {home / 'ledger.db'} to schema ")
    assert "is up to date" in cli("ledger", "migrate").stdout


def test_copy_moves_a_sqlite_ledger_to_postgresql_audit_clean(cli, home, server, clock):
    with SqliteLedger.open(home / "ledger.db") as ledger:
        ledger.topup("sms", 1000, ref="INV-1")
        ledger.topup("whatsapp", 5000)
        c = ledger.open_campaign("spring", "sms", "outbox", "fp")
        ledger.add_transmissions(c.id, [NewTransmission(f"+4479111{i:05d}", "hi", 1, 2) for i in range(5)])
        ledger.hold(c.id, "sms", 10)
        rows = ledger.claim(c.id, 3)
        for row in rows:
            ledger.mark_sent(row.id, f"SM{row.id}")
        ledger.refund(rows[0].id)
        ledger.add_optouts(["+447911123456"], "STOP", "provider")
        ledger.set_meta("timezone", "Europe/London")
        before = ledger.balance()
    result = cli("ledger", "copy", "--to", server.url, "--json")
    assert result.exit_code == 0, result.stderr
    copied = json.loads(result.stdout)
    assert copied["rows"]["transmissions"] == 5 and copied["rows"]["credit_lots"] == 2 and copied["consistent"]
    assert "password" not in result.stdout
    with server.open() as target:
        assert target.balance() == before
        assert target.audit().consistent
        assert target.suppressed() == {"+447911123456"}
        assert target.meta("timezone") == "Europe/London"
        assert target.counts(1) == {"sent": 3, "queued": 2}
        # ids carried over, and new rows continue after them
        assert target.topup("sms", 1000).lot.id == 3
    assert cli("--ledger", server.url, "credits", "audit").stdout == "consistent\n"
    again = cli("ledger", "copy", "--to", server.url)
    assert again.exit_code == 1
    assert "already holds credits, campaigns or opt-outs; nothing was copied" in again.stderr


def test_copy_without_a_ledger_is_an_input_error(cli, tmp_path):
    result = cli("ledger", "copy", "--to", f"sqlite:///{tmp_path / 'other.db'}")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: there is no ledger to copy in this home.")


def test_copy_between_sqlite_files_keeps_everything(cli, home, tmp_path):
    cli("credits", "topup", "1000", "--channel", "sms")
    result = cli("ledger", "copy", "--to", f"sqlite:///{tmp_path / 'other.db'}")
    assert result.exit_code == 0, result.stderr
    with SqliteLedger.open(tmp_path / "other.db") as other:
        assert other.balance("sms")["sms"].available == 1000 and other.audit().consistent


def test_a_password_never_appears_in_errors(cli):
    url = "postgresql://bulk:s3cr3t-pw@127.0.0.1:1/test?connect_timeout=2"
    result = cli("--ledger", url, "balance")
    assert result.exit_code == 1
    assert "s3cr3t-pw" not in result.stderr + result.stdout
    assert result.stderr.startswith("Error: cannot reach the ledger at postgresql://bulk:***@127.0.0.1:1/test")


def test_a_password_in_config_toml_is_refused(cli, home):
    (home / "config.toml").write_text('[ledger]\nurl = "postgresql://bulk:s3cr3t@db/bulk"\n')
    result = cli("balance")
    assert result.exit_code == 6
    assert "s3cr3t" not in result.stderr
    assert "contains a password" in result.stderr and "PGPASSWORD or ~/.pgpass" in result.stderr


def test_an_unknown_url_scheme_is_refused(cli):
    result = cli("--ledger", "mysql://root:pw@db/bulk", "balance")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: the ledger URL mysql://root:***@db/bulk is neither postgresql://")


def test_the_engine_journal_lives_in_the_home_for_a_server_ledger(server, tmp_path, clock):
    from bulksend.engine import _ledger_home

    with server.open() as ledger:
        assert ledger.path is None and _ledger_home(ledger) == server._dir


# --------------------------------------------- what the reliability issue built, on a server (issue 10 item 7)


def test_a_copied_ledger_keeps_its_identity_so_the_home_can_switch_to_it(cli, home, server):
    assert cli("credits", "topup", "1000", "--channel", "sms").exit_code == 0
    with SqliteLedger.open(home / "ledger.db") as ledger:
        ledger_id = ledger.meta("ledger_id")
    assert cli("ledger", "copy", "--to", server.url).exit_code == 0
    topup = cli("--ledger", server.url, "credits", "topup", "1500", "--channel", "sms")
    assert topup.exit_code == 0, topup.stderr
    with server.open() as target:
        assert target.meta("ledger_id") == ledger_id
    record = json.loads((home / "ledger.id").read_text())
    assert record["ledger_id"] == ledger_id and record["movements"] == 2  # the mark follows the server's commits
    check = cli("--ledger", server.url, "ledger", "check", "--json")
    assert check.exit_code == 0, check.stdout + check.stderr
    report = json.loads(check.stdout)
    assert report["ok"] and report["ledger"].startswith("postgresql://") and report["high_water"]["movements"] == 2


def test_another_servers_ledger_is_refused_by_writing_commands(cli, home, server):
    assert cli("credits", "topup", "1000", "--channel", "sms").exit_code == 0  # the home's own ledger: a file
    result = cli("--ledger", server.url, "credits", "topup", "1500", "--channel", "sms")
    assert result.exit_code == 1
    assert "is missing, but this home shows earlier work" in result.stderr and "bug" not in result.stderr
    with server.open() as other:  # a perfectly good ledger, just not this home's
        other.topup("sms", 10)
    result = cli("--ledger", server.url, "credits", "topup", "1500", "--channel", "sms")
    assert result.exit_code == 1
    assert "is not the ledger this home has been using" in result.stderr
    assert "(the ledger was replaced)" in result.stderr
    check = cli("--ledger", server.url, "ledger", "check")
    assert check.exit_code == 1
    with server.open() as other:
        assert other.balance("sms")["sms"].total == 10  # nothing was written


def test_backup_and_restore_of_a_server_ledger_point_at_the_servers_tools(cli, home, server, tmp_path):
    assert cli("--ledger", server.url, "credits", "topup", "1000", "--channel", "sms").exit_code == 0
    result = cli("--ledger", server.url, "ledger", "backup", tmp_path / "b.db")
    assert result.exit_code == 2
    assert "is on a PostgreSQL server: back it up with the server's own tools" in result.stderr
    assert "pg_dump" in result.stderr and not (tmp_path / "b.db").exists()
    (tmp_path / "b.db").write_bytes(b"x")
    result = cli("--ledger", server.url, "ledger", "restore", tmp_path / "b.db", "--yes")
    assert result.exit_code == 2
    assert "restore it with the server's own tools" in result.stderr and "pg_restore" in result.stderr


@pytest.mark.parametrize(
    "command",
    [("balance",), ("credits", "topup", "1000", "--channel", "sms"), ("ledger", "check"), ("ledger", "migrate"),
     ("ledger", "adopt", "--yes")],
)
def test_a_server_that_is_down_is_a_clear_error(cli, command):
    result = cli("--ledger", "postgresql://bulk@127.0.0.1:1/test?connect_timeout=2", *command)
    assert result.exit_code == 1, result.stdout + result.stderr
    assert result.stderr.startswith("Error: cannot reach the ledger at postgresql://bulk@127.0.0.1:1/test")
    assert "Check that the server is up" in result.stderr and "bug" not in result.stderr


def test_hints_repeat_the_ledger_flag_but_never_a_password(cli, tmp_path):
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    result = cli("--ledger", url, "credits", "history")
    assert f"bulksend --ledger {url} credits topup" in result.stdout + result.stderr
    secret = "postgresql://bulk:s3cr3t@127.0.0.1:1/test?connect_timeout=2"
    from bulksend.cli import AppState

    assert AppState(ledger_option=secret).invocation.ledger is None
    assert AppState(ledger_option=url).invocation.command("balance") == f"bulksend --ledger {url} balance"


def test_migrate_never_starts_a_new_ledger_over_earlier_work(cli, home):
    assert cli("credits", "topup", "1000", "--channel", "sms").exit_code == 0
    (home / "ledger.db").unlink()
    result = cli("ledger", "migrate")
    assert result.exit_code == 1
    assert "ledger.db is missing, but this home shows earlier work: the record ledger.id" in result.stderr
    assert not (home / "ledger.db").exists()


def test_a_postgres_ledger_from_before_schedules_is_upgraded_and_keeps_its_rows(cli, server):
    """0002_schedule.sql (SQLite's schema 4): transmissions.timezone and the index for frequency caps."""
    with server.open() as ledger:
        c = ledger.open_campaign("spring", "sms", "outbox", "fp")
        ledger.add_transmissions(c.id, [NewTransmission("+447400123456", "hi", 1, 1)])
    server.raw(  # back to 0001 only
        "DROP INDEX transmissions_by_e164", "ALTER TABLE transmissions DROP COLUMN timezone",
        "DROP TABLE rate_buckets", "DROP TABLE pending_receipts", "DROP TABLE inbound_messages",
        "ALTER TABLE transmissions DROP COLUMN report_status", "ALTER TABLE transmissions DROP COLUMN reported_at",
        "DELETE FROM bulksend_schema WHERE version >= 2",
    )
    result = cli("--ledger", server.url, "ledger", "migrate")
    from bulksend.stores.postgres import migrations

    latest = len(migrations())
    assert f"to schema {latest} ({latest - 1} migrations)" in result.stdout, result.stdout
    with server.open() as ledger:
        (row,) = ledger.transmissions(c.id)
        assert (row.e164, row.timezone) == ("+447400123456", None)
