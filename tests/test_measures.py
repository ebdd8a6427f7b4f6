"""Dense measures against independent references: numpy, scikit-learn, scipy,
published values, and invariances checked by construction."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from embspace import measures as M
from embspace.errors import (
    EmbspaceWarning,
    InvalidParameterError,
    NonFiniteError,
    NumericalError,
    ShapeMismatchError,
)
from scipy.linalg import orthogonal_procrustes
from scipy.stats import ortho_group


def _inv_sqrt(S: np.ndarray) -> np.ndarray:
    w, V = np.linalg.eigh(S)
    return V @ np.diag(w**-0.5) @ V.T


def cca_reference(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Canonical correlations by whitening the covariance blocks (eigh), a route
    independent of the QR/SVD one of embspace."""
    Ac, Bc = A - A.mean(0), B - B.mean(0)
    Saa, Sbb, Sab = Ac.T @ Ac, Bc.T @ Bc, Ac.T @ Bc
    T = _inv_sqrt(Saa) @ Sab @ _inv_sqrt(Sbb)
    return np.linalg.svd(T, compute_uv=False)


def _pair(
    n: int = 500, d: int = 5, seed: int = 0, noise: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d))
    B = A @ rng.standard_normal((d, d)) + noise * rng.standard_normal((n, d))
    return A, B


# ----------------------------------------------------------------------------- CCA
def test_cca_equals_the_whitening_reference() -> None:
    A, B = _pair(800, 6, seed=1)
    res = M.cca(A, B)
    want = cca_reference(A, B)
    np.testing.assert_allclose(res.details["correlations"], want, atol=1e-12)
    assert res.score == pytest.approx(want.mean(), abs=1e-12)
    # different dimensions on the two sides are fine for CCA
    rng = np.random.default_rng(2)
    C = np.hstack([B, rng.standard_normal((800, 3))])
    np.testing.assert_allclose(M.canonical_correlations(A, C), cca_reference(A, C), atol=1e-12)


def test_cca_agrees_with_scikit_learn_on_well_conditioned_data() -> None:
    from sklearn.cross_decomposition import CCA

    A, B = _pair(3000, 4, seed=3, noise=0.7)
    model = CCA(n_components=4, max_iter=5000, tol=1e-12).fit(A, B)
    xs, ys = model.transform(A, B)
    sk = np.array([np.corrcoef(xs[:, i], ys[:, i])[0, 1] for i in range(4)])
    ours = np.array(M.cca(A, B).details["correlations"])
    np.testing.assert_allclose(np.sort(sk)[::-1], ours, atol=1e-4)


def test_cca_invariances_by_construction() -> None:
    A, B = _pair(600, 5, seed=4)
    base = M.cca(A, B).score
    rng = np.random.default_rng(5)
    R = ortho_group.rvs(5, random_state=6)
    perm = rng.permutation(5)
    signs = np.array([1, -1, 1, -1, -1])
    for B2 in (
        B @ R,  # rotation
        3.7 * B,  # isotropic scaling
        B + rng.standard_normal(5) * 10,  # translation
        B[:, perm],  # column permutation
        B * signs,  # sign flips
        B @ rng.standard_normal((5, 5)),  # any invertible linear map
    ):
        assert M.cca(A, B2).score == pytest.approx(base, abs=1e-10)
    assert M.cca(A, A @ rng.standard_normal((5, 5)) + 1.0).score == pytest.approx(1.0, abs=1e-10)


def test_cca_warns_for_few_rows_and_rank_deficiency() -> None:
    rng = np.random.default_rng(7)
    with pytest.warns(EmbspaceWarning) as record:
        res = M.cca(rng.standard_normal((6, 8)), rng.standard_normal((6, 8)))
    messages = [str(w.message) for w in record]
    assert any("n <= d" in m for m in messages)
    assert any("rank 5 < d = 8" in m for m in messages)  # 6 centred rows span 5 dimensions
    np.testing.assert_allclose(res.details["correlations"], np.ones(5), atol=1e-10)
    A = rng.standard_normal((300, 4))
    A = np.hstack([A, A[:, :1] * 2.0 + A[:, 1:2]])  # fifth column dependent
    B = rng.standard_normal((300, 5))
    with pytest.warns(EmbspaceWarning, match="rank 4 < d = 5"):
        res = M.cca(A, B)
    assert res.details["n_components"] == 4
    np.testing.assert_allclose(
        res.details["correlations"], cca_reference(A[:, :4], B)[:4], atol=1e-10
    )
    with pytest.raises(NumericalError):
        M.cca(np.ones((50, 3)), B[:50])


