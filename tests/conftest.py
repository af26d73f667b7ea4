"""Fixtures shared by the CLI tests: an isolated home directory and an in-process runner."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bulksend.cli import app

#: Run first by every Python process a test starts (see quiet_hours_off_by_default).
SUBPROCESS_SITE = Path(__file__).resolve().parent / "subprocess_site"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh bulksend home, set through BULKSEND_HOME as a user would."""
    path = tmp_path / "home"
    path.mkdir(mode=0o700)  # as bulksend creates it (a looser home is tightened, with a warning)
    monkeypatch.setenv("BULKSEND_HOME", str(path))
    monkeypatch.delenv("NO_COLOR", raising=False)
    return path


@pytest.fixture
def cli(home: Path):
    """Run ``bulksend ARGS…`` in-process; returns the click Result (stdout, stderr, exit_code)."""
    runner = CliRunner()

    def run(*args: str, input: str | None = None):
        return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)

    return run


@pytest.fixture(autouse=True)
def _no_twilio_identity_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's exported Twilio account or API key must not change what any test sends."""
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_API_KEY", "TWILIO_API_SECRET"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def ledger_zone(monkeypatch: pytest.MonkeyPatch) -> str:
    """Every ledger a test creates keeps its calendar in UTC, whatever the machine's zone (``TZ``).

    A test about the zone itself sets ``[credits] timezone`` or patches ``machine_zone`` again.
    Together with time-machine (a naive destination is UTC), a test's "today" is the same everywhere.
    """
    from bulksend import calendar

    monkeypatch.setattr(calendar, "machine_zone", lambda: "UTC")
    return "UTC"


@pytest.fixture(autouse=True)
def quiet_hours_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Quiet hours are on by default (21:00-08:00 in each recipient's zone): a test would then depend on
    the hour it runs at. Tests get them off unless they set quiet_hours (config, campaign file, flag);
    tests/test_schedule_*.py set them and pin the clock with time-machine. The processes a test starts
    (``python -m bulksend …`` with the test's environment) get the same default through
    tests/subprocess_site/sitecustomize.py, first on their ``PYTHONPATH``."""
    monkeypatch.setattr("bulksend.schedule.DEFAULT_QUIET_HOURS", "off")
    inherited = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(SUBPROCESS_SITE), inherited])))
