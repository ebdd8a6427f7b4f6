"""Sweeps: train one estimator over the values of a hyperparameter and compare the spaces.

A :class:`Sweep` trains a configuration per value of ``param`` (every other
parameter of the estimator unchanged), each with ``seeds`` seeds, and compares

- every run with the *reference* run of the same seed (seed-paired),
- the reference runs of different seeds with each other: the **noise floor**,
  the similarity that re-seeding alone produces, against which any change in
  similarity has to be read,
- and, through :meth:`Sweep.against`, every run with any other embeddings of
  the same entities (for example an SVD).

Trainings go through an :class:`~embspace.cache.EmbeddingCache`, so a sweep
that was interrupted resumes without retraining its finished runs, and a
second sweep that shares runs with the first (same data, estimator, parameters
and seed) reuses them.

Statistics: ``similarity`` is the mean over seeds of the seed-paired
comparisons and ``stdev`` their sample standard deviation (``ddof=1``; NaN
with one seed). ``noise_floor`` is the mean over all pairs of distinct seeds of
the reference configuration (``seeds * (seeds - 1) / 2`` pairs) and
``noise_floor_stdev`` their sample standard deviation; with one seed there is
no pair and both are NaN. The noise floor is a property of the reference
configuration, so it is repeated on every row of a measure.
"""

from __future__ import annotations

import inspect
import json
import math
import sys
import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._atomic import write_atomic
from .cache import EmbeddingCache
from .embeddings import Embeddings
from .errors import InvalidParameterError, NotFittedError
from .jsonio import json_default, plain_value, to_jsonable
from .measures import DEFAULT_MEASURES

__all__ = [
    "DEFAULT_MEASURES",
    "EVENT_KINDS",
    "RunRecord",
    "Sweep",
    "SweepCancelled",
    "SweepEvent",
    "TrainedRun",
    "fit_cached",
]


#: Kinds of :class:`SweepEvent`, in the order they occur for a run.
EVENT_KINDS = ("run_start", "iteration", "run_done", "compare_done", "done")

#: Column order of :attr:`Sweep.table`.
TABLE_COLUMNS = (
    "value",
    "measure",
    "against",
    "similarity",
    "stdev",
    "noise_floor",
    "noise_floor_stdev",
    "n_pairs",
)

REFERENCE = "reference"


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Pair:
    value_index: int
    seed: int
    other_seed: int
    against: str
    scores: dict[str, float] = field(default_factory=dict)


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _stdev(values: Sequence[float]) -> float:
    """Sample standard deviation (ddof=1); NaN for fewer than two values."""
    if len(values) < 2:
        return float("nan")
    return float(np.std(np.asarray(values, dtype=np.float64), ddof=1))


def _format_value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


@dataclass
class TrainedRun:
    """The outcome of :func:`fit_cached`: both sides of one training and how it was obtained."""

    users: Embeddings
    items: Embeddings
    cached: bool
    fit_time: float
    elapsed: float
    cache_path: str | None
    n_iter: int | None = None
    loss: float | None = None
    estimator: Any = None

    def side(self, entities: str) -> Embeddings:
        """``items`` or ``users``."""
        if entities not in ("items", "users"):
            raise InvalidParameterError(f"entities must be 'items' or 'users', got {entities!r}")
        return self.items if entities == "items" else self.users


