"""The next commands bulksend suggests: built from the options the user gave, shell-quoted, runnable as printed.

Every "Next: …", "To send it: …" and "resume with …" line comes from here, so that a hint carries the
flags that decide what the command does (the list, how it is read, the message, how it is priced and
sent, ``--home``) and drops or adds only what must change (``--dry-run`` goes, ``--yes`` comes).
Output flags (``--json``, ``--quiet``) and ``--debug`` are never carried: they change how a command
speaks, not what it does. Words are quoted with :func:`shlex.join`, so a pasted hint runs as printed.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from typing import Any

PROGRAM = "bulksend"

#: How a list is read (validate, estimate and send spell these alike): parameter name → flag.
READ_FLAGS = {
    "phone_column": "--phone-column",
    "consent_column": "--consent-column",
    "assume_consent": "--assume-consent",
    "region": "--region",
    "countries": "--countries",
    "allow_landline": "--allow-landline",
    "channel": "--channel",
    "encoding": "--encoding",
    "delimiter": "--delimiter",
}
#: The message and its price (estimate and send).
MESSAGE_FLAGS = {
    "message": "--message",
    "template": "--template",
    "max_segments": "--max-segments",
    "smart_encoding": "--smart-encoding",
    "rates": "--rates",
    "purpose": "--purpose",
    "allow_content": "--allow-content",
}
#: How a campaign is sent (send only).
SEND_FLAGS = {
    "name": "--name",
    "provider": "--provider",
    "sender": "--sender",
    "limit": "--limit",
    "rate": "--rate",
    "concurrency": "--concurrency",
    "batch_size": "--batch-size",
    "max_attempts": "--max-attempts",
    "retry_unknown": "--retry-unknown",
    "service_window": "--service-window",
}
#: Values that are the commands' defaults: leaving them out changes nothing and keeps the hint short.
_DEFAULTS = {"channel": "sms"}
#: The placeholder a "price a message" hint uses: it runs as printed, and reads as a placeholder.
PLACEHOLDER_MESSAGE = "Your message"
#: The file a hint names for a list that came from a pipe or stdin (which cannot be read a second time).
SAVED_LIST = "list.csv"


def reread(path: str | PathLike) -> tuple[str | PathLike, str]:
    """The list a hint that reads it again should name, and what the user must do first.

    A list read from ``-``, a pipe or a FIFO is gone once read: such a hint names :data:`SAVED_LIST` and
    says to save the list there first, instead of suggesting a command that would wait on the terminal.
    """
    from bulksend.files import is_stream

    if is_stream(path):
        return SAVED_LIST, f"save the list as {SAVED_LIST} (it was read from a pipe and cannot be read again), then "
    return path, ""


def flags(values: Mapping[str, Any], spelling: Mapping[str, str]) -> list[str]:
    """The command-line words for the options set in ``values`` (None, False and defaults are left out)."""
    words: list[str] = []
    for key, flag in spelling.items():
        value = values.get(key)
        if value is None or value is False or _DEFAULTS.get(key) == value:
            continue
        if value is True:
            words.append(flag)
        elif isinstance(value, (list, tuple)):  # a repeatable option
            for item in value:
                words += [flag, str(item)]
        elif str(value).startswith("-"):  # "--message=-50% today": never read as a flag
            words.append(f"{flag}={value}")
        else:
            words += [flag, str(value)]
    return words


@dataclass(frozen=True)
class Invocation:
    """What of the way bulksend was started every hint must repeat: ``--home``, when it was given as a flag.

    A home chosen with ``BULKSEND_HOME`` carries itself (the shell still has it); the platform default
    needs nothing.
    """

    home: str | None = None
    ledger: str | None = None  # --ledger URL, when given as a flag (a URL with a password is never repeated)

    def command(self, *words: str | int | PathLike) -> str:
        """``bulksend [--home H] [--ledger URL] WORDS…``, shell-quoted."""
        prefix = [PROGRAM] + (["--home", self.home] if self.home is not None else [])
        prefix += ["--ledger", self.ledger] if self.ledger is not None else []
        return shlex.join([*prefix, *(str(w) for w in words)])

    # --- the hints themselves ------------------------------------------------------------------------

    def validate_rejects(self, path: str | PathLike, values: Mapping[str, Any], rejects: str = "rejects.csv") -> str:
        """Write every reject of the list, read the same way."""
        return self.command("validate", path, *flags(values, READ_FLAGS), "--rejects", rejects)

    def estimate(self, path: str | PathLike, values: Mapping[str, Any]) -> str:
        """Price a (placeholder) message for the list, read the same way."""
        return self.command("estimate", path, *flags(values, READ_FLAGS), "--message", PLACEHOLDER_MESSAGE)

    def send(self, path: str | PathLike, values: Mapping[str, Any], *, yes: bool = False, dry_run: bool = False) -> str:
        """Send the list or campaign file with the same options (``--dry-run`` and ``--yes`` only on request)."""
        words = [*flags(values, READ_FLAGS), *flags(values, MESSAGE_FLAGS), *flags(values, SEND_FLAGS)]
        return self.command("send", path, *words, *(["--yes"] if yes else []), *(["--dry-run"] if dry_run else []))

    def resume(self, campaign: str, values: Mapping[str, Any] | None = None) -> str:
        """Resume a campaign without asking, with the run options given (``--limit``, ``--rate``…), if any."""
        return self.command("campaigns", "resume", campaign, *flags(values or {}, SEND_FLAGS), "--yes")

    def reconcile(self, campaign: str) -> str:
        return self.command("campaigns", "reconcile", campaign)

    def show(self, campaign: str | int) -> str:
        return self.command("campaigns", "show", campaign)

    def campaigns(self) -> str:
        return self.command("campaigns", "list")

    def topup(self, amount: int, channel: str) -> str:
        return self.command("credits", "topup", amount, "--channel", channel)

    def help(self, *words: str) -> str:
        return self.command(*words, "--help")

    def login(self, profile: str) -> str:
        return self.command("provider", "login", profile)

    def providers(self) -> str:
        return self.command("provider", "list")

    def ledger_check(self) -> str:
        return self.command("ledger", "check")

    def ledger_restore(self, backup: str | PathLike = "FILE") -> str:
        """Put a backup back (``FILE`` stands for the user's newest backup when none is known)."""
        return self.command("ledger", "restore", backup, "--yes")

    def ledger_adopt(self) -> str:
        return self.command("ledger", "adopt", "--yes")


# How this process was started, for the hints of code that has no Config at hand (the storage's error
# boundary, credential look-ups, provider checks run on worker threads). Set by the CLI's root command for
# the length of one command; a plain module global rather than a ContextVar, so worker threads see it too.
_current = Invocation()


def current() -> Invocation:
    """The invocation of the command being run (no ``--home`` outside one)."""
    return _current


def use(invocation: Invocation | None) -> None:
    """Make ``invocation`` the one :func:`current` returns (None: back to the default)."""
    global _current
    _current = invocation if invocation is not None else Invocation()
