"""The statistics of a sweep: the permutation test (level and power), Holm and
Benjamini-Hochberg against hand computations, chance levels and the calibrated
score, the per-entity changes, the gauge, and the warnings about seeds."""

from __future__ import annotations

import math
import warnings
from itertools import combinations, pairwise

import embspace as es
import numpy as np
import pandas as pd
import pytest
from embspace.errors import EmbspaceWarning, InvalidParameterError
from embspace.measures import compare, shuffled_table
from embspace.sweeps import Sweep
from embspace.sweeps.statistics import (
    benjamini_hochberg,
    calibrated,
    holm,
    permutation_test,
    seeds_needed,
    smallest_p_value,
)
from sklearn.base import BaseEstimator

N_ITEMS = 300


class Toy(BaseEstimator):
    """A cheap estimator with a known law: item vectors = a fixed planted
    structure (moved by ``shift``) + ``noise`` x a draw of the run.

    The draw of a run is ``shared`` x (a draw of its seed alone) + the rest x
    (a draw of seed and ``salt``): two values of ``salt`` are two configurations
    with the same law of spaces, whose runs of one seed share a part of their
    start when ``shared > 0``. ``shuffle=True`` gives each item the vector of
    another one (a permutation drawn per run): a space unrelated to the others.
    """

    def __init__(
        self, d=4, noise=0.6, shared=0.0, salt=0, shift=0.0, shuffle=False, random_state=None
    ):
        self.d = d
        self.noise = noise
        self.shared = shared
        self.salt = salt
        self.shift = shift
        self.shuffle = shuffle
        self.random_state = random_state

    def fit(self, ratings):
        n = ratings.n_items
        planted = np.random.default_rng(12345)
        base = planted.standard_normal((n, self.d))
        moved = planted.standard_normal((n, self.d))
        seed_part = np.random.default_rng([self.random_state, 0]).standard_normal((n, self.d))
        own = np.random.default_rng([self.random_state, 1, self.salt]).standard_normal((n, self.d))
        draw = self.shared * seed_part + math.sqrt(1.0 - self.shared**2) * own
        vectors = base + self.shift * moved + self.noise * draw
        if self.shuffle:
            order = np.random.default_rng([self.random_state, 2, self.salt]).permutation(n)
            vectors = vectors[order]
        users = np.random.default_rng(0).standard_normal((ratings.n_users, self.d))
        self.item_embeddings_ = es.Embeddings(ratings.item_keys, vectors)
        self.user_embeddings_ = es.Embeddings(ratings.user_keys, users)
        return self


def _toy_sweep(ratings, param, values, seeds, measures=("cka", "neighbors"), **toy):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmbspaceWarning)  # few seeds: said at construction
        sweep = Sweep(
            ratings,
            Toy(**toy),
            param,
            values,
            seeds=seeds,
            measures=measures,
            cache_dir=False,
            num_threads=1,
        )
    return sweep.run(progress=False)


def _reference_p_value(S: np.ndarray) -> float:
    """The exact one-sided p-value by a plain enumeration of every split of the
    2s runs into two groups of s (both mirror images), pairs of runs of one seed
    (i and i + s) left out."""
    m = S.shape[0]
    s = m // 2

    def statistic(group: set[int]) -> float:
        within, between = [], []
        for p, q in combinations(range(m), 2):
            if p % s == q % s:
                continue
            (within if (p in group) == (q in group) else between).append(S[p, q])
        if not within or not between:
            return math.nan
        return sum(within) / len(within) - sum(between) / len(between)

    observed = statistic(set(range(s)))
    stats = [statistic(set(g)) for g in combinations(range(m), s)]
    stats = [t for t in stats if not math.isnan(t)]
    return sum(t >= observed - 1e-12 for t in stats) / len(stats)


# ---------------------------------------------------------------------- the test itself
@pytest.mark.parametrize("s", [2, 3, 4])
def test_permutation_test_against_a_plain_enumeration(s: int) -> None:
    rng = np.random.default_rng(s)
    for _ in range(5):
        X = rng.standard_normal((2 * s, 6))
        X[s:] += rng.normal(0, 0.5)  # some shift of the second group
        S = X @ X.T
        got = permutation_test(S)
        assert got.exact
        assert got.p_value == pytest.approx(_reference_p_value(S), abs=1e-12)
        # the statistic: mean within minus mean between, pairs of distinct seeds
        within = [S[p, q] for p, q in combinations(range(s), 2)]
        within += [S[s + p, s + q] for p, q in combinations(range(s), 2)]
        between = [S[p, s + q] for p in range(s) for q in range(s) if p != q]
        assert got.statistic == pytest.approx(np.mean(within) - np.mean(between), abs=1e-12)


