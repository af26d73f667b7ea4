"""Looking after the home's ledger: ``ledger check``, ``backup``, ``restore`` and ``adopt``.

Each works through the ``Ledger`` interface (integrity, audit, high-water mark, backup) and the home's
record (bulksend.ledger_guard); only ``restore`` installs a file, through the SQLite ledger's ``install``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from bulksend.errors import CampaignLocked, InputError, LedgerError
from bulksend.journal import JOURNAL_DIR
from bulksend import ledger as ledgers
from bulksend.ledger import LEDGER_ID, AuditReport, HighWater, SqliteLedger
from bulksend.ledger_guard import (
    HomeRecord,
    earlier_work,
    home_files,
    identity_problems,
    open_for_read,
    read_record,
    state_words,
    write_record,
)
from bulksend.locks import LOCK_DIR

if TYPE_CHECKING:  # pragma: no cover
    from bulksend.config import Config




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
    home = config.home
    record, record_problem = read_record(home)
    state = ledgers.probe(config)
    report = CheckReport(ledgers.location(config), state, record=record)
    if state != "present":
        if evidence := earlier_work(home, record, record_problem):
            report.identity.append(f"the ledger is {state_words(state)}, but this home shows earlier work: "
                                   + "; ".join(evidence))
        return report
    try:
        ledger = ledgers.open_existing(config)
        if ledger is None:  # removed since the probe
            report.state = "missing"
            return report
        with ledger:
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
    if url := ledgers.server_url(config):  # the server's own tools, without connecting
        from bulksend.stores.base import scrub_url
        from bulksend.stores.postgres import backup_refusal

        raise backup_refusal(scrub_url(url))
    target = Path(target).expanduser()
    if target.is_dir():
        target = target / f"ledger-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}.db"
    elif not target.parent.is_dir():
        raise InputError(f"{target}: the directory {target.parent} does not exist.")
    ledger = open_for_read(config)
    if ledger is None:
        raise LedgerError(f"{ledgers.location(config)}: there is no ledger to back up.")
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
    home = config.home
    previous, _ = read_record(home)
    created = ledgers.probe(config) != "present"
    with ledgers.open_ledger(config) as ledger:
        ledger_id = ledger.meta(LEDGER_ID)
        if ledger_id is None:
            import uuid

            ledger_id = str(uuid.uuid4())
            ledger.set_meta(LEDGER_ID, ledger_id)
        mark = ledger.high_water()
    moved_to = None
    journals = home_files(home / JOURNAL_DIR, "*.attempts")
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
    if url := ledgers.server_url(config):
        from bulksend.stores.base import scrub_url

        raise InputError(
            f"the ledger at {scrub_url(url)} is on a PostgreSQL server: restore it with the server's own tools; "
            "nothing was changed.",
            hint="e.g. pg_restore --clean --dbname DBNAME ledger.dump, then: bulksend ledger check "
            '(see docs/ledger.md, "Backup and recovery").',
        )
    home, path = config.home, ledgers.ledger_file(config)
    source = Path(source).expanduser()
    if not source.is_file():
        raise InputError(f"{source}: no such backup file.")
    held = _hold_every_lock(home)
    try:
        aside = path.with_name(f"{path.name}.before-restore-{_stamp()}.bak")
        SqliteLedger.install(path, source, aside)
        if not aside.exists():
            aside = None
    finally:
        for lock in held:
            lock.release()
    return RestoreReport(source, aside, check(config))


def _hold_every_lock(home: Path) -> list:
    """Take every campaign lock without waiting (so no run starts meanwhile), or CampaignLocked (exit 5)."""
    from filelock import FileLock, Timeout

    from bulksend.locks import _holder, holder_path

    held: list = []
    try:
        for path in home_files(home / LOCK_DIR, "*.lock"):
            lock = FileLock(path, mode=0o600, thread_local=False)
            try:
                lock.acquire(blocking=False)
            except Timeout:
                raise CampaignLocked(
                    f"a run holds {path.relative_to(home)}{_holder(holder_path(path))}: restoring "
                    "the ledger under it would lose what it records. Nothing was changed.",
                    hint="Let it finish (or stop it with Ctrl-C), then restore.",
                ) from None
            held.append(lock)
    except BaseException:
        for lock in held:
            lock.release()
        raise
    return held


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
