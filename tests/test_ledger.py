"""What only the SQLite store does: the file (mode, WAL, FULL sync), user_version migrations, reads that never write.

Every credit rule and transition is in tests/contracts/test_ledger_contract.py, run on every backend.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from datetime import date, datetime
from pathlib import Path

import pytest
import time_machine

from bulksend.config import Config
from bulksend.errors import LedgerError
from bulksend.ledger import (
    SCHEMA_VERSION,
    SqliteLedger,
    open_existing,
    open_ledger,
)

TODAY = datetime(2026, 11, 24, 12, 0)


@pytest.fixture
def clock():
    """Time stands still at noon on 2026-11-24 until a test moves it."""
    with time_machine.travel(TODAY, tick=False) as traveller:
        yield traveller


@pytest.fixture
def ledger(tmp_path: Path, clock) -> SqliteLedger:
    with SqliteLedger.open(tmp_path / "ledger.db") as opened:
        yield opened


def kinds(ledger: SqliteLedger) -> list[tuple[str, int]]:
    return [(m.kind, m.amount) for m in ledger.history()]


# ------------------------------------------------------------------------------ the SQLite file


def test_a_read_computes_an_expiry_without_writing_the_file(ledger, clock):
    ledger.topup("sms", 1000)
    clock.move_to(datetime(2027, 12, 1, 12))
    before = ledger.path.stat().st_size, _wal_size(ledger)
    assert ledger.balance("sms")["sms"].available == 0  # a read: computes the expiry without writing it
    assert (ledger.path.stat().st_size, _wal_size(ledger)) == before
    movements = ledger.history()  # the next write records it, dated on the expiry day
    assert [(m.kind, m.amount, m.on) for m in movements] == [
        ("expiry", 1000, date(2027, 11, 24)),
        ("topup", 1000, date(2026, 11, 24)),
    ]
    assert ledger.lots()[0].remaining == 0
    assert ledger.audit().consistent


def _wal_size(ledger: SqliteLedger) -> int:
    wal = Path(str(ledger.path) + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_the_file_is_owner_only_in_wal_mode_with_full_sync(tmp_path):
    path = tmp_path / "home" / "ledger.db"
    with SqliteLedger.open(path) as ledger:
        ledger.topup("sms", 1000)
        assert ledger._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert ledger._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert ledger._conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
        assert ledger._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        for name in ("ledger.db", "ledger.db-wal", "ledger.db-shm"):
            assert stat.S_IMODE(os.stat(path.parent / name).st_mode) == 0o600, name


def test_reading_never_creates_a_ledger(tmp_path):
    config = Config(home=tmp_path / "nowhere")
    assert open_existing(config) is None
    assert not (tmp_path / "nowhere").exists()
    with open_ledger(config) as ledger:
        assert ledger.balance()["sms"].available == 0
    assert open_existing(config) is not None


def test_a_ledger_from_a_newer_bulksend_is_refused(tmp_path):
    path = tmp_path / "ledger.db"
    SqliteLedger.open(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(LedgerError, match="written by a newer bulksend"):
        SqliteLedger.open(path)


def test_migrations_run_once_and_in_order(tmp_path, monkeypatch):
    from bulksend.stores import sqlite as store_module

    path = tmp_path / "ledger.db"
    SqliteLedger.open(path).close()
    extra = store_module.MIGRATIONS + (("ALTER TABLE campaigns ADD COLUMN sender TEXT",),)
    monkeypatch.setattr(store_module, "MIGRATIONS", extra)
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", len(extra))
    with SqliteLedger.open(path) as upgraded:
        assert upgraded._conn.execute("PRAGMA user_version").fetchone()[0] == len(extra)
    with SqliteLedger.open(path) as again:  # a second open does not re-run the ALTER
        columns = [r[1] for r in again._conn.execute("PRAGMA table_info(campaigns)")]
        assert columns.count("sender") == 1


def test_meta_facts_are_kept_and_replaced(tmp_path):
    ledger = SqliteLedger.open(tmp_path / "ledger.db")
    assert ledger.meta("identity") is None
    ledger.set_meta("identity", "first")
    ledger.set_meta("identity", "second")
    ledger.close()
    again = SqliteLedger.open(tmp_path / "ledger.db")
    assert again.meta("identity") == "second"
