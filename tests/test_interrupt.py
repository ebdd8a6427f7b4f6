"""Ctrl-C during long Rust calls: SIGINT stops a large exact k-NN and a large
WALS fit within a small part of their work, raises KeyboardInterrupt, and
leaves a consistent state (a WALS estimator keeps the last completed
iteration: its factors, its loss and n_iter_ agree).

The signal is sent by a timer thread (``os.kill(os.getpid(), SIGINT)``) a
fixed delay after the call starts. How much work a full call would be is
measured on a part of it (the cost is linear in the number of queries / rows
solved), and the problem is sized so that the full call would take many
times the delay; the test then checks that the interrupted call stopped
within a small fraction of that after the signal (a measure of the work it
still did, not a fixed time limit).
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import embspace as es
import numpy as np
import pytest
import scipy.sparse as sp
from embspace import _core
from embspace.factorization import initial_factors
from embspace.factorization.wals_cpu import CpuBackend
from embspace.neighbors import knn

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread(),
    reason="needs POSIX signals delivered to the main thread",
)

#: Seconds between the start of the interrupted work and SIGINT.
DELAY = 0.3
#: The size a full call is aimed at, in seconds of this machine's time.
FULL_CALL = 6.0


class Interrupter:
    """Sends SIGINT to this process ``DELAY`` s after :meth:`start`, and
    records when the KeyboardInterrupt is caught. The handler raises only
    while armed, so a signal arriving late can never escape the test."""

    def __init__(self) -> None:
        self.armed = True
        self.sent_at: float | None = None
        self.timer = threading.Timer(DELAY, self._fire)

    def _fire(self) -> None:
        self.sent_at = time.perf_counter()
        os.kill(os.getpid(), signal.SIGINT)

    def _handler(self, signum: int, frame: Any) -> None:
        if self.armed:
            raise KeyboardInterrupt

    def start(self) -> None:
        if not self.timer.is_alive() and self.sent_at is None:
            self.timer.start()

    def run(self, fn: Callable[[], Any], *, start_now: bool = True) -> float:
        """Run ``fn`` and return the seconds from the signal to the
        KeyboardInterrupt that ``fn`` must raise."""
        previous = signal.signal(signal.SIGINT, self._handler)
        try:
            if start_now:
                self.start()
            try:
                fn()
            except KeyboardInterrupt:
                caught = time.perf_counter()
            else:
                caught = None
            finally:
                self.armed = False
                self.timer.cancel()
                if self.timer.is_alive():
                    self.timer.join()
                time.sleep(0.01)  # let a late signal reach the (disarmed) handler
        finally:
            signal.signal(signal.SIGINT, previous)
        assert self.sent_at is not None, "the call returned before the signal was sent"
        assert caught is not None, "the call ended without a KeyboardInterrupt"
        assert caught >= self.sent_at
        return caught - self.sent_at


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _seconds_per_unit(work: Callable[[int], Any], m: int, most: int) -> float:
    """Seconds per unit of ``work(m)`` (m units of equal cost): m doubles
    until a call takes 0.1 s (or reaches ``most``), then the best of three
    calls counts (the least disturbed by other load on the machine)."""
    while _timed(lambda: work(m)) < 0.1 and m < most:  # noqa: B023 (called at once)
        m = min(2 * m, most)
    return min(_timed(lambda: work(m)) for _ in range(3)) / m


# ------------------------------------------------------------------ k-NN


def test_ctrl_c_stops_a_large_exact_knn() -> None:
    d, k, threads = 32, 10, 2
    rng = np.random.default_rng(0)
    # seconds per (query, candidate) pair, measured on queries of 20,000 rows
    n0 = 20_000
    x0 = rng.standard_normal((n0, d), dtype=np.float32)
    per_query = _seconds_per_unit(
        lambda m: knn(x0, k, metric="euclidean", queries=np.arange(m), num_threads=threads),
        m=256,
        most=n0,
    )
    per_pair = per_query / n0
    # n rows, all of them queries: n^2 pairs, about FULL_CALL seconds
    n = min(max(n0, int(math.sqrt(FULL_CALL / per_pair))), 400_000)
    x = rng.standard_normal((n, d), dtype=np.float32)
    full = per_pair * n * n
    assert full > 10 * DELAY  # the full call cannot end before the signal

    late = Interrupter().run(lambda: knn(x, k, metric="euclidean", num_threads=threads))
    assert late < full / 4, f"stopped {late:.2f} s after the signal, in a {full:.1f} s call"

    # the next call starts afresh and is exact (against a numpy brute force)
    q = np.array([0, 17, n - 1])
    dist, idx = knn(x, k, metric="euclidean", queries=q, num_threads=threads)
    x64 = x.astype(np.float64)
    for row, i in enumerate(q):
        d2 = np.sum((x64 - x64[i]) ** 2, axis=1)
        d2[i] = np.inf
        order = np.lexsort((np.arange(n), d2))[:k]
        assert np.array_equal(idx[row], order)
        assert np.allclose(dist[row], np.sqrt(d2[order]), rtol=1e-6)


# ------------------------------------------------------------------ WALS

K = 256
USERS = 300
PER_ITEM = 3  # (the generator below assumes 3)
W0, LAM = 0.05, 0.1


def _ratings(n_items: int, seed: int) -> sp.csr_matrix:
    """USERS x n_items, PER_ITEM ratings per item: the user half-sweep is
    short (few rows), the item half-sweep long (one k x k solve per item)."""
    rng = np.random.default_rng(seed)
    cols = np.repeat(np.arange(n_items), PER_ITEM)
    # three distinct users per item: b, b + s1 and b + s2 (mod USERS), 0 < s1 < 100 <= s2
    shifts = np.stack(
        [np.zeros(n_items, dtype=np.int64), rng.integers(1, 100, n_items),
         rng.integers(100, USERS, n_items)], axis=1,
    )  # fmt: skip
    rows = ((rng.integers(0, USERS, n_items)[:, None] + shifts) % USERS).ravel()
    values = rng.integers(1, 11, size=cols.size).astype(np.float32) * 0.5
    return sp.csr_matrix((values, (rows, cols)), shape=(USERS, n_items))


def _numpy_loss(a: sp.csr_matrix, u: np.ndarray, v: np.ndarray) -> float:
    """The WALS loss with unit row and column weights, from its definition:
    sum_O (w0 + 1)(a - u.v)^2 + w0 sum_{not O} (u.v)^2 + lam (|U|^2 + |V|^2),
    the unobserved sum taken as (all cells) - (observed cells)."""
    u64, v64 = u.astype(np.float64), v.astype(np.float64)
    coo = a.tocoo()
    p = np.einsum("ij,ij->i", u64[coo.row], v64[coo.col])
    observed = np.sum((W0 + 1.0) * (coo.data - p) ** 2)
    every_cell = np.sum((u64.T @ u64) * (v64.T @ v64))
    return float(
        observed + W0 * (every_cell - np.sum(p * p)) + LAM * (np.sum(u64**2) + np.sum(v64**2))
    )


def test_ctrl_c_stops_a_large_wals_fit_in_a_consistent_state(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads, seed = 2, 4
    # seconds per item row of the item half-sweep, measured on a part of it
    probe = _ratings(4096, seed=1).T.tocsr()
    fixed = np.random.default_rng(2).normal(0, 0.1, size=(USERS, K)).astype(np.float32)

    def solve_rows(m: int) -> None:
        part = (probe.indptr[: m + 1].astype(np.int64), probe.indices[: PER_ITEM * m],
                probe.data[: PER_ITEM * m])  # fmt: skip
        out = np.empty((m, K), dtype=np.float32)
        _core.wals_half_sweep(
            *part, USERS, fixed, out, unobserved_weight=W0, regularization=LAM,
            num_threads=threads,
        )  # fmt: skip

    per_row = _seconds_per_unit(solve_rows, m=64, most=4096)
    n_items = min(max(4096, int(FULL_CALL / per_row)), 1_000_000)
    full = per_row * n_items
    assert full > 10 * DELAY
    a = _ratings(n_items, seed=3)

    # SIGINT arrives DELAY s into the first item half-sweep
    interrupter = Interrupter()
    original = CpuBackend.half_sweep_total  # what a fit calls

    def half_sweep_total(self: CpuBackend, side: str) -> Any:
        if side == "items":
            interrupter.start()
        return original(self, side)

    monkeypatch.setattr(CpuBackend, "half_sweep_total", half_sweep_total)
    model = es.WALS(
        factors=K, unobserved_weight=W0, regularization=LAM, iterations=50,
        col_weights=None, num_threads=threads, random_state=seed,
    )  # fmt: skip
    late = interrupter.run(lambda: model.fit(a, progress=False), start_now=False)
    assert late < full / 4, f"stopped {late:.2f} s after the signal, in a {full:.1f} s half-sweep"

    # one consistent state: the last completed iteration (here: none, the start)
    assert model.interrupted_
    assert model.n_iter_ == 0
    assert len(model.loss_history_) == 1 + 2 * model.n_iter_
    assert model.loss_ == model.loss_history_[-1]
    assert model.loss_ == pytest.approx(
        _numpy_loss(a, model.user_factors_, model.item_factors_), rel=1e-6
    )
    u0, v0 = initial_factors(USERS, n_items, K, 1 / np.sqrt(K), np.random.default_rng(seed))
    assert np.array_equal(model.user_factors_, u0)  # not the solved user factors
    assert np.array_equal(model.item_factors_, v0)  # nothing of the interrupted sweep
