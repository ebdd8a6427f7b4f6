"""WALS against an independent dense numpy implementation of TensorFlow WALS."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TypeVar

import embspace as es
import numpy as np
import pytest
import scipy.sparse as sp
from embspace import _core
from embspace._registry import DeviceRegistry
from embspace.errors import (
    DeviceUnavailableError,
    InvalidParameterError,
    NonFiniteError,
    NotFittedError,
    NumericalError,
    ShapeMismatchError,
)
from embspace.factorization import LossTerms, WalsBackend, WalsProblem, initial_factors
from embspace.factorization import wals as wals_module
from embspace.factorization.aligned import as_line_aligned, line_aligned_empty
from embspace.factorization.wals_cpu import CpuBackend
from embspace.factorization.wals_gpu import XpWalsBackend
from sklearn.base import clone
from wals_helpers import loss_terms

T = TypeVar("T")

# ---------------------------------------------------------------- reference


def random_ratings(
    n: int, m: int, density: float, seed: int, empty_rows=(), empty_cols=()
) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    mask = rng.random((n, m)) < density
    mask[list(empty_rows), :] = False
    mask[:, list(empty_cols)] = False
    values = rng.integers(1, 11, size=(n, m)) * 0.5
    return sp.csr_matrix(np.where(mask, values, 0.0).astype(np.float32))


def dense_weights(a: sp.csr_matrix, opts: dict) -> tuple[np.ndarray, np.ndarray]:
    """R and C (float64) as the test computes them from the options."""
    n, m = a.shape
    counts = np.asarray((a != 0).sum(axis=0)).ravel().astype(np.float64)
    r = opts.get("row_weights")
    r = np.ones(n) if r is None else np.asarray(r, dtype=np.float64)
    c = opts.get("col_weights", "log")
    if c is None:
        c = np.ones(m)
    elif isinstance(c, str) and c == "log":
        e = opts.get("col_weight_exponent", 0.08)
        c = np.where(counts > 0, np.maximum(counts, 1) ** -e, 0.0)
    elif isinstance(c, str) and c == "linear":
        f = opts.get("col_weight_factor", 130.0)
        c = np.where(counts > 0, f / np.maximum(counts, 1), 0.0)
    else:
        c = np.asarray(c, dtype=np.float64)
    # the estimator hands float32 weights to the core
    return r.astype(np.float32).astype(np.float64), c.astype(np.float32).astype(np.float64)


def ref_half_sweep(values, mask, fixed, extra, w0, lam, scaling):
    """Exact minimisation over the rows of ``values`` (dense, ``mask`` observed)."""
    g = fixed.T @ fixed
    k = fixed.shape[1]
    out = np.zeros((values.shape[0], k))
    for i in range(values.shape[0]):
        obs = mask[i]
        if not obs.any():
            continue
        vf = fixed[obs]
        w = extra[i, obs]
        lam_i = lam * obs.sum() if scaling == "count" else lam
        lhs = w0 * g + (vf.T * w) @ vf + lam_i * np.eye(k)
        rhs = vf.T @ ((w0 + w) * values[i, obs])
        out[i] = np.linalg.solve(lhs, rhs)
    return out


def ref_loss(values, mask, u, v, extra, w0, lam, scaling):
    pred = u @ v.T
    weight = np.where(mask, w0 + extra, w0)
    resid = np.where(mask, values - pred, pred)
    total = float(np.sum(weight * resid**2))
    if scaling == "count":
        reg = np.sum(mask.sum(1) * (u**2).sum(1)) + np.sum(mask.sum(0) * (v**2).sum(1))
    else:
        reg = np.sum(u**2) + np.sum(v**2)
    return total + lam * float(reg)


def reference_fit(a: sp.csr_matrix, opts: dict, iterations: int):
    """Dense float64 WALS from the same starting point, rounding the factors
    to float32 after every half-sweep (the estimator stores float32)."""
    k = opts.get("factors", 10)
    w0 = opts.get("unobserved_weight", 0.01)
    lam = opts.get("regularization", 0.07)
    scaling = opts.get("regularization_scaling", "none")
    scale = opts.get("init_scale") or 1 / np.sqrt(k)
    rng = np.random.default_rng(opts["random_state"])
    u, v = initial_factors(a.shape[0], a.shape[1], k, scale, rng)
    u, v = u.astype(np.float64), v.astype(np.float64)
    values = a.toarray().astype(np.float64)
    mask = a.toarray() != 0
    r, c = dense_weights(a, opts)
    extra = np.outer(r, c)
    losses = [ref_loss(values, mask, u, v, extra, w0, lam, scaling)]
    for _ in range(iterations):
        u = ref_half_sweep(values, mask, v, extra, w0, lam, scaling).astype(np.float32)
        u = u.astype(np.float64)
        losses.append(ref_loss(values, mask, u, v, extra, w0, lam, scaling))
        v = ref_half_sweep(values.T, mask.T, u, extra.T, w0, lam, scaling).astype(np.float32)
        v = v.astype(np.float64)
        losses.append(ref_loss(values, mask, u, v, extra, w0, lam, scaling))
    return u, v, losses


def weighted_squares(a: sp.csr_matrix, opts: dict) -> float:
    """``sum W_ij A_ij^2`` over the observed entries: the terms that cancel in
    a row's loss ``c - 2 b.u + u^T A u`` (from its float32-summed normal
    equations), which bound its rounding."""
    r, c = dense_weights(a, opts)
    values = a.toarray().astype(np.float64)
    w = opts.get("unobserved_weight", 0.01) + np.outer(r, c)
    return float(np.sum(np.where(values != 0, w * values**2, 0.0)))


def max_rel(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-12))


# ---------------------------------------------------------------- tests

RATINGS = random_ratings(60, 40, 0.25, seed=1, empty_rows=[7], empty_cols=[3])
N_USERS, N_ITEMS = RATINGS.shape

OPTIONS = [
    {},
    {"col_weights": None},
    {"col_weights": "linear", "col_weight_factor": 20.0},
    {"col_weights": "log", "col_weight_exponent": 0.5},
    {
        "row_weights": np.linspace(0.5, 2.0, N_USERS),
        "col_weights": np.linspace(0.1, 3.0, N_ITEMS),
    },
    {"regularization_scaling": "count", "regularization": 0.02},
    {"unobserved_weight": 0.0, "regularization": 0.5},
    {"unobserved_weight": 5.0, "factors": 4},
    {"factors": 16, "unobserved_weight": 0.3},
    # k >= 32 with rows shorter than k (about 10 ratings a user): solved in the
    # space of their entries, which is more accurate here than the k x k
    # normal matrix summed in float32 (worst factor error 3.7e-6 and 3.1e-6,
    # measured; the k x k path gave 1.5e-4, missing 1e-5, and 8.7e-6)
    {"factors": 40, "unobserved_weight": 0.3},
    {"factors": 36, "unobserved_weight": 0.1},
]


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: ",".join(sorted(o)) or "defaults")
def test_matches_dense_reference(opts: dict) -> None:
    params = {"factors": 6, "iterations": 4, "random_state": 3, **opts}
    model = es.WALS(**params).fit(RATINGS, progress=False)
    u, v, losses = reference_fit(RATINGS, params, params["iterations"])
    assert max_rel(model.user_factors_, u) < 1e-5
    assert max_rel(model.item_factors_, v) < 1e-5
    assert len(model.loss_history_) == 1 + 2 * params["iterations"]
    # the fit records each row's loss from its normal equations: exact to a
    # few 1e-7 of the weighted squares that cancel in it (at most 1.5e-7
    # measured, at k = 36 in the space of the rows' entries)
    bound = 3e-7 * (weighted_squares(RATINGS, params) + np.asarray(losses))
    assert np.all(np.abs(np.asarray(model.loss_history_) - losses) <= bound)
    # the backend's loss by terms, summed over the ratings, is exact to 1e-6
    problem = model._problem(es.Ratings.from_csr(RATINGS), np.random.default_rng(3))
    backend = CpuBackend(problem)
    by_terms = [backend.start().total]
    for _ in range(params["iterations"]):
        by_terms += [backend.half_sweep(side).total for side in ("users", "items")]
    np.testing.assert_allclose(by_terms, losses, rtol=1e-6)
    assert np.array_equal(backend.factors()[0], model.user_factors_)
    assert model.user_factors_.dtype == np.float32 and model.item_factors_.flags.c_contiguous


def test_zero_regularization_on_a_full_rank_problem() -> None:
    a = random_ratings(30, 25, 0.6, seed=5)
    params = {
        "factors": 5,
        "iterations": 3,
        "regularization": 0.0,
        "unobserved_weight": 0.1,
        "random_state": 0,
    }
    model = es.WALS(**params).fit(a, progress=False)
    _u, v, _ = reference_fit(a, params, 3)
    assert max_rel(model.item_factors_, v) < 1e-5


def test_loss_never_increases() -> None:
    a = random_ratings(80, 50, 0.15, seed=9, empty_rows=[0], empty_cols=[1])
    for solver in ("cholesky", "cg"):
        for seed in range(3):
            model = es.WALS(factors=8, iterations=12, solver=solver, cg_steps=2, random_state=seed)
            hist = np.array(model.fit(a, progress=False).loss_history_)
            # each half-sweep is an exact (or CG-descent) block minimisation;
            # the slack covers float32 storage of the factors
            assert np.all(np.diff(hist) <= 1e-9 * hist[:-1]), (solver, np.diff(hist).max())
            assert hist[-1] < 0.5 * hist[0]


def test_stationarity_of_the_last_half_sweep() -> None:
    # The last half-sweep solved the items with the users fixed: solving it
    # again in numpy from the fitted user factors gives the fitted item factors.
    a = random_ratings(70, 45, 0.2, seed=11, empty_cols=[2])
    opts = {"factors": 7, "iterations": 6, "random_state": 4, "unobserved_weight": 0.05}
    model = es.WALS(**opts).fit(a, progress=False)
    values = a.toarray().astype(np.float64)
    mask = a.toarray() != 0
    r, c = dense_weights(a, opts)
    v = ref_half_sweep(
        values.T, mask.T, model.user_factors_.astype(np.float64), np.outer(r, c).T, 0.05, 0.07, ""
    )
    assert max_rel(model.item_factors_, v) < 1e-5
    assert np.all(model.item_factors_[2] == 0)


def test_bit_identical_for_any_thread_count() -> None:
    a = random_ratings(300, 120, 0.1, seed=2)
    for solver in ("cholesky", "cg"):
        runs = [
            es.WALS(factors=20, iterations=3, solver=solver, num_threads=t, random_state=7).fit(
                a, progress=False
            )
            for t in (1, 2, 4)
        ]
        for r in runs[1:]:
            assert np.array_equal(r.user_factors_, runs[0].user_factors_)
            assert np.array_equal(r.item_factors_, runs[0].item_factors_)
            assert r.loss_history_ == runs[0].loss_history_


def test_deterministic_for_a_seed_and_seed_recorded() -> None:
    a = random_ratings(40, 30, 0.3, seed=3)
    m1 = es.WALS(factors=4, iterations=2, random_state=12).fit(a, progress=False)
    m2 = es.WALS(factors=4, iterations=2, random_state=12).fit(a, progress=False)
    m3 = es.WALS(factors=4, iterations=2, random_state=13).fit(a, progress=False)
    assert np.array_equal(m1.item_factors_, m2.item_factors_)
    assert not np.array_equal(m1.item_factors_, m3.item_factors_)
    fresh = es.WALS(factors=4, iterations=2).fit(a, progress=False)
    again = es.WALS(factors=4, iterations=2, random_state=fresh.seed_).fit(a, progress=False)
    assert np.array_equal(fresh.item_factors_, again.item_factors_)


def test_empty_rows_and_columns_get_zero_vectors() -> None:
    a = random_ratings(30, 20, 0.3, seed=4, empty_rows=[0, 5], empty_cols=[19])
    for solver in ("cholesky", "cg"):
        for w0 in (0.0, 0.5):
            m = es.WALS(
                factors=3, iterations=2, unobserved_weight=w0, solver=solver, random_state=0
            )
            m.fit(a, progress=False)
            assert np.all(m.user_factors_[[0, 5]] == 0) and np.all(m.item_factors_[19] == 0)
            assert np.isfinite(m.user_factors_).all() and np.isfinite(m.loss_history_).all()
    # no regularization and no unobserved weight: the empty rows still get 0
    m = es.WALS(factors=1, iterations=2, unobserved_weight=0.0, regularization=0.0, random_state=0)
    m.fit(random_ratings(20, 10, 0.6, seed=1, empty_rows=[3]), progress=False)
    assert np.all(m.user_factors_[3] == 0) and np.isfinite(m.item_factors_).all()


def test_singular_system_is_a_typed_error() -> None:
    # lambda = 0 and w0 = 0: a user with one rating and k = 3 has a rank-1 system
    a = sp.csr_matrix(np.array([[5.0, 0, 0, 0], [1, 2, 3, 4], [4, 3, 2, 1]], dtype=np.float32))
    model = es.WALS(factors=3, unobserved_weight=0.0, regularization=0.0, random_state=0)
    with pytest.raises(NumericalError, match="row 0"):
        model.fit(a, progress=False)
    with pytest.raises(NotFittedError):
        _ = model.item_embeddings_


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"factors": N_ITEMS + 1}, InvalidParameterError),
        ({"factors": 0}, InvalidParameterError),
        ({"factors": 2.5}, InvalidParameterError),
        ({"iterations": 0}, InvalidParameterError),
        ({"unobserved_weight": -0.1}, InvalidParameterError),
        ({"regularization": float("nan")}, NonFiniteError),
        ({"col_weights": "sqrt"}, InvalidParameterError),
        ({"col_weights": np.full(N_ITEMS, np.nan)}, NonFiniteError),
        ({"col_weights": -np.ones(N_ITEMS)}, InvalidParameterError),
        ({"col_weights": np.ones(N_ITEMS + 1)}, ShapeMismatchError),
        ({"row_weights": np.r_[np.ones(N_USERS - 1), np.inf]}, NonFiniteError),
        ({"row_weights": "log"}, InvalidParameterError),
        ({"col_weight_exponent": float("inf")}, NonFiniteError),
        ({"solver": "lu"}, InvalidParameterError),
        ({"cg_steps": 0, "solver": "cg"}, InvalidParameterError),
        ({"regularization_scaling": "sqrt"}, InvalidParameterError),
        ({"num_threads": 0}, InvalidParameterError),
        ({"random_state": "seed"}, InvalidParameterError),
        ({"init_scale": -1.0}, InvalidParameterError),
        ({"device": "tpu"}, InvalidParameterError),
    ],
)
def test_bad_parameters_are_typed_errors(params: dict, error: type) -> None:
    model = es.WALS(**{"factors": 3, "iterations": 1, "random_state": 0, **params})
    with pytest.raises(error):
        model.fit(RATINGS, progress=False)


def test_bad_input_and_devices() -> None:
    with pytest.raises(InvalidParameterError):
        es.WALS().fit(np.ones((3, 3)), progress=False)
    if not es.device.gpu_available():
        with pytest.raises(DeviceUnavailableError):
            es.WALS(device="gpu", factors=2).fit(RATINGS, progress=False)
        auto = es.WALS(device="auto", factors=2, iterations=1, random_state=0)
        assert auto.fit(RATINGS, progress=False).n_iter_ == 1


def test_core_rejects_inconsistent_arrays() -> None:
    indptr, indices, data = (
        np.array([0, 1], np.int64),
        np.array([5], np.int32),
        np.ones(1, np.float32),
    )
    fixed = np.zeros((3, 2), np.float32)
    out = np.zeros((1, 2), np.float32)
    with pytest.raises(es.errors.IndexOutOfRangeError):
        _core.wals_half_sweep(
            indptr, indices, data, 3, fixed, out, unobserved_weight=0.1, regularization=0.1
        )
    with pytest.raises(ShapeMismatchError):
        _core.wals_half_sweep(
            indptr, indices, data, 4, fixed, out, unobserved_weight=0.1, regularization=0.1
        )
    with pytest.raises(ShapeMismatchError):
        _core.wals_half_sweep(
            indptr, indices, data, 3, fixed, np.zeros((1, 3), np.float32),
            unobserved_weight=0.1, regularization=0.1,
        )  # fmt: skip


def test_python_loss_formula_matches_the_core() -> None:
    a = RATINGS
    k = 5
    rng = np.random.default_rng(0)
    u, v = initial_factors(N_USERS, N_ITEMS, k, 0.7, rng)
    r = np.linspace(0.5, 1.5, N_USERS).astype(np.float32)
    c = np.linspace(0.1, 2.0, N_ITEMS).astype(np.float32)
    for scaling in ("none", "count"):
        kw = {"unobserved_weight": 0.2, "regularization": 0.1}
        mine = loss_terms(
            np,
            a.indptr.astype(np.int64),
            a.indices,
            a.data,
            u,
            v,
            row_weights=r,
            col_weights=c,
            regularization_scaling=scaling,
            chunk=37,
            **kw,
        )
        core = _core.wals_loss(
            a.indptr.astype(np.int64), a.indices, a.data, N_ITEMS, u, v,
            row_weights=r, col_weights=c, reg_scaling=scaling, **kw,
        )  # fmt: skip
        values = a.toarray().astype(np.float64)
        want = ref_loss(
            values, values != 0, u.astype(np.float64), v.astype(np.float64),
            np.outer(r, c).astype(np.float64), 0.2, 0.1, scaling,
        )  # fmt: skip
        assert mine.total == pytest.approx(want, rel=1e-9)
        assert sum(core) == pytest.approx(want, rel=1e-9)


def test_gramian_binding() -> None:
    x = np.random.default_rng(1).normal(size=(500, 7)).astype(np.float32)
    g = _core.wals_gramian(x, num_threads=2)
    np.testing.assert_allclose(g, x.astype(np.float64).T @ x.astype(np.float64), rtol=1e-12)
    assert _core.wals_kernels() in ("avx512", "avx2", "portable")


def test_callback_progress_and_embeddings(capsys: pytest.CaptureFixture[str]) -> None:
    ratings = es.Ratings.from_csr(RATINGS, user_ids=[f"u{i}" for i in range(N_USERS)])
    seen = []
    model = es.WALS(factors=3, iterations=3, random_state=1)
    model.fit(ratings, callback=lambda it, elapsed, loss: seen.append((it, elapsed, loss)))
    assert [s[0] for s in seen] == [1, 2, 3]
    assert [s[2] for s in seen] == model.loss_history_[2::2]
    assert all(b[1] >= a[1] >= 0 for a, b in itertools.pairwise(seen))
    assert "WALS" in capsys.readouterr().err  # the progress bar
    ue, ie = model.user_embeddings_, model.item_embeddings_
    assert ue.keys == ratings.user_keys and ie.keys == ratings.item_keys
    assert np.array_equal(ie.vectors, model.item_factors_)
    assert list(ue.ids) == list(ratings.user_ids)
    meta = ie.metadata
    assert meta["estimator"] == "WALS" and meta["seed"] == 1 and meta["side"] == "items"
    assert meta["data"] == ratings.fingerprint and meta["params"]["factors"] == 3
    assert meta["loss"] == model.loss_ and model.n_iter_ == 3 and model.fit_time_ > 0
    # scipy input: keys are 0..n-1
    plain = es.WALS(factors=2, iterations=1, random_state=0).fit(RATINGS, progress=False)
    assert plain.item_embeddings_.keys == list(range(N_ITEMS))


def test_keyboard_interrupt_keeps_the_last_complete_state(monkeypatch: pytest.MonkeyPatch) -> None:
    def stop(it: int, elapsed: float, loss: float) -> None:
        if it == 2:
            raise KeyboardInterrupt

    model = es.WALS(factors=3, iterations=10, random_state=0)
    with pytest.raises(KeyboardInterrupt):
        model.fit(RATINGS, callback=stop, progress=False)
    assert model.interrupted_ and model.n_iter_ == 2 and len(model.loss_history_) == 5
    full = es.WALS(factors=3, iterations=2, random_state=0).fit(RATINGS, progress=False)
    assert np.array_equal(model.item_factors_, full.item_factors_)
    assert not full.interrupted_


class InPlaceBackend(CpuBackend):
    """The CPU backend as a backend that writes each half-sweep into the
    factors in place, with the base class's (copying) checkpoint."""

    checkpoint = WalsBackend.checkpoint

    def half_sweep(self, side: str) -> LossTerms:
        return self._in_place(side, super().half_sweep)

    def half_sweep_total(self, side: str) -> float:
        return self._in_place(side, super().half_sweep_total)

    def _in_place(self, side: str, sweep: Callable[[str], T]) -> T:
        old = self.u if side == "users" else self.v
        loss = sweep(side)
        old[...] = self.u if side == "users" else self.v
        if side == "users":
            self.u = old
        else:
            self.v = old
        return loss


