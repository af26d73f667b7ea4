"""SMS encoding and segment counting: GSM-7 or UCS-2, how many parts, where they split, smart encoding."""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from functools import cache
from itertools import accumulate
from typing import TYPE_CHECKING, Callable, NamedTuple

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

GSM7 = "GSM-7"
UCS2 = "UCS-2"

# GSM 03.38 default alphabet in table order (0x00-0x7F), without 0x1B: that position is the escape to
# the extension table, not a character a message can contain. 0x09 is capital Ç (ç is not GSM).
_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# The single-shift extension table: each costs ESC + its code, two septets.
_EXTENSION_TABLE = "\f^{}\\[~]|€"

GSM7_BASIC: frozenset[str] = frozenset(_BASIC_TABLE)
GSM7_EXTENSION: frozenset[str] = frozenset(_EXTENSION_TABLE)

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


def _char_class(chars: str) -> str:
    return "".join(re.escape(c) for c in sorted(chars))


_NOT_BASIC = re.compile(f"[^{_char_class(_BASIC_TABLE)}]")
_NOT_GSM = re.compile(f"[^{_char_class(_BASIC_TABLE + _EXTENSION_TABLE)}]")
_EXTENSION = re.compile(f"[{_char_class(_EXTENSION_TABLE)}]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_ESC = "\x1b"


# The regex module (for \X and Unicode properties) takes ~15 ms to import; only multi-part UCS-2
# messages need it, so it is loaded on first use.
@cache
def _graphemes() -> Callable[[str], list[str]]:
    import regex

    return regex.compile(r"\X", regex.DOTALL).findall


@cache
def _may_join() -> re.Pattern[str]:
    """BMP code points that can be part of a multi-code-point grapheme cluster, as one character class.

    These are the code points UAX #29 rules GB3 and GB6-GB11 join (CR, Hangul L/V/T, Extend, ZWJ,
    SpacingMark, Prepend, Indic conjunct linkers and extenders). Regional indicators (GB12/13) are
    astral, which the callers check separately. Between two code points that are neither in this class
    nor astral there is always a cluster boundary. The class is read from the regex module's own
    tables, so it agrees with its ``\\X``, and compiled for the re module, which tests a big class
    with one bitmap lookup per character instead of one table search per property.
    """
    import regex

    properties = regex.compile(
        r"[\r\p{Grapheme_Cluster_Break=Extend}\p{Grapheme_Cluster_Break=ZWJ}"
        r"\p{Grapheme_Cluster_Break=SpacingMark}\p{Grapheme_Cluster_Break=Prepend}"
        r"\p{Grapheme_Cluster_Break=L}\p{Grapheme_Cluster_Break=V}\p{Grapheme_Cluster_Break=T}"
        r"\p{InCB=Linker}\p{InCB=Extend}]"
    )
    bmp = "".join(map(chr, range(0xD800))) + "".join(map(chr, range(0xE000, 0x10000)))
    ranges: list[list[int]] = []
    for code in (ord(m.group()) for m in properties.finditer(bmp)):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    members = "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges
    )
    return re.compile(f"[{members}]")


class SegmentCount(NamedTuple):
    """How one message travels as SMS."""

    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets for GSM-7 (extension chars count 2); UTF-16 code units for UCS-2
    segments: int  # number of SMS parts


# The overwhelmingly common result is a short plain message: hand out a prebuilt tuple for it.
_GSM_SINGLE_COUNTS = tuple(SegmentCount(GSM7, n, 1) for n in range(GSM7_SINGLE + 1))


