"""Campaign locks: one lock file per campaign in ``<home>/locks/``, so overlapping runs exit at once (exit 5).

A lock is an ``fcntl.flock`` on an open file, taken without blocking. The kernel drops it when the process
ends, however it ends (SIGKILL included), so a crashed run never leaves a stale lock behind; the file
itself stays and only says who held it last. A SQLite lock would not do: the ledger is shared by every
campaign, and a busy ledger makes writers wait rather than fail.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
from pathlib import Path

from bulksend.errors import CampaignLocked
from bulksend.private import private_dir

LOCK_DIR = "locks"


def lock_path(home: Path, campaign: str) -> Path:
    """The lock file of a campaign name: readable when the name is, unique whatever the name."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", campaign).lstrip(".")[:80] or "_"
    if safe != campaign:
        safe += "-" + hashlib.sha256(campaign.encode("utf-8")).hexdigest()[:8]
    return home / LOCK_DIR / f"{safe}.lock"


class CampaignLock:
    """Held while a run may change a campaign; ``with CampaignLock.acquire(home, name):``."""

    def __init__(self, path: Path, fd: int, campaign: str) -> None:
        self.path = path
        self.campaign = campaign
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, home: Path, campaign: str) -> "CampaignLock":
        """Take the campaign's lock, or raise CampaignLocked (exit 5) naming the campaign and the holder."""
        path = lock_path(home, campaign)
        private_dir(path.parent, root=home)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            who = f" (pid {holder.split()[0]})" if holder.split() else ""
            raise CampaignLocked(
                f"campaign {campaign!r} is being sent by another run{who}; this run did nothing.",
                hint="Let it finish, or stop it with Ctrl-C; the next run resumes where it stopped.",
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd, campaign)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "CampaignLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
