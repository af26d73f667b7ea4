"""Pass one in worker processes gives exactly the answers it gives inline: same verdicts, regions, prices."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from bulksend import csvfile, recipients
from bulksend.pricing import RateCard
from bulksend.recipients import MessagePlan, ValidationOptions, build_table, write_rejects
from bulksend.templates import Template

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def big_list(tmp_path) -> Path:
    """The example list, four times over (so duplicates and opt-outs cross chunk boundaries)."""
    rows = list(csv.reader((EXAMPLES / "recipients.csv").open(encoding="utf-8")))
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(rows[0])
        for _ in range(4):
            writer.writerows(rows[1:])
    return path


def _table(path: Path, parallel: bool, monkeypatch):
    monkeypatch.setattr(csvfile, "CHUNK_ROWS", 7)  # many chunks, with boundaries everywhere
    monkeypatch.setattr(recipients, "_worth_parallel", lambda _path: parallel)
    plan = MessagePlan(Template.parse("Hi {first_name|there} {code}"), RateCard.load(EXAMPLES / "rates.csv"))
    return build_table(path, ValidationOptions(region="GB"), plan=plan, suppressed=frozenset({"+33612345679"}))


def test_workers_and_inline_agree_row_for_row(big_list, tmp_path, monkeypatch):
    inline = _table(big_list, False, monkeypatch)
    pooled = _table(big_list, True, monkeypatch)
    for name in ("status", "e164", "consent", "units", "encoding", "credits", "alt_units"):
        assert np.array_equal(getattr(inline, name), getattr(pooled, name)), name
    assert [inline.regions[i] if i >= 0 else None for i in inline.region] == [
        pooled.regions[i] if i >= 0 else None for i in pooled.region
    ]
    assert inline.reasons() == pooled.reasons() and inline.countries() == pooled.countries()
    # Every copy repeats its own 2 duplicates; copies 2-4 repeat the 31 rows copy 1 accepted: across chunks.
    assert inline.reasons()["duplicate"] == 4 * 2 + 3 * 31
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    write_rejects(inline, a)
    write_rejects(pooled, b)
    assert a.read_bytes() == b.read_bytes()


def test_small_files_stay_in_process(tmp_path):
    path = tmp_path / "small.csv"
    path.write_text("phone,consent\n+447400123456,yes\n")
    assert recipients._worth_parallel(path) is False
