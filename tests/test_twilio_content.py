"""Twilio Content templates from a campaign file, end to end; the 24-hour hint's keys; --service-window."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bulksend.campaign_file import CAMPAIGN_KEYS, WHATSAPP_TABLE
from twilio_forms import AUTH_TOKEN, TwilioForms

SID = "HX" + "ab" * 16
CSV = "first_name,code,phone,whatsapp_consent,sms_consent\nAnn,SPRING10,+447400000001,yes,yes\nZoë,SPRING15,+447400000002,yes,yes\n"


@pytest.fixture
def twilio(cli, home, monkeypatch, httpserver) -> TwilioForms:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    fake = TwilioForms(httpserver)
    (home / "config.toml").write_text(fake.config(sender="+15005550006"))
    assert cli("credits", "topup", 5000, "--channel", "whatsapp").exit_code == 0
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    return fake


def campaign(tmp_path: Path, body: str) -> Path:
    (tmp_path / "people.csv").write_text(CSV, encoding="utf-8")
    path = tmp_path / "spring.toml"
    path.write_text('recipients = "people.csv"\nprovider = "tw"\nregion = "GB"\n' + body, encoding="utf-8")
    return path


def test_a_whatsapp_content_template_sends_content_sid_and_the_rows_variables(cli, home, tmp_path, twilio):
    path = campaign(
        tmp_path, f'channel = "whatsapp"\ncontent_sid = "{SID}"\ncontent_variables = ["first_name", "code"]\n'
    )
    result = cli("send", path, "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["counts"]["sent"] == 2
    assert sorted(twilio.forms, key=lambda f: f["To"]) == [
        {"To": "whatsapp:+447400000001", "From": "whatsapp:+15005550006", "ContentSid": SID,
         "ContentVariables": '{"1": "Ann", "2": "SPRING10"}'},
        {"To": "whatsapp:+447400000002", "From": "whatsapp:+15005550006", "ContentSid": SID,
         "ContentVariables": '{"1": "Zoë", "2": "SPRING15"}'},
    ]
    assert json.loads(cli("balance", "--json").stdout)["whatsapp"]["available"] == 4998


def test_an_sms_content_template_is_priced_by_its_message_and_sent_without_a_body(cli, home, tmp_path, twilio):
    path = campaign(
        tmp_path,
        f'message = "Hi {{first_name}}, {{code}} takes 15% off"\ncontent_sid = "{SID}"\n'
        'content_variables = ["first_name"]\n',
    )
    result = cli("send", path, "--yes")
    assert result.exit_code == 0, result.stderr
    assert sorted(twilio.forms, key=lambda f: f["To"]) == [
        {"To": "+447400000001", "From": "+15005550006", "ContentSid": SID, "ContentVariables": '{"1": "Ann"}'},
        {"To": "+447400000002", "From": "+15005550006", "ContentSid": SID, "ContentVariables": '{"1": "Zoë"}'},
    ]


def test_an_sms_content_template_without_its_text_is_refused(cli, tmp_path, twilio):
    path = campaign(tmp_path, f'content_sid = "{SID}"\ncontent_variables = ["first_name"]\n')
    result = cli("send", path, "--yes")
    assert result.exit_code == 2
    assert "an SMS campaign with content_sid needs the Content template's text as message" in result.stderr
    assert twilio.forms == []


def test_a_content_template_through_another_provider_is_refused(cli, home, tmp_path, twilio, monkeypatch):
    monkeypatch.setenv("WHATSAPP_TOKEN", "fake-meta-token")
    with (home / "config.toml").open("a") as config:
        config.write('[providers.meta]\ntype = "whatsapp"\nphone_number_id = "1234567890"\nbase_url = "http://127.0.0.1:9"\n')
    path = campaign(tmp_path, f'channel = "whatsapp"\ncontent_sid = "{SID}"\ncontent_variables = ["first_name"]\n')
    result = cli("send", path, "--provider", "meta", "--yes")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "Error: content_sid is a template of the twilio provider; provider profile 'meta' is whatsapp and would "
        "send the message text instead. Nothing was sent."
    )


def _hint(cli, path: Path, *args: str) -> str:
    result = cli("send", path, "--dry-run", *args)
    assert result.exit_code == 2
    return " ".join(result.stderr.split())


def test_the_24_hour_hint_names_only_keys_that_exist_and_each_works(cli, home, tmp_path, twilio):
    path = campaign(tmp_path, 'channel = "whatsapp"\nmessage = "Hi {first_name}"\n')
    hint = _hint(cli, path)
    assert "[whatsapp] service_window = true" in hint and "--service-window" in hint
    named = re.findall(r"(\[whatsapp\] )?(\w+) =", hint)
    assert named, hint
    for table, key in named:
        assert key in (WHATSAPP_TABLE if table or key in ("language", "body_params") else CAMPAIGN_KEYS), key
    # Each way out the hint names is accepted as written.
    base = 'recipients = "people.csv"\nregion = "GB"\nchannel = "whatsapp"\n'
    for extra in (
        '[whatsapp]\ntemplate = "spring"\nlanguage = "en_US"\nbody_params = ["first_name"]\n',
        f'content_sid = "{SID}"\ncontent_variables = ["first_name"]\n',
        'message = "Hi {first_name}"\n[whatsapp]\nservice_window = true\n',
    ):
        path.write_text(base + extra)
        result = cli("send", path, "--dry-run")
        assert result.exit_code == 0, (extra, result.stderr)


def test_a_bare_csv_hint_names_the_flag_and_the_flag_sends_free_form_text(cli, home, tmp_path, twilio):
    (tmp_path / "people.csv").write_text(CSV, encoding="utf-8")
    args = ["--channel", "whatsapp", "--message", "Hi {first_name}", "--region", "GB"]
    hint = _hint(cli, tmp_path / "people.csv", *args)
    assert "Add --service-window when every recipient wrote to you in the last 24 hours" in hint
    result = cli("send", tmp_path / "people.csv", *args, "--service-window", "--yes")
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in (home / "outbox" / "people.jsonl").read_text().splitlines()]
    assert sorted((line["to"], line["text"], line["channel"], line.get("params") or None) for line in lines) == [
        ("+447400000001", "Hi Ann", "whatsapp", None), ("+447400000002", "Hi Zoë", "whatsapp", None),
    ]
    # The same through Twilio: free-form text is a Body, no template.
    (tmp_path / "people.csv").rename(tmp_path / "again.csv")
    result = cli("send", tmp_path / "again.csv", *args, "--service-window", "--provider", "tw", "--yes")
    assert result.exit_code == 0, result.stderr
    assert sorted(twilio.forms, key=lambda f: f["To"]) == [
        {"To": "whatsapp:+447400000001", "From": "whatsapp:+15005550006", "Body": "Hi Ann"},
        {"To": "whatsapp:+447400000002", "From": "whatsapp:+15005550006", "Body": "Hi Zoë"},
    ]
