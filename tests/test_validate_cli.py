"""`bulksend validate` on real files: encodings, delimiters, columns, every reason, output files, bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

HEADER = ["name", "Phone", "country", "Consent"]
ROWS = [
    ["Zoë", "07400 123456", "GB", "yes"],  # 1 accepted
    ["Ann", "+1 415 555 2671", "", "y"],  # 2 accepted (international, no country)
    ["Bob", "020 7946 0018", "GB", "yes"],  # 3 not_mobile (fixed line)
    ["Cy", "12", "GB", "yes"],  # 4 invalid_number
    ["Di", "+447400123457", "", ""],  # 5 no_consent (empty)
    ["Ed", "07400 123458", "GB", "perhaps"],  # 6 bad_consent_value
    ["Flo", "+44 7400 123456", "", "yes"],  # 7 duplicate of row 1
    ["Gus", "07400 123459", "GB", "yes"],  # 8 no_consent: opted out on row 9
    ["Gus", "+447400123459", "", "unsubscribed"],  # 9 no_consent
]


def write_csv(path: Path, rows, *, header=HEADER, delimiter=",", encoding="utf-8", bom=False) -> Path:
    lines = [delimiter.join(header)] + [delimiter.join(r) for r in rows]
    text = "\r\n".join(lines) + "\r\n"
    data = text.encode(encoding)
    if bom:
        data = "\ufeff".encode(encoding) + data if encoding != "utf-8" else b"\xef\xbb\xbf" + data
    path.write_bytes(data)
    return path


def run_json(cli, *args):
    result = cli("validate", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout), result


EXPECTED_REASONS = {"invalid_number": 1, "not_mobile": 1, "no_consent": 3, "bad_consent_value": 1, "duplicate": 1}


def test_every_reason_on_a_small_file(cli, tmp_path):
    doc, _ = run_json(cli, write_csv(tmp_path / "r.csv", ROWS))
    assert doc["rows"] == 9
    assert doc["valid"] == 2
    assert doc["rejected"] == 7
    assert doc["reasons"] == EXPECTED_REASONS
    assert doc["countries"] == {"GB": 1, "US": 1}
    assert doc["encoding"] == "UTF-8"
    assert doc["delimiter"] == ","
    assert doc["phone_column"] == "Phone" and doc["consent_column"] == "Consent"


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
@pytest.mark.parametrize(("encoding", "bom", "label"), [("utf-8", False, "UTF-8"), ("utf-8", True, "UTF-8"), ("utf-16", False, "UTF-16"), ("cp1252", False, "cp1252")])
def test_every_encoding_and_delimiter_gives_the_same_verdicts(cli, tmp_path, delimiter, encoding, bom, label):
    path = write_csv(tmp_path / "r.csv", ROWS, delimiter=delimiter, encoding=encoding, bom=bom)
    doc, result = run_json(cli, path)
    assert (doc["valid"], doc["reasons"]) == (2, EXPECTED_REASONS)
    assert doc["delimiter"] == delimiter
    assert doc["encoding"] == label
    if encoding == "cp1252":
        assert doc["encoding_fallback"] is True
        assert "is not valid UTF-8; read it as cp1252" in result.stderr
    else:
        assert "cp1252" not in result.stderr


def test_encoding_and_delimiter_can_be_forced(cli, tmp_path):
    path = write_csv(tmp_path / "r.csv", ROWS, delimiter=";", encoding="latin-1")
    doc, result = run_json(cli, path, "--encoding", "latin-1", "--delimiter", ";")
    assert doc["encoding"] == "iso8859-1" and doc["delimiter"] == ";"
    assert "cp1252" not in result.stderr


def test_unknown_encoding_is_a_usage_error(cli, tmp_path):
    result = cli("validate", write_csv(tmp_path / "r.csv", ROWS), "--encoding", "klingon")
    assert result.exit_code == 2
    assert "--encoding 'klingon' is not an encoding Python knows." in result.stderr


def test_region_applies_to_national_numbers_without_a_country(cli, tmp_path):
    path = write_csv(tmp_path / "r.csv", [["a", "06 12 34 56 78", "", "yes"], ["b", "07400 123456", "GB", "yes"]])
    doc, _ = run_json(cli, path)
    assert doc["reasons"] == {"invalid_number": 1}  # no region for row 1
    doc, _ = run_json(cli, path, "--region", "FR")
    assert doc["valid"] == 2 and doc["countries"] == {"FR": 1, "GB": 1}  # row 2's country column wins over --region


def test_region_from_config_default(cli, home, tmp_path):
    (home / "config.toml").write_text('[defaults]\nregion = "fr"\n')
    doc, _ = run_json(cli, write_csv(tmp_path / "r.csv", [["a", "06 12 34 56 78", "", "yes"]]))
    assert doc["valid"] == 1 and doc["countries"] == {"FR": 1}


def test_countries_filter_and_allow_landline(cli, tmp_path):
    path = write_csv(tmp_path / "r.csv", ROWS)
    doc, _ = run_json(cli, path, "--countries", "gb")
    assert doc["reasons"]["country_not_allowed"] == 1  # the US number
    doc, _ = run_json(cli, path, "--allow-landline")
    assert "not_mobile" not in doc["reasons"] and doc["valid"] == 3


def test_bad_region_flags_are_usage_errors(cli, tmp_path):
    path = write_csv(tmp_path / "r.csv", ROWS)
    result = cli("validate", path, "--region", "UK")
    assert result.exit_code == 2 and "--region 'UK' is not an ISO 3166 alpha-2 region code" in result.stderr
    result = cli("validate", path, "--countries", "GB,XX")
    assert result.exit_code == 2 and "--countries 'XX'" in result.stderr


def test_opt_out_anywhere_wins_across_formats(cli, tmp_path):
    rows = [
        ["a", "+33 6 12 34 56 78", "", "yes"],
        ["b", "0612345678", "FR", "yes"],
        ["c", "06.12.34.56.78", "FR", "Opted-Out"],
    ]
    doc, _ = run_json(cli, write_csv(tmp_path / "r.csv", rows))
    assert doc["valid"] == 0 and doc["reasons"] == {"no_consent": 3}


def test_duplicate_is_a_later_row_of_an_accepted_number_only(cli, tmp_path):
    rows = [
        ["a", "+447400123456", "", "maybe"],  # bad consent: not accepted, so not the 'first' of the number
        ["b", "07400 123456", "GB", "yes"],  # accepted
        ["c", "0044 7400 123456", "GB", "yes"],  # duplicate of row 2
    ]
    path = write_csv(tmp_path / "r.csv", rows)
    rejects = tmp_path / "rejects.csv"
    doc, _ = run_json(cli, path, "--rejects", rejects)
    assert doc["reasons"] == {"bad_consent_value": 1, "duplicate": 1}
    written = list(csv.DictReader(rejects.open(encoding="utf-8")))
    assert written[1] == {"row": "3", "value": "0044 7400 123456", "reason": "duplicate", "detail": "same number as row 2"}


def test_rejects_and_clean_files(cli, tmp_path):
    rows = ROWS + [["=HYPERLINK(\"x\")", "+1 212 555 0199", "", "yes"]]
    path = write_csv(tmp_path / "r.csv", rows)
    rejects, clean = tmp_path / "rejects.csv", tmp_path / "clean.csv"
    result = cli("validate", path, "--rejects", rejects, "--clean", clean)
    assert result.exit_code == 0
    assert "Wrote rejects: 7 rows, clean list: 3 rows." in result.stdout
    rej = list(csv.DictReader(rejects.open(encoding="utf-8")))
    assert [(r["row"], r["reason"]) for r in rej] == [
        ("3", "not_mobile"),
        ("4", "invalid_number"),
        ("5", "no_consent"),
        ("6", "bad_consent_value"),
        ("7", "duplicate"),
        ("8", "no_consent"),
        ("9", "no_consent"),
    ]
    details = {r["row"]: r["detail"] for r in rej}
    assert details["5"] == "consent is empty"
    assert details["6"] == "consent value 'perhaps' is not recognized (use yes/no or a date)"
    assert details["8"] == "opted out on row 9 (+447400123459)"
    assert details["9"] == "consent is 'unsubscribed'"
    assert rej[0]["value"] == "020 7946 0018"
    cleaned = list(csv.reader(clean.open(encoding="utf-8")))
    assert cleaned[0] == ["name", "Phone", "country", "Consent", "e164"]
    assert cleaned[1] == ["Zoë", "07400 123456", "GB", "yes", "+447400123456"]
    assert cleaned[2] == ["Ann", "'+1 415 555 2671", "", "y", "+14155552671"]
    assert cleaned[3][0] == "'=HYPERLINK(\"x\")" and cleaned[3][4] == "+12125550199"


def test_blank_lines_are_skipped_but_row_numbers_stay_true(cli, tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("phone,consent\n\n07400 123456,maybe\n,\n", encoding="utf-8")
    rejects = tmp_path / "rej.csv"
    doc, _ = run_json(cli, path, "--region", "GB", "--rejects", rejects)
    assert (doc["rows"], doc["blank"]) == (1, 2)
    assert list(csv.DictReader(rejects.open()))[0]["row"] == "2"


def test_quoted_multiline_and_ragged_rows(cli, tmp_path):
    path = tmp_path / "r.csv"
    path.write_text('phone,consent,note\n"+44 7400 123456",yes,"two\nlines"\n+447400123457,yes\n+447400123458,yes,a,extra\n')
    doc, _ = run_json(cli, path)
    assert (doc["rows"], doc["valid"]) == (3, 3)


def test_headers_are_matched_case_insensitively_and_can_be_named(cli, tmp_path):
    path = write_csv(tmp_path / "r.csv", [["07400 123456", "GB", "Y"]], header=["MSISDN", "Country", "SMS_Consent"])
    doc, _ = run_json(cli, path)
    assert doc["valid"] == 1 and doc["consent_column"] == "SMS_Consent"
    path = write_csv(tmp_path / "s.csv", [["07400 123456", "GB", "Y"]], header=["Handy", "country", "ok"])
    doc, _ = run_json(cli, path, "--phone-column", "handy", "--consent-column", "OK")
    assert doc["valid"] == 1


def test_channel_picks_its_own_consent_column_first(cli, tmp_path):
    path = write_csv(
        tmp_path / "r.csv", [["07400 123456", "GB", "yes", "no"]], header=["phone", "country", "sms_consent", "whatsapp_consent"]
    )
    assert run_json(cli, path)[0]["valid"] == 1
    assert run_json(cli, path, "--channel", "whatsapp")[0]["reasons"] == {"no_consent": 1}


def test_assume_consent_is_needed_without_a_consent_column(cli, tmp_path):
    path = write_csv(tmp_path / "r.csv", [["07400 123456", "GB"]], header=["phone", "country"])
    result = cli("validate", path)
    assert result.exit_code == 2
    assert f"Error: {path}: no consent column (looked for sms_consent, consent, opt_in, optin, opted_in). Headers found: phone, country." in result.stderr.replace("\n", " ")
    doc, result = run_json(cli, path, "--assume-consent", "existing customers, contract clause 4")
    assert doc["valid"] == 1 and doc["assumed_consent"] == "existing customers, contract clause 4"
    assert "consent assumed for every row" in result.stderr


def _one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file."),
        (b"", "the file is empty."),
        (b"\n\n  \n", "the file is empty."),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is not a text file (it contains NUL bytes)."),
        (b"name,email\nAnn,a@example.com\n", "no phone column. Headers found: name, email."),
        (b"+447400123456,yes\n+447400123457,yes\n", "the first row looks like data"),
        (b"phone,consent\n\"+447400123456,yes\n", "malformed CSV"),
    ],
)
def test_bad_files_get_one_clear_line_and_exit_2(cli, tmp_path, content, message):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_bytes(content)
    result = cli("validate", path)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert _one_line(result.stderr).startswith(f"Error: {path}:")
    assert message in _one_line(result.stderr)
    assert "Traceback" not in result.stderr


def test_phone_column_flag_names_a_missing_column(cli, tmp_path):
    result = cli("validate", write_csv(tmp_path / "r.csv", ROWS), "--phone-column", "tel")
    assert result.exit_code == 2
    assert "no column named 'tel' (--phone-column). Headers found: name, Phone, country, Consent." in _one_line(result.stderr)


def test_human_summary_names_counts_examples_and_next_step(cli, tmp_path):
    result = cli("validate", write_csv(tmp_path / "r.csv", ROWS))
    assert result.exit_code == 0
    out = _one_line(result.stdout)
    assert "r.csv: 9 rows (UTF-8, comma-delimited, phone column 'Phone')" in out
    assert "✓ 2 can be messaged ✗ 7 rejected" in out
    assert "row 4 invalid_number '12':" in out
    assert "Next: list every reject with bulksend validate" in out


def test_example_campaign_list(cli):
    doc, _ = run_json(cli, EXAMPLES / "recipients.csv", "--region", "GB")
    assert doc["rows"] == 50
    assert doc["reasons"] == {
        "invalid_number": 3,
        "not_mobile": 7,
        "no_consent": 4,
        "bad_consent_value": 1,  # "ja" and "oui" are consent (issue 8 item 6); "maybe" is not
        "duplicate": 2,
    }
    assert doc["valid"] == 33


def test_python_dash_m_runs_the_cli(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bulksend", "validate", str(EXAMPLES / "recipients.csv"), "--json"],
        capture_output=True,
        text=True,
        env={"BULKSEND_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["valid"] == 33
