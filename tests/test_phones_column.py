"""NumberChecker.check_many (a whole column, numpy lookups) gives check()'s verdict, hence phonenumbers', on every cell.

check() is itself proven against phonenumbers in tests/test_phones.py; here the column path is compared
with both, on generated columns that mix every region's numbers in the shapes files hold, and the
edge cases where a table-driven step could go wrong (national prefixes, IDDs, calling codes written
without "+", lengths one off, spaces, punctuation, extensions, letters, non-ASCII digits).
"""

from __future__ import annotations

import random
import re

import numpy as np
import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat
from phonenumbers import phonenumberutil as pnu
from phonenumbers.phonemetadata import PhoneMetadata

from bulksend import digitsets, phones
from bulksend.phones import INVALID_NUMBER, NumberChecker

from tests.test_phones import EXAMPLES, FORMATS, REGIONS, mutated_examples, phone_ish_text, punctuated_digits, reference

CHECKER = NumberChecker()
LANDLINE_CHECKER = NumberChecker(allow_landline=True)
STATUS = {None: 0, INVALID_NUMBER: 1, "not_mobile": 2}


@pytest.fixture(autouse=True)
def tables_for_every_column(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests compare the tables with check(): a column of any length takes the table path here."""
    monkeypatch.setattr(phones, "SMALL_COLUMN", 0)


def column_verdicts(checker: NumberChecker, cases: list[tuple[str, str | None]]) -> list[tuple]:
    """check_many over the whole column, as (e164, region, status) per cell."""
    names: list[str | None] = []
    index: dict[str | None, int] = {}
    codes = [index.setdefault(region, len(index)) for _, region in cases]
    names = list(index)
    result = checker.check_many([raw for raw, _ in cases], np.array(codes), names)
    assert len(result.e164) == len(result.region) == len(result.status) == len(cases)
    return [
        (
            f"+{int(result.e164[i])}" if result.e164[i] else None,
            result.regions[result.region[i]] if result.region[i] >= 0 else None,
            int(result.status[i]),
        )
        for i in range(len(cases))
    ]


def row_verdicts(checker: NumberChecker, cases: list[tuple[str, str | None]]) -> list[tuple]:
    out = []
    for raw, region in cases:
        check = checker.check(raw, region)
        out.append((check.e164, check.region, STATUS[check.reason]))
    return out


def assert_column_agrees(cases: list[tuple[str, str | None]], *, with_library: bool = False) -> None:
    for checker, allow in ((CHECKER, False), (LANDLINE_CHECKER, True)):
        got = column_verdicts(checker, cases)
        want = row_verdicts(checker, cases)
        wrong = [(cases[i], got[i], want[i]) for i in range(len(cases)) if got[i] != want[i]]
        assert wrong == [], wrong[:20]
        if with_library:
            library = [reference(raw, region, allow) for raw, region in cases]
            library = [(e164, region, STATUS[reason]) for e164, region, reason in library]
            wrong = [(cases[i], got[i], library[i]) for i in range(len(cases)) if got[i] != library[i]]
            assert wrong == [], wrong[:20]


def _siblings(region: str) -> list[str]:
    return [r for r in pnu.COUNTRY_CODE_TO_REGION_CODE[phonenumbers.country_code_for_region(region)] if r != region]


def _shapes(rng: random.Random, code: int, nsn: str, national_prefix: str) -> list[str]:
    """The ways files write one number, and near misses of each."""
    spaced = " ".join(nsn[i : i + 3] for i in range(0, len(nsn), 3))
    return [
        f"+{code}{nsn}",
        f"+{code} {spaced}",
        f"+{code} ({national_prefix or '0'}) {spaced}",
        f"00{code}{nsn}",
        f"011 {code} {nsn}",
        f"{code}{nsn}",
        f"{national_prefix}{nsn}",
        f"{national_prefix} {spaced}",
        f"({national_prefix}{nsn[:3]}) {nsn[3:6]}-{nsn[6:]}",
        f"{national_prefix}{nsn}".replace(nsn[:2], nsn[:2] + ".", 1),
        nsn,
        f"  +{code}{nsn}  ",
        f"\t{national_prefix}{nsn}",
        f"+{code}{nsn} ext. 12",
        f"+{code}{nsn}x7",
        f"+{code}{nsn[:-1]}",  # one digit short
        f"+{code}{nsn}{rng.randrange(10)}",  # one too many
        f"+{code}{nsn}{rng.randrange(100):02d}",
        f"{national_prefix}{nsn[:-2]}",
        f"+{code}0{nsn}",  # a national prefix after the calling code
        f"+0{code}{nsn}",
        f"+{code}{nsn}".replace("+", "＋"),
        f"+{code}-{nsn}/",
        f"+{code}{nsn}" + "9" * rng.randint(5, 12),  # far too long
        "+" + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 22))),
    ]


def _sweep(seed: int, per_region: int) -> list[tuple[str, str | None]]:
    """Numbers near every region's valid ranges, in every shape, read in the region, a sibling, another, none."""
    rng = random.Random(seed)
    by_region: dict[str | None, list] = {}
    for home, number in EXAMPLES:
        by_region.setdefault(home, []).append(number)
    cases = []
    for home, numbers in sorted(by_region.items(), key=lambda kv: kv[0] or ""):
        for _ in range(per_region):
            number = rng.choice(numbers)
            nsn = pnu.national_significant_number(number)
            keep = rng.randint(max(1, len(nsn) - 6), len(nsn))  # keep the leading digits that pick the type
            nsn = nsn[:keep] + "".join(rng.choice("0123456789") for _ in range(len(nsn) - keep))
            metadata = PhoneMetadata.metadata_for_region(home) if home else None
            national_prefix = (metadata.national_prefix or "") if metadata is not None else ""
            readers = [home, home, rng.choice(REGIONS), None, *(_siblings(home)[:1] if home else [])]
            for raw in rng.sample(_shapes(rng, number.country_code, nsn, national_prefix), 6):
                cases.append((raw, rng.choice(readers)))
    rng.shuffle(cases)  # one column mixing every region
    return cases


def test_a_seeded_sweep_of_every_region_agrees_with_check_and_phonenumbers() -> None:
    cases = _sweep(20261130, per_region=12)
    assert len(cases) > 15_000
    assert_column_agrees(cases, with_library=True)


def test_a_larger_sweep_agrees_with_check() -> None:
    assert_column_agrees(_sweep(7, per_region=40))


def test_every_example_number_in_every_format_agrees() -> None:
    cases = []
    for home, number in EXAMPLES:
        shapes = [phonenumbers.format_number(number, f) for f in FORMATS]
        national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        shapes.append("".join(c for c in national if c.isdigit()))
        shapes.append(f"{number.country_code}{pnu.national_significant_number(number)}")
        # The bare national number: where it starts like the national prefix, parse() keeps or strips it
        # depending on which reading fits the region's patterns.
        shapes.append(pnu.national_significant_number(number))
        for region in (home, None, "US", "GB"):
            cases.extend((shape, region) for shape in shapes)
    assert_column_agrees(cases, with_library=True)


def test_numbers_that_start_like_a_national_prefix_agree() -> None:
    """parse() strips a national prefix only when the rest still fits the region: both readings, every region."""
    rng = random.Random(3)
    cases = []
    for region in REGIONS:
        metadata = PhoneMetadata.metadata_for_region(region)
        if not metadata.national_prefix_for_parsing:
            continue
        try:
            starts = digitsets.DigitPattern(metadata.national_prefix_for_parsing).strings(most=8) or []
        except digitsets.Unsupported:
            starts = []
        starts = [s for s in starts if s] or [metadata.national_prefix or "0"]
        for _ in range(60):
            digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 12)))
            raw = rng.choice(starts) + digits
            cases.append((rng.choice(["", "+", "00"]) + raw if rng.random() < 0.1 else raw, region))
    # Kept whole, since the rest would not fit: valid numbers that begin with the national prefix.
    cases += [("82087781039", "BY"), ("82013145963", "BY"), ("800800855", "BY"), ("000424827", "UY")]
    assert_column_agrees(cases)


