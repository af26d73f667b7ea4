"""Which ledger a home belongs to, and the one way commands open it: never a fresh start over earlier work.

A ledger carries an identity (``meta.ledger_id``, a uuid4 given when it is created). The home keeps a
record of it, ``<home>/ledger.id`` (JSON, owner-only, replaced atomically): the ledger's id and the
highest campaign, transmission and movement ids this home has seen it reach (its *high-water mark*,
brought up to date after every commit of a writing command).

Every command opens the ledger through :func:`open_for_write` or :func:`open_for_read`. Before anything
is written, the ledger is compared with what the home shows of earlier work:

- the ledger is **missing or empty** (0 bytes) while the home has the record, attempt journals, campaign
  lock files or outbox files: a ledger existed here;
- it is **another ledger** (its id is not the recorded one);
- it is **behind** the high-water mark (restored from an older copy, or its ``-wal`` file was deleted), or
  an attempt journal names a campaign it does not have.

A writing command then stops (``LedgerError``, exit 1) saying what it found and how to restore; with that
ledger, work already done could be done again — messages sent twice. A reading command warns and goes on.
``ledger_care.adopt`` is the explicit way to accept the ledger as it is (or to start a new one).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bulksend import ledger as ledgers
from bulksend.errors import LedgerError
from bulksend.journal import JOURNAL_DIR
from bulksend.ledger import LEDGER_ID, HighWater, Ledger, utc_timestamp

if TYPE_CHECKING:  # pragma: no cover
    from bulksend.config import Config
    from bulksend.hints import Invocation

RECORD_FILE = "ledger.id"
RECORD_SIZE = 256  # bytes: every record has this size, so a high-water mark can move in place
LOCK_DIR = "locks"  # bulksend.locks.LOCK_DIR (not imported: hashlib would slow every `balance`)
OUTBOX_DIR = "outbox"  # the outbox provider's default directory: its files are messages already "sent"

def restore_hint(invocation: "Invocation") -> str:
    """What to do about a ledger that is not the home's: its commands carry the run's ``--home``."""
    return (
        f"Restore the ledger from a backup ({invocation.ledger_restore()}, then {invocation.ledger_check()}; see "
        'docs/ledger.md, "Backup and recovery"). Only if you accept that work recorded since may be done again: '
        f"{invocation.ledger_adopt()}"
    )


# ----------------------------------------------------------------------------------- the home's record


@dataclass(frozen=True)
class HomeRecord:
    """What ``<home>/ledger.id`` says: the ledger this home belongs to and the furthest it has seen it go."""

    ledger_id: str
    seen: HighWater
    updated_at: str = ""

    def describe(self) -> str:
        s = self.seen
        return (
            f"ledger {self.ledger_id}, seen up to campaign #{s.campaigns}, transmission #{s.transmissions}, "
            f"movement #{s.movements}"
        )


def record_path(home: Path) -> Path:
    return home / RECORD_FILE


def read_record(home: Path) -> tuple[HomeRecord | None, str | None]:
    """(the record, None), (None, None) when there is none, or (None, why it cannot be used)."""
    path = record_path(home)
    try:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:  # read while a run was moving the mark in place: read it again
            data = json.loads(path.read_text(encoding="utf-8"))
        return (
            HomeRecord(
                str(data["ledger_id"]),
                HighWater(int(data["campaigns"]), int(data["transmissions"]), int(data["movements"])),
                str(data.get("updated_at", "")),
            ),
            None,
        )
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"{path} cannot be read ({exc.strerror})"
    except (ValueError, KeyError, TypeError):
        return None, f"{path} is not a bulksend ledger record"


def _record_bytes(ledger_id: str, seen: HighWater) -> bytes:
    document = {
        "ledger_id": ledger_id,
        "campaigns": seen.campaigns,
        "transmissions": seen.transmissions,
        "movements": seen.movements,
        "updated_at": utc_timestamp(),
    }
    text = json.dumps(document, indent=1)
    return (text.ljust(RECORD_SIZE - 1) + "\n").encode("ascii")


def write_record(home: Path, ledger_id: str, seen: HighWater) -> None:
    """Replace the record atomically and durably (owner-only): a new file, synced, renamed over the old."""
    path = record_path(home)
    tmp = path.with_name(f".{RECORD_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, _record_bytes(ledger_id, seen))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def update_record(home: Path, ledger_id: str, seen: HighWater) -> None:
    """Move the high-water mark of the record in place: one write of the same fixed size, no fsync.

    Called after every commit of a run, so it must be cheap: rewriting through a new file and a rename
    costs milliseconds on ext4 (it flushes the data on rename), an in-place write of one sector about a
    microsecond. A write that returned survives the death of the process; a record that lags after a
    power cut is only less sensitive (the ledger, synced on every commit, is ahead of it, never behind).
    """
    try:
        fd = os.open(record_path(home), os.O_WRONLY)
    except FileNotFoundError:
        write_record(home, ledger_id, seen)
        return
    try:
        if os.fstat(fd).st_size != RECORD_SIZE:
            raise FileNotFoundError  # not one we wrote: replace it whole
        os.pwrite(fd, _record_bytes(ledger_id, seen), 0)
    except FileNotFoundError:
        os.close(fd)
        write_record(home, ledger_id, seen)
        return
    os.close(fd)


class _Tracker:
    """Keeps the home's high-water mark up with the ledger, after every commit of a writing command."""

    def __init__(self, home: Path, ledger: Ledger, ledger_id: str, seen: HighWater) -> None:
        self.home, self.ledger, self.ledger_id, self.seen = home, ledger, ledger_id, seen
        self._failed = False

    def __call__(self) -> None:
        if self._failed:
            return
        try:
            mark = self.ledger.high_water()
            if mark == self.seen:
                return
            self.seen = self.seen.highest(mark)
            update_record(self.home, self.ledger_id, self.seen)
        except (OSError, LedgerError) as exc:  # a record that lags is only less sensitive; the write did commit
            self._failed = True
            why = exc.strerror if isinstance(exc, OSError) else exc.message
            from bulksend import output

            output.warn(f"cannot update {record_path(self.home)} ({why}); carrying on.")


