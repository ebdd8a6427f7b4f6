"""Training the runs of a sweep: fit through the embeddings cache, report
progress as events, stop when asked.

:func:`fit_cached` fits an estimator or loads the result from an
:class:`~embspace.cache.EmbeddingCache` (a sweep that was stopped resumes
without retraining its finished runs; another sweep sharing runs reuses them).
:func:`train_run` is one run of a sweep: the estimator configured for its value
and seed, its iterations reported as :class:`SweepEvent` and checked for
cancellation, and its :class:`RunRecord`.
"""

from __future__ import annotations

import inspect
import math
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..cache import CacheKey, EmbeddingCache
from ..embeddings import Embeddings
from ..errors import EmbspaceWarning, InvalidParameterError
from ..factorization import balance
from ..trainers import SIDES, FunctionTrainer, TokenCorpus, fitted_sides, is_ratings
from .plan import format_value, is_int

__all__ = [
    "EVENT_KINDS",
    "RunRecord",
    "SweepCancelled",
    "SweepEvent",
    "TrainedRun",
    "as_data",
    "as_estimator",
    "configure",
    "count_entities",
    "fit_cached",
    "n_iterations",
    "stopped_at_cap",
    "tolerance",
    "train_run",
    "warn_stopped_at_cap",
]

#: Kinds of :class:`SweepEvent`, in the order they occur for a run.
EVENT_KINDS = ("run_start", "iteration", "run_done", "compare_done", "done")


class SweepCancelled(Exception):
    """Raised out of :meth:`Sweep.run` after :meth:`Sweep.cancel`, or raised by a
    callback to stop the sweep. Finished runs stay in the cache and in the sweep."""


@dataclass(frozen=True)
class SweepEvent:
    """A progress report passed to the ``callback`` of :meth:`Sweep.run`.

    ``kind`` is one of :data:`EVENT_KINDS`:

    - ``run_start``: a run (``value``, ``seed``, ``run_index`` of ``n_runs``) begins;
    - ``iteration``: the estimator finished ``iteration`` of ``n_iterations``
      (``loss`` and ``elapsed`` seconds since the run started);
    - ``run_done``: the run is trained or loaded (``cached``), in ``elapsed`` seconds;
    - ``compare_done``: one comparison finished; ``row`` is a dict with
      ``value``, ``seed``, ``other_seed``, ``against`` and one entry per measure;
    - ``done``: the whole sweep finished, ``elapsed`` seconds in all.
    """

    kind: str
    value: Any = None
    seed: int | None = None
    run_index: int | None = None
    n_runs: int | None = None
    iteration: int | None = None
    n_iterations: int | None = None
    loss: float | None = None
    cached: bool | None = None
    elapsed: float | None = None
    row: dict[str, Any] | None = None


@dataclass
class RunRecord:
    """One training of a sweep.

    ``fit_time`` is the training time in seconds (for a cached run, the time of
    the training that made the entry, NaN when unknown); ``elapsed`` the wall
    time this sweep spent on the run (training, or loading from the cache).
    ``n_iter`` and ``loss`` are the iterations done and the final loss;
    ``converged`` the estimator's ``converged_`` (True: its convergence test
    was met; False: it ran to its iteration cap, or was given no test; None:
    the estimator does not say); ``tol`` the run's ``tol`` parameter (None
    when unset, 0 or absent); ``last_decrease`` the relative loss decrease of
    its last iteration (None without a loss history).
    """

    value: Any
    seed: int
    cached: bool
    fit_time: float
    elapsed: float
    cache_path: str | None
    run_index: int
    n_iter: int | None = None
    loss: float | None = None
    converged: bool | None = None
    tol: float | None = None
    last_decrease: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainedRun:
    """The outcome of :func:`fit_cached`: the sides of one training (``"items"``
    and ``"users"``, or ``"items"`` alone for a one-sided trainer such as
    Word2Vec) and how it was obtained."""

    sides: dict[str, Embeddings]
    cached: bool
    fit_time: float
    elapsed: float
    cache_path: str | None
    n_iter: int | None = None
    loss: float | None = None
    estimator: Any = None
    converged: bool | None = None
    last_decrease: float | None = None

    def side(self, entities: str) -> Embeddings:
        """``items`` or ``users``; a side the training did not make raises
        :class:`~embspace.errors.InvalidParameterError`."""
        if entities not in ("items", "users"):
            raise InvalidParameterError(f"entities must be 'items' or 'users', got {entities!r}")
        if entities not in self.sides:
            raise InvalidParameterError(
                f"this training has no {entities} side, only {', '.join(self.sides)} "
                "(a one-sided trainer such as Word2Vec makes items only)"
            )
        return self.sides[entities]

    @property
    def users(self) -> Embeddings:
        return self.side("users")

    @property
    def items(self) -> Embeddings:
        return self.side("items")


