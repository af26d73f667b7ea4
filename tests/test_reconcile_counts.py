"""`campaigns reconcile` prints counts that add up: what the provider said, and what became of each row."""

from __future__ import annotations

import json

import pytest
from sendhelpers import write_campaign
from test_campaign_cli import funded  # noqa: F401

from bulksend.config import Config
from bulksend.ledger import open_ledger
from bulksend.providers.base import Delivery, LookupResult, Profile
from bulksend.providers.outbox import OutboxProvider


def leave_unknown(home, campaign: str, count: int, *, reached_outbox: int = 0) -> None:
    """A run that got no answer for ``count`` messages; the first ``reached_outbox`` did get out."""
    with open_ledger(Config(home=home)) as ledger:
        c = ledger.get_campaign(campaign)
        with ledger.transaction():
            ledger.hold(c.id, "sms", count)
            rows = ledger.claim(c.id, count)
            for row in rows:
                ledger.mark_unknown(row.id, "read_timeout", "no answer")
    outbox = OutboxProvider(Profile("outbox", "outbox"), None, home)
    for row in rows[:reached_outbox]:
        outbox.send(Delivery(row.id, campaign, row.e164, row.message, "sms"))
    outbox.close()


def test_a_users_decision_is_not_counted_as_found(funded, home, tmp_path, monkeypatch):  # noqa: F811
    campaign, _ = write_campaign(tmp_path, "spring", 32)
    assert funded("send", campaign, "--yes", "--limit", "1").exit_code == 0
    leave_unknown(home, "spring", 31)
    monkeypatch.setattr(OutboxProvider, "can_lookup", False)  # a provider with no message log to search

    result = funded("campaigns", "reconcile", "spring", "--assume", "sent")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        "Campaign 'spring': 31 with an unknown outcome (the provider cannot look messages up); "
        "now 31 sent on your word."
    )


def test_lookups_and_what_became_of_the_rows_each_add_up(funded, home, tmp_path):  # noqa: F811
    campaign, _ = write_campaign(tmp_path, "spring", 6)
    assert funded("send", campaign, "--yes", "--limit", "1").exit_code == 0
    leave_unknown(home, "spring", 3, reached_outbox=1)

    result = funded("campaigns", "reconcile", "spring")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        "Campaign 'spring': 3 looked up: 1 found, 2 not found, 0 the provider cannot tell; "
        "now 1 sent, 2 queued again."
    )


@pytest.mark.parametrize(
    ("assume", "became"),
    [(None, "now 4 still unknown."), ("failed", "now 4 failed."), ("queued", "now 4 queued again.")],
)
def test_rows_nobody_can_tell_about_are_counted_once(funded, home, tmp_path, monkeypatch, assume, became):  # noqa: F811
    campaign, _ = write_campaign(tmp_path, "spring", 5)
    assert funded("send", campaign, "--yes", "--limit", "1").exit_code == 0
    leave_unknown(home, "spring", 4)
    monkeypatch.setattr(OutboxProvider, "lookup", lambda self, d, s: (LookupResult.CANNOT_TELL, None))

    args = ["campaigns", "reconcile", "spring"] + (["--assume", assume] if assume else [])
    result = funded(*args)
    assert result.stdout.splitlines()[0] == (
        f"Campaign 'spring': 4 looked up: 0 found, 0 not found, 4 the provider cannot tell; {became}"
    )
    doc = json.loads(funded(*args, "--json").stdout) if assume is None else None
    if doc is not None:
        r = doc["reconciled"]
        assert r["looked_up"] == r["found"] + r["not_found"] + r["cannot_tell"] == 4
        assert r["looked_up"] == r["found"] + r["assumed_sent"] + r["requeued"] + r["failed"] + r["still_unknown"]
