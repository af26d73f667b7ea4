"""The ledger: credit lots, movements, holds, campaigns, transmissions and opt-outs, in one SQLite file.

This is the only module that speaks SQL. ``Ledger`` is the interface the rest of bulksend uses (a
PostgreSQL ledger would implement the same methods); ``SqliteLedger`` is the embedded implementation.

Transaction discipline: every write runs inside ``BEGIN IMMEDIATE`` (taken with a busy timeout), and
every write transaction first settles the credits that expired since the last one. Inside
``with ledger.transaction():`` each operation runs in its own SAVEPOINT, so an operation that raises
(insufficient credits, a transition that is not allowed) leaves nothing behind and the rest of the
batch still commits. Reads (``balance``, ``audit``, ``suppressed``) never write.
"""

from __future__ import annotations

import os
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from bulksend import calendar
from bulksend.errors import InputError, InsufficientCredits, LedgerError
from bulksend.sqlite_errors import connect as _connect

if TYPE_CHECKING:  # pragma: no cover
    from bulksend.config import Config
    from bulksend.receipts import InboundMessage, Receipt, ReceiptFate

CHANNELS = ("sms", "whatsapp")
STATES = ("queued", "sending", "sent", "delivered", "undelivered", "failed", "unknown")
#: States in which the provider accepted the message: the transmission is debited.
ACCEPTED_STATES = ("sent", "delivered", "undelivered")
#: States in which nothing more will be sent for the row.
DONE_STATES = ("sent", "delivered", "undelivered", "failed")
MOVEMENT_KINDS = ("topup", "debit", "refund", "hold", "release", "expiry", "reinstate")
CAMPAIGN_STATES = ("open", "done", "cancelled")
OPTOUT_SOURCES = ("manual", "import", "provider")
BUSY_TIMEOUT_SECONDS = 30.0


# --------------------------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class CreditLot:
    """The credits of one top-up: what was bought, what is left, and until when."""

    id: int
    channel: str
    amount: int
    remaining: int
    expired: int
    purchased_on: date
    expires_on: date
    ref: str | None


@dataclass(frozen=True, slots=True)
class TopUp:
    """A recorded top-up: its lot, and what it brought forward to its own expiry."""

    lot: CreditLot
    brought_forward: int
    reinstated: int


@dataclass(frozen=True, slots=True)
class Movement:
    """One line of the credit history. ``amount`` is a magnitude; ``kind`` says which way it went."""

    id: int
    kind: str
    channel: str
    amount: int
    on: date
    recorded_at: str
    lot_id: int | None = None
    campaign_id: int | None = None
    transmission_id: int | None = None
    from_hold: int = 0
    ref: str | None = None
    note: str | None = None

    @property
    def change(self) -> int:
        """The signed effect on the channel's credits (holds and releases change none)."""
        if self.kind in ("topup", "refund", "reinstate"):
            return self.amount
        if self.kind in ("debit", "expiry"):
            return -self.amount
        return 0


@dataclass(frozen=True, slots=True)
class Expiring:
    """Credits of one channel that expire together."""

    amount: int
    expires_at: date


@dataclass(frozen=True, slots=True)
class ChannelBalance:
    """A channel's unexpired credits, what campaigns hold of them, and what is left to spend."""

    channel: str
    total: int
    held: int
    expiring: tuple[Expiring, ...] = ()

    @property
    def available(self) -> int:
        return max(0, self.total - self.held)


@dataclass(frozen=True, slots=True)
class Hold:
    """Credits a campaign has reserved and not yet spent or released."""

    campaign_id: int
    channel: str
    amount: int


@dataclass(frozen=True, slots=True)
class Campaign:
    """A named send of one message to one recipient file, resumable until every row is done."""

    id: int
    name: str
    channel: str
    provider: str
    fingerprint: str
    attestation: str | None
    state: str
    created_at: str


@dataclass(frozen=True, slots=True)
class NewTransmission:
    """What the engine knows about a recipient before it is queued."""

    e164: str
    message: str
    units: int
    cost: int
    row_number: int | None = None
    country: str | None = None
    params: str | None = None  # JSON: the row's merge fields, for providers that fill templates themselves


@dataclass(frozen=True, slots=True)
class Transmission:
    """One message to one number in one campaign, and where it is in the state machine."""

    id: int
    campaign_id: int
    e164: str
    state: str
    attempts: int
    not_before: str | None
    message: str
    units: int
    cost: int
    row_number: int | None
    country: str | None
    provider_id: str | None
    error_code: str | None
    error_text: str | None
    debited: int
    refunded: int
    created_at: str
    updated_at: str
    sent_at: str | None
    params: str | None = None


