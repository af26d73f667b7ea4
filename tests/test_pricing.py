"""Rate cards: the default, loading a CSV, precedence of rows, and every way a row can be wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from bulksend.errors import ExitCode, InputError
from bulksend.pricing import RateCard


def write(tmp_path: Path, text: str, *, bom: bool = False) -> Path:
    path = tmp_path / "rates.csv"
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))
    return path


def load_error(tmp_path: Path, text: str) -> InputError:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as caught:
        RateCard.load(path)
    assert caught.value.exit_code == ExitCode.USAGE
    return caught.value


CARD = """country,channel,credits,category
*,sms,1
GB,sms,3
*,whatsapp,2
*,whatsapp,7,marketing
DE,whatsapp,4
DE,whatsapp,9,marketing
"""


# --- the default ----------------------------------------------------------------------------------


def test_default_card_is_one_credit_everywhere():
    card = RateCard.default()
    assert card.rate("GB", "sms") == 1
    assert card.rate(None, "sms") == 1
    assert card.rate("BR", "whatsapp", "marketing") == 1


# --- precedence -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("country", "channel", "category", "credits"),
    [
        ("DE", "whatsapp", "marketing", 9),  # exact country and category
        ("DE", "whatsapp", None, 4),  # exact country
        ("DE", "whatsapp", "utility", 4),  # exact country beats "*" for another category
        ("FR", "whatsapp", "marketing", 7),  # "*" and category
        ("FR", "whatsapp", "utility", 2),  # "*"
        ("FR", "whatsapp", None, 2),
        ("GB", "sms", None, 3),
        ("US", "sms", None, 1),
        (None, "sms", None, 1),  # unknown country: only "*" rows apply
        (None, "whatsapp", "marketing", 7),
        ("gb", "SMS", None, 3),  # codes and channels in any case
        ("GB", "sms", "marketing", 3),  # a category means nothing for sms
    ],
)
def test_most_specific_row_wins(tmp_path, country, channel, category, credits):
    card = RateCard.load(write(tmp_path, CARD))
    assert card.rate(country, channel, category) == credits


def test_repeated_lookups_are_cached(tmp_path):
    card = RateCard.load(write(tmp_path, CARD))
    assert card.rate("GB", "sms") == 3
    card._rates.clear()  # a cached answer no longer needs the rows
    assert card.rate("GB", "sms") == 3


def test_zero_credits_is_allowed(tmp_path):
    card = RateCard.load(write(tmp_path, "country,channel,credits\n*,sms,0\n"))
    assert card.rate("GB", "sms") == 0


# --- reading the file -----------------------------------------------------------------------------


def test_bom_and_header_case_and_order_and_spaces(tmp_path):
    path = write(tmp_path, " Credits ,COUNTRY,Channel\r\n5,fr,SMS\r\n\r\n,,\r\n", bom=True)
    assert RateCard.load(path).rate("FR", "sms") == 5


def test_category_column_is_optional(tmp_path):
    card = RateCard.load(write(tmp_path, "country,channel,credits\nGB,whatsapp,6\n"))
    assert card.rate("GB", "whatsapp", "marketing") == 6


def test_region_codes_phonenumbers_uses_beyond_iso(tmp_path):
    card = RateCard.load(write(tmp_path, "country,channel,credits\nXK,sms,2\nAC,sms,3\n"))
    assert (card.rate("XK", "sms"), card.rate("AC", "sms")) == (2, 3)


def test_missing_file(tmp_path):
    with pytest.raises(InputError) as caught:
        RateCard.load(tmp_path / "nope.csv")
    assert caught.value.message == f"Rate card {tmp_path / 'nope.csv'} does not exist."


def test_not_utf8(tmp_path):
    path = tmp_path / "rates.csv"
    path.write_bytes("country,channel,credits\nGB,sms,1 \u20ac\n".encode("cp1252"))
    with pytest.raises(InputError) as caught:
        RateCard.load(path)
    assert caught.value.message == (
        f"Rate card {path} is not UTF-8 text (line 2 has a byte UTF-8 does not allow)."
    )


def test_empty_file(tmp_path):
    assert load_error(tmp_path, "\n\n").message == f"Rate card {tmp_path / 'rates.csv'} is empty."


def test_header_only(tmp_path):
    error = load_error(tmp_path, "country,channel,credits\n")
    assert error.message == f"Rate card {tmp_path / 'rates.csv'} has no rates, only a header."


def test_header_missing_a_column(tmp_path):
    error = load_error(tmp_path, "country,credits\nGB,1\n")
    assert error.message == f'Rate card {tmp_path / "rates.csv"}: the header has no "channel" column.'


def test_header_with_an_unknown_column(tmp_path):
    error = load_error(tmp_path, "country,channel,credit\nGB,sms,1\n")
    assert error.message == f'Rate card {tmp_path / "rates.csv"}: unknown column "credit" in the header.'


def test_semicolon_separated_file_is_told_to_use_commas(tmp_path):
    error = load_error(tmp_path, "country;channel;credits\nGB;sms;1\n")
    assert error.hint.startswith("Separate the columns with commas.")


def test_header_with_a_repeated_column(tmp_path):
    error = load_error(tmp_path, "country,channel,credits,Country\nGB,sms,1,GB\n")
    assert error.message == (
        f'Rate card {tmp_path / "rates.csv"}: column "country" appears twice in the header.'
    )


# --- bad rows: file, 1-based data row, line and column in every message ---------------------------


@pytest.mark.parametrize(
    ("row", "column", "problem"),
    [
        ("GB,fax,1", '"channel"', '"fax" is not a channel'),
        ("GB,sms,1.5", '"credits"', '"1.5" is not a whole number'),
        ("GB,sms,two", '"credits"', '"two" is not a whole number'),
        ("GB,sms,-1", '"credits"', '"-1" is negative'),
        ("GBR,sms,1", '"country"', '"GBR" is not a country code'),
        ("ZZ,sms,1", '"country"', '"ZZ" is not a country code'),
        ("UK,sms,1", '"country"', '"UK" is not a country code'),
        ("GB,sms", '"credits"', "no value"),
        (",sms,1", '"country"', "no value"),
        ("GB,whatsapp,1,promo", '"category"', '"promo" is not a WhatsApp category'),
        ("GB,sms,1,marketing", '"category"', '"marketing" is set on an sms row'),
        ("GB,sms,1,,extra", "5", '"extra" is under no column name'),
    ],
)
def test_bad_row_names_file_row_and_column(tmp_path, row, column, problem):
    error = load_error(tmp_path, f"country,channel,credits,category\n*,sms,1\n\n{row}\n")
    assert error.message == (
        f"Rate card {tmp_path / 'rates.csv'}, data row 3 (line 4), column {column}: {problem}."
    )
    assert error.hint


def test_uk_gets_a_hint_about_gb(tmp_path):
    error = load_error(tmp_path, "country,channel,credits\nuk,sms,1\n")
    assert error.hint == "The ISO code for the United Kingdom is GB."


def test_duplicate_key_names_both_rows(tmp_path):
    error = load_error(tmp_path, "country,channel,credits,category\nGB,sms,1\n*,sms,1\ngb,SMS,2\n")
    assert error.message == (
        f'Rate card {tmp_path / "rates.csv"}, data row 3 (line 4), columns "country", "channel", '
        '"category": GB,sms is already priced on data row 1.'
    )


def test_same_country_in_two_categories_is_not_a_duplicate(tmp_path):
    text = "country,channel,credits,category\nGB,whatsapp,1,utility\nGB,whatsapp,2,marketing\n"
    card = RateCard.load(write(tmp_path, text))
    assert (card.rate("GB", "whatsapp", "utility"), card.rate("GB", "whatsapp", "marketing")) == (1, 2)


# --- missing rows ---------------------------------------------------------------------------------


def test_missing_row_names_file_country_and_channel(tmp_path):
    path = write(tmp_path, "country,channel,credits\nGB,sms,2\n")
    card = RateCard.load(path)
    with pytest.raises(InputError) as caught:
        card.rate("FR", "sms")
    assert caught.value.message == f"Rate card {path} has no rate for country FR on channel sms."
    assert caught.value.hint == f'Add a row "FR,sms,<credits>" or a wildcard row "*,sms,<credits>" to {path}.'


def test_missing_row_for_unknown_country(tmp_path):
    path = write(tmp_path, "country,channel,credits\nGB,sms,2\n")
    with pytest.raises(InputError) as caught:
        RateCard.load(path).rate(None, "sms")
    assert caught.value.message == (
        f"Rate card {path} has no rate for numbers of unknown country on channel sms."
    )
    assert caught.value.hint == f'Add a wildcard row "*,sms,<credits>" to {path}.'


def test_missing_row_with_category(tmp_path):
    path = write(tmp_path, "country,channel,credits,category\nGB,whatsapp,2,utility\n")
    with pytest.raises(InputError) as caught:
        RateCard.load(path).rate("GB", "whatsapp", "marketing")
    assert caught.value.message == (
        f"Rate card {path} has no rate for country GB on channel whatsapp, category marketing."
    )


def test_unknown_channel_or_category_in_a_lookup():
    with pytest.raises(InputError, match='Unknown channel "fax"'):
        RateCard.default().rate("GB", "fax")
    with pytest.raises(InputError, match='Unknown WhatsApp category "promo"'):
        RateCard.default().rate("GB", "whatsapp", "promo")
