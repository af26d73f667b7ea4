"""The domain exception hierarchy; each error carries the exit code the design brief gives it."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes scripts depend on (DESIGN.md, "Exit codes")."""

    OK = 0
    ERROR = 1
    USAGE = 2
    CREDITS = 3
    INCOMPLETE = 4
    LOCKED = 5
    CONFIG = 6
    INTERRUPTED = 130


class BulksendError(Exception):
    """Base of every error bulksend reports to the user as one line, with an exit code."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class InputError(BulksendError):
    """Bad input: an unreadable or malformed file, a missing column, an unknown merge field, a bad flag value."""

    exit_code = ExitCode.USAGE


class ConfigError(BulksendError):
    """Missing or invalid configuration, or missing credentials."""

    exit_code = ExitCode.CONFIG


class InsufficientCredits(BulksendError):
    """Not enough credits for the operation, or a balance below --fail-below."""

    exit_code = ExitCode.CREDITS


class CampaignLocked(BulksendError):
    """Another run holds the campaign's lock."""

    exit_code = ExitCode.LOCKED


class ProviderError(BulksendError):
    """A provider could not be reached or refused a call that is not about one recipient."""

    exit_code = ExitCode.ERROR


class LedgerError(BulksendError):
    """The ledger is inconsistent or cannot be used."""

    exit_code = ExitCode.ERROR
