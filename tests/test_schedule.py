"""bulksend/schedule.py: quiet hours in each recipient's zones, send times, frequency caps (fixed instants only)."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import phonenumbers
import pytest
from phonenumbers.timezone import time_zones_for_number

from bulksend.errors import InputError
from bulksend.schedule import (
    FrequencyCap,
    QuietHours,
    Scheduler,
    SendAt,
    allowed_now,
    country_zones,
    next_allowed,
    number_zones,
    parse_frequency_cap,
    parse_quiet_hours,
    parse_send_at,
    row_zones,
)

UTC = timezone.utc
QUIET = QuietHours(time(21), time(8))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# ------------------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    "value, expected",
    [
        ("21:00-08:00", QuietHours(time(21), time(8))),
        (" 20:30 - 9:15 ", QuietHours(time(20, 30), time(9, 15))),
        ("01:00-05:00", QuietHours(time(1), time(5))),
        (True, QuietHours(time(21), time(8))),
        ("off", None),
        ("OFF", None),
        (False, None),
        (None, None),
    ],
)
def test_quiet_hours_are_parsed(value, expected) -> None:
    assert parse_quiet_hours(value) == expected


@pytest.mark.parametrize(
    "value, message",
    [
        ("21:00", "--quiet-hours: '21:00' is not a range of hours: use HH:MM-HH:MM, like \"21:00-08:00\", or \"off\"."),
        ("24:00-08:00", "--quiet-hours: the start '24:00' is not a time of day: use HH:MM, 00:00 to 23:59."),
        ("21:00-08:60", "--quiet-hours: the end '08:60' is not a time of day: use HH:MM, 00:00 to 23:59."),
        ("9pm-8am", "--quiet-hours: the start '9pm' is not a time of day: use HH:MM, 00:00 to 23:59."),
        ("08:00-08:00", "--quiet-hours: '08:00-08:00' starts and ends at the same time, which leaves no hour to send in."),
        (21, "--quiet-hours must be HH:MM-HH:MM (like \"21:00-08:00\") or \"off\", not 21."),
    ],
)
def test_bad_quiet_hours_say_what_to_write(value, message) -> None:
    with pytest.raises(InputError) as caught:
        parse_quiet_hours(value, "--quiet-hours")
    assert caught.value.message == message


def test_quiet_hours_crossing_midnight_and_not() -> None:
    night = QuietHours(time(21), time(8))
    assert [night.allows(time(h)) for h in (7, 8, 12, 20, 21, 23, 0)] == [False, True, True, True, False, False, False]
    assert night.allows(time(20, 59)) and not night.allows(time(7, 59))
    small_hours = QuietHours(time(1), time(5))
    assert [small_hours.allows(time(h)) for h in (0, 1, 4, 5, 23)] == [True, False, False, True, True]


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2/24h", FrequencyCap(2, timedelta(hours=24))),
        ("1/w", FrequencyCap(1, timedelta(weeks=1))),
        (" 3 / 7d ", FrequencyCap(3, timedelta(days=7))),
        ("10/90m", FrequencyCap(10, timedelta(minutes=90))),
        ("5/30S", FrequencyCap(5, timedelta(seconds=30))),
        ("off", None),
        (False, None),
    ],
)
def test_frequency_caps_are_parsed(value, expected) -> None:
    assert parse_frequency_cap(value) == expected


@pytest.mark.parametrize(
    "value, message",
    [
        ("2 per day", "frequency_cap: '2 per day' is not a cap: use N/WINDOW with s, m, h, d or w, like \"2/24h\" or \"3/7d\", or \"off\"."),
        ("0/24h", "frequency_cap: '0/24h': the number of messages must be from 1 to 10,000."),
        ("1/400d", "frequency_cap: '1/400d': the window must be longer than 0 and at most 366 days."),
        ("1/0h", "frequency_cap: '1/0h': the window must be longer than 0 and at most 366 days."),
        (2, "frequency_cap must be N/WINDOW (like \"2/24h\") or \"off\", not 2."),
    ],
)
def test_bad_frequency_caps_say_what_to_write(value, message) -> None:
    with pytest.raises(InputError) as caught:
        parse_frequency_cap(value)
    assert caught.value.message == message


def test_frequency_cap_says_when_a_number_becomes_eligible() -> None:
    cap = FrequencyCap(2, timedelta(hours=24))
    now = utc(2026, 5, 2, 12)
    assert cap.eligible_at([], now) is None
    assert cap.eligible_at([utc(2026, 5, 2, 9)], now) is None
    # Two in the window: the older must age out first.
    assert cap.eligible_at([utc(2026, 5, 2, 9), utc(2026, 5, 1, 18)], now) == utc(2026, 5, 2, 18)
    # A send exactly one window ago no longer counts.
    assert cap.eligible_at([utc(2026, 5, 1, 12), utc(2026, 5, 2, 9)], now) is None
    # Three in the window (another campaign slipped one in): two must age out.
    sends = [utc(2026, 5, 2, 11), utc(2026, 5, 2, 9), utc(2026, 5, 2, 1)]
    assert cap.eligible_at(sends, now) == utc(2026, 5, 3, 9)
    assert str(cap) == "2/1d" and str(FrequencyCap(3, timedelta(hours=36))) == "3/36h"


def test_send_at_instant_and_local_forms() -> None:
    assert parse_send_at("2026-12-01T09:00:00+01:00") == SendAt(instant=utc(2026, 12, 1, 8))
    assert parse_send_at("2026-12-01T08:00:00Z") == SendAt(instant=utc(2026, 12, 1, 8))
    assert parse_send_at("09:00", local=True) == SendAt(local=time(9))
    assert parse_send_at("2026-12-01T09:00", local=True) == SendAt(local=time(9), day=datetime(2026, 12, 1))
    assert parse_send_at(None) is None


@pytest.mark.parametrize(
    "value, local, message",
    [
        ("09:00", False, "--at: '09:00' is a time of day without a date or zone."),
        ("2026-12-01T09:00", False, "--at: '2026-12-01T09:00' has no offset, so it could mean any of 24 instants."),
        ("2026-12-01T09:00+01:00", True,
         "--at: '2026-12-01T09:00+01:00' has an offset, but local = true means each recipient's own zone."),
        ("tomorrow", False,
         "--at: 'tomorrow' is not a date-time: use ISO 8601, like \"2026-12-01T09:00:00+01:00\", or HH:MM with local = true."),
        ("25:00", True, "--at: the time '25:00' is not a time of day: use HH:MM, 00:00 to 23:59."),
    ],
)
def test_bad_send_times_say_what_to_write(value, local, message) -> None:
    with pytest.raises(InputError) as caught:
        parse_send_at(value, local, "--at")
    assert caught.value.message == message


# ------------------------------------------------------------------------------------------ zones


@pytest.mark.parametrize(
    "number",
    ["+12125550100", "+447400123456", "+61412345678", "+4915112345678", "+9779812345678", "+79161234567",
     "+14155550123", "+5511987654321", "+919876543210", "+33612345678", "+18005550199", "+12015550123"],
)
def test_number_zones_are_phonenumbers_own(number: str) -> None:
    assert number_zones(number) == tuple(time_zones_for_number(phonenumbers.parse(number)))


def test_row_zones_take_the_timezone_column_then_the_number_then_the_country() -> None:
    assert row_zones("+447400123456", "GB", "America/Chicago") == ("America/Chicago",)
    # Not a zone name: the number decides.
    assert row_zones("+12125550100", "US", "Mars/Olympus") == ("America/New_York",)
    assert row_zones("+12125550100", "US", "../../etc/passwd") == ("America/New_York",)
    # A UK drama number has no zone of its own in phonenumbers: the country's zones.
    assert number_zones("+447700900123") == ("Etc/Unknown",)
    assert row_zones("+447700900123", "GB") == ("Europe/London",)
    assert country_zones("GB") == ("Europe/London",)
    assert "America/New_York" in country_zones("us") and "Pacific/Honolulu" in country_zones("US")
    assert len(row_zones("+61412345678", "AU")) == 8


# ------------------------------------------------------------------------------------------ next_allowed


def test_inside_the_window_a_row_goes_at_once() -> None:
    now = utc(2026, 6, 1, 12)
    assert next_allowed(now, ("Europe/London",), QUIET) == now
    assert allowed_now(now, ("Europe/London",), QUIET)


def test_in_quiet_hours_a_row_waits_for_the_morning() -> None:
    # 21:30 in London (BST, +1) → 08:00 BST next day = 07:00 UTC.
    assert next_allowed(utc(2026, 6, 1, 20, 30), ("Europe/London",), QUIET) == utc(2026, 6, 2, 7)
    # 03:00 in New York (EDT, -4) → 08:00 EDT = 12:00 UTC the same day.
    assert next_allowed(utc(2026, 6, 1, 7), ("America/New_York",), QUIET) == utc(2026, 6, 1, 12)
    # The window's last minute is still allowed; its end is not.
    assert next_allowed(utc(2026, 6, 1, 19, 59), ("Europe/London",), QUIET) == utc(2026, 6, 1, 19, 59)
    assert next_allowed(utc(2026, 6, 1, 20), ("Europe/London",), QUIET) == utc(2026, 6, 2, 7)


def test_quiet_hours_off_means_now() -> None:
    assert next_allowed(utc(2026, 6, 1, 2), ("Europe/London",), None) == utc(2026, 6, 1, 2)


def test_several_zones_must_all_be_awake() -> None:
    # Perth +8, Sydney +10 (June, no DST): 08:00 Perth = 00:00 UTC (10:00 Sydney) opens both.
    zones = ("Australia/Perth", "Australia/Sydney")
    assert next_allowed(utc(2026, 6, 1, 20), zones, QUIET) == utc(2026, 6, 2, 0)
    # 21:00 Sydney = 11:00 UTC closes them; 10:59 UTC is still allowed in both.
    assert next_allowed(utc(2026, 6, 2, 10, 59), zones, QUIET) == utc(2026, 6, 2, 10, 59)
    assert next_allowed(utc(2026, 6, 2, 11), zones, QUIET) == utc(2026, 6, 3, 0)
    # Every Australian mobile zone (Cocos +6:30 to Lord Howe +10:30 in June): 08:00 Cocos = 01:30 UTC.
    every = row_zones("+61412345678", "AU")
    assert next_allowed(utc(2026, 6, 1, 12), every, QUIET) == utc(2026, 6, 2, 1, 30)
    assert not allowed_now(utc(2026, 6, 2, 1, 29), every, QUIET)
    assert allowed_now(utc(2026, 6, 2, 1, 30), every, QUIET)


def test_zones_that_never_share_an_allowed_hour_give_none() -> None:
    # Auckland (+12 in June) and London (+1): 11 hours apart, a 2-hour allowed window cannot fit both.
    assert next_allowed(utc(2026, 6, 1), ("Europe/London", "Pacific/Auckland"), QuietHours(time(10), time(8))) is None


def test_spring_forward_gap() -> None:
    # New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC). Quiet until 02:30: opens at the jump.
    quiet = QuietHours(time(22), time(2, 30))
    assert next_allowed(utc(2026, 3, 8, 5), ("America/New_York",), quiet) == utc(2026, 3, 8, 7)
    # The usual 08:00 end that morning is 08:00 EDT = 12:00 UTC (not 13:00).
    assert next_allowed(utc(2026, 3, 8, 4), ("America/New_York",), QUIET) == utc(2026, 3, 8, 12)
    # London, 2026-03-29: 01:00 GMT → 02:00 BST; quiet until 01:15 opens at 01:00 UTC.
    assert next_allowed(utc(2026, 3, 29, 0, 30), ("Europe/London",), QuietHours(time(23), time(1, 15))) == utc(
        2026, 3, 29, 1
    )


def test_fall_back_overlap() -> None:
    # New York, 2026-11-01: 02:00 EDT → 01:00 EST; 01:30 happens twice (05:30 and 06:30 UTC).
    quiet = QuietHours(time(23), time(1, 30))
    assert next_allowed(utc(2026, 11, 1, 5), ("America/New_York",), quiet) == utc(2026, 11, 1, 5, 30)
    # Between the two 01:30s the clock shows 01:00-01:29 EST again: quiet, until the second 01:30.
    assert not allowed_now(utc(2026, 11, 1, 6, 10), ("America/New_York",), quiet)
    assert next_allowed(utc(2026, 11, 1, 6, 10), ("America/New_York",), quiet) == utc(2026, 11, 1, 6, 30)
    # 08:00 EST that morning is 13:00 UTC.
    assert next_allowed(utc(2026, 11, 1, 7), ("America/New_York",), QUIET) == utc(2026, 11, 1, 13)


def test_lord_howe_half_hour_shift_and_nepal_quarter_hour() -> None:
    # Lord Howe: +11 in summer, +10:30 in winter (2026-04-05 at 02:00 local back to 01:30).
    assert next_allowed(utc(2026, 1, 10, 12), ("Australia/Lord_Howe",), QUIET) == utc(2026, 1, 10, 21)  # 08:00 +11
    assert next_allowed(utc(2026, 6, 10, 12), ("Australia/Lord_Howe",), QUIET) == utc(2026, 6, 10, 21, 30)  # +10:30
    # Kathmandu +05:45: 08:00 local = 02:15 UTC; 21:00 local = 15:15 UTC.
    assert next_allowed(utc(2026, 6, 10, 16), ("Asia/Kathmandu",), QUIET) == utc(2026, 6, 11, 2, 15)
    assert next_allowed(utc(2026, 6, 10, 15, 14), ("Asia/Kathmandu",), QUIET) == utc(2026, 6, 10, 15, 14)
    assert next_allowed(utc(2026, 6, 10, 15, 15), ("Asia/Kathmandu",), QUIET) == utc(2026, 6, 11, 2, 15)


def test_send_at_instant_then_quiet_hours() -> None:
    at = SendAt(instant=utc(2026, 12, 1, 8))
    assert next_allowed(utc(2026, 11, 30, 12), ("Europe/London",), QUIET, at) == utc(2026, 12, 1, 8)
    # Past the send time: now.
    assert next_allowed(utc(2026, 12, 2, 12), ("Europe/London",), QUIET, at) == utc(2026, 12, 2, 12)
    # 08:00 UTC is 03:00 in New York: quiet hours push it to 08:00 EST = 13:00 UTC.
    assert next_allowed(utc(2026, 11, 30, 12), ("America/New_York",), QUIET, at) == utc(2026, 12, 1, 13)


def test_local_send_time_rolls_around_the_world() -> None:
    at = SendAt(local=time(9))
    queued = utc(2026, 12, 1, 0)  # 09:00 Tokyo, 00:00 London, 19:00 (Nov 30) New York
    assert next_allowed(queued, ("Asia/Tokyo",), QUIET, at) == utc(2026, 12, 1, 0)
    assert next_allowed(queued, ("Europe/London",), QUIET, at) == utc(2026, 12, 1, 9)
    assert next_allowed(queued, ("America/New_York",), QUIET, at) == utc(2026, 12, 1, 14)
    # A later run keeps the campaign's anchor: New York's 09:00 is still that one.
    assert next_allowed(utc(2026, 12, 1, 10), ("America/New_York",), QUIET, at, anchor=queued) == utc(2026, 12, 1, 14)
    # With a date: that wall time in each zone.
    dated = SendAt(local=time(9), day=datetime(2026, 12, 3))
    assert next_allowed(queued, ("America/New_York",), QUIET, dated) == utc(2026, 12, 3, 14)


def test_local_send_time_with_several_zones_is_early_in_none() -> None:
    at = SendAt(local=time(9))
    zones = ("Australia/Perth", "Australia/Sydney")  # December: Perth +8, Sydney +11
    # Queued at 10:00 Sydney / 07:00 Perth: Sydney's next 09:00 is tomorrow (= 06:00 Perth), too early
    # for Perth; the answer is Perth's 09:00 tomorrow (12:00 Sydney).
    due = next_allowed(utc(2026, 12, 1, 23), zones, None, at)
    assert due == utc(2026, 12, 3, 1)
    # Queued at 06:00 Perth / 09:00 Sydney... the latest of both 09:00s: Perth 09:00 = 01:00 UTC.
    assert next_allowed(utc(2026, 12, 1, 22), zones, None, at) == utc(2026, 12, 2, 1)


def test_scheduler_caches_per_zone_set() -> None:
    scheduler = Scheduler(QUIET)
    now = utc(2026, 6, 1, 22)
    zones = scheduler.zones("+447400123456", "GB")
    assert scheduler.due(now, zones) == utc(2026, 6, 2, 7)
    assert scheduler.zones("+447400123457", "GB") == zones
    assert len(scheduler._due) == 1
    scheduler.due(now, zones)
    assert len(scheduler._due) == 1


def test_a_million_rows_are_scheduled_quickly() -> None:
    """Grouped by zone set, most of the work is per distinct set: 20,000 rows stay far under a second."""
    import time as clock

    scheduler = Scheduler(QUIET)
    now = utc(2026, 6, 1, 22)
    numbers = [f"+4474001{i:05d}" for i in range(10_000)] + [f"+1212555{i:04d}" for i in range(10_000)]
    started = clock.perf_counter()
    dues = {scheduler.due(now, scheduler.zones(n, None)) for n in numbers}
    assert clock.perf_counter() - started < 5  # generous: shared 2-core machine
    assert dues == {utc(2026, 6, 2, 7), utc(2026, 6, 1, 22)}


def test_row_zones_agree_with_phonenumbers_on_generated_numbers() -> None:
    """The fast lookup (one classification, the rest memoized) against time_zones_for_number row by row."""
    import random

    from bulksend.schedule import zone

    rng = random.Random(11)
    shapes = ["+1{}{:07d}", "+44{}{:08d}", "+61{}{:08d}", "+49{}{:09d}", "+34{}{:08d}", "+91{}{:09d}",
              "+52{}{:09d}", "+7{}{:09d}", "+55{}{:09d}", "+33{}{:08d}", "+81{}{:08d}", "+62{}{:09d}"]
    checked = 0
    for _ in range(3000):
        shape = rng.choice(shapes)
        number = shape.format(rng.randint(1, 9), rng.randint(0, 10**7 - 1))
        parsed = phonenumbers.parse(number)
        if not phonenumbers.is_valid_number(parsed):
            continue
        region = phonenumbers.region_code_for_number(parsed)
        expected = tuple(sorted({z for z in time_zones_for_number(parsed) if zone(z) is not None}))
        if not expected:
            expected = tuple(z for z in country_zones(region) if zone(z) is not None) or ("UTC",)
        assert row_zones(number, region) == expected, number
        assert number_zones(number) == tuple(time_zones_for_number(parsed)), number
        checked += 1
    assert checked > 500
