"""A plain training function as a sweepable estimator.

``train(data, *, seed, **params) -> Embeddings | dict[str, Embeddings]``:
:class:`FunctionTrainer` makes it a scikit-learn style estimator whose
parameters are the function's keyword parameters (defaults from its
signature, overrides given to the constructor) plus ``random_state``, passed
to the function as ``seed``. So a sweep varies one of the function's
parameters, seeds it, and caches it like any estimator; the cache key holds
the function's name and the sha256 of its source
(:func:`embspace.cache.function_identity`), so editing the function makes new
entries.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from ..embeddings import Embeddings
from ..errors import InvalidParameterError
from ._base import SIDES, IterationCallback

__all__ = ["FunctionTrainer"]

#: Parameter names that the estimator itself uses.
_RESERVED = ("function", "random_state")


def _signature(function: Any) -> inspect.Signature:
    if not callable(function):
        raise InvalidParameterError(
            f"a training function must be callable, got {type(function).__name__}"
        )
    try:
        return inspect.signature(function)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            f"the signature of {function!r} cannot be read; wrap it in a Python function "
            "train(data, *, seed, **params)"
        ) from None


def function_params(function: Any) -> tuple[dict[str, Any], bool]:
    """The keyword parameters of ``train(data, *, seed, **params)`` with their
    defaults (``inspect.Parameter.empty`` when required), and whether it takes
    ``**kwargs``. Refuses (:class:`~embspace.errors.InvalidParameterError`) a
    function without a first positional parameter (the data) or without a
    keyword parameter ``seed``."""
    sig = _signature(function)
    params = list(sig.parameters.values())
    name = getattr(function, "__qualname__", None) or type(function).__name__
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not params or params[0].kind not in positional:
        raise InvalidParameterError(
            f"{name} must take the data as its first positional parameter: "
            "train(data, *, seed, **params)"
        )
    rest = params[1:]
    seed = next((p for p in rest if p.name == "seed"), None)
    if seed is None or seed.kind not in (
        inspect.Parameter.KEYWORD_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise InvalidParameterError(
            f"{name} must take a keyword parameter 'seed' (the sweep varies it): "
            "train(data, *, seed, **params)"
        )
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in rest)
    keyword = {
        p.name: p.default
        for p in rest
        if p.name != "seed"
        and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }
    clash = [n for n in keyword if n in _RESERVED]
    if clash:
        raise InvalidParameterError(
            f"{name} has a parameter named {clash[0]!r}, which the sweep uses itself; rename it"
        )
    return keyword, var_kw


class FunctionTrainer:
    """``train(data, *, seed, **params)`` as a scikit-learn style estimator.

    Parameters
    ----------
    function : callable
        ``train(data, *, seed, **params)`` returning :class:`~embspace.Embeddings`
        (one side, read as ``"items"``) or a dict ``{"items": ..., "users":
        ...}`` (either or both). ``seed`` is an integer (the sweep's seed) or
        None.
    random_state : int or None
        Passed to the function as ``seed``.
    **params
        Values of the function's keyword parameters (the others keep the
        defaults of its signature). A parameter without a default must be
        given. Names the function does not take are refused, unless it takes
        ``**kwargs``.

    ``get_params()`` is ``function``, ``random_state`` and every keyword
    parameter, so :class:`~embspace.Sweep` can vary any of them; ``fit(data)``
    calls the function and sets ``item_embeddings_`` / ``user_embeddings_``.
    A keyword parameter named ``num_threads`` is set by the sweep's
    ``num_threads``, and those named in
    :data:`embspace.cache.RESULT_NEUTRAL_PARAMS` (``num_threads``,
    ``n_jobs``, ``verbose``, ...) are left out of the cache key: they must
    not change the result.
    """

    def __init__(self, function: Callable[..., Any], random_state: Any = None, **params: Any):
        keyword, var_kw = function_params(function)
        unknown = [n for n in params if n not in keyword and not var_kw]
        if unknown:
            raise InvalidParameterError(
                f"{_name(function)} has no parameter {unknown[0]!r}; it takes: "
                f"{', '.join(keyword) or 'no keyword parameter but seed'}"
            )
        merged = {**keyword, **params}
        missing = [n for n, v in merged.items() if v is inspect.Parameter.empty]
        if missing:
            raise InvalidParameterError(
                f"{_name(function)} needs a value for {', '.join(map(repr, missing))} "
                "(it has no default): give it in params"
            )
        self.function = function
        self.random_state = random_state
        self._params = merged

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"function": self.function, "random_state": self.random_state, **self._params}

    def set_params(self, **params: Any) -> FunctionTrainer:
        if "function" in params:
            raise InvalidParameterError("the function of a FunctionTrainer cannot be replaced")
        _, var_kw = function_params(self.function)
        for name, value in params.items():
            if name == "random_state":
                self.random_state = value
            elif name in self._params or var_kw:
                self._params[name] = value
            else:
                raise InvalidParameterError(
                    f"{_name(self.function)} has no parameter {name!r}; it takes: "
                    f"{', '.join(self._params)}"
                )
        return self

    def fit(self, data: Any, callback: IterationCallback | None = None) -> FunctionTrainer:
        """Call ``function(data, seed=random_state, **params)`` and keep its
        embeddings as ``item_embeddings_`` / ``user_embeddings_``."""
        import time

        t0 = time.perf_counter()
        result = self.function(data, seed=self.random_state, **self._params)
        sides: Mapping[str, Any]
        if isinstance(result, Embeddings):
            sides = {"items": result}
        elif isinstance(result, Mapping) and result:
            sides = result
        else:
            raise InvalidParameterError(
                f"{_name(self.function)} must return Embeddings or a dict of them "
                f"({' or '.join(map(repr, SIDES))} -> Embeddings), got {type(result).__name__}"
            )
        for side, emb in sides.items():
            if side not in SIDES or not isinstance(emb, Embeddings):
                raise InvalidParameterError(
                    f"{_name(self.function)} returned {{{side!r}: {type(emb).__name__}}}; "
                    f"the keys must be {' or '.join(map(repr, SIDES))} and the values Embeddings"
                )
        self.item_embeddings_ = sides.get("items")
        self.user_embeddings_ = sides.get("users")
        self.n_iter_ = None
        self.converged_ = None
        self.fit_time_ = time.perf_counter() - t0
        if callback is not None:
            callback(1, self.fit_time_, None)
        return self

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"FunctionTrainer({_name(self.function)}{', ' + shown if shown else ''})"


def _name(function: Any) -> str:
    if isinstance(function, functools.partial):
        return _name(function.func)
    return str(getattr(function, "__qualname__", None) or type(function).__name__)