def test_pairs_of_one_seed_are_never_read() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 5))
    S = X @ X.T
    T = S.copy()
    for i in range(4):  # runs i and i + 4 share seed i
        T[i, i + 4] = T[i + 4, i] = rng.normal(0, 100)
    a, b = permutation_test(S), permutation_test(T)
    assert (a.statistic, a.p_value) == (b.statistic, b.p_value)


def test_smallest_p_values() -> None:
    # C(2s - 1, s - 1) relabelings; with s = 2 the split that pairs the runs of
    # each seed has no pair within a group and is left out: 2 remain
    assert smallest_p_value(1) != smallest_p_value(1)  # NaN: no test
    assert smallest_p_value(2) == 1 / 2
    assert smallest_p_value(3) == 1 / 10
    assert smallest_p_value(4) == 1 / 35
    assert smallest_p_value(5) == 1 / 126
    assert smallest_p_value(8) == 1 / 6435
    assert smallest_p_value(9) == 1 / 10_000  # 24,310 > 10,000: 9,999 random ones
    # a perfectly separated pair of groups reaches it
    S = np.zeros((8, 8))
    S[:4, :4] = S[4:, 4:] = 1.0
    assert permutation_test(S).p_value == 1 / 35
    assert seeds_needed(1) == 4 and seeds_needed(8) == 6 and seeds_needed(20) == 6
    assert seeds_needed(100) == 8  # 100 / 1716 > 0.05 >= 100 / 6435


def test_random_relabelings_beyond_the_exact_limit() -> None:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((10, 4))
    X[5:] += 0.8
    S = X @ X.T
    exact = permutation_test(S)
    drawn = permutation_test(S, max_exact=50, n_random=4999, random_state=1)
    assert exact.exact and not drawn.exact and drawn.n_relabelings == 5000
    assert drawn.p_value == permutation_test(S, max_exact=50, n_random=4999, random_state=1).p_value
    # 126 exact relabelings against 5,000 random ones: the same p within Monte Carlo error
    assert abs(drawn.p_value - exact.p_value) < 4 * math.sqrt(exact.p_value / 5000) + 1e-3


@pytest.mark.parametrize(("s", "shared"), [(4, 0.0), (5, 0.0), (5, 0.7)])
def test_false_positive_rate_under_the_null(s: int, shared: float) -> None:
    """Runs of two configurations with one law: P(p <= level) <= level, over
    many synthetic similarity matrices (runs of one seed sharing a part of their
    start when ``shared > 0``: the test stays at or below its level)."""
    rng = np.random.default_rng(int(10 * s + 10 * shared))
    n_sims = 1500
    p = np.empty(n_sims)
    for i in range(n_sims):
        start = rng.standard_normal((s, 12))
        runs = [
            shared * start + math.sqrt(1 - shared**2) * rng.standard_normal((s, 12))
            for _ in range(2)
        ]
        X = np.vstack(runs)
        S = -((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=-1)
        p[i] = permutation_test(S).p_value
    for level in (0.05, 0.1, 0.2):
        assert (p <= level + 1e-12).mean() <= level + 3 * math.sqrt(level * (1 - level) / n_sims)


def test_per_entity_test_is_the_test_of_each_entity() -> None:
    rng = np.random.default_rng(5)
    S = rng.random((6, 6, 40))
    S = (S + S.transpose(1, 0, 2)) / 2
    got = permutation_test(S)
    for e in (0, 7, 39):
        one = permutation_test(S[:, :, e])
        assert got.p_value[e] == one.p_value
        assert got.statistic[e] == pytest.approx(one.statistic, abs=1e-12)


# ---------------------------------------------------------------------- multiple testing
def test_holm_against_a_hand_computation() -> None:
    # sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1, held at 0.06)
    got = holm([0.01, 0.04, np.nan, 0.03, 0.005])
    np.testing.assert_allclose(got, [0.03, 0.06, np.nan, 0.06, 0.02], rtol=1e-12)
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])
    assert holm([]).size == 0 and np.isnan(holm([np.nan])).all()


