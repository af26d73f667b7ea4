"""Phone number normalization: phonenumbers' exact verdict (E.164, region, can it take SMS), computed fast."""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np
import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType
from phonenumbers import phonenumberutil as _pnu
from phonenumbers.phonemetadata import PhoneMetadata

from bulksend.digitsets import DigitPattern, Segments, TooComplex, Unsupported

# How this stays exact: phonenumbers.parse + is_valid_number + number_type is ~35 µs a number, most of it
# spent on generic regexes (extension, viability, unicode digits) and on re-compiling metadata patterns
# through re's cache. For the shapes real files contain (ASCII digits with an optional leading "+" and
# the separators " -.()/") those generic steps provably do nothing, so `_parse_digits` replays only the
# region-specific steps of parse() (IDD, country code, national prefix, possible lengths) on
# precompiled metadata. Validity and type are one combined regex per (metadata, length) that tests the
# type patterns in `_number_type_helper`'s order. Anything else goes through phonenumbers.parse itself.
# tests/test_phones.py checks both halves against the library, step by step and end to end.

INVALID_NUMBER = "invalid_number"
NOT_MOBILE = "not_mobile"

_SMS_CAPABLE = frozenset(
    {
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE,
        PhoneNumberType.VOIP,
        PhoneNumberType.PERSONAL_NUMBER,
    }
)

_TYPE_LABELS = {
    PhoneNumberType.FIXED_LINE: "fixed line",
    PhoneNumberType.TOLL_FREE: "toll free",
    PhoneNumberType.PREMIUM_RATE: "premium rate",
    PhoneNumberType.SHARED_COST: "shared cost",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "UAN (universal access number)",
    PhoneNumberType.VOICEMAIL: "voicemail",
}

_EMPTY = "empty"
_NO_REGION = "no international prefix and no region: pass --region or fill the country column"
_NOT_A_NUMBER = "not a phone number"
_BAD_COUNTRY_CODE = "unknown country calling code"
_TOO_SHORT = "too short to be a phone number"
_TOO_LONG = "too long to be a phone number"

_PARSE_ERROR_DETAILS = {
    NumberParseException.INVALID_COUNTRY_CODE: _BAD_COUNTRY_CODE,
    NumberParseException.NOT_A_NUMBER: _NOT_A_NUMBER,
    NumberParseException.TOO_SHORT_AFTER_IDD: _TOO_SHORT,
    NumberParseException.TOO_SHORT_NSN: _TOO_SHORT,
    NumberParseException.TOO_LONG: _TOO_LONG,
}
# The message parse() raises when a number has no "+" and the default region is missing or unknown.
_MISSING_REGION_MESSAGE = "Missing or invalid default region."

# Excel shows long numbers as 4.47700900123E+11 and sometimes appends ".0"; the digits are then lost or
# wrong, which the user fixes in the source sheet (format the column as text), not here.
_SPREADSHEET_FLOAT = re.compile(r"[+-]?\d(?:[.,]\d+)?[eE][+-]?\d+|\+?\d{6,}\.0+")

_SUPPORTED_REGIONS = frozenset(_pnu.SUPPORTED_REGIONS)
_CC_BY_PREFIX = {str(cc): cc for cc in _pnu.COUNTRY_CODE_TO_REGION_CODE}
_MIN_LENGTH_FOR_NSN = _pnu._MIN_LENGTH_FOR_NSN
_MAX_LENGTH_FOR_NSN = _pnu._MAX_LENGTH_FOR_NSN
_MAX_INPUT_STRING_LENGTH = _pnu._MAX_INPUT_STRING_LENGTH
# Lengths _test_number_length is tabulated for: any input parse() accepts, plus what a national prefix
# transform rule can add ("9\\1", "242\\1"…); longer is TOO_LONG for every region.
_LENGTH_TABLE_SIZE = _MAX_INPUT_STRING_LENGTH + 64

_UNKNOWN = PhoneNumberType.UNKNOWN
_VR = _pnu.ValidationResult

# Returned by the fast path when it meets something it does not replay; phonenumbers.parse decides.
_SLOW = "slow path"


class NumberCheck(NamedTuple):
    """The verdict on one raw phone value."""

    e164: str | None  # set whenever the number is valid, even when it is then rejected as not_mobile
    region: str | None  # phonenumbers.region_code_for_number ("001" for non-geographic); None if invalid
    reason: str | None  # None (accepted), "invalid_number" or "not_mobile"
    detail: str  # a short explanation for the rejects file; "" when accepted


