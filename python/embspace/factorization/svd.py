"""Truncated SVD of the raw rating matrix (missing entries are 0).

``A ~ U S V^T`` with the ``factors`` largest singular values, computed by
``scipy.sparse.linalg.svds`` (ARPACK) from a start vector drawn from
``random_state``, so a seed gives the same factors every time. ARPACK's
products ``A x`` and ``A^T y`` run in the Rust core, in parallel, on the
float32 ratings by user and by item (no float64 copy of the matrix, and no
scatter for the transpose); each row is summed in float64 in a fixed order,
so the factors do not depend on the number of threads. Components are
sorted by singular value, largest first, and each sign is fixed so that the
largest-magnitude entry of the item-side vector is positive (the first such
entry on ties). User embeddings are ``U sqrt(S)``, item embeddings ``V sqrt(S)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from scipy.sparse.linalg import LinearOperator, svds
from sklearn.base import BaseEstimator

from .. import _core
from ..embeddings import Embeddings
from ..errors import InvalidParameterError, NumericalError
from ..ratings import Ratings
from ._common import (
    FittedAttributes,
    as_ratings,
    check_int,
    check_seed,
    check_threads,
    fitted_metadata,
)

__all__ = ["SVD"]

_FITTED = (
    "user_factors_",
    "item_factors_",
    "user_embeddings_",
    "item_embeddings_",
    "singular_values_",
    "fit_time_",
    "seed_",
    "converged_",
)


class SVD(FittedAttributes, BaseEstimator):
    """Truncated SVD embeddings of a ratings matrix.

    Parameters
    ----------
    factors : int
        Number of singular triplets, ``1 <= factors < min(n_users, n_items)``
        (ARPACK's limit).
    random_state : int, numpy.random.Generator or None
        Seed of ARPACK's start vector; None draws a fresh seed (``seed_``).
    num_threads : int or None
        Threads of the sparse products: None (every core) or ``1 <=
        num_threads <= embspace._threads.max_threads()``. Results do not
        depend on it.

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
    converged_ : bool
        Always True after a fit: ARPACK either converges (to machine
        precision) or ``fit`` raises :class:`~embspace.errors.NumericalError`.
        It is there so that a sweep reads every estimator's convergence alike
        (see :attr:`embspace.WALS.converged_`).
    """

    _estimator_name: ClassVar[str] = "SVD"
    _fitted = _FITTED

    def __init__(
        self,
        factors: int = 10,
        random_state: int | np.random.Generator | None = None,
        num_threads: int | None = None,
    ):
        self.factors = factors
        self.random_state = random_state
        self.num_threads = num_threads

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
        threads = check_threads(self.num_threads)
        a = _ratings_operator(ratings, threads)
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
        meta["converged"] = True
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
        self.converged_ = True
        self.fit_time_ = time.perf_counter() - t0
        if callback is not None:
            callback(1, self.fit_time_, float("nan"))
        return self


def _ratings_operator(ratings: Ratings, num_threads: int) -> LinearOperator:
    """The ratings matrix as a float64 LinearOperator: ``A x`` on the CSR by
    user, ``A^T y`` on the CSR by item, both in the Rust core."""
    by_user = ratings.csr_arrays("user")
    by_item = ratings.csr_arrays("item")
    n_users, n_items = ratings.n_users, ratings.n_items

    def matvec(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(np.ravel(x), dtype=np.float64)
        return _core.csr_matvec(*by_user, n_items, x, num_threads=num_threads)

    def rmatvec(y: np.ndarray) -> np.ndarray:
        y = np.ascontiguousarray(np.ravel(y), dtype=np.float64)
        return _core.csr_matvec(*by_item, n_users, y, num_threads=num_threads)

    def matmat(x: np.ndarray) -> np.ndarray:
        return np.column_stack([matvec(c) for c in np.asarray(x).T])

    def rmatmat(y: np.ndarray) -> np.ndarray:
        return np.column_stack([rmatvec(c) for c in np.asarray(y).T])

    return LinearOperator(
        (n_users, n_items),
        matvec=matvec,
        rmatvec=rmatvec,
        matmat=matmat,
        rmatmat=rmatmat,
        dtype=np.float64,
    )
