"""Running a sweep on a Dask cluster: :meth:`Sweep.run(executor=client)
<embspace.Sweep.run>` with a ``distributed.Client``.

The sweep becomes one task graph, submitted at once:

- ``train``: one task per ``(value, seed)`` still missing, the same cached
  training as a local run (:func:`~embspace.sweeps.training.train_run` through
  the sweep's :class:`~embspace.cache.EmbeddingCache`, which the workers share
  when it is a shared folder or an fsspec URL); it returns the run's record and
  the compared side of its embeddings;
- ``knn``: one task per run (and per external embeddings) that computes the
  run's k-NN table once, at the width every neighbor measure of the sweep
  reads (no task when no measure is neighbor-based); the tables come back to
  the caller too, so that :meth:`Sweep.changes` searches nothing again;
- ``compare``: one task per pair of the plan (:mod:`embspace.sweeps.plan`) not
  compared yet, reading the two tables, or one chance level.

The ratings are sent to the cluster once (``client.scatter(...,
broadcast=True)``: one copy per worker, so that the death of a worker loses
no data the graph cannot recompute) and the tasks refer to them. Results come back to the caller as the futures finish and are
recorded into the sweep as local runs record theirs, keyed by run and pair, so
the order in which they finish changes nothing: :attr:`Sweep.table` equals the
local run's, to the bit (training and k-NN give the same numbers whatever the
thread count).

**Threads.** Each task runs with ``num_threads`` threads: the sweep's
``num_threads`` when it is given, else the worker's CPUs divided by its task
slots (a worker of ``nthreads=1`` on an 8-core machine trains with 8 threads,
one of ``nthreads=8`` with 1 per task), capped by
:func:`embspace._threads.max_threads`. Results do not depend on it.

**Events.** Workers report ``run_start`` and ``iteration`` as Dask structured
events (``Worker.log_event``) on a topic of this run, which the client follows
(``Client.subscribe_topic``); ``run_done``, ``compare_done`` and ``done`` are
emitted as the futures finish. Every event reaches ``callback`` in the
caller's thread, and per run in the local order (``run_start``, its
iterations, ``run_done``); runs and comparisons interleave as the cluster
runs them.

**Cancellation.** :meth:`Sweep.cancel`, an exception of the callback, or
Ctrl-C cancels every pending future. Tasks already running on a worker finish
there (Dask does not interrupt a running task): a training that ends writes
its cache entry, complete and valid, and the next run loads it. Whatever had
come back is recorded, so ``run()`` again (local or on a cluster) continues.

**Failures.** A worker that dies mid-task has its tasks rescheduled by Dask
(up to ``distributed.scheduler.allowed-failures`` times); finished trainings
on the shared cache are not repeated.

Dask is optional: nothing here imports it before :func:`run_graph` is called.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Hashable
from typing import Any

from .._threads import max_threads
from ..cache import CacheKey
from ..embeddings import Embeddings
from ..errors import InvalidParameterError
from ..measures import MEASURES
from ..measures.neighborhood import table_width
from ..neighbors import NeighborTable
from .comparisons import RunComparer
from .plan import PairKey, RunKey
from .training import (
    RunRecord,
    SweepCancelled,
    SweepEvent,
    configure,
    n_iterations,
    train_run,
)

__all__ = ["check_client", "run_graph", "task_threads"]

#: Seconds between two looks at the futures, the worker events and :meth:`Sweep.cancel`.
POLL_INTERVAL = 0.05


def check_client(executor: Any) -> Any:
    """``executor`` if it is a ``distributed.Client``, else an
    :class:`~embspace.errors.InvalidParameterError`."""
    try:
        from distributed import Client
    except ImportError:
        raise InvalidParameterError(
            "executor= needs dask.distributed: pip install 'embspace[dask]'"
        ) from None
    if not isinstance(executor, Client):
        raise InvalidParameterError(
            f"executor must be a distributed.Client, got {type(executor).__name__}"
        )
    return executor


def task_threads(num_threads: int | None) -> int:
    """Threads of one task on a worker: ``num_threads`` when given, else the
    CPUs this process may use divided by the worker's task slots (at least 1,
    at most :func:`~embspace._threads.max_threads`)."""
    if num_threads is not None:
        return int(num_threads)
    slots = 1
    try:
        from distributed import get_worker

        slots = int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        pass
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(max_threads(), (cpus or 1) // max(1, slots)))


def _log(topic: str, message: dict[str, Any]) -> None:
    """Send a structured event to the client, when running on a worker."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return
    worker.log_event(topic, message)


