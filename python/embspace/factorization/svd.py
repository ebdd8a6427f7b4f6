"""Truncated SVD of the raw rating matrix (missing entries are 0).

``A ~ U S V^T`` with the ``factors`` largest singular values. As scipy's
``svds`` does with ARPACK, the ``k`` largest eigenpairs of the Gramian of the
smaller side (``A^T A`` when there are more users than items, else ``A A^T``)
are found by ``scipy.sparse.linalg.eigsh`` from a start vector drawn from
``random_state`` (so a seed gives the same factors every time), and the
singular triplets follow from ``A`` times those eigenvectors (a Rayleigh-Ritz
step, which gives the singular values to float64 rounding).

Each product of ARPACK is one call into the Rust core
(:class:`embspace._core.SparseGram`, prepared once per fit) that reads the
float32 ratings once, by the rows of the larger side: each row's dot product
with the vector is summed in float64 and scattered back. There is no float64
copy of the matrix and no second pass by the other side, and the result is
the same for any number of threads (the rows are summed in parts fixed by
the data, added in order). ARPACK stops at a residual of
``1e-10`` relative to each eigenvalue (not at float64 rounding, which costs
about 40% more products for nothing the float32 factors can show): the
eigenvalues' error is then of the order of the squared residual, so the
singular values equal those of ARPACK run to float64 rounding to about
``1e-15`` relative, and the factors to about ``1e-10`` (below float32
rounding) unless two singular values are nearly equal.

Components are sorted by singular value, largest first, and each sign is
fixed so that the largest-magnitude entry of the item-side vector is positive
(the first such entry on ties). User embeddings are ``U sqrt(S)``, item
embeddings ``V sqrt(S)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from scipy.sparse.linalg import LinearOperator, eigsh
from sklearn.base import BaseEstimator
from threadpoolctl import threadpool_limits

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
        v0 = rng.uniform(-1.0, 1.0, size=limit)
        u, s, vt = _truncated_svd(ratings, k, v0, threads)
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


#: ARPACK's stopping tolerance: the residual of each Ritz pair relative to
#: its eigenvalue (see the module docstring).
ARPACK_TOL = 1e-10


def _arpack_ncv(k: int, n: int) -> int:
    """ARPACK's number of Lanczos vectors: ``2 k + 5`` (at least 25), at most
    ``n``. A few more than scipy's default (``2 k + 1``, at least 20) take
    about 10% fewer products on rating matrices."""
    return min(n, max(2 * k + 5, 25))


def _truncated_svd(
    ratings: Ratings, k: int, v0: np.ndarray, num_threads: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(U, s, Vt)`` of the ``k`` largest singular triplets of the ratings
    (unordered, as ``svds`` returns them), from ARPACK on the Gramian of the
    smaller side started at ``v0`` (of that side's length)."""
    n_users, n_items = ratings.n_users, ratings.n_items
    # B: the CSR whose rows are the larger side; ARPACK runs on B^T B
    transpose = n_users < n_items
    by = ratings.csr_arrays("item" if transpose else "user")
    n = min(n_users, n_items)
    b = _core.SparseGram(*by, n, num_threads=num_threads)

    def gram(x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(np.ravel(x), dtype=np.float64)
        return b.apply(x, num_threads=num_threads)

    op = LinearOperator((n, n), matvec=gram, dtype=np.float64)
    # ARPACK's own dense work (n x ncv) is small: BLAS threads would only spin
    # between its calls and take the cores from the sparse products (on 2
    # cores that doubled the time)
    with threadpool_limits(limits=1, user_api="blas"):
        try:
            _, vecs = eigsh(op, k=k, ncv=_arpack_ncv(k, n), tol=ARPACK_TOL, v0=v0)
        except Exception as exc:  # ARPACK convergence failures and the like
            raise NumericalError(f"ARPACK failed: {exc}") from exc
        # ARPACK does not guarantee exactly orthonormal vectors (scipy's svds does the same)
        vecs, _ = np.linalg.qr(vecs)
        bv = b.matmat(np.ascontiguousarray(vecs), num_threads=num_threads)
        if not (np.isfinite(vecs).all() and np.isfinite(bv).all()):
            raise NumericalError("ARPACK returned non-finite vectors")
        # B V = P S Q^T: the singular values, and the vectors of both sides
        p, s, qt = np.linalg.svd(bv, full_matrices=False)
    if transpose:  # B = A^T: A = (V Q) S P^T
        return vecs @ qt.T, s, p.T
    return p, s, qt @ vecs.T
