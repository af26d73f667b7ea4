"""The shared store: a PostgreSQL database that several senders use at once (psycopg 3).

Writes run in READ COMMITTED transactions; the rules lock what they decide on (the channel's pool row,
a transmission row, a hold row) before they read it, so concurrent holds, debits and refunds queue on
those rows and never overspend nor lose an update. Migrations are numbered files in
``sql/postgres/``, recorded in ``bulksend_schema`` and applied under a transaction-scoped advisory lock,
so ten senders starting in the same second migrate once. Every message names the server by its URL
with the password scrubbed; libpq reads ``PGPASSWORD`` and ``~/.pgpass`` itself.

When the server fails (docs/ledger.md, "When the server fails"): a connection found dead when a
transaction or a lone read begins is replaced once and the statement runs on the new one (nothing had
started); a connection lost inside a transaction is never replaced, because the server rolled that
transaction back: the operation stops with a LedgerError saying so. A read-only server (a replica) and
a full disk (SQLSTATE class 53) are LedgerErrors that name the cause; every one exits 1.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any, NoReturn

from pathlib import Path

from bulksend.errors import ConfigError, InputError, LedgerError
from bulksend.stores.base import LEDGER_ID, TABLES, Store, copy_queries, load_queries, scrub_url

CONNECT_TIMEOUT_SECONDS = 10
#: Tables whose ids come from an identity column (their sequence follows copied ids).
IDENTITY_TABLES = ("credit_lots", "campaigns", "transmissions", "movements", "pending_receipts", "inbound_messages")


def _pg_text(sql: str) -> str:
    """``:name`` parameters as psycopg's ``%(name)s`` (a literal ``%`` doubled first)."""
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql.replace("%", "%%"))