class _Metadata:
    """One PhoneMetadata with its patterns compiled once, as parse() and number_type() use them."""

    __slots__ = (
        "region_code",
        "country_code",
        "country_code_str",
        "idd",
        "national_prefix",
        "transform_rule",
        "general",
        "length_results",
        "leading_digits",
        "metadata",
        "_types_by_length",
        "fast_parse",
    )

    def __init__(self, region_code: str, metadata: PhoneMetadata) -> None:
        self.region_code = region_code
        self.metadata = metadata
        self.country_code = metadata.country_code
        self.country_code_str = str(metadata.country_code)
        self.idd = re.compile(metadata.international_prefix) if metadata.international_prefix else None
        npfp = metadata.national_prefix_for_parsing
        self.national_prefix = re.compile(npfp) if npfp else None
        self.transform_rule = metadata.national_prefix_transform_rule or None
        general = metadata.general_desc
        pattern = general.national_number_pattern if general is not None else None
        self.general = re.compile(pattern) if pattern else None
        self.leading_digits = re.compile(metadata.leading_digits) if metadata.leading_digits else None
        self._types_by_length: dict[int, tuple[re.Pattern[str] | None, tuple[int, ...] | None]] = {}
        # parse() would fail on its own internals (IndexError) or behave in ways we do not replay when
        # these hold; such regions simply take the slow path.
        self.fast_parse = (
            general is not None
            and bool(general.possible_length)
            and not (self.transform_rule and self.national_prefix and self.national_prefix.groups == 0)
        )
        self.length_results = self._length_results(metadata) if self.fast_parse else ()

    @staticmethod
    def _length_results(metadata: PhoneMetadata) -> tuple[int, ...]:
        """_test_number_length(number, metadata) for every length a parsed number can have."""
        possible = sorted(metadata.general_desc.possible_length)
        local = metadata.general_desc.possible_length_local_only
        results = []
        for length in range(_LENGTH_TABLE_SIZE):
            if length in local:
                results.append(_VR.IS_POSSIBLE_LOCAL_ONLY)
            elif possible[0] == length:
                results.append(_VR.IS_POSSIBLE)
            elif possible[0] > length:
                results.append(_VR.TOO_SHORT)
            elif possible[-1] < length:
                results.append(_VR.TOO_LONG)
            elif length in possible[1:]:
                results.append(_VR.IS_POSSIBLE)
            else:
                results.append(_VR.INVALID_LENGTH)
        return tuple(results)

    def matches_general(self, number: str) -> bool:
        return self.general is not None and self.general.fullmatch(number) is not None

    def strip_national_prefix(self, number: str) -> str:
        """phonenumberutil._maybe_strip_national_prefix_carrier_code, without the carrier code."""
        prefix = self.national_prefix
        if not number or prefix is None:
            return number
        match = prefix.match(number)
        if match is None:
            return number
        viable_original = self.matches_general(number)
        groups = match.groups()
        if self.transform_rule is None or groups[-1] is None:
            stripped = number[match.end() :]
        else:
            stripped = prefix.sub(self.transform_rule, number, count=1)
        if viable_original and not self.matches_general(stripped):
            return number
        return stripped

    def number_type(self, nsn: str) -> int:
        """phonenumberutil._number_type_helper(nsn, metadata), with one regex per number length."""
        compiled = self._types_by_length.get(len(nsn))
        if compiled is None:
            compiled = self._types_by_length[len(nsn)] = self._compile_types(len(nsn))
        pattern, types = compiled
        if pattern is None:
            return _UNKNOWN if types is not None else _pnu._number_type_helper(nsn, self.metadata)
        match = pattern.match(nsn)
        if match is None:
            return _UNKNOWN
        return types[match.lastindex - 1]

    def _compile_types(self, length: int) -> tuple[re.Pattern[str] | None, tuple[int, ...] | None]:
        """Combine the type patterns that allow `length` into one alternation, in the helper's order.

        Each alternative is anchored at the end and followed by an empty marker group, so the first
        alternative that matches the whole number wins and `lastindex` names its type. (None, ()) means
        no type can match; (None, None) means use the library's helper.
        """
        metadata = self.metadata

        def usable(desc) -> str | None:
            if desc is None or not desc.national_number_pattern:
                return None
            if desc.possible_length and length not in desc.possible_length:
                return None
            return desc.national_number_pattern

        general = usable(metadata.general_desc)
        if general is None:
            return None, ()
        alternatives: list[tuple[str, int]] = []
        for desc, kind in (
            (metadata.premium_rate, PhoneNumberType.PREMIUM_RATE),
            (metadata.toll_free, PhoneNumberType.TOLL_FREE),
            (metadata.shared_cost, PhoneNumberType.SHARED_COST),
            (metadata.voip, PhoneNumberType.VOIP),
            (metadata.personal_number, PhoneNumberType.PERSONAL_NUMBER),
            (metadata.pager, PhoneNumberType.PAGER),
            (metadata.uan, PhoneNumberType.UAN),
            (metadata.voicemail, PhoneNumberType.VOICEMAIL),
        ):
            pattern = usable(desc)
            if pattern is not None:
                alternatives.append((f"(?:{pattern})\\Z", kind))
        fixed = usable(metadata.fixed_line)
        mobile = usable(metadata.mobile)
        same = metadata.same_mobile_and_fixed_line_pattern
        if fixed is not None:
            if same:
                alternatives.append((f"(?:{fixed})\\Z", PhoneNumberType.FIXED_LINE_OR_MOBILE))
            else:
                if mobile is not None:
                    alternatives.append(
                        (f"(?=(?:{fixed})\\Z)(?:{mobile})\\Z", PhoneNumberType.FIXED_LINE_OR_MOBILE)
                    )
                alternatives.append((f"(?:{fixed})\\Z", PhoneNumberType.FIXED_LINE))
        if not same and mobile is not None:
            alternatives.append((f"(?:{mobile})\\Z", PhoneNumberType.MOBILE))
        if not alternatives:
            return None, ()
        body = "|".join(f"{pattern}()" for pattern, _ in alternatives)
        combined = re.compile(f"(?=(?:{general})\\Z)(?:{body})")
        if combined.groups != len(alternatives):
            # A capturing group inside a metadata pattern would shift the markers: let the library decide.
            return None, None
        return combined, tuple(kind for _, kind in alternatives)


