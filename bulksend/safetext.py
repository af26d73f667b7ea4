"""Text from outside (provider answers, transport errors) made safe to store and print: printable, one line, short."""

from __future__ import annotations

import re

#: The longest outside text kept in the ledger or shown on a terminal.
MAX_TEXT = 500

# ANSI/VT escape sequences (CSI … final byte, OSC … BEL/ST, and two-byte ESC x) go whole, not just their ESC.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?|\x9b[0-?]*[ -/]*[@-~]")
# C0 and C1 controls, DEL, the replacement character left by invalid UTF-8, bidi overrides and zero-width marks
# that can make a terminal line lie about its content.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffd\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def printable(text: str | bytes | None, limit: int = MAX_TEXT) -> str | None:
    """``text`` without escape sequences, control characters or invalid bytes, on one line, cut to ``limit``."""
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = _ESCAPES.sub("", text)
    text = _UNPRINTABLE.sub("", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
