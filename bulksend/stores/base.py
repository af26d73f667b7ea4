"""The storage interface the ledger's rules run on: transactions, row locks and named queries, no credit rules.

A store knows SQL, transactions, locking and migrations for one kind of database. It never decides
anything about credits or states: the rules in ``bulksend.ledger`` read rows, decide, and write back
absolute values through named queries. Queries live in ``sql/*.sql`` (``-- name: …`` blocks, as
procrastinate keeps its ``queries.sql``): ``common.sql`` holds the text both dialects share, written with
``:name`` parameters; ``sqlite.sql`` and ``postgres.sql`` hold what differs (row locks, lists, RETURNING).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: The tables a ledger holds, parents first, each with the columns both dialects share (in copy order).
TABLES: dict[str, tuple[str, ...]] = {
    "meta": ("key", "value"),
    "credit_lots": ("id", "channel", "amount", "remaining", "expired", "purchased_on", "expires_on", "ref",
                    "recorded_at"),
    "campaigns": ("id", "name", "channel", "provider", "fingerprint", "attestation", "state", "created_at",
                  "updated_at", "settings"),
    "holds": ("campaign_id", "channel", "amount", "updated_at"),
    "transmissions": ("id", "campaign_id", "e164", "state", "attempts", "not_before", "message", "units", "cost",
                      "row_number", "country", "provider_id", "error_code", "error_text", "debited", "refunded",
                      "created_at", "updated_at", "sent_at", "params", "timezone", "report_status", "reported_at"),
    "movements": ("id", "kind", "channel", "amount", "on_date", "recorded_at", "lot_id", "campaign_id",
                  "transmission_id", "from_hold", "ref", "note"),
    "optouts": ("e164", "added_at", "reason", "source"),
    "pending_receipts": ("id", "profile", "state", "provider_id", "transmission_id", "status", "code", "text",
                         "fault", "opt_out", "reported_at", "exact_id", "received_at", "tries"),
    "inbound_messages": ("id", "profile", "channel", "sender", "text", "provider_id", "keyword", "opt_out",
                         "sent_at", "received_at"),
}

#: The meta key of the ledger's identity (a uuid4 given when the ledger is created).
LEDGER_ID = "ledger_id"

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def load_queries(*files: str) -> dict[str, str]:
    """Named queries from ``bulksend/stores/sql/<file>``; a later file overrides an earlier one's names."""
    queries: dict[str, str] = {}
    folder = resources.files("bulksend.stores") / "sql"
    for file in files:
        text = (folder / file).read_text(encoding="utf-8")
        parts = _NAME.split(text)
        for name, body in zip(parts[1::2], parts[2::2]):
            lines = [line for line in body.strip().splitlines() if not line.lstrip().startswith("--")]
            queries[name] = "\n".join(lines).strip().rstrip(";")
    return queries


