"""Input files that are not plain files (``-``, pipes, FIFOs), and outputs that must never land on an input.

A recipient list is read several times (the encoding check, pass one, pass two), which a pipe cannot do:
a pipe, FIFO or ``-`` (standard input) is copied once, as it streams, to a private temporary file (0600,
in the system's temp directory, deleted when the process is done with it). Memory stays bounded; disk use
is the size of the list. A FIFO nobody writes to is refused after ``FIFO_WAIT`` seconds instead of hanging.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import BinaryIO

from bulksend.errors import InputError

STDIN = "-"
#: Seconds a FIFO (named pipe) may go without a writer before it is refused.
FIFO_WAIT = 5.0
_BLOCK = 1 << 20
#: The largest small input read whole (a campaign file, config.toml, a template, a rate card).
SMALL_FILE_LIMIT = 16 * 2**20


def is_stdin(path: Path | str) -> bool:
    return str(path) == STDIN


def is_regular(path: Path) -> bool:
    """True for a plain file (or a symlink to one); False for ``-``, pipes, FIFOs, devices, or what does not exist."""
    if is_stdin(path):
        return False
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return True  # not there or unreadable: the reader that opens it names the problem


def is_stream(path: Path | str) -> bool:
    """True for ``-``, a pipe, a FIFO, a socket or a character device: something that can be read only once."""
    if is_stdin(path):
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)


def _open_stream(path: Path, what: str) -> tuple[int | BinaryIO, bytes]:
    """A blocking file descriptor (or stream) on a non-regular input, and the first bytes already read from it."""
    if is_stdin(path):
        if sys.stdin is None or sys.stdin.isatty():
            raise InputError(
                f"{what} is standard input (-), which is a terminal.",
                hint="Pipe the file in, for example: cat list.csv | bulksend validate -",
            )
        try:
            return os.dup(sys.stdin.fileno()), b""
        except (OSError, ValueError):  # a stdin without a descriptor (an embedding program, a test runner)
            return sys.stdin.buffer, b""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}).") from None
    if stat.S_ISDIR(mode):
        raise InputError(f"{path}: is a directory, not a file.")
    if not stat.S_ISFIFO(mode) or not hasattr(os, "O_NONBLOCK"):
        try:
            return os.open(path, os.O_RDONLY), b""
        except OSError as exc:
            raise InputError(f"{path}: cannot be read ({exc.strerror}).") from None
    # A FIFO: opening it blocks until a writer appears, perhaps forever. Open without blocking, then wait a
    # little for a writer: a read gives b"" while there is none, EAGAIN once one is there with nothing to say.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}).") from None
    deadline = time.monotonic() + FIFO_WAIT
    try:
        while True:
            try:
                first = os.read(fd, _BLOCK)
            except BlockingIOError:
                first = b""
                break  # a writer is there
            if first:
                break
            if time.monotonic() >= deadline:
                raise InputError(
                    f"{path}: is a named pipe (FIFO) that no program wrote to within {FIFO_WAIT:g} s.",
                    hint="Start the program that writes to it first, or give a regular file.",
                )
            time.sleep(0.05)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, first


def spool(path: Path, what: str = "the recipient file") -> Path:
    """``path`` itself for a regular file; else a private temporary copy of the stream, made once.

    The copy is deleted when the returned Path is garbage-collected or the process exits.
    """
    if is_regular(path):
        return path
    import tempfile
    import weakref

    fd, first = _open_stream(path, what)
    source = os.fdopen(fd, "rb") if isinstance(fd, int) else fd
    try:
        out_fd, name = tempfile.mkstemp(prefix="bulksend-input-", suffix=".csv")  # 0600
    except OSError as exc:
        source.close()
        raise InputError(f"{path}: cannot copy the stream to a temporary file ({exc.strerror}).") from None
    copy = _Spooled(name)
    weakref.finalize(copy, _unlink, name)
    try:
        with source, os.fdopen(out_fd, "wb") as target:
            target.write(first)
            while block := source.read(_BLOCK):
                target.write(block)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read or copied ({exc.strerror}).") from None
    return copy


class _Spooled(type(Path())):  # type: ignore[misc]
    """The Path of a temporary copy (a subclass only so that weakref.finalize can watch it)."""


def _unlink(name: str) -> None:
    try:
        os.unlink(name)
    except OSError:
        pass


def read_small(path: Path, what: str, limit: int = SMALL_FILE_LIMIT) -> bytes:
    """The bytes of a small input (campaign file, template, rate card): FIFOs and ``-`` allowed, size bounded.

    FileNotFoundError, IsADirectoryError and other OSErrors reach the caller, which words them.
    """
    if is_regular(path):
        size = os.stat(path).st_size if os.path.exists(path) else 0
        if size > limit:
            raise InputError(f"{path}: {what} of {size:,} bytes is larger than bulksend reads ({limit:,} bytes).")
        with open(path, "rb") as handle:
            return handle.read(limit + 1)
    fd, first = _open_stream(path, what)
    with os.fdopen(fd, "rb") if isinstance(fd, int) else fd as source:
        data = first + source.read(limit + 1 - len(first))
    if len(data) > limit:
        raise InputError(f"{path}: {what} is larger than bulksend reads ({limit:,} bytes).")
    return data


# --- outputs -------------------------------------------------------------------------------------------------


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None  # /dev/stdout, a pipe: writing there destroys nothing
    return st.st_dev, st.st_ino


def refuse_overwrite(outputs: Mapping[str, Path | None], inputs: Iterable[Path | None]) -> None:
    """InputError when an output (by its flag) is an input file: the same path, a link, or the same inode."""
    known = {}
    for path in inputs:
        if path is None or is_stdin(path):
            continue
        ident = _identity(path)
        if ident is not None:
            known[ident] = path
    seen: dict[tuple[int, int] | str, str] = {}
    for flag, path in outputs.items():
        if path is None:
            continue
        ident = _identity(path)
        if ident is not None and ident in known:
            raise InputError(
                f"{flag} {path} is the input file {known[ident]}: writing it would destroy the input.",
                hint=f"Write {flag} to another file.",
            )
        key: tuple[int, int] | str = ident if ident is not None else os.path.abspath(path)
        if key in seen:
            raise InputError(f"{flag} and {seen[key]} name the same file {path}.", hint="Give each its own file.")
        seen[key] = flag
