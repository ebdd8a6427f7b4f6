"""Tie-aware neighbor measures: exact expectations against enumeration and
Monte Carlo, hand-computed cases, and an invariance battery (rotation,
isotropic scale, order of the entities) on planted parallel groups and on real
WALS factors of ml-latest-small."""

from __future__ import annotations

import itertools
import math

import embspace as es
import numpy as np
import pytest
from _tie_reference import enumerate_pair, expected_per_entity, tie_sets
from embspace import _core
from embspace import measures as M
from embspace.errors import InvalidParameterError, ShapeMismatchError
from embspace.measures.neighborhood import TIE_TOLERANCE, NeighborOverlap, neighbor_tables
from embspace.neighbors import knn
from scipy.stats import ortho_group

NEIGHBOR_MEASURES = ("neighbors", "mutual_knn", "overlap_curve")


# ------------------------------------------------------------------ helpers
def _explicit_sets(c: list[int]) -> tuple[set[int], set[int], set[int], set[int]]:
    """Sets S_A, T_A, S_B, T_B with the eight counts ``c``."""
    s_a, t_a, s_b, t_b, c_ss, c_st, c_ts, c_tt = c
    it = itertools.count()

    def take(m: int) -> set[int]:
        return {next(it) for _ in range(m)}

    ss, st, ts, tt = take(c_ss), take(c_st), take(c_ts), take(c_tt)
    sa = ss | st | take(s_a - c_ss - c_st)
    ta = ts | tt | take(t_a - c_ts - c_tt)
    sb = ss | ts | take(s_b - c_ss - c_ts)
    tb = st | tt | take(t_b - c_st - c_tt)
    return sa, ta, sb, tb


def _random_counts(rng: np.random.Generator, k: int, t_max: int) -> list[int]:
    s_a, s_b = (int(rng.integers(0, k)) for _ in range(2))
    t_a = int(rng.integers(k - s_a, k - s_a + t_max + 1))
    t_b = int(rng.integers(k - s_b, k - s_b + t_max + 1))
    c_tt = int(rng.integers(0, min(t_a, t_b) + 1))
    c_ts = int(rng.integers(0, min(t_a - c_tt, s_b) + 1))
    c_st = int(rng.integers(0, min(t_b - c_tt, s_a) + 1))
    c_ss = int(rng.integers(0, min(s_a - c_st, s_b - c_ts) + 1))
    return [s_a, t_a, s_b, t_b, c_ss, c_st, c_ts, c_tt]


def _expect(counts: list[list[int]], ks: list[int]) -> tuple[np.ndarray, np.ndarray]:
    return _core.tie_expectation(
        np.array(counts, dtype=np.uint32).reshape(-1, 8), np.array(ks, dtype=np.uint32)
    )


