"""`credits topup | history | audit` and `balance`, run in-process: exact output, JSON and exit codes."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
import time_machine

from bulksend.ledger import NewTransmission, SqliteLedger


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(datetime(2026, 11, 24, 12, 0), tick=False) as traveller:
        yield traveller


def test_topup_records_a_purchase(cli, home):
    result = cli("credits", "topup", "1000", "--channel", "sms", "--ref", "INV-1")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "Recorded 1000 sms credits bought on 2026-11-24, expiring 2027-11-24.\nsms: 1000 available.\n"
    )
    assert (home / "ledger.db").exists()


def test_topup_json(cli):
    cli("credits", "topup", "1000", "--channel", "sms", "--date", "2026-02-01")
    result = cli("credits", "topup", "2000", "--channel", "SMS", "--date", "2026-10-01", "--json")
    assert json.loads(result.stdout) == {
        "channel": "sms",
        "amount": 2000,
        "lot": 2,
        "purchased_on": "2026-10-01",
        "expires_at": "2027-10-01",
        "ref": None,
        "brought_forward": 1000,
        "reinstated": 0,
        "available": 3000,
    }


def test_topup_says_what_it_brought_forward(cli):
    cli("credits", "topup", "1000", "--channel", "sms", "--date", "2026-02-01")
    result = cli("credits", "topup", "1000", "--channel", "sms")
    assert result.stdout == (
        "Recorded 1000 sms credits bought on 2026-11-24, expiring 2027-11-24.\n"
        "Brought 1000 credits forward to 2027-11-24.\n"
        "sms: 2000 available.\n"
    )


@pytest.mark.parametrize(("channel", "amount", "minimum"), [("sms", "999", 1000), ("whatsapp", "4999", 5000)])
def test_topup_below_the_minimum_exits_2_naming_it(cli, home, channel, amount, minimum):
    result = cli("credits", "topup", amount, "--channel", channel)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: the minimum {channel} top-up is {minimum} credits; {amount} is less. Nothing recorded.\n"
    )
    assert not (home / "ledger.db").exists()


def test_the_minimum_is_configurable(cli, home):
    (home / "config.toml").write_text("[credits]\nmin_topup_sms = 100\nmin_topup_whatsapp = 200\n")
    assert cli("credits", "topup", "100", "--channel", "sms").exit_code == 0
    assert cli("credits", "topup", "199", "--channel", "whatsapp").exit_code == 2
    assert cli("credits", "topup", "200", "--channel", "whatsapp").exit_code == 0


def test_a_bad_minimum_in_the_config_exits_6(cli, home):
    (home / "config.toml").write_text('[credits]\nmin_topup_sms = "lots"\n')
    result = cli("credits", "topup", "1000", "--channel", "sms")
    assert result.exit_code == 6
    assert "credits.min_topup_sms (the smallest SMS top-up) must be a whole number from 1 to 1,000,000,000,000" in result.stderr


def test_a_used_reference_is_refused(cli):
    cli("credits", "topup", "1000", "--channel", "sms", "--ref", "INV-7")
    result = cli("credits", "topup", "5000", "--channel", "whatsapp", "--ref", "INV-7")
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: reference 'INV-7' was already used by the top-up of 1000 sms credits on 2026-11-24; "
        "nothing recorded.\n"
    )


@pytest.mark.parametrize(
    ("date", "message"),
    [
        ("2026-11-25", "Error: the top-up date 2026-11-25 is in the future (today is 2026-11-24); nothing recorded.\n"),
        ("24/11/2026", "Error: --date '24/11/2026' is not a date: use YYYY-MM-DD.\n"),
    ],
)
def test_a_bad_date_is_refused(cli, home, date, message):
    result = cli("credits", "topup", "1000", "--channel", "sms", "--date", date)
    assert (result.exit_code, result.stderr) == (2, message)


def test_an_unknown_channel_exits_2(cli):
    result = cli("credits", "topup", "1000", "--channel", "telegram")
    assert (result.exit_code, result.stderr) == (2, "Error: unknown channel 'telegram': use sms or whatsapp.\n")


# --------------------------------------------------------------------------------------- balance


def test_balance_of_a_fresh_home_is_zero_and_creates_nothing(cli, home):
    result = cli("balance", "--json")
    assert json.loads(result.stdout) == {
        "sms": {"available": 0, "held": 0, "total": 0, "expiring": []},
        "whatsapp": {"available": 0, "held": 0, "total": 0, "expiring": []},
    }
    assert not (home / "ledger.db").exists()


def _ledger_with_a_hold(home: Path) -> None:
    with SqliteLedger.open(home / "ledger.db") as ledger:
        campaign = ledger.open_campaign("spring", "sms", "outbox", "fp")
        ledger.add_transmissions(campaign.id, [NewTransmission("+447911123456", "hi", 1, 1)])
        ledger.hold(campaign.id, "sms", 250)


def test_balance_shows_available_held_and_expiring(cli, home, clock):
    clock.move_to(datetime(2026, 3, 1, 12))
    cli("credits", "topup", "1000", "--channel", "sms")
    cli("credits", "topup", "1000", "--channel", "sms", "--date", "2026-02-01")
    clock.move_to(datetime(2026, 11, 24, 12))
    cli("credits", "topup", "6000", "--channel", "whatsapp")
    _ledger_with_a_hold(home)
    result = cli("balance")
    assert result.exit_code == 0
    assert result.stdout == (
        "sms: 1750 available, 250 held\n"
        "  1000 expire on 2027-02-01\n"
        "  1000 expire on 2027-03-01\n"
        "whatsapp: 6000 available, 0 held\n"
        "  6000 expire on 2027-11-24\n"
        "Dates are days in the ledger's time zone, UTC.\n"
    )
    assert json.loads(cli("balance", "--json").stdout) == {
        "sms": {
            "available": 1750,
            "held": 250,
            "total": 2000,
            "expiring": [{"amount": 1000, "expires_at": "2027-02-01"}, {"amount": 1000, "expires_at": "2027-03-01"}],
        },
        "whatsapp": {"available": 6000, "held": 0, "total": 6000, "expiring": [{"amount": 6000, "expires_at": "2027-11-24"}]},
    }
    assert json.loads(cli("balance", "--json", "--channel", "whatsapp").stdout) == {
        "whatsapp": {"available": 6000, "held": 0, "total": 6000, "expiring": [{"amount": 6000, "expires_at": "2027-11-24"}]},
    }


def test_fail_below_exits_3_with_one_line(cli):
    cli("credits", "topup", "1000", "--channel", "sms")
    result = cli("balance", "--channel", "sms", "--fail-below", "1001")
    assert result.exit_code == 3
    assert result.stderr == "Error: sms balance 1000 is below 1001.\n"
    assert result.stdout == (
        "sms: 1000 available, 0 held\n  1000 expire on 2027-11-24\nDates are days in the ledger's time zone, UTC.\n"
    )


def test_fail_below_passes_at_the_floor(cli):
    cli("credits", "topup", "1000", "--channel", "sms")
    result = cli("balance", "--channel", "sms", "--fail-below", "1000", "--json")
    assert (result.exit_code, result.stderr) == (0, "")
    assert json.loads(result.stdout)["sms"]["available"] == 1000


def test_fail_below_without_a_channel_checks_only_the_channels_ever_topped_up(cli):
    cli("credits", "topup", "1000", "--channel", "sms")
    result = cli("balance", "--fail-below", "500", "--json")  # an SMS-only user: WhatsApp's 0 is not a problem
    assert (result.exit_code, result.stderr) == (0, "")
    assert json.loads(result.stdout)["whatsapp"]["available"] == 0  # still shown
    result = cli("balance", "--fail-below", "1001", "--json")
    assert result.exit_code == 3
    assert result.stderr == "Error: sms balance 1000 is below 1001.\n"
    assert json.loads(result.stdout)["sms"]["available"] == 1000  # the data still goes to stdout
    assert cli("balance", "--channel", "whatsapp", "--fail-below", "1").exit_code == 3  # asked for by name


def test_fail_below_still_watches_a_channel_whose_credits_expired(cli, clock):
    cli("credits", "topup", "1000", "--channel", "sms")
    cli("credits", "topup", "5000", "--channel", "whatsapp", "--date", "2026-01-05")
    clock.move_to(datetime(2027, 1, 6, 12))
    result = cli("balance", "--fail-below", "1")
    assert result.exit_code == 3
    assert result.stderr == "Error: whatsapp balance 0 is below 1.\n"


def test_fail_below_with_no_top_up_at_all_checks_every_channel(cli, home):
    result = cli("balance", "--fail-below", "1", "--json")  # nothing can be sent: the probe says so
    assert result.exit_code == 3
    assert result.stderr == "Error: sms balance 0 is below 1; whatsapp balance 0 is below 1.\n"
    assert not (home / "ledger.db").exists()
    cli("optout", "add", "+447911123456")  # a ledger, but still no top-up
    assert (home / "ledger.db").exists()
    assert cli("balance", "--fail-below", "1").stderr == (
        "Error: sms balance 0 is below 1; whatsapp balance 0 is below 1.\n"
    )


def test_expired_credits_leave_the_balance_on_their_day(cli, clock):
    cli("credits", "topup", "1000", "--channel", "sms")
    clock.move_to(datetime(2027, 11, 24, 0, 0, 1))
    assert json.loads(cli("balance", "--json", "--channel", "sms").stdout)["sms"]["available"] == 0


# --------------------------------------------------------------------------------------- history


def test_history_is_newest_first_with_expiries(cli, home, clock):
    clock.move_to(datetime(2025, 12, 1, 12))
    cli("credits", "topup", "5000", "--channel", "whatsapp", "--ref", "W-1")
    clock.move_to(datetime(2026, 11, 20, 12))
    cli("credits", "topup", "1000", "--channel", "sms", "--ref", "S-1")
    clock.move_to(datetime(2026, 12, 2, 12))
    _ledger_with_a_hold(home)
    result = cli("credits", "history")
    assert result.exit_code == 0
    assert result.stdout == (
        "2026-12-02  hold      sms           250  campaign 1\n"
        "2026-12-01  expiry    whatsapp    -5000\n"
        "2026-11-20  topup     sms         +1000  ref S-1 · expires 2027-11-20\n"
        "2025-12-01  topup     whatsapp    +5000  ref W-1 · expires 2026-12-01\n"
    )
    assert cli("credits", "history", "--channel", "whatsapp", "--since", "2026-01-01").stdout == (
        "2026-12-01  expiry    whatsapp    -5000\n"
    )
    movements = json.loads(cli("credits", "history", "--json", "--since", "2026-12-02").stdout)["movements"]
    assert movements == [
        {
            "id": 4,
            "date": "2026-12-02",
            "kind": "hold",
            "channel": "sms",
            "amount": 250,
            "change": 0,
            "lot": None,
            "campaign": 1,
            "transmission": None,
            "ref": None,
            "note": None,
            "recorded_at": "2026-12-02T12:00:00.000Z",
        }
    ]


def test_history_of_a_fresh_home_is_empty(cli, home):
    result = cli("credits", "history")
    assert (result.exit_code, result.stdout) == (0, "")
    assert "No credit movements yet" in result.stderr
    assert json.loads(cli("credits", "history", "--json").stdout) == {"timezone": "UTC", "movements": []}
    assert not (home / "ledger.db").exists()


# ----------------------------------------------------------------------------------------- audit


def test_audit_of_a_consistent_ledger_is_one_line(cli, home):
    cli("credits", "topup", "1000", "--channel", "sms")
    _ledger_with_a_hold(home)
    result = cli("credits", "audit")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "consistent\n", "")


def test_audit_names_each_difference_and_exits_1(cli, home):
    cli("credits", "topup", "1000", "--channel", "sms")
    raw = sqlite3.connect(home / "ledger.db")
    raw.execute("UPDATE credit_lots SET remaining = 1500")
    raw.commit()
    raw.close()
    result = cli("credits", "audit")
    assert result.exit_code == 1
    assert result.stdout == (
        "lot 1 (sms): 1500 credits left, movements say 1000\n"
        "sms: top-ups 1000 - debits 0 + refunds 0 - expired 0 = 1000, but the lots hold 1500\n"
    )
    assert result.stderr.startswith("Error: the ledger is not consistent: 2 differences.\n")
    document = json.loads(cli("credits", "audit", "--json").stdout)
    assert document["consistent"] is False
    assert len(document["differences"]) == 2


@pytest.mark.parametrize(
    "command",
    [
        ("balance",),
        ("credits", "topup"),
        ("credits", "history"),
        ("credits", "audit"),
        ("optout", "add"),
        ("optout", "remove"),
        ("optout", "list"),
        ("optout", "import"),
    ],
)
def test_every_ledger_command_has_help_with_an_example(cli, command):
    result = cli(*command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.stdout and "bulksend " + " ".join(command) in result.stdout
