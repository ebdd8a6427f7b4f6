"""The contract every trainer of :mod:`embspace.trainers` follows, and reading
the embeddings out of any fitted estimator.

A *trainer* is a scikit-learn style estimator (``get_params``/``set_params``,
parameters set in ``__init__``, ``random_state`` for the seed) whose
``fit(data)`` leaves its result as embeddings:

- ``item_embeddings_`` and/or ``user_embeddings_`` (the two sides of a
  factorization of a :class:`~embspace.Ratings`), or
- ``embeddings_`` (one side: the words of Word2Vec), read as the ``"items"``
  side.

:func:`fitted_sides` reads them from any estimator; the attributes may be
:class:`~embspace.Embeddings` or arrays (n x d), whose keys then come from the
data (:attr:`Ratings.item_keys` / :attr:`Ratings.user_keys`) or from the
estimator's ``vocabulary_`` (a sequence of keys in row order, or a mapping key
-> row).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator

from ..embeddings import Embeddings
from ..errors import InvalidParameterError, NotFittedError, ShapeMismatchError

__all__ = [
    "SIDES",
    "SIDE_ATTRIBUTES",
    "Trainer",
    "fitted_sides",
    "is_ratings",
    "require",
]

#: The sides a training can make, in the order of the cache.
SIDES = ("items", "users")

#: The fitted attribute of each side (``embeddings_`` is the one side of a
#: one-sided trainer, read as ``"items"``).
SIDE_ATTRIBUTES = {"items": "item_embeddings_", "users": "user_embeddings_"}

#: ``callback(iteration, elapsed_seconds, loss)`` after each iteration
#: (iterations counted from 1; loss None when the trainer has none).
IterationCallback = Callable[[int, float, "float | None"], Any]


def is_ratings(data: Any) -> bool:
    """Whether ``data`` is an embspace :class:`~embspace.Ratings` (duck-typed:
    a ``matrix``, ``item_keys`` and ``user_keys``)."""
    return all(hasattr(data, a) for a in ("matrix", "item_keys", "user_keys"))


def require(package: str, extra: str) -> Any:
    """Import the optional ``package``; an ``ImportError`` names the extra that
    installs it."""
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise ImportError(
            f"this trainer needs {package}: pip install 'embspace[{extra}]' ({exc})"
        ) from None


def _version(package: str | None) -> str | None:
    if package is None:
        return None
    module = sys.modules.get(package)
    if module is None:
        try:
            module = require(package, package)
        except ImportError:
            return None
    version = getattr(module, "__version__", None)
    return None if version is None else str(version)


class Trainer(BaseEstimator):
    """The base of embspace's trainer adapters: a scikit-learn estimator whose
    ``fit(data, callback=None)`` sets ``item_embeddings_``/``user_embeddings_``
    (or ``embeddings_``) to :class:`~embspace.Embeddings`.

    Subclasses set :attr:`package` (the third-party package they wrap, whose
    version enters the cache key through :meth:`code_identity`) and
    :attr:`sides` (the sides their ``fit`` makes), and take ``random_state``
    as their seed. They also set ``n_iter_`` (iterations done) and
    ``converged_`` (None: the library does not say).
    """

    #: The wrapped third-party package (its ``__version__`` enters the cache key).
    package: ClassVar[str | None] = None
    #: The ``pip install 'embspace[...]'`` extra that installs :attr:`package`.
    extra: ClassVar[str | None] = None
    #: The sides ``fit`` makes.
    sides: ClassVar[tuple[str, ...]] = SIDES
    #: What ``fit`` trains on: ``"ratings"`` (a :class:`~embspace.Ratings`) or
    #: ``"corpus"`` (a :class:`~embspace.trainers.TokenCorpus`).
    trains_on: ClassVar[str] = "ratings"

    def code_identity(self) -> dict[str, Any]:
        """What identifies this trainer's code in a cache key (see
        :func:`embspace.cache.code_identity`): its class, the wrapped package
        and that package's ``__version__``. The adapter's own code is covered by
        the embspace version, which every key has."""
        cls = type(self)
        return {
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "package": self.package,
            "version": _version(self.package),
        }

    def n_entities(self, data: Any, entities: str) -> int | None:
        """How many entities the ``entities`` side of a training on ``data``
        has, when it is known before training (for the sweep's check of
        ``k``); None otherwise."""
        if is_ratings(data):
            return int(data.matrix.shape[1 if entities == "items" else 0])
        return None

    def _check_seed(self) -> int | None:
        seed = self.random_state
        if seed is None:
            return None
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise InvalidParameterError(
                f"random_state must be None or an integer >= 0, got {seed!r}"
            )
        return int(seed)

    def _metadata(self, side: str, seed: int | None) -> dict[str, Any]:
        from ..jsonio import to_jsonable

        return {
            "estimator": type(self).__name__,
            "package": self.package,
            "package_version": _version(self.package),
            "params": to_jsonable(self.get_params(deep=False), fallback=repr),
            "seed": seed,
            "side": side,
        }


def _keys_for(estimator: Any, data: Any, side: str, n: int) -> list[Hashable]:
    """Keys of an array side with ``n`` rows: the data's (Ratings), else the
    estimator's ``vocabulary_``."""
    if is_ratings(data):
        keys = list(data.item_keys if side == "items" else data.user_keys)
        if len(keys) != n:
            raise ShapeMismatchError(
                f"{type(estimator).__name__}'s {side} array has {n} rows but the ratings "
                f"have {len(keys)} {side}"
            )
        return keys
    vocab = getattr(estimator, "vocabulary_", None)
    if isinstance(vocab, Mapping):
        rows = sorted(vocab.items(), key=lambda kv: kv[1])
        keys = [k for k, _ in rows]
        if [r for _, r in rows] != list(range(n)):
            raise ShapeMismatchError(
                f"{type(estimator).__name__}.vocabulary_ does not map to the rows 0..{n - 1}"
            )
        return keys
    if isinstance(vocab, Sequence) and not isinstance(vocab, str):
        if len(vocab) != n:
            raise ShapeMismatchError(
                f"{type(estimator).__name__}.vocabulary_ has {len(vocab)} keys for {n} rows"
            )
        return list(vocab)
    raise InvalidParameterError(
        f"{type(estimator).__name__} gives its {side} as an array, and its keys cannot be "
        "told: fit it on a Ratings, or give it a vocabulary_ (keys in row order)"
    )


