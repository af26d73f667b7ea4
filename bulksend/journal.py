"""The attempt journal: which requests a run started and what came back, so that a crash leaves fewer rows unknown.

A run commits a row ``sending`` before its request and the outcome after it, one transaction per batch.
A process killed in between (SIGKILL, the OOM killer) leaves every claimed row ``sending``, and without
more information each of them must become ``unknown``: it may have been accepted. Most never reached the
network. The journal tells them apart.

One file per campaign, ``<home>/journal/<campaign id>.attempts``, opened with ``O_APPEND``. A worker writes
a row's *attempt record* with one ``os.write`` and only then starts the request; the same write carries
the *outcome record* of the worker's previous row (accepted with the provider's id, or certainly not
accepted), so the hot path stays at one small write per message. No fsync: a write that returned is in
the kernel and survives the death of the process, not of the machine. The first line therefore names the
machine's boot id, and a journal written before a reboot is not believed.

::

    bulksend-attempts 1 boot 36e39f66-7a4d-497b-bc93-db5603ebf723
    17 0                      attempt: transmission 17, after 0 earlier attempts; the request may be out
    +17 0 "SM8d1c…"           outcome: the provider accepted it, with this id (JSON: null when it gave none)
    -18 0                     outcome: the provider certainly did not accept it (retryable, permanent, fatal)

A record names the attempt as (transmission id, ``attempts`` when claimed): ``attempts`` does not change
while a row is ``sending``, and every path from an attempt back to ``queued`` within a run increments it,
so an outcome record written late (the next write of its worker) can never be mistaken for a later attempt
of the same row.

:meth:`AttemptJournal.read` returns :class:`Attempts` only for a journal it can trust entirely: header and
boot id as expected, every line well formed and complete, every outcome after its attempt. Anything else
returns None, and recovery treats every ``sending`` row as ``unknown``, as it did before the journal.
"""

from __future__ import annotations

import errno
import json
import os
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from bulksend.private import open_private

JOURNAL_DIR = "journal"
BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")
HEADER = "bulksend-attempts 1 boot "

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)  # POSIX; Windows has no such flag (and no boot id, so no journal)

_ATTEMPT = re.compile(r"(\d+) (\d+)")
_ACCEPTED = re.compile(r"\+(\d+) (\d+) (.+)")
_DECLINED = re.compile(r"-(\d+) (\d+)")


def boot_id() -> str | None:
    """This boot of the machine, the one source every journal uses (tests replace it).

    Linux only (``/proc/sys/kernel/random/boot_id``). Elsewhere (macOS, Windows) or when it cannot be
    read, None: no journal is written or believed, and a crash's ``sending`` rows all become ``unknown``.
    """
    return read_boot_id(BOOT_ID_FILE)


def read_boot_id(path: Path = BOOT_ID_FILE) -> str | None:
    """The boot id in ``path``, or None where it cannot be read."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if text and text.isprintable() and " " not in text else None


def journal_path(home: Path, campaign_id: int) -> Path:
    return home / JOURNAL_DIR / f"{int(campaign_id)}.attempts"


def attempt_record(transmission_id: int, attempts: int) -> bytes:
    return b"%d %d\n" % (transmission_id, attempts)


def accepted_record(transmission_id: int, attempts: int, provider_id: str | None) -> bytes:
    # JSON keeps any provider id on one line (ensure_ascii: no newline, no stray byte can split it).
    return b"+%d %d %s\n" % (transmission_id, attempts, json.dumps(provider_id).encode("ascii"))


def declined_record(transmission_id: int, attempts: int) -> bytes:
    return b"-%d %d\n" % (transmission_id, attempts)


class Verdict(StrEnum):
    """What the journal says about one attempt of a row that a crash left ``sending``."""

    NOT_STARTED = "not_started"  # no attempt record: the request never started → queued, no attempt spent
    ACCEPTED = "accepted"  # the provider accepted it → sent and debited, with the provider's id
    DECLINED = "declined"  # the provider answered and did not accept it → queued again
    STARTED = "started"  # the request may have reached the provider → unknown


@dataclass(frozen=True)
class Attempts:
    """The records of a journal that can be trusted, by (transmission id, attempts)."""

    started: frozenset[tuple[int, int]]
    accepted: dict[tuple[int, int], str | None]
    declined: frozenset[tuple[int, int]]

    def verdict(self, transmission_id: int, attempts: int) -> tuple[Verdict, str | None]:
        """The verdict on a ``sending`` row, and the provider's id when it was accepted."""
        key = (transmission_id, attempts)
        if key in self.accepted:
            return Verdict.ACCEPTED, self.accepted[key]
        if key in self.declined:
            return Verdict.DECLINED, None
        if key in self.started:
            return Verdict.STARTED, None
        return Verdict.NOT_STARTED, None


