"""WALS(device=...) and Sweep(device=...): the array-module backend against the Rust CPU path.

On the CPU the GPU backend runs with ``xp = numpy`` (:func:`embspace.gpu.numpy_device`):
the same estimator code, the same weights and initial factors, an independent solver
(batched float32 products and batched Cholesky in numpy against the Rust kernels). The
``gpu``-marked tests repeat the comparison on a CUDA device.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator

import embspace as es
import numpy as np
import pytest
from embspace import device
from embspace.errors import DeviceUnavailableError
from embspace.gpu import numpy_device
from embspace.gpu.wals_xp import SPARSE_MAX_K


@pytest.fixture
def no_cupy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(sys.modules, "cupy", None)
    device.gpu_available.cache_clear()
    yield
    device.gpu_available.cache_clear()


@pytest.fixture(scope="module")
def ratings() -> es.Ratings:
    return es.datasets.synthetic(n_users=150, n_items=90, n_ratings=4000, seed=3)


def _close(gpu: es.WALS, cpu: es.WALS, rtol: float = 1e-4) -> None:
    for name in ("user_factors_", "item_factors_"):
        a, b = getattr(gpu, name), getattr(cpu, name)
        assert a.dtype == np.float32 and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * float(np.abs(b).max()))
    assert len(gpu.loss_history_) == len(cpu.loss_history_)
    np.testing.assert_allclose(gpu.loss_history_, cpu.loss_history_, rtol=1e-5)


OPTIONS = [
    {},
    {"col_weights": "linear"},
    {"col_weights": "none", "unobserved_weight": 0.3},
    {"regularization_scaling": "count", "regularization": 0.02},
    {
        "solver": "cg",
        "cg_steps": 2,
        "iterations": 2,
    },  # CG iterates amplify rounding ~6x per iteration
    {"factors": 16, "unobserved_weight": 0.0, "regularization": 0.5},
    # above SPARSE_MAX_K: the padded batches of float32 products
    {"factors": SPARSE_MAX_K + 8, "iterations": 3},
]


@pytest.mark.parametrize(
    "options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults"
)
def test_gpu_backend_on_numpy_equals_the_rust_path(
    no_cupy: None, ratings: es.Ratings, options: dict
) -> None:
    params = {"factors": 8, "iterations": 4, "random_state": 7, **options}
    cpu = es.WALS(**params, device="cpu").fit(ratings, progress=False)
    with numpy_device():
        gpu = es.WALS(**params, device="gpu").fit(ratings, progress=False)
    _close(gpu, cpu)
    assert gpu.item_embeddings_.keys == cpu.item_embeddings_.keys


def test_explicit_row_and_column_weights(no_cupy: None, ratings: es.Ratings) -> None:
    rng = np.random.default_rng(0)
    params = {
        "factors": 6,
        "iterations": 3,
        "random_state": 1,
        "row_weights": rng.uniform(0.1, 2.0, ratings.n_users),
        "col_weights": rng.uniform(0.0, 3.0, ratings.n_items),
    }
    cpu = es.WALS(**params).fit(ratings, progress=False)
    with numpy_device():
        gpu = es.WALS(**params, device="gpu").fit(ratings, progress=False)
    _close(gpu, cpu)


def test_callback_and_history_on_the_gpu_branch(no_cupy: None, ratings: es.Ratings) -> None:
    seen: list[int] = []
    with numpy_device():
        model = es.WALS(factors=4, iterations=3, random_state=0, device="gpu")
        model.fit(ratings, callback=lambda it, elapsed, loss: seen.append(it), progress=False)
    assert seen == [1, 2, 3]
    assert len(model.loss_history_) == 7
    assert all(b <= a * (1 + 1e-6) for a, b in itertools.pairwise(model.loss_history_))


def test_gpu_without_cupy_is_refused_and_auto_is_the_cpu(
    no_cupy: None, ratings: es.Ratings
) -> None:
    with pytest.raises(DeviceUnavailableError):
        es.WALS(factors=4, iterations=1, device="gpu").fit(ratings, progress=False)
    auto = es.WALS(factors=4, iterations=2, random_state=0, device="auto").fit(
        ratings, progress=False
    )
    cpu = es.WALS(factors=4, iterations=2, random_state=0, device="cpu").fit(
        ratings, progress=False
    )
    np.testing.assert_array_equal(auto.item_factors_, cpu.item_factors_)
    with pytest.raises(DeviceUnavailableError):
        es.Sweep(ratings, es.WALS(factors=4), "unobserved_weight", [0.0, 0.1], device="gpu")


def test_sweep_on_the_gpu_branch_equals_the_cpu(no_cupy: None, ratings: es.Ratings) -> None:
    def sweep(device: str) -> es.Sweep:
        return es.Sweep(
            ratings,
            es.WALS(factors=6, iterations=4, device=device),  # training on the device
            "unobserved_weight",
            [0.0, 0.1, 1.0],
            reference=0.0,
            seeds=2,
            measures=("neighbors", "cca", "cka"),
            cache_dir=False,
            device=device,
        ).run(progress=False)

    cpu = sweep("cpu").table
    with numpy_device():
        gpu = sweep("gpu").table
    assert list(gpu.columns) == list(cpu.columns) and len(gpu) == len(cpu)
    for column in ("similarity", "noise_floor"):
        np.testing.assert_allclose(gpu[column], cpu[column], rtol=1e-3, atol=1e-3)


# --------------------------------------------------------------------- GPU
@pytest.fixture(scope="module")
def cupy():
    if not device.gpu_available():
        pytest.skip("needs CuPy and a CUDA device")
    import cupy

    return cupy


@pytest.mark.gpu
@pytest.mark.parametrize("options", OPTIONS[:5], ids=lambda o: ",".join(o) or "defaults")
def test_gpu_wals_equals_the_rust_path(cupy, options: dict) -> None:
    data = es.datasets.synthetic(n_users=3000, n_items=1500, n_ratings=200_000, seed=5)
    params = {"factors": 32, "iterations": 5, "random_state": 2, **options}
    cpu = es.WALS(**params, device="cpu").fit(data, progress=False)
    gpu = es.WALS(**params, device="gpu").fit(data, progress=False)
    _close(gpu, cpu)


@pytest.mark.gpu
def test_gpu_sweep_equals_the_cpu(cupy, ratings: es.Ratings) -> None:
    kwargs = dict(seeds=2, measures=("neighbors", "cca", "unitmatch", "cka"), cache_dir=False)
    values = [0.0, 0.1, 1.0]
    cpu_model = es.WALS(factors=6, iterations=4, device="cpu")
    gpu_model = es.WALS(factors=6, iterations=4, device="gpu")
    cpu = es.Sweep(ratings, cpu_model, "unobserved_weight", values, device="cpu", **kwargs)
    gpu = es.Sweep(ratings, gpu_model, "unobserved_weight", values, device="gpu", **kwargs)
    a, b = gpu.run(progress=False).table, cpu.run(progress=False).table
    np.testing.assert_allclose(a["similarity"], b["similarity"], rtol=1e-3, atol=1e-3)
