"""Canonical correlation measures: exact CCA, SVCCA and PWCCA.

All three centre the columns, build orthonormal bases of the column spaces
(QR, then the SVD of R for the rank) and take the singular values of
``Q_A^T Q_B``: those are the canonical correlations, exactly, with no
iteration. Everything runs in float64 on the array module ``xp``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from ._base import (
    MeasureResult,
    as_pair,
    centered,
    floats,
    orthonormal_basis,
    singular_values,
    warn_if_few_rows,
)
from .sides import dense_pair, takes_sides

__all__ = ["canonical_correlations", "cca", "pwcca", "svcca"]


def canonical_correlations(A: Any, B: Any, xp: ModuleType = np, *, name: str = "cca") -> np.ndarray:
    """All canonical correlations of ``A`` (n x d_a) and ``B`` (n x d_b), arrays
    or :class:`~embspace.measures.sides.DenseSide`, descending, min(rank A,
    rank B) of them, in [0, 1]."""
    sa, sb = dense_pair(A, B, xp, min_n=2, name=name)
    warn_if_few_rows(sa.shape[0], sa.shape[1], sb.shape[1], name)
    qa, _ = sa.basis("A", name)
    qb, _ = sb.basis("B", name)
    rho = xp.clip(singular_values(qa.T @ qb, xp), 0.0, 1.0)
    return np.asarray(floats(rho))


@takes_sides
def cca(A: Any, B: Any, *, xp: ModuleType = np) -> MeasureResult:
    """Mean canonical correlation of the centred matrices (exact).

    Score: the mean of the min(rank A, rank B) canonical correlations, the
    singular values of ``Q_A^T Q_B`` for orthonormal bases Q of the centred
    columns; details hold all of them. Range [0, 1], 1 when one space is an
    invertible linear map of the other.

    Invariances: translation, rotation, isotropic and per-column scaling,
    column permutation and sign flips, any invertible linear map of either
    side. Not invariant to non-linear changes or to which entities are paired.

    Cost: O(n (d_a^2 + d_b^2) + n d_a d_b) time (two thin QRs, one product),
    O(n (d_a + d_b)) memory. Warns (``EmbspaceWarning``) when n <= d, where every
    correlation is trivially 1, and when a side is rank deficient.
    """
    rho = canonical_correlations(A, B, xp, name="cca")
    return MeasureResult(
        "cca",
        float(rho.mean()),
        {"correlations": [float(r) for r in rho], "n_components": len(rho)},
    )


def _kept_components(s: Any, threshold: float, rank: int) -> int:
    # the fewest leading directions whose share of the variance exceeds the
    # threshold (scikit-learn's PCA(n_components=threshold) rule), never more
    # than the numerical rank (directions of zero variance carry nothing)
    energy = np.cumsum(np.asarray(floats(s)) ** 2)
    ratio = energy / energy[-1]
    return int(min(np.searchsorted(ratio, threshold, side="right") + 1, rank))


def svcca(A: Any, B: Any, *, threshold: float = 0.99, xp: ModuleType = np) -> MeasureResult:
    """SVCCA (Raghu et al. 2017): CCA after keeping, on each side, the top
    singular directions that explain ``threshold`` (default 99%) of the variance.

    Kept on each side: the fewest leading directions whose share of the variance
    exceeds ``threshold`` (scikit-learn's ``PCA(n_components=threshold)`` rule),
    at most the numerical rank of the centred matrix (singular values above
    ``max(n, d) eps s_max``, the rule of :func:`cca`). Score: mean canonical
    correlation of the two reduced spaces. Details: the correlations,
    ``kept_dims`` (directions kept per side), ``ranks`` (directions available
    per side), ``n_components`` (correlations averaged) and ``all_kept``
    (whether every direction passed on both sides). When every direction
    passes (``threshold=1``, or ``all_kept``), the reduced spaces are the
    column spaces themselves and SVCCA equals :func:`cca`. Range [0, 1].

    Invariances: translation, rotation, isotropic scaling, column permutation and
    sign flips. Not invariant to general invertible linear maps (they change which
    directions carry the variance) — that is the point of the reduction.

    Cost: O(n (d_a^2 + d_b^2)) for the two thin SVDs plus O(n r_a r_b).
    """
    from .._params import check_number
    from ..errors import NumericalError

    threshold = check_number(threshold, "svcca: threshold", low=0.0, high=1.0, low_open=True)
    A, B = as_pair(A, B, xp, min_n=2, name="svcca")
    bases = []
    kept = []
    ranks = []
    for side, X in (("A", A), ("B", B)):
        U, s, _ = xp.linalg.svd(centered(X), full_matrices=False)
        s_max = float(s[0])
        if s_max == 0.0:
            raise NumericalError(f"svcca: {side} has no variance (every row is the same)")
        tol = max(X.shape) * np.finfo(np.float64).eps * s_max
        rank = int((s > tol).sum())
        r = _kept_components(s, float(threshold), rank)
        ranks.append(rank)
        kept.append(r)
        bases.append(U[:, :r])
    warn_if_few_rows(A.shape[0], kept[0], kept[1], "svcca")
    rho = np.asarray(floats(xp.clip(singular_values(bases[0].T @ bases[1], xp), 0.0, 1.0)))
    return MeasureResult(
        "svcca",
        float(rho.mean()),
        {
            "correlations": [float(r) for r in rho],
            "kept_dims": {"A": kept[0], "B": kept[1]},
            "ranks": {"A": ranks[0], "B": ranks[1]},
            "n_components": len(rho),
            "all_kept": kept == ranks,
            "threshold": float(threshold),
        },
    )


def pwcca(A: Any, B: Any, *, xp: ModuleType = np) -> MeasureResult:
    """PWCCA (Morcos et al. 2018): canonical correlations weighted by how much of
    A each canonical direction accounts for.

    With ``H = Q_A U`` the canonical variates of A (from ``Q_A^T Q_B = U S V^T``),
    weight ``alpha_i = sum_j |<h_i, a_j>|`` over the centred columns a_j of A,
    normalised to sum 1; score ``sum_i alpha_i rho_i``. Range [0, 1]. Not
    symmetric: A is the side whose structure sets the weights.

    Invariances: translation and isotropic scaling of either side; column
    permutation and sign flips of A; any invertible linear map of B. Not
    invariant to rotations of A (the weights sum absolute values over A's
    columns).

    Cost: as :func:`cca`, plus O(n d_a r) for the weights.
    """
    A, B = as_pair(A, B, xp, min_n=2, name="pwcca")
    warn_if_few_rows(A.shape[0], A.shape[1], B.shape[1], "pwcca")
    Ac = centered(A)
    qa, _ = orthonormal_basis(Ac, xp, "A", "pwcca")
    qb, _ = orthonormal_basis(centered(B), xp, "B", "pwcca")
    U, s, _ = xp.linalg.svd(qa.T @ qb, full_matrices=False)
    rho = xp.clip(s, 0.0, 1.0)
    H = qa @ U[:, : s.shape[0]]
    alpha = xp.abs(H.T @ Ac).sum(axis=1)
    alpha = alpha / alpha.sum()
    score = float((alpha * rho).sum())
    return MeasureResult(
        "pwcca",
        score,
        {"correlations": floats(rho), "weights": floats(alpha)},
    )