# ----------------------------------------------------------------------------- CKA
def test_cka_matches_kornblith_demo_values() -> None:
    np.random.seed(1337)  # noqa: NPY002 (the recipe of the paper's demo notebook)
    X = np.random.randn(100, 10)  # noqa: NPY002
    Y = np.random.randn(100, 10) + X  # noqa: NPY002
    assert round(M.cka(X, Y).score, 5) == 0.55761
    assert round(M.cka_debiased(X, Y).score, 5) == 0.51346


def _hsic_gram(K: np.ndarray, L: np.ndarray, unbiased: bool) -> float:
    n = K.shape[0]
    if not unbiased:
        H = np.eye(n) - 1.0 / n
        return float(np.trace(K @ H @ L @ H))
    K, L = K.copy(), L.copy()
    np.fill_diagonal(K, 0.0)
    np.fill_diagonal(L, 0.0)
    one = np.ones(n)
    return float(
        np.trace(K @ L)
        + (one @ K @ one) * (one @ L @ one) / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * (one @ K @ L @ one)
    ) / (n * (n - 3))


@pytest.mark.parametrize("unbiased", [False, True])
def test_cka_equals_the_gram_matrix_form(unbiased: bool) -> None:
    A, B = _pair(150, 7, seed=8, noise=2.0)
    B = np.hstack([B, B[:, :2] ** 2])  # different d is fine
    Ac, Bc = A - A.mean(0), B - B.mean(0)
    K, L = Ac @ Ac.T, Bc @ Bc.T
    want = _hsic_gram(K, L, unbiased) / np.sqrt(
        _hsic_gram(K, K, unbiased) * _hsic_gram(L, L, unbiased)
    )
    got = (M.cka_debiased if unbiased else M.cka)(A, B).score
    assert got == pytest.approx(want, abs=1e-12)


def test_cka_invariances() -> None:
    A, B = _pair(400, 6, seed=9)
    base = M.cka(A, B).score
    R = ortho_group.rvs(6, random_state=10)
    for B2 in (B @ R, 0.01 * B, B - 5.0, B[:, ::-1], -B):
        assert M.cka(A, B2).score == pytest.approx(base, abs=1e-12)
        assert M.cka_debiased(A, B2).score == pytest.approx(M.cka_debiased(A, B).score, abs=1e-12)
    assert M.cka(A, A @ R * 2 + 1).score == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(InvalidParameterError):
        M.cka_debiased(A[:3], B[:3])


# ----------------------------------------------------------------------------- Procrustes
def test_procrustes_equals_scipy_and_is_rotation_invariant() -> None:
    A, B = _pair(300, 5, seed=11)
    res = M.procrustes(A, B)
    Ac, Bc = A - A.mean(0), B - B.mean(0)
    _, scale = orthogonal_procrustes(Ac / np.linalg.norm(Ac), Bc / np.linalg.norm(Bc))
    assert res.score == pytest.approx(scale, abs=1e-12)
    assert res.details["angular_distance"] == pytest.approx(np.arccos(scale), abs=1e-12)
    assert res.details["procrustes_distance"] == pytest.approx(np.sqrt(2 - 2 * scale), abs=1e-12)
    R = ortho_group.rvs(5, random_state=12)
    same = M.procrustes(A, 4.0 * A @ R + 3.0)
    assert same.score == pytest.approx(1.0, abs=1e-12)
    assert same.details["angular_distance"] == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ShapeMismatchError):
        M.procrustes(A, B[:, :4])