# ---------------------------------------------------------------- tasks (run on workers)
def _train_task(
    ratings: Any,
    estimator: Any,
    settings: dict[str, Any],
    value: Any,
    seed: int,
    run_index: int,
    key: CacheKey | None,
) -> tuple[RunRecord, Embeddings]:
    topic = settings["topic"]
    threads = task_threads(settings["num_threads"])
    _log(topic, {"kind": "run_start", "run_index": run_index})

    def emit(event: SweepEvent) -> None:
        if event.kind == "iteration":
            _log(
                topic,
                {
                    "kind": "iteration",
                    "run_index": run_index,
                    "iteration": event.iteration,
                    "loss": event.loss,
                    "elapsed": event.elapsed,
                },
            )

    return train_run(
        ratings,
        configure(estimator, settings["param"], value, seed, threads),
        param=settings["param"],
        value=value,
        seed=seed,
        run_index=run_index,
        n_runs=settings["n_runs"],
        entities=settings["entities"],
        cache=settings["cache"],
        cancel=threading.Event(),
        emit=emit,
        gauge=settings["gauge"],
        key=key,
    )


def _cache_key(sweep: Any, value_index: int, seed: int) -> CacheKey | None:
    """The cache key of a run, computed here on the client: a class or a
    function that cloudpickle sends to a worker by value loses its qualified
    name (``f.<locals>.X`` arrives as ``X``) and its source there, and the
    key hashes both; computed on a worker, a run that the client trained
    would miss the entry."""
    if sweep.cache is None:
        return None
    estimator = configure(sweep.estimator, sweep.param, sweep.values[value_index], seed)
    return sweep.cache.key(sweep.ratings, estimator, seed)


def _embeddings_of(side: Any) -> Embeddings:
    """The embeddings of a side: a train task's ``(record, embeddings)``, a
    k-NN task's table, or external embeddings."""
    if isinstance(side, NeighborTable):
        return side.embeddings
    if isinstance(side, tuple):
        return side[1]
    assert isinstance(side, Embeddings)
    return side


def _knn_task(side: Any, settings: dict[str, Any]) -> NeighborTable:
    """A side's k-NN table, computed at the width the sweep's neighbor measures
    read (:func:`~embspace.measures.neighborhood.table_width`)."""
    emb = _embeddings_of(side)
    table = NeighborTable(
        emb,
        metric=settings["metric"],
        num_threads=task_threads(settings["num_threads"]),
        device=settings["device"],
    )
    table.knn(table_width(settings["k"], emb.n))
    return table


def _compare_task(
    chance: bool,
    a_key: Hashable,
    a_side: Any,
    b_key: Hashable,
    b_side: Any,
    settings: dict[str, Any],
) -> dict[str, float]:
    """The scores (or the chance level) of one pair, from the sides' tables."""
    comparer = RunComparer(
        settings["measures"],
        k=settings["k"],
        metric=settings["metric"],
        device=settings["device"],
        num_threads=task_threads(settings["num_threads"]),
    )
    ea = _embeddings_of(a_side)
    eb = ea if b_key == a_key else _embeddings_of(b_side)
    for key, side in ((a_key, a_side), (b_key, b_side)):
        if isinstance(side, NeighborTable):
            comparer.keep(key, side)
    if chance:
        return comparer.chance(a_key, ea, b_key, eb)
    return comparer.scores(a_key, ea, b_key, eb)