def test_benjamini_hochberg_against_a_hand_computation() -> None:
    # m = 5, sorted p: 0.001, 0.008, 0.039, 0.041, 0.6 -> p m / rank:
    # 0.005, 0.02, 0.065, 0.05125, 0.6; then the running minimum from the top
    got = benjamini_hochberg([0.041, 0.001, 0.6, np.nan, 0.039, 0.008])
    np.testing.assert_allclose(got, [0.05125, 0.005, 0.6, np.nan, 0.05125, 0.02], rtol=1e-12)
    assert benjamini_hochberg([]).size == 0


def test_calibrated_score() -> None:
    assert calibrated(0.5, 0.1, 0.9) == pytest.approx(0.5)
    assert calibrated(0.9, 0.1, 0.9) == pytest.approx(1.0)
    assert calibrated(0.1, 0.1, 0.9) == 0.0
    assert math.isnan(calibrated(0.5, 0.2, 0.2)) and math.isnan(calibrated(0.5, math.nan, 0.9))


# ---------------------------------------------------------------------- chance levels
def test_compare_chance_is_the_mean_over_shuffled_rows(tiny, monkeypatch) -> None:
    """compare(chance=True) equals shuffling b's rows (keys kept) and comparing
    with a fresh search, averaged; with one k-NN search per side in all."""
    from embspace import neighbors as neighbors_module
    from embspace.measures import neighborhood

    wals = es.WALS(factors=5, iterations=3, random_state=0).fit(tiny)
    svd = es.SVD(factors=5, random_state=0).fit(tiny)
    a, b = wals.item_embeddings_, svd.item_embeddings_
    measures = ["neighbors", "mutual_knn", "overlap_curve", "cca", "cka", "unitmatch", "rsa"]
    searches: list[int] = []
    original = neighbors_module.knn

    def counting(*args, **kwargs):
        searches.append(1)
        return original(*args, **kwargs)

    def no_search(*args, **kwargs):
        raise AssertionError("a neighbor measure searched instead of reading the tables")

    monkeypatch.setattr(neighbors_module, "knn", counting)
    monkeypatch.setattr(neighborhood, "knn", no_search)
    got = compare(a, b, measures, k=8, chance=True, chance_permutations=4, chance_seed=3)
    monkeypatch.undo()
    assert len(searches) == 2
    assert got.scores == compare(a, b, measures, k=8).scores
    rng = np.random.default_rng(3)
    want = dict.fromkeys(measures, 0.0)
    for _ in range(4):
        order = rng.permutation(b.n)
        shuffled = es.Embeddings(b.keys, b.vectors[order])
        for m, v in compare(a, shuffled, measures, k=8).scores.items():
            want[m] += v / 4
    assert got.chance == pytest.approx(want, abs=1e-12)
    # below the scores of two related spaces, near the documented levels
    for m in ("neighbors", "cca", "cka"):
        assert got.chance[m] < got.scores[m]
    assert got.chance["neighbors"] == pytest.approx(8 / (2 * (b.n - 1)), abs=0.01)
    assert got.chance["mutual_knn"] == pytest.approx(8 / (b.n - 1), abs=0.03)
    assert abs(got.chance["rsa"]) < 0.05
    assert got.to_dict()["chance"] == pytest.approx(got.chance)
    assert compare(a, b, measures).chance is None
    with pytest.raises(InvalidParameterError, match="chance_permutations"):
        compare(a, b, ["cka"], chance=True, chance_permutations=0)
    with pytest.raises(InvalidParameterError, match="chance"):
        compare(a, b, ["cka"], chance="yes")


def test_shuffled_table_is_the_table_of_the_shuffled_rows() -> None:
    rng = np.random.default_rng(0)
    emb = es.Embeddings([f"k{i}" for i in range(200)], rng.standard_normal((200, 6)))
    table = es.NeighborTable(emb)
    order = rng.permutation(200)
    moved = shuffled_table(table, order)
    assert moved.embeddings.keys == emb.keys
    np.testing.assert_array_equal(moved.embeddings.vectors, emb.vectors[order])
    own = es.NeighborTable(moved.embeddings).knn(9)
    got = moved.knn(9)
    np.testing.assert_array_equal(got[1], own[1])
    np.testing.assert_allclose(got[0], own[0], rtol=1e-6, atol=1e-7)
    with pytest.raises(InvalidParameterError, match="permutation"):
        shuffled_table(table, np.zeros(200, dtype=int))


