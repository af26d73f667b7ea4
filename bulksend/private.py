"""Owner-only places in the home: directories 0700 and files 0600, since they hold phone numbers and messages.

Created that way; found looser (an older version, a umask, a copy), tightened with one warning on stderr per
path. On Windows, where POSIX modes mean little, nothing is changed.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600

_warned: set[str] = set()
_lock = threading.Lock()


def _posix() -> bool:
    return os.name == "posix"


def _tighten(path: Path, st: os.stat_result, mode: int) -> None:
    if not _posix() or stat.S_IMODE(st.st_mode) & 0o077 == 0:
        return
    if st.st_uid != os.geteuid():
        return  # not ours to change (a shared directory, a file of another user): leave it as it is
    os.chmod(path, stat.S_IMODE(st.st_mode) & ~0o077 & 0o7777 | (mode & 0o700))
    key = str(path)
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    from bulksend import output

    output.warn(
        f"{path} was open to other users (mode {stat.S_IMODE(st.st_mode):o}); made it owner-only ({mode:o})."
    )


def private_dir(path: Path, *, root: Path | None = None) -> Path:
    """Create ``path`` owner-only, or tighten it when it is looser; returns it.

    Missing parents are created owner-only too. With ``root`` (the home), every directory from ``root`` down
    to ``path`` is made owner-only, not just the last one: the home itself holds the ledger.
    """
    missing = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass  # made by another process meanwhile
    if not path.is_dir():
        path.mkdir(mode=DIR_MODE)  # raises what mkdir raises for a file in the way
    if _posix():
        chain = [path]
        if root is not None and path != root and path.is_relative_to(root):
            between = path.relative_to(root).parents  # for a/b/c: a/b, a, .
            chain = [root, *(root / part for part in reversed(between) if part != Path(".")), path]
        for directory in dict.fromkeys(chain):
            _tighten(directory, directory.stat(), DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Tighten an existing file to owner-only (a file created with mode 0600 needs nothing); returns it."""
    if _posix():
        try:
            st = path.stat()
        except FileNotFoundError:
            return path
        if stat.S_ISREG(st.st_mode):
            _tighten(path, st, FILE_MODE)
    return path


def open_private(path: Path, flags: int, *, root: Path | None = None) -> int:
    """``os.open`` of a file in an owner-only directory, created 0600 or tightened to it; returns the fd."""
    private_dir(path.parent, root=root)
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    if _posix():
        try:
            _tighten(path, os.fstat(fd), FILE_MODE)
        except BaseException:
            os.close(fd)
            raise
    return fd
