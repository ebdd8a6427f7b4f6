"""The measure registry: every measure by name, with what it can do and what it costs.

One :data:`MEASURES` (an :class:`embspace._registry.Registry` of
:class:`Measure`) is the single list of measures that :func:`~embspace.compare`,
:class:`~embspace.Sweep`, the CLI and the TUI read. Each entry carries its
capabilities, so a caller can decide before computing anything:

- ``family`` / ``neighbor_based``: ``"neighbors"`` measures read exact k-NN
  tables (and share them, see :func:`~embspace.compare`'s ``knn=``),
  ``"dense"`` ones the matrices on an array module;
- ``needs_equal_d``: both sides must have the same dimension;
- ``cost``: the documented big-O of its time, and ``cost_tier``, a
  :class:`CostTier` (an ``int``) that orders measures by how their time grows
  with the number of entities n, so a UI can sort them or warn.

:func:`check_measures` validates a list of names, and with the two dimensions
refuses the measures that cannot apply, before any work starts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np

from .._registry import Registry
from ..errors import InvalidParameterError, ShapeMismatchError
from ._base import MeasureResult
from .canonical import cca, pwcca, svcca
from .kernel_alignment import cka, cka_debiased
from .neighborhood import mutual_knn, neighbors, overlap_curve
from .rsa import rsa
from .shape import procrustes
from .units import unitmatch

__all__ = [
    "DEFAULT_MEASURES",
    "FAMILIES",
    "MEASURES",
    "CostTier",
    "Measure",
    "check_measures",
    "get_measure",
    "register_measure",
]

#: The measures of the reference notebook, the default of compare(), Sweep, CLI and TUI.
DEFAULT_MEASURES: tuple[str, ...] = ("neighbors", "cca", "unitmatch", "cka")

#: The families of measures: what a measure function reads.
FAMILIES = ("dense", "neighbors")


class CostTier(IntEnum):
    """How a measure's time grows with the number of entities n (d and k fixed).

    An ``int``, so tiers compare and sort: a larger tier is dearer on large inputs.

    - ``SAMPLE`` (1): bounded by a sample size, independent of n (``rsa``);
    - ``LINEAR`` (2): linear in n, O(n d^2) thin products and factorisations
      (the dense measures);
    - ``QUADRATIC`` (3): quadratic in n, O(n^2 d) exact k-NN tables (the
      neighbor measures; shared by all of them in one comparison). A UI may
      warn before running these on hundreds of thousands of entities.
    """

    SAMPLE = 1
    LINEAR = 2
    QUADRATIC = 3


@dataclass(frozen=True)
class Measure:
    """A registered measure.

    Attributes
    ----------
    name : str
    function : callable
        ``function(A, B, **options) -> MeasureResult`` on two aligned matrices.
    family : ``"dense"`` or ``"neighbors"``
        ``"neighbors"`` measures take k-NN tables (``k``, ``metric``,
        ``tables``), ``"dense"`` ones an array module ``xp``.
    needs_equal_d : bool
        Both sides must have the same dimension (``unitmatch``, ``procrustes``).
    description : str
        One line.
    cost : str
        The documented big-O of its time (n entities, d dimensions, k neighbors).
    cost_tier : CostTier
        A comparable tier of ``cost``: see :class:`CostTier`.
    """

    name: str
    function: Callable[..., MeasureResult]
    family: str
    needs_equal_d: bool
    description: str
    cost: str = "not documented"
    cost_tier: CostTier = CostTier.LINEAR

    @property
    def neighbor_based(self) -> bool:
        """True for the measures that read k-NN tables (family ``"neighbors"``)."""
        return self.family == "neighbors"


#: Every measure by name, in registration order.
MEASURES: Registry[Measure] = Registry("measure")


def _documented_cost(function: Callable[..., Any]) -> str | None:
    """The first sentence after ``Cost:`` in ``function``'s docstring, if any."""
    doc = " ".join((function.__doc__ or "").split())
    match = re.search(r"Cost:\s*(.+?)(?:\.\s|\.$|$)", doc)
    return match.group(1).strip() if match else None


def register_measure(
    name: str,
    function: Callable[..., MeasureResult],
    *,
    family: str = "dense",
    needs_equal_d: bool = False,
    description: str | None = None,
    cost: str | None = None,
    cost_tier: int | None = None,
    replace: bool = False,
) -> Measure:
    """Add ``function`` to :data:`MEASURES` under ``name`` and return its :class:`Measure`.

    A name already registered is refused unless ``replace=True``.
    ``description`` defaults to the first line of the docstring, ``cost`` to
    the sentence after ``Cost:`` in it (else ``"not documented"``), and
    ``cost_tier`` to :attr:`CostTier.QUADRATIC` for the ``"neighbors"`` family
    (exact k-NN tables) and :attr:`CostTier.LINEAR` for ``"dense"``.
    """
    if family not in FAMILIES:
        raise InvalidParameterError(f"family must be 'dense' or 'neighbors', got {family!r}")
    if not callable(function):
        raise InvalidParameterError(f"a measure must be callable, got {type(function).__name__}")
    if description is None:
        description = (function.__doc__ or name).strip().splitlines()[0]
    if cost is None:
        cost = _documented_cost(function) or "not documented"
    if cost_tier is None:
        cost_tier = CostTier.QUADRATIC if family == "neighbors" else CostTier.LINEAR
    try:
        tier = CostTier(cost_tier)
    except ValueError:
        raise InvalidParameterError(
            f"cost_tier must be one of {[int(t) for t in CostTier]} (CostTier), got {cost_tier!r}"
        ) from None
    spec = Measure(name, function, family, bool(needs_equal_d), description, cost, tier)
    return MEASURES.register(name, spec, replace=replace)


