"""Truncated SVD of the raw rating matrix (missing entries are 0).

``A ~ U S V^T`` with the ``factors`` largest singular values, computed by
``scipy.sparse.linalg.svds`` (ARPACK) from a start vector drawn from
``random_state``, so a seed gives the same factors every time. Components are
sorted by singular value, largest first, and each sign is fixed so that the
largest-magnitude entry of the item-side vector is positive (the first such
entry on ties). User embeddings are ``U sqrt(S)``, item embeddings ``V sqrt(S)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from scipy.sparse.linalg import svds
from sklearn.base import BaseEstimator

from ..embeddings import Embeddings
from ..errors import InvalidParameterError, NotFittedError, NumericalError
from ..ratings import Ratings
from ._common import as_ratings, check_int, check_seed, fitted_metadata

__all__ = ["SVD"]

_FITTED = (
    "user_factors_",
    "item_factors_",
    "user_embeddings_",
    "item_embeddings_",
    "singular_values_",
    "fit_time_",
    "seed_",
)


class SVD(BaseEstimator):
    """Truncated SVD embeddings of a ratings matrix.

    Parameters
    ----------
    factors : int
        Number of singular triplets, ``1 <= factors < min(n_users, n_items)``
        (ARPACK's limit).
    random_state : int, numpy.random.Generator or None
        Seed of ARPACK's start vector; None draws a fresh seed (``seed_``).

    Attributes
    ----------
    singular_values_ : ndarray, float64, (factors,)
        Largest first.
    user_factors_, item_factors_ : ndarray, float32
        ``U sqrt(S)`` (n_users x k) and ``V sqrt(S)`` (n_items x k).
    user_embeddings_, item_embeddings_ : Embeddings
        Those factors keyed like the Ratings, with metadata.
    fit_time_ : float
        Seconds spent in :meth:`fit`.
    seed_ : int or None
    """

    _estimator_name: ClassVar[str] = "SVD"

    def __init__(self, factors: int = 10, random_state: int | np.random.Generator | None = None):
        self.factors = factors
        self.random_state = random_state

    def __getattr__(self, name: str) -> Any:
        if name in _FITTED:
            raise NotFittedError(f"{type(self).__name__}.{name} is set by fit(); call fit first")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def fit(
        self,
        X: Ratings | Any,
        callback: Callable[[int, float, float], Any] | None = None,
        progress: bool = True,
    ) -> SVD:
        """Factor ``X`` (a :class:`~embspace.Ratings` or a scipy sparse matrix).

        ``callback`` and ``progress`` mirror :meth:`WALS.fit`: SVD has no
        iterations, so ``callback(1, elapsed_seconds, nan)`` is called once when
        the factorisation is done, and ``progress`` is accepted and ignored."""
        t0 = time.perf_counter()
        ratings = as_ratings(X)
        k = check_int(self.factors, "factors", minimum=1)
        limit = min(ratings.n_users, ratings.n_items)
        if k >= limit:
            raise InvalidParameterError(
                f"factors={k} must be below min(n_users, n_items) = {limit} for the "
                f"{ratings.n_users} x {ratings.n_items} ratings (ARPACK's limit)"
            )
        rng, seed = check_seed(self.random_state)
        a = ratings.matrix.astype(np.float64)
        v0 = rng.uniform(-1.0, 1.0, size=limit)
        try:
            u, s, vt = svds(a, k=k, solver="arpack", v0=v0)
        except Exception as exc:  # ARPACK convergence failures and the like
            raise NumericalError(f"svds failed: {exc}") from exc
        if not (np.isfinite(u).all() and np.isfinite(s).all() and np.isfinite(vt).all()):
            raise NumericalError("svds returned non-finite values")
        order = np.argsort(-s, kind="stable")
        u, s, vt = u[:, order], s[order], vt[order]
        big = np.argmax(np.abs(vt), axis=1)
        flip = vt[np.arange(k), big] < 0
        u[:, flip] *= -1.0
        vt[flip] *= -1.0
        root = np.sqrt(np.maximum(s, 0.0))
        uf = np.ascontiguousarray(u * root, dtype=np.float32)
        vf = np.ascontiguousarray(vt.T * root, dtype=np.float32)
        meta = fitted_metadata(self, ratings, seed)
        meta["singular_values"] = s.tolist()
        self.singular_values_ = s
        self.user_factors_ = uf
        self.item_factors_ = vf
        self.user_embeddings_ = Embeddings(
            ratings.user_keys, uf, ids=ratings.user_ids, metadata={**meta, "side": "users"}
        )
        self.item_embeddings_ = Embeddings(
            ratings.item_keys, vf, ids=ratings.item_ids, metadata={**meta, "side": "items"}
        )
        self.seed_ = seed
        self.fit_time_ = time.perf_counter() - t0
        if callback is not None:
            callback(1, self.fit_time_, float("nan"))
        return self
