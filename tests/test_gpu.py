"""Device dispatch (CPU everywhere) and the GPU comparisons (``pytest -m gpu``, skipped without CuPy)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from types import ModuleType

import numpy as np
import pytest
import scipy.sparse as sp
from embspace import device
from embspace.device import DEFAULT_NUMPY_BUDGET
from embspace.errors import DeviceUnavailableError, InvalidParameterError
from embspace.gpu import (
    cholesky_solve,
    is_cupy,
    knn_xp,
    memory_budget,
    module_for,
    numpy_device,
    to_device,
    to_numpy,
)
from embspace.gpu.wals_xp import WalsXp
from wals_helpers import fit_wals_xp


@pytest.fixture
def no_cupy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make ``import cupy`` fail, as on a machine without CuPy."""
    monkeypatch.setitem(sys.modules, "cupy", None)
    device.gpu_available.cache_clear()
    yield
    device.gpu_available.cache_clear()


def test_gpu_without_cupy_raises_device_unavailable(no_cupy: None) -> None:
    assert not device.gpu_available()
    with pytest.raises(DeviceUnavailableError, match="CuPy"):
        module_for("gpu")
    with pytest.raises(RuntimeError):  # DeviceUnavailableError is a RuntimeError
        device.array_module("gpu")


def test_auto_falls_back_to_the_cpu(no_cupy: None) -> None:
    assert module_for("auto") == ("cpu", np)
    assert module_for("cpu") == ("cpu", np)


def test_numpy_device_routes_gpu_to_numpy(no_cupy: None) -> None:
    with numpy_device():
        assert module_for("gpu") == ("gpu", np)
        assert module_for("auto") == ("gpu", np)
        assert module_for("cpu") == ("cpu", np)
        with pytest.raises(InvalidParameterError):
            module_for("tpu")
    with pytest.raises(DeviceUnavailableError):
        module_for("gpu")


def test_unknown_device_is_an_invalid_parameter() -> None:
    with pytest.raises(InvalidParameterError, match="device"):
        module_for("tpu")


def test_numpy_helpers() -> None:
    assert not is_cupy(np)
    assert memory_budget(np) == DEFAULT_NUMPY_BUDGET
    assert memory_budget(np, 1234) == 1234
    with pytest.raises(InvalidParameterError):
        memory_budget(np, -1)
    a = np.arange(6, dtype=np.float64).reshape(2, 3)[:, ::2]
    b = to_device(np, a, dtype=np.float32)
    assert b.flags.c_contiguous and b.dtype == np.float32
    c = to_device(np, b, copy=True)
    assert not np.shares_memory(b, c)
    assert to_numpy(c) is c or np.array_equal(to_numpy(c), c)


# --------------------------------------------------------------------- GPU
@pytest.fixture(scope="module")
def cupy() -> ModuleType:
    if not device.gpu_available():
        pytest.skip("needs CuPy and a CUDA device")
    import cupy

    return cupy


def _ratings(seed: int, n: int, m: int, density: float) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((n, m)) < density, rng.integers(1, 11, (n, m)) / 2.0, 0.0)
    dense[3] = 0.0
    dense[:, 5] = 0.0
    return sp.csr_matrix(dense.astype(np.float32))


@pytest.mark.gpu
def test_gpu_device_resolution(cupy: ModuleType) -> None:
    assert module_for("gpu") == ("gpu", cupy)
    assert module_for("auto") == ("gpu", cupy)
    assert is_cupy(cupy)
    assert memory_budget(cupy) > 0


