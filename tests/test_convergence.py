"""Convergence of WALS (``tol``, ``converged_``, ``n_iter_``) on both backends, SVD's
``converged_``, and what a sweep makes of it: the table's ``converged`` column and
the warning about runs stopped at their iteration cap."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator

import embspace as es
import numpy as np
import pytest
from embspace import device
from embspace.errors import EmbspaceWarning, InvalidParameterError, NonFiniteError, NotFittedError
from embspace.gpu import numpy_device
from embspace.sweeps import Sweep
from sklearn.base import clone

TOL = 1e-3


@pytest.fixture
def no_cupy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(sys.modules, "cupy", None)
    device.gpu_available.cache_clear()
    yield
    device.gpu_available.cache_clear()


def _wals(**kw) -> es.WALS:
    return es.WALS(**{"factors": 6, "random_state": 0, "num_threads": 2, **kw})


def _fit(ratings, backend: str, **kw) -> es.WALS:
    """A fit on the Rust CPU backend, or on the array-module (GPU) backend run with numpy."""
    if backend == "cpu":
        return _wals(**kw).fit(ratings, progress=False)
    with numpy_device():
        return _wals(device="gpu", **kw).fit(ratings, progress=False)


def _first_below(history: list[float], tol: float) -> int | None:
    """The first iteration t (from 1) with (L_{t-1} - L_t) / L_{t-1} < tol, read off
    a history of 1 + 2 n values (start, then users and items half-sweeps)."""
    ends = np.asarray(history[0::2], dtype=np.float64)  # L_0, L_1, ...
    rel = (ends[:-1] - ends[1:]) / ends[:-1]
    below = np.flatnonzero(rel < tol)
    return int(below[0]) + 1 if below.size else None


# ---------------------------------------------------------------- WALS


@pytest.mark.parametrize("backend", ["cpu", "xp-numpy"])
def test_a_run_capped_before_tol_is_not_converged(no_cupy: None, tiny, backend: str) -> None:
    model = _fit(tiny, backend, iterations=2, tol=1e-9)
    assert model.n_iter_ == 2 and model.converged_ is False and model.interrupted_ is False
    assert len(model.loss_history_) == 5
    # the stopping rule was not met: the last decrease is still above tol
    assert _first_below(model.loss_history_, 1e-9) is None
    assert model.item_embeddings_.metadata["converged"] is False


@pytest.mark.parametrize("backend", ["cpu", "xp-numpy"])
def test_tol_stops_at_the_first_small_decrease_and_reproduces_a_fixed_count(
    no_cupy: None, tiny, backend: str
) -> None:
    cap = 200
    # the reference: every iteration of the cap, no test; the rule applied here
    full = _fit(tiny, backend, iterations=cap)
    assert full.converged_ is False and full.n_iter_ == cap
    want = _first_below(full.loss_history_, TOL)
    assert want is not None and 2 < want < cap  # the case is not trivial
    model = _fit(tiny, backend, iterations=cap, tol=TOL)
    assert model.converged_ is True and model.n_iter_ == want
    assert model.loss_history_ == full.loss_history_[: 1 + 2 * want]
    assert model.item_embeddings_.metadata["converged"] is True
    assert model.item_embeddings_.metadata["n_iter"] == want
    # the same factors, bit for bit, as a fit of n_iter_ iterations without tol
    fixed = _fit(tiny, backend, iterations=model.n_iter_)
    assert np.array_equal(model.user_factors_, fixed.user_factors_)
    assert np.array_equal(model.item_factors_, fixed.item_factors_)
    assert fixed.converged_ is False  # nothing was tested there


def test_both_backends_stop_at_the_same_iteration(no_cupy: None, tiny) -> None:
    cpu = _fit(tiny, "cpu", iterations=200, tol=TOL)
    xp = _fit(tiny, "xp-numpy", iterations=200, tol=TOL)
    assert cpu.converged_ and xp.converged_ and cpu.n_iter_ == xp.n_iter_


@pytest.mark.gpu
def test_tol_on_a_cuda_device_stops_where_the_cpu_does(tiny) -> None:
    """The CuPy backend: the same stopping iteration as the Rust path, and the
    factors of a fixed-count fit of that many iterations on the device."""
    if not device.gpu_available():
        pytest.skip("needs CuPy and a CUDA device")
    cpu = _wals(iterations=200, tol=TOL).fit(tiny, progress=False)
    gpu = _wals(iterations=200, tol=TOL, device="gpu").fit(tiny, progress=False)
    assert gpu.converged_ and gpu.n_iter_ == cpu.n_iter_
    fixed = _wals(iterations=gpu.n_iter_, device="gpu").fit(tiny, progress=False)
    assert np.array_equal(gpu.item_factors_, fixed.item_factors_)
    np.testing.assert_allclose(gpu.loss_history_, cpu.loss_history_, rtol=1e-5)


def test_a_tol_reached_exactly_at_the_cap_is_converged(tiny) -> None:
    want = _first_below(_wals(iterations=60).fit(tiny, progress=False).loss_history_, TOL)
    assert want is not None
    model = _wals(iterations=want, tol=TOL).fit(tiny, progress=False)
    assert model.n_iter_ == want and model.converged_ is True
    model = _wals(iterations=want - 1, tol=TOL).fit(tiny, progress=False)
    assert model.n_iter_ == want - 1 and model.converged_ is False


def test_no_tol_or_zero_runs_the_cap(tiny) -> None:
    """The default (tol=None) is the reference notebook's fixed 20 iterations; 0 too."""
    assert es.WALS().tol is None and es.WALS().iterations == 20
    plain = _wals(iterations=7).fit(tiny, progress=False)
    zero = _wals(iterations=7, tol=0.0).fit(tiny, progress=False)
    for model in (plain, zero):
        assert model.n_iter_ == 7 and model.converged_ is False
    assert np.array_equal(plain.item_factors_, zero.item_factors_)


