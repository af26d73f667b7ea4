"""Everything bulksend prints: data to stdout (human or --json), progress and diagnostics to stderr.

rich is imported lazily so that quick commands used by scripts (``balance --json``) start fast.
Colour and progress bars follow rich's own detection: only on a terminal, never with NO_COLOR.
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console


@lru_cache(maxsize=None)
def _console(stderr: bool, stream_id: int) -> "Console":
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def stdout() -> "Console":
    """The console for a command's human-readable result."""
    return _console(False, id(sys.stdout))


def stderr() -> "Console":
    """The console for progress, warnings and errors."""
    return _console(True, id(sys.stderr))


def emit_json(document: Any) -> None:
    """Write one JSON document to stdout (the only thing on stdout under --json)."""
    sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2, default=str))
    sys.stdout.write("\n")
    sys.stdout.flush()


def note(message: str) -> None:
    """A diagnostic line on stderr (plain text; rich markup is not interpreted)."""
    stderr().print(message, markup=False)


def warn(message: str) -> None:
    """A warning line on stderr."""
    from rich.text import Text

    stderr().print(Text("Warning: ", style="yellow bold") + Text(message))


def error(message: str, hint: str | None = None) -> None:
    """The one-line error the CLI boundary prints, with an optional hint of what to do."""
    from rich.text import Text

    stderr().print(Text("Error: ", style="red bold") + Text(message))
    if hint:
        stderr().print(Text(hint, style="dim"))


def is_terminal() -> bool:
    """True when stdin and stdout are both interactive (a person is at a terminal)."""
    return sys.stdin.isatty() and sys.stdout.isatty()
