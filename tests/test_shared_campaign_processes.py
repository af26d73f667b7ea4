"""Many senders, one campaign, from different homes (issue 10 item 4), with real processes on one PostgreSQL ledger:
two senders that create the same campaign at the same moment, and a cancel from one home while another home's
sender is running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fake_twilio import AUTH_TOKEN, FakeTwilio, twilio_config
from ledger_backends import Backend
from sendhelpers import write_campaign

BULKSEND = [sys.executable, "-m", "bulksend"]

# Imports bulksend first, then waits for the gate file: the processes leave the gate together, already started.
GATED = [sys.executable, "-c", (
    "import os, sys, time\n"
    "from bulksend.cli import main\n"
    "gate = sys.argv.pop(1)\n"
    "while not os.path.exists(gate):\n"
    "    time.sleep(0.002)\n"
    "sys.argv[0] = 'bulksend'\n"
    "main()\n"
)]


@pytest.fixture
def backend():
    made = Backend("postgresql")
    yield made
    made.drop()


def make_home(tmp_path: Path, name: str, config: str) -> Path:
    home = tmp_path / name
    home.mkdir(mode=0o700)
    (home / "config.toml").write_text(config)
    return home


def environment(home: Path, backend: Backend) -> dict[str, str]:
    return {**os.environ, "BULKSEND_HOME": str(home), "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "BULKSEND_LEDGER_URL": backend.url}


def run(home: Path, backend: Backend, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*BULKSEND, *args], env=environment(home, backend), capture_output=True, text=True,
                          timeout=120)


def rows(backend: Backend, sql: str, *params) -> list[tuple]:
    import psycopg

    with psycopg.connect(backend.url) as conn:
        return conn.execute(sql, params).fetchall()


def test_two_senders_that_create_one_campaign_at_the_same_moment_make_one_campaign_and_one_hold(backend, tmp_path):
    n = 200
    with FakeTwilio(latency=0.01) as twilio:
        config = twilio_config(twilio.url, rate=0, concurrency=4, batch_size=20)
        homes = [make_home(tmp_path, f"home{i}", config) for i in (1, 2)]
        assert run(homes[0], backend, "credits", "topup", "1000", "--channel", "sms").returncode == 0
        campaign, numbers = write_campaign(tmp_path, "spring", n, provider="fake")
        gate = tmp_path / "gate"
        senders = [
            subprocess.Popen([*GATED, str(gate), "send", str(campaign), "--yes", "--json"],
                             env=environment(home, backend), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
            for home in homes
        ]
        time.sleep(1.0)  # both have imported bulksend and wait at the gate (any order would do: this only tightens it)
        gate.touch()
        outputs = [sender.communicate(timeout=120) for sender in senders]
        accepted = twilio.accepted_counts()

    for sender, (out, err) in zip(senders, outputs):
        assert sender.returncode == 0, err
    # The sender that finishes last finds every row final and reports the campaign done; the other may end
    # while the last one's final batch is still in flight, and then rightly reports it open.
    reports = sorted(json.loads(out)["state"] for out, _ in outputs)
    assert reports in (["done", "done"], ["done", "open"])
    assert rows(backend, "SELECT name, state FROM campaigns") == [("spring", "done")]
    assert rows(backend, "SELECT COUNT(*), COUNT(DISTINCT e164) FROM transmissions") == [(n, n)]  # queued once
    holds = rows(backend, "SELECT amount FROM movements WHERE kind = 'hold'")
    assert holds == [(n,)]  # one hold, of the whole campaign: the second sender joined it
    assert rows(backend, "SELECT COALESCE(SUM(amount), 0) FROM holds") == [(0,)]
    assert sorted(accepted) == sorted(numbers) and set(accepted.values()) == {1}
    assert rows(backend, "SELECT SUM(debited) FROM transmissions") == [(n,)]
    audit = run(homes[1], backend, "credits", "audit", "--json")
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_a_cancel_from_another_home_stops_a_running_sender_and_settles_what_it_had_in_flight(backend, tmp_path):
    n, rate = 300, 40
    with FakeTwilio(latency=0.02) as twilio:
        config = twilio_config(twilio.url, rate=rate, concurrency=4, batch_size=10)
        sender_home, office = make_home(tmp_path, "sender", config), make_home(tmp_path, "office", config)
        assert run(office, backend, "credits", "topup", "1000", "--channel", "sms").returncode == 0
        campaign, numbers = write_campaign(tmp_path, "spring", n, provider="fake")
        sender = subprocess.Popen([*BULKSEND, "send", str(campaign), "--yes", "--json"],
                                  env=environment(sender_home, backend), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while len(twilio.accepted) < 40 and time.monotonic() < deadline and sender.poll() is None:
            time.sleep(0.05)
        assert sender.poll() is None, sender.communicate()
        cancel = run(office, backend, "campaigns", "cancel", "spring", "--json")
        # Read in this order: every request sent after this point is for a row that was in flight here.
        in_flight = rows(backend, "SELECT COUNT(*) FROM transmissions WHERE state = 'sending'")[0][0]
        posted = sum(twilio.posts.values())
        out, err = sender.communicate(timeout=120)
        accepted = twilio.accepted_counts()
        posted_after = sum(twilio.posts.values()) - posted

    print(f"in flight at the cancel: {in_flight}, posted after it: {posted_after}, accepted: {len(accepted)}/{n}")
    assert cancel.returncode == 0, cancel.stderr
    assert json.loads(cancel.stdout)["changed"] is True
    assert posted_after <= in_flight  # the running sender claimed nothing after the cancel
    assert sender.returncode == 0, err
    report = json.loads(out)
    assert report["state"] == "cancelled"
    states = dict(rows(backend, "SELECT state, COUNT(*) FROM transmissions GROUP BY state"))
    assert states.get("sending", 0) == 0 and states.get("unknown", 0) == 0  # what was in flight is settled
    assert states["queued"] > 0 and states["sent"] == len(accepted) < n
    assert set(accepted.values()) == {1}
    assert rows(backend, "SELECT SUM(debited) FROM transmissions") == [(len(accepted),)]  # every send paid once
    assert rows(backend, "SELECT COALESCE(SUM(amount), 0) FROM holds") == [(0,)]  # nothing held any more
    assert rows(backend, "SELECT state FROM campaigns") == [("cancelled",)]
    balance = json.loads(run(office, backend, "balance", "--json").stdout)["sms"]
    assert balance["available"] == 1000 - len(accepted)  # the credits of what was never sent are back
    audit = run(office, backend, "credits", "audit", "--json")
    assert audit.returncode == 0, audit.stdout + audit.stderr
