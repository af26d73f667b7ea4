"""Limits on what a provider can do to a run: a whole-request deadline, a cap on the answer read, a sane
Retry-After, printable error text, Ctrl-C that does not wait on a stuck request, and no row left ``sending``
nor credits left held on any of those paths (issue 9, items 3 and the misbehaving provider cases).

The provider is a raw socket server (tests/fault_server.py) speaking just enough Vonage for the adapter.
Time bounds are behavioural (a generous multiple of the deadline), not benchmarks.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from bulksend.providers import http_common
from bulksend.providers.base import Profile
from bulksend.safetext import printable
from fault_server import FaultServer
from sendhelpers import ledger_rows, write_campaign

SECRET = "vonage-secret-for-tests"


def vonage_config(url: str, **settings) -> str:
    settings = {"rate": 0, "concurrency": 4, **settings}
    lines = ['[providers.api]', 'type = "vonage"', 'api_key = "k123"', 'sender = "ACME"', f'base_url = "{url}"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def secret(monkeypatch):
    monkeypatch.setenv("VONAGE_API_SECRET", SECRET)


def setup_campaign(cli, home, tmp_path, url, n=4, **settings):
    (home / "config.toml").write_text(vonage_config(url, **settings))
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    campaign, numbers = write_campaign(tmp_path / "c", "limits", n, provider="api")
    return campaign


def held(cli) -> int:
    return json.loads(cli("balance", "--json").stdout)["sms"]["held"]


def states(home) -> dict[str, int]:
    counts: dict[str, int] = {}
    for state, _, _ in ledger_rows(home, "limits").values():
        counts[state] = counts.get(state, 0) + 1
    return counts


def error_texts(home) -> list[str]:
    conn = sqlite3.connect(home / "ledger.db")
    try:
        return [row[0] for row in conn.execute("SELECT error_text FROM transmissions") if row[0] is not None]
    finally:
        conn.close()


# ----------------------------------------------------------------------------------- the session itself


def test_a_dripped_body_ends_at_the_deadline_not_after_every_byte():
    with FaultServer("drip", drip_every=0.2) as server:  # ~80 bytes: 16 s at 0.2 s each, every read in time
        session = http_common.make_session(1, deadline=0.5)
        started = time.monotonic()
        with pytest.raises(http_common.DeadlineExceeded):
            session.post(server.url + "/sms/json", data={"a": "b"}, timeout=(5, 30))
        assert time.monotonic() - started < 8  # a bound against hanging: the whole answer takes 16 s or more
        session.close()


def test_dripped_headers_end_at_the_deadline_too():
    with FaultServer("drip_headers", drip_every=0.1) as server:
        session = http_common.make_session(1, deadline=0.5)
        started = time.monotonic()
        with pytest.raises(http_common.DeadlineExceeded):
            session.post(server.url + "/sms/json", data={"a": "b"}, timeout=(5, 30))
        assert time.monotonic() - started < 8  # a bound against hanging: the whole answer takes 16 s or more
        session.close()


def test_a_deadline_overrun_is_ambiguous():
    outcome = http_common.classify_transport_error(
        http_common.DeadlineExceeded("no complete answer within 0.5s"), http_common.Scrubber(), 30
    )
    assert outcome.kind.value == "ambiguous" and outcome.code == "deadline_exceeded"


def test_a_huge_answer_is_not_read_past_the_cap():
    with FaultServer("huge_200") as server:
        session = http_common.make_session(1)
        response = session.post(server.url + "/sms/json", data={"a": "b"})
        assert response.status_code == 200
        assert response.body_over_cap is True
        assert response.content == b""
        # What was taken off the wire: the cap and at most one more chunk, not the 60 MB announced.
        assert response.body_bytes_read <= http_common.MAX_RESPONSE_BYTES + 64 * 1024
        assert response.raw.tell() <= http_common.MAX_RESPONSE_BYTES + 64 * 1024
        assert "over 1,048,576 bytes" in http_common.body_excerpt(response)
        session.close()


def test_interrupt_cuts_a_request_in_flight_at_once():
    with FaultServer("drip", drip_every=1.0) as server:
        session = http_common.make_session(1, deadline=60)
        errors = []

        def post():
            try:
                session.post(server.url + "/sms/json", data={"a": "b"}, timeout=(5, 30))
            except requests.RequestException as exc:
                errors.append(exc)

        worker = threading.Thread(target=post)
        worker.start()
        while not server.requests:
            time.sleep(0.01)
        session.interrupt()
        worker.join(5)
        assert not worker.is_alive()  # within the join's 5 s, against a 60 s deadline
        assert isinstance(errors[0], http_common.RequestInterrupted)
        outcome = http_common.classify_transport_error(errors[0], http_common.Scrubber(), 30)
        assert outcome.kind.value == "ambiguous" and outcome.code == "interrupted"
        session.close()


def test_a_complete_answer_still_reads_as_usual_and_reuses_the_connection():
    with FaultServer("ok") as server:
        session = http_common.make_session(1)
        for _ in range(3):
            response = session.post(server.url + "/sms/json", data={"a": "b"})
            assert response.json()["messages"][0]["status"] == "0"
        assert server.requests == 3
        session.close()


@pytest.mark.parametrize(
    "value, expected",
    [
        ("120", 120.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("99999999999999999999999999", http_common.MAX_RETRY_AFTER),
        ("9" * 400, None),  # absurdly long: ignored
        ("-5", None),
        ("soon", None),
        ("1e309", None),
        ("NaN", None),
        ("\x00\x1b[31m", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Fri, 31 Dec 9999 23:59:59 GMT", http_common.MAX_RETRY_AFTER),
        ("Sun, 06 Nov 1994 08:49:37 GMT", 0.0),
        ("Sun, 99 Nov 1994 08:49:37 GMT", None),
    ],
)
def test_retry_after_is_parsed_robustly_and_capped(value, expected):
    now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert http_common.parse_retry_after(value, now) == expected


def test_the_deadline_setting_is_bounded():
    assert http_common.deadline(Profile("p", "vonage", {})) == 30.0
    assert http_common.deadline(Profile("p", "vonage", {"deadline": 2})) == 2.0
    for bad in (0, -1, 601, float("nan"), float("inf"), "soon", True):
        with pytest.raises(http_common.ConfigError, match="deadline must be a number of seconds from 0.1 to 600"):
            http_common.deadline(Profile("p", "vonage", {"deadline": bad}))


def test_printable_strips_escapes_controls_and_invalid_bytes():
    raw = b"Bad \x1b[31mred\x1b[0m \x1b]0;title\x07num\x00ber\xff\xfe\r\nnext line \xe2\x80\xae"
    assert printable(raw) == "Bad red number next line"
    assert printable("a\x9b2Jb\u202ec\x7f") == "abc"  # C1 CSI, a bidi override, DEL
    assert len(printable("x" * 10_000)) == 500


# ------------------------------------------------------------------------------------ whole runs


def test_a_dripping_provider_holds_a_run_for_about_its_deadline(cli, home, tmp_path, secret):
    with FaultServer("drip", drip_every=0.2) as server:
        campaign = setup_campaign(cli, home, tmp_path, server.url, deadline=0.5)
        result = cli("send", campaign, "--yes", "--json", "--quiet")
    # The whole body would take about 40 s to drip; every row ending `deadline_exceeded` shows each request
    # was cut at its deadline (no timing assertion: a loaded machine must not fail this test).
    assert result.exit_code == 4, result.stderr
    assert states(home) == {"unknown": 4}  # may have been accepted: never a blind retry
    assert {code for _, _, code in ledger_rows(home, "limits").values()} == {"deadline_exceeded"}
    assert held(cli) == 0


def test_huge_answers_are_classified_from_the_status_alone(cli, home, tmp_path, secret):
    with FaultServer("huge_200") as server:
        campaign = setup_campaign(cli, home, tmp_path, server.url)
        result = cli("send", campaign, "--yes", "--json", "--quiet")
        sent_by_server = server.bytes_sent
    assert result.exit_code == 4, result.stderr
    assert states(home) == {"unknown": 4}  # a 2xx whose body was not read may have been accepted
    assert sent_by_server < 4 * 60 * 1024 * 1024 / 2  # the client stopped reading; the server could not push it all
    assert held(cli) == 0


def test_a_huge_retry_after_leaves_the_rows_queued_and_the_campaign_waiting(cli, home, tmp_path, secret):
    with FaultServer("retry_after") as server:
        campaign = setup_campaign(cli, home, tmp_path, server.url)
        result = cli("send", campaign, "--yes", "--json", "--quiet")
    # DESIGN.md: only rows not yet due are left → exit 0, state "waiting", next_due; the credits stay held
    # for the run that sends them.
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["stopped"] == "waiting" and doc["state"] == "waiting"
    assert states(home) == {"queued": 4}
    assert held(cli) == 4
    due = datetime.fromisoformat(doc["next_due"].replace("Z", "+00:00"))
    assert timedelta(hours=23) < due - datetime.now(timezone.utc) <= timedelta(days=1, minutes=1)


def test_garbage_bytes_from_a_provider_never_reach_the_ledger_or_the_terminal(cli, home, tmp_path, secret):
    garbage = b"\x1b[2J\x1b[31mERR\x1b[0m \x00\x07\x08bad\xff\xfe\xc3( number " + b"z" * 5000
    with FaultServer("garbage", garbage=garbage) as server:
        campaign = setup_campaign(cli, home, tmp_path, server.url)
        result = cli("send", campaign, "--yes")
    assert result.exit_code == 4, result.stderr
    assert states(home) == {"failed": 4}
    for text in error_texts(home):
        assert text == printable(text) and len(text) <= 500
        assert "ERR" in text and "bad" in text
    for stream in (result.stdout, result.stderr):
        assert "\x1b" not in stream and "\x00" not in stream and "\ufffd" not in stream


def test_ctrl_c_does_not_wait_for_a_stuck_request(cli, home, tmp_path, secret):
    with FaultServer("drip", drip_every=2.0) as server:  # each answer would take minutes, every read in time
        campaign = setup_campaign(cli, home, tmp_path, server.url, n=12, deadline=300)
        pressed = []

        def press_ctrl_c():
            while server.requests < 4:
                time.sleep(0.01)
            pressed.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)

        presser = threading.Thread(target=press_ctrl_c, daemon=True)
        presser.start()
        result = cli("send", campaign, "--yes", "--json", "--quiet")
        stopped_after = time.monotonic() - pressed[0]
    assert result.exit_code == 130, result.stderr
    assert stopped_after < 3 * 2.0 + 3.0, stopped_after  # the grace and the cut, not the 300 s deadline
    counts = states(home)
    assert "sending" not in counts
    assert counts.get("unknown") == 4  # the four in flight may have been sent
    assert counts.get("queued") == 8  # claimed but never sent: back in the queue, no attempt spent
    assert held(cli) == 0


# ------------------------------------------------------------- every error path: no row sending, no hold


def test_a_fatal_answer_stops_the_run_with_the_rows_queued_and_the_hold_released(cli, home, tmp_path, secret):
    with FaultServer("unauthorized") as server:
        campaign = setup_campaign(cli, home, tmp_path, server.url)
        result = cli("send", campaign, "--yes", "--json", "--quiet")
    assert result.exit_code == 1, result.stderr
    assert states(home) == {"queued": 4}
    assert held(cli) == 0


def test_an_adapter_that_raises_leaves_no_row_sending_and_no_hold(cli, home, tmp_path, secret, monkeypatch):
    from bulksend.providers.vonage import VonageProvider

    def broken(self, response):
        raise RuntimeError("adapter bug")

    monkeypatch.setattr(VonageProvider, "classify", broken)
    with FaultServer("ok") as server:
        campaign = setup_campaign(cli, home, tmp_path, server.url)
        result = cli("send", campaign, "--yes", "--quiet")
    assert result.exit_code == 1
    assert "RuntimeError" in result.stderr
    counts = states(home)
    assert "sending" not in counts and counts.get("unknown", 0) >= 1  # its request went out
    assert sum(counts.values()) == 4
    assert held(cli) == 0


def test_a_journal_write_failure_leaves_no_row_sending_and_no_hold(cli, home, tmp_path, secret, monkeypatch):
    from bulksend.journal import AttemptJournal

    def full(self, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(AttemptJournal, "record", full)
    with FaultServer("ok") as server:
        campaign = setup_campaign(cli, home, tmp_path, server.url)
        result = cli("send", campaign, "--yes", "--quiet")
        assert server.requests == 0  # nothing goes out without its attempt record
    assert result.exit_code == 1
    assert "cannot write the attempt journal" in result.stderr
    assert states(home) == {"queued": 4}
    assert held(cli) == 0


def test_a_ledger_error_while_recording_leaves_no_row_sending_and_no_hold(cli, home, tmp_path, secret, monkeypatch):
    from bulksend.errors import LedgerError
    from bulksend.ledger import SqliteLedger

    original = SqliteLedger.mark_sent_many
    failing = {"m-2"}  # the second message the server accepts cannot be recorded as sent

    def mark_sent_many(self, accepted):  # the engine records accepted rows a batch at a time
        if any(provider_id in failing for _, provider_id in accepted):
            raise LedgerError("database or disk is full")
        return original(self, accepted)

    monkeypatch.setattr(SqliteLedger, "mark_sent_many", mark_sent_many)
    with FaultServer("ok") as server:
        campaign = setup_campaign(cli, home, tmp_path, server.url, concurrency=1)
        result = cli("send", campaign, "--yes", "--quiet")
        accepted = server.requests
    assert result.exit_code == 1
    assert "database or disk is full" in result.stderr
    counts = states(home)
    assert "sending" not in counts
    assert counts.get("unknown") == 1  # accepted, but its debit could not be recorded: reconcile, never resend
    assert counts.get("sent", 0) == accepted - 1
    assert held(cli) == 0
