"""When a row may go: quiet hours in the recipient's time zones, send times, and frequency caps.

Pure logic over aware datetimes (UTC in, UTC out) and IANA zone names; the clock is always the caller's.

* **Zones of a row**: its ``timezone`` column when that is a zone name zoneinfo knows, else the zones
  phonenumbers gives for the number (``phonenumbers.timezone.time_zones_for_number``, computed on
  bulksend's fast number path), else ("Etc/Unknown") every zone of the row's country (the tz database's
  ``zone.tab``), else the zones of its calling code, else UTC.
* **Allowed in all of them**: a number with several candidate zones (an Australian mobile may be in Perth
  or in Sydney) is sent only at an instant that is outside quiet hours in every one of them.
* **Exact across DST**: instants are compared in UTC; a window that starts inside a spring-forward gap
  opens at the transition, one that starts inside a fall-back overlap opens at its first occurrence.
* **Fast**: a row's zones cost one classification of its number (on bulksend's fast number path); what
  follows (zone names checked, sorted, the country's fallbacks) is memoized per (number's zones, country,
  calling code), and :class:`Scheduler` caches due times per (zone set, moment): a campaign has few of each.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bulksend.errors import InputError

UTC = timezone.utc
#: What ``quiet_hours = true`` means, and the default when nothing sets quiet hours.
STANDARD_QUIET_HOURS = "21:00-08:00"
DEFAULT_QUIET_HOURS = STANDARD_QUIET_HOURS
UNKNOWN_ZONE = "Etc/Unknown"
#: How far ahead an allowed instant is looked for: past this, the zones share no allowed time.
HORIZON = timedelta(days=14)
_MAX_STEPS = 200
_OFF = ("off", "false", "none", "no")


# ------------------------------------------------------------------------------------------ quiet hours


@dataclass(frozen=True)
class QuietHours:
    """Local wall-clock hours in which nothing is sent: from ``start`` (inclusive) to ``end`` (exclusive).

    ``start > end`` crosses midnight (21:00-08:00). Sending is allowed from ``end`` to ``start``.
    """

    start: time
    end: time

    def allows(self, local: time) -> bool:
        if self.start > self.end:  # quiet 21:00-08:00: allowed 08:00 ≤ t < 21:00
            return self.end <= local < self.start
        return not (self.start <= local < self.end)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


_HHMM = re.compile(r"\s*(\d{1,2}):(\d{2})\s*")


def _wall_time(text: str, what: str, where: str) -> time:
    match = _HHMM.fullmatch(text)
    if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise InputError(f"{where}: {what} {text.strip()!r} is not a time of day: use HH:MM, 00:00 to 23:59.")
    return time(int(match.group(1)), int(match.group(2)))


def parse_quiet_hours(value: object, where: str = "quiet_hours") -> QuietHours | None:
    """``"21:00-08:00"`` → QuietHours; ``"off"`` or false → None; true → the default hours.

    ``where`` names the setting in errors (``--quiet-hours``, ``campaign.toml: quiet_hours``…).
    """
    if value is None or value is False:
        return None
    if value is True:
        value = STANDARD_QUIET_HOURS
    if not isinstance(value, str):
        raise InputError(f"{where} must be HH:MM-HH:MM (like \"21:00-08:00\") or \"off\", not {value!r}.")
    if value.strip().lower() in _OFF:
        return None
    parts = value.split("-")
    if len(parts) != 2:
        raise InputError(
            f"{where}: {value!r} is not a range of hours: use HH:MM-HH:MM, like \"21:00-08:00\", or \"off\"."
        )
    start = _wall_time(parts[0], "the start", where)
    end = _wall_time(parts[1], "the end", where)
    if start == end:
        raise InputError(
            f"{where}: {value!r} starts and ends at the same time, which leaves no hour to send in.",
            hint="Give a range like \"21:00-08:00\" (quiet from 9 pm to 8 am), or \"off\".",
        )
    return QuietHours(start, end)


# --------------------------------------------------------------------------------------------- send times


@dataclass(frozen=True)
class SendAt:
    """Not before: an instant (``instant``), or a wall time in each recipient's own zone (``local``).

    ``local`` with ``day``: that date and time in each zone; without ``day``: the first such time of day
    at or after the moment the campaign is queued, in each zone.
    """

    instant: datetime | None = None
    local: time | None = None
    day: datetime | None = None  # a naive date (midnight) for a local send time with a date

    def __str__(self) -> str:
        if self.instant is not None:
            return self.instant.isoformat(timespec="seconds")
        if self.day is not None:
            return f"{self.day:%Y-%m-%d}T{self.local:%H:%M} local"
        return f"{self.local:%H:%M} local"


def parse_send_at(value: object, local: bool = False, where: str = "send_at") -> SendAt | None:
    """``"2026-12-01T09:00:00+01:00"`` (an instant) or, with ``local``, ``"09:00"`` / ``"2026-12-01T09:00"``."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):  # TOML's own date-time values
        value = value.isoformat()
    if not isinstance(value, str):
        raise InputError(f"{where} must be a date-time like \"2026-12-01T09:00:00+01:00\" or a time like \"09:00\".")
    text = value.strip()
    if _HHMM.fullmatch(text):
        if not local:
            raise InputError(
                f"{where}: {text!r} is a time of day without a date or zone.",
                hint="Set local = true (--local) to send at that time in each recipient's own zone, or give "
                "a date-time with an offset, like \"2026-12-01T09:00:00+01:00\".",
            )
        return SendAt(local=_wall_time(text, "the time", where))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise InputError(
            f"{where}: {text!r} is not a date-time: use ISO 8601, like \"2026-12-01T09:00:00+01:00\", "
            "or HH:MM with local = true."
        ) from None
    if local:
        if moment.tzinfo is not None:
            raise InputError(
                f"{where}: {text!r} has an offset, but local = true means each recipient's own zone.",
                hint="Drop the offset (\"2026-12-01T09:00\"), or drop local = true to send at that instant.",
            )
        return SendAt(local=moment.time().replace(second=0, microsecond=0),
                      day=moment.replace(hour=0, minute=0, second=0, microsecond=0))
    if moment.tzinfo is None:
        raise InputError(
            f"{where}: {text!r} has no offset, so it could mean any of 24 instants.",
            hint="Add one (\"…+01:00\" or \"…Z\"), or set local = true for that time in each recipient's zone.",
        )
    return SendAt(instant=moment.astimezone(UTC))


