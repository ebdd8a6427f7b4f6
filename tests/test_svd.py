"""SVD against numpy's dense SVD."""

from __future__ import annotations

import embspace as es
import numpy as np
import pytest
import scipy.sparse as sp
from embspace import errors


def matrix(seed=0, n=30, m=20):
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((n, m)) < 0.4, rng.integers(1, 6, (n, m)), 0).astype(np.float32)
    return sp.csr_matrix(dense), dense.astype(np.float64)


def test_equals_dense_svd_up_to_sign():
    X, A = matrix()
    k = 5
    model = es.SVD(factors=k, random_state=0).fit(X)
    u, s, vt = np.linalg.svd(A, full_matrices=False)
    np.testing.assert_allclose(model.singular_values_, s[:k], rtol=1e-8)
    root = np.sqrt(s[:k])
    for j in range(k):
        ref_v = vt[j] * root[j]
        got_v = model.item_factors_[:, j]
        sign = np.sign(got_v @ ref_v)
        np.testing.assert_allclose(got_v, sign * ref_v, atol=1e-5)
        np.testing.assert_allclose(model.user_factors_[:, j], sign * u[:, j] * root[j], atol=1e-5)
    # U sqrt(S) (V sqrt(S))^T is the rank-k truncation.
    approx = model.user_factors_.astype(np.float64) @ model.item_factors_.T
    best = (u[:, :k] * s[:k]) @ vt[:k]
    np.testing.assert_allclose(approx, best, atol=1e-4)


def test_deterministic_for_a_seed_and_signs_fixed():
    X, _ = matrix(seed=1)
    a = es.SVD(factors=4, random_state=3).fit(X)
    b = es.SVD(factors=4, random_state=3).fit(X)
    c = es.SVD(factors=4, random_state=None).fit(X)
    assert np.array_equal(a.item_factors_, b.item_factors_)
    np.testing.assert_allclose(a.item_factors_, c.item_factors_, atol=1e-5)
    v = a.item_factors_
    assert (v[np.abs(v).argmax(axis=0), np.arange(4)] > 0).all()
    assert (np.diff(a.singular_values_) <= 0).all()


def test_embeddings_keys_and_errors(tiny):
    model = es.SVD(factors=3, random_state=0).fit(tiny)
    assert model.item_embeddings_.keys == tiny.item_keys
    assert model.item_embeddings_.metadata["estimator"] == "SVD"
    X, _ = matrix()
    with pytest.raises(errors.InvalidParameterError):
        es.SVD(factors=20).fit(X)
    with pytest.raises(errors.InvalidParameterError):
        es.SVD(factors=0).fit(X)
    with pytest.raises(errors.NotFittedError):
        _ = es.SVD().singular_values_
