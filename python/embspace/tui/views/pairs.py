"""The two models compared (A and B): the runs offered, the pair shown first,
the pair itself (aligned, with neighbor tables and per-entity Jaccard), and
what the panes are told about it."""

from __future__ import annotations

import threading
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ...errors import InvalidParameterError
from ...faces.values import format_value, same_value
from .neighbors import SideBySide, side_by_side

__all__ = [
    "ModelChoice",
    "ModelPair",
    "ModelsShown",
    "default_pair",
    "model_choices",
    "svd_factors",
]


@dataclass(frozen=True)
class ModelChoice:
    """A model the Neighbors and Changes screens can show: a finished run of
    the sweep (``value``, ``seed``) or the SVD of the same ratings (``svd``)."""

    id: str
    label: str
    value: Any = None
    seed: int | None = None
    svd: bool = False


@dataclass(frozen=True)
class ModelsShown:
    """Models A and B (ids, None when not chosen) with their labels, and k:
    what the app tells the Neighbors and Changes panes."""

    a: str | None = None
    b: str | None = None
    k: int = 10
    label_a: str = "—"
    label_b: str = "—"

    @property
    def ready(self) -> bool:
        """Both models are chosen."""
        return self.a is not None and self.b is not None


def model_choices(sweep: Any | None, *, svd: bool = True) -> list[ModelChoice]:
    """The finished runs of ``sweep`` in the order of its values and seeds,
    then the SVD (when ``svd``)."""
    out: list[ModelChoice] = []
    if sweep is not None:
        done = {(format_value(r.value), r.seed) for r in sweep.runs}
        for i, value in enumerate(sweep.values):
            for seed in sweep.seeds:
                if (format_value(value), seed) not in done:
                    continue
                label = f"{sweep.param}={format_value(value)}"
                if len(sweep.seeds) > 1:
                    label += f" seed {seed}"
                if same_value(value, sweep.reference):
                    label += " (ref)"
                out.append(ModelChoice(f"run:{i}:{seed}", label, value=value, seed=seed))
    if svd:
        out.append(ModelChoice("svd", "SVD", svd=True))
    return out


def default_pair(
    choices: Sequence[ModelChoice], sweep: Any | None
) -> tuple[str | None, str | None]:
    """Ids of the models shown first: A = the reference run (first seed),
    B = the run of the value farthest from it in the list (first seed), or the
    SVD when the sweep has a single finished value."""
    runs = [c for c in choices if not c.svd]
    if not runs:
        return (None, None)
    a = next(
        (c for c in runs if sweep is not None and same_value(c.value, sweep.reference)), runs[0]
    )
    others = [c for c in runs if not same_value(c.value, a.value) and c.seed == a.seed]
    if others:
        return (a.id, others[-1].id)
    svd = next((c for c in choices if c.svd), None)
    return (a.id, svd.id if svd is not None else None)


def svd_factors(sweep: Any) -> int:
    """Factors of the SVD compared with a sweep: the reference value when the
    sweep varies ``factors``, else the estimator's ``factors`` (default 10)."""
    if sweep.param == "factors":
        return int(sweep.reference)
    return int(sweep.estimator.get_params(deep=False).get("factors", 10))


@dataclass
class ModelPair:
    """Models A and B restricted to their shared entities (in A's order), with
    their neighbor tables and per-entity Jaccard computed on demand and kept.

    Thread-safe: the UI computes in worker threads."""

    a: Any
    b: Any
    metric: str = "cosine"
    _tables: dict[str, Any] = field(default_factory=dict, repr=False)
    _jaccard: dict[int, pd.Series] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        from ...embeddings import align

        self.a, self.b = align(self.a, self.b)

    @property
    def keys(self) -> list[Hashable]:
        return list(self.a.keys)

    def _table(self, side: str) -> Any:
        from ...neighbors import NeighborTable

        with self._lock:
            if side not in self._tables:
                emb = self.a if side == "a" else self.b
                self._tables[side] = NeighborTable(emb, metric=self.metric)
            return self._tables[side]

    def side_by_side(self, key: Hashable, k: int) -> SideBySide:
        """The k nearest neighbors of ``key`` in A and B, shared ones marked."""
        if k < 1 or k >= self.a.n:
            raise InvalidParameterError(f"k must be between 1 and {self.a.n - 1}, got {k}")
        index = self.a.index_of(key)
        a = self._table("a").neighbors(self.a.keys[index], k=k)
        b = self._table("b").neighbors(self.b.keys[index], k=k)
        return side_by_side(key, a, b)

    def jaccard(self, k: int) -> pd.Series:
        """Per-entity Jaccard of the k-NN sets in A and B (index: keys), from
        :func:`embspace.compare`'s ``neighbors`` measure."""
        with self._lock:
            cached = self._jaccard.get(k)
        if cached is not None:
            return cached
        from ...measures import compare

        result = compare(self.a, self.b, measures=("neighbors",), k=k, metric=self.metric)
        series = result.per_entity["neighbors"]
        with self._lock:
            self._jaccard[k] = series
        return series
