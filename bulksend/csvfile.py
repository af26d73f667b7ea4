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
    data: Path | None = None  # where the bytes are read from when not ``path`` (a pipe's private copy)

    @property
    def source(self) -> Path:
        """The file the rows are read from: ``path``, or the private copy of a pipe or standard input."""
        return self.data if self.data is not None else self.path

    @property
    def encoding_label(self) -> str:
        """The encoding as reported to users (utf-8-sig reads as UTF-8 with a BOM)."""
        labels = {"utf-8-sig": "UTF-8", "utf-16": "UTF-16", "utf-16-le": "UTF-16 LE", "utf-16-be": "UTF-16 BE"}
        return labels.get(self.encoding, self.encoding)

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
                self.source,
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
    """Inspect a recipient file: check it is readable text, settle its encoding, delimiter and header.

    ``path`` may be ``-`` (standard input), a pipe or a FIFO: it is then copied once to a private temporary
    file as it streams (bulksend/files.py), since the rows are read more than once.
    """
    from bulksend.files import spool

    data = spool(path)
    raw = _read_head(data, path)
    encoding, note = _settle_encoding(path, data, raw, encoding)
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
    return CsvFile(
        path=path, encoding=encoding, delimiter=delimiter, headers=tuple(headers), encoding_note=note,
        data=data if data is not path else None,
    )


def _read_head(data: Path, path: Path) -> bytes:
    try:
        with data.open("rb") as handle:
            return handle.read(_SAMPLE_BYTES)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file.", hint="Check the path, or run from the folder that holds it.") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a CSV file.") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied.", hint="Check the file's permissions.") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}).") from None


def _settle_encoding(path: Path, data: Path, head: bytes, requested: str | None) -> tuple[str, str | None]:
    """The file's encoding, after every byte was decoded with it and no NUL character was found."""
    if requested:
        try:
            name = codecs.lookup(requested).name
        except LookupError:
            raise InputError(
                f"--encoding {requested!r} is not an encoding Python knows.",
                hint="Use a name such as utf-8, cp1252, latin-1 or utf-16.",
            ) from None
        name = "utf-8-sig" if name == "utf-8" else name
        _check_decodes(path, data, name, f"--encoding {requested}")
        return name, None
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        _check_decodes(path, data, "utf-16", "its byte-order mark (utf-16)")
        return "utf-16", None
    utf16 = _looks_utf16(head)
    if utf16 is not None:
        label = "UTF-16 LE" if utf16 == "utf-16-le" else "UTF-16 BE"
        if not _decodes(path, data, utf16):
            raise InputError(
                f"{path}: looks like {label} text without a byte-order mark, but does not decode as {label}.",
                hint=f"Pass the file's encoding with --encoding (for example --encoding {utf16}).",
            )
        return utf16, f"{path.name} has no byte-order mark; read it as {label}. Pass --encoding to override."
    if b"\x00" in head:
        raise InputError(
            f"{path}: is not a text file (it contains NUL bytes).",
            hint="Export the recipient list as CSV (comma- or semicolon-separated text).",
        )
    if _decodes(path, data, "utf-8-sig"):
        return "utf-8-sig", None
    if _decodes(path, data, "cp1252"):
        return "cp1252", f"{path.name} is not valid UTF-8; read it as cp1252 (Windows Western). Pass --encoding to override."
    raise InputError(
        f"{path}: is neither UTF-8 nor cp1252 text.",
        hint="Pass the file's encoding with --encoding (for example latin-1 or utf-16).",
    )


def _looks_utf16(head: bytes) -> str | None:
    """'utf-16-le' or 'utf-16-be' when the bytes are mostly ASCII written as UTF-16 (a NUL in every pair)."""
    sample = head[: 4096 & ~1]
    pairs = len(sample) // 2
    if pairs < 2:
        return None
    even = sample[0::2].count(0)
    odd = sample[1::2].count(0)
    if odd >= 0.3 * pairs and even <= 0.1 * odd:
        return "utf-16-le"
    if even >= 0.3 * pairs and odd <= 0.1 * even:
        return "utf-16-be"
    return None


def _decodes(path: Path, data: Path, encoding: str) -> bool:
    """Stream the whole file through an incremental decoder: the fallback must hold for every byte.

    The same pass refuses a NUL character anywhere in the file (InputError naming the row), at the cost
    of one search per megabyte of already-decoded text.
    """
    decoder = codecs.getincrementaldecoder(encoding)()
    decoded = 0
    try:
        with data.open("rb") as handle:
            while block := handle.read(_SCAN_BYTES):
                text = decoder.decode(block)
                nul = text.find("\x00")
                if nul >= 0:
                    _refuse_nul(path, data, encoding, decoded + nul)
                decoded += len(text)
            if "\x00" in decoder.decode(b"", final=True):
                _refuse_nul(path, data, encoding, decoded)
    except UnicodeDecodeError:
        return False
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}).") from None
    return True


def _refuse_nul(path: Path, data: Path, encoding: str, offset: int) -> None:
    """InputError naming the data row (and line) that holds the character at ``offset``."""
    row, line = _row_at(data, encoding, offset)
    where = "the header" if row == 0 else f"row {row}"
    raise InputError(
        f"{path}: {where} (line {line}) contains a NUL byte, which a text file never holds.",
        hint="The file is damaged or is not CSV text: export the recipient list again as CSV.",
    )


def _row_at(data: Path, encoding: str, offset: int) -> tuple[int, int]:
    """(data row, line) of the character at ``offset``: row 0 is the header. Reads only up to it."""
    consumed = 0
    with open(data, encoding=encoding, errors="replace", newline="") as handle:

        def lines() -> Iterator[str]:
            nonlocal consumed
            for text in handle:
                yield text
                consumed += len(text)
                if consumed > offset:
                    return

        reader = csv.reader(lines())
        records = 0
        try:
            for _ in reader:
                records += 1
        except csv.Error:
            pass
        return max(records - 1, 0), max(reader.line_num, 1)


def _check_decodes(path: Path, data: Path, encoding: str, how: str) -> None:
    if not _decodes(path, data, encoding):
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
    # newline="": a line may end in CR LF, LF or a lone CR (old Mac exports); csv reads all three.
    reader = csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        return []
    return [h.lstrip("\ufeff").strip() for h in header]
