"""Content checks and the opt-out footer through the CLI: estimate, validate, send, campaigns show."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

LIST = (
    "phone,consent,first_name,code\n"
    "+447400000001,yes,Ann,A1\n"  # row 1: clean
    "+447400000002,yes,Bob,c0caine\n"  # row 2: a merge field brings a word
    "+447400000003,yes,Cy,\n"  # row 3: missing_field comes first
    "+447400000004,yes,Di,cocaaaine\n"  # row 4: the same word, another evasion
)


@pytest.fixture
def people(tmp_path: Path) -> Path:
    path = tmp_path / "people.csv"
    path.write_text(LIST, encoding="utf-8")
    return path


@pytest.fixture
def funded(cli):
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    return cli


def as_json(result) -> dict:
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def outbox(home: Path, name: str) -> list[dict]:
    path = home / "outbox" / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def config(home: Path, text: str) -> None:
    (home / "config.toml").write_text(text, encoding="utf-8")


# --- content -------------------------------------------------------------------------------------------------


def test_estimate_json_reports_findings_by_category_and_word_with_an_example_row(cli, people):
    doc = as_json(cli("estimate", people, "-m", "Hi {first_name}, code {code}", "--json"))
    assert doc["reasons"] == {"missing_field": 1, "content_blocked": 2}
    assert list(doc["reasons"]) == ["missing_field", "content_blocked"]  # the brief's order
    assert doc["recipients"] == 1
    assert doc["content"] == {
        "blocked": 2,
        "allowed": [],
        "findings": [
            {"category": "illegal", "word": "cocaine", "source": "merge_field", "rows": 2, "example_row": 2},
        ],
    }


def test_estimate_human_output_lists_the_findings(cli, people):
    result = cli("estimate", people, "-m", "Hi {first_name}, code {code}")
    assert result.exit_code == 0
    assert "  illegal: 'cocaine' from a merge field · 2 rows, e.g. row 2" in result.stdout
    assert "row 2      content_blocked    '+447400000002': a merge field brings 'cocaine' (illegal)" in result.stdout


def test_a_finding_in_the_message_blocks_every_row_and_estimate_says_send_refuses_it(cli, people):
    result = cli("estimate", people, "-m", "Hi {first_name}, you idiot", "--json")
    doc = as_json(result)
    assert doc["reasons"] == {"content_blocked": 4}
    assert doc["content"]["findings"] == [
        {"category": "profanity", "word": "idiot", "source": "message", "rows": 4, "example_row": 1},
    ]
    assert "send refuses it unless --allow-content profanity" in result.stderr


def test_validate_with_a_template_checks_content(cli, people, tmp_path):
    template = tmp_path / "t.txt"
    template.write_text("Hi {first_name}, code {code|none}\n", encoding="utf-8")
    doc = as_json(cli("validate", people, "--template", template, "--json"))
    assert doc["reasons"] == {"content_blocked": 2}
    assert doc["content"]["findings"][0]["word"] == "cocaine"
    rejects = tmp_path / "rejects.csv"
    assert cli("validate", people, "--template", template, "--rejects", rejects).exit_code == 0
    assert "4,+447400000004,content_blocked,a merge field brings 'cocaine' (illegal)" in rejects.read_text()


def test_validate_without_a_message_checks_no_content(cli, people):
    doc = as_json(cli("validate", people, "--json"))
    assert doc["valid"] == 4 and "content" not in doc


def test_a_content_finding_comes_before_too_long(cli, tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("phone,consent,w\n+447400000001,yes,idiot\n+447400000002,yes,fine\n")
    doc = as_json(cli("estimate", path, "-m", "{w} " + "x" * 400, "--max-segments", 1, "--json"))
    assert doc["reasons"] == {"content_blocked": 1, "too_long": 1}


def test_config_deny_and_allow(cli, home, people):
    config(home, '[content]\ndeny = ["bob"]\nallow = ["cocaine"]\n')
    doc = as_json(cli("estimate", people, "-m", "Hi {first_name}, code {code}", "--json"))
    assert doc["content"]["findings"] == [
        {"category": "deny", "word": "bob", "source": "merge_field", "rows": 1, "example_row": 2},
    ]


def test_a_bad_content_section_is_a_configuration_error(cli, home, people):
    config(home, '[content]\ndeny = "cocaine"\n')
    result = cli("estimate", people, "-m", "Hi")
    assert result.exit_code == 6
    assert "content.deny (your own words and phrases that block a message) must be a list of text" in result.stderr


def test_send_of_a_message_with_a_finding_exits_2_before_anything_is_held(funded, home, people):
    result = funded("send", people, "-m", "Buy cocaine and stolen credit cards now, you idiots", "--yes")
    assert result.exit_code == 2
    assert ("the message in --message has content findings: 'cocaine' (illegal), 'stolen credit cards' "
            "(illegal), 'idiot' (profanity); nothing was sent.") in result.stderr
    assert "--allow-content illegal --allow-content profanity" in result.stderr
    assert as_json(funded("balance", "--json"))["sms"]["held"] == 0
    assert as_json(funded("campaigns", "list", "--json")) == {"campaigns": []}
    assert outbox(home, "people") == []


def test_allow_content_sends_and_is_recorded_on_the_campaign(funded, home, people):
    result = funded("send", people, "-m", "Hi {first_name}, you idiot. Reply STOP to opt out",
                    "--allow-content", "profanity", "--yes", "--json")
    doc = as_json(result)
    assert doc["counts"]["sent"] == 4
    shown = as_json(funded("campaigns", "show", "people", "--json"))
    assert (shown["allow_content"], shown["purpose"]) == (["profanity"], "marketing")
    assert "content allowed despite findings: profanity" in funded("campaigns", "show", "people").stdout


def test_allow_content_in_the_campaign_file(funded, home, people, tmp_path):
    campaign = tmp_path / "c.toml"
    campaign.write_text(
        'name = "c"\nrecipients = "people.csv"\nmessage = "Harm reduction: fentanyl test strips free"\n'
        'allow_content = ["illegal"]\npurpose = "transactional"\n'
    )
    assert as_json(funded("send", campaign, "--yes", "--json"))["counts"]["sent"] == 4
    assert as_json(funded("campaigns", "show", "c", "--json"))["allow_content"] == ["illegal"]


def test_an_unknown_content_category_is_refused(funded, people):
    result = funded("send", people, "-m", "Hi", "--allow-content", "rude", "--yes")
    assert result.exit_code == 2
    assert "--allow-content 'rude' is not a content category." in result.stderr


# --- the opt-out footer --------------------------------------------------------------------------------------


def test_the_footer_is_appended_to_marketing_sms_and_priced(funded, home, tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("phone,consent\n+447400000001,yes\n")
    text = "a" * 150  # one segment alone; with "\nReply STOP to opt out" (22 more) two
    doc = as_json(funded("estimate", path, "-m", text, "--json"))
    assert (doc["segments"], doc["credits"]) == (2, 2)
    assert doc["compliance"] == {"purpose": "marketing", "footer": "Reply STOP to opt out", "shorteners": []}
    assert doc["examples"][0]["text"] == text + "\nReply STOP to opt out"
    human = funded("estimate", path, "-m", text).stdout
    assert "Opt-out footer added to every message (marketing SMS): 'Reply STOP to opt out'" in human
    sent = as_json(funded("send", path, "-m", text, "--yes", "--json"))
    assert sent["credits_debited"] == 2
    assert [m["text"] for m in outbox(home, "one")] == [text + "\nReply STOP to opt out"]


def test_transactional_messages_are_not_footered(funded, home, tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("phone,consent\n+447400000001,yes\n")
    text = "a" * 150
    doc = as_json(funded("estimate", path, "-m", text, "--purpose", "transactional", "--json"))
    assert (doc["segments"], doc["compliance"]["footer"]) == (1, None)
    assert as_json(funded("send", path, "-m", text, "--purpose", "transactional", "--yes", "--json"))[
        "credits_debited"] == 1
    assert [m["text"] for m in outbox(home, "one")] == [text]


@pytest.mark.parametrize("text", ["Sale today! Reply STOP to opt out", "Soldes : STOP au 36180",
                                  "Rebajas hoy. Responde BAJA", "Sale today, text STOP to 12345"])
def test_a_message_that_says_how_to_opt_out_gets_no_footer(cli, people, text):
    doc = as_json(cli("estimate", people, "-m", text, "--json"))
    assert doc["compliance"]["footer"] is None


def test_lower_case_stop_is_not_an_instruction(cli, people):
    doc = as_json(cli("estimate", people, "-m", "Stop by our store today", "--json"))
    assert doc["compliance"]["footer"] == "Reply STOP to opt out"


def test_a_configured_footer_and_optout_pattern(cli, home, people):
    config(home, '[compliance]\nfooter = "Desinscription: bit.do/x"\noptout_pattern = "(?i)unsubscribe at"\n')
    assert as_json(cli("estimate", people, "-m", "Hi", "--json"))["compliance"]["footer"] == "Desinscription: bit.do/x"
    assert as_json(cli("estimate", people, "-m", "Hi, unsubscribe at ex.com/u", "--json"))["compliance"]["footer"] is None


def test_with_the_footer_off_send_refuses_a_marketing_sms_without_an_instruction(funded, home, people):
    config(home, '[compliance]\nfooter = ""\n')
    estimate = funded("estimate", people, "-m", "Hi")
    assert estimate.exit_code == 0 and "send will refuse it" in estimate.stderr
    result = funded("send", people, "-m", "Hi", "--yes")
    assert result.exit_code == 2
    assert "does not say how to opt out, and [compliance] footer is off; nothing was sent." in result.stderr
    assert 'Add an instruction such as "Reply STOP to opt out"' in result.stderr
    assert as_json(funded("balance", "--json"))["sms"]["held"] == 0
    assert as_json(funded("campaigns", "list", "--json")) == {"campaigns": []}
    assert funded("send", people, "-m", "Hi, reply STOP to opt out", "--name", "a", "--yes").exit_code == 0
    assert funded("send", people, "-m", "Hi", "--purpose", "transactional", "--name", "b", "--yes").exit_code == 0


def test_a_bad_optout_pattern_is_a_configuration_error(cli, home, people):
    config(home, '[compliance]\noptout_pattern = "(unclosed"\n')
    result = cli("estimate", people, "-m", "Hi")
    assert result.exit_code == 6 and "optout_pattern '(unclosed' is not a regular expression" in result.stderr


def test_a_bad_purpose_is_refused(cli, people, tmp_path):
    assert "--purpose 'promo': choose marketing or transactional." in cli("estimate", people, "-m", "Hi",
                                                                          "--purpose", "promo").stderr
    campaign = tmp_path / "c.toml"
    campaign.write_text('recipients = "people.csv"\nmessage = "Hi"\npurpose = "promo"\n')
    result = cli("send", campaign, "--yes")
    assert result.exit_code == 2 and "c.toml: purpose 'promo': choose marketing or transactional." in result.stderr


def test_link_shorteners_are_warned_about_by_estimate_and_send(funded, people):
    text = "Sale! See bit.ly/abc or https://tinyurl.com/x. Not: example.com/t.co.uk"
    for args in (("estimate", people, "-m", text), ("send", people, "-m", text, "--yes", "--quiet")):
        result = funded(*args)
        assert result.exit_code == 0, result.stderr
        assert ("the message links through bit.ly, tinyurl.com: carriers often filter public link shorteners."
                in result.stderr)


def test_send_one_is_person_to_person_and_not_footered(funded, home):
    result = funded("send-one", "+447400000009", "-m", "Your table is ready", "--json")
    assert as_json(result)["outcome"] == "sent"
    (line,) = [json.loads(x) for f in (home / "outbox").glob("send-one-*.jsonl") for x in f.read_text().splitlines()]
    assert line["text"] == "Your table is ready"