# ---------------------------------------------------------------------- sweeps
@pytest.fixture(scope="module")
def small():
    return es.datasets.synthetic(preset="tiny", seed=0)


def test_sweep_false_positive_rate_on_identical_laws(small) -> None:
    """Many sweeps whose values have the same law of spaces (two salts): the
    share of tests with p <= 0.05 stays at or below 0.05, and Holm's ``changed``
    flags a sweep at most as often as its level."""
    p_values, flagged = [], []
    for r in range(60):
        sweep = _toy_sweep(small, "salt", [0, 1, 2], seeds=4, random_state=100 * r)
        rows = sweep.table[sweep.table["p_value"].notna()]
        assert len(rows) == 4  # 2 values x 2 measures
        p_values += list(rows["p_value"])
        flagged.append(bool(rows["changed"].any()))
    p_values = np.asarray(p_values)
    assert (p_values <= 0.05).mean() <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / len(p_values))
    assert np.mean(flagged) <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / len(flagged))


def test_sweep_detects_a_planted_change(small) -> None:
    sweep = _toy_sweep(small, "shift", [0.0, 0.05, 1.5], seeds=5)
    t = sweep.table
    planted = t[(t["value"] == 1.5) & (t["against"] == "reference")]
    # every relabeling but the observed one is less separated: the smallest p
    np.testing.assert_allclose(planted["p_value"], 1 / 126, rtol=1e-12)
    assert planted["changed"].all()
    tested = t["p_value"].notna()
    np.testing.assert_allclose(t.loc[tested, "p_adjusted"], holm(t.loc[tested, "p_value"]))
    # Holm by hand: 4 tests, the two smallest p-values 1/126 each
    assert planted["p_adjusted"].max() <= 4 / 126 + 1e-12
    assert sweep.test["smallest_p_value"] == 1 / 126 and sweep.test["n_tests"] == 4


def test_calibrated_is_zero_for_shuffled_and_one_for_reseeded_spaces(small) -> None:
    sweep = _toy_sweep(
        small, "shuffle", [False, True], seeds=4, measures=("cka", "cca", "neighbors")
    )
    t = sweep.table
    shuffled = t[t["value"] == True]  # noqa: E712
    np.testing.assert_allclose(shuffled["calibrated"], 0.0, atol=0.1)
    # two shuffled runs are unrelated too: the value's own floor is at chance
    assert (shuffled["similarity"] < shuffled["reference_floor"]).all()
    np.testing.assert_allclose(shuffled["floor"], shuffled["chance"], atol=0.02)
    reseeded = _toy_sweep(
        small, "salt", [0, 1], seeds=4, measures=("cka", "cca", "neighbors")
    ).table
    np.testing.assert_allclose(reseeded["calibrated"], 1.0, atol=0.1)
    # the reference row: exactly 1 (its similarity is its floor)
    ref = t[t["value"] == False]  # noqa: E712
    np.testing.assert_allclose(ref["calibrated"], 1.0, rtol=1e-12)


def test_table_columns_and_export(small, tmp_path) -> None:
    sweep = _toy_sweep(small, "shift", [0.0, 1.0], seeds=3)
    t = sweep.table
    assert str(t["changed"].dtype) == "boolean"
    assert t.attrs["pairing"] == "cross"
    ref = t[t["value"] == 0.0]
    assert ref["changed"].isna().all()
    np.testing.assert_array_equal(t["noise_floor"], t["reference_floor"])
    payload = sweep.to_dict()
    assert payload["pairing"] == "cross" and payload["gauge"] is None
    assert payload["test"]["smallest_p_value"] == pytest.approx(0.1)
    assert {r["changed"] for r in payload["table"]} <= {None, True, False}
    import json

    json.dumps(payload)
    noise = sweep.noise
    assert list(noise.columns) == ["value", "seed_a", "seed_b", "measure", "similarity"]
    assert sorted(set(noise["value"])) == [0.0, 1.0]
    assert sweep.noise_floor["cka"][2] == 3


