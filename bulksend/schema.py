"""What config.toml and campaign files may hold: each key's type and allowed range, in declarative tables.

To add a key, add one line to the table of its section (``CONFIG_SECTIONS``, ``PROFILE_KEYS`` /
``PROFILE_TYPE_KEYS``, or ``campaign.CAMPAIGN_KEYS`` for campaign files, which uses the same ``Key`` limits
through ``RUN_LIMITS``). A new section is one new entry in ``CONFIG_SECTIONS``.

Rules (docs/configuration.md): a known key with a value of the wrong type or outside its range is an
error naming the file, the key and what is allowed; numbers must be finite (no nan or inf). An unknown key
is a warning (a newer bulksend may know it), unless it is so close to a known key that it is surely a typo
(``concurency``): then it is an error, since a silently ignored limit is worse than a refused file.

Hand-written rather than msgspec or pydantic: the checks needed (finite numbers, inclusive and exclusive
bounds, typo detection, warnings rather than errors for unknown keys, messages in the user's terms with the
file and key) are the part those libraries would not do for us, and this costs no start-up time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: Kinds of value: "text", "integer", "number" (integer or decimal), "bool", "texts" (a list of text),
#: "table", "list", "any". A tuple of kinds allows any of them.
_KIND_NAMES = {
    "text": "text",
    "integer": "a whole number",
    "number": "a number",
    "bool": "true or false",
    "texts": 'a list of text, like ["a", "b"]',
    "table": "a table",
    "list": "a list",
    "any": "any value",
}
# How close (difflib ratio) an unknown key must be to a known one to be refused as a typo.
TYPO_CUTOFF = 0.8


@dataclass(frozen=True)
class Key:
    """One key: its kind, what it means, and (for numbers) the allowed range; ``above``: the low end is excluded."""

    kind: str | tuple[str, ...]
    what: str
    low: float | None = None
    high: float | None = None
    above: bool = False
    pattern: str | None = None  # a regular expression a text value must match in full
    pattern_text: str | None = None  # how that pattern is said to the user

    def allowed(self) -> str:
        """What may be given, in words: 'a whole number from 1 to 1,000'."""
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        text = " or ".join(_KIND_NAMES[k] for k in kinds)
        if self.pattern_text:
            text = self.pattern_text
        if self.low is not None and self.high is not None:
            if self.above:
                text += f" greater than {_num(self.low)} and at most {_num(self.high)}"
            else:
                text += f" from {_num(self.low)} to {_num(self.high)}"
        elif self.low is not None:
            text += f" greater than {_num(self.low)}" if self.above else f" of at least {_num(self.low)}"
        elif self.high is not None:
            text += f" of at most {_num(self.high)}"
        return text

    def problem(self, value: Any) -> str | None:
        """None when ``value`` fits; else what is wrong with it, in words."""
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        if not any(_is_kind(value, k) for k in kinds):
            return f"must be {self.allowed()}, not {shown(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be {self.allowed()}, not {shown(value)}"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            too_low = self.low is not None and (value <= self.low if self.above else value < self.low)
            too_high = self.high is not None and value > self.high
            if too_low or too_high:
                return f"must be {self.allowed()}, not {shown(value)}"
        if self.pattern is not None and isinstance(value, str) and not re.fullmatch(self.pattern, value):
            return f"must be {self.allowed()}, not {shown(value)}"
        return None


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "any":
        return True
    if kind == "text":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "table":
        return isinstance(value, Mapping)
    if kind == "list":
        return isinstance(value, list)
    if kind == "texts":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    raise ValueError(f"unknown kind {kind!r}")  # pragma: no cover - a mistake in a table above


def _num(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def shown(value: Any, limit: int = 40) -> str:
    """A value as a user wrote it in TOML, cut short: never echo a whole pasted blob."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and math.isnan(value):
        text = "nan"
    elif isinstance(value, float) and math.isinf(value):
        text = "inf" if value > 0 else "-inf"
    elif isinstance(value, Mapping):
        text = "a table"
    elif isinstance(value, list) and any(not isinstance(v, (str, int, float, bool)) for v in value):
        text = "a list of tables" if value and all(isinstance(v, Mapping) for v in value) else "a list"
    elif isinstance(value, str):
        text = repr(value)
    else:
        text = repr(value)
    return clip(text, limit)


