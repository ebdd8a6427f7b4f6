"""Batched dense linear algebra on an array module (numpy or CuPy).

:func:`cholesky_solve` solves a stack of symmetric positive definite systems
``A[i] x[i] = b[i]`` with one batched Cholesky factorisation followed by two
triangular solves per system, all issued for the whole stack at once:

* CuPy: ``cupy.linalg.cholesky`` on the stack (cuSOLVER ``potrfBatched``),
  then ``cupyx.lapack.potrs`` on the factors (cuSOLVER ``potrsBatched``, both
  triangular solves in one call). CuPy releases without a batched ``potrs``
  fall back to ``cupy.linalg.solve`` on the two triangular factors.
* numpy: ``numpy.linalg.cholesky`` on the stack (LAPACK ``potrf`` per matrix,
  looped in C), then the two triangular solves as ``numpy.linalg.solve`` on
  the stacked factors: numpy has no batched triangular solver, and scipy's
  batch support loops in Python. Exact either way; numpy is the reference
  path that CI runs, not the fast one.

A factorisation that meets a non-positive pivot raises
:class:`~embspace.errors.NumericalError` on both backends (CuPy is told to
check cuSOLVER's status with ``cupyx.errstate(linalg="raise")``).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from ..device import is_cupy
from ..errors import NumericalError

__all__ = ["cholesky_solve"]

_NOT_PD = (
    "a {k} x {k} system of the batch is not positive definite (singular normal "
    "equations): use regularization > 0 (or unobserved_weight > 0)"
)


def cholesky_solve(xp: ModuleType, a: Any, b: Any) -> Any:
    """Solve ``a[i] @ x[i] = b[i]`` for a stack of SPD matrices.

    Parameters
    ----------
    xp : module
        ``numpy`` or ``cupy``; ``a`` and ``b`` live there.
    a : array, shape (m, k, k)
        Symmetric positive definite matrices (only the lower triangle is read
        by the factorisation).
    b : array, shape (m, k)
        Right-hand sides.

    Returns
    -------
    array, shape (m, k)
        The solutions, in the dtype of ``a``.
    """
    m, k = b.shape
    if m == 0:
        return xp.empty((0, k), dtype=a.dtype)
    if is_cupy(xp):
        return _cholesky_solve_cupy(xp, a, b)
    try:
        low = np.linalg.cholesky(a)
    except np.linalg.LinAlgError as exc:
        raise NumericalError(_NOT_PD.format(k=k)) from exc
    y = np.linalg.solve(low, b[..., None])
    return np.linalg.solve(np.swapaxes(low, -1, -2), y)[..., 0]


def _cholesky_solve_cupy(xp: ModuleType, a: Any, b: Any) -> Any:  # pragma: no cover - needs a GPU
    import cupyx
    import cupyx.lapack

    k = b.shape[1]
    with cupyx.errstate(linalg="raise"):
        try:
            low = xp.linalg.cholesky(a)
        except np.linalg.LinAlgError as exc:
            raise NumericalError(_NOT_PD.format(k=k)) from exc
        potrs = getattr(cupyx.lapack, "potrs", None)
        if potrs is not None:
            return potrs(low, xp.ascontiguousarray(b), lower=True)
    y = xp.linalg.solve(low, b[..., None])
    return xp.linalg.solve(xp.swapaxes(low, -1, -2), y)[..., 0]