QUERIES = {name: _pg_text(sql) for name, sql in {
    **copy_queries(), **load_queries("common.sql", "postgres.sql"),
}.items()}


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every migration file, in order."""
    folder = resources.files("bulksend.stores") / "sql" / "postgres"
    found = []
    for entry in folder.iterdir():
        match = re.fullmatch(r"(\d{4})_\w+\.sql", entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def _psycopg():
    try:
        import psycopg
    except ImportError:
        raise ConfigError(
            "the ledger URL names a PostgreSQL server, but psycopg is not installed.",
            hint="Install it with: pip install 'bulksend[postgres]'",
        ) from None
    return psycopg


class PostgresStore(Store):
    """One PostgreSQL database (and the schema its ``search_path`` names), over one connection."""

    dialect = "postgresql"
    leases = True

    def __init__(self, connection: Any, url: str) -> None:
        self.connection = connection
        self.url = url
        self.location = scrub_url(url)
        self._psycopg = _psycopg()
        #: True from a BEGIN of ours until its COMMIT or ROLLBACK: a connection lost then is never replaced.
        self._open = False

    # -- opening -----------------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, create: bool = True, zone: str | None = None) -> "PostgresStore | None":
        """Connect and migrate; with ``create=False``, None when the database holds no ledger yet.

        ``zone`` is the calendar's time zone a new ledger records (``[credits] timezone``, else the machine's).
        """
        store = cls.connect(url)
        try:
            if not create and store.schema_version() == 0:
                store.close()
                return None
            store.migrate(zone=zone)
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def connect(cls, url: str) -> "PostgresStore":
        """A connection to the server, nothing read or written yet."""
        return cls(_connection(url), url)

    def schema_version(self) -> int:
        if self._run("SELECT to_regclass('bulksend_schema')", {}).fetchone()[0] is None:
            return 0
        return self._run(QUERIES["schema_version"], {}).fetchone()[0]

    @classmethod
    def probe(cls, url: str) -> str:
        """``present`` when the database holds a ledger, else ``missing`` (connection errors raise LedgerError)."""
        store = cls.connect(url)
        try:
            return "present" if store.schema_version() > 0 else "missing"
        finally:
            store.close()

    def migrate(self, *, zone: str | None = None) -> int:
        """Apply the migrations this database lacks, once, however many senders start together.

        A new ledger gets its identity (``meta.ledger_id``) and records its calendar's zone in the same
        transaction."""
        files = migrations()
        latest = files[-1][0]
        version = self.schema_version()
        if version == latest:
            return 0
        if version > latest:
            raise LedgerError(
                f"the ledger at {self.location} was written by a newer bulksend "
                f"(schema {version}, this one knows {latest}).",
                hint="Upgrade bulksend.",
            )
        applied = 0
        with self.write():
            # Transaction-scoped: released at COMMIT or ROLLBACK, even if this process dies.
            self._run("SELECT pg_advisory_xact_lock(hashtext('bulksend.ledger.migrate:' || current_schema()))", {})
            self._run(
                "CREATE TABLE IF NOT EXISTS bulksend_schema (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
                {},
            )
            version = self._run(QUERIES["schema_version"], {}).fetchone()[0]  # another sender may have won
            for number, name, sql in files:
                if number > version:
                    self._run(sql, None)
                    self._run("INSERT INTO bulksend_schema (version, name) VALUES (%s, %s)", (number, name))
                    applied += 1
            if version == 0:  # a new ledger: its identity and its calendar, from the start
                from bulksend import calendar

                for key, value in ((LEDGER_ID, str(uuid.uuid4())), (calendar.ZONE_KEY, calendar.new_ledger_zone(zone))):
                    self._run("INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING", (key, value))
        return applied

    def close(self) -> None:
        try:
            self.connection.close()
        except Exception:  # closing a connection the server already dropped
            pass

    # -- transactions ------------------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        return self._open or self.connection.info.transaction_status not in (
            self._psycopg.pq.TransactionStatus.IDLE, self._psycopg.pq.TransactionStatus.UNKNOWN)

    @contextmanager
    def write(self) -> Iterator[None]:
        self._run("BEGIN ISOLATION LEVEL READ COMMITTED", None)
        self._open = True
        try:
            try:
                yield
            except BaseException:
                self._rollback("ROLLBACK")
                raise
            try:
                self._run("COMMIT", None)
            except BaseException:
                self._rollback("ROLLBACK")
                raise
        finally:
            self._open = False

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        self._run("SAVEPOINT op", None)
        try:
            yield
        except BaseException:
            if not self.connection.closed:  # a lost connection took the whole transaction: the first error tells
                self._run("ROLLBACK TO SAVEPOINT op", None)
                self._run("RELEASE SAVEPOINT op", None)
            raise
        self._run("RELEASE SAVEPOINT op", None)

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        if self.in_transaction:
            yield
            return
        self._run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", None)
        self._open = True
        try:
            yield
        finally:
            self._open = False
            self._rollback("COMMIT")

    def lock_pool(self, channel: str) -> None:
        self.one("lock_pool", channel=channel)

    def lock_numbers(self, numbers: Sequence[str]) -> None:
        # Transaction-scoped advisory locks, one per number, taken in sorted order (no two claims wait on
        # each other in a cycle); released at COMMIT or ROLLBACK, even if this process dies.
        if numbers:
            self.all("lock_numbers", numbers=sorted(set(numbers)))

    def _rollback(self, statement: str) -> None:
        """End a transaction on the way out of an error; a dropped connection has nothing left to end."""
        if self.connection.closed:
            return
        try:
            self.connection.execute(statement)
        except self._psycopg.Error:
            pass

    # -- named queries -----------------------------------------------------------------------------

    def _run(self, sql: str, params: Any):
        psycopg = self._psycopg
        try:
            return self.connection.execute(sql, params)
        except psycopg.Error as exc:
            if not (self._lost(exc) and not self._open and _repeatable(sql)):
                self._raise(exc, sql)
        # The connection died while idle (a server restart, a fail-over, an idle timeout): nothing of this
        # statement ran, so it runs once more on a new connection.
        self.close()
        self.connection = _connection(self.url)
        try:
            return self.connection.execute(sql, params)
        except psycopg.Error as exc:
            self._raise(exc, sql)

    def _lost(self, exc: BaseException) -> bool:
        """True when ``exc`` ended the connection (the server went away, or an administrator ended it)."""
        return self.connection.closed or self.connection.broken or (
            getattr(exc, "sqlstate", None) or "").startswith(("08", "57P"))

    def _raise(self, exc: BaseException, sql: str) -> NoReturn:
        """Raise the LedgerError a storage failure means; an error that is not about the storage, as it is (a bug
        or a constraint the rules handle)."""
        psycopg = self._psycopg
        if isinstance(exc, psycopg.errors.ReadOnlySqlTransaction):
            raise LedgerError(
                f"the ledger's server at {self.location} is read-only ({_first_line(exc, self.url)}); "
                "nothing was recorded.",
                hint="It is a replica, or default_transaction_read_only is on: point --ledger, BULKSEND_LEDGER_URL "
                "or [ledger] url at the primary server, then run the same command again (balance and credits audit only "
                "read: they work on a replica).",
            ) from None
        if (getattr(exc, "sqlstate", None) or "").startswith("53"):  # disk full, out of memory, a limit
            raise LedgerError(
                f"the ledger's server at {self.location} cannot write: {_first_line(exc, self.url)} "
                f"(SQLSTATE {exc.sqlstate}); the operation was rolled back, nothing of it was recorded.",
                hint="Free some space on the server's disk (its data directory and WAL), then run the same "
                "command again." if exc.sqlstate == "53100" else
                "Ask the server's administrator about its resources, then run the same command again.",
            ) from None
        if self._lost(exc):
            text = _first_line(exc, self.url)
            if sql == "COMMIT":
                raise LedgerError(
                    f"the connection to the ledger at {self.location} was lost while committing ({text}): the "
                    "server may or may not have recorded the operation.",
                    hint="Look before repeating it (credits history, campaigns status; a top-up whose --ref was "
                    "recorded is refused). A send resumes safely: run it again.",
                ) from None
            if self._open:
                raise LedgerError(
                    f"the connection to the ledger at {self.location} was lost in the middle of a transaction "
                    f"({text}); the server rolled it back: nothing of it was recorded.",
                    hint="Run the same command again when the server is back (a send resumes where it stopped).",
                ) from None
            raise LedgerError(
                f"the connection to the ledger at {self.location} was lost ({text}).",
                hint="Run the same command again when the server is back.",
            ) from None
        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
            raise LedgerError(
                f"the ledger at {self.location} failed: {_first_line(exc, self.url)}",
                hint="Nothing of the interrupted operation was recorded; run the command again.",
            ) from None
        raise exc

    def execute(self, query: str, **params: Any) -> int:
        return self._run(QUERIES[query], _params(params)).rowcount

    def one(self, query: str, **params: Any) -> tuple | None:
        return self._run(QUERIES[query], _params(params)).fetchone()

    def all(self, query: str, **params: Any) -> list[tuple]:
        return self._run(QUERIES[query], _params(params)).fetchall()

    def many(self, query: str, rows: Iterable[dict[str, Any]]) -> int:
        rows = list(rows)
        if not rows:
            return 0
        as_json = QUERIES.get(f"{query}__json")
        if as_json is not None and len(rows) > 1:
            # One statement over the rows as JSON (postgres.sql, "Store.many, set-based"): one round trip.
            return self._run(as_json, {"rows": json.dumps(rows, separators=(",", ":"))}).rowcount
        rows = [_params(r) for r in rows]
        try:
            with self.connection.cursor() as cursor:
                cursor.executemany(QUERIES[query], rows)
                return cursor.rowcount
        except self._psycopg.Error as exc:
            self._raise(exc, query)

    def high_water(self) -> tuple[int, int, int]:
        return self._run(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM campaigns), (SELECT COALESCE(MAX(id), 0) FROM transmissions), "
            "(SELECT COALESCE(MAX(id), 0) FROM movements)",
            None,
        ).fetchone()

    def integrity(self) -> list[str]:
        """The constraints PostgreSQL keeps itself; what this checks is that the rows the rules lock exist.
        (Page-level damage is the server's business: amcheck and its own logs.)"""
        return [p.removeprefix("database integrity: ") for p in self.integrity_problems()]

    def backup(self, target: Path) -> None:
        raise backup_refusal(self.location)

    def integrity_problems(self) -> list[str]:
        pools = {r[0] for r in self._run("SELECT channel FROM credit_pools", None).fetchall()}
        return [] if pools == {"sms", "whatsapp"} else [f"database integrity: credit pools are {sorted(pools)}"]

    # -- copying -----------------------------------------------------------------------------------

    def import_rows(self, table: str, rows: Sequence[tuple]) -> int:
        if not rows:
            return 0
        columns = TABLES[table]
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
        try:
            with self.connection.cursor() as cursor:
                cursor.executemany(sql, list(rows))
        except self._psycopg.Error as exc:
            self._raise(exc, sql)
        return len(rows)

    def after_import(self) -> None:
        for table in IDENTITY_TABLES:
            self._run(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) "
                f"FROM {table}",
                None,
            )


