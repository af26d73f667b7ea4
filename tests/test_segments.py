"""Segment counting and splitting at every boundary, smart encoding, properties against a slow reference."""

from __future__ import annotations

import pytest
import regex
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bulksend.segments import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    SegmentCount,
    count_segments,
    is_gsm7,
    smart_encode,
    split_segments,
)
from bulksend import segments

# 👨‍👩‍👧‍👦: seven code points, 11 UTF-16 units, one grapheme cluster
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
FLAG_GB = "\U0001f1ec\U0001f1e7"  # 🇬🇧: two regional indicators, 4 units
GRIN = "\U0001f600"  # 😀: one surrogate pair
ZH = "ж"  # a BMP letter outside GSM-7: forces UCS-2, one unit each


def gsm_units(text: str) -> int:
    return sum(2 if c in GSM7_EXTENSION else 1 for c in text)


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


# --- the alphabet ---------------------------------------------------------------------------------


def test_basic_table_is_gsm_03_38_without_escape():
    expected = (
        "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
        "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    )
    assert GSM7_BASIC == frozenset(expected)
    assert len(GSM7_BASIC) == 127


def test_extension_table():
    assert GSM7_EXTENSION == frozenset("^{}\\[]~|€\f")


@pytest.mark.parametrize("char", ["\x1b", "ç", "`", "\t", "\x00", "á", "n\u0303", "Ő"])
def test_characters_outside_gsm(char):
    assert not is_gsm7(char)
    assert count_segments(char).encoding == "UCS-2"


def test_escape_character_itself_is_not_typeable():
    # A literal ESC would be read by the handset as the start of an extension pair.
    assert count_segments("a\x1bb") == SegmentCount("UCS-2", 3, 1)


# --- GSM-7 boundaries -----------------------------------------------------------------------------


def test_empty_message_is_one_empty_part():
    assert count_segments("") == SegmentCount("GSM-7", 0, 1)
    assert split_segments("") == [""]


def test_160_gsm_fits_one_part():
    text = "a" * 160
    assert count_segments(text) == SegmentCount("GSM-7", 160, 1)
    assert split_segments(text) == [text]


def test_161_gsm_needs_two_parts_of_153():
    text = "b" * 161
    assert count_segments(text) == SegmentCount("GSM-7", 161, 2)
    assert split_segments(text) == ["b" * 153, "b" * 8]


@pytest.mark.parametrize("n", [2, 3, 7, 10])
def test_153_times_n_is_n_parts_and_one_more_is_n_plus_1(n):
    assert count_segments("x" * (153 * n)) == SegmentCount("GSM-7", 153 * n, n)
    assert count_segments("x" * (153 * n + 1)) == SegmentCount("GSM-7", 153 * n + 1, n + 1)
    assert [len(p) for p in split_segments("x" * (153 * n + 1))] == [153] * n + [1]


def test_extension_characters_cost_two_septets():
    assert count_segments("€" * 80) == SegmentCount("GSM-7", 160, 1)
    assert count_segments("€" * 80 + "a") == SegmentCount("GSM-7", 161, 2)
    assert count_segments("\f[]{}") == SegmentCount("GSM-7", 10, 1)


def test_escape_pair_straddling_153_moves_to_next_part():
    text = "a" * 152 + "€" + "b" * 10
    assert count_segments(text) == SegmentCount("GSM-7", 164, 2)
    assert split_segments(text) == ["a" * 152, "€" + "b" * 10]


def test_escape_pair_ending_exactly_at_153_stays():
    text = "a" * 151 + "€" + "b" * 10
    assert split_segments(text) == ["a" * 151 + "€", "b" * 10]


def test_straddling_escape_can_cost_a_whole_extra_part():
    # 306 septets is exactly 2 x 153, but the € at septets 152-153 cannot be cut, so it takes 3 parts.
    text = "a" * 152 + "€" + "a" * 152
    assert count_segments(text) == SegmentCount("GSM-7", 306, 3)
    assert split_segments(text) == ["a" * 152, "€" + "a" * 151, "a"]


def test_crlf_at_boundary_stays_together():
    text = "a" * 152 + "\r\n" + "b" * 10
    assert count_segments(text) == SegmentCount("GSM-7", 164, 2)
    assert split_segments(text) == ["a" * 152, "\r\n" + "b" * 10]


def test_lone_newline_at_boundary_is_an_ordinary_septet():
    text = "a" * 152 + "\n" + "b" * 10
    assert split_segments(text) == ["a" * 152 + "\n", "b" * 10]


def test_crlf_with_escapes_in_the_same_message():
    text = "€" + "a" * 150 + "\r\n" + "b" * 10
    assert count_segments(text) == SegmentCount("GSM-7", 164, 2)
    assert split_segments(text) == ["€" + "a" * 150, "\r\n" + "b" * 10]


# --- UCS-2 boundaries -----------------------------------------------------------------------------


def test_70_ucs2_fits_one_part():
    assert count_segments(ZH * 70) == SegmentCount("UCS-2", 70, 1)


def test_71_ucs2_needs_two_parts_of_67():
    assert count_segments(ZH * 71) == SegmentCount("UCS-2", 71, 2)
    assert split_segments(ZH * 71) == [ZH * 67, ZH * 4]


@pytest.mark.parametrize("n", [2, 3, 9])
def test_67_times_n_is_n_parts_and_one_more_is_n_plus_1(n):
    assert count_segments(ZH * (67 * n)) == SegmentCount("UCS-2", 67 * n, n)
    assert count_segments(ZH * (67 * n + 1)) == SegmentCount("UCS-2", 67 * n + 1, n + 1)


def test_extension_characters_cost_one_unit_in_ucs2():
    assert count_segments(ZH + "€" * 69) == SegmentCount("UCS-2", 70, 1)
    assert count_segments(ZH + "[]" * 35) == SegmentCount("UCS-2", 71, 2)


def test_emoji_counts_two_units():
    assert count_segments(GRIN * 35) == SegmentCount("UCS-2", 70, 1)
    assert count_segments(GRIN * 35 + "a") == SegmentCount("UCS-2", 71, 2)


def test_emoji_straddling_67_moves_to_next_part():
    text = ZH * 66 + GRIN + ZH * 10
    assert count_segments(text) == SegmentCount("UCS-2", 78, 2)
    assert split_segments(text) == [ZH * 66, GRIN + ZH * 10]


def test_emoji_ending_exactly_at_67_stays():
    text = ZH * 65 + GRIN + ZH * 10
    assert split_segments(text) == [ZH * 65 + GRIN, ZH * 10]


def test_zwj_family_straddling_67_moves_whole():
    text = ZH * 60 + FAMILY + ZH * 10
    assert count_segments(text) == SegmentCount("UCS-2", 81, 2)
    assert split_segments(text) == [ZH * 60, FAMILY + ZH * 10]


def test_flag_straddling_67_moves_whole():
    text = ZH * 65 + FLAG_GB + ZH * 10
    assert count_segments(text) == SegmentCount("UCS-2", 79, 2)
    assert split_segments(text) == [ZH * 65, FLAG_GB + ZH * 10]


def test_combining_sequence_straddling_67_moves_whole():
    text = ZH * 66 + "e\u0301" + ZH * 10
    assert count_segments(text) == SegmentCount("UCS-2", 78, 2)
    assert split_segments(text) == [ZH * 66, "e\u0301" + ZH * 10]


def test_hangul_jamo_sequence_straddling_67_moves_whole():
    syllable = "\u1100\u1161\u11a8"  # conjoining jamo: one cluster of three BMP code points
    text = ZH * 65 + syllable + ZH * 10
    assert split_segments(text) == [ZH * 65, syllable + ZH * 10]


def test_crlf_straddling_67_moves_whole():
    text = ZH * 66 + "\r\n" + ZH * 10
    assert split_segments(text) == [ZH * 66, "\r\n" + ZH * 10]


def test_straddling_cluster_can_cost_a_whole_extra_part():
    # 134 units = 2 x 67, but the emoji cannot be cut at unit 67, so three parts.
    text = ZH * 66 + GRIN + ZH * 66
    assert count_segments(text) == SegmentCount("UCS-2", 134, 3)


def test_cluster_longer_than_a_part_splits_between_code_points():
    text = "e" + "\u0301" * 100  # one grapheme cluster of 101 units
    assert count_segments(text) == SegmentCount("UCS-2", 101, 2)
    assert split_segments(text) == ["e" + "\u0301" * 66, "\u0301" * 34]


def test_cluster_longer_than_a_part_never_splits_a_surrogate_pair():
    text = "\U0001f468" + "\u200d\U0001f469" * 30  # one ZWJ cluster: 2 + 30 x 3 = 92 units
    parts = split_segments(text)
    assert [utf16_units(p) for p in parts] == [66, 26]
    assert "".join(parts) == text
    assert all(p.encode("utf-16-le") for p in parts)  # a lone surrogate would not encode


def test_long_cluster_mid_message_starts_a_fresh_part():
    giant = "e" + "\u0301" * 80
    text = "ж" * 10 + giant
    assert split_segments(text) == ["ж" * 10, "e" + "\u0301" * 66, "\u0301" * 14]


def test_lone_surrogate_counts_one_unit():
    text = "\ud800" * 71
    assert count_segments(text) == SegmentCount("UCS-2", 71, 2)
    assert "".join(split_segments(text)) == text


def test_plain_ucs2_multipart_uses_division():
    text = ("Привет, ваш заказ готов " * 10)[:200]
    assert count_segments(text) == SegmentCount("UCS-2", 200, 3)
    assert [len(p) for p in split_segments(text)] == [67, 67, 66]


# --- smart encoding -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("original", "encoded"),
    [
        ("\u201cHi\u201d \u201eHallo\u201c \u00abSalut\u00bb", '"Hi" "Hallo" "Salut"'),
        ("it\u2019s \u2018ok\u2019 \u201bx", "it's 'ok' 'x"),
        ("5\u2032 11\u2033", "5' 11\""),
        ("a\u2010b\u2011c\u2012d\u2013e\u2014f\u2015g\u2212h", "a-b-c-d-e-f-g-h"),
        ("wait\u2026", "wait..."),
        ("a\u00a0b\u2002c\u2003d\u2009e\u200af\u202fg\u3000h\u2007i", "a b c d e f g h i"),
        ("\u2022 one", "- one"),
        ("1\u20442 \u00bd", "1/2 1/2"),
        ("\uff33\uff41\uff4c\uff45\uff01", "Sale!"),
        ("zero\u200bwidth\u2060joined\ufeff", "zerowidthjoined"),
        ("tab\there", "tab here"),
        ("`quoted`", "'quoted'"),
        ("\u2039a\u203a", "<a>"),
    ],
)
def test_smart_encoding_replacements(original, encoded):
    assert smart_encode(original) == encoded
    assert is_gsm7(encoded)


