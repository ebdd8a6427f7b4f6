"""The device wiring of NeighborTable / knn / compare, and the array-module k-NN against Rust.

On the CPU the GPU branch runs with ``xp = numpy`` (:func:`embspace.gpu.numpy_device`);
the ``gpu``-marked tests repeat the comparisons on a CUDA device with CuPy.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import embspace as es
import numpy as np
import pytest
from embspace import _core, device
from embspace.errors import DeviceUnavailableError
from embspace.gpu import knn_xp, numpy_device
from embspace.measures import MEASURES

METRICS = ["cosine", "euclidean", "dot"]


@pytest.fixture
def no_cupy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(sys.modules, "cupy", None)
    device.gpu_available.cache_clear()
    yield
    device.gpu_available.cache_clear()


def _tied(seed: int = 0, n: int = 300, d: int = 5) -> np.ndarray:
    """Small integers (exact products: real ties), duplicate rows and a zero row."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, (n, d)).astype(np.float32)
    x[[10, 11, 12]] = x[3]
    x[200:260] = x[199]
    x[20] = 0.0
    return x


@pytest.mark.parametrize("metric", METRICS)
def test_xp_knn_equals_rust_knn_with_ties_and_duplicates(metric: str) -> None:
    x = _tied()
    d_rust, i_rust = _core.knn(x, 15, metric, None, 2)
    d_xp, i_xp = knn_xp(x, 15, metric=metric, xp=np, memory_budget=200_000)
    np.testing.assert_array_equal(i_xp, i_rust)
    np.testing.assert_array_equal(d_xp, d_rust)


@pytest.mark.parametrize("metric", METRICS)
def test_xp_knn_equals_rust_knn_on_random_data(metric: str) -> None:
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((700, 24)) * rng.uniform(0.1, 10, (700, 1))).astype(np.float32)
    queries = np.array([0, 699, 350, 350, 17], dtype=np.int64)
    for q in (None, queries):
        d_rust, i_rust = _core.knn(x, 10, metric, q, 2)
        d_xp, i_xp = knn_xp(x, 10, metric=metric, queries=q, xp=np)
        np.testing.assert_array_equal(i_xp, i_rust)
        np.testing.assert_allclose(d_xp, d_rust, rtol=1e-6, atol=1e-7)


def _embeddings(seed: int, n: int = 250, d: int = 8) -> es.Embeddings:
    rng = np.random.default_rng(seed)
    return es.Embeddings([f"e{i}" for i in range(n)], rng.standard_normal((n, d)))


def test_neighbor_table_on_the_gpu_branch_equals_the_cpu(no_cupy: None) -> None:
    emb = _embeddings(1)
    cpu = es.NeighborTable(emb, metric="cosine", device="cpu")
    with numpy_device():
        gpu = es.NeighborTable(emb, metric="cosine", device="gpu")
        d_gpu, i_gpu = gpu.knn(7)
        frame_gpu = gpu.neighbors("e3", k=5)
    d_cpu, i_cpu = cpu.knn(7)
    np.testing.assert_array_equal(i_gpu, i_cpu)
    np.testing.assert_allclose(d_gpu, d_cpu, rtol=1e-6, atol=1e-7)
    frame_cpu = cpu.neighbors("e3", k=5)
    assert frame_gpu["key"].tolist() == frame_cpu["key"].tolist()
    np.testing.assert_allclose(frame_gpu["score"], frame_cpu["score"], rtol=1e-6)


def test_gpu_device_without_cupy_is_refused_and_auto_falls_back(no_cupy: None) -> None:
    emb = _embeddings(2)
    with pytest.raises(DeviceUnavailableError):
        es.NeighborTable(emb, device="gpu")
    with pytest.raises(DeviceUnavailableError):
        es.compare(emb, emb, measures=["cca"], device="gpu")
    auto = es.NeighborTable(emb, device="auto").knn(4)
    cpu = es.NeighborTable(emb, device="cpu").knn(4)
    np.testing.assert_array_equal(auto[1], cpu[1])


def test_compare_on_the_gpu_branch_equals_the_cpu_for_every_measure(no_cupy: None) -> None:
    a = _embeddings(3, n=300, d=6)
    rng = np.random.default_rng(9)
    b = es.Embeddings(
        a.keys, a.vectors @ rng.standard_normal((6, 6)) + 0.3 * rng.standard_normal((300, 6))
    )
    names = sorted(MEASURES)
    cpu = es.compare(a, b, measures=names, k=8, device="cpu")
    with numpy_device():
        gpu = es.compare(a, b, measures=names, k=8, device="gpu")
    assert set(gpu.scores) == set(names)
    for name in names:
        assert gpu.scores[name] == pytest.approx(cpu.scores[name], rel=1e-10, abs=1e-12), name
    np.testing.assert_allclose(
        gpu.per_entity.to_numpy(dtype=float), cpu.per_entity.to_numpy(dtype=float), rtol=1e-12
    )


# --------------------------------------------------------------------- GPU
@pytest.fixture(scope="module")
def cupy():
    if not device.gpu_available():
        pytest.skip("needs CuPy and a CUDA device")
    import cupy

    return cupy


@pytest.mark.gpu
@pytest.mark.parametrize("metric", METRICS)
def test_gpu_knn_equals_rust_knn(cupy, metric: str) -> None:
    for x in (_tied(seed=4, n=2000, d=6), np.random.default_rng(6).standard_normal((3000, 32))):
        x = x.astype(np.float32)
        d_rust, i_rust = _core.knn(x, 10, metric, None, 0)
        d_gpu, i_gpu = es.NeighborTable(
            es.Embeddings(list(range(len(x))), x), metric=metric, device="gpu"
        ).knn(10)
        np.testing.assert_array_equal(i_gpu, i_rust)
        np.testing.assert_allclose(d_gpu, d_rust, rtol=1e-6, atol=1e-7)


@pytest.mark.gpu
def test_gpu_compare_equals_cpu_for_every_measure(cupy) -> None:
    a = _embeddings(7, n=2000, d=16)
    rng = np.random.default_rng(8)
    b = es.Embeddings(
        a.keys, a.vectors @ rng.standard_normal((16, 16)) + rng.standard_normal((2000, 16))
    )
    names = sorted(MEASURES)
    cpu = es.compare(a, b, measures=names, device="cpu")
    gpu = es.compare(a, b, measures=names, device="gpu")
    for name in names:
        assert gpu.scores[name] == pytest.approx(cpu.scores[name], rel=1e-5, abs=1e-8), name