def test_warnings_about_seeds(small) -> None:
    def make(seeds, values=(0, 1, 2), measures=("cka", "neighbors")):
        return Sweep(small, Toy(), "salt", list(values), seeds=seeds, measures=measures)

    with pytest.warns(EmbspaceWarning, match=r"smallest p-value is 0\.1;.*4 tests.*seeds >= 5"):
        make(3)
    with pytest.warns(EmbspaceWarning, match="with 1 seed a sweep has no noise floor"):
        make(1)
    with pytest.warns(EmbspaceWarning, match=r"0\.0286.*seeds >= 5"):
        make(4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmbspaceWarning)
        make(5)
        make(4, values=(0, 1), measures=("cka",))  # one test: 1/35 <= 0.05
        make(1, values=(0,))  # nothing to test


def test_gauge_balanced(small) -> None:
    wals = es.WALS(factors=4, iterations=3, num_threads=1)
    with pytest.warns(EmbspaceWarning):
        sweep = Sweep(
            small, wals, "unobserved_weight", [0.0, 1.0], seeds=2, gauge="balanced", cache_dir=False
        ).run(progress=False)
    own = es.WALS(factors=4, iterations=3, num_threads=1, unobserved_weight=1.0, random_state=1)
    own.fit(small)
    _, items = es.balance(own.user_embeddings_, own.item_embeddings_)
    got = sweep.embeddings(1.0, 1)
    assert got.keys == items.keys and got.metadata.get("gauge") == "balanced"
    np.testing.assert_array_equal(got.vectors, items.vectors)
    assert sweep.gauge == "balanced" and sweep.to_dict()["gauge"] == "balanced"
    with pytest.raises(InvalidParameterError, match="gauge"):
        Sweep(small, wals, "unobserved_weight", [0.0], gauge="unbalanced")


# ---------------------------------------------------------------------- where it moved
@pytest.fixture(scope="module")
def moved(small) -> Sweep:
    """The value 1 moves the planted structure of every item (shift 1)."""
    return _toy_sweep(small, "shift", [0.0, 1.0], seeds=4)


def _bh(p: np.ndarray) -> np.ndarray:
    """BH by its definition: q_i = min over j with p_j >= p_i of p_j m / rank_j."""
    finite = np.isfinite(p)
    m = finite.sum()
    ranks = {}
    for r, i in enumerate(sorted(np.flatnonzero(finite), key=lambda i: p[i]), start=1):
        ranks[i] = r
    q = np.full(p.shape, np.nan)
    for i in ranks:
        q[i] = min(1.0, min(p[j] * m / ranks[j] for j in ranks if p[j] >= p[i]))
    return q


def test_changes_per_entity(moved: Sweep, small) -> None:
    frame = moved.changes(1.0)
    assert list(frame.columns) == [
        "key",
        "title",
        "n_ratings",
        "similarity",
        "floor",
        "floor_value",
        "floor_reference",
        "p_value",
        "q_value",
        "changed",
    ]
    assert len(frame) == N_ITEMS and frame["key"].tolist() == small.item_keys
    np.testing.assert_array_equal(frame["n_ratings"], small.items["n_ratings"])
    seeds = moved.seeds

    def per_entity(a, b):
        return compare(a, b, ["neighbors"], k=moved.k).per_entity["neighbors"].to_numpy()

    e = moved.embeddings
    sims = [per_entity(e(0.0, o), e(1.0, s)) for s in seeds for o in seeds if o != s]
    floor_v = [per_entity(e(1.0, a), e(1.0, b)) for a, b in combinations(seeds, 2)]
    floor_r = [per_entity(e(0.0, a), e(0.0, b)) for a, b in combinations(seeds, 2)]
    np.testing.assert_allclose(frame["similarity"], np.mean(sims, axis=0), atol=1e-12)
    np.testing.assert_allclose(frame["floor_value"], np.mean(floor_v, axis=0), atol=1e-12)
    np.testing.assert_allclose(frame["floor_reference"], np.mean(floor_r, axis=0), atol=1e-12)
    np.testing.assert_allclose(
        frame["floor"], (np.mean(floor_v, axis=0) + np.mean(floor_r, axis=0)) / 2, atol=1e-12
    )
    # an entity's p-value: the plain enumeration on its own similarity matrix
    for i in (0, 17, 250):
        S = np.full((8, 8), np.nan)
        for (a, sa), (b, sb) in combinations(list(enumerate(seeds)), 2):
            S[a, b] = S[b, a] = per_entity(e(0.0, sa), e(0.0, sb))[i]
            S[4 + a, 4 + b] = S[4 + b, 4 + a] = per_entity(e(1.0, sa), e(1.0, sb))[i]
            S[a, 4 + b] = S[4 + b, a] = per_entity(e(0.0, sa), e(1.0, sb))[i]
            S[b, 4 + a] = S[4 + a, b] = per_entity(e(0.0, sb), e(1.0, sa))[i]
        assert frame["p_value"].iloc[i] == pytest.approx(_reference_p_value(S), abs=1e-12)
    np.testing.assert_allclose(frame["q_value"], _bh(frame["p_value"].to_numpy()), rtol=1e-12)
    np.testing.assert_array_equal(frame["changed"], frame["q_value"] <= 0.05)
    # the planted change moves every neighborhood more than reseeding does
    assert (frame["similarity"] < frame["floor"]).mean() > 0.9
    assert frame.attrs["value"] == 1.0 and frame.attrs["measure"] == "neighbors"


