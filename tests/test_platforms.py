"""macOS and Windows: nothing imports a POSIX-only module at import time; the campaign lock needs no fcntl.

This machine is Linux, so the other platforms are approximated: a subprocess where ``fcntl`` and the
other POSIX-only modules cannot be imported (as on Windows) must still import every bulksend module and
take and refuse campaign locks; the attempt journal without a boot id (macOS, Windows) is tested in
test_journal.py and test_engine_journal.py.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bulksend import journal as journal_module
from bulksend.errors import CampaignLocked
from bulksend.locks import CampaignLock, lock_path

ROOT = Path(__file__).resolve().parents[1]
POSIX_ONLY = ("fcntl", "termios", "resource", "pwd", "grp", "posix")

HIDDEN = textwrap.dedent(
    f"""
    import sys
    for name in {POSIX_ONLY[:-1]!r}:
        sys.modules[name] = None  # "import fcntl" now raises ImportError, as on Windows
    """
)


def run_without_posix_modules(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", HIDDEN + textwrap.dedent(code)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "HOME": str(tmp_path),
                                                                    "PATH": "/usr/bin:/bin"},
    )


def test_every_bulksend_module_imports_without_posix_only_modules(tmp_path):
    result = run_without_posix_modules(
        """
        import importlib, json, pkgutil
        import bulksend
        names = sorted(m.name for m in pkgutil.walk_packages(bulksend.__path__, "bulksend."))
        for name in names:
            importlib.import_module(name)
        print(json.dumps(names))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    imported = json.loads(result.stdout)
    assert {"bulksend.locks", "bulksend.journal", "bulksend.calendar", "bulksend.cli", "bulksend.engine"} <= set(
        imported
    )


def test_no_bulksend_module_imports_a_posix_only_module_at_module_level():
    for path in (ROOT / "bulksend").rglob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Import):
                names = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not names & set(POSIX_ONLY), f"{path.relative_to(ROOT)}:{node.lineno} imports {names}"


def test_without_fcntl_the_campaign_lock_still_excludes(tmp_path):
    result = run_without_posix_modules(
        f"""
        import warnings
        warnings.simplefilter("ignore")  # filelock says it falls back to its portable lock
        from pathlib import Path
        from bulksend.errors import CampaignLocked
        from bulksend.locks import CampaignLock
        home = Path({str(tmp_path)!r})
        with CampaignLock.acquire(home, "spring"):
            try:
                CampaignLock.acquire(home, "spring")
            except CampaignLocked as exc:
                print("refused:", exc)
        with CampaignLock.acquire(home, "spring"):
            print("taken again")
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("refused: campaign 'spring' is being sent by another run (pid ")
    assert lines[1] == "taken again"


HOLD = """
import sys, time
from pathlib import Path
from bulksend.locks import CampaignLock
lock = CampaignLock.acquire(Path(sys.argv[1]), "spring")
print("held", flush=True)
time.sleep(120)
"""


def test_a_lock_held_by_another_process_is_refused_and_a_killed_holder_leaves_none(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        started = time.monotonic()
        with pytest.raises(CampaignLocked, match=rf"being sent by another run \(pid {holder.pid}\)"):
            CampaignLock.acquire(tmp_path, "spring")
        assert time.monotonic() - started < 60  # at once: a wait would last the holder's 120 s
    finally:
        holder.kill()  # SIGKILL: no cleanup of its own
        holder.wait(timeout=30)
    assert lock_path(tmp_path, "spring").exists()  # the file stays; the lock went with the process
    with CampaignLock.acquire(tmp_path, "spring") as lock:
        assert lock.campaign == "spring"


def test_a_lock_is_released_for_the_next_run_in_the_same_process(tmp_path):
    first = CampaignLock.acquire(tmp_path, "spring")
    with pytest.raises(CampaignLocked):
        CampaignLock.acquire(tmp_path, "spring")
    first.release()
    first.release()  # twice is harmless
    CampaignLock.acquire(tmp_path, "spring").release()
    assert oct(lock_path(tmp_path, "spring").stat().st_mode & 0o777) == "0o600"


def test_without_a_kernel_boot_id_there_is_no_journal(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_module, "BOOT_ID_FILE", tmp_path / "no-proc-here")  # macOS, Windows
    assert journal_module.boot_id() is None
    journal = journal_module.AttemptJournal.for_campaign(tmp_path, 1)
    journal.open()
    assert not journal.active and journal.read() is None