@pytest.mark.gpu
@pytest.mark.parametrize("scale", [False, True])
def test_gpu_wals_matches_numpy_path(cupy: ModuleType, scale: bool) -> None:
    a = _ratings(0, 300, 120, 0.1)
    t = a.T.tocsr()
    rng = np.random.default_rng(1)
    k = 16
    u0 = rng.standard_normal((300, k)).astype(np.float32) * 0.1
    v0 = rng.standard_normal((120, k)).astype(np.float32) * 0.1
    counts = np.diff(t.indptr)
    c = np.where(counts > 0, np.maximum(counts, 1) ** -0.08, 0).astype(np.float32)
    r = rng.uniform(0.5, 1.5, 300).astype(np.float32)
    kwargs = dict(
        unobserved_weight=0.01,
        regularization=0.07,
        iterations=5,
        row_weights=r,
        col_weights=c,
        scale_regularization=scale,
    )
    csr = (a.indptr, a.indices, a.data), (t.indptr, t.indices, t.data)
    cpu = fit_wals_xp(*csr, u0, v0, xp=np, **kwargs)
    gpu = fit_wals_xp(*csr, u0, v0, xp=cupy, **kwargs)
    for got, want in ((gpu.user_factors, cpu.user_factors), (gpu.item_factors, cpu.item_factors)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    np.testing.assert_allclose(gpu.loss_history, cpu.loss_history, rtol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("solver", ["cholesky", "cg"])
def test_gpu_sparse_strategy_matches_numpy_and_repeats_bitwise(
    cupy: ModuleType, solver: str
) -> None:
    # the sparse products on CuPy (cuSPARSE) against numpy (scipy), against
    # the batched path on CuPy and a one-row-a-chunk run; two runs bit-equal
    a = _ratings(2, 400, 150, 0.08)
    t = a.T.tocsr()
    rng = np.random.default_rng(3)
    k = 12
    u0 = rng.standard_normal((400, k)).astype(np.float32) * 0.1
    v0 = rng.standard_normal((150, k)).astype(np.float32) * 0.1
    kwargs = dict(
        unobserved_weight=0.05,
        regularization=0.1,
        iterations=4,
        row_weights=rng.uniform(0.5, 1.5, 400).astype(np.float32),
        col_weights=rng.uniform(0.0, 2.0, 150).astype(np.float32),
        solver=solver,
        strategy="sparse",
    )
    csr = (a.indptr, a.indices, a.data), (t.indptr, t.indices, t.data)
    want = fit_wals_xp(*csr, u0, v0, xp=np, **kwargs)
    got = fit_wals_xp(*csr, u0, v0, xp=cupy, **kwargs)
    again = fit_wals_xp(*csr, u0, v0, xp=cupy, **kwargs)
    one_row = fit_wals_xp(*csr, u0, v0, xp=cupy, memory_budget=8 * 400 * 78 + 8, **kwargs)
    batched = fit_wals_xp(*csr, u0, v0, xp=cupy, **{**kwargs, "strategy": "batched"})
    np.testing.assert_array_equal(again.user_factors, got.user_factors)
    np.testing.assert_array_equal(again.item_factors, got.item_factors)
    assert again.loss_history == got.loss_history
    rtol = 1e-4 if solver == "cg" else 1e-5
    for other in (want, one_row, batched):
        for mine, theirs in (
            (got.user_factors, other.user_factors),
            (got.item_factors, other.item_factors),
        ):
            np.testing.assert_allclose(mine, theirs, rtol=rtol, atol=rtol * np.abs(theirs).max())
        np.testing.assert_allclose(got.loss_history, other.loss_history, rtol=1e-6)
    assert np.all(got.user_factors[3] == 0) and np.all(got.item_factors[5] == 0)
    state = WalsXp(*csr, u0, v0, unobserved_weight=0.05, regularization=0.1, xp=cupy)
    assert state.strategies == {"users": "sparse", "items": "sparse"}  # auto at k = 12


@pytest.mark.gpu
@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dot"])
def test_gpu_knn_matches_numpy_path(cupy: ModuleType, metric: str) -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(-3, 4, (700, 6)).astype(np.float32)
    x[10] = x[20] = x[30]
    y = rng.standard_normal((900, 24)).astype(np.float32)
    for data in (x, y):
        d_cpu, i_cpu = knn_xp(data, 10, metric=metric, xp=np)
        d_gpu, i_gpu = knn_xp(data, 10, metric=metric, xp=cupy, memory_budget=2_000_000)
        np.testing.assert_array_equal(i_gpu, i_cpu)
        np.testing.assert_allclose(d_gpu, d_cpu, rtol=1e-6, atol=1e-6)


@pytest.mark.gpu
def test_gpu_cholesky_solve(cupy: ModuleType) -> None:
    from embspace.errors import NumericalError

    rng = np.random.default_rng(3)
    m = rng.standard_normal((64, 32, 40))
    a = (m @ m.transpose(0, 2, 1) + np.eye(32)).astype(np.float32)
    b = rng.standard_normal((64, 32)).astype(np.float32)
    x = to_numpy(cholesky_solve(cupy, cupy.asarray(a), cupy.asarray(b)))
    np.testing.assert_allclose(x, cholesky_solve(np, a, b), rtol=1e-3, atol=1e-4)
    a[5] = -np.eye(32, dtype=np.float32)
    with pytest.raises(NumericalError):
        cholesky_solve(cupy, cupy.asarray(a), cupy.asarray(b))