@pytest.mark.parametrize("backend", ["cpu", "in-place", "xp-numpy"])
@pytest.mark.parametrize("at", [3, 4, 5])
def test_keyboard_interrupt_in_a_half_sweep_keeps_the_last_iteration(
    monkeypatch: pytest.MonkeyPatch, backend: str, at: int
) -> None:
    """Ctrl-C during half-sweep number ``at`` (3: users of iteration 2, 4: its
    items, 5: users of iteration 3), simulated by a KeyboardInterrupt raised
    as that half-sweep returns (its new factors already in the backend): the
    estimator keeps the last completed iteration, whose factors, loss_ and
    n_iter_ agree with each other and with a fit of n_iter_ iterations."""
    factories = {
        "cpu": CpuBackend,
        "in-place": InPlaceBackend,
        "xp-numpy": lambda problem: XpWalsBackend(problem, np),
    }
    only = DeviceRegistry("WALS backend", {"cpu": factories[backend]})
    monkeypatch.setattr(wals_module, "WALS_BACKENDS", only)
    calls = {"n": 0}
    cls = {"cpu": CpuBackend, "in-place": InPlaceBackend, "xp-numpy": XpWalsBackend}[backend]
    original = cls.half_sweep_total  # what a fit calls

    def half_sweep_total(self: WalsBackend, side: str) -> float:
        calls["n"] += 1
        out = original(self, side)
        if calls["n"] == at:
            raise KeyboardInterrupt
        return out

    monkeypatch.setattr(cls, "half_sweep_total", half_sweep_total)
    opts = {"factors": 3, "unobserved_weight": 0.1, "random_state": 0}
    model = es.WALS(iterations=10, **opts)
    with pytest.raises(KeyboardInterrupt):
        model.fit(RATINGS, progress=False)
    done = (at - 1) // 2
    assert model.interrupted_ and model.n_iter_ == done
    assert len(model.loss_history_) == 1 + 2 * done and model.loss_ == model.loss_history_[-1]
    # loss_ is the loss of the kept factors (dense numpy formula) ...
    values = RATINGS.toarray().astype(np.float64)
    r, c = dense_weights(RATINGS, opts)
    u, v = model.user_factors_.astype(np.float64), model.item_factors_.astype(np.float64)
    want = ref_loss(values, values != 0, u, v, np.outer(r, c), 0.1, 0.07, "none")
    assert model.loss_ == pytest.approx(want, rel=1e-6)
    # ... and they are those of a fit of n_iter_ iterations
    monkeypatch.setattr(cls, "half_sweep_total", original)
    same = es.WALS(iterations=done, **opts).fit(RATINGS, progress=False)
    assert np.array_equal(model.user_factors_, same.user_factors_)
    assert np.array_equal(model.item_factors_, same.item_factors_)
    assert model.loss_history_ == same.loss_history_


