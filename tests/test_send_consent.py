"""The brief's first two promises through `send` itself: only people who opted in are messaged, each once."""

from __future__ import annotations

import json
from pathlib import Path

from sendhelpers import states

ROWS = """\
phone,country,consent,name
07400 100001,GB,yes,Ann
+44 7400 100002,,no,Bob
07400 100003,GB,yes,Cy
0044 7400 100003,GB,yes,Cy again
07400 100004,GB,yes,Di
+447400100004,,unsubscribed,Di elsewhere
07400 100005,GB,,Ed
07400 100006,GB,maybe,Flo
07400 100007,GB,2026-03-01,Gus
07400 100008,GB,yes,Hal
"""


def test_send_messages_only_the_consented_once_each(cli, home, tmp_path: Path):
    (tmp_path / "list.csv").write_text(ROWS, encoding="utf-8")
    (tmp_path / "c.toml").write_text('name = "consent"\nrecipients = "list.csv"\nmessage = "Hi {name}"\npurpose = "transactional"\n')
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    assert cli("optout", "add", "+447400100008", "--reason", "asked by phone").exit_code == 0

    result = cli("send", tmp_path / "c.toml", "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    lines = [json.loads(line) for line in (home / "outbox" / "consent.jsonl").read_text().splitlines()]
    # Ann, Cy (once, though listed twice in two formats) and Gus (a consent date). Not: Bob (no),
    # Di (opted out on another row, in another format), Ed (empty), Flo (unrecognized), Hal (opt-out list).
    assert sorted((line["to"], line["text"]) for line in lines) == [
        ("+447400100001", "Hi Ann"),
        ("+447400100003", "Hi Cy"),
        ("+447400100007", "Hi Gus"),
    ]
    assert doc["counts"] == states({"sent": 3}) and doc["credits_debited"] == 3

    again = cli("send", tmp_path / "c.toml", "--yes", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["counts"] == states({"sent": 3})
    assert len((home / "outbox" / "consent.jsonl").read_text().splitlines()) == 3  # the rerun sent nothing
    assert cli("credits", "audit").exit_code == 0


def test_smart_encoding_sends_exactly_what_was_priced(cli, home, tmp_path: Path):
    (tmp_path / "list.csv").write_text("phone,consent,name\n+447400100001,yes,Ann\n+447400100002,yes,Zoë\n")
    message = "It’s “{name}” — " + "a" * 60  # 2 UCS-2 segments; GSM-7 after smart encoding, unless ë stays
    (tmp_path / "c.toml").write_text(
        f'name = "smart"\nrecipients = "list.csv"\nmessage = "{message}"\nsmart_encoding = true\npurpose = "transactional"\n'
    )
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    doc = json.loads(cli("send", tmp_path / "c.toml", "--yes", "--json").stdout)
    lines = {json.loads(line)["to"]: json.loads(line) for line in (home / "outbox" / "smart.jsonl").read_text().splitlines()}
    assert lines["+447400100001"]["text"] == "It's \"Ann\" - " + "a" * 60  # look-alikes replaced: 1 segment
    assert lines["+447400100002"]["text"] == "It’s “Zoë” — " + "a" * 60  # ë is not GSM: left as written, 2
    assert doc["credits_debited"] == 1 + 2