def test_smart_encoding_turns_ucs2_into_gsm7():
    text = "\u201cSpring sale\u201d \u2014 it\u2019s on\u2026 " + "x" * 120
    assert count_segments(text) == SegmentCount("UCS-2", 145, 3)
    encoded = smart_encode(text)
    assert encoded == '"Spring sale" - it\'s on... ' + "x" * 120
    assert count_segments(encoded) == SegmentCount("GSM-7", 147, 1)


def test_smart_encoding_leaves_gsm_text_alone():
    text = "Café €5 {deal} [now] ~ ^ | \\ Ç à é"
    assert smart_encode(text) is text


def test_smart_encoding_is_all_or_nothing():
    # An emoji keeps the message UCS-2 whatever we replace, so the text goes out as written (Twilio).
    text = "\u201cHi\u201d " + GRIN
    assert smart_encode(text) == text


def test_smart_encoding_never_adds_segments():
    # 70 ellipses are one UCS-2 part; as 210 dots they would be two GSM-7 parts.
    text = "\u2026" * 70
    assert smart_encode(text) == text
    assert smart_encode("\u2026" * 40) == "." * 120


def test_smart_table_maps_only_non_gsm_to_gsm():
    table = segments._SMART_REPLACEMENTS
    assert not [k for k in table if is_gsm7(k)]
    assert not [v for v in table.values() if not is_gsm7(v)]