@pytest.mark.parametrize(
    ("tol", "error"),
    [
        (-1e-3, InvalidParameterError),
        (float("nan"), NonFiniteError),
        (float("inf"), NonFiniteError),
        ("1e-3", InvalidParameterError),
        (True, InvalidParameterError),
    ],
)
def test_bad_tol_is_a_typed_error_before_training(tiny, tol, error) -> None:
    model = _wals(iterations=2, tol=tol)
    with pytest.raises(error, match="tol"):
        model.fit(tiny, progress=False)
    with pytest.raises(NotFittedError):
        model.converged_  # noqa: B018


def test_an_interrupted_fit_is_not_converged(tiny) -> None:
    def stop(it: int, elapsed: float, loss: float) -> None:
        if it == 2:
            raise KeyboardInterrupt

    model = _wals(iterations=50, tol=1e-12)
    with pytest.raises(KeyboardInterrupt):
        model.fit(tiny, callback=stop, progress=False)
    assert model.interrupted_ and model.n_iter_ == 2 and model.converged_ is False


def test_callback_sees_the_last_iteration_and_clone_keeps_tol(tiny) -> None:
    seen: list[int] = []
    model = _wals(iterations=200, tol=TOL)
    model.fit(tiny, callback=lambda it, elapsed, loss: seen.append(it), progress=False)
    assert seen == list(range(1, model.n_iter_ + 1))
    assert clone(model).get_params()["tol"] == TOL


def test_svd_is_always_converged(tiny) -> None:
    svd = es.SVD(factors=5, random_state=0)
    with pytest.raises(NotFittedError):
        svd.converged_  # noqa: B018
    svd.fit(tiny)
    assert svd.converged_ is True and svd.item_embeddings_.metadata["converged"] is True


# ---------------------------------------------------------------- sweeps


def _sweep(tiny, estimator, param, values, reference, cache_dir=False) -> Sweep:
    return Sweep(
        tiny,
        estimator,
        param,
        values,
        reference=reference,
        seeds=2,
        measures=("cca", "cka"),
        cache_dir=cache_dir,
    )


def _converged(table, against: str) -> dict[float, set[bool]]:
    rows = table[table["against"] == against]
    return {v: set(rows[rows["value"] == v]["converged"]) for v in set(rows["value"])}