def test_a_failed_or_interrupted_refit_leaves_no_previous_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = es.WALS(factors=3, iterations=2, random_state=0).fit(RATINGS, progress=False)
    assert model.n_iter_ == 2

    def interrupted_start(self: CpuBackend) -> float:
        raise KeyboardInterrupt  # Ctrl-C during the loss of the starting point

    monkeypatch.setattr(CpuBackend, "start_total", interrupted_start)
    with pytest.raises(KeyboardInterrupt):
        model.fit(RATINGS, progress=False)
    for name in ("user_factors_", "loss_", "n_iter_", "interrupted_"):
        with pytest.raises(NotFittedError):
            getattr(model, name)
    monkeypatch.undo()
    model.fit(RATINGS, progress=False)
    with pytest.raises(InvalidParameterError):
        model.set_params(factors=0).fit(RATINGS, progress=False)
    with pytest.raises(NotFittedError):
        model.loss_  # noqa: B018


def test_a_half_sweep_leaves_the_checkpoint_alone() -> None:
    """The CPU backend solves into new arrays: a checkpoint taken before a
    half-sweep (or a failed one) still holds the factors of that moment."""
    model = es.WALS(factors=3, random_state=0)
    problem = model._problem(es.Ratings.from_csr(RATINGS), np.random.default_rng(0))
    backend = CpuBackend(problem)
    kept = backend.checkpoint()
    u0, v0 = (x.copy() for x in kept())
    backend.half_sweep("users")
    backend.half_sweep("items")
    assert not np.array_equal(backend.factors()[0], u0)
    ku, kv = kept()
    assert np.array_equal(ku, u0) and np.array_equal(kv, v0)
    backend.problem.cg_steps = 0  # the next half-sweep fails in the core
    backend.problem.solver = "cg"
    u1, v1 = (x.copy() for x in backend.factors())
    with pytest.raises(InvalidParameterError):
        backend.half_sweep("users")
    assert np.array_equal(backend.factors()[0], u1) and np.array_equal(backend.factors()[1], v1)