# ------------------------------------------------------------------------------------------ frequency caps

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_CAP = re.compile(r"\s*(\d+)\s*/\s*(\d+)?\s*([smhdw])\s*", re.IGNORECASE)
MAX_CAP_COUNT = 10_000
MAX_CAP_WINDOW = timedelta(days=366)


@dataclass(frozen=True)
class FrequencyCap:
    """At most ``count`` messages to one number on one channel within any ``window``."""

    count: int
    window: timedelta

    def eligible_at(self, sends: Iterable[datetime], now: datetime) -> datetime | None:
        """None when one more message may go now; else the instant it may (when enough sends age out)."""
        since = now - self.window
        recent = sorted(s for s in sends if s > since)
        if len(recent) < self.count:
            return None
        return recent[len(recent) - self.count] + self.window

    def __str__(self) -> str:
        seconds = int(self.window.total_seconds())
        for unit in ("w", "d", "h", "m"):
            if seconds % _UNITS[unit] == 0:
                return f"{self.count}/{seconds // _UNITS[unit]}{unit}"
        return f"{self.count}/{seconds}s"


def parse_frequency_cap(value: object, where: str = "frequency_cap") -> FrequencyCap | None:
    """``"2/24h"`` (N/WINDOW with s, m, h, d or w; ``"1/w"`` is once a week) → FrequencyCap; ``"off"``/false → None."""
    if value is None or value is False:
        return None
    if not isinstance(value, str):
        raise InputError(f"{where} must be N/WINDOW (like \"2/24h\") or \"off\", not {value!r}.")
    if value.strip().lower() in _OFF:
        return None
    match = _CAP.fullmatch(value)
    if match is None:
        raise InputError(
            f"{where}: {value!r} is not a cap: use N/WINDOW with s, m, h, d or w, like \"2/24h\" or \"3/7d\", or \"off\"."
        )
    count = int(match.group(1))
    window = timedelta(seconds=int(match.group(2) or 1) * _UNITS[match.group(3).lower()])
    if not 1 <= count <= MAX_CAP_COUNT:
        raise InputError(f"{where}: {value!r}: the number of messages must be from 1 to {MAX_CAP_COUNT:,}.")
    if not timedelta(0) < window <= MAX_CAP_WINDOW:
        raise InputError(f"{where}: {value!r}: the window must be longer than 0 and at most 366 days.")
    return FrequencyCap(count, window)


