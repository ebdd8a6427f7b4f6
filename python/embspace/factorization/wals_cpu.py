"""The ``"cpu"`` WALS backend: the Rust core, one call per half-sweep with the
GIL released (Ctrl-C stops it within a row). Results are bit-identical for any
``num_threads``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _core
from ..errors import InvalidParameterError
from .aligned import as_line_aligned, line_aligned_empty
from .backends import LossTerms, WalsBackend, WalsProblem, register_backend

__all__ = ["CpuBackend"]

#: A half-sweep's loss as the core returns it: the terms (observed,
#: unobserved, regularization) or, with ``loss="total"``, only their sum.
_CoreLoss = tuple[float, float, float] | float


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
    ratings for its starting loss.

    :meth:`start_total` and :meth:`half_sweep_total` (what a fit records)
    take each row's loss from the normal equations its solve has formed
    (``loss="total"`` of the core), so no pass over a row's ratings follows
    its solve; :meth:`start` and :meth:`half_sweep` sum the terms over the
    ratings."""

    def __init__(self, problem: WalsProblem) -> None:
        super().__init__(problem)
        # on cache lines (see .aligned), as the starting factors are drawn
        self.u = as_line_aligned(problem.user_factors)
        self.v = as_line_aligned(problem.item_factors)
        # the users half-sweep solved by start(): (new user factors, its loss
        # as the core returned it: the terms, or only the total)
        self._pending: tuple[np.ndarray, _CoreLoss] | None = None

    def _common(self) -> dict[str, Any]:
        p = self.problem
        return {
            "unobserved_weight": p.unobserved_weight,
            "regularization": p.regularization,
            "reg_scaling": p.regularization_scaling,
            "num_threads": p.num_threads,
        }

    def _sweep(self, side: str, target: np.ndarray, core: Callable[..., Any], loss: str) -> Any:
        """``core`` (a half-sweep of the Rust core) on ``side``, solving into
        ``target``, its loss by ``"terms"`` or as a ``"total"``."""
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
            loss=loss,
            **self._common(),
        )

    def start(self) -> LossTerms:
        before = self._start("terms")
        assert not isinstance(before, float)  # the core returns what was asked
        return LossTerms(*before)

    def start_total(self) -> float:
        before = self._start("total")
        assert isinstance(before, float)
        return before

    def _start(self, loss: str) -> _CoreLoss:
        self._pending = None
        target = line_aligned_empty(self.u.shape)
        target[...] = self.u  # the starting point, whose loss is wanted
        before, after = self._sweep("users", target, _core.wals_half_sweep_from, loss)
        self._pending = (target, after)
        return before

    def half_sweep(self, side: str) -> LossTerms:
        out = self._half_sweep(side, "terms")
        # the pending users half-sweep of start_total() has only its total
        return self.loss() if isinstance(out, float) else LossTerms(*out)

    def half_sweep_total(self, side: str) -> float:
        out = self._half_sweep(side, "total")
        return out if isinstance(out, float) else LossTerms(*out).total

    def _half_sweep(self, side: str, loss: str) -> _CoreLoss:
        if side not in ("users", "items"):
            raise InvalidParameterError(f"side must be 'users' or 'items', got {side!r}")
        pending, self._pending = self._pending, None
        if pending is not None and side == "users":
            self.u = pending[0]
            return pending[1]
        solve = self.u if side == "users" else self.v
        # the conjugate-gradient solver starts from the current factor
        target = line_aligned_empty(solve.shape)
        if self.problem.solver == "cg":
            target[...] = solve
        out = self._sweep(side, target, _core.wals_half_sweep, loss)
        if side == "users":
            self.u = target
        else:
            self.v = target
        return out

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
