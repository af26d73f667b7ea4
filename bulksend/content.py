"""Content checks: offensive, hateful, violent, sexual or illegal words in a message, and the user's own words.

A message is folded (case, accents, ß → ss) and cut into whole tokens; each token is read past the usual
evasions (leetspeak ``c0c@ine``, repeated letters ``cocaaaine``, letters spelled out with separators
``c.o.c.a.i.n.e``) and looked up in a set: never a substring search, so Scunthorpe, "assistant", "classic"
and "cocktail" are words like any other. Phrases ("stolen credit cards") are sequences of tokens.

Speed: a campaign renders millions of messages from one template, so :class:`TemplateCheck` checks the
template's own text once and, per row, only the merged values (with the few words of template text on
either side, so that a phrase or a word glued across a field is still seen), memoized by value: a list's
first names and towns repeat. The lexicon is compiled once per process (``Lexicon.load`` is cached) and
travels to pass one's worker processes as its settings, not its tables.

The built-in lexicon lives in ``bulksend/lexicon/*.txt`` (package data, one file per language).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Sequence

from bulksend.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from bulksend.templates import BoundTemplate

#: The built-in categories, in the order reports list them; "deny" holds the user's own words.
CATEGORIES = ("profanity", "hate", "violence", "sexual", "illegal")
DENY = "deny"
ALL_CATEGORIES = (*CATEGORIES, DENY)
LANGUAGES = ("en", "es", "fr", "de", "pt")

# Characters that stand for letters inside a word (leetspeak). Only read so in a token that also has a
# letter: "50%" and "0800 123" stay numbers.
_LEET = str.maketrans({"0": "o", "1": "i", "!": "i", "3": "e", "4": "a", "@": "a", "$": "s", "5": "s", "7": "t"})
_LEET_CHARS = frozenset("0134@$57!")
# A token: letters and digits, and the symbols leetspeak uses inside words.
_TOKEN = re.compile(r"[\w$@!]+")  # on folded text, where "_" is already a space
# Letters spelled out one by one with a separator: "c.o.c.a.i.n.e", "c o c a i n e", "c-o-c-a-i-n-e".
_SPELLED = re.compile(r"(?<![\w$@])[\w$@](?:[ .\-*+]{1,2}[\w$@]){2,}(?![\w$@])")
_RUNS = re.compile(r"(.)\1+")
_RUN_LENGTHS = re.compile(r"(.)\1*")
_COMBINING = re.compile(r"[\u0300-\u036f]")
# A word this long matches with or without its double letters ("ashole"); a shorter one needs them ("as" ≠ "ass").
_LOOSE_LENGTH = 5
# How many template words around a merge field are checked with its value.
_CONTEXT_WORDS = 4
_MEMO_LIMIT = 200_000


def fold(text: str) -> str:
    """Lower case without accents: "Cocaína" → "cocaina", "Scheiße" → "scheisse"."""
    if text.isascii():
        return text.lower().replace("_", " ")
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text.casefold())).replace("_", " ")


def _normal(token: str) -> str:
    """A folded token as the lexicon spells it: leetspeak read as letters, a final "!" as punctuation."""
    token = token.rstrip("!")
    if token and not _LEET_CHARS.isdisjoint(token) and any(c.isalpha() for c in token):
        token = token.translate(_LEET)
    return token


def _collapse(token: str) -> str:
    return _RUNS.sub(r"\1", token)


def _runs(token: str) -> tuple[int, ...]:
    return tuple(len(m.group()) for m in _RUN_LENGTHS.finditer(token))


@dataclass(frozen=True)
class Finding:
    """One word or phrase found: its category and the lexicon's spelling of it (never the text as written)."""

    category: str
    word: str


@dataclass(frozen=True)
class _Entry:
    category: str
    word: str  # as listed
    runs: tuple[int, ...] | None  # run lengths a short word needs; None: any (a long word)


@dataclass(frozen=True)
class _Match:
    finding: Finding
    start: int  # offsets in the folded text
    end: int