# ------------------------------------------------------------------------------------------------ zones


@lru_cache(maxsize=None)
def zone(name: str) -> ZoneInfo | None:
    """The zone called ``name``, or None when it is not a zone (never a path, never the local zone)."""
    if not name or name.startswith(("/", ".")) or ".." in name or name == UNKNOWN_ZONE or "\\" in name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


@lru_cache(maxsize=1)
def _zones_by_country() -> dict[str, tuple[str, ...]]:
    """ISO country code → its zones, from the tz database's zone.tab (shipped by the tzdata package)."""
    from importlib import resources

    table: dict[str, list[str]] = {}
    try:
        text = resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, OSError):  # pragma: no cover - tzdata is a dependency
        return {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) >= 3:
            table.setdefault(fields[0].upper(), []).append(fields[2])
    return {country: tuple(sorted(names)) for country, names in table.items()}


def country_zones(region: str | None) -> tuple[str, ...]:
    """Every zone of an ISO country (empty when unknown)."""
    return _zones_by_country().get((region or "").upper(), ())


@lru_cache(maxsize=1)
def _tables() -> tuple:
    """phonenumbers' time zone table and the helpers a lookup needs, imported once (not per queued row)."""
    from phonenumbers import PhoneNumberType
    from phonenumbers.phonenumberutil import is_number_type_geographical
    from phonenumbers.tzdata import TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX

    from bulksend.phones import classify_e164

    return TIMEZONE_DATA, TIMEZONE_LONGEST_PREFIX, classify_e164, PhoneNumberType.UNKNOWN, \
        lru_cache(maxsize=1024)(is_number_type_geographical)


def _prefix_zones(digits: str, longest: int) -> tuple[str, ...] | None:
    data = _tables()[0]
    for length in range(min(longest, len(digits)), 0, -1):
        found = data.get(digits[:length])
        if found is not None:
            return found
    return None


def _classified_zones(e164: str) -> tuple[int | None, tuple[str, ...]]:
    """(calling code or None, ``number_zones(e164)``): the number classified once for both."""
    data, longest, classify_e164, unknown, geographical = _tables()
    classified = classify_e164(e164)
    if classified is None:
        return None, (UNKNOWN_ZONE,)
    country_code, kind = classified
    if kind == unknown:
        return country_code, (UNKNOWN_ZONE,)
    digits = e164.lstrip("+") if geographical(kind, country_code) else str(country_code)
    found = _prefix_zones(digits, longest)
    return country_code, (tuple(found) if found else (UNKNOWN_ZONE,))


def number_zones(e164: str) -> tuple[str, ...]:
    """``phonenumbers.timezone.time_zones_for_number`` for a valid E.164 number (("Etc/Unknown",) when none)."""
    return _classified_zones(e164)[1]


def row_zones(e164: str, region: str | None = None, timezone_cell: str | None = None) -> tuple[str, ...]:
    """The zones a row may be in (sorted names zoneinfo knows): see the module docstring for the order."""
    if timezone_cell:
        name = timezone_cell.strip()
        if zone(name) is not None:
            return (name,)
    country_code, found = _classified_zones(e164)
    return _known_zones(found, region, country_code)


@lru_cache(maxsize=4096)
def _known_zones(found: tuple[str, ...], region: str | None, country_code: int | None) -> tuple[str, ...]:
    """The rest of :func:`row_zones`, once per (number's zones, country, calling code): a list has few of them."""
    known = tuple(sorted({z for z in found if zone(z) is not None}))
    if known:
        return known
    known = tuple(z for z in country_zones(region) if zone(z) is not None)
    if known:
        return known
    if country_code is not None:
        known = tuple(sorted(z for z in _tables()[0].get(str(country_code), ()) if zone(z) is not None))
    return known or ("UTC",)


