"""SVD embeddings against numpy's dense SVD."""

from __future__ import annotations

import embspace as es
import numpy as np
import pytest
import scipy.sparse as sp
from embspace.errors import InvalidParameterError, NotFittedError


def ratings(n: int, m: int, density: float, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((n, m)) < density, rng.integers(1, 6, (n, m)), 0)
    return sp.csr_matrix(dense.astype(np.float32))


def normalise(u: np.ndarray, s: np.ndarray, vt: np.ndarray):
    """Descending order and the sign rule of embspace (largest |v| entry positive)."""
    order = np.argsort(-s)
    u, s, vt = u[:, order], s[order], vt[order]
    sign = np.sign(vt[np.arange(len(s)), np.argmax(np.abs(vt), axis=1)])
    return u * sign, s, vt * sign[:, None]


@pytest.mark.parametrize(("shape", "k"), [((40, 25), 5), ((30, 60), 8), ((50, 12), 11)])
def test_matches_dense_svd(shape: tuple[int, int], k: int) -> None:
    a = ratings(*shape, 0.3, seed=k)
    model = es.SVD(factors=k, random_state=0).fit(a)
    u, s, vt = np.linalg.svd(a.toarray().astype(np.float64), full_matrices=False)
    u, s, vt = normalise(u[:, :k], s[:k], vt[:k])
    np.testing.assert_allclose(model.singular_values_, s, rtol=1e-8)
    assert np.all(np.diff(model.singular_values_) <= 0)
    np.testing.assert_allclose(model.user_factors_, u * np.sqrt(s), atol=1e-5)
    np.testing.assert_allclose(model.item_factors_, vt.T * np.sqrt(s), atol=1e-5)
    # the embeddings reproduce the rank-k approximation
    approx = model.user_factors_.astype(np.float64) @ model.item_factors_.T
    np.testing.assert_allclose(approx, (u * s) @ vt, atol=1e-4)


def test_deterministic_and_keyed_like_the_ratings() -> None:
    a = ratings(60, 40, 0.2, seed=1)
    r = es.Ratings.from_csr(a, item_ids=[f"i{j}" for j in range(40)])
    m1 = es.SVD(factors=6, random_state=3).fit(r)
    m2 = es.SVD(factors=6, random_state=3).fit(r)
    assert np.array_equal(m1.item_factors_, m2.item_factors_)
    assert np.array_equal(m1.singular_values_, m2.singular_values_)
    assert m1.item_embeddings_.keys == r.item_keys and m1.user_embeddings_.keys == r.user_keys
    meta = m1.item_embeddings_.metadata
    assert meta["estimator"] == "SVD" and meta["seed"] == 3 and meta["data"] == r.fingerprint
    assert m1.get_params() == {"factors": 6, "random_state": 3, "num_threads": None}


def test_bad_factors_and_input() -> None:
    a = ratings(10, 6, 0.5, seed=2)
    for k in (6, 7, 0):
        with pytest.raises(InvalidParameterError):
            es.SVD(factors=k).fit(a)
    with pytest.raises(InvalidParameterError):
        es.SVD(factors=2).fit(a.toarray())
    with pytest.raises(NotFittedError):
        _ = es.SVD().singular_values_


def test_fit_accepts_the_wals_callback_signature():
    rng = np.random.default_rng(0)
    X = sp.random(30, 20, density=0.3, random_state=rng, format="csr", dtype=np.float32)
    seen = []
    es.SVD(factors=3, random_state=0).fit(
        X, callback=lambda it, elapsed, loss: seen.append((it, elapsed, loss)), progress=False
    )
    assert len(seen) == 1 and seen[0][0] == 1 and seen[0][1] >= 0 and np.isnan(seen[0][2])