def clip(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when something was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- limits shared by profiles, campaign files and flags -------------------------------------------------

RATE = Key("number", "messages per second, 0 for no limit", 0, 100_000)
CONCURRENCY = Key("integer", "requests in flight", 1, 1_000)
BATCH_SIZE = Key("integer", "rows per claim and commit", 1, 100_000)
MAX_ATTEMPTS = Key("integer", "attempts before a retryable failure is final", 1, 100)
MAX_SEGMENTS = Key("integer", "the longest message, in SMS segments", 1, 255)
#: Credits one SMS segment or WhatsApp message may cost in a rate card. With at most 255 segments a message
#: costs at most 2.55e8 credits, so even 10 billion messages stay far inside a 64-bit total.
MAX_CREDITS_PER_UNIT = 1_000_000

#: Campaign-file keys and send flags with a range (campaign.CAMPAIGN_KEYS has the rest of the campaign file).
RUN_LIMITS: dict[str, Key] = {
    "rate": RATE,
    "concurrency": CONCURRENCY,
    "batch_size": BATCH_SIZE,
    "max_attempts": MAX_ATTEMPTS,
    "max_segments": MAX_SEGMENTS,
}

PROFILE_KEYS: dict[str, Key] = {
    "type": Key("text", "the provider type"),
    "rate": RATE,
    "concurrency": CONCURRENCY,
    # 0 in a profile: sized by the engine (4 per worker, at most ~2 s of sending).
    "batch_size": Key("integer", "rows per claim and commit (0: automatic)", 0, 100_000),
    "max_attempts": MAX_ATTEMPTS,
    "retry_unknown": Key("bool", "send unknown rows again when the provider cannot tell"),
    "circuit_breaker": Key("integer", "consecutive failures that stop a run (0: never)", 0, 1_000_000),
    "max_wait": Key("number", "the longest wait for a retry, in seconds", 0, 86_400),
    "reconcile_after": Key("number", "seconds before an unknown row is looked up", 0, 86_400),
    "backoff_base": Key("number", "the first retry's backoff, in seconds", 0, 3_600),
    "backoff_cap": Key("number", "the longest backoff, in seconds", 0, 86_400),
    "timeout": Key("number", "seconds to wait for an answer", 0, 3_600, above=True),
    "connect_timeout": Key("number", "seconds to wait for a connection", 0, 600, above=True),
    "sender": Key("text", "the sender number or ID"),
    "whatsapp_sender": Key("text", "the WhatsApp sender"),
    "base_url": Key("text", "the API's base URL"),
}
#: Keys only some provider types read (values are checked by the adapter when it opens).
PROFILE_TYPE_KEYS: dict[str, dict[str, Key]] = {
    "outbox": {"path": Key("text", "where the outbox is written")},
    "twilio": {
        "account_sid": Key("text", "the account SID (AC…)"),
        "api_key_sid": Key("text", "an API key SID (SK…)"),
        "messaging_service_sid": Key("text", "a Messaging Service SID (MG…)"),
        "status_callback": Key("text", "the status callback URL"),
        "content_sid": Key("text", "a Content template SID (HX…)"),
    },
    "vonage": {
        "api_key": Key("text", "the API key"),
        "signature_method": Key("text", "how Vonage signs webhooks", pattern=r"md5hash|md5|sha1|sha256|sha512",
                                pattern_text="one of md5hash, md5, sha1, sha256, sha512"),
    },
    "whatsapp": {
        "phone_number_id": Key("text", "the business phone number's id"),
        "api_version": Key("text", "the Graph API version"),
    },
    "http": {
        "url": Key("text", "where messages go"),
        "method": Key("text", "the HTTP method"),
        "content_type": Key("text", "json or form"),
        "auth": Key("table", "how the secret is sent"),
        "headers": Key("table", "extra headers"),
        "body": Key(("table", "list", "text"), "the request body"),
        "channels": Key("texts", "sms and/or whatsapp"),
        "success_path": Key("text", "where success is read"),
        "success_values": Key("list", "values meaning success"),
        "id_path": Key("text", "where the message id is read"),
        "error_code_path": Key(("text", "texts"), "where the error code is read"),
        "error_text_path": Key(("text", "texts"), "where the error text is read"),
        "errors": Key("table", "error code → class"),
        "default_error_class": Key("text", "the class of an unlisted error"),
        "check_url": Key("text", "a harmless URL for provider check"),
        "check_path": Key("text", "where provider check reads success"),
        # Delivery receipts and replies the gateway posts to `webhooks serve` (docs/webhooks.md).
        "receipt_reference_path": Key("text", "where a receipt carries our id"),
        "receipt_id_path": Key("text", "where a receipt carries the message id"),
        "receipt_status_path": Key("text", "where a receipt carries its status"),
        "receipt_code_path": Key("text", "where a receipt carries its error code"),
        "receipt_delivered": Key("list", "statuses meaning delivered"),
        "receipt_undelivered": Key("list", "statuses meaning undelivered"),
        "receipt_provider_fault_codes": Key("list", "error codes refunded as the gateway's fault"),
        "receipt_recipient_fault_codes": Key("list", "error codes that are the recipient's side"),
        "inbound_from_path": Key("text", "where a reply carries its sender"),
        "inbound_text_path": Key("text", "where a reply carries its text"),
    },
}

#: [compliance] quiet_hours and frequency_cap as text (bulksend/schedule.py parses them and checks the rest).
_HOUR = r"\s*(?:[01]?\d|2[0-3]):[0-5]\d\s*"
QUIET_HOURS_PATTERN = rf"(?i:\s*off\s*)|{_HOUR}-{_HOUR}"
CAP_PATTERN = r"(?i:\s*off\s*|\s*\d+\s*/\s*\d*\s*[smhdw]\s*)"

#: config.toml: section → key → Key. ``providers`` is a table of profiles, checked with PROFILE_KEYS.
CONFIG_SECTIONS: dict[str, dict[str, Key]] = {
    "defaults": {
        "region": Key("text", "the default region", pattern=r"[A-Za-z]{2}",
                      pattern_text='a two-letter ISO country code like "GB"'),
        "provider": Key("text", "the default provider profile", pattern=r"\S.*",
                        pattern_text="a profile name"),
    },
    "credits": {
        "min_topup_sms": Key("integer", "the smallest SMS top-up", 1, 10**12),
        "min_topup_whatsapp": Key("integer", "the smallest WhatsApp top-up", 1, 10**12),
        "timezone": Key("text", "the time zone a new ledger's calendar uses (IANA name)"),
    },
    "consent": {
        "positive": Key("texts", "extra consent values that mean yes"),
        "negative": Key("texts", "extra consent values that mean no"),
    },
    "webhooks": {
        "public_url": Key("text", "the base URL providers reach `webhooks serve` at", pattern=r"https?://[^\s?#]+",
                          pattern_text='an http(s) URL without query, like "https://hooks.example.com"'),
        "stop_words": Key("texts", "extra opt-out keywords for replies"),
    },
    "ledger": {
        "url": Key("text", "the ledger server (postgresql://host/db; no password)"),
        "lease_seconds": Key("number", "a shared ledger: seconds a sender's claim holds if it dies", 1, 86_400),
    },
    "content": {
        "deny": Key("texts", "your own words and phrases that block a message"),
        "allow": Key("texts", "built-in words and phrases not to block"),
    },
    "compliance": {
        # The opt-out instruction of marketing SMS (bulksend/compliance.py, docs/compliance.md).
        "footer": Key("text", 'the opt-out footer appended to marketing SMS ("" turns it off)'),
        "optout_pattern": Key("text", "a regular expression that finds your own opt-out instruction"),
        # When rows may go (bulksend/schedule.py, docs/schedule.md); campaign files and flags override them.
        "quiet_hours": Key(("text", "bool"), "local hours in which nothing is sent", pattern=QUIET_HOURS_PATTERN,
                           pattern_text='"HH:MM-HH:MM" (like "21:00-08:00"), "off", or true/false'),
        "frequency_cap": Key(("text", "bool"), "the most messages a number gets per window", pattern=CAP_PATTERN,
                             pattern_text='N/WINDOW (like "2/24h", units s m h d w), "off", or false'),
    },
}


# --- checking ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """A refused value: the dotted key and what is wrong (the caller adds the file and raises its error)."""

    key: str
    text: str
    hint: str | None = None


class SchemaError(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.text)
        self.problem = problem


def check_table(
    data: Mapping[str, Any],
    keys: Mapping[str, Key],
    *,
    prefix: str = "",
    warn: Callable[[str], None] | None = None,
    ignore: Callable[[str], bool] | None = None,
) -> None:
    """Check every key of ``data`` against ``keys``; SchemaError on the first bad one, ``warn`` for unknown keys.

    ``prefix`` is the dotted path of the table (``providers.twilio.``) for messages; ``ignore`` names keys
    that another check owns (secrets in a profile).
    """
    for name, value in data.items():
        name = str(name)
        key = keys.get(name)
        dotted = f"{prefix}{name}"
        if key is None:
            if ignore is not None and ignore(name):
                continue
            unknown(dotted, name, keys, warn)
            continue
        problem = key.problem(value)
        if problem is not None:
            raise SchemaError(Problem(dotted, f"{dotted} ({key.what}) {problem}"))


def unknown(dotted: str, name: str, keys: Mapping[str, Any], warn: Callable[[str], None] | None) -> None:
    """A key nothing reads: an error when it is surely a typo of a known key, else a warning."""
    import difflib

    close = difflib.get_close_matches(name, list(keys), n=1, cutoff=TYPO_CUTOFF)
    if close:
        fixed = dotted[: len(dotted) - len(name)] + close[0]
        raise SchemaError(
            Problem(dotted, f"unknown key {clip(dotted)!s}: did you mean {fixed}?", hint=f"Rename it to {close[0]}.")
        )
    if warn is not None:
        warn(f"unknown key {clip(dotted)} is ignored (known here: {', '.join(keys)}).")
