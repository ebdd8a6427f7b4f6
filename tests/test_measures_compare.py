"""compare(): alignment on keys, option routing, the result object, errors."""

from __future__ import annotations

import json
import warnings

import embspace as es
import numpy as np
import pytest
from embspace import measures as M
from embspace.errors import (
    EmbspaceWarning,
    InvalidParameterError,
    NonFiniteError,
    NoSharedKeysError,
    ShapeMismatchError,
)


def _pair(n: int = 400, d: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d)).astype(np.float32)
    B = (A @ rng.standard_normal((d, d)) + 0.5 * rng.standard_normal((n, d))).astype(np.float32)
    return A, B


def test_compare_aligns_on_shared_keys() -> None:
    A, B = _pair()
    a = es.Embeddings([f"m{i}" for i in range(400)], A)
    # b: a different order, 30 entities missing, 5 extra ones
    rng = np.random.default_rng(1)
    order = rng.permutation(400)[:370]
    extra = rng.standard_normal((5, 5)).astype(np.float32)
    b = es.Embeddings(
        [f"m{i}" for i in order] + [f"x{i}" for i in range(5)], np.vstack([B[order], extra])
    )
    with pytest.warns(EmbspaceWarning, match="370 shared"):
        c = es.compare(a, b, measures=list(M.MEASURES), k=7, max_k=9)
    kept = np.sort(order)  # a's order
    assert c.n_shared == 370 and c.n_a == 400 and c.n_b == 375
    assert c.keys == [f"m{i}" for i in kept]
    A2, B2 = A[kept], B[kept]
    assert c.scores["neighbors"] == M.neighbors(A2, B2, k=7).score
    assert c.scores["mutual_knn"] == M.mutual_knn(A2, B2, k=7).score
    assert c.scores["overlap_curve"] == M.overlap_curve(A2, B2, max_k=9).score
    for name in ("cca", "svcca", "pwcca", "cka", "cka_debiased", "procrustes", "unitmatch"):
        assert c.scores[name] == pytest.approx(
            M.get_measure(name).function(A2, B2).score, abs=1e-12
        ), name
    assert c.details["cca"]["correlations"] == M.cca(A2, B2).details["correlations"]
    frame = c.per_entity
    assert list(frame.columns) == ["neighbors", "mutual_knn", "overlap_curve"]
    assert list(frame.index) == c.keys
    np.testing.assert_array_equal(frame["neighbors"], M.neighbors(A2, B2, k=7).per_entity)


def test_identical_keys_do_not_warn_and_defaults_run() -> None:
    A, B = _pair(seed=2)
    a, b = es.Embeddings(list(range(400)), A), es.Embeddings(list(range(400)), B)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = es.compare(a, b)
    assert list(c.scores) == ["neighbors", "cca", "unitmatch", "cka"]
    assert c["cca"] == c.scores["cca"]
    # plain arrays whose rows already correspond work the same way
    assert es.compare(A, B).scores == c.scores


def test_options_reach_the_right_measures() -> None:
    A, B = _pair(seed=3)
    c = es.compare(
        A, B, measures=["unitmatch", "svcca"], unitmatch={"absolute": True, "replacement": False}
    )
    assert c.scores["unitmatch"] == M.unitmatch(A, B, absolute=True, replacement=False).score
    c2 = es.compare(A, B, measures=["unitmatch", "svcca"], threshold=0.9, replacement=False)
    assert c2.scores["svcca"] == M.svcca(A, B, threshold=0.9).score
    assert c2.scores["unitmatch"] == M.unitmatch(A, B, replacement=False).score
    c3 = es.compare(
        A, B, measures=["neighbors", "mutual_knn"], neighbors={"metric": "euclidean", "k": 4}
    )
    assert c3.scores["neighbors"] == M.neighbors(A, B, k=4, metric="euclidean").score
    assert c3.scores["mutual_knn"] == M.mutual_knn(A, B, k=10, metric="cosine").score
    with pytest.raises(InvalidParameterError, match="no requested measure takes"):
        es.compare(A, B, measures=["cca"], threshold=0.9)
    with pytest.raises(InvalidParameterError, match="takes no option"):
        es.compare(A, B, measures=["cca"], cca={"absolute": True})
    with pytest.raises(InvalidParameterError, match="unknown measure"):
        es.compare(A, B, measures=["cca", "nope"])
    with pytest.raises(InvalidParameterError):
        es.compare(A, B, measures=[])
    with pytest.raises(InvalidParameterError):
        es.compare(A, B, measures=["cca", "cca"])


