"""compare(..., sample=m): neighbor measures from sampled query entities with a
95% interval, and the dense measures streamed over row blocks."""

from __future__ import annotations

import tracemalloc
import warnings

import embspace as es
import numpy as np
import pytest
from embspace.errors import EmbspaceWarning, InvalidParameterError
from embspace.measures import MEASURES
from embspace.measures import comparison as C
from embspace.measures import streaming as S
from embspace.measures.neighborhood import neighbor_tables, sampled_overlap

NEIGHBOR = ["neighbors", "mutual_knn", "overlap_curve"]


def _pair(n: int, d: int = 12, noise: float = 0.8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d)).astype(np.float32)
    B = (A @ rng.standard_normal((d, d)) + noise * rng.standard_normal((n, d))).astype(np.float32)
    return A, B


def _tied_pair(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A pair with planted ties: groups of parallel rows (ties under cosine),
    scaled copies (dot) and exact duplicates (every metric), larger than the
    k-NN tables, so that some rows need the scan."""
    rng = np.random.default_rng(seed)
    A, B = _pair(n, 6, seed=seed)
    for _ in range(12):
        g = rng.choice(n, 25, replace=False)
        A[g] = A[g[0]] * rng.integers(1, 4, size=(25, 1)).astype(np.float32)
        g = rng.choice(n, 25, replace=False)
        B[g] = B[g[0]]
    return A, B


@pytest.mark.parametrize("metric", ["cosine", "dot", "euclidean"])
def test_sampled_counts_are_the_full_counts_of_the_sampled_rows(metric: str) -> None:
    A, B = _tied_pair(1500, seed=1)
    rows = np.sort(np.random.default_rng(2).choice(1500, 300, replace=False))
    for k in (1, 10):
        full = neighbor_tables(A, B, k, metric=metric).counts
        tied = (full[:, k - 1, 1] > k - full[:, k - 1, 0]).sum()
        assert tied > 20  # the planted groups do tie
        got = sampled_overlap(A, B, rows, k, metric=metric)
        assert got.counts.shape == (300, k, 8)
        assert np.array_equal(got.counts, full[rows])
        # every row as a query: the full table, whatever the order of the rows asked
        shuffled = np.random.default_rng(3).permutation(1500)
        every = sampled_overlap(A, B, shuffled, k, metric=metric)
        assert np.array_equal(every.counts, full[shuffled])


def test_sampled_compare_is_close_to_exact_and_its_interval_covers_it() -> None:
    A, B = _pair(8000, seed=4)
    a = es.Embeddings([f"e{i}" for i in range(8000)], A)
    b = es.Embeddings([f"e{i}" for i in range(8000)], B)
    exact = es.compare(a, b, [*NEIGHBOR, "cca"], sample=0)
    got = es.compare(a, b, [*NEIGHBOR, "cca"], sample=1500, sample_seed=7)
    assert got.sample == 1500 and exact.sample is None
    for name in NEIGHBOR:
        low, high = got.intervals[name]
        assert low <= got.scores[name] <= high
        assert low <= exact.scores[name] <= high
        se = exact.details[name]["stdev"] / np.sqrt(1500) * np.sqrt(1 - 1500 / 8000)
        assert abs(got.scores[name] - exact.scores[name]) < 4 * se
        # the half-width is t * s / sqrt(m) * sqrt(1 - m / n), s from the sample
        s = np.std(got.results[name].per_entity, ddof=1)
        assert (high - low) / 2 == pytest.approx(
            1.9615 * s / np.sqrt(1500) * np.sqrt(1 - 1500 / 8000), rel=1e-3
        )
        assert exact.intervals[name] == (exact.scores[name], exact.scores[name])
        assert got.details[name]["sample"] == 1500
    # the sampled entities' values are their exact values
    keys = got.sampled_keys
    assert keys is not None and len(keys) == 1500 and len(set(keys)) == 1500
    frame = got.per_entity
    assert frame.attrs["sampled"] and list(frame.index) == keys
    assert list(frame.columns) == NEIGHBOR
    np.testing.assert_array_equal(frame.to_numpy(), exact.per_entity.loc[keys].to_numpy())
    # dense measures are exact either way
    assert got.scores["cca"] == exact.scores["cca"]
    assert "cca" not in got.intervals
    d = got.to_dict()
    assert d["sample"] == 1500 and d["intervals"]["neighbors"] == list(got.intervals["neighbors"])
    assert "95% CI" in repr(got)


@pytest.mark.parametrize(("n", "m"), [(4000, 300), (4000, 2000)])
def test_interval_coverage_over_repeated_samples(n: int, m: int) -> None:
    """The 95% interval covers the exact score in 95% of repeated samples
    (binomial tolerance), with a small and a large share of the entities (the
    finite-population correction matters at m = n / 2: without it the
    coverage would be 99.4%)."""
    A, B = _pair(n, d=8, noise=1.0, seed=5)
    exact = es.compare(A, B, ["neighbors", "mutual_knn"], sample=0)
    values = {name: exact.results[name].per_entity for name in ("neighbors", "mutual_knn")}
    # compare's own draws and intervals are these (checked on a few seeds) ...
    for seed in (0, 1):
        got = es.compare(A, B, ["neighbors", "mutual_knn"], sample=m, sample_seed=seed)
        rows = C.draw_sample(n, m, seed)
        assert got.sampled_keys == rows.tolist()
        for name, v in values.items():
            assert got.intervals[name] == pytest.approx(C.sample_interval(v[rows], n), abs=1e-12)
    # ... so their coverage is read from the exact per-entity values
    reps = 400
    for name, v in values.items():
        truth = v.mean()
        hits = 0
        for seed in range(reps):
            low, high = C.sample_interval(v[C.draw_sample(n, m, seed)], n)
            hits += low <= truth <= high
        tolerance = 3 * np.sqrt(0.95 * 0.05 / reps)
        assert abs(hits / reps - 0.95) < tolerance, (name, hits / reps)


def test_sampling_is_deterministic_and_thread_independent() -> None:
    A, B = _pair(3000, seed=6)
    one = es.compare(A, B, NEIGHBOR, sample=500, sample_seed=11, num_threads=1)
    two = es.compare(A, B, NEIGHBOR, sample=500, sample_seed=11, num_threads=2)
    assert one.scores == two.scores and one.intervals == two.intervals
    assert one.sampled_keys == two.sampled_keys
    other = es.compare(A, B, NEIGHBOR, sample=500, sample_seed=12)
    assert other.sampled_keys != one.sampled_keys


def test_a_sample_of_every_entity_is_the_exact_comparison() -> None:
    A, B = _pair(1200, seed=7)
    exact = es.compare(A, B, [*NEIGHBOR, "cka"])
    for m in (1200, 5000):
        got = es.compare(A, B, [*NEIGHBOR, "cka"], sample=m)
        assert got.scores == exact.scores and got.sample is None
        assert got.intervals == {n: (exact.scores[n], exact.scores[n]) for n in NEIGHBOR}
        assert list(got.per_entity.index) == list(range(1200))


def test_automatic_sampling_above_the_documented_size(monkeypatch: pytest.MonkeyPatch) -> None:
    A, B = _pair(2500, seed=8)
    assert C.AUTO_SAMPLE_ABOVE == 200_000 and C.AUTO_SAMPLE_SIZE == 10_000
    monkeypatch.setattr(C, "AUTO_SAMPLE_ABOVE", 2000)
    monkeypatch.setattr(C, "AUTO_SAMPLE_SIZE", 400)
    auto = es.compare(A, B, ["neighbors"])
    assert auto.sample == 400
    assert auto.scores == es.compare(A, B, ["neighbors"], sample=400).scores
    assert es.compare(A, B, ["neighbors"], sample=0).sample is None
    assert es.compare(A, B, ["neighbors"], sample=False).sample is None
    # with precomputed tables, the default is exact (the tables are there)
    a, b = es.Embeddings(range(2500), A), es.Embeddings(range(2500), B)
    tables = (es.NeighborTable(a), es.NeighborTable(b))
    assert es.compare(a, b, ["neighbors"], knn=tables).sample is None
    monkeypatch.setattr(C, "AUTO_SAMPLE_ABOVE", 3000)
    assert es.compare(A, B, ["neighbors"]).sample is None


def test_sampled_queries_read_precomputed_tables() -> None:
    A, B = _pair(2000, seed=9)
    a, b = es.Embeddings(range(2000), A), es.Embeddings(range(2000), B)
    ta, tb = es.NeighborTable(a), es.NeighborTable(b)
    ta.knn(20)
    tb.knn(20)  # cached full tables: the queries' rows are read from them
    with_tables = es.compare(a, b, NEIGHBOR, knn=(ta, tb), sample=300, sample_seed=1)
    searched = es.compare(a, b, NEIGHBOR, sample=300, sample_seed=1)
    assert with_tables.scores == searched.scores
    assert with_tables.intervals == searched.intervals


def test_sampled_chance_levels() -> None:
    A, B = _pair(3000, seed=10)
    got = es.compare(A, B, ["neighbors"], sample=600, chance=True, chance_permutations=2)
    exact = es.compare(A, B, ["neighbors"], sample=0, chance=True, chance_permutations=2)
    assert got.chance is not None and exact.chance is not None
    # shuffled spaces share ~k^2 / n neighbors: both chance levels are near 0
    assert got.chance["neighbors"] < 0.01 and exact.chance["neighbors"] < 0.01


@pytest.mark.parametrize("bad", [-1, 1, 2.5, "10", True, np.float64(3.0)])
def test_bad_sample_values_are_typed_errors(bad: object) -> None:
    A, B = _pair(100, seed=11)
    with pytest.raises(InvalidParameterError, match="sample"):
        es.compare(A, B, ["neighbors"], sample=bad)


def test_bad_sample_seed_and_interval_input() -> None:
    A, B = _pair(100, seed=11)
    with pytest.raises(InvalidParameterError, match="sample_seed"):
        es.compare(A, B, ["neighbors"], sample=10, sample_seed=-1)
    with pytest.raises(InvalidParameterError):
        C.sample_interval(np.array([0.5]), 10)
    with pytest.raises(InvalidParameterError):
        C.sample_interval(np.zeros(11), 10)
    with pytest.raises(InvalidParameterError, match="rows"):
        sampled_overlap(A, B, np.array([1, 1]), 3)
    with pytest.raises(InvalidParameterError, match="rows"):
        sampled_overlap(A, B, np.array([100]), 3)


def test_sample_sets_rsas_sample_unless_rsa_says_otherwise() -> None:
    A, B = _pair(500, seed=12)
    got = es.compare(A, B, ["rsa", "neighbors"], sample=80)
    assert got.details["rsa"]["sample"] == 80 and got.sample == 80
    own = es.compare(A, B, ["rsa", "neighbors"], sample=80, rsa={"sample": 50})
    assert own.details["rsa"]["sample"] == 50


# ------------------------------------------------------------ streamed dense
def _streamable_pair(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # offset and unequal column scales: centring and conditioning matter
    A = (rng.standard_normal((n, 10)) * np.linspace(0.05, 4.0, 10) + 3.0).astype(np.float32)
    B = (A @ rng.standard_normal((10, 10)) + rng.standard_normal((n, 10))).astype(np.float32)
    return A, B


@pytest.mark.parametrize("householder", [False, True])
@pytest.mark.parametrize("name", sorted(S.STREAMED))
def test_streamed_measures_equal_the_in_memory_ones(
    name: str, householder: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    A, B = _streamable_pair(3000, seed=13)
    if householder:  # the tall-skinny Householder QR instead of CholeskyQR2
        monkeypatch.setattr(S, "COND2_MAX", 0.0)
        monkeypatch.setattr(S, "TSQR_ROWS", 257)
    m = S.moments(A, B, block_rows=701)
    want = MEASURES[name].function(A.astype(np.float64), B.astype(np.float64))
    got = S.streamed(name, m)
    assert got.score == pytest.approx(want.score, rel=1e-11, abs=1e-13)
    assert set(got.details) == set(want.details)
    for key, value in want.details.items():
        if isinstance(value, list) and value and isinstance(value[0], float):
            np.testing.assert_allclose(got.details[key], value, rtol=1e-9, atol=1e-12)
        elif not isinstance(value, float):
            assert got.details[key] == value, key


def test_streamed_rank_deficiency_is_found_as_in_memory() -> None:
    A, B = _streamable_pair(2000, seed=14)
    A[:, 3] = A[:, 1]  # a repeated column: rank 9 after centring
    A = A.astype(np.float64)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always", EmbspaceWarning)
        want = MEASURES["cca"].function(A, B.astype(np.float64))
        got = S.streamed("cca", S.moments(A, B, block_rows=333))
    assert sum("rank deficient" in str(w.message) for w in rec) == 2
    assert got.details["n_components"] == want.details["n_components"] == 9
    assert got.score == pytest.approx(want.score, rel=1e-9)


def test_compare_streams_dense_measures_above_the_size(monkeypatch: pytest.MonkeyPatch) -> None:
    A, B = _streamable_pair(2500, seed=15)
    names = ["cca", "svcca", "pwcca", "cka", "cka_debiased", "procrustes", "unitmatch", "rsa"]
    in_memory = es.compare(A, B, names)
    assert C.STREAM_ABOVE == 200_000
    monkeypatch.setattr(C, "STREAM_ABOVE", 1000)
    streamed = es.compare(A, B, names)
    for name in names:
        assert streamed.scores[name] == pytest.approx(in_memory.scores[name], rel=1e-10), name
    assert streamed.details["rsa"] == in_memory.details["rsa"]


def test_streamed_moments_use_blocks_not_copies() -> None:
    """The streaming passes allocate far less than one float64 copy of a side."""
    n, d = 300_000, 8
    A, B = _streamable_pair(n, seed=16)[0][:, :d], _streamable_pair(n, seed=17)[1][:, :d]
    A, B = np.ascontiguousarray(A), np.ascontiguousarray(B)
    copy64 = n * d * 8
    tracemalloc.start()
    try:
        S.moments(A, B, block_rows=1 << 14)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < copy64 / 4, (peak, copy64)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_sampled_overlap_allocates_blocks_not_copies(
    metric: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sampled neighbor counts read the float32 rows in place, in blocks:
    Python-side allocations stay far below one float64 copy of a side (the
    search's own float32 copy lives in the Rust core)."""
    from embspace.measures import neighborhood

    monkeypatch.setattr(neighborhood, "SCAN_BLOCK_ROWS", 8192)
    n, d = 200_000, 16
    A, B = _pair(n, d=d, seed=18)
    rows = C.draw_sample(n, 300, 0)
    tracemalloc.start()
    try:
        sampled_overlap(A, B, rows, 10, metric=metric)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < n * d * 8 / 4, (peak, n * d * 8)