def test_table_converged_column_and_the_warning_for_capped_runs(tiny) -> None:
    """Sweeping the cap itself: 2 iterations never reach tol, 200 do. A row
    converged when every run it compares did: its value's runs, and for rows
    against the reference the reference's runs too."""
    sweep = _sweep(tiny, _wals(tol=TOL), "iterations", [200, 2], reference=200)
    with pytest.warns(EmbspaceWarning, match="stopped at their cap") as caught:
        sweep.run(progress=False)
    message = str(caught[0].message)
    assert "2 of 4 runs" in message and "iterations=2 (seeds 0, 1)" in message
    assert "tol=0.001" in message and "iterations=200" not in message
    runs = {(r.value, r.seed): r for r in sweep.runs}
    for seed in (0, 1):
        capped, done = runs[(2, seed)], runs[(200, seed)]
        assert capped.converged is False and capped.n_iter == 2 and capped.tol == TOL
        assert capped.last_decrease is not None and capped.last_decrease >= TOL
        assert done.converged is True and done.n_iter < 200 and done.last_decrease < TOL
    assert list(sweep.table.columns)[-1] == "converged"
    assert _converged(sweep.table, "reference") == {200: {True}, 2: {False}}
    svd = es.SVD(factors=6, random_state=0).fit(tiny)
    sweep.against(svd)
    assert _converged(sweep.table, "svd") == {200: {True}, 2: {False}}
    exported = sweep.to_dict()
    assert {r["converged"] for r in exported["runs"]} == {True, False}
    assert {row["converged"] for row in exported["table"]} == {True, False}

    # with the capped value as the reference, every row against it is unconverged,
    # but the 200-iteration runs against SVD are converged
    other = _sweep(tiny, _wals(tol=TOL), "iterations", [200, 2], reference=2)
    with pytest.warns(EmbspaceWarning):
        other.run(progress=False)
    other.against(svd)
    assert _converged(other.table, "reference") == {200: {False}, 2: {False}}
    assert _converged(other.table, "svd") == {200: {True}, 2: {False}}


def test_no_warning_without_tol_and_the_record_survives_the_cache(tiny, tmp_path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", EmbspaceWarning)
        plain = _sweep(tiny, _wals(iterations=3), "unobserved_weight", [0.0, 0.5], 0.0).run(
            progress=False
        )
    # (2 seeds also warn that the permutation test cannot reach 0.05: not this test's concern)
    assert not [w for w in caught if "stopped at their cap" in str(w.message)]
    # nothing was tested: the runs are not known to have converged, and nobody is warned
    assert all(r.converged is False and r.tol is None for r in plain.runs)
    assert set(plain.table["converged"]) == {False}

    first = _sweep(tiny, _wals(iterations=200, tol=TOL), "unobserved_weight", [0.0, 0.5], 0.0,
                   cache_dir=tmp_path)  # fmt: skip
    first.run(progress=False)
    again = _sweep(tiny, _wals(iterations=200, tol=TOL), "unobserved_weight", [0.0, 0.5], 0.0,
                   cache_dir=tmp_path)  # fmt: skip
    again.run(progress=False)
    assert all(r.cached for r in again.runs) and not any(r.cached for r in first.runs)
    keep = ("value", "seed", "n_iter", "converged", "tol", "last_decrease")
    assert [{k: getattr(r, k) for k in keep} for r in again.runs] == [
        {k: getattr(r, k) for k in keep} for r in first.runs
    ]
    assert all(r.converged for r in again.runs)
    assert set(again.table["converged"]) == {True}


def test_an_estimator_that_does_not_say_gives_none(tiny) -> None:
    class Silent(es.WALS):
        """A WALS whose fit hides converged_ (an estimator that does not report it)."""

        def fit(self, X, callback=None, progress=True):  # type: ignore[no-untyped-def]
            super().fit(X, callback=callback, progress=progress)
            del self.__dict__["converged_"]
            return self

    sweep = _sweep(tiny, Silent(factors=6, iterations=3), "unobserved_weight", [0.0, 0.5], 0.0)
    sweep.run(progress=False)
    assert all(r.converged is None for r in sweep.runs)
    assert set(sweep.table["converged"]) == {None}