def test_changes_without_a_test(moved: Sweep, small) -> None:
    ref = moved.changes(0.0)
    np.testing.assert_array_equal(ref["similarity"], ref["floor_reference"])
    assert ref["p_value"].isna().all() and ref["changed"].isna().all()
    svd = es.SVD(factors=4, random_state=0).fit(small)
    moved.against(svd, name="svd")
    vs = moved.changes(1.0, against="svd", measure="mutual_knn")
    assert vs["floor_reference"].isna().all() and vs["q_value"].isna().all()
    np.testing.assert_array_equal(vs["floor"], vs["floor_value"])
    want = np.mean(
        [
            compare(moved.embeddings(1.0, s), svd.item_embeddings_, ["mutual_knn"], k=moved.k)
            .per_entity["mutual_knn"]
            .to_numpy()
            for s in moved.seeds
        ],
        axis=0,
    )
    np.testing.assert_allclose(vs["similarity"], want, atol=1e-12)
    with pytest.raises(InvalidParameterError, match="neighbor measure"):
        moved.changes(1.0, measure="cka")
    with pytest.raises(InvalidParameterError, match="against must be one of"):
        moved.changes(1.0, against="pca")
    with pytest.warns(EmbspaceWarning, match="no entity can be flagged"):
        _toy_sweep(small, "shift", [0.0, 1.0], seeds=3).changes(1.0)


def test_changes_by_popularity_and_genres(moved: Sweep) -> None:
    frame = moved.changes(1.0)
    by_pop = moved.changes_by(1.0, bins=4)
    assert by_pop["n_entities"].sum() == len(frame) and len(by_pop) <= 4
    assert list(by_pop["popularity"].cat.categories) == list(by_pop["popularity"])
    # the bins are contiguous ranges of n_ratings, in increasing order, each
    # holding the entities of its range, about a quarter each
    counts = frame["n_ratings"].to_numpy()
    ranges = [
        [int(x) for x in str(label).removesuffix(" ratings").split("-")]
        for label in by_pop["popularity"]
    ]
    ranges = [(r[0], r[-1]) for r in ranges]
    assert ranges[0][0] == counts.min() and ranges[-1][1] == counts.max()
    for (lo, hi), (next_lo, _) in pairwise(ranges):
        assert lo <= hi < next_lo
    for (lo, hi), n in zip(ranges, by_pop["n_entities"], strict=True):
        assert n == ((counts >= lo) & (counts <= hi)).sum()
        assert 0.5 * len(frame) / 4 <= n <= 1.5 * len(frame) / 4
    total = (by_pop["similarity"] * by_pop["n_entities"]).sum() / by_pop["n_entities"].sum()
    assert total == pytest.approx(frame["similarity"].mean(), abs=1e-12)
    by_genre = moved.changes_by(1.0, by="genres")
    genres = frame["key"].map(lambda k: k[1].split("|"))
    for _, row in by_genre.iterrows():
        members = frame[genres.map(lambda g, name=row["genres"]: name in g)]
        assert row["n_entities"] == len(members)
        assert row["similarity"] == pytest.approx(members["similarity"].mean(), abs=1e-12)
        tested = members["changed"].dropna()
        assert row["n_changed"] == int(tested.sum())
    fig = moved.changes_by(1.0, plot=True)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 2
    with pytest.raises(InvalidParameterError, match="metadata"):
        moved.changes_by(1.0, by="budget")
    assert isinstance(by_genre, pd.DataFrame)