def backup_refusal(location: str) -> InputError:
    """Why ``ledger backup`` writes no file for a server's ledger, and what to run instead (exit 2)."""
    return InputError(
        f"the ledger at {location} is on a PostgreSQL server: back it up with the server's own tools; "
        "nothing was written.",
        hint="e.g. pg_dump --format=custom --file=ledger.dump DBNAME (see docs/ledger.md, \"Backup and recovery\").",
    )


def _connection(url: str) -> Any:
    """A new autocommit connection to ``url``, or the LedgerError that says why there is none."""
    psycopg = _psycopg()
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)
    except psycopg.Error as exc:
        raise LedgerError(
            f"cannot reach the ledger at {scrub_url(url)}: {_first_line(exc, url)}",
            hint="Check that the server is up and the URL, user and password (PGPASSWORD, ~/.pgpass) are right.",
        ) from None
    except ValueError as exc:  # psycopg refuses a URL it cannot parse before connecting
        raise LedgerError(f"the ledger URL {scrub_url(url)} is not valid: {_first_line(exc, url)}") from None


def _repeatable(sql: str) -> bool:
    """A statement that may run again on a new connection when the old one was found dead: one that begins a
    transaction, or a read outside any (in autocommit a SELECT has no effect that outlives it)."""
    return sql.lstrip().upper().startswith(("BEGIN", "SELECT"))


def _params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, (tuple, set, frozenset)) else v for k, v in params.items()}


def _first_line(exc: BaseException, url: str) -> str:
    """The first line of a driver error, with anything that looks like the password removed."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    text = text.replace(url, scrub_url(url))
    password = _password(url)
    if password:
        text = text.replace(password, "***")
    return text


def _password(url: str) -> str | None:
    from urllib.parse import parse_qs, unquote, urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.password:
        return unquote(parts.password)
    found = parse_qs(parts.query).get("password")
    return found[0] if found else None
