"""Hostile inputs: every file, config and flag a user can get wrong gets one clear line and the documented exit code.

One table (``CASES``): what is written to disk, the command that reads it, the exit code and a fragment of the
message naming the problem. Every case also asserts: no "bug" and no traceback, a bounded run time, and a
ledger with no new rows. The same table runs again with ``--debug``: same exit code, same stdout.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bulksend import files
from bulksend.cli import app

GOOD = "phone,consent,first_name\n+447400123456,yes,Ann\n+447400123457,yes,Bob\n"
BIG_ROW = "+447400123456,yes,Ann\n"
NUL_AFTER_64K = "phone,consent,first_name\n" + BIG_ROW * 4000 + "+4474001\x0023457,yes,Bob\n" + BIG_ROW
PROFILE = '[providers.t]\ntype = "outbox"\n'
FIFO = b"<a named pipe>"  # in Case.files: make a FIFO there


@dataclass
class Case:
    """Files to write (relative name → text or bytes; None: a directory), config.toml, then one command."""

    args: list[str]
    code: int
    fragment: str
    files: dict[str, str | bytes | None] = field(default_factory=dict)
    config: str | None = None


def _send(*extra: str) -> list[str]:
    return ["send", "{d}/r.csv", "-m", "Hi {first_name}", "--yes", "--name", "hostile", *extra]


def _config_cases() -> dict[str, Case]:
    """Broken config.toml: exit 6 from every command, even those that never use the broken part."""
    configs = {
        "providers-is-text": ('providers = "x"', "providers must be a table of profiles"),
        "providers-array-of-tables": ('[[providers]]\ntype = "outbox"', "not a list of tables"),
        "defaults-is-a-number": ("defaults = 5", "defaults must be a table"),
        "credits-is-a-list": ("credits = [1]", "credits must be a table"),
        "rate-inf": (PROFILE + "rate = inf", "providers.t.rate (messages per second, 0 for no limit) must be a number from 0 to 100,000, not inf"),
        "rate-nan": (PROFILE + "rate = nan", "not nan"),
        "rate-1e308": (PROFILE + "rate = 1e308", "not 1e+308"),
        "timeout-0": (PROFILE + "timeout = 0", "providers.t.timeout (seconds to wait for an answer) must be a number greater than 0"),
        "backoff-nan": (PROFILE + "backoff_base = nan", "providers.t.backoff_base"),
        "concurrency-huge": (PROFILE + "concurrency = 100000000000", "must be a whole number from 1 to 1,000, not 100000000000"),
        "concurrency-text": (PROFILE + 'concurrency = "16"', "must be a whole number from 1 to 1,000, not '16'"),
        "rate-bool": (PROFILE + "rate = true", "not true"),
        "typo-key": (PROFILE + "concurency = 4", "did you mean providers.t.concurrency?"),
        "typo-section": ('[defualts]\nregion = "GB"', "did you mean defaults?"),
        "profile-is-text": ('[providers]\nt = "outbox"', "providers.t must be a table of settings"),
        "type-not-text": ("[providers.t]\ntype = 5", "providers.t.type (the provider type) must be text"),
        "region-long": ('[defaults]\nregion = "Great Britain"', 'must be a two-letter ISO country code like "GB"'),
        "min-topup-negative": ("[credits]\nmin_topup_sms = -1", "credits.min_topup_sms"),
        "not-toml": ("x = [", "not valid TOML"),
        "not-utf8": (b"\xff\xfe[defaults]", "not valid TOML"),
    }
    commands = {
        "balance": ["balance", "--json"],
        "validate": ["validate", "{d}/r.csv"],
        "estimate": ["estimate", "{d}/r.csv", "-m", "Hi"],
        "send": _send(),
        "topup": ["credits", "topup", "1000", "--channel", "sms"],
        "provider-list": ["provider", "list"],
        "campaigns-list": ["campaigns", "list"],
    }
    cases = {}
    for name, (text, fragment) in configs.items():
        for command, args in commands.items():
            config = text if isinstance(text, str) else text
            cases[f"config-{name}-{command}"] = Case(args, 6, fragment, {"r.csv": GOOD}, config=config)
    return cases


def _recipient_cases() -> dict[str, Case]:
    """Broken recipient files, each through validate, estimate and send."""
    broken = {
        "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "is not a text file (it contains NUL bytes)"),
        "directory": (None, "is a directory"),
        "empty": ("", "the file is empty"),
        "blank-lines": ("\n\n  \n", "the file is empty"),
        "nul-after-64k": (NUL_AFTER_64K, "row 4001 (line 4002) contains a NUL byte"),
        "huge-header": ("x" * 100_000 + ",consent\n1,yes\n", "no phone column. Headers found: " + "x" * 39 + "…"),
        "many-headers": (",".join(f"c{i}" for i in range(5000)) + "\n", "and 4,980 more."),
        "bad-quote": ('phone,consent,first_name\n"+447400123456,yes,Ann\n', "malformed CSV"),
        "utf16-no-bom-odd": ("phone,consent\n+447400123456,yes\n".encode("utf-16-le") + b"\x00\xd8", "--encoding utf-16-le"),
        "no-consent-column": ("phone\n+447400123456\n", "no consent column"),
    }
    commands = {
        "validate": ["validate", "{d}/r.csv"],
        "estimate": ["estimate", "{d}/r.csv", "-m", "Hi"],
        "send": _send(),
    }
    return {
        f"csv-{name}-{command}": Case(args, 2, fragment, {"r.csv": content})
        for name, (content, fragment) in broken.items()
        for command, args in commands.items()
    }


def _campaign_cases() -> dict[str, Case]:
    base = 'recipients = "r.csv"\nmessage = "Hi {first_name}"\n'
    broken = {
        "rate-inf": ("rate = inf", "rate (messages per second) must be a number from 0 to 100,000, not inf"),
        "rate-nan": ("rate = nan", "not nan"),
        "concurrency-huge": ("concurrency = 100000000000", "concurrency (requests in flight) must be a whole number from 1 to 1,000"),
        "batch-huge": ("batch_size = 10000000", "batch_size (rows per claim and commit) must be a whole number from 1 to 100,000"),
        "max-segments-0": ("max_segments = 0", "must be a whole number from 1 to 255, not 0"),
        "typo": ('mesage = "x"', "unknown key mesage (did you mean message?)"),
        "empty-provider": ('provider = ""', "provider (the provider profile) is empty"),
        "whatsapp-number": ("whatsapp = 5", "whatsapp must be a table"),
        "not-toml": ("= =", "not a valid campaign file"),
    }
    cases = {
        f"campaign-{name}": Case(["send", "{d}/c.toml", "--yes"], 2, fragment, {"r.csv": GOOD, "c.toml": base + line})
        for name, (line, fragment) in broken.items()
    }
    cases["campaign-directory"] = Case(["send", "{d}/c.toml", "--yes"], 2, "is a directory", {"c.toml": None})
    cases["campaign-empty-recipients"] = Case(
        ["send", "{d}/c.toml", "--yes"], 2, "recipients (the recipient CSV) is empty",
        {"c.toml": 'recipients = ""\nmessage = "Hi"\n'},
    )
    return cases


def _rate_card_cases() -> dict[str, Case]:
    header = "country,channel,credits\n"
    broken = {
        "credits-1e29-digits": (header + "*,sms,100000000000000000000000000000\n", "is more than 1,000,000"),
        "credits-2-63": (header + f"*,sms,{2**63}\n", "is more than 1,000,000"),
        "credits-2-62": (header + f"*,sms,{2**62}\n", "is more than 1,000,000"),
        "credits-exponent": (header + "*,sms,1e29\n", '"1e29" is not a whole number'),
        "credits-10000-digits": (header + "*,sms," + "9" * 10_000 + "\n", "is more than 1,000,000"),
        "credits-negative-long": (header + "*,sms,-" + "9" * 10_000 + "\n", "is negative"),
        "huge-country": (header + "X" * 100_000 + ",sms,1\n", "is not a country code"),
        "binary": (b"\xff\xfe\x00\x01", "is not UTF-8 text"),
        "directory": (None, "is a directory"),
    }
    cases = {}
    for name, (content, fragment) in broken.items():
        files_ = {"r.csv": GOOD, "rates.csv": content}
        cases[f"rates-{name}-estimate"] = Case(["estimate", "{d}/r.csv", "-m", "Hi", "--rates", "{d}/rates.csv"], 2, fragment, files_)
        cases[f"rates-{name}-send"] = Case(_send("--rates", "{d}/rates.csv"), 2, fragment, files_)
    return cases


def _flag_and_output_cases() -> dict[str, Case]:
    good = {"r.csv": GOOD}
    return {
        "flag-rate-nan": Case(_send("--rate", "nan"), 2, "--rate (messages per second, 0 for no limit) must be a number from 0 to 100,000, not nan", good),
        "flag-rate-inf": Case(_send("--rate", "inf"), 2, "not inf", good),
        "flag-concurrency-huge": Case(_send("--concurrency", "100000000000"), 2, "--concurrency (requests in flight) must be a whole number from 1 to 1,000", good),
        "flag-batch-huge": Case(_send("--batch-size", "1000000000"), 2, "--batch-size", good),
        "flag-max-attempts-huge": Case(_send("--max-attempts", "1000000"), 2, "--max-attempts", good),
        "flag-max-segments-huge-send": Case(_send("--max-segments", "100000"), 2, "--max-segments (the longest message, in SMS segments) must be a whole number from 1 to 255", good),
        "flag-max-segments-huge-estimate": Case(["estimate", "{d}/r.csv", "-m", "Hi", "--max-segments", "100000"], 2, "--max-segments", good),
        "rejects-over-input": Case(["validate", "{d}/r.csv", "--rejects", "{d}/r.csv"], 2, "--rejects {d}/r.csv is the input file", good),
        "clean-over-input-link": Case(["validate", "{d}/r.csv", "--clean", "{d}/link.csv"], 2, "is the input file", good),
        "clean-is-rejects": Case(["validate", "{d}/r.csv", "--clean", "{d}/o.csv", "--rejects", "{d}/o.csv"], 2, "name the same file", good),
        "details-over-rates": Case(
            ["estimate", "{d}/r.csv", "-m", "Hi", "--rates", "{d}/rates.csv", "--details", "{d}/rates.csv"], 2,
            "is the input file", {**good, "rates.csv": "country,channel,credits\n*,sms,1\n"},
        ),
        "details-over-template": Case(
            ["estimate", "{d}/r.csv", "-t", "{d}/m.txt", "--details", "{d}/m.txt"], 2, "is the input file",
            {**good, "m.txt": "Hi"},
        ),
        "rejects-dev-full": Case(["validate", "{d}/r.csv", "--rejects", "/dev/full"], 2, "/dev/full: cannot be written (No space left on device)", good),
        "clean-dev-full": Case(["validate", "{d}/r.csv", "--clean", "/dev/full"], 2, "No space left on device", good),
        "details-dev-full": Case(["estimate", "{d}/r.csv", "-m", "Hi", "--details", "/dev/full"], 2, "No space left on device", good),
        "rejects-directory": Case(["validate", "{d}/r.csv", "--rejects", "{d}"], 2, "is a directory", good),
        "rejects-missing-folder": Case(["validate", "{d}/r.csv", "--rejects", "{d}/no/r.csv"], 2, "does not exist", good),
        "template-directory": Case(["estimate", "{d}/r.csv", "-t", "{d}"], 2, "is a directory", good),
        "template-binary": Case(["estimate", "{d}/r.csv", "-t", "{d}/m.txt"], 2, "not UTF-8", {**good, "m.txt": b"\xff\xfe\xfa"}),
        "send-from-a-fifo": Case(["send", "{d}/fifo.csv", "-m", "Hi", "--yes"], 2, "send needs the recipient list as a regular file", {"fifo.csv": FIFO}),
        "topup-overflow": Case(["credits", "topup", "100000000000000000000000", "--channel", "sms"], 2, "a top-up is at most 1,000,000,000,000 credits", good),
        "topup-int64-max": Case(["credits", "topup", str(2**63 - 1), "--channel", "sms"], 2, "a top-up is at most", good),
        "balance-below-floor": Case(["balance", "--fail-below", "10000000"], 3, "below", good),
        "optout-import-binary": Case(
            ["optout", "import", "{d}/photo.png"], 2, "photo.png: is not a text file (line 3 contains a NUL byte)",
            {"photo.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))},
        ),
    }


CASES = {**_config_cases(), **_recipient_cases(), **_campaign_cases(), **_rate_card_cases(), **_flag_and_output_cases()}


def _ledger_rows(home: Path) -> dict[str, int]:
    path = home / "ledger.db"
    if not path.exists():
        return {}
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


def _prepare(case: Case, tmp_path: Path, home: Path) -> tuple[Path, list[str]]:
    runner = CliRunner()
    assert runner.invoke(app, ["credits", "topup", "100000", "--channel", "sms"]).exit_code == 0
    d = tmp_path / "in"
    d.mkdir()
    for name, content in case.files.items():
        target = d / name
        if content is None:
            target.mkdir()
        elif content is FIFO:
            os.mkfifo(target)
        elif isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8", newline="")
    if (d / "r.csv").is_file():
        os.symlink(d / "r.csv", d / "link.csv")
    if case.config is not None:
        config = case.config
        (home / "config.toml").write_bytes(config if isinstance(config, bytes) else config.encode())
    return d, [a.replace("{d}", str(d)) for a in case.args]


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input_gets_its_exit_code_and_a_clear_line(name, tmp_path, home):
    case = CASES[name]
    d, args = _prepare(case, tmp_path, home)
    inputs = {p: p.read_bytes() for p in d.iterdir() if p.is_file() and not p.is_symlink()}  # FIFOs are not files
    before = _ledger_rows(home)
    started = time.monotonic()
    result = CliRunner().invoke(app, args)
    elapsed = time.monotonic() - started

    assert result.exit_code == case.code, (result.stdout, result.stderr, result.exception)
    assert case.fragment.replace("{d}", str(d)) in " ".join(result.stderr.split()) or case.fragment in result.stderr
    assert "bug" not in result.stderr + result.stdout and "Traceback" not in result.stderr
    assert len(result.stderr) < 2_000, "an echoed value was not cut short"
    assert elapsed < 30
    assert _ledger_rows(home) == before, "a refused command wrote to the ledger"
    assert {p: p.read_bytes() for p in inputs} == inputs, "an input file was changed"

    debug = CliRunner().invoke(app, ["--debug", *args])
    assert debug.exit_code == result.exit_code
    assert debug.stdout == result.stdout
    if case.code != 3:
        assert "Traceback" in debug.stderr
    assert _ledger_rows(home) == before


# --- files that are not plain files ------------------------------------------------------------------------------


def _run(args: list[str], home: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "BULKSEND_HOME": str(home), "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "bulksend", *args], capture_output=True, text=True, env=env,
                          timeout=60, **kwargs)


def test_a_pipe_and_standard_input_are_read_whole_and_the_copy_is_removed(tmp_path, home, monkeypatch):
    spool_dir = tmp_path / "tmp"
    spool_dir.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool_dir))
    rows = "phone,consent\n" + "".join(f"+4474001{i:05d},yes\n" for i in range(2000))
    piped = _run(["validate", "-", "--json"], home, input=rows)
    assert piped.returncode == 0, piped.stderr
    assert '"valid": 2000' in piped.stdout
    dev_stdin = _run(["estimate", "/dev/stdin", "-m", "Hi", "--json"], home, input=rows)
    assert dev_stdin.returncode == 0, dev_stdin.stderr
    assert '"recipients": 2000' in dev_stdin.stdout
    assert list(spool_dir.iterdir()) == [], "the private copy of the stream was left behind"


def test_a_fifo_without_a_writer_is_refused_not_waited_on(tmp_path, cli, monkeypatch):
    monkeypatch.setattr(files, "FIFO_WAIT", 0.3)
    fifo = tmp_path / "list.csv"
    os.mkfifo(fifo)
    started = time.monotonic()
    result = cli("validate", fifo)
    assert result.exit_code == 2
    assert f"{fifo}: is a named pipe (FIFO) that no program wrote to within 0.3 s." in result.stderr
    assert time.monotonic() - started < 10


def test_a_fifo_with_a_writer_is_read(tmp_path, home):
    fifo = tmp_path / "list.csv"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"sleep 0.5; printf 'phone,consent\\n+447400123456,yes\\n' > {fifo}"])
    result = _run(["validate", str(fifo), "--json"], home)
    writer.wait(timeout=10)
    assert result.returncode == 0, result.stderr
    assert '"valid": 1' in result.stdout


def test_standard_input_from_a_terminal_is_refused(home):
    leader, follower = os.openpty()
    try:
        result = _run(["validate", "-"], home, stdin=follower)
    finally:
        os.close(leader)
        os.close(follower)
    assert result.returncode == 2
    assert "standard input (-), which is a terminal" in result.stderr


# --- files read correctly that were misread before ----------------------------------------------------------------


def test_cr_only_line_endings_are_read(tmp_path, cli):
    path = tmp_path / "mac.csv"
    path.write_bytes(b"phone,consent\r+447400123456,yes\r+447400123457,no\r")
    result = cli("validate", path, "--json")
    assert result.exit_code == 0, result.stderr
    assert '"rows": 2' in result.stdout and '"valid": 1' in result.stdout


def test_utf16_without_a_bom_is_recognized(tmp_path, cli):
    path = tmp_path / "u16.csv"
    path.write_bytes("phone,consent,name\n+447400123456,yes,Zoë\n".encode("utf-16-le"))
    result = cli("validate", path, "--json")
    assert result.exit_code == 0, result.stderr
    assert '"encoding": "UTF-16 LE"' in result.stdout and '"valid": 1' in result.stdout
    assert "has no byte-order mark; read it as UTF-16 LE" in result.stderr
    big_endian = tmp_path / "u16be.csv"
    big_endian.write_bytes("phone,consent\n+447400123456,yes\n".encode("utf-16-be"))
    assert '"encoding": "UTF-16 BE"' in cli("validate", big_endian, "--json").stdout


def test_clean_on_a_file_without_data_rows_writes_the_header(tmp_path, cli):
    path = tmp_path / "empty.csv"
    path.write_text("phone,consent\n")
    result = cli("validate", path, "--clean", tmp_path / "clean.csv", "--rejects", tmp_path / "rejects.csv")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "clean.csv").read_bytes() == b"phone,consent,e164\r\n"
    assert (tmp_path / "rejects.csv").read_bytes() == b"row,value,reason,detail\r\n"


def test_written_csvs_end_every_line_with_crlf(tmp_path, cli):
    path = tmp_path / "r.csv"
    path.write_text("phone,consent\n+447400123456,yes\n+447400123457,maybe\n+447400123458,yes\n")
    out = {name: tmp_path / f"{name}.csv" for name in ("clean", "rejects", "details")}
    assert cli("validate", path, "--clean", out["clean"], "--rejects", out["rejects"]).exit_code == 0
    assert cli("estimate", path, "-m", "Hi", "--details", out["details"]).exit_code == 0
    for target in out.values():
        data = target.read_bytes()
        assert data.count(b"\n") == data.count(b"\r\n") >= 2, (target, data)


def test_echoed_cell_values_are_cut_short(tmp_path, cli):
    path = tmp_path / "r.csv"
    path.write_text("phone,consent\n+447400123456," + "y" * 100_000 + "\n")
    result = cli("validate", path)
    assert result.exit_code == 0
    assert "bad_consent_value" in result.stdout and len(result.stdout) < 3_000


def test_unknown_config_keys_warn_and_the_command_runs(cli, home):
    (home / "config.toml").write_text(PROFILE + "colour = 3\n[dashboards]\nx = 1\n")
    result = cli("balance", "--json")
    assert result.exit_code == 0
    assert "unknown key providers.t.colour is ignored" in result.stderr
    assert "unknown key dashboards is ignored" in result.stderr
    assert result.stdout.startswith("{")


def test_secret_keys_in_a_profile_keep_their_own_message(cli, home):
    (home / "config.toml").write_text('[providers.t]\ntype = "twilio"\nauth_token = "hunter2"\n')
    result = cli("provider", "list")
    assert result.exit_code == 6
    assert "secrets never go in the config file" in result.stderr
    assert "unknown key" not in result.stderr and "hunter2" not in result.stderr
