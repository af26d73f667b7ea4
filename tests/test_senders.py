"""Sender IDs are checked before anything is held or sent, and the sender used is recorded on the campaign."""

from __future__ import annotations

import json

import pytest

from bulksend.errors import InputError
from bulksend.senders import ALPHANUMERIC_RULE, NUMERIC_RULE, WHATSAPP_RULE, check_sender, sender_for
from fake_twilio import AUTH_TOKEN, twilio_config
from sendhelpers import ledger_rows, write_recipients
from twilio_forms import TwilioForms


@pytest.mark.parametrize(
    "value",
    ["A", "ACME", "ACME Shop", "Shop 24", "24Shop", "ABCDEFGHIJK", "123", "12345", "12345678",
     "+14155550100", "+447400123456", "447400123456", "+4915123456789"],
)
def test_good_sms_senders(value):
    assert check_sender(value, "sms", "sender") == value


@pytest.mark.parametrize(
    "value, rule",
    [
        ("ABCDEFGHIJKL", ALPHANUMERIC_RULE),  # 12 characters
        ("ACME-Shop", ALPHANUMERIC_RULE),
        ("Café", ALPHANUMERIC_RULE),  # not ASCII: networks show it differently, or refuse it
        ("ACME!", ALPHANUMERIC_RULE),
        ("12", NUMERIC_RULE),  # too short for a short code
        ("123456789", NUMERIC_RULE),  # too long for a short code, not a valid number
        ("+15550001111", NUMERIC_RULE),  # 555-0001: not a number anyone can own
        ("+44 7400 123456", NUMERIC_RULE),  # E.164 has no spaces
        ("+44", NUMERIC_RULE),
        ("   ", NUMERIC_RULE),
    ],
)
def test_bad_sms_senders_name_the_rule(value, rule):
    with pytest.raises(InputError) as raised:
        check_sender(value, "sms", "sender (--sender)")
    assert raised.value.exit_code == 2
    assert str(raised.value).startswith(f"sender (--sender) {value!r} is not a valid sender")
    assert str(raised.value).endswith(rule + ".")


@pytest.mark.parametrize("value", ["+14155550100", "whatsapp:+447400123456"])
def test_a_whatsapp_sender_is_a_number(value):
    assert check_sender(value, "whatsapp", "sender") == value


@pytest.mark.parametrize("value", ["ACME", "12345", "447400123456", "whatsapp:ACME"])
def test_a_whatsapp_sender_must_be_e164(value):
    with pytest.raises(InputError, match="cannot send WhatsApp messages: " + WHATSAPP_RULE.replace("+", r"\+")
                       .replace("(", r"\(").replace(")", r"\)")):
        check_sender(value, "whatsapp", "sender")


def _funded(cli):
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    return cli


def test_a_bad_sender_flag_is_exit_2_before_anything_is_held_or_sent(cli, home, tmp_path):
    _funded(cli)
    write_recipients(tmp_path / "list.csv", 2)
    result = cli("send", tmp_path / "list.csv", "-m", "Hi", "--sender", "ACME-Shop-Ltd", "--yes")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "Error: sender (--sender, or sender in the campaign file) 'ACME-Shop-Ltd' is not a valid sender ID: "
        f"{ALPHANUMERIC_RULE}."
    )
    assert json.loads(cli("campaigns", "list", "--json").stdout) in ([], {"campaigns": []})
    assert json.loads(cli("balance", "--json").stdout)["sms"]["held"] == 0
    assert not (home / "outbox" / "list.jsonl").exists()
    dry = cli("send", tmp_path / "list.csv", "-m", "Hi", "--sender", "ACME-Shop-Ltd", "--dry-run")
    assert dry.exit_code == 2  # a rehearsal finds it too


def test_a_bad_profile_sender_names_the_profile(cli, home, tmp_path, monkeypatch):
    _funded(cli)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    (home / "config.toml").write_text(twilio_config("http://127.0.0.1:9").replace("+15005550006", "+4412"))
    write_recipients(tmp_path / "list.csv", 2)
    result = cli("send", tmp_path / "list.csv", "-m", "Hi", "--provider", "fake", "--yes")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: sender of provider profile 'fake' '+4412' is not a valid sender: {NUMERIC_RULE}.")
    assert ledger_rows(home, "list") == {}


def test_the_sender_used_is_recorded_and_shown(cli, home, tmp_path, monkeypatch, httpserver):
    _funded(cli)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    twilio = TwilioForms(httpserver)
    (home / "config.toml").write_text(twilio.config(sender="+15005550006"))
    write_recipients(tmp_path / "list.csv", 2)
    result = cli("send", tmp_path / "list.csv", "-m", "Hi", "--provider", "tw", "--sender", "ACME Shop", "--yes")
    assert result.exit_code == 0, result.stderr
    assert [f["From"] for f in twilio.forms] == ["ACME Shop", "ACME Shop"]
    shown = json.loads(cli("campaigns", "show", "list", "--json").stdout)
    assert shown["sender"] == "ACME Shop"
    assert "  sender: ACME Shop\n" in cli("campaigns", "show", "list").stdout


def test_a_resume_records_the_sender_it_uses_now(cli, home, tmp_path, monkeypatch, httpserver):
    _funded(cli)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    twilio = TwilioForms(httpserver)
    (home / "config.toml").write_text(twilio.config(sender="+15005550006"))
    write_recipients(tmp_path / "list.csv", 3)
    assert cli("send", tmp_path / "list.csv", "-m", "Hi", "--provider", "tw", "--limit", "1", "--yes").exit_code == 0
    assert json.loads(cli("campaigns", "show", "list", "--json").stdout)["sender"] == "+15005550006"
    (home / "config.toml").write_text(twilio.config(sender="+14155550100"))
    assert cli("campaigns", "resume", "list", "--yes").exit_code == 0
    assert [f["From"] for f in twilio.forms] == ["+15005550006", "+14155550100", "+14155550100"]
    assert json.loads(cli("campaigns", "show", "list", "--json").stdout)["sender"] == "+14155550100"


def test_a_messaging_service_is_not_a_sender(cli, home, tmp_path, monkeypatch, httpserver):
    _funded(cli)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    twilio = TwilioForms(httpserver)
    (home / "config.toml").write_text(twilio.config(messaging_service_sid="MG" + "0" * 32))
    write_recipients(tmp_path / "list.csv", 1)
    assert cli("send", tmp_path / "list.csv", "-m", "Hi", "--provider", "tw", "--yes").exit_code == 0
    assert "From" not in twilio.forms[0] and twilio.forms[0]["MessagingServiceSid"] == "MG" + "0" * 32
    assert json.loads(cli("campaigns", "show", "list", "--json").stdout)["sender"] is None
    assert "sender:" not in cli("campaigns", "show", "list").stdout


def test_a_whatsapp_phone_number_id_is_not_a_sender():
    from bulksend.providers.base import Profile, provider_class

    cls = provider_class("whatsapp")
    provider = cls(Profile("wa", "whatsapp", {"phone_number_id": "1234567890", "sender": "ignored"}), "token", None)
    try:
        assert sender_for(provider, "whatsapp") == (None, None)
    finally:
        provider.close()
