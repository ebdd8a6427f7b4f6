"""WALS against an independent dense numpy implementation of the same loss."""

from __future__ import annotations

import embspace as es
import numpy as np
import pytest
import scipy.sparse as sp
from embspace import errors
from embspace.factorization.wals import initial_factors, wals_loss


def random_ratings(n=40, m=25, density=0.25, seed=0, empty_row=None, empty_col=None):
    rng = np.random.default_rng(seed)
    mask = rng.random((n, m)) < density
    if empty_row is not None:
        mask[empty_row] = False
    if empty_col is not None:
        mask[:, empty_col] = False
    values = rng.integers(1, 11, size=(n, m)) * 0.5
    dense = np.where(mask, values, 0.0)
    return sp.csr_matrix(dense.astype(np.float32)), mask, dense


def dense_weights(mask, w0, R, C):
    n, m = mask.shape
    R = np.ones(n) if R is None else np.asarray(R, np.float64)
    C = np.ones(m) if C is None else np.asarray(C, np.float64)
    return np.where(mask, w0 + np.outer(R, C), w0)


def dense_loss(A, W, U, V, lam):
    return float((W * (A - U @ V.T) ** 2).sum() + lam * ((U**2).sum() + (V**2).sum()))


def dense_solve(A, W, fixed, lam):
    """Each row of the solved factor: (fixed^T diag(W_i) fixed + lam I) x = fixed^T (W_i * A_i),
    written densely (every entry, observed or not), with no Gramian trick."""
    k = fixed.shape[1]
    out = np.empty((A.shape[0], k))
    for i in range(A.shape[0]):
        M = fixed.T @ (W[i][:, None] * fixed) + lam * np.eye(k)
        out[i] = np.linalg.solve(M, fixed.T @ (W[i] * A[i]))
    return out


def dense_wals(A, W, U, V, lam, iterations):
    U, V = U.astype(np.float64), V.astype(np.float64)
    losses = [dense_loss(A, W, U, V, lam)]
    for _ in range(iterations):
        U = dense_solve(A, W, V, lam)
        losses.append(dense_loss(A, W, U, V, lam))
        V = dense_solve(A.T, W.T, U, lam)
        losses.append(dense_loss(A, W, U, V, lam))
    return U, V, losses


def counts_weights(mask, kind, exponent=0.08, factor=130.0):
    n = mask.sum(axis=0).astype(np.float64)
    frac = np.divide(1.0, n, out=np.zeros_like(n), where=n > 0)
    if kind == "log":
        return np.where(n > 0, frac**exponent, 0.0)
    return factor * frac


@pytest.mark.parametrize(
    ("row_weights", "col_weights", "w0", "lam"),
    [
        (None, "log", 0.01, 0.07),
        (None, "linear", 0.1, 0.5),
        (None, None, 0.5, 0.07),
        ("array", "array", 1.0, 0.2),
        (None, "log", 0.0, 0.07),
    ],
)
def test_matches_dense_reference(row_weights, col_weights, w0, lam):
    X, mask, A = random_ratings(seed=3)
    rng = np.random.default_rng(9)
    R = rng.uniform(0.5, 2.0, X.shape[0]) if row_weights == "array" else None
    if col_weights == "array":
        C = rng.uniform(0.1, 3.0, X.shape[1])
        col_spec = C
    else:
        C = None if col_weights is None else counts_weights(mask, col_weights)
        col_spec = col_weights
    k, iters = 4, 6
    model = es.WALS(
        factors=k,
        unobserved_weight=w0,
        regularization=lam,
        iterations=iters,
        row_weights=R,
        col_weights=col_spec,
        random_state=5,
    ).fit(X, progress=False)
    U0, V0 = initial_factors(X.shape[0], X.shape[1], k, 5)
    W = dense_weights(mask, w0, R, C)
    U, V, losses = dense_wals(A, W, U0, V0, lam, iters)
    scale = max(np.abs(U).max(), np.abs(V).max())
    np.testing.assert_allclose(model.user_factors_, U, atol=1e-5 * scale, rtol=0)
    np.testing.assert_allclose(model.item_factors_, V, atol=1e-5 * scale, rtol=0)
    np.testing.assert_allclose(model.half_sweep_losses_, losses, rtol=1e-5)
    assert model.loss_history_ == [model.half_sweep_losses_[0], *model.half_sweep_losses_[2::2]]


