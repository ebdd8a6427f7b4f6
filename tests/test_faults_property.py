"""Property-based fault tests (hypothesis): the table readers, ``Ratings``,
``Embeddings.save/load`` and the run cache, the CSR builder and WALS on random
small inputs.

Every input either gives the result an independent reference computes (a
dict of the table's cells, numpy's loss formula, the values that went in) or
raises an error of :mod:`embspace.errors`; any other exception, and any
warning other than embspace's own, fails. The examples are derandomized (the
same on every run) and few, so the module stays fast.
"""

from __future__ import annotations

import gzip
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from embspace import WALS, Embeddings, Ratings
from embspace.cache import EmbeddingCache
from embspace.datasets import load_ratings
from embspace.errors import (
    DuplicateEntryError,
    EmbspaceError,
    EmbspaceWarning,
    InvalidParameterError,
    NonFiniteError,
    NumericalError,
)
from embspace.factorization.wals import _first_rise
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from wals_helpers import loss_terms

FAST = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


def _typed_only(fn, *args, **kwargs):
    """``fn(...)``, or None when it raises an embspace error; any other
    exception propagates (and fails the test), as does any warning that is not
    embspace's."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", EmbspaceWarning)
        try:
            return fn(*args, **kwargs)
        except EmbspaceError:
            return None


def _object_array(values) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


# ----------------------------------------------------------------- strategies
@st.composite
def int_ids(draw, dtype, n):
    info = np.iinfo(dtype)
    values = draw(st.lists(st.integers(int(info.min), int(info.max)), min_size=n, max_size=n))
    return np.array(values, dtype=dtype)


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyzé_", min_size=1, max_size=6)


@st.composite
def id_column(draw, n):
    """``(ids, kind)``: ``n`` ids of one kind (every integer dtype, str,
    tuples), or of mixed kinds (``"mixed"``: to be refused)."""
    kind = draw(st.sampled_from(["int", "str", "tuple", "mixed"]))
    if kind == "int":
        return draw(int_ids(draw(st.sampled_from(INT_DTYPES)), n)), kind
    if kind == "str":
        return _object_array(draw(st.lists(names, min_size=n, max_size=n))), kind
    if kind == "tuple":
        pairs = st.tuples(names, st.integers(-5, 5))
        return _object_array(draw(st.lists(pairs, min_size=n, max_size=n))), kind
    values = draw(st.lists(st.one_of(names, st.integers(0, 5)), min_size=n, max_size=n))
    return _object_array(values), kind


def _mixed(ids: np.ndarray) -> bool:
    return len({type(x) for x in ids}) > 1


# ----------------------------------------------------------------- Ratings
@FAST
@given(data=st.data())
def test_ratings_from_frames_of_every_id_type(data):
    n = data.draw(st.integers(1, 12), label="n")
    users, ukind = data.draw(id_column(n), label="users")
    items, ikind = data.draw(id_column(n), label="items")
    values = np.array(
        data.draw(st.lists(st.floats(-1e6, 1e6, width=32), min_size=n, max_size=n)),
        dtype=np.float64,
    )
    frame = pd.DataFrame({"userId": users, "movieId": items, "rating": values})
    ratings = _typed_only(Ratings.from_frame, frame, duplicates="last")
    refused = (ukind == "mixed" and _mixed(users)) or (ikind == "mixed" and _mixed(items))
    if refused:
        assert ratings is None
        with pytest.raises(InvalidParameterError, match="mixes id types"):
            Ratings.from_frame(frame, duplicates="last")
        return
    assert ratings is not None
    # the reference: a dict of cells, the last value of a repeated pair winning
    cells = {}
    for u, i, v in zip(users.tolist(), items.tolist(), values, strict=True):
        cells[(u, i)] = np.float32(v)
    assert ratings.user_keys == sorted({u for u, _ in cells})
    assert ratings.item_keys == sorted({i for _, i in cells})
    if ukind == "int":
        assert ratings.user_ids.dtype == users.dtype
    dense = ratings.matrix.toarray()
    assert int((ratings.matrix.toarray() != 0).sum()) <= len(cells) == ratings.n_ratings
    for (u, i), v in cells.items():
        assert dense[ratings.user_keys.index(u), ratings.item_keys.index(i)] == v


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda t: t.__name__)
@settings(FAST, max_examples=25)
@given(data=st.data())
def test_integer_ids_of_every_width(dtype, data):
    n = data.draw(st.integers(1, 10))
    users = data.draw(int_ids(dtype, n))
    items = data.draw(int_ids(dtype, n))
    values = np.arange(1, n + 1, dtype=np.float64)
    ratings = Ratings.from_frame(
        pd.DataFrame({"userId": users, "movieId": items, "rating": values}), duplicates="last"
    )
    cells = {(int(u), int(i)): v for u, i, v in zip(users, items, values, strict=True)}
    assert ratings.user_ids.dtype == dtype and ratings.item_ids.dtype == dtype
    assert ratings.user_keys == sorted({u for u, _ in cells})
    assert ratings.item_keys == sorted({i for _, i in cells})
    dense = ratings.matrix.toarray()
    for (u, i), v in cells.items():
        assert dense[ratings.user_keys.index(u), ratings.item_keys.index(i)] == v


@FAST
@given(data=st.data())
def test_the_fingerprint_follows_keys_and_their_types(data):
    n = data.draw(st.integers(1, 6))
    ints = data.draw(st.lists(st.integers(0, 9), min_size=n, max_size=n, unique=True))
    frame = pd.DataFrame({"userId": ints, "movieId": [0] * n, "rating": [1.0] * n})
    as_str = frame.assign(userId=_object_array([str(u) for u in ints]))
    as_float = frame.assign(userId=[float(u) for u in ints])
    prints = [Ratings.from_frame(f).fingerprint for f in (frame, as_str, as_float)]
    assert len(set(prints)) == 3
    shuffled = frame.sample(frac=1.0, random_state=data.draw(st.integers(0, 99)))
    assert Ratings.from_frame(shuffled).fingerprint == prints[0]  # same data, same print


# ----------------------------------------------------------------- table readers
SEPARATORS = {",": "csv", "\t": "tsv", ";": "csv", "|": "txt", "::": "dat"}


@FAST
@given(data=st.data())
def test_table_files_round_trip(data):
    n = data.draw(st.integers(1, 15))
    users = data.draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n))
    item_names = st.text(alphabet="abcxyz", min_size=1, max_size=4).map(lambda s: "i" + s)
    items = data.draw(st.lists(item_names, min_size=n, max_size=n))
    values = data.draw(st.lists(st.sampled_from([0.5, 1.0, 2.5, 4.0, 5.0]), min_size=n, max_size=n))
    sep = data.draw(st.sampled_from(sorted(SEPARATORS)))
    header = data.draw(st.booleans())
    compress = data.draw(st.booleans())
    lines = [sep.join(["user", "item", "rating"])] if header else []
    lines += [f"{u}{sep}{i}{sep}{v}" for u, i, v in zip(users, items, values, strict=True)]
    text = "\n".join(lines) + "\n"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"r.{SEPARATORS[sep]}"
        if compress:
            path = path.with_name(path.name + ".gz")
            path.write_bytes(gzip.compress(text.encode()))
        else:
            path.write_text(text)
        ratings = _typed_only(load_ratings, path, duplicates="last")
    assert ratings is not None, text
    cells = {(u, i): np.float32(v) for u, i, v in zip(users, items, values, strict=True)}
    assert ratings.user_keys == sorted({u for u, _ in cells})
    assert ratings.item_keys == sorted({i for _, i in cells})
    dense = ratings.matrix.toarray()
    for (u, i), v in cells.items():
        assert dense[ratings.user_keys.index(u), ratings.item_keys.index(i)] == v


@FAST
@given(raw=st.binary(max_size=300), suffix=st.sampled_from([".csv", ".tsv", ".gz", ".parquet"]))
def test_arbitrary_bytes_are_read_or_refused_with_a_typed_error(raw, suffix):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"junk{suffix}"
        path.write_bytes(raw)
        _typed_only(load_ratings, path)


@FAST
@given(
    sep=st.one_of(st.just(""), st.integers(), st.none(), st.text(max_size=3)),
    encoding=st.one_of(st.none(), st.sampled_from(["utf-8", "latin-1", "nope", ""]), st.integers()),
)
def test_reader_options_are_used_or_refused_with_a_typed_error(sep, encoding):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "r.csv"
        path.write_text("user,item,rating\n1,a,3\n2,b,4\n")
        _typed_only(load_ratings, path, sep=sep, encoding=encoding)


# ----------------------------------------------------------------- Embeddings files
finite = st.floats(-(2.0**100), 2.0**100, allow_nan=False, width=32)
plain_keys = st.one_of(
    st.integers(-(2**70), 2**70),
    st.text(max_size=8),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.tuples(st.text(max_size=4), st.integers(-3, 3)),
)


@st.composite
def ids_array(draw, n):
    kind = draw(st.sampled_from(["int", "float", "bool", "str", "object-str", "object-tuple"]))
    if kind == "int":
        return draw(int_ids(draw(st.sampled_from(INT_DTYPES)), n))
    if kind == "float":
        return draw(hnp.arrays(np.float64, n, elements=st.floats(allow_nan=False)))
    if kind == "bool":
        return draw(hnp.arrays(np.bool_, n))
    words = st.lists(names, min_size=n, max_size=n)
    if kind == "str":
        return np.array(draw(words), dtype=str)
    if kind == "object-str":
        return _object_array(draw(words))
    return _object_array(draw(st.lists(st.tuples(names, st.integers()), min_size=n, max_size=n)))


def _same_ids(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return (
        a.dtype == b.dtype
        and a.tolist() == b.tolist()
        and all(type(x) is type(y) for x, y in zip(a.tolist(), b.tolist(), strict=True))
    )


def _same(a: Embeddings, b: Embeddings) -> bool:
    return (
        a.keys == b.keys
        and [type(k) for k in a.keys] == [type(k) for k in b.keys]
        and np.array_equal(a.vectors, b.vectors)
        and _same_ids(a.ids, b.ids)
        and a.metadata == b.metadata
    )


@FAST
@given(data=st.data())
def test_embeddings_round_trip_through_save_and_the_cache(data):
    keys = data.draw(st.lists(plain_keys, min_size=1, max_size=8, unique=True))
    n = len(keys)
    d = data.draw(st.integers(1, 4))
    vectors = data.draw(hnp.arrays(np.float32, (n, d), elements=finite))
    ids = data.draw(st.one_of(st.none(), ids_array(n)))
    meta = data.draw(st.dictionaries(names, st.one_of(st.integers(), st.text(max_size=5))))
    emb = Embeddings(keys, vectors, ids=ids, metadata=meta)
    with tempfile.TemporaryDirectory() as folder:
        back = Embeddings.load(emb.save(Path(folder) / "e.npz"))
        assert _same(emb, back)
        cache = EmbeddingCache(Path(folder) / "cache")
        key = cache.key(Ratings.from_csr(sp.identity(2, format="csr")), WALS(), 0)
        assert cache.put(key, emb, emb) is not None
        users, items = cache.get_pair(key)
        assert _same(emb, users) and _same(emb, items)


@FAST
@given(
    keys=st.lists(
        st.one_of(st.binary(min_size=1, max_size=3), st.integers()),
        min_size=1,
        max_size=4,
        unique=True,
    )
)
def test_keys_that_cannot_be_stored_are_refused_before_writing(keys):
    emb = Embeddings(keys, np.ones((len(keys), 2)))
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "e.npz"
        if any(isinstance(k, bytes) for k in keys):
            with pytest.raises(InvalidParameterError, match="cannot be saved"):
                emb.save(target)
            assert list(Path(folder).iterdir()) == []
        else:
            assert Embeddings.load(emb.save(target)).keys == keys


# ----------------------------------------------------------------- CSR builder
POLICIES = ["error", "first", "last", "sum", "mean", "max"]


@FAST
@given(data=st.data())
def test_the_csr_builder_against_a_dict_of_cells(data):
    n_rows = data.draw(st.integers(1, 6))
    n_cols = data.draw(st.integers(1, 6))
    nnz = data.draw(st.integers(0, 12))
    rows = data.draw(st.lists(st.integers(0, n_rows - 1), min_size=nnz, max_size=nnz))
    cols = data.draw(st.lists(st.integers(0, n_cols - 1), min_size=nnz, max_size=nnz))
    special = st.sampled_from([np.nan, np.inf, -np.inf, 3e38, 1e39])
    values = data.draw(
        st.lists(st.one_of(st.floats(-100, 100, width=32), special), min_size=nnz, max_size=nnz)
    )
    policy = data.draw(st.sampled_from(POLICIES))
    coo = sp.coo_matrix((np.array(values, dtype=np.float64), (rows, cols)), shape=(n_rows, n_cols))
    ratings = _typed_only(Ratings.from_csr, coo, duplicates=policy)
    # the reference: the cells in input order, combined in float32 arithmetic
    # as the policies are documented (sum and mean accumulate in that order)
    with np.errstate(over="ignore", invalid="ignore"):
        as32 = np.array(values, dtype=np.float64).astype(np.float32)
    if not np.isfinite(as32).all():
        assert ratings is None
        with pytest.raises(NonFiniteError):
            Ratings.from_csr(coo, duplicates=policy)
        return
    groups: dict[tuple[int, int], list[np.float32]] = {}
    for r, c, v in zip(rows, cols, as32, strict=True):
        groups.setdefault((r, c), []).append(v)
    if policy == "error" and any(len(g) > 1 for g in groups.values()):
        assert ratings is None
        with pytest.raises(DuplicateEntryError):
            Ratings.from_csr(coo, duplicates=policy)
        return
    want = {cell: _combine(g, policy) for cell, g in groups.items()}
    if not all(np.isfinite(v) for v in want.values()):
        assert ratings is None  # a float32 overflow of a sum is refused, never stored
        with pytest.raises(NonFiniteError, match="overflows float32"):
            Ratings.from_csr(coo, duplicates=policy)
        return
    m = ratings.matrix
    assert m.has_canonical_format and m.dtype == np.float32
    got = m.tocoo()
    cells = {(int(r), int(c)): v for r, c, v in zip(got.row, got.col, got.data, strict=True)}
    assert cells == want


def _combine(group: list[np.float32], policy: str) -> np.float32:
    with np.errstate(over="ignore", invalid="ignore"):
        last = group[0]
        for run, v in enumerate(group[1:], 2):
            if policy == "last":
                last = v
            elif policy == "sum":
                last = np.float32(last + v)
            elif policy == "mean":
                last = np.float32(last + np.float32(np.float32(v - last) / np.float32(run)))
            elif policy == "max":
                last = max(last, v)
        return last


# ----------------------------------------------------------------- WALS
@FAST
@given(data=st.data())
def test_wals_on_random_small_matrices(data):
    n = data.draw(st.integers(2, 7))
    m = data.draw(st.integers(2, 7))
    mask = data.draw(hnp.arrays(np.bool_, (n, m)))
    if not mask.any():
        mask[0, 0] = True
    values = data.draw(
        hnp.arrays(np.float64, (n, m), elements=st.sampled_from([0.5, 1.0, 3.0, 5.0, 1e4]))
    )
    matrix = sp.csr_matrix(np.where(mask, values, 0.0))
    params = {
        "factors": data.draw(st.integers(1, min(n, m))),
        "regularization": data.draw(st.sampled_from([0.0, 0.01, 0.5])),
        "unobserved_weight": data.draw(st.sampled_from([0.0, 0.05])),
        "solver": data.draw(st.sampled_from(["cholesky", "cg"])),
        "iterations": data.draw(st.integers(1, 4)),
        "regularization_scaling": data.draw(st.sampled_from(["none", "count"])),
        "random_state": data.draw(st.integers(0, 3)),
    }
    model = WALS(**params)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            fitted = model.fit(matrix, progress=False)
        except EmbspaceError:
            fitted = None
    assert all(issubclass(w.category, EmbspaceWarning) for w in seen), [str(w) for w in seen]
    if fitted is None:
        # the only typed failure of valid parameters: a singular system, which
        # needs zero regularization
        with pytest.raises(NumericalError, match="singular"):
            WALS(**params).fit(matrix, progress=False)
        assert params["regularization"] == 0.0
        return
    u, v = model.user_factors_, model.item_factors_
    assert np.isfinite(u).all() and np.isfinite(v).all()
    # the reported loss is the loss formula evaluated on the returned factors
    ratings = Ratings.from_csr(matrix)
    from embspace.factorization.weights import col_weights

    cw = col_weights("log", np.diff(ratings.item_matrix.indptr), exponent=0.08, factor=130.0)
    want = loss_terms(
        np,
        *ratings.csr_arrays(),
        u,
        v,
        unobserved_weight=params["unobserved_weight"],
        regularization=params["regularization"],
        col_weights=cw,
        regularization_scaling=params["regularization_scaling"],
    ).total
    scale = max(1.0, float((matrix.data.astype(np.float64) ** 2).sum()))
    assert model.loss_ == pytest.approx(want, rel=1e-4, abs=1e-6 * scale)
    # a rise of the loss is never silent
    rose = _first_rise(model.loss_history_) is not None
    assert rose == any(issubclass(w.category, EmbspaceWarning) for w in seen)
