"""Ratings: ids <-> indices, the Rust-built CSR against scipy, duplicates, non-finite values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from embspace import Ratings, _core
from embspace.errors import DuplicateEntryError, InvalidParameterError, NonFiniteError


def _random_unique_coo(rng, n_rows, n_cols, nnz):
    """Unique random coordinates in shuffled order, leaving some rows and columns empty."""
    rows_ok = rng.choice(n_rows, size=n_rows * 2 // 3, replace=False)
    cols_ok = rng.choice(n_cols, size=n_cols * 2 // 3, replace=False)
    cells = rng.choice(rows_ok.size * cols_ok.size, size=nnz, replace=False)
    rows, cols = rows_ok[cells // cols_ok.size], cols_ok[cells % cols_ok.size]
    values = rng.uniform(-5, 5, nnz).astype(np.float32)
    return rows.astype(np.int64), cols.astype(np.int64), values


def _same_csr(indptr, indices, data, ref: sp.csr_matrix) -> None:
    ref = ref.copy()
    ref.sort_indices()
    np.testing.assert_array_equal(indptr, ref.indptr)
    np.testing.assert_array_equal(indices, ref.indices)
    np.testing.assert_array_equal(data, ref.data)


@pytest.mark.parametrize("seed", range(5))
def test_rust_csr_equals_scipy(seed):
    rng = np.random.default_rng(seed)
    n_rows, n_cols = int(rng.integers(1, 80)), int(rng.integers(1, 60))
    nnz = int(rng.integers(0, (n_rows * 2 // 3) * (n_cols * 2 // 3) + 1))
    rows, cols, values = _random_unique_coo(rng, n_rows, n_cols, nnz)
    indptr, indices, data = _core.csr_from_coo(n_rows, n_cols, rows, cols, values)
    assert (indptr.dtype, indices.dtype, data.dtype) == (np.int64, np.int32, np.float32)
    ref = sp.coo_matrix((values, (rows, cols)), shape=(n_rows, n_cols)).tocsr()
    _same_csr(indptr, indices, data, ref)
    # the transpose (item-major CSR) equals scipy's transpose
    t = _core.csr_transpose(n_rows, n_cols, indptr, indices, data)
    _same_csr(*t, ref.T.tocsr())


def test_ratings_from_csr_and_item_matrix_equal_scipy():
    rng = np.random.default_rng(7)
    rows, cols, values = _random_unique_coo(rng, 70, 50, 900)
    coo = sp.coo_matrix((values, (rows, cols)), shape=(70, 50))  # unsorted: built by Rust
    ratings = Ratings.from_csr(coo)
    ref = coo.tocsr()
    assert (ratings.matrix != ref).nnz == 0
    assert ratings.matrix.has_canonical_format and ratings.matrix.dtype == np.float32
    _same_csr(ratings.matrix.indptr, ratings.matrix.indices, ratings.matrix.data, ref)
    _same_csr(*ratings.csr_arrays(by="item"), ref.T.tocsr())
    item = ratings.item_matrix
    assert item.shape == (50, 70)
    _same_csr(item.indptr, item.indices, item.data, ref.T.tocsr())
    assert np.diff(ratings.matrix.indptr).min() == 0  # empty rows were exercised
    assert ratings.items["n_ratings"].min() == 0  # and empty columns
    for arr in ratings.csr_arrays():
        assert arr.flags.c_contiguous


def test_from_frame_maps_ids_to_sorted_indices():
    rng = np.random.default_rng(3)
    rows, cols, values = _random_unique_coo(rng, 40, 30, 300)
    user_names = np.array([f"user-{k:03d}" for k in rng.permutation(1000)[:40]])
    item_ids = rng.choice(10**6, size=30, replace=False)
    frame = pd.DataFrame({"u": user_names[rows], "i": item_ids[cols], "r": values})
    ratings = Ratings.from_frame(frame, user="u", item="i", rating="r")
    uniq_u, inv_u = np.unique(frame["u"].to_numpy(), return_inverse=True)
    uniq_i, inv_i = np.unique(frame["i"].to_numpy(), return_inverse=True)
    ref = sp.coo_matrix((values, (inv_u, inv_i)), shape=(uniq_u.size, uniq_i.size)).tocsr()
    assert ratings.user_keys == uniq_u.tolist()
    assert ratings.item_keys == uniq_i.tolist()
    assert all(type(k) is int for k in ratings.item_keys)
    _same_csr(ratings.matrix.indptr, ratings.matrix.indices, ratings.matrix.data, ref)


@pytest.mark.parametrize(
    "ids",
    [
        [5, 3, 5, 900, 3],  # compact integer range
        [-(10**12), 7, 10**12, 7, -(10**12)],  # integers too sparse for a presence table
        np.array([4, 2, 4, 9, 2], dtype=np.uint16),
        ["b", "a", "b", "c", "a"],
    ],
)
def test_id_mapping_paths_agree_with_numpy(ids):
    ids = np.asarray(ids)
    frame = pd.DataFrame({"userId": ids, "movieId": np.arange(5), "rating": np.ones(5)})
    ratings = Ratings.from_frame(frame)
    uniq, inverse = np.unique(ids, return_inverse=True)
    assert ratings.user_ids.tolist() == uniq.tolist()
    if ids.dtype.kind in "iu":
        assert ratings.user_ids.dtype == ids.dtype
    np.testing.assert_array_equal(ratings.matrix.tocoo().row, np.sort(inverse))
    dense = ratings.matrix.toarray()
    for pos, code in enumerate(inverse):
        assert dense[code, pos] == 1.0


def _frame_with_repeats(rng):
    users = rng.integers(0, 6, 200)
    items = rng.integers(0, 5, 200)
    values = rng.integers(1, 11, 200) / 2
    return pd.DataFrame({"userId": users * 10 + 1, "movieId": items + 100, "rating": values})


@pytest.mark.parametrize("policy", ["first", "last", "sum", "mean", "max"])
def test_duplicate_policies_match_pandas(policy):
    frame = _frame_with_repeats(np.random.default_rng(11))
    ratings = Ratings.from_frame(frame, duplicates=policy)
    expected = frame.groupby(["userId", "movieId"], sort=True)["rating"].agg(policy)
    got = ratings.matrix.tocoo()
    pairs = {
        (ratings.user_keys[r], ratings.item_keys[c]): v
        for r, c, v in zip(got.row, got.col, got.data, strict=True)
    }
    assert len(pairs) == len(expected)
    for (u, i), v in expected.items():
        assert pairs[(u, i)] == pytest.approx(v, rel=1e-6)


def test_duplicates_are_an_error_by_default_naming_the_ids():
    frame = pd.DataFrame(
        {"userId": ["ann", "bob", "ann"], "movieId": [7, 7, 7], "rating": [1.0, 2.0, 3.0]},
        index=[10, 11, 12],
    )
    with pytest.raises(DuplicateEntryError) as excinfo:
        Ratings.from_frame(frame)
    message = str(excinfo.value)
    assert "user 'ann' rated item 7 more than once" in message
    assert "table rows 10 and 12" in message
    assert isinstance(excinfo.value, ValueError)
    with pytest.raises(InvalidParameterError, match="duplicates must be"):
        Ratings.from_frame(frame, duplicates="median")
    coo = sp.coo_matrix(([1.0, 2.0], ([0, 0], [1, 1])), shape=(1, 2))
    with pytest.raises(DuplicateEntryError):
        Ratings.from_csr(coo)
    assert Ratings.from_csr(coo, duplicates="sum").matrix.toarray().tolist() == [[0.0, 3.0]]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_ratings_are_refused(bad):
    frame = pd.DataFrame({"userId": [1, 2, 3], "movieId": [5, 6, 5], "rating": [4.0, bad, 3.0]})
    with pytest.raises(NonFiniteError, match="user 2, item 6"):
        Ratings.from_frame(frame)
    csr = sp.csr_matrix(np.array([[1.0, bad]], dtype=np.float32))
    with pytest.raises(NonFiniteError):
        Ratings.from_csr(csr)
    with pytest.raises(NonFiniteError):
        Ratings.from_csr(csr.tocoo())


def test_missing_columns_and_ids_are_typed_errors():
    frame = pd.DataFrame({"userId": [1.0, np.nan], "movieId": [1, 2], "rating": [1.0, 2.0]})
    with pytest.raises(InvalidParameterError, match="missing id"):
        Ratings.from_frame(frame)
    with pytest.raises(InvalidParameterError, match="not found"):
        Ratings.from_frame(frame, rating="stars")
    with pytest.raises(InvalidParameterError, match="scipy sparse"):
        Ratings.from_csr(np.zeros((2, 2)))


def test_item_metadata_keys_and_summary():
    frame = pd.DataFrame(
        {"userId": [1, 1, 2, 3], "movieId": [10, 20, 20, 30], "rating": [4.0, 3.0, 5.0, 4.0]}
    )
    items = pd.DataFrame(
        {
            "movieId": [10, 20, 30, 40],
            "title": ["Same (2000)", "Same (2000)", "Other, The (1999)", "Unrated"],
            "genres": ["Drama", "Drama", "Comedy|Drama", "Horror"],
        }
    )
    ratings = Ratings.from_frame(frame, items=items, name="toy")
    assert ratings.item_keys == [
        ("Same (2000) [id 10]", "Drama"),
        ("Same (2000) [id 20]", "Drama"),
        ("Other, The (1999)", "Comedy|Drama"),
    ]
    assert ratings.item_titles == ["Same (2000)", "Same (2000)", "Other, The (1999)"]
    assert ratings.items["n_ratings"].tolist() == [1, 2, 1]
    s = ratings.summary()
    assert (s.n_users, s.n_items, s.n_ratings, s.n_items_metadata) == (3, 3, 4, 4)
    assert s.density == pytest.approx(4 / 9)
    assert s.histogram == {3.0: 1, 4.0: 2, 5.0: 1}
    assert s.rating_mean == pytest.approx(4.0)
    text = str(s)
    assert "ratings toy" in text and "of 4 in the metadata" in text
    assert s.to_dict()["histogram"] == {"3": 1, "4": 2, "5": 1}
    assert repr(ratings) == "<Ratings 'toy': 3 users x 3 items, 4 ratings>"


def test_fingerprint_follows_the_data():
    frame = pd.DataFrame({"userId": [1, 2], "movieId": [1, 1], "rating": [1.0, 2.0]})
    a = Ratings.from_frame(frame)
    b = Ratings.from_frame(frame.iloc[::-1])
    c = Ratings.from_frame(frame.assign(rating=[1.0, 2.5]))
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint != c.fingerprint


def test_item_counts_and_fingerprint_are_copy_free_and_exact():
    """Item counts are summed over slices of the index array (several slices
    here) and equal np.bincount; the fingerprint hashes the arrays' bytes
    exactly as tobytes() would (so existing cache keys stay valid)."""
    import hashlib

    from embspace._buffers import byte_view
    from embspace.ratings import _column_counts

    rng = np.random.default_rng(3)
    idx = rng.integers(0, 997, size=(1 << 20) * 3 + 17).astype(np.int32)
    np.testing.assert_array_equal(_column_counts(idx, 1000), np.bincount(idx, minlength=1000))
    assert _column_counts(idx[:0], 5).tolist() == [0] * 5
    for a in (
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.zeros((0, 3)),
        np.arange(20.0)[::2],
        np.asfortranarray(np.ones((3, 2))),
    ):
        assert hashlib.sha256(byte_view(a)).digest() == hashlib.sha256(a.tobytes()).digest()
    m = sp.random(50, 30, density=0.2, format="csr", random_state=2, dtype=np.float32)
    r = Ratings.from_csr(m)
    h = hashlib.sha256()
    for arr in r.csr_arrays():
        h.update(arr.tobytes())
    h.update(repr(r.shape).encode())
    h.update("\x1f".join(map(str, r.user_ids)).encode())
    h.update("\x1e".join(map(str, r.item_keys)).encode())
    assert r.fingerprint == h.hexdigest()
    assert r.items["n_ratings"].tolist() == np.diff(m.tocsc().indptr).tolist()


def test_the_csr_arrays_are_built_once_per_orientation() -> None:
    """Every fit on one Ratings (the runs of a sweep) shares its CSR arrays and
    its transpose: they are built on first use and kept."""
    m = sp.random(60, 40, density=0.2, format="csr", random_state=5, dtype=np.float32)
    r = Ratings.from_csr(m)
    for by in ("user", "item"):
        first = r.csr_arrays(by)
        again = r.csr_arrays(by)
        assert all(a is b for a, b in zip(first, again, strict=True))
    assert r.item_matrix is r.item_matrix
    _same_csr(*r.csr_arrays("item"), m.T.tocsr())


def test_the_parallel_transpose_is_the_same_for_any_thread_count() -> None:
    # more than 2 x 65536 values: the Rust core splits the rows between threads
    m = sp.random(4000, 900, density=0.06, format="csr", random_state=6, dtype=np.float32)
    m.data += 1.0
    parts = (m.indptr.astype(np.int64), m.indices.astype(np.int32), m.data)
    want = m.T.tocsr()
    for threads in (1, 2, 3):
        _same_csr(*_core.csr_transpose(4000, 900, *parts, num_threads=threads), want)
