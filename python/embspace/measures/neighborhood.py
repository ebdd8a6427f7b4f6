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

Sampled queries: :func:`sampled_overlap` gives the same counts for m query
entities only, each against all n (O(m n d) instead of O(n^2 d)); the mean of
their per-entity values estimates the exact score, which is how
``compare(..., sample=m)`` handles millions of entities.
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
    "sampled_overlap",
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
    A, B = as_pair(A, B, min_n=2, name=name, keep_float32=True)
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


# ------------------------------------------------------------- sampled queries
#: Rows of a space converted to float64 at a time by the sampled overlap's
#: passes over all entities (about 32 MiB per block at d = 64).
SCAN_BLOCK_ROWS = 1 << 16


def _side_values(X: np.ndarray, metric: str) -> tuple[Any, float]:
    """What the values of one side need beyond its rows: a function
    ``prep(rows) -> float64 rows`` (unit rows for cosine, the rows for dot,
    the rows minus the centroid for euclidean) and the largest norm of a prepared row (dot, euclidean), from one pass over
    ``X`` in blocks (never a float64 copy of all of it)."""
    n, d = X.shape
    centroid = np.zeros(d)
    if metric == "euclidean":
        for lo in range(0, n, SCAN_BLOCK_ROWS):
            centroid += X[lo : lo + SCAN_BLOCK_ROWS].astype(np.float64).sum(axis=0)
        centroid /= n

    def prep(rows: np.ndarray) -> np.ndarray:
        P = rows.astype(np.float64)
        if metric == "cosine":
            norm = np.sqrt((P * P).sum(axis=-1, keepdims=True))
            P = np.divide(P, norm, out=np.zeros_like(P), where=norm > 0)
        elif metric == "euclidean":
            P -= centroid
        return P

    reach = 1.0
    if metric != "cosine":
        reach = 0.0
        for lo in range(0, n, SCAN_BLOCK_ROWS):
            P = prep(X[lo : lo + SCAN_BLOCK_ROWS])
            reach = max(reach, float(np.sqrt((P * P).sum(axis=1)).max()))
    return prep, reach


def _values(metric: str, prep: Any, Xq: np.ndarray, Xc: np.ndarray) -> np.ndarray:
    """Distance values (float64, smaller is closer) of candidate rows ``Xc``
    (m x L x d, float32) for query rows ``Xq`` (m x d): the values of
    :mod:`embspace.measures.neighborhood`'s module docs (``1 - u_q . u_j``,
    ``-(q . j)``, ``|q - j|``)."""
    if metric == "euclidean":
        diff = Xc.astype(np.float64) - Xq.astype(np.float64)[:, None, :]
        v = np.sqrt((diff * diff).sum(axis=-1))
    else:
        dot = np.einsum("qd,qld->ql", prep(Xq), prep(Xc))
        v = 1.0 - dot if metric == "cosine" else -dot
    return v + 0.0  # -0.0 -> +0.0


