"""WhatsApp campaigns as issue 5 spells them: the [whatsapp] table, template parameters, the 24-hour rule, pricing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sendhelpers import states

RECIPIENTS = (
    "first_name,code,phone,whatsapp_consent\n"
    "Ann,SPRING10,+447400000001,yes\n"
    "Bob,,+447400000002,yes\n"  # no code: missing_field, never sent
    "Cy,SPRING15,+33612345678,yes\n"
)
RATES = "country,channel,credits,category\n*,whatsapp,9,\n*,whatsapp,4,marketing\nGB,whatsapp,2,marketing\n"
CAMPAIGN = """\
name = "spring-wa"
recipients = "recipients.csv"
channel = "whatsapp"
provider = "outbox"
rates = "rates.csv"

[whatsapp]
template = "spring_sale"
language = "en_US"
category = "marketing"
body_params = ["first_name", "code"]
"""


@pytest.fixture
def campaign_dir(tmp_path: Path) -> Path:
    (tmp_path / "recipients.csv").write_text(RECIPIENTS, encoding="utf-8")
    (tmp_path / "rates.csv").write_text(RATES, encoding="utf-8")
    (tmp_path / "campaign.toml").write_text(CAMPAIGN, encoding="utf-8")
    return tmp_path


def outbox(home: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (home / "outbox" / f"{name}.jsonl").read_text().splitlines()]


def test_a_template_campaign_from_the_whatsapp_table(cli, home, campaign_dir):
    assert cli("credits", "topup", 5000, "--channel", "whatsapp").exit_code == 0
    result = cli("send", campaign_dir / "campaign.toml", "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["counts"] == states({"sent": 2})
    assert doc["credits_debited"] == 2 + 4  # GB marketing, then the * marketing row for FR
    lines = sorted(outbox(home, "spring-wa"), key=lambda line: line["to"])
    assert [(line["to"], line["params"]) for line in lines] == [
        ("+33612345678", {"template": "spring_sale", "language": "en_US", "category": "marketing",
                          "body": ["Cy", "SPRING15"]}),
        ("+447400000001", {"template": "spring_sale", "language": "en_US", "category": "marketing",
                           "body": ["Ann", "SPRING10"]}),
    ]
    assert lines[1]["text"] == "[WhatsApp template spring_sale] Ann · SPRING10"
    assert json.loads(cli("balance", "--json").stdout)["whatsapp"]["available"] == 5000 - 6
    assert cli("credits", "audit").exit_code == 0


def test_a_missing_parameter_is_a_missing_field_reject_before_anything_is_sent(cli, home, campaign_dir):
    assert cli("credits", "topup", 5000, "--channel", "whatsapp").exit_code == 0
    result = cli("send", campaign_dir / "campaign.toml", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "missing_field 1" in " ".join(result.stdout.split() + result.stderr.split())
    dry = [json.loads(line) for line in (home / "outbox" / "spring-wa.dry-run.jsonl").read_text().splitlines()]
    assert sorted(line["to"] for line in dry) == ["+33612345678", "+447400000001"]


def test_free_form_text_needs_the_service_window(cli, home, campaign_dir):
    free = campaign_dir / "free.toml"
    free.write_text('recipients = "recipients.csv"\nchannel = "whatsapp"\nmessage = "Hi {first_name}"\n')
    assert cli("credits", "topup", 5000, "--channel", "whatsapp").exit_code == 0
    refused = cli("send", free, "--yes")
    assert refused.exit_code == 2
    assert "a WhatsApp campaign needs an approved template" in " ".join(refused.stderr.split())
    assert not (home / "outbox" / "free.jsonl").exists()
    free.write_text(free.read_text() + "[whatsapp]\nservice_window = true\n")
    sent = cli("send", free, "--yes", "--json")
    assert sent.exit_code == 0, sent.stderr
    assert sorted(line["text"] for line in outbox(home, "free")) == ["Hi Ann", "Hi Bob", "Hi Cy"]


def test_a_bare_csv_on_whatsapp_is_refused_without_a_template(cli, home, campaign_dir):
    assert cli("credits", "topup", 5000, "--channel", "whatsapp").exit_code == 0
    result = cli("send", campaign_dir / "recipients.csv", "--channel", "whatsapp", "--message", "Hi", "--yes")
    assert result.exit_code == 2
    assert "24-hour service window" in " ".join(result.stderr.split())


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[whatsapp]\ntemplate = "x"\nlanguage = "en"\ncolour = "red"\n', "unknown key in [whatsapp]: colour."),
        ('category = "utility"\n[whatsapp]\ntemplate = "x"\nlanguage = "en"\ncategory = "marketing"\n',
         "category is set twice"),
        ('whatsapp = "spring"\n', "whatsapp must be a table"),
    ],
)
def test_bad_whatsapp_tables_exit_2(cli, campaign_dir, table, message):
    bad = campaign_dir / "bad.toml"
    bad.write_text('recipients = "recipients.csv"\nchannel = "whatsapp"\n' + table)
    result = cli("send", bad, "--yes")
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())


def test_estimate_prices_whatsapp_by_category(cli, campaign_dir):
    args = ["estimate", campaign_dir / "recipients.csv", "--channel", "whatsapp", "--message", "Hi {first_name}",
            "--rates", campaign_dir / "rates.csv", "--json"]
    plain = json.loads(cli(*args).stdout)
    marketing = json.loads(cli(*args, "--category", "marketing").stdout)
    assert (plain["recipients"], plain["credits"]) == (3, 27)  # the * row without a category: 9 each
    assert marketing["credits"] == 2 + 2 + 4  # two GB numbers, one FR
    bad = cli(*args, "--category", "promo")
    assert bad.exit_code == 2 and "category 'promo'" in bad.stderr
