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
``adopt`` is the explicit way to accept the ledger as it is (or to start a new one).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from bulksend.errors import CampaignLocked, InputError, LedgerError
from bulksend.journal import JOURNAL_DIR
from bulksend.ledger import LEDGER_ID, AuditReport, HighWater, Ledger, SqliteLedger, utc_timestamp
from bulksend.locks import LOCK_DIR

if TYPE_CHECKING:  # pragma: no cover
    from bulksend.config import Config

RECORD_FILE = "ledger.id"
OUTBOX_DIR = "outbox"  # the outbox provider's default directory: its files are messages already "sent"

RESTORE_HINT = (
    "Restore the ledger from a backup (bulksend ledger restore FILE, then bulksend ledger "
    'check; see docs/ledger.md, "Backup and recovery"). Only if you accept that work recorded since may be '
    "done again: bulksend ledger adopt --yes"
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


def write_record(home: Path, ledger_id: str, seen: HighWater, *, durable: bool = True) -> None:
    """Replace the record atomically (owner-only). ``durable`` also syncs it to disk."""
    path = record_path(home)
    document = {
        "ledger_id": ledger_id,
        "campaigns": seen.campaigns,
        "transmissions": seen.transmissions,
        "movements": seen.movements,
        "updated_at": utc_timestamp(),
    }
    tmp = path.with_name(f".{RECORD_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (json.dumps(document, indent=1) + "\n").encode("ascii"))
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class _Tracker:
    """Keeps the home's high-water mark up with the ledger, after every commit of a writing command."""

    def __init__(self, home: Path, ledger: Ledger, ledger_id: str, seen: HighWater) -> None:
        self.home, self.ledger, self.ledger_id, self.seen = home, ledger, ledger_id, seen
        self._failed = False

    def __call__(self) -> None:
        mark = self.ledger.high_water()
        if mark == self.seen or self._failed:
            return
        self.seen = self.seen.highest(mark)
        try:
            write_record(self.home, self.ledger_id, self.seen, durable=False)
        except OSError as exc:  # a record that lags is only less sensitive; the run goes on
            self._failed = True
            from bulksend import output

            output.warn(f"cannot update {record_path(self.home)} ({exc.strerror}); the run goes on.")


# -------------------------------------------------------------------------------- earlier work in the home


def _names(home: Path, paths: list[Path], noun: str) -> str:
    shown = ", ".join(str(p.relative_to(home)) for p in paths[:3]) + (", …" if len(paths) > 3 else "")
    return f"{len(paths)} {noun}{'s' if len(paths) != 1 else ''} ({shown})"


def _files(directory: Path, pattern: str) -> list[Path]:
    try:
        return sorted(p for p in directory.glob(pattern) if p.is_file())
    except OSError:
        return []


def journal_campaigns(home: Path) -> list[int]:
    """The campaign ids of the attempt journals in the home (a crashed run leaves one)."""
    return sorted(
        int(m.group(1)) for p in _files(home / JOURNAL_DIR, "*.attempts") if (m := re.fullmatch(r"(\d+)\.attempts", p.name))
    )


def _outbox_files(home: Path) -> list[Path]:
    return [
        p for p in _files(home / OUTBOX_DIR, "*.jsonl")
        if not p.name.endswith(".dry-run.jsonl") and p.stat().st_size > 0
    ]


def earlier_work(home: Path, record: HomeRecord | None = None, record_problem: str | None = None) -> list[str]:
    """What in the home shows that a ledger was used here before (empty for a new home)."""
    found = []
    if record is not None:
        found.append(f"the record {RECORD_FILE} ({record.describe()})")
    if record_problem:
        found.append(record_problem)
    if journals := _files(home / JOURNAL_DIR, "*.attempts"):
        found.append(_names(home, journals, "attempt journal"))
    if locks := _files(home / LOCK_DIR, "*.lock"):
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


def open_for_write(config: "Config", *, create: bool = True) -> Ledger | None:
    """The ledger for a writing command; refuses (exit 1) a missing, empty, replaced or rolled-back ledger.

    A new home gets a new ledger (``create``; else None) and its record. The home's high-water mark then
    follows every commit.
    """
    home, path = config.home, config.ledger_path
    record, record_problem = read_record(home)
    state = SqliteLedger.probe(path)
    if state != "present":
        evidence = earlier_work(home, record, record_problem)
        if evidence:
            raise LedgerError(
                f"{path} is {_state_words(state)}, but this home shows earlier work: {'; '.join(evidence)}. "
                "A new ledger here could send those campaigns again; nothing was done.",
                hint=RESTORE_HINT,
            )
        if not create:
            return None
    ledger = SqliteLedger.open(path)
    try:
        problems = identity_problems(ledger, home, record, record_problem)
        if problems:
            raise LedgerError(
                f"{path} is not the ledger this home has been using: {'; '.join(problems)}. With it, work already "
                "done could be done again (messages sent twice); nothing was done.",
                hint=RESTORE_HINT,
            )
        _track(ledger, home, record)
    except BaseException:
        ledger.close()
        raise
    return ledger


def open_for_read(config: "Config") -> Ledger | None:
    """The ledger for a reading command (None when there is none); warns when it is not the home's own."""
    home, path = config.home, config.ledger_path
    record, record_problem = read_record(home)
    state = SqliteLedger.probe(path)
    if state != "present":  # never create one (a 0-byte file would become a new ledger)
        evidence = earlier_work(home, record, record_problem)
        if evidence:
            _warn(f"{path} is {_state_words(state)}, but this home shows earlier work: {'; '.join(evidence)}.")
        return None
    ledger = SqliteLedger.open(path, create=False)
    try:
        if problems := identity_problems(ledger, home, record, record_problem):
            _warn(f"{path} is not the ledger this home has been using: {'; '.join(problems)}. What follows comes "
                  "from this ledger; writing commands refuse it until it is restored or adopted.")
    except BaseException:
        ledger.close()
        raise
    return ledger


def _state_words(state: str) -> str:
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
        write_record(home, ledger_id, seen)
    ledger.on_commit = _Tracker(home, ledger, ledger_id, seen)


# ------------------------------------------------------------------------------ check, backup, adopt, restore


@dataclass
class CheckReport:
    """``ledger check``: the storage's integrity, the credit audit, and whether this is the home's ledger."""

    location: str
    state: str  # missing, empty, present
    ledger_id: str | None = None
    high_water: HighWater | None = None
    record: HomeRecord | None = None
    identity: list[str] = field(default_factory=list)
    integrity: list[str] = field(default_factory=list)
    audit: AuditReport | None = None

    @property
    def problems(self) -> list[str]:
        audit = list(self.audit.differences) if self.audit else []
        return [f"identity: {p}" for p in self.identity] + [f"integrity: {p}" for p in self.integrity] + [
            f"audit: {d}" for d in audit if not d.startswith("database integrity:") or not self.integrity
        ]

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict:
        mark = self.high_water
        return {
            "ok": self.ok,
            "ledger": self.location,
            "state": self.state,
            "ledger_id": self.ledger_id,
            "high_water": None if mark is None else {
                "campaigns": mark.campaigns, "transmissions": mark.transmissions, "movements": mark.movements,
            },
            "home_record": None if self.record is None else {
                "ledger_id": self.record.ledger_id, "campaigns": self.record.seen.campaigns,
                "transmissions": self.record.seen.transmissions, "movements": self.record.seen.movements,
            },
            "integrity": self.integrity,
            "audit": None if self.audit is None else {
                "consistent": self.audit.consistent, "differences": list(self.audit.differences),
            },
            "identity": self.identity,
            "problems": self.problems,
        }


def check(config: "Config") -> CheckReport:
    """Integrity, audit and identity of the home's ledger; never writes."""
    home, path = config.home, config.ledger_path
    record, record_problem = read_record(home)
    state = SqliteLedger.probe(path)
    report = CheckReport(str(path), state, record=record)
    if state != "present":
        if evidence := earlier_work(home, record, record_problem):
            report.identity.append(f"the ledger is {_state_words(state)}, but this home shows earlier work: "
                                   + "; ".join(evidence))
        return report
    try:
        with SqliteLedger.open(path, create=False) as ledger:
            report.integrity = ledger.integrity()
            if report.integrity:  # the rest would read damaged pages
                return report
            report.ledger_id = ledger.meta(LEDGER_ID)
            report.high_water = ledger.high_water()
            report.identity = identity_problems(ledger, home, record, record_problem)
            report.audit = ledger.audit()
    except LedgerError as exc:  # damaged beyond what the check itself can read: that is the finding
        report.integrity.append(exc.message)
    return report


def backup(config: "Config", target: Path) -> Path:
    """Write a consistent copy of the ledger to ``target`` (a file, or a directory for a dated file in it)."""
    target = Path(target).expanduser()
    if target.is_dir():
        target = target / f"ledger-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}.db"
    elif not target.parent.is_dir():
        raise InputError(f"{target}: the directory {target.parent} does not exist.")
    ledger = open_for_read(config)
    if ledger is None:
        raise LedgerError(f"{config.ledger_path}: there is no ledger to back up.")
    with ledger:
        ledger.backup(target)
    return target


@dataclass(frozen=True)
class AdoptReport:
    ledger_id: str
    high_water: HighWater
    previous: HomeRecord | None
    created: bool
    journals_moved_to: Path | None


def adopt(config: "Config") -> AdoptReport:
    """Make the ledger as it is (a new one when missing or empty) this home's; move attempt journals aside."""
    home, path = config.home, config.ledger_path
    previous, _ = read_record(home)
    created = SqliteLedger.probe(path) != "present"
    with SqliteLedger.open(path) as ledger:
        ledger_id = ledger.meta(LEDGER_ID)
        if ledger_id is None:
            import uuid

            ledger_id = str(uuid.uuid4())
            ledger.set_meta(LEDGER_ID, ledger_id)
        mark = ledger.high_water()
    moved_to = None
    journals = _files(home / JOURNAL_DIR, "*.attempts")
    if journals:  # they explain another ledger's rows (campaign ids are reused by a new ledger)
        moved_to = home / JOURNAL_DIR / f"set-aside-{_stamp()}"
        moved_to.mkdir(mode=0o700, parents=True, exist_ok=True)
        for journal in journals:
            os.replace(journal, moved_to / journal.name)
    write_record(home, ledger_id, mark)
    return AdoptReport(ledger_id, mark, previous, created, moved_to)


@dataclass(frozen=True)
class RestoreReport:
    source: Path
    aside: Path | None
    check: CheckReport


def restore(config: "Config", source: Path) -> RestoreReport:
    """Install a backup as the home's ledger (the current one is kept aside), refused while a run holds a lock."""
    home, path = config.home, config.ledger_path
    source = Path(source).expanduser()
    if not source.is_file():
        raise InputError(f"{source}: no such backup file.")
    held = _hold_every_lock(home)
    try:
        aside = None
        if SqliteLedger.probe(path) != "missing":
            aside = path.with_name(f"{path.name}.before-restore-{_stamp()}.bak")
        SqliteLedger.install(path, source, aside or path.with_name(f"{path.name}.unused"))
    finally:
        for fd in held:
            os.close(fd)
    return RestoreReport(source, aside, check(config))


def _hold_every_lock(home: Path) -> list[int]:
    """Take every campaign lock without waiting (so no run starts meanwhile), or CampaignLocked (exit 5)."""
    held: list[int] = []
    try:
        for lock in _files(home / LOCK_DIR, "*.lock"):
            fd = os.open(lock, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
                os.close(fd)
                raise CampaignLocked(
                    f"a run holds {lock.relative_to(home)}{' (pid ' + holder[0] + ')' if holder else ''}: restoring "
                    "the ledger under it would lose what it records. Nothing was changed.",
                    hint="Let it finish (or stop it with Ctrl-C), then restore.",
                ) from None
            held.append(fd)
    except BaseException:
        for fd in held:
            os.close(fd)
        raise
    return held


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
