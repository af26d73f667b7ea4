"""A ledger's calendar: the IANA time zone its dates are kept in, and which day it is there now.

A ledger has one calendar. Top-up dates, expiry days and "today" are days in the ledger's time zone,
recorded in the ledger itself (meta key ``timezone``) when it is created: ``[credits] timezone`` in
config.toml if set, else the creating machine's zone. Every process then reads that zone, whatever its
own ``TZ``, so a cron job in UTC and a terminal in UTC+10 agree on which credits have expired. A ledger
made before the zone was recorded gets one on its first write, chosen the same way.

This module knows nothing of SQL: it works over :class:`bulksend.ledger.Ledger`'s ``meta`` and
``set_meta``, so any storage gets the same rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone, tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from bulksend.errors import ConfigError, LedgerError

if TYPE_CHECKING:  # pragma: no cover
    from bulksend.ledger import Ledger

#: The ledger meta key that holds the calendar's IANA zone name.
ZONE_KEY = "timezone"
#: Used when the machine's zone cannot be told as an IANA name (a POSIX ``TZ`` string, no zone configured).
FALLBACK_ZONE = "UTC"


def utc_now() -> datetime:
    """The current moment (aware, UTC): the default clock."""
    return datetime.now(timezone.utc)


@lru_cache(maxsize=32)
def zone_info(name: str) -> tzinfo | None:
    """The tzinfo of an IANA zone name, or None when there is no such zone (here)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(name, str) or not name.strip() or name != name.strip():
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def machine_zone() -> str:
    """This machine's IANA zone name (``TZ``, else the system setting, as tzlocal reads them), else UTC."""
    import warnings

    try:
        import tzlocal

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tzlocal warns when /etc/timezone and /etc/localtime disagree
            name = tzlocal.get_localzone_name()
    except Exception:  # noqa: BLE001 - any failure to tell the zone means: no usable zone name
        return FALLBACK_ZONE
    return name if name and zone_info(name) is not None else FALLBACK_ZONE


def configured_zone(credits: dict[str, Any]) -> str | None:
    """``[credits] timezone`` from config.toml, checked; None when not set."""
    value = credits.get(ZONE_KEY)
    if value is None:
        return None
    if not isinstance(value, str) or zone_info(value) is None:
        raise ConfigError(
            f"config.toml: [credits] timezone {value!r} is not an IANA time zone.",
            hint='Use a name such as "Europe/London", "America/New_York" or "UTC".',
        )
    return value


@dataclass(frozen=True)
class Calendar:
    """Days in one IANA zone; ``clock`` (aware datetimes) can be replaced, e.g. by a test."""

    zone: str
    clock: Callable[[], datetime] = field(default=utc_now, compare=False)

    @property
    def tzinfo(self) -> tzinfo:
        info = zone_info(self.zone)
        if info is None:  # pragma: no cover - every Calendar is built from a checked name
            raise LedgerError(f"unknown time zone {self.zone!r}.")
        return info

    def today(self) -> date:
        """Which day it is now in this calendar's zone."""
        return self.clock().astimezone(self.tzinfo).date()


def new_ledger_zone(configured: str | None) -> str:
    """The zone a ledger created now records: the configured one, else this machine's."""
    return configured or machine_zone()


def ledger_calendar(ledger: "Ledger", configured: str | None, *, record: bool) -> tuple[Calendar, bool]:
    """The ledger's calendar, and whether its zone was already recorded (committed) in it.

    With ``record`` (inside a write), a ledger without a recorded zone gets one now: ``configured``,
    else the machine's. Without it (a read), the zone it would get is used and nothing is written.
    """
    recorded = ledger.meta(ZONE_KEY)
    if recorded is not None:
        if zone_info(recorded) is None:
            raise LedgerError(
                f"the ledger's calendar is in time zone {recorded!r}, which this machine does not know.",
                hint="Install the tzdata package (pip install tzdata), or upgrade it.",
            )
        return Calendar(recorded), True
    zone = new_ledger_zone(configured)
    if record:
        ledger.set_meta(ZONE_KEY, zone)
    return Calendar(zone), False