class _CallingCode:
    """The regions sharing one country calling code, as region_code_for_number walks them."""

    __slots__ = ("country_code", "country_code_str", "main", "candidates", "single")

    def __init__(self, country_code: int, regions: tuple[str, ...]) -> None:
        self.country_code = country_code
        self.country_code_str = str(country_code)
        # parse() reads the national number with the main region's metadata (region_code_for_country_code).
        self.main = _metadata_for(country_code, regions[0])
        # (region, metadata for region_code_for_number's walk, metadata for validity and type)
        self.candidates: list[tuple[str, _Metadata | None, _Metadata | None]] = []
        for region in regions:
            walk = _metadata_for_region(region.upper()) if region != "001" else None
            typed = _metadata_for(country_code, region)
            if typed is not None and region != "001" and typed.country_code != country_code:
                typed = None  # is_valid_number_for_region refuses a calling code that is not the region's
            self.candidates.append((region, walk, typed))
        self.single = len(regions) == 1

    def classify(self, nsn: str) -> tuple[str | None, int]:
        """(region_code_for_number, number_type) for a valid number; type UNKNOWN when invalid."""
        if self.single:
            region, _, typed = self.candidates[0]
            return region, (typed.number_type(nsn) if typed is not None else _UNKNOWN)
        for region, walk, typed in self.candidates:
            if walk is None:
                continue
            if walk.leading_digits is not None:
                if walk.leading_digits.match(nsn):
                    return region, (typed.number_type(nsn) if typed is not None else _UNKNOWN)
            else:
                kind = walk.number_type(nsn)
                if kind != _UNKNOWN:
                    if typed is not walk:
                        kind = typed.number_type(nsn) if typed is not None else _UNKNOWN
                    return region, kind
        return None, _UNKNOWN


_REGION_METADATA: dict[str, _Metadata | None] = {}
_NONGEO_METADATA: dict[int, _Metadata | None] = {}
_CALLING_CODES: dict[int, _CallingCode | None] = {}


def _metadata_for_region(region: str) -> _Metadata | None:
    try:
        return _REGION_METADATA[region]
    except KeyError:
        metadata = PhoneMetadata.metadata_for_region(region, None)
        compiled = _REGION_METADATA[region] = _Metadata(region, metadata) if metadata is not None else None
        return compiled


def _metadata_for(country_code: int, region: str) -> _Metadata | None:
    """PhoneMetadata.metadata_for_region_or_calling_code, compiled."""
    if region != "001":
        return _metadata_for_region(region)
    try:
        return _NONGEO_METADATA[country_code]
    except KeyError:
        metadata = PhoneMetadata.metadata_for_nongeo_region(country_code, None)
        compiled = _NONGEO_METADATA[country_code] = _Metadata("001", metadata) if metadata is not None else None
        return compiled


def _calling_code(country_code: int) -> _CallingCode | None:
    try:
        return _CALLING_CODES[country_code]
    except KeyError:
        regions = _pnu.COUNTRY_CODE_TO_REGION_CODE.get(country_code)
        compiled = _CALLING_CODES[country_code] = _CallingCode(country_code, regions) if regions else None
        return compiled


def _country_code_prefix(number: str) -> _CallingCode | None:
    """phonenumberutil._extract_country_code: the calling code `number` starts with, or None."""
    if not number or number[0] == "0":
        return None
    for end in (1, 2, 3):
        country_code = _CC_BY_PREFIX.get(number[:end])
        if country_code is not None:
            return _CALLING_CODES.get(country_code) or _calling_code(country_code)
    return None


def _extract_country_code(digits: str, default: _Metadata | None) -> tuple[int, str] | str:
    """phonenumberutil._maybe_extract_country_code for a number without "+": (code, rest), or an error."""
    if default is not None and default.idd is not None:
        match = default.idd.match(digits)
        # An IDD followed by 0 is not an IDD: calling codes never start with 0.
        if match is not None and not digits.startswith("0", match.end()):
            rest = digits[match.end() :]
            if len(rest) <= _MIN_LENGTH_FOR_NSN:
                return _TOO_SHORT
            calling_code = _country_code_prefix(rest)
            if calling_code is None:
                return _BAD_COUNTRY_CODE
            return calling_code.country_code, rest[len(calling_code.country_code_str) :]
    if default is not None and digits.startswith(default.country_code_str):
        # A national number written with the region's calling code but no "+" or IDD ("447700900123").
        potential = default.strip_national_prefix(digits[len(default.country_code_str) :])
        if (not default.matches_general(digits) and default.matches_general(potential)) or default.length_results[
            len(digits)
        ] == _VR.TOO_LONG:
            return default.country_code, potential
    return 0, ""


def _parse_digits(digits: str, plus: bool, default: _Metadata | None) -> tuple[int, str] | str:
    """phonenumbers.parse for ASCII digits, optionally after "+": (country code, NSN) or an error detail.

    `default` is the compiled metadata of a region in SUPPORTED_REGIONS, or None for no region.
    """
    if plus:
        if len(digits) <= _MIN_LENGTH_FOR_NSN:
            return _TOO_SHORT
        calling_code = _country_code_prefix(digits)
        if calling_code is not None:
            country_code, national = calling_code.country_code, digits[len(calling_code.country_code_str) :]
        else:
            # parse() retries an unknown code after "+" as if the "+" were absent ("+0044…", "+447…" in GB).
            extracted = _extract_country_code(digits, default)
            if isinstance(extracted, str):
                return extracted
            country_code, national = extracted
            if country_code == 0:
                return _BAD_COUNTRY_CODE
    else:
        if default is None:
            return _NO_REGION
        extracted = _extract_country_code(digits, default)
        if isinstance(extracted, str):
            return extracted
        country_code, national = extracted
    if country_code == 0:
        country_code, national, metadata = default.country_code, digits, default
    else:
        metadata = (_CALLING_CODES.get(country_code) or _calling_code(country_code)).main
        if metadata is None or not metadata.fast_parse:
            return _SLOW
    if len(national) < _MIN_LENGTH_FOR_NSN:
        return _TOO_SHORT
    stripped = metadata.strip_national_prefix(national)
    if stripped is not national and metadata.length_results[len(stripped)] in (_VR.IS_POSSIBLE, _VR.TOO_LONG):
        national = stripped
    if len(national) > _MAX_LENGTH_FOR_NSN:
        return _TOO_LONG
    return country_code, national


