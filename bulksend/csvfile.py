"""Reading recipient CSV files: encoding, delimiter, header, and streaming the rows in chunks."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bulksend.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_SAMPLE_BYTES = 64 * 1024
_SCAN_BYTES = 1 << 20
CHUNK_ROWS = 100_000


def delimiter_name(delimiter: str) -> str:
    return _DELIMITER_NAMES.get(delimiter, repr(delimiter))


@dataclass(frozen=True)
class CsvFile:
    """A recipient file whose encoding, delimiter and header have been worked out."""

    path: Path
    encoding: str
    delimiter: str
    headers: tuple[str, ...]
    encoding_note: str | None = None  # said to the user when we fell back from UTF-8

    @property
    def encoding_label(self) -> str:
        """The encoding as reported to users (utf-8-sig reads as UTF-8 with a BOM)."""
        return {"utf-8-sig": "UTF-8", "utf-16": "UTF-16", "cp1252": "cp1252"}.get(self.encoding, self.encoding)

    def find_column(self, candidates: Sequence[str]) -> int | None:
        """Index of the first header matching one of the candidates, case-insensitively, in candidate order."""
        folded = [h.strip().casefold() for h in self.headers]
        for name in candidates:
            key = name.strip().casefold()
            if key in folded:
                return folded.index(key)
        return None

    def chunks(self, columns: Sequence[int], rows: int | None = None) -> Iterator["pd.DataFrame"]:
        """Stream the given columns (by index) as DataFrames of strings, labelled by column index.

        Missing trailing fields read as ''. Fields beyond the header are ignored. A row whose cells
        are all blank is kept (so that row numbers stay those a spreadsheet shows) and is skipped by
        the caller. The DataFrame index is the 0-based data row number.
        """
        import pandas as pd

        usecols = sorted(set(columns)) or [0]
        try:
            reader = pd.read_csv(
                self.path,
                sep=self.delimiter,
                header=0,
                names=list(range(len(self.headers))),
                usecols=usecols,
                # object, not str: pandas 3's Arrow-backed strings cost twice as much to turn into
                # the Python lists the per-row checks walk over.
                dtype=object,
                na_filter=False,
                keep_default_na=False,
                skip_blank_lines=False,
                chunksize=rows or CHUNK_ROWS,
                encoding=self.encoding,
                engine="c",
                quotechar='"',
                doublequote=True,
            )
            with reader:
                yield from reader
        except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error, ValueError) as exc:
            raise InputError(
                f"{self.path}: malformed CSV ({_first_line(exc)}).",
                hint="Check the quoting of that line, or pass --delimiter if the delimiter was guessed wrong.",
            ) from None
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{self.path}: cannot be read as {self.encoding} (byte {exc.start} of a chunk is invalid).",
                hint="Pass the file's real encoding with --encoding.",
            ) from None


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def open_csv(path: Path, encoding: str | None = None, delimiter: str | None = None) -> CsvFile:
    """Inspect a recipient file: check it is readable text, settle its encoding, delimiter and header."""
    raw = _read_head(path)
    encoding, note = _settle_encoding(path, raw, encoding)
    sample = _decode_sample(raw, encoding)
    if not sample.strip():
        raise InputError(f"{path}: the file is empty.", hint="Export the recipient list again, with a header row.")
    if delimiter is not None:
        delimiter = _parse_delimiter_option(delimiter)
    else:
        delimiter = sniff_delimiter(sample)
    headers = _read_header(sample, delimiter)
    if not any(h.strip() for h in headers):
        raise InputError(
            f"{path}: the first line is blank, so there is no header row.",
            hint="The first line must name the columns (for example: phone,consent,first_name).",
        )
    return CsvFile(path=path, encoding=encoding, delimiter=delimiter, headers=tuple(headers), encoding_note=note)


def _read_head(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(_SAMPLE_BYTES)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file.", hint="Check the path, or run from the folder that holds it.") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a CSV file.") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied.", hint="Check the file's permissions.") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}).") from None


def _settle_encoding(path: Path, head: bytes, requested: str | None) -> tuple[str, str | None]:
    if requested:
        try:
            name = codecs.lookup(requested).name
        except LookupError:
            raise InputError(
                f"--encoding {requested!r} is not an encoding Python knows.",
                hint="Use a name such as utf-8, cp1252, latin-1 or utf-16.",
            ) from None
        _check_decodes(path, name, requested=True)
        return ("utf-8-sig" if name == "utf-8" else name), None
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        _check_decodes(path, "utf-16", requested=False)
        return "utf-16", None
    if b"\x00" in head:
        raise InputError(
            f"{path}: is not a text file (it contains NUL bytes).",
            hint="Export the recipient list as CSV (comma- or semicolon-separated text).",
        )
    if _decodes(path, "utf-8"):
        return "utf-8-sig", None
    if _decodes(path, "cp1252"):
        return "cp1252", f"{path.name} is not valid UTF-8; read it as cp1252 (Windows Western). Pass --encoding to override."
    raise InputError(
        f"{path}: is neither UTF-8 nor cp1252 text.",
        hint="Pass the file's encoding with --encoding (for example latin-1 or utf-16).",
    )


def _decodes(path: Path, encoding: str) -> bool:
    """Stream the whole file through an incremental decoder: the fallback must hold for every byte."""
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with path.open("rb") as handle:
            while block := handle.read(_SCAN_BYTES):
                decoder.decode(block)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _check_decodes(path: Path, encoding: str, *, requested: bool) -> None:
    if not _decodes(path, encoding):
        how = f"--encoding {encoding}" if requested else f"its byte-order mark ({encoding})"
        raise InputError(
            f"{path}: cannot be decoded with {how}.",
            hint="Pass the file's real encoding with --encoding.",
        )


def _decode_sample(head: bytes, encoding: str) -> str:
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    return decoder.decode(head, final=False)


def _parse_delimiter_option(value: str) -> str:
    named = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
    delimiter = named.get(value.lower(), value)
    if len(delimiter) != 1 or delimiter in "\r\n\"":
        raise InputError(
            f"--delimiter {value!r} must be a single character (or tab, comma, semicolon, pipe).",
        )
    return delimiter


def sniff_delimiter(sample: str) -> str:
    """Pick the delimiter among , ; tab | that splits the first lines into the most consistent columns."""
    lines = _complete_lines(sample, 50)
    best, best_score = ",", (0, 0)
    for delimiter in DELIMITERS:
        try:
            widths = [len(row) for row in csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter)]
        except csv.Error:
            continue
        widths = [w for w in widths if w > 0]
        if not widths or widths[0] < 2:
            continue
        header_width = widths[0]
        consistent = sum(1 for w in widths if w == header_width)
        score = (consistent, header_width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _complete_lines(sample: str, limit: int) -> list[str]:
    lines = sample.splitlines()
    if not sample.endswith(("\n", "\r")) and len(lines) > 1:
        lines = lines[:-1]  # the sample may end mid-line
    return lines[:limit]


def _read_header(sample: str, delimiter: str) -> list[str]:
    reader = csv.reader(io.StringIO(sample), delimiter=delimiter)
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        return []
    return [h.lstrip("\ufeff").strip() for h in header]