def _at_line_offset(x: np.ndarray, offset: int) -> np.ndarray:
    """A copy of ``x`` (float32) starting ``offset`` bytes past a 64-byte line."""
    raw = np.empty(x.nbytes + 128, dtype=np.uint8)
    start = -raw.ctypes.data % 64 + offset
    out = raw[start : start + x.nbytes].view(np.float32).reshape(x.shape)
    out[...] = x
    assert out.ctypes.data % 64 == offset
    return out


def test_line_aligned_arrays() -> None:
    """The starting factors are drawn on cache lines; as_line_aligned passes
    such an array through and copies any other onto a line, as float32."""
    u, v = initial_factors(1000, 37, 24, 0.1, np.random.default_rng(0))
    assert u.ctypes.data % 64 == 0 and v.ctypes.data % 64 == 0
    assert as_line_aligned(u) is u
    for x in (_at_line_offset(u, 16), u.astype(np.float64), np.asfortranarray(u)):
        y = as_line_aligned(x)
        assert y.ctypes.data % 64 == 0 and y.dtype == np.float32 and y.flags.c_contiguous
        assert np.array_equal(y, u)
    assert line_aligned_empty((0, 5)).shape == (0, 5)


@pytest.mark.parametrize("solver", ["cholesky", "cg"])
@pytest.mark.parametrize("factors", [10, 32])
def test_the_factors_start_on_a_cache_line_and_where_changes_no_bit(
    solver: str, factors: int
) -> None:
    """The CPU backend keeps every factor it hands the core on a 64-byte line
    (a row of k = 16 m values is then m whole lines for the core's gathers,
    where numpy's 16-byte alignment makes it m + 1); the core's results and
    losses are the same bits wherever the arrays start."""
    model = es.WALS(factors=factors, unobserved_weight=0.1, random_state=0, solver=solver)
    problem = model._problem(es.Ratings.from_csr(RATINGS), np.random.default_rng(0))
    aligned, shifted = CpuBackend(problem), CpuBackend(problem)
    seen = list(aligned.factors())
    records = [aligned.start_total()]
    for side in ("users", "items", "users", "items"):
        records.append(aligned.half_sweep_total(side))
        seen += aligned.factors()
    for x in seen:
        assert x.ctypes.data % 64 == 0 and x.flags.c_contiguous and x.dtype == np.float32
    shifts = [shifted.start_total()]
    for side in ("users", "items", "users", "items"):
        # the fixed side 16 bytes past a line, as numpy allocates
        shifted.u, shifted.v = (_at_line_offset(x, 16) for x in shifted.factors())
        shifts.append(shifted.half_sweep_total(side))
    assert shifts == records
    for got, want in zip(shifted.factors(), aligned.factors(), strict=True):
        assert np.array_equal(got, want)


