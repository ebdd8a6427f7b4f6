"""Array-module exact k-NN (embspace.gpu.knn_xp) with xp = numpy, against a brute-force sort."""

from __future__ import annotations

import numpy as np
import pytest
from embspace.errors import InvalidParameterError, NonFiniteError, ShapeMismatchError
from embspace.gpu import knn_xp
from xp_reference import knn_brute

METRICS = ["cosine", "euclidean", "dot"]


def _integer_data(seed: int = 0, n: int = 90, d: int = 4) -> np.ndarray:
    """Small integers (every product exact in float32: ties are real ties),
    with duplicate rows and a zero row."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, (n, d)).astype(np.float32)
    x[10] = x[3]
    x[11] = x[3]
    x[40] = x[41] = x[42] = x[43]
    x[20] = 0.0
    return x


@pytest.mark.parametrize("metric", METRICS)
def test_ties_and_duplicates_match_the_brute_force_order(metric: str) -> None:
    x = _integer_data()
    dist, idx = knn_xp(x, 9, metric=metric, xp=np, memory_budget=4_000)  # many blocks
    np.testing.assert_array_equal(idx, knn_brute(x, 9, metric))
    assert dist.dtype == np.float32 and idx.dtype == np.int64
    assert np.all(np.diff(dist, axis=1) >= 0)
    assert not np.any(idx == np.arange(x.shape[0])[:, None])  # the query is excluded by index
    # a duplicate of the query is a regular candidate at distance 0 (cosine, euclidean)
    if metric != "dot":
        assert idx[3, 0] == 10 and idx[3, 1] == 11
        np.testing.assert_allclose(dist[3, :2], 0.0, atol=1e-12)


@pytest.mark.parametrize("metric", METRICS)
def test_random_data_distances_are_exact(metric: str) -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((120, 8)).astype(np.float32) * 3
    dist, idx = knn_xp(x, 12, metric=metric, xp=np)
    np.testing.assert_array_equal(idx, knn_brute(x, 12, metric))
    x64 = x.astype(np.float64)
    q = np.arange(x.shape[0])[:, None]
    if metric == "cosine":
        nx = x64 / np.linalg.norm(x64, axis=1, keepdims=True)
        expected = 1 - np.einsum("qd,qkd->qk", nx, nx[idx])
    elif metric == "dot":
        expected = -np.einsum("qd,qkd->qk", x64, x64[idx])
    else:
        expected = np.sqrt(((x64[q] - x64[idx]) ** 2).sum(-1))
    np.testing.assert_allclose(dist, expected, rtol=1e-6, atol=1e-6)


def test_zero_rows_have_cosine_distance_one() -> None:
    x = np.array([[0, 0], [1, 0], [0, 2], [0, 0]], dtype=np.float32)
    dist, idx = knn_xp(x, 3, metric="cosine", queries=np.array([0, 1]))
    np.testing.assert_array_equal(dist, [[1, 1, 1], [1, 1, 1]])
    np.testing.assert_array_equal(idx, [[1, 2, 3], [0, 2, 3]])


def test_many_identical_rows_keep_the_lowest_indices() -> None:
    x = np.ones((500, 3), dtype=np.float32)
    x[0] = [1, 2, 3]
    dist, idx = knn_xp(x, 5, metric="euclidean", queries=np.array([0, 7, 499]))
    np.testing.assert_array_equal(idx, [[1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5]])
    np.testing.assert_allclose(dist[1:], 0.0)
    np.testing.assert_allclose(dist[0], np.sqrt(5.0), rtol=1e-6)


def test_queries_subset_equals_rows_of_the_full_table() -> None:
    x = _integer_data(seed=4, n=70, d=5)
    _, full = knn_xp(x, 6, metric="cosine")
    queries = np.array([69, 0, 3, 3, 41])
    _, sub = knn_xp(x, 6, metric="cosine", queries=queries)
    np.testing.assert_array_equal(sub, full[queries])
    # k = n - 1 returns every other row
    _, everything = knn_xp(x, 69, metric="dot", queries=np.array([5]))
    assert sorted(everything[0].tolist()) == [i for i in range(70) if i != 5]


def test_near_ties_are_decided_in_float64() -> None:
    # two candidates whose float32 scores agree but whose float64 distances differ
    q = np.array([1.0, 0.0], dtype=np.float32)
    near = np.array([1.0, np.float32(1e-4)], dtype=np.float32)
    nearer = np.array([1.0, np.float32(0.9e-4)], dtype=np.float32)
    x = np.stack([q, near, nearer, -q])
    _, idx = knn_xp(x, 2, metric="cosine", queries=np.array([0]))
    np.testing.assert_array_equal(idx, [[2, 1]])


def test_bad_input_raises_typed_errors() -> None:
    x = _integer_data()
    with pytest.raises(InvalidParameterError):
        knn_xp(x, 0)
    with pytest.raises(InvalidParameterError):
        knn_xp(x, x.shape[0])
    with pytest.raises(InvalidParameterError):
        knn_xp(x, 2.5)
    with pytest.raises(InvalidParameterError):
        knn_xp(x, 3, metric="manhattan")
    with pytest.raises(InvalidParameterError):
        knn_xp(x, 3, queries=np.array([0, 90]))
    with pytest.raises(InvalidParameterError):
        knn_xp(x, 3, queries=np.array([0.5]))
    with pytest.raises(ShapeMismatchError):
        knn_xp(x[0], 3)
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(NonFiniteError):
        knn_xp(bad, 3)
    huge = np.full((4, 2), 3e38, dtype=np.float32)
    with pytest.raises(NonFiniteError, match="overflows"):
        knn_xp(huge, 2, metric="dot")


@pytest.mark.parametrize("k", [1, 3, 7, 40, 200])
def test_the_screening_bound_is_at_least_the_kth_key(k: int) -> None:
    # groups of 64 columns with a shorter last one (n = 1030), many tied keys
    # and +inf entries (the queries' own columns); with fewer than 4 k groups
    # the bound is the k-th key itself
    from embspace.gpu.knn_xp import _kth_bound

    rng = np.random.default_rng(k)
    keys = rng.integers(0, 50, (37, 1030)).astype(np.float32)
    keys[np.arange(37), rng.integers(0, 1030, 37)] = np.inf
    kth = np.sort(keys, axis=1)[:, k - 1]
    bound = _kth_bound(np, keys, k)
    assert np.all(bound >= kth)
    if 1030 // (4 * k) < 2:
        np.testing.assert_array_equal(bound, kth)
    else:
        # and no looser than it must be: the (k - 1) w + 1 smallest keys span
        # at least k groups of w, so the k-th group minimum is at most that key
        w = min(64, 1030 // (4 * k))
        assert np.all(bound <= np.sort(keys, axis=1)[:, (k - 1) * w])


@pytest.mark.parametrize("metric", METRICS)
def test_wide_blocks_with_ties_match_the_brute_force_order(metric: str) -> None:
    # n = 1030 rows of small integers: groups of 64 columns and a tail, ties
    # everywhere
    x = _integer_data(seed=3, n=1030, d=3)
    _, idx = knn_xp(x, 5, metric=metric, xp=np, memory_budget=2_000_000)
    np.testing.assert_array_equal(idx, knn_brute(x, 5, metric))
