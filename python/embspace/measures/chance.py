"""Chance levels: what a measure gives for two spaces with nothing in common.

A measure's raw score has no common zero: for two unrelated spaces of the same
entities, CCA, Procrustes or unit matching give a positive score that grows with
``d / n`` (more dimensions, fewer entities: more room for coincidence), and the
neighbor measures one that grows with ``k / n``. So a score of 0.07 can be
"unrelated" on one dataset and a real agreement on another. The **shuffle null**
gives each measure its zero point for the data at hand: compare ``a`` with ``b``
whose rows were shuffled (keys kept), so that each entity of ``a`` meets the
vector of a random other entity of ``b``: every marginal property of both spaces
(spectrum, norms, hubs, ties) stays, the correspondence between them is gone.

:func:`~embspace.measures.chance_scores` averages the scores over :data:`CHANCE_PERMUTATIONS`
shuffles drawn with a fixed seed (``random_state``, default 0); the spread of
the chance level over shuffles is of order ``1 / sqrt(n)``, far below the
differences a sweep reads. :func:`~embspace.compare` with ``chance=True``
reports it as :attr:`Comparison.chance <embspace.measures.Comparison.chance>`.
With a noise floor (the similarity of two seeds of one configuration) it gives
the calibrated score ``(similarity - chance) / (floor - chance)``: 1 as alike as
a re-seed, 0 as alike as unrelated spaces (see :class:`embspace.Sweep`).

Cost: no new k-NN search. A shuffle permutes the rows of ``b``, so its k-NN
table is ``b``'s table with rows and indices relabelled (:func:`shuffled_table`,
O(n K log K)); each shuffle then costs one comparison from tables.

Chance level of each measure (n entities, dimensions d_a, d_b, k neighbors),
as an order of magnitude for two spaces with nothing in common; the shuffle
measures the actual value:

================= ==============================================================
measure           chance level
================= ==============================================================
``neighbors``     ~ k / (2 n): two unrelated k-NN sets share ~ k^2 / n entities
``mutual_knn``    ~ k / n
``overlap_curve`` ~ (K + 1) / (2 n), the mean of k / n over k = 1..K
``cca``           grows with d / n: mean canonical correlation of noise,
                  ~ sqrt(d_b / n) for d_a = d_b << n
``svcca``         as cca on the kept directions
``pwcca``         as cca
``cka``           ~ sqrt(d_a d_b) / n for isotropic spaces, larger when a
                  few directions dominate the spectra
``cka_debiased``  ~ 0 (the bias of cka removed)
``procrustes``    ~ sqrt(d / n) for isotropic spaces (the nuclear norm of
                  noise correlations)
``unitmatch``     ~ sqrt(2 ln d / n): each unit's best of d noise correlations
``rsa``           ~ 0 (Spearman correlation of unrelated distance orders)
================= ==============================================================
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..embeddings import Embeddings
from ..errors import InvalidParameterError
from ..neighbors import NeighborTable

__all__ = ["CHANCE_PERMUTATIONS", "ShuffledTable", "shuffled_table"]

#: Shuffles averaged for a chance level (seeded with ``random_state``, default 0).
CHANCE_PERMUTATIONS = 5


class ShuffledTable(NeighborTable):
    """The k-NN table of ``base``'s embeddings with rows permuted, read from
    ``base`` (no search): ``embeddings`` holds row ``order[i]`` of base's
    embeddings at row ``i`` (keys as given). Row ``i`` of a table is row
    ``order[i]`` of base's, its indices relabelled by the inverse permutation,
    in the base's order (by exact distance). It equals a search on the shuffled
    rows up to the order within a group of equal distances, and up to which
    members of such a group at the last column are listed (the neighbor
    measures are defined on tie groups and depend on neither)."""

    def __init__(self, base: NeighborTable, order: np.ndarray, embeddings: Embeddings) -> None:
        super().__init__(
            embeddings, metric=base.metric, num_threads=base.num_threads, device=base.device
        )
        self._base = base
        self._order = np.asarray(order, dtype=np.int64)
        self._inverse = np.empty_like(self._order)
        self._inverse[self._order] = np.arange(self._order.size)

    def _run(self, k: int, queries: Any) -> tuple[np.ndarray, np.ndarray]:
        dist, idx = self._base.knn(k)
        # the base's order is by exact (float64) distance: kept as it is (a sort
        # by the float32 distances returned would break it where they round equal)
        dist = dist[self._order]
        idx = self._inverse[idx[self._order]]
        if queries is not None:
            q = self._rows(queries)
            return dist[q], idx[q]
        return dist, idx


def shuffled_table(
    table: NeighborTable, order: np.ndarray, embeddings: Embeddings | None = None
) -> ShuffledTable:
    """The table of ``table``'s embeddings with rows taken in ``order`` (a
    permutation of ``0..n-1``), without a search. ``embeddings``: the shuffled
    embeddings when the caller already has them (default: made here, with the
    base's keys kept in place)."""
    base = table.embeddings
    order = np.asarray(order)
    if order.shape != (base.n,) or not np.array_equal(np.sort(order), np.arange(base.n)):
        raise InvalidParameterError(f"order must be a permutation of the {base.n} rows")
    if embeddings is None:
        embeddings = base._with_vectors(base.vectors[order])
    return ShuffledTable(table, order, embeddings)