def test_loss_never_increases_and_last_half_sweep_is_stationary():
    X, mask, A = random_ratings(n=60, m=30, seed=1)
    model = es.WALS(factors=5, iterations=15, random_state=0).fit(X, progress=False)
    losses = np.array(model.half_sweep_losses_)
    assert (np.diff(losses) <= 1e-6 * losses[:-1]).all()
    C = counts_weights(mask, "log")
    W = dense_weights(mask, 0.01, None, C)
    # Re-solving the last (column) half-sweep in numpy reproduces the item factors.
    V = dense_solve(A.T, W.T, model.user_factors_.astype(np.float64), 0.07)
    np.testing.assert_allclose(model.item_factors_, V, atol=1e-5 * np.abs(V).max())
    # And the reported loss is the exact dense loss of the fitted factors.
    exact = dense_loss(A, W, model.user_factors_, model.item_factors_, 0.07)
    assert losses[-1] == pytest.approx(exact, rel=1e-5)


def test_bit_identical_for_any_thread_count():
    X, _, _ = random_ratings(n=300, m=120, density=0.1, seed=2)
    fits = [
        es.WALS(factors=8, iterations=4, random_state=11, num_threads=t).fit(X, progress=False)
        for t in (1, 2, 4)
    ]
    for f in fits[1:]:
        assert np.array_equal(f.user_factors_, fits[0].user_factors_)
        assert np.array_equal(f.item_factors_, fits[0].item_factors_)
        assert f.half_sweep_losses_ == fits[0].half_sweep_losses_


def test_same_seed_same_result_different_seed_differs():
    X, _, _ = random_ratings(seed=4)
    a = es.WALS(factors=3, iterations=3, random_state=1).fit(X, progress=False)
    b = es.WALS(factors=3, iterations=3, random_state=1).fit(X, progress=False)
    c = es.WALS(factors=3, iterations=3, random_state=2).fit(X, progress=False)
    assert np.array_equal(a.item_factors_, b.item_factors_)
    assert not np.array_equal(a.item_factors_, c.item_factors_)


def test_empty_rows_and_columns_get_the_regularised_solution():
    X, _, _ = random_ratings(seed=6, empty_row=3, empty_col=7)
    model = es.WALS(factors=4, iterations=5, random_state=0).fit(X, progress=False)
    assert np.isfinite(model.user_factors_).all() and np.isfinite(model.item_factors_).all()
    # With no observed entry the right-hand side is 0, so the solution is 0.
    assert np.array_equal(model.user_factors_[3], np.zeros(4, np.float32))
    assert np.array_equal(model.item_factors_[7], np.zeros(4, np.float32))
    # Also with w0 = 0 and lambda = 0, where that system is singular.
    X2 = X.tolil()
    X2[3, :] = 0
    model = es.WALS(
        factors=2, iterations=3, unobserved_weight=0.0, regularization=0.0, random_state=0
    ).fit(sp.csr_matrix(X2), progress=False)
    assert np.isfinite(model.user_factors_).all()


def test_large_w0_and_lambda_zero_full_rank():
    rng = np.random.default_rng(0)
    A = rng.uniform(1, 5, size=(12, 8))
    X = sp.csr_matrix(A.astype(np.float32))  # every entry observed
    model = es.WALS(
        factors=8,
        iterations=30,
        unobserved_weight=50.0,
        regularization=0.0,
        col_weights=None,
        random_state=0,
    ).fit(X, progress=False)
    # All entries observed with equal weights and k = rank: an exact reconstruction.
    np.testing.assert_allclose(model.user_factors_ @ model.item_factors_.T, A, atol=1e-3)


