"""Where embspace reads and writes on disk: the cache folder and the data folder.

Environment variables (read at call time, so tests and scripts can set them):

``EMBSPACE_CACHE_DIR``
    The cache folder (extracted datasets under ``<name>/``, trained embeddings
    under ``runs/``). Default: ``$XDG_CACHE_HOME/embspace`` or
    ``~/.cache/embspace`` (``~/Library/Caches/embspace`` on macOS,
    ``%LOCALAPPDATA%\\embspace`` on Windows).
``EMBSPACE_DATA_DIR``
    A folder of ``<name>.zip`` files and/or extracted ``<name>/`` folders that
    is searched before the cache (read only: nothing is written there).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["cache_dir", "data_dir"]


def cache_dir(create: bool = False) -> Path:
    """The cache folder (created when ``create``)."""
    raw = os.environ.get("EMBSPACE_CACHE_DIR")
    if raw:
        path = Path(raw).expanduser()
    elif sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        path = Path(os.environ["LOCALAPPDATA"]) / "embspace"
    elif sys.platform == "darwin":
        path = Path.home() / "Library" / "Caches" / "embspace"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg).expanduser() if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
        path = base / "embspace"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path | None:
    """The folder named by ``EMBSPACE_DATA_DIR``, or None when unset or empty."""
    raw = os.environ.get("EMBSPACE_DATA_DIR")
    return Path(raw).expanduser() if raw else None
