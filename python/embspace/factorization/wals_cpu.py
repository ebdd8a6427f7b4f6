"""The ``"cpu"`` WALS backend: the Rust core, one call per half-sweep with the
GIL released (Ctrl-C stops it within a row). Results are bit-identical for any
``num_threads``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _core
from ..errors import InvalidParameterError
from .backends import LossTerms, WalsBackend, WalsProblem, register_backend

__all__ = ["CpuBackend"]


class CpuBackend(WalsBackend):
    """The Rust core: one call per half-sweep, the GIL released while it runs
    (Ctrl-C stops it within a row). Results are bit-identical for any
    ``num_threads``.

    Each half-sweep solves into a new array that replaces the old one only
    once the call has returned, so the arrays of a checkpoint are never
    written again and an interrupted half-sweep changes nothing."""

    def __init__(self, problem: WalsProblem) -> None:
        super().__init__(problem)
        self.u = np.ascontiguousarray(problem.user_factors, dtype=np.float32)
        self.v = np.ascontiguousarray(problem.item_factors, dtype=np.float32)

    def _common(self) -> dict[str, Any]:
        p = self.problem
        return {
            "unobserved_weight": p.unobserved_weight,
            "regularization": p.regularization,
            "reg_scaling": p.regularization_scaling,
            "num_threads": p.num_threads,
        }

    def half_sweep(self, side: str) -> LossTerms:
        p = self.problem
        if side == "users":
            csr, n_cols, fixed, solve = p.by_user, p.n_items, self.v, self.u
            solved_w, fixed_w = p.row_weights, p.col_weights
        elif side == "items":
            csr, n_cols, fixed, solve = p.by_item, p.n_users, self.u, self.v
            solved_w, fixed_w = p.col_weights, p.row_weights
        else:
            raise InvalidParameterError(f"side must be 'users' or 'items', got {side!r}")
        # the conjugate-gradient solver starts from the current factor
        target = solve.copy() if p.solver == "cg" else np.empty_like(solve)
        terms = _core.wals_half_sweep(
            *csr,
            n_cols,
            fixed,
            target,
            solved_weights=solved_w,
            fixed_weights=fixed_w,
            solver=p.solver,
            cg_steps=p.cg_steps,
            **self._common(),
        )
        if side == "users":
            self.u = target
        else:
            self.v = target
        return LossTerms(*terms)

    def loss(self) -> LossTerms:
        p = self.problem
        terms = _core.wals_loss(
            *p.by_user,
            p.n_items,
            self.u,
            self.v,
            row_weights=p.row_weights,
            col_weights=p.col_weights,
            **self._common(),
        )
        return LossTerms(*terms)

    def factors(self) -> tuple[np.ndarray, np.ndarray]:
        return self.u, self.v

    def checkpoint(self) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
        u, v = self.u, self.v  # never written again: half-sweeps replace them
        return lambda: (u, v)


register_backend("cpu", CpuBackend)