HAND_PICKED = [
    ("07400 123456", "GB"),
    ("+44 7400 123456", None),
    ("0044 7400 123456", "GB"),
    ("+44 (0) 7400 123456", "US"),
    ("447400123456", "GB"),
    ("(415) 555-0134", "US"),
    ("06 12 34 56 78", "FR"),
    ("0151/1234 5678", "DE"),
    ("030 1234567", "DE"),
    ("0800 123 4567", "GB"),
    ("1-800-555-0199", "US"),
    ("+1 201-555-0123 ext. 12", "US"),
    ("tel:+44-7400-123456", None),
    ("  +447400123456\t", None),
    ("07700 900123", "GB"),
    ("+999 123 4567", None),
    ("+999 123 4567", "GB"),
    ("+0044 7400 123456", "GB"),
    ("+00 44 7400 123456", "US"),
    ("not a number", "GB"),
    ("n/a", None),
    ("", "GB"),
    ("   ", None),
    ("07400 123456", None),
    ("07400 123456", "gb"),
    ("07400 123456", "UK"),
    ("+447400123456", "UK"),
    ("4.47400123456E+11", "GB"),
    ("447400123456.0", "GB"),
    ("12", "GB"),
    ("+12", None),
    ("+441", None),
    ("1800201234567", "GB"),  # GB's other national prefix, 180020
    ("0412 345 678", "AU"),
    ("18311 412 345 678", "AU"),
    ("0011 44 7400 123456", "AU"),
    ("011 54 9 11 1234 5678", "US"),
    ("0 11 15 1234 5678", "AR"),  # AR's national prefix with a transform rule
    ("(11) 9 1234-5678", "BR"),
    ("+7 912 345 67 89", None),
    ("8 912 345 67 89", "RU"),
    ("+39 06 1234 5678", None),  # Italian leading zero
    ("+800 1234 5678", None),  # non-geographic
    ("+882 34 1234 5678", None),
    ("+1 268 464 1234", None),  # a NANP island sharing +1
    ("+44 1481 123456", None),  # GG sharing +44
    ("٣٣٣٣٣٣٣", "GB"),
    ("０７４００ １２３４５６", "GB"),
    ("+" + "9" * 18, None),
    ("+" + "4" * 19, None),
    ("0" * 19, "GB"),
    ("+44 74\n00 123456", "GB"),
    ("000447400123456", "GB"),  # an IDD followed by 0 is not an IDD
    ("0044", "GB"),
    ("00447", "GB"),
    ("00999 1234567", "GB"),
    ("0011 999 1234567", "AU"),
    ("4474001234567", "GB"),  # the region's code written without "+", one digit too many
    ("44 20 7946 0000", "GB"),
    ("1 415 555 0134", "CA"),
    ("33612345678", "FR"),
    ("3306 12 34 56 78", "FR"),
]


