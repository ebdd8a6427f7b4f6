"""Titles and genres of entity keys as the faces show them.

MovieLens items are keyed ``(title, genres)`` (genres ``"A|B|C"``); any other
key is its own title and has no genres.
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["key_genres", "key_title"]


def key_title(key: Hashable) -> str:
    """The title of ``key``: the first field of a tuple key, else the key as text."""
    return str(key[0]) if isinstance(key, tuple) and key else str(key)


def key_genres(key: Hashable) -> str:
    """The genres of a ``(title, genres)`` key (``"A|B"``), else ``""``."""
    return str(key[1]) if isinstance(key, tuple) and len(key) > 1 else ""