# ----------------------------------------------------------------------------- SVCCA, PWCCA
def test_svcca_equals_pca_then_cca() -> None:
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(13)
    # a few strong directions and many weak ones, so the 99% cut keeps some
    A = rng.standard_normal((700, 8)) * np.array([10, 8, 6, 5, 0.3, 0.2, 0.1, 0.1])
    B = A[:, :6] @ rng.standard_normal((6, 6)) + 0.5 * rng.standard_normal((700, 6))
    res = M.svcca(A, B, threshold=0.99)
    pa = PCA(n_components=0.99, svd_solver="full").fit_transform(A)
    pb = PCA(n_components=0.99, svd_solver="full").fit_transform(B)
    assert res.details["kept_dims"] == {"A": pa.shape[1], "B": pb.shape[1]}
    assert pa.shape[1] < 8
    want = cca_reference(pa, pb)
    np.testing.assert_allclose(res.details["correlations"], want, atol=1e-10)
    assert res.score == pytest.approx(want.mean(), abs=1e-10)
    R = ortho_group.rvs(6, random_state=14)
    assert M.svcca(A, 2 * B @ R + 1).score == pytest.approx(res.score, abs=1e-10)
    with pytest.raises(InvalidParameterError):
        M.svcca(A, B, threshold=1.5)


def test_pwcca_equals_the_projection_weighted_reference() -> None:
    A, B = _pair(600, 5, seed=15, noise=1.5)
    Ac, Bc = A - A.mean(0), B - B.mean(0)
    Waa, Wbb = _inv_sqrt(Ac.T @ Ac), _inv_sqrt(Bc.T @ Bc)
    U, rho, _ = np.linalg.svd(Waa @ (Ac.T @ Bc) @ Wbb)
    H = Ac @ Waa @ U  # canonical variates of A, unit norm columns
    H /= np.linalg.norm(H, axis=0)
    alpha = np.abs(H.T @ Ac).sum(axis=1)
    alpha /= alpha.sum()
    res = M.pwcca(A, B)
    assert res.score == pytest.approx(float(alpha @ rho), abs=1e-10)
    np.testing.assert_allclose(res.details["weights"], alpha, atol=1e-10)
    rng = np.random.default_rng(16)
    A2 = 3.0 * A[:, [4, 0, 2, 1, 3]] * np.array([1, -1, 1, 1, -1]) + 1.0
    B2 = B @ rng.standard_normal((5, 5)) - 2.0
    assert M.pwcca(A2, B2).score == pytest.approx(res.score, abs=1e-10)
    R = ortho_group.rvs(5, random_state=17)
    assert abs(M.pwcca(A @ R, B).score - res.score) > 1e-6  # not rotation invariant in A