# ---------------------------------------------------------------- the graph (on the client)
def run_graph(
    sweep: Any,  # a Sweep (not imported: sweep.py imports this module)
    client: Any,
    emit: Callable[[SweepEvent], Any],
    bar: Any,
    per_run: int,
) -> None:
    """Run what ``sweep`` is missing on the cluster of ``client`` and record it
    into the sweep (see the module docstring). Raises
    :class:`~embspace.sweeps.training.SweepCancelled` after
    :meth:`Sweep.cancel`; any exception (the callback's, a task's) cancels the
    pending futures and propagates."""
    from distributed import as_completed

    plan = sweep._plan
    runs = plan.runs
    n_runs = len(runs)
    topic = f"embspace-sweep-{uuid.uuid4().hex}"
    tag = topic[len("embspace-sweep-") :][:12]
    neighbor_based = any(MEASURES[m].neighbor_based for m in sweep.measures)
    settings = {
        "topic": topic,
        "param": sweep.param,
        "n_runs": n_runs,
        "entities": sweep.entities,
        "cache": sweep.cache,
        "gauge": sweep.gauge,
        "num_threads": sweep.num_threads,
        "measures": sweep.measures,
        "k": sweep.k,
        "metric": sweep.metric,
        "device": sweep.device,
    }
    events: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()

    def on_event(event: Any) -> None:  # the client's event-loop thread
        message = event[1] if isinstance(event, tuple) and len(event) == 2 else event
        if isinstance(message, dict):
            events.put(message)

    with sweep._lock:
        trained = dict(sweep._emb)
        externals = dict(sweep._external)
        scored = set(sweep._scores)

    client.subscribe_topic(topic, on_event)
    kinds: dict[Any, tuple[str, Any]] = {}
    try:
        sides: dict[RunKey | str, Any] = {}
        to_train = [(i, run) for i, run in enumerate(runs) if run not in trained]
        # once to every worker: a copy that survives the death of any one of them
        ratings = client.scatter(sweep.ratings, broadcast=True, hash=False) if to_train else None
        for run_index, run in to_train:
            vi, seed = run
            future = client.submit(
                _train_task,
                ratings,
                sweep.estimator,
                settings,
                sweep.values[vi],
                seed,
                run_index,
                _cache_key(sweep, vi, seed),
                key=f"embspace-train-{vi}-{seed}-{tag}",
                priority=-run_index,
                pure=False,
            )
            kinds[future] = ("train", (run_index, run))
            sides[run] = future
        missing = [p for p in plan.pairs(list(externals)) if p not in scored]
        used = {s for p in missing for s in plan.sides(p)}
        # runs trained before (a resumed sweep) and external embeddings: sent as they are
        for run, emb in trained.items():
            if run in used:
                sides[run] = client.scatter(emb, broadcast=True, hash=False)
        for name, emb in externals.items():
            if name in used:
                sides[name] = client.scatter(emb, broadcast=True, hash=False)
        tables: dict[RunKey | str, Any] = {}
        for side in used:
            if neighbor_based:
                tables[side] = client.submit(
                    _knn_task,
                    sides[side],
                    settings,
                    key=f"embspace-knn-{_name(side)}-{tag}",
                    priority=100,
                    pure=False,
                )
                if not isinstance(side, str):
                    kinds[tables[side]] = ("knn", side)
            else:
                tables[side] = sides[side]
        for pair in missing:
            a, b = plan.sides(pair)
            future = client.submit(
                _compare_task,
                pair.chance,
                a,
                tables[a],
                b,
                tables[b],
                settings,
                key=f"embspace-compare-{_pair_name(pair)}-{tag}",
                priority=50,
                pure=False,
            )
            kinds[future] = ("compare", pair)
        _drain(sweep, kinds, as_completed(list(kinds)), events, emit, bar, per_run)
    finally:
        client.unsubscribe_topic(topic)
        left = [f for f in kinds if not f.done()]
        if left:
            client.cancel(left)


