"""Orthogonal Procrustes similarity and the angular shape distance
(Williams et al. 2021, "Generalized shape metrics on neural representations")."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from ..errors import NumericalError
from ._base import MeasureResult, as_pair, centered, singular_values

__all__ = ["procrustes"]


def procrustes(A: Any, B: Any, *, xp: ModuleType = np) -> MeasureResult:
    """Orthogonal Procrustes similarity of the centred, unit-Frobenius-norm A and B.

    Score: ``max_R tr(R^T A^T B)`` over orthogonal R, which is the nuclear norm
    of ``A^T B`` (the sum of its singular values). Range [0, 1]; 1 when B is a
    rotated, scaled, translated copy of A. Details give the angular shape
    distance ``arccos(score)`` in [0, pi/2] (a metric) and the Procrustes
    distance ``sqrt(2 - 2 score)`` in [0, sqrt 2].

    Invariances: translation, rotation and reflection, isotropic scaling, column
    permutation and sign flips. Not invariant to general invertible linear maps.
    Needs the same d on both sides.

    Cost: O(n d^2) time (one d x d product and its SVD), O(d^2) extra memory.
    """
    A, B = as_pair(A, B, xp, equal_d=True, min_n=2, name="procrustes")
    Ac, Bc = centered(A), centered(B)
    na = float(xp.sqrt((Ac * Ac).sum()))
    nb = float(xp.sqrt((Bc * Bc).sum()))
    if na == 0.0 or nb == 0.0:
        raise NumericalError("procrustes: a side has no variance (every row is the same)")
    nuclear = float(singular_values((Ac / na).T @ (Bc / nb), xp).sum())
    score = min(max(nuclear, 0.0), 1.0)
    return MeasureResult(
        "procrustes",
        score,
        {
            "angular_distance": float(np.arccos(score)),
            "procrustes_distance": float(np.sqrt(max(2.0 - 2.0 * score, 0.0))),
        },
    )
