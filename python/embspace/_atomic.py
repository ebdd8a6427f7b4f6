"""Atomic file writes: a temporary file beside the target, flushed to disk,
then renamed over it. A crash or an exception leaves the old file (or none)
and no temporary file, never a half-written one. The new file gets the
permissions a plain ``open(path, "w")`` would (``0o666`` less the umask), not
the ``0o600`` of :func:`tempfile.mkstemp`."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO


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
    and before the rename; an exception from it cancels the write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if check is not None:
            check()
        os.chmod(tmp, 0o666 & ~_read_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path) as fh:
        fh.write(data)
    return Path(path)
