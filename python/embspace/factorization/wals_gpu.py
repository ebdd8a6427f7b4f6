"""The ``"gpu"`` WALS backend: :class:`embspace.gpu.wals_xp.WalsXp` behind the
:class:`~embspace.factorization.backends.WalsBackend` contract.

``WALS(device="gpu")`` builds the same :class:`~embspace.factorization.backends.WalsProblem`
as on the CPU (same weights, same initial factors for a seed), and this backend runs
its half-sweeps on the array module (CuPy on a device; numpy inside
:func:`embspace.gpu.numpy_device`).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np

from ..device import module_for, to_numpy
from ..gpu.wals_xp import WalsXp
from .backends import LossTerms, WalsBackend, WalsProblem, register_backend

__all__ = ["XpWalsBackend", "gpu_backend"]


class XpWalsBackend(WalsBackend):
    """Half-sweeps on ``xp``; the factors stay on the device until :meth:`factors`."""

    def __init__(self, problem: WalsProblem, xp: ModuleType) -> None:
        super().__init__(problem)
        self.state = WalsXp(
            problem.by_user,
            problem.by_item,
            problem.user_factors,
            problem.item_factors,
            unobserved_weight=problem.unobserved_weight,
            regularization=problem.regularization,
            row_weights=problem.row_weights,
            col_weights=problem.col_weights,
            scale_regularization=problem.regularization_scaling == "count",
            solver=problem.solver,
            cg_steps=problem.cg_steps,
            xp=xp,
        )

    def half_sweep(self, side: str) -> LossTerms:
        return LossTerms(*self.state.half_sweep(side))

    def loss(self) -> LossTerms:
        return LossTerms(*self.state.loss_terms())

    def factors(self) -> tuple[np.ndarray, np.ndarray]:
        return self.state.factors()

    def checkpoint(self) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
        """Copies of the factors on the device (no transfer per iteration);
        the half-sweeps write into the factors in place, never into these."""
        u, v = self.state.user_factors.copy(), self.state.item_factors.copy()
        return lambda: (
            np.ascontiguousarray(to_numpy(u), dtype=np.float32),
            np.ascontiguousarray(to_numpy(v), dtype=np.float32),
        )


def gpu_backend(problem: WalsProblem) -> XpWalsBackend:
    """The backend for ``device="gpu"`` (the array module of :func:`module_for`)."""
    return XpWalsBackend(problem, module_for("gpu")[1])


register_backend("gpu", gpu_backend)