def _candidates(
    X: np.ndarray,
    rows: np.ndarray,
    table: np.ndarray,
    k: int,
    metric: str,
    tie_tolerance: float,
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """For each query ``rows[t]`` of one side: every row ``j != rows[t]`` with
    ``v_j <= v_(k) + tol`` (its strict set and the tie group of its k-th
    neighbor), as sorted (values, indices), and the query's ``tol``.

    ``table`` holds the query rows' exact k-NN indices (m x w, w > k unless
    w = n - 1). A row whose table ends inside its tie group is completed by a
    float64 scan of all rows in blocks (the rule of the full computation in
    ``rust/core/src/ties.rs``: the same sets, hence the same counts)."""
    n, d = X.shape
    m, w = table.shape
    prep, reach = _side_values(X, metric)
    Xq = X[rows]
    if metric == "cosine":
        scale = np.ones(m)
    elif metric == "dot":
        scale = np.sqrt((Xq.astype(np.float64) ** 2).sum(axis=1)) * reach
    else:
        zq = prep(Xq)
        scale = np.sqrt((zq * zq).sum(axis=1)) + reach
    tol = tie_tolerance * scale
    slack = max(2.0**-40, 8.0 * (d + 2) * np.finfo(np.float64).eps) * scale
    vals = _values(metric, prep, Xq, X[table])
    order = np.lexsort((table, vals), axis=-1)
    vals = np.take_along_axis(vals, order, axis=1)
    idx = np.take_along_axis(table, order, axis=1)
    kth = vals[:, k - 1]
    scan = (vals[:, -1] <= kth + tol + 2.0 * slack) if w < n - 1 else np.zeros(m, dtype=bool)
    out_v: list[np.ndarray] = []
    out_i: list[np.ndarray] = []
    for t in range(m):
        keep = vals[t] <= kth[t] + tol[t]
        out_v.append(vals[t][keep])
        out_i.append(idx[t][keep])
    todo = np.flatnonzero(scan)
    if todo.size:
        limits = kth[todo] + tol[todo] + 2.0 * slack[todo]
        # a margin for the product's rounding (only decides which rows get their
        # exact value; the exact value decides)
        margin = (1e-6 if metric == "euclidean" else 1e-9) * scale[todo] + 2.0 * slack[todo]
        for lo in range(0, todo.size, 64):
            sel = todo[lo : lo + 64]
            lim, mar = limits[lo : lo + 64], margin[lo : lo + 64]
            Pq = prep(Xq[sel])
            found: list[list[np.ndarray]] = [[] for _ in sel]
            for c0 in range(0, n, SCAN_BLOCK_ROWS):
                P = prep(X[c0 : c0 + SCAN_BLOCK_ROWS])
                G = P @ Pq.T  # block x queries
                if metric == "cosine":
                    fast = 1.0 - G
                elif metric == "dot":
                    fast = -G
                else:
                    sq = (P * P).sum(axis=1)[:, None] + (Pq * Pq).sum(axis=1)[None, :]
                    fast = np.sqrt(np.maximum(sq - 2.0 * G, 0.0))
                hit_r, hit_c = np.nonzero(fast <= lim + mar)
                for c in np.unique(hit_c):
                    found[c].append(hit_r[hit_c == c] + c0)
            for c, t in enumerate(sel):
                j = np.concatenate(found[c]) if found[c] else np.empty(0, dtype=np.int64)
                j = j[j != rows[t]].astype(np.int64)
                v = _values(metric, prep, Xq[t : t + 1], X[j][None])[0]
                o = np.lexsort((j, v))
                v, j = v[o], j[o]
                v_k = v[k - 1]
                keep = v <= v_k + tol[t]
                out_v[t], out_i[t] = v[keep], j[keep]
    return out_v, out_i, tol


def _counts_of(
    la: tuple[list[np.ndarray], list[np.ndarray], np.ndarray],
    lb: tuple[list[np.ndarray], list[np.ndarray], np.ndarray],
    k: int,
) -> np.ndarray:
    """The m x k x 8 counts (:class:`NeighborOverlap`) of the candidate lists
    of both sides (:func:`_candidates`)."""
    m = len(la[0])
    counts = np.zeros((m, k, 8), dtype=np.uint32)
    levels = np.arange(k)
    for lo in range(0, m, 256):
        hi = min(m, lo + 256)
        bounds = []
        for vals, _, tol in (la, lb):
            L = max(len(v) for v in vals[lo:hi])
            V = np.full((hi - lo, L), np.inf)
            for t in range(lo, hi):
                V[t - lo, : len(vals[t])] = vals[t]
            at = V[:, levels][:, :, None]  # chunk x k x 1
            tq = tol[lo:hi, None, None]
            s = (V[:, None, :] < at - tq).sum(axis=2)
            e = (V[:, None, :] <= at + tq).sum(axis=2)
            bounds.append((s, e))
        (sa, ea), (sb, eb) = bounds
        block = counts[lo:hi]
        block[:, :, 0], block[:, :, 1] = sa, ea - sa
        block[:, :, 2], block[:, :, 3] = sb, eb - sb
        # matched pairs: (query, position in A's list, position in B's list)
        qs, pa, pb = [], [], []
        for t in range(lo, hi):
            ia, ib = la[1][t], lb[1][t]
            common, xa, xb = np.intersect1d(ia, ib, assume_unique=True, return_indices=True)
            qs.append(np.full(common.size, t - lo))
            pa.append(xa)
            pb.append(xb)
        q = np.concatenate(qs)
        if q.size == 0:
            continue
        a_pos, b_pos = np.concatenate(pa)[:, None], np.concatenate(pb)[:, None]
        strict_a, strict_b = a_pos < sa[q], b_pos < sb[q]
        tied_a = ~strict_a & (a_pos < ea[q])
        tied_b = ~strict_b & (b_pos < eb[q])
        for c, hit in enumerate(
            (strict_a & strict_b, strict_a & tied_b, tied_a & strict_b, tied_a & tied_b)
        ):
            total = np.zeros((hi - lo, k), dtype=np.int64)
            np.add.at(total, q, hit.astype(np.int64))
            block[:, :, 4 + c] = total
    return counts


def sampled_overlap(
    A: Any,
    B: Any,
    rows: Any,
    k: int,
    *,
    metric: str = "cosine",
    num_threads: int | None = None,
    device: str = "cpu",
    tables: tuple[np.ndarray, np.ndarray] | None = None,
    tie_tolerance: float = TIE_TOLERANCE,
    name: str = "neighbors",
) -> NeighborOverlap:
    """The tie-aware overlap of A and B (aligned n x d_a and n x d_b) for the
    query entities ``rows`` only (m distinct row indices), each against all
    n entities, for the levels 1..k.

    Row t of the result holds the counts that :func:`neighbor_tables` gives
    for row ``rows[t]`` (the same strict sets and tie groups, among all n
    entities; up to the last bit of float64 rounding of the values, which
    only matters for a value exactly at the tie tolerance): the k-NN of the
    queries are searched exactly (:func:`embspace.neighbors.knn` with
    ``queries=rows``, :func:`table_width` columns), and a query whose table
    ends inside its tie group gets a float64 scan of all entities in blocks of
    :data:`SCAN_BLOCK_ROWS`. ``tables``: the queries' exact k-NN index tables
    (m x K each, K > k) when the caller has them.

    Cost: O(m n d) for the two searches (int8-screened products with exact
    re-ranking on CPUs with AVX-512 VNNI, float32 products otherwise; see
    :mod:`embspace.neighbors`; a running top-K, on ``num_threads`` threads), O(n d) per side for the norms,
    plus O(n d) per tied query (64 queries per scan). Memory: the float32
    vectors, the search's prepared copy of one side at a time, O(m K) tables
    and float64 blocks of :data:`SCAN_BLOCK_ROWS` rows.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidParameterError(f"{name}: k must be a positive integer, got {k!r}")
    k = int(k)
    tol = _check_tolerance(tie_tolerance, name)
    check_threads(num_threads)
    A = np.asarray(A)
    B = np.asarray(B)
    if A.ndim != 2 or B.ndim != 2 or A.shape[0] != B.shape[0]:
        raise ShapeMismatchError(f"{name}: A and B must be n x d arrays with the same rows")
    n = A.shape[0]
    if k > n - 1:
        raise InvalidParameterError(f"{name}: k = {k} must lie in [1, n - 1] = [1, {n - 1}]")
    rows = np.asarray(rows)
    if rows.ndim != 1 or rows.size == 0 or not np.issubdtype(rows.dtype, np.integer):
        raise InvalidParameterError(f"{name}: rows must be a non-empty 1-D array of row indices")
    rows = rows.astype(np.int64)
    if rows.min() < 0 or rows.max() >= n or np.unique(rows).size != rows.size:
        raise InvalidParameterError(f"{name}: rows must be distinct indices in [0, {n})")
    A = np.ascontiguousarray(A, dtype=np.float32)
    B = np.ascontiguousarray(B, dtype=np.float32)
    for side, X in (("A", A), ("B", B)):
        for lo in range(0, n, SCAN_BLOCK_ROWS):
            if not np.isfinite(X[lo : lo + SCAN_BLOCK_ROWS]).all():
                from ..errors import NonFiniteError

                raise NonFiniteError(f"{name}: {side} contains NaN or infinite values")
    w = table_width(k, n)
    lists = []
    for s, X in enumerate((A, B)):
        if tables is not None and np.shape(tables[s])[1] > k:
            table = np.asarray(tables[s], dtype=np.int64)
            if table.shape[0] != rows.size:
                raise ShapeMismatchError(f"{name}: tables must have one row per query")
        else:
            table = knn(X, w, metric=metric, queries=rows, num_threads=num_threads, device=device)[
                1
            ]
        lists.append(_candidates(X, rows, table, k, metric, tol))
    return NeighborOverlap(_counts_of(lists[0], lists[1], k), metric, tol)