def test_errors_no_shared_keys_dimension_and_non_finite() -> None:
    A, B = _pair(seed=4)
    a = es.Embeddings([f"a{i}" for i in range(400)], A)
    b = es.Embeddings([f"b{i}" for i in range(400)], B)
    with pytest.raises(NoSharedKeysError):
        es.compare(a, b)
    narrow = es.Embeddings([f"a{i}" for i in range(400)], B[:, :3])
    with pytest.raises(ShapeMismatchError, match="unitmatch"):
        es.compare(a, narrow)
    ok = es.compare(a, narrow, measures=["cca", "cka", "neighbors"])  # these allow different d
    assert 0 < ok.scores["cca"] <= 1
    bad = B.copy()
    bad[0, 0] = np.nan
    with pytest.raises(NonFiniteError):
        es.compare(A, bad)
    with pytest.raises(NonFiniteError):
        M.neighbors(A, bad)


def test_result_object_repr_dict_frame_bootstrap() -> None:
    A, B = _pair(seed=5)
    c = es.compare(A, B, measures=["neighbors", "cca", "unitmatch", "cka", "overlap_curve"])
    text = repr(c)
    for name in ("neighbors", "cca", "unitmatch", "cka", "400 shared"):
        assert name in text
    d = c.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["scores"] == c.scores and d["n_shared"] == 400
    frame = c.to_frame()
    assert frame["measure"].tolist() == list(c.scores)
    assert (
        frame.loc[frame.measure == "neighbors", "stdev"].item() == c.details["neighbors"]["stdev"]
    )
    boot = c.bootstrap(n_boot=300, random_state=7)
    assert boot["measure"].tolist() == ["neighbors", "overlap_curve"]
    assert (boot["low"] <= boot["score"]).all() and (boot["score"] <= boot["high"]).all()
    again = c.bootstrap(n_boot=300, random_state=7)
    assert boot.equals(again)
    # the interval of the mean shrinks like 1/sqrt(n): compare with the normal approximation
    per = c.per_entity["neighbors"].to_numpy()
    half = (boot["high"][0] - boot["low"][0]) / 2
    assert half == pytest.approx(1.96 * per.std() / np.sqrt(per.size), rel=0.25)


def test_registry() -> None:
    assert {
        "neighbors",
        "cca",
        "unitmatch",
        "cka",
        "cka_debiased",
        "procrustes",
        "svcca",
        "pwcca",
        "mutual_knn",
        "overlap_curve",
    } <= set(M.MEASURES)
    with pytest.raises(InvalidParameterError):
        M.register_measure("cca", M.cca)

    def first_column_corr(A, B, *, xp=np):
        """Correlation of the first columns. Range [-1, 1]. Invariances: none. Cost: O(n)."""
        return M.MeasureResult("first", float(np.corrcoef(A[:, 0], B[:, 0])[0, 1]))

    try:
        M.register_measure("first", first_column_corr)
        A, B = _pair(seed=6)
        c = es.compare(A, B, measures=["first"])
        assert c.scores["first"] == pytest.approx(np.corrcoef(A[:, 0], B[:, 0])[0, 1])
        assert M.get_measure("first").description.startswith("Correlation of the first")
    finally:
        M.MEASURES.unregister("first")


