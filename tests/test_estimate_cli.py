"""`bulksend estimate` on real files: totals, encodings, segments, pricing, details and bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding)
    return path


@pytest.fixture
def people(tmp_path) -> Path:
    return write(
        tmp_path / "people.csv",
        "phone,country,consent,first_name,code\n"
        "07400 123456,GB,yes,Ann,A1\n"
        "+33 6 12 34 56 78,,yes,Zoë,B2\n"  # ë is not GSM: UCS-2
        "+1 415 555 2671,,yes,,C3\n"  # empty first_name: the default applies
        "07400 123457,GB,yes,Bob,\n",  # empty code: missing_field
    )


def estimate_json(cli, *args) -> dict:
    result = cli("estimate", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_totals_by_encoding_and_reason(cli, people):
    doc = estimate_json(cli, people, "--message", "Hi {first_name|there}, code {code}")
    assert doc["recipients"] == 3 and doc["messages"] == 3
    assert doc["segments"] == 3 and doc["credits"] == 3
    assert doc["channel"] == "sms"
    assert doc["encodings"] == {"GSM-7": 2, "UCS-2": 1}
    assert doc["rejected"] == 1 and doc["reasons"] == {"missing_field": 1}


@pytest.mark.parametrize(
    ("length", "segments"), [(160, 1), (161, 2), (306, 2), (307, 3), (153 * 5, 5), (153 * 5 + 1, 6)]
)
def test_gsm_segment_boundaries_through_the_cli(cli, tmp_path, length, segments):
    path = write(tmp_path / "r.csv", "phone,consent\n+447400123456,yes\n")
    doc = estimate_json(cli, path, "--message", "a" * length, "--purpose", "transactional")  # no footer
    assert (doc["segments"], doc["encodings"]) == (segments, {"GSM-7": 1, "UCS-2": 0})


@pytest.mark.parametrize(("length", "segments"), [(70, 1), (71, 2), (134, 2), (135, 3)])
def test_ucs2_segment_boundaries_through_the_cli(cli, tmp_path, length, segments):
    path = write(tmp_path / "r.csv", "phone,consent\n+447400123456,yes\n")
    doc = estimate_json(cli, path, "--message", "ж" * length, "--purpose", "transactional")  # no footer
    assert (doc["segments"], doc["encodings"]) == (segments, {"GSM-7": 0, "UCS-2": 1})


def test_too_long_uses_max_segments(cli, people):
    doc = estimate_json(cli, people, "--message", "x" * 200 + "{code}", "--max-segments", "1")
    assert doc["recipients"] == 0
    assert doc["reasons"] == {"too_long": 3, "missing_field": 1}


def test_rate_card_prices_by_country_with_wildcard(cli, people, tmp_path):
    rates = write(tmp_path / "rates.csv", "country,channel,credits\n*,sms,5\nGB,sms,1\nUS,sms,2\n")
    details = tmp_path / "details.csv"
    doc = estimate_json(cli, people, "--message", "Hi {first_name|there} {code}", "--rates", rates, "--details", details)
    assert doc["credits"] == 1 + 5 + 2
    rows = list(csv.DictReader(details.open(encoding="utf-8")))
    assert rows == [
        {"row": "1", "e164": "+447400123456", "country": "GB", "encoding": "GSM-7", "segments": "1", "credits": "1"},
        {"row": "2", "e164": "+33612345678", "country": "FR", "encoding": "UCS-2", "segments": "1", "credits": "5"},
        {"row": "3", "e164": "+14155552671", "country": "US", "encoding": "GSM-7", "segments": "1", "credits": "2"},
    ]


def test_whatsapp_is_one_unit_per_message(cli, people):
    doc = estimate_json(cli, people, "--message", "Hi {first_name|there} " + "ж" * 500 + "{code|}", "--channel", "whatsapp")
    assert (doc["recipients"], doc["segments"], doc["credits"], doc["encodings"]) == (4, 4, 4, {})


def test_smart_encoding_savings_are_shown_and_applied(cli, tmp_path):
    path = write(tmp_path / "r.csv", "phone,consent\n+447400123456,yes\n+447400123457,yes\n")
    message = "It’s “spring” — " + "a" * 60  # GSM after replacing the curly quotes and the dash
    off = estimate_json(cli, path, "--message", message)
    assert off["encodings"] == {"GSM-7": 0, "UCS-2": 2} and off["segments"] == 4
    assert off["smart_encoding"] == {"enabled": False, "would_save_segments": 2, "would_save_credits": 2}
    on = estimate_json(cli, path, "--message", message, "--smart-encoding")
    assert on["encodings"] == {"GSM-7": 2, "UCS-2": 0} and on["segments"] == 2
    assert on["smart_encoding"] == {"enabled": True, "segments_saved": 2, "credits_saved": 2}
    human = cli("estimate", path, "--message", message)
    assert "--smart-encoding would save 2 segments (2 credits)" in human.stdout


def test_unknown_merge_field_fails_before_reading_rows(cli, people):
    result = cli("estimate", people, "--message", "Hi {firstname}")
    assert result.exit_code == 2
    assert result.stdout == ""
    err = " ".join(result.stderr.split())
    assert "firstname" in err and "phone, country, consent, first_name, code" in err


def test_template_file(cli, people, tmp_path):
    template = write(tmp_path / "t.txt", "Hello {FIRST_NAME|friend}!\n")  # the editor's final newline is not sent
    doc = estimate_json(cli, people, "--template", template)
    assert doc["recipients"] == 4 and doc["segments"] == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--template", "missing.txt"], "missing.txt: no such template file."),
        ([], "give the message with either --message TEXT or --template FILE (exactly one)."),
        (["--message", "a", "--template", "t.txt"], "exactly one"),
        (["--message", "{code"], "--message"),
        (["--message", "hi", "--channel", "fax"], "--channel 'fax': choose sms or whatsapp."),
    ],
)
def test_bad_message_options_exit_2(cli, people, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = cli("estimate", people, *args)
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_bad_rate_card_row_names_file_and_row(cli, people, tmp_path):
    rates = write(tmp_path / "rates.csv", "country,channel,credits\n*,sms,1\nGB,sms,cheap\n")
    result = cli("estimate", people, "--message", "hi", "--rates", rates)
    assert result.exit_code == 2
    err = " ".join(result.stderr.split())
    assert str(rates) in err and "row 2" in err and "credits" in err


def test_rate_card_without_a_matching_row(cli, people, tmp_path):
    rates = write(tmp_path / "rates.csv", "country,channel,credits\nGB,sms,1\n")
    result = cli("estimate", people, "--message", "hi", "--rates", rates)
    assert result.exit_code == 2
    assert "FR" in result.stderr and "sms" in result.stderr


def test_example_campaign(cli):
    doc = estimate_json(
        cli, EXAMPLES / "recipients.csv", "--region", "GB", "--template", EXAMPLES / "spring.txt",
        "--rates", EXAMPLES / "rates.csv",
    )
    assert (doc["recipients"], doc["segments"], doc["credits"]) == (32, 37, 59)  # "ja" and "oui" rows are consent
    assert doc["encodings"] == {"GSM-7": 27, "UCS-2": 5}
    assert doc["reasons"]["missing_field"] == 1


def test_human_estimate_shows_totals_split_and_costliest(cli, people):
    result = cli("estimate", people, "--message", "Hi {first_name|there} {code}")
    assert result.exit_code == 0
    out = " ".join(result.stdout.split())
    assert "3 recipients · 3 sms messages · 3 segments · 3 credits" in out
    assert "Messages by encoding and length" in out and "Most expensive rows" in out
    assert "row 4 missing_field '07400 123457': merge field {code} is empty and has no default" in out
