"""Credit rules that depend on the configuration (minimum top-ups), over the ledger: top-up, balance, history, audit."""

from __future__ import annotations

from dataclasses import dataclass

from datetime import date

from bulksend import calendar
from bulksend.config import Config
from bulksend.errors import ConfigError, InputError, InsufficientCredits, LedgerError
from bulksend.ledger import (
    CHANNELS,
    AuditReport,
    ChannelBalance,
    Movement,
    TopUp,
    check_channel,
)
from bulksend.ledger_guard import open_for_read, open_for_write

#: The service terms' minimum top-ups; ``[credits] min_topup_sms`` / ``min_topup_whatsapp`` override them.
DEFAULT_MINIMUM_TOPUP = {"sms": 1000, "whatsapp": 5000}
#: The largest single top-up: a trillion credits, far beyond any purchase, far inside 64-bit sums.
MAXIMUM_TOPUP = 10**12


def minimum_topup(config: Config, channel: str) -> int:
    """The smallest top-up accepted for ``channel``."""
    key = f"min_topup_{channel}"
    value = config.credits.get(key, DEFAULT_MINIMUM_TOPUP[channel])
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"config.toml: [credits] {key} must be a positive whole number, not {value!r}.")
    return value


def parse_date(text: str, what: str = "date") -> date:
    """A YYYY-MM-DD date from the command line, or an InputError."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{what} {text!r} is not a date: use YYYY-MM-DD.") from None


def topup(config: Config, amount: int, channel: str, on: date | None = None, ref: str | None = None) -> TopUp:
    """Record a purchase of ``amount`` credits; refuses amounts under the minimum, future dates, used references."""
    channel = check_channel(channel)
    if amount <= 0:
        raise InputError(f"the amount must be a positive whole number of credits; {amount} is not. Nothing recorded.")
    minimum = minimum_topup(config, channel)
    if amount < minimum:
        raise InputError(
            f"the minimum {channel} top-up is {minimum} credits; {amount} is less. Nothing recorded."
        )
    if amount > MAXIMUM_TOPUP:
        # Balances are 64-bit integers in the ledger: a typo of many digits must not overflow them.
        raise InputError(f"a top-up is at most {MAXIMUM_TOPUP:,} credits; {amount:,} is more. Nothing recorded.")
    with open_for_write(config) as ledger:
        return ledger.topup(channel, amount, on=on, ref=ref)


@dataclass(frozen=True)
class BalanceView:
    """What ``balance`` shows, read in one opening of the ledger."""

    balances: dict[str, ChannelBalance]
    watched: tuple[str, ...]  # the channels ``--fail-below`` checks
    zone: str  # the time zone the dates are days in


def balance(config: Config, channel: str | None = None) -> dict[str, ChannelBalance]:
    """Each channel's balance today; a home without a ledger has nothing, and reading creates nothing."""
    return balance_view(config, channel).balances


def balance_view(config: Config, channel: str | None = None) -> BalanceView:
    """Balances, the channels a floor watches, and the ledger's zone (one read; a missing ledger creates nothing).

    ``watched``: the channel asked for, else every channel ever topped up. A channel never topped up is
    one the user does not use (an SMS-only sender has no WhatsApp credits, and must not be told so
    forever); one whose credits ran out or expired is still watched. A ledger with no top-up at all
    watches every channel: nothing can be sent, and the probe should say so.
    """
    asked = None if channel is None else (check_channel(channel),)
    configured = calendar.configured_zone(config.credits)
    ledger = open_for_read(config)
    if ledger is None:
        channels = asked or CHANNELS
        return BalanceView(
            {name: ChannelBalance(name, 0, 0) for name in channels}, channels, calendar.new_ledger_zone(configured)
        )
    with ledger:
        balances = ledger.balance(channel)
        used = {lot.channel for lot in ledger.lots()} if asked is None else set()
        found, _ = calendar.ledger_calendar(ledger, configured, record=False)
    watched = asked or tuple(name for name in CHANNELS if name in used) or CHANNELS
    return BalanceView(balances, watched, found.zone)


def ledger_zone(config: Config) -> str:
    """The time zone the ledger's dates are days in (recorded in it, or the one it will record)."""
    return balance_view(config).zone


def check_floor(balances: dict[str, ChannelBalance], floor: int) -> None:
    """Raise InsufficientCredits (exit 3) naming every channel whose available balance is under ``floor``."""
    low = [b for b in balances.values() if b.available < floor]
    if low:
        raise InsufficientCredits(
            "; ".join(f"{b.channel} balance {b.available} is below {floor}" for b in low) + "."
        )


def history(config: Config, channel: str | None = None, since: date | None = None) -> list[Movement]:
    """Every credit movement, newest first (expiries that are due are recorded first)."""
    if channel is not None:
        channel = check_channel(channel)
    ledger = open_for_read(config)
    if ledger is None:
        return []
    with ledger:
        return ledger.history(channel, since)


def audit(config: Config) -> AuditReport:
    """Recompute every balance; raises LedgerError (exit 1) naming each difference."""
    ledger = open_for_read(config)
    if ledger is None:
        return AuditReport((), {})
    with ledger:
        return ledger.audit()


def require_consistent(report: AuditReport) -> None:
    """Raise LedgerError when the audit found differences."""
    if not report.consistent:
        n = len(report.differences)
        raise LedgerError(
            f"the ledger is not consistent: {n} difference{'s' if n != 1 else ''}.",
            hint="Keep a copy of ledger.db before changing anything, and report this.",
        )
