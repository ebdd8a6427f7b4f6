"""Ratings.filter: the (u, i)-core, against a plain loop over a dense matrix."""

from __future__ import annotations

import embspace as es
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from embspace.errors import InvalidParameterError


def _core_by_hand(dense: np.ndarray, lo_u: int, lo_i: int) -> tuple[list[int], list[int]]:
    users = list(range(dense.shape[0]))
    items = list(range(dense.shape[1]))
    changed = True
    while changed:
        changed = False
        for u in list(users):
            if sum(dense[u, i] != 0 for i in items) < lo_u:
                users.remove(u)
                changed = True
        for i in list(items):
            if sum(dense[u, i] != 0 for u in users) < lo_i:
                items.remove(i)
                changed = True
    return users, items


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("lo_u", "lo_i"), [(1, 1), (2, 2), (3, 1), (1, 4), (5, 5)])
def test_filter_equals_the_core_computed_by_hand(seed: int, lo_u: int, lo_i: int) -> None:
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((25, 18)) < 0.2, rng.integers(1, 6, (25, 18)), 0).astype(float)
    dense[dense.sum(axis=1) == 0, 0] = 1.0  # Ratings holds no empty user...
    dense[0, dense.sum(axis=0) == 0] = 2.0  # ...and no empty item
    ratings = es.Ratings.from_csr(
        sp.csr_matrix(dense), [f"u{i}" for i in range(25)], 100 + np.arange(18), name="toy"
    )
    out = ratings.filter(min_user_ratings=lo_u, min_item_ratings=lo_i)
    users, items = _core_by_hand(dense, lo_u, lo_i)
    assert list(out.user_ids) == [f"u{u}" for u in users]
    assert list(out.item_ids) == [100 + i for i in items]
    np.testing.assert_array_equal(out.matrix.toarray(), dense[np.ix_(users, items)])
    if users:
        assert np.diff(out.matrix.indptr).min() >= lo_u
        assert out.items["n_ratings"].min() >= lo_i
    assert out.name == f"toy [filtered u>={lo_u}, i>={lo_i}]"


def test_filter_keeps_titles_and_keys() -> None:
    frame = pd.DataFrame(
        {"userId": [1, 1, 2, 2, 3], "movieId": [10, 20, 10, 20, 30], "rating": [4, 3, 5, 2, 1]}
    )
    items = pd.DataFrame(
        {"movieId": [10, 20, 30], "title": ["A (1990)", "B (1991)", "C (1992)"], "genres": "x"}
    )
    ratings = es.Ratings.from_frame(frame, items=items)
    out = ratings.filter(min_item_ratings=2)
    assert out.item_keys == [("A (1990)", "x"), ("B (1991)", "x")]
    assert list(out.user_ids) == [1, 2]  # user 3 rated only the dropped item


def test_filter_can_empty_the_ratings() -> None:
    ratings = es.Ratings.from_csr(sp.csr_matrix(np.eye(4)))
    out = ratings.filter(min_user_ratings=2)
    assert out.shape == (0, 0) and out.n_ratings == 0


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True, None])
def test_filter_refuses_bad_minimums(bad: object) -> None:
    ratings = es.Ratings.from_csr(sp.csr_matrix(np.eye(3)))
    with pytest.raises(InvalidParameterError):
        ratings.filter(min_user_ratings=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError):
        ratings.filter(min_item_ratings=bad)  # type: ignore[arg-type]


def test_load_filters_a_synthetic_dataset() -> None:
    full = es.datasets.load("synthetic:tiny")
    out = es.datasets.load("synthetic:tiny", min_user_ratings=25, min_item_ratings=10)
    expected = full.filter(min_user_ratings=25, min_item_ratings=10)
    assert out.shape == expected.shape and out.shape != full.shape
    assert (out.matrix != expected.matrix).nnz == 0
    with pytest.raises(InvalidParameterError):
        es.datasets.load("synthetic:tiny", min_user_ratings=0)
