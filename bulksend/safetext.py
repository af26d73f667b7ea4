"""Text from outside (provider answers, transport errors) made safe to store and print: printable, one line, short."""

from __future__ import annotations

import re
from typing import Any

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


# Everything up to the last "@" of the authority: a password may hold an "@" of its own.
_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/\s?#@]*(?:@[^/\s?#@]*)*@", re.IGNORECASE)


def scrub_url(text: str | None) -> str | None:
    """``text`` with the user and password of every URL in it replaced (``https://***@host/…``).

    For anything shown or stored that may hold a URL: a provider's ``base_url``, a ledger URL, an error.
    """
    if text is None:
        return None
    return _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}***@", text)


def scrub_urls(value: Any) -> Any:
    """``value`` (settings: strings, lists, tables) with :func:`scrub_url` applied to every string in it."""
    if isinstance(value, str):
        return scrub_url(value)
    if isinstance(value, dict):
        return {key: scrub_urls(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub_urls(item) for item in value)
    return value
