"""Embeddings.duplicate_rows: exactly equal and exactly parallel rows, by hand."""

from __future__ import annotations

import embspace as es
import numpy as np


def test_equal_rows_are_grouped_largest_first() -> None:
    v = np.array(
        [[1, 0], [0, 1], [1, 0], [2, 0], [0, 1], [1, 0], [3, 3]],
        dtype=np.float32,
    )
    emb = es.Embeddings(list("abcdefg"), v)
    out = emb.duplicate_rows()
    assert out["key"].tolist() == ["a", "c", "f", "b", "e"]
    assert out["group"].tolist() == [0, 0, 0, 1, 1]
    assert out["size"].tolist() == [3, 3, 3, 2, 2]
    assert out["row"].tolist() == [0, 2, 5, 1, 4]


def test_parallel_rows_with_direction() -> None:
    v = np.array([[1, 0], [2, 0], [0, 0], [0, 0], [-1, 0], [1, 1], [3, 3]], dtype=np.float32)
    emb = es.Embeddings(list("abcdefg"), v)
    out = emb.duplicate_rows(direction=True)
    groups = {frozenset(g["key"]) for _, g in out.groupby("group")}
    # a and b parallel, f and g parallel, the zero rows equal; -1 points the other way
    assert groups == {frozenset("ab"), frozenset("cd"), frozenset("fg")}
    assert emb.duplicate_rows()["key"].tolist() == ["c", "d"]


def test_no_duplicates_and_invariance_to_row_order() -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(size=(50, 4)).astype(np.float32)
    assert es.Embeddings(list(range(50)), v).duplicate_rows().empty
    v[[3, 9, 40]] = v[7]
    perm = rng.permutation(50)
    a = es.Embeddings(list(range(50)), v).duplicate_rows()
    b = es.Embeddings([int(k) for k in perm], v[perm]).duplicate_rows()
    assert sorted(a["key"]) == sorted(b["key"]) == [3, 7, 9, 40]
