"""Tie-aware neighbor sets and their expected overlap straight from the
definitions (plain numpy and itertools), for the tests.

For a query q and level k: S = {j : v_j < v_(k) - tol}, T = {j : |v_j - v_(k)| <=
tol}, with v the distance values (1 - cos, -dot, euclidean distance) and
tol = TOL * scale (cosine 1, dot |q| max|x|, euclidean |q - c| + max|x - c|).
Each side's k-NN set is S plus a uniform random (k - |S|)-subset of T; the
expected overlap and Jaccard index are averaged over every pair of choices.
"""

from __future__ import annotations

import itertools

import numpy as np
from _knn_reference import distances_to

TOL = 2.0**-20


def values(X: np.ndarray, q: int, metric: str) -> np.ndarray:
    """Distance values of every row from row q (float64; the row itself +inf)."""
    X64 = np.asarray(X, dtype=np.float64)
    v = distances_to(X64, q, metric)
    if metric == "euclidean":
        v = np.sqrt(v)
    v = v.astype(np.float64)
    v[q] = np.inf
    return v


def scale(X: np.ndarray, q: int, metric: str) -> float:
    X64 = np.asarray(X, dtype=np.float64)
    if metric == "cosine":
        return 1.0
    if metric == "dot":
        norms = np.sqrt((X64 * X64).sum(axis=1))
        return float(norms[q] * norms.max())
    c = X64.mean(axis=0)
    r = np.sqrt(((X64 - c) ** 2).sum(axis=1))
    return float(r[q] + r.max())


def tie_sets(
    X: np.ndarray, q: int, k: int, metric: str = "cosine", tol: float = TOL
) -> tuple[frozenset[int], frozenset[int]]:
    """(S, T) of row q at level k."""
    v = values(X, q, metric)
    t = tol * scale(X, q, metric)
    kth = np.sort(v)[k - 1]
    strict = frozenset(int(j) for j in np.flatnonzero(v < kth - t))
    tied = frozenset(int(j) for j in np.flatnonzero(np.abs(v - kth) <= t))
    return strict, tied


def enumerate_pair(
    sa: frozenset[int], ta: frozenset[int], sb: frozenset[int], tb: frozenset[int], k: int
) -> tuple[float, float]:
    """E|X ∩ Y| and E[J] over every choice of the tie-broken members on both sides."""
    xs = [sa | set(c) for c in itertools.combinations(sorted(ta), k - len(sa))]
    ys = [sb | set(c) for c in itertools.combinations(sorted(tb), k - len(sb))]
    if len(xs) * len(ys) > 300_000:
        raise ValueError("too many tie-breaks to enumerate")
    z = np.array([len(x & y) for x in xs for y in ys], dtype=np.float64)
    return float(z.mean()), float((z / (2 * k - z)).mean())


def expected_per_entity(
    A: np.ndarray, B: np.ndarray, k: int, metric: str = "cosine", tol: float = TOL
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the expected overlap and Jaccard of its k-NN sets."""
    n = len(A)
    out = np.empty((2, n))
    for q in range(n):
        sa, ta = tie_sets(A, q, k, metric, tol)
        sb, tb = tie_sets(B, q, k, metric, tol)
        out[:, q] = enumerate_pair(sa, ta, sb, tb, k)
    return out[0], out[1]
