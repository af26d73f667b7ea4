"""The opt-out (suppression) list: numbers normalized to E.164, added by hand, imported from a file, or by a provider."""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from bulksend.config import Config
from bulksend.csvfile import _looks_utf16
from bulksend.errors import InputError
from bulksend.ledger import OptOut
from bulksend.ledger_guard import open_for_read, open_for_write

#: Header names recognised as the phone column of an import file, in order of preference (as DESIGN.md's loader).
PHONE_HEADERS = ("phone", "mobile", "msisdn", "number", "phone_number", "mobile_number", "cell", "whatsapp", "to")


@dataclass(frozen=True)
class OptOutChange:
    """What an add, remove or import did, number by number."""

    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)


def normalize(raw: str, region: str | None) -> str | None:
    """``raw`` as E.164, or None when it is not a valid number (read in ``region`` without a + prefix)."""
    import phonenumbers

    text = raw.strip()
    if text.lower().startswith("whatsapp:"):
        text = text[len("whatsapp:"):].strip()
    if not text:
        return None
    try:
        number = phonenumbers.parse(text, region.upper() if region else None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _normalize_all(numbers: list[str], region: str | None) -> tuple[list[str], list[str]]:
    good: dict[str, None] = {}
    bad: list[str] = []
    for raw in numbers:
        e164 = normalize(raw, region)
        if e164 is None:
            bad.append(raw)
        else:
            good.setdefault(e164)
    return list(good), bad


def add(config: Config, numbers: list[str], reason: str | None = None, region: str | None = None) -> OptOutChange:
    """Add numbers typed by hand. Any invalid number refuses the whole command (exit 2): nothing is added."""
    good, bad = _normalize_all(numbers, region or config.default_region)
    if bad:
        raise InputError(
            f"not a valid phone number: {', '.join(bad)}. Nothing added.",
            hint="Write numbers with their + country code, or give --region.",
        )
    with open_for_write(config) as ledger:
        added, present = ledger.add_optouts(good, reason, "manual")
    return OptOutChange(added, present)


def remove(config: Config, numbers: list[str], region: str | None = None) -> OptOutChange:
    """Take numbers off the list (changed = removed, unchanged = were not on it)."""
    good, bad = _normalize_all(numbers, region or config.default_region)
    if bad:
        raise InputError(
            f"not a valid phone number: {', '.join(bad)}. Nothing removed.",
            hint="Write numbers with their + country code, or give --region.",
        )
    ledger = open_for_write(config, create=False)
    if ledger is None:
        return OptOutChange([], good)
    with ledger:
        removed, absent = ledger.remove_optouts(good)
    return OptOutChange(removed, absent)


def listing(config: Config) -> list[OptOut]:
    """Every opt-out, sorted by number."""
    ledger = open_for_read(config)
    if ledger is None:
        return []
    with ledger:
        return ledger.optouts()


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}).") from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    if utf16 := _looks_utf16(data[:65536]):  # Excel's "Unicode text" has no BOM
        return data.decode(utf16, errors="replace")
    if b"\x00" in data:  # an image, a spreadsheet, a zip: not a list of numbers (and never "0 added")
        line = data.count(b"\n", 0, data.index(b"\x00")) + 1
        raise InputError(
            f"{path}: is not a text file (line {line} contains a NUL byte).",
            hint="Give a CSV with a phone column, or a plain list with one number a line (from a spreadsheet: "
            "save as CSV UTF-8).",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def read_numbers(path: Path) -> list[str]:
    """The phone values of a CSV (the first phone-like column) or of a plain list (one number a line)."""
    text = _read_text(path)
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    try:
        dialect = csv.Sniffer().sniff(lines[0], delimiters=",;\t|")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter))
    header = [cell.strip().lower() for cell in rows[0]]
    for name in PHONE_HEADERS:
        if name in header:
            column = header.index(name)
            return [row[column] for row in rows[1:] if len(row) > column and row[column].strip()]
    if len(header) > 1:
        raise InputError(
            f"{path}: no phone column (looked for {', '.join(PHONE_HEADERS)}).",
            hint="Rename the column, or give a plain list with one number a line.",
        )
    values = [row[0] for row in rows if row and row[0].strip()]
    # A one-column file may start with a header of its own ("numbers", "Opt-outs"…): it has no digits.
    if values and not any(ch.isdigit() for ch in values[0]):
        values = values[1:]
    return values


def import_file(
    config: Config, path: Path, region: str | None = None, reason: str | None = None
) -> OptOutChange:
    """Add every valid number of a file (changed = added, unchanged = already present, invalid = skipped)."""
    good, bad = _normalize_all(read_numbers(path), region or config.default_region)
    with open_for_write(config) as ledger:
        added, present = ledger.add_optouts(good, reason, "import")
    return OptOutChange(added, present, bad)