def test_same_factors_for_any_thread_count_and_as_scipy_on_the_matrix() -> None:
    """The Rust sparse products change neither the result nor its
    independence of threads: the factors equal scipy's svds run on the
    float64 matrix itself, from the same start vector."""
    from scipy.sparse.linalg import svds

    a = ratings(300, 140, 0.1, seed=4)
    runs = [es.SVD(factors=7, random_state=5, num_threads=t).fit(a) for t in (1, 2, 3)]
    for run in runs[1:]:
        assert np.array_equal(run.user_factors_, runs[0].user_factors_)
        assert np.array_equal(run.singular_values_, runs[0].singular_values_)
    v0 = np.random.default_rng(5).uniform(-1.0, 1.0, size=140)
    u, s, vt = normalise(*svds(a.astype(np.float64), k=7, solver="arpack", v0=v0))
    np.testing.assert_allclose(runs[0].singular_values_, s, rtol=1e-10)
    np.testing.assert_allclose(runs[0].item_factors_, vt.T * np.sqrt(s), atol=1e-6)
    np.testing.assert_allclose(runs[0].user_factors_, u * np.sqrt(s), atol=1e-6)
    with pytest.raises(InvalidParameterError):
        es.SVD(factors=2, num_threads=0).fit(a)


def test_csr_matvec_matches_scipy_and_rejects_bad_input() -> None:
    from embspace import _core
    from embspace.errors import IndexOutOfRangeError, ShapeMismatchError

    rng = np.random.default_rng(0)
    a = sp.random(2500, 700, density=0.02, format="csr", random_state=1, dtype=np.float32)
    keep = np.ones(2500, dtype=np.float32)
    keep[3] = 0.0  # an empty row
    a = (sp.diags(keep) @ a).tocsr()
    a.eliminate_zeros()
    assert a.indptr[4] == a.indptr[3]
    parts = (a.indptr.astype(np.int64), a.indices.astype(np.int32), a.data)
    x = rng.standard_normal(700)
    want = a.astype(np.float64) @ x
    for threads in (1, 2, 4):
        got = _core.csr_matvec(*parts, 700, x, num_threads=threads)
        assert got.dtype == np.float64 and got.shape == (2500,)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    with pytest.raises(ShapeMismatchError):
        _core.csr_matvec(*parts, 700, x[:-1])
    with pytest.raises(ShapeMismatchError):
        _core.csr_matvec(parts[0][:-1], *parts[1:], 700, x)
    bad = parts[1].copy()
    bad[10] = 700
    with pytest.raises(IndexOutOfRangeError, match="700"):
        _core.csr_matvec(parts[0], bad, parts[2], 700, x)


def test_sparse_gram_matches_scipy_for_any_thread_count_and_rejects_bad_input() -> None:
    """The SVD's operator: A^T (A x) and A X of the float32 matrix, in
    float64, equal to scipy's products on a float64 copy, bit for bit the
    same for any number of threads."""
    from embspace import _core
    from embspace.errors import IndexOutOfRangeError, ShapeMismatchError

    rng = np.random.default_rng(1)
    # enough values for several parts of the product (2^19 values each)
    a = sp.random(9000, 700, density=0.2, format="csr", random_state=2, dtype=np.float32)
    a.data = np.round(a.data * 10) / 2  # ratings-like values
    a.eliminate_zeros()
    assert a.nnz > 2 * 2**19
    parts = (a.indptr.astype(np.int64), a.indices.astype(np.int32), a.data)
    a64 = a.astype(np.float64)
    x = rng.standard_normal(700)
    xs = rng.standard_normal((700, 4))
    want, want_mm = a64.T @ (a64 @ x), a64 @ xs
    runs = []
    for threads in (1, 2, 3):
        g = _core.SparseGram(*parts, 700, num_threads=threads)
        assert (g.n_rows, g.n_cols) == (9000, 700)
        z, y = g.apply(x, num_threads=threads), g.matmat(xs, num_threads=threads)
        np.testing.assert_allclose(z, want, rtol=1e-12, atol=1e-12 * np.abs(want).max())
        np.testing.assert_allclose(y, want_mm, rtol=1e-12, atol=1e-12)
        runs.append((z, y))
    for z, y in runs[1:]:
        assert np.array_equal(z, runs[0][0]) and np.array_equal(y, runs[0][1])
    with pytest.raises(ShapeMismatchError):
        g.apply(x[:-1])
    with pytest.raises(ShapeMismatchError):
        g.matmat(xs[:-1])
    bad = parts[1].copy()
    bad[10] = 700
    with pytest.raises(IndexOutOfRangeError, match="700"):
        _core.SparseGram(parts[0], bad, parts[2], 700)
