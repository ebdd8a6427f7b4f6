"""Linear centred kernel alignment (Kornblith et al. 2019), plain and debiased,
in feature-space form: only d x d products, never an n x n Gram matrix."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from ..errors import NumericalError
from ._base import MeasureResult, as_pair, centered
from .sides import dense_pair, takes_sides

__all__ = ["cka", "cka_debiased"]


def _frob2(M: Any) -> float:
    return float((M * M).sum())


@takes_sides
def cka(A: Any, B: Any, *, xp: ModuleType = np) -> MeasureResult:
    """Linear CKA: ``|B^T A|_F^2 / (|A^T A|_F |B^T B|_F)`` on centred A and B.

    Equal to the CKA of the linear kernels ``A A^T`` and ``B B^T`` (HSIC
    normalised), computed in feature space. Range [0, 1].

    Invariances: translation, rotation (any orthogonal map of either side),
    isotropic scaling, column permutation and sign flips. Not invariant to
    general invertible linear maps.

    Cost: O(n (d_a^2 + d_b^2 + d_a d_b)) time, O(d^2) extra memory.
    """
    sa, sb = dense_pair(A, B, xp, min_n=2, name="cka")
    cross = _frob2(sb.centered.T @ sa.centered)
    na = float(np.sqrt(sa.gram_norm2()))
    nb = float(np.sqrt(sb.gram_norm2()))
    if na == 0.0 or nb == 0.0:
        raise NumericalError("cka: a side has no variance (every row is the same)")
    return MeasureResult("cka", cross / (na * nb), {"hsic": cross, "norm_a": na, "norm_b": nb})


def _debiased(
    cross: float, rows_a: Any, rows_b: Any, total_a: float, total_b: float, n: int
) -> float:
    # The unbiased HSIC estimator (Song et al. 2012) of centred linear kernels,
    # up to the factor 1 / (n (n - 3)) that cancels in the ratio: with K = A A^T,
    # diag(K) = rows_a and 1^T K 1 = 0 (A is centred), the estimator's
    # tr(K~ L~) + 1^T K~ 1 1^T L~ 1 / ((n-1)(n-2)) - 2 / (n-2) 1^T K~ L~ 1, where K~
    # is K with a zero diagonal, reduces to the expression below.
    return (
        cross
        - n / (n - 2.0) * float((rows_a * rows_b).sum())
        + total_a * total_b / ((n - 1.0) * (n - 2.0))
    )


def cka_debiased(A: Any, B: Any, *, xp: ModuleType = np) -> MeasureResult:
    """Debiased linear CKA: linear CKA with the unbiased HSIC estimator in place
    of the biased one, which removes the upward bias of CKA at small n / large d.

    Range: at most 1; near 0 (and possibly slightly negative) for unrelated
    spaces. Needs n > 3.

    Invariances: as :func:`cka` (translation, rotation, isotropic scaling,
    permutation and sign flips of columns).

    Cost: O(n (d_a^2 + d_b^2 + d_a d_b)) time, O(n + d^2) extra memory.
    """
    A, B = as_pair(A, B, xp, min_n=4, name="cka_debiased")
    n = A.shape[0]
    Ac, Bc = centered(A), centered(B)
    rows_a = (Ac * Ac).sum(axis=1)
    rows_b = (Bc * Bc).sum(axis=1)
    total_a, total_b = float(rows_a.sum()), float(rows_b.sum())
    cross = _debiased(_frob2(Bc.T @ Ac), rows_a, rows_b, total_a, total_b, n)
    self_a = _debiased(_frob2(Ac.T @ Ac), rows_a, rows_a, total_a, total_a, n)
    self_b = _debiased(_frob2(Bc.T @ Bc), rows_b, rows_b, total_b, total_b, n)
    if self_a <= 0.0 or self_b <= 0.0:
        raise NumericalError(
            "cka_debiased: the unbiased self-similarity of a side is not positive "
            "(no variance, or too few entities for its dimension)"
        )
    score = cross / np.sqrt(self_a * self_b)
    return MeasureResult(
        "cka_debiased", float(score), {"hsic": cross, "self_a": self_a, "self_b": self_b}
    )
