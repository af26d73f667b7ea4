"""Files we write are safe to open in a spreadsheet and never half-written."""

import csv

import pandas as pd
import pytest

from bulksend.spreadsheet import atomic_text, safe_cell, safe_series, write_rows


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=SUM(A1:A9)", "'=SUM(A1:A9)"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("+1 415 555", "'+1 415 555"),
        ("-2+3", "'-2+3"),
        ("+", "'+"),
        ("=5", "'=5"),
        ("+447400123456", "+447400123456"),
        ("-12.5", "-12.5"),
        ("+3e5", "+3e5"),
        ("hello", "hello"),
        ("", ""),
        ("a=b", "a=b"),
    ],
)
def test_safe_cell(value, expected):
    assert safe_cell(value) == expected


def test_safe_series_agrees_with_safe_cell():
    values = ["=1", "+447400123456", "ok", "-x", "@", "-3", "", "+1 (415)"]
    assert safe_series(pd.Series(values)).tolist() == [safe_cell(v) for v in values]


def test_write_rows_writes_safe_utf8(tmp_path):
    path = tmp_path / "out.csv"
    assert write_rows(path, ["name", "value"], [["Zoë", "=HYPERLINK()"], ["x", "+447400123456"]]) == 2
    rows = list(csv.reader(path.open(encoding="utf-8")))
    assert rows == [["name", "value"], ["Zoë", "'=HYPERLINK()"], ["x", "+447400123456"]]


def test_atomic_text_leaves_nothing_when_interrupted(tmp_path):
    path = tmp_path / "out.csv"
    with pytest.raises(RuntimeError):
        with atomic_text(path) as handle:
            handle.write("partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