def _utf16_units(text: str) -> int:
    # surrogatepass: a lone surrogate (possible after surrogateescape decoding) still costs one unit
    return len(text.encode("utf-16-le", "surrogatepass")) >> 1


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM 03.38 basic or extension table."""
    return _NOT_GSM.search(text) is None


def count_segments(text: str) -> SegmentCount:
    """The encoding, units and number of SMS parts of ``text``, exactly as :func:`split_segments` splits it.

    An empty text is one (empty) GSM-7 part: GSM 03.40 allows zero-length user data, and every message
    then costs at least one segment.
    """
    first = _NOT_BASIC.search(text)
    if first is None:
        units = len(text)
        if units <= GSM7_SINGLE:
            return _GSM_SINGLE_COUNTS[units]
        if "\r\n" not in text:
            return SegmentCount(GSM7, units, _ceil_div(units, GSM7_PART))
        return SegmentCount(GSM7, units, len(_gsm_cuts(text)))

    start = first.start()
    if _NOT_GSM.search(text, start) is None:
        units = len(text) + len(_EXTENSION.findall(text, start))
        if units <= GSM7_SINGLE:
            return SegmentCount(GSM7, units, 1)
        return SegmentCount(GSM7, units, len(_gsm_cuts(_septets(text))))

    units = _utf16_units(text)
    if units <= UCS2_SINGLE:
        return SegmentCount(UCS2, units, 1)
    if units == len(text) and _may_join().search(text) is None:
        return SegmentCount(UCS2, units, _ceil_div(units, UCS2_PART))
    return SegmentCount(UCS2, units, len(_ucs2_cuts(text, units)))


def split_segments(text: str) -> list[str]:
    """The SMS parts of ``text`` in order; ``"".join(parts) == text`` and ``len(parts)`` is the segment count.

    Parts are packed greedily (153 septets / 67 UTF-16 units each once the text needs more than one)
    and never end inside an escape pair, a surrogate pair or a grapheme cluster, except that a single
    cluster longer than a whole part is split between code points.
    """
    if is_gsm7(text):
        septets = _septets(text)
        if len(septets) <= GSM7_SINGLE:
            return [text]
        begin, parts = 0, []
        for cut in _gsm_cuts(septets):
            parts.append(septets[begin:cut].replace(_ESC, ""))
            begin = cut
        return parts
    units = _utf16_units(text)
    if units <= UCS2_SINGLE:
        return [text]
    begin, parts = 0, []
    for cut in _ucs2_cuts(text, units):
        parts.append(text[begin:cut])
        begin = cut
    return parts


def _septets(text: str) -> str:
    """``text`` as its septet stream: each extension character preceded by ESC, one str char per septet."""
    for char in _EXTENSION_TABLE:
        if char in text:
            text = text.replace(char, _ESC + char)
    return text


def _gsm_cuts(septets: str) -> list[int]:
    """Offsets in the septet stream where each part of a multi-part GSM-7 message ends."""
    units = len(septets)
    cuts, pos = [], 0
    while units - pos > GSM7_PART:
        cut = pos + GSM7_PART
        # Both indivisible GSM tokens are two septets long (ESC+char, CR+LF): step back over the first.
        before = septets[cut - 1]
        if before == _ESC or (before == "\r" and septets[cut] == "\n"):
            cut -= 1
        cuts.append(cut)
        pos = cut
    cuts.append(units)
    return cuts


def _ucs2_cuts(text: str, units: int) -> list[int]:
    """Indices in ``text`` where each part of a multi-part UCS-2 message ends (the last is ``len(text)``)."""
    # Work in code points; UTF-16 offsets differ from them only by the astral characters before.
    if units == len(text):
        units_at = None
    else:
        astral = [m.start() for m in _ASTRAL.finditer(text)]

        def units_at(index: int) -> int:
            return index + bisect_left(astral, index)

    may_join = _may_join().match
    every_index = range(len(text) + 1)
    cluster_ends: list[int] | None = None
    cuts, pos, pos_units = [], 0, 0
    while units - pos_units > UCS2_PART:
        limit = pos_units + UCS2_PART
        cut = limit if units_at is None else bisect_right(every_index, limit, key=units_at) - 1
        before, after = text[cut - 1], text[cut]
        if before > "\uffff" or after > "\uffff" or may_join(before) or may_join(after):
            # Only near a joining or astral character does the cut need the clusters themselves.
            if cluster_ends is None:
                cluster_ends = list(accumulate(map(len, _graphemes()(text))))
            i = bisect_right(cluster_ends, cut) - 1
            # A cluster longer than a whole part (a long ZWJ or combining sequence) can only be sent
            # split: then the cut stays between code points, which `cut` already is.
            if i >= 0 and cluster_ends[i] > pos:
                cut = cluster_ends[i]
        cuts.append(cut)
        pos, pos_units = cut, (cut if units_at is None else units_at(cut))
    cuts.append(len(text))
    return cuts


# Look-alikes outside GSM-7 and what they become, after Twilio's Smart Encoding table
# (see docs/segments.md for the source and where we deliberately differ).
_SMART_REPLACEMENTS: dict[str, str] = {
    # double quotation marks and double primes
    "\u00ab": '"', "\u00bb": '"', "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"',
    "\u02ba": '"', "\u02ee": '"', "\u2033": '"', "\u2036": '"', "\u275d": '"', "\u275e": '"',
    "\u301d": '"', "\u301e": '"', "\u301f": '"',
    # single quotation marks, apostrophes, primes and accents used as apostrophes
    "\u2018": "'", "\u2019": "'", "\u201a": ",", "\u201b": "'", "\u2032": "'", "\u2035": "'",
    "\u02b9": "'", "\u02bb": "'", "\u02bc": "'", "\u02bd": "'", "\u02c8": "'", "\u02ca": "'",
    "\u02cb": "'", "\u00b4": "'", "`": "'", "\u275b": "'", "\u275c": "'",
    "\u2039": "<", "\u203a": ">",
    # hyphens, dashes, minus, bullets
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-",
    "\u2212": "-", "\u2043": "-", "\u2022": "-", "\u2023": "-", "\u2219": "-", "\u00ad": "",
    "\ufe58": "-", "\ufe63": "-", "\u23bc": "-", "\u23bd": "-",
    # spaces: no-break and typographic ones become a plain space
    "\u00a0": " ", "\u2000": " ", "\u2001": " ", "\u2002": " ", "\u2003": " ", "\u2004": " ",
    "\u2005": " ", "\u2006": " ", "\u2007": " ", "\u2008": " ", "\u2009": " ", "\u200a": " ",
    "\u202f": " ", "\u205f": " ", "\u3000": " ", "\u2028": " ", "\u2029": " ", "\t": " ",
    # invisible format characters: nothing to show, so nothing to send
    "\u200b": "", "\u2060": "", "\ufeff": "",
    # ellipsis and other punctuation
    "\u2026": "...", "\u203c": "!!", "\u2047": "??", "\u2048": "?!", "\u2049": "!?",
    "\u01c3": "!", "\u2017": "_", "\u3001": ",", "\u3002": ".", "\uff61": ".", "\uff64": ",",
    # slashes, fractions, division
    "\u2044": "/", "\u2215": "/", "\u29f8": "/", "\u00f7": "/",
    "\u00bc": "1/4", "\u00bd": "1/2", "\u00be": "3/4",
    "\u29f5": "\\", "\u29f9": "\\", "\ufe68": "\\",
    # other operator and ornament look-alikes
    "\u2223": "|", "\u23b8": "|", "\u23b9": "|", "\u23d0": "|", "\u2217": "*", "\u204e": "*",
    "\u2768": "(", "\u276a": "(", "\u2769": ")", "\u276b": ")", "\u2774": "{", "\u2775": "}",
    "\u02c6": "^", "\u02dc": "~", "\u223c": "~", "\u02d0": ":", "\u02d6": "+",
    # small-form variants (U+FE50 block)
    "\ufe50": ",", "\ufe51": ",", "\ufe52": ".", "\ufe54": ";", "\ufe55": ":", "\ufe56": "?",
    "\ufe57": "!", "\ufe59": "(", "\ufe5a": ")", "\ufe5b": "{", "\ufe5c": "}", "\ufe5f": "#",
    "\ufe60": "&", "\ufe61": "*", "\ufe62": "+", "\ufe64": "<", "\ufe65": ">", "\ufe66": "=",
    "\ufe69": "$", "\ufe6a": "%", "\ufe6b": "@",
}
# Fullwidth ASCII (U+FF01-U+FF5E) maps onto ASCII; the fullwidth grave accent becomes an apostrophe
# like the ASCII one, since ` itself is not GSM.
for _code in range(0xFF01, 0xFF5F):
    _ascii = chr(_code - 0xFEE0)
    _SMART_REPLACEMENTS.setdefault(chr(_code), "'" if _ascii == "`" else _ascii)
del _code, _ascii

_SMART_TABLE = str.maketrans(_SMART_REPLACEMENTS)


def smart_encode(text: str) -> str:
    """``text`` with look-alikes (curly quotes, dashes, ellipsis, odd spaces…) replaced by GSM-7 characters.

    As Twilio does, the replacement is all or nothing: it is used only when it makes the whole message
    GSM-7 (an emoji or a non-Latin letter keeps the text as written), and, beyond Twilio, only when it
    does not need more segments (an ellipsis becomes three characters). GSM-7 text is returned as is.
    """
    if is_gsm7(text):
        return text
    replaced = text.translate(_SMART_TABLE)
    if not is_gsm7(replaced):
        return text
    if count_segments(replaced).segments > count_segments(text).segments:
        return text
    return replaced


# --- many texts at once (pass one of estimate and send) ------------------------------------------------------


class Profile(NamedTuple):
    """What :func:`count_segments` needs to know of each of many texts, as numpy arrays (one entry per text).

    Every field is additive or an "any" over concatenation, so the profile of a message is the sum (or the
    "or") of the profiles of its pieces: the template's literal text and each merged value.
    """

    length: "np.ndarray"  # int64: code points
    not_basic: "np.ndarray"  # bool: a character outside the GSM-7 basic table
    not_gsm: "np.ndarray"  # bool: a character outside both GSM-7 tables
    ext: "np.ndarray"  # int64: GSM-7 extension characters (each costs two septets)
    cr: "np.ndarray"  # bool: a carriage return (a CR LF may not be split between two parts)
    astral: "np.ndarray"  # int64: code points beyond U+FFFF (each is two UTF-16 units)
    joins: "np.ndarray"  # bool: a character that may join a grapheme cluster (UCS-2 parts split around those)


_CR = re.compile("\r")


def profile(texts: list[str]) -> Profile:
    """The :class:`Profile` of each text: a few C-level scans of the texts joined, not a call per text."""
    import numpy as np

    n = len(texts)
    length = np.fromiter(map(len, texts), dtype=np.int64, count=n)
    joined = "\n".join(texts)  # "\n" is in the basic table, BMP, and joins nothing: it adds no hit of its own
    starts = np.zeros(n, dtype=np.int64)
    if n > 1:
        np.cumsum(length[:-1] + 1, out=starts[1:])

    def owners(pattern: re.Pattern[str]) -> np.ndarray:
        """The index of the text of every match of ``pattern`` in ``joined`` (one entry per match)."""
        if pattern.search(joined) is None:
            return np.zeros(0, dtype=np.int64)
        at = np.fromiter((m.start() for m in pattern.finditer(joined)), dtype=np.int64)
        return np.searchsorted(starts, at, side="right") - 1

    def any_of(pattern: re.Pattern[str]) -> np.ndarray:
        flags = np.zeros(n, dtype=bool)
        flags[owners(pattern)] = True
        return flags

    def count_of(pattern: re.Pattern[str]) -> np.ndarray:
        return np.bincount(owners(pattern), minlength=n).astype(np.int64)

    not_basic = any_of(_NOT_BASIC)
    if not not_basic.any():  # the common case: plain GSM-7 text, nothing else to look for but CR
        zeros = np.zeros(n, dtype=np.int64)
        nothing = np.zeros(n, dtype=bool)
        return Profile(length, not_basic, nothing, zeros, any_of(_CR), zeros, nothing)
    return Profile(length, not_basic, any_of(_NOT_GSM), count_of(_EXTENSION), any_of(_CR), count_of(_ASTRAL),
                   any_of(_may_join()))


def count_segments_many(p: Profile) -> tuple["np.ndarray", "np.ndarray", "np.ndarray"]:
    """``count_segments`` of many messages from their profiles: (segments, UCS-2?, decided).

    Where ``decided`` is False the count depends on where the parts split (a multi-part message with an
    extension character, a CR, or an astral or joining character): the caller counts those texts exactly
    with :func:`count_segments`. Everywhere else the answer is the one :func:`count_segments` gives.
    """
    import numpy as np

    length, septets = p.length, p.length + p.ext
    units = p.length + p.astral  # UTF-16 code units
    ucs2 = p.not_gsm
    plain = ~p.not_basic
    gsm_ext = p.not_basic & ~p.not_gsm
    segments = np.ones(length.size, dtype=np.int64)
    decided = np.ones(length.size, dtype=bool)

    long_plain = plain & (length > GSM7_SINGLE)
    segments[long_plain] = -(-length[long_plain] // GSM7_PART)
    decided[long_plain & p.cr] = False  # a CR LF at a cut moves it

    long_ext = gsm_ext & (septets > GSM7_SINGLE)
    decided[long_ext] = False  # an escape pair at a cut moves it

    long_ucs2 = ucs2 & (units > UCS2_SINGLE)
    segments[long_ucs2] = -(-units[long_ucs2] // UCS2_PART)
    decided[long_ucs2 & ((p.astral > 0) | p.joins)] = False  # a surrogate pair or a cluster at a cut moves it
    return segments, ucs2, decided
