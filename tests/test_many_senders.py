"""Many senders, one campaign, on PostgreSQL (issue 10 item 4): three sender processes from three homes on one
ledger, killed with SIGKILL at random and replaced, through a fake provider that adds latency and sometimes
drops the connection after accepting. At the end every recipient was accepted exactly once, the debits
equal what was accepted, ``credits audit`` passes, and the provider never saw more than the profile's rate
(+10 %) in any one-second window: the rate is shared through the ledger, so senders that die and senders that
start in their place never add up to more than it (issue 10, "Proving it").

A short lease (2 s) makes expiry happen within the test: a killed sender whose home is never used again
leaves rows only a lease expiry can free; one whose home is reused is settled at once by its successor.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from fake_twilio import AUTH_TOKEN, FakeTwilio, busiest_second, twilio_config
from ledger_backends import Backend
from sendhelpers import write_campaign

BULKSEND = [sys.executable, "-m", "bulksend"]
RECIPIENTS = 3000  # "a few thousand" (issue 10)
KILLS = 10
RATE = 150  # the profile's rate: 20 s of sending at least, so the kills land while the senders work


def _dropping(rate: float, seed: int):
    """The fake's ``drop`` fault (the connection dies after the request; accepted half the time) for ``rate``."""
    rng = random.Random(seed)

    def fault(to: str, attempt: int) -> str | None:
        return "drop" if rng.random() < rate else None

    return fault


def _run_stats(out: str) -> str:
    """The engine's figures in a sender's --json summary that tell how it met the others (a failure's timeline)."""
    import json

    try:
        run = json.loads(out).get("run") or {}
    except ValueError:
        return out[-200:]
    return ", ".join(f"{k}={v}" for k, v in run.items() if not isinstance(v, (dict, list)))


def _explain(timeline: dict, started: float, events: list[tuple[float, str]]) -> str:
    """Each number accepted twice, with when the fake got its requests, accepted them and was asked about it,
    among the kills and starts, in seconds from the test's start."""
    lines = []
    for number, (posts, accepts, lookups) in timeline.items():
        lines.append(f"{number}: posts {[round(t - started, 3) for t in posts]}, "
                     f"accepted {[round(t - started, 3) for t in accepts]}, "
                     f"looked up {[round(t - started, 3) for t in lookups]}")
    lines += [f"  {t - started:8.3f} {what}" for t, what in events]
    return "\n".join(lines)


def _rows(backend: Backend) -> list[tuple[str, str, int, int]]:
    import psycopg

    with psycopg.connect(backend.url) as conn:
        return conn.execute("SELECT e164, state, debited, cost FROM transmissions ORDER BY id").fetchall()


@pytest.mark.slow
def test_three_senders_killed_at_random_send_every_message_exactly_once(tmp_path):
    backend = Backend("postgresql")
    rng = random.Random(10)
    started = time.time()
    events: list[tuple[float, str]] = []  # (time.time(), what happened): the timeline a failure prints
    homes_made = 0
    procs: list[subprocess.Popen] = []

    def new_home():
        nonlocal homes_made
        homes_made += 1
        home = tmp_path / f"home{homes_made}"
        home.mkdir()
        (home / "config.toml").write_text(config + "\n[ledger]\nlease_seconds = 2\n")
        return home

    def start(home):
        env = {**os.environ, "BULKSEND_HOME": str(home), "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
               "BULKSEND_LEDGER_URL": backend.url}
        proc = subprocess.Popen([*BULKSEND, "send", str(campaign), "--yes", "--json"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        proc.home = home  # type: ignore[attr-defined]
        events.append((time.time(), f"start pid {proc.pid} in {home.name}"))
        return proc

    try:
        with FakeTwilio(latency=0.02, fault=_dropping(0.02, seed=3)) as twilio:
            config = twilio_config(twilio.url, rate=RATE, concurrency=6, reconcile_after=0, backoff_base=0.05,
                                   backoff_cap=0.2)
            campaign, numbers = write_campaign(tmp_path, "spring", RECIPIENTS, provider="fake")
            first = new_home()
            env = {**os.environ, "BULKSEND_HOME": str(first), "BULKSEND_LEDGER_URL": backend.url}
            subprocess.run([*BULKSEND, "credits", "topup", str(2 * RECIPIENTS), "--channel", "sms"], env=env,
                           check=True, capture_output=True)
            # The first sender creates and queues the campaign; the others join it once it is sending.
            procs.append(start(first))
            deadline = time.monotonic() + 30
            while not twilio.accepted and time.monotonic() < deadline:
                time.sleep(0.05)
            procs += [start(new_home()), start(new_home())]

            kills = 0
            deadline = time.monotonic() + 40
            while kills < KILLS and time.monotonic() < deadline:
                time.sleep(rng.uniform(0.3, 0.9))
                running = [p for p in procs if p.poll() is None]
                if not running:
                    break
                victim = rng.choice(running)
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                events.append((time.time(), f"kill pid {victim.pid}"))
                kills += 1
                # Half the time a new home (its claims wait for the lease), else the same home again.
                procs.append(start(victim.home if rng.random() < 0.5 else new_home()))  # type: ignore[attr-defined]
            assert kills >= KILLS, f"only {kills} kills: the senders finished first\n" + "\n".join(
                f"pid {p.pid} exit {p.returncode}: {p.stdout.read()[-1500:]} {p.stderr.read()[-300:]}"
                for p in procs if p.poll() is not None and p.returncode != -signal.SIGKILL
            )

            for proc in procs:
                out, _ = proc.communicate(timeout=90)
                if out.strip():
                    events.append((time.time(), f"pid {proc.pid} ended: {_run_stats(out)}"))
            # The last rows of senders that died settle once their lease runs out: one more run finishes.
            for _ in range(5):
                states = {state for _, state, _, _ in _rows(backend)}
                if states <= {"sent"}:
                    break
                time.sleep(2.5)
                final = start(new_home())
                out, err = final.communicate(timeout=90)
                assert final.returncode == 0, err
            accepted = twilio.accepted_counts()
            lookups, dropped = twilio.lookups, twilio.faults["drop"]
            timeline = {n: (twilio.post_times.get(n, []), twilio.accept_times.get(n, []),
                            twilio.lookup_times.get(n, [])) for n, k in accepted.items() if k > 1}
            arrivals = [t for times in twilio.post_times.values() for t in times]

        rows = _rows(backend)
        busiest = busiest_second(arrivals)
        print(f"kills={kills} homes={homes_made} lookups={lookups} dropped={dropped} posts={sum(twilio.posts.values())} "
              f"busiest second={busiest} (rate {RATE})")
        # What may have reached the provider was looked up, never re-sent blindly.
        assert lookups > 0 and dropped > 0
        assert {state for _, state, _, _ in rows} == {"sent"}
        assert sorted(accepted) == sorted(numbers)
        assert set(accepted.values()) == {1}, _explain(timeline, started, events)
        assert sum(debited for _, _, debited, _ in rows) == sum(cost for _, _, _, cost in rows) == len(accepted)
        assert busiest <= RATE * 1.1, f"the provider saw {busiest} requests in one second at rate {RATE}"
        env = {**os.environ, "BULKSEND_HOME": str(first), "BULKSEND_LEDGER_URL": backend.url}
        audit = subprocess.run([*BULKSEND, "credits", "audit", "--json"], env=env, capture_output=True, text=True)
        assert audit.returncode == 0, audit.stdout + audit.stderr
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        backend.drop()