def test_start_gives_the_starting_loss_with_the_first_users_half_sweep() -> None:
    """The CPU backend's start() is the loss of the starting factors (as loss()
    computes it), leaves the factors alone, and the next users half-sweep is
    the one a backend without start() would have done, bit for bit; any other
    next half-sweep discards it."""
    model = es.WALS(factors=3, unobserved_weight=0.1, random_state=0)
    problem = model._problem(es.Ratings.from_csr(RATINGS), np.random.default_rng(0))
    fused, plain, other = CpuBackend(problem), CpuBackend(problem), CpuBackend(problem)
    u0, v0 = (x.copy() for x in fused.factors())
    start = fused.start()
    assert start.total == pytest.approx(plain.loss().total, rel=1e-6)
    for got, want in zip(
        (start.observed, start.unobserved, start.regularization),
        (plain.loss().observed, plain.loss().unobserved, plain.loss().regularization),
        strict=True,
    ):
        assert got == pytest.approx(want, rel=1e-6)
    assert np.array_equal(fused.factors()[0], u0) and np.array_equal(fused.factors()[1], v0)
    kept = fused.checkpoint()
    assert fused.half_sweep("users") == plain.half_sweep("users")
    assert np.array_equal(fused.factors()[0], plain.factors()[0])
    assert np.array_equal(kept()[0], u0)
    other.start()
    assert other.half_sweep("items") == CpuBackend(problem).half_sweep("items")
    assert np.array_equal(other.factors()[0], u0)