def _parse_slow(value: str, region: str | None) -> tuple[int, str] | str:
    try:
        number = phonenumbers.parse(value, region)
    except NumberParseException as error:
        if error.error_type == NumberParseException.INVALID_COUNTRY_CODE and error.args == (_MISSING_REGION_MESSAGE,):
            if region is None:
                return _NO_REGION
            return f"unknown region {region!r}: expected an upper-case ISO alpha-2 code such as GB"
        return _PARSE_ERROR_DETAILS.get(error.error_type, _NOT_A_NUMBER)
    return number.country_code, _pnu.national_significant_number(number)


def _where(number_region: str | None, country_code: int, region: str | None) -> str:
    """Name the place an invalid number was judged for: its region, else the row's, else its calling code."""
    if number_region is not None and number_region != "001":
        return number_region
    if region in _SUPPORTED_REGIONS and _pnu.country_code_for_region(region) == country_code:
        return region
    return f"+{country_code}"


class NumberChecker:
    """Normalizes raw phone values to E.164 and decides whether they can receive SMS/WhatsApp."""

    def __init__(self, allow_landline: bool = False) -> None:
        self.allow_landline = allow_landline

    def check(self, raw: str, region: str | None) -> NumberCheck:
        """The verdict on `raw`; `region` (ISO alpha-2) reads numbers written without "+" or an IDD."""
        value = raw.strip()
        if not value:
            return NumberCheck(None, None, INVALID_NUMBER, _EMPTY)
        # Six replaces beat str.translate and a regex on these short strings.
        digits = value.replace(" ", "").replace("-", "").replace(".", "").replace("(", "").replace(")", "")
        digits = digits.replace("/", "")
        plus = digits.startswith("+")
        if plus:
            digits = digits[1:]
        parsed: tuple[int, str] | str = _SLOW
        # Only these shapes are replayed: parse()'s extension, viability and unicode steps are no-ops on them.
        if (
            len(digits) >= 3
            and digits.isdigit()
            and digits.isascii()
            and len(value) <= _MAX_INPUT_STRING_LENGTH
            and (region is None or region in _SUPPORTED_REGIONS)
        ):
            default = None if region is None else _REGION_METADATA.get(region) or _metadata_for_region(region)
            if default is None or default.fast_parse:
                parsed = _parse_digits(digits, plus, default)
        if parsed is _SLOW:
            parsed = _parse_slow(value, region)
        if isinstance(parsed, str):
            return self._invalid(value, parsed)
        country_code, nsn = parsed
        calling_code = _CALLING_CODES.get(country_code) or _calling_code(country_code)
        if calling_code is None:
            return self._invalid(value, _BAD_COUNTRY_CODE)
        number_region, kind = calling_code.classify(nsn)
        if number_region is None or kind == _UNKNOWN:
            return self._invalid(value, f"not a valid number for {_where(number_region, country_code, region)}")
        e164 = "+" + calling_code.country_code_str + nsn
        if kind in _SMS_CAPABLE or self.allow_landline:
            return NumberCheck(e164, number_region, None, "")
        return NumberCheck(e164, number_region, NOT_MOBILE, f"{_TYPE_LABELS[kind]}: cannot receive SMS")

    def check_many(self, raws: list[str], regions: np.ndarray, names: list[str | None]) -> ColumnCheck:
        """check() for every cell of a column, cell ``i`` read with region ``names[regions[i]]``.

        The same verdicts as calling check() on each cell (the details of rejects aside: ask check() for
        those), with the common shapes decided by table lookups over the whole column.
        """
        return _check_column(self, raws, np.asarray(regions, dtype=np.int64), names)

    @staticmethod
    def _invalid(value: str, detail: str) -> NumberCheck:
        if _SPREADSHEET_FLOAT.fullmatch(value):
            detail = f"looks like a spreadsheet turned it into a number ({value})"
        return NumberCheck(None, None, INVALID_NUMBER, detail)


def classify_e164(e164: str) -> tuple[int, int] | None:
    """(country calling code, phonenumbers' number type) of an E.164 number, on the fast path; None when unknown.

    For bulksend/schedule.py, which needs the type to pick a number's time zones exactly as
    ``phonenumbers.timezone.time_zones_for_number`` does, without a ~30 µs parse per queued row.
    """
    digits = e164[1:] if e164.startswith("+") else e164
    calling_code = _country_code_prefix(digits)
    if calling_code is None:
        return None
    _, kind = calling_code.classify(digits[len(calling_code.country_code_str) :])
    return calling_code.country_code, kind