def test_hand_picked_cells_agree_with_check_and_phonenumbers() -> None:
    assert_column_agrees(HAND_PICKED, with_library=True)


def test_regions_are_listed_in_the_order_their_first_number_appears() -> None:
    cases = [("n/a", "GB"), ("+33 6 12 34 56 78", None), ("+44 7400 123456", None), ("1-800-555-0199", "US"),
             ("+33 6 12 34 56 79", None), ("٣٣٣ ٣٣٣ ٣٣٣٣", "FR"), ("(0)7400 123457", "GB")]
    names = [None, "GB", "US", "FR"]
    codes = np.array([names.index(region) for _, region in cases])
    result = CHECKER.check_many([raw for raw, _ in cases], codes, names)
    assert result.regions == ["FR", "GB", "US"]


def test_an_empty_column() -> None:
    result = CHECKER.check_many([], np.zeros(0, dtype=np.int64), [])
    assert result.e164.size == result.region.size == result.status.size == 0 and result.regions == []


@st.composite
def columns(draw) -> list[tuple[str, str | None]]:
    region = st.sampled_from([*REGIONS, None, "gb", "UK", ""])
    cell = st.one_of(
        st.tuples(punctuated_digits(), region),
        mutated_examples(),
        st.tuples(st.one_of(st.text(max_size=30), phone_ish_text), region),
    )
    return draw(st.lists(cell, min_size=1, max_size=40))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(columns())
def test_generated_columns_agree_with_check(cases: list[tuple[str, str | None]]) -> None:
    assert_column_agrees(cases)


COMMON = [
    ("+447400123456", None),
    ("+49 151 12345678", "GB"),
    ("07400 123456", "GB"),
    ("(415) 555-0134", "US"),
    ("06 12 34 56 78", "FR"),
    ("0151 12345678", "DE"),
    ("+1 415 555 0134", None),
    ("+34 612 345 678", None),
    ("0412 345 678", "AU"),
    ("+91 98765 43210", None),
    ("0 20 7946 0000", "GB"),
    ("07700 900123", "GB"),  # invalid, yet decided by the tables too
    ("n/a", "GB"),
    ("", "GB"),
    ("+999 1234567", "GB"),
    ("0044 7400 123456", "GB"),  # an IDD
    ("011 44 7400 123456", "US"),
    ("447400123456", "GB"),  # the region's calling code without "+"
    ("14155550134", "US"),
    ("33 6 12 34 56 78", "FR"),
]