class Lexicon:
    """Words and phrases by category, compiled for token lookups; ``allowed`` categories are never reported."""

    def __init__(self, entries: Sequence[tuple[str, str]], allowed: frozenset[str] = frozenset(),
                 settings: tuple = ()) -> None:
        self.allowed = allowed
        self._settings = settings
        self._tokens: dict[str, tuple | None] = {}
        self._phrase_words: set[str] = set()
        self._words: dict[str, list[_Entry]] = {}
        self._phrases: dict[str, list[tuple[tuple[tuple[str, tuple[int, ...] | None], ...], _Entry]]] = {}
        self.size = 0
        for category, word in entries:
            if category in allowed:
                continue
            parts = [_normal(t) for t in _TOKEN.findall(fold(word))]
            parts = [p for p in parts if p]
            if not parts:
                continue
            keys = tuple((_collapse(p), None if len(_collapse(p)) >= _LOOSE_LENGTH else _runs(p)) for p in parts)
            entry = _Entry(category, word, keys[0][1])
            if len(keys) == 1:
                self._words.setdefault(keys[0][0], []).append(entry)
            else:
                self._phrases.setdefault(keys[0][0], []).append((keys, entry))
                self._phrase_words.update(k for k, _ in keys)
            self.size += 1

    def __reduce__(self):  # to a worker process: the settings, rebuilt from its own cache there
        return (_from_settings, (self._settings,))

    @classmethod
    def load(cls, deny: Sequence[str] = (), allow: Sequence[str] = (),
             allowed_categories: Sequence[str] = ()) -> "Lexicon":
        """The built-in lexicon plus ``deny`` (category "deny"), minus ``allow`` and ``allowed_categories``."""
        return _from_settings((tuple(deny), tuple(allow), tuple(sorted(set(allowed_categories)))))

    # --- matching ------------------------------------------------------------------------------------

    @staticmethod
    def _token_matches(token: str, key: str, runs: tuple[int, ...] | None) -> bool:
        if runs is None:
            return True
        have = _runs(token)
        return len(have) == len(runs) and all(h >= r for h, r in zip(have, runs))

    def _word(self, token: str) -> _Entry | None:
        key = _collapse(token)
        for candidate in (key, key[:-1] if key.endswith("s") else None, key[:-2] if key.endswith("es") else None):
            if candidate is None or len(candidate) < (1 if candidate is key else 4):
                continue
            for entry in self._words.get(candidate, ()):
                # A plural ("idiots", "bitches") is a long word's; a short word must match exactly.
                if candidate is key and self._token_matches(token, key, entry.runs):
                    return entry
                if candidate is not key and entry.runs is None:
                    return entry
        return None

    def _read(self, raw: str) -> tuple[str, str, _Entry | None] | None:
        """A folded token → (as the lexicon spells it, collapsed, the word it is); memoized: words repeat."""
        cache = self._tokens
        got = cache.get(raw, cache)
        if got is cache:
            token = _normal(raw)
            got = (token, _collapse(token), self._word(token)) if token else None
            if len(cache) >= _MEMO_LIMIT:
                cache.clear()
            cache[raw] = got
        return got

    def scan(self, text: str) -> list[_Match]:
        """Every finding in ``text`` with its span in the folded text."""
        folded = fold(text)
        found: list[_Match] = []
        tokens: list[tuple[str, str, int, int]] = []
        read = self._read
        for m in _TOKEN.finditer(folded):
            got = read(m.group())
            if got is not None:
                token, key, entry = got
                tokens.append((token, key, m.start(), m.end()))
                if entry is not None:
                    found.append(_Match(Finding(entry.category, entry.word), m.start(), m.end()))
        words, phrases = self._words, self._phrases
        for i, (token, key, start, end) in enumerate(tokens):
            for keys, phrase in phrases.get(key, ()):
                if i + len(keys) > len(tokens):
                    continue
                if all(
                    tokens[i + k][1] == keys[k][0] and self._token_matches(tokens[i + k][0], *keys[k])
                    for k in range(len(keys))
                ):
                    found.append(_Match(Finding(phrase.category, phrase.word), start, tokens[i + len(keys) - 1][2]))
        if words and ("." in folded or " " in folded or "-" in folded or "*" in folded):
            for m in _SPELLED.finditer(folded):
                joined = _normal("".join(c for c in m.group() if c not in " .-*+"))
                entry = self._word(joined) if joined else None
                if entry is not None:
                    found.append(_Match(Finding(entry.category, entry.word), m.start(), m.end()))
        found.sort(key=lambda match: match.start)
        return found

    def in_phrases(self, text: str) -> bool:
        """Whether any word of ``text`` is part of a listed phrase (so its neighbours matter)."""
        keys = self._phrase_words
        for m in _TOKEN.finditer(fold(text)):
            got = self._read(m.group())
            if got is not None and got[1] in keys:
                return True
        return False

    def check(self, text: str) -> list[Finding]:
        """The distinct findings of ``text``, in order of appearance."""
        return list(dict.fromkeys(m.finding for m in self.scan(text)))

    def _suspects(self) -> re.Pattern[str]:
        """A pattern for the lines of a text (each between two "\n") that are tokens a word (as is, or as its plural) or a phrase's word
        may be read from, once their runs of a letter are collapsed.

        Each key is collapsed, so no two neighbouring letters of it are the same: ``c+o+c+a+i+n+e+`` then
        matches a token exactly when the token's runs collapse to "cocaine" (written ``cc*oo*…``). The keys share their prefixes in
        one trie, so a line is rejected at its first letters, in C.
        """
        pattern = getattr(self, "_suspect_pattern", None)
        if pattern is None:
            words = self._words
            keys = set(words) | {w + "s" for w in words} | {w + "es" for w in words} | self._phrase_words
            trie: dict = {}
            for key in keys:
                if key and key == _collapse(key):  # a key with a run equals no collapsed token
                    node = trie
                    for char in key:
                        node = node.setdefault(char, {})
                    node[""] = {}

            def branch(node: dict) -> str:
                # "cc*", not "c+": a branch that starts with a literal is skipped at once when it does not match
                alternatives = [re.escape(c) * 2 + "*" + branch(child) for c, child in sorted(node.items()) if c]
                if "" in node:
                    alternatives.append("")
                return alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"

            # "\n" before and after each token: a literal first character lets the search skip to each one.
            pattern = re.compile("\n" + branch(trie) + "(?=\n)" if trie else r"(?!x)x")
            self._suspect_pattern = pattern
        return pattern

    def unclear_words(self, values: Sequence[str]) -> list[int]:
        """The indices of ``values`` that may hold a finding; every other value is proven to hold none.

        Proven clear: a value that is one plain ASCII word (letters and digits only) whose token, read past
        leetspeak and repeated letters as :meth:`scan` reads it, is no listed word, no word's plural and no
        word of a listed phrase. Such a value is one token, so it can be part of no phrase and of no
        spelled-out word: :meth:`scan` finds nothing in it. That is decided for all values at once with a few
        C-level string operations over the values joined, not a scan per value (a list's unique codes).
        """
        joined = "\n".join(values)
        words = values
        if values and _NOT_PLAIN.search(joined) is None and min(map(len, values)) > 0:
            picked = None  # every value is one plain word (the common case: codes, numbers, plain names)
        else:
            picked = [i for i, v in enumerate(values) if v.isascii() and v.isalnum()]
            words = [values[i] for i in picked]
            joined = "\n".join(words)
            if not picked:
                return list(range(len(values)))
        # "\n" separates the tokens: never a token character, so no run of letters crosses it.
        folded = joined.lower()
        read = folded.translate(_LEET)  # the same length: a token keeps its place
        suspects = self._suspects()
        hits = [m.start() for m in suspects.finditer(f"\n{read}\n")]  # the start of the token, in ``read``
        if read != folded:  # a token of digits alone is not read as leetspeak: look at those as written
            written = f"\n{folded}\n"
            digits = [m.start() for m in _DIGITS_TOKEN.finditer(written)]
            if digits:
                hits = sorted(hits + [at for at in digits if suspects.match(written, at)])
        plain = set(picked) if picked is not None else None
        if not hits:
            return [] if plain is None else [i for i in range(len(values)) if i not in plain]
        import numpy as np

        lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        starts = np.cumsum(lengths + 1) - lengths - 1
        found = (np.searchsorted(starts, hits, side="right") - 1).tolist()
        if plain is None:
            return found
        return sorted([i for i in range(len(values)) if i not in plain] + [picked[i] for i in found])