def fit_cached(
    ratings: Any,
    estimator: Any,
    *,
    cache: EmbeddingCache | None = None,
    callback: Callable[[int, float, float | None], Any] | None = None,
    progress: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> TrainedRun:
    """Fit ``estimator`` on ``ratings``, or load the result from ``cache``.

    The estimator is fitted in place on a cache miss (``TrainedRun.estimator``
    is then the fitted estimator; None on a hit). An estimator whose
    ``random_state`` is None is random by design and is never cached.
    ``callback(iteration, elapsed, loss)`` and ``progress`` are passed to
    ``fit`` where it accepts them. ``fit_time`` of a cached run is the time of
    the training that made the entry (NaN when unknown).
    """
    t0 = time.perf_counter()
    seed = estimator.get_params(deep=False).get("random_state")
    key = None
    if cache is not None and _is_int(seed):
        key = cache.key(ratings, estimator, int(seed))
        entry = cache.lookup(key)
        if entry is not None:
            info = entry.extra
            return TrainedRun(
                users=entry.users,
                items=entry.items,
                cached=True,
                fit_time=float(info.get("fit_time") or float("nan")),
                elapsed=time.perf_counter() - t0,
                cache_path=str(entry.path),
                n_iter=info.get("n_iter"),
                loss=info.get("loss"),
            )
    _fit(estimator, ratings, callback, progress)
    fit_time = time.perf_counter() - t0
    users, items = estimator.user_embeddings_, estimator.item_embeddings_
    n_done = getattr(estimator, "n_iter_", None)
    n_done = int(n_done) if _is_int(n_done) else None
    history = getattr(estimator, "loss_history_", None)
    loss = None
    if history is not None and len(history):
        last = history[-1]
        loss = None if last is None else float(last)
    path = None
    if cache is not None and key is not None:
        info = {"fit_time": fit_time, "n_iter": n_done, "loss": loss, **dict(extra or {})}
        path = str(cache.put(key, users, items, extra=info))
    return TrainedRun(
        users=users,
        items=items,
        cached=False,
        fit_time=fit_time,
        elapsed=time.perf_counter() - t0,
        cache_path=path,
        n_iter=n_done,
        loss=loss,
        estimator=estimator,
    )


class Sweep:
    """Train ``estimator`` for each value of ``param`` and compare the spaces.

    Parameters
    ----------
    ratings : Ratings
        The data every run is trained on.
    estimator : estimator
        A scikit-learn style estimator (``get_params``/``set_params``,
        ``fit(ratings)``, fitted ``item_embeddings_``/``user_embeddings_``),
        e.g. :class:`embspace.WALS`. It is cloned for each run, never fitted itself.
    param : str
        The parameter to vary; must be one of ``estimator.get_params()`` (not
        ``random_state``: seeds are varied by ``seeds``).
    values : sequence
        The values of ``param``, distinct, in the order of the table and plots.
    reference : value, optional
        The value every run is compared with; must be one of ``values``.
        Default: ``values[0]``.
    seeds : int
        Runs per value, with seeds ``base, base + 1, ..., base + seeds - 1``
        where ``base`` is the estimator's own ``random_state`` when it is an
        integer, else 0.
    measures : sequence of str
        Names in :data:`embspace.measures.MEASURES`.
    entities : ``"items"`` or ``"users"``
        Which side of the factorization is compared.
    cache_dir : path, None or False
        Folder of the embeddings cache (None: the default folder, see
        :func:`embspace.cache.default_cache_folder`; False: no disk cache).
    k : int
        Neighbors per entity for the neighbor-based measures.
    metric : str
        Neighbor metric (``"cosine"``, ``"euclidean"``, ``"dot"``).
    device : ``"cpu"``, ``"gpu"`` or ``"auto"``
        Where the comparisons run. Training runs where the estimator's own
        ``device`` parameter says (``WALS(device="gpu")``).
    num_threads : int, optional
        Threads for training (when the estimator has ``num_threads``) and for
        the comparisons. Results do not depend on it.
    """

    def __init__(
        self,
        ratings: Any,
        estimator: Any,
        param: str,
        values: Sequence[Any],
        reference: Any = None,
        seeds: int = 1,
        measures: Sequence[str] = DEFAULT_MEASURES,
        entities: str = "items",
        cache_dir: str | Path | bool | None = None,
        k: int = 10,
        device: str = "cpu",
        num_threads: int | None = None,
        metric: str = "cosine",
    ) -> None:
        if not hasattr(ratings, "fingerprint") or not hasattr(ratings, "matrix"):
            raise InvalidParameterError(
                f"ratings must be an embspace Ratings, got {type(ratings).__name__}"
            )
        try:
            params = estimator.get_params(deep=False)
        except (AttributeError, TypeError):
            raise InvalidParameterError(
                f"estimator must be scikit-learn style (get_params/set_params), "
                f"got {type(estimator).__name__}"
            ) from None
        name = type(estimator).__name__
        if not isinstance(param, str) or param not in params:
            raise InvalidParameterError(
                f"{param!r} is not a parameter of {name}; it has: {', '.join(sorted(params))}"
            )
        if param == "random_state":
            raise InvalidParameterError(
                "random_state cannot be swept: use seeds= to train several seeds per value"
            )
        if isinstance(values, (str, bytes)):
            raise InvalidParameterError(
                f"values must be a sequence of values of {param}, not a string"
            )
        try:
            values = [plain_value(v) for v in values]
        except TypeError:
            raise InvalidParameterError(f"values must be a sequence of values of {param}") from None
        if not values:
            raise InvalidParameterError("values must not be empty")
        for i, j in combinations(range(len(values)), 2):
            if _same(values[i], values[j]):
                raise InvalidParameterError(f"value {values[i]!r} occurs more than once in values")
        reference = values[0] if reference is None else plain_value(reference)
        matches = [i for i, v in enumerate(values) if _same(v, reference)]
        if not matches:
            raise InvalidParameterError(
                f"reference {reference!r} is not among the values {values}; add it to values"
            )
        if not _is_int(seeds) or seeds < 1:
            raise InvalidParameterError(f"seeds must be an integer >= 1, got {seeds!r}")
        if entities not in ("items", "users"):
            raise InvalidParameterError(f"entities must be 'items' or 'users', got {entities!r}")
        if not _is_int(k) or k < 1:
            raise InvalidParameterError(f"k must be an integer >= 1, got {k!r}")
        if isinstance(measures, str):
            measures = (measures,)
        measures = tuple(measures)
        if not measures:
            raise InvalidParameterError("measures must name at least one measure")
        _check_measures(measures)
        if num_threads is not None and (not _is_int(num_threads) or num_threads < 0):
            raise InvalidParameterError(f"num_threads must be None or >= 0, got {num_threads!r}")
        from .device import module_for

        module_for(device)  # unknown device, or "gpu" without CuPy and a device: fail now

        own_seed = params.get("random_state")
        base = int(own_seed) if _is_int(own_seed) else 0
        self.ratings = ratings
        self.estimator = estimator
        self.param = param
        self.values: list[Any] = values
        self.reference = values[matches[0]]
        self.reference_index = matches[0]
        self.seeds: list[int] = [base + i for i in range(int(seeds))]
        self.measures = measures
        self.entities = entities
        self.k = int(k)
        self.metric = metric
        self.device = device
        self.num_threads = num_threads
        self.cache: EmbeddingCache | None = (
            None
            if cache_dir is False
            else EmbeddingCache(None if cache_dir in (None, True) else cache_dir)
        )
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._emb: dict[tuple[int, int], Embeddings] = {}
        self._runs: dict[tuple[int, int], RunRecord] = {}
        self._pairs: list[_Pair] = []
        self._external: dict[str, Embeddings] = {}
        self._knn: dict[int, tuple[Embeddings, np.ndarray]] = {}
        self._finished = False

    # ------------------------------------------------------------------ plan
    @property
    def plan(self) -> list[tuple[Any, int]]:
        """``(value, seed)`` of every run in training order: the reference
        configuration first (its seeds give the noise floor), then the others."""
        order = [self.reference_index] + [
            i for i in range(len(self.values)) if i != self.reference_index
        ]
        return [(self.values[i], s) for i in order for s in self.seeds]

    @property
    def n_runs(self) -> int:
        return len(self.values) * len(self.seeds)

    def _index(self, value: Any) -> int:
        for i, v in enumerate(self.values):
            if _same(v, value):
                return i
        raise InvalidParameterError(f"{value!r} is not one of the sweep's values {self.values}")

    def _configure(self, value: Any, seed: int) -> Any:
        from sklearn.base import clone

        params = self.estimator.get_params(deep=False)
        overrides: dict[str, Any] = {self.param: value, "random_state": seed}
        if "num_threads" in params and self.num_threads is not None:
            overrides["num_threads"] = self.num_threads
        if "random_state" not in params:
            overrides.pop("random_state")
        return clone(self.estimator).set_params(**overrides)

    # ------------------------------------------------------------------ control
    def cancel(self) -> None:
        """Ask a running :meth:`run` (in another thread) to stop at its next
        iteration; it then raises :class:`SweepCancelled`. Thread-safe."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def finished(self) -> bool:
        """True once every run is trained and compared."""
        return self._finished

    # ------------------------------------------------------------------ run
    def run(
        self, callback: Callable[[SweepEvent], Any] | None = None, progress: bool = True
    ) -> Sweep:
        """Train (or load from the cache) every run and compare it; returns self.

        ``callback(event)`` receives a :class:`SweepEvent` per step; an exception
        it raises (for example :class:`SweepCancelled`) stops the sweep and
        propagates. :meth:`cancel` stops it at the next iteration with
        :class:`SweepCancelled`. Either way the finished runs and comparisons
        are kept, and calling :meth:`run` again continues where it stopped.
        ``progress`` shows a progress bar on stderr.
        """
        from tqdm import tqdm

        self._cancel.clear()
        emit = callback if callback is not None else (lambda event: None)
        n_iter = self._n_iterations()
        plan = self.plan
        start = time.perf_counter()
        bar = tqdm(
            total=len(plan) * (n_iter or 1),
            desc=f"sweep {self.param}",
            unit="it",
            file=sys.stderr,
            disable=not progress,
            leave=False,
            dynamic_ncols=True,
        )
        try:
            for run_index, (value, seed) in enumerate(plan):
                vi = self._index(value)
                if (vi, seed) in self._emb:
                    bar.update(n_iter or 1)
                    continue
                if self._cancel.is_set():
                    raise SweepCancelled("the sweep was cancelled")
                emit(
                    SweepEvent(
                        "run_start", value=value, seed=seed, run_index=run_index, n_runs=len(plan)
                    )
                )
                bar.set_postfix_str(f"{self.param}={_format_value(value)} seed={seed}")
                record, emb = self._train(value, seed, run_index, len(plan), n_iter, emit, bar)
                with self._lock:
                    self._emb[(vi, seed)] = emb
                    self._runs[(vi, seed)] = record
                emit(
                    SweepEvent(
                        "run_done",
                        value=value,
                        seed=seed,
                        run_index=run_index,
                        n_runs=len(plan),
                        cached=record.cached,
                        elapsed=record.elapsed,
                        n_iterations=record.n_iter,
                        loss=record.loss,
                    )
                )
                for pair in self._comparisons_for(vi, seed):
                    emit(
                        SweepEvent(
                            "compare_done",
                            value=self.values[pair.value_index],
                            seed=pair.seed,
                            run_index=run_index,
                            n_runs=len(plan),
                            row=self._pair_row(pair),
                        )
                    )
        finally:
            bar.close()
        self._finished = True
        emit(SweepEvent("done", n_runs=len(plan), elapsed=time.perf_counter() - start))
        return self

    def _n_iterations(self) -> int | None:
        n = self.estimator.get_params(deep=False).get("iterations")
        return int(n) if _is_int(n) else None

    def _train(
        self,
        value: Any,
        seed: int,
        run_index: int,
        n_runs: int,
        n_iter: int | None,
        emit: Callable[[SweepEvent], Any],
        bar: Any,
    ) -> tuple[RunRecord, Embeddings]:
        estimator = self._configure(value, seed)
        done = [0]

        def on_iteration(iteration: int, elapsed: float, loss: float | None) -> None:
            if self._cancel.is_set():
                raise SweepCancelled("the sweep was cancelled")
            done[0] += 1
            bar.update(1)
            emit(
                SweepEvent(
                    "iteration",
                    value=value,
                    seed=seed,
                    run_index=run_index,
                    n_runs=n_runs,
                    iteration=int(iteration),
                    n_iterations=n_iter,
                    loss=None if loss is None else float(loss),
                    elapsed=float(elapsed),
                )
            )

        trained = fit_cached(
            self.ratings,
            estimator,
            cache=self.cache,
            callback=on_iteration,
            extra={"param": self.param, "value": value},
        )
        if self._cancel.is_set() and not trained.cached:
            raise SweepCancelled("the sweep was cancelled")
        total = n_iter or 1
        if done[0] < total:
            bar.update(total - done[0])
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
        )
        return record, trained.side(self.entities)

    # ------------------------------------------------------------------ comparisons
    def _compare(self, a: Embeddings, b: Embeddings) -> dict[str, float]:
        """The scores of every measure for one pair of runs.

        Embeddings of the same keys in the same order (all runs of a sweep, and
        an SVD of the same ratings) share one k-NN table per run across all its
        comparisons; the neighbor measures read it and only the dense measures
        go through :func:`embspace.compare`. Any other pair is passed to
        :func:`embspace.compare` whole (it aligns the keys). The scores are the
        same either way."""
        from .measures import MEASURES, compare

        neighbor = [m for m in self.measures if MEASURES[m].family == "neighbors"]
        dense = [m for m in self.measures if m not in neighbor]
        options = {"k": self.k, "metric": self.metric, "num_threads": self.num_threads}
        if not neighbor or a.keys != b.keys:
            result = compare(a, b, measures=self.measures, device=self.device, **options)
            return {name: float(result.scores[name]) for name in self.measures}
        scores: dict[str, float] = {}
        tables = (self._knn_indices(a), self._knn_indices(b))
        for name in neighbor:
            measure = MEASURES[name].function
            res = measure(a.vectors, b.vectors, **options, device=self.device, tables=tables)
            scores[name] = float(res.score)
        if dense:
            result = compare(a, b, measures=dense, device=self.device, **options)
            scores.update({name: float(result.scores[name]) for name in dense})
        return {name: scores[name] for name in self.measures}

    def _knn_indices(self, emb: Embeddings) -> np.ndarray:
        """The k-NN indices (n x k) of ``emb``, computed once per embeddings."""
        from .neighbors import knn

        entry = self._knn.get(id(emb))
        if entry is None or entry[0] is not emb:
            indices = knn(
                emb.vectors,
                self.k,
                metric=self.metric,
                num_threads=self.num_threads,
                device=self.device,
            )[1]
            entry = (emb, indices)
            with self._lock:
                self._knn[id(emb)] = entry
        return entry[1]

    def _comparisons_for(self, vi: int, seed: int) -> list[_Pair]:
        """Every comparison that the run (vi, seed) completes."""
        ri = self.reference_index
        new: list[_Pair] = []
        if vi == ri:
            run = self._emb[(ri, seed)]
            new.append(_Pair(ri, seed, seed, REFERENCE, self._compare(run, run)))
            # noise floor: this reference seed against every other finished one
            for other in self.seeds:
                if other == seed or (ri, other) not in self._emb:
                    continue
                lo, hi = min(other, seed), max(other, seed)
                if any(
                    p.against == "noise" and (p.seed, p.other_seed) == (lo, hi) for p in self._pairs
                ):
                    continue
                scores = self._compare(self._emb[(ri, lo)], self._emb[(ri, hi)])
                new.append(_Pair(ri, lo, hi, "noise", scores))
            # runs of other values that waited for this reference seed
            for (v2, s2), emb in list(self._emb.items()):
                if v2 != ri and s2 == seed and not self._has_pair(v2, s2, REFERENCE):
                    new.append(_Pair(v2, s2, s2, REFERENCE, self._compare(run, emb)))
        elif (ri, seed) in self._emb:
            new.append(
                _Pair(
                    vi,
                    seed,
                    seed,
                    REFERENCE,
                    self._compare(self._emb[(ri, seed)], self._emb[(vi, seed)]),
                )
            )
        for name, other in self._external.items():
            new.append(_Pair(vi, seed, seed, name, self._compare(self._emb[(vi, seed)], other)))
        with self._lock:
            self._pairs.extend(new)
        return new

    def _has_pair(self, vi: int, seed: int, against: str) -> bool:
        return any(
            p.value_index == vi and p.seed == seed and p.against == against for p in self._pairs
        )

    def against(self, embeddings: Any, name: str = "svd") -> pd.DataFrame:
        """Compare every run with ``embeddings`` (an :class:`Embeddings` of the
        same kind of entities, or a fitted estimator, whose
        ``item_embeddings_``/``user_embeddings_`` is taken).

        Returns the table rows of ``against == name`` (same columns as
        :attr:`table`); they are also added to :attr:`table` (replacing earlier
        rows of the same name), and runs trained later are compared too.
        """
        if not isinstance(name, str) or not name or name in (REFERENCE, "noise"):
            raise InvalidParameterError(
                f"name must be a non-empty label other than 'reference' and 'noise', got {name!r}"
            )
        if not isinstance(embeddings, Embeddings):
            attr = "item_embeddings_" if self.entities == "items" else "user_embeddings_"
            emb = getattr(embeddings, attr, None)
            if not isinstance(emb, Embeddings):
                raise InvalidParameterError(
                    f"against() takes Embeddings or a fitted estimator with {attr}, "
                    f"got {type(embeddings).__name__}"
                )
            embeddings = emb
        if not self._emb:
            raise NotFittedError("the sweep has no finished run yet: call run() first")
        with self._lock:
            self._pairs = [p for p in self._pairs if p.against != name]
            self._external[name] = embeddings
        new = [
            _Pair(vi, seed, seed, name, self._compare(emb, embeddings))
            for (vi, seed), emb in sorted(self._emb.items())
        ]
        with self._lock:
            self._pairs.extend(new)
        table = self.table
        return table[table["against"] == name].reset_index(drop=True)

    # ------------------------------------------------------------------ results
    def _pair_row(self, pair: _Pair) -> dict[str, Any]:
        return {
            "value": self.values[pair.value_index],
            "seed": pair.seed,
            "other_seed": pair.other_seed,
            "against": pair.against,
            **pair.scores,
        }

    @property
    def results(self) -> pd.DataFrame:
        """Every comparison of a run, tidy: ``value, seed, against, measure,
        similarity`` (the noise-floor pairs are in :attr:`noise`)."""
        rows = [
            {
                "value": self.values[p.value_index],
                "seed": p.seed,
                "against": p.against,
                "measure": m,
                "similarity": s,
            }
            for p in sorted(self._pairs_of(lambda p: p.against != "noise"), key=self._order)
            for m, s in p.scores.items()
        ]
        return pd.DataFrame(rows, columns=["value", "seed", "against", "measure", "similarity"])

    @property
    def noise(self) -> pd.DataFrame:
        """The noise-floor comparisons: ``seed_a, seed_b, measure, similarity``
        (reference configuration, every pair of distinct seeds)."""
        rows = [
            {"seed_a": p.seed, "seed_b": p.other_seed, "measure": m, "similarity": s}
            for p in sorted(self._pairs_of(lambda p: p.against == "noise"), key=self._order)
            for m, s in p.scores.items()
        ]
        return pd.DataFrame(rows, columns=["seed_a", "seed_b", "measure", "similarity"])

    def _pairs_of(self, keep: Callable[[_Pair], bool]) -> list[_Pair]:
        with self._lock:
            return [p for p in self._pairs if keep(p)]

    def _order(self, p: _Pair) -> tuple[int, int, int, int]:
        groups = [REFERENCE, *self._external]
        g = groups.index(p.against) if p.against in groups else len(groups)
        return (g, p.value_index, p.seed, p.other_seed)

    @property
    def noise_floor(self) -> dict[str, tuple[float, float, int]]:
        """measure -> (mean, stdev, number of seed pairs) of the noise floor."""
        noise = self._pairs_of(lambda p: p.against == "noise")
        out = {}
        for m in self.measures:
            vals = [p.scores[m] for p in noise]
            mean = float(np.mean(vals)) if vals else float("nan")
            out[m] = (mean, _stdev(vals), len(vals))
        return out

    @property
    def table(self) -> pd.DataFrame:
        """One row per (value, measure, against): mean ``similarity`` over seeds,
        its ``stdev``, the reference configuration's ``noise_floor`` and
        ``noise_floor_stdev``, and ``n_pairs`` (seeds averaged). Rows of runs
        not finished yet are absent (a sweep that is still running or was
        cancelled shows what it has)."""
        floor = self.noise_floor
        groups: dict[tuple[int, str, int], list[float]] = {}
        for p in sorted(self._pairs_of(lambda p: p.against != "noise"), key=self._order):
            for m, s in p.scores.items():
                groups.setdefault(
                    (self._order(p)[0], p.against, p.value_index, self.measures.index(m)), []
                ).append(s)
        rows = []
        for (_, against, vi, mi), sims in sorted(
            groups.items(), key=lambda kv: (kv[0][0], kv[0][3], kv[0][2])
        ):
            m = self.measures[mi]
            nf, nf_sd, _ = floor[m]
            rows.append(
                {
                    "value": self.values[vi],
                    "measure": m,
                    "against": against,
                    "similarity": float(np.mean(sims)),
                    "stdev": _stdev(sims),
                    "noise_floor": nf,
                    "noise_floor_stdev": nf_sd,
                    "n_pairs": len(sims),
                }
            )
        table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
        table.attrs.update(param=self.param, reference=self.reference, seeds=len(self.seeds))
        return table

    def wide(self, against: str = REFERENCE) -> pd.DataFrame:
        """The similarities of one ``against`` group as a value x measure frame."""
        t = self.table
        t = t[t["against"] == against]
        if t.empty:
            return pd.DataFrame(columns=list(self.measures))
        w = t.pivot(index="value", columns="measure", values="similarity")
        order = [v for v in self.values if any(_same(v, x) for x in w.index)]
        w = w.reindex(index=order, columns=[m for m in self.measures if m in w.columns])
        w.index.name = self.param
        w.columns.name = None
        return w

    @property
    def runs(self) -> list[RunRecord]:
        """The finished runs, in training order."""
        with self._lock:
            return sorted(self._runs.values(), key=lambda r: r.run_index)

    def embeddings(self, value: Any, seed: int | None = None) -> Embeddings:
        """The embeddings of the run with ``param == value`` and ``seed``
        (default: the first seed)."""
        vi = self._index(value)
        seed = self.seeds[0] if seed is None else seed
        if seed not in self.seeds:
            raise InvalidParameterError(
                f"seed {seed!r} is not one of the sweep's seeds {self.seeds}"
            )
        try:
            return self._emb[(vi, seed)]
        except KeyError:
            raise NotFittedError(
                f"the run {self.param}={_format_value(value)} seed={seed} has not finished: call run()"
            ) from None

    def comparison(
        self, value: Any, seed: int | None = None, against: str = REFERENCE, **options: Any
    ) -> Any:
        """The full :class:`~embspace.measures.Comparison` of one run (``value``,
        ``seed``; default the first seed) with the reference run of the same
        seed, or with the embeddings given to :meth:`against` under the name
        ``against``: per-entity values (which entities changed neighborhoods
        most), details, and bootstrap intervals over entities
        (``.bootstrap()``). ``options`` go to :func:`embspace.compare`."""
        from .measures import compare

        run = self.embeddings(value, seed)
        # the same order as the table's comparisons (unitmatch is not symmetric)
        if against == REFERENCE:
            a, b = self.embeddings(self.reference, seed), run
        elif against in self._external:
            a, b = run, self._external[against]
        else:
            known = [REFERENCE, *self._external]
            raise InvalidParameterError(f"against must be one of {known}, got {against!r}")
        return compare(
            a,
            b,
            measures=self.measures,
            k=self.k,
            metric=self.metric,
            num_threads=self.num_threads,
            device=self.device,
            **options,
        )

    # ------------------------------------------------------------------ output
    def plot(self, against: str | Sequence[str] | None = None) -> Any:
        """A matplotlib Figure: one panel per measure, x = the parameter,
        y = similarity (mean over seeds, stdev as error bars), the noise floor
        as a band. ``against`` picks the groups drawn (default: all)."""
        from .plots import plot_sweep

        return plot_sweep(
            self.table,
            param=self.param,
            reference=self.reference,
            against=against,
            measures=self.measures,
            values=self.values,
        )

    def to_dict(self) -> dict[str, Any]:
        """Configuration, table, per-pair results, noise pairs and runs, JSON-ready."""
        return {
            "param": self.param,
            "values": self.values,
            "reference": self.reference,
            "seeds": self.seeds,
            "measures": list(self.measures),
            "entities": self.entities,
            "k": self.k,
            "metric": self.metric,
            "estimator": type(self.estimator).__name__,
            "estimator_params": to_jsonable(self.estimator.get_params(deep=False), fallback=repr),
            "data_fingerprint": self.ratings.fingerprint,
            "table": _records(self.table),
            "results": _records(self.results),
            "noise": _records(self.noise),
            "runs": [r.to_dict() for r in self.runs],
        }

    def save(self, folder: str | Path, stem: str | None = None) -> dict[str, Path]:
        """Write ``<stem>_table.csv``, ``<stem>_results.csv``, ``<stem>.json``
        and ``<stem>.png`` into ``folder`` (created), each atomically. ``stem``
        defaults to ``sweep_<param>``. Returns ``{"table", "results", "json",
        "png"}`` -> path."""
        from .plots import save_figure

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        stem = stem or f"sweep_{self.param}"
        paths = {
            "table": folder / f"{stem}_table.csv",
            "results": folder / f"{stem}_results.csv",
            "json": folder / f"{stem}.json",
            "png": folder / f"{stem}.png",
        }
        write_atomic(paths["table"], self.table.to_csv(index=False).encode())
        write_atomic(paths["results"], self.results.to_csv(index=False).encode())
        write_atomic(
            paths["json"],
            json.dumps(self.to_dict(), indent=2, default=json_default, allow_nan=True).encode(),
        )
        save_figure(self.plot(), paths["png"])
        return paths

    def __repr__(self) -> str:
        done = len(self._runs)
        vals = ", ".join(_format_value(v) for v in self.values)
        return (
            f"<Sweep {type(self.estimator).__name__}.{self.param} over [{vals}] "
            f"(reference {_format_value(self.reference)}), {len(self.seeds)} seed(s), "
            f"{done}/{self.n_runs} runs done>"
        )


def _same(a: Any, b: Any) -> bool:
    """Equality of two parameter values (0 == 0.0, but True is not 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    try:
        eq = a == b
        return bool(eq) if not isinstance(eq, np.ndarray) else bool(eq.all())
    except Exception:
        return a is b


def _check_measures(measures: Sequence[str]) -> None:
    from .measures import MEASURES

    unknown = [m for m in measures if m not in MEASURES]
    if unknown:
        raise InvalidParameterError(
            f"unknown measure(s) {unknown}; known: {', '.join(sorted(MEASURES))}"
        )


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


def _records(frame: pd.DataFrame) -> list[dict[str, Hashable]]:
    out = []
    for row in frame.to_dict(orient="records"):
        out.append(
            {
                k: (None if isinstance(v, float) and math.isnan(v) else plain_value(v))
                for k, v in row.items()
            }
        )
    return out