def fit_cached(
    ratings: Any,
    estimator: Any,
    *,
    cache: EmbeddingCache | None = None,
    callback: Callable[[int, float, float | None], Any] | None = None,
    progress: bool = False,
    extra: Mapping[str, Any] | None = None,
    key: CacheKey | None = None,
) -> TrainedRun:
    """Fit ``estimator`` on ``ratings``, or load the result from ``cache``.

    ``ratings`` is the data the estimator fits: a :class:`~embspace.Ratings`,
    or other data with a ``fingerprint`` (a
    :class:`~embspace.trainers.TokenCorpus`). The result is read with
    :func:`embspace.trainers.fitted_sides` (``item_embeddings_`` /
    ``user_embeddings_`` or ``embeddings_``, Embeddings or arrays). The estimator is fitted in place on a cache miss (``TrainedRun.estimator``
    is then the fitted estimator; None on a hit). An estimator whose
    ``random_state`` is None is random by design and is never cached.
    ``callback(iteration, elapsed, loss)`` and ``progress`` are passed to
    ``fit`` where it accepts them. ``fit_time`` of a cached run is the time of
    the training that made the entry (NaN when unknown); ``n_iter``, ``loss``,
    ``converged`` and ``last_decrease`` are stored with the entry and read
    back from it (None when the entry does not have them). ``key``: the
    entry's key when the caller computed it (a Dask sweep computes the keys on
    the client: a class or function sent to a worker by value can lose the
    qualified name and source that its key hashes); None: computed here.
    """
    t0 = time.perf_counter()
    seed = estimator.get_params(deep=False).get("random_state")
    if cache is not None and is_int(seed) and key is None:
        key = cache.key(ratings, estimator, int(seed))
    if cache is None or not is_int(seed):
        key = None
    if cache is not None and key is not None:
        entry = cache.lookup(key)
        if entry is not None:
            info = entry.extra
            return TrainedRun(
                sides=dict(entry.sides),
                cached=True,
                fit_time=float(info.get("fit_time") or float("nan")),
                elapsed=time.perf_counter() - t0,
                cache_path=str(entry.path),
                n_iter=info.get("n_iter"),
                loss=info.get("loss"),
                converged=_flag(info.get("converged")),
                last_decrease=_number(info.get("last_decrease")),
            )
    _fit(estimator, ratings, callback, progress)
    fit_time = time.perf_counter() - t0
    sides = fitted_sides(estimator, ratings)
    n_done = getattr(estimator, "n_iter_", None)
    n_done = int(n_done) if is_int(n_done) else None
    history = getattr(estimator, "loss_history_", None)
    loss = last_decrease = None
    if history is not None and len(history):
        last = history[-1]
        loss = None if last is None else float(last)
        last_decrease = _last_decrease(history)
    converged = _flag(getattr(estimator, "converged_", None))
    path = None
    if cache is not None and key is not None:
        info = {
            "fit_time": fit_time,
            "n_iter": n_done,
            "loss": loss,
            "converged": converged,
            "last_decrease": last_decrease,
            **dict(extra or {}),
        }
        stored = cache.put(key, sides.get("users"), sides.get("items"), extra=info)
        path = None if stored is None else str(stored)
    return TrainedRun(
        sides=sides,
        cached=False,
        fit_time=fit_time,
        elapsed=time.perf_counter() - t0,
        cache_path=path,
        n_iter=n_done,
        loss=loss,
        estimator=estimator,
        converged=converged,
        last_decrease=last_decrease,
    )


def _flag(value: Any) -> bool | None:
    """A recorded convergence flag: a bool, or None when unknown."""
    return bool(value) if isinstance(value, (bool, np.bool_)) else None


def _number(value: Any) -> float | None:
    """A recorded finite number, or None."""
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        v = float(value)
        return v if math.isfinite(v) else None
    return None


def _last_decrease(history: Any) -> float | None:
    """The relative loss decrease of the last iteration of a WALS-style
    history (start, then two values per iteration): ``(L_{t-1} - L_t) /
    L_{t-1}``; None when there is no whole iteration or the numbers are not
    finite."""
    if len(history) < 3:
        return None
    before, after = _number(history[-3]), _number(history[-1])
    if before is None or after is None:
        return None
    return (before - after) / before if before > 0 else 0.0