def test_the_totals_a_fit_records_agree_with_the_terms() -> None:
    """start_total() and half_sweep_total() (from the normal equations) give
    the terms' totals to within 3e-7 of sum W a^2 plus the loss, the same
    factors bit for bit, in any order with start() and half_sweep(): after
    start_total() the pending users half-sweep has only its total, and
    half_sweep("users") then returns loss() of its factors."""
    opts = {"factors": 5, "unobserved_weight": 0.1, "random_state": 0}
    problem = es.WALS(**opts)._problem(es.Ratings.from_csr(RATINGS), np.random.default_rng(0))
    size = weighted_squares(RATINGS, opts)
    fast, slow, mixed = CpuBackend(problem), CpuBackend(problem), CpuBackend(problem)
    pairs = [(fast.start_total(), slow.start().total)]
    for side in ("users", "items", "users"):
        pairs.append((fast.half_sweep_total(side), slow.half_sweep(side).total))
        assert np.array_equal(fast.factors()[0], slow.factors()[0])
        assert np.array_equal(fast.factors()[1], slow.factors()[1])
    for got, want in pairs:
        assert abs(got - want) <= 3e-7 * (size + want)
    mixed.start_total()
    terms = mixed.half_sweep("users")
    assert np.array_equal(mixed.factors()[0], slow_first_users(problem))
    assert terms.total == pytest.approx(pairs[1][1], rel=1e-6)


