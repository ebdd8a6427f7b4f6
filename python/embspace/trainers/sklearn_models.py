"""scikit-learn's TruncatedSVD, NMF and PCA of the ratings matrix as embspace trainers.

Each adapter fits the scikit-learn model on the ratings matrix ``X`` (users x
items; the users are the samples, the items the features) and keeps:

- ``item_embeddings_`` = ``components_.T`` (items x ``n_components``): each
  item's loadings on the components (for NMF the factor ``H`` of ``X ~ W H``,
  transposed);
- ``user_embeddings_`` = ``fit_transform(X)`` (users x ``n_components``):
  each user's coordinates (TruncatedSVD: ``U S``; PCA: ``(X - mean) V``, the
  centred data projected; NMF: the ``W`` of the fit).

keyed by the ratings' item and user keys. The parameters are scikit-learn's,
with ``random_state`` the seed (it changes the result only where
scikit-learn uses randomness: TruncatedSVD's ``"randomized"`` algorithm,
NMF's ``init="random"``/``"nndsvdar"`` and its ``"cd"`` solver's
``shuffle=True``, PCA's randomized or ARPACK solvers; otherwise every seed
gives the same factors and the sweep's floor is 1). PCA gets the matrix as a
dense array (``X`` is ``n_users x n_items``: mind the memory on big data);
TruncatedSVD and NMF get it sparse. BLAS runs on one thread during a fit, so
the result does not depend on the machine's thread count.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..embeddings import Embeddings
from ..errors import InvalidParameterError
from ._base import IterationCallback, Trainer, is_ratings

__all__ = ["SklearnNMF", "SklearnPCA", "SklearnTruncatedSVD"]


class _SklearnTrainer(Trainer):
    package = "sklearn"
    extra = None
    _dense = False

    def _model(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, ratings: Any, callback: IterationCallback | None = None) -> Any:
        """Fit on ``ratings`` (an embspace :class:`~embspace.Ratings`)."""
        if not is_ratings(ratings):
            raise InvalidParameterError(
                f"{type(self).__name__} trains on an embspace Ratings, got {type(ratings).__name__}"
            )
        from threadpoolctl import threadpool_limits

        seed = self._check_seed()
        matrix = ratings.matrix.tocsr().astype(np.float32)
        x = matrix.toarray() if self._dense else matrix
        model = self._model().set_params(random_state=seed)
        t0 = time.perf_counter()
        with threadpool_limits(1, "blas"):
            users = model.fit_transform(x)
        items = np.asarray(model.components_).T
        self.user_embeddings_ = Embeddings(
            ratings.user_keys, users, ids=ratings.user_ids, metadata=self._metadata("users", seed)
        )
        self.item_embeddings_ = Embeddings(
            ratings.item_keys, items, ids=ratings.item_ids, metadata=self._metadata("items", seed)
        )
        self.model_ = model
        n_iter = getattr(model, "n_iter_", None)
        self.n_iter_ = int(n_iter) if isinstance(n_iter, (int, np.integer)) else None
        self.converged_ = None
        self.fit_time_ = time.perf_counter() - t0
        if callback is not None:
            callback(1, self.fit_time_, None)
        return self


class SklearnTruncatedSVD(_SklearnTrainer):
    """scikit-learn's ``TruncatedSVD`` of the ratings matrix (no centring):
    items = ``V`` (``components_.T``), users = ``U S``. Parameters are
    scikit-learn's (``n_components``, ``algorithm``, ``n_iter``,
    ``n_oversamples``, ``power_iteration_normalizer``) and ``random_state``."""

    def __init__(
        self,
        n_components: int = 64,
        algorithm: str = "randomized",
        n_iter: int = 5,
        n_oversamples: int = 10,
        power_iteration_normalizer: str = "auto",
        random_state: int | None = None,
    ) -> None:
        self.n_components = n_components
        self.algorithm = algorithm
        self.n_iter = n_iter
        self.n_oversamples = n_oversamples
        self.power_iteration_normalizer = power_iteration_normalizer
        self.random_state = random_state

    def _model(self) -> Any:
        from sklearn.decomposition import TruncatedSVD

        return TruncatedSVD(
            n_components=self.n_components,
            algorithm=self.algorithm,
            n_iter=self.n_iter,
            n_oversamples=self.n_oversamples,
            power_iteration_normalizer=self.power_iteration_normalizer,
        )


class SklearnNMF(_SklearnTrainer):
    """scikit-learn's ``NMF`` of the ratings matrix, ``X ~ W H``: items =
    ``H.T`` (``components_.T``), users = ``W``. Parameters are
    scikit-learn's (``n_components``, ``init``, ``solver``, ``beta_loss``,
    ``tol``, ``max_iter``, ``alpha_W``, ``alpha_H``, ``l1_ratio``,
    ``shuffle``) and ``random_state``."""

    def __init__(
        self,
        n_components: int = 64,
        init: str | None = None,
        solver: str = "cd",
        beta_loss: str | float = "frobenius",
        tol: float = 1e-4,
        max_iter: int = 200,
        alpha_W: float = 0.0,
        alpha_H: float | str = "same",
        l1_ratio: float = 0.0,
        shuffle: bool = False,
        random_state: int | None = None,
    ) -> None:
        self.n_components = n_components
        self.init = init
        self.solver = solver
        self.beta_loss = beta_loss
        self.tol = tol
        self.max_iter = max_iter
        self.alpha_W = alpha_W
        self.alpha_H = alpha_H
        self.l1_ratio = l1_ratio
        self.shuffle = shuffle
        self.random_state = random_state

    def _model(self) -> Any:
        from sklearn.decomposition import NMF

        return NMF(
            n_components=self.n_components,
            init=self.init,
            solver=self.solver,
            beta_loss=self.beta_loss,
            tol=self.tol,
            max_iter=self.max_iter,
            alpha_W=self.alpha_W,
            alpha_H=self.alpha_H,
            l1_ratio=self.l1_ratio,
            shuffle=self.shuffle,
        )


class SklearnPCA(_SklearnTrainer):
    """scikit-learn's ``PCA`` of the ratings matrix (items as features,
    centred over the users): items = ``components_.T``, users = the centred
    ratings projected on them. Parameters are scikit-learn's
    (``n_components``, ``whiten``, ``svd_solver``, ``tol``,
    ``iterated_power``, ``n_oversamples``) and ``random_state``. The matrix is
    made dense."""

    _dense = True

    def __init__(
        self,
        n_components: int = 64,
        whiten: bool = False,
        svd_solver: str = "auto",
        tol: float = 0.0,
        iterated_power: int | str = "auto",
        n_oversamples: int = 10,
        random_state: int | None = None,
    ) -> None:
        self.n_components = n_components
        self.whiten = whiten
        self.svd_solver = svd_solver
        self.tol = tol
        self.iterated_power = iterated_power
        self.n_oversamples = n_oversamples
        self.random_state = random_state

    def _model(self) -> Any:
        from sklearn.decomposition import PCA

        return PCA(
            n_components=self.n_components,
            whiten=self.whiten,
            svd_solver=self.svd_solver,
            tol=self.tol,
            iterated_power=self.iterated_power,
            n_oversamples=self.n_oversamples,
        )
