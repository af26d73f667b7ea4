"""Rate cards: the credits one SMS segment or WhatsApp message costs, by country, channel and category."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from bulksend.errors import InputError
from bulksend.schema import MAX_CREDITS_PER_UNIT, clip

CHANNELS = ("sms", "whatsapp")
WHATSAPP_CATEGORIES = ("marketing", "utility", "authentication", "service")
WILDCARD = "*"

# ISO 3166-1 alpha-2, plus the three region codes phonenumbers gives numbers that ISO does not
# list (AC Ascension, TA Tristan da Cunha, XK Kosovo): a rate card must be able to price them.
_COUNTRIES = frozenset(
    """
    AC AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS
    BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG
    EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR
    HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR
    LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG
    NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE
    SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TA TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ
    UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS XK YE YT ZA ZM ZW
    """.split()
)
_REQUIRED = ("country", "channel", "credits")
_COLUMNS = (*_REQUIRED, "category")
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")

_Key = tuple[str, str, str | None]
_EXAMPLE_HINT = "A rate card looks like:\ncountry,channel,credits\nGB,sms,2\n*,sms,1\n*,whatsapp,1"


class RateCard:
    """Credits per unit (SMS segment or WhatsApp message), looked up most specific row first."""

    __slots__ = ("source", "_rates", "_cache")

    def __init__(self, rates: dict[_Key, int], source: str) -> None:
        self.source = source  # the file it came from, for error messages
        self._rates = rates  # (country or "*", channel, category or None) -> credits
        self._cache: dict[tuple[str | None, str, str | None], int] = {}

    def __repr__(self) -> str:
        return f"RateCard({self.source!r}, {len(self._rates)} rows)"

    @classmethod
    def default(cls) -> RateCard:
        """One credit per SMS segment and one per WhatsApp message, in every country."""
        return cls({(WILDCARD, "sms", None): 1, (WILDCARD, "whatsapp", None): 1}, "the default rate card")

    @classmethod
    def load(cls, path: Path | str) -> RateCard:
        """Read a CSV with the header ``country,channel,credits[,category]`` (any order and case).

        Raises InputError naming the file, the data row (1-based, after the header), the line and the
        column of the first bad value.
        """
        from bulksend.files import read_small

        path = Path(path)
        try:
            text = read_small(path, "the rate card").decode("utf-8-sig")
        except FileNotFoundError:
            raise InputError(f"Rate card {path} does not exist.", hint="Check the --rates path.") from None
        except IsADirectoryError:
            raise InputError(f"Rate card {path} is a directory, not a CSV file.") from None
        except OSError as error:
            raise InputError(f"Cannot read rate card {path}: {error.strerror}.") from None
        except UnicodeDecodeError as error:
            line = error.object[: error.start].count(b"\n") + 1
            raise InputError(
                f"Rate card {path} is not UTF-8 text (line {line} has a byte UTF-8 does not allow).",
                hint='Save it as "CSV UTF-8" (in Excel: File > Save As > CSV UTF-8).',
            ) from None
        try:
            return cls(_parse(text, path), str(path))
        except csv.Error as error:
            raise InputError(f"Rate card {path} is not valid CSV: {error}.") from None

    def rate(self, country: str | None, channel: str, category: str | None = None) -> int:
        """Credits for one unit to ``country`` (ISO alpha-2; None when unknown) on ``channel``.

        ``category`` (a WhatsApp conversation category) is used for whatsapp only. The most specific
        row wins: country and category, then country, then ``*`` and category, then ``*``.
        """
        key = (country, channel, category)
        try:
            return self._cache[key]
        except KeyError:
            pass
        credits = self._lookup(country, channel, category)
        self._cache[key] = credits
        return credits

    def _lookup(self, country: str | None, channel: str, category: str | None) -> int:
        channel = channel.strip().lower()
        if channel not in CHANNELS:
            raise InputError(f'Unknown channel "{channel}".', hint='Use "sms" or "whatsapp".')
        country = country.strip().upper() if country and country.strip() else None
        if channel == "whatsapp" and category:
            category = category.strip().lower()
            if category not in WHATSAPP_CATEGORIES:
                raise InputError(
                    f'Unknown WhatsApp category "{category}".',
                    hint="Use one of: " + ", ".join(WHATSAPP_CATEGORIES) + ".",
                )
        else:
            category = None
        candidates = []
        if country:
            if category:
                candidates.append((country, channel, category))
            candidates.append((country, channel, None))
        if category:
            candidates.append((WILDCARD, channel, category))
        candidates.append((WILDCARD, channel, None))
        for candidate in candidates:
            if candidate in self._rates:
                return self._rates[candidate]
        where = f"country {country}" if country else "numbers of unknown country"
        what = f"channel {channel}" + (f", category {category}" if category else "")
        row = f"{country or WILDCARD},{channel},<credits>" + (f",{category}" if category else "")
        hint = (
            f'Add a row "{row}" or a wildcard row "{WILDCARD},{channel},<credits>" to {self.source}.'
            if country
            else f'Add a wildcard row "{row}" to {self.source}.'
        )
        raise InputError(f"Rate card {self.source} has no rate for {where} on {what}.", hint=hint)


class _BadCell(Exception):
    """One bad value in a data row; _parse adds the file, row and line."""

    def __init__(self, column: str, problem: str, hint: str) -> None:
        super().__init__(problem)
        self.column, self.problem, self.hint = column, problem, hint


def _parse(text: str, path: Path) -> dict[_Key, int]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next((record for record in reader if any(cell.strip() for cell in record)), None)
    if header is None:
        raise InputError(f"Rate card {path} is empty.", hint=_EXAMPLE_HINT)
    names = [cell.strip().lower() for cell in header]
    position = _check_header(names, path)
    rates: dict[_Key, int] = {}
    first_seen: dict[_Key, int] = {}
    for row_number, record in enumerate(reader, start=1):
        if not any(cell.strip() for cell in record):
            continue  # blank lines and the ",,," rows spreadsheets leave at the end
        where = f"Rate card {path}, data row {row_number} (line {reader.line_num})"
        try:
            key, credits = _parse_row(record, names, position)
        except _BadCell as bad:
            raise InputError(f"{where}, {bad.column}: {bad.problem}.", hint=bad.hint) from None
        if key in first_seen:
            raise InputError(
                f'{where}, columns "country", "channel", "category": '
                f"{','.join(part for part in key if part)} is already priced on data row {first_seen[key]}.",
                hint="Keep one row per country, channel and category: delete or merge one of them.",
            )
        first_seen[key] = row_number
        rates[key] = credits
    if not rates:
        raise InputError(f"Rate card {path} has no rates, only a header.", hint=_EXAMPLE_HINT)
    return rates


def _parse_row(record: list[str], names: list[str], position: dict[str, int]) -> tuple[_Key, int]:
    for index, value in enumerate(record):
        if value.strip() and (index >= len(names) or not names[index]):
            raise _BadCell(
                f"column {index + 1}",
                f'"{clip(value.strip())}" is under no column name',
                "Remove it, or quote a value that contains a comma.",
            )
    cells = {
        name: record[index].strip() if index < len(record) else "" for name, index in position.items()
    }
    for name in _REQUIRED:
        if not cells[name]:
            raise _BadCell(f'column "{name}"', "no value", f"Give every row a {name}. " + _EXAMPLE_HINT)

    country = cells["country"].upper()
    if country != WILDCARD and country not in _COUNTRIES:
        hint = 'Use an ISO 3166 two-letter code such as GB, US or DE, or "*" for any country.'
        if country == "UK":
            hint = "The ISO code for the United Kingdom is GB."
        raise _BadCell('column "country"', f'"{clip(cells["country"])}" is not a country code', hint)

    channel = cells["channel"].lower()
    if channel not in CHANNELS:
        raise _BadCell(
            'column "channel"', f'"{clip(cells["channel"])}" is not a channel', 'Use "sms" or "whatsapp".'
        )

    credits_text = cells["credits"]
    if not _WHOLE_NUMBER.fullmatch(credits_text):
        raise _BadCell(
            'column "credits"',
            f'"{clip(credits_text)}" is not a whole number',
            "Credits are whole numbers, 0 or more, without decimals or units.",
        )
    if len(credits_text.lstrip("+-").lstrip("0")) > 20:  # int() of thousands of digits is slow, then refused
        credits = -1 if credits_text.startswith("-") else MAX_CREDITS_PER_UNIT + 1
        credits_text = clip(credits_text, 24)
    else:
        credits = int(credits_text)
    if credits < 0:
        raise _BadCell(
            'column "credits"', f'"{credits_text}" is negative', "Credits are whole numbers, 0 or more."
        )
    if credits > MAX_CREDITS_PER_UNIT:
        raise _BadCell(
            'column "credits"',
            f'"{credits_text}" is more than {MAX_CREDITS_PER_UNIT:,}, the most one segment or message may cost',
            f"Credits per unit are whole numbers from 0 to {MAX_CREDITS_PER_UNIT:,}.",
        )

    category = cells.get("category", "").lower() or None
    if category is not None:
        if channel != "whatsapp":
            raise _BadCell(
                'column "category"',
                f'"{clip(cells["category"])}" is set on an {channel} row',
                "Categories are for WhatsApp rows only; leave it blank on sms rows.",
            )
        if category not in WHATSAPP_CATEGORIES:
            raise _BadCell(
                'column "category"',
                f'"{clip(cells["category"])}" is not a WhatsApp category',
                "Use " + ", ".join(WHATSAPP_CATEGORIES) + ", or leave it blank for any category.",
            )
    return (country, channel, category), credits


def _check_header(names: list[str], path: Path) -> dict[str, int]:
    """Column name -> index; InputError for a missing, unknown or repeated column."""
    position: dict[str, int] = {}
    for index, name in enumerate(names):
        if not name:
            continue
        if name not in _COLUMNS:
            hint = "The columns are country, channel, credits and (optionally) category."
            if ";" in name or "\t" in name:
                hint = "Separate the columns with commas. " + hint
            raise InputError(f'Rate card {path}: unknown column "{clip(name)}" in the header.', hint=hint)
        if name in position:
            raise InputError(f'Rate card {path}: column "{clip(name)}" appears twice in the header.')
        position[name] = index
    missing = [name for name in _REQUIRED if name not in position]
    if missing:
        raise InputError(
            f"Rate card {path}: the header has no " + ", ".join(f'"{m}"' for m in missing) + " column.",
            hint=_EXAMPLE_HINT,
        )
    return position