# -------------------------------------------------------------------------------- earlier work in the home


def _names(home: Path, paths: list[Path], noun: str) -> str:
    shown = ", ".join(str(p.relative_to(home)) for p in paths[:3]) + (", …" if len(paths) > 3 else "")
    return f"{len(paths)} {noun}{'s' if len(paths) != 1 else ''} ({shown})"


def home_files(directory: Path, pattern: str) -> list[Path]:
    try:
        return sorted(p for p in directory.glob(pattern) if p.is_file())
    except OSError:
        return []


def journal_campaigns(home: Path) -> list[int]:
    """The campaign ids of the attempt journals in the home (a crashed run leaves one)."""
    return sorted(
        int(m.group(1)) for p in home_files(home / JOURNAL_DIR, "*.attempts") if (m := re.fullmatch(r"(\d+)\.attempts", p.name))
    )


def _outbox_files(home: Path) -> list[Path]:
    return [
        p for p in home_files(home / OUTBOX_DIR, "*.jsonl")
        if not p.name.endswith(".dry-run.jsonl") and p.stat().st_size > 0
    ]


def earlier_work(
    home: Path, record: HomeRecord | None = None, record_problem: str | None = None, own_lock: Path | None = None
) -> list[str]:
    """What in the home shows that a ledger was used here before (empty for a new home).

    ``own_lock`` is a lock file the calling run has just created: it shows only this run.
    """
    found = []
    if record is not None:
        found.append(f"the record {RECORD_FILE} ({record.describe()})")
    if record_problem:
        found.append(record_problem)
    if journals := home_files(home / JOURNAL_DIR, "*.attempts"):
        found.append(_names(home, journals, "attempt journal"))
    if locks := [p for p in home_files(home / LOCK_DIR, "*.lock") if p != own_lock]:
        found.append(_names(home, locks, "campaign lock file"))
    if outbox := _outbox_files(home):
        found.append(_names(home, outbox, "outbox file"))
    return found


def identity_problems(
    ledger: Ledger, home: Path, record: HomeRecord | None, record_problem: str | None = None
) -> list[str]:
    """Why ``ledger`` is not the one this home has been using (empty when it is)."""
    problems = []
    ledger_id = ledger.meta(LEDGER_ID)
    mark = ledger.high_water()
    if record_problem:
        problems.append(record_problem)
    if record is not None:
        if ledger_id != record.ledger_id:
            problems.append(
                f"it is {'ledger ' + ledger_id if ledger_id else 'a ledger without an identity'}, but this home "
                f"belongs to {record.describe()} (the ledger was replaced)"
            )
        elif behind := mark.behind(record.seen):
            problems.append(
                f"it is behind what this home has seen: {', '.join(behind)} (it was restored from an older copy, "
                "or its -wal file was lost)"
            )
    if beyond := [c for c in journal_campaigns(home) if c > mark.campaigns]:
        problems.append(
            f"attempt journals in {JOURNAL_DIR}/ name campaign{'s' if len(beyond) > 1 else ''} "
            f"{', '.join('#' + str(c) for c in beyond)}, which it does not have (it has campaigns up to "
            f"#{mark.campaigns})"
        )
    if record is None and mark.campaigns == 0 and not problems and (outbox := _outbox_files(home)):
        problems.append(f"it has no campaigns, but this home has {_names(home, outbox, 'outbox file')}")
    return problems


