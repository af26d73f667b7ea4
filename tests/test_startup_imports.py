"""Start-up: each command, run as a process, imports only what it needs (how fast is bench/startup_bench.py's job).

The modules a process imported are those in its ``sys.modules`` at exit (``-X importtime`` misses modules
loaded through ``importlib.import_module``, as the CLI loads its commands).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = {
    "pandas", "numpy", "requests", "urllib3", "phonenumbers", "keyring", "psycopg", "matplotlib",
    "uvicorn", "uvloop", "httptools",  # `webhooks serve` only
}
COMMAND_MODULES = {
    "bulksend.commands.validate", "bulksend.commands.estimate", "bulksend.commands.balance",
    "bulksend.commands.send", "bulksend.commands.credits", "bulksend.commands.optout",
    "bulksend.commands.provider", "bulksend.commands.campaigns", "bulksend.commands.config",
    "bulksend.commands.ledger", "bulksend.commands.webhooks",
}
# `python -m bulksend ARGS`, writing the names in sys.modules to the file named by argv[1] at exit.
DRIVER = (
    "import atexit, runpy, sys; out = sys.argv.pop(1); "
    "atexit.register(lambda: open(out, 'w').write('\\n'.join(sorted(sys.modules)))); "
    "sys.argv[0] = 'bulksend'; runpy.run_module('bulksend', run_name='__main__', alter_sys=True)"
)


def run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """``python -m bulksend ARGS`` in a fresh home; the process's result and the modules it imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULKSEND_")}
    env.update(PYTHONPATH=str(ROOT), BULKSEND_HOME=str(tmp_path / "home"), COLUMNS="100")
    listing = tmp_path / "modules.txt"
    done = subprocess.run([sys.executable, "-c", DRIVER, str(listing), *args], env=env,
                          capture_output=True, text=True, cwd=tmp_path)
    return done, set(listing.read_text().split())


def tops(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_help_lists_every_command_without_importing_the_heavy_libraries(tmp_path):
    done, modules = run(tmp_path, "--help")
    assert done.returncode == 0
    for command in ("validate", "estimate", "balance", "send", "send-one", "credits", "optout", "provider",
                    "campaigns", "config", "ledger", "webhooks"):
        assert f"│ {command} " in done.stdout
    assert not tops(modules) & HEAVY
    assert "bulksend.ledger" not in modules and "sqlite3" not in modules


def test_version_imports_no_command(tmp_path):
    done, modules = run(tmp_path, "--version")
    assert (done.returncode, done.stdout) == (0, "bulksend 0.1.0\n")
    assert not modules & COMMAND_MODULES
    assert not tops(modules) & (HEAVY | {"rich"})


def test_balance_imports_its_own_command_only(tmp_path):
    topup, _ = run(tmp_path, "credits", "topup", "1000", "--channel", "sms")
    assert topup.returncode == 0, topup.stderr
    done, modules = run(tmp_path, "balance", "--json")
    assert done.returncode == 0
    assert json.loads(done.stdout)["sms"]["available"] == 1000
    assert modules & COMMAND_MODULES == {"bulksend.commands.balance"}
    assert "bulksend.ledger_guard" in modules  # the identity guard still runs for a reading command
    assert not modules & {"bulksend.engine", "bulksend.campaign_run", "bulksend.recipients", "bulksend.fleet"}
    assert not tops(modules) & (HEAVY | {"rich", "tzlocal", "filelock"})


def test_validate_imports_no_sending_library(tmp_path):
    people = tmp_path / "people.csv"
    people.write_text("phone,consent\n" + "".join(f"+447400{i:06d},yes\n" for i in range(1, 51)))
    done, modules = run(tmp_path, "validate", str(people), "--region", "GB")
    assert done.returncode == 0, done.stdout
    assert "✓ 50 can be messaged   ✗ 0 rejected" in done.stdout
    assert modules & COMMAND_MODULES == {"bulksend.commands.validate"}
    assert not tops(modules) & {"requests", "urllib3", "keyring", "psycopg", "matplotlib", "uvicorn", "uvloop",
                                 "httptools"}
    assert not modules & {"bulksend.engine", "bulksend.campaign_run", "bulksend.providers", "bulksend.fleet"}
