"""Sweeps on a Dask cluster (LocalCluster, 2 worker processes) and the shared
embeddings cache: the same table as a local run, events, cancellation, a worker
killed mid-sweep, concurrent writers, fsspec URLs."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
pytest.importorskip("fsspec")

import embspace as es  # noqa: E402
from _cache_writers import entry, reader, writer  # noqa: E402
from embspace import cache as cache_module  # noqa: E402
from embspace.cache import CacheWarning, EmbeddingCache  # noqa: E402
from embspace.errors import InvalidParameterError  # noqa: E402
from embspace.sweeps import SweepCancelled  # noqa: E402
from pandas.testing import assert_frame_equal  # noqa: E402

PARAM = "regularization"
VALUES = [0.1, 1.0, 3.0]
SEEDS = 3


def _ratings() -> Any:
    return es.datasets.synthetic(preset="tiny", seed=0)


def _wals(cls: type = es.WALS) -> Any:
    return cls(factors=4, iterations=3)


def _sweep(estimator: Any, cache_dir: Any, **options: Any) -> es.Sweep:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", es.errors.EmbspaceWarning)  # 3 seeds cannot reach 0.05
        return es.Sweep(
            _ratings(), estimator, PARAM, VALUES, seeds=SEEDS, cache_dir=cache_dir, **options
        )


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """One LocalCluster for the module: 2 worker processes of 1 thread."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=50,
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


@pytest.fixture(scope="module")
def local() -> es.Sweep:
    """The reference: the same sweep run locally, without a cache."""
    return _sweep(_wals(), False).run(progress=False)


def _same_results(got: es.Sweep, want: es.Sweep) -> None:
    assert got.finished
    assert_frame_equal(got.table, want.table, check_exact=True)
    assert_frame_equal(got.results, want.results, check_exact=True)
    assert_frame_equal(got.noise, want.noise, check_exact=True)
    for a, b in zip(got.runs, want.runs, strict=True):
        assert (a.value, a.seed, a.run_index, a.n_iter, a.loss) == (
            b.value,
            b.seed,
            b.run_index,
            b.n_iter,
            b.loss,
        )
        ea, eb = got.embeddings(a.value, a.seed), want.embeddings(b.value, b.seed)
        assert ea.keys == eb.keys
        np.testing.assert_array_equal(ea.vectors, eb.vectors)


# ---------------------------------------------------------------- the graph
def test_same_table_as_local_and_the_events(client, local, tmp_path):
    events: list[Any] = []
    swept = _sweep(_wals(), f"file://{tmp_path}/runs")
    assert isinstance(swept.cache.folder, Path)  # file:// is the local folder
    swept.run(progress=False, executor=client, callback=events.append)
    _same_results(swept, local)
    assert len(EmbeddingCache(tmp_path / "runs")) == swept.n_runs  # written by the workers
    assert not any(r.cached for r in swept.runs)

    kinds = Counter(e.kind for e in events)
    n_pairs = len(swept._plan.pairs())
    assert kinds == {
        "run_start": 9,
        "iteration": 9 * 3,
        "run_done": 9,
        "compare_done": n_pairs,
        "done": 1,
    }
    assert events[-1].kind == "done"
    # per run, the local order: run_start, its iterations 1..3, run_done
    for i in range(swept.n_runs):
        mine = [e for e in events if e.run_index == i and e.kind != "compare_done"]
        kinds_of_run = ["run_start", "iteration", "iteration", "iteration", "run_done"]
        assert [e.kind for e in mine] == kinds_of_run
        assert [e.iteration for e in mine[1:4]] == [1, 2, 3]
        assert (mine[0].value, mine[0].seed) == swept.plan[i]
    # every comparison reported once, with the scores of the local run's events
    local_rows: list[dict[str, Any]] = []
    _sweep(_wals(), False).run(progress=False, callback=lambda e: local_rows.append(e.row))
    got = sorted(repr(sorted(e.row.items())) for e in events if e.kind == "compare_done")
    want = sorted(repr(sorted(r.items())) for r in local_rows if r is not None)
    assert got == want
    # the runs' k-NN tables came back: changes() reads them, the same as local
    for run in swept._plan.runs:
        table = swept._comparer._tables[run]
        assert table.embeddings is swept._emb[run] and table._table is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", es.errors.EmbspaceWarning)  # 3 seeds: no entity at 0.05
        assert_frame_equal(swept.changes(VALUES[2]), local.changes(VALUES[2]), check_exact=True)
    # a comparison is reported after both its runs are done
    done_at = {e.run_index: k for k, e in enumerate(events) if e.kind == "run_done"}
    for k, e in enumerate(events):
        if e.kind == "compare_done":
            assert done_at[e.run_index] < k


def test_resumed_from_the_cache_and_options(client, tmp_path):
    """A second run on the filled cache trains nothing; users side, balanced
    gauge and same-seed pairing go through the graph unchanged."""
    options = {"entities": "users", "gauge": "balanced", "pairing": "same_seed"}
    want = _sweep(_wals(), False, **options).run(progress=False)
    first = _sweep(_wals(), tmp_path, **options).run(progress=False, executor=client)
    _same_results(first, want)
    again = _sweep(_wals(), tmp_path, **options).run(progress=False, executor=client)
    assert all(r.cached for r in again.runs)
    _same_results(again, want)