def get_measure(name: str) -> Measure:
    """The registered measure ``name``; an :class:`~embspace.errors.InvalidParameterError`
    lists the known names otherwise."""
    return MEASURES.lookup(name)


def _dimension(d: Any) -> int:
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise InvalidParameterError(f"dims must be two positive integers, got a {d!r}")
    return int(d)


def check_measures(
    names: str | Iterable[str], *, dims: tuple[int, int] | None = None
) -> tuple[str, ...]:
    """Validate measure names, before any work; return them as a tuple.

    ``names`` is one name or an iterable of names: it must be non-empty,
    without repeats, and every name registered in :data:`MEASURES`, else an
    :class:`~embspace.errors.InvalidParameterError` that lists the known
    measures. With ``dims = (d_a, d_b)``, the dimensions of the two sides to
    be compared, a measure that cannot apply to them (``needs_equal_d`` with
    ``d_a != d_b``, e.g. ``unitmatch``) raises a
    :class:`~embspace.errors.ShapeMismatchError` naming it.
    """
    if isinstance(names, str):
        names = (names,)
    try:
        out = tuple(names)
    except TypeError:
        raise InvalidParameterError(
            f"measures must be a name or a sequence of names, got {type(names).__name__}"
        ) from None
    if not out:
        raise InvalidParameterError("no measure requested: name at least one measure")
    bad = [n for n in out if not isinstance(n, str)]
    if bad:
        raise InvalidParameterError(f"measure names must be strings, got {bad!r}")
    if len(set(out)) != len(out):
        raise InvalidParameterError(f"measures repeat a name: {list(out)}")
    unknown = [n for n in out if n not in MEASURES]
    if unknown:
        label = "measure" if len(unknown) == 1 else "measures"
        raise InvalidParameterError(
            f"unknown {label} {', '.join(map(repr, unknown))}; known: {', '.join(MEASURES)}"
        )
    if dims is not None:
        try:
            d_a, d_b = dims
        except (TypeError, ValueError):
            raise InvalidParameterError(
                f"dims must be the two dimensions (d_a, d_b), got {dims!r}"
            ) from None
        d_a, d_b = _dimension(d_a), _dimension(d_b)
        if d_a != d_b:
            refused = [n for n in out if MEASURES[n].needs_equal_d]
            if refused:
                raise ShapeMismatchError(
                    f"measure(s) {', '.join(map(repr, refused))} need the same dimension "
                    f"on both sides, got d = {d_a} and {d_b}"
                )
    return out


_NEIGHBORS_COST = "O(n^2 d) for two exact k-NN tables (shared), then O(n k log k)"
for _name, _fn, _family, _equal_d, _cost, _tier in (
    ("neighbors", neighbors, "neighbors", False, _NEIGHBORS_COST, CostTier.QUADRATIC),
    ("mutual_knn", mutual_knn, "neighbors", False, _NEIGHBORS_COST, CostTier.QUADRATIC),
    (
        "overlap_curve",
        overlap_curve,
        "neighbors",
        False,
        "O(n^2 d) for two exact k-NN tables with K neighbors (shared), then O(n K^2)",
        CostTier.QUADRATIC,
    ),
    ("cca", cca, "dense", False, "O(n (d_a^2 + d_b^2 + d_a d_b))", CostTier.LINEAR),
    ("svcca", svcca, "dense", False, "O(n (d_a^2 + d_b^2 + d_a d_b))", CostTier.LINEAR),
    ("pwcca", pwcca, "dense", False, "O(n (d_a^2 + d_b^2 + d_a d_b))", CostTier.LINEAR),
    ("cka", cka, "dense", False, "O(n (d_a^2 + d_b^2 + d_a d_b))", CostTier.LINEAR),
    (
        "cka_debiased",
        cka_debiased,
        "dense",
        False,
        "O(n (d_a^2 + d_b^2 + d_a d_b))",
        CostTier.LINEAR,
    ),
    ("procrustes", procrustes, "dense", True, "O(n d^2 + d^3)", CostTier.LINEAR),
    ("unitmatch", unitmatch, "dense", True, "O(n d^2 + d^3)", CostTier.LINEAR),
    ("rsa", rsa, "dense", False, "O(m^2 (d + log m)) on a sample of m entities", CostTier.SAMPLE),
):
    register_measure(
        _name, _fn, family=_family, needs_equal_d=_equal_d, cost=_cost, cost_tier=_tier
    )
del _name, _fn, _family, _equal_d, _cost, _tier
