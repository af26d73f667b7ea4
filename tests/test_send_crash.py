"""Crashes: `python -m bulksend send … --yes` killed with SIGKILL mid-send again and again, then resumed to the end.

The fake Twilio adds latency so that every kill lands with requests in flight. Afterwards nobody was
accepted twice, every recipient was accepted exactly once or ended failed/unknown, the debits equal
what the server accepted, and the audit passes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from fake_twilio import AUTH_TOKEN, FakeTwilio, twilio_config
from sendhelpers import ledger_rows, write_campaign

pytestmark = pytest.mark.slow

KILLS = 10


def test_sigkill_at_random_moments_never_double_sends_or_loses_a_debit(home, tmp_path):
    n = 2000
    rng = random.Random(11)
    env = {**os.environ, "BULKSEND_HOME": str(home), "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
    with FakeTwilio(latency=0.03) as twilio:
        (home / "config.toml").write_text(
            twilio_config(twilio.url, rate=0, concurrency=8, timeout=5, reconcile_after=0.3)
        )
        run = [sys.executable, "-m", "bulksend"]
        subprocess.run([*run, "credits", "topup", "5000", "--channel", "sms"], env=env, check=True,
                       capture_output=True)
        campaign, numbers = write_campaign(tmp_path / "c", "crashy", n, provider="fake")
        send = [*run, "send", str(campaign), "--yes", "--quiet"]

        kills = 0
        while kills < KILLS:
            before = sum(twilio.posts.values())
            process = subprocess.Popen(send, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 20
            while sum(twilio.posts.values()) == before and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.4))  # somewhere in the middle of a batch, or of a commit
            if process.poll() is not None:
                pytest.fail(f"the campaign ended before {KILLS} kills (after {kills}): make it bigger or slower")
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1

        # Resume until the campaign is over (exit 0, or 4 with failed/unknown rows).
        for _ in range(5):
            done = subprocess.run([*send, "--json"], env=env, capture_output=True, text=True, timeout=120)
            if done.returncode in (0, 4):
                break
        assert done.returncode in (0, 4), done.stderr
        summary = json.loads(done.stdout)
        assert summary["state"] == "done"

        accepted = twilio.accepted_counts()
        assert max(accepted.values()) == 1, [number for number, count in accepted.items() if count > 1][:5]
        rows = ledger_rows(home, "crashy")
        assert len(rows) == n
        for number in numbers:
            state, debited, _ = rows[number]
            if accepted[number]:
                assert (state, debited) == ("sent", 1), (number, state)
            else:
                assert state in ("failed", "unknown"), (number, state)
        assert sum(debited for _, debited, _ in rows.values()) == len(accepted) == summary["credits_debited"]

        audit = subprocess.run([*run, "credits", "audit"], env=env, capture_output=True, text=True)
        assert audit.returncode == 0, audit.stdout + audit.stderr
        balance = json.loads(
            subprocess.run([*run, "balance", "--json"], env=env, capture_output=True, text=True).stdout
        )["sms"]
        assert balance["held"] == 0 and balance["available"] == 5000 - len(accepted)