# ---------------------------------------------------------------------------------------- allowed instants


def _window_start(tz: ZoneInfo, after: datetime, wall: time) -> datetime:
    """The first instant > ``after`` at which the wall clock of ``tz`` reaches ``wall`` (or jumps past it)."""
    local = after.astimezone(tz)
    best: datetime | None = None
    for days in (-1, 0, 1, 2):
        naive = datetime.combine(local.date() + timedelta(days=days), wall)
        early = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
        late = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
        if late < early:  # a spring-forward gap: the wall time never shows; it opens at the transition
            candidate = _transition(tz, late, early)
            candidates = (candidate,)
        else:  # one instant, or a fall-back overlap's two (the first comes first)
            candidates = (early, late)
        for candidate in candidates:
            if candidate > after and (best is None or candidate < best):
                best = candidate
    assert best is not None
    return best


def _transition(tz: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The instant in (before, after] where the offset of ``tz`` changes (to the second)."""
    offset = before.astimezone(tz).utcoffset()
    low, high = before, after
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).utcoffset() == offset:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0) if high.microsecond else high


def _first(moment: datetime, zones: Sequence[ZoneInfo], allows, opens: time) -> datetime | None:
    """The first instant ≥ ``moment`` at which ``allows(local time)`` holds in every zone, None past HORIZON."""
    limit = moment + HORIZON
    for _ in range(_MAX_STEPS):
        closed = [tz for tz in zones if not allows(moment.astimezone(tz).time())]
        if not closed:
            return moment
        moment = max(_window_start(tz, moment, opens) for tz in closed)
        if moment > limit:
            return None
    return None  # pragma: no cover - windows that never line up are caught by the horizon first


def _zoneinfos(zones: Iterable[str]) -> tuple[ZoneInfo, ...]:
    found = tuple(tz for tz in (zone(z) for z in zones) if tz is not None)
    return found or (ZoneInfo("UTC"),)


def send_floor(send_at: SendAt | None, zones: Sequence[str], anchor: datetime) -> datetime | None:
    """The earliest instant a row may go by its send time alone (None: no send time, or none in HORIZON).

    A local time with several zones: the first instant after every zone's own next such time at which the
    wall clock in each zone shows at least that time, so the message is early in none of them.
    """
    if send_at is None:
        return None
    if send_at.instant is not None:
        return send_at.instant
    assert send_at.local is not None
    tzs = _zoneinfos(zones)
    wall = send_at.local
    if send_at.day is not None:
        naive = datetime.combine(send_at.day.date(), wall)
        starts = []
        for tz in tzs:
            early = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
            late = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
            starts.append(_transition(tz, late, early) if late < early else min(early, late))
        return max(starts)
    start = max(_window_start(tz, anchor - timedelta(microseconds=1), wall) for tz in tzs)
    return _first(start, tzs, lambda local: local >= wall, wall)


def next_allowed(
    now: datetime,
    zones: Sequence[str],
    quiet: QuietHours | None,
    send_at: SendAt | None = None,
    *,
    anchor: datetime | None = None,
) -> datetime | None:
    """The first instant ≥ max(now, send time) allowed in every zone; None when the zones share none.

    ``anchor`` is when the campaign was queued (a local send time without a date counts from it;
    default ``now``). The answer is ``now`` itself when the row may go at once.
    """
    if now.tzinfo is None:
        raise ValueError("next_allowed needs an aware datetime")
    now = now.astimezone(UTC)
    moment = now
    floor = send_floor(send_at, zones, (anchor or now).astimezone(UTC))
    if send_at is not None and floor is None:
        return None
    if floor is not None and floor > moment:
        moment = floor
    if quiet is None:
        return moment
    return _first(moment, _zoneinfos(zones), quiet.allows, quiet.end)


def allowed_now(now: datetime, zones: Sequence[str], quiet: QuietHours | None) -> bool:
    """Whether ``now`` is outside quiet hours in every zone."""
    if quiet is None:
        return True
    return all(quiet.allows(now.astimezone(tz).time()) for tz in _zoneinfos(zones))


class Scheduler:
    """Due times for many rows: zones per number, answers per (zone set, moment), computed once each."""

    def __init__(self, quiet: QuietHours | None, send_at: SendAt | None = None, anchor: datetime | None = None):
        self.quiet = quiet
        self.send_at = send_at
        self.anchor = anchor
        self._due: dict[tuple[tuple[str, ...], datetime], datetime | None] = {}

    @staticmethod
    def zones(e164: str, region: str | None = None, timezone_cell: str | None = None) -> tuple[str, ...]:
        return row_zones(e164, region, timezone_cell)

    def due(self, now: datetime, zones: tuple[str, ...]) -> datetime | None:
        """When a row in ``zones`` may go, at or after ``now`` (None: never within the horizon)."""
        key = (zones, now)
        if key in self._due:
            return self._due[key]
        if len(self._due) > 100_000:
            self._due.clear()
        answer = self._due[key] = next_allowed(now, zones, self.quiet, self.send_at, anchor=self.anchor or now)
        return answer


# ------------------------------------------------------------------------------------------ a campaign's rules


@dataclass(frozen=True)
class SendRules:
    """What a campaign follows: quiet hours, a send time, a frequency cap, and when it was queued."""

    quiet: QuietHours | None = None
    send_at: SendAt | None = None
    cap: FrequencyCap | None = None
    anchor: datetime | None = None  # when the campaign was queued: a local send time counts from it
    send_at_text: str | None = None
    local: bool = False

    def scheduler(self) -> Scheduler:
        return Scheduler(self.quiet, self.send_at, self.anchor)

    def as_stored(self) -> dict:
        """For the campaign's settings, so that ``campaigns resume`` and later runs follow the same rules."""
        return {
            "quiet_hours": str(self.quiet) if self.quiet else "off",
            "send_at": self.send_at_text,
            "local": self.local,
            "frequency_cap": str(self.cap) if self.cap else "off",
            "anchor": self.anchor.isoformat() if self.anchor else None,
        }


def resolve_rules(
    configured: dict, given: dict, stored: dict | None, now: datetime, *, config_where: str = "[compliance]"
) -> SendRules:
    """The rules of a run: flags and the campaign file (``given``), else what the campaign stored when it was
    queued (``stored``), else config.toml's ``[compliance]`` (``configured``), else the defaults.

    Quiet hours are on by default (21:00-08:00); the frequency cap is off by default. Errors in
    ``configured`` are raised with ``config_where`` so the caller can report them as configuration errors.
    """
    stored = stored or {}

    def pick(key: str):
        if given.get(key) is not None:
            return given[key], key
        if stored.get(key) is not None:
            return stored[key], key
        if configured.get(key) is not None:
            return configured[key], f"{config_where} {key}"
        return None, key

    quiet_value, where = pick("quiet_hours")
    quiet = parse_quiet_hours(DEFAULT_QUIET_HOURS if quiet_value is None else quiet_value, where)
    cap_value, where = pick("frequency_cap")
    cap = parse_frequency_cap(cap_value, where)
    if given.get("send_at") is not None:
        send_at_text, local = given["send_at"], bool(given.get("local"))
    else:
        send_at_text, local = stored.get("send_at"), bool(stored.get("local"))
    send_at = parse_send_at(send_at_text, local, "send_at")
    anchor = datetime.fromisoformat(stored["anchor"]) if stored.get("anchor") else now
    return SendRules(quiet, send_at, cap, anchor, send_at_text, local)


def cap_detail(cap: FrequencyCap, channel: str, eligible: datetime) -> str:
    """The reject detail of a frequency-capped number: the cap and when the number is eligible again."""
    return f"already sent {cap.count} {channel} message{'s' if cap.count > 1 else ''} within {_window(cap)}; " \
           f"eligible again at {eligible.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def _window(cap: FrequencyCap) -> str:
    text = str(cap).split("/", 1)[1]
    return text


def capped_numbers(
    cap: FrequencyCap, channel: str, sends: dict[str, list[datetime]], now: datetime
) -> dict[str, str]:
    """Numbers at ``cap`` at ``now``, each with its reject detail (:func:`cap_detail`).

    ``sends`` is ``Ledger.recent_sends(None, channel, now - cap.window)``: every number sent to lately.
    ``send`` (pass one) and ``estimate`` both decide the cap here.
    """
    capped = {}
    for e164, times in sends.items():
        eligible = cap.eligible_at(times, now)
        if eligible is not None:
            capped[e164] = cap_detail(cap, channel, eligible)
    return capped


def configured_rules(config, given: dict, stored: dict | None, now: datetime) -> SendRules:
    """:func:`resolve_rules` for a home: a bad ``[compliance]`` value in config.toml is a ConfigError (exit 6)."""
    from bulksend.config import CONFIG_FILE
    from bulksend.errors import ConfigError

    where = f"{config.home / CONFIG_FILE}: [compliance]"
    try:
        return resolve_rules(config.compliance, given, stored, now, config_where=where)
    except InputError as exc:
        if exc.message.startswith(where):
            raise ConfigError(exc.message, hint=exc.hint) from None
        raise


# ------------------------------------------------------------------------------------- many rows at once


@lru_cache(maxsize=1)
def _prefix_table() -> tuple[list, list[tuple[str, ...]]]:
    """phonenumbers' zone prefixes as arrays: per prefix length, the sorted prefixes and their zones' index."""
    import numpy as np

    data, longest = _tables()[:2]
    index: dict[tuple[str, ...], int] = {}
    by_length: list = [None] * (longest + 1)
    for length in range(1, longest + 1):
        keys = sorted((int(k), tuple(v)) for k, v in data.items() if len(k) == length)
        ids = [index.setdefault(v, len(index)) for _, v in keys]
        by_length[length] = (np.array([k for k, _ in keys], dtype=np.int64), np.array(ids, dtype=np.int64))
    return by_length, list(index)


def zones_many(
    e164: "np.ndarray", region: "np.ndarray", regions: Sequence[str], cells: Sequence[str | None] | None = None
) -> tuple["np.ndarray", list[tuple[str, ...]]]:
    """:func:`row_zones` for many rows: (each row's index into a list of zone sets, that list).

    ``e164`` holds valid numbers as integers, ``region`` each row's index into ``regions`` (the row's
    country, -1 for none), ``cells`` the rows' timezone column (or None). The numbers are classified
    with bulksend's number tables a (calling code, length) at a time (``phones._classify_table``), the
    zone prefixes looked up with ``np.searchsorted``, and the rest of ``row_zones`` runs once per
    distinct (number's zones, country, calling code) and per distinct timezone cell. What the tables
    cannot classify goes through ``row_zones``' own path, row by row. tests/test_schedule.py compares the two.
    """
    import numpy as np
    import pandas as pd

    from bulksend import phones

    _, longest, _, unknown, geographical = _tables()
    n = int(e164.size)
    e164 = np.asarray(e164, dtype=np.int64)
    pow10 = phones._POW10
    # Arrays of n small numbers take the smallest type that holds them (int8: digits, kinds; int16: calling
    # codes), and each goes as soon as it is done with: estimate's peak RSS at 10M rows is here.
    width = np.searchsorted(pow10, e164, side="right").astype(np.int8)  # digits in each number
    country = np.zeros(n, dtype=np.int16)
    for k in (1, 2, 3):  # the calling code is the first 1, 2 or 3 digits that name one (_country_code_prefix)
        open_ = np.flatnonzero((country == 0) & (width > k))
        prefix = e164[open_] // pow10[width[open_] - k]
        country[open_[phones._CC_BY_LENGTH[k][prefix]]] = prefix[phones._CC_BY_LENGTH[k][prefix]]
    del open_, prefix
    kind = np.full(n, -1, dtype=np.int8)  # -1: decided row by row; else a number type (< _KIND_BITS = 128)
    nsn_width = width - np.where(country >= 100, 3, np.where(country >= 10, 2, 1)).astype(np.int8)
    nsn = e164 % pow10[np.minimum(nsn_width, len(pow10) - 1)]
    keyed = np.flatnonzero(country > 0)
    if keyed.size:
        pair = country[keyed].astype(np.int64) * 100 + nsn_width[keyed]
        for key in np.unique(pair).tolist():
            rows = keyed[pair == key]
            code, size = divmod(key, 100)
            calling = phones._calling_code(code)
            table = phones._classify_table(calling, size) if calling is not None and len(str(code)) + size <= 18 \
                else None
            if table is not None:
                kind[rows] = table.find(nsn[rows]) % phones._KIND_BITS
    del nsn_width, nsn, keyed
    pair = rows = None

    by_length, cached = _prefix_table()
    prefix_zones = list(cached)
    found_index = {z: i for i, z in enumerate(prefix_zones)}

    def found_id(zones: tuple[str, ...]) -> int:
        if zones not in found_index:
            found_index[zones] = len(prefix_zones)
            prefix_zones.append(zones)
        return found_index[zones]

    found = np.full(n, -1, dtype=np.int64)
    found[kind == unknown] = found_id((UNKNOWN_ZONE,))
    typed = np.flatnonzero((kind >= 0) & (kind != unknown))
    geo = np.zeros(n, dtype=bool)
    if typed.size:
        pair = kind[typed].astype(np.int64) * 1000 + country[typed]
        for key in np.unique(pair).tolist():
            rows = typed[pair == key]
            what, code = divmod(key, 1000)
            if geographical(what, code):
                geo[rows] = True
            else:
                zones = _prefix_zones(str(code), longest)
                found[rows] = found_id(tuple(zones) if zones else (UNKNOWN_ZONE,))
    pending = geo
    for length in range(longest, 0, -1):  # the longest zone prefix of the number's digits (_prefix_zones)
        keys, ids = by_length[length]
        rows = np.flatnonzero(pending & (width >= length))
        if rows.size == 0 or keys.size == 0:
            continue
        prefix = e164[rows] // pow10[width[rows] - length]
        at = np.minimum(np.searchsorted(keys, prefix), keys.size - 1)
        hit = keys[at] == prefix
        found[rows[hit]] = ids[at[hit]]
        pending[rows[hit]] = False
    found[pending] = found_id((UNKNOWN_ZONE,))
    for i in np.flatnonzero(kind < 0).tolist():  # what the tables cannot classify: row_zones' own path
        code, zones = _classified_zones(f"+{int(e164[i])}")
        country[i] = code or 0
        found[i] = found_id(zones)
    del width, kind, geo, pending, typed
    pair = rows = prefix = at = hit = None

    # The rest of row_zones once per distinct (number's zones, country, calling code).
    key = (found * 1024 + (np.asarray(region, dtype=np.int64) + 1)) * 1000 + country.astype(np.int64)
    del found, country
    codes, uniques = pd.factorize(key, sort=False)
    del key
    set_index: dict[tuple[str, ...], int] = {}
    mapping = np.empty(len(uniques), dtype=np.int64)
    for j, value in enumerate(uniques.tolist()):
        rest, code = divmod(value, 1000)
        zones_id, region_id = divmod(rest, 1024)
        name = regions[region_id - 1] if region_id > 0 else None
        known = _known_zones(prefix_zones[zones_id], name, code or None)
        mapping[j] = set_index.setdefault(known, len(set_index))
    out = mapping[codes] if n else np.zeros(0, dtype=np.int64)
    if cells is not None:  # a row's own zone, when its timezone cell names one
        cell_codes, cell_values = pd.factorize(pd.Series(list(cells), dtype=object), sort=False)
        own = np.full(len(cell_values) + 1, -1, dtype=np.int64)  # the last: a missing cell (code -1)
        for j, value in enumerate(cell_values.tolist()):
            name = value.strip() if isinstance(value, str) else ""
            if name and zone(name) is not None:
                own[j] = set_index.setdefault((name,), len(set_index))
        picked = own[cell_codes]
        out = np.where(picked >= 0, picked, out)
    return out, list(set_index)
