"""Overlap: a second run of a campaign that is sending exits 5 at once; two campaigns never overspend together.

Also Ctrl-C: the running send is interrupted with SIGINT, records what was in flight, releases its
hold, exits 130, and the next run finishes the campaign.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from fake_twilio import AUTH_TOKEN, FakeTwilio, twilio_config
from sendhelpers import states, ledger_rows, write_campaign

pytestmark = pytest.mark.slow

BULKSEND = [sys.executable, "-m", "bulksend"]


def _env(home):
    return {**os.environ, "BULKSEND_HOME": str(home), "TWILIO_AUTH_TOKEN": AUTH_TOKEN}


def _wait_for_requests(twilio: FakeTwilio, process: subprocess.Popen, at_least: int = 1) -> None:
    deadline = time.monotonic() + 20
    while sum(twilio.posts.values()) < at_least:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_a_second_run_of_the_same_campaign_exits_5_at_once_and_ctrl_c_exits_130(home, tmp_path):
    env = _env(home)
    with FakeTwilio(latency=0.05) as twilio:
        (home / "config.toml").write_text(twilio_config(twilio.url, rate=0, concurrency=2, reconcile_after=0.2))
        subprocess.run([*BULKSEND, "credits", "topup", "1000", "--channel", "sms"], env=env, check=True,
                       capture_output=True)
        campaign, numbers = write_campaign(tmp_path, "spring", 300, provider="fake")
        send = [*BULKSEND, "send", str(campaign), "--yes"]
        first = subprocess.Popen([*send, "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
        _wait_for_requests(twilio, first, 5)

        second = subprocess.run(send, env=env, capture_output=True, text=True, timeout=30)
        assert second.returncode == 5, second.stderr
        assert f"campaign 'spring' is being sent by another run (pid {first.pid})" in second.stderr
        # "At once", without timing anything: the first run holds the lock until it ends and is still running,
        # so the second did not wait for the lock.
        assert first.poll() is None  # the first run was not disturbed

        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=30)
        assert first.returncode == 130, err
        summary = json.loads(out)
        assert summary["stopped"] == "interrupted" and summary["state"] == "open"
        assert {s for s, n in summary["counts"].items() if n} == {"sent", "queued"}  # nothing left in flight, nothing lost
        assert summary["counts"]["sent"] == len(twilio.accepted)
        balance = json.loads(subprocess.run([*BULKSEND, "balance", "--json"], env=env, capture_output=True,
                                            text=True).stdout)["sms"]
        assert balance["held"] == 0

        rest = subprocess.run([*send, "--json", "--concurrency", "16"], env=env, capture_output=True, text=True,
                              timeout=60)
        assert rest.returncode == 0, rest.stderr
        assert json.loads(rest.stdout)["counts"] == states({"sent": 300})
    assert sorted(twilio.accepted_counts()) == sorted(numbers)
    assert max(twilio.accepted_counts().values()) == 1


def test_two_campaigns_side_by_side_never_spend_the_same_credits(home, tmp_path):
    env = _env(home)
    with FakeTwilio(latency=0.01) as twilio:
        (home / "config.toml").write_text(twilio_config(twilio.url, rate=0, concurrency=8))
        subprocess.run([*BULKSEND, "credits", "topup", "1000", "--channel", "sms"], env=env, check=True,
                       capture_output=True)
        first, _ = write_campaign(tmp_path / "a", "autumn", 600, provider="fake")
        second, _ = write_campaign(tmp_path / "w", "winter", 600, provider="fake", start=1000)
        runs = [
            subprocess.Popen([*BULKSEND, "send", str(path), "--yes", "--quiet"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
            for path in (first, second)
        ]
        results = [(run.wait(timeout=60), *run.communicate()) for run in runs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 3], results
    refused = next(err for code, _, err in results if code == 3)
    assert "needs 600 sms credits but 400 are available: 200 short" in refused
    sent = [row for name in ("autumn", "winter") for row in ledger_rows(home, name).values() if row[0] == "sent"]
    assert len(sent) == len(twilio.accepted) == 600
    audit = subprocess.run([*BULKSEND, "credits", "audit"], env=env, capture_output=True, text=True)
    assert audit.returncode == 0, audit.stdout
    balance = json.loads(subprocess.run([*BULKSEND, "balance", "--json"], env=env, capture_output=True,
                                        text=True).stdout)["sms"]
    assert (balance["available"], balance["held"]) == (400, 0)


def test_two_campaigns_that_fit_run_at_the_same_time(home, tmp_path):
    env = _env(home)
    with FakeTwilio(latency=0.02) as twilio:
        (home / "config.toml").write_text(twilio_config(twilio.url, rate=0, concurrency=4))
        subprocess.run([*BULKSEND, "credits", "topup", "1000", "--channel", "sms"], env=env, check=True,
                       capture_output=True)
        paths = [write_campaign(tmp_path / n, n, 300, provider="fake", start=i * 1000)[0]
                 for i, n in enumerate(("autumn", "winter"))]
        runs = [subprocess.Popen([*BULKSEND, "send", str(p), "--yes", "--quiet"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in paths]
        results = [(run.wait(timeout=60), run.communicate()[1]) for run in runs]
    assert [code for code, _ in results] == [0, 0], results
    assert len(twilio.accepted) == 600 and max(twilio.accepted_counts().values()) == 1
    # They really overlapped: each campaign's requests interleave with the other's.
    order = [m["to"] < "+447400001000" for m in twilio.accepted]
    assert sum(1 for a, b in zip(order, order[1:]) if a != b) > 2
