"""Representational similarity analysis on a sample of entities."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from .._params import check_int
from ..errors import NumericalError
from ._base import MeasureResult, as_pair, host

__all__ = ["rsa"]


def _cosine_rdm_upper(X: Any, xp: ModuleType) -> np.ndarray:
    norms = xp.sqrt((X * X).sum(axis=1))
    U = X / xp.where(norms == 0, 1.0, norms)[:, None]
    D = 1.0 - U @ U.T
    rows, cols = np.triu_indices(X.shape[0], k=1)
    return host(D)[rows, cols]


def rsa(
    A: Any, B: Any, *, sample: int = 1000, random_state: int = 0, xp: ModuleType = np
) -> MeasureResult:
    """RSA: Spearman correlation of the two cosine-distance matrices of a sample.

    ``sample`` entities (all of them when n is smaller) are drawn without
    replacement with ``random_state``; on each side the m x m matrix of cosine
    distances between them is computed (on ``xp``), and the score is the
    Spearman rank correlation of the two upper triangles (ranks on the host,
    ties averaged, scipy). Range [-1, 1].

    Invariances: rotation and isotropic scaling of either side, column
    permutation and sign flips, and any change that keeps the order of
    pairwise cosine distances. Not invariant to translation.

    Cost: O(m^2 d) for the distances and O(m^2 log m) for the ranks, O(m^2)
    memory, independent of n beyond drawing the sample.
    """
    from scipy.stats import spearmanr

    sample = check_int(sample, "rsa: sample", minimum=3)
    random_state = check_int(random_state, "rsa: random_state", minimum=0)
    A, B = as_pair(A, B, xp, min_n=3, name="rsa")
    n = A.shape[0]
    m = min(int(sample), n)
    rows = np.sort(np.random.default_rng(random_state).choice(n, size=m, replace=False))
    da = _cosine_rdm_upper(A[rows], xp)
    db = _cosine_rdm_upper(B[rows], xp)
    if np.ptp(da) == 0 or np.ptp(db) == 0:
        raise NumericalError("rsa: every sampled pair is at the same distance on one side")
    rho = float(spearmanr(da, db).statistic)
    return MeasureResult("rsa", rho, {"sample": m, "random_state": int(random_state)})
