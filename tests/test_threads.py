"""``num_threads`` has one check (``embspace._threads.check_threads``) shared by
everything that takes it: None or an integer in [1, max_threads()], where
max_threads() = max(16, 4 x the CPUs available) is the Rust core's own bound.
Anything else is an InvalidParameterError raised before any thread starts."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import embspace as es
import numpy as np
import pytest
import scipy.sparse as sp
from embspace import _core
from embspace._threads import check_threads, max_threads
from embspace.errors import InvalidParameterError
from embspace.neighbors import knn
from embspace.sweeps import Sweep

RATINGS = sp.random(40, 30, density=0.3, random_state=np.random.default_rng(0), format="csr")
VECTORS = np.random.default_rng(1).normal(size=(50, 4)).astype(np.float32)

TAKERS: dict[str, Callable[[Any], Any]] = {
    "WALS": lambda t: es.WALS(factors=3, iterations=2, num_threads=t, random_state=0).fit(
        RATINGS, progress=False
    ),
    "SVD": lambda t: es.SVD(factors=3, num_threads=t, random_state=0).fit(RATINGS),
    "knn": lambda t: knn(VECTORS, 3, num_threads=t),
    "NeighborTable": lambda t: es.NeighborTable(
        es.Embeddings(list(range(50)), VECTORS), num_threads=t
    ).knn(3),
    "Sweep": lambda t: Sweep(
        es.Ratings.from_csr(RATINGS),
        es.WALS(factors=3),
        "unobserved_weight",
        [0.0, 0.1],
        num_threads=t,
        cache_dir=False,
    ),
    "compare": lambda t: es.compare(VECTORS, VECTORS[::-1].copy(), ["cka"], num_threads=t),
}


def test_the_bound_is_four_times_the_cpus_and_at_least_16() -> None:
    limit = max_threads()
    assert limit == _core.max_threads()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    # the core counts the CPUs it may use (affinity, and cgroup quota: never more)
    assert limit == 16 or (limit % 4 == 0 and limit // 4 <= (cpus or 1))


BAD = [0, -1, "limit+1", 2**64, 10**6, 1.5, 2.0, "2", True, [2], np.float64(2.0)]


@pytest.mark.parametrize("taker", sorted(TAKERS))
@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_every_taker_refuses_bad_values(taker: str, bad: Any) -> None:
    value = max_threads() + 1 if bad == "limit+1" else bad
    with pytest.raises(InvalidParameterError, match="num_threads"):
        TAKERS[taker](value)


@pytest.mark.parametrize("taker", sorted(TAKERS))
def test_every_taker_accepts_the_range(taker: str) -> None:
    for good in (None, 1, np.int64(2), max_threads()):
        TAKERS[taker](good)


def test_check_threads_values() -> None:
    assert check_threads(None) == 0
    assert check_threads(np.int32(3)) == 3 and type(check_threads(np.int32(3))) is int
    assert check_threads(max_threads()) == max_threads()


def test_results_do_not_depend_on_the_thread_count_up_to_the_limit() -> None:
    top = max_threads()
    assert np.array_equal(knn(VECTORS, 5, num_threads=1)[1], knn(VECTORS, 5, num_threads=top)[1])
    one = es.WALS(factors=3, iterations=2, num_threads=1, random_state=0).fit(RATINGS)
    many = es.WALS(factors=3, iterations=2, num_threads=top, random_state=0).fit(RATINGS)
    assert np.array_equal(one.user_factors_, many.user_factors_)
    assert one.loss_history_ == many.loss_history_


def test_the_core_enforces_the_same_bound() -> None:
    """The compiled functions (no Python check in front) refuse it too."""
    with pytest.raises(InvalidParameterError, match="num_threads"):
        _core.knn(VECTORS, 3, "cosine", None, max_threads() + 1)
    with pytest.raises(InvalidParameterError, match="num_threads"):
        _core.wals_gramian(VECTORS, num_threads=max_threads() + 1)
    rows = np.array([0, 1], dtype=np.int64)
    with pytest.raises(InvalidParameterError, match="num_threads"):
        _core.csr_from_coo(2, 2, rows, rows, np.ones(2, np.float32), num_threads=10**6)
