"""A ledger has one calendar: the zone recorded in it dates top-ups, expiries and "today", whatever the process's TZ."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
import time_machine

from bulksend import calendar
from bulksend.calendar import Calendar, machine_zone as real_machine_zone
from bulksend.errors import ConfigError, LedgerError
from bulksend.ledger import SqliteLedger

# 14:00 UTC on 24 November is already 01:00 on the 25th in Sydney (UTC+11) and 04:00 in Kiritimati (UTC+14).
MOMENT = datetime(2026, 11, 24, 14, 0, tzinfo=timezone.utc)


@pytest.fixture
def clock():
    with time_machine.travel(MOMENT, tick=False) as traveller:
        yield traveller


@pytest.fixture
def process_tz():
    """Change this process's own TZ (as a cron line's TZ=… would), and put it back afterwards."""
    before = os.environ.get("TZ")

    def set_tz(name: str) -> None:
        os.environ["TZ"] = name
        time.tzset()

    yield set_tz
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


def write_config(home: Path, text: str) -> None:
    (home / "config.toml").write_text(text, encoding="utf-8")


def test_a_new_ledger_records_the_machines_zone(tmp_path, monkeypatch):
    monkeypatch.setattr(calendar, "machine_zone", lambda: "Pacific/Kiritimati")
    with SqliteLedger.open(tmp_path / "ledger.db") as ledger:
        assert ledger.meta("timezone") == "Pacific/Kiritimati"


def test_the_configured_zone_wins_over_the_machines(cli, home, clock):
    write_config(home, '[credits]\ntimezone = "Australia/Sydney"\n')
    assert cli("credits", "topup", "1000", "--channel", "sms").exit_code == 0
    with SqliteLedger.open(home / "ledger.db") as ledger:
        assert ledger.meta("timezone") == "Australia/Sydney"
        assert [lot.purchased_on for lot in ledger.lots()] == [date(2026, 11, 25)]  # Sydney's day, not UTC's


def test_every_process_uses_the_ledgers_zone_not_its_own(tmp_path, monkeypatch, clock, process_tz):
    clock.move_to(datetime(2026, 11, 20, tzinfo=timezone.utc))
    with SqliteLedger.open(tmp_path / "ledger.db", zone="Australia/Sydney") as ledger:
        ledger.topup("sms", 1000, on=date(2025, 11, 25))  # expires on 2026-11-25: today, in Sydney
        ledger.topup("whatsapp", 5000)
    clock.move_to(MOMENT)
    for tz in ("UTC", "America/Adak", "Pacific/Kiritimati"):  # a cron job, a laptop, a server far away
        process_tz(tz)
        monkeypatch.setattr(calendar, "machine_zone", lambda tz=tz: tz)
        with SqliteLedger.open(tmp_path / "ledger.db", zone="Europe/London") as ledger:  # config says otherwise
            assert ledger.calendar().zone == "Australia/Sydney"
            assert ledger.calendar().today() == date(2026, 11, 25)
            assert ledger.balance("sms")["sms"].total == 0, tz  # expired, for every process alike
    with SqliteLedger.open(tmp_path / "ledger.db") as ledger:
        ledger.hold(ledger.open_campaign("c", "whatsapp", "outbox", "fp").id, "whatsapp", 1)  # a write
        assert [(m.kind, m.on) for m in ledger.history("sms")][0] == ("expiry", date(2026, 11, 25))


def test_the_same_moment_is_another_day_in_another_ledgers_zone(tmp_path, clock):
    with SqliteLedger.open(tmp_path / "utc.db", zone="UTC") as utc, \
            SqliteLedger.open(tmp_path / "adak.db", zone="America/Adak") as adak:
        assert utc.topup("sms", 1000).lot.purchased_on == date(2026, 11, 24)
        assert adak.topup("sms", 1000).lot.purchased_on == date(2026, 11, 24)  # 04:00 in Adak (UTC-10)
    clock.move_to(datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc))
    with SqliteLedger.open(tmp_path / "utc.db") as utc, SqliteLedger.open(tmp_path / "adak.db") as adak:
        assert utc.calendar().today() == date(2026, 11, 25)
        assert adak.calendar().today() == date(2026, 11, 24)  # 23:00 the day before in Adak
        with pytest.raises(Exception, match="in the future"):
            adak.topup("sms", 1000, on=date(2026, 11, 25))


def test_a_ledger_without_a_zone_gets_one_on_its_first_write_not_on_a_read(tmp_path, monkeypatch, clock):
    path = tmp_path / "ledger.db"
    SqliteLedger.open(path).close()
    with sqlite3.connect(path) as conn:  # as a ledger made before the zone was recorded
        conn.execute("DELETE FROM meta WHERE key = 'timezone'")
    monkeypatch.setattr(calendar, "machine_zone", lambda: "Asia/Tokyo")
    with SqliteLedger.open(path) as ledger:
        assert ledger.balance()["sms"].total == 0
        assert ledger.calendar().zone == "Asia/Tokyo"  # what it would record
        assert ledger.meta("timezone") is None  # reading wrote nothing
        assert ledger.topup("sms", 1000).lot.purchased_on == date(2026, 11, 24)  # 23:00 in Tokyo
        assert ledger.meta("timezone") == "Asia/Tokyo"
    monkeypatch.setattr(calendar, "machine_zone", lambda: "UTC")
    with SqliteLedger.open(path, zone="Europe/Paris") as ledger:
        assert ledger.calendar().zone == "Asia/Tokyo"  # recorded once, for good


def test_a_zone_recorded_then_rolled_back_is_not_kept(tmp_path, clock):
    path = tmp_path / "ledger.db"
    SqliteLedger.open(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM meta WHERE key = 'timezone'")
    with SqliteLedger.open(path, zone="Europe/Paris") as ledger:
        with pytest.raises(RuntimeError), ledger.transaction():
            raise RuntimeError("the batch failed")
        assert ledger.meta("timezone") is None
        ledger.topup("sms", 1000)
        assert ledger.meta("timezone") == "Europe/Paris"


def test_a_bad_configured_zone_is_a_configuration_error(cli, home):
    write_config(home, '[credits]\ntimezone = "Mars/Olympus"\n')
    result = cli("credits", "topup", "1000", "--channel", "sms")
    assert result.exit_code == 6
    assert "config.toml: [credits] timezone 'Mars/Olympus' is not an IANA time zone." in result.stderr
    assert not (home / "ledger.db").exists()
    with pytest.raises(ConfigError):
        calendar.configured_zone({"timezone": 3})


def test_a_recorded_zone_this_machine_does_not_know_is_named(tmp_path):
    path = tmp_path / "ledger.db"
    SqliteLedger.open(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = 'Nowhere/Atlantis' WHERE key = 'timezone'")
    with SqliteLedger.open(path) as ledger, pytest.raises(LedgerError, match="'Nowhere/Atlantis'"):
        ledger.balance()


def test_the_clock_can_be_injected():
    cal = Calendar("Pacific/Kiritimati", clock=lambda: datetime(2026, 12, 31, 10, 0, tzinfo=timezone.utc))
    assert cal.today() == date(2027, 1, 1)
    assert Calendar("UTC").clock is calendar.utc_now


@pytest.mark.parametrize(
    ("tz", "expected"),
    [("Pacific/Kiritimati", "Pacific/Kiritimati"), ("America/Adak", "America/Adak")],
)
def test_the_machines_zone_is_its_iana_name(tz, expected, process_tz):
    import tzlocal

    process_tz(tz)
    tzlocal.reload_localzone()
    try:
        assert real_machine_zone() == expected
    finally:
        tzlocal.reload_localzone()


def test_a_machine_zone_that_cannot_be_named_falls_back_to_utc(monkeypatch):
    import tzlocal

    def broken() -> str:
        raise LookupError("no zone configured")

    monkeypatch.setattr(tzlocal, "get_localzone_name", broken)
    assert real_machine_zone() == "UTC"
    monkeypatch.setattr(tzlocal, "get_localzone_name", lambda: "not a zone")
    assert real_machine_zone() == "UTC"


def test_balance_and_history_name_the_ledgers_zone(cli, home, clock):
    write_config(home, '[credits]\ntimezone = "Australia/Sydney"\n')
    cli("credits", "topup", "1000", "--channel", "sms")
    human = cli("balance")
    assert human.exit_code == 0
    assert human.stdout.endswith("Dates are days in the ledger's time zone, Australia/Sydney.\n")
    as_json = json.loads(cli("balance", "--json").stdout)
    assert set(as_json) == {"sms", "whatsapp"}  # the fixed shape: one key per channel, nothing else
    history = json.loads(cli("credits", "history", "--json").stdout)
    assert history["timezone"] == "Australia/Sydney"
    assert history["movements"][0]["date"] == "2026-11-25"
