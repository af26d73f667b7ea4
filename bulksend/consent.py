"""Consent values: what counts as opted in, opted out, empty or unrecognized (never guessed)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import IntEnum
from typing import Any

import numpy as np

from bulksend.errors import ConfigError


class Consent(IntEnum):
    """The things a consent cell can say. UNRECOGNIZED and FUTURE are both ``bad_consent_value``."""

    GIVEN = 0
    EMPTY = 1
    REFUSED = 2
    UNRECOGNIZED = 3
    FUTURE = 4  # a consent date after today: nobody consented tomorrow


_POSITIVE = (
    "yes y true t 1 x ✓ opt-in optin opted-in opted_in subscribed granted".split()
)
_NEGATIVE = (
    "no n false f 0 opt-out optout opted-out opted_out unsubscribed revoked".split()
)
# The common European languages (docs/recipients.md lists them). Only words that mean the same in every
# language that uses them: a word that is "yes" in one language and "no" in another (Greek "ne" is yes,
# Czech "ne" is no) is left out, and a test checks no word is in both lists. Accented words are also
# listed without the accent, as spreadsheets exported through ASCII write them.
_POSITIVE_EUROPEAN = {
    "French": "oui abonné abonnée abonne abonnee",
    "German": "ja abonniert",
    "Dutch": "ja",
    "Swedish, Danish, Norwegian": "ja",
    "Spanish": "sí si suscrito suscrita",
    "Portuguese": "sim",
    "Italian": "sì si iscritto iscritta",
    "Polish": "tak",
}
_NEGATIVE_EUROPEAN = {
    "French": "non désinscrit désinscrite desinscrit desinscrite désabonné désabonnée desabonne desabonnee",
    "German": "nein abgemeldet abbestellt",
    "Dutch": "nee afgemeld uitgeschreven",
    "Swedish, Danish": "nej",
    "Norwegian": "nei",
    "Spanish": "no",
    "Portuguese": "não nao",
    "Italian": "no",
    "Polish": "nie",
}
BUILTIN_POSITIVE: tuple[str, ...] = tuple(
    dict.fromkeys([*_POSITIVE, *(w for words in _POSITIVE_EUROPEAN.values() for w in words.split())])
)
BUILTIN_NEGATIVE: tuple[str, ...] = tuple(
    dict.fromkeys([*_NEGATIVE, *(w for words in _NEGATIVE_EUROPEAN.values() for w in words.split())])
)

# Inside a value, runs of whitespace, '-' and '_' are one separator: "Opted In", "opted-in" and
# "opted_in" all read the same. Forms the brief lists without a separator (optin) stay distinct.
_SEPARATORS = re.compile(r"[\s_\-]+")


def _key(value: str) -> str:
    return _SEPARATORS.sub("-", value.strip().lower())


_ISO_DATE = re.compile(r"\d{4}-?\d{2}-?\d{2}([T ].*)?", re.IGNORECASE)
# The zone whose clock is furthest ahead (Line Islands, UTC+14). A consent date or local time is "in the
# future" only once it is later than the current date and time there: later than now everywhere on Earth,
# so no time zone (the machine's, the CRM's) can make a real consent timestamp look like tomorrow.
_FURTHEST_AHEAD = timezone(timedelta(hours=14))


def utc_now() -> datetime:
    """The current time: the one place consent checks read the clock (tests pin it here)."""
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class ConsentWords:
    """The values a run recognizes (built-ins plus ``[consent]`` in config.toml) and when "now" is.

    ``now`` is read once, when the words are made for a run, so every row of a file is judged against the
    same moment and no row reads the clock.
    """

    known: Mapping[str, Consent]
    now: datetime

    def classify(self, value: str) -> Consent:
        """Classify one consent cell, case- and space-insensitively."""
        known = self.known.get(_key(value))
        if known is not None:
            return known
        return self._timestamp(value)

    def _timestamp(self, value: str) -> Consent:
        """An ISO-8601 date or datetime is the moment consent was given: GIVEN, or FUTURE when after now."""
        text = value.strip()
        if not _ISO_DATE.fullmatch(text):
            return Consent.UNRECOGNIZED
        try:
            moment = datetime.fromisoformat(text.upper())
        except ValueError:
            return Consent.UNRECOGNIZED
        if moment.tzinfo is not None:
            return Consent.FUTURE if moment > self.now else Consent.GIVEN
        latest = self.now.astimezone(_FURTHEST_AHEAD).replace(tzinfo=None)
        if len(text) <= 10:  # a date without a time: compare calendar days
            return Consent.FUTURE if moment.date() > latest.date() else Consent.GIVEN
        return Consent.FUTURE if moment > latest else Consent.GIVEN

    def classify_many(self, values: list[str]) -> np.ndarray:
        """Classify a column of consent cells; each distinct value is classified once."""
        classify = self.classify
        codes = {value: int(classify(value)) for value in dict.fromkeys(values)}
        return np.fromiter(map(codes.__getitem__, values), dtype=np.int8, count=len(values))


def consent_words(
    positive: Iterable[str] = (), negative: Iterable[str] = (), *, now: datetime | None = None,
    where: str = "[consent]",
) -> ConsentWords:
    """The built-in values plus the user's; a word that would be both positive and negative is refused (exit 6)."""
    known: dict[str, Consent] = {_key(v): Consent.GIVEN for v in BUILTIN_POSITIVE}
    known.update({_key(v): Consent.REFUSED for v in BUILTIN_NEGATIVE})
    user_pos = {_key(v): v for v in positive}
    user_neg = {_key(v): v for v in negative}
    for key, word in user_pos.items():
        if key in user_neg or known.get(key) is Consent.REFUSED:
            raise ConfigError(
                f"{where}: {word!r} is both a positive and a negative consent value.",
                hint="A value must mean one thing: remove it from positive or negative.",
            )
    for key, word in user_neg.items():
        if known.get(key) is Consent.GIVEN:
            raise ConfigError(
                f"{where}: {word!r} is both a positive and a negative consent value (it is a built-in positive).",
                hint="A value must mean one thing: remove it from negative.",
            )
    known.update({key: Consent.GIVEN for key in user_pos})
    known.update({key: Consent.REFUSED for key in user_neg})
    known[""] = Consent.EMPTY
    return ConsentWords(known=known, now=(now or utc_now()).astimezone(timezone.utc))


def words_from_config(section: Mapping[str, Any], where: str) -> ConsentWords:
    """``[consent] positive = [...]``, ``negative = [...]`` from config.toml, checked (exit 6 when malformed)."""
    unknown = sorted(set(section) - {"positive", "negative"})
    if unknown:
        raise ConfigError(f"{where}: unknown key {', '.join(unknown)}.", hint="[consent] may set: positive, negative.")
    lists: dict[str, list[str]] = {}
    for name in ("positive", "negative"):
        value = section.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise ConfigError(
                f"{where}: {name} must be a list of words, like {name} = [\"{'ok' if name == 'positive' else 'stop'}\"]."
            )
        lists[name] = value
    return consent_words(lists["positive"], lists["negative"], where=where)


def classify(value: str) -> Consent:
    """Classify one consent cell with the built-in values, against the current time."""
    return consent_words().classify(value)


def classify_many(values: list[str], words: ConsentWords | None = None) -> np.ndarray:
    """Classify a column of consent cells (built-in values unless ``words`` is given)."""
    return (words or consent_words()).classify_many(values)
