"""Writing CSV files that are safe to open in a spreadsheet, atomically (never a half-written file)."""

from __future__ import annotations

import csv
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from bulksend.errors import InputError

# A spreadsheet runs a cell as a formula when it starts with = @ + - (or a tab/CR that some
# importers strip first). Plain numbers, E.164 included, are data and stay as they are.
_FORMULA_START = ("=", "@", "\t", "\r", "+", "-")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_NEEDS_CHECK = re.compile(r"^[=@\t\r+\-]")


def safe_cell(value: object) -> str:
    """The cell as text, prefixed with ' when a spreadsheet would run it as a formula."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START) and not (text[0] in "+-" and _PLAIN_NUMBER.fullmatch(text)):
        return "'" + text
    return text


def safe_series(series):
    """Vectorized safe_cell for a pandas Series of strings."""
    risky = series.str.match(_NEEDS_CHECK)
    if not risky.any():
        return series
    plain = series.str.fullmatch(_PLAIN_NUMBER)
    return series.where(~risky | plain, "'" + series)


#: Every CSV bulksend writes ends its lines with CR LF (RFC 4180; what Python's csv module and Excel write).
LINE_END = "\r\n"


class _Sink:
    """A text handle whose write errors (a full disk, /dev/full, a revoked permission) name the output file."""

    def __init__(self, handle: IO[str], path: Path) -> None:
        self._handle = handle
        self._path = path

    def write(self, text: str) -> int:
        try:
            return self._handle.write(text)
        except BrokenPipeError:
            raise  # `… --clean /dev/stdout | head`: the reader left; the CLI's boundary handles it
        except OSError as exc:
            raise _cannot_write(self._path, exc) from None

    def __getattr__(self, name: str):
        return getattr(self._handle, name)

    def __iter__(self):  # pandas treats an object with write and __iter__ as a file
        return iter(self._handle)


def _cannot_write(path: Path, exc: OSError) -> InputError:
    return InputError(f"{path}: cannot be written ({exc.strerror or exc}).", hint="Write it elsewhere, or free the space.")


def _close(handle: IO[str], path: Path) -> None:
    try:
        handle.close()  # flushes: a full disk often shows only here
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise _cannot_write(path, exc) from None


@contextmanager
def _written(handle: IO[str], path: Path) -> Iterator[IO[str]]:
    """Yield ``handle`` for writing; close it afterwards, an OS error on closing being the file's error."""
    try:
        yield _Sink(handle, path)  # type: ignore[misc]
    except BaseException:
        try:
            handle.close()
        except OSError:
            pass
        raise
    _close(handle, path)


@contextmanager
def atomic_text(path: Path) -> Iterator[IO[str]]:
    """Open a UTF-8 text file for writing that appears at ``path`` only once it is complete.

    A regular file (or a symlink to one) is replaced by renaming a finished temporary file over it.
    Anything else that already exists — a pipe, a terminal, ``/dev/stdout`` — is written to in place:
    renaming over it would replace the device or the symlink itself. Any OS error while writing
    (no space, no permission, a directory) is an InputError naming the file and the cause (exit 2).
    """
    try:
        mode = os.stat(path).st_mode  # follows symlinks
    except FileNotFoundError:
        target = path
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    else:
        if stat.S_ISDIR(mode):
            raise InputError(f"{path}: is a directory.", hint="Give a file name, for example rejects.csv.")
        if not stat.S_ISREG(mode):
            try:
                handle = open(path, "w", encoding="utf-8", newline="")
            except OSError as exc:
                raise _cannot_write(path, exc) from None
            with _written(handle, path) as sink:
                yield sink
            return
        target = Path(os.path.realpath(path))
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise InputError(f"{path}: the folder {directory} does not exist.", hint="Create it, or write elsewhere.")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    try:
        with _written(os.fdopen(fd, "w", encoding="utf-8", newline=""), path) as sink:
            yield sink
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise _cannot_write(path, exc) from None
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_rows(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    """Write a spreadsheet-safe CSV atomically; returns the number of data rows."""
    count = 0
    with atomic_text(path) as handle:
        writer = csv.writer(handle, lineterminator=LINE_END)
        writer.writerow([safe_cell(h) for h in header])
        for row in rows:
            writer.writerow([safe_cell(v) for v in row])
            count += 1
    return count
