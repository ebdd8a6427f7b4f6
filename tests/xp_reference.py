"""Plain float64 numpy references for the array-module tests (independent of embspace).

Dense, row-by-row, written straight from the WALS loss and row solve stated in
:mod:`embspace.factorization.wals` and the k-NN order of :func:`embspace.neighbors.knn`:
nothing here shares code with :mod:`embspace.gpu`.
"""

from __future__ import annotations

import numpy as np


def _row_systems(a, fixed, own_w, other_w, w0, lam, scale):
    """``(i, lhs, rhs, reg)`` for every row ``i`` of ``a`` with ratings: its normal
    equations (float64) and its regularisation ``reg`` (``lam``, times the row's
    count with ``scale``)."""
    fixed = fixed.astype(np.float64)
    k = fixed.shape[1]
    gram = fixed.T @ fixed
    for i in range(a.shape[0]):
        obs = np.flatnonzero(a[i])
        if obs.size == 0:
            continue
        c = float(own_w[i]) * other_w[obs].astype(np.float64)
        v = fixed[obs]
        reg = lam * obs.size if scale else lam
        lhs = w0 * gram + (v.T * c) @ v + reg * np.eye(k)
        rhs = ((w0 + c) * a[i, obs]) @ v
        yield i, lhs, rhs, reg


def wals_half_sweep(
    a: np.ndarray,
    fixed: np.ndarray,
    own_w: np.ndarray,
    other_w: np.ndarray,
    w0: float,
    lam: float,
    scale: bool = False,
) -> np.ndarray:
    """Solve every row of ``a`` (dense, 0 = missing) given the other side's factors."""
    out = np.zeros((a.shape[0], fixed.shape[1]))
    for i, lhs, rhs, _ in _row_systems(a, fixed, own_w, other_w, w0, lam, scale):
        out[i] = np.linalg.solve(lhs, rhs)
    return out


def wals_cg_half_sweep(
    a: np.ndarray,
    fixed: np.ndarray,
    start: np.ndarray,
    own_w: np.ndarray,
    other_w: np.ndarray,
    w0: float,
    lam: float,
    steps: int,
    precondition: bool,
    scale: bool = False,
) -> np.ndarray:
    """``steps`` conjugate-gradient steps on every row's system from ``start``
    (textbook, float64): preconditioned by the row's ``w0 G + reg I``
    (``z = M^-1 r``) when ``precondition``, else plain."""
    f64 = fixed.astype(np.float64)
    gram = f64.T @ f64
    out = np.zeros((a.shape[0], fixed.shape[1]))
    for i, lhs, rhs, reg in _row_systems(a, fixed, own_w, other_w, w0, lam, scale):
        shared = w0 * gram + reg * np.eye(fixed.shape[1])
        x = start[i].astype(np.float64)
        r = rhs - lhs @ x
        z = np.linalg.solve(shared, r) if precondition else r
        p = z.copy()
        rz = r @ z
        for _ in range(steps):
            if rz <= 0:
                break
            ap = lhs @ p
            alpha = rz / (p @ ap)
            x = x + alpha * p
            r = r - alpha * ap
            z = np.linalg.solve(shared, r) if precondition else r
            rz_new = r @ z
            p = z + (rz_new / rz) * p
            rz = rz_new
        out[i] = x
    return out


def wals_loss(
    a: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    r: np.ndarray,
    c: np.ndarray,
    w0: float,
    lam: float,
    scale: bool = False,
) -> float:
    """The WALS objective on the dense matrix, every entry summed explicitly."""
    u, v = u.astype(np.float64), v.astype(np.float64)
    pred = u @ v.T
    observed = a != 0
    weights = np.where(observed, w0 + np.outer(r, c), w0)
    data = np.sum(weights * (a - pred) ** 2)
    if scale:
        pen = (observed.sum(1) * (u**2).sum(1)).sum() + (observed.sum(0) * (v**2).sum(1)).sum()
    else:
        pen = (u**2).sum() + (v**2).sum()
    return float(data + lam * pen)


def wals_fit(a, u0, v0, r, c, w0, lam, iterations, scale=False):
    """(U, V, losses) after ``iterations`` row-then-column iterations; losses
    holds the start, then the loss after every half-sweep."""
    u, v = u0.astype(np.float64), v0.astype(np.float64)
    losses = [wals_loss(a, u, v, r, c, w0, lam, scale)]
    for _ in range(iterations):
        u = wals_half_sweep(a, v, r, c, w0, lam, scale)
        losses.append(wals_loss(a, u, v, r, c, w0, lam, scale))
        v = wals_half_sweep(a.T, u, c, r, w0, lam, scale)
        losses.append(wals_loss(a, u, v, r, c, w0, lam, scale))
    return u, v, losses


def knn_brute(x: np.ndarray, k: int, metric: str, queries=None) -> np.ndarray:
    """Indices (q, k) by sorting (float64 distance, index) tuples, self excluded."""
    x = x.astype(np.float64)
    n = x.shape[0]
    norms = np.sqrt((x * x).sum(1))
    out = []
    for q in range(n) if queries is None else queries:
        if metric == "cosine":
            den = norms * norms[q]
            dist = np.where(den > 0, 1 - (x @ x[q]) / np.where(den > 0, den, 1), 1.0)
        elif metric == "dot":
            dist = -(x @ x[q])
        else:
            dist = ((x - x[q]) ** 2).sum(1)
        ranked = sorted((float(dist[j]), j) for j in range(n) if j != q)
        out.append([j for _, j in ranked[:k]])
    return np.array(out, dtype=np.int64).reshape(-1, k)
