"""Truncated SVD embeddings (DESIGN §3).

scipy ``svds`` (ARPACK) of the raw rating matrix with missing entries as 0:
``A ~ U S V^T``; user embeddings ``U sqrt(S)``, item embeddings ``V sqrt(S)``.
Factors are sorted by singular value (largest first) and signs are fixed so
that the largest-magnitude entry of every item-side column is positive, so
the result is deterministic for a ``random_state``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.sparse.linalg import svds

from ..errors import InvalidParameterError
from ._base import EmbeddingEstimator, as_ratings, check_int

__all__ = ["SVD"]


class SVD(EmbeddingEstimator):
    """Truncated SVD of the ratings matrix.

    Parameters
    ----------
    factors : int
        Number of singular triplets k, 1 <= k < min(n_users, n_items).
    random_state : int or None
        Seed of ARPACK's start vector (None: a fixed start vector of ones, also
        deterministic).

    Attributes
    ----------
    singular_values_ : ndarray (k,), float64, descending
    user_factors_, item_factors_ : ndarray (n_users, k), (n_items, k), float32
        ``U sqrt(S)`` and ``V sqrt(S)``.
    user_embeddings_, item_embeddings_ : Embeddings
    fit_time_ : float, seconds
    """

    def __init__(self, factors: int = 10, random_state: int | None = None) -> None:
        self.factors = factors
        self.random_state = random_state

    def fit(
        self,
        X: Any,
        callback: Callable[[int, float, float], Any] | None = None,
        progress: bool = True,
    ) -> SVD:
        """Factorise ``X`` (Ratings or scipy sparse). ``callback(1, elapsed, nan)``
        is called once when done (SVD has no iterations or loss); ``progress``
        is accepted for symmetry with :class:`WALS`. Returns ``self``."""
        ratings = as_ratings(X)
        k = check_int(self.factors, "factors", 1)
        limit = min(ratings.shape)
        if k >= limit:
            raise InvalidParameterError(
                f"SVD needs factors < min(n_users, n_items) = {limit}, got {k}"
            )
        start = time.perf_counter()
        a = ratings.matrix.astype(np.float64)
        n0 = limit
        if self.random_state is None:
            v0 = np.ones(n0)
        else:
            v0 = np.random.default_rng(self.random_state).standard_normal(n0)
        u, s, vt = svds(a, k=k, v0=v0, solver="arpack")
        order = np.argsort(-s, kind="stable")
        s, u, vt = s[order], u[:, order], vt[order]
        v = vt.T
        # Deterministic signs: the largest |entry| of each item column is positive.
        pivot = np.argmax(np.abs(v), axis=0)
        signs = np.sign(v[pivot, np.arange(k)])
        signs[signs == 0] = 1.0
        u, v = u * signs, v * signs
        root = np.sqrt(s)
        self.singular_values_ = s
        self.fit_time_ = time.perf_counter() - start
        self._set_embeddings(ratings, (u * root).astype(np.float32), (v * root).astype(np.float32))
        if callback is not None:
            callback(1, self.fit_time_, float("nan"))
        return self
