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
) -> tuple[Any, Any]:
    """``A`` and ``B`` as float64 arrays of ``xp``, checked: 2-D, the same number
    of rows (at least ``min_n``), at least one column, the same number of columns
    when ``equal_d``, every value finite."""
    try:
        A = xp.asarray(A, dtype=xp.float64)
        B = xp.asarray(B, dtype=xp.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"{name}: A and B must be numeric n x d arrays ({exc})"
        ) from None
    for side, X in (("A", A), ("B", B)):
        if X.ndim != 2:
            raise ShapeMismatchError(
                f"{name}: {side} must be 2-D (n x d), got shape {tuple(X.shape)}"
            )
        if X.shape[1] == 0:
            raise ShapeMismatchError(f"{name}: {side} has no columns")
    if A.shape[0] != B.shape[0]:
        raise ShapeMismatchError(
            f"{name}: A and B must have the same rows (aligned entities), got {A.shape[0]} and {B.shape[0]}"
        )
    if A.shape[0] < min_n:
        raise InvalidParameterError(f"{name} needs at least {min_n} entities, got {A.shape[0]}")
    if equal_d and A.shape[1] != B.shape[1]:
        raise ShapeMismatchError(
            f"{name} needs the same dimension on both sides, got d = {A.shape[1]} and {B.shape[1]}"
        )
    for side, X in (("A", A), ("B", B)):
        if not bool(xp.isfinite(X).all()):
            raise NonFiniteError(f"{name}: {side} contains NaN or infinite values")
    return A, B


def centered(X: Any) -> Any:
    """``X`` minus its column means."""
    return X - X.mean(axis=0, keepdims=True)


def orthonormal_basis(Xc: Any, xp: ModuleType, side: str, name: str) -> tuple[Any, int]:
    """An orthonormal basis (n x r) of the column space of the centred ``Xc`` and
    its numerical rank r, from a QR factorisation and the SVD of R (singular
    values below ``max(n, d) * eps * s_max`` count as zero). Warns when r < d."""
    n, d = Xc.shape
    Q, R = xp.linalg.qr(Xc)
    U, s, _ = xp.linalg.svd(R)
    s_max = float(s[0]) if s.shape[0] else 0.0
    if s_max == 0.0:
        raise NumericalError(f"{name}: {side} has no variance (every row is the same)")
    tol = max(n, d) * np.finfo(np.float64).eps * s_max
    rank = int((s > tol).sum())
    if rank < d:
        warnings.warn(
            f"{name}: {side} is rank deficient (rank {rank} < d = {d} after centring); "
            f"using its {rank}-dimensional column space",
            EmbspaceWarning,
            stacklevel=3,
        )
    return Q @ U[:, :rank], rank


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
