"""Row and column weights of WALS (TensorFlow ``WALSModel`` semantics).

An observed entry (i, j) has weight ``w0 + R_i C_j``; these functions build
``R`` and ``C`` from the estimator's options. Options:

- ``None`` or ``"none"``: all ones (``R_i C_j = 1``);
- ``"log"`` (columns only): ``C_j = n_j ** -exponent`` with ``n_j`` the number
  of ratings of item j -- the reference sample's "log ratings" weighting
  (a power law despite the name); items without ratings get 0;
- ``"linear"`` (columns only): ``C_j = factor / n_j`` (0 for unrated items);
- an array of ``n`` finite, non-negative values, used as given.

TensorFlow's unweighted mode (every weight ``w0``, plain ALS) is
``col_weights=numpy.zeros(n_items)``. The result is a float32 array, or
``None`` for all ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._params import check_number
from ..errors import InvalidParameterError, NonFiniteError, ShapeMismatchError

__all__ = ["WEIGHT_OPTIONS", "col_weights", "row_weights", "validate_weights"]

#: The string options of ``col_weights`` (``row_weights`` takes ``"none"`` only).
WEIGHT_OPTIONS = ("none", "log", "linear")


def validate_weights(values: Any, n: int, name: str) -> np.ndarray:
    """``values`` as a float32 array of length ``n``: finite and non-negative,
    or a typed error naming ``name``."""
    try:
        w = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            f"{name} must be numbers, got {type(values).__name__}"
        ) from None
    if w.ndim != 1 or w.shape[0] != n:
        raise ShapeMismatchError(f"{name} must have one value per row ({n}), got shape {w.shape}")
    bad = ~np.isfinite(w)
    if bad.any():
        raise NonFiniteError(f"{name}[{int(np.flatnonzero(bad)[0])}] is not finite")
    if (w < 0).any():
        p = int(np.flatnonzero(w < 0)[0])
        raise InvalidParameterError(f"{name}[{p}] = {w[p]} is negative; weights must be >= 0")
    w32 = np.ascontiguousarray(w, dtype=np.float32)
    if not np.isfinite(w32).all():
        raise NonFiniteError(f"{name} has values beyond the float32 range")
    return w32


def _check_scalar(value: Any, name: str, *, nonnegative: bool) -> float:
    return check_number(value, name, low=0.0 if nonnegative else None)


def col_weights(
    option: Any, counts: np.ndarray, *, exponent: float = 0.08, factor: float = 130.0
) -> np.ndarray | None:
    """Column weights ``C`` for items with ``counts[j]`` ratings each (see the
    module docstring for the options). ``exponent`` applies to ``"log"``,
    ``factor`` to ``"linear"``."""
    counts = np.asarray(counts)
    n = counts.shape[0]
    if option is None or (isinstance(option, str) and option == "none"):
        return None
    if isinstance(option, str):
        rated = counts > 0
        out = np.zeros(n, dtype=np.float64)
        if option == "log":
            e = _check_scalar(exponent, "col_weight_exponent", nonnegative=False)
            out[rated] = np.power(counts[rated].astype(np.float64), -e)
        elif option == "linear":
            f = _check_scalar(factor, "col_weight_factor", nonnegative=True)
            out[rated] = f / counts[rated].astype(np.float64)
        else:
            raise InvalidParameterError(
                f"col_weights must be None, one of {WEIGHT_OPTIONS} or an array, got {option!r}"
            )
        return validate_weights(out, n, "col_weights")
    return validate_weights(option, n, "col_weights")


def row_weights(option: Any, n: int) -> np.ndarray | None:
    """Row weights ``R`` for ``n`` rows: ``None``/``"none"`` (ones) or an array."""
    if option is None or (isinstance(option, str) and option == "none"):
        return None
    if isinstance(option, str):
        raise InvalidParameterError(f"row_weights must be None, 'none' or an array, got {option!r}")
    return validate_weights(option, n, "row_weights")