def _name(side: RunKey | str) -> str:
    return side if isinstance(side, str) else f"{side[0]}-{side[1]}"


def _pair_name(pair: PairKey) -> str:
    chance = "-chance" if pair.chance else ""
    return f"{pair.value_index}-{pair.seed}-{pair.other_seed}-{pair.against}{chance}"


def _drain(
    sweep: Any,  # a Sweep (not imported: sweep.py imports this module)
    kinds: dict[Any, tuple[str, Any]],
    done: Any,
    events: queue.SimpleQueue[dict[str, Any]],
    emit: Callable[[SweepEvent], Any],
    bar: Any,
    per_run: int,
) -> None:
    """Record the futures as they finish and pass the events on, in this
    thread, until every future is done."""
    plan = sweep._plan
    runs = plan.runs
    n_runs = len(runs)
    started: set[int] = set()
    finished: set[int] = set()
    ticks: dict[int, int] = {}
    early: dict[RunKey, NeighborTable] = {}
    n_iter = n_iterations(sweep.estimator)

    def start(run_index: int) -> None:
        if run_index in started:
            return
        started.add(run_index)
        vi, seed = runs[run_index]
        emit(
            SweepEvent(
                "run_start",
                value=sweep.values[vi],
                seed=seed,
                run_index=run_index,
                n_runs=n_runs,
            )
        )

    def worker_events() -> None:
        while True:
            try:
                message = events.get_nowait()
            except queue.Empty:
                return
            run_index = message.get("run_index")
            if not isinstance(run_index, int) or run_index in finished:
                continue  # a late message of a run already reported done
            start(run_index)
            if message.get("kind") == "iteration":
                vi, seed = runs[run_index]
                if ticks.get(run_index, 0) < per_run:
                    ticks[run_index] = ticks.get(run_index, 0) + 1
                    bar.update(1)
                emit(
                    SweepEvent(
                        "iteration",
                        value=sweep.values[vi],
                        seed=seed,
                        run_index=run_index,
                        n_runs=n_runs,
                        iteration=message.get("iteration"),
                        n_iterations=n_iter,
                        loss=message.get("loss"),
                        elapsed=message.get("elapsed"),
                    )
                )

    bar.update(per_run * sum(run in sweep._emb for run in runs))
    while not done.is_empty():
        if sweep.cancelled:
            raise SweepCancelled("the sweep was cancelled")
        worker_events()
        if not done.has_ready():
            time.sleep(POLL_INTERVAL)
            continue
        for future in done.next_batch(block=False):
            kind, what = kinds[future]
            result = future.result()  # a task's exception propagates
            if kind == "train":
                run_index, run = what
                record, emb = result
                worker_events()
                start(run_index)
                finished.add(run_index)
                bar.update(per_run - ticks.get(run_index, 0))
                sweep._record_run(run, record, emb)
                if run in early:
                    sweep._record_table(run, early.pop(run))
                emit(
                    SweepEvent(
                        "run_done",
                        value=record.value,
                        seed=record.seed,
                        run_index=run_index,
                        n_runs=n_runs,
                        cached=record.cached,
                        elapsed=record.elapsed,
                        n_iterations=record.n_iter,
                        loss=record.loss,
                    )
                )
            elif kind == "knn":
                # kept by the sweep's own comparer: changes() and comparison() read it
                if what in sweep._emb:
                    sweep._record_table(what, result)
                else:
                    early[what] = result  # its training's future is in a later batch
            else:
                pair = what
                row = sweep._record_scores(pair, result)
                last = max(runs.index(s) for s in plan.sides(pair) if not isinstance(s, str))
                emit(
                    SweepEvent(
                        "compare_done",
                        value=row["value"],
                        seed=pair.seed,
                        run_index=last,
                        n_runs=n_runs,
                        row=row,
                    )
                )
            if sweep.cancelled:
                raise SweepCancelled("the sweep was cancelled")
    worker_events()
