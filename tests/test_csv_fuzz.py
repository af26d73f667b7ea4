"""Any bytes as a recipient file give either a result or one clean error line (exit 2), never a traceback."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from bulksend.cli import app

runner = CliRunner()

CELL = st.sampled_from(["+447400123456", "07400 123456", "yes", "no", "", '"', '""', "a,b", "\n", "\r", ";", "\t", "é", "\x00", "🙂", "=1"])
TEXTY = st.lists(CELL, max_size=40).map("".join)


def _check(tmp_path_factory, data: bytes) -> None:
    home = tmp_path_factory.mktemp("home")
    path = home / "in.csv"
    path.write_bytes(data)
    result = runner.invoke(
        app, ["--home", str(home), "validate", str(path), "--region", "GB", "--json"], catch_exceptions=False
    )
    assert "Traceback" not in result.stderr
    assert result.exit_code in (0, 2), result.stderr
    if result.exit_code == 0:
        doc = json.loads(result.stdout)
        assert doc["valid"] + doc["rejected"] == doc["rows"]
        assert sum(doc["reasons"].values()) == doc["rejected"]
    else:
        assert result.stdout == ""
        assert result.stderr.startswith("Error: ")


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.binary(max_size=300))
def test_any_bytes(tmp_path_factory, data):
    _check(tmp_path_factory, data)


@FUZZ
@given(body=st.binary(max_size=300))
def test_any_bytes_after_a_good_header(tmp_path_factory, body):
    _check(tmp_path_factory, b"phone,consent\n" + body)


@FUZZ
@given(body=TEXTY, encoding=st.sampled_from(["utf-8", "utf-16", "cp1252"]))
def test_csv_like_text_in_each_encoding(tmp_path_factory, body, encoding):
    _check(tmp_path_factory, ("phone,consent\n" + body).encode(encoding, errors="replace"))
