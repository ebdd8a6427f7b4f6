"""Where datasets live on disk: the data folder, the cache folder, the mirror.

Environment variables (read at call time, so tests and scripts can set them):

``EMBSPACE_DATA_DIR``
    A folder of ``<name>.zip`` files and/or extracted ``<name>/`` folders that
    is searched before the cache (read only: nothing is written there).
``EMBSPACE_CACHE_DIR``
    The cache folder. Default: ``$XDG_CACHE_HOME/embspace`` or
    ``~/.cache/embspace`` (``~/Library/Caches/embspace`` on macOS,
    ``%LOCALAPPDATA%\\embspace`` on Windows).
``EMBSPACE_MIRROR``
    A base URL that replaces the GroupLens base for downloads
    (``<mirror>/<name>.zip``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .registry import GROUPLENS_BASE

__all__ = ["cache_dir", "cached_folder", "data_dir", "download_base"]


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


def cached_folder(name: str) -> Path:
    """Where the extracted dataset ``name`` lives in the cache (may not exist)."""
    return cache_dir() / name


def download_base() -> str:
    """The base URL downloads come from: ``EMBSPACE_MIRROR`` if set, else GroupLens."""
    return (os.environ.get("EMBSPACE_MIRROR") or GROUPLENS_BASE).rstrip("/")
