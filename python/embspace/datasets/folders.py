"""Where one dataset lives: its folder in the cache, and the base URL it comes from.

The cache and data folders themselves are :mod:`embspace.paths`. ``EMBSPACE_MIRROR``
(read at call time) is a base URL that replaces the GroupLens base for downloads
(``<mirror>/<name>.zip``).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..paths import cache_dir
from .registry import GROUPLENS_BASE

__all__ = ["cached_folder", "download_base"]


def cached_folder(name: str) -> Path:
    """Where the extracted dataset ``name`` lives in the cache (may not exist)."""
    return cache_dir() / name


def download_base() -> str:
    """The base URL downloads come from: ``EMBSPACE_MIRROR`` if set, else GroupLens."""
    return (os.environ.get("EMBSPACE_MIRROR") or GROUPLENS_BASE).rstrip("/")