def scrub_url(url: str) -> str:
    """A database URL fit to print: the password (and any ``password=`` parameter) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable ledger URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        netloc = f"{userinfo}@{host}"
    query = re.sub(r"(?i)(password=)[^&]*", r"\1***", parts.query)
    if netloc == parts.netloc and query == parts.query and not parts.fragment:
        return url  # nothing to hide (urlunsplit would also turn sqlite:////abs/path into sqlite://abs/path)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


class Store(ABC):
    """One ledger database. Used from one thread at a time; every method is cheap to call.

    ``write()`` is the outermost write transaction: on SQLite ``BEGIN IMMEDIATE`` (the whole file),
    on PostgreSQL ``BEGIN`` (READ COMMITTED) where the rules take row locks with ``lock_pool`` and
    the ``…_for_update`` queries. ``savepoint()`` nests one operation inside it, ``snapshot()`` makes
    several reads consistent. Named queries take keyword parameters; a list parameter is a list of
    values (the dialect's query says how it is matched).

    A failure of the storage (a damaged file, a full disk, a read-only database, a server gone) surfaces from
    whichever method met it as one ``LedgerError`` that names the cause, with the transaction rolled back.
    A store may replace a connection it finds dead when a transaction begins (nothing of it had run), never
    one lost inside a transaction: the rest of that transaction would be written without its beginning.
    """

    dialect: str = ""
    #: Where the ledger is, fit to print (never a password).
    location: str = ""
    #: The file of a file-backed store, else None.
    path: Path | None = None
    #: True when several senders share this ledger: claims carry a lease (``claimed_by``, ``lease_until``).
    leases: bool = False

    # -- transactions ------------------------------------------------------------------------------

    @abstractmethod
    @contextmanager
    def write(self) -> Iterator[None]:
        """The outermost write transaction: commits when the block ends, rolls back when it raises."""

    @abstractmethod
    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """One operation inside ``write()``: rolled back alone when it raises."""

    @abstractmethod
    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Several reads that see one state of the ledger (inside a write: that write's state)."""

    @property
    @abstractmethod
    def in_transaction(self) -> bool: ...

    @abstractmethod
    def lock_pool(self, channel: str) -> None:
        """Inside ``write()``: wait until no other writer moves credits of ``channel``, then keep it so.

        Holds, debits, refunds, top-ups and expiries of one channel read lots and holds, decide, and
        write back; the lock makes that read-decide-write atomic across processes and machines.
        """

    def lock_numbers(self, numbers: Sequence[str]) -> None:
        """Inside ``write()``: wait until no other writer counts or claims sends to these numbers, then keep
        them so until the transaction ends (frequency caps: the count and the claim are one step).

        SQLite needs nothing: ``BEGIN IMMEDIATE`` already makes every write transaction run alone.
        """

    # -- named queries -----------------------------------------------------------------------------

    @abstractmethod
    def execute(self, query: str, **params: Any) -> int:
        """Run a named statement; returns the rows it changed."""

    @abstractmethod
    def one(self, query: str, **params: Any) -> tuple | None:
        """The first row of a named query, or None."""

    @abstractmethod
    def all(self, query: str, **params: Any) -> list[tuple]:
        """Every row of a named query."""

    @abstractmethod
    def many(self, query: str, rows: Iterable[dict[str, Any]]) -> int:
        """Run a named statement once per parameter set; returns the rows changed in all."""

    def many_rows(self, query: str, names: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """``many`` with each parameter set a tuple of plain values (no lists) named by ``names``, in order: what
        queueing a list writes, without a dict per row where the database takes values by position."""
        return self.many(query, (dict(zip(names, row)) for row in rows))

    def scalar(self, query: str, **params: Any) -> Any:
        row = self.one(query, **params)
        return None if row is None else row[0]

    # -- the database itself ----------------------------------------------------------------------

    @abstractmethod
    def integrity_problems(self) -> list[str]:
        """What the database's own check finds wrong (empty when it finds nothing)."""

    @abstractmethod
    def integrity(self) -> list[str]:
        """The database's own consistency check for ``ledger check``: what is damaged, or an empty list."""

    @abstractmethod
    def high_water(self) -> tuple[int, int, int]:
        """The highest campaign, transmission and movement ids (0 when none)."""

    @abstractmethod
    def backup(self, target: Path) -> None:
        """Write a consistent copy of the whole ledger to ``target``, or say how this database is backed up."""

    @abstractmethod
    def schema_version(self) -> int: ...

    @abstractmethod
    def close(self) -> None: ...

    # -- copying a whole ledger --------------------------------------------------------------------

    def is_empty(self) -> bool:
        """True when no table holds a row (meta excepted: a new ledger may already know its identity)."""
        return not any(self.one(f"count_{table}") for table in TABLES if table != "meta")

    def export_rows(self, table: str) -> Iterator[tuple]:
        """Every row of a ledger table, in key order, with the columns of ``TABLES[table]``."""
        return iter(self.all(f"export_{table}"))

    @abstractmethod
    def import_rows(self, table: str, rows: Sequence[tuple]) -> int:
        """Insert rows exported from another store (explicit ids); inside ``write()``."""

    def after_import(self) -> None:
        """Whatever the database needs after rows arrived with explicit ids (sequences, statistics)."""


def copy_queries() -> dict[str, str]:
    """The queries ``is_empty`` and ``export_rows`` use, the same text on every dialect."""
    queries = {}
    for table, columns in TABLES.items():
        key = "key" if table == "meta" else "e164" if table == "optouts" else (
            "campaign_id" if table == "holds" else "id")
        queries[f"count_{table}"] = f"SELECT 1 FROM {table} LIMIT 1"
        queries[f"export_{table}"] = f"SELECT {', '.join(columns)} FROM {table} ORDER BY {key}"
    return queries
