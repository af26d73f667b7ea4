"""Campaign locks: one lock file per campaign in ``<home>/locks/``, so overlapping runs exit at once (exit 5).

A lock is a ``filelock.FileLock`` on ``<campaign>.lock``, taken without waiting: ``flock`` on Linux and
macOS, ``LockFileEx`` (msvcrt) on Windows. The operating system drops it when the process ends, however
it ends (SIGKILL included), so a crashed run never leaves a stale lock behind. Beside it,
``<campaign>.holder`` says who took it last (a pid), for the message the next run prints; it is never
what decides. A SQLite lock would not do: the ledger is shared by every campaign, and a busy ledger
makes writers wait rather than fail.

Nothing here imports a POSIX-only module: filelock picks the platform's mechanism itself.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

from bulksend.errors import CampaignLocked
from bulksend.private import private_dir

LOCK_DIR = "locks"


def lock_path(home: Path, campaign: str) -> Path:
    """The lock file of a campaign name: readable when the name is, unique whatever the name."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", campaign).lstrip(".")[:80] or "_"
    if safe != campaign:
        safe += "-" + hashlib.sha256(campaign.encode("utf-8")).hexdigest()[:8]
    return home / LOCK_DIR / f"{safe}.lock"


def holder_path(lock: Path) -> Path:
    """Where the holder of a lock writes its pid (beside the lock: the lock file is the OS's to manage)."""
    return lock.with_suffix(".holder")


class CampaignLock:
    """Held while a run may change a campaign; ``with CampaignLock.acquire(home, name):``."""

    def __init__(self, path: Path, lock: Any, campaign: str, created: bool = False) -> None:
        self.path = path
        self.campaign = campaign
        self.created = created  # this run made the lock file: it is no sign of an earlier run
        self._lock: Any = lock

    @classmethod
    def acquire(cls, home: Path, campaign: str) -> "CampaignLock":
        """Take the campaign's lock, or raise CampaignLocked (exit 5) naming the campaign and the holder."""
        from filelock import FileLock, Timeout

        path = lock_path(home, campaign)
        private_dir(path.parent, root=home)
        # thread_local=False: the hold belongs to the run, whichever thread releases it.
        lock = FileLock(path, mode=0o600, thread_local=False)
        existed = path.exists()
        try:
            lock.acquire(blocking=False)
        except Timeout:
            who = _holder(holder_path(path))
            raise CampaignLocked(
                f"campaign {campaign!r} is being sent by another run{who}; this run did nothing.",
                hint="Let it finish, or stop it with Ctrl-C; the next run resumes where it stopped.",
            ) from None
        try:
            _write_holder(holder_path(path))
        except OSError:
            pass  # only the message of an overlapping run loses the pid; the lock itself is held
        return cls(path, lock, campaign, created=not existed)

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "CampaignLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _write_holder(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
    finally:
        os.close(fd)


def _holder(path: Path) -> str:
    try:
        words = path.read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        return ""
    return f" (pid {words[0]})" if words and words[0].isdigit() else ""
