"""`bulksend campaigns list | show | resume | cancel | reconcile`, in-process on the outbox provider."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bulksend.config import Config
from bulksend.ledger import open_ledger
from bulksend.providers.base import Delivery, Profile
from bulksend.providers.outbox import OutboxProvider

from sendhelpers import states, write_campaign


@pytest.fixture
def funded(cli, home):
    # The outbox writes synchronously: a lookup needs no settle time.
    (home / "config.toml").write_text('[providers.outbox]\ntype = "outbox"\nreconcile_after = 0\n')
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    return cli


def lines(home: Path, campaign: str) -> list[str]:
    path = home / "outbox" / f"{campaign}.jsonl"
    return [json.loads(line)["to"] for line in path.read_text().splitlines()] if path.exists() else []


def test_list_and_show(funded, tmp_path):
    spring, _ = write_campaign(tmp_path / "s", "spring", 4)
    summer, _ = write_campaign(tmp_path / "u", "summer", 6, start=100)
    assert funded("send", spring, "--yes").exit_code == 0
    assert funded("send", summer, "--yes", "--limit", "2").exit_code == 0
    listed = json.loads(funded("campaigns", "list", "--json").stdout)["campaigns"]
    assert [(c["id"], c["campaign"], c["state"], c["counts"]) for c in listed] == [
        (1, "spring", "done", states({"sent": 4})),
        (2, "summer", "open", states({"queued": 4, "sent": 2})),
    ]
    human = funded("campaigns", "list").stdout.splitlines()
    assert [line.split() for line in human] == [
        ["id", "name", "state", "via", "sent", "failed", "unknown", "queued", "credits", "started"],
        ["1", "spring", "done", "sms/outbox", "4", "0", "0", "0", "4", listed[0]["created_at"][:10]],
        ["2", "summer", "open", "sms/outbox", "2", "0", "0", "4", "2", listed[1]["created_at"][:10]],
    ]
    shown = funded("campaigns", "show", "summer")
    assert shown.exit_code == 0
    assert shown.stdout.splitlines()[:1] == ["Campaign 'summer' (#2): open"]
    assert "  6 messages: sent 2  queued 4" in shown.stdout
    assert "  credits: 2 debited, 0 refunded" in shown.stdout
    assert shown.stdout.rstrip().endswith("Next: bulksend campaigns resume summer --yes")
    by_id = json.loads(funded("campaigns", "show", "2", "--json").stdout)
    assert (by_id["campaign"], by_id["total"], by_id["credits_debited"]) == ("summer", 6, 2)


def test_show_an_unknown_campaign_is_an_input_error(funded):
    result = funded("campaigns", "show", "nope")
    assert result.exit_code == 2
    assert "no campaign 'nope' in the ledger" in result.stderr


def test_list_on_a_fresh_home(cli):
    assert json.loads(cli("campaigns", "list", "--json").stdout) == {"campaigns": []}
    assert "No campaigns yet" in cli("campaigns", "list").stdout


def test_resume_sends_the_rest_from_the_ledger_alone(funded, home, tmp_path):
    campaign, numbers = write_campaign(tmp_path, "spring", 8)
    assert funded("send", campaign, "--yes", "--limit", "3").exit_code == 0
    (tmp_path / "spring.csv").unlink()  # the list is not needed any more
    needs_yes = funded("campaigns", "resume", "spring")
    assert needs_yes.exit_code == 2 and "--yes" in needs_yes.stderr
    resumed = funded("campaigns", "resume", "spring", "--yes", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    doc = json.loads(resumed.stdout)
    assert (doc["state"], doc["counts"], doc["found"]) == ("done", states({"sent": 8}), "resume")
    assert sorted(lines(home, "spring")) == sorted(numbers)  # each once; threads may write in any order
    again = funded("campaigns", "resume", "spring", "--yes")
    assert again.exit_code == 0
    assert "is done: nothing left to send" in again.stdout


def test_cancel_leaves_queued_rows_unsent_forever(funded, home, tmp_path):
    campaign, numbers = write_campaign(tmp_path, "spring", 5)
    assert funded("send", campaign, "--yes", "--limit", "2").exit_code == 0
    cancelled = funded("campaigns", "cancel", "spring")
    assert cancelled.exit_code == 0
    assert cancelled.stdout.startswith("Cancelled 'spring': 3 queued messages will never be sent")
    assert funded("campaigns", "cancel", "spring").stdout.startswith("Campaign 'spring' is already cancelled")
    for attempt in (("send", campaign, "--yes"), ("campaigns", "resume", "spring", "--yes")):
        result = funded(*attempt)
        assert result.exit_code == 0
        assert "was cancelled" in result.stdout
    assert sorted(lines(home, "spring")) == sorted(numbers[:2])
    shown = json.loads(funded("campaigns", "show", "spring", "--json").stdout)
    assert (shown["state"], shown["counts"], shown["held"]) == ("cancelled", states({"queued": 3, "sent": 2}), 0)
    assert json.loads(funded("balance", "--json").stdout)["sms"]["held"] == 0


def test_cancel_is_refused_while_a_run_holds_the_campaign(funded, home, tmp_path):
    from bulksend.locks import CampaignLock

    campaign, _ = write_campaign(tmp_path, "spring", 3)
    assert funded("send", campaign, "--yes", "--limit", "1").exit_code == 0
    with CampaignLock.acquire(home, "spring"):
        result = funded("campaigns", "cancel", "spring")
    assert result.exit_code == 5
    assert "campaign 'spring' is being sent by another run" in result.stderr
    assert json.loads(funded("campaigns", "show", "spring", "--json").stdout)["state"] == "open"


def test_reconcile_settles_rows_a_crash_left_in_flight(funded, home, tmp_path):
    campaign, numbers = write_campaign(tmp_path, "spring", 6)
    assert funded("send", campaign, "--yes", "--limit", "2").exit_code == 0
    # A run dies with three messages in flight; only the first had reached the outbox.
    config = Config(home=home)
    with open_ledger(config) as ledger:
        c = ledger.get_campaign("spring")
        with ledger.transaction():
            ledger.hold(c.id, "sms", 3)
            crashed = ledger.claim(c.id, 3)
    outbox = OutboxProvider(Profile("outbox", "outbox"), None, home)
    first = crashed[0]
    outbox.send(Delivery(first.id, "spring", first.e164, first.message, "sms"))
    outbox.close()

    result = funded("campaigns", "reconcile", "spring", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["reconciled"] == {
        "looked_up": 3, "found": 1, "not_found": 2, "cannot_tell": 0, "assumed_sent": 0, "requeued": 2, "failed": 0,
        "still_unknown": 0, "recovered": 3,
    }
    assert doc["counts"] == states({"sent": 3, "queued": 3})
    assert doc["credits_debited"] == 3 and doc["held"] == 0
    assert funded("credits", "audit").exit_code == 0
    # The rest goes out once, and the one that was already out is not sent again.
    assert funded("campaigns", "resume", "spring", "--yes").exit_code == 0
    assert sorted(lines(home, "spring")) == sorted(numbers)


def test_reconcile_with_nothing_unknown(funded, tmp_path):
    campaign, _ = write_campaign(tmp_path, "spring", 2)
    assert funded("send", campaign, "--yes").exit_code == 0
    result = funded("campaigns", "reconcile", "spring")
    assert result.exit_code == 0
    assert "no message with an unknown outcome" in result.stdout


def test_reconcile_refuses_an_unknown_decision(funded, tmp_path):
    campaign, _ = write_campaign(tmp_path, "spring", 2)
    assert funded("send", campaign, "--yes").exit_code == 0
    result = funded("campaigns", "reconcile", "spring", "--assume", "maybe")
    assert result.exit_code == 2
    assert "--assume 'maybe': choose sent, failed or queued" in result.stderr
