"""Prepared dense sides (``DenseSide``, ``compare(..., dense=)``): the same
scores, bit for bit, as plain arrays, and right against plain numpy formulas;
a side reused across comparisons, its checks and its memory bound in a
sweep's RunComparer."""

from __future__ import annotations

import warnings

import embspace as es
import numpy as np
import pytest
from embspace.errors import (
    EmbspaceWarning,
    InvalidParameterError,
    NonFiniteError,
    ShapeMismatchError,
)
from embspace.measures.sides import DenseSide
from embspace.sweeps import comparisons
from embspace.sweeps.comparisons import RunComparer

DENSE = ["cca", "unitmatch", "cka"]


def _runs(n: int = 300, d: int = 6, count: int = 3) -> list[es.Embeddings]:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((n, d))
    keys = [f"e{i}" for i in range(n)]
    return [
        es.Embeddings(keys, (base @ rng.standard_normal((d, d)) + rng.standard_normal((n, d))))
        for _ in range(count)
    ]


def _reference(A: np.ndarray, B: np.ndarray) -> dict[str, float]:
    """cca, unitmatch and cka from their textbook formulas in plain numpy:
    canonical correlations as the singular values of the whitened cross
    covariance, unit correlations with np.corrcoef, CKA from the n x n Gram
    matrices."""
    A = A.astype(np.float64) - A.mean(axis=0)
    B = B.astype(np.float64) - B.mean(axis=0)

    def inv_sqrt(S: np.ndarray) -> np.ndarray:
        w, V = np.linalg.eigh(S)
        return V @ np.diag(w**-0.5) @ V.T

    M = inv_sqrt(A.T @ A) @ (A.T @ B) @ inv_sqrt(B.T @ B)
    rho = np.linalg.svd(M, compute_uv=False)
    d = A.shape[1]
    C = np.corrcoef(A.T, B.T)[:d, d:]
    K, L = A @ A.T, B @ B.T
    cka = (K * L).sum() / np.sqrt((K * K).sum() * (L * L).sum())
    return {"cca": float(rho.mean()), "unitmatch": float(C.max(axis=1).mean()), "cka": float(cka)}


def test_sides_give_the_plain_scores_bit_for_bit_and_the_reference() -> None:
    a, b, c = _runs()
    plain = es.compare(a, b, DENSE).scores
    ref = _reference(a.vectors, b.vectors)
    for m in DENSE:
        assert plain[m] == pytest.approx(ref[m], rel=1e-10, abs=1e-12)
    # sides reused across comparisons, in both positions, with and without the other
    sa, sb, sc = (DenseSide.of(e.vectors) for e in (a, b, c))
    for _ in range(2):
        assert es.compare(a, b, DENSE, dense=(sa, sb)).scores == plain
        assert es.compare(a, b, DENSE, dense=(sa, None)).scores == plain
        assert es.compare(a, b, DENSE, dense=(None, sb)).scores == plain
        assert es.compare(a, c, DENSE, dense=(sa, sc)).scores == es.compare(a, c, DENSE).scores
        assert es.compare(b, a, DENSE, dense=(sb, sa)).scores == es.compare(b, a, DENSE).scores
    # the measure functions take sides or arrays alike
    for m in DENSE:
        fn = es.measures.MEASURES[m].function
        A64, B64 = (np.asarray(e.vectors, dtype=np.float64) for e in (a, b))
        assert fn(sa, sb).score == fn(A64, B64).score == plain[m]
    # other dense measures get the arrays of the sides
    others = ["procrustes", "svcca", "cka_debiased"]
    assert (
        es.compare(a, b, DENSE + others, dense=(sa, sb)).scores
        == es.compare(a, b, DENSE + others).scores
    )


