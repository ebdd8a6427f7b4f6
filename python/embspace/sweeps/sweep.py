"""The :class:`Sweep`: a thin coordinator of a plan, its trainings, its
comparisons and its views.

What a sweep holds is its trained runs (embeddings and :class:`RunRecord`),
the scores of its compared pairs, and the external embeddings given to
:meth:`Sweep.against`. Everything else is derived: the plan says which pairs
the runs make, so :meth:`Sweep.run` always finishes what is missing, trainings
*and* comparisons. A sweep stopped anywhere (a callback raising, ``cancel()``,
Ctrl-C in a training or in a comparison) resumes with ``run()`` to the very
table an uninterrupted sweep gives, and :attr:`Sweep.finished` is true only
when every run is trained and every pair compared.
"""

from __future__ import annotations

import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._threads import check_threads
from ..cache import EmbeddingCache
from ..device import module_for
from ..embeddings import Embeddings
from ..errors import EmbspaceError, EmbspaceWarning, InvalidParameterError, NotFittedError
from ..measures import MEASURES, check_measures
from ..neighbors import METRICS
from ..trainers import fitted_sides
from . import export, views
from .comparisons import RunComparer
from .plan import NOISE, REFERENCE, PairKey, RunKey, format_value, is_int, make_plan
from .statistics import ALPHA, noise_floor, seeds_needed, smallest_p_value
from .training import (
    RunRecord,
    SweepCancelled,
    SweepEvent,
    as_data,
    as_estimator,
    configure,
    count_entities,
    n_iterations,
    train_run,
    warn_stopped_at_cap,
)

__all__ = ["Sweep"]