@dataclass(frozen=True, slots=True)
class OptOut:
    """A number nobody may message: when it was added, why, and from where."""

    e164: str
    added_at: str
    reason: str | None
    source: str


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The result of recomputing every balance; ``differences`` is empty when the ledger is consistent."""

    differences: tuple[str, ...]
    channels: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def consistent(self) -> bool:
        return not self.differences


@dataclass(frozen=True, slots=True)
class HighWater:
    """How far a ledger has got: the highest campaign, transmission and movement ids (0 when none).

    Rows of these tables are never deleted, so a ledger that is behind a mark it once reached has lost
    commits (restored from an older copy, its -wal file deleted).
    """

    campaigns: int = 0
    transmissions: int = 0
    movements: int = 0

    def behind(self, seen: "HighWater") -> list[str]:
        """What this mark lacks compared with ``seen`` (empty when it is at or past it)."""
        return [
            f"{what} up to #{mine} (the home has seen #{theirs})"
            for what, mine, theirs in (
                ("campaigns", self.campaigns, seen.campaigns),
                ("transmissions", self.transmissions, seen.transmissions),
                ("credit movements", self.movements, seen.movements),
            )
            if mine < theirs
        ]

    def highest(self, other: "HighWater") -> "HighWater":
        return HighWater(
            max(self.campaigns, other.campaigns),
            max(self.transmissions, other.transmissions),
            max(self.movements, other.movements),
        )


#: The meta key of the ledger's identity (a uuid4 given when the ledger is created).
LEDGER_ID = "ledger_id"


# ------------------------------------------------------------------------------------- credit rules


def add_year(day: date) -> date:
    """The same calendar day next year; 29 February gives 28 February (as PostgreSQL's ``+ interval '1 year'``)."""
    try:
        return day.replace(year=day.year + 1)
    except ValueError:
        return day.replace(year=day.year + 1, day=28)


def check_channel(channel: str) -> str:
    """The channel name in canonical form, or an InputError naming the valid ones."""
    name = str(channel).strip().lower()
    if name not in CHANNELS:
        raise InputError(f"unknown channel {channel!r}: use sms or whatsapp.")
    return name


def utc_timestamp(moment: datetime | None = None) -> str:
    """A fixed-width UTC timestamp, so that timestamps sort and compare as text."""
    moment = datetime.now(timezone.utc) if moment is None else moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# ---------------------------------------------------------------------------------------- interface


class Ledger(ABC):
    """The operations bulksend needs from a ledger; an implementation owns its storage entirely.

    Every write is atomic on its own; ``transaction()`` groups many writes into one commit.
    Credits are integers. "Today" is the date, in the ledger's own time zone (``bulksend.calendar``), when
    the write transaction begins.
    """

    @abstractmethod
    def transaction(self) -> Iterator["Ledger"]:
        """Group writes into one atomic commit (``with ledger.transaction():``)."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def meta(self, key: str) -> str | None:
        """A fact recorded about the ledger itself (see ``set_meta``), or None."""

    @abstractmethod
    def set_meta(self, key: str, value: str) -> None:
        """Record a fact about the ledger itself (its identity, its calendar's zone), in a write."""

    #: Called after every committed write transaction (the home's record of the ledger keeps up with it).
    on_commit: "Callable[[], None] | None" = None

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the ledger is, for messages (a file path; a URL without its password)."""

    @abstractmethod
    def high_water(self) -> HighWater:
        """The highest campaign, transmission and movement ids (a read)."""

    @abstractmethod
    def integrity(self) -> list[str]:
        """The storage's own consistency check: what is damaged, or an empty list."""

    @abstractmethod
    def backup(self, target: Path) -> None:
        """Write a consistent copy of the whole ledger to ``target`` (owner-only, atomically), while in use."""

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # credits
    @abstractmethod
    def topup(self, channel: str, amount: int, on: date | None = None, ref: str | None = None) -> TopUp: ...
    @abstractmethod
    def balance(self, channel: str | None = None) -> dict[str, ChannelBalance]: ...
    @abstractmethod
    def lots(self, channel: str | None = None) -> list[CreditLot]: ...
    @abstractmethod
    def history(self, channel: str | None = None, since: date | None = None) -> list[Movement]: ...
    @abstractmethod
    def audit(self) -> AuditReport: ...

    # campaigns and holds
    @abstractmethod
    def open_campaign(
        self, name: str, channel: str, provider: str, fingerprint: str, attestation: str | None = None
    ) -> Campaign: ...
    @abstractmethod
    def get_campaign(self, key: int | str) -> Campaign | None: ...
    @abstractmethod
    def campaigns(self) -> list[Campaign]: ...
    @abstractmethod
    def set_campaign_state(self, campaign_id: int, state: str) -> None: ...
    @abstractmethod
    def hold(self, campaign_id: int, channel: str, amount: int) -> Hold: ...
    @abstractmethod
    def held(self, campaign_id: int) -> int: ...
    @abstractmethod
    def release(self, campaign_id: int) -> int: ...

    # transmissions
    @abstractmethod
    def add_transmissions(self, campaign_id: int, rows: Iterable[NewTransmission]) -> int: ...
    @abstractmethod
    def claim(
        self, campaign_id: int, limit: int, now: datetime | None = None, *, within_hold: bool = True
    ) -> list[Transmission]: ...
    @abstractmethod
    def mark_sent(self, transmission_id: int, provider_id: str | None, *, cost: int | None = None) -> int: ...
    @abstractmethod
    def mark_retry(
        self, transmission_id: int, not_before: datetime, code: str | None = None, text: str | None = None
    ) -> None: ...
    @abstractmethod
    def mark_failed(self, transmission_id: int, code: str | None, text: str | None) -> None: ...
    @abstractmethod
    def mark_unknown(self, transmission_id: int, code: str | None = None, text: str | None = None) -> None: ...
    @abstractmethod
    def mark_report(
        self, transmission_id: int, state: str, code: str | None = None, text: str | None = None
    ) -> None: ...
    @abstractmethod
    def refund(self, transmission_id: int) -> int: ...
    @abstractmethod
    def recover_sending(self, campaign_id: int) -> int: ...
    @abstractmethod
    def transmission(self, transmission_id: int) -> Transmission | None: ...
    @abstractmethod
    def find_by_provider_id(self, provider_id: str) -> Transmission | None: ...
    @abstractmethod
    def transmissions(
        self, campaign_id: int, states: Sequence[str] | None = None, limit: int | None = None
    ) -> list[Transmission]: ...
    @abstractmethod
    def counts(self, campaign_id: int) -> dict[str, int]: ...
    @abstractmethod
    def failure_codes(self, campaign_id: int) -> dict[str, int]: ...
    @abstractmethod
    def campaign_credits(self, campaign_id: int) -> tuple[int, int]: ...
    @abstractmethod
    def next_due(self, campaign_id: int) -> datetime | None: ...
    @abstractmethod
    def unclaim(
        self, transmission_ids: Iterable[int], code: str | None = None, text: str | None = None
    ) -> int: ...
    @abstractmethod
    def campaign_settings(self, campaign_id: int) -> dict: ...
    @abstractmethod
    def save_campaign_settings(self, campaign_id: int, settings: dict) -> None: ...
    @abstractmethod
    def outstanding_cost(self, campaign_id: int) -> int: ...

    # opt-outs
    @abstractmethod
    def add_optouts(
        self, numbers: Iterable[str], reason: str | None = None, source: str = "manual"
    ) -> tuple[list[str], list[str]]: ...
    @abstractmethod
    def remove_optouts(self, numbers: Iterable[str]) -> tuple[list[str], list[str]]: ...
    @abstractmethod
    def optouts(self) -> list[OptOut]: ...
    @abstractmethod
    def suppressed(self) -> frozenset[str]: ...
    @abstractmethod
    def suppressed_among(self, numbers: Iterable[str]) -> frozenset[str]: ...

    # receipts and replies (docs/webhooks.md): the rules are in ``receipt_plan``, once
    @abstractmethod
    def record_receipt(self, receipt: "Receipt") -> "ReceiptFate":
        """Apply one verified delivery receipt to its transmission, or keep it until the row can take it."""

    @abstractmethod
    def apply_pending_receipts(self, limit: int = 1000) -> dict[str, int]:
        """Try the kept receipts again (oldest first); returns how many met each fate."""

    @abstractmethod
    def pending_receipt_count(self) -> int: ...

    @abstractmethod
    def record_inbound(self, message: "InboundMessage") -> bool:
        """Keep one inbound message (False: a provider's retry of one already kept); an opt-out adds the sender
        to the opt-out list (source ``provider``) in the same write."""

    @abstractmethod
    def inbound_messages(self, limit: int | None = None) -> list[dict]: ...


# --------------------------------------------------------------------------------------- the schema

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

_TRANSMISSION_COLUMNS = (
    "id, campaign_id, e164, state, attempts, not_before, message, units, cost, row_number, country, "
    "provider_id, error_code, error_text, debited, refunded, created_at, updated_at, sent_at, params"
)
_CAMPAIGN_COLUMNS = "id, name, channel, provider, fingerprint, attestation, state, created_at"
_LOT_COLUMNS = "id, channel, amount, remaining, expired, purchased_on, expires_on, ref"
_MOVEMENT_COLUMNS = (
    "id, kind, channel, amount, on_date, recorded_at, lot_id, campaign_id, transmission_id, from_hold, ref, note"
)


def _lot(row: Sequence) -> CreditLot:
    return CreditLot(
        row[0], row[1], row[2], row[3], row[4], date.fromisoformat(row[5]), date.fromisoformat(row[6]), row[7]
    )


def _movement(row: Sequence) -> Movement:
    return Movement(
        row[0], row[1], row[2], row[3], date.fromisoformat(row[4]), row[5], row[6], row[7], row[8], row[9],
        row[10], row[11],
    )


def _placeholders(n: int) -> str:
    return ",".join("?" * n)


# ---------------------------------------------------------------------------------- SQLite ledger


def open_ledger(config: "Config") -> "SqliteLedger":
    """The ledger of ``config.home``, created (owner-only) and migrated as needed."""
    return SqliteLedger.open(config.ledger_path, zone=calendar.configured_zone(config.credits))


def open_existing(config: "Config") -> "SqliteLedger | None":
    """The ledger of ``config.home`` if there is one; never creates a file."""
    return SqliteLedger.open(config.ledger_path, create=False, zone=calendar.configured_zone(config.credits))


class SqliteLedger(Ledger):
    """The embedded ledger: one SQLite file in WAL mode with ``synchronous=FULL``."""

    def __init__(self, connection: sqlite3.Connection, path: Path, zone: str | None = None) -> None:
        self._conn = connection
        self.path = path
        self._zone = zone  # [credits] timezone: recorded when the ledger has no zone yet
        self._calendar: calendar.Calendar | None = None  # once read from (or recorded in) the ledger
        self._depth = 0
        self._today: date | None = None
        self._now: str | None = None

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, *, create: bool = True, zone: str | None = None) -> "SqliteLedger | None":
        """Open (and migrate) the ledger at ``path``; ``zone`` is the time zone a new ledger records."""
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
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            ledger = cls(conn, path, zone)
            ledger._migrate()
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{path}: cannot open the ledger ({exc}).") from None
        return ledger

    def _migrate(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"{self.path} was written by a newer bulksend (schema {version}, this one knows {SCHEMA_VERSION}).",
                hint="Upgrade bulksend.",
            )
        if version > 0:
            self._backup_before_migration(version)
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have won
            created = version == 0
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    self._conn.execute(statement)
            if version < 3 <= SCHEMA_VERSION:  # the meta table is new: the ledger gets its identity with it
                import uuid

                self._conn.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (LEDGER_ID, str(uuid.uuid4()))
                )
            if created:  # a new ledger records its calendar's zone from the start
                self._conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    (calendar.ZONE_KEY, calendar.new_ledger_zone(self._zone)),
                )
            self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()

    def meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self._write():
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- transactions --------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator["SqliteLedger"]:
        if self._depth:
            with self._write():
                yield self
            return
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise LedgerError(f"{self.path}: the ledger is busy ({exc}).", hint="Try again in a moment.") from None
        self._depth = 1
        self._now = utc_timestamp()
        try:
            self._today = self.calendar(record=True).today()
            self._settle_expiries()
            yield self
        except BaseException:
            self._depth = 0
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        self._depth = 0
        try:
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        if self.on_commit is not None:
            self.on_commit()

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One operation: its own transaction, or a savepoint inside the caller's."""
        if not self._depth:
            with self.transaction():
                yield
            return
        self._conn.execute("SAVEPOINT op")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK TO op")
            self._conn.execute("RELEASE op")
            raise
        finally:
            self._depth -= 1
        self._conn.execute("RELEASE op")

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """A consistent read of several statements (a deferred transaction; WAL readers never block)."""
        if self._depth:
            yield
            return
        self._conn.execute("BEGIN")
        try:
            yield
        finally:
            self._conn.execute("COMMIT")

    def calendar(self, *, record: bool = False) -> calendar.Calendar:
        """The ledger's calendar (its time zone's days); ``record`` (in a write) records a missing zone."""
        if self._calendar is not None:
            return self._calendar
        found, settled = calendar.ledger_calendar(self, self._zone, record=record)
        if settled:  # a zone recorded just now may still roll back: cache it from the next read on
            self._calendar = found
        return found

    def _read_today(self) -> date:
        return self._today if self._depth else self.calendar().today()

    def _movement(
        self,
        kind: str,
        channel: str,
        amount: int,
        on: date | str | None = None,
        *,
        lot_id: int | None = None,
        campaign_id: int | None = None,
        transmission_id: int | None = None,
        from_hold: int = 0,
        ref: str | None = None,
        note: str | None = None,
    ) -> None:
        on = self._today if on is None else on
        self._conn.execute(
            "INSERT INTO movements (kind, channel, amount, on_date, recorded_at, lot_id, campaign_id, "
            "transmission_id, from_hold, ref, note) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (kind, channel, amount, str(on), self._now, lot_id, campaign_id, transmission_id, from_hold, ref, note),
        )

    def _settle_expiries(self) -> None:
        """Record, as expiry movements dated on their expiry day, credits whose day has come."""
        due = self._conn.execute(
            "SELECT id, channel, remaining, expires_on FROM credit_lots WHERE remaining > 0 AND expires_on <= ?",
            (str(self._today),),
        ).fetchall()
        for lot_id, channel, remaining, expires_on in due:
            self._conn.execute(
                "UPDATE credit_lots SET remaining = 0, expired = expired + ? WHERE id = ?", (remaining, lot_id)
            )
            self._movement("expiry", channel, remaining, expires_on, lot_id=lot_id)

    # -- credits -------------------------------------------------------------------------------

    def topup(self, channel: str, amount: int, on: date | None = None, ref: str | None = None) -> TopUp:
        channel = check_channel(channel)
        if not isinstance(amount, int) or amount <= 0:
            raise InputError(f"a top-up is a positive whole number of credits, not {amount!r}.")
        ref = ref.strip() if ref else None
        with self._write():
            today = self._today
            on = today if on is None else on
            if on > today:
                raise InputError(f"the top-up date {on} is in the future (today is {today}); nothing recorded.")
            expires = add_year(on)
            if expires <= today:
                raise InputError(
                    f"credits bought on {on} expired on {expires}; nothing recorded.",
                )
            if ref is not None:
                used = self._conn.execute(
                    "SELECT amount, channel, purchased_on FROM credit_lots WHERE ref = ?", (ref,)
                ).fetchone()
                if used:
                    raise InputError(
                        f"reference {ref!r} was already used by the top-up of {used[0]} {used[1]} credits "
                        f"on {used[2]}; nothing recorded."
                    )
            brought = reinstated = 0
            # Every lot still valid on the purchase day and expiring before the new lot moves to its expiry.
            # Lots whose expiry was already recorded after a backdated purchase day come back (reinstate).
            for lot_id, remaining, expired in self._conn.execute(
                "SELECT id, remaining, expired FROM credit_lots WHERE channel = ? AND expires_on > ? "
                "AND expires_on < ?",
                (channel, str(on), str(expires)),
            ).fetchall():
                if expired:
                    self._movement("reinstate", channel, expired, lot_id=lot_id, note=f"purchase of {on}")
                    reinstated += expired
                brought += remaining + expired
                self._conn.execute(
                    "UPDATE credit_lots SET expires_on = ?, remaining = remaining + expired, expired = 0 WHERE id = ?",
                    (str(expires), lot_id),
                )
            cursor = self._conn.execute(
                "INSERT INTO credit_lots (channel, amount, remaining, purchased_on, expires_on, ref, recorded_at) "
                "VALUES (?,?,?,?,?,?,?)",
                (channel, amount, amount, str(on), str(expires), ref, self._now),
            )
            lot_id = cursor.lastrowid
            note = f"expires {expires}"
            if brought:
                note += f"; brought {brought} credits forward"
            self._movement("topup", channel, amount, on, lot_id=lot_id, ref=ref, note=note)
            lot = CreditLot(lot_id, channel, amount, amount, 0, on, expires, ref)
        return TopUp(lot, brought, reinstated)

    def balance(self, channel: str | None = None) -> dict[str, ChannelBalance]:
        channels = CHANNELS if channel is None else (check_channel(channel),)
        today = str(self._read_today())
        with self._snapshot():
            lots = self._conn.execute(
                "SELECT channel, expires_on, SUM(remaining) FROM credit_lots "
                "WHERE remaining > 0 AND expires_on > ? GROUP BY channel, expires_on ORDER BY expires_on",
                (today,),
            ).fetchall()
            holds = dict(
                self._conn.execute("SELECT channel, SUM(amount) FROM holds WHERE amount > 0 GROUP BY channel")
            )
        return {
            name: ChannelBalance(
                name,
                total=sum(r[2] for r in lots if r[0] == name),
                held=holds.get(name, 0),
                expiring=tuple(Expiring(r[2], date.fromisoformat(r[1])) for r in lots if r[0] == name),
            )
            for name in channels
        }

    def lots(self, channel: str | None = None) -> list[CreditLot]:
        sql = f"SELECT {_LOT_COLUMNS} FROM credit_lots"
        args: tuple = ()
        if channel is not None:
            sql += " WHERE channel = ?"
            args = (check_channel(channel),)
        return [_lot(r) for r in self._conn.execute(sql + " ORDER BY expires_on, id", args)]

    def settle(self) -> None:
        """Record the expiries that are due (every write does this first; history calls it explicitly)."""
        with self._write():
            pass

    def history(self, channel: str | None = None, since: date | None = None) -> list[Movement]:
        self.settle()
        clauses, args = [], []
        if channel is not None:
            clauses.append("channel = ?")
            args.append(check_channel(channel))
        if since is not None:
            clauses.append("on_date >= ?")
            args.append(str(since))
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return [
            _movement(r)
            for r in self._conn.execute(
                f"SELECT {_MOVEMENT_COLUMNS} FROM movements{where} ORDER BY on_date DESC, id DESC", args
            )
        ]

    def _available(self, channel: str) -> tuple[int, int]:
        """(unexpired credits, total held) of a channel, inside a write."""
        total = self._conn.execute(
            "SELECT COALESCE(SUM(remaining), 0) FROM credit_lots WHERE channel = ? AND remaining > 0 "
            "AND expires_on > ?",
            (channel, str(self._today)),
        ).fetchone()[0]
        held = self._conn.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM holds WHERE channel = ?", (channel,)
        ).fetchone()[0]
        return total, held

    # -- campaigns and holds -------------------------------------------------------------------

    def open_campaign(
        self, name: str, channel: str, provider: str, fingerprint: str, attestation: str | None = None
    ) -> Campaign:
        channel = check_channel(channel)
        with self._write():
            existing = self._campaign_row("name = ?", name)
            if existing is not None:
                if existing.channel != channel:
                    raise InputError(
                        f"campaign {name!r} sends on {existing.channel}, not {channel}.",
                        hint="Give the new campaign another name (--name).",
                    )
                if existing.fingerprint != fingerprint:
                    raise InputError(
                        f"campaign {name!r} was started with a different recipient file or message; "
                        "resuming it with these would mix two campaigns.",
                        hint="Give the new campaign another name (--name), or run the original files again.",
                    )
                return existing
            self._conn.execute(
                "INSERT INTO campaigns (name, channel, provider, fingerprint, attestation, created_at, updated_at) "
                "VALUES (?,?,?,?,?,?,?)",
                (name, channel, provider, fingerprint, attestation, self._now, self._now),
            )
            return self._campaign_row("name = ?", name)

    def _campaign_row(self, where: str, arg: object) -> Campaign | None:
        row = self._conn.execute(f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE {where}", (arg,)).fetchone()
        return Campaign(*row) if row else None

    def get_campaign(self, key: int | str) -> Campaign | None:
        if isinstance(key, int):
            return self._campaign_row("id = ?", key)
        return self._campaign_row("name = ?", key)

    def _require_campaign(self, campaign_id: int) -> Campaign:
        campaign = self._campaign_row("id = ?", campaign_id)
        if campaign is None:
            raise LedgerError(f"no campaign with id {campaign_id} in the ledger.")
        return campaign

    def campaigns(self) -> list[Campaign]:
        return [Campaign(*r) for r in self._conn.execute(f"SELECT {_CAMPAIGN_COLUMNS} FROM campaigns ORDER BY id")]

    def set_campaign_state(self, campaign_id: int, state: str) -> None:
        if state not in CAMPAIGN_STATES:
            raise LedgerError(f"unknown campaign state {state!r}.")
        with self._write():
            self._require_campaign(campaign_id)
            self._conn.execute(
                "UPDATE campaigns SET state = ?, updated_at = ? WHERE id = ?", (state, self._now, campaign_id)
            )

    def hold(self, campaign_id: int, channel: str, amount: int) -> Hold:
        channel = check_channel(channel)
        if amount < 0:
            raise LedgerError(f"cannot hold a negative amount ({amount}).")
        with self._write():
            campaign = self._require_campaign(campaign_id)
            if campaign.channel != channel:
                raise LedgerError(f"campaign {campaign.name!r} sends on {campaign.channel}, not {channel}.")
            if amount:
                total, held = self._available(channel)
                available = max(0, total - held)
                if amount > available:
                    raise InsufficientCredits(
                        f"campaign {campaign.name!r} needs {amount} {channel} credits but {available} are "
                        f"available: {amount - available} short.",
                        hint=f"Top up with: bulksend credits topup N --channel {channel}",
                    )
                self._conn.execute(
                    "INSERT INTO holds (campaign_id, channel, amount, updated_at) VALUES (?,?,?,?) "
                    "ON CONFLICT (campaign_id) DO UPDATE SET amount = amount + excluded.amount, "
                    "updated_at = excluded.updated_at",
                    (campaign_id, channel, amount, self._now),
                )
                self._movement("hold", channel, amount, campaign_id=campaign_id)
            return Hold(campaign_id, channel, self.held(campaign_id))

    def held(self, campaign_id: int) -> int:
        row = self._conn.execute("SELECT amount FROM holds WHERE campaign_id = ?", (campaign_id,)).fetchone()
        return row[0] if row else 0

    def release(self, campaign_id: int) -> int:
        with self._write():
            row = self._conn.execute(
                "SELECT channel, amount FROM holds WHERE campaign_id = ?", (campaign_id,)
            ).fetchone()
            if not row or not row[1]:
                return 0
            channel, amount = row
            self._conn.execute(
                "UPDATE holds SET amount = 0, updated_at = ? WHERE campaign_id = ?", (self._now, campaign_id)
            )
            self._movement("release", channel, amount, campaign_id=campaign_id)
            return amount

    # -- transmissions -------------------------------------------------------------------------

    def add_transmissions(self, campaign_id: int, rows: Iterable[NewTransmission]) -> int:
        with self._write():
            self._require_campaign(campaign_id)
            before = self._conn.total_changes
            now = self._now
            self._conn.executemany(
                "INSERT INTO transmissions (campaign_id, e164, message, units, cost, row_number, country, "
                "created_at, updated_at, params) VALUES (?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (campaign_id, e164) DO NOTHING",
                (
                    (campaign_id, r.e164, r.message, r.units, r.cost, r.row_number, r.country, now, now, r.params)
                    for r in rows
                ),
            )
            return self._conn.total_changes - before

    def claim(
        self, campaign_id: int, limit: int, now: datetime | None = None, *, within_hold: bool = True
    ) -> list[Transmission]:
        with self._write():
            moment = self._now if now is None else utc_timestamp(now)
            candidates = self._conn.execute(
                "SELECT id, cost FROM transmissions WHERE campaign_id = ? AND state = 'queued' "
                "AND (not_before IS NULL OR not_before <= ?) ORDER BY id LIMIT ?",
                (campaign_id, moment, limit),
            ).fetchall()
            if within_hold:
                # Claimed rows must be paid from the campaign's own hold, never from another campaign's.
                room = self.held(campaign_id) - self._conn.execute(
                    "SELECT COALESCE(SUM(cost), 0) FROM transmissions WHERE campaign_id = ? AND state = 'sending'",
                    (campaign_id,),
                ).fetchone()[0]
                taken = []
                for row_id, cost in candidates:
                    if cost > room:
                        break
                    room -= cost
                    taken.append(row_id)
            else:
                taken = [row_id for row_id, _ in candidates]
            if not taken:
                return []
            marks = _placeholders(len(taken))
            self._conn.execute(
                f"UPDATE transmissions SET state = 'sending', updated_at = ? WHERE id IN ({marks})",
                (self._now, *taken),
            )
            return [
                Transmission(*r)
                for r in self._conn.execute(
                    f"SELECT {_TRANSMISSION_COLUMNS} FROM transmissions WHERE id IN ({marks}) ORDER BY id", taken
                )
            ]

    def _transition(self, transmission_id: int, allowed: Sequence[str], target: str) -> tuple:
        row = self._conn.execute(
            "SELECT t.state, t.cost, t.campaign_id, c.channel, t.debited, t.refunded "
            "FROM transmissions t JOIN campaigns c ON c.id = t.campaign_id WHERE t.id = ?",
            (transmission_id,),
        ).fetchone()
        if row is None:
            raise LedgerError(f"no transmission with id {transmission_id} in the ledger.")
        if row[0] not in allowed:
            raise LedgerError(f"transmission {transmission_id} is {row[0]}: it cannot become {target}.")
        return row

    def mark_sent(self, transmission_id: int, provider_id: str | None, *, cost: int | None = None) -> int:
        """The provider accepted the message: move it to ``sent`` and debit its cost, atomically."""
        with self._write():
            _, row_cost, campaign_id, channel, _, _ = self._transition(
                transmission_id, ("sending", "unknown"), "sent"
            )
            cost = row_cost if cost is None else cost
            if cost < 0:
                raise LedgerError(f"a debit cannot be negative ({cost}).")
            if cost:
                self._debit(transmission_id, campaign_id, channel, cost)
            self._conn.execute(
                "UPDATE transmissions SET state = 'sent', provider_id = ?, cost = ?, debited = ?, sent_at = ?, "
                "updated_at = ?, not_before = NULL, error_code = NULL, error_text = NULL WHERE id = ?",
                (provider_id, cost, cost, self._now, self._now, transmission_id),
            )
            return cost

    def _debit(self, transmission_id: int, campaign_id: int, channel: str, cost: int) -> None:
        held = self.held(campaign_id)
        from_hold = min(cost, held)
        taken: list[tuple[int, int]] = []
        need = cost
        for lot_id, remaining in self._conn.execute(
            "SELECT id, remaining FROM credit_lots WHERE channel = ? AND remaining > 0 AND expires_on > ? "
            "ORDER BY expires_on, id",
            (channel, str(self._today)),
        ):
            part = min(need, remaining)
            taken.append((lot_id, part))
            need -= part
            if not need:
                break
        if need or cost > from_hold:
            total, all_held = self._available(channel)
            usable = min(total, from_hold + max(0, total - all_held))
            if cost > usable:
                raise InsufficientCredits(
                    f"transmission {transmission_id} costs {cost} {channel} credits but {usable} are "
                    f"available to it: {cost - usable} short."
                )
        left_from_hold = from_hold
        for lot_id, part in taken:
            self._conn.execute("UPDATE credit_lots SET remaining = remaining - ? WHERE id = ?", (part, lot_id))
            share = min(part, left_from_hold)
            left_from_hold -= share
            self._movement(
                "debit", channel, part, lot_id=lot_id, campaign_id=campaign_id,
                transmission_id=transmission_id, from_hold=share,
            )
        if from_hold:
            self._conn.execute(
                "UPDATE holds SET amount = amount - ?, updated_at = ? WHERE campaign_id = ?",
                (from_hold, self._now, campaign_id),
            )

    def mark_retry(
        self, transmission_id: int, not_before: datetime, code: str | None = None, text: str | None = None
    ) -> None:
        with self._write():
            self._transition(transmission_id, ("sending", "unknown"), "queued")
            self._conn.execute(
                "UPDATE transmissions SET state = 'queued', attempts = attempts + 1, not_before = ?, "
                "error_code = ?, error_text = ?, updated_at = ? WHERE id = ?",
                (utc_timestamp(not_before), code, text, self._now, transmission_id),
            )

    def mark_failed(self, transmission_id: int, code: str | None, text: str | None) -> None:
        with self._write():
            self._transition(transmission_id, ("queued", "sending", "unknown"), "failed")
            self._conn.execute(
                "UPDATE transmissions SET state = 'failed', error_code = ?, error_text = ?, updated_at = ? "
                "WHERE id = ?",
                (code, text, self._now, transmission_id),
            )

    def mark_unknown(self, transmission_id: int, code: str | None = None, text: str | None = None) -> None:
        with self._write():
            self._transition(transmission_id, ("sending",), "unknown")
            self._conn.execute(
                "UPDATE transmissions SET state = 'unknown', error_code = ?, error_text = ?, updated_at = ? "
                "WHERE id = ?",
                (code, text, self._now, transmission_id),
            )

    def mark_report(
        self, transmission_id: int, state: str, code: str | None = None, text: str | None = None
    ) -> None:
        """A delivery report for an accepted message: ``delivered`` or ``undelivered``."""
        if state not in ("delivered", "undelivered"):
            raise LedgerError(f"a delivery report is delivered or undelivered, not {state!r}.")
        with self._write():
            self._transition(transmission_id, ACCEPTED_STATES, state)
            self._conn.execute(
                "UPDATE transmissions SET state = ?, error_code = ?, error_text = ?, updated_at = ? WHERE id = ?",
                (state, code, text, self._now, transmission_id),
            )

    def refund(self, transmission_id: int) -> int:
        """Give a debited transmission's credits back to the lots they came from; 0 if already refunded."""
        with self._write():
            _, _, campaign_id, channel, debited, refunded = self._transition(
                transmission_id, STATES, "refunded"
            )
            if refunded:
                return 0
            if not debited:
                raise LedgerError(f"transmission {transmission_id} was never debited: there is nothing to refund.")
            parts = self._conn.execute(
                "SELECT m.lot_id, m.amount, l.expires_on FROM movements m JOIN credit_lots l ON l.id = m.lot_id "
                "WHERE m.transmission_id = ? AND m.kind = 'debit' ORDER BY m.id",
                (transmission_id,),
            ).fetchall()
            today = str(self._today)
            for lot_id, amount, expires_on in parts:
                self._movement(
                    "refund", channel, amount, lot_id=lot_id, campaign_id=campaign_id, transmission_id=transmission_id
                )
                if expires_on <= today:  # back with the expiry the credits had: already gone
                    self._conn.execute("UPDATE credit_lots SET expired = expired + ? WHERE id = ?", (amount, lot_id))
                    self._movement("expiry", channel, amount, lot_id=lot_id, note="refunded after expiry")
                else:
                    self._conn.execute(
                        "UPDATE credit_lots SET remaining = remaining + ? WHERE id = ?", (amount, lot_id)
                    )
            self._conn.execute(
                "UPDATE transmissions SET refunded = debited, updated_at = ? WHERE id = ?",
                (self._now, transmission_id),
            )
            return debited

    def recover_sending(self, campaign_id: int) -> int:
        """Rows a crashed run left ``sending`` become ``unknown``: they may have been accepted."""
        with self._write():
            return self._conn.execute(
                "UPDATE transmissions SET state = 'unknown', error_code = NULL, "
                "error_text = 'interrupted while sending', updated_at = ? WHERE campaign_id = ? AND state = 'sending'",
                (self._now, campaign_id),
            ).rowcount

    def transmission(self, transmission_id: int) -> Transmission | None:
        row = self._conn.execute(
            f"SELECT {_TRANSMISSION_COLUMNS} FROM transmissions WHERE id = ?", (transmission_id,)
        ).fetchone()
        return Transmission(*row) if row else None

    def find_by_provider_id(self, provider_id: str) -> Transmission | None:
        row = self._conn.execute(
            f"SELECT {_TRANSMISSION_COLUMNS} FROM transmissions WHERE provider_id = ? ORDER BY id LIMIT 1",
            (provider_id,),
        ).fetchone()
        return Transmission(*row) if row else None

    def transmissions(
        self, campaign_id: int, states: Sequence[str] | None = None, limit: int | None = None
    ) -> list[Transmission]:
        sql = f"SELECT {_TRANSMISSION_COLUMNS} FROM transmissions WHERE campaign_id = ?"
        args: list = [campaign_id]
        if states:
            sql += f" AND state IN ({_placeholders(len(states))})"
            args.extend(states)
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [Transmission(*r) for r in self._conn.execute(sql, args)]

    def counts(self, campaign_id: int) -> dict[str, int]:
        return dict(
            self._conn.execute(
                "SELECT state, COUNT(*) FROM transmissions WHERE campaign_id = ? GROUP BY state", (campaign_id,)
            )
        )

    def failure_codes(self, campaign_id: int) -> dict[str, int]:
        """Failed rows by error code (``None`` for a failure without one), most frequent first."""
        return dict(
            self._conn.execute(
                "SELECT error_code, COUNT(*) AS n FROM transmissions WHERE campaign_id = ? AND state = 'failed' "
                "GROUP BY error_code ORDER BY n DESC, error_code",
                (campaign_id,),
            )
        )

    def campaign_credits(self, campaign_id: int) -> tuple[int, int]:
        """(credits debited, credits refunded) over the campaign's transmissions."""
        debited, refunded = self._conn.execute(
            "SELECT COALESCE(SUM(debited), 0), COALESCE(SUM(refunded), 0) FROM transmissions WHERE campaign_id = ?",
            (campaign_id,),
        ).fetchone()
        return debited, refunded

    def next_due(self, campaign_id: int) -> datetime | None:
        """When the earliest ``queued`` row may be sent (now, if one has no wait); None when none is queued."""
        row = self._conn.execute(
            "SELECT COUNT(*), MIN(COALESCE(not_before, '')) FROM transmissions WHERE campaign_id = ? "
            "AND state = 'queued'",
            (campaign_id,),
        ).fetchone()
        if not row[0]:
            return None
        if not row[1]:
            return datetime.now(timezone.utc)
        return datetime.strptime(row[1], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)

    def unclaim(self, transmission_ids: Iterable[int], code: str | None = None, text: str | None = None) -> int:
        """Claimed rows that were never handed to the provider go back to ``queued``; attempts unchanged."""
        ids = list(transmission_ids)
        if not ids:
            return 0
        with self._write():
            changed = 0
            for start in range(0, len(ids), 500):
                part = ids[start:start + 500]
                changed += self._conn.execute(
                    "UPDATE transmissions SET state = 'queued', error_code = COALESCE(?, error_code), "
                    "error_text = COALESCE(?, error_text), updated_at = ? WHERE state = 'sending' "
                    f"AND id IN ({_placeholders(len(part))})",
                    (code, text, self._now, *part),
                ).rowcount
            return changed

    def campaign_settings(self, campaign_id: int) -> dict:
        """What was stored with ``save_campaign_settings`` ({} when nothing was)."""
        import json

        row = self._conn.execute("SELECT settings FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
        if row is None:
            raise LedgerError(f"no campaign with id {campaign_id} in the ledger.")
        return json.loads(row[0]) if row[0] else {}

    def save_campaign_settings(self, campaign_id: int, settings: dict) -> None:
        import json

        with self._write():
            self._require_campaign(campaign_id)
            self._conn.execute(
                "UPDATE campaigns SET settings = ?, updated_at = ? WHERE id = ?",
                (json.dumps(settings, sort_keys=True), self._now, campaign_id),
            )

    def outstanding_cost(self, campaign_id: int) -> int:
        """Credits the campaign may still spend: rows queued, sending or unknown."""
        return self._conn.execute(
            "SELECT COALESCE(SUM(cost), 0) FROM transmissions WHERE campaign_id = ? "
            "AND state IN ('queued', 'sending', 'unknown')",
            (campaign_id,),
        ).fetchone()[0]

    # -- opt-outs ------------------------------------------------------------------------------

    def add_optouts(
        self, numbers: Iterable[str], reason: str | None = None, source: str = "manual"
    ) -> tuple[list[str], list[str]]:
        """Add E.164 numbers; returns (added, already present). The first entry's when/why/where is kept."""
        if source not in OPTOUT_SOURCES:
            raise LedgerError(f"unknown opt-out source {source!r}.")
        added: list[str] = []
        present: list[str] = []
        with self._write():
            for number in numbers:
                changed = self._conn.execute(
                    "INSERT INTO optouts (e164, added_at, reason, source) VALUES (?,?,?,?) "
                    "ON CONFLICT (e164) DO NOTHING",
                    (number, self._now, reason, source),
                ).rowcount
                (added if changed else present).append(number)
        return added, present

    def remove_optouts(self, numbers: Iterable[str]) -> tuple[list[str], list[str]]:
        """Remove E.164 numbers; returns (removed, not on the list)."""
        removed: list[str] = []
        absent: list[str] = []
        with self._write():
            for number in numbers:
                changed = self._conn.execute("DELETE FROM optouts WHERE e164 = ?", (number,)).rowcount
                (removed if changed else absent).append(number)
        return removed, absent

    def optouts(self) -> list[OptOut]:
        return [
            OptOut(*r) for r in self._conn.execute("SELECT e164, added_at, reason, source FROM optouts ORDER BY e164")
        ]

    def suppressed(self) -> frozenset[str]:
        return frozenset(r[0] for r in self._conn.execute("SELECT e164 FROM optouts"))

    def suppressed_among(self, numbers: Iterable[str]) -> frozenset[str]:
        """Which of ``numbers`` are on the opt-out list now (the check made at send time)."""
        wanted = list(numbers)
        found: set[str] = set()
        for start in range(0, len(wanted), 500):
            part = wanted[start:start + 500]
            found.update(
                r[0]
                for r in self._conn.execute(
                    f"SELECT e164 FROM optouts WHERE e164 IN ({_placeholders(len(part))})", part
                )
            )
        return frozenset(found)

    # -- audit ---------------------------------------------------------------------------------

    def audit(self) -> AuditReport:
        """Recompute every balance from top-ups, expiries and the transmission log; never writes."""
        diffs: list[str] = []
        with self._snapshot():
            check = [r[0] for r in self._conn.execute("PRAGMA quick_check")]
            if check != ["ok"]:
                diffs.extend(f"database integrity: {line}" for line in check[:10])
            diffs.extend(self._audit_lots())
            channels = self._audit_channels(diffs)
            diffs.extend(self._audit_transmissions())
            diffs.extend(self._audit_holds())
        return AuditReport(tuple(diffs), channels)

    def _audit_lots(self) -> list[str]:
        sums: dict[int, dict[str, int]] = {}
        for lot_id, kind, amount in self._conn.execute(
            "SELECT lot_id, kind, SUM(amount) FROM movements WHERE lot_id IS NOT NULL GROUP BY lot_id, kind"
        ):
            sums.setdefault(lot_id, {})[kind] = amount
        diffs = []
        for lot in (_lot(r) for r in self._conn.execute(f"SELECT {_LOT_COLUMNS} FROM credit_lots ORDER BY id")):
            s = sums.pop(lot.id, {})
            get = lambda k: s.get(k, 0)  # noqa: E731
            if get("topup") != lot.amount:
                diffs.append(f"lot {lot.id} ({lot.channel}): bought {lot.amount}, top-up movements say {get('topup')}")
            expected = lot.amount - get("debit") + get("refund") - get("expiry") + get("reinstate")
            if expected != lot.remaining:
                diffs.append(
                    f"lot {lot.id} ({lot.channel}): {lot.remaining} credits left, movements say {expected}"
                )
            if get("expiry") - get("reinstate") != lot.expired:
                diffs.append(
                    f"lot {lot.id} ({lot.channel}): {lot.expired} credits expired, "
                    f"movements say {get('expiry') - get('reinstate')}"
                )
        for lot_id in sums:
            diffs.append(f"movements name lot {lot_id}, which does not exist")
        return diffs

    def _audit_channels(self, diffs: list[str]) -> dict[str, dict[str, int]]:
        log = {
            ch: (d, r)
            for ch, d, r in self._conn.execute(
                "SELECT c.channel, SUM(t.debited), SUM(t.refunded) FROM transmissions t "
                "JOIN campaigns c ON c.id = t.campaign_id WHERE t.debited > 0 GROUP BY c.channel"
            )
        }
        moved = {
            (ch, kind): amount
            for ch, kind, amount in self._conn.execute(
                "SELECT channel, kind, SUM(amount) FROM movements GROUP BY channel, kind"
            )
        }
        lots = {
            ch: (bought, left)
            for ch, bought, left in self._conn.execute(
                "SELECT channel, SUM(amount), SUM(remaining) FROM credit_lots GROUP BY channel"
            )
        }
        report = {}
        for ch in CHANNELS:
            bought, left = lots.get(ch, (0, 0))
            debited, refunded = log.get(ch, (0, 0))
            expired = moved.get((ch, "expiry"), 0) - moved.get((ch, "reinstate"), 0)
            recomputed = bought - debited + refunded - expired
            report[ch] = {
                "topups": bought, "debited": debited, "refunded": refunded, "expired": expired, "remaining": left,
            }
            if recomputed != left:
                diffs.append(
                    f"{ch}: top-ups {bought} - debits {debited} + refunds {refunded} - expired {expired} "
                    f"= {recomputed}, but the lots hold {left}"
                )
            if moved.get((ch, "debit"), 0) != debited:
                diffs.append(
                    f"{ch}: the transmission log debited {debited}, debit movements say {moved.get((ch, 'debit'), 0)}"
                )
            if moved.get((ch, "refund"), 0) != refunded:
                diffs.append(
                    f"{ch}: the transmission log refunded {refunded}, "
                    f"refund movements say {moved.get((ch, 'refund'), 0)}"
                )
        return report

    def _audit_transmissions(self) -> list[str]:
        accepted = "('sent', 'delivered', 'undelivered')"
        rows = self._conn.execute(
            "SELECT t.id, t.state, t.cost, t.debited, t.refunded, COALESCE(m.d, 0), COALESCE(m.r, 0) "
            "FROM transmissions t LEFT JOIN ("
            "  SELECT transmission_id AS tid, SUM(CASE kind WHEN 'debit' THEN amount ELSE 0 END) AS d, "
            "         SUM(CASE kind WHEN 'refund' THEN amount ELSE 0 END) AS r "
            "  FROM movements WHERE transmission_id IS NOT NULL GROUP BY transmission_id"
            ") m ON m.tid = t.id "
            "WHERE (t.debited != 0 OR t.refunded != 0 OR m.tid IS NOT NULL OR t.state IN " + accepted + ") AND ("
            "  COALESCE(m.d, 0) != t.debited OR COALESCE(m.r, 0) != t.refunded "
            "  OR t.refunded NOT IN (0, t.debited) "
            "  OR (t.state IN " + accepted + " AND t.debited != t.cost) "
            "  OR (t.state NOT IN " + accepted + " AND t.debited != 0)"
            ") ORDER BY t.id LIMIT 101"
        ).fetchall()
        diffs = [
            f"transmission {tid} ({state}, costs {cost}): debited {debited} and refunded {refunded}, "
            f"movements say debited {md} and refunded {mr}"
            for tid, state, cost, debited, refunded, md, mr in rows[:100]
        ]
        if len(rows) > 100:
            diffs.append("… and more transmissions")
        return diffs

    def _audit_holds(self) -> list[str]:
        sums: dict[int, list[int]] = {}
        for campaign_id, kind, amount, from_hold in self._conn.execute(
            "SELECT campaign_id, kind, SUM(amount), SUM(from_hold) FROM movements "
            "WHERE campaign_id IS NOT NULL AND kind IN ('hold', 'release', 'debit') GROUP BY campaign_id, kind"
        ):
            s = sums.setdefault(campaign_id, [0, 0, 0])
            if kind == "hold":
                s[0] = amount
            elif kind == "release":
                s[1] = amount
            else:
                s[2] = from_hold
        diffs = []
        holds = dict(self._conn.execute("SELECT campaign_id, amount FROM holds"))
        for campaign_id in sorted(set(sums) | set(holds)):
            held, released, spent = sums.get(campaign_id, [0, 0, 0])
            expected = held - released - spent
            actual = holds.get(campaign_id, 0)
            if expected != actual:
                diffs.append(
                    f"campaign {campaign_id}: holds {actual} credits, but held {held} - released {released} "
                    f"- debited from the hold {spent} = {expected}"
                )
        return diffs

    # -- identity, integrity, backups (see docs/ledger.md, "Backup and recovery") ---------------

    @property
    def location(self) -> str:
        return str(self.path)

    @classmethod
    def probe(cls, path: Path) -> str:
        """``missing``, ``empty`` (0 bytes: SQLite would take it for a new ledger) or ``present``."""
        try:
            size = Path(path).stat().st_size
        except FileNotFoundError:
            return "missing"
        return "empty" if size == 0 else "present"

    def high_water(self) -> HighWater:
        row = self._conn.execute(
            "SELECT (SELECT COALESCE(MAX(id), 0) FROM campaigns), (SELECT COALESCE(MAX(id), 0) FROM transmissions), "
            "(SELECT COALESCE(MAX(id), 0) FROM movements)"
        ).fetchone()
        return HighWater(*row)

    def integrity(self) -> list[str]:
        problems = [r[0] for r in self._conn.execute("PRAGMA integrity_check(20)")]
        problems = [] if problems == ["ok"] else problems
        problems += [
            f"foreign key: {table} row {rowid} names a missing {parent}"
            for table, rowid, parent, _ in self._conn.execute("PRAGMA foreign_key_check").fetchmany(20)
        ]
        return problems

    def backup(self, target: Path) -> None:
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
                self._conn.backup(dest)  # one step: a consistent snapshot even while others write
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
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        target = self.path.with_name(f"{self.path.name}.pre-v{SCHEMA_VERSION}-{stamp}.bak")
        try:
            self.backup(target)
        except (InputError, LedgerError) as exc:
            raise LedgerError(
                f"{self.path}: the ledger needs an upgrade (schema {version} to {SCHEMA_VERSION}) and a backup is "
                f"taken first, but it failed: {exc.message}",
                hint="Free some space or fix the permissions next to the ledger, then run the command again.",
            ) from None
        from bulksend import output

        output.note(f"Upgrading the ledger from schema {version} to {SCHEMA_VERSION}; a copy was saved first: {target}")

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


    # -- receipts and replies (docs/webhooks.md) ------------------------------------------------

    def record_receipt(self, receipt: "Receipt") -> "ReceiptFate":
        from bulksend.receipts import ReceiptFate

        with self._write():
            fate = self._apply_receipt(receipt)
            if fate is ReceiptFate.PENDING:
                self._conn.execute(
                    "INSERT INTO pending_receipts (profile, state, provider_id, transmission_id, status, code, text, "
                    "fault, opt_out, reported_at, exact_id, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        receipt.profile, str(receipt.state), receipt.provider_id, receipt.transmission_id,
                        receipt.status, receipt.code, receipt.text,
                        None if receipt.fault is None else str(receipt.fault), int(receipt.opt_out),
                        receipt.reported_at, int(receipt.exact_id), self._now,
                    ),
                )
            return fate

    def _receipt_row(self, receipt: "Receipt") -> Transmission | None:
        """The transmission a receipt is about: by our echoed id, else by the provider's id; only a row of a
        campaign sent through the receipt's own profile (a receipt on another profile's URL names nothing)."""
        if receipt.transmission_id is not None:
            where, arg = "t.id = ?", receipt.transmission_id
        elif receipt.provider_id:
            where, arg = "t.provider_id = ?", receipt.provider_id
        else:
            return None
        row = self._conn.execute(
            f"SELECT {_T_TRANSMISSION_COLUMNS} FROM transmissions t JOIN campaigns c ON c.id = t.campaign_id "
            f"WHERE {where} AND c.provider = ? ORDER BY t.id LIMIT 1",
            (arg, receipt.profile),
        ).fetchone()
        return Transmission(*row) if row else None

    def _apply_receipt(self, receipt: "Receipt") -> "ReceiptFate":
        from bulksend.receipts import ReceiptFate

        row = self._receipt_row(receipt)
        plan = receipt_plan(receipt, row)
        if isinstance(plan, ReceiptFate):
            return plan
        assert row is not None
        from contextlib import nullcontext

        try:
            # A savepoint when the row is debited now: a debit that cannot be made leaves the receipt pending.
            with self._write() if "settle" in plan else nullcontext():
                if "settle" in plan:
                    self.mark_sent(row.id, receipt.provider_id or row.provider_id)
                if "report" in plan:
                    self.mark_report(row.id, str(receipt.state), receipt.code, receipt.text)
                self._conn.execute(
                    "UPDATE transmissions SET report_status = COALESCE(?, report_status), "
                    "reported_at = CASE WHEN ? THEN COALESCE(?, ?) ELSE reported_at END, "
                    "provider_id = COALESCE(provider_id, ?) WHERE id = ?",
                    (receipt.status, "report" in plan, receipt.reported_at, self._now, receipt.provider_id, row.id),
                )
                if "refund" in plan and self.transmission(row.id).debited:
                    self.refund(row.id)
                if "optout" in plan:
                    why = f"opted out at the provider ({receipt.profile}, code {receipt.code or receipt.status})"
                    self.add_optouts([row.e164], why, "provider")
        except InsufficientCredits:
            return ReceiptFate.PENDING
        if "refund" in plan:
            return ReceiptFate.REFUNDED
        return ReceiptFate.SETTLED if "settle" in plan else ReceiptFate.APPLIED

    def apply_pending_receipts(self, limit: int = 1000, max_tries: int = 10_000) -> dict[str, int]:
        from bulksend.receipts import Fault, Receipt, ReceiptFate, ReceiptState

        fates: dict[str, int] = {}
        with self._write():
            rows = self._conn.execute(
                "SELECT id, profile, state, provider_id, transmission_id, status, code, text, fault, opt_out, "
                "reported_at, exact_id FROM pending_receipts WHERE tries < ? ORDER BY id LIMIT ?",
                (max_tries, limit),
            ).fetchall()
            for (pid, profile, state, provider_id, tid, status, code, text, fault, opt_out, reported_at,
                 exact_id) in rows:
                receipt = Receipt(
                    profile, ReceiptState(state), provider_id, tid, status, code, text,
                    None if fault is None else Fault(fault), bool(opt_out), reported_at, bool(exact_id),
                )
                fate = self._apply_receipt(receipt)
                if fate is ReceiptFate.PENDING:
                    self._conn.execute("UPDATE pending_receipts SET tries = tries + 1 WHERE id = ?", (pid,))
                else:
                    self._conn.execute("DELETE FROM pending_receipts WHERE id = ?", (pid,))
                fates[str(fate)] = fates.get(str(fate), 0) + 1
        return fates

    def pending_receipt_count(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM pending_receipts").fetchone()[0]

    def record_inbound(self, message: "InboundMessage") -> bool:
        with self._write():
            kept = self._conn.execute(
                "INSERT INTO inbound_messages (profile, channel, sender, text, provider_id, keyword, opt_out, "
                "sent_at, received_at) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (profile, provider_id) DO NOTHING",
                (
                    message.profile, message.channel, message.sender, message.text, message.provider_id,
                    message.keyword, int(message.opt_out), message.received_at, self._now,
                ),
            ).rowcount
            if kept and message.opt_out and message.sender.startswith("+"):
                why = f"replied {message.keyword!r} ({message.profile})" if message.keyword else (
                    f"opted out at the provider ({message.profile})"
                )
                self.add_optouts([message.sender], why, "provider")
            return bool(kept)

    def inbound_messages(self, limit: int | None = None) -> list[dict]:
        sql = (
            "SELECT id, profile, channel, sender, text, provider_id, keyword, opt_out, sent_at, received_at "
            "FROM inbound_messages ORDER BY id DESC"
        )
        rows = self._conn.execute(sql + (" LIMIT ?" if limit is not None else ""), (limit,) if limit else ())
        names = ("id", "profile", "channel", "sender", "text", "provider_id", "keyword", "opt_out", "sent_at",
                 "received_at")
        return [dict(zip(names, r)) for r in rows]


_T_TRANSMISSION_COLUMNS = ", ".join(f"t.{c.strip()}" for c in _TRANSMISSION_COLUMNS.split(","))


def receipt_plan(receipt: "Receipt", row: Transmission | None) -> "list[str] | ReceiptFate":
    """What a receipt does to its row, as steps (``settle``: unknown → sent, debited once; ``report``: the final
    state; ``refund``; ``optout``; an empty list: only noted), or the fate when it changes nothing now.

    The one statement of the receipt rules; a storage only carries the steps out, in one transaction.
    """
    from bulksend.receipts import ReceiptFate, ReceiptState

    if row is None or row.state in ("queued", "sending"):
        return ReceiptFate.PENDING  # our commit may not have happened yet: keep it for later
    if receipt.exact_id and receipt.provider_id and row.provider_id and receipt.provider_id != row.provider_id:
        return ReceiptFate.IGNORED  # our id echoed for another message: never move a row on it
    if row.state == "failed":
        return ReceiptFate.IGNORED  # refused at the door: a receipt cannot make it sent
    if row.state in ("delivered", "undelivered"):
        return ReceiptFate.DUPLICATE  # the first final report stands (and refunds at most once)
    steps = ["settle"] if row.state == "unknown" else []
    if receipt.state is not ReceiptState.ACCEPTED:
        steps.append("report")
        if receipt.refundable:
            steps.append("refund")
    if receipt.opt_out:
        steps.append("optout")
    return steps


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
