"""`bulksend send` and `send-one` in-process: confirmation, dry run, canary, resuming, refusals, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fake_twilio import AUTH_TOKEN, FakeTwilio, twilio_config
from sendhelpers import states, ledger_rows, mobile, write_campaign, write_recipients


@pytest.fixture
def funded(cli):
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    return cli


def balance(cli) -> dict:
    return json.loads(cli("balance", "--json", "--channel", "sms").stdout)["sms"]


def outbox_lines(home: Path, campaign: str) -> list[dict]:
    path = home / "outbox" / f"{campaign}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# --- confirmation ------------------------------------------------------------------------------------------


def test_without_a_terminal_send_needs_yes_and_touches_nothing(funded, home, tmp_path):
    campaign, _ = write_campaign(tmp_path, "spring", 3)
    result = funded("send", campaign)
    assert result.exit_code == 2
    assert "not on a terminal" in result.stderr and "--yes" in result.stderr
    assert json.loads(funded("campaigns", "list", "--json").stdout) == {"campaigns": []}
    assert outbox_lines(home, "spring") == []


def test_on_a_terminal_send_shows_the_estimate_and_asks(funded, home, tmp_path, monkeypatch):
    monkeypatch.setattr("bulksend.output.is_terminal", lambda: True)
    campaign, numbers = write_campaign(tmp_path, "spring", 3)
    declined = funded("send", campaign, input="n\n")
    assert declined.exit_code == 0
    assert "spring: 3 recipients · 3 segments · 3 credits (sms via outbox)" in declined.stderr
    assert "Balance: 1,000 sms credits available; 997 after this campaign." in declined.stderr
    assert "Send 3 messages now? [y/N]" in declined.stderr
    assert "Nothing was sent." in declined.stderr
    assert outbox_lines(home, "spring") == []
    accepted = funded("send", campaign, input="y\n")
    assert accepted.exit_code == 0
    assert sorted(line["to"] for line in outbox_lines(home, "spring")) == sorted(numbers)


# --- a whole run -------------------------------------------------------------------------------------------


def test_send_a_campaign_file_end_to_end(funded, home, tmp_path):
    campaign, numbers = write_campaign(tmp_path, "spring", 5, message="Hi {name}, sale today")
    result = funded("send", campaign, "--yes")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "Campaign 'spring' (#1, sms via outbox): done"
    assert "  sent 5" in result.stdout
    assert "  credits: 5 debited, 0 refunded" in result.stdout
    assert result.stdout.rstrip().endswith("Next: bulksend campaigns show spring")
    # Not a terminal: one progress line per committed batch on stderr.
    assert "spring: 5/5 · sent 5 · failed 0 · retrying 0" in result.stderr
    lines = outbox_lines(home, "spring")
    # Workers send concurrently, so the outbox's line order is not the file's: compare contents.
    assert sorted((line["to"], line["text"]) for line in lines) == sorted(
        (n, f"Hi R{i}, sale today\nReply STOP to opt out") for i, n in enumerate(numbers)  # the default footer
    )
    assert balance(funded) == {"available": 995, "held": 0, "total": 995, "expiring": balance(funded)["expiring"]}
    assert funded("credits", "audit").exit_code == 0


def test_send_json_has_the_fixed_fields(funded, tmp_path):
    campaign, _ = write_campaign(tmp_path, "spring", 4)
    result = funded("send", campaign, "--yes", "--json", "--quiet")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert {k: doc[k] for k in ("campaign", "state", "counts", "credits_debited", "credits_refunded")} == {
        "campaign": "spring", "state": "done", "counts": states({"sent": 4}), "credits_debited": 4, "credits_refunded": 0,
    }
    assert doc["stopped"] == "done" and doc["run"]["sent"] == 4 and doc["exit_code"] == 0
    assert result.stderr == ""  # --quiet: no progress lines


def test_a_bare_csv_is_a_campaign_named_after_the_file(funded, home, tmp_path):
    csv = tmp_path / "october-list.csv"
    numbers = write_recipients(csv, 2)
    result = funded("send", csv, "--message", "Hello", "--region", "GB", "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["campaign"] == "october-list"
    assert sorted(line["to"] for line in outbox_lines(home, "october-list")) == sorted(numbers)


def test_flags_override_the_campaign_file(funded, home, tmp_path):
    campaign, _ = write_campaign(tmp_path, "spring", 2)
    result = funded("send", campaign, "--name", "spring-b", "--message", "Other text", "--yes")
    assert result.exit_code == 0
    assert {line["text"] for line in outbox_lines(home, "spring-b")} == {"Other text\nReply STOP to opt out"}


def test_a_campaign_file_with_an_unknown_key_is_refused(funded, tmp_path):
    campaign, _ = write_campaign(tmp_path, "spring", 2)
    campaign.write_text(campaign.read_text() + 'colour = "blue"\n')
    result = funded("send", campaign, "--yes")
    assert result.exit_code == 2
    assert "unknown key colour" in result.stderr


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('rate = "fast"', "rate (messages per second) must be a whole number or a number, not 'fast'"),
        ("max_attempts = 0", "max_attempts (attempts before a retryable failure is final) must be a whole number from 1 to 100, not 0"),
        ("rate = nan", "rate (messages per second) must be a number from 0 to 100,000, not nan"),
        ("concurrency = 100000000000", "concurrency (requests in flight) must be a whole number from 1 to 1,000"),
        ("max_segments = 1000", "max_segments (the longest message, in SMS segments) must be a whole number from 1 to 255"),
        ('sender = ""', "sender (the sender, overriding the profile's) is empty"),
        ("smart_encoding = 1", "smart_encoding (replace look-alike characters with GSM ones) must be true or false"),
        ("concurrency = true", "concurrency (requests in flight) must be a whole number, not True"),
    ],
)
def test_campaign_file_values_are_checked(funded, tmp_path, line, message):
    campaign, _ = write_campaign(tmp_path, "spring", 2)
    campaign.write_text(campaign.read_text() + line + "\n")
    result = funded("send", campaign, "--yes")
    assert result.exit_code == 2
    assert message in result.stderr


def test_campaign_file_paths_are_relative_to_the_file(funded, home, tmp_path, monkeypatch):
    campaign, numbers = write_campaign(tmp_path / "campaigns", "spring", 2)
    (tmp_path / "campaigns" / "spring.txt").write_text("From the template file\n")
    campaign.write_text(campaign.read_text().replace('message = "Hi {name}"', 'template = "spring.txt"'))
    monkeypatch.chdir(tmp_path)  # somewhere else entirely
    result = funded("send", "campaigns/spring.toml", "--yes")
    assert result.exit_code == 0, result.stderr
    assert {line["text"] for line in outbox_lines(home, "spring")} == {"From the template file\nReply STOP to opt out"}


def test_provider_templates_get_their_parameters_from_the_rows(funded, home, tmp_path):
    csv = tmp_path / "wa.csv"
    csv.write_text("first_name,code,phone,whatsapp_consent\nAnn,SPRING10,+447400000001,yes\n"
                   "Bob,SPRING15,+447400000002,yes\n")
    campaign = tmp_path / "wa.toml"
    campaign.write_text(
        'recipients = "wa.csv"\nchannel = "whatsapp"\nregion = "GB"\ncategory = "marketing"\n'
        'message = "Hi {first_name}, {code} takes 15% off"\n'
        'whatsapp_template = "spring_sale"\ntemplate_language = "en_US"\nbody_params = ["first_name", "CODE"]\n'
    )
    assert funded("credits", "topup", 5000, "--channel", "whatsapp").exit_code == 0
    assert funded("send", campaign, "--yes").exit_code == 0
    lines = [json.loads(line) for line in (home / "outbox" / "wa.jsonl").read_text().splitlines()]
    # The rows go out concurrently: the outbox's lines may come in either order.
    assert {line["to"]: line["params"] for line in lines} == {
        "+447400000001": {"template": "spring_sale", "language": "en_US", "category": "marketing",
                          "body": ["Ann", "SPRING10"]},
        "+447400000002": {"template": "spring_sale", "language": "en_US", "category": "marketing",
                          "body": ["Bob", "SPRING15"]},
    }


def test_twilio_content_variables_are_numbered_in_order(funded, home, tmp_path):
    sid = "HX" + "0" * 32
    campaign, numbers = write_campaign(tmp_path, "spring", 2, content_sid=sid)
    campaign.write_text(campaign.read_text() + 'content_variables = ["name"]\n')
    assert funded("send", campaign, "--dry-run").exit_code == 0
    lines = [json.loads(line) for line in (home / "outbox" / "spring.dry-run.jsonl").read_text().splitlines()]
    assert [line["params"] for line in lines] == [
        {"content_sid": sid, "variables": {"1": "R0"}}, {"content_sid": sid, "variables": {"1": "R1"}},
    ]


def test_a_template_parameter_column_must_be_in_the_message(funded, tmp_path):
    campaign, _ = write_campaign(tmp_path, "spring", 2, content_sid="HX" + "0" * 32)
    campaign.write_text(campaign.read_text() + 'content_variables = ["name", "code"]\n')
    result = funded("send", campaign, "--yes")
    assert result.exit_code == 2
    assert "template parameter column 'code' is not a merge field of the message (it uses {name})" in result.stderr
    assert json.loads(funded("campaigns", "list", "--json").stdout) == {"campaigns": []}


# --- rehearsals and canaries ------------------------------------------------------------------------------


def test_dry_run_writes_what_would_be_sent_and_changes_nothing(funded, home, tmp_path):
    campaign, numbers = write_campaign(tmp_path, "spring", 6)
    result = funded("send", campaign, "--dry-run")  # no --yes needed: nothing is sent
    assert result.exit_code == 0, result.stderr
    assert "Dry run of 'spring': 6 messages would be sent now (6 sms credits of 1,000 available)." in result.stdout
    assert "Nothing was sent, nothing was debited, and the ledger is unchanged." in result.stdout
    rehearsal = home / "outbox" / "spring.dry-run.jsonl"
    lines = [json.loads(line) for line in rehearsal.read_text().splitlines()]
    assert [line["to"] for line in lines] == numbers
    assert lines[0] == {
        "campaign": "spring", "to": numbers[0], "channel": "sms", "encoding": "GSM-7", "units": 1, "credits": 1,
        "row": 1, "text": "Hi R0\nReply STOP to opt out",
    }
    assert json.loads(funded("campaigns", "list", "--json").stdout) == {"campaigns": []}
    assert balance(funded)["available"] == 1000 and balance(funded)["held"] == 0
    assert outbox_lines(home, "spring") == []
    limited = funded("send", campaign, "--dry-run", "--limit", "2", "--json")
    assert json.loads(limited.stdout)["messages"] == 2


def test_limit_sends_a_canary_and_the_next_run_resumes(funded, home, tmp_path):
    campaign, numbers = write_campaign(tmp_path, "spring", 10)
    canary = funded("send", campaign, "--yes", "--limit", "3")
    assert canary.exit_code == 0
    assert "Canary of 3 done; 7 messages stay queued." in canary.stdout
    assert "Next: bulksend campaigns resume spring --yes" in canary.stdout
    assert sorted(line["to"] for line in outbox_lines(home, "spring")) == sorted(numbers[:3])  # the first 3 rows
    assert balance(funded)["held"] == 0  # the hold is released between runs
    rest = funded("send", campaign, "--yes", "--json")
    assert json.loads(rest.stdout)["counts"] == states({"sent": 10})
    assert sorted(line["to"] for line in outbox_lines(home, "spring")) == sorted(numbers)


def test_running_a_finished_campaign_again_says_so_and_exits_0(funded, home, tmp_path):
    campaign, _ = write_campaign(tmp_path, "spring", 3)
    assert funded("send", campaign, "--yes").exit_code == 0
    again = funded("send", campaign, "--yes")
    assert again.exit_code == 0
    assert again.stdout.splitlines()[0] == "Campaign 'spring' is done: nothing left to send."
    assert len(outbox_lines(home, "spring")) == 3
    as_json = json.loads(funded("send", campaign, "--yes", "--json").stdout)
    assert (as_json["state"], as_json["found"], as_json["counts"]) == ("done", "done", states({"sent": 3}))


def test_different_recipients_or_message_under_the_same_name_are_refused(funded, home, tmp_path):
    campaign, _ = write_campaign(tmp_path, "spring", 3)
    assert funded("send", campaign, "--yes", "--limit", "1").exit_code == 0
    write_recipients(tmp_path / "spring.csv", 4)  # the list changed
    changed = funded("send", campaign, "--yes")
    assert changed.exit_code == 2
    assert "was started on" in changed.stderr and "different recipient file or message" in changed.stderr
    write_recipients(tmp_path / "spring.csv", 3)
    other_text = funded("send", campaign, "--message", "Something else", "--yes")
    assert other_text.exit_code == 2
    assert len(outbox_lines(home, "spring")) == 1


def test_a_started_campaign_keeps_its_provider(funded, tmp_path):
    campaign, _ = write_campaign(tmp_path, "spring", 3)
    assert funded("send", campaign, "--yes", "--limit", "1").exit_code == 0
    result = funded("send", campaign, "--yes", "--provider", "elsewhere")
    assert result.exit_code == 2
    assert "sends through provider profile 'outbox', not 'elsewhere'" in result.stderr


def test_not_enough_credits_exits_3_before_anything_happens(funded, home, tmp_path):
    rates = tmp_path / "rates.csv"
    rates.write_text("country,channel,credits\n*,sms,5\n")
    campaign, _ = write_campaign(tmp_path, "big", 300, rates="rates.csv")
    result = funded("send", campaign, "--yes")
    assert result.exit_code == 3
    assert "campaign 'big' needs 1,500 sms credits but 1,000 are available: 500 short" in result.stderr
    assert "credits topup" in result.stderr
    assert json.loads(funded("campaigns", "list", "--json").stdout) == {"campaigns": []}
    assert outbox_lines(home, "big") == []


def test_a_list_where_nobody_can_be_messaged_is_an_input_error(funded, tmp_path):
    csv = tmp_path / "nobody.csv"
    write_recipients(csv, 3, consent="no")
    result = funded("send", csv, "--message", "hi", "--yes")
    assert result.exit_code == 2
    assert "no row can be messaged (no_consent 3)" in result.stderr


def test_numbers_on_the_opt_out_list_are_never_sent(funded, home, tmp_path):
    campaign, numbers = write_campaign(tmp_path, "spring", 4)
    assert funded("send", campaign, "--yes", "--limit", "1").exit_code == 0
    assert funded("optout", "add", numbers[2]).exit_code == 0  # opted out after the campaign was queued
    result = funded("send", campaign, "--yes", "--json")
    doc = json.loads(result.stdout)
    assert doc["counts"] == states({"sent": 3, "failed": 1}) and doc["failures"] == {"suppressed": 1}
    assert result.exit_code == 4
    assert numbers[2] not in [line["to"] for line in outbox_lines(home, "spring")]


# --- provider outcomes through the twilio adapter ---------------------------------------------------------


@pytest.fixture
def twilio_home(funded, home, monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)

    def configure(url: str, **settings) -> None:
        (home / "config.toml").write_text(twilio_config(url, **{"rate": 0, "reconcile_after": 0, **settings}))

    return configure


def test_a_fatal_provider_error_exits_1_and_leaves_the_rest_queued(funded, twilio_home, home, tmp_path):
    with FakeTwilio(fault=lambda to, attempt: "401") as twilio:
        twilio_home(twilio.url, concurrency=1)
        campaign, _ = write_campaign(tmp_path, "spring", 20, provider="fake")
        result = funded("send", campaign, "--yes")
    assert result.exit_code == 1
    assert "Stopped: the provider refused with 20003: Authenticate." in result.stdout
    assert "queued 20" in result.stdout
    assert "Next: bulksend campaigns resume spring --yes" in result.stdout
    assert sum(twilio.posts.values()) == 1
    assert balance(funded)["held"] == 0


def test_failures_and_provider_opt_outs_finish_with_exit_4(funded, twilio_home, home, tmp_path):
    bad, stopped = mobile(1), mobile(2)

    def fault(to, attempt):
        return {bad: "21211", stopped: "21610"}.get(to)

    with FakeTwilio(fault=fault) as twilio:
        twilio_home(twilio.url)
        campaign, _ = write_campaign(tmp_path, "spring", 5, provider="fake")
        result = funded("send", campaign, "--yes", "--json")
    doc = json.loads(result.stdout)
    assert result.exit_code == 4
    assert doc["counts"] == states({"sent": 3, "failed": 2})
    assert doc["failures"] == {"21211": 1, "21610": 1}
    assert doc["next"] == "bulksend campaigns show spring"
    optouts = json.loads(funded("optout", "list", "--json").stdout)
    assert [entry["e164"] for entry in optouts["optouts"]] == [stopped]
    assert ledger_rows(home, "spring")[bad] == ("failed", 0, "21211")


def test_the_circuit_breaker_exits_1(funded, twilio_home, home, tmp_path):
    with FakeTwilio(fault=lambda to, attempt: "500") as twilio:
        twilio_home(twilio.url, concurrency=1, circuit_breaker=5, reconcile_after=600)
        campaign, _ = write_campaign(tmp_path, "spring", 30, provider="fake")
        result = funded("send", campaign, "--yes", "--json")
    doc = json.loads(result.stdout)
    assert result.exit_code == 1
    assert doc["stopped"] == "breaker" and doc["error"]["code"] == "20500"
    assert doc["counts"]["unknown"] == 5 and doc["counts"]["queued"] == 25
    assert doc["next"] == "bulksend campaigns resume spring --yes"


# --- send-one ----------------------------------------------------------------------------------------------


def test_send_one_sends_with_the_same_accounting(funded, home):
    result = funded("send-one", "07400 000123", "--message", "Your {table} is ready", "--region", "GB")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("Sent to +447400000123 (sms via outbox, id outbox-1): 1 segment, 1 credits.")
    [campaign] = json.loads(funded("campaigns", "list", "--json").stdout)["campaigns"]
    assert campaign["campaign"].startswith("send-one-") and campaign["counts"] == states({"sent": 1})
    assert campaign["attestation"] == "person-to-person message (send-one)"
    [line] = outbox_lines(home, campaign["campaign"])
    assert line["text"] == "Your {table} is ready"  # sent as written: braces are not merge fields
    assert balance(funded)["available"] == 999
    assert funded("credits", "audit").exit_code == 0


def test_send_one_json(funded):
    doc = json.loads(funded("send-one", mobile(5), "--message", "hi", "--json").stdout)
    assert (doc["to"], doc["outcome"], doc["credits_debited"]) == (mobile(5), "sent", 1)


def test_send_one_checks_the_number_and_the_opt_out_list(funded):
    invalid = funded("send-one", "12345", "--message", "hi")
    assert invalid.exit_code == 2
    assert "'12345': invalid_number" in invalid.stderr
    landline = funded("send-one", "+442079460018", "--message", "hi")
    assert landline.exit_code == 2 and "not_mobile" in landline.stderr
    assert funded("optout", "add", mobile(7)).exit_code == 0
    opted_out = funded("send-one", mobile(7), "--message", "hi")
    assert opted_out.exit_code == 2 and "suppressed" in opted_out.stderr
    assert json.loads(funded("campaigns", "list", "--json").stdout) == {"campaigns": []}


def test_send_one_reports_a_provider_failure(funded, twilio_home):
    with FakeTwilio(fault=lambda to, attempt: "21211") as twilio:
        twilio_home(twilio.url)
        result = funded("send-one", mobile(3), "--message", "hi", "--provider", "fake")
    assert result.exit_code == 4
    assert f"Not sent to {mobile(3)}: 21211: The 'To' number {mobile(3)} is not valid." in result.stdout


def test_python_dash_m_bulksend_send_works(home, tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "BULKSEND_HOME": str(home)}
    subprocess.run([sys.executable, "-m", "bulksend", "credits", "topup", "1000", "--channel", "sms"], env=env,
                   check=True, capture_output=True)
    campaign, _ = write_campaign(tmp_path, "spring", 2)
    done = subprocess.run([sys.executable, "-m", "bulksend", "send", str(campaign), "--yes", "--json"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"] == states({"sent": 2})


@pytest.mark.parametrize("command", [["send"], ["send-one"], ["campaigns", "list"], ["campaigns", "show"],
                                     ["campaigns", "resume"], ["campaigns", "cancel"], ["campaigns", "reconcile"]])
def test_every_sending_command_has_help_with_an_example(cli, command):
    result = cli(*command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.stdout