def slow_first_users(problem: WalsProblem) -> np.ndarray:
    """The user factors after one users half-sweep from ``problem``'s start."""
    backend = CpuBackend(problem)
    backend.half_sweep("users")
    return backend.factors()[0]


def test_sklearn_params_and_clone() -> None:
    model = es.WALS(factors=4, unobserved_weight=0.5)
    params = model.get_params()
    assert params["factors"] == 4 and params["col_weights"] == "log" and params["device"] == "cpu"
    other = clone(model).set_params(unobserved_weight=2.0)
    assert other.unobserved_weight == 2.0 and model.unobserved_weight == 0.5
    assert "factors=4" in repr(model)
    with pytest.raises(NotFittedError):
        _ = model.user_factors_


def test_notebook_settings_on_ml_latest_small(data_dir) -> None:  # type: ignore[no-untyped-def]
    ratings = es.datasets.load(data_dir / "ml-latest-small")
    model = es.WALS(random_state=0).fit(ratings, progress=False)
    hist = np.array(model.loss_history_)
    assert model.n_iter_ == 20 and len(hist) == 41
    assert np.all(np.diff(hist) <= 1e-9 * hist[:-1])
    items = model.item_embeddings_
    assert items.vectors.shape == (ratings.n_items, 10) and np.isfinite(items.vectors).all()
    assert ("Toy Story (1995)", "Adventure|Animation|Children|Comedy|Fantasy") in items._index