def test_fitted_embeddings_are_keyed_like_the_ratings(tiny):
    model = es.WALS(factors=6, iterations=3, random_state=0).fit(tiny, progress=False)
    items = model.item_embeddings_
    assert items.keys == tiny.item_keys
    assert model.user_embeddings_.keys == tiny.user_keys
    assert items.vectors.shape == (tiny.n_items, 6) and items.vectors.dtype == np.float32
    assert items.metadata["estimator"] == "WALS"
    assert items.metadata["params"]["unobserved_weight"] == 0.01
    assert items.metadata["fingerprint"] == tiny.fingerprint
    # the callback sees every iteration with the loss
    seen = []
    es.WALS(factors=3, iterations=4, random_state=0).fit(
        tiny, callback=lambda it, elapsed, loss: seen.append((it, loss)), progress=False
    )
    assert [it for it, _ in seen] == [1, 2, 3, 4]


def test_callback_exception_stops_training(tiny):
    class Stop(Exception):
        pass

    def cb(it, elapsed, loss):
        if it == 2:
            raise Stop

    model = es.WALS(factors=3, iterations=10, random_state=0)
    with pytest.raises(Stop):
        model.fit(tiny, callback=cb, progress=False)
    with pytest.raises(errors.NotFittedError):
        _ = model.item_embeddings_


def test_loss_function_matches_dense():
    X, mask, A = random_ratings(seed=8)
    rng = np.random.default_rng(0)
    U, V = rng.standard_normal((X.shape[0], 3)), rng.standard_normal((X.shape[1], 3))
    R, C = rng.uniform(0, 2, X.shape[0]), rng.uniform(0, 2, X.shape[1])
    got = wals_loss(
        es.Ratings.from_csr(X),
        U,
        V,
        unobserved_weight=0.3,
        regularization=0.1,
        row_weights=R.astype(np.float32),
        col_weights=C.astype(np.float32),
    )
    W = dense_weights(mask, 0.3, R.astype(np.float32), C.astype(np.float32))
    want = dense_loss(A, W, U.astype(np.float32), V.astype(np.float32), 0.1)
    assert got == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize(
    "params",
    [
        {"factors": 26},  # more than the 25 items
        {"factors": 0},
        {"unobserved_weight": -1.0},
        {"unobserved_weight": float("nan")},
        {"regularization": -0.1},
        {"iterations": -1},
        {"solver": "lu"},
        {"col_weights": "sqrt"},
        {"col_weights": np.full(25, np.nan)},
        {"col_weights": -np.ones(25)},
        {"col_weights": np.ones(24)},
        {"row_weights": np.full(40, -2.0)},
        {"num_threads": 0},
    ],
)
def test_bad_parameters_are_typed_errors(params):
    X, _, _ = random_ratings()
    with pytest.raises(errors.EmbspaceError) as info:
        es.WALS(**{"iterations": 2, **params}).fit(X, progress=False)
    assert isinstance(info.value, ValueError)


def test_cg_solver_decreases_the_loss_and_approaches_cholesky():
    X, _, _ = random_ratings(n=80, m=40, seed=12)
    exact = es.WALS(factors=6, iterations=10, random_state=0).fit(X, progress=False)
    cg = es.WALS(factors=6, iterations=10, solver="cg", cg_steps=6, random_state=0).fit(
        X, progress=False
    )
    losses = np.array(cg.half_sweep_losses_)
    assert (np.diff(losses) <= 1e-6 * losses[:-1]).all()
    assert cg.loss_history_[-1] == pytest.approx(exact.loss_history_[-1], rel=0.05)


def test_sklearn_clone_and_params():
    from sklearn.base import clone

    m = es.WALS(factors=7, unobserved_weight=0.5)
    c = clone(m).set_params(unobserved_weight=2.0)
    assert c.get_params()["factors"] == 7 and c.unobserved_weight == 2.0
    assert m.unobserved_weight == 0.5