# --- a whole column at once ---------------------------------------------------------------------
#
# `NumberChecker.check_many` gives check()'s verdict for every cell of a column, with numpy. A cell of
# the common shape ("+" and digits, or digits, with the separators " -.()/") becomes an integer and a
# digit count; then each step of `_parse_digits` (calling code after "+" or an IDD, the region's own code
# without "+", national prefix, lengths) and of `_CallingCode.classify` is an array operation, and every
# regex those steps read is read from a `digitsets.Segments` table instead: for one metadata (or calling
# code) and one length, the answer of every regex involved is constant on intervals of integers, and each
# interval's answer comes from the exact code above. What the tables cannot decide (a prefix that could
# be read two ways, a transform rule, a pattern outside the regular subset, an unusual shape) goes
# through check() row by row. tests/test_phones_column.py compares the two, and phonenumbers, on
# generated columns for every region.

#: Below this many cells, check_many asks check() for each: a file of a few hundred rows from many countries
#: would otherwise build a table per calling code (tens of milliseconds each) to save microseconds a row.
SMALL_COLUMN = 2_000
_WIDEST = 19  # "+" and 18 digits: the integer stays below 10^18, inside int64
_POW10 = np.array([10**k for k in range(_WIDEST)], dtype=np.int64)
_UPOW10 = np.array([10**k for k in range(_WIDEST + 1)], dtype=np.uint64)
_ANY_DIGIT = re.compile(r"\d")  # Unicode digits, as phonenumbers' own patterns read them
_CC_BY_LENGTH = [np.zeros(10**k, dtype=bool) for k in range(4)]
for _code in _pnu.COUNTRY_CODE_TO_REGION_CODE:
    _CC_BY_LENGTH[len(str(_code))][_code] = True
del _code
_SMS_KINDS = np.zeros(128, dtype=bool)
_SMS_KINDS[list(_SMS_CAPABLE)] = True
_KIND_BITS = 128  # a table label is region id * 128 + number type (UNKNOWN is 99)
_DESCS = (
    "general_desc", "fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "personal_number",
    "voip", "pager", "uan", "voicemail",
)

_REGION_NAMES: list[str | None] = [None]  # label region ids; 0 is "no region"
_REGION_IDS: dict[str, int] = {}
_DIGIT_PATTERNS: dict[str, DigitPattern | None] = {}
_TABLES: dict[tuple, Segments | None] = {}


class ColumnCheck(NamedTuple):
    """check()'s verdicts for a column, as arrays (one entry per cell)."""

    e164: np.ndarray  # int64: the E.164 digits as an integer, 0 when invalid
    region: np.ndarray  # int16 index into ``regions``, -1 when invalid
    regions: list[str]  # in the order of their first number in the column
    status: np.ndarray  # int8: 0 accepted, 1 invalid_number, 2 not_mobile


def _digit_pattern(pattern: str) -> DigitPattern | None:
    try:
        return _DIGIT_PATTERNS[pattern]
    except KeyError:
        try:
            compiled = DigitPattern(pattern)
        except Unsupported:
            compiled = None
        _DIGIT_PATTERNS[pattern] = compiled
        return compiled


def _table(key: tuple, patterns: list[str], length: int, label, dtype=bool) -> Segments | None:
    """Segments for ``label`` over ``patterns`` at ``length``, built once; None when it cannot be built."""
    try:
        return _TABLES[key]
    except KeyError:
        compiled = [_digit_pattern(p) for p in dict.fromkeys(patterns)]
        table = None
        if all(p is not None for p in compiled):
            try:
                table = Segments(compiled, length, label, dtype)
            except TooComplex:
                table = None
        _TABLES[key] = table
        return table


def _general_table(md: _Metadata, length: int) -> Segments | None:
    return _table(("general", id(md), length), [md.general.pattern], length, md.matches_general)


def _region_id(region: str | None) -> int:
    if region is None:
        return 0
    found = _REGION_IDS.get(region)
    if found is None:
        found = _REGION_IDS[region] = len(_REGION_NAMES)
        _REGION_NAMES.append(region)
    return found


def _classify_table(calling_code: _CallingCode, length: int) -> Segments | None:
    """(region id, number type) of every national number of ``length`` for this calling code, as labels."""
    patterns: list[str] = []
    for _, walk, typed in calling_code.candidates:
        for md in (walk, typed):
            if md is None:
                continue
            for name in _DESCS:
                desc = getattr(md.metadata, name)
                if desc is not None and desc.national_number_pattern:
                    patterns.append(desc.national_number_pattern)
        if walk is not None and walk.leading_digits is not None and not calling_code.single:
            patterns.append(f"(?:{walk.leading_digits.pattern})\\d*")

    def label(nsn: str) -> int:
        region, kind = calling_code.classify(nsn)
        return _region_id(region) * _KIND_BITS + kind

    return _table(("classify", calling_code.country_code, length), patterns, length, label, np.int64)


def _groups(keys: np.ndarray, rows: np.ndarray):
    """(key, the rows among ``rows`` with that key) for each distinct key."""
    if rows.size == 0:
        return
    picked = keys[rows]
    for key in np.unique(picked).tolist():
        yield key, rows[picked == key]


