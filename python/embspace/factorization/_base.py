"""What both estimators share: input coercion, parameter checks, fitted embeddings."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator

from .. import __version__
from ..embeddings import Embeddings
from ..errors import InvalidParameterError, NotFittedError
from ..ratings import Ratings

__all__ = ["EmbeddingEstimator", "as_ratings", "check_int", "check_nonneg"]


def as_ratings(X: Any) -> Ratings:
    """A :class:`Ratings` from a Ratings or any scipy sparse matrix (keys 0..n-1)."""
    if isinstance(X, Ratings):
        return X
    if sp.issparse(X):
        return Ratings.from_csr(X)
    raise InvalidParameterError(
        f"fit expects an embspace.Ratings or a scipy sparse matrix, got {type(X).__name__}"
    )


def check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise InvalidParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_nonneg(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not np.isfinite(v) or v < 0:
        raise InvalidParameterError(f"{name} must be finite and >= 0, got {value!r}")
    return v


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return {"array": list(value.shape), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    return value


class EmbeddingEstimator(BaseEstimator):
    """Base of the estimators: scikit-learn parameters plus fitted embeddings."""

    def _set_embeddings(self, ratings: Ratings, user: np.ndarray, item: np.ndarray) -> None:
        params = {k: _jsonable(v) for k, v in self.get_params().items()}
        meta = {
            "estimator": type(self).__name__,
            "params": params,
            "seed": params.get("random_state"),
            "fingerprint": ratings.fingerprint,
            "dataset": ratings.name,
            "embspace_version": __version__,
        }
        self.user_factors_ = user
        self.item_factors_ = item
        self.user_embeddings_ = Embeddings(
            ratings.user_keys, user, ids=ratings.user_ids, metadata={**meta, "entities": "users"}
        )
        self.item_embeddings_ = Embeddings(
            ratings.item_keys, item, ids=ratings.item_ids, metadata={**meta, "entities": "items"}
        )

    def __getattr__(self, name: str) -> Any:
        # Reading a fitted attribute before fit: a typed, explicit error.
        if name.endswith("_") and not name.startswith("_"):
            raise NotFittedError(
                f"{type(self).__name__} is not fitted yet: call fit() before reading {name}"
            )
        raise AttributeError(name)
