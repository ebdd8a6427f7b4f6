"""Input checks and metadata shared by the estimators of this package."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._params import check_int
from .._threads import check_threads
from ..errors import InvalidParameterError, NotFittedError
from ..ratings import Ratings

__all__ = [
    "FittedAttributes",
    "as_ratings",
    "check_int",
    "check_seed",
    "check_threads",
    "fitted_metadata",
]


class FittedAttributes:
    """Mixin for the estimators: reading one of ``_fitted`` (the attributes
    ``fit`` sets) before ``fit`` raises NotFittedError instead of
    AttributeError."""

    _fitted: tuple[str, ...] = ()

    def __getattr__(self, name: str) -> Any:
        if name in type(self)._fitted:
            raise NotFittedError(f"{type(self).__name__}.{name} is set by fit(); call fit first")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def as_ratings(X: Any) -> Ratings:
    """``X`` itself when it is a :class:`Ratings`; a scipy sparse matrix is
    wrapped with ids ``0..n-1``; anything else is an InvalidParameterError."""
    if isinstance(X, Ratings):
        return X
    if sp.issparse(X):
        return Ratings.from_csr(X)
    raise InvalidParameterError(
        f"expected embspace.Ratings or a scipy sparse matrix, got {type(X).__name__}"
    )


def check_seed(random_state: Any) -> tuple[np.random.Generator, int | None]:
    """A Generator for ``random_state`` and the integer seed it came from
    (a fresh one for None; None when a Generator was passed)."""
    if isinstance(random_state, np.random.Generator):
        return random_state, None
    if random_state is None:
        seed = int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> 1)
        return np.random.default_rng(seed), seed
    if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral):
        raise InvalidParameterError(
            f"random_state must be None, an int or a numpy Generator, got {random_state!r}"
        )
    if random_state < 0:
        raise InvalidParameterError(f"random_state must be >= 0, got {random_state}")
    return np.random.default_rng(int(random_state)), int(random_state)


def _describe_param(value: Any) -> Any:
    """A parameter value as recorded in metadata: arrays and generators are
    summarised (their contents are in the data fingerprint or the seed)."""
    if isinstance(value, np.ndarray):
        return f"<array of {value.size} values>"
    if isinstance(value, np.random.Generator):
        return "<numpy Generator>"
    if isinstance(value, np.generic):
        return value.item()
    return value


def fitted_metadata(estimator: Any, ratings: Ratings, seed: int | None) -> dict[str, Any]:
    """What produced a fitted estimator's embeddings: its name, parameters
    (arrays summarised), seed and the data's name and fingerprint."""
    params = {k: _describe_param(v) for k, v in estimator.get_params().items()}
    return {
        "estimator": type(estimator).__name__,
        "params": params,
        "seed": seed,
        "data": ratings.fingerprint,
        "data_name": ratings.name,
    }
