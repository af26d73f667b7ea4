"""The ledger: credit lots, movements, holds, campaigns, transmissions and opt-outs; the rules, written once.

``Ledger`` holds every credit rule (carry-forward, earliest-expiry debits with the hold's share, refunds,
claims within the hold, expiries, the audit's arithmetic) and the transmission state machine, in Python.
It keeps its rows in a ``Store`` (``bulksend.stores``): ``SqliteStore`` (one file in the home, the
default) or ``PostgresStore`` (a server several senders share). Stores differ only in SQL, transactions,
locking and migrations; they decide nothing.

Transaction discipline: every write runs inside the store's write transaction, and every write
transaction first settles the credits that expired since the last one. Inside ``with
ledger.transaction():`` each operation runs in its own SAVEPOINT, so an operation that raises
(insufficient credits, a transition that is not allowed) leaves nothing behind and the rest of the batch
still commits. Reads (``balance``, ``audit``, ``suppressed``) never write. Every write that moves credits
of a channel first takes that channel's pool lock (``Store.lock_pool``), and a transition first locks its
transmission's row, so concurrent senders on one database never overspend nor lose an update.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from enum import StrEnum
from itertools import repeat
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bulksend import calendar
from bulksend.errors import InputError, InsufficientCredits, LedgerError
from bulksend.stores.base import LEDGER_ID, TABLES, Store, scrub_url  # noqa: F401 - LEDGER_ID is public here
from bulksend.stores.sqlite import BUSY_TIMEOUT_SECONDS, MIGRATIONS, SCHEMA_VERSION, SqliteStore  # noqa: F401

if TYPE_CHECKING:  # pragma: no cover
    from bulksend.config import Config
    from bulksend.receipts import InboundMessage, Receipt, ReceiptFate

class TransmissionState(StrEnum):
    """Where one message is: a StrEnum, so ``row.state == "sent"`` keeps working."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    UNKNOWN = "unknown"


class MovementKind(StrEnum):
    """What a line of the credit history did."""

    TOPUP = "topup"
    DEBIT = "debit"
    REFUND = "refund"
    HOLD = "hold"
    RELEASE = "release"
    EXPIRY = "expiry"
    REINSTATE = "reinstate"


class CampaignState(StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


T = TransmissionState
CHANNELS = ("sms", "whatsapp")
STATES = tuple(TransmissionState)
#: States in which the provider accepted the message: the transmission is debited.
ACCEPTED_STATES = (T.SENT, T.DELIVERED, T.UNDELIVERED)
#: States in which nothing more will be sent for the row.
DONE_STATES = (T.SENT, T.DELIVERED, T.UNDELIVERED, T.FAILED)
MOVEMENT_KINDS = tuple(MovementKind)
CAMPAIGN_STATES = tuple(CampaignState)
OPTOUT_SOURCES = ("manual", "import", "provider")

#: The state machine: each transition, the states it may leave, and where it goes (None: the caller says).
TRANSITIONS: dict[str, tuple[frozenset[TransmissionState], TransmissionState | None]] = {
    "claim": (frozenset({T.QUEUED}), T.SENDING),
    "sent": (frozenset({T.SENDING, T.UNKNOWN}), T.SENT),
    "retry": (frozenset({T.SENDING, T.UNKNOWN}), T.QUEUED),
    "defer": (frozenset({T.QUEUED, T.SENDING}), T.QUEUED),
    "unclaim": (frozenset({T.SENDING}), T.QUEUED),
    "failed": (frozenset({T.QUEUED, T.SENDING, T.UNKNOWN}), T.FAILED),
    "unknown": (frozenset({T.SENDING}), T.UNKNOWN),
    "report": (frozenset(ACCEPTED_STATES), None),
    "recover": (frozenset({T.SENDING}), T.UNKNOWN),
}
#: A row no limit can reach (LIMIT takes a number on both dialects).
_NO_LIMIT = 2**62


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
    kind: MovementKind
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
        if self.kind in (MovementKind.TOPUP, MovementKind.REFUND, MovementKind.REINSTATE):
            return self.amount
        if self.kind in (MovementKind.DEBIT, MovementKind.EXPIRY):
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
    state: CampaignState
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
    not_before: datetime | None = None  # deferred until then (quiet hours, a send time: bulksend/schedule.py)
    timezone: str | None = None  # the row's own zone (its timezone column), checked again when claimed


@dataclass(frozen=True, slots=True)
class Transmission:
    """One message to one number in one campaign, and where it is in the state machine."""

    id: int
    campaign_id: int
    e164: str
    state: TransmissionState
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
    timezone: str | None = None  # the row's timezone column (bulksend/schedule.py), when it had one
    report_status: str | None = None  # the provider's last status word from a receipt (docs/webhooks.md)
    reported_at: str | None = None  # when the final report happened (the provider's time, else when recorded)


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


def as_day(value: date | str) -> date:
    """A date from a store: PostgreSQL gives ``date``, SQLite ISO text."""
    return value if isinstance(value, date) else date.fromisoformat(value)


def _lot(row: Sequence) -> CreditLot:
    return CreditLot(row[0], row[1], row[2], row[3], row[4], as_day(row[5]), as_day(row[6]), row[7])


def _movement(row: Sequence) -> Movement:
    return Movement(
        row[0], MovementKind(row[1]), row[2], row[3], as_day(row[4]), row[5], row[6], row[7], row[8], row[9],
        row[10], row[11],
    )


def _campaign(row: Sequence | None) -> Campaign | None:
    if row is None:
        return None
    return Campaign(row[0], row[1], row[2], row[3], row[4], row[5], CampaignState(row[6]), row[7])


def _transmission(row: Sequence | None) -> Transmission | None:
    if row is None:
        return None
    return Transmission(row[0], row[1], row[2], TransmissionState(row[3]), *row[4:])


# ----------------------------------------------------------------------------------------- the clock


class Clock(Protocol):
    """Where the ledger reads the time: the current instant (aware). The ledger dates it in its own zone
    (``Ledger._today_and_now``); ``today`` is the clock's own date, for callers without a ledger."""

    def now(self) -> datetime: ...
    def today(self) -> date: ...


class SystemClock:
    """The machine's clock: UTC instants, the local calendar date."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def today(self) -> date:
        return date.today()


class FixedClock:
    """A clock that stands still until told to move (tests); ``today`` is the instant's date in UTC."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self.moment

    def today(self) -> date:
        return self.moment.astimezone(timezone.utc).date()

    def move_to(self, moment: datetime) -> None:
        self.moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)

    def shift(self, delta: timedelta) -> None:
        self.moment += delta


# ---------------------------------------------------------------------------------------- the ledger


