"""send with quiet hours, send times and frequency caps, on a settable clock (time-machine).

Every test pins the clock: quiet hours depend on the hour, and a test must not.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import time_machine

from sendhelpers import mobile, write_campaign

UTC = timezone.utc
GB, NY, AU = "+447400000001", "+12125550100", "+61412345678"
GB_IN_TOKYO = "+447400000002"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def funded(cli):
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    return cli


def world(tmp_path: Path, **extra) -> Path:
    """A campaign to a London, a New York and an Australian mobile, and a UK number whose row says Tokyo."""
    (tmp_path / "world.csv").write_text(
        "name,phone,consent,timezone\n"
        f"Ann,{GB},yes,\n"
        f"Bob,{NY},yes,\n"
        f"Cat,{AU},yes,\n"
        f"Dan,{GB_IN_TOKYO},yes,Asia/Tokyo\n"
    )
    lines = ['name = "world"', 'recipients = "world.csv"', 'message = "Hi {name}"', 'provider = "outbox"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in extra.items()]
    path = tmp_path / "world.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def rows(home: Path, campaign: str) -> dict[str, tuple[str, int, str | None]]:
    """number → (state, attempts, not_before)."""
    conn = sqlite3.connect(home / "ledger.db")
    try:
        found = conn.execute(
            "SELECT t.e164, t.state, t.attempts, t.not_before FROM transmissions t JOIN campaigns c "
            "ON c.id = t.campaign_id WHERE c.name = ?",
            (campaign,),
        ).fetchall()
    finally:
        conn.close()
    return {e164: (state, attempts, not_before) for e164, state, attempts, not_before in found}


def sent_to(home: Path, campaign: str) -> list[str]:
    path = home / "outbox" / f"{campaign}.jsonl"
    return sorted(json.loads(line)["to"] for line in path.read_text().splitlines()) if path.exists() else []


def held(cli) -> int:
    return json.loads(cli("balance", "--json").stdout)["sms"]["held"]


def send(cli, *args: str) -> dict:
    result = cli("send", *args, "--yes", "--json", "--quiet")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_rows_go_only_inside_their_windows_and_cron_runs_finish_the_campaign(funded, home, tmp_path):
    campaign = world(tmp_path, quiet_hours="21:00-08:00")
    # 12:00 UTC on 1 June: 13:00 London, 08:00 New York; 21:00 Tokyo (quiet); Lord Howe 22:30 (quiet,
    # and an Australian mobile may be anywhere from Cocos, +06:30, to Lord Howe, +10:30).
    with time_machine.travel(utc(2026, 6, 1, 12), tick=False):
        doc = send(funded, campaign)
    assert doc["state"] == "waiting"
    assert doc["next_due"] == "2026-06-01T23:00:00Z"  # 08:00 in Tokyo
    assert doc["counts"]["sent"] == 2 and doc["counts"]["queued"] == 2
    assert sent_to(home, "world") == sorted([GB, NY])
    ledger = rows(home, "world")
    assert ledger[GB_IN_TOKYO] == ("queued", 0, "2026-06-01T23:00:00.000Z")
    assert ledger[AU] == ("queued", 0, "2026-06-02T01:30:00.000Z")  # 08:00 Cocos = 11:30 Lord Howe
    assert held(funded) == 2  # the waiting rows' credits stay held

    # Too early for anyone: nothing happens. (Within the profile's max_wait, 10 minutes, a run would sleep.)
    with time_machine.travel(utc(2026, 6, 1, 22), tick=False):
        doc = send(funded, campaign)
    assert doc["state"] == "waiting" and doc["next_due"] == "2026-06-01T23:00:00Z"
    assert doc["run"]["attempts"] == 0

    with time_machine.travel(utc(2026, 6, 1, 23), tick=False):
        doc = send(funded, campaign)
    assert doc["state"] == "waiting" and doc["next_due"] == "2026-06-02T01:30:00Z"
    assert sent_to(home, "world") == sorted([GB, NY, GB_IN_TOKYO])

    with time_machine.travel(utc(2026, 6, 2, 1, 30), tick=False):
        doc = send(funded, campaign)
    assert doc["state"] == "done" and "next_due" not in doc
    assert doc["counts"]["sent"] == 4
    assert {state for state, _, _ in rows(home, "world").values()} == {"sent"}
    assert held(funded) == 0


def test_the_human_summary_says_how_many_wait_until_when(funded, tmp_path):
    campaign = world(tmp_path, quiet_hours="21:00-08:00")
    with time_machine.travel(utc(2026, 6, 1, 12), tick=False):
        result = funded("send", campaign, "--yes", "--quiet")
    assert result.exit_code == 0, result.stderr
    assert ("2 messages wait until 2026-06-01 23:00:00 UTC (quiet hours, a send time or a retry); their credits "
            "stay held. Run the same command again after that (a cron line does), or add --wait.") in result.stdout


def test_quiet_hours_are_on_by_default(funded, home, tmp_path, monkeypatch):
    monkeypatch.setattr("bulksend.schedule.DEFAULT_QUIET_HOURS", "21:00-08:00")  # undo the suite's pin
    campaign, numbers = write_campaign(tmp_path, "late", 2)
    with time_machine.travel(utc(2026, 1, 15, 22), tick=False):  # 22:00 in London
        doc = send(funded, campaign)
    assert doc["state"] == "waiting" and doc["next_due"] == "2026-01-16T08:00:00Z"
    assert sent_to(home, "late") == []
    # --quiet-hours off (or quiet_hours = false) sends at once.
    campaign2, _ = write_campaign(tmp_path, "late2", 2, start=10)
    with time_machine.travel(utc(2026, 1, 15, 22), tick=False):
        assert send(funded, campaign2, "--quiet-hours", "off")["state"] == "done"
    (home / "config.toml").write_text('[compliance]\nquiet_hours = "off"\n')
    campaign3, _ = write_campaign(tmp_path, "late3", 2, start=20)
    with time_machine.travel(utc(2026, 1, 15, 22), tick=False):
        assert send(funded, campaign3)["state"] == "done"


def test_a_row_due_before_quiet_hours_but_claimed_in_them_is_deferred_again(funded, home, tmp_path):
    campaign, numbers = write_campaign(tmp_path, "canary", 2, quiet_hours="21:00-08:00")
    with time_machine.travel(utc(2026, 6, 1, 19, 59), tick=False):  # 20:59 in London
        result = funded("send", campaign, "--yes", "--json", "--limit", "1")
        assert result.exit_code == 0, result.stderr
    assert rows(home, "canary")[numbers[1]] == ("queued", 0, None)  # due when queued
    with time_machine.travel(utc(2026, 6, 1, 20, 1), tick=False):  # 21:01 in London
        doc = send(funded, campaign)
    assert doc["state"] == "waiting" and doc["next_due"] == "2026-06-02T07:00:00Z"
    assert doc["run"]["deferred"] == 1 and doc["run"]["attempts"] == 0
    assert rows(home, "canary")[numbers[1]] == ("queued", 0, "2026-06-02T07:00:00.000Z")  # no attempt used
    assert sent_to(home, "canary") == [numbers[0]]


def test_a_dst_change_moves_the_morning(funded, home, tmp_path):
    (tmp_path / "ny.csv").write_text(f"phone,consent\n{NY},yes\n")
    # 23:00 EST on 7 March 2026; clocks go forward at 02:00, so 08:00 is EDT (12:00 UTC, not 13:00).
    with time_machine.travel(utc(2026, 3, 8, 4), tick=False):
        doc = send(funded, tmp_path / "ny.csv", "--quiet-hours", "21:00-08:00", "--message", "Hi")
    assert doc["next_due"] == "2026-03-08T12:00:00Z"
    # 1 November: back to EST, 08:00 is 13:00 UTC.
    (tmp_path / "ny2.csv").write_text(f"phone,consent\n{NY},yes\n")
    with time_machine.travel(utc(2026, 11, 1, 4), tick=False):
        doc = send(funded, tmp_path / "ny2.csv", "--quiet-hours", "21:00-08:00", "--message", "Hi")
    assert doc["next_due"] == "2026-11-01T13:00:00Z"


def test_a_local_send_time_rolls_around_the_world(funded, home, tmp_path):
    campaign = world(tmp_path, quiet_hours="off", send_at="09:00", local=True)
    with time_machine.travel(utc(2026, 12, 1, 0), tick=False):  # 09:00 in Tokyo: Dan goes now
        doc = send(funded, campaign)
    assert sent_to(home, "world") == [GB_IN_TOKYO]
    ledger = rows(home, "world")
    assert ledger[GB][2] == "2026-12-01T09:00:00.000Z"
    assert ledger[NY][2] == "2026-12-01T14:00:00.000Z"
    assert doc["next_due"] == "2026-12-01T09:00:00Z"


def test_a_send_time_instant_from_the_command_line(funded, home, tmp_path):
    campaign, numbers = write_campaign(tmp_path, "later", 2)
    with time_machine.travel(utc(2026, 11, 30, 12), tick=False):
        doc = send(funded, campaign, "--at", "2026-12-01T09:00:00+01:00")
    assert doc["next_due"] == "2026-12-01T08:00:00Z" and sent_to(home, "later") == []


def test_wait_sleeps_until_due_and_finishes_in_one_run(funded, home, tmp_path, monkeypatch):
    campaign = world(tmp_path, quiet_hours="21:00-08:00")
    with time_machine.travel(utc(2026, 6, 1, 12), tick=False) as clock:
        slept: list[float] = []

        def sleep(stop, seconds: float) -> bool:
            slept.append(seconds)
            clock.shift(seconds)
            return False

        monkeypatch.setattr("bulksend.campaign_run.sleep_until_due", sleep)
        doc = send(funded, campaign, "--wait")
    assert doc["state"] == "done" and doc["counts"]["sent"] == 4
    assert slept == [11 * 3600, 2.5 * 3600]
    assert held(funded) == 0


def test_ctrl_c_while_waiting_exits_130_with_the_rest_queued(funded, home, tmp_path, monkeypatch):
    campaign = world(tmp_path, quiet_hours="21:00-08:00")
    monkeypatch.setattr("bulksend.campaign_run.sleep_until_due", lambda stop, seconds: True)
    with time_machine.travel(utc(2026, 6, 1, 12), tick=False):
        result = funded("send", campaign, "--yes", "--wait", "--json")
    assert result.exit_code == 130
    assert json.loads(result.stdout)["counts"]["queued"] == 2
    assert rows(home, "world")[AU] == ("queued", 0, "2026-06-02T01:30:00.000Z")
    with time_machine.travel(utc(2026, 6, 2, 2), tick=False):
        assert send(funded, campaign)["state"] == "done"


# ----------------------------------------------------------------------------------------- frequency caps


def test_a_number_at_the_cap_is_rejected_with_when_it_is_eligible(funded, home, tmp_path):
    first, numbers = write_campaign(tmp_path / "a", "first", 2)
    with time_machine.travel(utc(2026, 6, 1, 10), tick=False):
        send(funded, first)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "second.csv").write_text(f"phone,consent\n{numbers[0]},yes\n{mobile(50)},yes\n")
    with time_machine.travel(utc(2026, 6, 1, 12), tick=False):
        doc = send(funded, tmp_path / "b" / "second.csv", "--frequency-cap", "1/24h", "--message", "Hi")
        rejects = tmp_path / "rejects.csv"
        check = funded("validate", tmp_path / "b" / "second.csv", "--rejects", rejects, "--region", "GB")
    assert doc["rejected"] == 1 and doc["reasons"] == {"frequency_capped": 1}
    assert sent_to(home, "second") == [mobile(50)]
    # Not capped without a cap (the default): validate knows no cap unless config.toml sets one.
    assert check.exit_code == 0
    (home / "config.toml").write_text('[compliance]\nfrequency_cap = "1/24h"\n')
    with time_machine.travel(utc(2026, 6, 1, 12), tick=False):
        result = funded("send", tmp_path / "b" / "second.csv", "--name", "third", "--yes", "--json", "--message", "Hi",
                        "--quiet")
    # Both numbers are at the cap now (config.toml's): nobody can be messaged, exit 2, nothing held.
    assert result.exit_code == 2
    assert "no row can be messaged (frequency_capped 2)" in result.stderr


def test_the_cap_detail_says_when(funded, home, tmp_path):
    from bulksend.config import Config
    from bulksend.campaign_file import RunOptions, build_spec
    from bulksend.campaign_run import prepare_send

    first, numbers = write_campaign(tmp_path / "a", "first", 1)
    with time_machine.travel(utc(2026, 6, 1, 10), tick=False):
        send(funded, first)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "second.csv").write_text(f"phone,consent\n{numbers[0]},yes\n{mobile(50)},yes\n")
    with time_machine.travel(utc(2026, 6, 1, 12), tick=False):
        spec = build_spec(tmp_path / "b" / "second.csv", {"frequency_cap": "1/24h", "message": "Hi"}, RunOptions())
        with prepare_send(Config.load(home), spec) as prepared:
            from bulksend.recipients import iter_rejects

            (reject,) = list(iter_rejects(prepared.estimate.table))
    assert (reject.reason, reject.detail) == (
        "frequency_capped", "already sent 1 sms message within 1d; eligible again at 2026-06-02T10:00:00Z"
    )


def test_send_one_is_not_capped(funded, home, tmp_path):
    (home / "config.toml").write_text('[compliance]\nfrequency_cap = "1/24h"\nquiet_hours = "21:00-08:00"\n')
    with time_machine.travel(utc(2026, 6, 1, 23), tick=False):  # and not held to quiet hours either
        for _ in range(2):
            result = funded("send-one", GB, "--message", "Your table is ready", "--json")
            assert result.exit_code == 0, result.stderr
            assert json.loads(result.stdout)["outcome"] == "sent"


def _run(home: Path, campaign: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "BULKSEND_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "bulksend", "send", str(campaign), "--yes", "--json", "--quiet",
         "--quiet-hours", "off", "--frequency-cap", "1/24h"],
        env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.slow
def test_two_campaigns_at_once_cannot_both_slip_under_the_cap(funded, home, tmp_path):
    """Two processes send to the same 40 numbers at the same time under a 1/24h cap: each gets one message."""
    a, numbers = write_campaign(tmp_path / "a", "alpha", 40, batch_size=4)
    b, _ = write_campaign(tmp_path / "b", "beta", 40, batch_size=4)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda c: _run(home, c), [a, b]))
    for result in results:
        assert result.returncode in (0, 4), result.stderr
    got = sent_to(home, "alpha") + sent_to(home, "beta")
    assert sorted(got) == sorted(numbers)  # every number exactly once, whichever campaign reached it
    conn = sqlite3.connect(home / "ledger.db")
    try:
        failed = dict(conn.execute("SELECT error_code, COUNT(*) FROM transmissions WHERE state = 'failed' "
                                   "GROUP BY error_code").fetchall())
    finally:
        conn.close()
    rejected = sum(json.loads(r.stdout)["reasons"].get("frequency_capped", 0) for r in results)
    assert failed.get("frequency_capped", 0) + rejected == 40


def test_campaigns_show_says_when_a_waiting_campaign_is_next_due(funded, tmp_path):
    campaign = world(tmp_path, quiet_hours="21:00-08:00")
    with time_machine.travel(utc(2026, 6, 1, 12), tick=False):
        send(funded, campaign)
        shown = json.loads(funded("campaigns", "show", "world", "--json").stdout)
        human = funded("campaigns", "show", "world").stdout
    assert shown["next_due"] == "2026-06-01T23:00:00Z"
    assert "2 queued; the first is due at 2026-06-01 23:00:00 UTC (quiet hours, a send time or a retry)" in human
    with time_machine.travel(utc(2026, 6, 2, 1, 30), tick=False):
        send(funded, campaign)
        shown = json.loads(funded("campaigns", "show", "world", "--json").stdout)
        human = funded("campaigns", "show", "world").stdout
    assert shown["next_due"] is None and "due at" not in human


def test_a_dry_run_says_which_rows_are_not_due_yet_and_when(funded, home, tmp_path):
    campaign = world(tmp_path, quiet_hours="21:00-08:00")

    def dry_run() -> tuple[dict, dict[str, str | None]]:
        result = funded("send", campaign, "--dry-run", "--json")
        assert result.exit_code == 0, result.stderr
        doc = json.loads(result.stdout)
        lines = [json.loads(line) for line in Path(doc["file"]).read_text().splitlines()]
        return doc, {line["to"]: line.get("due") for line in lines}

    with time_machine.travel(utc(2026, 6, 1, 12), tick=False):
        doc, due = dry_run()  # a new campaign: nothing in the ledger yet
        assert doc["messages"] == 4 and doc["waiting"] == 2
        assert due == {GB: None, NY: None, GB_IN_TOKYO: "2026-06-01T23:00:00Z", AU: "2026-06-02T01:30:00Z"}
        human = funded("send", campaign, "--dry-run").stdout
        assert "2 of them are not due yet (quiet hours or a send time)" in human
        send(funded, campaign)
        doc, due = dry_run()  # resuming: the rows left are the waiting ones
        assert doc["messages"] == 2 and doc["waiting"] == 2
        assert due == {GB_IN_TOKYO: "2026-06-01T23:00:00Z", AU: "2026-06-02T01:30:00Z"}
    with time_machine.travel(utc(2026, 6, 1, 23, 30), tick=False):
        doc, due = dry_run()
        assert doc["waiting"] == 1 and due == {GB_IN_TOKYO: None, AU: "2026-06-02T01:30:00Z"}