def test_cancelled_then_resumed(client, local, tmp_path):
    """cancel() at the first finished run stops the graph (pending futures
    cancelled); run() again, even on a new sweep (a killed client), trains
    only what is missing and gives the same table."""
    swept = _sweep(_wals(), tmp_path)

    def stop(event: Any) -> None:
        if event.kind == "run_done":
            swept.cancel()

    with pytest.raises(SweepCancelled):
        swept.run(progress=False, executor=client, callback=stop)
    assert 1 <= len(swept.runs) < swept.n_runs
    assert not swept.finished
    swept.run(progress=False, executor=client)
    _same_results(swept, local)
    fresh = _sweep(_wals(), tmp_path).run(progress=False, executor=client)
    assert all(r.cached for r in fresh.runs)
    _same_results(fresh, local)


def test_against_external_embeddings_then_more_runs(client, local):
    """External embeddings given before the graph are compared on the cluster too."""
    svd = es.SVD(factors=4).fit(_ratings())
    want = _sweep(_wals(), False).run(progress=False)
    want.against(svd, "svd")
    swept = _sweep(_wals(), False)
    swept.run(progress=False)
    swept.against(svd, "svd")
    # forget the external pairs and one run: the graph must redo them
    with swept._lock:
        swept._scores = {p: s for p, s in swept._scores.items() if p.against != "svd"}
        last = swept._plan.runs[-1]
        del swept._emb[last], swept._runs[last]
        swept._scores = {p: s for p, s in swept._scores.items() if last not in swept._plan.sides(p)}
    swept.run(progress=False, executor=client)
    assert_frame_equal(swept.table, want.table, check_exact=True)


def test_threads_of_a_task(client):
    """The sweep's num_threads when given, else the worker's CPUs over its
    task slots (1 slot here: every CPU this process may use)."""
    from embspace._threads import max_threads
    from embspace.sweeps.distributed import task_threads

    cpus = len(os.sched_getaffinity(0))
    assert client.submit(task_threads, 3, pure=False).result() == 3
    assert client.submit(task_threads, None, pure=False).result() == min(cpus, max_threads())
    assert task_threads(None) == min(cpus, max_threads())  # not on a worker: one slot


def test_executor_must_be_a_client(local):
    with pytest.raises(InvalidParameterError, match=r"distributed\.Client"):
        _sweep(_wals(), False).run(progress=False, executor=object())


_KILLED_CLIENT = """
import os, signal, sys, warnings
import embspace as es
from distributed import Client

warnings.simplefilter("ignore")
address, cache, flag = sys.argv[1:]
ratings = es.datasets.synthetic(preset="tiny", seed=0)
sweep = es.Sweep(ratings, es.WALS(factors=4, iterations=3), "regularization", [0.1, 1.0, 3.0],
                 seeds=3, cache_dir=cache)
done = []

def callback(event):
    if event.kind == "run_done":
        done.append(event.run_index)
        if len(done) == 2:
            with open(flag, "w") as fh:
                fh.write(" ".join(map(str, done)))
            os.kill(os.getpid(), signal.SIGKILL)  # the client dies mid-sweep

with Client(address) as client:
    sweep.run(progress=False, executor=client, callback=callback)
"""


def test_a_killed_client_resumes_from_the_cache(client, local, tmp_path):
    """A client process killed (SIGKILL) after two runs came back: a new
    client's sweep on the same cache loads those runs (cached=True) and gives
    the local table."""
    import subprocess

    flag = tmp_path / "done"
    cache = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_CLIENT, client.scheduler.address, str(cache), str(flag)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    finished = [int(i) for i in flag.read_text().split()]
    assert len(finished) == 2
    swept = _sweep(_wals(), cache).run(progress=False, executor=client)
    cached = {r.run_index for r in swept.runs if r.cached}
    assert set(finished) <= cached
    _same_results(swept, local)


def _killing_wals(flag: str) -> type:
    """A WALS class that kills its own worker process on ``(VALUES[1], seed
    1)`` the first time (the file ``flag`` says it happened). Made in a
    function, it is pickled by value, so the workers need not import this
    module. Its qualified name there is not the one here (cloudpickle sends
    ``_killing_wals.<locals>.KillingWALS`` as ``KillingWALS``) and its source
    cannot be read there: the sweep computes the cache keys on the client, so
    that the local rerun below finds the entries the workers wrote."""

    class KillingWALS(es.WALS):
        def fit(self, ratings: Any, **kwargs: Any) -> Any:
            if self.regularization == VALUES[1] and self.random_state == 1:
                if not os.path.exists(flag):
                    Path(flag).write_text(str(os.getpid()))
                    os.kill(os.getpid(), signal.SIGKILL)
            return super().fit(ratings, **kwargs)

    return KillingWALS