def test_common_shapes_are_decided_without_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of the column path: the shapes real files hold never take the per-row road."""
    want = row_verdicts(CHECKER, COMMON)

    def one_by_one(raw, region):
        raise AssertionError(f"{raw!r} ({region}) was checked row by row")

    checker = NumberChecker()
    monkeypatch.setattr(checker, "check", one_by_one)
    assert column_verdicts(checker, COMMON) == want


# --- digitsets: the interval tables against the re module -------------------------------------------

_DESCS = ("general_desc", "fixed_line", "mobile", "toll_free", "premium_rate", "voip", "uan")


def _metadata_patterns() -> list[str]:
    found = set()
    for region in sorted(pnu.SUPPORTED_REGIONS):
        metadata = PhoneMetadata.metadata_for_region(region)
        for name in _DESCS:
            desc = getattr(metadata, name)
            if desc is not None and desc.national_number_pattern:
                found.add(desc.national_number_pattern)
        for pattern in (metadata.international_prefix, metadata.national_prefix_for_parsing, metadata.leading_digits):
            if pattern:
                found.add(f"(?:{pattern})\\d*")
    return sorted(found)


def test_segments_agree_with_re_on_every_metadata_pattern() -> None:
    rng = random.Random(11)
    patterns = _metadata_patterns()
    assert len(patterns) > 800
    refused = 0
    for pattern in rng.sample(patterns, 300):
        compiled = re.compile(pattern)
        try:
            digit_pattern = digitsets.DigitPattern(pattern)
        except digitsets.Unsupported:  # anchors or lookarounds: those numbers take the per-row road
            assert re.search(r"\$|\(\?[=!<]", pattern), pattern
            refused += 1
            continue
        for length in rng.sample(range(1, 14), 3):
            table = digitsets.Segments(
                [digit_pattern], length, lambda s: compiled.fullmatch(s) is not None, dtype=bool
            )
            # Every boundary, its neighbours, and random numbers.
            values = {0, 10**length - 1, *(rng.randrange(10**length) for _ in range(40))}
            for start in table.starts.tolist():
                values.update(v for v in (start - 1, start, start + 1) if 0 <= v < 10**length)
            values = sorted(values)
            got = table.find(np.array(values, dtype=np.int64)).tolist()
            want = [compiled.fullmatch(format(v, f"0{length}d")) is not None for v in values]
            assert got == want, pattern
    assert refused < 10


def test_finite_patterns_list_their_strings_and_others_are_refused() -> None:
    assert digitsets.DigitPattern("0|180020").strings() == ["0", "180020"]
    assert digitsets.DigitPattern("(183[12])|0").strings() == ["0", "1831", "1832"]
    assert digitsets.DigitPattern("0?").strings() == ["", "0"]
    assert digitsets.DigitPattern("\\d+").strings() is None
    assert digitsets.DigitPattern("[2-9]\\d{5}").strings() is None  # too many
    with pytest.raises(digitsets.Unsupported):
        digitsets.DigitPattern("(?=1)\\d")
    with pytest.raises(digitsets.Unsupported):
        digitsets.DigitPattern("(1)\\1")


def test_a_table_with_too_many_intervals_is_refused() -> None:
    late = digitsets.DigitPattern("\\d{7}[2-9]\\d")
    with pytest.raises(digitsets.TooComplex):
        digitsets.Segments([late], 9, lambda s: True)


def test_a_short_column_is_checked_row_by_row_without_building_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(phones, "SMALL_COLUMN", 2_000)
    monkeypatch.setattr(phones, "_TABLES", {})
    cases = [("+447911123456", "GB"), ("07911 123456", "GB"), ("+1 415 555 2671", None), ("n/a", "GB"),
             ("+33 6 12 34 56 78", "FR"), ("020 7946 0018", "GB")]
    assert column_verdicts(CHECKER, cases) == row_verdicts(CHECKER, cases)
    assert phones._TABLES == {}  # no table was built for six cells
