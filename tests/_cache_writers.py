"""Processes that write and read one entry of a shared embeddings cache
(tests/test_dask.py): light imports, so that many start quickly."""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
from embspace.cache import CacheWarning, EmbeddingCache
from embspace.embeddings import Embeddings
from embspace.factorization import WALS
from embspace.ratings import Ratings


def entry() -> tuple[Any, Any, Any, Any]:
    """A small cache entry: ratings, a seeded estimator, its two sides."""
    matrix = sp.random(30, 20, density=0.3, random_state=0, format="csr", dtype=np.float32)
    ratings = Ratings.from_csr(matrix)
    rng = np.random.default_rng(0)
    users = Embeddings(list(range(30)), rng.normal(size=(30, 3)))
    items = Embeddings([f"item {i}" for i in range(20)], rng.normal(size=(20, 3)))
    return ratings, WALS(factors=3, random_state=5), users, items


def writer(folder: str, rounds: int, start: Any) -> None:
    """Store the entry ``rounds`` times, as fast as it can."""
    ratings, wals, users, items = entry()
    cache = EmbeddingCache(folder)
    key = cache.key(ratings, wals, 5)
    start.wait()
    for i in range(rounds):
        assert cache.put(key, users, items, extra={"writer": os.getpid(), "round": i})


def reader(folder: str, stop: Any, start: Any, out: Any) -> None:
    """Read the entry until a read begun after ``stop`` was set (and at
    least 20 reads); put ``(valid reads, bad reads)`` on ``out``."""
    ratings, wals, _, items = entry()
    cache = EmbeddingCache(folder)
    key = cache.key(ratings, wals, 5)
    seen = bad = 0
    start.wait()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)  # a rejected entry fails the reader
        n = 0
        while True:
            last = stop.is_set()  # the writers are done: this read sees their entry
            n += 1
            try:
                got = cache.lookup(key)
            except CacheWarning:
                bad += 1
                got = None
            if got is not None:
                seen += 1
                if not np.array_equal(got.items.vectors, items.vectors):
                    bad += 1
            if last and n >= 20:
                break
    out.put((seen, bad))
