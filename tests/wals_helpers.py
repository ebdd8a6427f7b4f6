"""Test-side drivers of the WALS code: the loss formula against an array module
and a whole fit on :class:`embspace.gpu.wals_xp.WalsXp`.

They live with the tests (the product never needs them): ``loss_terms`` is the
loss stated in :mod:`embspace.factorization.wals`, written independently of the Rust core and of
``WalsXp``, and ``fit_wals_xp`` runs iterations of ``WalsXp`` directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
from embspace.errors import InvalidParameterError
from embspace.factorization import LossTerms
from embspace.gpu.wals_xp import CsrArrays, WalsXp

IterationCallback = Callable[[int, float, float], Any]


def loss_terms(
    xp: ModuleType,
    indptr: Any,
    indices: Any,
    data: Any,
    u: Any,
    v: Any,
    *,
    unobserved_weight: float,
    regularization: float,
    row_weights: Any = None,
    col_weights: Any = None,
    regularization_scaling: str = "none",
    chunk: int = 1 << 20,
) -> LossTerms:
    """The loss of factors ``u`` (rows) and ``v`` (columns) for ratings given
    as CSR arrays by rows, written against the array module ``xp`` (numpy or
    CuPy), in float64. The unobserved part is
    ``w0 (tr(U^T U V^T V) - sum_{(i,j) in O} (u_i . v_j)^2)``; observed
    entries are visited in chunks of ``chunk``."""
    n_rows = int(indptr.shape[0]) - 1
    counts_rows = xp.diff(indptr)
    rows = xp.repeat(xp.arange(n_rows), counts_rows)
    u64 = u.astype(xp.float64)
    v64 = v.astype(xp.float64)
    observed = 0.0
    sq = 0.0
    for a in range(0, int(data.shape[0]), chunk):
        r = rows[a : a + chunk]
        c = indices[a : a + chunk]
        p = xp.sum(u64[r] * v64[c], axis=1)
        w = xp.full(p.shape, unobserved_weight, dtype=xp.float64)
        extra = xp.ones(p.shape, dtype=xp.float64)
        if row_weights is not None:
            extra = extra * row_weights[r].astype(xp.float64)
        if col_weights is not None:
            extra = extra * col_weights[c].astype(xp.float64)
        w = w + extra
        e = data[a : a + chunk].astype(xp.float64) - p
        observed += float(xp.sum(w * e * e))
        sq += float(xp.sum(p * p))
    everything = float(xp.sum((u64.T @ u64) * (v64.T @ v64)))
    if regularization_scaling == "count":
        counts_cols = xp.bincount(indices, minlength=int(v.shape[0]))
        reg_u = float(xp.sum(counts_rows * xp.sum(u64 * u64, axis=1)))
        reg_v = float(xp.sum(counts_cols * xp.sum(v64 * v64, axis=1)))
    else:
        reg_u = float(xp.sum(u64 * u64))
        reg_v = float(xp.sum(v64 * v64))
    return LossTerms(
        observed=observed,
        unobserved=unobserved_weight * (everything - sq),
        regularization=regularization * (reg_u + reg_v),
    )


@dataclass
class WalsXpResult:
    """What :func:`fit_wals_xp` returns (numpy arrays, on the host)."""

    user_factors: np.ndarray  # (n_users, k) float32
    item_factors: np.ndarray  # (n_items, k) float32
    loss_history: list[float]  # the start, then after every half-sweep
    n_iter: int


def fit_wals_xp(
    user_csr: CsrArrays,
    item_csr: CsrArrays,
    user_init: np.ndarray,
    item_init: np.ndarray,
    *,
    unobserved_weight: float,
    regularization: float,
    iterations: int,
    row_weights: np.ndarray | None = None,
    col_weights: np.ndarray | None = None,
    scale_regularization: bool = False,
    solver: str = "cholesky",
    cg_steps: int = 3,
    xp: ModuleType = np,
    memory_budget: int | None = None,
    callback: IterationCallback | None = None,
    strategy: str = "auto",
) -> WalsXpResult:
    """Run ``iterations`` WALS iterations on ``xp`` from the given initial factors.

    See :class:`WalsXp` for the parameters. ``loss_history`` holds the loss of
    the starting point, then after every half-sweep (``1 + 2 * iterations``
    values, as ``embspace.WALS.loss_history_``). ``callback(iteration, elapsed,
    loss)`` is called after each iteration (iteration from 1, elapsed seconds
    since the start); an exception it raises propagates and stops training.
    """
    if isinstance(iterations, bool) or int(iterations) != iterations or iterations < 0:
        raise InvalidParameterError(f"iterations must be an integer >= 0, got {iterations}")
    start = time.perf_counter()
    state = WalsXp(
        user_csr,
        item_csr,
        user_init,
        item_init,
        unobserved_weight=unobserved_weight,
        regularization=regularization,
        row_weights=row_weights,
        col_weights=col_weights,
        scale_regularization=scale_regularization,
        solver=solver,
        cg_steps=cg_steps,
        xp=xp,
        memory_budget=memory_budget,
        strategy=strategy,
    )
    history = [state.loss()]
    for it in range(1, int(iterations) + 1):
        history.append(sum(state.solve_users()))
        history.append(sum(state.solve_items()))
        if callback is not None:
            callback(it, time.perf_counter() - start, history[-1])
    users, items = state.factors()
    return WalsXpResult(users, items, history, int(iterations))