# --- properties -----------------------------------------------------------------------------------

INTERESTING = (
    list("aZ09 .,@£€^{}[]~|\\\f\r\n") + [ZH, "é", "ç", "\u0301", "\u200d", GRIN, "\U0001f3fb"]
    + ["\U0001f1ec", "\U0001f1e7", "\u1100", "\u1161", "\u11a8", "\u0915", "\u094d", "\u093f", "\u2019"]
)
texts = st.one_of(
    st.text(max_size=400),
    st.text(alphabet=st.sampled_from(INTERESTING), max_size=700),
    st.text(alphabet=st.sampled_from(list("ab€\r\n{")), min_size=150, max_size=700),
    st.lists(st.sampled_from([ZH, GRIN, FAMILY, FLAG_GB, "e\u0301", "\r\n", "a"]), max_size=120).map("".join),
)


def reference_split(text: str) -> list[str]:
    """Greedy packing of whole-text grapheme clusters, one code point at a time inside a too-long one."""
    gsm = all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)
    units = gsm_units if gsm else utf16_units
    single, per_part = (160, 153) if gsm else (70, 67)
    if units(text) <= single:
        return [text]
    parts, current = [], ""
    for cluster in regex.findall(r"\X", text, flags=regex.DOTALL):
        if units(current + cluster) <= per_part:
            current += cluster
        elif units(cluster) <= per_part:
            parts.append(current)
            current = cluster
        else:
            if current:
                parts.append(current)
                current = ""
            for char in cluster:
                if units(current + char) > per_part:
                    parts.append(current)
                    current = ""
                current += char
    parts.append(current)
    return parts


