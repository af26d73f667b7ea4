"""The embedded store: one SQLite file in WAL mode with ``synchronous=FULL``, every write under BEGIN IMMEDIATE."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uuid
from datetime import datetime, timezone

from bulksend import calendar
from bulksend.errors import InputError, LedgerError
from bulksend.sqlite_errors import connect as _connect
from bulksend.stores.base import LEDGER_ID, TABLES, Store, copy_queries, load_queries

BUSY_TIMEOUT_SECONDS = 30.0

# MIGRATIONS[i] takes the schema from user_version i to i + 1. Append, never edit a shipped entry.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE credit_lots (
            id           INTEGER PRIMARY KEY,
            channel      TEXT    NOT NULL CHECK (channel IN ('sms', 'whatsapp')),
            amount       INTEGER NOT NULL CHECK (amount > 0),
            remaining    INTEGER NOT NULL CHECK (remaining >= 0),
            expired      INTEGER NOT NULL DEFAULT 0 CHECK (expired >= 0),
            purchased_on TEXT    NOT NULL,
            expires_on   TEXT    NOT NULL,
            ref          TEXT    UNIQUE,
            recorded_at  TEXT    NOT NULL
        )""",
        "CREATE INDEX credit_lots_spendable ON credit_lots (channel, expires_on) WHERE remaining > 0",
        """CREATE TABLE campaigns (
            id          INTEGER PRIMARY KEY,
            name        TEXT NOT NULL UNIQUE,
            channel     TEXT NOT NULL CHECK (channel IN ('sms', 'whatsapp')),
            provider    TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            attestation TEXT,
            state       TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'done', 'cancelled')),
            created_at  TEXT NOT NULL,
            updated_at  TEXT NOT NULL
        )""",
        """CREATE TABLE holds (
            campaign_id INTEGER PRIMARY KEY REFERENCES campaigns (id),
            channel     TEXT    NOT NULL CHECK (channel IN ('sms', 'whatsapp')),
            amount      INTEGER NOT NULL CHECK (amount >= 0),
            updated_at  TEXT    NOT NULL
        )""",
        """CREATE TABLE transmissions (
            id          INTEGER PRIMARY KEY,
            campaign_id INTEGER NOT NULL REFERENCES campaigns (id),
            e164        TEXT    NOT NULL,
            state       TEXT    NOT NULL DEFAULT 'queued' CHECK (state IN
                            ('queued', 'sending', 'sent', 'delivered', 'undelivered', 'failed', 'unknown')),
            attempts    INTEGER NOT NULL DEFAULT 0,
            not_before  TEXT,
            message     TEXT    NOT NULL,
            units       INTEGER NOT NULL CHECK (units >= 0),
            cost        INTEGER NOT NULL CHECK (cost >= 0),
            row_number  INTEGER,
            country     TEXT,
            provider_id TEXT,
            error_code  TEXT,
            error_text  TEXT,
            debited     INTEGER NOT NULL DEFAULT 0 CHECK (debited >= 0),
            refunded    INTEGER NOT NULL DEFAULT 0 CHECK (refunded >= 0),
            created_at  TEXT    NOT NULL,
            updated_at  TEXT    NOT NULL,
            sent_at     TEXT,
            UNIQUE (campaign_id, e164)
        )""",
        "CREATE INDEX transmissions_by_state ON transmissions (campaign_id, state)",
        "CREATE INDEX transmissions_by_provider_id ON transmissions (provider_id) WHERE provider_id IS NOT NULL",
        """CREATE TABLE movements (
            id              INTEGER PRIMARY KEY,
            kind            TEXT    NOT NULL CHECK (kind IN
                                ('topup', 'debit', 'refund', 'hold', 'release', 'expiry', 'reinstate')),
            channel         TEXT    NOT NULL CHECK (channel IN ('sms', 'whatsapp')),
            amount          INTEGER NOT NULL CHECK (amount > 0),
            on_date         TEXT    NOT NULL,
            recorded_at     TEXT    NOT NULL,
            lot_id          INTEGER REFERENCES credit_lots (id),
            campaign_id     INTEGER REFERENCES campaigns (id),
            transmission_id INTEGER REFERENCES transmissions (id),
            from_hold       INTEGER NOT NULL DEFAULT 0 CHECK (from_hold >= 0 AND from_hold <= amount),
            ref             TEXT,
            note            TEXT
        )""",
        "CREATE INDEX movements_by_date ON movements (on_date, id)",
        "CREATE INDEX movements_by_transmission ON movements (transmission_id) WHERE transmission_id IS NOT NULL",
        "CREATE INDEX movements_by_campaign ON movements (campaign_id) WHERE campaign_id IS NOT NULL",
        """CREATE TABLE optouts (
            e164     TEXT PRIMARY KEY,
            added_at TEXT NOT NULL,
            reason   TEXT,
            source   TEXT NOT NULL CHECK (source IN ('manual', 'import', 'provider'))
        ) WITHOUT ROWID""",
    ),
    (
        # What `campaigns resume` needs to run a campaign again without its files (JSON), and a row's
        # merge fields for providers that fill their own templates (JSON, WhatsApp only).
        "ALTER TABLE campaigns ADD COLUMN settings TEXT",
        "ALTER TABLE transmissions ADD COLUMN params TEXT",
    ),
    (
        # Facts about the ledger itself (its identity, its calendar's time zone), one value per key.
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    ),
    (
        # A row's own time zone (its timezone column) for quiet hours at claim time, and recent sends to a
        # number across campaigns for frequency caps (bulksend/schedule.py). PostgreSQL: 0002_schedule.sql.
        "ALTER TABLE transmissions ADD COLUMN timezone TEXT",
        "CREATE INDEX transmissions_by_e164 ON transmissions (e164, sent_at)",
    ),
    (
        # One rate per provider account (bulksend/fleet.py): the next free send slot of each profile, shared
        # by every run, process and machine that sends through it. IF NOT EXISTS: harmless to run twice.
        """CREATE TABLE IF NOT EXISTS rate_buckets (
            profile    TEXT PRIMARY KEY,
            next_at    REAL NOT NULL,
            updated_at TEXT NOT NULL
        ) WITHOUT ROWID""",
    ),
    (
        # Delivery receipts (docs/webhooks.md): the provider's last status word and the time of the final report.
        "ALTER TABLE transmissions ADD COLUMN report_status TEXT",
        "ALTER TABLE transmissions ADD COLUMN reported_at TEXT",
        # Receipts for rows the ledger does not know yet, or that are still being sent: applied later.
        """CREATE TABLE pending_receipts (
            id              INTEGER PRIMARY KEY,
            profile         TEXT    NOT NULL,
            state           TEXT    NOT NULL CHECK (state IN ('accepted', 'delivered', 'undelivered')),
            provider_id     TEXT,
            transmission_id INTEGER,
            status          TEXT,
            code            TEXT,
            text            TEXT,
            fault           TEXT,
            opt_out         INTEGER NOT NULL DEFAULT 0,
            reported_at     TEXT,
            exact_id        INTEGER NOT NULL DEFAULT 1,
            received_at     TEXT    NOT NULL,
            tries           INTEGER NOT NULL DEFAULT 0
        )""",
        # Replies: every inbound message, opt-out keywords included (keyword set), for the marketer to read.
        """CREATE TABLE inbound_messages (
            id          INTEGER PRIMARY KEY,
            profile     TEXT    NOT NULL,
            channel     TEXT,
            sender      TEXT    NOT NULL,
            text        TEXT    NOT NULL,
            provider_id TEXT,
            keyword     TEXT,
            opt_out     INTEGER NOT NULL DEFAULT 0,
            sent_at     TEXT,
            received_at TEXT    NOT NULL,
            UNIQUE (profile, provider_id)
        )""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def _sqlite_text(sql: str) -> str:
    """``x = ANY(:list)`` (the shared spelling) as SQLite says it: a JSON array parameter read by json_each."""
    return re.sub(r"=\s*ANY\(:(\w+)\)", r"IN (SELECT value FROM json_each(:\1))", sql)


QUERIES = {name: _sqlite_text(sql) for name, sql in {
    **copy_queries(), **load_queries("common.sql", "sqlite.sql"),
}.items()}


def _params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: json.dumps(list(v)) if isinstance(v, (list, tuple, set, frozenset)) else v for k, v in params.items()}


_POSITIONAL: dict[tuple[str, tuple[str, ...]], str] = {}


def _positional(query: str, names: tuple[str, ...]) -> str:
    """The named query with each ``:name`` as ``?N``, N its place in ``names`` (SQLite binds a tuple by place)."""
    sql = _POSITIONAL.get((query, names))
    if sql is None:
        def place(match: re.Match) -> str:
            if match.group(1) not in names:
                raise KeyError(f"query {query!r} takes :{match.group(1)}, which {names} does not name")
            return f"?{names.index(match.group(1)) + 1}"

        sql = _POSITIONAL[(query, names)] = re.sub(r"(?<![:\w]):(\w+)", place, QUERIES[query])
    return sql


class SqliteStore(Store):
    """One SQLite file. ``open`` creates it owner-only (0600) and migrates it (``PRAGMA user_version``)."""

    dialect = "sqlite"

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self.connection = connection
        self.path = path
        self.location = str(path)

    @classmethod
    def open(
        cls, path: Path, *, create: bool = True, migrate: bool = True, zone: str | None = None
    ) -> "SqliteStore | None":
        """Open the file (created owner-only in an owner-only home when ``create``) and migrate it.

        ``zone`` is the calendar's time zone a new ledger records (``[credits] timezone``, else the machine's).
        """
        path = Path(path)
        if create:
            from bulksend.private import private_dir, private_file

            private_dir(path.parent)  # the home: owner-only, like everything in it
            private_file(path)
            try:  # owner-only from the first byte; SQLite gives -wal and -shm the same mode
                os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                pass
        elif not path.exists():
            return None
        conn = None
        try:
            conn = _connect(
                path.resolve().as_uri() + "?mode=rw",
                path,
                timeout=BUSY_TIMEOUT_SECONDS,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                _switch_to_wal(conn)
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            store = cls(conn, path)
            if migrate:
                store.migrate(zone=zone)
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            raise LedgerError(f"{path}: cannot open the ledger ({exc}).") from None
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        return store

    def migrate(self, *, zone: str | None = None) -> int:
        """Bring the schema to this code's version (a backup first, when a ledger is upgraded); returns how many
        migrations ran. The ledger gets its identity (``meta.ledger_id``) with the meta table, and a new ledger
        records its calendar's zone (``zone``, else the machine's) from the start."""
        migrations = MIGRATIONS
        version = self.schema_version()
        if version == len(migrations):
            return 0
        if version > len(migrations):
            raise LedgerError(
                f"{self.path} was written by a newer bulksend (schema {version}, this one knows {len(migrations)}).",
                hint="Upgrade bulksend.",
            )
        if version > 0:
            self._backup_before_migration(version)
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            version = self.schema_version()  # another process may have won
            created = version == 0
            for statements in migrations[version:]:
                for statement in statements:
                    self.connection.execute(statement)
            if version < 3 <= len(migrations):  # the meta table is new: the ledger gets its identity with it
                self.connection.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (LEDGER_ID, str(uuid.uuid4()))
                )
            if created:  # a new ledger records its calendar's zone from the start
                self.connection.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
                    (calendar.ZONE_KEY, calendar.new_ledger_zone(zone)),
                )
            self.connection.execute(f"PRAGMA user_version = {len(migrations)}")
        except BaseException:
            if self.connection.in_transaction:
                self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")
        return len(migrations) - version

    def schema_version(self) -> int:
        return self.connection.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        self.connection.close()

    # -- transactions ------------------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        return self.connection.in_transaction

    @contextmanager
    def write(self) -> Iterator[None]:
        try:
            self.connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise LedgerError(f"{self.path}: the ledger is busy ({exc}).", hint="Try again in a moment.") from None
        try:
            yield
        except BaseException:
            if self.connection.in_transaction:
                self.connection.execute("ROLLBACK")
            raise
        try:
            self.connection.execute("COMMIT")
        except BaseException:
            if self.connection.in_transaction:
                self.connection.execute("ROLLBACK")
            raise

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        self.connection.execute("SAVEPOINT op")
        try:
            yield
        except BaseException:
            self.connection.execute("ROLLBACK TO op")
            self.connection.execute("RELEASE op")
            raise
        self.connection.execute("RELEASE op")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        if self.connection.in_transaction:
            yield
            return
        self.connection.execute("BEGIN")  # deferred: a WAL reader never blocks a writer
        try:
            yield
        finally:
            self.connection.execute("COMMIT")

    def lock_pool(self, channel: str) -> None:
        """Nothing to do: BEGIN IMMEDIATE already made this the only writer of the whole file."""

    # -- named queries -----------------------------------------------------------------------------

    def execute(self, query: str, **params: Any) -> int:
        return self.connection.execute(QUERIES[query], _params(params)).rowcount

    def one(self, query: str, **params: Any) -> tuple | None:
        return self.connection.execute(QUERIES[query], _params(params)).fetchone()

    def all(self, query: str, **params: Any) -> list[tuple]:
        return self.connection.execute(QUERIES[query], _params(params)).fetchall()

    def many(self, query: str, rows: Iterable[dict[str, Any]]) -> int:
        before = self.connection.total_changes
        self.connection.executemany(QUERIES[query], (_params(r) for r in rows))
        return self.connection.total_changes - before

    def many_rows(self, query: str, names: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        before = self.connection.total_changes
        self.connection.executemany(_positional(query, tuple(names)), rows)
        return self.connection.total_changes - before

    def high_water(self) -> tuple[int, int, int]:
        return self.connection.execute(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM campaigns), (SELECT COALESCE(MAX(id), 0) FROM transmissions), "
            "(SELECT COALESCE(MAX(id), 0) FROM movements)"
        ).fetchone()

    def integrity(self) -> list[str]:
        problems = [r[0] for r in self.connection.execute("PRAGMA integrity_check(20)")]
        problems = [] if problems == ["ok"] else problems
        problems += [
            f"foreign key: {table} row {rowid} names a missing {parent}"
            for table, rowid, parent, _ in self.connection.execute("PRAGMA foreign_key_check").fetchmany(20)
        ]
        return problems

    def integrity_problems(self) -> list[str]:
        check = [r[0] for r in self.connection.execute("PRAGMA quick_check")]
        return [] if check == ["ok"] else [f"database integrity: {line}" for line in check[:10]]

    def import_rows(self, table: str, rows: Sequence[tuple]) -> int:
        columns = TABLES[table]
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        before = self.connection.total_changes
        self.connection.executemany(sql, ([str(v) if hasattr(v, "isoformat") else v for v in r] for r in rows))
        return self.connection.total_changes - before

    # -- the file itself: probe, backup, install (see docs/ledger.md, "Backup and recovery") -------

    @classmethod
    def probe(cls, path: Path) -> str:
        """``missing``, ``empty`` (0 bytes: SQLite would take it for a new ledger) or ``present``."""
        try:
            size = Path(path).stat().st_size
        except FileNotFoundError:
            return "missing"
        return "empty" if size == 0 else "present"

    def backup(self, target: Path) -> None:
        """A consistent copy of the whole file at ``target`` (owner-only, atomically), while others write."""
        target = Path(target)
        live = self.path.resolve()
        if target.resolve() in (live, live.with_name(live.name + "-wal"), live.with_name(live.name + "-shm")):
            raise InputError(f"{target} is the live ledger: write the backup to another file.")
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        except OSError as exc:
            raise InputError(f"{target}: cannot write the backup there ({exc.strerror}).") from None
        try:
            dest = sqlite3.connect(tmp, isolation_level=None)
            try:
                self.connection.backup(dest)  # one step: a consistent snapshot even while others write
                dest.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, readable without a -wal
            finally:
                dest.close()
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
        except sqlite3.Error as exc:
            tmp.unlink(missing_ok=True)
            raise LedgerError(f"{target}: cannot write the backup: {exc}; no backup was written.") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)

    def _backup_before_migration(self, version: int) -> None:
        latest = len(MIGRATIONS)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        target = self.path.with_name(f"{self.path.name}.pre-v{latest}-{stamp}.bak")
        try:
            self.backup(target)
        except (InputError, LedgerError) as exc:
            raise LedgerError(
                f"{self.path}: the ledger needs an upgrade (schema {version} to {latest}) and a backup is "
                f"taken first, but it failed: {exc.message}",
                hint="Free some space or fix the permissions next to the ledger, then run the command again.",
            ) from None
        from bulksend import output

        output.note(f"Upgrading the ledger from schema {version} to {latest}; a copy was saved first: {target}")

    @classmethod
    def install(cls, path: Path, source: Path, aside: Path) -> None:
        """Make a copy of the ledger file ``source`` the ledger at ``path``; the current one (with its -wal
        and -shm) is renamed to ``aside``. Refuses a ``source`` that is not a sound bulksend ledger.
        Call only while nothing uses the ledger."""
        path, source = Path(path), Path(source)
        tmp = path.with_name(f".{path.name}.restore.{os.getpid()}.tmp")
        try:
            with open(source, "rb") as src, open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            where = source if not source.exists() or exc.filename == str(source) else tmp
            raise InputError(f"{where}: cannot copy the backup ({exc.strerror}); the ledger was not changed.") from None
        try:
            problem = _check_ledger_file(tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if problem:
            tmp.unlink(missing_ok=True)
            raise InputError(f"{source}: not a usable bulksend ledger ({problem}); the ledger was not changed.")
        for suffix in ("", "-wal", "-shm"):  # the WAL database moves as a whole: aside + "-wal" is its log
            try:
                os.replace(f"{path}{suffix}", f"{aside}{suffix}")
            except FileNotFoundError:
                pass
        os.replace(tmp, path)
        _fsync_dir(path.parent)


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    """``PRAGMA journal_mode = WAL`` on a new ledger, waiting for another process that opens it at the same moment.

    SQLite takes the exclusive lock this needs without calling the busy handler, so two processes creating one
    ledger at once (two cron lines) would see "database is locked" at once; this waits as any write does."""
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except LedgerError as exc:
            code = getattr(exc.__cause__, "sqlite_errorcode", 0) & 0xFF
            if code != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        time.sleep(0.01)


def _check_ledger_file(path: Path) -> str | None:
    """Why the SQLite file at ``path`` is not a sound bulksend ledger, or None."""
    try:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            check = [r[0] for r in conn.execute("PRAGMA integrity_check(5)")]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            conn.execute("PRAGMA journal_mode = DELETE")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return str(exc)
    if check != ["ok"]:
        return "; ".join(check)
    if not 1 <= version <= SCHEMA_VERSION or not {"campaigns", "transmissions", "movements"} <= tables:
        return f"schema version {version}, tables {', '.join(sorted(tables)) or 'none'}"
    return None


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
