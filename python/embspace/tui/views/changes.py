"""Entities ranked by how much their neighborhood changed between A and B."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ...errors import InvalidParameterError
from ...faces.keys import key_genres, key_title

__all__ = ["changes_table", "genres_of", "parse_bound", "popularity_of"]


def genres_of(keys: Iterable[Hashable]) -> list[str]:
    """Every genre found in ``(title, "A|B|C")`` keys, sorted (``"(no genres
    listed)"`` kept as MovieLens writes it)."""
    found: set[str] = set()
    for key in keys:
        found.update(g for g in key_genres(key).split("|") if g)
    return sorted(found)


def popularity_of(ratings: Any) -> dict[Hashable, int]:
    """Item key -> number of ratings, from a :class:`~embspace.Ratings`."""
    counts = ratings.items["n_ratings"].to_numpy()
    return {key: int(n) for key, n in zip(ratings.item_keys, counts, strict=True)}


def parse_bound(text: str, name: str) -> int | None:
    """A bound on the number of ratings typed in a filter field: None when
    blank, else a whole number >= 0 (a ``ValueError`` otherwise)."""
    text = text.strip()
    if not text:
        return None
    value = int(text)
    if value < 0:
        raise ValueError(f"{name} must not be negative")
    return value


def changes_table(
    jaccard: pd.Series,
    popularity: Mapping[Hashable, int] | None = None,
    *,
    genre: str | None = None,
    min_ratings: int | None = None,
    max_ratings: int | None = None,
) -> pd.DataFrame:
    """Entities ranked by how much their neighborhood changed: lowest Jaccard
    first (ties: more ratings first, then title).

    ``jaccard`` is a per-entity Series indexed by key; ``popularity`` maps a
    key to its number of ratings. ``genre`` keeps entities whose genres
    contain it; ``min_ratings`` / ``max_ratings`` bound the rating count
    (inclusive). Columns: ``key``, ``title``, ``genres``, ``n_ratings``
    (-1 when unknown), ``jaccard``."""
    if min_ratings is not None and max_ratings is not None and min_ratings > max_ratings:
        raise InvalidParameterError(
            f"min ratings ({min_ratings}) is above max ratings ({max_ratings})"
        )
    keys = list(jaccard.index)
    pop = popularity or {}
    frame = pd.DataFrame(
        {
            "key": pd.Series(keys, dtype=object),
            "title": [key_title(k) for k in keys],
            "genres": [key_genres(k) for k in keys],
            "n_ratings": np.asarray([int(pop.get(k, -1)) for k in keys], dtype=np.int64),
            "jaccard": np.asarray(jaccard.to_numpy(), dtype=np.float64),
        }
    )
    keep = np.ones(len(frame), dtype=bool)
    if genre:
        keep &= np.asarray([genre in g.split("|") for g in frame["genres"]], dtype=bool)
    if min_ratings is not None:
        keep &= frame["n_ratings"].to_numpy() >= min_ratings
    if max_ratings is not None:
        keep &= frame["n_ratings"].to_numpy() <= max_ratings
    frame = frame[keep]
    frame = frame.sort_values(
        ["jaccard", "n_ratings", "title"], ascending=[True, False, True], kind="mergesort"
    )
    return frame.reset_index(drop=True)
