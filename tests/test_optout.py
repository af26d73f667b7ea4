"""`optout add | remove | list | import` and load_suppressed: numbers in E.164, with when, why and where."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bulksend.config import Config
from bulksend.ledger import SqliteLedger
from bulksend.optouts import normalize, read_numbers
from bulksend.suppression import load_suppressed


def test_add_normalizes_and_reports_each_number(cli, home):
    result = cli("optout", "add", "+44 7911 123456", "07911123457", "--region", "GB", "--reason", "replied STOP")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "+447911123456 added\n+447911123457 added\n"
    result = cli("optout", "add", "+447911123456", "--json")
    assert json.loads(result.stdout) == {"added": [], "already_present": ["+447911123456"]}
    assert load_suppressed(Config(home=home)) == {"+447911123456", "+447911123457"}


def test_add_uses_the_config_region(cli, home):
    (home / "config.toml").write_text('[defaults]\nregion = "us"\n')
    assert cli("optout", "add", "(415) 555-2671").stdout == "+14155552671 added\n"


def test_an_invalid_number_refuses_the_whole_add(cli, home):
    result = cli("optout", "add", "+447911123456", "12345")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: not a valid phone number: 12345. Nothing added.\n")
    assert load_suppressed(Config(home=home)) == frozenset()


def test_list_keeps_when_why_and_from_where(cli, home):
    cli("optout", "add", "+447911123456", "--reason", "asked by email")
    with SqliteLedger.open(home / "ledger.db") as ledger:
        ledger.add_optouts(["+14155552671"], "STOP", "provider")
    entries = json.loads(cli("optout", "list", "--json").stdout)["optouts"]
    assert [(e["e164"], e["reason"], e["source"]) for e in entries] == [
        ("+14155552671", "STOP", "provider"),
        ("+447911123456", "asked by email", "manual"),
    ]
    assert all(e["added_at"].endswith("Z") for e in entries)
    lines = cli("optout", "list").stdout.splitlines()
    assert lines[0].startswith("+14155552671  ") and lines[0].endswith("  provider  STOP")
    assert lines[1].endswith("  manual  asked by email")


def test_list_of_a_fresh_home(cli, home):
    result = cli("optout", "list")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "The opt-out list is empty.\n")
    assert not (home / "ledger.db").exists()


def test_remove(cli, home):
    cli("optout", "add", "+447911123456")
    result = cli("optout", "remove", "+447911123456", "+14155552671")
    assert result.stdout == "+447911123456 removed\n+14155552671 was not on the list\n"
    assert json.loads(cli("optout", "remove", "+447911123456", "--json").stdout) == {
        "removed": [],
        "not_present": ["+447911123456"],
    }
    assert load_suppressed(Config(home=home)) == frozenset()


def test_import_a_csv_with_a_phone_column(cli, home, tmp_path):
    cli("optout", "add", "+447911123456")
    path = tmp_path / "unsubscribed.csv"
    path.write_text("name;Mobile;note\nAda;07911 123456;x\nBob;+1 415 555 2671;\nCy;not a number;\nDi;;\n")
    result = cli("optout", "import", str(path), "--region", "GB")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "1 added, 1 already present, 1 invalid\n"
    assert result.stderr == "invalid number skipped: not a number\n"
    [entry] = [e for e in json.loads(cli("optout", "list", "--json").stdout)["optouts"] if e["e164"] == "+14155552671"]
    assert entry["source"] == "import"


def test_import_a_plain_list_as_json(cli, home, tmp_path):
    path = tmp_path / "stop.txt"
    path.write_bytes("\ufeffOpt-outs\r\n+33612345678\r\n\r\n+4915112345678\r\n+4915112345678\r\nwhatsapp:+14155552671\r\n".encode())
    result = cli("optout", "import", str(path), "--json", "--reason", "old CRM")
    assert json.loads(result.stdout) == {"added": 3, "already_present": 0, "invalid": 0, "invalid_values": []}
    assert load_suppressed(Config(home=home)) == {"+33612345678", "+4915112345678", "+14155552671"}


def test_import_a_csv_without_a_phone_column_exits_2(cli, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("name,email\nAda,ada@example.com\n")
    result = cli("optout", "import", str(path))
    assert result.exit_code == 2
    assert "no phone column" in result.stderr


def test_import_an_unreadable_file_exits_2(cli, tmp_path):
    result = cli("optout", "import", str(tmp_path / "missing.csv"))
    assert result.exit_code == 2
    assert "cannot be read" in result.stderr


def test_import_of_a_binary_file_exits_2_and_adds_nothing(cli, home, tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\n+447911123456\n")
    result = cli("optout", "import", str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {path}: is not a text file (line 1 contains a NUL byte).")
    assert "added" not in result.stdout
    assert json.loads(cli("optout", "list", "--json").stdout)["optouts"] == []


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le"])  # with a BOM, and Excel's "Unicode text" without
def test_import_reads_utf16(tmp_path, encoding):
    path = tmp_path / "export.txt"
    path.write_bytes("Phone\tName\n+447911123456\tJosé\n".encode(encoding))
    assert read_numbers(path) == ["+447911123456"]


def test_import_reads_cp1252(tmp_path):
    path = tmp_path / "legacy.csv"
    path.write_bytes("Name,Phone\nJosé Müller,+447911123456\n".encode("cp1252"))
    assert read_numbers(path) == ["+447911123456"]


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+44 7911 123456", None, "+447911123456"),
        ("07911 123456", "gb", "+447911123456"),
        ("07911 123456", None, None),
        ("0044 7911 123456", "GB", "+447911123456"),
        ("+44 7911", None, None),
        ("", "GB", None),
    ],
)
def test_normalize(raw, region, expected):
    assert normalize(raw, region) == expected


def test_load_suppressed_never_creates_a_ledger(tmp_path: Path):
    home = tmp_path / "home"
    assert load_suppressed(Config(home=home)) == frozenset()
    assert not home.exists()


def test_validate_rejects_opted_out_numbers_as_suppressed(cli, tmp_path):
    cli("optout", "add", "+447911123456")
    path = tmp_path / "recipients.csv"
    path.write_text("phone,consent\n+447911123456,yes\n+447911123457,yes\n")
    result = cli("validate", str(path), "--json")
    document = json.loads(result.stdout)
    assert (document["valid"], document["rejected"], document["reasons"]) == (1, 1, {"suppressed": 1})
