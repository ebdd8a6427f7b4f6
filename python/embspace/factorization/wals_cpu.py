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
    written again and an interrupted half-sweep changes nothing.

    :meth:`start` solves the first users half-sweep in the same pass as the
    loss of the starting point (each row's terms at its starting factor are
    taken from the entries the solve gathers), and the next
    ``half_sweep("users")`` returns that result: a fit pays no pass over the
    ratings for its starting loss."""

    def __init__(self, problem: WalsProblem) -> None:
        super().__init__(problem)
        self.u = np.ascontiguousarray(problem.user_factors, dtype=np.float32)
        self.v = np.ascontiguousarray(problem.item_factors, dtype=np.float32)
        # the users half-sweep solved by start(): (new user factors, loss terms)
        self._pending: tuple[np.ndarray, LossTerms] | None = None

    def _common(self) -> dict[str, Any]:
        p = self.problem
        return {
            "unobserved_weight": p.unobserved_weight,
            "regularization": p.regularization,
            "reg_scaling": p.regularization_scaling,
            "num_threads": p.num_threads,
        }

    def _sweep(self, side: str, target: np.ndarray, core: Callable[..., Any]) -> Any:
        """``core`` (a half-sweep of the Rust core) on ``side``, solving into ``target``."""
        p = self.problem
        if side == "users":
            csr, n_cols, fixed = p.by_user, p.n_items, self.v
            solved_w, fixed_w = p.row_weights, p.col_weights
        else:
            csr, n_cols, fixed = p.by_item, p.n_users, self.u
            solved_w, fixed_w = p.col_weights, p.row_weights
        return core(
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

    def start(self) -> LossTerms:
        self._pending = None
        target = self.u.copy()  # the starting point, whose loss is wanted
        before, after = self._sweep("users", target, _core.wals_half_sweep_from)
        self._pending = (target, LossTerms(*after))
        return LossTerms(*before)

    def half_sweep(self, side: str) -> LossTerms:
        if side not in ("users", "items"):
            raise InvalidParameterError(f"side must be 'users' or 'items', got {side!r}")
        pending, self._pending = self._pending, None
        if pending is not None and side == "users":
            self.u = pending[0]
            return pending[1]
        solve = self.u if side == "users" else self.v
        # the conjugate-gradient solver starts from the current factor
        target = solve.copy() if self.problem.solver == "cg" else np.empty_like(solve)
        terms = self._sweep(side, target, _core.wals_half_sweep)
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
