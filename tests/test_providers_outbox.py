"""The outbox adapter: the file it writes, where, crash tolerance, lookup for reconciliation, check."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pytest

from bulksend.config import Config
from bulksend.errors import ConfigError
from bulksend.profiles import open_provider
from bulksend.providers.base import Delivery, LookupResult, OutcomeKind, Profile
from bulksend.providers.outbox import OutboxProvider

NOW = datetime.now(timezone.utc)


def outbox(home: Path, **settings) -> OutboxProvider:
    return OutboxProvider(Profile("outbox", "outbox", settings), None, home)


def delivery(n: int = 1, campaign: str = "spring-sale", **fields) -> Delivery:
    values = {"to": f"+4477009{n:05d}", "text": f"Hello {n} — 20% off", "channel": "sms"}
    values.update(fields)
    return Delivery(transmission_id=n, campaign=campaign, **values)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_each_message_is_one_json_line_in_the_campaign_file(tmp_path):
    provider = outbox(tmp_path)
    first = provider.send(delivery(1))
    second = provider.send(delivery(2, channel="whatsapp", params={"content_sid": "HX1", "variables": {"1": "Zoë"}}))
    provider.close()
    assert (first.kind, first.provider_id) == (OutcomeKind.ACCEPTED, "outbox-1")
    assert second.provider_id == "outbox-2"
    written = lines(tmp_path / "outbox" / "spring-sale.jsonl")
    assert [{k: v for k, v in line.items() if k != "at"} for line in written] == [
        {
            "transmission_id": 1,
            "campaign": "spring-sale",
            "to": "+447700900001",
            "channel": "sms",
            "encoding": "GSM-7",
            "text": "Hello 1 — 20% off",
            "params": {},
        },
        {
            "transmission_id": 2,
            "campaign": "spring-sale",
            "to": "+447700900002",
            "channel": "whatsapp",
            "encoding": "GSM-7",
            "text": "Hello 2 — 20% off",
            "params": {"content_sid": "HX1", "variables": {"1": "Zoë"}},
        },
    ]
    assert datetime.fromisoformat(written[0]["at"]).tzinfo is not None


def test_the_built_in_profile_needs_no_configuration(tmp_path):
    provider = open_provider(Config(home=tmp_path), "outbox")
    assert isinstance(provider, OutboxProvider) and provider.secret is None
    provider.send(delivery(1, campaign="demo"))
    provider.close()
    assert len(lines(tmp_path / "outbox" / "demo.jsonl")) == 1


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("rehearsals", "rehearsals/spring-sale.jsonl"),
        ("all-campaigns.jsonl", "all-campaigns.jsonl"),
        ("runs/{campaign}/messages.jsonl", "runs/spring-sale/messages.jsonl"),
    ],
)
def test_the_path_setting_is_relative_to_the_home(tmp_path, path, expected):
    provider = outbox(tmp_path, path=path)
    provider.send(delivery(1))
    provider.close()
    assert len(lines(tmp_path / expected)) == 1


def test_an_absolute_path_is_used_as_it_is(tmp_path):
    target = tmp_path / "elsewhere"
    provider = outbox(tmp_path / "home", path=str(target))
    provider.send(delivery(1))
    provider.close()
    assert (target / "spring-sale.jsonl").exists()


def test_a_campaign_name_cannot_escape_the_outbox_directory(tmp_path):
    provider = outbox(tmp_path)
    assert provider.path_for("../../etc/passwd").parent == tmp_path / "outbox"
    assert provider.path_for("spring sale/2026").name == "spring_sale_2026.jsonl"
    assert provider.path_for("..").name == "_.jsonl"


def test_lines_from_many_threads_are_never_interleaved(tmp_path):
    provider = outbox(tmp_path)
    long_text = "x" * 5000  # longer than any stdio buffer: one write per line still
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(provider.send, [delivery(n, text=long_text) for n in range(1, 201)]))
    provider.close()
    assert {o.kind for o in outcomes} == {OutcomeKind.ACCEPTED}
    written = lines(tmp_path / "outbox" / "spring-sale.jsonl")
    assert sorted(line["transmission_id"] for line in written) == list(range(1, 201))


def test_lookup_tells_what_was_written_before_a_crash(tmp_path):
    before_crash = outbox(tmp_path)
    before_crash.send(delivery(1))
    before_crash.send(delivery(2, campaign="other"))
    before_crash.close()
    after_restart = outbox(tmp_path)
    assert after_restart.lookup(delivery(1), NOW) == (LookupResult.FOUND, "outbox-1")
    assert after_restart.lookup(delivery(2), NOW) == (LookupResult.NOT_FOUND, None), "another campaign's file"
    assert after_restart.lookup(delivery(3), NOW) == (LookupResult.NOT_FOUND, None)
    after_restart.send(delivery(3))
    assert after_restart.lookup(delivery(3), NOW) == (LookupResult.FOUND, "outbox-3"), "new lines are read too"


def test_lookup_before_anything_was_written_is_not_found(tmp_path):
    assert outbox(tmp_path).lookup(delivery(1), NOW) == (LookupResult.NOT_FOUND, None)


def test_campaigns_sharing_one_file_are_told_apart(tmp_path):
    provider = outbox(tmp_path, path="all.jsonl")
    provider.send(delivery(1, campaign="a"))
    assert provider.lookup(delivery(1, campaign="a"), NOW)[0] is LookupResult.FOUND
    assert provider.lookup(delivery(1, campaign="b"), NOW)[0] is LookupResult.NOT_FOUND


def test_a_line_cut_short_by_a_crash_is_ended_before_the_next_one(tmp_path):
    path = tmp_path / "outbox" / "spring-sale.jsonl"
    path.parent.mkdir(parents=True)
    complete = json.dumps({"transmission_id": 1, "campaign": "spring-sale"})
    path.write_text(complete + '\n{"transmission_id": 2, "camp', encoding="utf-8")
    provider = outbox(tmp_path)
    assert provider.lookup(delivery(1), NOW)[0] is LookupResult.FOUND
    assert provider.lookup(delivery(2), NOW)[0] is LookupResult.NOT_FOUND, "half a line proves nothing"
    provider.send(delivery(3))
    raw = path.read_text(encoding="utf-8").splitlines()
    assert raw[1] == '{"transmission_id": 2, "camp'
    assert json.loads(raw[2])["transmission_id"] == 3
    assert provider.lookup(delivery(3), NOW)[0] is LookupResult.FOUND


def test_a_write_that_fails_stops_the_run(tmp_path):
    (tmp_path / "outbox").write_text("a file where the directory should be", encoding="utf-8")
    outcome = outbox(tmp_path).send(delivery(1))
    assert (outcome.kind, outcome.code) == (OutcomeKind.FATAL, "outbox_write_failed")
    assert "cannot write" in outcome.text


def test_check_says_where_it_writes(tmp_path):
    expected = f"outbox: writes each message as a JSON line to {tmp_path}/outbox/<campaign>.jsonl"
    assert outbox(tmp_path).check() == expected
    assert outbox(tmp_path, path="all.jsonl").check().endswith(f"{tmp_path}/all.jsonl")
    assert not (tmp_path / "outbox").exists(), "a check writes nothing"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_check_refuses_a_directory_it_cannot_write(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="cannot write"):
            outbox(tmp_path, path=str(locked / "out")).check()
    finally:
        locked.chmod(0o700)


def test_provider_check_outbox_command(home, cli):
    result = cli("provider", "check", "outbox")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"outbox: writes each message as a JSON line to {home}/outbox/<campaign>.jsonl\n"
    document = json.loads(cli("provider", "check", "outbox", "--json").stdout)
    assert (document["profile"], document["type"], document["ok"]) == ("outbox", "outbox", True)
