"""Unit matching: how well each unit (column) of A is matched by a unit of B."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from ._base import MeasureResult, host, population_stdev
from .sides import DenseSide, dense_pair, takes_sides, warn_constant_units

__all__ = ["unit_correlations", "unitmatch"]


def unit_correlations(A: Any, B: Any, xp: ModuleType = np) -> np.ndarray:
    """The d_a x d_b Pearson correlations between the columns of A and of B
    (a constant column correlates 0 with everything, with a warning)."""
    sa, sb = dense_pair(A, B, xp, min_n=2, name="unitmatch")
    return _correlations(sa, sb)


def _correlations(sa: DenseSide, sb: DenseSide) -> np.ndarray:
    ua, constant_a = sa.unit_columns()
    ub, constant_b = sb.unit_columns()
    warn_constant_units(constant_a + constant_b, "unitmatch")
    return np.clip(host(ua.T @ ub), -1.0, 1.0)


@takes_sides
def unitmatch(
    A: Any, B: Any, *, replacement: bool = True, absolute: bool = False, xp: ModuleType = np
) -> MeasureResult:
    """Mean correlation of each unit of A with its matched unit of B.

    With ``replacement=True`` each unit of A takes the unit of B it correlates
    with most (several may take the same one); with ``replacement=False`` the
    matching is one-to-one and maximises the total correlation (Hungarian,
    scipy's ``linear_sum_assignment`` on the d x d matrix, on the host).
    ``absolute=True`` matches on |correlation|, so a sign flip counts as a match.
    Score: the mean matched correlation; details: its population stdev, the
    matched unit of B per unit of A and the matched values. Range [-1, 1]
    ([0, 1] with ``absolute=True``).

    Invariances: translation, per-column scaling, column permutation (and sign
    flips with ``absolute=True``). Not invariant to rotations: it measures
    whether the axes themselves mean the same thing.

    Cost: O(n d^2) time for the correlations, O(d^3) for the assignment.
    Needs the same d on both sides.
    """
    sa, sb = dense_pair(A, B, xp, equal_d=True, min_n=2, name="unitmatch")
    return match_units(_correlations(sa, sb), replacement=replacement, absolute=absolute)


def match_units(C: np.ndarray, *, replacement: bool, absolute: bool) -> MeasureResult:
    """The unit match of a d x d matrix ``C`` of unit correlations (row i: unit
    i of A): each unit's best partner (``replacement``) or a one-to-one
    assignment, on ``|C|`` with ``absolute``; shared by the in-memory and the
    streamed measure."""
    target = np.abs(C) if absolute else C
    if replacement:
        matches = np.argmax(target, axis=1)
    else:
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(target, maximize=True)
        matches = cols[np.argsort(rows)]
    values = target[np.arange(target.shape[0]), matches]
    return MeasureResult(
        "unitmatch",
        float(values.mean()),
        {
            "stdev": population_stdev(values),
            "matches": [int(j) for j in matches],
            "unit_scores": [float(v) for v in values],
            "replacement": bool(replacement),
            "absolute": bool(absolute),
        },
    )
