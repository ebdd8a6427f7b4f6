"""One entity's nearest neighbors in models A and B, rank by rank."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import pandas as pd

from ...faces.keys import key_genres, key_title

__all__ = ["SHARED_MARK", "NeighborRow", "SideBySide", "side_by_side"]

#: Mark of a neighbor that both models share.
SHARED_MARK = "●"


@dataclass(frozen=True)
class NeighborRow:
    """One rank of the side-by-side table; ``*_shared`` marks a neighbor that
    is also among the other model's k neighbors."""

    rank: int
    a_title: str
    a_score: float
    a_shared: bool
    b_title: str
    b_score: float
    b_shared: bool


@dataclass(frozen=True)
class SideBySide:
    """The k nearest neighbors of one entity in models A and B."""

    key: Hashable
    k: int
    rows: tuple[NeighborRow, ...]
    shared: int
    jaccard: float

    @property
    def title(self) -> str:
        return key_title(self.key)

    @property
    def genres(self) -> str:
        return key_genres(self.key)


def side_by_side(key: Hashable, a: pd.DataFrame, b: pd.DataFrame) -> SideBySide:
    """Pair two neighbor lists of ``key`` rank by rank.

    ``a`` and ``b`` are :meth:`NeighborTable.neighbors` frames (columns
    ``rank``, ``key``, ``title``, ``score``) of the same entity in two models
    over the same entities. Shared neighbors are marked on both sides and the
    Jaccard index |A ∩ B| / |A ∪ B| of the two sets is returned with them."""
    keys_a = list(a["key"])
    keys_b = list(b["key"])
    set_a, set_b = set(keys_a), set(keys_b)
    shared = set_a & set_b
    union = set_a | set_b
    rows = []
    for i in range(max(len(keys_a), len(keys_b))):
        ra = a.iloc[i] if i < len(a) else None
        rb = b.iloc[i] if i < len(b) else None
        rows.append(
            NeighborRow(
                rank=i + 1,
                a_title="" if ra is None else str(ra["title"]),
                a_score=float("nan") if ra is None else float(ra["score"]),
                a_shared=ra is not None and ra["key"] in shared,
                b_title="" if rb is None else str(rb["title"]),
                b_score=float("nan") if rb is None else float(rb["score"]),
                b_shared=rb is not None and rb["key"] in shared,
            )
        )
    k = max(len(keys_a), len(keys_b))
    jaccard = len(shared) / len(union) if union else 1.0
    return SideBySide(key=key, k=k, rows=tuple(rows), shared=len(shared), jaccard=jaccard)