class Sweep:
    """Train ``estimator`` for each value of ``param`` and compare the spaces.

    A configuration per value of ``param`` (every other parameter of the
    estimator unchanged) is trained with every one of ``seeds`` seeds, and

    - the runs of each value with distinct seeds are compared with each other:
      the value's **floor**, the similarity that re-seeding alone produces;
    - each value's runs with the reference value's runs of *other* seeds
      (``pairing="cross"``, the default: runs that share a seed share their
      initial factors, and their similarity would mix the value's effect with
      the shared start) or of the same seed (``pairing="same_seed"``);
    - and, through :meth:`against`, every run with any other embeddings of the
      same entities (for example an SVD).

    Each row of :attr:`table` has its similarity, its floor and the
    reference's, a chance level (the score of unrelated spaces, from shuffled
    rows), the calibrated score ``(similarity - chance) / (floor - chance)``,
    and a permutation test of the run labels (is the value's space different
    from the reference's beyond seed noise?) with Holm's adjustment across the
    table: see :mod:`embspace.sweeps.statistics`, and :mod:`embspace.sweeps.plan`
    for exactly which pairs are compared. :meth:`changes` tells which entities
    moved. Nothing is retrained for the statistics: each run's k-NN table is
    computed once and every comparison reads it.

    Parameters
    ----------
    ratings : Ratings, token corpus, or data with a ``fingerprint``
        The data every run is trained on: a :class:`~embspace.Ratings`, or for
        a trainer of other data (Word2Vec) a list of token lists (made a
        :class:`~embspace.trainers.TokenCorpus`) or any object with a
        ``fingerprint`` string (the cache key's data field).
    estimator : estimator or function
        A scikit-learn style estimator (``get_params``/``set_params``,
        ``fit(data)``) whose fitted result is embeddings: ``item_embeddings_``
        and/or ``user_embeddings_``, or ``embeddings_`` (one side, compared as
        ``entities="items"``), :class:`~embspace.Embeddings` or n x d arrays
        (keyed by the ratings' keys or the estimator's ``vocabulary_``): e.g.
        :class:`embspace.WALS` or an adapter of :mod:`embspace.trainers`
        (implicit, scikit-learn, gensim). Or a function ``train(data, *,
        seed, **params) -> Embeddings | dict[str, Embeddings]``, wrapped in a
        :class:`~embspace.trainers.FunctionTrainer`. It is cloned for each run,
        never fitted itself.
    param : str
        The parameter to vary; must be one of ``estimator.get_params()`` (for
        a function: one of its keyword parameters; not ``random_state``:
        seeds are varied by ``seeds``).
    values : sequence
        The values of ``param``, distinct, in the order of the table and plots.
    reference : value, optional
        The value every run is compared with; must be one of ``values``.
        Default: ``values[0]``.
    seeds : int
        Runs per value, with seeds ``base, base + 1, ..., base + seeds - 1``
        where ``base`` is the estimator's own ``random_state`` when it is an
        integer, else 0. The permutation test's smallest p-value is set by it
        (1/10 with 3 seeds, 1/35 with 4, 1/126 with 5, 1/462 with 6:
        :func:`~embspace.sweeps.statistics.smallest_p_value`); an
        :class:`~embspace.errors.EmbspaceWarning` says so at construction when
        no row of the table could then be flagged ``changed`` after Holm's
        adjustment (or when one seed gives no floor and no test at all).
    measures : sequence of str, optional
        Names in :data:`embspace.measures.MEASURES`, checked before any training
        (:func:`embspace.measures.check_measures`, with the runs' dimensions
        when the estimator's ``factors`` tells them: a named measure that
        cannot apply, like ``unitmatch`` when sweeping ``factors``, is
        refused). None: :data:`~embspace.measures.DEFAULT_MEASURES`, less those
        that cannot apply to the runs, skipped with a warning
        (:attr:`skipped_measures`).
    entities : ``"items"`` or ``"users"``
        Which side of the factorization is compared (a one-sided trainer,
        such as Word2Vec, makes ``"items"`` only).
    cache_dir : path, URL, None or False
        Folder of the embeddings cache (None: the default folder, see
        :func:`embspace.cache.default_cache_folder`; False: no disk cache), or
        an fsspec URL (``s3://bucket/runs``: a cache that the workers of a
        cluster share, see :class:`~embspace.cache.EmbeddingCache`).
    k : int
        Neighbors per entity for the neighbor-based measures (at most the
        number of entities - 1).
    device : ``"cpu"``, ``"gpu"`` or ``"auto"``
        Where the comparisons run, resolved once here (:attr:`device` is then
        ``"cpu"`` or ``"gpu"``). Training runs where the estimator's own
        ``device`` parameter says (``WALS(device="gpu")``).
    num_threads : int, optional
        Threads for training (when the estimator has ``num_threads``) and for
        the comparisons: None (every CPU) or ``1 <= num_threads <=
        embspace._threads.max_threads()``. Results do not depend on it.
    metric : str
        Neighbor metric (``"cosine"``, ``"euclidean"``, ``"dot"``).
    pairing : ``"cross"`` or ``"same_seed"``
        Which runs the table's ``similarity`` pairs (see above and
        :mod:`embspace.sweeps.plan`). The floors and the test always use
        pairs of distinct seeds. With one seed, ``"same_seed"`` is the only
        pairing there is.
    gauge : None or ``"balanced"``
        With ``"balanced"``, each run's embeddings are those of
        :func:`embspace.balance` (``user_embeddings_``, ``item_embeddings_``)
        of that run: the factors of the same model ``U V^T`` re-expressed in
        the split where ``U^T U = V^T V`` is diagonal. A factorisation only
        defines ``U V^T``: ``(U G, V G^-T)`` is the same model for any
        invertible ``G``, and WALS pins the split only through its
        regularisation (``lambda / w0`` at large unobserved weights). It
        matters when sweeping a weight or the regularisation of WALS (the
        split drifts with ``lambda / w0``) and when comparing WALS with SVD
        (whose split is already balanced); CCA, invariant to any invertible
        linear map, does not change, CKA, Procrustes, unit matching and the
        neighbor measures do. The cache stores the factors as trained.
    params : mapping, optional
        Parameter values set on (a clone of) the estimator before the sweep;
        for a function, the values of its keyword parameters (the others keep
        the defaults of its signature).
    """

    def __init__(
        self,
        ratings: Any,
        estimator: Any,
        param: str,
        values: Sequence[Any],
        reference: Any = None,
        seeds: int = 1,
        measures: Sequence[str] | None = None,
        entities: str = "items",
        cache_dir: str | Path | bool | None = None,
        k: int = 10,
        device: str = "cpu",
        num_threads: int | None = None,
        metric: str = "cosine",
        pairing: str = "cross",
        gauge: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        ratings = as_data(ratings)
        estimator = as_estimator(estimator, params)
        own = estimator.get_params(deep=False)
        plan = make_plan(
            own, type(estimator).__name__, param, values, reference, seeds, measures, pairing
        )
        if gauge is not None and gauge != "balanced":
            raise InvalidParameterError(f"gauge must be None or 'balanced', got {gauge!r}")
        if entities not in ("items", "users"):
            raise InvalidParameterError(f"entities must be 'items' or 'users', got {entities!r}")
        if not is_int(k) or k < 1:
            raise InvalidParameterError(f"k must be an integer >= 1, got {k!r}")
        n_entities = count_entities(ratings, estimator, entities, gauge)
        if (
            n_entities is not None
            and any(MEASURES[m].neighbor_based for m in plan.measures)
            and k > n_entities - 1
        ):
            raise InvalidParameterError(
                f"k = {k} neighbors needs more than the {n_entities} {entities} of the ratings"
            )
        if metric not in METRICS:
            raise InvalidParameterError(f"metric must be one of {METRICS}, got {metric!r}")
        check_threads(num_threads)
        # the one resolution of the device: unknown, or "gpu" without CuPy, fails now
        self.device: str = module_for(device)[0]

        self._plan = plan
        self.ratings = ratings
        self.estimator = estimator
        self.param: str = plan.param
        self.values: list[Any] = plan.values
        self.reference = plan.reference
        self.reference_index: int = plan.reference_index
        self.seeds: list[int] = plan.seeds
        self.measures: tuple[str, ...] = plan.measures
        #: default measures left out because they cannot apply (measure -> why)
        self.skipped_measures: dict[str, str] = dict(plan.skipped)
        self.pairing: str = plan.effective_pairing
        self.gauge: str | None = gauge
        self.entities = entities
        self.k = int(k)
        self.metric = metric
        self.num_threads = num_threads
        self.cache: EmbeddingCache | None = None
        if cache_dir is None or cache_dir is True:
            self.cache = EmbeddingCache(None)
        elif cache_dir is not False:
            self.cache = EmbeddingCache(cache_dir)
        self._comparer = RunComparer(
            plan.measures, k=self.k, metric=metric, device=self.device, num_threads=num_threads
        )
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._emb: dict[RunKey, Embeddings] = {}
        self._runs: dict[RunKey, RunRecord] = {}
        self._scores: dict[PairKey, dict[str, float]] = {}
        self._external: dict[str, Embeddings] = {}
        self._warn_if_untestable()

    def _warn_if_untestable(self) -> None:
        """Warn when no row of the table can be flagged ``changed``: one seed
        (no floor, no test), or too few seeds for the permutation test to reach
        ``ALPHA`` after Holm's adjustment over the table's tests."""
        n_tests = (len(self.values) - 1) * len(self.measures)
        if n_tests == 0:
            return
        s = len(self.seeds)
        need = seeds_needed(n_tests)
        if s < 2:
            warnings.warn(
                f"with 1 seed a sweep has no noise floor and no test: nothing it reports "
                f"can be told apart from re-seeding; use seeds >= {need} "
                f"(for {n_tests} test{'s' if n_tests > 1 else ''} at {ALPHA:g} after "
                "Holm's adjustment)",
                EmbspaceWarning,
                stacklevel=3,
            )
            return
        p_min = smallest_p_value(s)
        if n_tests * p_min > ALPHA:
            tests = f"{n_tests} test{'s' if n_tests > 1 else ''}"
            warnings.warn(
                f"with {s} seeds the permutation test's smallest p-value is {p_min:.3g}; "
                f"after Holm's adjustment over the table's {tests} it is "
                f"{min(1.0, n_tests * p_min):.3g}, so no value can be flagged changed at "
                f"{ALPHA:g}: use seeds >= {need}",
                EmbspaceWarning,
                stacklevel=3,
            )

    # ------------------------------------------------------------------ plan
    @property
    def plan(self) -> list[tuple[Any, int]]:
        """``(value, seed)`` of every run in training order: the reference
        configuration first, then the others."""
        return [(self.values[vi], seed) for vi, seed in self._plan.runs]

    @property
    def n_runs(self) -> int:
        return self._plan.n_runs

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
        """True when every run is trained and every pair of runs (and of runs and
        :meth:`against` embeddings) is compared."""
        with self._lock:
            if len(self._emb) < self.n_runs:
                return False
        return not any(self._missing_pairs(run) for run in self._plan.runs)

    # ------------------------------------------------------------------ run
    def run(
        self,
        callback: Callable[[SweepEvent], Any] | None = None,
        progress: bool = True,
        executor: Any = None,
    ) -> Sweep:
        """Train (or load from the cache) every run and compare it; returns self.

        ``callback(event)`` receives a :class:`SweepEvent` per step; an exception
        it raises (for example :class:`SweepCancelled`) stops the sweep and
        propagates. :meth:`cancel` stops it at the next iteration with
        :class:`SweepCancelled`. Either way the finished runs and comparisons
        are kept, and calling :meth:`run` again continues where it stopped: it
        trains the runs that are missing and makes every comparison that is
        missing, those of runs trained before the stop included
        (``compare_done`` events report them with their run's ``run_index``).
        ``progress`` shows a progress bar on stderr. When the estimator has a
        convergence test (``tol``) and runs stopped at their iteration cap
        without meeting it, the finished sweep warns
        (:class:`~embspace.errors.EmbspaceWarning`) and names them; the
        table's ``converged`` column says which rows they touch.

        ``executor``, a ``distributed.Client``, runs the sweep on its Dask
        cluster as one task graph (trainings through the same cache, one k-NN
        table per run, every comparison), with the same events and the same
        :attr:`table` as a local run: see :mod:`embspace.sweeps.distributed`
        (and use a cache the workers share: a common folder or an fsspec URL
        as ``cache_dir``).
        """
        from tqdm import tqdm

        client = None
        if executor is not None:
            from .distributed import check_client

            client = check_client(executor)
        self._cancel.clear()
        emit = callback if callback is not None else (lambda event: None)
        per_run = n_iterations(self.estimator) or 1
        runs = self._plan.runs
        start = time.perf_counter()
        bar = tqdm(
            total=len(runs) * per_run,
            desc=f"sweep {self.param}",
            unit="it",
            file=sys.stderr,
            disable=not progress,
            leave=False,
            dynamic_ncols=True,
        )
        try:
            if client is not None:
                from .distributed import run_graph

                run_graph(self, client, emit, bar, per_run)
            for run_index, run in enumerate(runs):  # after a graph: what it could not see
                if run in self._emb:
                    bar.update(per_run if client is None else 0)
                else:
                    self._train(run, run_index, emit, bar, per_run)
                for pair in self._missing_pairs(run):
                    row = self._compare_pair(pair)
                    emit(
                        SweepEvent(
                            "compare_done",
                            value=row["value"],
                            seed=pair.seed,
                            run_index=run_index,
                            n_runs=len(runs),
                            row=row,
                        )
                    )
        finally:
            bar.close()
        warn_stopped_at_cap(self.runs, self.param)
        emit(SweepEvent("done", n_runs=len(runs), elapsed=time.perf_counter() - start))
        return self

    def _train(
        self,
        run: RunKey,
        run_index: int,
        emit: Callable[[SweepEvent], Any],
        bar: Any,
        per_run: int,
    ) -> None:
        """Train (or load) one run, record it, and report ``run_start``/``run_done``."""
        vi, seed = run
        value = self.values[vi]
        n_runs = self.n_runs
        if self._cancel.is_set():
            raise SweepCancelled("the sweep was cancelled")
        emit(SweepEvent("run_start", value=value, seed=seed, run_index=run_index, n_runs=n_runs))
        bar.set_postfix_str(f"{self.param}={format_value(value)} seed={seed}")
        ticks = [0]

        def tick() -> None:
            if ticks[0] < per_run:
                ticks[0] += 1
                bar.update(1)

        record, emb = train_run(
            self.ratings,
            configure(self.estimator, self.param, value, seed, self.num_threads),
            param=self.param,
            value=value,
            seed=seed,
            run_index=run_index,
            n_runs=n_runs,
            entities=self.entities,
            cache=self.cache,
            cancel=self._cancel,
            emit=emit,
            on_iteration=tick,
            gauge=self.gauge,
        )
        bar.update(per_run - ticks[0])
        emb = self._sharing_keys(emb)
        with self._lock:
            self._emb[run] = emb
            self._runs[run] = record
        emit(
            SweepEvent(
                "run_done",
                value=value,
                seed=seed,
                run_index=run_index,
                n_runs=n_runs,
                cached=record.cached,
                elapsed=record.elapsed,
                n_iterations=record.n_iter,
                loss=record.loss,
            )
        )

    def _sharing_keys(self, emb: Embeddings) -> Embeddings:
        """``emb`` on the key list of the runs recorded before when its keys
        are the same (they are for every run of one data): one list for all
        runs, so that the many key checks of the comparisons are identity
        checks instead of comparisons of n keys."""
        with self._lock:
            first = next(iter(self._emb.values()), None)
        if first is None or first.keys is emb.keys or first.keys != emb.keys:
            return emb
        return first._with_vectors(emb.vectors, ids=emb.ids, metadata=emb.metadata)

    def _record_run(self, run: RunKey, record: RunRecord, emb: Embeddings) -> None:
        """Record a run trained elsewhere (a task of a Dask graph)."""
        with self._lock:
            self._emb[run] = emb
            self._runs[run] = record

    def _record_table(self, run: RunKey, table: Any) -> None:
        """Keep the k-NN table of a run computed elsewhere, with its embeddings
        (the same numbers as the recorded ones) as the run's."""
        with self._lock:
            if run in self._emb:
                self._emb[run] = table.embeddings
        self._comparer.keep(run, table)

    def _record_scores(self, pair: PairKey, scores: dict[str, float]) -> dict[str, Any]:
        """Record the scores of a pair compared elsewhere; returns its row."""
        b = self._plan.sides(pair)[1]
        with self._lock:
            if not isinstance(b, str) or b in self._external:
                self._scores[pair] = scores
        return self._pair_row(pair, scores)

    # ------------------------------------------------------------------ comparisons
    def _side(self, side: RunKey | str) -> Embeddings:
        return self._external[side] if isinstance(side, str) else self._emb[side]

    def _missing_pairs(self, run: RunKey) -> list[PairKey]:
        """The pairs of ``run`` whose sides all exist but that are not compared yet."""
        with self._lock:
            if run not in self._emb:
                return []
            pairs = self._plan.pairs_of_run(run, list(self._external))
            return [
                p
                for p in pairs
                if p not in self._scores
                and all(
                    (s in self._external) if isinstance(s, str) else (s in self._emb)
                    for s in self._plan.sides(p)
                )
            ]

    def _compare_pair(self, pair: PairKey) -> dict[str, Any]:
        """Compare one pair, record its scores, and return its row (see
        :meth:`_pair_row`). Nothing is recorded if the comparison is interrupted."""
        a, b = self._plan.sides(pair)
        with self._lock:
            ea, eb = self._side(a), self._side(b)
        if pair.chance:
            scores = self._comparer.chance(a, ea, b, eb)
        else:
            scores = self._comparer.scores(a, ea, b, eb)
        with self._lock:
            if not isinstance(b, str) or self._external.get(b) is eb:
                self._scores[pair] = scores
        return self._pair_row(pair, scores)

    def _pair_row(self, pair: PairKey, scores: dict[str, float]) -> dict[str, Any]:
        return {
            "value": self.values[pair.value_index],
            "seed": pair.seed,
            "other_seed": pair.other_seed,
            "against": pair.against,
            "chance": pair.chance,
            **scores,
        }

    def against(self, embeddings: Any, name: str = "svd") -> pd.DataFrame:
        """Compare every run with ``embeddings`` (an :class:`Embeddings` of the
        same kind of entities, or a fitted estimator, whose
        ``item_embeddings_``/``user_embeddings_`` is taken).

        Returns the table rows of ``against == name`` (same columns as
        :attr:`table`); they are also added to :attr:`table` (replacing earlier
        rows of the same name), and runs trained later are compared too. The
        measures are checked against the dimensions first; an error (or an
        interruption) leaves the sweep as it was.
        """
        if not isinstance(name, str) or not name or name in (REFERENCE, NOISE):
            raise InvalidParameterError(
                f"name must be a non-empty label other than 'reference' and 'noise', got {name!r}"
            )
        if not isinstance(embeddings, Embeddings):
            attr = "item_embeddings_" if self.entities == "items" else "user_embeddings_"
            try:
                emb = fitted_sides(embeddings, self.ratings).get(self.entities)
            except EmbspaceError:
                emb = None
            if not isinstance(emb, Embeddings):
                raise InvalidParameterError(
                    f"against() takes Embeddings or a fitted estimator with {attr}, "
                    f"got {type(embeddings).__name__}"
                )
            embeddings = emb
        with self._lock:
            runs = sorted(self._emb.items())
        if not runs:
            raise NotFittedError("the sweep has no finished run yet: call run() first")
        for d in sorted({emb.d for _, emb in runs}):
            check_measures(self.measures, dims=(d, embeddings.d))
        new: dict[PairKey, dict[str, float]] = {}
        for (vi, seed), emb in runs:
            pair = PairKey(vi, seed, seed, name)
            new[pair] = self._comparer.scores((vi, seed), emb, name, embeddings)
            if seed == self.seeds[0]:
                chance = PairKey(vi, seed, seed, name, chance=True)
                new[chance] = self._comparer.chance((vi, seed), emb, name, embeddings)
        with self._lock:
            self._scores = {p: s for p, s in self._scores.items() if p.against != name}
            self._scores.update(new)
            self._external[name] = embeddings
            late = [
                p
                for run in sorted(self._emb)
                for p in self._plan.pairs_of_run(run, [name])
                if p.against == name and p not in new
            ]
        for pair in late:  # runs trained meanwhile by a run() in another thread
            self._compare_pair(pair)
        return views.against_rows(self.table, name)

    # ------------------------------------------------------------------ results
    def _snapshot(self) -> tuple[dict[PairKey, dict[str, float]], list[str]]:
        with self._lock:
            return dict(self._scores), list(self._external)

    @property
    def table(self) -> pd.DataFrame:
        """One row per (value, measure, against), columns
        :data:`~embspace.sweeps.TABLE_COLUMNS`: ``similarity`` (mean over the
        pairs of the pairing), its ``stdev`` and ``n_pairs``; the value's
        ``floor`` (and ``floor_stdev``), the ``reference_floor`` (also as
        ``noise_floor``/``noise_floor_stdev``, its name before every value had
        a floor; missing against external embeddings), ``chance``,
        ``calibrated``, the permutation test's ``p_value``, ``p_adjusted``
        (Holm, across every test of the table) and ``changed`` (``p_adjusted
        <= 0.05``; missing where there is no test). See
        :mod:`embspace.sweeps.statistics`. Rows of runs not finished yet are
        absent (a sweep that is still running or was cancelled shows what it
        has); a row's test needs all its pairs. ``converged`` is True when
        every run of the row converged (the value's runs, and for rows against
        the reference also the reference's runs; see :attr:`RunRecord.converged
        <embspace.sweeps.RunRecord>`), False when one ran to its iteration cap
        (always so for WALS without ``tol``: nothing was tested), None when
        the estimator does not say."""
        scores, externals = self._snapshot()
        return views.table(self._plan, scores, externals, converged=self._row_converged())

    def _row_converged(self) -> Callable[[int, str], bool | None]:
        """``converged(value_index, against)`` of a table row, from the runs now recorded."""
        with self._lock:
            flags: dict[int, list[bool | None]] = {}
            for (vi, _), record in self._runs.items():
                flags.setdefault(vi, []).append(record.converged)

        def converged(value_index: int, against: str) -> bool | None:
            seen = list(flags.get(value_index, []))
            if against == REFERENCE:
                seen += flags.get(self.reference_index, [])
            if any(f is False for f in seen):
                return False
            if not seen or any(f is None for f in seen):
                return None
            return True

        return converged

    @property
    def results(self) -> pd.DataFrame:
        """Every comparison of a run with a reference run or external
        embeddings, tidy: ``value, seed, other_seed, against, measure,
        similarity`` (the floor pairs are in :attr:`noise`)."""
        scores, externals = self._snapshot()
        return views.results(self._plan, scores, externals)

    @property
    def noise(self) -> pd.DataFrame:
        """The floor comparisons: ``value, seed_a, seed_b, measure,
        similarity``, every pair of distinct seeds of every value (the
        reference value first)."""
        return views.noise(self._plan, self._snapshot()[0])

    @property
    def noise_floor(self) -> dict[str, tuple[float, float, int]]:
        """measure -> (mean, stdev, number of seed pairs) of the reference
        value's floor (its runs of distinct seeds compared)."""
        return noise_floor(self._snapshot()[0], self.measures, self.reference_index)

    @property
    def test(self) -> dict[str, Any]:
        """What the permutation test of :attr:`table` can say with these seeds:
        ``seeds``, ``smallest_p_value`` (NaN with one seed), ``n_tests`` (the
        Holm family: values other than the reference x measures),
        ``smallest_adjusted`` (``n_tests * smallest_p_value``, capped at 1),
        ``alpha`` and ``seeds_needed`` to be able to flag a change."""
        s = len(self.seeds)
        n_tests = (len(self.values) - 1) * len(self.measures)
        p_min = smallest_p_value(s)
        return {
            "seeds": s,
            "smallest_p_value": p_min,
            "n_tests": n_tests,
            "smallest_adjusted": min(1.0, n_tests * p_min) if s >= 2 else float("nan"),
            "alpha": ALPHA,
            "seeds_needed": seeds_needed(n_tests) if n_tests else 2,
        }

    def wide(self, against: str = REFERENCE) -> pd.DataFrame:
        """The similarities of one ``against`` group as a value x measure frame."""
        return views.wide(self._plan, self.table, against)

    @property
    def runs(self) -> list[RunRecord]:
        """The trained runs, in training order."""
        with self._lock:
            return sorted(self._runs.values(), key=lambda r: r.run_index)

    def embeddings(self, value: Any, seed: int | None = None) -> Embeddings:
        """The embeddings of the run with ``param == value`` and ``seed``
        (default: the first seed)."""
        vi = self._plan.index(value)
        seed = self.seeds[0] if seed is None else seed
        if seed not in self.seeds:
            raise InvalidParameterError(
                f"seed {seed!r} is not one of the sweep's seeds {self.seeds}"
            )
        try:
            return self._emb[(vi, seed)]
        except KeyError:
            raise NotFittedError(
                f"the run {self.param}={format_value(value)} seed={seed} has not finished: call run()"
            ) from None

    def comparison(
        self,
        value: Any,
        seed: int | None = None,
        against: str = REFERENCE,
        other_seed: int | None = None,
        **options: Any,
    ) -> Any:
        """The full :class:`~embspace.measures.Comparison` of one run (``value``,
        ``seed``; default the first seed) with the reference run of seed
        ``other_seed``, or with the embeddings given to :meth:`against` under
        the name ``against``: per-entity values (which entities changed
        neighborhoods most), details, and bootstrap intervals over entities
        (``.bootstrap()``). ``other_seed`` defaults to the seed after ``seed``
        (cyclically) with ``pairing="cross"``, to ``seed`` itself with
        ``"same_seed"``. ``options`` go to :func:`embspace.compare`; for the
        statistics of every pair see :attr:`table` and :meth:`changes`."""
        seed = self.seeds[0] if seed is None else seed
        run = self.embeddings(value, seed)
        key = (self._plan.index(value), seed)
        # the same order as the table's comparisons (unitmatch is not symmetric)
        if against == REFERENCE:
            if other_seed is None:
                i = self.seeds.index(seed)
                other_seed = (
                    self.seeds[(i + 1) % len(self.seeds)] if self.pairing == "cross" else seed
                )
            ref = self.embeddings(self.reference, other_seed)
            return self._comparer.compare(
                (self.reference_index, other_seed), ref, key, run, **options
            )
        if against in self._external:
            return self._comparer.compare(key, run, against, self._external[against], **options)
        known = [REFERENCE, *self._external]
        raise InvalidParameterError(f"against must be one of {known}, got {against!r}")

    # ------------------------------------------------------------------ where it moved
    def _run_embeddings(self, run: RunKey) -> Embeddings:
        with self._lock:
            emb = self._emb.get(run)
        if emb is None:
            vi, seed = run
            raise NotFittedError(
                f"the run {self.param}={format_value(self.values[vi])} seed={seed} "
                "has not finished: call run()"
            )
        return emb

    def _entity_table(self) -> pd.DataFrame:
        """The ratings' table of the compared side: ``n_ratings`` (and for
        items the metadata: ``title``, ``genres``, ...), indexed by key. For a
        token corpus, ``n_ratings`` is each token's number of occurrences."""
        r = self.ratings
        if not hasattr(r, "matrix"):  # other data: its token counts, when it has them
            counts = r.counts() if callable(getattr(r, "counts", None)) else {}
            frame = pd.DataFrame({"n_ratings": np.array(list(counts.values()), dtype=np.int64)})
            frame.index = pd.Index(list(counts), tupleize_cols=False)
            return frame
        if self.entities == "items":
            frame = r.items.copy()
            keys = r.item_keys
        else:
            frame = pd.DataFrame({"n_ratings": np.diff(r.matrix.indptr).astype(np.int64)})
            keys = r.user_keys
        frame.index = pd.Index(keys, tupleize_cols=False)
        return frame

    def changes(
        self, value: Any, against: str = REFERENCE, measure: str = "neighbors"
    ) -> pd.DataFrame:
        """Per entity, how far the runs of ``value`` moved its neighborhood from
        the reference's (or from the external embeddings ``against``), against
        what re-seeding alone does.

        One row per entity, in the order of the embeddings, columns
        :data:`~embspace.sweeps.changes.CHANGES_COLUMNS`: ``key``, ``title``,
        ``n_ratings`` (its ratings in the data), ``similarity`` (mean over the
        pairs of the sweep's pairing of the per-entity values of ``measure``, a
        neighbor measure: ``neighbors``, ``mutual_knn`` or ``overlap_curve``),
        ``floor`` (mean of ``floor_value`` and ``floor_reference``, the entity's
        mean over pairs of distinct seeds of each configuration; ``floor_value``
        alone against external embeddings), the per-entity permutation test's
        ``p_value``, ``q_value`` (Benjamini-Hochberg across entities) and
        ``changed`` (``q_value <= 0.05``; missing without a test). See
        :mod:`embspace.sweeps.changes`. Sort it to read it, e.g.
        ``sweep.changes(2.0).sort_values(["q_value", "similarity"])``.

        Reads the runs' k-NN tables (no retraining, no new search); an
        :class:`~embspace.errors.EmbspaceWarning` says when the seeds are too
        few for any entity to reach 0.05."""
        from .changes import entity_changes

        vi = self._plan.index(value)
        ri = self.reference_index
        with self._lock:
            externals = dict(self._external)
        if against != REFERENCE and against not in externals:
            known = [REFERENCE, *externals]
            raise InvalidParameterError(f"against must be one of {known}, got {against!r}")
        seeds = self.seeds
        s = len(seeds)
        cache: dict[tuple[Any, Any], np.ndarray] = {}

        def values(a: RunKey | str, b: RunKey | str) -> np.ndarray:
            if (a, b) not in cache:
                ea = externals[a] if isinstance(a, str) else self._run_embeddings(a)
                eb = externals[b] if isinstance(b, str) else self._run_embeddings(b)
                cache[(a, b)] = self._comparer.per_entity(a, ea, b, eb, measure)
            return cache[(a, b)]

        first = self._run_embeddings((vi, seeds[0]))
        floor_v = [values((vi, lo), (vi, hi)) for lo, hi in combinations(seeds, 2)]
        floor_r = None
        test = None
        if against == REFERENCE:
            floor_r = [values((ri, lo), (ri, hi)) for lo, hi in combinations(seeds, 2)]
            if self.pairing == "cross":
                sims = (
                    floor_r
                    if vi == ri
                    else [values((ri, o), (vi, x)) for x in seeds for o in seeds if o != x]
                )
            else:
                sims = [values((ri, x), (vi, x)) for x in seeds]
            if s >= 2 and vi != ri:
                if smallest_p_value(s) > ALPHA:
                    warnings.warn(
                        f"with {s} seeds the per-entity test's smallest p-value is "
                        f"{smallest_p_value(s):.3g}: no entity can be flagged changed at "
                        f"{ALPHA:g}; use seeds >= {seeds_needed(1)}",
                        EmbspaceWarning,
                        stacklevel=2,
                    )
                test = np.full((2 * s, 2 * s, first.n), np.nan)
                for (a, sa), (b, sb) in combinations(list(enumerate(seeds)), 2):
                    for p, q, got in (
                        (a, b, values((ri, sa), (ri, sb))),
                        (s + a, s + b, values((vi, sa), (vi, sb))),
                        (a, s + b, values((ri, sa), (vi, sb))),
                        (b, s + a, values((ri, sb), (vi, sa))),
                    ):
                        test[p, q] = test[q, p] = got
        else:
            sims = [values((vi, x), against) for x in seeds]
        info = self._entity_table()
        n_ratings = info["n_ratings"].reindex(pd.Index(first.keys, tupleize_cols=False))
        frame = entity_changes(
            first.keys,
            first.titles,
            n_ratings.fillna(0).to_numpy(np.int64),
            sims,
            floor_v,
            floor_r,
            test,
        )
        frame.attrs.update(
            param=self.param,
            value=self.values[vi],
            against=against,
            measure=measure,
            seeds=s,
            pairing=self.pairing,
        )
        return frame

    def changes_by(
        self,
        value: Any,
        by: str = "popularity",
        *,
        bins: int = 5,
        against: str = REFERENCE,
        measure: str = "neighbors",
        plot: bool = False,
    ) -> Any:
        """:meth:`changes` summarised by groups of entities: ``by="popularity"``
        bins the entities by their number of ratings into ``bins`` quantile
        bins (fewer when quantiles coincide), any other ``by`` names a column of
        the entities' metadata (for items, a column of ``ratings.items`` such
        as ``"genres"``; a ``|``-separated value counts the entity in each of
        its parts). One row per group: ``n_entities``, the median
        ``n_ratings``, mean ``similarity``, ``floor`` and ``floor_value``,
        ``n_changed`` and ``changed_fraction`` (see
        :func:`embspace.sweeps.changes.group_changes`). ``plot=True`` returns a
        matplotlib Figure of it instead (:func:`embspace.plots.plot_changes_by`)."""
        from .changes import group_changes, popularity_bins

        if not isinstance(by, str):
            raise InvalidParameterError(f"by must be 'popularity' or a column name, got {by!r}")
        frame = self.changes(value, against=against, measure=measure)
        if by == "popularity":
            labels = popularity_bins(frame["n_ratings"].to_numpy(), bins)
        else:
            info = self._entity_table()
            if by not in info.columns or by == "n_ratings":
                usable = [c for c in info.columns if c not in ("n_ratings",)]
                raise InvalidParameterError(
                    f"by must be 'popularity' or a column of the {self.entities}' metadata "
                    f"({', '.join(map(repr, usable)) or 'none'}), got {by!r}"
                )
            column = info[by].reindex(pd.Index(frame["key"].tolist(), tupleize_cols=False))
            labels = pd.Series(column.to_numpy(), dtype=object)
        grouped = group_changes(frame, labels, by)
        grouped.attrs.update(frame.attrs, by=by)
        if plot:
            from ..plots import plot_changes_by

            return plot_changes_by(grouped, by=by)
        return grouped

    # ------------------------------------------------------------------ output
    def plot(self, against: str | Sequence[str] | None = None) -> Any:
        """A matplotlib Figure: one panel per measure, x = the parameter,
        y = similarity (mean over seeds, stdev as error bars); the reference
        compared with itself is not drawn, and the reference's noise floor is
        a band only beside the comparisons with the reference (see
        :func:`embspace.plots.plot_sweep`). ``against`` picks the groups drawn
        (default: all)."""
        from ..plots import plot_sweep

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
        return export.to_dict(self)

    def save(self, folder: str | Path, stem: str | None = None) -> dict[str, Path]:
        """Write ``<stem>_table.csv``, ``<stem>_results.csv``, ``<stem>.json``
        and ``<stem>.png`` into ``folder`` (created), each atomically, and what
        :meth:`report` needs (``<stem>_changes.csv``, ``<stem>_neighbors.json``,
        ``<stem>_provenance.json``: ``embspace report DIR`` rebuilds the report
        from them). ``stem`` defaults to ``sweep_<param>``. Returns kind -> path
        (see :func:`embspace.sweeps.export.save`)."""
        return export.save(self, folder, stem)

    def report(self, path: str | Path, title: str | None = None) -> Path:
        """Write the sweep's HTML report to ``path`` (atomically) and return the
        path: one self-contained file that opens offline, with the tables (floors,
        chance, calibrated scores, p-values, verdicts), interactive plots, the
        per-entity changes (searchable, sortable), the neighbors of the most
        changed entities side by side, and the provenance (see
        :mod:`embspace.report`; needs plotly, ``embspace[report]``). The same
        report is rebuilt from a saved folder by ``embspace report DIR``."""
        from ..report import write_report

        if not self.finished:
            raise NotFittedError("the sweep has not finished: call run() first")
        return write_report(export.report_data(self), path, title=title)

    def __repr__(self) -> str:
        done = len(self._runs)
        vals = ", ".join(format_value(v) for v in self.values)
        return (
            f"<Sweep {type(self.estimator).__name__}.{self.param} over [{vals}] "
            f"(reference {format_value(self.reference)}), {len(self.seeds)} seed(s), "
            f"{done}/{self.n_runs} runs done>"
        )
