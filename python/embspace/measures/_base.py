"""What every measure shares: the result type, input checks and the small
linear algebra they are built on (written against an array module ``xp``,
numpy or CuPy, in float64). The registry of measures is :mod:`.registry`."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from ..device import to_numpy
from ..errors import (
    EmbspaceWarning,
    InvalidParameterError,
    NonFiniteError,
    NumericalError,
    ShapeMismatchError,
)

__all__ = ["MeasureResult"]


@dataclass
class MeasureResult:
    """The outcome of one measure on two aligned matrices.

    ``score`` is the headline number (a similarity unless the measure's doc says
    otherwise), ``details`` a JSON-friendly dict of everything else (stdev, all
    canonical correlations, matchings, ...), and ``per_entity`` an optional
    length-n float64 array (one value per row) for measures defined per entity.
    """

    name: str
    score: float
    details: dict[str, Any] = field(default_factory=dict)
    per_entity: np.ndarray | None = None

    def __repr__(self) -> str:
        extra = "" if self.per_entity is None else f", per_entity[{len(self.per_entity)}]"
        return f"MeasureResult({self.name}: {self.score:.6g}{extra})"


# ---------------------------------------------------------------- input checks
def as_pair(
    A: Any,
    B: Any,
    xp: ModuleType = np,
    *,
    equal_d: bool = False,
    min_n: int = 2,
    name: str = "measure",
    keep_float32: bool = False,
) -> tuple[Any, Any]:
    """``A`` and ``B`` as float64 arrays of ``xp``, checked: 2-D, the same number
    of rows (at least ``min_n``), at least one column, the same number of columns
    when ``equal_d``, every value finite. ``keep_float32``: a float32 input is
    checked and returned as it is (for a caller that computes in float32, which
    then saves two copies of the same values)."""
    A = as_float64(A, xp, name, keep_float32=keep_float32)
    B = as_float64(B, xp, name, keep_float32=keep_float32)
    check_shapes(tuple(A.shape), tuple(B.shape), equal_d=equal_d, min_n=min_n, name=name)
    check_finite(A, xp, "A", name)
    check_finite(B, xp, "B", name)
    return A, B


def as_float64(X: Any, xp: ModuleType, name: str, *, keep_float32: bool = False) -> Any:
    """``X`` as a float64 array of ``xp`` (a float32 ndarray kept as it is with
    ``keep_float32``); an InvalidParameterError when it is not numeric."""
    if keep_float32 and type(X) is xp.ndarray and X.dtype == xp.float32:
        return X
    try:
        return xp.asarray(X, dtype=xp.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"{name}: A and B must be numeric n x d arrays ({exc})"
        ) from None


def check_shapes(
    shape_a: tuple[int, ...],
    shape_b: tuple[int, ...],
    *,
    equal_d: bool = False,
    min_n: int = 2,
    name: str = "measure",
) -> None:
    """The shape checks of :func:`as_pair`."""
    for side, shape in (("A", shape_a), ("B", shape_b)):
        if len(shape) != 2:
            raise ShapeMismatchError(f"{name}: {side} must be 2-D (n x d), got shape {shape}")
        if shape[1] == 0:
            raise ShapeMismatchError(f"{name}: {side} has no columns")
    if shape_a[0] != shape_b[0]:
        raise ShapeMismatchError(
            f"{name}: A and B must have the same rows (aligned entities), got {shape_a[0]} and {shape_b[0]}"
        )
    if shape_a[0] < min_n:
        raise InvalidParameterError(f"{name} needs at least {min_n} entities, got {shape_a[0]}")
    if equal_d and shape_a[1] != shape_b[1]:
        raise ShapeMismatchError(
            f"{name} needs the same dimension on both sides, got d = {shape_a[1]} and {shape_b[1]}"
        )


def check_finite(X: Any, xp: ModuleType, side: str, name: str) -> None:
    """A NonFiniteError when ``X`` holds a NaN or an infinity."""
    if not bool(xp.isfinite(X).all()):
        raise NonFiniteError(f"{name}: {side} contains NaN or infinite values")


def centered(X: Any) -> Any:
    """``X`` minus its column means."""
    return X - X.mean(axis=0, keepdims=True)


def orthonormal_basis(Xc: Any, xp: ModuleType, side: str, name: str) -> tuple[Any, int]:
    """An orthonormal basis (n x r) of the column space of the centred ``Xc`` and
    its numerical rank r, from a QR factorisation and the SVD of R (singular
    values below ``max(n, d) * eps * s_max`` count as zero). Warns when r < d."""
    basis, rank = basis_and_rank(Xc, xp, side, name)
    warn_rank(rank, Xc.shape[1], side, name, stacklevel=4)
    return basis, rank


def basis_and_rank(Xc: Any, xp: ModuleType, side: str, name: str) -> tuple[Any, int]:
    """:func:`orthonormal_basis` without its warning."""
    n, d = Xc.shape
    Q, R = xp.linalg.qr(Xc)
    U, s, _ = xp.linalg.svd(R)
    s_max = float(s[0]) if s.shape[0] else 0.0
    if s_max == 0.0:
        raise NumericalError(f"{name}: {side} has no variance (every row is the same)")
    tol = max(n, d) * np.finfo(np.float64).eps * s_max
    rank = int((s > tol).sum())
    return Q @ U[:, :rank], rank


def warn_rank(rank: int, d: int, side: str, name: str, *, stacklevel: int) -> None:
    """Warn when a centred side of ``d`` columns has rank ``rank < d``."""
    if rank < d:
        warnings.warn(
            f"{name}: {side} is rank deficient (rank {rank} < d = {d} after centring); "
            f"using its {rank}-dimensional column space",
            EmbspaceWarning,
            stacklevel=stacklevel,
        )


def warn_if_few_rows(n: int, d_a: int, d_b: int, name: str) -> None:
    """Warn when n <= d: with that few entities the canonical correlations are 1
    whatever the embeddings."""
    if n <= max(d_a, d_b):
        warnings.warn(
            f"{name}: n = {n} entities for d = {max(d_a, d_b)} dimensions (n <= d); "
            "canonical correlations are trivially 1 and mean nothing",
            EmbspaceWarning,
            stacklevel=3,
        )


def singular_values(M: Any, xp: ModuleType) -> Any:
    """Singular values of ``M``, descending."""
    return xp.linalg.svd(M, compute_uv=False)


def host(x: Any) -> np.ndarray:
    """A numpy copy of a numpy or CuPy array."""
    return to_numpy(x)


def floats(x: Any) -> list[float]:
    """A plain list of Python floats (JSON-friendly)."""
    return [float(v) for v in host(x).ravel()]


def population_stdev(x: np.ndarray) -> float:
    """Standard deviation with ddof = 0."""
    return float(np.std(x)) if len(x) else float("nan")
