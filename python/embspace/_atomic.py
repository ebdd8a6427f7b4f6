"""Atomic file writes: a temporary file beside the target, flushed to disk,
then renamed over it. An exception leaves the old file (or none) and no
temporary file, never a half-written one. The new file gets the permissions a
plain ``open(path, "w")`` would (``0o666`` less the umask), not the ``0o600``
of :func:`tempfile.mkstemp`.

A process killed mid-write (SIGKILL, power loss) cannot remove its temporary
file. To tell such leftovers from the temporary files of writes still under
way (in this or another process), a writer holds an exclusive ``flock`` on its
temporary file from creation until the rename; :func:`remove_stale_temps`
deletes only the files whose lock it can take, that is, whose writer is gone.
Where ``fcntl`` is missing (Windows) it deletes only files untouched for
:data:`STALE_AGE` seconds.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "STALE_AGE",
    "atomic_writer",
    "remove_stale_temps",
    "temp_pattern",
    "write_atomic",
]

#: Without ``fcntl``, a temporary file untouched for this many seconds counts as stale.
STALE_AGE = 24 * 3600.0


def _read_umask() -> int:
    """The process umask, without changing it where the system can say
    (Linux's ``/proc/self/status``); elsewhere by setting and restoring it."""
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("Umask:"):
                        return int(line.split()[1], 8)
        except (OSError, ValueError):
            pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_writer(
    path: str | os.PathLike[str],
    *,
    suffix: str = ".tmp",
    check: Callable[[], None] | None = None,
) -> Iterator[BinaryIO]:
    """Yield a binary file whose content replaces ``path`` when the block ends
    without an exception. ``check``, when given, runs after the data is on disk
    and before the rename; an exception from it cancels the write. An
    ``OSError`` that names no file (a write to a full disk) is raised again
    with ``path`` as its file name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _locked_temp(path, suffix)
    fh = os.fdopen(fd, "wb")
    try:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())
        if check is not None:
            check()
        os.chmod(tmp, 0o666 & ~_read_umask())
        if fcntl is None:
            fh.close()  # Windows renames no open file
        os.replace(tmp, path)  # the lock is held until the file has its name
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
            # a failed write or flush (a full disk) names no file: name the target
            raise type(exc)(exc.errno, exc.strerror, str(path)) from exc
        raise
    finally:
        fh.close()


def temp_pattern(path: str | os.PathLike[str], suffix: str = ".tmp") -> str:
    """The glob (in ``path``'s folder) of the temporary files of writes to ``path``."""
    return f".{Path(path).name}.*{suffix}"


def _locked_temp(path: Path, suffix: str) -> tuple[int, str]:
    """A new temporary file beside ``path``, opened and exclusively locked.
    Between its creation and the lock a cleaner may have taken it for stale
    and deleted it: then another is made."""
    while True:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
        if fcntl is None:
            return fd, tmp
        fcntl.flock(fd, fcntl.LOCK_EX)  # a fresh file: only a cleaner can hold it, briefly
        try:
            if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                return fd, tmp
        except FileNotFoundError:
            pass
        os.close(fd)


def remove_stale_temps(folder: str | os.PathLike[str], pattern: str) -> int:
    """Delete the files in ``folder`` matching the glob ``pattern`` whose writer
    is gone (their lock is free; see the module docstring) and return how many.
    Temporary files of writes under way are left alone."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for candidate in folder.glob(pattern):
        if _remove_if_stale(candidate):
            removed += 1
    return removed


def _remove_if_stale(path: Path) -> bool:
    if fcntl is None:
        try:
            if time.time() - path.stat().st_mtime < STALE_AGE or not path.is_file():
                return False
            path.unlink()
        except OSError:
            return False
        return True
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # gone already, a folder, unreadable: not ours to remove
        return False
    try:
        if not os.path.isfile(path):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a writer holds it: a write under way
            return False
        # still the file we locked (not a new one that took its name)?
        if os.stat(path).st_ino != os.fstat(fd).st_ino:
            return False
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path) as fh:
        fh.write(data)
    return Path(path)