def test_a_worker_killed_mid_sweep(client, local, tmp_path):
    """A worker process dies in the middle of a training: Dask reschedules its
    tasks, the sweep completes with the local table, and a rerun (a new client
    session) loads every run from the cache."""
    flag = tmp_path / "killed"
    cls = _killing_wals(str(flag))
    pids = set(client.run(os.getpid).values())
    swept = _sweep(_wals(cls), tmp_path / "runs").run(progress=False, executor=client)
    assert flag.is_file() and int(flag.read_text()) in pids  # a worker did die
    _same_results(swept, local)
    again = _sweep(_wals(cls), tmp_path / "runs").run(progress=False)
    assert all(r.cached for r in again.runs)
    _same_results(again, local)


# ---------------------------------------------------------------- the shared cache
def test_concurrent_writers_on_one_entry(tmp_path):
    """Three processes write the same entry over and over while two read it:
    every read is a miss (not written yet) or the complete, valid entry;
    nothing is ever rejected; the entry left is valid; no temporary file is
    left."""
    ctx = multiprocessing.get_context("forkserver")  # no fork of a process with threads
    ctx.set_forkserver_preload(["_cache_writers"])
    folder = str(tmp_path / "shared")
    start, stop = ctx.Event(), ctx.Event()
    out = ctx.Queue()
    writers = [ctx.Process(target=writer, args=(folder, 8, start)) for _ in range(3)]
    readers = [ctx.Process(target=reader, args=(folder, stop, start, out)) for _ in range(2)]
    for p in writers + readers:
        p.start()
    start.set()
    for p in writers:
        p.join()
        assert p.exitcode == 0
    stop.set()
    results = [out.get() for _ in readers]
    for p in readers:
        p.join()
        assert p.exitcode == 0
    assert all(bad == 0 for _, bad in results)
    assert sum(seen for seen, _ in results) > 0
    ratings, wals, users, _ = entry()
    cache = EmbeddingCache(folder)
    found = cache.lookup(cache.key(ratings, wals, 5))
    assert found is not None and found.extra["round"] == 7
    assert found.extra["writer"] in {p.pid for p in writers}
    np.testing.assert_array_equal(found.users.vectors, users.vectors)
    assert sorted(os.listdir(folder)) == [Path(found.path).name]


@pytest.mark.parametrize("object_store", [True, False])
def test_fsspec_url_round_trip_and_rejection(monkeypatch, object_store):
    """memory:// as an object store (one put) and as a plain file system
    (temporary name, then a move): round trip, entries, a corrupt entry
    rejected and deleted, clear()."""
    import fsspec

    if not object_store:
        monkeypatch.setattr(cache_module, "OBJECT_STORES", frozenset())
    url = f"memory://embspace-test-{object_store}/runs"
    ratings, wals, users, items = entry()
    cache = EmbeddingCache(url)
    assert cache.url == url and cache.folder == url
    key = cache.key(ratings, wals, 5)
    assert cache.lookup(key) is None and key not in cache
    path = cache.put(key, users, items, extra={"fit_time": 2.0})
    assert path == f"{url}/{key.digest}.npz" and key in cache
    got = EmbeddingCache(url).lookup(key)  # another instance, the same store
    assert got is not None and got.extra == {"fit_time": 2.0} and got.path == path
    np.testing.assert_array_equal(got.items.vectors, items.vectors)
    assert got.users.keys == users.keys
    assert list(cache.entries()) == [path]
    fs = fsspec.filesystem("memory")
    assert [p for p in fs.ls(url, detail=False) if ".tmp" in p] == []
    # a corrupted entry: one byte flipped
    blob = bytearray(fs.cat_file(path))
    blob[len(blob) // 2] ^= 0xFF
    fs.pipe_file(path, bytes(blob))
    with pytest.warns(CacheWarning, match="deleted"):
        assert cache.lookup(key) is None
    assert key not in cache
    cache.put(key, users, items)
    assert cache.clear() == 1 and len(cache) == 0


def test_a_sweep_on_a_memory_url(local):
    swept = _sweep(_wals(), "memory://embspace-sweep/runs").run(progress=False)
    _same_results(swept, local)
    assert len(swept.cache) == swept.n_runs
    again = _sweep(_wals(), "memory://embspace-sweep/runs").run(progress=False)
    assert all(r.cached for r in again.runs)
    swept.cache.clear()


def test_a_url_cache_without_fsspec_or_with_an_unknown_protocol(monkeypatch):
    ratings, wals, _, _ = entry()
    key = EmbeddingCache(None).key(ratings, wals, 5)
    with pytest.raises(InvalidParameterError, match="cannot open the cache 'nosuch://x'"):
        EmbeddingCache("nosuch://x").lookup(key)
    monkeypatch.setitem(sys.modules, "fsspec", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "fsspec.core", None)
    with pytest.raises(InvalidParameterError, match=r"install fsspec"):
        EmbeddingCache("s3://bucket/runs").lookup(key)
    assert EmbeddingCache("file:///tmp/runs").folder == Path("/tmp/runs")  # no fsspec needed