def _planted(
    seed: int, n: int = 150, d: int = 4, exact: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Two spaces of the same entities with planted groups of parallel rows, as
    WALS gives items rated by one same user: each group is parallel in both
    spaces (different directions and scales in each). Scales are powers of two
    (exactly parallel in float32, some rows exactly equal) for even groups and
    arbitrary (parallel up to float32 rounding) for odd ones, unless ``exact``."""
    rng = np.random.default_rng(seed)
    A = np.empty((n, d), dtype=np.float32)
    B = np.empty((n, d), dtype=np.float32)
    i = g = 0
    while i < n:
        size = min(n - i, int(rng.choice([1, 1, 1, 2, 3, 5, 8, 13])))
        a = rng.standard_normal(d)
        b = a + 0.8 * rng.standard_normal(d)
        for m in range(size):
            if g % 2 == 0 or exact:  # powers of two, with repeats: exact duplicates too
                sa, sb = (float(rng.choice([0.25, 1.0, 1.0, 2.0, 8.0])) for _ in range(2))
            else:
                sa, sb = rng.uniform(0.2, 5.0), rng.uniform(0.2, 5.0)
            A[i + m] = (sa * a).astype(np.float32)
            B[i + m] = (sb * b).astype(np.float32)
        i += size
        g += 1
    return A, B


def _index_jaccard(A: np.ndarray, B: np.ndarray, k: int) -> np.ndarray:
    """Per-entity Jaccard of the index-ordered k-NN sets (ties to the lower index)."""
    ia, ib = knn(A, k)[1], knn(B, k)[1]
    both = np.sort(np.concatenate([ia, ib], axis=1), axis=1)
    shared = (both[:, 1:] == both[:, :-1]).sum(axis=1)
    return shared / (2.0 * k - shared)


def _all(A: np.ndarray, B: np.ndarray, k: int, metric: str = "cosine") -> dict:
    return {
        "neighbors": M.neighbors(A, B, k=k, metric=metric),
        "mutual_knn": M.mutual_knn(A, B, k=k, metric=metric),
        "overlap_curve": M.overlap_curve(A, B, k=k, max_k=k + 3, metric=metric),
    }


def _assert_same(got: dict, want: dict, order: np.ndarray | None = None, what: str = "") -> None:
    """Per-entity values identical (``order[i]`` is the row of entity i in
    ``got``), scores equal up to the order of the summation."""
    for name in NEIGHBOR_MEASURES:
        pe = got[name].per_entity
        if order is not None:
            pe = pe[order]
        np.testing.assert_array_equal(pe, want[name].per_entity, err_msg=f"{name} {what}")
        assert got[name].score == pytest.approx(want[name].score, rel=1e-13, abs=1e-15)


# ------------------------------------------------------------------ the expectation
def test_expectation_equals_enumeration_of_every_tie_break() -> None:
    rng = np.random.default_rng(0)
    rows, ks, want = [], [], []
    for _ in range(300):
        k = int(rng.integers(1, 6))
        c = _random_counts(rng, k, 5)
        rows.append(c)
        ks.append(k)
        want.append(enumerate_pair(*(frozenset(s) for s in _explicit_sets(c)), k))
    overlap, jaccard = _expect(rows, ks)
    want = np.array(want)
    np.testing.assert_allclose(overlap, want[:, 0], rtol=0, atol=1e-13)
    np.testing.assert_allclose(jaccard, want[:, 1], rtol=0, atol=1e-13)
    # the dependent case: T_A and T_B share members and each meets the
    # other's strict set, so |X ∩ Y| sums three dependent parts
    assert any(c[5] > 0 and c[6] > 0 and c[7] > 0 for c in rows)


def test_expectation_matches_monte_carlo_for_large_tie_groups() -> None:
    # groups too large to enumerate (C(60, 8) x C(45, 6) choices)
    k = 10
    c = [2, 60, 4, 45, 1, 1, 2, 30]
    sa, ta, sb, tb = (np.array(sorted(s)) for s in _explicit_sets(c))
    rng = np.random.default_rng(1)
    draws = 100_000
    x = ta[np.argsort(rng.random((draws, len(ta))), axis=1)[:, : k - len(sa)]]
    y = tb[np.argsort(rng.random((draws, len(tb))), axis=1)[:, : k - len(sb)]]
    z = np.zeros(draws)
    z += len(set(sa) & set(sb))
    z += np.isin(y, sa).sum(axis=1)  # S_A ∩ Y_T
    z += np.isin(x, sb).sum(axis=1)  # X_T ∩ S_B
    z += (x[:, :, None] == y[:, None, :]).sum(axis=(1, 2))  # X_T ∩ Y_T
    j = z / (2 * k - z)
    overlap, jaccard = _expect([c], [k])
    assert abs(overlap[0] - z.mean()) < 5 * z.std() / math.sqrt(draws)
    assert abs(jaccard[0] - j.mean()) < 5 * j.std() / math.sqrt(draws)
    # the closed form of the expected overlap
    m_a, m_b = k - 2, k - 4
    assert overlap[0] == pytest.approx(1 + m_b * 1 / 45 + m_a * 2 / 60 + m_a * m_b * 30 / 2700)


def test_expectation_without_ties_is_the_plain_value_and_rejects_bad_counts() -> None:
    overlap, jaccard = _expect([[3, 1, 3, 1, 2, 0, 0, 1], [4, 1, 4, 1, 1, 0, 0, 0]], [4, 5])
    assert overlap.tolist() == [3.0, 1.0]
    assert jaccard.tolist() == [3 / 5, 1 / 9]
    with pytest.raises(InvalidParameterError):
        _expect([[1, 1, 0, 1, 0, 0, 0, 0]], [1])  # |S_A| = k
    with pytest.raises(InvalidParameterError):
        _expect([[0, 1, 0, 1, 0, 0, 0, 2]], [1])  # |T_A ∩ T_B| > |T_A|
    with pytest.raises(ShapeMismatchError):
        _core.tie_expectation(np.zeros((2, 8), dtype=np.uint32), np.ones(3, dtype=np.uint32))


# ------------------------------------------------------------------ hand-computed
def _at(deg: float, r: float = 1.0) -> list[float]:
    return [r * math.cos(math.radians(deg)), r * math.sin(math.radians(deg))]


def test_hand_computed_ties() -> None:
    # entity 0 at 0 degrees. In A, entities 1, 2, 3 are exactly parallel (30
    # degrees, norms 1, 2, 0.5): one tie group; 4 and 5 are farther. In B, 1 is
    # closest (10 degrees), then 4 and 5, parallel (40 degrees), then 2 and 3.
    A = np.array([_at(0), _at(30), _at(30, 2), _at(30, 0.5), _at(100), _at(120)], dtype=np.float32)
    B = np.array([_at(0), _at(10), _at(80), _at(95), _at(40), _at(40, 4)], dtype=np.float32)
    A[2], A[3] = 2 * A[1], 0.5 * A[1]  # exactly parallel in float32
    B[5] = 4 * B[4]
    # k = 1: A picks one of {1, 2, 3}, B picks 1: they agree with probability 1/3
    r1 = M.neighbors(A, B, k=1)
    assert r1.per_entity[0] == pytest.approx(1 / 3, abs=1e-15)
    # k = 2: A takes 2 of {1, 2, 3} (1 among them with probability 2/3);
    # B takes 1 and one of {4, 5}: |X ∩ Y| = 1 w.p. 2/3, else 0
    r2 = M.neighbors(A, B, k=2)
    m2 = M.mutual_knn(A, B, k=2)
    assert r2.per_entity[0] == pytest.approx(2 / 3 * 1 / 3, abs=1e-15)
    assert m2.per_entity[0] == pytest.approx(2 / 3 / 2, abs=1e-15)
    curve = M.overlap_curve(A, B, max_k=2)
    assert curve.per_entity[0] == pytest.approx((1 / 3 + 1 / 3) / 2, abs=1e-15)
    ov = neighbor_tables(A, B, 2)
    # S_A = {}, T_A = {1, 2, 3}, S_B = {1}, T_B = {4, 5}: only T_A ∩ S_B = {1}
    assert ov.level(2)[0].tolist() == [0, 3, 1, 2, 0, 0, 1, 0]
    tied_a, tied_b = ov.tied(2)
    assert tied_a[0] and tied_b[0]
    # every entity against the definition, enumerated
    for k in (1, 2, 3):
        o, j = expected_per_entity(A, B, k)
        np.testing.assert_allclose(M.neighbors(A, B, k=k).per_entity, j, atol=1e-15)
        np.testing.assert_allclose(M.mutual_knn(A, B, k=k).per_entity, o / k, atol=1e-15)


def test_planted_groups_equal_the_definition_for_every_metric() -> None:
    A, B = _planted(3, n=60, d=3)
    for metric in ("cosine", "euclidean", "dot"):
        for k in (1, 3):
            o, j = expected_per_entity(A, B, k, metric)
            res = M.neighbors(A, B, k=k, metric=metric)
            np.testing.assert_allclose(res.per_entity, j, atol=1e-15, err_msg=metric)
            mut = M.mutual_knn(A, B, k=k, metric=metric)
            np.testing.assert_allclose(mut.per_entity, o / k, atol=1e-15, err_msg=metric)
    assert M.neighbors(A, B, k=3).details["tied_fraction"] > 0.3
    # the overlap curve: every level with its own tie groups
    K = 4
    want = np.array(
        [
            [
                enumerate_pair(*tie_sets(A, q, k), *tie_sets(B, q, k), k)[0] / k
                for k in range(1, K + 1)
            ]
            for q in range(60)
        ]
    )
    res = M.overlap_curve(A, B, max_k=K)
    np.testing.assert_allclose(res.details["curve"], want.mean(axis=0), atol=1e-14)
    np.testing.assert_allclose(res.per_entity, want.mean(axis=1), atol=1e-14)


def test_expectation_is_the_average_over_random_entity_orders() -> None:
    # exact ties only (power-of-two scales, nothing else within the tolerance):
    # the k-NN table breaks them by index, so over uniformly random row orders,
    # drawn independently for each side, it breaks them uniformly at random
    rng = np.random.default_rng(7)
    A, B = _planted(4, n=50, d=3, exact=True)
    k = 3
    res = M.neighbors(A, B, k=k)
    mut = M.mutual_knn(A, B, k=k)
    # no near-ties: the same ties with tolerance 0 (bitwise-equal values only)
    assert M.neighbors(A, B, k=k, tie_tolerance=0.0).score == res.score
    assert res.details["tied_fraction"] > 0.2
    draws = 1500
    scores = np.empty(draws)
    overlaps = np.empty(draws)
    n = len(A)
    for t in range(draws):
        pa, pb = rng.permutation(n), rng.permutation(n)
        ia = np.empty((n, k), dtype=np.int64)
        ib = np.empty((n, k), dtype=np.int64)
        ia[pa] = pa[knn(A[pa], k)[1]]
        ib[pb] = pb[knn(B[pb], k)[1]]
        both = np.sort(np.concatenate([ia, ib], axis=1), axis=1)
        shared = (both[:, 1:] == both[:, :-1]).sum(axis=1)
        scores[t] = (shared / (2.0 * k - shared)).mean()
        overlaps[t] = (shared / k).mean()
    for est, value in ((scores, res.score), (overlaps, mut.score)):
        assert abs(est.mean() - value) < 5 * est.std() / math.sqrt(draws)
    assert scores.std() > 0.005  # the tie-breaks do move the index-ordered value


# ------------------------------------------------------------------ invariances
def test_invariance_battery_on_planted_parallel_groups() -> None:
    A, B = _planted(5)
    n, d = A.shape
    R = ortho_group.rvs(d, random_state=1)
    p = np.random.default_rng(2).permutation(n)
    for metric in ("cosine", "euclidean", "dot"):
        base = _all(A, B, 4, metric)
        # parallel rows tie under cosine, equal rows under every metric
        assert base["neighbors"].details["tied_fraction"] > (0.2 if metric == "cosine" else 0.05)
        rot_a = (A.astype(np.float64) @ R).astype(np.float32)
        rot_b32 = B @ R.astype(np.float32)  # rotated in float32 arithmetic
        _assert_same(_all(rot_a, B, 4, metric), base, what=f"{metric} rotation of A")
        _assert_same(_all(rot_a, rot_b32, 4, metric), base, what=f"{metric} rotation of both")
        _assert_same(
            _all(A * np.float32(3.7), B * np.float32(0.01), 4, metric),
            base,
            what=f"{metric} isotropic scale",
        )
        if metric == "euclidean":
            _assert_same(_all(A + np.float32(2.5), B, 4, metric), base, what="translation")
        # the order of the entities: per-entity values follow their entity exactly
        _assert_same(_all(A[p], B[p], 4, metric), base, order=np.argsort(p), what="order")
    # the index-ordered Jaccard is not invariant on these data (so this battery
    # can fail): reordering the entities moves it
    plain = _index_jaccard(A, B, 4)
    moved = _index_jaccard(A[p], B[p], 4)[np.argsort(p)]
    assert np.abs(plain - moved).max() > 0.1


def test_one_side_reordered_and_aligned_by_key() -> None:
    A, B = _planted(6)
    n = len(A)
    keys = [f"item{i}" for i in range(n)]
    p = np.random.default_rng(3).permutation(n)
    a = es.Embeddings(keys, A)
    b = es.Embeddings([keys[i] for i in p], B[p])
    got = es.compare(a, b, measures=list(NEIGHBOR_MEASURES), k=4, max_k=7)
    want = es.compare(a, es.Embeddings(keys, B), measures=list(NEIGHBOR_MEASURES), k=4, max_k=7)
    for name in NEIGHBOR_MEASURES:
        np.testing.assert_array_equal(got.per_entity[name], want.per_entity[name])
        assert got.scores[name] == want.scores[name]
    # and the same as the measures on the aligned arrays
    assert got.scores["neighbors"] == M.neighbors(A, B, k=4).score
    assert (
        got.details["neighbors"]["tied_fraction"] == M.neighbors(A, B, k=4).details["tied_fraction"]
    )


# ------------------------------------------------------------------ real data
@pytest.fixture(scope="module")
def wals_pair(ml_small):
    runs = [
        es.WALS(factors=10, iterations=20, unobserved_weight=0.01, random_state=seed)
        .fit(ml_small, progress=False)
        .item_embeddings_
        for seed in (0, 1)
    ]
    return runs


def _compare_all(a, b) -> dict:
    c = es.compare(a, b, measures=list(NEIGHBOR_MEASURES), k=10, max_k=12)
    return {
        name: M.MeasureResult(name, c.scores[name], c.details[name], c.per_entity[name].to_numpy())
        for name in NEIGHBOR_MEASURES
    }


def test_real_wals_factors_have_ties_and_the_measures_ignore_how_they_break(wals_pair) -> None:
    a, b = wals_pair
    base = _compare_all(a, b)
    nb = base["neighbors"]
    # ties are real: 29% of the items sit in groups of 11+ parallel vectors
    assert nb.details["tied_fraction"] > 0.3
    assert nb.details["tie_tolerance"] == TIE_TOLERANCE
    # breaking them by index, the same way in both spaces, inflates Jaccard@10
    # (0.420 against 0.191 on this pair)
    plain = _index_jaccard(a.vectors, b.vectors, 10).mean()
    assert plain > nb.score + 0.15
    n, d = a.vectors.shape
    R = ortho_group.rvs(d, random_state=0)
    rot = es.Embeddings(a.keys, (a.vectors.astype(np.float64) @ R).astype(np.float32))
    _assert_same(_compare_all(rot, b), base, what="rotation")
    rot32 = es.Embeddings(b.keys, b.vectors @ R.astype(np.float32) * np.float32(3.7))
    _assert_same(_compare_all(a, rot32), base, what="float32 rotation and scale")
    p = np.random.default_rng(0).permutation(n)
    order = np.argsort(p)
    perm_a = a.take(p)
    perm_b = b.take(p)
    both = _compare_all(perm_a, perm_b)  # aligned in perm_a's order
    _assert_same(both, base, order=order, what="both reordered")
    one = _compare_all(a, perm_b)  # aligned by key into a's order
    _assert_same(one, base, what="one side reordered")


# ------------------------------------------------------------------ options and errors
def test_tolerance_tables_and_errors() -> None:
    A, B = _planted(8, n=80)
    ov = neighbor_tables(A, B, 5)
    assert isinstance(ov, NeighborOverlap) and ov.counts.shape == (80, 5, 8)
    assert ov.counts.dtype == np.uint32 and (ov.n, ov.k_max) == (80, 5)
    # a precomputed overlap, and index tables read as hints, give the same values
    direct = M.neighbors(A, B, k=3)
    assert M.neighbors(A, B, k=3, tables=ov).score == direct.score
    hints = (knn(A, 5)[1], knn(B, 7)[1])
    np.testing.assert_array_equal(
        M.neighbors(A, B, k=3, tables=hints).per_entity, direct.per_entity
    )
    # tables of exactly k columns cannot show where a tie group ends: wider
    # ones are computed, with the same result
    narrow = (knn(A, 3)[1], knn(B, 3)[1])
    np.testing.assert_array_equal(
        M.neighbors(A, B, k=3, tables=narrow).per_entity, direct.per_entity
    )
    with pytest.raises(ShapeMismatchError):
        M.neighbors(A, B, k=6, tables=ov)
    with pytest.raises(InvalidParameterError):
        M.neighbors(A, B, k=3, metric="dot", tables=ov)
    with pytest.raises(InvalidParameterError):
        M.neighbors(A, B, k=3, tie_tolerance=0.0, tables=ov)
    with pytest.raises(ShapeMismatchError):
        M.neighbors(A[:40], B[:40], k=3, tables=ov)
    for bad in (-1e-9, 0.1, float("nan"), "small", True):
        with pytest.raises(InvalidParameterError):
            M.neighbors(A, B, k=3, tie_tolerance=bad)
    # tables that are not k-NN tables of these vectors
    shuffled = hints[0][:, ::-1].copy()
    with pytest.raises(InvalidParameterError, match="not sorted"):
        M.neighbors(A, B, k=3, tables=(shuffled, hints[1]))
    selfish = hints[0].copy()
    selfish[4, 0] = 4
    with pytest.raises(InvalidParameterError):
        M.neighbors(A, B, k=3, tables=(selfish, hints[1]))
    # compare: one overlap per tolerance, tie fraction in the details and JSON
    c = es.compare(A, B, measures=["neighbors", "mutual_knn"], k=3, tie_tolerance=0.0)
    assert c.details["neighbors"]["tie_tolerance"] == 0.0
    assert c.scores["neighbors"] == M.neighbors(A, B, k=3, tie_tolerance=0.0).score
    assert "tied_fraction" in c.to_dict()["details"]["mutual_knn"]
    # a larger tolerance can only merge more values into tie groups
    wide = M.neighbors(A, B, k=3, tie_tolerance=2.0**-12).details["tied_fraction"]
    assert wide >= direct.details["tied_fraction"]


def test_the_binding_default_tolerance_is_the_measures_one() -> None:
    import inspect

    from embspace import _core
    from embspace.measures.neighborhood import TIE_TOLERANCE

    default = inspect.signature(_core.tie_overlap).parameters["tolerance"].default
    assert default == TIE_TOLERANCE == 2.0**-20
