"""Regexes over digits as numpy lookup tables: the verdict on a digit string of length L read by binary search.

phonenumbers decides with regexes (the metadata's national number patterns, leading digits, IDD and
national prefix patterns), one call per number. All of those patterns use a small regular subset
(literals, classes, groups, alternation, bounded and unbounded repeats), so the strings of one length L
that a pattern matches form a union of integer intervals: "7[1-57-9]\\d{8}" at L=10 is
[7100000000, 7599999999] ∪ [7700000000, 7999999999]. `Segments` walks the patterns of a decision together
on their NFAs and cuts [0, 10^L) into intervals on which every pattern's answer is constant. The
decision is a function of those answers, so it is computed once per distinct set of matching patterns,
by the real decision (the `re` module, phonenumbers' own helpers) on the first string of the first such
interval. A whole column of numbers is then decided with one `np.searchsorted`.

Only which patterns match where comes from this module; the labels always come from the exact code. A
pattern outside the subset (lookarounds, anchors, back references) raises `Unsupported`, and a
decision whose intervals would be too many raises `TooComplex`: the caller then decides those numbers
one by one on its exact path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

try:  # Python 3.11+
    from re import _constants as _c
    from re import _parser as _sre_parse
except ImportError:  # pragma: no cover - Python < 3.11
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]

_ALL_DIGITS = (1 << 10) - 1
# A decision that needs more prefixes than this is decided number by number instead (a pattern that
# constrains a late digit after free ones, e.g. "\d{6}[2-9]\d{3}", would need 10^6 intervals).
MAX_NODES = 60_000


class Unsupported(ValueError):
    """The pattern uses a construct outside the regular subset this module reads."""


class TooComplex(ValueError):
    """The decision would need too many intervals to be worth a table."""


class DigitPattern:
    """A regex compiled to an NFA over the ten ASCII digits (what it does with other characters is moot)."""

    __slots__ = (
        "pattern", "_eps", "_moves", "_targets", "_start", "_accept",
        "_sets", "_ids", "_next", "_accepting", "_count", "_strings",
    )

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._eps: list[list[int]] = []
        self._moves: list[list[tuple[int, int]]] = []
        start = self._state()
        try:
            tree = _sre_parse.parse(pattern)
        except Exception as exc:  # re.error: not a pattern at all
            raise Unsupported(pattern) from exc
        self._accept = self._build(tree, start)
        # Per NFA state: (digits, the closure of the state they lead to), computed once.
        self._targets = [[(digits, self._closure((end,))) for digits, end in moves] for moves in self._moves]
        self._sets: list[frozenset[int]] = [frozenset()]
        self._ids: dict[frozenset[int], int] = {frozenset(): 0}
        self._next: list[list[int] | None] = [[0] * 10]
        self._accepting: list[bool] = [False]
        self._count: dict[int, int] = {}
        self._strings: dict[tuple[int, int], list[str] | None] = {}
        self._start = self._intern(self._closure((start,)))

    # --- construction (Thompson) ----------------------------------------------------------------
    def _state(self) -> int:
        self._eps.append([])
        self._moves.append([])
        return len(self._eps) - 1

    def _build(self, items, start: int) -> int:
        current = start
        for op, av in items:
            current = self._node(op, av, current)
        return current

    def _edge(self, start: int, digits: int) -> int:
        end = self._state()
        if digits:
            self._moves[start].append((digits, end))
        return end

    def _node(self, op, av, start: int) -> int:
        if op is _c.LITERAL:
            return self._edge(start, _digit_bit(av))
        if op is _c.NOT_LITERAL:
            return self._edge(start, _ALL_DIGITS & ~_digit_bit(av))
        if op is _c.ANY:
            return self._edge(start, _ALL_DIGITS)
        if op is _c.IN:
            return self._edge(start, _class_bits(av))
        if op is _c.SUBPATTERN:
            return self._build(av[3], start)
        if op is _c.BRANCH:
            end = self._state()
            for alternative in av[1]:
                entry = self._state()
                self._eps[start].append(entry)
                self._eps[self._build(alternative, entry)].append(end)
            return end
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT):  # lazy or greedy: the same set of strings
            low, high, body = av
            current = start
            for _ in range(low):
                current = self._build(body, current)
            if high is _c.MAXREPEAT:
                loop = self._state()
                self._eps[current].append(loop)
                self._eps[self._build(body, loop)].append(loop)
                return loop
            if high - low > 64:
                raise Unsupported(self.pattern)
            for _ in range(high - low):
                end = self._state()
                self._eps[current].append(end)
                self._eps[self._build(body, current)].append(end)
                current = end
            return current
        raise Unsupported(f"{self.pattern} ({op})")

    def _closure(self, states) -> frozenset[int]:
        seen = set(states)
        todo = list(states)
        while todo:
            for nxt in self._eps[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return frozenset(seen)

    # --- simulation: a DFA built as it is explored, its states numbered (0: no match possible) -----
    def _intern(self, states: frozenset[int]) -> int:
        found = self._ids.get(states)
        if found is None:
            found = self._ids[states] = len(self._sets)
            self._sets.append(states)
            self._next.append(None)
            self._accepting.append(self._accept in states)
        return found

    @property
    def start(self) -> int:
        return self._start

    def children(self, state: int) -> list[int]:
        """The states after each digit 0-9."""
        found = self._next[state]
        if found is None:
            targets: list[set[int]] = [set() for _ in range(10)]
            for nfa_state in self._sets[state]:
                for digits, closure in self._targets[nfa_state]:
                    for digit in range(10):
                        if digits >> digit & 1:
                            targets[digit] |= closure
            found = self._next[state] = [self._intern(frozenset(t)) for t in targets]
        return found

    def step(self, state: int, digit: int) -> int:
        return self.children(state)[digit]

    def count(self, state: int, remaining: int) -> int:
        """How many digit strings of length ``remaining`` lead from ``state`` to a match."""
        if state == 0:
            return 0
        if remaining == 0:
            return 1 if self._accepting[state] else 0
        key = state * 64 + remaining
        found = self._count.get(key)
        if found is None:
            found = self._count[key] = sum([self.count(child, remaining - 1) for child in self.children(state)])
        return found

    def strings(self, longest: int = 20, most: int = 64) -> list[str] | None:
        """Every digit string the pattern matches, when there are at most ``most``, none longer than ``longest``."""
        key = (longest, most)
        if key not in self._strings:
            self._strings[key] = self._list_strings(longest, most)
        return self._strings[key]

    def _list_strings(self, longest: int, most: int) -> list[str] | None:
        found: list[str] = []
        todo: list[tuple[str, int]] = [("", self._start)]
        while todo:
            prefix, state = todo.pop()
            if self._accepting[state]:
                found.append(prefix)
                if len(found) > most:
                    return None
            for digit, nxt in enumerate(self.children(state)):
                if nxt:
                    if len(prefix) == longest:
                        return None
                    todo.append((prefix + str(digit), nxt))
        return sorted(found)


class Segments:
    """[0, 10^length) cut into intervals of constant label: ``labels[i]`` holds from ``starts[i]`` on."""

    __slots__ = ("length", "starts", "labels")

    def __init__(
        self,
        patterns: Sequence[DigitPattern],
        length: int,
        label: Callable[[str], Any],
        dtype=np.int64,
    ) -> None:
        self.length = length
        starts: list[int] = []
        labels: list[Any] = []
        by_members: dict[int, Any] = {}
        nodes = 0

        def emit(first: int, members: int) -> None:
            # Every pattern answers alike on the whole interval, so the label is the same as on any
            # interval with the same members: computed once, on the first number of the first one.
            value = by_members.get(members, by_members)
            if value is by_members:
                value = by_members[members] = label(format(first, f"0{length}d") if length else "")
            if not labels or labels[-1] != value:
                starts.append(first)
                labels.append(value)

        def split(entries: list, remaining: int, members: int) -> tuple[list, int]:
            """The entries still undecided on ``remaining`` more digits, and the members bitmask grown."""
            full = 10**remaining
            mixed = []
            for entry in entries:
                count = entry[1].count(entry[2], remaining)
                if count == full:
                    members |= 1 << entry[0]
                elif count:
                    mixed.append(entry)
            return mixed, members

        def expand(prefix: int, remaining: int, mixed: list, members: int) -> None:
            # mixed: (index, pattern, state) of the patterns undecided under this prefix; members: a
            # bitmask of the patterns that match every number under it.
            nonlocal nodes
            nodes += 1
            if nodes > MAX_NODES:
                raise TooComplex(length)
            below = remaining - 1
            children = [entry[1].children(entry[2]) for entry in mixed]
            for digit in range(10):
                entries = [(entry[0], entry[1], nxt[digit]) for entry, nxt in zip(mixed, children)]
                undecided, grown = split(entries, below, members)
                if undecided:
                    expand(prefix * 10 + digit, below, undecided, grown)
                else:
                    emit((prefix * 10 + digit) * 10**below, grown)

        undecided, members = split([(i, p, p.start) for i, p in enumerate(patterns)], length, 0)
        if undecided:
            expand(0, length, undecided, members)
        else:
            emit(0, members)
        self.starts = np.array(starts, dtype=np.int64)
        self.labels = np.array(labels, dtype=dtype)

    def find(self, values: np.ndarray) -> np.ndarray:
        """The label of each value (an integer in [0, 10^length): the digit string, leading zeros implied)."""
        return self.labels[np.searchsorted(self.starts, values, side="right") - 1]


def _digit_bit(code: int) -> int:
    return 1 << (code - 48) if 48 <= code <= 57 else 0


def _class_bits(items) -> int:
    bits = 0
    negate = False
    for op, av in items:
        if op is _c.NEGATE:
            negate = True
        elif op is _c.LITERAL:
            bits |= _digit_bit(av)
        elif op is _c.RANGE:
            low, high = av
            for code in range(max(low, 48), min(high, 57) + 1):
                bits |= _digit_bit(code)
        elif op is _c.CATEGORY and av is _c.CATEGORY_DIGIT:
            bits |= _ALL_DIGITS
        elif op is _c.CATEGORY and av is _c.CATEGORY_NOT_DIGIT:
            pass
        else:
            raise Unsupported(f"character class item {op}")
    return _ALL_DIGITS & ~bits if negate else bits