def test_precision_on_an_ill_conditioned_row() -> None:
    # One user with 4000 ratings; item factors whose columns span four orders of
    # magnitude (normal matrix condition number ~1e8). The float32 blocked
    # accumulation with float64 block sums and a float64 solve agrees with a
    # float64 numpy solve to 1e-5.
    rng = np.random.default_rng(0)
    m, k = 4000, 24
    v = (rng.normal(size=(m, k)) * np.logspace(-2, 2, k)).astype(np.float32)
    a = rng.integers(1, 6, size=m).astype(np.float32)
    u = np.zeros((1, k), np.float32)
    _core.wals_half_sweep(
        np.array([0, m], np.int64), np.arange(m, dtype=np.int32), a, m, v, u,
        unobserved_weight=0.0, regularization=1e-3,
    )  # fmt: skip
    v64 = v.astype(np.float64)
    want = np.linalg.solve(v64.T @ v64 + 1e-3 * np.eye(k), v64.T @ a.astype(np.float64))
    assert max_rel(u[0], want) < 1e-5


def test_initial_factors_are_one_normal_stream_in_float32():
    """Drawn in blocks of rows, the start is still exactly one float64 normal
    stream (U's rows, then V's) rounded to float32."""
    rng = np.random.default_rng(11)
    u, v = initial_factors(70_001, 5, 3, 0.25, rng)
    ref = np.random.default_rng(11)
    want_u = ref.normal(0.0, 0.25, size=(70_001, 3)).astype(np.float32)
    want_v = ref.normal(0.0, 0.25, size=(5, 3)).astype(np.float32)
    assert u.dtype == np.float32 and v.dtype == np.float32
    np.testing.assert_array_equal(u, want_u)
    np.testing.assert_array_equal(v, want_v)


def test_a_fit_the_model_explains_exactly_keeps_exact_non_negative_losses() -> None:
    """Ratings that a 3-factor model reproduces exactly, with no unobserved
    weight: the loss falls to rounding next to the ratings' size, where its
    value from the normal equations (``c - 2 b.u + u^T A u``) would be
    rounding, even negative; such rows sum their entries instead, so the
    history stays exact and does not rise."""
    rng = np.random.default_rng(5)
    u, v = rng.normal(size=(80, 3)), rng.normal(size=(50, 3))
    mask = rng.random((80, 50)) < 0.6
    a = sp.csr_matrix(np.where(mask, u @ v.T, 0.0).astype(np.float32))
    opts = {"unobserved_weight": 0.0, "regularization": 1e-9, "col_weights": None}
    model = es.WALS(factors=3, iterations=15, random_state=0, **opts).fit(a, progress=False)
    h = np.asarray(model.loss_history_)
    assert h[-1] < 1e-8 * h[0]  # the premise: an almost exact fit
    # non-negative, and no rise past the fit's rounding tolerance (at the
    # float32 floor the loss of the stored factors wobbles by 1e-10)
    assert np.all(h >= 0) and wals_module._first_rise(model.loss_history_) is None
    values = a.toarray().astype(np.float64)
    fu, fv = model.user_factors_.astype(np.float64), model.item_factors_.astype(np.float64)
    want = ref_loss(values, values != 0, fu, fv, np.ones(values.shape), 0.0, 1e-9, "none")
    assert model.loss_ == pytest.approx(want, rel=1e-3)