class Ledger:
    """The credit rules and the state machine over one ``Store``; what the rest of bulksend calls.

    Every write is atomic on its own; ``transaction()`` groups many writes into one commit. Credits are
    integers. "Now" comes from ``clock`` and "today" is now's date in the ledger's own time zone (meta key
    ``timezone``, ``bulksend.calendar``), both read once when a write transaction begins
    (``_today_and_now``). Use a ledger from one thread at a time.
    """

    #: Called after every committed write transaction (the home's record of the ledger keeps up with it).
    on_commit: Callable[[], None] | None = None

    def __init__(
        self, store: Store, *, clock: Clock | None = None, home: Path | None = None, zone: str | None = None
    ) -> None:
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self._zone = zone  # [credits] timezone: recorded when the ledger has no zone yet
        self._calendar: calendar.Calendar | None = None  # once read from (or recorded in) the ledger
        #: The ledger's file (SQLite), else None.
        self.path: Path | None = store.path
        #: The home whose runs use this ledger: where attempt journals and campaign locks live.
        self.home: Path | None = home if home is not None else (store.path.parent if store.path else None)
        self._depth = 0
        self._day: date | None = None  # today, inside a write transaction
        self._stamp: str | None = None  # now as UTC text, inside a write transaction

    @property
    def location(self) -> str:
        """Where the ledger is, fit to print (a file path, or a URL without its password)."""
        return self.store.location

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- time and transactions ---------------------------------------------------------------------

    def _today_and_now(self) -> tuple[date, datetime]:
        """The one place the ledger reads the time: the current instant, and its date in the ledger's zone.

        Inside a write, a ledger that has no zone yet records one (``[credits] timezone``, else the machine's).
        """
        now = self.clock.now()
        return now.astimezone(self.calendar(record=self._depth > 0).tzinfo).date(), now

    def calendar(self, *, record: bool = False) -> calendar.Calendar:
        """The ledger's calendar (its time zone's days); ``record`` (in a write) records a missing zone."""
        if self._calendar is not None:
            return self._calendar
        found, settled = calendar.ledger_calendar(self, self._zone, record=record)
        found = calendar.Calendar(found.zone, clock=self.clock.now)
        if settled:  # a zone recorded just now may still roll back: cache it from the next read on
            self._calendar = found
        return found

    def _read_today(self) -> date:
        return self._day if self._depth else self._today_and_now()[0]

    @contextmanager
    def transaction(self) -> Iterator["Ledger"]:
        """Group writes into one atomic commit (``with ledger.transaction():``)."""
        if self._depth:
            with self._write():
                yield self
            return
        with self.store.write():
            self._depth = 1
            try:
                today, now = self._today_and_now()
                self._day, self._stamp = today, utc_timestamp(now)
                self._settle_expiries()
                yield self
            finally:
                self._depth = 0
        if self.on_commit is not None:
            self.on_commit()

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One operation: its own transaction, or a savepoint inside the caller's."""
        if not self._depth:
            with self.transaction():
                yield
            return
        self._depth += 1
        try:
            with self.store.savepoint():
                yield
        finally:
            self._depth -= 1

    def meta(self, key: str) -> str | None:
        """A fact recorded about the ledger itself (see ``set_meta``), or None."""
        return self.store.scalar("meta_get", key=key)

    def set_meta(self, key: str, value: str) -> None:
        """Record a fact about the ledger itself (its identity, its calendar's zone), in a write."""
        with self._write():
            self.store.execute("meta_set", key=key, value=value)

    # -- identity, integrity, backups (see docs/ledger.md, "Backup and recovery") -------------------

    def high_water(self) -> HighWater:
        """The highest campaign, transmission and movement ids (a read)."""
        return HighWater(*self.store.high_water())

    def integrity(self) -> list[str]:
        """The storage's own consistency check: what is damaged, or an empty list."""
        return self.store.integrity()

    def backup(self, target: Path) -> None:
        """Write a consistent copy of the whole ledger to ``target`` (owner-only, atomically), while in use.

        A server's ledger is backed up with the server's tools: InputError saying so (exit 2)."""
        self.store.backup(target)

    # -- movements and expiries --------------------------------------------------------------------

    def _movement(
        self,
        kind: MovementKind,
        channel: str,
        amount: int,
        on: date | None = None,
        *,
        lot_id: int | None = None,
        campaign_id: int | None = None,
        transmission_id: int | None = None,
        from_hold: int = 0,
        ref: str | None = None,
        note: str | None = None,
    ) -> None:
        self.store.execute(
            "insert_movement", kind=kind.value, channel=channel, amount=amount,
            on_date=str(self._day if on is None else on), now=self._stamp, lot_id=lot_id,
            campaign_id=campaign_id, transmission_id=transmission_id, from_hold=from_hold, ref=ref, note=note,
        )

    def _save_lot(self, lot_id: int, remaining: int, expired: int, expires_on: date | str) -> None:
        self.store.execute(
            "update_lot", id=lot_id, remaining=remaining, expired=expired, expires_on=str(as_day(expires_on))
        )

    def _settle_expiries(self) -> None:
        """Record, as expiry movements dated on their expiry day, credits whose day has come."""
        today = str(self._day)
        channels = [r[0] for r in self.store.all("channels_due_to_expire", today=today)]
        if not channels:
            return
        for channel in channels:  # in name order: two settling writers never wait on each other in a cycle
            self.store.lock_pool(channel)
        for lot_id, channel, remaining, expired, expires_on in self.store.all("lots_due_to_expire", today=today):
            self._save_lot(lot_id, 0, expired + remaining, expires_on)
            self._movement(MovementKind.EXPIRY, channel, remaining, as_day(expires_on), lot_id=lot_id)

    def settle(self) -> None:
        """Record the expiries that are due (every write does this first; history calls it explicitly)."""
        with self._write():
            pass

    # -- credits -----------------------------------------------------------------------------------

    def topup(self, channel: str, amount: int, on: date | None = None, ref: str | None = None) -> TopUp:
        channel = check_channel(channel)
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise InputError(f"a top-up is a positive whole number of credits, not {amount!r}.")
        ref = ref.strip() if ref else None
        with self._write():
            today = self._day
            on = today if on is None else on
            if on > today:
                raise InputError(f"the top-up date {on} is in the future (today is {today}); nothing recorded.")
            expires = add_year(on)
            if expires <= today:
                raise InputError(f"credits bought on {on} expired on {expires}; nothing recorded.")
            self.store.lock_pool(channel)
            if ref is not None:
                used = self.store.one("lot_by_ref", ref=ref)
                if used:
                    raise InputError(
                        f"reference {ref!r} was already used by the top-up of {used[0]} {used[1]} credits "
                        f"on {as_day(used[2])}; nothing recorded."
                    )
            brought = reinstated = 0
            # Every lot still valid on the purchase day and expiring before the new lot moves to its expiry.
            # Lots whose expiry was already recorded after a backdated purchase day come back (reinstate).
            for lot_id, remaining, expired in self.store.all(
                "lots_to_bring_forward", channel=channel, on=str(on), expires=str(expires)
            ):
                if expired:
                    self._movement(MovementKind.REINSTATE, channel, expired, lot_id=lot_id, note=f"purchase of {on}")
                    reinstated += expired
                brought += remaining + expired
                self._save_lot(lot_id, remaining + expired, 0, expires)
            lot_id = self.store.scalar(
                "insert_lot", channel=channel, amount=amount, purchased_on=str(on), expires_on=str(expires),
                ref=ref, now=self._stamp,
            )
            note = f"expires {expires}"
            if brought:
                note += f"; brought {brought} credits forward"
            self._movement(MovementKind.TOPUP, channel, amount, on, lot_id=lot_id, ref=ref, note=note)
            lot = CreditLot(lot_id, channel, amount, amount, 0, on, expires, ref)
        return TopUp(lot, brought, reinstated)

    def balance(self, channel: str | None = None) -> dict[str, ChannelBalance]:
        channels = CHANNELS if channel is None else (check_channel(channel),)
        today = str(self._read_today())
        with self.store.snapshot():
            lots = self.store.all("unexpired_by_expiry", today=today)
            holds = dict(self.store.all("held_by_channel"))
        return {
            name: ChannelBalance(
                name,
                total=sum(r[2] for r in lots if r[0] == name),
                held=holds.get(name, 0),
                expiring=tuple(Expiring(r[2], as_day(r[1])) for r in lots if r[0] == name),
            )
            for name in channels
        }

    def lots(self, channel: str | None = None) -> list[CreditLot]:
        if channel is None:
            return [_lot(r) for r in self.store.all("all_lots")]
        return [_lot(r) for r in self.store.all("lots_of_channel", channel=check_channel(channel))]

    def history(self, channel: str | None = None, since: date | None = None) -> list[Movement]:
        self.settle()
        return [
            _movement(r)
            for r in self.store.all(
                "history",
                channel=None if channel is None else check_channel(channel),
                since=None if since is None else str(since),
            )
        ]

    def _available(self, channel: str) -> tuple[int, int]:
        """(unexpired credits, total held) of a channel, inside a write that holds the channel's pool lock."""
        total = self.store.scalar("channel_total", channel=channel, today=str(self._day))
        held = self.store.scalar("channel_held", channel=channel)
        return total, held

    # -- campaigns and holds -----------------------------------------------------------------------

    def open_campaign(
        self, name: str, channel: str, provider: str, fingerprint: str, attestation: str | None = None
    ) -> Campaign:
        channel = check_channel(channel)
        with self._write():
            campaign = _campaign(self.store.one("campaign_by_name", name=name))
            if campaign is None:
                # ON CONFLICT DO NOTHING: a sender that created it a moment ago wins, and is checked below.
                self.store.execute(
                    "insert_campaign", name=name, channel=channel, provider=provider, fingerprint=fingerprint,
                    attestation=attestation, now=self._stamp,
                )
                created = _campaign(self.store.one("campaign_by_name", name=name))
                if created.fingerprint == fingerprint and created.channel == channel:
                    return created
                campaign = created
            if campaign.channel != channel:
                raise InputError(
                    f"campaign {name!r} sends on {campaign.channel}, not {channel}.",
                    hint="Give the new campaign another name (--name).",
                )
            if campaign.fingerprint != fingerprint:
                raise InputError(
                    f"campaign {name!r} was started with a different recipient file or message; "
                    "resuming it with these would mix two campaigns.",
                    hint="Give the new campaign another name (--name), or run the original files again.",
                )
            return campaign

    def get_campaign(self, key: int | str) -> Campaign | None:
        if isinstance(key, int):
            return _campaign(self.store.one("campaign_by_id", id=key))
        return _campaign(self.store.one("campaign_by_name", name=key))

    def _require_campaign(self, campaign_id: int) -> Campaign:
        campaign = _campaign(self.store.one("campaign_by_id", id=campaign_id))
        if campaign is None:
            raise LedgerError(f"no campaign with id {campaign_id} in the ledger.")
        return campaign

    def campaigns(self) -> list[Campaign]:
        return [_campaign(r) for r in self.store.all("all_campaigns")]

    def set_campaign_state(self, campaign_id: int, state: str) -> None:
        if state not in CAMPAIGN_STATES:
            raise LedgerError(f"unknown campaign state {state!r}.")
        with self._write():
            self._require_campaign(campaign_id)
            self.store.execute("set_campaign_state", id=campaign_id, state=str(state), now=self._stamp)

    def hold(self, campaign_id: int, channel: str, amount: int) -> Hold:
        channel = check_channel(channel)
        if amount < 0:
            raise LedgerError(f"cannot hold a negative amount ({amount}).")
        with self._write():
            campaign = self._require_campaign(campaign_id)
            if campaign.channel != channel:
                raise LedgerError(f"campaign {campaign.name!r} sends on {campaign.channel}, not {channel}.")
            if amount:
                self.store.lock_pool(channel)
                total, held = self._available(channel)
                available = max(0, total - held)
                if amount > available:
                    raise InsufficientCredits(
                        f"campaign {campaign.name!r} needs {amount} {channel} credits but {available} are "
                        f"available: {amount - available} short.",
                        hint=f"Top up with: bulksend credits topup N --channel {channel}",
                    )
                self.store.execute(
                    "save_hold", campaign_id=campaign_id, channel=channel,
                    amount=self.held(campaign_id) + amount, now=self._stamp,
                )
                self._movement(MovementKind.HOLD, channel, amount, campaign_id=campaign_id)
            return Hold(campaign_id, channel, self.held(campaign_id))

    def hold_shortfall(self, campaign_id: int) -> int:
        """Hold what the campaign may still spend and its hold does not cover yet, in one step under the
        pool lock (senders joining at once never hold twice); returns what was added."""
        with self._write():
            channel = self._channel_of(campaign_id)
            self.store.lock_pool(channel)
            need = self._may_still_spend(campaign_id) - self.held(campaign_id)
            if need <= 0:
                return 0
            self.hold(campaign_id, channel, need)
            return need

    def trim_hold(self, campaign_id: int) -> int:
        """Release what the hold has beyond what the campaign may still spend (rows queued, sending or
        unknown), under the pool lock: on a shared ledger other senders may still be paying from it."""
        with self._write():
            row = self.store.one("hold_of", campaign_id=campaign_id)
            if not row or not row[1]:
                return 0
            self.store.lock_pool(row[0])
            channel, amount = self.store.one("hold_of", campaign_id=campaign_id)
            excess = amount - self._may_still_spend(campaign_id)
            if excess <= 0:
                return 0
            self.store.execute("save_hold", campaign_id=campaign_id, channel=channel, amount=amount - excess,
                               now=self._stamp)
            self._movement(MovementKind.RELEASE, channel, excess, campaign_id=campaign_id)
            return excess

    def _may_still_spend(self, campaign_id: int) -> int:
        """What the hold must still cover: the outstanding cost; once the campaign is cancelled, only the rows a
        sender has in flight under a live lease (a shared ledger: a sender of another home kept running, and
        its requests may be accepted), so they are paid from the hold and nothing more is claimed."""
        if self._require_campaign(campaign_id).state != "cancelled":
            return self.outstanding_cost(campaign_id)
        return self.store.scalar("cost_in_flight", campaign_id=campaign_id) if self.store.leases else 0

    def held(self, campaign_id: int) -> int:
        row = self.store.one("hold_of", campaign_id=campaign_id)
        return row[1] if row else 0

    def release(self, campaign_id: int) -> int:
        with self._write():
            row = self.store.one("hold_of", campaign_id=campaign_id)
            if not row or not row[1]:
                return 0
            self.store.lock_pool(row[0])
            channel, amount = self.store.one("hold_of", campaign_id=campaign_id)  # again, under the lock
            if not amount:
                return 0
            self.store.execute("save_hold", campaign_id=campaign_id, channel=channel, amount=0, now=self._stamp)
            self._movement(MovementKind.RELEASE, channel, amount, campaign_id=campaign_id)
            return amount

    # -- transmissions -----------------------------------------------------------------------------

    def add_transmissions(self, campaign_id: int, rows: Iterable[NewTransmission]) -> int:
        """Queue ``rows`` for the campaign; a number it already has is skipped. Returns how many were added."""
        rows = list(rows)
        return self.add_transmission_columns(
            campaign_id,
            [r.e164 for r in rows], [r.message for r in rows], [r.units for r in rows], [r.cost for r in rows],
            row_number=[r.row_number for r in rows], country=[r.country for r in rows],
            params=[r.params for r in rows], not_before=[r.not_before for r in rows],
            timezone=[r.timezone for r in rows],
        )

    def add_transmission_columns(
        self,
        campaign_id: int,
        e164: Sequence[str],
        message: Sequence[str],
        units: Sequence[int],
        cost: Sequence[int],
        *,
        row_number: Sequence[int | None] | None = None,
        country: Sequence[str | None] | None = None,
        params: Sequence[str | None] | None = None,
        not_before: Sequence[datetime | None] | None = None,
        timezone: Sequence[str | None] | None = None,
    ) -> int:
        """``add_transmissions`` of the rows given as columns (the fields of ``NewTransmission``, one list each,
        all as long; a column left out is None for every row): how ``send`` queues a list, with no object per
        row. ``add_transmissions`` is this, so both write the same rows."""
        count = len(e164)
        if any(len(column) != count for column in (message, units, cost)) or any(
            column is not None and len(column) != count
            for column in (row_number, country, params, not_before, timezone)
        ):
            raise ValueError("add_transmission_columns: the columns differ in length")
        if not_before is not None:  # a few distinct moments (one per zone set): each formatted once
            stamps: dict[datetime | None, str | None] = {None: None}
            not_before = [
                stamps[moment] if moment in stamps else stamps.setdefault(moment, utc_timestamp(moment))
                for moment in not_before
            ]
        with self._write():
            self._require_campaign(campaign_id)
            return self.store.many_rows(
                "insert_transmission",
                ("campaign_id", "now", "e164", "message", "units", "cost", "row_number", "country", "params",
                 "not_before", "timezone"),
                zip(repeat(campaign_id, count), repeat(self._stamp, count), e164, message, units, cost,
                    row_number if row_number is not None else repeat(None, count),
                    country if country is not None else repeat(None, count),
                    params if params is not None else repeat(None, count),
                    not_before if not_before is not None else repeat(None, count),
                    timezone if timezone is not None else repeat(None, count)),
            )

    def claim(
        self, campaign_id: int, limit: int, now: datetime | None = None, *, within_hold: bool = True,
        sender: str | None = None, lease: float = 60.0,
    ) -> list[Transmission]:
        """Due ``queued`` rows become ``sending`` (committed before any request): at most ``limit``, and
        with ``within_hold`` only as many as the campaign's hold can pay, less what is already in flight.

        On a ledger several senders share (``store.leases``), ``sender`` claims the rows for ``lease``
        seconds (renewed by :meth:`renew_leases`); when the lease runs out another sender may settle them."""
        sources, target = TRANSITIONS["claim"]
        with self._write():
            moment = self._stamp if now is None else utc_timestamp(now)
            hold = None
            if within_hold:
                # The pool, then the hold row: the order every debit takes them in, so no two writers wait
                # on each other in a cycle.
                self.store.lock_pool(self._channel_of(campaign_id))
                hold = self.store.one("hold_for_update", campaign_id=campaign_id)
            candidates = self.store.all(
                "claim_candidates", campaign_id=campaign_id, state=next(iter(sources)).value, now=moment, limit=limit
            )
            if within_hold:
                # Claimed rows must be paid from the campaign's own hold, never from another campaign's.
                room = (hold[1] if hold else 0) - self.store.scalar(
                    "cost_in_state", campaign_id=campaign_id, states=[T.SENDING.value]
                )
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
            self.store.execute("set_state_of_ids", state=target.value, now=self._stamp, ids=taken)
            if sender is not None and self.store.leases:
                self.store.execute("lease_rows", ids=taken, sender=sender, lease=float(lease))
            return [_transmission(r) for r in self.store.all("transmissions_by_ids", ids=taken)]

    def _locked(self, transmission_id: int) -> Transmission:
        row = self.store.one("transmission_for_update", id=transmission_id)
        if row is None:
            raise LedgerError(f"no transmission with id {transmission_id} in the ledger.")
        return _transmission(row)

    def _transition(self, transmission_id: int, name: str, target: TransmissionState | None = None) -> Transmission:
        """The row, locked, if the state machine lets ``name`` move it; else a LedgerError naming both states."""
        sources, default = TRANSITIONS[name]
        target = target or default
        row = self._locked(transmission_id)
        if row.state not in sources:
            raise LedgerError(f"transmission {transmission_id} is {row.state}: it cannot become {target}.")
        return row

    def _save(self, row: Transmission) -> None:
        self.store.execute("save_transmission", **self._saved(row))

    def _saved(self, row: Transmission) -> dict:
        return dict(
            id=row.id, state=row.state.value, attempts=row.attempts, not_before=row.not_before, cost=row.cost,
            provider_id=row.provider_id, error_code=row.error_code, error_text=row.error_text, debited=row.debited,
            refunded=row.refunded, sent_at=row.sent_at, now=self._stamp,
        )

    def _channel_of(self, campaign_id: int) -> str:
        return self._require_campaign(campaign_id).channel

    def mark_sent(self, transmission_id: int, provider_id: str | None, *, cost: int | None = None) -> int:
        """The provider accepted the message: move it to ``sent`` and debit its cost, atomically."""
        return self.mark_sent_many([(transmission_id, provider_id, cost)])

    def mark_sent_many(self, accepted: Sequence[tuple[int, str | None, int | None]]) -> int:
        """Several accepted messages, ``(id, provider id, cost or None for the row's own)``, in one step: each
        moves to ``sent`` and is debited exactly as :meth:`mark_sent` would one after the other; the total cost.

        The shared credit rows (the channel's pool, its lots, the campaign's hold) are locked and written last,
        in a few statements, not once per message: senders sharing a ledger queue on them, so the part of a
        batch's transaction others wait for stays short. All or nothing: a debit that cannot be made raises
        and nothing of the batch is recorded."""
        if not accepted:
            return 0
        with self._write():
            # The batch's rows read and locked at once (in id order), then checked one by one as the state
            # machine would check each in turn.
            ids = [transmission_id for transmission_id, _, _ in accepted]
            found = {r[0]: _transmission(r) for r in self.store.all("transmissions_for_update_by_ids", ids=ids)}
            sources = TRANSITIONS["sent"][0]
            rows: list[Transmission] = []
            seen: set[int] = set()
            for transmission_id, provider_id, cost in accepted:
                if transmission_id in seen:  # what the same id twice, one after the other, would find
                    raise LedgerError(f"transmission {transmission_id} is sent: it cannot become sent.")
                seen.add(transmission_id)
                row = found.get(transmission_id)
                if row is None:
                    raise LedgerError(f"no transmission with id {transmission_id} in the ledger.")
                if row.state not in sources:
                    raise LedgerError(f"transmission {transmission_id} is {row.state}: it cannot become sent.")
                cost = row.cost if cost is None else cost
                if cost < 0:
                    raise LedgerError(f"a debit cannot be negative ({cost}).")
                rows.append(replace(
                    row, state=T.SENT, provider_id=provider_id, cost=cost, debited=cost, sent_at=self._stamp,
                    not_before=None, error_code=None, error_text=None,
                ))
            # The messages' own rows first (locked above, no other writer waits on them), in one batch.
            self.store.many("save_transmission", (self._saved(row) for row in rows))
            channels = {cid: self._channel_of(cid) for cid in dict.fromkeys(r.campaign_id for r in rows if r.cost)}
            self._debit([(row.id, row.campaign_id, channels[row.campaign_id], row.cost) for row in rows if row.cost])
            return sum(row.cost for row in rows)

    def _debit(self, debits: Sequence[tuple[int, int, str, int]]) -> None:
        """Debits ``(transmission, campaign, channel, cost)`` in order, each taking its cost from the
        earliest-expiring lots; the campaign's hold pays what it covers, the rest may come only from credits
        nobody holds. Reads the pools, holds and lots once, decides every debit, then writes them."""
        if not debits:
            return
        pools = sorted({channel for _, _, channel, _ in debits})
        for channel in pools:  # in name order: two writers never wait on each other in a cycle
            self.store.lock_pool(channel)
        held = {cid: self.held(cid) for cid in dict.fromkeys(cid for _, cid, _, _ in debits)}
        lots = {channel: [list(r) for r in self.store.all("spendable_lots", channel=channel, today=str(self._day))]
                for channel in pools}  # [id, remaining, expired, expires_on], earliest expiry first
        # What each channel's holds paid so far in this call; the channel's total held is read when needed.
        paid_from_holds = dict.fromkeys(pools, 0)
        all_held: dict[str, int] = {}
        touched: dict[int, list] = {}
        movements = []
        from_holds: dict[int, tuple[str, int]] = {}  # campaign: (channel, what its hold paid)
        for transmission_id, campaign_id, channel, cost in debits:
            from_hold = min(cost, held[campaign_id])
            taken: list[tuple[list, int]] = []
            need = cost
            for lot in lots[channel]:
                if not lot[1]:
                    continue
                part = min(need, lot[1])
                taken.append((lot, part))
                need -= part
                if not need:
                    break
            if need or cost > from_hold:
                if channel not in all_held:
                    all_held[channel] = self.store.scalar("channel_held", channel=channel)
                total = sum(lot[1] for lot in lots[channel])  # what channel_total would read now
                still_held = all_held[channel] - paid_from_holds[channel]
                usable = min(total, from_hold + max(0, total - still_held))
                if cost > usable:
                    raise InsufficientCredits(
                        f"transmission {transmission_id} costs {cost} {channel} credits but {usable} are "
                        f"available to it: {cost - usable} short."
                    )
            left_from_hold = from_hold
            for lot, part in taken:
                lot[1] -= part
                touched[lot[0]] = lot
                share = min(part, left_from_hold)
                left_from_hold -= share
                movements.append(dict(
                    kind=MovementKind.DEBIT.value, channel=channel, amount=part, on_date=str(self._day),
                    now=self._stamp, lot_id=lot[0], campaign_id=campaign_id, transmission_id=transmission_id,
                    from_hold=share, ref=None, note=None,
                ))
            held[campaign_id] -= from_hold
            from_holds[campaign_id] = (channel, from_holds.get(campaign_id, (channel, 0))[1] + from_hold)
            paid_from_holds[channel] += from_hold
        for lot_id, remaining, expired, expires_on in touched.values():
            self._save_lot(lot_id, remaining, expired, expires_on)
        self.store.many("insert_movement", movements)
        for campaign_id, (channel, paid) in from_holds.items():
            if paid:
                self.store.execute(
                    "save_hold", campaign_id=campaign_id, channel=channel, amount=held[campaign_id], now=self._stamp
                )

    def mark_retry(
        self, transmission_id: int, not_before: datetime, code: str | None = None, text: str | None = None
    ) -> None:
        """A retryable outcome: back to ``queued`` until ``not_before``, one more attempt used."""
        with self._write():
            row = self._transition(transmission_id, "retry")
            self._save(replace(
                row, state=T.QUEUED, attempts=row.attempts + 1, not_before=utc_timestamp(not_before),
                error_code=code, error_text=text,
            ))

    def defer(
        self, transmission_id: int, until: datetime, code: str | None = None, text: str | None = None
    ) -> None:
        """The row waits until ``until`` (quiet hours, a send time) without using an attempt.

        A ``queued`` row keeps waiting; a ``sending`` row that was never handed to the provider goes back.
        ``code``/``text``, when given, say why (else the last outcome's are kept).
        """
        with self._write():
            row = self._transition(transmission_id, "defer")
            self._save(replace(
                row, state=T.QUEUED, not_before=utc_timestamp(until),
                error_code=row.error_code if code is None else code,
                error_text=row.error_text if text is None else text,
            ))

    def recent_sends(
        self, numbers: Iterable[str] | None, channel: str, since: datetime, *, other_than: int | None = None
    ) -> dict[str, list[datetime]]:
        """When each number was sent to on ``channel`` after ``since``, across campaigns (frequency caps).

        Counts accepted rows by ``sent_at`` and rows in flight (``sending``, ``unknown``) by when they were
        claimed, so two campaigns claiming the same number at once see each other. ``other_than``: a
        campaign to leave out (the one claiming). Inside a write transaction the numbers are locked first
        (``Store.lock_numbers``) and stay so until it ends: the claim that asks and its decision are one
        step, so two campaigns claiming the same number at once cannot both slip under the cap.
        """
        params = dict(channel=channel, since=utc_timestamp(since), other_than=-1 if other_than is None else other_than)
        if numbers is None:  # every number sent to lately (validation: the file is checked against this)
            rows = self.store.all("recent_sends_all", **params)
        else:
            wanted = list(dict.fromkeys(numbers))
            if not wanted:
                return {}
            if self._depth:  # inside a write transaction (a claim's): lock, then count
                self.store.lock_numbers(wanted)
            rows = self.store.all("recent_sends", numbers=wanted, **params)
        found: dict[str, list[datetime]] = {}
        for e164, when in rows:
            found.setdefault(e164, []).append(
                datetime.strptime(when, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
            )
        return found

    def mark_failed(self, transmission_id: int, code: str | None, text: str | None) -> None:
        with self._write():
            row = self._transition(transmission_id, "failed")
            self._save(replace(row, state=T.FAILED, error_code=code, error_text=text))

    def mark_unknown(self, transmission_id: int, code: str | None = None, text: str | None = None) -> None:
        with self._write():
            row = self._transition(transmission_id, "unknown")
            self._save(replace(row, state=T.UNKNOWN, error_code=code, error_text=text))

    def mark_report(
        self, transmission_id: int, state: str, code: str | None = None, text: str | None = None
    ) -> None:
        """A delivery report for an accepted message: ``delivered`` or ``undelivered``."""
        if state not in (T.DELIVERED, T.UNDELIVERED):
            raise LedgerError(f"a delivery report is delivered or undelivered, not {state!r}.")
        target = TransmissionState(state)
        with self._write():
            row = self._transition(transmission_id, "report", target)
            self._save(replace(row, state=target, error_code=code, error_text=text))

    def refund(self, transmission_id: int, note: str | None = None) -> int:
        """Give a debited transmission's credits back to the lots they came from; 0 if already refunded.

        ``note`` says why (a receipt's error code), on every refund movement."""
        with self._write():
            row = self._locked(transmission_id)
            if row.refunded:
                return 0
            if not row.debited:
                raise LedgerError(f"transmission {transmission_id} was never debited: there is nothing to refund.")
            channel = self._channel_of(row.campaign_id)
            self.store.lock_pool(channel)
            for lot_id, amount in self.store.all("debits_of_transmission", transmission_id=transmission_id):
                lot = _lot(self.store.one("lot_by_id", id=lot_id))
                self._movement(
                    MovementKind.REFUND, channel, amount, lot_id=lot_id, campaign_id=row.campaign_id,
                    transmission_id=transmission_id, note=note,
                )
                if lot.expires_on <= self._day:  # back with the expiry the credits had: already gone
                    self._save_lot(lot_id, lot.remaining, lot.expired + amount, lot.expires_on)
                    self._movement(MovementKind.EXPIRY, channel, amount, lot_id=lot_id, note="refunded after expiry")
                else:
                    self._save_lot(lot_id, lot.remaining + amount, lot.expired, lot.expires_on)
            self._save(replace(row, refunded=row.debited))
            return row.debited

    def renew_leases(self, campaign_id: int, sender: str, lease: float) -> set[int]:
        """Push back the lease of every row ``sender`` has in flight; the ids renewed (a shared ledger; else none).

        A row the sender claimed that is not among them is no longer its own: its lease ran out and another
        sender settled it, so no request may start for it."""
        if not self.store.leases:
            return set()
        with self._write():
            return {row_id for (row_id,) in self.store.all(
                "renew_leases", campaign_id=campaign_id, sender=sender, lease=float(lease)
            )}

    def lost_claims(self, transmission_ids: Sequence[int], sender: str) -> dict[int, TransmissionState]:
        """On a shared ledger, the rows of ``transmission_ids`` that ``sender`` no longer holds (no longer
        ``sending`` under its claim: its lease ran out and another sender settled or claimed them), each with
        its state now. Every row asked about stays locked until the transaction ends. Empty on SQLite."""
        if not self.store.leases or not transmission_ids:
            return {}
        with self._write():
            return {
                row_id: TransmissionState(state)
                for row_id, state, held in self.store.all("claims_of_ids", ids=list(transmission_ids), sender=sender)
                if not held
            }

    def sending_to_recover(self, campaign_id: int, *, home: str, sender: str) -> list[tuple[int, bool]]:
        """On a shared ledger, the ``sending`` rows this sender may settle, each with whether it was claimed
        from ``home`` (a prefix of ``claimed_by``): rows whose lease expired, and the home's own rows (the
        home lock says their run is over); never rows another live sender holds, nor ``sender``'s own.
        Inside a transaction the rows stay locked until it ends."""
        with self._write():
            return [(row_id, bool(ours)) for row_id, ours in self.store.all(
                "sending_to_recover", campaign_id=campaign_id, home=home, sender=sender
            )]

    def live_leases_of_others(self, campaign_id: int, sender: str) -> int:
        """Rows of the campaign other senders have in flight under a lease that still holds (0 on SQLite)."""
        if not self.store.leases:
            return 0
        return self.store.scalar("live_leases_of_others", campaign_id=campaign_id, sender=sender)

    def recover_sending(self, campaign_id: int, ids: Iterable[int] | None = None) -> int:
        """Rows a crashed run left ``sending`` become ``unknown``: they may have been accepted.
        ``ids``: only those rows (a shared ledger's recovery never touches rows of a live sender)."""
        sources, target = TRANSITIONS["recover"]
        if ids is not None:
            ids = list(ids)
            if not ids:
                return 0
            with self._write():
                return sum(
                    self.store.execute(
                        "move_rows_of_ids", ids=ids, source=source.value, target=target.value,
                        error_code=None, error_text="interrupted while sending", now=self._stamp,
                    )
                    for source in sorted(sources)
                )
        with self._write():
            return sum(
                self.store.execute(
                    "move_campaign_rows", campaign_id=campaign_id, source=source.value, target=target.value,
                    error_code=None, error_text="interrupted while sending", now=self._stamp,
                )
                for source in sorted(sources)
            )

    def unclaim(
        self, transmission_ids: Iterable[int], code: str | None = None, text: str | None = None, *,
        sender: str | None = None,
    ) -> int:
        """Claimed rows that were never handed to the provider go back to ``queued``; attempts unchanged.
        Rows no longer ``sending`` are left alone, and so, on a shared ledger, are rows ``sender`` no longer
        holds (its lease ran out and another sender settled or claimed them); returns how many went back."""
        sources, target = TRANSITIONS["unclaim"]
        changed = 0
        with self._write():
            for transmission_id in transmission_ids:
                row = _transmission(self.store.one("transmission_for_update", id=transmission_id))
                if row is None or row.state not in sources:
                    continue
                if sender is not None and self.store.leases:
                    if self.store.scalar("claimed_by", id=transmission_id) != sender:
                        continue  # its lease ran out and another sender holds it now
                self._save(replace(
                    row, state=target,
                    error_code=row.error_code if code is None else code,
                    error_text=row.error_text if text is None else text,
                ))
                changed += 1
        return changed

    def transmission(self, transmission_id: int) -> Transmission | None:
        return _transmission(self.store.one("transmission_by_id", id=transmission_id))

    def find_by_provider_id(self, provider_id: str) -> Transmission | None:
        return _transmission(self.store.one("transmission_by_provider_id", provider_id=provider_id))

    def transmissions(
        self, campaign_id: int, states: Sequence[str] | None = None, limit: int | None = None
    ) -> list[Transmission]:
        limit = _NO_LIMIT if limit is None else limit
        if states:
            rows = self.store.all(
                "transmissions_in_states", campaign_id=campaign_id, states=[str(s) for s in states], limit=limit
            )
        else:
            rows = self.store.all("transmissions_of_campaign", campaign_id=campaign_id, limit=limit)
        return [_transmission(r) for r in rows]

    def transmission_page(
        self, campaign_id: int, after_id: int = 0, limit: int = 1000, states: Sequence[str] | None = None
    ) -> list[Transmission]:
        """Up to ``limit`` of the campaign's transmissions with an id above ``after_id``, in id order.

        Keyset paging: a reader never holds a whole campaign, and rows that change state meanwhile (a
        receipt, a run) neither shift the pages nor appear twice.
        """
        if states:
            rows = self.store.all("transmission_page_in_states", campaign_id=campaign_id, after_id=after_id,
                                  limit=limit, states=[str(s) for s in states])
        else:
            rows = self.store.all("transmission_page", campaign_id=campaign_id, after_id=after_id, limit=limit)
        return [_transmission(r) for r in rows]

    def counts(self, campaign_id: int) -> dict[str, int]:
        return dict(self.store.all("counts_by_state", campaign_id=campaign_id))

    def failure_codes(self, campaign_id: int) -> dict[str, int]:
        """Failed rows by error code (``None`` for a failure without one), most frequent first."""
        return dict(self.store.all("failure_codes", campaign_id=campaign_id, state=T.FAILED.value))

    def campaign_credits(self, campaign_id: int) -> tuple[int, int]:
        """(credits debited, credits refunded) over the campaign's transmissions."""
        debited, refunded = self.store.one("campaign_credits", campaign_id=campaign_id)
        return debited, refunded

    def next_due(self, campaign_id: int) -> datetime | None:
        """When the earliest ``queued`` row may be sent (now, if one has no wait); None when none is queued."""
        count, earliest = self.store.one("earliest_queued", campaign_id=campaign_id, state=T.QUEUED.value)
        if not count:
            return None
        if not earliest:
            return self._today_and_now()[1]
        return datetime.strptime(earliest, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)

    def campaign_settings(self, campaign_id: int) -> dict:
        """What was stored with ``save_campaign_settings`` ({} when nothing was)."""
        row = self.store.one("campaign_settings", id=campaign_id)
        if row is None:
            raise LedgerError(f"no campaign with id {campaign_id} in the ledger.")
        return json.loads(row[0]) if row[0] else {}

    def save_campaign_settings(self, campaign_id: int, settings: dict) -> None:
        with self._write():
            self._require_campaign(campaign_id)
            self.store.execute(
                "save_campaign_settings", id=campaign_id, settings=json.dumps(settings, sort_keys=True),
                now=self._stamp,
            )

    def outstanding_cost(self, campaign_id: int) -> int:
        """Credits the campaign may still spend: rows queued, sending or unknown."""
        return self.store.scalar(
            "cost_in_state", campaign_id=campaign_id, states=[T.QUEUED.value, T.SENDING.value, T.UNKNOWN.value]
        )

    # -- opt-outs ----------------------------------------------------------------------------------

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
                changed = self.store.execute(
                    "insert_optout", e164=number, now=self._stamp, reason=reason, source=source
                )
                (added if changed else present).append(number)
        return added, present

    def remove_optouts(self, numbers: Iterable[str]) -> tuple[list[str], list[str]]:
        """Remove E.164 numbers; returns (removed, not on the list)."""
        removed: list[str] = []
        absent: list[str] = []
        with self._write():
            for number in numbers:
                changed = self.store.execute("delete_optout", e164=number)
                (removed if changed else absent).append(number)
        return removed, absent

    def optouts(self) -> list[OptOut]:
        return [OptOut(*r) for r in self.store.all("all_optouts")]

    def suppressed(self) -> frozenset[str]:
        return frozenset(r[0] for r in self.store.all("suppressed"))

    def suppressed_among(self, numbers: Iterable[str]) -> frozenset[str]:
        """Which of ``numbers`` are on the opt-out list now (the check made at send time)."""
        wanted = list(numbers)
        found: set[str] = set()
        for start in range(0, len(wanted), 10_000):
            found.update(r[0] for r in self.store.all("suppressed_among", numbers=wanted[start:start + 10_000]))
        return frozenset(found)

    # -- receipts and replies (docs/webhooks.md): the rules are in ``receipt_plan``, once --------------

    def record_receipt(self, receipt: "Receipt") -> "ReceiptFate":
        """Apply one verified delivery receipt to its transmission, or keep it until the row can take it."""
        from bulksend.receipts import ReceiptFate

        with self._write():
            fate = self._apply_receipt(receipt)
            if fate is ReceiptFate.PENDING:
                self.store.execute(
                    "insert_pending_receipt", profile=receipt.profile, state=str(receipt.state),
                    provider_id=receipt.provider_id, transmission_id=receipt.transmission_id, status=receipt.status,
                    code=receipt.code, text=receipt.text, fault=None if receipt.fault is None else str(receipt.fault),
                    opt_out=int(receipt.opt_out), reported_at=receipt.reported_at, exact_id=int(receipt.exact_id),
                    now=self._stamp,
                )
            return fate

    def record_receipts(self, receipts: Sequence["Receipt"]) -> "list[ReceiptFate | None]":
        """The receiver's bulk path: in the caller's write, apply at once every receipt that names a row by our
        echoed id and that ``receipt_plan`` says only reports (or only notes) — one read per profile and one
        UPDATE per distinct report instead of several statements per receipt. Each receipt gets its fate, or
        None when it needs the one-at-a-time path (``record_receipt``): a row not known yet (kept), to settle,
        to refund, an opt-out, a receipt by provider id, a second receipt for the same row."""
        from bulksend.receipts import ReceiptFate

        fates: list[ReceiptFate | None] = [None] * len(receipts)
        by_profile: dict[str, dict[int, int]] = {}  # profile -> transmission id -> index of its first receipt
        for i, receipt in enumerate(receipts):
            if receipt.transmission_id is None or receipt.opt_out:
                continue
            ids = by_profile.setdefault(receipt.profile, {})
            ids.setdefault(receipt.transmission_id, i)  # a second one for the row: after, one at a time
        with self._write():
            reports: dict[tuple, list[int]] = {}
            notes: list[dict[str, object]] = []
            for profile, ids in by_profile.items():
                for start in range(0, len(ids), 10_000):
                    wanted = list(ids)[start:start + 10_000]
                    for found in self.store.all("receipt_rows_by_ids", ids=wanted, profile=profile):
                        row = _transmission(found)
                        i = ids[row.id]
                        receipt = receipts[i]
                        plan = receipt_plan(receipt, row)
                        if plan == ReceiptFate.PENDING or (isinstance(plan, list) and plan not in (["report"], [])):
                            continue
                        if isinstance(plan, ReceiptFate):  # ignored, duplicate: nothing changes
                            fates[i] = plan
                            continue
                        provider_id = None if row.provider_id else receipt.provider_id
                        if plan:
                            key = (str(receipt.state), receipt.code, receipt.text, receipt.status,
                                   receipt.reported_at or self._stamp, provider_id)
                            reports.setdefault(key, []).append(row.id)
                        else:
                            notes.append({"id": row.id, "status": receipt.status, "reported_at": row.reported_at,
                                          "provider_id": provider_id})
                        fates[i] = ReceiptFate.APPLIED
            for (state, code, text, status, reported_at, provider_id), ids in reports.items():
                changed = self.store.execute(
                    "apply_receipt_reports", ids=ids, state=state, code=code, text=text, status=status,
                    reported_at=reported_at, provider_id=provider_id, now=self._stamp,
                )
                if changed != len(ids):  # the rows were read in this very write: only a damaged ledger gets here
                    raise LedgerError(f"{len(ids) - changed} receipt(s) found their row no longer sent.")
            if notes:
                self.store.many("save_report_fields", notes)
        return fates

    def _receipt_row(self, receipt: "Receipt") -> Transmission | None:
        """The transmission a receipt is about (locked): by our echoed id, else by the provider's id; only a row
        of a campaign sent through the receipt's own profile (a receipt on another profile's URL names nothing)."""
        if receipt.transmission_id is not None:
            return _transmission(self.store.one("receipt_row_by_id", id=receipt.transmission_id,
                                                profile=receipt.profile))
        if receipt.provider_id:
            return _transmission(self.store.one("receipt_row_by_provider_id", provider_id=receipt.provider_id,
                                                profile=receipt.profile))
        return None

    def _apply_receipt(self, receipt: "Receipt") -> "ReceiptFate":
        """Carry out ``receipt_plan`` through the ledger's own rules: ``mark_sent`` debits a settled row once,
        ``mark_report`` moves it, ``refund`` gives its credits back once; inside the caller's write."""
        from bulksend.receipts import ReceiptFate

        row = self._receipt_row(receipt)
        plan = receipt_plan(receipt, row)
        if isinstance(plan, ReceiptFate):
            return plan
        assert row is not None
        try:
            # A savepoint when the row is debited now: a debit that cannot be made leaves the receipt pending.
            with self._write() if "settle" in plan else nullcontext():
                if "settle" in plan:
                    self.mark_sent(row.id, receipt.provider_id or row.provider_id)
                if "report" in plan:
                    self.mark_report(row.id, str(receipt.state), receipt.code, receipt.text)
                reported_at = (receipt.reported_at or self._stamp) if "report" in plan else row.reported_at
                self.store.execute(
                    "save_report_fields", id=row.id, status=receipt.status, reported_at=reported_at,
                    provider_id=receipt.provider_id,
                )
                if "refund" in plan and self.transmission(row.id).debited:
                    self.refund(row.id, f"{receipt.profile}: not delivered, code {receipt.code or receipt.status}")
                if "optout" in plan:
                    why = f"opted out at the provider ({receipt.profile}, code {receipt.code or receipt.status})"
                    self.add_optouts([row.e164], why, "provider")
        except InsufficientCredits:
            return ReceiptFate.PENDING
        if "refund" in plan:
            return ReceiptFate.REFUNDED
        return ReceiptFate.SETTLED if "settle" in plan else ReceiptFate.APPLIED

    def apply_pending_receipts(self, limit: int = 1000, max_tries: int = 10_000) -> dict[str, int]:
        """Try the kept receipts again (oldest first); returns how many met each fate."""
        from bulksend.receipts import Fault, Receipt, ReceiptFate, ReceiptState

        fates: dict[str, int] = {}
        with self._write():
            rows = self.store.all("pending_receipts_due", max_tries=max_tries, limit=limit)
            for (pid, profile, state, provider_id, tid, status, code, text, fault, opt_out, reported_at,
                 exact_id) in rows:
                receipt = Receipt(
                    profile, ReceiptState(state), provider_id, tid, status, code, text,
                    None if fault is None else Fault(fault), bool(opt_out), reported_at, bool(exact_id),
                )
                fate = self._apply_receipt(receipt)
                if fate is ReceiptFate.PENDING:
                    self.store.execute("pending_receipt_tried", id=pid)
                else:
                    self.store.execute("delete_pending_receipt", id=pid)
                fates[str(fate)] = fates.get(str(fate), 0) + 1
        return fates

    def pending_receipt_count(self) -> int:
        return self.store.scalar("pending_receipts_count")

    def record_inbound(self, message: "InboundMessage") -> bool:
        """Keep one inbound message (False: a provider's retry of one already kept); an opt-out adds the sender
        to the opt-out list (source ``provider``) in the same write."""
        with self._write():
            kept = self.store.execute(
                "insert_inbound", profile=message.profile, channel=message.channel, sender=message.sender,
                text=message.text, provider_id=message.provider_id, keyword=message.keyword,
                opt_out=int(message.opt_out), sent_at=message.received_at, now=self._stamp,
            )
            if kept and message.opt_out and message.sender.startswith("+"):
                why = f"replied {message.keyword!r} ({message.profile})" if message.keyword else (
                    f"opted out at the provider ({message.profile})"
                )
                self.add_optouts([message.sender], why, "provider")
            return bool(kept)

    def inbound_messages(self, limit: int | None = None) -> list[dict]:
        """The latest inbound messages first."""
        names = ("id", "profile", "channel", "sender", "text", "provider_id", "keyword", "opt_out", "sent_at",
                 "received_at")
        rows = self.store.all("inbound_recent", limit=_NO_LIMIT if limit is None else limit)
        return [dict(zip(names, r)) for r in rows]

    # -- audit -------------------------------------------------------------------------------------

    def audit(self) -> AuditReport:
        """Recompute every balance from top-ups, expiries and the transmission log; never writes."""
        diffs: list[str] = []
        with self.store.snapshot():
            diffs.extend(self.store.integrity_problems())
            diffs.extend(self._audit_lots())
            channels = self._audit_channels(diffs)
            diffs.extend(self._audit_transmissions())
            diffs.extend(self._audit_holds())
        return AuditReport(tuple(diffs), channels)

    def _audit_lots(self) -> list[str]:
        sums: dict[int, dict[str, int]] = {}
        for lot_id, kind, amount in self.store.all("audit_lot_movements"):
            sums.setdefault(lot_id, {})[kind] = amount
        diffs = []
        for lot in sorted((_lot(r) for r in self.store.all("all_lots")), key=lambda lot: lot.id):
            s = sums.pop(lot.id, {})
            get = lambda k: s.get(k, 0)  # noqa: E731
            if get("topup") != lot.amount:
                diffs.append(f"lot {lot.id} ({lot.channel}): bought {lot.amount}, top-up movements say {get('topup')}")
            expected = lot.amount - get("debit") + get("refund") - get("expiry") + get("reinstate")
            if expected != lot.remaining:
                diffs.append(f"lot {lot.id} ({lot.channel}): {lot.remaining} credits left, movements say {expected}")
            if get("expiry") - get("reinstate") != lot.expired:
                diffs.append(
                    f"lot {lot.id} ({lot.channel}): {lot.expired} credits expired, "
                    f"movements say {get('expiry') - get('reinstate')}"
                )
        for lot_id in sums:
            diffs.append(f"movements name lot {lot_id}, which does not exist")
        return diffs

    def _audit_channels(self, diffs: list[str]) -> dict[str, dict[str, int]]:
        log = {ch: (d, r) for ch, d, r in self.store.all("audit_log_by_channel")}
        moved = {(ch, kind): amount for ch, kind, amount in self.store.all("audit_movements_by_channel")}
        lots = {ch: (bought, left) for ch, bought, left in self.store.all("audit_lots_by_channel")}
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
        rows = self.store.all("audit_transmissions", accepted=[s.value for s in ACCEPTED_STATES])
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
        for campaign_id, kind, amount, from_hold in self.store.all("audit_hold_movements"):
            s = sums.setdefault(campaign_id, [0, 0, 0])
            if kind == "hold":
                s[0] = amount
            elif kind == "release":
                s[1] = amount
            else:
                s[2] = from_hold
        diffs = []
        holds = dict(self.store.all("audit_holds"))
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


def receipt_plan(receipt: "Receipt", row: Transmission | None) -> "list[str] | ReceiptFate":
    """What a receipt does to its row, as steps (``settle``: unknown → sent, debited once; ``report``: the final
    state; ``refund``; ``optout``; an empty list: only noted), or the fate when it changes nothing now.

    The one statement of the receipt rules; ``Ledger._apply_receipt`` carries the steps out in one transaction.
    """
    from bulksend.receipts import ReceiptFate, ReceiptState

    if row is None or row.state in (T.QUEUED, T.SENDING):
        return ReceiptFate.PENDING  # our commit may not have happened yet: keep it for later
    if receipt.exact_id and receipt.provider_id and row.provider_id and receipt.provider_id != row.provider_id:
        return ReceiptFate.IGNORED  # our id echoed for another message: never move a row on it
    if row.state == T.FAILED:
        return ReceiptFate.IGNORED  # refused at the door: a receipt cannot make it sent
    if row.state in (T.DELIVERED, T.UNDELIVERED):
        return ReceiptFate.DUPLICATE  # the first final report stands (and refunds at most once)
    steps = ["settle"] if row.state == T.UNKNOWN else []
    if receipt.state is not ReceiptState.ACCEPTED:
        steps.append("report")
        if receipt.refundable:
            steps.append("refund")
    if receipt.opt_out:
        steps.append("optout")
    return steps


# ------------------------------------------------------------------------------ opening and copying


class SqliteLedger(Ledger):
    """A ledger on one SQLite file (the default): ``SqliteLedger.open(path)``."""

    @classmethod
    def open(
        cls, path: Path, *, create: bool = True, zone: str | None = None, clock: Clock | None = None
    ) -> "SqliteLedger | None":
        """Open (and migrate) the ledger at ``path``; ``zone`` is the time zone a new ledger records."""
        store = SqliteStore.open(Path(path), create=create, zone=zone)
        return None if store is None else cls(store, clock=clock, zone=zone)

    @classmethod
    def probe(cls, path: Path) -> str:
        """``missing``, ``empty`` (0 bytes: SQLite would take it for a new ledger) or ``present``."""
        return SqliteStore.probe(path)

    @classmethod
    def install(cls, path: Path, source: Path, aside: Path) -> None:
        """Make a copy of the ledger file ``source`` the ledger at ``path`` (the current one goes to ``aside``)."""
        SqliteStore.install(path, source, aside)

    @property
    def _conn(self):
        """The SQLite connection (tests and benchmarks that build raw rows; the product never does)."""
        return self.store.connection


def is_server_url(url: str) -> bool:
    return url.split(":", 1)[0].lower() in ("postgresql", "postgres")


def open_url(
    url: str, *, home: Path | None = None, create: bool = True, zone: str | None = None
) -> Ledger | None:
    """The ledger a URL names: ``postgresql://…`` or ``sqlite:///path/to/ledger.db``."""
    scheme = url.split(":", 1)[0].lower()
    if is_server_url(url):
        from bulksend.stores.postgres import PostgresStore

        store = PostgresStore.open(url, create=create, zone=zone)
        return None if store is None else Ledger(store, home=home, zone=zone)
    if scheme == "sqlite" and url.startswith("sqlite:///"):
        ledger = SqliteLedger.open(Path(url[len("sqlite://"):]), create=create, zone=zone)
        if ledger is not None and home is not None:
            ledger.home = home
        return ledger
    raise LedgerError(
        f"the ledger URL {scrub_url(url)} is neither postgresql://… nor sqlite:///path.",
        hint="Fix [ledger] url in config.toml, BULKSEND_LEDGER_URL or --ledger.",
    )


def _zone(config: "Config") -> str | None:
    return calendar.configured_zone(config.credits)


def server_url(config: "Config") -> str | None:
    """The PostgreSQL URL of ``config``'s ledger, or None when it is a file (the home's, or ``sqlite:///…``)."""
    url = getattr(config, "ledger_url", None)
    return url if url and is_server_url(url) else None


def ledger_file(config: "Config") -> Path:
    """The file of ``config``'s ledger when it is not on a server: ``sqlite:///…``, else ledger.db in the home."""
    url = getattr(config, "ledger_url", None)
    if url and url.startswith("sqlite:///"):
        return Path(url[len("sqlite://"):])
    if url and not is_server_url(url):
        open_url(url)  # raises the error that names what is wrong with it
    return config.ledger_path


def location(config: "Config") -> str:
    """Where ``config``'s ledger is, fit to print (a file path, or the server's URL without a password)."""
    url = server_url(config)
    return scrub_url(url) if url else str(ledger_file(config))


def probe(config: "Config") -> str:
    """``missing``, ``empty`` or ``present``: whether ``config``'s ledger exists (never creates one)."""
    url = server_url(config)
    if url:
        from bulksend.stores.postgres import PostgresStore

        return PostgresStore.probe(url)
    return SqliteLedger.probe(ledger_file(config))


def open_ledger(config: "Config") -> Ledger:
    """The ledger of ``config``: its URL's server, else the SQLite file in the home (created owner-only)."""
    url = getattr(config, "ledger_url", None)
    if url:
        return open_url(url, home=config.home, zone=_zone(config))
    return SqliteLedger.open(config.ledger_path, zone=_zone(config))


def open_existing(config: "Config") -> Ledger | None:
    """The ledger of ``config`` if there is one; never creates a file nor a schema."""
    url = getattr(config, "ledger_url", None)
    if url:
        return open_url(url, home=config.home, create=False, zone=_zone(config))
    return SqliteLedger.open(config.ledger_path, create=False, zone=_zone(config))


@dataclass(frozen=True, slots=True)
class CopyReport:
    """What ``copy_ledger`` moved, table by table, and the audits of both sides afterwards."""

    rows: dict[str, int]
    source_audit: AuditReport
    target_audit: AuditReport


def copy_ledger(source: Ledger, target: Ledger) -> CopyReport:
    """Copy every row of ``source`` into an empty ``target``, ids kept, in one target transaction.

    Refuses a target that holds anything, and a source whose audit fails (a copy would carry its
    differences over). Afterwards both sides are audited; their channel totals must agree.
    """
    before = source.audit()
    if not before.consistent:
        raise LedgerError(
            f"the ledger at {source.location} does not pass its audit; nothing was copied.",
            hint="Run: bulksend credits audit",
        )
    if not target.store.is_empty():
        raise LedgerError(
            f"the ledger at {target.location} already holds credits, campaigns or opt-outs; nothing was copied.",
            hint="Copy into a new, empty database (or schema).",
        )
    counts: dict[str, int] = {}
    with source.store.snapshot(), target.store.write():
        for table in TABLES:
            rows = list(source.store.export_rows(table))
            if table == "meta":  # the same ledger, moved: its identity and calendar come with it
                for key, value in rows:
                    target.store.execute("meta_set", key=key, value=value)
                counts[table] = len(rows)
                continue
            counts[table] = target.store.import_rows(table, rows)
        target.store.after_import()
        after = target.audit()  # inside the transaction: a copy that does not add up is rolled back
        if not after.consistent or after.channels != before.channels:
            raise LedgerError(
                f"the copy at {target.location} does not add up to the original; nothing was copied.",
                hint="; ".join(after.differences[:3]) or None,
            )
    return CopyReport(counts, before, after)


@dataclass(frozen=True, slots=True)
class Migration:
    """What ``migrate`` did: where, how many migrations ran, and the schema version now."""

    location: str
    ran: int
    version: int


def migrate(config: "Config") -> Migration:
    """Create or bring up to date the ledger of ``config`` (opening does it too; this says what happened)."""
    url = getattr(config, "ledger_url", None)
    if url and is_server_url(url):
        from bulksend.stores.postgres import PostgresStore

        store = PostgresStore.connect(url)
        try:
            ran = store.migrate(zone=_zone(config))
            return Migration(store.location, ran, store.schema_version())
        finally:
            store.close()
    store = SqliteStore.open(ledger_file(config), create=True, migrate=False)
    try:
        ran = store.migrate(zone=_zone(config))
        return Migration(store.location, ran, store.schema_version())
    finally:
        store.close()


def copy_to(config: "Config", url: str) -> tuple[CopyReport, str, str]:
    """Copy the ledger of ``config`` into the empty ledger at ``url``; returns (report, from, to)."""
    source = open_existing(config)
    if source is None:
        raise InputError("there is no ledger to copy in this home.", hint="Check --home, --ledger and [ledger] url.")
    with source:
        target = open_url(url, home=config.home)
        with target:
            if target.location == source.location:
                raise InputError(f"the ledger at {source.location} cannot be copied onto itself.")
            return copy_ledger(source, target), source.location, target.location
