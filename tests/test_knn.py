"""The exact k-NN of the Rust core against a float64 numpy brute force."""

from __future__ import annotations

import numpy as np
import pytest
from _knn_reference import brute_knn
from embspace import _core
from embspace.errors import (
    IndexOutOfRangeError,
    InvalidParameterError,
    NonFiniteError,
    ShapeMismatchError,
)
from embspace.neighbors import knn

METRICS = ["cosine", "euclidean", "dot"]


def _with_duplicates_and_ties(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    X = rng.standard_normal((n, d)).astype(np.float32)
    X[7] = X[3]  # exact duplicate rows
    X[n - 1] = X[3]
    X[20] = X[11]
    X[40] = 2.0 * X[12]  # same direction: a cosine tie (power-of-two scaling is exact)
    X[41] = 0.5 * X[12]
    X[50] = 0.0  # a zero row: cosine 0 with everything
    return X


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("threads", [1, 3])
def test_matches_numpy_on_random_data_with_duplicates(metric: str, threads: int) -> None:
    rng = np.random.default_rng(0)
    n = 600  # more than one tile of candidates and one block of queries
    X = _with_duplicates_and_ties(rng, n, 6)
    for k in (1, 10, n - 1):
        dist, idx = _core.knn(X, k, metric, None, threads)
        want_d, want_i = brute_knn(X, k, metric)
        assert dist.dtype == np.float32 and idx.dtype == np.int64
        assert dist.shape == idx.shape == (n, k)
        np.testing.assert_array_equal(idx, want_i)
        np.testing.assert_allclose(dist, want_d, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("metric", METRICS)
def test_ties_on_integer_data_go_to_the_lower_index(metric: str) -> None:
    # values in {-2..2}: every product and sum is exact, so ties are exact ties
    rng = np.random.default_rng(1)
    n = 250
    X = rng.integers(-2, 3, size=(n, 3)).astype(np.float32)
    for k in (1, 10, n - 1):
        for threads in (1, 2):
            dist, idx = _core.knn(X, k, metric, None, threads)
            want_d, want_i = brute_knn(X, k, metric)
            np.testing.assert_array_equal(idx, want_i)
            np.testing.assert_allclose(dist, want_d, rtol=1e-6, atol=1e-6)
    # there really are ties: some rows have equal distances at adjacent ranks
    dist, _ = _core.knn(X, 10, metric, None, 1)
    assert (np.diff(dist, axis=1) == 0).any()


def test_result_does_not_depend_on_thread_count() -> None:
    rng = np.random.default_rng(2)
    X = rng.standard_normal((1500, 12)).astype(np.float32)
    base = _core.knn(X, 10, "cosine", None, 1)
    for threads in (2, 4):
        other = _core.knn(X, 10, "cosine", None, threads)
        np.testing.assert_array_equal(base[1], other[1])
        np.testing.assert_array_equal(base[0], other[0])


def test_subset_of_queries_matches_the_full_table() -> None:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((400, 5)).astype(np.float32)
    q = np.array([399, 0, 17, 17], dtype=np.int64)
    dist, idx = knn(X, 5, metric="euclidean", queries=q)
    full_d, full_i = knn(X, 5, metric="euclidean")
    np.testing.assert_array_equal(idx, full_i[q])
    np.testing.assert_array_equal(dist, full_d[q])
    _, want_i = brute_knn(X, 5, "euclidean", queries=q)
    np.testing.assert_array_equal(idx, want_i)
    assert knn(X, 5, queries=[])[1].shape == (0, 5)


def test_query_is_excluded_by_index_not_by_position() -> None:
    # row 1 duplicates row 0: row 0's nearest neighbor is row 1 (distance 0)
    X = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float32)
    dist, idx = knn(X, 2, metric="euclidean")
    assert idx[0].tolist() == [1, 3] and idx[1].tolist() == [0, 3]
    assert dist[0, 0] == 0.0
    assert all(q not in row for q, row in enumerate(idx.tolist()))


def test_dot_distance_is_the_negative_inner_product() -> None:
    X = np.array([[1.0, 0.0], [3.0, 0.0], [2.0, 0.0], [0.0, 5.0]], dtype=np.float32)
    dist, idx = knn(X, 3, metric="dot", queries=[0])
    assert idx.tolist() == [[1, 2, 3]]
    assert dist.tolist() == [[-3.0, -2.0, 0.0]]


def test_large_offsets_and_scales_stay_exact() -> None:
    rng = np.random.default_rng(4)
    X = rng.standard_normal((300, 4)).astype(np.float32)
    for Y in (X + np.float32(1e4), X * np.float32(1e12), X * np.float32(1e-12)):
        for metric in METRICS:
            np.testing.assert_array_equal(knn(Y, 7, metric=metric)[1], brute_knn(Y, 7, metric)[1])


def test_bad_input_raises_typed_errors() -> None:
    X = np.ones((5, 3), dtype=np.float32)
    with pytest.raises(InvalidParameterError):
        knn(X, 0)
    with pytest.raises(InvalidParameterError):
        knn(X, 5)
    with pytest.raises(InvalidParameterError):
        _core.knn(X, -1)
    with pytest.raises(InvalidParameterError):
        _core.knn(X, 6)
    with pytest.raises(InvalidParameterError):
        knn(X, 2, metric="manhattan")
    with pytest.raises(InvalidParameterError):
        _core.knn(X, 2, "manhattan")
    with pytest.raises(InvalidParameterError):
        _core.knn(np.ones((5, 0), dtype=np.float32), 2)
    bad = X.copy()
    bad[2, 1] = np.nan
    with pytest.raises(NonFiniteError, match="row 2"):
        knn(bad, 2)
    bad[2, 1] = np.inf
    with pytest.raises(NonFiniteError):
        _core.knn(bad, 2)
    with pytest.raises(IndexOutOfRangeError):
        knn(X, 2, queries=[5])
    with pytest.raises(IndexOutOfRangeError):
        _core.knn(X, 2, "cosine", np.array([-1], dtype=np.int64))
    with pytest.raises(InvalidParameterError):
        knn(X, 2, queries=[0.5])
    with pytest.raises(ShapeMismatchError):
        _core.knn(np.ones((6, 4), dtype=np.float32)[:, ::2], 2)
    with pytest.raises(ShapeMismatchError):
        knn(np.ones(5, dtype=np.float32), 2)
    with pytest.raises(InvalidParameterError):
        knn(X, 2, num_threads=0)
    with pytest.raises(NonFiniteError, match="overflows"):
        knn(np.full((3, 2), 1e20, dtype=np.float32), 1, metric="dot")


def test_wrapper_accepts_float64_and_non_contiguous_input() -> None:
    rng = np.random.default_rng(5)
    X = rng.standard_normal((80, 6))
    got = knn(X[:, ::2], 4)
    np.testing.assert_array_equal(got[1], brute_knn(X[:, ::2].astype(np.float32), 4, "cosine")[1])
