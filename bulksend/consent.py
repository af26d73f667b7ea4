"""Consent values: what counts as opted in, opted out, empty or unrecognized (never guessed)."""

from __future__ import annotations

import re
from datetime import datetime
from enum import IntEnum

import numpy as np


class Consent(IntEnum):
    """The four things a consent cell can say."""

    GIVEN = 0
    EMPTY = 1
    REFUSED = 2
    UNRECOGNIZED = 3


_POSITIVE = (
    "yes y true t 1 x ✓ opt-in optin opted-in opted_in subscribed granted".split()
)
_NEGATIVE = (
    "no n false f 0 opt-out optout opted-out opted_out unsubscribed revoked".split()
)
# Inside a value, runs of whitespace, '-' and '_' are one separator: "Opted In", "opted-in" and
# "opted_in" all read the same. Forms the brief lists without a separator (optin) stay distinct.
_SEPARATORS = re.compile(r"[\s_\-]+")


def _key(value: str) -> str:
    return _SEPARATORS.sub("-", value.strip().lower())


_KNOWN: dict[str, Consent] = {_key(v): Consent.GIVEN for v in _POSITIVE}
_KNOWN.update({_key(v): Consent.REFUSED for v in _NEGATIVE})
_KNOWN[""] = Consent.EMPTY

_ISO_DATE = re.compile(r"\d{4}-?\d{2}-?\d{2}([T ].*)?", re.IGNORECASE)


def _is_iso_timestamp(value: str) -> bool:
    """An ISO-8601 date or datetime: the moment consent was given."""
    text = value.strip()
    if not _ISO_DATE.fullmatch(text):
        return False
    try:
        datetime.fromisoformat(text.upper())
    except ValueError:
        return False
    return True


def classify(value: str) -> Consent:
    """Classify one consent cell, case- and space-insensitively."""
    known = _KNOWN.get(_key(value))
    if known is not None:
        return known
    return Consent.GIVEN if _is_iso_timestamp(value) else Consent.UNRECOGNIZED


def classify_many(values: list[str]) -> np.ndarray:
    """Classify a column of consent cells; each distinct value is classified once."""
    memo: dict[str, int] = {}
    out = np.empty(len(values), dtype=np.int8)
    for i, value in enumerate(values):
        code = memo.get(value)
        if code is None:
            if len(memo) < 100_000:  # timestamps are mostly distinct: keep the memo bounded
                code = memo[value] = int(classify(value))
            else:
                code = int(classify(value))
        out[i] = code
    return out