def parse(text: bytes, boot: str | None) -> Attempts | None:
    """The records of a journal's bytes, or None unless every byte of it can be trusted on this boot."""
    if boot is None or not text.endswith(b"\n"):
        return None  # an empty file, or a last line cut short: a write we know nothing about
    try:
        lines = text.decode("ascii").split("\n")
    except UnicodeDecodeError:
        return None
    lines.pop()  # the empty string after the final newline
    if lines[0] != HEADER + boot:
        return None  # another boot (the machine restarted: writes may be lost), or not a journal at all
    started: set[tuple[int, int]] = set()
    accepted: dict[tuple[int, int], str | None] = {}
    declined: set[tuple[int, int]] = set()
    for line in lines[1:]:
        if match := _ATTEMPT.fullmatch(line):
            started.add((int(match[1]), int(match[2])))
            continue
        if match := _ACCEPTED.fullmatch(line):
            key = (int(match[1]), int(match[2]))
            try:
                provider_id = json.loads(match[3])
            except ValueError:
                return None
            if not (provider_id is None or isinstance(provider_id, str)):
                return None
            accepted[key] = provider_id
        elif match := _DECLINED.fullmatch(line):
            key = (int(match[1]), int(match[2]))
            declined.add(key)
        else:
            return None
        if key not in started:
            return None  # an outcome is always written after its attempt: this file is not what we wrote
    if accepted.keys() & declined:
        return None
    return Attempts(frozenset(started), accepted, frozenset(declined))


class AttemptJournal:
    """One campaign's journal file: ``open`` it for a run, ``record`` before each request, ``read`` to recover.

    ``boot`` is the machine's boot id (``for_campaign`` asks :func:`boot_id`); None turns the journal
    off: nothing is written, and ``read`` trusts nothing.
    """

    def __init__(self, path: Path, boot: str | None) -> None:
        self.path = path
        self.boot = boot
        self._fd: int | None = None

    @classmethod
    def for_campaign(cls, home: Path, campaign_id: int) -> AttemptJournal:
        return cls(journal_path(home, campaign_id), boot_id())

    @property
    def active(self) -> bool:
        """True once opened on a machine whose boot id is known: every request must then be recorded first."""
        return self._fd is not None

    def read(self) -> Attempts | None:
        """What the journal says, or None when it is missing, unreadable, torn or from another boot."""
        if self.boot is None:
            return None
        try:
            data = self.path.read_bytes()
        except OSError:
            return None
        return parse(data, self.boot)

    def discard(self) -> None:
        """Remove the file (after recovery committed what it said, or after a run that left nothing ``sending``)."""
        try:
            self.path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            pass  # no journal (a parent that is not a directory cannot hold one either)

    def open(self) -> None:
        """Start an empty journal for this run (truncating any other). Without a boot id, do nothing.

        Raises OSError when the file cannot be created or its header written: the run must not send.
        """
        if self.boot is None:
            return
        fd = open_private(self.path, os.O_WRONLY | os.O_TRUNC | os.O_APPEND | _O_CLOEXEC)
        try:
            _write_all(fd, f"{HEADER}{self.boot}\n".encode("ascii"))
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def record(self, data: bytes) -> None:
        """Append ``data`` (whole records) with one write. Raises OSError unless all of it reached the kernel.

        Called by every worker thread without a lock of ours: writes to a regular file are atomic with
        respect to each other (POSIX, "Thread Interactions with Regular File Operations") and O_APPEND
        places each at the end, so records never interleave. A Python lock held across the write would
        make the threads queue for it while its holder waits for the GIL (measured: ~8% of throughput).
        """
        _write_all(self._fd, data)

    def close(self) -> None:
        """Close the file (after the worker threads have stopped)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _write_all(fd: int | None, data: bytes) -> None:
    if fd is None:
        raise OSError(errno.EBADF, "the attempt journal is not open")
    written = os.write(fd, data)
    if written != len(data):
        # Not retried: the line is torn, so the next recovery will not trust this journal anyway.
        raise OSError(errno.ENOSPC, f"short write to the attempt journal ({written} of {len(data)} bytes)")
