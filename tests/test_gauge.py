"""embspace.balance: the balanced gauge of U V^T, against a dense SVD of the product."""

from __future__ import annotations

import embspace as es
import numpy as np
import pytest
from embspace.errors import NonFiniteError, ShapeMismatchError


def _factors(seed: int = 0, m: int = 40, n: int = 30, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m, k)), rng.normal(size=(n, k))


def _sign_fix(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return x * np.sign(np.sum(x * ref, axis=0))


def test_balance_equals_the_svd_of_the_product() -> None:
    u, v = _factors()
    ub, vb = es.balance(u, v)
    p, s, qt = np.linalg.svd(u @ v.T, full_matrices=False)
    k = u.shape[1]
    ref_u = p[:, :k] * np.sqrt(s[:k])
    ref_v = qt[:k].T * np.sqrt(s[:k])
    np.testing.assert_allclose(_sign_fix(ub, ref_u), ref_u, atol=1e-10)
    np.testing.assert_allclose(_sign_fix(vb, ref_v), ref_v, atol=1e-10)


def test_balance_keeps_the_model_and_balances_the_grams() -> None:
    u, v = _factors(1)
    ub, vb = es.balance(u, v)
    np.testing.assert_allclose(ub @ vb.T, u @ v.T, atol=1e-10)
    gu, gv = ub.T @ ub, vb.T @ vb
    np.testing.assert_allclose(gu, gv, atol=1e-10)
    np.testing.assert_allclose(gu, np.diag(np.diag(gu)), atol=1e-10)
    assert np.all(np.diff(np.diag(gu)) <= 1e-12)  # decreasing


def test_any_gauge_transform_gives_the_same_balanced_factors() -> None:
    u, v = _factors(2)
    g = np.random.default_rng(3).normal(size=(5, 5)) + 3 * np.eye(5)
    a = es.balance(u, v)
    b = es.balance(u @ g, v @ np.linalg.inv(g).T)
    # signs are fixed by the largest entry of each item column: equal, not just up to sign
    np.testing.assert_allclose(a[0], b[0], atol=1e-8)
    np.testing.assert_allclose(a[1], b[1], atol=1e-8)


def test_balance_makes_cka_exactly_one_across_a_gauge_change() -> None:
    u, v = _factors(4, m=80, n=60, k=6)
    g = np.random.default_rng(5).normal(size=(6, 6)) + 2 * np.eye(6)
    items = es.Embeddings(list(range(60)), v.astype(np.float32))
    moved = es.Embeddings(list(range(60)), (v @ np.linalg.inv(g).T).astype(np.float32))
    raw = es.compare(items, moved, measures=["cka"]).scores["cka"]
    assert raw < 0.99  # the split alone moved the space
    _, vb = es.balance(u, items)
    _, vb_moved = es.balance(u @ g, moved)
    balanced = es.compare(vb, vb_moved, measures=["cka"]).scores["cka"]
    assert balanced == pytest.approx(1.0, abs=1e-5)


def test_embeddings_in_embeddings_out() -> None:
    u, v = _factors(6)
    users = es.Embeddings([f"u{i}" for i in range(40)], u.astype(np.float32), metadata={"a": 1})
    items = es.Embeddings([("t", i) for i in range(30)], v.astype(np.float32))
    ub, vb = es.balance(users, items)
    assert isinstance(ub, es.Embeddings) and ub.keys == users.keys and vb.keys == items.keys
    assert ub.vectors.dtype == np.float32
    assert ub.metadata == {"a": 1, "gauge": "balanced"}
    np.testing.assert_allclose(ub.vectors @ vb.vectors.T, u @ v.T, atol=1e-4)


def test_rank_deficient_and_few_rows() -> None:
    u, v = _factors(7, m=3, n=30, k=5)  # rank at most 3 < k
    ub, vb = es.balance(u, v)
    assert ub.shape == (3, 5) and vb.shape == (30, 5)
    np.testing.assert_allclose(ub @ vb.T, u @ v.T, atol=1e-10)
    np.testing.assert_allclose(ub[:, 3:], 0.0)


def test_bad_input_is_typed() -> None:
    u, v = _factors()
    with pytest.raises(ShapeMismatchError):
        es.balance(u, v[:, :3])
    with pytest.raises(ShapeMismatchError):
        es.balance(u[0], v)
    bad = u.copy()
    bad[0, 0] = np.nan
    with pytest.raises(NonFiniteError):
        es.balance(bad, v)