def test_dense_measures_of_thin_matrices_run_blas_on_one_thread():
    """compare() itself (not only Sweep) keeps OpenBLAS to one thread for
    d <= 64, where its threads cost more than they save; wider inputs keep the
    library's setting."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from embspace.measures import MEASURES, MeasureResult, register_measure

    seen: list[int] = []

    def blas_now() -> int:
        info = [p for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
        return max(p["num_threads"] for p in info) if info else -1

    def blas_threads(a, b, *, xp):
        seen.append(blas_now())
        return MeasureResult("blas_threads_probe", 0.0)

    register_measure("blas_threads_probe", blas_threads)
    try:
        rng = np.random.default_rng(0)
        with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
            outer = blas_now()
            thin = rng.standard_normal((50, 8))
            wide = rng.standard_normal((50, 80))
            es.compare(thin, thin, ["blas_threads_probe"])
            after_thin = blas_now()
            es.compare(wide, wide, ["blas_threads_probe"])
    finally:
        MEASURES.unregister("blas_threads_probe")
    if outer == -1:
        pytest.skip("numpy has no BLAS threadpoolctl can see")
    assert seen == [1, outer]
    assert after_thin == outer  # the limit is lifted on exit


# ----------------------------------------------------------------------------- knn=
ALL_NEIGHBOR = ["neighbors", "mutual_knn", "overlap_curve"]


def _keyed(seed: int = 8) -> tuple[es.Embeddings, es.Embeddings]:
    A, B = _pair(n=300, seed=seed)
    keys = [f"m{i}" for i in range(300)]
    return es.Embeddings(keys, A), es.Embeddings(keys, B)


def test_precomputed_tables_give_the_same_scores_without_searching(monkeypatch) -> None:
    a, b = _keyed()
    names = [*ALL_NEIGHBOR, "cca", "unitmatch", "cka"]
    plain = es.compare(a, b, measures=names, k=6, max_k=8)
    ta, tb = es.NeighborTable(a), es.NeighborTable(b)
    # the tables are filled now; compare() must read them, never search again
    ta.knn(8), tb.knn(8)
    from embspace.measures import neighborhood

    def no_search(*args, **kwargs):
        raise AssertionError("compare() searched although tables were given")

    monkeypatch.setattr(neighborhood, "knn", no_search)
    given = es.compare(a, b, measures=names, k=6, max_k=8, knn=(ta, tb))
    assert given.scores == plain.scores
    assert given.details["overlap_curve"] == plain.details["overlap_curve"]
    np.testing.assert_array_equal(given.per_entity, plain.per_entity)
    # a smaller k is served from the same tables
    small = es.compare(a, b, measures=["neighbors"], k=3, knn=(ta, tb))
    monkeypatch.undo()
    assert small.scores["neighbors"] == M.neighbors(a.vectors, b.vectors, k=3).score


def test_precomputed_tables_of_equal_copies_and_of_arrays() -> None:
    a, b = _keyed(seed=9)
    twin = es.Embeddings(list(a.keys), a.vectors.copy())  # same keys and vectors, other object
    tables = (es.NeighborTable(twin, metric="euclidean"), es.NeighborTable(b, metric="euclidean"))
    got = es.compare(a, b, measures=["neighbors"], metric="euclidean", knn=tables)
    want = M.neighbors(a.vectors, b.vectors, metric="euclidean")
    assert got.scores["neighbors"] == want.score
    # plain arrays: tables over Embeddings keyed by row
    A, B = a.vectors, b.vectors
    rows = (
        es.NeighborTable(es.Embeddings(range(300), A)),
        es.NeighborTable(es.Embeddings(range(300), B)),
    )
    assert es.compare(A, B, measures=["neighbors"], knn=rows).scores["neighbors"] == (
        M.neighbors(A, B).score
    )
    # without neighbor measures the tables are checked and unused
    assert es.compare(a, b, measures=["cka"], knn=(es.NeighborTable(a), es.NeighborTable(b)))


def test_precomputed_tables_are_checked() -> None:
    a, b = _keyed(seed=10)
    ta, tb = es.NeighborTable(a), es.NeighborTable(b)
    for bad in [ta, (ta,), (ta, tb, ta), (ta, b), (a.vectors, b.vectors), "ab"]:
        with pytest.raises(InvalidParameterError, match="NeighborTable"):
            es.compare(a, b, measures=["neighbors"], knn=bad)
    # a table of the other side, or of other vectors under the same keys
    with pytest.raises(ShapeMismatchError, match="table of a is not a table of a"):
        es.compare(a, b, measures=["neighbors"], knn=(tb, tb))
    short = es.Embeddings(a.keys[:200], a.vectors[:200])
    with pytest.raises(ShapeMismatchError, match="covers 200 x 5"):
        es.compare(a, b, measures=["neighbors"], knn=(es.NeighborTable(short), tb))
    # sides that need alignment cannot use tables of the unaligned rows
    shuffled = es.Embeddings(b.keys[::-1], b.vectors[::-1])
    with pytest.raises(ShapeMismatchError, match="same keys in the same order"):
        es.compare(a, shuffled, measures=["neighbors"], knn=(ta, es.NeighborTable(shuffled)))
    # every neighbor measure must use the tables' metric
    with pytest.raises(InvalidParameterError, match="metric 'dot'"):
        es.compare(a, b, measures=["neighbors"], metric="dot", knn=(ta, tb))
    with pytest.raises(InvalidParameterError, match="metric 'euclidean'"):
        es.compare(
            a, b, measures=["neighbors", "mutual_knn"], knn=(ta, tb),
            mutual_knn={"metric": "euclidean"},
        )  # fmt: skip
    # k beyond the table's entities is the table's own typed error
    with pytest.raises(InvalidParameterError, match=r"\[1, n - 1\]"):
        es.compare(a, b, measures=["neighbors"], k=300, knn=(ta, tb))
    # the raw ``tables`` option of the measures is compare()'s own
    with pytest.raises(InvalidParameterError, match="tables"):
        es.compare(a, b, measures=["neighbors"], tables=(np.zeros((300, 10), int),) * 2)
