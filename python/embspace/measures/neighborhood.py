"""Neighborhood measures: do the entities keep their nearest neighbors?

Each uses exact k-NN tables of both sides (the Rust core, see
:mod:`embspace.neighbors`), the entity itself excluded by index. ``tables``
lets a caller pass precomputed neighbor indices ``(I_A, I_B)`` (n x K, K at
least the k needed) so several measures share one computation, as
:func:`embspace.compare` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._params import check_int
from ..errors import ShapeMismatchError
from ..neighbors import knn
from ._base import MeasureResult, as_pair, population_stdev

__all__ = ["mutual_knn", "neighbor_tables", "neighbors", "overlap_curve", "shared_counts"]


def neighbor_tables(
    A: Any,
    B: Any,
    k: int,
    *,
    metric: str = "cosine",
    num_threads: int | None = None,
    device: str = "cpu",
    tables: tuple[np.ndarray, np.ndarray] | None = None,
    name: str = "neighbors",
) -> tuple[np.ndarray, np.ndarray]:
    """The first k neighbor indices of every row of A and of B (n x k each),
    from ``tables`` when given, else computed exactly."""
    k = check_int(k, f"{name}: k", minimum=1)
    if tables is not None:
        ia, ib = (np.asarray(t) for t in tables)
        if ia.ndim != 2 or ia.shape != ib.shape or ia.shape[1] < k:
            raise ShapeMismatchError(f"{name}: tables must be two n x K index arrays with K >= {k}")
        return ia[:, :k], ib[:, :k]
    A, B = as_pair(A, B, min_n=2, name=name)
    A = np.ascontiguousarray(A, dtype=np.float32)
    B = np.ascontiguousarray(B, dtype=np.float32)
    ia = knn(A, k, metric=metric, num_threads=num_threads, device=device)[1]
    ib = knn(B, k, metric=metric, num_threads=num_threads, device=device)[1]
    return ia, ib


def shared_counts(ia: np.ndarray, ib: np.ndarray) -> np.ndarray:
    """Per row, how many indices the rows of ``ia`` and ``ib`` (n x k, no repeats
    within a row) have in common."""
    both = np.sort(np.concatenate([ia, ib], axis=1), axis=1)
    return (both[:, 1:] == both[:, :-1]).sum(axis=1).astype(np.int64)


def neighbors(
    A: Any,
    B: Any,
    *,
    k: int = 10,
    metric: str = "cosine",
    num_threads: int | None = None,
    device: str = "cpu",
    tables: tuple[np.ndarray, np.ndarray] | None = None,
) -> MeasureResult:
    """Jaccard@k: per entity ``|N_A ∩ N_B| / |N_A ∪ N_B|`` of its k-NN sets.

    Score: the mean over entities; details: the population stdev (ddof = 0);
    per entity: the Jaccard values. Range [0, 1]. With cosine neighbors this is
    repcomp's ``NeighborsComparison(nn_method="brute")`` made exact (no
    duplicate-row ambiguity: the entity is removed by index, ties go to the
    lower index).

    Invariances: any map that keeps each side's neighbor order — for cosine,
    rotation and per-side isotropic scaling (not translation); for euclidean,
    rotation, translation and isotropic scaling. Permuting columns changes
    nothing; permuting entities does.

    Cost: two exact k-NN tables, O(n^2 d) time and O(n k) memory, then O(n k log k).
    """
    ia, ib = neighbor_tables(
        A,
        B,
        k,
        metric=metric,
        num_threads=num_threads,
        device=device,
        tables=tables,
        name="neighbors",
    )
    shared = shared_counts(ia, ib)
    jac = shared / (2.0 * k - shared)
    return MeasureResult(
        "neighbors",
        float(jac.mean()),
        {"stdev": population_stdev(jac), "k": int(k), "metric": metric},
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
    tables: tuple[np.ndarray, np.ndarray] | None = None,
) -> MeasureResult:
    """Mutual k-NN alignment (Huh et al. 2024): per entity ``|N_A ∩ N_B| / k``.

    Score: the mean over entities; details: the population stdev; per entity:
    the overlap fractions. Range [0, 1]. Related to Jaccard by
    ``J = m / (2 - m)``, but linear in the number of shared neighbors.

    Invariances: as :func:`neighbors`.

    Cost: as :func:`neighbors`.
    """
    ia, ib = neighbor_tables(
        A,
        B,
        k,
        metric=metric,
        num_threads=num_threads,
        device=device,
        tables=tables,
        name="mutual_knn",
    )
    frac = shared_counts(ia, ib) / float(k)
    return MeasureResult(
        "mutual_knn",
        float(frac.mean()),
        {"stdev": population_stdev(frac), "k": int(k), "metric": metric},
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
    tables: tuple[np.ndarray, np.ndarray] | None = None,
) -> MeasureResult:
    """Neighbor overlap as a function of k, for k = 1..K (K = ``max_k``, default ``k``).

    For each k: the mean over entities of ``|N_A^k ∩ N_B^k| / k`` (details
    ``curve``) and of the Jaccard index (details ``jaccard_curve``). Score: the
    mean of the overlap curve (its normalised area); per entity: the mean of the
    entity's own curve. Range [0, 1].

    Invariances: as :func:`neighbors`.

    Cost: two exact k-NN tables with K neighbors, then O(n K^2) time in chunks
    of bounded memory.
    """
    K = k if max_k is None else max_k
    ia, ib = neighbor_tables(
        A,
        B,
        K,
        metric=metric,
        num_threads=num_threads,
        device=device,
        tables=tables,
        name="overlap_curve",
    )
    n = ia.shape[0]
    ks = np.arange(1, K + 1, dtype=np.float64)
    shared = np.empty((n, K), dtype=np.int64)
    step = max(1, (32 << 20) // max(K * K, 1))
    diag = np.arange(K)
    for lo in range(0, n, step):
        hits = ia[lo : lo + step, :, None] == ib[lo : lo + step, None, :]
        # shared[i, k-1] = number of hits in the leading k x k block
        cum = hits.cumsum(axis=1, dtype=np.int64).cumsum(axis=2)
        shared[lo : lo + step] = cum[:, diag, diag]
    frac = shared / ks
    jac = shared / (2.0 * ks - shared)
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
        },
        per_entity,
    )
