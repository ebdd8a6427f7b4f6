"""A process forked after the Rust core has run can run it again.

``multiprocessing`` forks by default on Linux (Python <= 3.13): the child
inherits the parent's memory but none of its threads, so a thread pool kept
alive across calls (like rayon's global pool) would leave the child's first
parallel call waiting forever for workers that do not exist. The core builds
a pool per call instead (``rust/core/src/parallel.rs``).
"""

from __future__ import annotations

import multiprocessing
import sys

import embspace as es
import numpy as np
import pandas as pd
import pytest
from embspace.neighbors import knn

#: How long the child may take before the test calls it hung (it needs well
#: under a second; this only keeps a regression from hanging the suite).
JOIN_TIMEOUT = 120.0


def _frame(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 5000
    pairs = rng.choice(300 * 200, size=n, replace=False)
    return pd.DataFrame(
        {
            "userId": pairs // 200,
            "movieId": pairs % 200,
            "rating": rng.integers(1, 11, size=n) * 0.5,
        }
    )


def _dense(frame: pd.DataFrame) -> np.ndarray:
    """The ratings as a dense users x items matrix, users and items in
    sorted order (as Ratings keys them), built with numpy only."""
    users = np.unique(frame["userId"].to_numpy())
    items = np.unique(frame["movieId"].to_numpy())
    out = np.zeros((users.size, items.size))
    out[np.searchsorted(users, frame["userId"]), np.searchsorted(items, frame["movieId"])] = frame[
        "rating"
    ]
    return out


def _work_in_child(conn) -> None:  # type: ignore[no-untyped-def]
    """Build Ratings, a neighbor table and a small WALS fit in the forked child
    and send back what they produced."""
    frame = _frame(seed=2)
    ratings = es.Ratings.from_frame(frame)
    indptr, indices, data = ratings.csr_arrays()
    x = np.random.default_rng(3).normal(size=(400, 8)).astype(np.float32)
    _, idx = knn(x, 5, metric="euclidean")
    model = es.WALS(factors=4, iterations=2, random_state=0).fit(ratings, progress=False)
    conn.send((indptr, indices, data, ratings.shape, idx, model.loss_))
    conn.close()


@pytest.mark.skipif(sys.platform == "win32", reason="fork is POSIX only")
def test_a_forked_child_can_build_ratings_again() -> None:
    # the parent uses the core first (the CSR build ran in parallel here)
    parent = es.Ratings.from_frame(_frame(seed=1))
    assert parent.n_ratings == 5000

    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_work_in_child, args=(send,))
    child.start()
    send.close()
    got = receive.recv() if receive.poll(JOIN_TIMEOUT) else None
    child.join(JOIN_TIMEOUT if got is not None else 1.0)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail(f"the forked child did not finish within {JOIN_TIMEOUT} s (hung)")
    assert child.exitcode == 0
    assert got is not None, "the forked child sent nothing"
    indptr, indices, data, shape, idx, child_loss = got

    # the child's CSR is the ratings table, checked against numpy
    frame = _frame(seed=2)
    want = _dense(frame)
    assert shape == want.shape
    rows = np.repeat(np.arange(shape[0]), np.diff(indptr))
    dense = np.zeros(shape)
    dense[rows, indices] = data
    assert np.array_equal(dense, want)
    # its k-NN and its WALS fit are those the parent computes
    x = np.random.default_rng(3).normal(size=(400, 8)).astype(np.float32)
    assert np.array_equal(idx, knn(x, 5, metric="euclidean")[1])
    model = es.WALS(factors=4, iterations=2, random_state=0)
    assert child_loss == model.fit(es.Ratings.from_frame(frame), progress=False).loss_