@settings(max_examples=400, deadline=None)
@given(texts)
@example(ZH * 66 + GRIN + ZH * 66)
@example("a" * 152 + "€" + "a" * 152)
def test_count_agrees_with_split(text):
    count = count_segments(text)
    parts = split_segments(text)
    assert "".join(parts) == text
    assert len(parts) == count.segments
    assert count.encoding == ("GSM-7" if is_gsm7(text) else "UCS-2")
    units = gsm_units if count.encoding == "GSM-7" else utf16_units
    single, per_part = (160, 153) if count.encoding == "GSM-7" else (70, 67)
    assert count.units == units(text)
    assert (count.segments == 1) == (count.units <= single)
    if count.segments > 1:
        assert all(0 < units(p) <= per_part for p in parts)


@settings(max_examples=400, deadline=None)
@given(texts)
def test_split_matches_reference_packing(text):
    assert split_segments(text) == reference_split(text)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_code_points_outside_the_join_class_are_always_their_own_cluster(seed):
    # Guards the fast path (plain division, boundary checks) against a regex/Unicode upgrade that
    # adds a joining rule the class does not know about.
    import random

    may_join = segments._may_join()
    plain = [
        chr(c) for c in range(0x10000) if not 0xD800 <= c < 0xE000 and not may_join.match(chr(c))
    ]
    random.Random(seed).shuffle(plain)
    text = "".join(plain)
    assert len(regex.findall(r"\X", text, flags=regex.DOTALL)) == len(text)