def _fit(
    estimator: Any,
    ratings: Any,
    callback: Callable[[int, float, float | None], Any] | None,
    progress: bool,
) -> None:
    """``estimator.fit(ratings, callback=..., progress=...)``, passing only the
    keyword arguments its ``fit`` accepts."""
    try:
        sig = inspect.signature(estimator.fit)
        names = set(sig.parameters)
        var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    except (TypeError, ValueError):
        names, var_kw = set(), False
    kwargs: dict[str, Any] = {}
    if callback is not None and ("callback" in names or var_kw):
        kwargs["callback"] = callback
    if "progress" in names or var_kw:
        kwargs["progress"] = progress
    estimator.fit(ratings, **kwargs)


def as_data(data: Any) -> Any:
    """The data of a sweep: a :class:`~embspace.Ratings` or anything with a
    ``fingerprint`` string as it is; a list of token lists as a
    :class:`~embspace.trainers.TokenCorpus` (which has one). Anything else is
    an :class:`~embspace.errors.InvalidParameterError`."""
    if isinstance(getattr(data, "fingerprint", None), str):
        return data
    what = (
        "ratings must be an embspace Ratings, a token corpus (a list of token lists) or data "
        f"with a fingerprint, got {type(data).__name__}"
    )
    if isinstance(data, (str, bytes)) or not isinstance(data, (list, tuple)):
        raise InvalidParameterError(what)
    try:
        return TokenCorpus(data)
    except InvalidParameterError as exc:
        raise InvalidParameterError(f"{what}: {exc}") from None


def as_estimator(estimator: Any, params: Mapping[str, Any] | None = None) -> Any:
    """The sweep's estimator: a scikit-learn style estimator (a clone with
    ``params`` set, when given), or a function ``train(data, *, seed,
    **params)`` as a :class:`~embspace.trainers.FunctionTrainer`. An object
    with neither ``get_params`` and ``fit`` nor a call is refused."""
    if params is not None and not isinstance(params, Mapping):
        raise InvalidParameterError(f"params must be a mapping, got {type(params).__name__}")
    if (
        not hasattr(estimator, "get_params")
        and callable(estimator)
        and not isinstance(estimator, type)
    ):
        return FunctionTrainer(estimator, **dict(params or {}))
    try:
        estimator.get_params(deep=False)
    except (AttributeError, TypeError):
        raise InvalidParameterError(
            f"estimator must be scikit-learn style (get_params/set_params) or a function "
            f"train(data, *, seed, **params), got {type(estimator).__name__}"
        ) from None
    if not callable(getattr(estimator, "fit", None)):
        raise InvalidParameterError(
            f"estimator must have a fit(data) method, {type(estimator).__name__} has none"
        )
    if params:
        from sklearn.base import clone

        estimator = clone(estimator).set_params(**dict(params))
    return estimator


def count_entities(
    data: Any, estimator: Any, entities: str, gauge: str | None = None
) -> int | None:
    """The number of entities on the ``entities`` side of a training, when it
    is known before training (a Ratings; a trainer's ``n_entities``); None
    otherwise. A trainer that declares its ``sides`` and does not make
    ``entities`` (or, with ``gauge="balanced"``, both sides) is refused here."""
    sides = tuple(getattr(estimator, "sides", SIDES))
    if entities not in sides:
        raise InvalidParameterError(
            f"{type(estimator).__name__} makes {', '.join(sides)} only: use entities={sides[0]!r}"
        )
    if gauge == "balanced" and set(sides) != set(SIDES):
        raise InvalidParameterError(
            f"gauge='balanced' needs both sides of a factorization; {type(estimator).__name__} "
            f"makes {', '.join(sides)} only"
        )
    own = getattr(estimator, "n_entities", None)
    if callable(own):
        n = own(data, entities)
        return None if n is None else int(n)
    if is_ratings(data):
        return int(data.matrix.shape[1 if entities == "items" else 0])
    return None


def configure(
    estimator: Any, param: str, value: Any, seed: int, num_threads: int | None = None
) -> Any:
    """A clone of ``estimator`` with ``param = value``, ``random_state = seed``
    (when it has one) and ``num_threads`` (when it has one and it is given)."""
    from sklearn.base import clone

    params = estimator.get_params(deep=False)
    overrides: dict[str, Any] = {param: value}
    if "random_state" in params:
        overrides["random_state"] = seed
    if "num_threads" in params and num_threads is not None:
        overrides["num_threads"] = num_threads
    return clone(estimator).set_params(**overrides)


def n_iterations(estimator: Any) -> int | None:
    """The estimator's ``iterations`` parameter, when it is an integer."""
    n = estimator.get_params(deep=False).get("iterations")
    return int(n) if is_int(n) else None