def _as_embeddings(estimator: Any, data: Any, side: str, value: Any) -> Embeddings:
    if isinstance(value, Embeddings):
        return value
    try:
        array = np.asarray(
            value.get() if hasattr(value, "get") and not isinstance(value, Mapping) else value
        )
    except Exception:
        raise InvalidParameterError(
            f"{type(estimator).__name__}'s {side} must be Embeddings or an n x d array, "
            f"got {type(value).__name__}"
        ) from None
    if array.ndim != 2:
        raise ShapeMismatchError(
            f"{type(estimator).__name__}'s {side} must be 2-D (n x d), got shape {array.shape}"
        )
    return Embeddings(_keys_for(estimator, data, side, array.shape[0]), array)


def fitted_sides(estimator: Any, data: Any) -> dict[str, Embeddings]:
    """The embeddings a fitted ``estimator`` made, by side (``"items"``,
    ``"users"``): its ``item_embeddings_``/``user_embeddings_``, or its
    ``embeddings_`` as ``"items"``. Arrays get their keys from ``data``
    or the estimator's ``vocabulary_`` (see the module docs). An estimator with
    none of these attributes raises
    :class:`~embspace.errors.NotFittedError`."""
    found = {
        side: getattr(estimator, attr)
        for side, attr in SIDE_ATTRIBUTES.items()
        if getattr(estimator, attr, None) is not None
    }
    if not found and getattr(estimator, "embeddings_", None) is not None:
        found = {"items": estimator.embeddings_}
    if not found:
        raise NotFittedError(
            f"{type(estimator).__name__}.fit() left no embeddings: a swept estimator must set "
            "embeddings_, or item_embeddings_ and/or user_embeddings_ (Embeddings or n x d "
            "arrays)"
        )
    return {side: _as_embeddings(estimator, data, side, v) for side, v in found.items()}
