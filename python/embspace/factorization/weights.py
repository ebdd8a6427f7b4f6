"""Row and column weights of WALS (TensorFlow ``WALSModel`` semantics).

The weight of an observed entry (i, j) is ``w0 + R_i C_j``; these functions
build R (rows, users) and C (columns, items) from the estimator's options.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import InvalidParameterError, NonFiniteError, ShapeMismatchError

__all__ = ["COL_WEIGHT_KINDS", "column_weights", "row_weights", "validate_weights"]

#: Named column weightings: none (all ones), "log" C_j = n_j^-exponent, "linear" C_j = factor / n_j.
COL_WEIGHT_KINDS = ("log", "linear")


def validate_weights(w: Any, n: int, name: str) -> np.ndarray:
    """``w`` as a float32 vector of length ``n``, finite and >= 0, or a typed error."""
    arr = np.asarray(w, dtype=np.float64)
    if arr.shape != (n,):
        raise ShapeMismatchError(f"{name} must have shape ({n},), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise NonFiniteError(f"{name} contain NaN or infinite values")
    if (arr < 0).any():
        raise InvalidParameterError(f"{name} must be >= 0 (got {arr.min():g})")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _counts(matrix: sp.csr_matrix, axis: int) -> np.ndarray:
    """Number of stored ratings per row (axis=1) or per column (axis=0)."""
    if axis == 1:
        return np.diff(matrix.indptr).astype(np.float64)
    return np.bincount(matrix.indices, minlength=matrix.shape[1]).astype(np.float64)


def _named(kind: str, counts: np.ndarray, exponent: float, factor: float, name: str) -> np.ndarray:
    # As Google's WALS sample: frac = 1 / n_j with 0 for empty lines, then
    # "log": frac ** exponent, "linear": factor * frac.
    frac = np.zeros_like(counts)
    np.divide(1.0, counts, out=frac, where=counts > 0)
    if kind == "log":
        if not np.isfinite(exponent) or exponent < 0:
            raise InvalidParameterError(f"{name} exponent must be finite and >= 0, got {exponent}")
        w = np.where(counts > 0, frac**exponent, 0.0)
    elif kind == "linear":
        if not np.isfinite(factor) or factor < 0:
            raise InvalidParameterError(f"{name} factor must be finite and >= 0, got {factor}")
        w = factor * frac
    else:
        raise InvalidParameterError(
            f"{name} must be None, one of {COL_WEIGHT_KINDS} or an array, got {kind!r}"
        )
    return w.astype(np.float32)


def column_weights(
    spec: Any, matrix: sp.csr_matrix, exponent: float = 0.08, factor: float = 130.0
) -> np.ndarray | None:
    """C (n_items,) from ``spec``: None (all ones), "log", "linear" or an array."""
    if spec is None:
        return None
    if isinstance(spec, str):
        return _named(spec, _counts(matrix, 0), exponent, factor, "col_weights")
    return validate_weights(spec, matrix.shape[1], "col_weights")


def row_weights(
    spec: Any, matrix: sp.csr_matrix, exponent: float = 0.08, factor: float = 130.0
) -> np.ndarray | None:
    """R (n_users,) from ``spec``: None (all ones), "log", "linear" or an array."""
    if spec is None:
        return None
    if isinstance(spec, str):
        return _named(spec, _counts(matrix, 1), exponent, factor, "row_weights")
    return validate_weights(spec, matrix.shape[0], "row_weights")
