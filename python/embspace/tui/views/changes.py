"""Where the space moved: the Changes screen's table, from :meth:`embspace.Sweep.changes`."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from ...errors import InvalidParameterError
from ...faces.keys import key_genres
from ...faces.values import format_value, same_value
from .pairs import ModelChoice

__all__ = [
    "EXPORT_COLUMNS",
    "TABLE_COLUMNS",
    "changes_table",
    "export_frame",
    "genres_of",
    "parse_bound",
    "popularity_of",
    "sweep_request",
]


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


#: Columns of :func:`changes_table`: :meth:`embspace.Sweep.changes`'s, with
#: the genres and ``drop`` (``floor - similarity``).
TABLE_COLUMNS = (
    "key",
    "title",
    "genres",
    "n_ratings",
    "similarity",
    "floor",
    "drop",
    "q_value",
    "changed",
)

#: Columns written by the export (:func:`export_frame`).
EXPORT_COLUMNS = ("key", "title", "n_ratings", "similarity", "floor", "q_value", "changed")


def sweep_request(
    sweep: Any, a: ModelChoice | None, b: ModelChoice | None
) -> tuple[Any, str] | str:
    """What :meth:`embspace.Sweep.changes` to call for models A and B:
    ``(value, against)``, or a sentence saying why the pair has none.

    The statistics are per configuration (means over pairs of runs with
    distinct seeds), so the seeds chosen do not matter: a run of the reference
    value and a run of ``v`` give ``(v, "reference")`` (either order; two runs
    of the reference value give the reference against itself: its floor, no
    test), SVD and a run of ``v`` give ``(v, "svd")``. Two other values are
    not compared with each other by the sweep."""
    if sweep is None or a is None or b is None:
        return "choose models A and B above (finished sweep runs or SVD)"
    if a.svd and b.svd:
        return "A and B are both SVD: choose a sweep run for one of them"
    if a.svd or b.svd:
        run = b if a.svd else a
        return (run.value, "svd")
    ref = sweep.reference
    if same_value(a.value, ref):
        return (b.value, "reference")
    if same_value(b.value, ref):
        return (a.value, "reference")
    return (
        f"the sweep compares each value with the reference ({format_value(ref)}) or SVD: "
        "choose a run of the reference (or SVD) as A or B"
    )


def changes_table(
    frame: pd.DataFrame,
    *,
    genre: str | None = None,
    min_ratings: int | None = None,
    max_ratings: int | None = None,
) -> pd.DataFrame:
    """Entities of a :meth:`embspace.Sweep.changes` frame ranked by how much
    their neighborhood changed beyond re-seeding: smallest ``q_value`` first
    (missing last), then the largest ``drop = floor - similarity``, then more
    ratings, then title.

    ``genre`` keeps entities whose genres (from ``(title, genres)`` keys)
    contain it as a whole name; ``min_ratings`` / ``max_ratings`` bound
    ``n_ratings`` (inclusive). Columns :data:`TABLE_COLUMNS`."""
    if min_ratings is not None and max_ratings is not None and min_ratings > max_ratings:
        raise InvalidParameterError(
            f"min ratings ({min_ratings}) is above max ratings ({max_ratings})"
        )
    out = pd.DataFrame(
        {
            "key": pd.Series(list(frame["key"]), dtype=object),
            "title": [str(t) for t in frame["title"]],
            "genres": [key_genres(k) for k in frame["key"]],
            "n_ratings": frame["n_ratings"].to_numpy(np.int64),
            "similarity": frame["similarity"].to_numpy(np.float64),
            "floor": frame["floor"].to_numpy(np.float64),
            "drop": (frame["floor"] - frame["similarity"]).to_numpy(np.float64),
            "q_value": frame["q_value"].to_numpy(np.float64),
            "changed": pd.array(frame["changed"], dtype="boolean"),
        }
    )
    keep = np.ones(len(out), dtype=bool)
    if genre:
        keep &= np.asarray([genre in g.split("|") for g in out["genres"]], dtype=bool)
    if min_ratings is not None:
        keep &= out["n_ratings"].to_numpy() >= min_ratings
    if max_ratings is not None:
        keep &= out["n_ratings"].to_numpy() <= max_ratings
    out = out[keep]
    out = out.sort_values(
        ["q_value", "drop", "n_ratings", "title"],
        ascending=[True, False, False, True],
        kind="mergesort",
        na_position="last",
    )
    return out.reset_index(drop=True)


def export_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The columns of :data:`EXPORT_COLUMNS` of a :func:`changes_table`, keys as text."""
    out = rows[list(EXPORT_COLUMNS)].copy()
    out["key"] = out["key"].map(str)
    return out
