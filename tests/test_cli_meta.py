"""The CLI as a whole: every command documents itself, and the error boundary maps errors to exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from bulksend import __version__
from bulksend.cli import app
from bulksend.errors import InputError


def _commands(command, path=()):
    subcommands = getattr(command, "commands", None)
    if subcommands:
        for name, sub in subcommands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield path, command


ALL = list(_commands(get_command(app)))


def test_the_brief_s_commands_are_all_there():
    names = {" ".join(path) for path, _ in ALL}
    for expected in ("validate", "estimate", "balance", "credits topup", "credits history", "credits audit",
                     "optout add", "optout remove", "optout list", "optout import"):
        assert expected in names


@pytest.mark.parametrize(("path", "command"), ALL, ids=[" ".join(p) for p, _ in ALL])
def test_every_command_has_help_with_an_example(path, command):
    assert command.help, f"bulksend {' '.join(path)} has no help text"
    assert "Example" in command.help, f"bulksend {' '.join(path)}'s help has no example"


@pytest.mark.parametrize(("path", "command"), ALL, ids=[" ".join(p) for p, _ in ALL])
def test_every_command_takes_json(path, command):
    if path[-1] in {"login", "logout", "topup", "add", "remove", "import", "cancel"}:
        return  # commands that change state answer in one line; --json is for queries
    if path == ("webhooks", "serve"):
        return  # a server: it runs until stopped and answers providers, not scripts
    assert any("--json" in p.opts for p in command.params), f"bulksend {' '.join(path)} lacks --json"


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert (result.exit_code, result.stdout) == (0, f"bulksend {__version__}\n")


def test_usage_errors_exit_2_with_click_s_message(home):
    result = CliRunner().invoke(app, ["validate"])
    assert result.exit_code == 2
    assert "Missing argument" in result.stderr


@pytest.fixture
def boom_app(monkeypatch):
    """The real root app with two extra commands that fail, registered for this test only."""

    def bug() -> None:
        """Raise a bug. Example: bulksend bug"""
        raise KeyError("secret-free")

    def bad_input() -> None:
        """Raise an input error. Example: bulksend bad-input"""
        raise InputError("people.csv: row 3 has no phone", hint="Fill it in.")

    app.command("bug")(bug)
    app.command("bad-input")(bad_input)
    yield app
    app.registered_commands[:] = [c for c in app.registered_commands if c.name not in {"bug", "bad-input"}]


def test_domain_errors_are_one_line_and_their_exit_code(boom_app, home):
    result = CliRunner().invoke(boom_app, ["bad-input"])
    assert result.exit_code == 2
    assert result.stderr == "Error: people.csv: row 3 has no phone\nFill it in.\n"
    assert result.stdout == ""


def test_bugs_are_reported_as_bugs_without_traceback(boom_app, home):
    result = CliRunner().invoke(boom_app, ["bug"])
    assert result.exit_code == 1
    assert "Error: unexpected KeyError — this is a bug in bulksend." in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_adds_the_traceback_and_keeps_the_exit_code_and_message(boom_app, home):
    result = CliRunner().invoke(boom_app, ["--debug", "bad-input"])
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and "InputError" in result.stderr
    assert result.stderr.endswith("Error: people.csv: row 3 has no phone\nFill it in.\n")
    assert result.stdout == ""
    result = CliRunner().invoke(boom_app, ["--debug", "bug"])
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "KeyError" in result.stderr
    assert "Error: unexpected KeyError — this is a bug in bulksend." in result.stderr


def test_debug_in_a_real_process_prints_the_traceback(tmp_path):
    missing = tmp_path / "missing.csv"
    result = subprocess.run(
        [sys.executable, "-m", "bulksend", "--debug", "validate", str(missing)],
        capture_output=True, text=True, env={"BULKSEND_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "InputError" in result.stderr
    plain = subprocess.run(
        [sys.executable, "-m", "bulksend", "validate", str(missing)],
        capture_output=True, text=True, env={"BULKSEND_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=60,
    )
    assert plain.returncode == 2
    assert "Traceback" not in plain.stderr and f"Error: {missing}: no such file." in plain.stderr


def test_a_closed_pipe_is_not_reported_as_a_bug(tmp_path):
    """`bulksend validate big.csv | head -1`: the reader goes away early; that is not a bug."""
    rows = "".join(f"+4474001{i:05d},yes\n" for i in range(3000))
    (tmp_path / "big.csv").write_text("phone,consent\n" + rows)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bulksend", "validate", str(tmp_path / "big.csv"), "--clean", "/dev/stdout"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={"BULKSEND_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    proc.stdout.readline()
    proc.stdout.close()  # the reader goes away, as `head -1` does
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1
    assert "bug" not in stderr and "Traceback" not in stderr
