"""Comparing the runs of a sweep: :func:`embspace.compare` with each run's k-NN
table computed once.

A run takes part in many comparisons (with the reference run of its seed, in
the noise floor, against every external embeddings). :class:`RunComparer`
keeps one :class:`~embspace.NeighborTable` per run (and per external
embeddings) and hands the two tables of a pair to :func:`embspace.compare`
(``knn=``) whenever both sides hold the same keys in the same order (every run
of a sweep, and for example an SVD of the same ratings). Other pairs go to
:func:`embspace.compare` whole: it aligns the keys and searches the shared
entities. The scores are the same either way.

The chance level of a pair (:func:`embspace.measures.chance_scores`: the
second side's rows shuffled) reads the same tables, relabelled, and
:meth:`RunComparer.per_entity` the per-entity values of one neighbor measure:
no comparison of a sweep searches a run's neighbors twice.

Likewise each run's :class:`~embspace.measures.sides.DenseSide` (its float64
values, centred, with the orthonormal basis of ``cca`` and the unit columns of
``unitmatch``) is prepared once and handed to every comparison of the run
(``dense=``), within :data:`DENSE_SIDES_BYTES` (the sides used least recently
are dropped beyond it, and made again if needed).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from ..device import module_for
from ..embeddings import Embeddings
from ..errors import InvalidParameterError
from ..measures import CHANCE_PERMUTATIONS, MEASURES, Comparison, chance_scores, compare
from ..measures.comparison import uses_dense_sides
from ..measures.sides import DenseSide
from ..neighbors import NeighborTable

__all__ = ["DENSE_SIDES_BYTES", "RunComparer"]

#: The most bytes of prepared dense sides a :class:`RunComparer` keeps (26,744
#: items x 10 dimensions take 8.6 MB a run; a sweep's working set is its
#: reference runs and the runs of one value).
DENSE_SIDES_BYTES = 256 << 20


class RunComparer:
    """Runs ``measures`` on pairs of embeddings, one k-NN table per side kept.

    Parameters mirror :func:`embspace.compare`: ``k`` and ``metric`` for the
    neighbor measures, ``device`` (already resolved, ``"cpu"`` or ``"gpu"``)
    and ``num_threads`` for everything. Sides are named by a hashable ``key``
    (a run key, or the name of external embeddings); a key whose embeddings
    change (external embeddings replaced) gets a fresh table. Thread-safe.
    """

    def __init__(
        self,
        measures: Sequence[str],
        *,
        k: int,
        metric: str,
        device: str,
        num_threads: int | None,
    ) -> None:
        self.measures = tuple(measures)
        self.k = k
        self.metric = metric
        self.device = device
        self.num_threads = num_threads
        self._neighbor_based = any(MEASURES[m].neighbor_based for m in self.measures)
        self._tables: dict[Hashable, NeighborTable] = {}
        self._sides: OrderedDict[Hashable, DenseSide] = OrderedDict()
        self._lock = threading.Lock()

    def table(self, key: Hashable, embeddings: Embeddings) -> NeighborTable:
        """The neighbor table of ``embeddings`` under ``key``, made once (it
        computes its k-NN on first use and keeps it)."""
        with self._lock:
            table = self._tables.get(key)
            if table is None or table.embeddings is not embeddings:
                table = NeighborTable(
                    embeddings,
                    metric=self.metric,
                    num_threads=self.num_threads,
                    device=self.device,
                )
                self._tables[key] = table
            return table

    def _side(self, key: Hashable, embeddings: Embeddings) -> DenseSide:
        """The prepared dense side of ``embeddings`` under ``key`` (made on
        first use; the most recently used first to stay)."""
        with self._lock:
            side = self._sides.get(key)
            if side is not None and side.source is embeddings.vectors:
                self._sides.move_to_end(key)
                return side
        side = DenseSide.of(embeddings.vectors, module_for(self.device)[1])
        with self._lock:
            self._sides[key] = side
        return side

    def _trim_sides(self) -> None:
        """Drop the least recently used sides beyond :data:`DENSE_SIDES_BYTES`."""
        with self._lock:
            total = sum(side.nbytes for side in self._sides.values())
            while self._sides and total > DENSE_SIDES_BYTES:
                _, side = self._sides.popitem(last=False)
                total -= side.nbytes

    def _dense(
        self, a_key: Hashable, a: Embeddings, b_key: Hashable | None, b: Embeddings
    ) -> tuple[DenseSide | None, DenseSide | None] | None:
        """The kept sides of a pair (None for ``b_key`` None), when its
        dense measures read them: same keys in the same order, not streamed."""
        if a.keys != b.keys or not uses_dense_sides(self.measures, a.n, module_for(self.device)[1]):
            return None
        return (self._side(a_key, a), None if b_key is None else self._side(b_key, b))

    def keep(self, key: Hashable, table: NeighborTable) -> None:
        """Use ``table`` (made elsewhere, for example by a task of a Dask graph)
        as the table of ``key``: pairs that pass ``table.embeddings`` read it."""
        with self._lock:
            self._tables[key] = table

    def forget(self, key: Hashable) -> None:
        """Drop the table (and the prepared side) kept under ``key``."""
        with self._lock:
            self._tables.pop(key, None)
            self._sides.pop(key, None)

    def compare(
        self,
        a_key: Hashable,
        a: Embeddings,
        b_key: Hashable,
        b: Embeddings,
        **options: Any,
    ) -> Comparison:
        """:func:`embspace.compare` of ``a`` and ``b`` with the sweep's settings,
        reading the kept k-NN tables when the sides hold the same keys in the
        same order (and no ``options`` change what the tables hold)."""
        knn = None
        if self._neighbor_based and not options and a.keys == b.keys:
            knn = (self.table(a_key, a), self.table(b_key, b))
        try:
            return compare(
                a,
                b,
                measures=self.measures,
                k=self.k,
                metric=self.metric,
                num_threads=self.num_threads,
                device=self.device,
                knn=knn,
                dense=self._dense(a_key, a, b_key, b),
                **options,
            )
        finally:
            self._trim_sides()

    def scores(
        self, a_key: Hashable, a: Embeddings, b_key: Hashable, b: Embeddings
    ) -> dict[str, float]:
        """The score of every measure for one pair, as plain floats."""
        result = self.compare(a_key, a, b_key, b)
        return {name: float(result.scores[name]) for name in self.measures}

    def chance(
        self,
        a_key: Hashable,
        a: Embeddings,
        b_key: Hashable,
        b: Embeddings,
        *,
        permutations: int = CHANCE_PERMUTATIONS,
        random_state: int = 0,
    ) -> dict[str, float]:
        """The chance level of every measure for one pair: ``a`` against ``b``
        with ``b``'s rows shuffled, averaged over ``permutations`` shuffles
        (:func:`embspace.measures.chance_scores`), from the kept tables."""
        knn = None
        if self._neighbor_based and a.keys == b.keys:
            knn = (self.table(a_key, a), self.table(b_key, b))
        try:
            return chance_scores(
                a,
                b,
                self.measures,
                permutations=permutations,
                random_state=random_state,
                knn=knn,
                dense=self._dense(a_key, a, None, b),  # b is shuffled: only a's side serves
                k=self.k,
                metric=self.metric,
                num_threads=self.num_threads,
                device=self.device,
            )
        finally:
            self._trim_sides()

    def per_entity(
        self, a_key: Hashable, a: Embeddings, b_key: Hashable, b: Embeddings, measure: str
    ) -> np.ndarray:
        """The per-entity values of the neighbor measure ``measure`` for one pair
        (length n, in ``a``'s order), from the kept tables."""
        spec = MEASURES[measure] if isinstance(measure, str) and measure in MEASURES else None
        if spec is None or not spec.neighbor_based:
            neighbor = [m for m, s in MEASURES.items() if s.neighbor_based]
            raise InvalidParameterError(
                f"per-entity changes need a neighbor measure ({', '.join(neighbor)}), "
                f"got {measure!r}"
            )
        knn = (self.table(a_key, a), self.table(b_key, b)) if a.keys == b.keys else None
        result = compare(
            a,
            b,
            [measure],
            k=self.k,
            metric=self.metric,
            num_threads=self.num_threads,
            device=self.device,
            knn=knn,
            sample=0,  # every entity's value, also above compare()'s automatic sampling size
        )
        values = result.results[measure].per_entity
        assert values is not None  # every neighbor measure reports per-entity values
        return np.asarray(values, dtype=np.float64)
