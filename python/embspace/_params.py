"""Checks of scalar parameters, shared by every public entry point.

A parameter of the wrong type (``k="10"``, ``threshold="high"``, a bool where
a count is expected) or outside its range is an
:class:`~embspace.errors.InvalidParameterError` naming the parameter, and a NaN
or infinite number a :class:`~embspace.errors.NonFiniteError`, raised where the
parameter is received, never a ``ValueError`` or ``TypeError`` from deep inside
numpy. (The NaN error is also an ``InvalidParameterError``: a scalar parameter
that is not finite is both.) Strings are never converted: a number must be given as a number (the
command line parses its arguments before they get here).
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

from .errors import InvalidParameterError, NonFiniteError

__all__ = [
    "NonFiniteParameterError",
    "check_choice",
    "check_int",
    "check_number",
    "check_path",
]


class NonFiniteParameterError(NonFiniteError, InvalidParameterError):
    """A scalar parameter is NaN or infinite (both kinds of error at once)."""


def _shown(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def check_int(value: Any, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an ``int`` in ``[minimum, maximum]`` (either bound optional).

    Python and numpy integers are accepted; bools, floats (even ``10.0``),
    strings and anything else are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidParameterError(f"{name} must be an integer, got {_shown(value)}")
    v = int(value)
    if minimum is not None and v < minimum:
        raise InvalidParameterError(f"{name} must be >= {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise InvalidParameterError(f"{name} must be <= {maximum}, got {v}")
    return v


def check_number(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite ``float`` between ``low`` and ``high``.

    The bounds are inclusive unless ``low_open`` / ``high_open``. Python and
    numpy real numbers are accepted; bools, complex numbers and strings are
    refused (:class:`~embspace.errors.InvalidParameterError`), NaN and
    infinities are a :class:`NonFiniteParameterError` (a
    :class:`~embspace.errors.NonFiniteError` and an ``InvalidParameterError``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(f"{name} must be a real number, got {_shown(value)}")
    v = float(value)
    if not math.isfinite(v):
        raise NonFiniteParameterError(f"{name} must be finite, got {v}")
    below = low is not None and (v <= low if low_open else v < low)
    above = high is not None and (v >= high if high_open else v > high)
    if below or above:
        raise InvalidParameterError(
            f"{name} must {_range_text(low, high, low_open, high_open)}, got {v:g}"
        )
    return v


def _range_text(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        return f"lie in {left}{low:g}, {high:g}{right}"
    if low is not None:
        return f"be {'>' if low_open else '>='} {low:g}"
    return f"be {'<' if high_open else '<='} {high:g}"


def check_path(value: Any, name: str) -> Path:
    """``value`` (a ``str`` or ``os.PathLike``) as a :class:`~pathlib.Path`."""
    if not isinstance(value, (str, os.PathLike)) or (isinstance(value, str) and not value):
        raise InvalidParameterError(f"{name} must be a file path, got {_shown(value)}")
    return Path(value)


def check_choice(value: Any, name: str, choices: Collection[str]) -> str:
    """``value`` if it is one of the strings ``choices``, else an
    :class:`~embspace.errors.InvalidParameterError` listing them."""
    if not isinstance(value, str) or value not in choices:
        raise InvalidParameterError(
            f"{name} must be one of {', '.join(map(repr, choices))}, got {_shown(value)}"
        )
    return value
