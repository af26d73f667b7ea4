"""Crashes through Vonage, the WhatsApp Cloud API and a generic http gateway: SIGKILL mid-send, then resume.

These providers cannot be asked what they received, so a row whose request may have been out when the
process died stays `unknown` (never re-sent). The attempt journal settles the rest of a crash's `sending`
rows: those whose request never started go back to `queued`, those whose answer came back but was not
committed yet are `sent` (or queued again when declined). Afterwards: nobody was accepted twice, every
`sent` row was accepted and debited once, every accepted number is `sent` or `unknown`, debits equal the
`sent` rows, the hold is released, the audit passes, and each kill left at most `concurrency` rows
unknown (one per worker thread), where before the journal it left everything claimed (up to two batches).
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

from fake_apis import FakeAPI, profile
from sendhelpers import ledger_rows, write_campaign

pytestmark = pytest.mark.slow

KILLS = 10
CONCURRENCY = 8  # fake_apis.profile


@pytest.mark.parametrize(("dialect", "channel"), [("vonage", "sms"), ("whatsapp", "whatsapp"), ("skylark", "sms")])
def test_sigkill_mid_send_never_double_sends_and_debits_what_was_recorded(home, tmp_path, dialect, channel):
    n = 1000
    rng = random.Random(5)
    with FakeAPI(dialect, latency=0.03) as api:
        table, secret_env = profile(dialect, api.url)
        (home / "config.toml").write_text(table)
        env = {**os.environ, "BULKSEND_HOME": str(home), **secret_env}
        run = [sys.executable, "-m", "bulksend"]
        subprocess.run([*run, "credits", "topup", "5000", "--channel", channel], env=env, check=True,
                       capture_output=True)
        extra = {"channel": channel, "service_window": True} if channel == "whatsapp" else {}
        campaign, numbers = write_campaign(tmp_path / "c", "crashy", n, provider="api", **extra)
        send = [*run, "send", str(campaign), "--yes", "--quiet"]

        left_sending: list[set[str]] = []  # per kill: the rows the dead process left `sending`
        accepted_then: list[set[str]] = []  # per kill: what the provider had accepted by then
        for kill in range(KILLS):
            before = api.posts
            process = subprocess.Popen(send, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 20
            while api.posts == before and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.3))
            if process.poll() is not None:
                pytest.fail(f"the campaign ended before {KILLS} kills (after {kill}): {process.stderr.read()!r}")
            process.send_signal(signal.SIGKILL)
            process.wait()
            time.sleep(0.2)  # requests whose body arrived before the kill are still accepted (latency 30 ms)
            left_sending.append({number for number, (state, _, _) in ledger_rows(home, "crashy").items()
                                 if state == "sending"})
            accepted_then.append(set(api.accepted_counts()))

        done = subprocess.run([*send, "--json"], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode in (0, 4), done.stderr
        summary = json.loads(done.stdout)

        accepted = api.accepted_counts()
        assert max(accepted.values()) == 1, [number for number, count in accepted.items() if count > 1][:5]
        rows = ledger_rows(home, "crashy")
        assert len(rows) == n
        sent = {number for number, (state, _, _) in rows.items() if state == "sent"}
        for number in numbers:
            state, debited, _ = rows[number]
            assert state in ("sent", "unknown"), (number, state)
            assert debited == (1 if state == "sent" else 0), (number, state, debited)
            if state == "sent":
                assert accepted[number] == 1, f"{number} recorded as sent but the provider never got it"
        assert set(accepted) - sent <= {n for n, (state, _, _) in rows.items() if state == "unknown"}
        assert summary["credits_debited"] == len(sent) and summary["counts"].get("sent", 0) == len(sent)
        # Nothing but a kill makes a row unknown here, and the journal leaves unknown only the request each
        # worker thread had started and not yet answered for in the journal: at most `concurrency` per kill.
        unknown = {number for number, (state, _, _) in rows.items() if state == "unknown"}
        assert unknown <= set().union(*left_sending)
        # An unknown row stays unknown, so the kill that made it so is the last one that left it `sending`
        # (an earlier kill may have left it `sending` too, with its request not started: then it was queued).
        per_kill, later = [], set()
        for claimed in reversed(left_sending):
            per_kill.insert(0, len((claimed - later) & unknown))
            later |= claimed
        assert max(per_kill) <= CONCURRENCY, per_kill
        # The journal path really ran: rows a kill left `sending` that the provider did not have were queued
        # again and sent by a later run, and rows it had accepted (answer lost with the process) are `sent`.
        requeued = set().union(*(claimed - had for claimed, had in zip(left_sending, accepted_then))) & sent
        recorded = set().union(*(claimed & had for claimed, had in zip(left_sending, accepted_then))) & sent
        assert requeued and recorded, (len(requeued), len(recorded), per_kill)

        audit = subprocess.run([*run, "credits", "audit"], env=env, capture_output=True, text=True)
        assert audit.returncode == 0, audit.stdout + audit.stderr
        balance = json.loads(subprocess.run([*run, "balance", "--json"], env=env, capture_output=True, text=True).stdout)
        assert balance[channel]["held"] == 0 and balance[channel]["available"] == 5000 - len(sent)
        for blob in (done.stdout, done.stderr, audit.stdout, (home / "ledger.db").read_bytes().decode("latin-1")):
            assert "fake-api-secret-0000" not in blob
