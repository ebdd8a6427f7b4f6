"""Neighbor measures: Jaccard@k against repcomp's brute recipe, mutual k-NN and
the overlap curve against plain Python sets (tie-aware: see _tie_reference and
test_measures_ties for the data with ties)."""

from __future__ import annotations

import numpy as np
import pytest
from _knn_reference import brute_knn
from _tie_reference import enumerate_pair, expected_per_entity, tie_sets
from embspace import measures as M
from embspace.errors import InvalidParameterError, ShapeMismatchError
from sklearn.neighbors import NearestNeighbors


def _repcomp_brute_jaccard(E1: np.ndarray, E2: np.ndarray, k: int) -> tuple[float, float]:
    """repcomp's NeighborsComparison(nn_method="brute"): scikit-learn cosine
    NearestNeighbors, k + 1 neighbors of each row, the row removed by index,
    the first k kept; mean and population stdev of the Jaccard indices."""
    tables = []
    for E in (E1, E2):
        nn = NearestNeighbors(metric="cosine").fit(E)
        raw = nn.kneighbors(E, n_neighbors=k + 1, return_distance=False)
        tables.append([[j for j in row if j != i][:k] for i, row in enumerate(raw)])
    sims = []
    for a, b in zip(*tables, strict=True):
        sa, sb = set(a), set(b)
        sims.append(len(sa & sb) / len(sa | sb))
    return float(np.mean(sims)), float(np.std(sims))


def _embeddings(seed: int, n: int = 700, d: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d)).astype(np.float32)
    B = (A + 0.6 * rng.standard_normal((n, d))).astype(np.float32)
    return A, B


@pytest.mark.parametrize("k", [1, 10, 25])
def test_neighbors_equals_repcomp_brute_path(k: int) -> None:
    A, B = _embeddings(0)
    mean, std = _repcomp_brute_jaccard(A.astype(np.float64), B.astype(np.float64), k)
    res = M.neighbors(A, B, k=k)
    # no ties, but for row 69 at k = 10, whose two tied candidates in B are not
    # neighbors in A: every tie-break gives repcomp's value there too
    assert res.details["tied_fraction"] == (1 / 700 if k == 10 else 0.0)
    assert res.score == pytest.approx(mean, abs=1e-12)
    assert res.details["stdev"] == pytest.approx(std, abs=1e-12)
    assert res.per_entity.shape == (700,)
    assert 0.0 < res.score < 1.0


def test_neighbors_per_entity_values_are_jaccard_of_exact_sets() -> None:
    A, B = _embeddings(1, n=300)
    for metric in ("cosine", "euclidean", "dot"):
        want_o, want_j = expected_per_entity(A, B, 10, metric)
        res = M.neighbors(A, B, k=10, metric=metric)
        np.testing.assert_allclose(res.per_entity, want_j, atol=1e-15)
        mutual = M.mutual_knn(A, B, k=10, metric=metric)
        np.testing.assert_allclose(mutual.per_entity, want_o / 10, atol=1e-15)
        assert mutual.score == pytest.approx(np.mean(want_o / 10), abs=1e-15)
        # away from ties these are the Jaccard of the index-ordered k-NN sets
        ia = brute_knn(A, 10, metric)[1]
        ib = brute_knn(B, 10, metric)[1]
        plain = np.array(
            [len(set(a) & set(b)) / len(set(a) | set(b)) for a, b in zip(ia, ib, strict=True)]
        )
        ta, tb = (
            np.array([len(tie_sets(X, q, 10, metric)[1]) > 1 for q in range(300)]) for X in (A, B)
        )
        free = ~(ta | tb)
        assert free.mean() > 0.9
        np.testing.assert_array_equal(res.per_entity[free], plain[free])


def test_identical_spaces_score_one_and_rotation_keeps_cosine_neighbors() -> None:
    A, _ = _embeddings(2, n=400)
    from scipy.stats import ortho_group

    R = ortho_group.rvs(6, random_state=3).astype(np.float32)
    assert M.neighbors(A, A, k=5).score == 1.0
    rotated = M.neighbors(A, (A @ R) * np.float32(4.0), k=5)
    # near-ties that float32 rounding of the rotation could swap are tie groups
    assert rotated.score == 1.0


def test_overlap_curve_against_sets() -> None:
    A, B = _embeddings(4, n=250)
    K = 12
    res = M.overlap_curve(A, B, k=5, max_k=K)
    want = np.empty((250, K))
    want_j = np.empty((250, K))
    for q in range(250):
        for k in range(1, K + 1):
            o, j = enumerate_pair(*tie_sets(A, q, k), *tie_sets(B, q, k), k)
            want[q, k - 1], want_j[q, k - 1] = o / k, j
    # this data has one near-tie (2.8e-7 apart in B, row 198 at k = 11): the
    # plain index-ordered sets would give 0.353455 at k = 11
    assert want.mean(axis=0)[10] == pytest.approx(0.353273, abs=1e-6)
    np.testing.assert_allclose(res.details["curve"], want.mean(axis=0), atol=1e-14)
    np.testing.assert_allclose(res.details["jaccard_curve"], want_j.mean(axis=0), atol=1e-14)
    assert res.details["k"] == list(range(1, K + 1))
    assert res.score == pytest.approx(want.mean(), abs=1e-14)
    np.testing.assert_allclose(res.per_entity, want.mean(axis=1), atol=1e-14)
    # its last point is mutual k-NN at K, and its Jaccard at k equals neighbors@k
    assert res.details["curve"][-1] == pytest.approx(M.mutual_knn(A, B, k=K).score, abs=1e-14)
    assert res.details["jaccard_curve"][4] == pytest.approx(M.neighbors(A, B, k=5).score, abs=1e-14)
    assert M.overlap_curve(A, B, k=3).details["k"] == [1, 2, 3]


def test_precomputed_tables_are_used_and_checked() -> None:
    A, B = _embeddings(5, n=200)
    ia, ib = brute_knn(A, 20, "cosine")[1], brute_knn(B, 20, "cosine")[1]
    direct = M.neighbors(A, B, k=10)
    shared = M.neighbors(A, B, k=10, tables=(ia, ib))
    assert shared.score == direct.score
    with pytest.raises(ShapeMismatchError):
        M.neighbors(A, B, k=30, tables=(ia, ib))
    with pytest.raises(InvalidParameterError):
        M.neighbors(A, B, k=0)
    with pytest.raises(InvalidParameterError):
        M.neighbors(A, B, k=200)
    with pytest.raises(ShapeMismatchError):
        M.neighbors(A, B[:100], k=3)