# ----------------------------------------------------------------------------- unitmatch
def _pearson(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    d = A.shape[1]
    return np.corrcoef(A.T, B.T)[:d, d:]


def test_unitmatch_with_replacement_equals_the_correlation_reference() -> None:
    A, B = _pair(400, 6, seed=17)
    C = _pearson(A, B)
    res = M.unitmatch(A, B)
    np.testing.assert_allclose(M.unit_correlations(A, B), C, atol=1e-12)
    assert res.details["matches"] == np.argmax(C, axis=1).tolist()
    assert res.score == pytest.approx(C.max(axis=1).mean(), abs=1e-12)
    assert res.details["stdev"] == pytest.approx(C.max(axis=1).std(), abs=1e-12)
    absolute = M.unitmatch(A, B, absolute=True)
    assert absolute.score == pytest.approx(np.abs(C).max(axis=1).mean(), abs=1e-12)


def test_unitmatch_without_replacement_maximises_over_all_permutations() -> None:
    rng = np.random.default_rng(18)
    A = rng.standard_normal((300, 5))
    # two units of A like the same unit of B: greedy and optimal matchings differ
    B = np.column_stack([A[:, 0] + A[:, 1], A[:, 2], rng.standard_normal(300), A[:, 3], A[:, 4]])
    C = _pearson(A, B)
    best = max(itertools.permutations(range(5)), key=lambda p: sum(C[i, p[i]] for i in range(5)))
    res = M.unitmatch(A, B, replacement=False)
    assert res.details["matches"] == list(best)
    assert res.score == pytest.approx(np.mean([C[i, best[i]] for i in range(5)]), abs=1e-12)
    assert len(set(res.details["matches"])) == 5
    assert M.unitmatch(A, B).details["matches"] != list(best)  # with replacement reuses a unit


def test_unitmatch_recovers_a_column_permutation_exactly() -> None:
    rng = np.random.default_rng(19)
    A = rng.standard_normal((500, 7))
    perm = rng.permutation(7)
    B = A[:, perm] * rng.uniform(0.5, 3.0, 7) + rng.standard_normal(7)
    res = M.unitmatch(A, B, replacement=False)
    assert res.score == pytest.approx(1.0, abs=1e-12)
    assert [perm[j] for j in res.details["matches"]] == list(range(7))
    flipped = B * np.array([1, -1, 1, -1, 1, 1, -1])
    assert M.unitmatch(A, flipped, replacement=False, absolute=True).score == pytest.approx(
        1.0, abs=1e-12
    )
    assert M.unitmatch(A, flipped, replacement=False).score < 0.9


def test_unitmatch_needs_equal_d_and_warns_on_constant_units() -> None:
    A, B = _pair(100, 4, seed=20)
    with pytest.raises(ShapeMismatchError):
        M.unitmatch(A, B[:, :3])
    B2 = B.copy()
    B2[:, 2] = 1.0
    with pytest.warns(EmbspaceWarning, match="constant"):
        C = M.unit_correlations(A, B2)
    assert (C[:, 2] == 0).all()


# ----------------------------------------------------------------------------- input checks
@pytest.mark.parametrize(
    "name", ["cca", "svcca", "pwcca", "cka", "cka_debiased", "procrustes", "unitmatch", "rsa"]
)
def test_dense_measures_reject_bad_input(name: str) -> None:
    fn = M.get_measure(name).function
    A, B = _pair(50, 3, seed=21)
    bad = B.copy()
    bad[3, 1] = np.nan
    with pytest.raises(NonFiniteError):
        fn(A, bad)
    with pytest.raises(NonFiniteError):
        fn(np.where(A > 2.5, np.inf, A) if (A > 2.5).any() else A * np.inf, B)
    with pytest.raises(ShapeMismatchError):
        fn(A, B[:40])
    with pytest.raises(ShapeMismatchError):
        fn(A[:, 0], B)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # well-posed input: no warning
        r = fn(A, B)
    assert np.isfinite(r.score)


def test_every_measure_documents_range_invariances_and_cost() -> None:
    for name, spec in M.MEASURES.items():
        doc = spec.function.__doc__ or ""
        assert "Range" in doc or "range" in doc, name
        assert "nvarian" in doc, name
        assert "Cost" in doc, name


# ----------------------------------------------------------------------------- RSA
def test_rsa_equals_scipy_on_the_sample() -> None:
    from embspace.measures.rsa import sample_by_key
    from scipy.spatial.distance import pdist
    from scipy.stats import spearmanr

    A, B = _pair(500, 6, seed=22)
    res = M.rsa(A, B, sample=120, random_state=3)
    # without keys the row positions are the keys (the sample is drawn by key)
    rows = sample_by_key(range(500), 120, 3)
    assert len(set(rows.tolist())) == 120
    want = spearmanr(pdist(A[rows], "cosine"), pdist(B[rows], "cosine")).statistic
    assert res.score == pytest.approx(want, abs=1e-12)
    R = ortho_group.rvs(6, random_state=23)
    assert M.rsa(A, 5 * B @ R, sample=120, random_state=3).score == pytest.approx(
        res.score, abs=1e-9
    )
    assert M.rsa(A, A, sample=50).score == pytest.approx(1.0)
    assert M.rsa(A[:30], B[:30], sample=1000).details["sample"] == 30
    with pytest.raises(InvalidParameterError):
        M.rsa(A, B, sample=2)


def test_sample_by_key_depends_on_the_key_set_only() -> None:
    from embspace.measures.rsa import sample_by_key

    keys = [f"movie {i}" for i in range(300)] + [(i, "x") for i in range(100)]
    rows = sample_by_key(keys, 50, random_state=4)
    chosen = {keys[i] for i in rows}
    assert len(chosen) == 50 and rows.tolist() == sorted(rows.tolist())
    p = np.random.default_rng(0).permutation(len(keys))
    shuffled = [keys[i] for i in p]
    assert {shuffled[i] for i in sample_by_key(shuffled, 50, random_state=4)} == chosen
    assert {keys[i] for i in sample_by_key(keys, 50, random_state=5)} != chosen
    assert sample_by_key(keys, 400, 0).tolist() == list(range(400))
    # equal keys (1, 1.0, True, np.int64(1)) rank alike
    for same in (1.0, True, np.int64(1)):
        assert (
            sample_by_key([same, 2, 3, 4], 2, 9).tolist()
            == sample_by_key([1, 2, 3, 4], 2, 9).tolist()
        )
    # uniform: each of 20 keys is in a sample of 5 a quarter of the time
    hits = np.zeros(20)
    for seed in range(2000):
        hits[sample_by_key(range(20), 5, seed)] += 1
    freq = hits / 2000
    assert np.abs(freq - 0.25).max() < 5 * np.sqrt(0.25 * 0.75 / 2000)
    for bad in (None, 1.5, True):
        with pytest.raises(InvalidParameterError):
            sample_by_key(keys, 5, bad)


def test_rsa_does_not_depend_on_the_order_of_the_entities() -> None:
    import embspace as es

    A, B = _pair(600, 5, seed=24)
    keys = [("item", i) for i in range(600)]
    p = np.random.default_rng(1).permutation(600)
    base = M.rsa(A, B, sample=100, random_state=2, keys=keys)
    moved = M.rsa(A[p], B[p], sample=100, random_state=2, keys=[keys[i] for i in p])
    assert moved.score == pytest.approx(base.score, abs=1e-12)
    # by position it would move: the sample of positions is another entity set
    assert abs(M.rsa(A[p], B[p], sample=100, random_state=2).score - base.score) > 1e-3
    # compare passes the aligned keys: one side reordered, aligned by key
    a = es.Embeddings(keys, A.astype(np.float32))
    b = es.Embeddings([keys[i] for i in p], B[p].astype(np.float32))
    c = es.compare(a, b, measures=["rsa"], sample=100, random_state=2)
    want = M.rsa(a.vectors, B.astype(np.float32), sample=100, random_state=2, keys=keys)
    assert c.scores["rsa"] == pytest.approx(want.score, abs=1e-12)
    assert c.details["rsa"]["sampled_by"] == "key"
    with pytest.raises(InvalidParameterError, match="keys"):
        es.compare(a, b, measures=["rsa"], keys=keys)
    with pytest.raises(ShapeMismatchError):
        M.rsa(A, B, keys=keys[:10])


def test_svcca_keeping_every_direction_is_cca() -> None:
    A, B = _pair(400, 6, seed=25)
    full = M.svcca(A, B, threshold=1.0)
    assert full.details["all_kept"] and full.details["kept_dims"] == {"A": 6, "B": 6}
    assert full.details["ranks"] == {"A": 6, "B": 6} and full.details["n_components"] == 6
    assert full.score == pytest.approx(M.cca(A, B).score, abs=1e-12)
    np.testing.assert_allclose(
        full.details["correlations"], M.cca(A, B).details["correlations"], atol=1e-12
    )
    # a rank-deficient side: only its 4 real directions are kept, still cca
    A2 = np.column_stack([A[:, :4], A[:, 0] + A[:, 1], 2 * A[:, 2]])
    with pytest.warns(EmbspaceWarning, match="rank deficient"):
        want = M.cca(A2, B)
    got = M.svcca(A2, B, threshold=1.0)
    assert got.details["kept_dims"]["A"] == 4 and got.details["ranks"]["A"] == 4
    assert got.details["all_kept"]
    assert got.score == pytest.approx(want.score, abs=1e-12)
    # a threshold that drops directions says so
    part = M.svcca(A, B, threshold=0.5)
    assert not part.details["all_kept"] and part.details["kept_dims"]["A"] < 6