def _shape(raws: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each cell: is it of the common shape, its digits as an integer, their count, and a leading "+".

    The common shape is what check()'s fast path takes, narrowed to at most 18 digits: after removing
    " -.()/", an optional leading "+" then 3 to 18 ASCII digits, and no other character at all.
    """
    n = len(raws)
    text = "\n".join(raws)
    broken = None
    if text.count("\n") != n - 1:  # a quoted cell with a line break: leave those cells to check()
        broken = np.fromiter(("\n" in raw for raw in raws), dtype=bool, count=n)
        text = "\n".join("" if "\n" in raw else raw for raw in raws)
    # Six replaces over the whole column beat one regex substitution by four times.
    for separator in " -.()/":
        text = text.replace(separator, "")
    # One byte a character ("?" for anything outside ASCII), the cells at known offsets: a matrix of
    # the first 19 characters of each cell, without a Python object per cell.
    data = np.frombuffer(text.encode("ascii", "replace"), dtype=np.uint8)
    ends = np.append(np.flatnonzero(data == 10), data.size)
    starts = np.zeros(n, dtype=np.int64)
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts
    places = np.arange(_WIDEST)
    padded = np.concatenate([data, np.zeros(_WIDEST, dtype=np.uint8)])
    matrix = padded[starts[:, None] + places]
    matrix[places >= lengths[:, None]] = 48  # past the end of the cell: "0", so the digits read left-aligned
    plus = matrix[:, 0] == 43
    digit = matrix - np.uint8(48)  # wraps around for characters below "0"
    is_digit = digit < 10
    count = np.count_nonzero(is_digit, axis=1) - np.maximum(_WIDEST - lengths, 0)
    raw_lengths = np.fromiter(map(len, raws), dtype=np.int64, count=n)
    ok = (lengths <= _WIDEST) & (raw_lengths <= _MAX_INPUT_STRING_LENGTH) & (count == lengths - plus)
    ok &= (count >= 3) & (count <= _WIDEST - 1)
    if broken is not None:
        ok &= ~broken
    # The digits as a number: 19 places left-aligned in an unsigned 64-bit integer ("+" counts as 0),
    # then shifted right by the places the cell does not fill.
    digit[~is_digit] = 0
    left = np.zeros(n, dtype=np.uint64)
    for column in range(_WIDEST):
        left = left * np.uint64(10) + digit[:, column]
    value = (left // _UPOW10[_WIDEST - np.minimum(lengths, _WIDEST)]).astype(np.int64)
    return ok, value, count, plus


def _check_column(checker: "NumberChecker", raws: list[str], regions: np.ndarray, names) -> ColumnCheck:
    n = len(raws)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return ColumnCheck(e164=empty, region=empty.astype(np.int16), regions=[], status=empty.astype(np.int8))
    column = _Column(n)
    if n < SMALL_COLUMN:
        # A short column: check() row by row costs less than building the tables its calling codes need.
        column.slow[:] = True
        return column.finish(checker, raws, regions, names)
    ok, value, count, plus = _shape(raws)
    slow = column.slow
    slow |= ~ok
    # A cell without a single digit is not a number whatever its region: parse() refuses it.
    for i in np.flatnonzero(~ok).tolist():
        if _ANY_DIGIT.search(raws[i]) is None:
            column.invalid[i] = True
            slow[i] = False

    # With "+": the calling code is the first 1, 2 or 3 digits that name one (_country_code_prefix).
    unknown = np.zeros(n, dtype=bool)  # "+" and no known calling code
    with_plus = np.flatnonzero(ok & plus)
    unknown[column.read_calling_code(with_plus, value[with_plus], count[with_plus])] = True

    # Without "+" (or with one and no known calling code), the row's region reads the digits, as
    # _extract_country_code does: an IDD then a calling code; else the region's own calling code, when
    # that reading fits better; else a national number of the region.
    for index, group in _groups(regions, np.flatnonzero(ok & (~plus | unknown))):
        region = names[index]
        default = _metadata_for_region(region) if region in _SUPPORTED_REGIONS else None
        if default is None or not default.fast_parse:
            # No region: "+" and an unknown code is invalid, no "+" is too (check() says why). A region
            # check() does not replay: check() decides.
            if region is None:
                column.invalid[group] = True
            else:
                slow[group] = True
            continue
        group = column.read_idd(default, group, value[group], count[group])
        column.invalid[group[plus[group]]] = True  # "+", an unknown code and no IDD: parse() gives up
        group = group[~plus[group]]
        group = column.read_own_code(default, group, value[group], count[group])
        column.country[group] = default.country_code
        column.national[group] = value[group]
        column.length[group] = count[group]
        column.reader[group] = column.read_with(default)
    # Rows in a region check() does not replay (unknown, or a metadata parse() cannot use) go to check().
    unsupported = [i for i, name in enumerate(names) if name is not None and not _replayable(name)]
    if unsupported:
        slow |= np.isin(regions, unsupported)
    return column.finish(checker, raws, regions, names)


class _Column:
    """The state of one column on its way through parse() and classify(), as arrays."""

    def __init__(self, n: int) -> None:
        self.slow = np.zeros(n, dtype=bool)  # cells check() decides one by one
        self.invalid = np.zeros(n, dtype=bool)
        self.country = np.zeros(n, dtype=np.int64)  # calling code
        self.national = np.zeros(n, dtype=np.int64)  # national number digits; leading zeros implied by `length`
        self.length = np.zeros(n, dtype=np.int64)
        self.reader = np.full(n, -1, dtype=np.int64)  # index into `readers`: the metadata parse() reads it with
        self.readers: list[_Metadata] = []
        self._reader_ids: dict[int, int] = {}

    def read_with(self, md: _Metadata) -> int:
        if id(md) not in self._reader_ids:
            self._reader_ids[id(md)] = len(self.readers)
            self.readers.append(md)
        return self._reader_ids[id(md)]

    def read_calling_code(self, rows: np.ndarray, values: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """Digits that start with a calling code (after "+" or an IDD): set their code, national number and
        reader. Returns the rows that start with no known code."""
        if rows.size == 0:
            return rows
        prefixes = [values // _POW10[np.maximum(sizes - k, 0)] for k in (1, 2, 3)]
        known = [_CC_BY_LENGTH[k][prefixes[k - 1] % 10**k] & (sizes >= k) for k in (1, 2, 3)]
        cc_length = np.where(known[0], 1, np.where(known[1], 2, np.where(known[2], 3, 0)))
        code = np.where(cc_length == 1, prefixes[0], np.where(cc_length == 2, prefixes[1], prefixes[2]))
        found = cc_length > 0
        picked = rows[found]
        self.country[picked] = code[found]
        self.length[picked] = sizes[found] - cc_length[found]
        self.national[picked] = values[found] % _POW10[self.length[picked]]
        for cc, group in _groups(self.country, picked):
            main = (_CALLING_CODES.get(cc) or _calling_code(cc)).main
            if main is None or not main.fast_parse:
                self.slow[group] = True
            else:
                self.reader[group] = self.read_with(main)
        return rows[~found]

    def read_idd(self, md: _Metadata, rows: np.ndarray, values: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """Rows whose digits start with the region's IDD (not followed by 0) are read as a calling code and a
        number; those too short or with an unknown code are invalid. Returns the other rows."""
        if md.idd is None or rows.size == 0:
            return rows
        matched, cut, undecided = _prefix_cut(md.idd, values, sizes)
        rest = sizes - cut
        after = (values // _POW10[np.maximum(rest - 1, 0)]) % 10  # the digit after the IDD
        idd = matched & ~((rest > 0) & (after == 0))
        self.slow[rows[undecided]] = True
        short = idd & (rest <= _MIN_LENGTH_FOR_NSN)
        self.invalid[rows[short]] = True
        dialled = idd & ~short
        unknown = self.read_calling_code(rows[dialled], values[dialled] % _POW10[rest[dialled]], rest[dialled])
        self.invalid[unknown] = True
        return rows[~idd & ~undecided]

    def read_own_code(self, md: _Metadata, rows: np.ndarray, values: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """Digits that start with the region's calling code, written without "+" ("447400123456" in GB): read
        as that code and a number when the rest fits the region better, or when the whole is too long for a
        national number. Returns the rows read as national numbers of the region."""
        code_digits = len(md.country_code_str)
        own = (sizes > code_digits) & (values // _POW10[np.maximum(sizes - code_digits, 0)] == md.country_code)
        if not own.any():
            return rows
        picked, whole, whole_size = rows[own], values[own], sizes[own]
        rest_size = whole_size - code_digits
        rest = whole % _POW10[rest_size]
        potential, potential_size, _, undecided = _strip(md, rest, rest_size, self.slow, picked)
        fits_whole = _general(md, whole, whole_size, self.slow, picked)
        fits_potential = _general(md, potential, potential_size, self.slow, picked)
        too_long = np.array(md.length_results, dtype=np.int64)[whole_size] == _VR.TOO_LONG
        as_code = ((~fits_whole & fits_potential) | too_long) & ~undecided
        chosen = picked[as_code]
        self.country[chosen] = md.country_code
        self.national[chosen] = potential[as_code]
        self.length[chosen] = potential_size[as_code]
        main = (_CALLING_CODES.get(md.country_code) or _calling_code(md.country_code)).main
        if main is None or not main.fast_parse:
            self.slow[chosen] = True
        else:
            self.reader[chosen] = self.read_with(main)
        keep = np.ones(rows.size, dtype=bool)
        keep[np.flatnonzero(own)[as_code | undecided]] = False
        return rows[keep & ~self.slow[rows]]

    def finish(self, checker: "NumberChecker", raws: list[str], regions: np.ndarray, names) -> ColumnCheck:
        """The rest of _parse_digits (national prefix, lengths), classify(), and check() for the slow rows."""
        slow, invalid = self.slow, self.invalid
        for index, group in _groups(self.reader, np.flatnonzero(~slow & ~invalid & (self.reader >= 0))):
            self._strip_national_prefix(self.readers[index], group)
        label = np.zeros(len(raws), dtype=np.int64)  # region id * 128 + number type, from a table; 0: invalid
        country, national, length = self.country, self.national, self.length
        for (cc, size), group in _pairs(country, length, np.flatnonzero(~slow & ~invalid & (self.reader >= 0))):
            table = None
            if len(str(cc)) + size <= 18:  # the E.164 integer must fit in int64
                table = _classify_table(_CALLING_CODES.get(cc) or _calling_code(cc), size)
            if table is None:
                slow[group] = True
            else:
                label[group] = table.find(national[group])

        region_id = label // _KIND_BITS
        kind = label % _KIND_BITS
        valid = ~slow & ~invalid & (region_id > 0) & (kind != _UNKNOWN)
        status = np.where(valid, np.where(_SMS_KINDS[kind] | checker.allow_landline, 0, 2), 1).astype(np.int8)
        e164 = np.where(valid, country * _POW10[np.minimum(length, 18)] + national, 0)
        region_id = np.where(valid, region_id, 0)
        check = checker.check
        for i in np.flatnonzero(slow).tolist():
            result = check(raws[i], names[regions[i]])
            if result.e164 is not None:
                e164[i] = int(result.e164[1:])
                region_id[i] = _region_id(result.region)
            status[i] = 0 if result.reason is None else (1 if result.reason == INVALID_NUMBER else 2)
        # The column's regions in the order their first number appears, as a row-by-row loop lists them.
        present = np.flatnonzero(region_id)
        ids, first = np.unique(region_id[present], return_index=True)
        ids = ids[np.argsort(first)]
        local = np.full(len(_REGION_NAMES), -1, dtype=np.int16)
        local[ids] = np.arange(ids.size, dtype=np.int16)
        region = local[region_id]
        return ColumnCheck(e164=e164, region=region, regions=[_REGION_NAMES[i] for i in ids.tolist()], status=status)

    def _strip_national_prefix(self, md: _Metadata, rows: np.ndarray) -> None:
        """The end of _parse_digits for ``rows`` read with ``md``: too short, national prefix, too long."""
        national, length = self.national, self.length
        too_short = length[rows] < _MIN_LENGTH_FOR_NSN
        self.invalid[rows[too_short]] = True
        rows = rows[~too_short]
        values, sizes, changed, undecided = _strip(md, national[rows], length[rows], self.slow, rows)
        results = np.array(md.length_results, dtype=np.int64)[sizes]
        take = changed & ~undecided & ((results == _VR.IS_POSSIBLE) | (results == _VR.TOO_LONG))
        national[rows[take]] = values[take]
        length[rows[take]] = sizes[take]
        rows = rows[~undecided]
        self.invalid[rows[length[rows] > _MAX_LENGTH_FOR_NSN]] = True


def _prefix_cut(pattern: re.Pattern, values: np.ndarray, sizes: np.ndarray, *, exact: bool = True):
    """What ``pattern.match`` does at the start of each number: (matched, digits taken, undecided).

    When the pattern matches a few strings, a number that starts with exactly one of them is matched and
    that string is what re takes; a number that starts with two (or, with ``exact`` false, any) of them
    is undecided, since re's order of trying would pick: check() decides those.
    """
    matched = np.zeros(values.size, dtype=bool)
    cut = np.zeros(values.size, dtype=np.int64)
    compiled = _digit_pattern(pattern.pattern)
    strings = compiled.strings() if compiled is not None and exact else None
    if strings is None:
        undecided = np.zeros(values.size, dtype=bool)
        for size in np.unique(sizes).tolist():
            at = sizes == size
            table = _table(
                ("match", pattern.pattern, size), [f"(?:{pattern.pattern})\\d*"], size,
                lambda s: pattern.match(s) is not None,
            )
            undecided[at] = True if table is None else table.find(values[at])
        return matched, cut, undecided
    matches = np.zeros(values.size, dtype=np.int64)
    for text in strings:
        k = len(text)
        hit = (sizes >= k) & (values // _POW10[np.maximum(sizes - k, 0)] == (int(text) if text else 0))
        matches += hit
        cut = np.where(hit, k, cut)
    undecided = matches > 1
    matched = matches == 1
    cut[~matched] = 0
    return matched, cut, undecided


def _strip(md: _Metadata, values, sizes, slow, rows):
    """_Metadata.strip_national_prefix for each number: (values, sizes, changed, undecided).

    ``changed`` is where the result is not the number itself (parse()'s `stripped is not national`);
    undecided numbers are marked slow (``rows`` names them in ``slow``).
    """
    out_values, out_sizes = values.copy(), sizes.copy()
    changed = np.zeros(values.size, dtype=bool)
    if md.national_prefix is None:
        return out_values, out_sizes, changed, changed.copy()
    # A transform rule rewrites what the prefix matches: numbers it may match are left to check().
    matched, cut, undecided = _prefix_cut(md.national_prefix, values, sizes, exact=md.transform_rule is None)
    nonempty = sizes > 0  # strip_national_prefix returns an empty number as it is
    undecided &= nonempty
    strip = np.flatnonzero(matched & (cut > 0) & nonempty)
    if strip.size:
        new_sizes = sizes[strip] - cut[strip]
        new_values = values[strip] % _POW10[new_sizes]
        viable_old = _general(md, values[strip], sizes[strip], slow, rows[strip])
        viable_new = _general(md, new_values, new_sizes, slow, rows[strip])
        taken = ~(viable_old & ~viable_new)
        out_values[strip[taken]] = new_values[taken]
        out_sizes[strip[taken]] = new_sizes[taken]
        changed[strip[taken]] = True
        undecided[strip] |= slow[rows[strip]]
    slow[rows[undecided]] = True
    return out_values, out_sizes, changed, undecided


def _general(md: _Metadata, values, sizes, slow, rows) -> np.ndarray:
    """md.matches_general for each (value, size); rows whose table cannot be built are marked slow."""
    out = np.zeros(values.size, dtype=bool)
    for size in np.unique(sizes).tolist():
        at = sizes == size
        if size == 0:
            out[at] = md.matches_general("")
            continue
        table = _general_table(md, size)
        if table is None:
            slow[rows[at]] = True
        else:
            out[at] = table.find(values[at])
    return out


def _replayable(region: str) -> bool:
    if region not in _SUPPORTED_REGIONS:
        return False
    md = _metadata_for_region(region)
    return md is not None and md.fast_parse


def _pairs(first: np.ndarray, second: np.ndarray, rows: np.ndarray):
    """((a, b), rows) for each distinct pair (first[row], second[row]) among ``rows``."""
    if rows.size == 0:
        return
    keys = first[rows] * 64 + second[rows]
    for key in np.unique(keys).tolist():
        yield (key // 64, key % 64), rows[keys == key]
