"""The int8-screened search of query subsets (``knn(..., queries=...)`` on
CPUs with AVX-512 VNNI) against the float32 search (``EMBSPACE_KNN_SCREEN=0``)
and a float64 numpy brute force: identical indices and distances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _knn_reference import brute_knn
from embspace import _core
from embspace.errors import InvalidParameterError
from embspace.neighbors import knn

METRICS = ["cosine", "euclidean", "dot"]


def _both(
    monkeypatch: pytest.MonkeyPatch, X: np.ndarray, k: int, metric: str, rows: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(screened where the CPU has it, float32 search) of the same queries."""
    monkeypatch.delenv("EMBSPACE_KNN_SCREEN", raising=False)
    fast = knn(X, k, metric=metric, queries=rows, num_threads=2)
    monkeypatch.setenv("EMBSPACE_KNN_SCREEN", "0")
    assert not _core.knn_screened(X.shape[1])
    plain = knn(X, k, metric=metric, queries=rows, num_threads=1)
    monkeypatch.delenv("EMBSPACE_KNN_SCREEN")
    return fast, plain


def _clustered(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """A 4-dimensional latent plus small noise, with duplicated, scaled and
    zero rows, and one-ulp perturbations: dense neighborhoods and near-ties."""
    Z = rng.standard_normal((n, 4))
    X = (Z @ rng.standard_normal((4, d)) + 1e-3 * rng.standard_normal((n, d))).astype(np.float32)
    X[5] = X[3]
    X[6] = 2.0 * X[3]
    X[7] = 0.0
    X[8] = np.nextafter(X[3], np.float32(np.inf))
    X[9, 0] = np.nextafter(X[3, 0], np.float32(-np.inf))
    X[9, 1:] = X[3, 1:]
    return X


@pytest.mark.parametrize("metric", METRICS)
def test_screened_equals_the_float32_search_and_numpy(
    metric: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(0)
    X = _clustered(rng, 1500, 19)
    rows = np.concatenate([[3, 5, 6, 7, 8, 9], rng.choice(1500, 300, replace=False)])
    fast, plain = _both(monkeypatch, X, 12, metric, rows)
    np.testing.assert_array_equal(fast[1], plain[1])
    np.testing.assert_array_equal(fast[0].view(np.int32), plain[0].view(np.int32))
    want_d, want_i = brute_knn(X, 12, metric, queries=rows[:40])
    np.testing.assert_array_equal(fast[1][:40], want_i)
    np.testing.assert_allclose(fast[0][:40], want_d, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("metric", METRICS)
def test_screened_queries_equal_the_full_table_rows(
    metric: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(1)
    X = rng.integers(-2, 3, size=(700, 6)).astype(np.float32)  # exact ties everywhere
    rows = rng.choice(700, 90, replace=False)
    fast, _ = _both(monkeypatch, X, 10, metric, rows)
    full_d, full_i = knn(X, 10, metric=metric, num_threads=2)  # the float32 search
    np.testing.assert_array_equal(fast[1], full_i[rows])
    np.testing.assert_array_equal(fast[0], full_d[rows])


def test_the_switch_is_read_at_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBSPACE_KNN_SCREEN", "0")
    assert not _core.knn_screened(64)
    monkeypatch.setenv("EMBSPACE_KNN_SCREEN", "1")
    on = _core.knn_screened(64)
    assert not _core.knn_screened(5000)  # above the screened path's largest d
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpuinfo.read_text().split() if cpuinfo.exists() else []
    assert on == ("avx512_vnni" in flags and "avx512bw" in flags and "avx512f" in flags)


def test_candidate_counts_are_between_k_and_n() -> None:
    rng = np.random.default_rng(2)
    X = rng.standard_normal((3000, 8)).astype(np.float32)
    rows = np.arange(0, 3000, 37, dtype=np.int64)
    if not _core.knn_screened(8):  # no AVX-512 VNNI: the diagnostics say so
        with pytest.raises(InvalidParameterError, match="VNNI"):
            _core.knn_screen_candidates(X, 10, "cosine", rows, 2)
        return
    counts = _core.knn_screen_candidates(X, 10, "cosine", rows, 2)
    assert counts.shape == (rows.size,) and counts.dtype == np.uint64
    assert (counts >= 10).all() and (counts < 2999).all()
    # identical rows: every row ties with the query, none can be ruled out
    same = np.ones((500, 4), np.float32)
    assert (_core.knn_screen_candidates(same, 3, "dot", rows[:5], 1) == 499).all()


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("d", [1, 3, 17, 65, 300])
@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e30])
def test_screened_equals_float32_across_shapes_and_scales(
    metric: str, d: int, scale: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # many rows one ulp apart (a cloud of near-ties around a few centres),
    # exact duplicates, zero rows, tiny and huge scales, and k at n - 1
    rng = np.random.default_rng(d)
    n = 400
    centres = rng.standard_normal((5, d))
    X = (centres[rng.integers(0, 5, n)] * scale).astype(np.float32)
    steps = rng.integers(0, 3, (n, d))
    for _ in range(2):
        X = np.where(steps > 0, np.nextafter(X, np.float32(np.inf)), X)
        steps -= 1
    X[10:20] = X[0]
    X[20:23] = 0.0
    if metric == "dot" and scale > 1:
        X /= np.float32(1e20)  # dot products of 1e30-scale rows overflow float32 on any path
    rows = np.concatenate([[0, 10, 20], rng.choice(n, 60, replace=False)])
    monkeypatch.delenv("EMBSPACE_KNN_SCREEN", raising=False)
    # where the CPU screens at all (AVX-512 VNNI), it screens these too
    assert _core.knn_screened(d) == _core.knn_screened(64)
    for k in (1, 7, n - 1):
        fast, plain = _both(monkeypatch, X, k, metric, rows)
        np.testing.assert_array_equal(fast[1], plain[1])
        np.testing.assert_array_equal(fast[0].view(np.int32), plain[0].view(np.int32))
