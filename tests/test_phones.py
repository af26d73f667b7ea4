"""NumberChecker gives phonenumbers' own verdict for every input: differential tests against the library."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType
from phonenumbers import phonenumberutil as pnu
from phonenumbers.phonemetadata import PhoneMetadata

from bulksend import phones
from bulksend.phones import NumberCheck, NumberChecker

SMS_CAPABLE = {
    PhoneNumberType.MOBILE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE,
    PhoneNumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER,
}


Verdict = tuple[str | None, str | None, str | None]


def reference(raw: str, region: str | None, allow_landline: bool = False) -> Verdict:
    """The contract, spelled out with the plain (slow) phonenumbers calls."""
    value = raw.strip()
    if not value:
        return None, None, "invalid_number"
    try:
        number = phonenumbers.parse(value, region)
    except NumberParseException:
        return None, None, "invalid_number"
    if not phonenumbers.is_valid_number(number):
        return None, None, "invalid_number"
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    region_code = phonenumbers.region_code_for_number(number)
    if allow_landline or phonenumbers.number_type(number) in SMS_CAPABLE:
        return e164, region_code, None
    return e164, region_code, "not_mobile"


CHECKER = NumberChecker()
LANDLINE_CHECKER = NumberChecker(allow_landline=True)
REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
NUMBER_TYPES = [t for t in PhoneNumberType.values() if t != PhoneNumberType.UNKNOWN]
FORMATS = [
    PhoneNumberFormat.E164,
    PhoneNumberFormat.INTERNATIONAL,
    PhoneNumberFormat.NATIONAL,
    PhoneNumberFormat.RFC3966,
]
NON_GEO_DESCS = (
    "fixed_line mobile toll_free premium_rate shared_cost personal_number voip pager uan voicemail".split()
)


def _example_numbers() -> list[tuple[str | None, phonenumbers.PhoneNumber]]:
    """(home region, number) for every example number of every type, geographic and not."""
    examples = []
    for region in REGIONS:
        for number_type in NUMBER_TYPES:
            number = phonenumbers.example_number_for_type(region, number_type)
            if number is not None:
                examples.append((region, number))
    for country_code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        metadata = PhoneMetadata.metadata_for_nongeo_region(country_code)
        for name in NON_GEO_DESCS:
            desc = getattr(metadata, name)
            if desc is not None and desc.example_number:
                examples.append((None, phonenumbers.parse(f"+{country_code}{desc.example_number}", None)))
    return examples


EXAMPLES = _example_numbers()


def _other_regions(home: str | None) -> list[str | None]:
    """Regions to read a number in besides its own: a neighbour with another calling code, a sibling
    sharing its calling code (CA for US, GG for GB…), and none at all."""
    if home is None:
        return ["US", "GB", None]
    index = REGIONS.index(home)
    country_code = phonenumbers.country_code_for_region(home)
    neighbour = next(
        r for r in REGIONS[index + 1 :] + REGIONS if phonenumbers.country_code_for_region(r) != country_code
    )
    siblings = [r for r in pnu.COUNTRY_CODE_TO_REGION_CODE[country_code] if r != home]
    return [home, neighbour, *siblings[:1], None]


def _disagreements(cases) -> list[tuple[str, str | None, tuple, tuple]]:
    found = []
    for raw, region in cases:
        for checker, allow in ((CHECKER, False), (LANDLINE_CHECKER, True)):
            got = tuple(checker.check(raw, region)[:3])
            want = reference(raw, region, allow)
            if got != want:
                found.append((raw, region, want, got))
    return found


# (1) Every example number, in every format, read in its own region, another one, and none.


def test_example_numbers_of_every_region_and_type_agree_with_phonenumbers() -> None:
    cases = []
    for home, number in EXAMPLES:
        national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        international = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
        shapes = [phonenumbers.format_number(number, f) for f in FORMATS]
        # Spreadsheet-style variants: national digits only, international with 00 and dots.
        shapes.append("".join(c for c in national if c.isdigit()))
        shapes.append("00" + international[1:].replace(" ", "."))
        for region in _other_regions(home):
            cases.extend((shape, region) for shape in shapes)
    assert _disagreements(cases) == []


def test_the_examples_span_every_region_and_both_kinds_of_valid_number() -> None:
    assert {home for home, _ in EXAMPLES} == {*REGIONS, None}
    assert len(EXAMPLES) > 1000
    verdicts = {
        CHECKER.check(phonenumbers.format_number(n, PhoneNumberFormat.E164), None).reason
        for _, n in EXAMPLES
    }
    assert verdicts == {None, "not_mobile"}


# (2) Generated inputs: digits with separators and prefixes, mutated example numbers, arbitrary text.

region_or_none = st.sampled_from([*REGIONS, None])
separators = st.sampled_from(["", "", " ", " ", "-", ".", "/", "(", ")", " - ", ") ", "  "])


@st.composite
def punctuated_digits(draw) -> str:
    prefix = draw(st.sampled_from(["", "", "", "+", "+", "00", "011", "0", "+0", "(0)", "+00", "(+", "+ "]))
    groups = draw(st.lists(st.text("0123456789", min_size=1, max_size=5), min_size=1, max_size=6))
    text = prefix
    for group in groups:
        text += draw(separators) + group
    return draw(st.sampled_from(["", " ", "\t"])) + text + draw(st.sampled_from(["", "", " ", ")"]))


@st.composite
def mutated_examples(draw) -> tuple[str, str | None]:
    home, number = draw(st.sampled_from(EXAMPLES))
    text = list(phonenumbers.format_number(number, draw(st.sampled_from(FORMATS))))
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["replace", "insert", "delete", "separator"]))
        if edit == "replace" and position < len(text) and text[position].isdigit():
            text[position] = draw(st.sampled_from("0123456789"))
        elif edit == "insert":
            text.insert(position, draw(st.sampled_from("0123456789")))
        elif edit == "delete" and position < len(text):
            del text[position]
        elif edit == "separator":
            text.insert(position, draw(st.sampled_from([" ", "-", ".", "(", ")", "/", "+", "0"])))
    region = draw(st.one_of(st.just(home), region_or_none))
    return "".join(text), region


# Pieces that steer parse() into its rarer branches: extensions, RFC3966, letters, non-ASCII digits and plus.
phone_ish_text = st.lists(
    st.sampled_from([*"0123456789+-. ()/xX#*;,=:abcdeltTEXT~_", "ext", "tel:", ";phone-context=", "٣", "７", "＋"]),
    max_size=30,
).map("".join)


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(punctuated_digits(), region_or_none)
def test_punctuated_digits_agree_with_phonenumbers(raw: str, region: str | None) -> None:
    assert tuple(CHECKER.check(raw, region)[:3]) == reference(raw, region)


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_examples())
def test_mutated_example_numbers_agree_with_phonenumbers(case: tuple[str, str | None]) -> None:
    raw, region = case
    assert tuple(CHECKER.check(raw, region)[:3]) == reference(raw, region)
    assert tuple(LANDLINE_CHECKER.check(raw, region)[:3]) == reference(raw, region, allow_landline=True)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(st.text(max_size=40), phone_ish_text), region_or_none)
def test_arbitrary_text_agrees_with_phonenumbers(raw: str, region: str | None) -> None:
    assert tuple(CHECKER.check(raw, region)[:3]) == reference(raw, region)


@settings(max_examples=300, deadline=None)
@given(punctuated_digits(), st.sampled_from(["gb", "Us", "XX", "ZZ", "001", "", "UK"]))
def test_region_codes_phonenumbers_does_not_know_agree_too(raw: str, region: str) -> None:
    assert tuple(CHECKER.check(raw, region)[:3]) == reference(raw, region)


def test_a_seeded_sweep_of_near_valid_numbers_agrees_with_phonenumbers() -> None:
    """Many cheap cases near the valid ranges of every region, where a wrong step would show."""
    rng = random.Random(20261124)
    cases = []
    for _ in range(12_000):
        home, number = rng.choice(EXAMPLES)
        nsn = pnu.national_significant_number(number)
        keep = rng.randint(0, len(nsn))
        nsn = nsn[:keep] + "".join(rng.choice("0123456789") for _ in range(len(nsn) - keep + rng.randint(-2, 2)))
        national_prefix = (PhoneMetadata.metadata_for_region(home).national_prefix or "") if home else ""
        code = number.country_code
        raw = rng.choice([f"+{code}{nsn}", f"{national_prefix}{nsn}", f"{code}{nsn}", nsn])
        cases.append((raw, rng.choice([home, home, rng.choice(REGIONS)])))
    assert _disagreements(cases) == []


# The two halves of the fast path, each against the library step it replaces.


@settings(max_examples=2000, deadline=None)
@given(st.booleans(), st.text("0123456789", min_size=3, max_size=20), region_or_none)
def test_fast_parse_gives_the_country_code_and_nsn_parse_gives(plus: bool, digits: str, region: str | None) -> None:
    default = phones._metadata_for_region(region) if region else None
    got = phones._parse_digits(digits, plus, default)
    try:
        number = phonenumbers.parse(("+" if plus else "") + digits, region)
    except NumberParseException:
        assert isinstance(got, str) and got != phones._SLOW
    else:
        assert got == (number.country_code, pnu.national_significant_number(number))


@settings(max_examples=2000, deadline=None)
@given(st.sampled_from(EXAMPLES), st.text("0123456789", max_size=4), st.integers(0, 6))
def test_classify_gives_region_validity_and_type_of_phonenumbers(example, tail: str, cut: int) -> None:
    """is_valid_number ⇔ region found and number_type != UNKNOWN, for the region the number belongs to."""
    _, number = example
    nsn = pnu.national_significant_number(number)
    nsn = nsn[: max(2, len(nsn) - cut)] + tail
    parsed = phonenumbers.parse(f"+{number.country_code}{nsn}", None)
    nsn = pnu.national_significant_number(parsed)
    region, kind = phones._calling_code(parsed.country_code).classify(nsn)
    valid = phonenumbers.is_valid_number(parsed)
    assert (region is not None and kind != PhoneNumberType.UNKNOWN) == valid
    assert region == phonenumbers.region_code_for_number(parsed)
    if valid:
        assert kind == phonenumbers.number_type(parsed)


# (3) Exact outcomes on hand-picked values.

NO_REGION = "no international prefix and no region: pass --region or fill the country column"


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("07400 123456", "GB", NumberCheck("+447400123456", "GB", None, "")),
        ("+44 7400 123456", None, NumberCheck("+447400123456", "GB", None, "")),
        ("0044 7400 123456", "GB", NumberCheck("+447400123456", "GB", None, "")),
        ("+44 (0) 7400 123456", "US", NumberCheck("+447400123456", "GB", None, "")),
        ("447400123456", "GB", NumberCheck("+447400123456", "GB", None, "")),
        ("(415) 555-0134", "US", NumberCheck("+14155550134", "US", None, "")),
        ("415.555.0134", "US", NumberCheck("+14155550134", "US", None, "")),
        ("06 12 34 56 78", "FR", NumberCheck("+33612345678", "FR", None, "")),
        ("+33 (0)6.12.34.56.78", "GB", NumberCheck("+33612345678", "FR", None, "")),
        ("0151/1234 5678", "DE", NumberCheck("+4915112345678", "DE", None, "")),
        ("030 1234567", "DE", NumberCheck("+49301234567", "DE", "not_mobile", "fixed line: cannot receive SMS")),
        ("0800 123 4567", "GB", NumberCheck("+448001234567", "GB", "not_mobile", "toll free: cannot receive SMS")),
        ("1-800-555-0199", "US", NumberCheck("+18005550199", "US", "not_mobile", "toll free: cannot receive SMS")),
        ("0900 123 4567", "DE", NumberCheck("+499001234567", "DE", "not_mobile", "premium rate: cannot receive SMS")),
        ("+1 201-555-0123 ext. 12", "US", NumberCheck("+12015550123", "US", None, "")),
        ("tel:+44-7400-123456", None, NumberCheck("+447400123456", "GB", None, "")),
        ("  +447400123456\t", None, NumberCheck("+447400123456", "GB", None, "")),
        ("07700 900123", "GB", NumberCheck(None, None, "invalid_number", "not a valid number for GB")),
        ("+44 7700 900123", None, NumberCheck(None, None, "invalid_number", "not a valid number for +44")),
        ("+882 34 1234 5678", None, NumberCheck(None, None, "invalid_number", "not a valid number for +882")),
        ("+999 123 4567", None, NumberCheck(None, None, "invalid_number", "unknown country calling code")),
        ("not a number", "GB", NumberCheck(None, None, "invalid_number", "not a phone number")),
        ("", "GB", NumberCheck(None, None, "invalid_number", "empty")),
        ("   ", None, NumberCheck(None, None, "invalid_number", "empty")),
        ("07400 123456", None, NumberCheck(None, None, "invalid_number", NO_REGION)),
        ("0044 7400 123456", None, NumberCheck(None, None, "invalid_number", NO_REGION)),
        (
            "07400 123456",
            "gb",
            NumberCheck(
                None, None, "invalid_number", "unknown region 'gb': expected an upper-case ISO alpha-2 code such as GB"
            ),
        ),
        (
            "4.47400123456E+11",
            "GB",
            NumberCheck(
                None, None, "invalid_number", "looks like a spreadsheet turned it into a number (4.47400123456E+11)"
            ),
        ),
        (
            "447400123456.0",
            "GB",
            NumberCheck(
                None, None, "invalid_number", "looks like a spreadsheet turned it into a number (447400123456.0)"
            ),
        ),
    ],
)
def test_hand_picked_values(raw: str, region: str | None, expected: NumberCheck) -> None:
    assert CHECKER.check(raw, region) == expected
    assert tuple(expected[:3]) == reference(raw, region)


def test_allow_landline_accepts_a_fixed_line_and_a_toll_free_number() -> None:
    assert LANDLINE_CHECKER.check("030 1234567", "DE") == NumberCheck("+49301234567", "DE", None, "")
    assert LANDLINE_CHECKER.check("0800 123 4567", "GB") == NumberCheck("+448001234567", "GB", None, "")
    assert LANDLINE_CHECKER.check("07700 900123", "GB").reason == "invalid_number"


COMMON_SHAPES = [
    ("+447400123456", None, "+447400123456"),
    ("+49 151 12345678", None, "+4915112345678"),
    ("07400 123456", "GB", "+447400123456"),
    ("(415) 555-0134", "US", "+14155550134"),
    ("06 12 34 56 78", "FR", "+33612345678"),
    ("0151 12345678", "DE", "+4915112345678"),
    ("06-12-34-56-78", "FR", "+33612345678"),
    ("0044 7400 123456", "GB", "+447400123456"),
    ("011 44 7400 123456", "US", "+447400123456"),
]


def test_common_shapes_never_reach_phonenumbers_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    def parse_is_too_slow(*args, **kwargs):
        raise AssertionError(f"slow path taken for {args!r}")

    monkeypatch.setattr(phonenumbers, "parse", parse_is_too_slow)
    assert [CHECKER.check(raw, region).e164 for raw, region, _ in COMMON_SHAPES] == [e for _, _, e in COMMON_SHAPES]