_NOT_PLAIN = re.compile(r"[^A-Za-z0-9\n]")
_DIGITS_TOKEN = re.compile(r"\n[0-9]+(?=\n)")


@lru_cache(maxsize=16)
def _from_settings(settings: tuple) -> Lexicon:
    deny, allow, allowed_categories = settings
    entries = [e for e in builtin_entries() if not _allowed_word(e[1], allow)]
    entries += [(DENY, w) for w in deny if w.strip()]
    return Lexicon(entries, frozenset(allowed_categories), settings)


def _allowed_word(word: str, allow: Sequence[str]) -> bool:
    if not allow:
        return False
    key = _phrase_key(word)
    return any(_phrase_key(a) == key for a in allow)


def _phrase_key(text: str) -> tuple[str, ...]:
    return tuple(_collapse(t) for t in (_normal(t) for t in _TOKEN.findall(fold(text))) if t)


@lru_cache(maxsize=1)
def builtin_entries() -> tuple[tuple[str, str], ...]:
    """(category, word) for every entry of the built-in lexicon files, every language."""
    entries: list[tuple[str, str]] = []
    folder = resources.files("bulksend") / "lexicon"
    for language in LANGUAGES:
        category = None
        text = (folder / f"{language}.txt").read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("[") and line.endswith("]"):
                category = line[1:-1]
                if category not in CATEGORIES:  # pragma: no cover - a mistake in a data file
                    raise ValueError(f"lexicon/{language}.txt line {number}: unknown category {category!r}")
                continue
            if category is None:  # pragma: no cover
                raise ValueError(f"lexicon/{language}.txt line {number}: a word before any [category]")
            entries.append((category, line))
    return tuple(dict.fromkeys(entries))


