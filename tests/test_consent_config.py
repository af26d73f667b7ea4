"""Consent values end to end: config.toml [consent] words, the European built-ins, future dates, in workers too."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from bulksend import consent, csvfile, recipients
from bulksend.consent import Consent, consent_words
from bulksend.recipients import ValidationOptions, build_table

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch):
    monkeypatch.setattr(consent, "utc_now", lambda: NOW)


def write(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("phone,consent\n" + "".join(f"{p},{c}\n" for p, c in rows), encoding="utf-8")
    return path


ROWS = [
    ("+447400100001", "oui"),  # 1 accepted (built-in French)
    ("+447400100002", "Nein"),  # 2 no_consent (built-in German)
    ("+447400100003", "ok"),  # 3 accepted only with [consent] positive = ["ok"]
    ("+447400100004", "stop"),  # 4 refused only with [consent] negative = ["stop"]
    ("+447400100005", "2026-06-20"),  # 5 bad_consent_value: a date after today
    ("+447400100006", "2026-06-01"),  # 6 accepted: consent given on that date
]


def test_config_words_add_to_the_builtins(cli, home, tmp_path):
    (home / "config.toml").write_text('[consent]\npositive = ["ok"]\nnegative = ["Stop"]\n', encoding="utf-8")
    rejects = tmp_path / "rejects.csv"
    result = cli("validate", write(tmp_path / "r.csv", ROWS), "--rejects", rejects, "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["valid"] == 3
    assert doc["reasons"] == {"no_consent": 2, "bad_consent_value": 1}
    rows = {r["row"]: (r["reason"], r["detail"]) for r in csv.DictReader(rejects.open(encoding="utf-8"))}
    assert rows == {
        "2": ("no_consent", "consent is 'Nein'"),
        "4": ("no_consent", "consent is 'stop'"),
        "5": ("bad_consent_value", "consent date '2026-06-20' is in the future"),
    }


def test_without_config_words_unknown_values_stay_unrecognized(cli, tmp_path):
    result = cli("validate", write(tmp_path / "r.csv", ROWS), "--json")
    assert json.loads(result.stdout)["reasons"] == {"no_consent": 1, "bad_consent_value": 3}


def test_a_word_in_both_lists_is_exit_6_before_the_file_is_read(cli, home, tmp_path):
    (home / "config.toml").write_text('[consent]\npositive = ["ok", "ja"]\nnegative = ["OK"]\n', encoding="utf-8")
    result = cli("validate", tmp_path / "missing.csv")
    assert result.exit_code == 6
    assert result.stderr.startswith(
        f"Error: {home / 'config.toml'} [consent]: 'ok' is both a positive and a negative consent value."
    )


@pytest.mark.parametrize(
    "table, message",
    [
        ('[consent]\npositive = "ok"\n', "consent.positive (extra consent values that mean yes) must be a list of text"),
        ('[consent]\npositives = ["ok"]\n', "unknown key consent.positives: did you mean consent.positive?"),
        ('consent = ["ok"]\n', "consent must be a table ([consent] with keys under it)"),
    ],
)
def test_a_malformed_consent_table_is_exit_6(cli, home, tmp_path, table, message):
    (home / "config.toml").write_text(table, encoding="utf-8")
    result = cli("validate", write(tmp_path / "r.csv", ROWS))
    assert result.exit_code == 6
    assert message in result.stderr


def test_a_send_never_messages_a_future_consent_date(cli, home, tmp_path):
    cli("credits", "topup", 1000, "--channel", "sms")
    path = write(tmp_path / "list.csv", [("+447400100001", "2026-06-15"), ("+447400100002", "2026-06-17T09:00:00Z")])
    result = cli("send", path, "-m", "Hi", "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    sent = [json.loads(line)["to"] for line in (home / "outbox" / "list.jsonl").read_text().splitlines()]
    assert sent == ["+447400100001"]


def test_worker_processes_use_the_same_words_and_the_same_now(tmp_path, monkeypatch):
    rows = [(f"+4474001{i:05d}", value) for i, value in enumerate(["ok", "stop", "2026-06-20", "ja", "2026-06-01"] * 20)]
    path = write(tmp_path / "r.csv", rows)
    words = consent_words(["ok"], ["stop"])
    monkeypatch.setattr(csvfile, "CHUNK_ROWS", 7)
    tables = []
    for parallel in (False, True):
        monkeypatch.setattr(recipients, "_worth_parallel", lambda _path, parallel=parallel: parallel)
        tables.append(build_table(path, ValidationOptions(), consent_words=words))
    inline, pooled = tables
    assert np.array_equal(inline.consent, pooled.consent)
    assert inline.consent[:5].tolist() == [Consent.GIVEN, Consent.REFUSED, Consent.FUTURE, Consent.GIVEN, Consent.GIVEN]
