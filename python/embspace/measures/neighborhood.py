"""Neighborhood measures: do the entities keep their nearest neighbors?

Ties
----
On real data, exact ties are common: items rated by one same user get exactly
parallel vectors in every WALS and SVD space, so under cosine they are all at
the same similarity from any query, and on ml-latest-small 29% of the items sit
in groups of 11 or more such vectors. Breaking those ties by index (as the k-NN
*table* of :mod:`embspace.neighbors` does for lookups) would break them the same
way in both spaces and make two unrelated spaces look alike; breaking them by
float noise would make a measure move under a rotation or a reordering of the
entities. So the measures here are defined on **tie groups**.

For a query entity and a level k, let ``v_(k)`` be the k-th smallest distance
value from the query (``1 - cos`` for cosine, ``-(q . x)`` for dot, ``|q - x|``
for euclidean; computed in float64 from the float32 vectors, the query itself
excluded). Its **strict set** is ``S = {j : v_j < v_(k) - tol}`` and its **tie
group** ``T = {j : |v_j - v_(k)| <= tol}``; then ``|S| < k <= |S| + |T|`` and
every k-NN set is ``S`` plus ``k - |S|`` members of ``T``. Each measure's value
for an entity is its **exact expected value when each space breaks its ties
uniformly at random, independently of the other** (for Jaccard, of
``|X ∩ Y| / (2k - |X ∩ Y|)``, computed from the hypergeometric distributions of
the parts of ``X ∩ Y``; see ``rust/core/src/ties.rs``). Without ties it is the
plain value of the two k-NN sets.

Tolerance: ``tol = tie_tolerance * scale``, with ``tie_tolerance`` =
:data:`TIE_TOLERANCE` = ``2**-20`` (about 9.5e-7: 16 units of float32 roundoff
``u = 2**-24``, 8 float32 spacings of a cosine just below 1) and ``scale`` the
size the query's values can reach, which is where float32 rounding of the
inputs acts: 1 for cosine (not ``|s_k|``: a rounding error of the inputs moves
a cosine by an absolute amount), ``|q| max_j |x_j|`` for dot,
``|q - c| + max_j |x_j - c|`` for euclidean (``c`` the centroid). Why it is
safe:

* it absorbs rounding: a float32 vector is off its exact direction by at most
  ``u``, so exactly parallel vectors stored in float32 have cosines to any
  query within about ``2u`` of each other, and a rotation or rescaling computed
  in float32 moves them by a few ``u`` more (about ``sqrt(d) u`` typically,
  ``d u`` at worst), well inside ``16 u`` for the dimensions of embeddings;
* it is the resolution of the similarity itself: a float32 cosine near 1 is
  only defined to ``2**-24``, and values within 8 such steps are not told
  apart. Genuine gaps are far wider: among the gaps between consecutive
  cosines of ml-latest-small's WALS items, those in [1e-8, 1e-7) are 100 times
  more frequent than a smooth distribution predicts (rounding of parallel
  groups), those in [1e-7, 1e-6) are not. Near cos = 1 the tolerance spans
  directions up to about 1.4e-3 rad apart (``1 - cos ~ angle^2 / 2``); some
  parallel groups there split into sub-clusters 4.8e-7 apart in cosine,
  which count as one group;
* the result does not hang on it: the Jaccard of WALS seed 0 vs seed 1 is
  0.1910, 0.1907, 0.1906 and 0.1902 for tolerances of 2**-30, 2**-24, 2**-20
  and 2**-16 (0.2441 with tolerance 0, where float noise inside parallel
  groups orders them alike in both spaces, and 0.4200 with ties broken by
  index).

``tie_tolerance=0`` counts only bitwise-equal float64 values as tied (rounding
then breaks exactly parallel vectors apart; do not use it for published numbers).

With these definitions every neighbor measure is invariant to the order of the
entities (exactly), and to rotation and isotropic scaling of either space (up to
float rounding of the inputs, which the tolerance absorbs).

Since each space breaks its ties on its own, a space compared with itself
scores 1 only where its k-NN sets are determined: with ties the score is the
agreement of two independent tie-breaks (on ml-latest-small's WALS items, 39%
of them tied at k = 10, ``neighbors(A, A)`` is 0.708). That is the ceiling of
the measure on such data, and the reason the seed-to-seed noise floor, not 1,
is the reference of a sweep.

Cost: the exact k-NN tables of both sides (:func:`embspace.neighbors.knn`, with
:func:`table_width` columns, so that a row's table shows where its k-th tie
group ends unless the group is large), plus one float64 scan of all entities
for each row whose tie group reaches past its table, shared by the rows of one
parallel group (one scan serves every row within its tie tolerance of the
scanned one); memory O(n k) plus the tie groups of 64 rows at a time, never
n x n. Without ties this costs the k-NN tables alone; on ml-latest-small's WALS
items (44% of the rows tied at k = 10) about 1.4 times the tables' time.
``tables`` lets a caller pass precomputed tables or overlaps so several
measures share one computation, as :func:`embspace.compare` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _core
from .._threads import check_threads
from ..errors import InvalidParameterError, ShapeMismatchError
from ..neighbors import knn
from ._base import MeasureResult, as_pair, population_stdev

__all__ = [
    "TIE_TOLERANCE",
    "NeighborOverlap",
    "mutual_knn",
    "neighbor_tables",
    "neighbors",
    "overlap_curve",
    "table_width",
]

#: The default relative tie tolerance, ``2**-20`` (see the module docs).
TIE_TOLERANCE = 2.0**-20

#: The largest tie tolerance accepted: beyond it, ties would merge distances
#: that float32 inputs do resolve.
MAX_TIE_TOLERANCE = 2.0**-10


def table_width(k: int, n: int) -> int:
    """Columns of the k-NN tables the neighbor measures read for level ``k``
    among ``n`` entities: ``k + 1 + k // 4`` (at most ``n - 1``): one more than
    k shows whether the k-th neighbor ties with the next, and a few more
    cover small tie groups. A row whose tie group reaches past its table is
    completed by a scan (rows of one parallel group share it), so the width
    only trades k-NN time against scan time; the result is the same."""
    return min(n - 1, k + 1 + k // 4)


def _check_tolerance(tol: Any, name: str) -> float:
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.integer, np.floating)):
        raise InvalidParameterError(f"{name}: tie_tolerance must be a number, got {tol!r}")
    tol = float(tol)
    if not (math.isfinite(tol) and 0.0 <= tol <= MAX_TIE_TOLERANCE):
        raise InvalidParameterError(
            f"{name}: tie_tolerance must lie in [0, {MAX_TIE_TOLERANCE:g}], got {tol!r}"
        )
    return tol


@dataclass(frozen=True)
class NeighborOverlap:
    """Tie-aware neighbor overlap of two spaces of the same n entities, for the
    levels k = 1..``k_max``.

    ``counts`` (n x k_max x 8, uint32) holds, per entity and level, the sizes
    ``|S_A|, |T_A|, |S_B|, |T_B|, |S_A ∩ S_B|, |S_A ∩ T_B|, |T_A ∩ S_B|,
    |T_A ∩ T_B|`` of the strict sets S and tie groups T (module docs), under
    ``metric`` and ``tie_tolerance``.
    """

    counts: np.ndarray
    metric: str
    tie_tolerance: float

    @property
    def n(self) -> int:
        return int(self.counts.shape[0])

    @property
    def k_max(self) -> int:
        return int(self.counts.shape[1])

    def level(self, k: int) -> np.ndarray:
        """The counts of level ``k`` (n x 8)."""
        if not 1 <= k <= self.k_max:
            raise InvalidParameterError(f"level k = {k} is outside [1, {self.k_max}]")
        return np.ascontiguousarray(self.counts[:, k - 1, :])

    def expected(self, k: int, num_threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per entity, the exact expected ``|N_A ∩ N_B|`` and Jaccard index of
        its k-NN sets under uniformly random tie-breaking, independent on each
        side (two float64 arrays of length n)."""
        c = self.level(k)
        return _core.tie_expectation(
            c, np.full(len(c), k, dtype=np.uint32), check_threads(num_threads)
        )

    def tied(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Per entity, whether its k-NN set on side A (and on side B) depends
        on how ties are broken: ``|T| > k - |S|`` (two boolean arrays)."""
        c = self.level(k).astype(np.int64)
        return c[:, 1] > k - c[:, 0], c[:, 3] > k - c[:, 2]


def neighbor_tables(
    A: Any,
    B: Any,
    k: int,
    *,
    metric: str = "cosine",
    num_threads: int | None = None,
    device: str = "cpu",
    tables: NeighborOverlap | tuple[np.ndarray, np.ndarray] | None = None,
    tie_tolerance: float = TIE_TOLERANCE,
    name: str = "neighbors",
) -> NeighborOverlap:
    """The tie-aware overlap of A and B (aligned n x d_a and n x d_b) for the
    levels 1..k.

    ``tables`` may be a :class:`NeighborOverlap` computed before (returned as
    is after checks: same n, ``k_max >= k``, same metric and tolerance), or the
    two exact k-NN index tables ``(I_A, I_B)`` (n x K each, K >= k, as
    :func:`embspace.neighbors.knn` returns them, rows sorted by distance), which
    are then read instead of computing them when K > k (a table of exactly k
    columns cannot show whether the k-th neighbor ties with the next, so
    wider ones are computed; the result is the same either way). Otherwise
    both tables are computed with :func:`table_width` columns on ``device``.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidParameterError(f"{name}: k must be a positive integer, got {k!r}")
    k = int(k)
    tol = _check_tolerance(tie_tolerance, name)
    threads = check_threads(num_threads)
    if isinstance(tables, NeighborOverlap):
        n = np.shape(A)[0] if np.ndim(A) == 2 else -1
        if tables.n != n or np.shape(B)[0] != n:
            raise ShapeMismatchError(
                f"{name}: the precomputed overlap is of {tables.n} entities, not {n}"
            )
        if tables.k_max < k:
            raise ShapeMismatchError(
                f"{name}: the precomputed overlap goes up to k = {tables.k_max} < {k}"
            )
        if tables.metric != metric or tables.tie_tolerance != tol:
            raise InvalidParameterError(
                f"{name}: the precomputed overlap is for metric {tables.metric!r} and "
                f"tie_tolerance {tables.tie_tolerance!r}, not {metric!r} and {tol!r}"
            )
        return tables
    A, B = as_pair(A, B, min_n=2, name=name)
    n = A.shape[0]
    if k > n - 1:
        raise InvalidParameterError(f"{name}: k = {k} must lie in [1, n - 1] = [1, {n - 1}]")
    A = np.ascontiguousarray(A, dtype=np.float32)
    B = np.ascontiguousarray(B, dtype=np.float32)
    if tables is not None:
        ia, ib = (np.asarray(t) for t in tables)
        if ia.ndim != 2 or ib.ndim != 2 or ia.shape[0] != n or ib.shape[0] != n:
            raise ShapeMismatchError(f"{name}: tables must be two n x K index arrays (n = {n})")
        if min(ia.shape[1], ib.shape[1]) < k:
            raise ShapeMismatchError(f"{name}: tables must be two n x K index arrays with K >= {k}")
        if not (np.issubdtype(ia.dtype, np.integer) and np.issubdtype(ib.dtype, np.integer)):
            raise InvalidParameterError(f"{name}: tables must hold integer row indices")
    if tables is None or min(ia.shape[1], ib.shape[1]) <= k < n - 1:
        # a table of exactly k columns cannot show whether the k-th neighbor
        # ties with the next: every row would need a scan, so compute wider ones
        # (this is only a question of time: the result is the same)
        w = table_width(k, n)
        ia = knn(A, w, metric=metric, num_threads=num_threads, device=device)[1]
        ib = knn(B, w, metric=metric, num_threads=num_threads, device=device)[1]
    counts = _core.tie_overlap(
        A,
        B,
        np.ascontiguousarray(ia, dtype=np.int64),
        np.ascontiguousarray(ib, dtype=np.int64),
        k,
        metric,
        tol,
        threads,
    )
    return NeighborOverlap(counts, metric, tol)


def _tie_details(ov: NeighborOverlap, k: int) -> dict[str, Any]:
    ta, tb = ov.tied(k)
    return {
        "tied_fraction": float((ta | tb).mean()),
        "tied_fraction_a": float(ta.mean()),
        "tied_fraction_b": float(tb.mean()),
        "tie_tolerance": ov.tie_tolerance,
    }


def neighbors(
    A: Any,
    B: Any,
    *,
    k: int = 10,
    metric: str = "cosine",
    num_threads: int | None = None,
    device: str = "cpu",
    tables: NeighborOverlap | tuple[np.ndarray, np.ndarray] | None = None,
    tie_tolerance: float = TIE_TOLERANCE,
) -> MeasureResult:
    """Jaccard@k: per entity ``|N_A ∩ N_B| / |N_A ∪ N_B|`` of its k-NN sets,
    tie-aware.

    Per entity: the exact expected Jaccard index when each space breaks its
    ties at the k-th neighbor uniformly at random, independently (module docs);
    without ties, the Jaccard index of the two k-NN sets. Score: the mean over
    entities. Details: the population stdev (ddof = 0), ``tied_fraction`` (the
    share of entities whose k-NN set depends on tie-breaking on either side;
    ``tied_fraction_a``/``_b`` per side) and ``tie_tolerance``. Range [0, 1];
    1 for identical spaces only where no k-NN set is tied (module docs).
    On inputs without ties this is repcomp's
    ``NeighborsComparison(nn_method="brute")`` made exact (the entity is
    removed by index).

    Invariances: the order of the entities (exactly); any map that keeps each
    side's distance values up to the tolerance: for cosine, rotation and
    per-side isotropic scaling (not translation); for euclidean, rotation,
    translation and isotropic scaling; for dot, rotation and isotropic scaling.
    Permuting columns changes nothing.

    Cost: two exact k-NN tables, O(n^2 d) time and O(n k) memory, plus one
    O(n d) scan per entity whose tie group reaches past its table.
    """
    ov = neighbor_tables(
        A,
        B,
        k,
        metric=metric,
        num_threads=num_threads,
        device=device,
        tables=tables,
        tie_tolerance=tie_tolerance,
        name="neighbors",
    )
    _, jac = ov.expected(k, num_threads)
    return MeasureResult(
        "neighbors",
        float(jac.mean()),
        {
            "stdev": population_stdev(jac),
            "k": int(k),
            "metric": metric,
            **_tie_details(ov, k),
        },
        jac,
    )


def mutual_knn(
    A: Any,
    B: Any,
    *,
    k: int = 10,
    metric: str = "cosine",
    num_threads: int | None = None,
    device: str = "cpu",
    tables: NeighborOverlap | tuple[np.ndarray, np.ndarray] | None = None,
    tie_tolerance: float = TIE_TOLERANCE,
) -> MeasureResult:
    """Mutual k-NN alignment (Huh et al. 2024): per entity ``|N_A ∩ N_B| / k``,
    tie-aware.

    Per entity: the exact expected overlap fraction under uniformly random
    tie-breaking on each side (module docs); score: the mean over entities;
    details: the population stdev and the tie fractions, as :func:`neighbors`.
    Range [0, 1]. Linear in the number of shared neighbors (Jaccard is
    ``m / (2 - m)`` of it entity by entity when there are no ties).

    Invariances: as :func:`neighbors`.

    Cost: as :func:`neighbors`.
    """
    ov = neighbor_tables(
        A,
        B,
        k,
        metric=metric,
        num_threads=num_threads,
        device=device,
        tables=tables,
        tie_tolerance=tie_tolerance,
        name="mutual_knn",
    )
    overlap, _ = ov.expected(k, num_threads)
    frac = overlap / float(k)
    return MeasureResult(
        "mutual_knn",
        float(frac.mean()),
        {
            "stdev": population_stdev(frac),
            "k": int(k),
            "metric": metric,
            **_tie_details(ov, k),
        },
        frac,
    )


def overlap_curve(
    A: Any,
    B: Any,
    *,
    k: int = 10,
    max_k: int | None = None,
    metric: str = "cosine",
    num_threads: int | None = None,
    device: str = "cpu",
    tables: NeighborOverlap | tuple[np.ndarray, np.ndarray] | None = None,
    tie_tolerance: float = TIE_TOLERANCE,
) -> MeasureResult:
    """Neighbor overlap as a function of k, for k = 1..K (K = ``max_k``, default ``k``),
    tie-aware at every k.

    For each k: the mean over entities of the expected ``|N_A^k ∩ N_B^k| / k``
    (details ``curve``) and of the expected Jaccard index (details
    ``jaccard_curve``), each with its own tie groups at the k-th neighbor
    (module docs). Score: the mean of the overlap curve (its normalised area);
    per entity: the mean of the entity's own curve. Details also hold the
    stdev of the per-entity values and the tie fractions at K. Range [0, 1].

    Invariances: as :func:`neighbors`.

    Cost: as :func:`neighbors` with K neighbors, plus O(n K) for the curves.
    """
    K = k if max_k is None else max_k
    ov = neighbor_tables(
        A,
        B,
        K,
        metric=metric,
        num_threads=num_threads,
        device=device,
        tables=tables,
        tie_tolerance=tie_tolerance,
        name="overlap_curve",
    )
    n = ov.n
    flat = np.ascontiguousarray(ov.counts[:, :K, :]).reshape(n * K, 8)
    levels = np.tile(np.arange(1, K + 1, dtype=np.uint32), n)
    overlap, jac = _core.tie_expectation(flat, levels, check_threads(num_threads))
    ks = np.arange(1, K + 1, dtype=np.float64)
    frac = overlap.reshape(n, K) / ks
    jac = jac.reshape(n, K)
    curve = frac.mean(axis=0)
    per_entity = frac.mean(axis=1)
    return MeasureResult(
        "overlap_curve",
        float(curve.mean()),
        {
            "k": [int(v) for v in ks],
            "curve": [float(v) for v in curve],
            "jaccard_curve": [float(v) for v in jac.mean(axis=0)],
            "stdev": population_stdev(per_entity),
            "metric": metric,
            **_tie_details(ov, K),
        },
        per_entity,
    )
