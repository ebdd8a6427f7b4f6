"""Array-module WALS (embspace.gpu.wals_xp) with xp = numpy, against a dense float64 reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from embspace.errors import (
    InvalidParameterError,
    NonFiniteError,
    NumericalError,
    ShapeMismatchError,
)
from embspace.gpu import cholesky_solve
from embspace.gpu.wals_xp import (
    CHUNK,
    SPARSE_MAX_K,
    WalsXp,
    _bytes_per_row,
    padded_lengths,
    plan_batches,
)
from wals_helpers import fit_wals_xp
from xp_reference import wals_cg_half_sweep, wals_fit, wals_half_sweep, wals_loss


def _problem(seed: int = 0, n: int = 37, m: int = 23, k: int = 4, density: float = 0.25):
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((n, m)) < density, rng.integers(1, 11, (n, m)) / 2.0, 0.0)
    dense[5] = 0.0  # an empty user
    dense[:, 3] = 0.0  # an empty item
    dense[7, :] = 0.0
    dense[7, 0] = 4.5  # a user with a single rating
    u0 = rng.standard_normal((n, k)).astype(np.float32)
    v0 = rng.standard_normal((m, k)).astype(np.float32)
    return dense.astype(np.float32), u0, v0


def _csr(dense: np.ndarray):
    a = sp.csr_matrix(dense)
    t = a.T.tocsr()
    return (a.indptr, a.indices, a.data), (t.indptr, t.indices, t.data)


def _weights(dense: np.ndarray, option: str):
    rng = np.random.default_rng(42)
    n, m = dense.shape
    counts = (dense != 0).sum(axis=0)
    if option == "ones":
        return None, None
    if option == "log":  # C_j = n_j^-0.08, rows 1 (the reference notebook's default)
        c = np.where(counts > 0, np.maximum(counts, 1) ** -0.08, 0.0)
        return None, c.astype(np.float32)
    if option == "linear":  # C_j = 130 / n_j
        c = np.where(counts > 0, 130.0 / np.maximum(counts, 1), 0.0)
        return None, c.astype(np.float32)
    # explicit row and column weights
    return rng.uniform(0.2, 2.0, n).astype(np.float32), rng.uniform(0.0, 3.0, m).astype(np.float32)


def _close(actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-4) -> None:
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


STRATEGIES = ["batched", "sparse"]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("option", ["ones", "log", "linear", "explicit"])
@pytest.mark.parametrize("scale", [False, True])
def test_matches_dense_reference(option: str, scale: bool, strategy: str) -> None:
    dense, u0, v0 = _problem()
    r, c = _weights(dense, option)
    w0, lam = 0.1, 0.07
    user_csr, item_csr = _csr(dense)
    u0_before = u0.copy()
    result = fit_wals_xp(
        user_csr,
        item_csr,
        u0,
        v0,
        unobserved_weight=w0,
        regularization=lam,
        iterations=3,
        row_weights=r,
        col_weights=c,
        scale_regularization=scale,
        xp=np,
        memory_budget=40_000,  # several batches per padded length, several chunks
        strategy=strategy,
    )
    np.testing.assert_array_equal(u0, u0_before)  # the init is not modified
    rr = np.ones(dense.shape[0]) if r is None else r
    cc = np.ones(dense.shape[1]) if c is None else c
    u, v, losses = wals_fit(dense, u0, v0, rr, cc, w0, lam, 3, scale)
    assert result.user_factors.dtype == np.float32 and result.item_factors.dtype == np.float32
    _close(result.user_factors, u)
    _close(result.item_factors, v)
    np.testing.assert_allclose(result.loss_history, losses, rtol=1e-5)
    assert result.n_iter == 3
    # rows and columns without ratings get the zero solution, not NaN
    assert np.all(result.user_factors[5] == 0) and np.all(result.item_factors[3] == 0)


def test_long_rows_summed_in_chunks_match_the_reference() -> None:
    # users with more than CHUNK ratings take the chunked float32 -> float64 path
    rng = np.random.default_rng(11)
    n, m, k = 6, 3 * CHUNK + 40, 5
    dense = np.where(rng.random((n, m)) < 0.15, rng.integers(1, 11, (n, m)) / 2.0, 0.0)
    dense[0] = rng.integers(1, 11, m) / 2.0  # m > CHUNK ratings: padded to a multiple of 256
    dense[1, : 2 * CHUNK + 1] = 3.0
    dense = dense.astype(np.float32)
    u0 = rng.standard_normal((n, k)).astype(np.float32)
    v0 = rng.standard_normal((m, k)).astype(np.float32)
    user_csr, item_csr = _csr(dense)
    assert padded_lengths(np.array([m]))[0] > CHUNK
    state = WalsXp(user_csr, item_csr, u0, v0, unobserved_weight=0.05, regularization=0.1)
    state.solve_users()
    ones_u, ones_v = np.ones(n), np.ones(m)
    expected = wals_half_sweep(dense, v0, ones_u, ones_v, 0.05, 0.1)
    _close(state.user_factors, expected, rtol=1e-5)


def test_batch_size_does_not_change_the_result() -> None:
    dense, u0, v0 = _problem(seed=3, n=60, m=40, k=6, density=0.3)
    user_csr, item_csr = _csr(dense)
    kwargs = dict(unobserved_weight=0.05, regularization=0.1, iterations=2, xp=np)
    one_row = fit_wals_xp(user_csr, item_csr, u0, v0, memory_budget=1, **kwargs)
    default = fit_wals_xp(user_csr, item_csr, u0, v0, strategy="batched", **kwargs)
    np.testing.assert_allclose(one_row.user_factors, default.user_factors, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(one_row.item_factors, default.item_factors, rtol=1e-6, atol=1e-6)


def test_chunk_size_does_not_change_the_sparse_result() -> None:
    # the sparse products of a row do not depend on the other rows of its chunk:
    # one row a chunk gives the very same factors as one chunk a side
    dense, u0, v0 = _problem(seed=3, n=60, m=40, k=6, density=0.3)
    user_csr, item_csr = _csr(dense)
    kwargs = dict(unobserved_weight=0.05, regularization=0.1, xp=np, strategy="sparse")
    packed = 6 * 7 // 2
    tight = 8 * 60 * packed + 8  # the packed products fit, one row a chunk
    small = WalsXp(user_csr, item_csr, u0, v0, memory_budget=tight, **kwargs)
    # items (fixed side: 60 users) one row a chunk, empty rows left out; users a few
    assert len(small.items.chunks) == 39 and len(small.users.chunks) >= 20
    assert sum(int(c.rows.size) for c in small.users.chunks) == 59
    assert small.strategies == {"users": "sparse", "items": "sparse"}
    whole = WalsXp(user_csr, item_csr, u0, v0, **kwargs)
    assert len(whole.users.chunks) == 1 and len(whole.items.chunks) == 1
    for _ in range(2):
        # the loss sums run over entries in budget-sized pieces: equal to rounding
        np.testing.assert_allclose(small.iterate(), whole.iterate(), rtol=1e-13)
    np.testing.assert_array_equal(small.factors()[0], whole.factors()[0])
    np.testing.assert_array_equal(small.factors()[1], whole.factors()[1])
    # packed products over the budget: that side takes the padded batches
    over = WalsXp(user_csr, item_csr, u0, v0, memory_budget=8 * 50 * packed, **kwargs)
    assert over.strategies == {"users": "sparse", "items": "batched"}
    assert not over.items.chunks and over.items.batches


def test_auto_strategy_follows_k() -> None:
    rng = np.random.default_rng(0)
    dense = np.where(rng.random((30, 20)) < 0.5, 1.0, 0.0).astype(np.float32)
    user_csr, item_csr = _csr(dense)
    for k, want in ((SPARSE_MAX_K, "sparse"), (SPARSE_MAX_K + 1, "batched")):
        u0 = rng.standard_normal((30, k)).astype(np.float32)
        v0 = rng.standard_normal((20, k)).astype(np.float32)
        state = WalsXp(user_csr, item_csr, u0, v0, unobserved_weight=0.1, regularization=0.1)
        assert state.strategies == {"users": want, "items": want}
    with pytest.raises(InvalidParameterError, match="strategy"):
        WalsXp(user_csr, item_csr, u0, v0, unobserved_weight=0.1, regularization=0.1, strategy="x")


@pytest.mark.parametrize(
    "case",
    ["w0=0", "scaled", "weights", "k=1", "cg", "cg-w0=0", "one-rating"],
)
def test_sparse_and_batched_strategies_agree(case: str) -> None:
    k = 1 if case == "k=1" else 5
    dense, u0, v0 = _problem(seed=17, n=45, m=31, k=k, density=0.3)
    r, c = _weights(dense, "explicit" if case == "weights" else "ones")
    if case == "one-rating":
        dense[:, :] = 0.0
        dense[np.arange(45), np.arange(45) % 31] = 2.5  # every user has one rating
    user_csr, item_csr = _csr(dense)
    kwargs = dict(
        unobserved_weight=0.0 if case in ("w0=0", "cg-w0=0") else 0.2,
        regularization=0.15,
        iterations=3,
        row_weights=r,
        col_weights=c,
        scale_regularization=case == "scaled",
        solver="cg" if case.startswith("cg") else "cholesky",
        xp=np,
    )
    batched = fit_wals_xp(user_csr, item_csr, u0, v0, strategy="batched", **kwargs)
    sparse = fit_wals_xp(user_csr, item_csr, u0, v0, strategy="sparse", **kwargs)
    _close(sparse.user_factors, batched.user_factors, rtol=2e-5)
    _close(sparse.item_factors, batched.item_factors, rtol=2e-5)
    np.testing.assert_allclose(sparse.loss_history, batched.loss_history, rtol=1e-5)
    if not case.startswith("cg"):
        # and the exact solve is the dense float64 reference
        rr = np.ones(dense.shape[0]) if r is None else r
        cc = np.ones(dense.shape[1]) if c is None else c
        u, v, losses = wals_fit(
            dense, u0, v0, rr, cc, kwargs["unobserved_weight"], 0.15, 3, case == "scaled"
        )
        _close(sparse.user_factors, u)
        _close(sparse.item_factors, v)
        np.testing.assert_allclose(sparse.loss_history, losses, rtol=1e-6)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize(
    ("w0", "lam", "scale"), [(0.3, 0.2, False), (0.3, 0.2, True), (0.3, 0.0, False)]
)
def test_cg_is_the_iteration_preconditioned_by_the_shared_part(
    strategy: str, w0: float, lam: float, scale: bool
) -> None:
    # preconditioned by B = w0 G + lam I when every row shares it (lam > 0,
    # not scaled by count), plain otherwise: one half-sweep of each step count
    # against the float64 textbook iteration, which the other one misses
    dense, u0, v0 = _problem(seed=3, n=40, m=30, k=6, density=0.3)
    v0 = v0 * np.array([1.0, 5.0, 0.2, 3.0, 1.0, 8.0], dtype=np.float32)  # B far from c I
    r, c = _weights(dense, "explicit")
    user_csr, item_csr = _csr(dense)
    shared = lam > 0 and not scale
    for steps in (1, 2, 4):
        state = WalsXp(
            user_csr,
            item_csr,
            u0,
            v0,
            unobserved_weight=w0,
            regularization=lam,
            row_weights=r,
            col_weights=c,
            scale_regularization=scale,
            solver="cg",
            cg_steps=steps,
            xp=np,
            strategy=strategy,
        )
        state.half_sweep("users")
        got, _ = state.factors()
        want, other = (
            wals_cg_half_sweep(dense, v0, u0, r, c, w0, lam, steps, flag, scale)
            for flag in (shared, not shared)
        )
        _close(got, want, rtol=2e-5)
        assert np.abs(got - other).max() > 1e-2 * np.abs(other).max()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_loss_never_increases_between_half_sweeps(strategy: str) -> None:
    dense, u0, v0 = _problem(seed=5, n=50, m=30, k=5)
    r, c = _weights(dense, "explicit")
    user_csr, item_csr = _csr(dense)
    state = WalsXp(
        user_csr,
        item_csr,
        u0,
        v0,
        unobserved_weight=0.2,
        regularization=0.05,
        row_weights=r,
        col_weights=c,
        xp=np,
        strategy=strategy,
    )
    losses = [state.loss()]
    for _ in range(4):
        for side in ("users", "items"):
            fused = state.half_sweep(side)
            separate = state.loss_terms()
            # the terms summed during the solve equal a separate pass over the ratings
            np.testing.assert_allclose(fused, separate, rtol=1e-6, atol=1e-9)
            losses.append(sum(fused))
    assert all(b <= a * (1 + 1e-6) for a, b in itertools.pairwise(losses))
    assert losses[-1] < 0.5 * losses[0]
    # the device loss is the dense objective of the same factors
    u, v = state.factors()
    assert state.loss() == pytest.approx(wals_loss(dense, u, v, r, c, 0.2, 0.05), rel=1e-7)


def test_half_sweep_solves_each_row_exactly() -> None:
    dense, u0, v0 = _problem(seed=8)
    user_csr, item_csr = _csr(dense)
    state = WalsXp(user_csr, item_csr, u0, v0, unobserved_weight=0.3, regularization=0.2, xp=np)
    state.solve_users()
    ones_u, ones_v = np.ones(dense.shape[0]), np.ones(dense.shape[1])
    expected = wals_half_sweep(dense, v0, ones_u, ones_v, 0.3, 0.2)
    _close(state.user_factors, expected, rtol=1e-5)


def test_zero_iterations_return_the_init_and_callback_sees_each_iteration() -> None:
    dense, u0, v0 = _problem()
    user_csr, item_csr = _csr(dense)
    same = fit_wals_xp(
        user_csr, item_csr, u0, v0, unobserved_weight=0.1, regularization=0.1, iterations=0
    )
    np.testing.assert_array_equal(same.user_factors, u0)
    assert len(same.loss_history) == 1 and same.n_iter == 0

    seen: list[tuple[int, float, float]] = []
    result = fit_wals_xp(
        user_csr,
        item_csr,
        u0,
        v0,
        unobserved_weight=0.1,
        regularization=0.1,
        iterations=3,
        callback=lambda it, elapsed, loss: seen.append((it, elapsed, loss)),
    )
    assert [s[0] for s in seen] == [1, 2, 3]
    assert [s[2] for s in seen] == result.loss_history[2::2]
    assert len(result.loss_history) == 7
    assert all(b[1] >= a[1] >= 0 for a, b in itertools.pairwise(seen))


def test_callback_exception_stops_training() -> None:
    dense, u0, v0 = _problem()
    user_csr, item_csr = _csr(dense)
    calls = []

    def stop(it: int, elapsed: float, loss: float) -> None:
        calls.append(it)
        if it == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_wals_xp(
            user_csr,
            item_csr,
            u0,
            v0,
            unobserved_weight=0.1,
            regularization=0.1,
            iterations=10,
            callback=stop,
        )
    assert calls == [1, 2]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_singular_system_raises_numerical_error(strategy: str) -> None:
    # w0 = 0, lambda = 0 and a user whose only item has a zero factor: the system is 0.
    dense = np.zeros((3, 2), dtype=np.float32)
    dense[0, 0] = 1.0
    dense[1, 1] = 2.0
    dense[2, 1] = 3.0
    u0 = np.ones((3, 2), dtype=np.float32)
    v0 = np.array([[0.0, 0.0], [1.0, 0.5]], dtype=np.float32)
    user_csr, item_csr = _csr(dense)
    with pytest.raises(NumericalError, match="positive definite"):
        fit_wals_xp(
            user_csr,
            item_csr,
            u0,
            v0,
            unobserved_weight=0.0,
            regularization=0.0,
            iterations=1,
            strategy=strategy,
        )


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_empty_rows_are_zero_even_without_regularisation(strategy: str) -> None:
    dense, u0, v0 = _problem(seed=2, k=2, density=0.6)
    user_csr, item_csr = _csr(dense)
    result = fit_wals_xp(
        user_csr,
        item_csr,
        u0,
        v0,
        unobserved_weight=0.5,
        regularization=0.0,
        iterations=2,
        strategy=strategy,
    )
    assert np.isfinite(result.user_factors).all() and np.isfinite(result.item_factors).all()
    assert np.all(result.user_factors[5] == 0) and np.all(result.item_factors[3] == 0)


def test_bad_input_raises_typed_errors() -> None:
    dense, u0, v0 = _problem()
    user_csr, item_csr = _csr(dense)
    base = dict(unobserved_weight=0.1, regularization=0.1, iterations=1)
    with pytest.raises(ShapeMismatchError):
        fit_wals_xp(user_csr, item_csr, u0[:-1], v0, **base)
    with pytest.raises(ShapeMismatchError):
        fit_wals_xp(user_csr, item_csr, u0, v0[:, :2], **base)
    bad = u0.copy()
    bad[0, 0] = np.nan
    with pytest.raises(NonFiniteError):
        fit_wals_xp(user_csr, item_csr, bad, v0, **base)
    with pytest.raises(InvalidParameterError):
        fit_wals_xp(user_csr, item_csr, u0, v0, **{**base, "regularization": -1.0})
    with pytest.raises(InvalidParameterError):
        fit_wals_xp(user_csr, item_csr, u0, v0, **{**base, "iterations": -1})
    with pytest.raises(InvalidParameterError):
        fit_wals_xp(user_csr, item_csr, u0, v0, col_weights=-np.ones(dense.shape[1]), **base)
    with pytest.raises(ShapeMismatchError):
        fit_wals_xp(user_csr, item_csr, u0, v0, row_weights=np.ones(3), **base)
    with pytest.raises(InvalidParameterError):
        fit_wals_xp(user_csr, item_csr, u0, v0, memory_budget=0, **base)
    indptr, indices, data = user_csr
    with pytest.raises(InvalidParameterError):
        fit_wals_xp((indptr, indices + 100, data), item_csr, u0, v0, **base)
    nan_data = data.copy()
    nan_data[0] = np.inf
    with pytest.raises(NonFiniteError):
        fit_wals_xp((indptr, indices, nan_data), item_csr, u0, v0, **base)


def test_padded_lengths_bound_the_padding() -> None:
    counts = np.arange(1, 5000)
    lengths = padded_lengths(counts)
    assert np.all(lengths >= counts)
    small = counts <= 16
    assert np.all(lengths[small] - counts[small] < 4)
    assert np.all(lengths[~small] <= 1.25 * counts[~small])
    assert np.all(np.diff(lengths) >= 0)
    assert np.unique(lengths).size < 60  # few distinct shapes: few batches


def test_plan_batches_covers_each_nonempty_row_once_within_budget() -> None:
    rng = np.random.default_rng(0)
    counts = np.minimum(rng.zipf(1.6, 3000), 4000)
    counts[rng.integers(0, 3000, 100)] = 0
    k, budget = 16, 2_000_000
    batches = plan_batches(counts, k, budget)
    rows = np.concatenate([r for r, _ in batches])
    assert np.array_equal(np.sort(rows), np.flatnonzero(counts > 0))
    for r, length in batches:
        assert np.all(padded_lengths(counts[r]) == length)
        assert r.size == 1 or r.size * _bytes_per_row(length, k) <= budget
    # a larger budget never needs more batches
    assert len(plan_batches(counts, k, 10 * budget)) <= len(batches)


def test_cholesky_solve_matches_numpy_solve_and_rejects_indefinite() -> None:
    rng = np.random.default_rng(1)
    m = rng.standard_normal((50, 6, 9))
    a = (m @ m.transpose(0, 2, 1) + 0.1 * np.eye(6)).astype(np.float32)
    b = rng.standard_normal((50, 6)).astype(np.float32)
    x = cholesky_solve(np, a, b)
    expected = np.linalg.solve(a.astype(np.float64), b[..., None].astype(np.float64))[..., 0]
    np.testing.assert_allclose(x, expected, rtol=1e-3, atol=1e-4)
    assert cholesky_solve(np, a[:0], b[:0]).shape == (0, 6)
    a[7] = -np.eye(6, dtype=np.float32)
    with pytest.raises(NumericalError):
        cholesky_solve(np, a, b)