def tolerance(estimator: Any) -> float | None:
    """The estimator's ``tol`` parameter when it sets a convergence test (a
    number > 0); None otherwise (no ``tol``, None or 0: run the cap)."""
    tol = estimator.get_params(deep=False).get("tol")
    number = _number(tol)
    return number if number is not None and number > 0 else None


def stopped_at_cap(record: RunRecord) -> bool:
    """Whether a run had a convergence test (``tol``) and stopped at its
    iteration cap without meeting it."""
    return record.tol is not None and record.converged is False


def warn_stopped_at_cap(records: Sequence[RunRecord], param: str) -> None:
    """Warn (:class:`~embspace.errors.EmbspaceWarning`) when runs of a sweep
    had a ``tol`` and stopped at their iteration cap (:func:`stopped_at_cap`):
    their similarities then measure the iteration budget as well as
    ``param``. One warning for the whole sweep, listing the values."""
    capped = [r for r in records if stopped_at_cap(r)]
    if not capped:
        return
    by_value: dict[str, list[int]] = {}
    for r in capped:
        by_value.setdefault(format_value(r.value), []).append(r.seed)
    where = "; ".join(
        f"{param}={v} (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))})"
        for v, seeds in by_value.items()
    )
    caps = sorted({r.n_iter for r in capped if r.n_iter is not None})
    cap = f" of {', '.join(map(str, caps))} iterations" if caps else ""
    decreases = [r.last_decrease for r in capped if r.last_decrease is not None]
    still = (
        f"; the loss was still falling by {min(decreases):.2g} to {max(decreases):.2g} "
        "(relative) per iteration"
        if decreases
        else ""
    )
    tols = sorted({r.tol for r in capped if r.tol is not None})
    warnings.warn(
        f"{len(capped)} of {len(records)} runs stopped at their cap{cap} before the relative "
        f"loss decrease fell below tol={', '.join(format_value(t) for t in tols)}: {where}"
        f"{still}. Their similarities measure the iteration budget as well as {param}; "
        "raise iterations (see Sweep.runs and the table's converged column).",
        EmbspaceWarning,
        stacklevel=3,
    )


def train_run(
    ratings: Any,
    estimator: Any,
    *,
    param: str,
    value: Any,
    seed: int,
    run_index: int,
    n_runs: int,
    entities: str,
    cache: EmbeddingCache | None,
    cancel: threading.Event,
    emit: Callable[[SweepEvent], Any],
    on_iteration: Callable[[], Any] = lambda: None,
    gauge: str | None = None,
    key: CacheKey | None = None,
) -> tuple[RunRecord, Embeddings]:
    """Train (or load) one run of a sweep: ``estimator`` is the configured clone
    (see :func:`configure`). Each iteration is reported to ``emit`` as an
    ``iteration`` event and to ``on_iteration()`` (a progress bar); once
    ``cancel`` is set the next iteration raises :class:`SweepCancelled`, and a
    training that ended after it was set is not used (its cache entry, if
    written, is complete and valid). Returns the run's record and its
    ``entities`` side; with ``gauge="balanced"`` that side of
    :func:`embspace.balance` of the run's two sides (the cache keeps the
    factors as trained). ``key``: the cache key, when the caller computed it
    (see :func:`fit_cached`)."""
    n_iter = n_iterations(estimator)

    def iteration(i: int, elapsed: float, loss: float | None) -> None:
        if cancel.is_set():
            raise SweepCancelled("the sweep was cancelled")
        on_iteration()
        emit(
            SweepEvent(
                "iteration",
                value=value,
                seed=seed,
                run_index=run_index,
                n_runs=n_runs,
                iteration=int(i),
                n_iterations=n_iter,
                loss=None if loss is None else float(loss),
                elapsed=float(elapsed),
            )
        )

    trained = fit_cached(
        ratings,
        estimator,
        cache=cache,
        callback=iteration,
        extra={"param": param, "value": value},
        key=key,
    )
    if cancel.is_set() and not trained.cached:
        raise SweepCancelled("the sweep was cancelled")
    record = RunRecord(
        value=value,
        seed=seed,
        cached=trained.cached,
        fit_time=trained.fit_time,
        elapsed=trained.elapsed,
        cache_path=trained.cache_path,
        run_index=run_index,
        n_iter=trained.n_iter,
        loss=trained.loss,
        converged=trained.converged,
        tol=tolerance(estimator),
        last_decrease=trained.last_decrease,
    )
    if gauge == "balanced":
        if set(trained.sides) != {"items", "users"}:
            raise InvalidParameterError(
                f"gauge='balanced' needs both sides of a factorization; "
                f"{type(estimator).__name__} makes {', '.join(trained.sides)} only"
            )
        users, items = balance(trained.users, trained.items)
        return record, items if entities == "items" else users
    return record, trained.side(entities)
