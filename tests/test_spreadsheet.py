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


def test_a_symlink_to_a_file_is_kept_and_its_target_replaced(tmp_path):
    real = tmp_path / "real.csv"
    real.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    write_rows(link, ["a"], [["1"]])
    assert link.is_symlink() and real.read_text(encoding="utf-8").splitlines() == ["a", "1"]


def test_a_fifo_is_written_in_place_not_replaced(tmp_path):
    import os
    import threading

    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    write_rows(fifo, ["a"], [["1"]])
    reader.join(timeout=10)
    assert received == [b"a\r\n1\r\n"]
    assert fifo.is_fifo()