# --- policy: config and campaign ---------------------------------------------------------------------------


def check_categories(categories: Sequence[str], where: str = "--allow-content") -> tuple[str, ...]:
    """The categories named, checked (InputError naming the bad one)."""
    from bulksend.errors import InputError

    out = []
    for name in categories:
        key = name.strip().lower()
        if key not in ALL_CATEGORIES:
            raise InputError(
                f"{where} {name!r} is not a content category.",
                hint="Choose among: " + ", ".join(ALL_CATEGORIES) + ".",
            )
        out.append(key)
    return tuple(dict.fromkeys(out))


def lexicon_from_config(section: dict[str, Any], allowed_categories: Sequence[str] = (),
                        where: str = "config.toml [content]") -> Lexicon:
    """The lexicon a run uses: the built-in one, ``[content] deny`` added, ``allow`` taken out."""
    deny = section.get("deny", [])
    allow = section.get("allow", [])
    for key, words in (("deny", deny), ("allow", allow)):
        for word in words:
            if not _phrase_key(word):
                raise ConfigError(f"{where}: {key} has {word!r}, which has no letters to match.",
                                  hint="Remove it, or write the word itself.")
    both = {_phrase_key(w) for w in deny} & {_phrase_key(w) for w in allow}
    if both:
        raise ConfigError(f"{where}: {' '.join(sorted(both)[0])!r} is in both deny and allow.",
                          hint="Keep it in one list.")
    return Lexicon.load(deny, allow, allowed_categories)


# --- a template and its rows -------------------------------------------------------------------------------