def test_chance_reuses_a_side_with_the_same_levels() -> None:
    a, b, _ = _runs()
    plain = es.measures.chance_scores(a, b, DENSE, permutations=3)
    side = DenseSide.of(a.vectors)
    assert es.measures.chance_scores(a, b, DENSE, permutations=3, dense=(side, None)) == plain
    # the shuffles' scores from scratch: b's rows permuted, as chance_scores draws them
    rng = np.random.default_rng(0)
    means = dict.fromkeys(DENSE, 0.0)
    for _ in range(3):
        order = rng.permutation(b.n)
        shuffled = es.Embeddings(b.keys, b.vectors[order])
        for m, v in es.compare(a, shuffled, DENSE).scores.items():
            means[m] += v / 3
    assert plain == pytest.approx(means, rel=1e-12)


def test_a_rank_deficient_side_warns_at_each_comparison() -> None:
    a, b, _ = _runs()
    flat = es.Embeddings(a.keys, np.c_[a.vectors[:, :5], a.vectors[:, :1] * 2.0])
    side = DenseSide.of(flat.vectors)
    for _ in range(2):
        with pytest.warns(EmbspaceWarning, match="rank deficient"):
            got = es.compare(flat, b, ["cca"], dense=(side, None)).scores
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EmbspaceWarning)
            assert got == es.compare(flat, b, ["cca"]).scores
    constant = es.Embeddings(a.keys, np.c_[a.vectors[:, :5], np.ones(a.n)])
    side = DenseSide.of(constant.vectors)
    for _ in range(2):
        with pytest.warns(EmbspaceWarning, match="1 constant unit"):
            es.compare(constant, b, ["unitmatch"], dense=(side, None))


def test_dense_sides_are_checked() -> None:
    a, b, c = _runs()
    sa, sc = DenseSide.of(a.vectors), DenseSide.of(c.vectors)
    with pytest.raises(InvalidParameterError, match="dense must be a pair"):
        es.compare(a, b, DENSE, dense=sa)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="dense must be a pair"):
        es.compare(a, b, DENSE, dense=(a.vectors, None))  # type: ignore[arg-type]
    with pytest.raises(ShapeMismatchError, match="not a side of b"):
        es.compare(a, b, DENSE, dense=(sa, sc))
    # equal vectors in another array are accepted
    copy = DenseSide.of(a.vectors.copy())
    assert es.compare(a, b, DENSE, dense=(copy, None)).scores == es.compare(a, b, DENSE).scores
    part = es.Embeddings(b.keys[:200], b.vectors[:200])
    with (
        pytest.raises(ShapeMismatchError, match="same keys in the same order"),
        pytest.warns(EmbspaceWarning, match="shared"),
    ):
        es.compare(a, part, DENSE, dense=(sa, None))
    with pytest.raises(NonFiniteError, match="B contains NaN"):
        DenseSide.of(np.array([[1.0, np.nan], [0.0, 1.0]]), side="B")


def test_run_comparer_keeps_sides_within_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    runs = _runs(count=4)
    measures = ["neighbors", *DENSE]
    expected = {
        (i, j): es.compare(runs[i], runs[j], measures, k=5).scores
        for i in range(4)
        for j in range(4)
        if i != j
    }
    comparer = RunComparer(measures, k=5, metric="cosine", device="cpu", num_threads=1)
    for (i, j), scores in expected.items():
        assert comparer.scores(i, runs[i], j, runs[j]) == scores
    assert len(comparer._sides) == 4
    one = comparer._sides[0].nbytes
    assert one > 0
    # a budget of two sides: the least recently used go, and come back when asked
    monkeypatch.setattr(comparisons, "DENSE_SIDES_BYTES", 2 * one)
    small = RunComparer(measures, k=5, metric="cosine", device="cpu", num_threads=1)
    for (i, j), scores in expected.items():
        assert small.scores(i, runs[i], j, runs[j]) == scores
        assert sum(s.nbytes for s in small._sides.values()) <= 2 * one
        assert list(small._sides)[-2:] in ([i, j], [j, i])
    chance = small.chance(0, runs[0], 1, runs[1])
    assert chance == es.measures.chance_scores(runs[0], runs[1], measures, k=5, num_threads=1)
    small.forget(0)
    assert 0 not in small._sides
