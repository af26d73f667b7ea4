"""The SQLite ledger's error boundary: a connection whose storage failures arrive as LedgerError naming the cause.

Every statement the SQLite ledger runs goes through :func:`connect`'s connection and its cursors, so a
damaged page, a read-only file, a full disk or a lock held too long surfaces from whichever operation met
it as one ``LedgerError`` (exit 1) that keeps SQLite's own words ("database or disk is full") and says what
to do. Errors that are not about the storage (a constraint, a misuse of the API, SQL that does not parse)
are left alone: those are bugs, and the CLI boundary reports them as such.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bulksend import hints
from bulksend.errors import LedgerError

RECOVERY_DOC = 'docs/ledger.md, "Backup and recovery"'

# Primary result codes (https://sqlite.org/rescode.html); extended codes keep these in their low byte.
_PERM, _BUSY, _LOCKED, _NOMEM, _READONLY, _IOERR, _CORRUPT = 3, 5, 6, 7, 8, 10, 11
_FULL, _CANTOPEN, _PROTOCOL, _NOLFS, _NOTADB = 13, 14, 15, 22, 26


def ledger_error(exc: sqlite3.Error, path: Path | str) -> LedgerError | None:
    """The LedgerError a storage failure means, or None for an error that is not about the storage (a bug)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return None
    primary = code & 0xFF
    if primary in (_CORRUPT, _NOTADB):
        return LedgerError(
            f"{path}: the ledger is damaged ({exc}).",
            hint=f"Stop every run, then restore the newest backup with: {hints.current().ledger_restore()} "
            f"(see {RECOVERY_DOC}). To see what is damaged: {hints.current().ledger_check()}",
        )
    if primary == _FULL:
        return LedgerError(
            f"{path}: cannot write the ledger: {exc}; the operation was rolled back, nothing of it was recorded.",
            hint="Free some space on the disk that holds the ledger (its -wal file grows first), then run the "
            "same command again.",
        )
    if primary in (_READONLY, _PERM):
        return LedgerError(
            f"{path}: cannot write the ledger: {exc}.",
            hint="Make the ledger, its -wal and -shm files and their directory writable by this user (and the "
            "disk mounted read-write), then run the same command again.",
        )
    if primary == _CANTOPEN:
        return LedgerError(
            f"{path}: cannot open the ledger: {exc}.",
            hint="Check that the directory exists and that this user can read and write it.",
        )
    if primary in (_BUSY, _LOCKED, _PROTOCOL):
        return LedgerError(
            f"{path}: the ledger is busy: {exc} (another process kept it locked).",
            hint="Try again when the other bulksend command has finished.",
        )
    if primary in (_IOERR, _NOLFS, _NOMEM):
        return LedgerError(
            f"{path}: cannot read or write the ledger: {exc}.",
            hint=f"Check the disk (free space, errors in the system log), then run: {hints.current().ledger_check()}",
        )
    return None


class _Cursor(sqlite3.Cursor):
    def execute(self, *args):
        try:
            return super().execute(*args)
        except sqlite3.Error as exc:
            _reraise(exc, self.connection)

    def executemany(self, *args):
        try:
            return super().executemany(*args)
        except sqlite3.Error as exc:
            _reraise(exc, self.connection)

    def fetchone(self):
        try:
            return super().fetchone()
        except sqlite3.Error as exc:
            _reraise(exc, self.connection)

    def fetchmany(self, *args):
        try:
            return super().fetchmany(*args)
        except sqlite3.Error as exc:
            _reraise(exc, self.connection)

    def fetchall(self):
        try:
            return super().fetchall()
        except sqlite3.Error as exc:
            _reraise(exc, self.connection)

    def __next__(self):
        try:
            return super().__next__()
        except sqlite3.Error as exc:
            _reraise(exc, self.connection)


class LedgerConnection(sqlite3.Connection):
    """A connection whose statements, cursors and commits raise LedgerError for storage failures."""

    ledger_path: Path | str = "ledger"

    def cursor(self, factory=_Cursor):  # noqa: D102 - sqlite3's own signature
        return super().cursor(factory)

    def execute(self, *args):
        cursor = self.cursor()
        cursor.execute(*args)
        return cursor

    def executemany(self, *args):
        cursor = self.cursor()
        cursor.executemany(*args)
        return cursor

    def executescript(self, script):
        try:
            return super().executescript(script)
        except sqlite3.Error as exc:
            _reraise(exc, self)

    def commit(self):
        try:
            return super().commit()
        except sqlite3.Error as exc:
            _reraise(exc, self)


def _reraise(exc: sqlite3.Error, connection: sqlite3.Connection) -> None:
    converted = ledger_error(exc, getattr(connection, "ledger_path", "ledger"))
    if converted is None:
        raise exc
    raise converted from exc


def connect(uri: str, path: Path, **kwargs) -> LedgerConnection:
    """``sqlite3.connect(uri, uri=True, **kwargs)`` with the ledger's error boundary; ``path`` names it in errors."""
    try:
        conn = sqlite3.connect(uri, uri=True, factory=LedgerConnection, **kwargs)
    except sqlite3.Error as exc:
        converted = ledger_error(exc, path)
        if converted is None:
            raise
        raise converted from exc
    conn.ledger_path = path
    return conn