class TemplateCheck:
    """Checks one bound template's messages: its own text once (``template_findings``), then each row's values.

    ``row(values)`` takes the row's stripped values for the template's columns (as ``BoundTemplate.render``
    does) and returns the first finding a merged value brings, or None.
    """

    def __init__(self, lexicon: Lexicon, bound: "BoundTemplate") -> None:
        self.lexicon = lexicon
        parts = bound.parts()
        literal = "".join(p for p in parts if isinstance(p, str))
        # Every field as its default (or nothing) gives the template's own words.
        own = "".join(p if isinstance(p, str) else (p[1] or " ") for p in parts)
        self.template_findings = lexicon.check(own) if literal.strip() or own.strip() else []
        slots = []
        for i, part in enumerate(parts):
            if isinstance(part, str):
                continue
            left = parts[i - 1] if i > 0 and isinstance(parts[i - 1], str) else ""
            right = parts[i + 1] if i + 1 < len(parts) and isinstance(parts[i + 1], str) else ""
            slots.append((part[0], part[1], _tail(left), _head(right)))
        self._slots = tuple(slots)
        self._memo: dict[tuple[int, str], Finding | None] = {}

    def __reduce__(self):  # to a worker process: a fresh memo there
        return (_rebuild_check, (self.lexicon, self.template_findings, self._slots))

    def row(self, values: Sequence[str]) -> Finding | None:
        for n, (column, default, left, right) in enumerate(self._slots):
            value = values[column].strip() or (default or "")
            if not value:
                continue
            found = self._memoized(n, value, left, right)
            if found is not None:
                return found
        return None

    def _memoized(self, n: int, value: str, left: str, right: str) -> Finding | None:
        """:meth:`_value` of ``value`` in field ``n``, remembered (the memo is bounded)."""
        memo = self._memo
        key = (n, value)
        found = memo.get(key, memo)
        if found is memo:
            found = self._value(value, left, right)
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            memo[key] = found
        return found

    def slot_findings(self, n: int, values: Sequence[str]) -> dict[int, Finding]:
        """What :meth:`row` finds in each of ``values`` (already stripped) in field ``n`` (the n-th field use):
        {index of the value: its first finding}, for the values that have one.

        Values :meth:`Lexicon.unclear_words` proves clear are not checked (unless the field is glued to
        letters of the template, where the neighbours count); the others go through the memoized full check.
        """
        column, default, left, right = self._slots[n]
        glued = left[-1:].isalnum() or right[:1].isalnum()
        out: dict[int, Finding] = {}
        for i in (range(len(values)) if glued else self.lexicon.unclear_words(values)):
            value = values[i]
            if not value:
                continue
            found = self._memoized(n, value, left, right)
            if found is not None:
                out[i] = found
        return out

    @property
    def slots(self) -> int:
        return len(self._slots)

    def _value(self, value: str, left: str, right: str) -> Finding | None:
        glued = (left[-1:].isalnum()) or (right[:1].isalnum())
        if not glued:  # the value's own words first; its neighbours only matter for a phrase
            found = self.lexicon.scan(value)
            if found:
                return found[0].finding
            if not self.lexicon.in_phrases(value):
                return None
        text = left + value + right
        low = len(fold(left))
        high = len(fold(left + value))
        for match in self.lexicon.scan(text):
            if match.end > low and match.start < high:  # the value is part of it
                return match.finding
        return None


def _rebuild_check(lexicon: Lexicon, findings: list[Finding], slots: tuple) -> TemplateCheck:
    check = object.__new__(TemplateCheck)
    check.lexicon = lexicon
    check.template_findings = findings
    check._slots = slots
    check._memo = {}
    return check


def _tail(literal: str) -> str:
    """The last few words of the template text before a field, as written (glued letters included)."""
    spans = list(_TOKEN.finditer(literal))
    if not spans:
        return literal[-8:]
    return literal[spans[max(0, len(spans) - _CONTEXT_WORDS)].start():]


def _head(literal: str) -> str:
    spans = list(_TOKEN.finditer(literal))
    if not spans:
        return literal[:8]
    return literal[: spans[min(len(spans), _CONTEXT_WORDS) - 1].end()]