# ------------------------------------------------------------------------------------- opening the ledger


def open_for_write(config: "Config", *, create: bool = True, own_lock: Path | None = None) -> Ledger | None:
    """The ledger for a writing command; refuses (exit 1) a missing, empty, replaced or rolled-back ledger.

    A new home gets a new ledger (``create``; else None) and its record. The home's high-water mark then
    follows every commit. ``own_lock``: a campaign lock file this run created (a new home's first ``send``
    takes its lock before it opens the ledger), which is not earlier work.
    """
    home, path = config.home, ledgers.location(config)
    record, record_problem = read_record(home)
    state = refuse_fresh_start(config, record, record_problem, own_lock)
    if state != "present":
        if not create:
            return None
    ledger = ledgers.open_ledger(config)
    try:
        problems = identity_problems(ledger, home, record, record_problem)
        if problems:
            raise LedgerError(
                f"{path} is not the ledger this home has been using: {'; '.join(problems)}. With it, work already "
                "done could be done again (messages sent twice); nothing was done.",
                hint=restore_hint(config.invocation),
            )
        _track(ledger, home, record)
    except BaseException:
        ledger.close()
        raise
    return ledger


def refuse_fresh_start(
    config: "Config", record: HomeRecord | None = None, record_problem: str | None = None,
    own_lock: Path | None = None,
) -> str:
    """The ledger's state (``ledgers.probe``); LedgerError when it is missing or empty while the home shows
    earlier work (a new ledger there could send those campaigns again). ``own_lock``: see open_for_write."""
    if record is None and record_problem is None:
        record, record_problem = read_record(config.home)
    home, path = config.home, ledgers.location(config)
    state = ledgers.probe(config)
    if state != "present":
        evidence = earlier_work(home, record, record_problem, own_lock)
        wal = None if ledgers.server_url(config) else Path(f"{ledgers.ledger_file(config)}-wal")
        if wal is not None and wal.exists():  # SQLite would replay another database's log onto a new file
            evidence.append(f"a left-over {wal.name} file")
        if evidence:
            raise LedgerError(
                f"{path} is {state_words(state)}, but this home shows earlier work: {'; '.join(evidence)}. "
                "A new ledger here could send those campaigns again; nothing was done.",
                hint=restore_hint(config.invocation),
            )
    return state


def open_for_read(config: "Config") -> Ledger | None:
    """The ledger for a reading command (None when there is none); warns when it is not the home's own."""
    home, path = config.home, ledgers.location(config)
    record, record_problem = read_record(home)
    state = ledgers.probe(config)
    if state != "present":  # never create one (a 0-byte file would become a new ledger)
        evidence = earlier_work(home, record, record_problem)
        if evidence:
            _warn(f"{path} is {state_words(state)}, but this home shows earlier work: {'; '.join(evidence)}.")
        return None
    ledger = ledgers.open_existing(config)
    if ledger is None:  # removed since the probe
        return None
    try:
        if problems := identity_problems(ledger, home, record, record_problem):
            _warn(f"{path} is not the ledger this home has been using: {'; '.join(problems)}. What follows comes "
                  "from this ledger; writing commands refuse it until it is restored or adopted.")
    except BaseException:
        ledger.close()
        raise
    return ledger


def state_words(state: str) -> str:
    return "missing" if state == "missing" else "empty (0 bytes)"


def _warn(message: str) -> None:
    from bulksend import output

    output.warn(message)


def _track(ledger: Ledger, home: Path, record: HomeRecord | None) -> None:
    ledger_id = ledger.meta(LEDGER_ID)
    if ledger_id is None:  # a ledger from before identities: it becomes this home's
        import uuid

        ledger_id = str(uuid.uuid4())
        ledger.set_meta(LEDGER_ID, ledger_id)
    seen = ledger.high_water()
    if record is not None and record.ledger_id == ledger_id:
        seen = seen.highest(record.seen)
    if record is None or record.ledger_id != ledger_id or record.seen != seen:
        try:
            write_record(home, ledger_id, seen)
        except OSError as exc:
            raise LedgerError(
                f"{record_path(home)}: cannot record which ledger this home uses ({exc.strerror}); nothing was done.",
                hint="Make the home directory writable by this user (and the disk not full), then run the command again.",
            ) from None
    ledger.on_commit = _Tracker(home, ledger, ledger_id, seen)
