"""The estimators the faces offer, by name, and how a face configures one.

:data:`ESTIMATORS` is a :class:`~embspace._registry.Registry` mapping a name
(``"WALS"``, ``"SVD"``) to the estimator class. An entry may also be given as
``"module:Class"``, imported on first use: the built-in ones are, so that
building the command line's parser (``embspace --help``) does not import
scikit-learn. Register another scikit-learn style estimator (``get_params`` /
``set_params``, ``fit(ratings)``, ``item_embeddings_``) to offer it:

>>> from embspace.faces.estimators import ESTIMATORS
>>> ESTIMATORS.register("MyALS", MyALS)  # doctest: +SKIP

Names are matched case-insensitively (``wals`` is ``WALS``).
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any

import numpy as np

from .._registry import Registry
from ..errors import InvalidParameterError
from .values import check_names, coerce

__all__ = [
    "ESTIMATORS",
    "NOT_SWEPT",
    "check_sweep_param",
    "corpus_estimators",
    "estimator_class",
    "estimator_defaults",
    "estimator_name",
    "make_estimator",
    "sweepable_params",
    "trains_on",
]

#: Estimator classes by name (or ``"module:Class"``, imported on first use):
#: embspace's WALS and SVD, then the adapters of :mod:`embspace.trainers` that
#: train on ratings (implicit's need ``pip install 'embspace[implicit]'``), and
#: gensim's, which train on a token corpus (``trains_on == "corpus"``: the CLI's
#: ``sweep --corpus FILE``; ``pip install 'embspace[gensim]'``).
ESTIMATORS: Registry[type | str] = Registry(
    "estimator",
    {
        "WALS": "embspace.factorization:WALS",
        "SVD": "embspace.factorization:SVD",
        "implicit-als": "embspace.trainers:ImplicitALS",
        "implicit-bpr": "embspace.trainers:ImplicitBPR",
        "implicit-lmf": "embspace.trainers:ImplicitLMF",
        "sklearn-truncated-svd": "embspace.trainers:SklearnTruncatedSVD",
        "sklearn-nmf": "embspace.trainers:SklearnNMF",
        "sklearn-pca": "embspace.trainers:SklearnPCA",
        "gensim-word2vec": "embspace.trainers:GensimWord2Vec",
        "gensim-fasttext": "embspace.trainers:GensimFastText",
    },
)

#: Parameters that are not hyperparameters of the model, so never swept:
#: seeds are varied by a sweep's ``seeds``, the others only choose where and
#: how visibly it runs.
NOT_SWEPT = frozenset({"random_state", "num_threads", "device", "progress"})


def estimator_name(name: str) -> str:
    """The registered spelling of ``name`` (matched case-insensitively).

    Raises
    ------
    InvalidParameterError
        No estimator of that name ("unknown estimator 'ALS'; known: WALS, SVD, ...").
    """
    if isinstance(name, str) and name in ESTIMATORS:
        return name
    folded = {n.casefold(): n for n in ESTIMATORS}
    match = folded.get(name.casefold()) if isinstance(name, str) else None
    if match is None:
        ESTIMATORS.lookup(name)  # raises, listing the known names
    assert match is not None
    return match


def estimator_class(name: str) -> type:
    """The class registered as ``name`` (imported when given as ``"module:Class"``)."""
    entry = ESTIMATORS.lookup(estimator_name(name))
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = getattr(import_module(module), attr)
    return entry


def trains_on(name: str) -> str:
    """What the estimator ``name`` trains on: ``"ratings"`` or ``"corpus"``
    (its class's ``trains_on``; ratings for a class without one)."""
    return str(getattr(estimator_class(name), "trains_on", "ratings"))


def corpus_estimators() -> list[str]:
    """The registered estimators that train on a token corpus."""
    return [n for n in ESTIMATORS if trains_on(n) == "corpus"]


def estimator_defaults(name: str) -> dict[str, Any]:
    """The parameters of estimator ``name`` with their defaults (``get_params`` order)."""
    return dict(estimator_class(name)().get_params(deep=False))


def sweepable_params(name: str) -> list[str]:
    """Parameters of ``name`` worth offering to sweep: the numeric ones that
    shape the model (not :data:`NOT_SWEPT`, not booleans), in the estimator's
    ``get_params`` order."""
    out = []
    for param, default in estimator_defaults(name).items():
        if param in NOT_SWEPT or isinstance(default, (bool, np.bool_)):
            continue
        if isinstance(default, (int, float, np.integer, np.floating)):
            out.append(param)
    return out


def check_sweep_param(name: str, param: str, defaults: Mapping[str, Any] | None = None) -> None:
    """Refuse ``param`` as the swept parameter of estimator ``name``: it must
    be one of its parameters (``defaults``: its defaults, when at hand) and
    not one of :data:`NOT_SWEPT`.

    Raises
    ------
    InvalidParameterError
        "WALS has no parameter 'alpha'; it has: ..." or "random_state cannot
        be swept: ...".
    """
    owner = estimator_name(name)
    defaults = estimator_defaults(owner) if defaults is None else defaults
    if param not in defaults:
        raise InvalidParameterError(
            f"{owner} has no parameter {param!r}; it has: {', '.join(sorted(defaults))}"
        )
    if param == "random_state":
        raise InvalidParameterError("random_state cannot be swept: give several seeds instead")
    if param in NOT_SWEPT:
        raise InvalidParameterError(
            f"{param} cannot be swept: it chooses where the model is trained, not the model"
        )


def make_estimator(
    name: str,
    params: Mapping[str, Any] | None = None,
    *,
    seed: int | None = None,
    num_threads: int | None = None,
    device: str | None = None,
) -> Any:
    """A new estimator ``name`` with ``params`` set (each given the type of its
    default by :func:`~embspace.faces.values.coerce`).

    ``seed`` sets ``random_state`` unless ``params`` does; ``num_threads`` and
    ``device`` are set when given and the estimator has them. None leaves a
    setting at the estimator's default.

    Raises
    ------
    InvalidParameterError
        An unknown estimator or parameter, or a value of the wrong type (the
        estimator itself checks the ranges when it fits).
    """
    owner = estimator_name(name)
    estimator = estimator_class(owner)()
    defaults = estimator.get_params(deep=False)
    given = dict(params or {})
    check_names(owner, given, defaults)
    settings = {k: coerce(v, defaults[k], k) for k, v in given.items()}
    if seed is not None and "random_state" in defaults and "random_state" not in settings:
        settings["random_state"] = seed
    if num_threads is not None and "num_threads" in defaults:
        settings["num_threads"] = num_threads
    if device is not None and "device" in defaults:
        settings["device"] = device
    return estimator.set_params(**settings)
