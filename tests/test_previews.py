"""The message preview: estimate and the send confirmation show what people will read, before anything is sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bulksend.csvfile import CsvFile

MESSAGE = "Hi {first_name}, spring sale today, text STOP to opt out"
LIST = (
    "phone,consent,first_name\n"
    "07400000001,yes,Ann\n"  # row 1: the first accepted row
    "0740000000x,yes,Bad\n"  # row 2: rejected, never previewed
    "07400000002,yes,Łucja\n"  # row 3: the first UCS-2 row (Ł is not GSM-7), one segment
    + "07400000003,yes," + "Maximilian" * 16 + "\n"  # row 4: the longest, GSM-7, 2 segments
    + "07400000004,yes,Zoë\n"  # row 5: UCS-2 again: only the first is shown
)
EXAMPLES = [
    {"row": 1, "e164": "+447400000001", "text": "Hi Ann, spring sale today, text STOP to opt out", "encoding": "GSM-7", "segments": 1,
     "credits": 1, "why": ["first"]},
    {"row": 4, "e164": "+447400000003", "text": "Hi " + "Maximilian" * 16 + ", spring sale today, text STOP to opt out",
     "encoding": "GSM-7", "segments": 2, "credits": 2, "why": ["longest"]},
    {"row": 3, "e164": "+447400000002", "text": "Hi Łucja, spring sale today, text STOP to opt out", "encoding": "UCS-2", "segments": 1,
     "credits": 1, "why": ["ucs2"]},
]
SHOWN = [
    "Messages as they will be read:",
    "  row 1 (first) · +447400000001 · GSM-7 · 1 segment · 1 credit",
    "    Hi Ann, spring sale today, text STOP to opt out",
    "  row 4 (longest) · +447400000003 · GSM-7 · 2 segments · 2 credits",
    "    Hi " + "Maximilian" * 16 + ", spring sale today, text STOP to opt out",
    "  row 3 (UCS-2) · +447400000002 · UCS-2 · 1 segment · 1 credit",
    "    Hi Łucja, spring sale today, text STOP to opt out",
]


@pytest.fixture
def recipients(tmp_path: Path) -> Path:
    path = tmp_path / "list.csv"
    path.write_text(LIST, encoding="utf-8")
    return path


def block(text: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(SHOWN[0])
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return lines[start:end]


def test_estimate_shows_the_first_the_longest_and_one_ucs2_message(cli, recipients):
    result = cli("estimate", recipients, "--region", "GB", "-m", MESSAGE)
    assert result.exit_code == 0
    assert block(result.stdout) == SHOWN


def test_estimate_json_carries_the_examples(cli, recipients):
    doc = json.loads(cli("estimate", recipients, "--region", "GB", "-m", MESSAGE, "--json").stdout)
    assert doc["examples"] == EXAMPLES


def test_a_row_that_is_first_and_longest_is_shown_once(cli, tmp_path):
    path = tmp_path / "two.csv"
    path.write_text("phone,consent,first_name\n07400000001,yes,Zoë\n07400000002,yes,Al\n", encoding="utf-8")
    doc = json.loads(cli("estimate", path, "--region", "GB", "-m", "Hi {first_name}", "--json").stdout)
    assert [(e["row"], e["why"]) for e in doc["examples"]] == [(1, ["first", "longest", "ucs2"])]
    human = cli("estimate", path, "--region", "GB", "-m", "Hi {first_name}").stdout
    assert "  row 1 (first, longest, UCS-2) · +447400000001 · UCS-2 · 1 segment · 1 credit\n    Hi Zoë\n" in human


def test_whatsapp_previews_the_first_message_only(cli, recipients):
    doc = json.loads(cli("estimate", recipients, "--region", "GB", "-m", MESSAGE, "--channel", "whatsapp",
                         "--json").stdout)
    assert doc["examples"] == [{"row": 1, "e164": "+447400000001", "text": "Hi Ann, spring sale today, text STOP to opt out",
                                "encoding": "whatsapp", "segments": 1, "credits": 1, "why": ["first"]}]


def test_a_multiline_message_keeps_its_lines_indented(cli, tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("phone,consent\n07400000001,yes\n")
    human = cli("estimate", path, "--region", "GB", "-m", "Hello\nBye").stdout
    assert "  row 1 (first, longest) · +447400000001 · GSM-7 · 1 segment · 1 credit\n    Hello\n    Bye\n" in human


def test_the_send_confirmation_shows_them_before_asking(cli, recipients, monkeypatch):
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    monkeypatch.setattr("bulksend.output.is_terminal", lambda: True)
    declined = cli("send", recipients, "--region", "GB", "-m", MESSAGE, input="n\n")
    assert declined.exit_code == 0
    lines = declined.stderr.splitlines()
    start = lines.index(SHOWN[0])
    assert lines[start - 1] == "list: 4 recipients · 5 segments · 5 credits (sms via outbox); 1 rows rejected (invalid_number 1)"
    assert lines[start:start + len(SHOWN) + 1] == [*SHOWN, "Balance: 1,000 sms credits available; 995 after this campaign."]
    assert declined.stderr.index(SHOWN[-1]) < declined.stderr.index("Send 4 messages now?")


def test_send_json_and_dry_run_json_carry_the_examples_that_are_sent(cli, home, recipients):
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    dry = json.loads(cli("send", recipients, "--region", "GB", "-m", MESSAGE, "--dry-run", "--json").stdout)
    assert dry["examples"] == EXAMPLES
    sent = json.loads(cli("send", recipients, "--region", "GB", "-m", MESSAGE, "--yes", "--json").stdout)
    assert sent["examples"] == EXAMPLES
    outbox = {json.loads(line)["to"]: json.loads(line)["text"] for line in (home / "outbox" / "list.jsonl").open()}
    assert all(outbox[e["e164"]] == e["text"] for e in EXAMPLES)
    again = json.loads(cli("send", recipients, "--region", "GB", "-m", MESSAGE, "--yes", "--json").stdout)
    assert again["examples"] == []  # a finished (or resumed) campaign does not read its list again


def test_smart_encoding_previews_the_text_as_sent(cli, home, tmp_path):
    path = tmp_path / "quotes.csv"
    path.write_text("phone,consent\n07400000001,yes\n")
    assert cli("credits", "topup", 1000, "--channel", "sms").exit_code == 0
    args = ("send", path, "--region", "GB", "-m", "It’s “on”", "--smart-encoding", "--purpose", "transactional", "--yes", "--json")
    doc = json.loads(cli(*args).stdout)
    assert [(e["text"], e["encoding"]) for e in doc["examples"]] == [('It\'s "on"', "GSM-7")]
    assert json.loads((home / "outbox" / "quotes.jsonl").read_text())["text"] == 'It\'s "on"'


def test_previews_and_reject_examples_share_one_second_pass(cli, recipients, monkeypatch):
    reads = []
    original = CsvFile.chunks

    def counting(self, *args, **kwargs):
        reads.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CsvFile, "chunks", counting)
    result = cli("estimate", recipients, "--region", "GB", "-m", MESSAGE)
    assert result.exit_code == 0 and "invalid_number" in result.stdout and SHOWN[0] in result.stdout
    assert len(reads) == 2  # pass one, then one pass for both the reject examples and the previews
