"""What a marketing SMS must carry, and what carriers filter: the opt-out instruction, its footer, link shorteners.

A campaign's ``purpose`` is ``marketing`` (the default) or ``transactional``. A marketing SMS must tell its
reader how to opt out: a STOP keyword written in capitals (STOP, "Reply STOP", "text STOP to…", or the
European keywords below), or whatever ``[compliance] optout_pattern`` matches. When the message has none,
``[compliance] footer`` (default "Reply STOP to opt out") is appended on a line of its own, so that it is
rendered, counted in segments and priced like the rest of the message. With the footer off (``""``) such
a message cannot be sent (``send`` exits 2). Transactional messages and WhatsApp are left as written.

Public link shorteners are warned about: carriers filter messages that carry them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bulksend.errors import ConfigError, InputError

PURPOSES = ("marketing", "transactional")
DEFAULT_FOOTER = "Reply STOP to opt out"
#: Opt-out keywords that count as an instruction when written in capitals, as a whole word. Lower-case
#: "stop" is an ordinary word ("stop by our store") and says nothing about opting out.
STOP_KEYWORDS = ("STOP", "STOPP", "STOPALL", "UNSUBSCRIBE", "ARRET", "ARRÊT", "BAJA", "PARAR", "SAIR")
_STOP = re.compile(r"(?<!\w)(?:" + "|".join(STOP_KEYWORDS) + r")(?!\w)")
#: Public shorteners carriers filter (their links hide where they lead, so spam uses them).
SHORTENERS = (
    "bit.ly", "tinyurl.com", "goo.gl", "t.co", "ow.ly", "is.gd", "buff.ly", "cutt.ly", "rebrand.ly",
    "shorturl.at", "tiny.cc", "rb.gy", "t.ly", "bl.ink", "s.id", "lnkd.in", "v.gd", "shorte.st", "adf.ly",
)
_SHORTENER = re.compile(
    r"(?<![\w.-])(" + "|".join(re.escape(s) for s in SHORTENERS) + r")(?![\w-]|\.\w)", re.IGNORECASE
)


@dataclass(frozen=True)
class MessageCompliance:
    """What was decided about a campaign's message before it is rendered."""

    purpose: str
    channel: str
    footer: str | None = None  # the footer appended (None: nothing appended)
    missing_optout: bool = False  # a marketing SMS with no opt-out instruction and the footer off
    shorteners: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"purpose": self.purpose, "footer": self.footer, "shorteners": list(self.shorteners)}


def check_purpose(purpose: str | None, where: str = "--purpose") -> str:
    if purpose is None:
        return "marketing"
    value = purpose.strip().lower()
    if value not in PURPOSES:
        raise InputError(f"{where} {purpose!r}: choose marketing or transactional.")
    return value


def settings(section: dict[str, Any], where: str = "config.toml [compliance]") -> tuple[str, re.Pattern | None]:
    """The footer (``""``: off) and the user's opt-out pattern, from ``[compliance]``."""
    footer = section.get("footer", DEFAULT_FOOTER)
    pattern = section.get("optout_pattern")
    compiled = None
    if pattern:
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"{where}: optout_pattern {pattern!r} is not a regular expression ({exc}).",
                              hint='For example: optout_pattern = "(?i)text NO to 12345".') from None
    return footer.strip(), compiled


def has_optout(text: str, pattern: re.Pattern | None = None) -> bool:
    """Whether ``text`` tells its reader how to opt out."""
    return bool(_STOP.search(text)) or (pattern is not None and bool(pattern.search(text)))


def shorteners_in(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(m.group(1).lower() for m in _SHORTENER.finditer(text)))


def apply(text: str, *, channel: str, purpose: str, section: dict[str, Any]) -> tuple[str, MessageCompliance]:
    """The template text to render (with the footer when one is due) and what was decided.

    ``text`` is the template's source (merge fields in braces); the footer is appended as literal text.
    """
    footer, pattern = settings(section)
    shortened = shorteners_in(text)
    if channel != "sms" or purpose != "marketing" or has_optout(text, pattern):
        return text, MessageCompliance(purpose, channel, shorteners=shortened)
    if not footer:
        return text, MessageCompliance(purpose, channel, missing_optout=True, shorteners=shortened)
    literal = footer.replace("{", "{{").replace("}", "}}")
    return f"{text}\n{literal}", MessageCompliance(purpose, channel, footer=footer, shorteners=shortened)


def missing_optout_error(origin: str) -> InputError:
    return InputError(
        f"the marketing SMS in {origin} does not say how to opt out, and [compliance] footer is off; "
        "nothing was sent.",
        hint='Add an instruction such as "Reply STOP to opt out" to the message, set [compliance] footer in '
        "config.toml, or send it with --purpose transactional when it is not marketing.",
    )


def shortener_warning(compliance: MessageCompliance) -> str | None:
    if not compliance.shorteners:
        return None
    return (
        f"the message links through {', '.join(compliance.shorteners)}: carriers often filter public link "
        "shorteners. Use a link on your own domain."
    )
