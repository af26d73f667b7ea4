"""Faults: a campaign through the real twilio adapter against a fake Twilio that misbehaves on 20% of requests.

429 (Retry-After in seconds and as an HTTP date), 500, a connection dropped after the request was read
(sometimes after the message was created), and answers that arrive after the read timeout (always after
the message was created). Whatever happens: every row ends sent, failed or unknown; nobody is accepted
twice; debits equal what the server accepted; the audit passes; no retry comes sooner than asked.
"""

from __future__ import annotations

import json

import pytest

from fake_twilio import AUTH_TOKEN, FakeTwilio, random_faults, twilio_config
from sendhelpers import ledger_rows, write_campaign


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)


def test_a_campaign_survives_random_faults_without_double_sends_or_lost_credits(cli, home, tmp_path, token):
    n = 300
    with FakeTwilio(fault=random_faults(0.2, seed=7), retry_after=1.0, late_by=0.8) as twilio:
        (home / "config.toml").write_text(
            twilio_config(
                twilio.url, rate=2000, concurrency=16, timeout=0.4, reconcile_after=0.8, backoff_base=0.2
            )
        )
        assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
        campaign, numbers = write_campaign(tmp_path / "c", "faults", n, provider="fake", max_attempts=8)
        result = cli("send", campaign, "--yes", "--json", "--quiet")
        doc = json.loads(result.stdout)

        # Every kind of fault really happened.
        assert set(twilio.faults) == {"429_seconds", "429_date", "500", "drop", "timeout"}, twilio.faults
        assert sum(twilio.faults.values()) >= 0.15 * n

        # Every row is final (or unknown); none is left queued or in flight.
        assert result.exit_code in (0, 4), result.stderr
        assert {s for s, n in doc["counts"].items() if n} <= {"sent", "failed", "unknown"}
        assert sum(doc["counts"].values()) == n

        # Nobody was accepted twice, and the ledger says sent exactly for those the server accepted.
        accepted = twilio.accepted_counts()
        assert max(accepted.values()) == 1
        rows = ledger_rows(home, "faults")
        sent = {number for number, (state, _, _) in rows.items() if state == "sent"}
        assert sent == set(accepted)

        # Debits equal accepted messages (1 credit each), and the books add up.
        assert doc["credits_debited"] == len(accepted) == sum(debited for _, debited, _ in rows.values())
        audit = cli("credits", "audit")
        assert audit.exit_code == 0, audit.stdout + audit.stderr
        balance = json.loads(cli("balance", "--json").stdout)["sms"]
        assert balance["held"] == 0 and balance["available"] == 1000 - len(accepted)

        # No retry came sooner than the Retry-After the server asked for (both forms).
        forms = set()
        for number, answered, until in twilio.throttled:
            later = [t for t in twilio.post_times[number] if t > answered]
            if later:
                assert min(later) >= until - 0.001, (number, min(later) - until)
                forms.add(until == int(until))
        assert twilio.throttled, "the fault mix should include 429s"

        # The run reconciled ambiguous outcomes by looking them up, not by sending again blindly.
        assert twilio.lookups > 0
        assert doc["run"]["reconciled"]["found"] >= 1
