"""A plain float64 numpy brute force of the k-NN, for the tests (no BLAS: every
row's distances come from the same elementwise formula, so identical rows give
identical distances)."""

from __future__ import annotations

import numpy as np


def distances_to(X64: np.ndarray, q: int, metric: str) -> np.ndarray:
    """Ranking keys of every row against row ``q`` (smaller is closer; squared
    distance for euclidean)."""
    x = X64[q]
    if metric == "cosine":
        norms = np.sqrt((X64 * X64).sum(axis=1))
        den = norms[q] * norms
        dots = (X64 * x).sum(axis=1)
        cos = np.divide(dots, den, out=np.zeros_like(dots), where=den > 0)
        return 1.0 - cos
    if metric == "euclidean":
        return ((X64 - x) ** 2).sum(axis=1)
    if metric == "dot":
        return -(X64 * x).sum(axis=1)
    raise ValueError(metric)


def brute_knn(X: np.ndarray, k: int, metric: str, queries=None) -> tuple[np.ndarray, np.ndarray]:
    """(distances float64, indices int64) with the query excluded by index and
    ties broken by the lower index."""
    X64 = np.asarray(X, dtype=np.float64)
    n = X64.shape[0]
    qs = range(n) if queries is None else queries
    dist, idx = [], []
    for q in qs:
        key = distances_to(X64, q, metric)
        key[q] = np.inf
        order = np.lexsort((np.arange(n), key))[:k]
        shown = np.sqrt(key[order]) if metric == "euclidean" else key[order]
        dist.append(shown)
        idx.append(order)
    return np.array(dist), np.array(idx, dtype=np.int64)
