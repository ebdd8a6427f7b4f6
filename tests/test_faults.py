"""Regression tests of the fault battery: nothing lost, nothing silently wrong.

Each test pins one fault found against main (wrong keys after a save, wrapped
ids, colliding fingerprints, silent truncation, meaningless factors, raw
exceptions) to the typed behaviour the brief asks for.
"""

from __future__ import annotations

import hashlib
import warnings

import embspace
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from embspace import WALS, Embeddings, Ratings
from embspace._buffers import byte_view
from embspace._params import check_choice, check_int, check_number
from embspace._registry import DeviceRegistry
from embspace.cache import EmbeddingCache
from embspace.errors import (
    DatasetFormatError,
    EmbspaceWarning,
    InvalidParameterError,
    MissingFileError,
    NonFiniteError,
    NumericalError,
)
from embspace.factorization import wals as wals_module
from embspace.factorization.wals_cpu import CpuBackend


def _frame(users, items, ratings=None) -> pd.DataFrame:
    ratings = np.arange(1, len(users) + 1, dtype=np.float64) if ratings is None else ratings
    return pd.DataFrame({"userId": users, "movieId": items, "rating": ratings})


def _object_column(values) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


# ----------------------------------------------------------------- parameters
@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda a, b: embspace.compare(a, b, k="10"), "k"),
        (lambda a, b: embspace.compare(a, b, k="ten"), "k"),
        (lambda a, b: embspace.compare(a, b, measures="svcca", threshold="high"), "threshold"),
        (lambda a, b: embspace.compare(a, b, measures="neighbors", metric=3), "metric"),
        (lambda a, b: embspace.compare(a, b, measures="overlap_curve", max_k="5"), "k"),
        (lambda a, b: embspace.NeighborTable(a).neighbors(0, k="3"), "k"),
        (lambda a, b: embspace.NeighborTable(a, num_threads="2"), "num_threads"),
        (lambda a, b: embspace.measures.rsa(a.vectors, b.vectors, sample="5"), "sample"),
        (
            lambda a, b: embspace.measures.rsa(a.vectors, b.vectors, random_state="x"),
            "random_state",
        ),
        (lambda a, b: embspace.compare(a, b).bootstrap(level="high"), "level"),
        (lambda a, b: embspace.datasets.synthetic(preset="tiny", noise="0.1"), "noise"),
        (lambda a, b: embspace.datasets.synthetic(preset="tiny", seed="1"), "seed"),
    ],
)
def test_parameters_of_the_wrong_type_are_typed_errors_naming_them(call, name):
    rng = np.random.default_rng(0)
    a = Embeddings(range(30), rng.normal(size=(30, 4)))
    b = Embeddings(range(30), rng.normal(size=(30, 4)))
    with pytest.raises(InvalidParameterError, match=name):
        call(a, b)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda e: Embeddings(5, np.ones((2, 2))), "keys must be a sequence"),
        (lambda e: Embeddings([1, 2], np.ones((2, 2)), metadata=5), "metadata must be a dict"),
        (lambda e: Embeddings.from_dict(5), "mapping"),
        (lambda e: Embeddings.from_frame(5), "DataFrame"),
        (lambda e: embspace.align(1, 2), "two Embeddings"),
        (lambda e: embspace.compare(e, e, measures=5), "measures must be"),
        (lambda e: Ratings.from_csr(sp.identity(2, format="csr"), user_ids=5), "ids must be"),
        (lambda e: Embeddings.load(5), "path must be a file path"),
        (lambda e: e.save(None), "path must be a file path"),
        (lambda e: EmbeddingCache(5), "folder must be a file path"),
        (lambda e: embspace.measures.cka("x", "y"), "numeric"),
        (
            lambda e: Embeddings([1], np.ones((1, 1)), metadata={"a": object()}).save("m.npz"),
            "metadata",
        ),
    ],
)
def test_arguments_of_the_wrong_kind_are_typed_errors(call, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    e = Embeddings(range(5), np.arange(10.0).reshape(5, 2))
    with pytest.raises(InvalidParameterError, match=message):
        call(e)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "params",
    [
        {"factors": "3"},
        {"regularization": "0.1"},
        {"unobserved_weight": "high"},
        {"iterations": 2.0},
        {"cg_steps": True},
        {"col_weight_exponent": 1j},
        {"init_scale": "1"},
    ],
)
def test_wals_parameters_of_the_wrong_type(params):
    m = sp.random(12, 10, density=0.5, random_state=0, format="csr")
    with pytest.raises(InvalidParameterError, match=next(iter(params))):
        WALS(**params).fit(m, progress=False)


def test_the_shared_checks():
    assert check_int(np.int8(3), "n", minimum=1) == 3 and type(check_int(np.int8(3), "n")) is int
    for bad in ("3", 3.0, True, None, np.float64(3)):
        with pytest.raises(InvalidParameterError, match=r"n must be an integer, got .*\("):
            check_int(bad, "n")
    with pytest.raises(InvalidParameterError, match="n must be >= 1, got 0"):
        check_int(0, "n", minimum=1)
    with pytest.raises(InvalidParameterError, match="n must be <= 4, got 5"):
        check_int(5, "n", maximum=4)
    assert check_number(np.float32(0.5), "t", low=0.0, high=1.0) == 0.5
    assert check_number(2, "t") == 2.0
    for bad in ("0.5", True, 1j, None):
        with pytest.raises(InvalidParameterError, match="t must be a real number"):
            check_number(bad, "t")
    with pytest.raises(InvalidParameterError, match=r"t must lie in \(0, 1\], got 0"):
        check_number(0.0, "t", low=0.0, high=1.0, low_open=True)
    assert check_number(1.0, "t", low=0.0, high=1.0, low_open=True) == 1.0
    with pytest.raises(InvalidParameterError, match="t must be > 0"):
        check_number(-1, "t", low=0.0, low_open=True)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(NonFiniteError, match="finite") as info:
            check_number(bad, "t")
        assert isinstance(info.value, InvalidParameterError)
    assert check_choice("a", "m", ("a", "b")) == "a"
    with pytest.raises(InvalidParameterError, match="m must be one of 'a', 'b', got 3"):
        check_choice(3, "m", ("a", "b"))


# ----------------------------------------------------------------- WALS
def test_init_scale_zero_is_refused():
    m = sp.random(12, 10, density=0.5, random_state=0, format="csr")
    with pytest.raises(InvalidParameterError, match="init_scale must be > 0"):
        WALS(init_scale=0).fit(m, progress=False)
    with pytest.raises(InvalidParameterError, match="init_scale"):
        WALS(init_scale=0.0, solver="cg").fit(m, progress=False)
    assert WALS(factors=2, init_scale=1e-3, iterations=1).fit(m, progress=False).loss_ >= 0


def _sparse(n, m, density, seed, scale=1.0):
    rng = np.random.default_rng(seed)
    mat = sp.random(n, m, density=density, format="csr", random_state=rng)
    mat.data = np.ceil(mat.data * 5) * scale
    return mat


@pytest.mark.parametrize("solver", ["cholesky", "cg"])
def test_singular_systems_are_a_numerical_error_for_both_solvers(solver):
    # 60 x 40 at density 0.3 and k = 10: some rows have fewer ratings than
    # factors, so with regularization = unobserved_weight = 0 their normal
    # equations are singular (CG used to return finite but meaningless
    # factors whose loss grew by orders of magnitude)
    m = _sparse(60, 40, 0.3, 0)
    assert (np.diff(m.indptr) < 10).any()
    model = WALS(factors=10, regularization=0, unobserved_weight=0, solver=solver, random_state=0)
    with pytest.raises(NumericalError, match="singular"):
        model.fit(m, progress=False)


def test_the_array_module_cg_detects_singular_systems_too():
    # the rule of the Rust solver on numpy (as on a GPU): lambda = w0 = 0 and
    # rows with fewer ratings than factors are a NumericalError, as with the
    # batched Cholesky, never finite factors that mean nothing
    from wals_helpers import fit_wals_xp

    m = _sparse(60, 40, 0.3, 0)
    t = m.T.tocsr()
    rng = np.random.default_rng(0)
    u0 = rng.normal(size=(60, 10)).astype(np.float32)
    v0 = rng.normal(size=(40, 10)).astype(np.float32)
    users = (m.indptr, m.indices, m.data.astype(np.float32))
    items = (t.indptr, t.indices, t.data.astype(np.float32))
    for solver, message in (("cholesky", "positive definite"), ("cg", "singular")):
        with pytest.raises(NumericalError, match=message):
            fit_wals_xp(
                users,
                items,
                u0,
                v0,
                unobserved_weight=0.0,
                regularization=0.0,
                iterations=1,
                solver=solver,
            )


def test_the_array_module_cg_reports_a_direction_without_curvature():
    from embspace.gpu.wals_xp import SINGULAR_RTOL, _cg

    # A = diag(1, 0), b = (1, 1), x0 = 0: the second direction (0, 2) has no
    # curvature; with a floor (zero regularization) that is a singular system
    a = np.array([[[1.0, 0.0], [0.0, 0.0]]])
    b = np.array([[1.0, 1.0]])
    with pytest.raises(NumericalError, match="singular"):
        _cg(np, a, b, np.zeros((1, 2)), 5, SINGULAR_RTOL * np.array([0.5]))
    np.testing.assert_array_equal(_cg(np, a, b, np.zeros((1, 2)), 5), [[2.0, 2.0]])
    spd = np.array([[[4.0, 1.0], [1.0, 3.0]]])
    x = _cg(np, spd, np.array([[1.0, 2.0]]), np.zeros((1, 2)), 2, np.array([1e-3]))
    np.testing.assert_allclose(x, [[1 / 11, 7 / 11]], rtol=1e-12)


def test_cg_without_regularization_solves_full_rank_problems():
    # every row and column with at least k ratings, w0 > 0: no singular row,
    # and CG (enough steps) reaches the exact solver's loss
    m = _sparse(30, 20, 0.9, 1)
    losses = {}
    for solver in ("cholesky", "cg"):
        model = WALS(
            factors=3,
            regularization=0,
            unobserved_weight=0.1,
            solver=solver,
            cg_steps=12,
            iterations=5,
            random_state=0,
        )
        losses[solver] = model.fit(m, progress=False).loss_
    assert losses["cg"] == pytest.approx(losses["cholesky"], rel=1e-3)


class _RisingBackend(CpuBackend):
    """The CPU backend with the loss of one half-sweep inflated (a rise)."""

    calls = 0

    def half_sweep_total(self, side):
        total = super().half_sweep_total(side)
        type(self).calls += 1
        if type(self).calls == 4:  # the items half-sweep of iteration 2
            return total * 3 + 1.0
        return total


def test_a_loss_rise_is_reported_once(monkeypatch):
    m = _sparse(30, 20, 0.5, 2)
    only = DeviceRegistry("WALS backend", {"cpu": _RisingBackend})
    monkeypatch.setattr(wals_module, "WALS_BACKENDS", only)
    _RisingBackend.calls = 0
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        WALS(factors=3, iterations=4, solver="cg", random_state=0).fit(m, progress=False)
    rises = [w for w in seen if issubclass(w.category, EmbspaceWarning)]
    assert len(rises) == 1
    assert "items half-sweep of iteration 2" in str(rises[0].message)
    assert "solver='cholesky'" in str(rises[0].message)


def test_no_rise_warning_on_an_ordinary_fit(tiny):
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmbspaceWarning)
        for solver in ("cholesky", "cg"):
            WALS(factors=8, iterations=6, solver=solver, random_state=0).fit(tiny, progress=False)


def test_large_ratings_never_rise_silently():
    # ratings around 1e6 with no unobserved weight: float32 rounding on rows
    # with condition numbers near 1e13 can make CG raise the loss; whatever
    # the instruction set does, a rise past the tolerance is always warned
    rng = np.random.default_rng(23)
    m = sp.random(6, 43, density=0.6, format="csr", random_state=rng)
    m.data = 1e6 + rng.normal(0, 1e3, m.nnz)
    for solver in ("cg", "cholesky"):
        model = WALS(
            factors=2, iterations=30, solver=solver, unobserved_weight=0.0, random_state=23
        )
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            model.fit(m, progress=False)
        warned = any(issubclass(w.category, EmbspaceWarning) for w in seen)
        assert warned == (wals_module._first_rise(model.loss_history_) is not None)
        h = np.asarray(model.loss_history_)
        rose = (np.diff(h) > wals_module._RISE_RTOL * h[:-1] + wals_module._RISE_ATOL * h[0]).any()
        assert warned == rose


# ----------------------------------------------------------------- ratings ids
@pytest.mark.parametrize(
    ("dtype", "ids"),
    [
        (np.int8, [-100, 0, 100]),
        (np.int8, [-128, 127, 5]),
        (np.int16, [30000, -30000, 7]),
        (np.uint8, [255, 0, 3]),
        (np.uint16, [65535, 1, 2]),
        (np.int32, [2**31 - 1, -(2**31), 0]),
        (np.uint64, [2**64 - 1, 2**64 - 2, 2**63]),
        (np.int64, [2**63 - 1, 2**63 - 2, 2**63 - 3]),
    ],
)
def test_small_and_extreme_integer_ids_are_kept(dtype, ids):
    frame = _frame(np.array(ids, dtype=dtype), np.array(ids[::-1], dtype=dtype))
    r = Ratings.from_frame(frame)
    want = sorted(ids)
    assert r.user_ids.dtype == dtype and r.item_ids.dtype == dtype
    assert r.user_keys == want and r.item_keys == want
    dense = r.matrix.toarray()
    for u, i, value in zip(ids, ids[::-1], frame["rating"], strict=True):
        assert dense[want.index(u), want.index(i)] == value


def test_fingerprint_tells_key_types_apart():
    as_int = Ratings.from_frame(_frame([0, 1, 2], [5, 6, 7]))
    as_str = Ratings.from_frame(_frame(["0", "1", "2"], [5, 6, 7]))
    as_float = Ratings.from_frame(_frame([0.0, 1.0, 2.0], [5, 6, 7]))
    items_str = Ratings.from_frame(_frame([0, 1, 2], ["5", "6", "7"]))
    prints = {r.fingerprint for r in (as_int, as_str, as_float, items_str)}
    assert len(prints) == 4
    # a separator inside a string id no longer makes two id lists collide
    a = Ratings.from_frame(_frame(["a\x1fb", "c"], [1, 2]))
    b = Ratings.from_frame(_frame(["a", "b\x1fc"], [1, 2]))
    assert a.matrix.nnz == b.matrix.nnz and a.fingerprint != b.fingerprint


def _old_fingerprint(r: Ratings) -> str:
    """The fingerprint formula before key types counted (ids by ``str``)."""
    h = hashlib.sha256()
    for arr in r.csr_arrays():
        h.update(byte_view(arr))
    h.update(repr(r.shape).encode())
    h.update("\x1f".join(map(str, r.user_ids)).encode())
    h.update("\x1e".join(map(str, r.item_keys)).encode())
    return h.hexdigest()


def test_fingerprints_of_integer_and_title_keyed_data_are_unchanged(tiny):
    assert tiny.fingerprint == _old_fingerprint(tiny)  # int users, (title, genres) items
    plain = Ratings.from_frame(_frame([10, 20, 30], [1, 2, 3]))
    assert plain.fingerprint == _old_fingerprint(plain)


def test_a_cache_hit_never_changes_the_key_type(tmp_path):
    cache = EmbeddingCache(tmp_path)
    as_int = Ratings.from_frame(_frame([0, 1, 2, 0], [5, 6, 7, 7]))
    as_str = Ratings.from_frame(_frame(["0", "1", "2", "0"], [5, 6, 7, 7]))
    model = WALS(factors=2, iterations=2, random_state=0)
    model.fit(as_int, progress=False)
    cache.put(cache.key(as_int, model, 0), model.user_embeddings_, model.item_embeddings_)
    assert cache.get(cache.key(as_str, model, 0, "users")) is None
    hit = cache.get(cache.key(as_int, model, 0, "users"))
    assert hit.keys == [0, 1, 2]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([1, "a", 2], "mixes id types"),
        ([1, 1.0, True], "mixes id types"),  # equal values that would merge into one id
        ([(1, 2), (1, "a"), (3, 4)], "mixes id types"),
        ([[1], [2], [3]], "unhashable id"),
        ([{"a": 1}, 2, 3], "unhashable id"),
        (["a", None, "b"], "missing id"),
    ],
)
def test_ids_that_cannot_be_keys_are_refused(values, message):
    with pytest.raises(InvalidParameterError, match=message):
        Ratings.from_frame(_frame(_object_column(values), [1, 2, 3]))
    with pytest.raises(InvalidParameterError, match=message):
        Ratings.from_frame(_frame([1, 2, 3], _object_column(values)))
    if message != "missing id":
        with pytest.raises(InvalidParameterError, match=message):
            Ratings.from_csr(sp.identity(3, format="csr"), user_ids=_object_column(values))


def test_tuple_ids_of_one_type_are_keys():
    r = Ratings.from_frame(_frame(_object_column([(1, "x"), (0, "y"), (1, "x")]), [1, 2, 3]))
    assert r.user_keys == [(0, "y"), (1, "x")]
    r = Ratings.from_csr(sp.identity(2, format="csr"), user_ids=[("a", 1), ("b", 2)])
    assert r.user_keys == [("a", 1), ("b", 2)]


def test_complex_ratings_are_refused():
    with pytest.raises(InvalidParameterError, match="complex"):
        Ratings.from_frame(_frame([1, 2], [1, 2], np.array([1 + 2j, 3])))
    with pytest.raises(InvalidParameterError, match="complex"):
        Ratings.from_csr(sp.csr_matrix(np.array([[1 + 1j, 0], [0, 2]])))
    with pytest.raises(InvalidParameterError, match="complex"):
        Ratings(sp.csr_matrix(np.array([[1j, 0], [0, 2]])), [0, 1], [0, 1])


def test_a_non_table_is_a_typed_error():
    with pytest.raises(InvalidParameterError, match="DataFrame"):
        Ratings.from_frame([(1, 2, 3.0)])


# ----------------------------------------------------------------- embeddings files
def _trained_on_named_users():
    frame = pd.DataFrame(
        {
            "user": ["alice", "bob", "carol", "dave"] * 3,
            "isbn": ["0-19-852663-6", "0-14-044913-8", "3-16-148410-0"] * 4,
            "rating": np.arange(12.0) % 5 + 1,
        }
    )
    ratings = embspace.datasets.load_ratings(frame, user="user", item="isbn")
    model = WALS(factors=2, iterations=2, random_state=0).fit(ratings, progress=False)
    return ratings, model


def test_string_ids_round_trip_through_save_and_the_cache_alike(tmp_path):
    ratings, model = _trained_on_named_users()
    cache = EmbeddingCache(tmp_path / "cache")
    cache.put(cache.key(ratings, model, 0), model.user_embeddings_, model.item_embeddings_)
    hit_users, hit_items = cache.get_pair(cache.key(ratings, model, 0))
    for emb, hit in ((model.user_embeddings_, hit_users), (model.item_embeddings_, hit_items)):
        loaded = Embeddings.load(emb.save(tmp_path / "side.npz"))
        for back in (loaded, hit):
            assert back.keys == emb.keys
            assert back.ids.dtype == emb.ids.dtype
            assert back.ids.tolist() == emb.ids.tolist()
            assert [type(x) for x in back.ids] == [type(x) for x in emb.ids]
            np.testing.assert_array_equal(back.vectors, emb.vectors)


def _valid_file(tmp_path):
    emb = Embeddings(["a", "b", "c"], np.arange(6.0).reshape(3, 2), ids=np.array([7, 8, 9]))
    return emb.save(tmp_path / "good.npz")


@pytest.mark.parametrize(
    "damage",
    [
        "empty",
        "truncated",
        "half",
        "bitflip",
        "npy",
        "text",
        "keys-dict",
        "keys-number",
        "metadata-list",
        "keys-short",
        "keys-repeated",
        "vectors-text",
        "vectors-1d",
        "ids-wrong-length",
    ],
)
def test_damaged_embeddings_files_are_format_errors(tmp_path, damage):
    good = _valid_file(tmp_path)
    data = good.read_bytes()
    bad = tmp_path / "bad.npz"
    marker = np.array("embspace.embeddings/1")
    members = {
        "format": marker,
        "vectors": np.ones((2, 2)),
        "keys": np.array('["a", "b"]'),
        "metadata": np.array("{}"),
    }
    if damage == "empty":
        bad.write_bytes(b"")
    elif damage == "truncated":
        bad.write_bytes(data[: len(data) - 30])
    elif damage == "half":
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "bitflip":
        flipped = bytearray(data)
        start = data.find(b"\x93NUMPY")  # inside the first member's stored bytes
        for at in range(start, min(len(data), start + 200), 7):
            flipped[at] ^= 0x10
        bad.write_bytes(bytes(flipped))
    elif damage == "npy":
        with open(bad, "wb") as fh:
            np.save(fh, np.arange(4.0))
    elif damage == "text":
        bad.write_text("keys,vectors\n")
    else:
        edits = {
            "keys-dict": {"keys": np.array('{"a": 1}')},
            "keys-number": {"keys": np.array("3")},
            "metadata-list": {"metadata": np.array("[1, 2]")},
            "keys-short": {"keys": np.array('["a"]')},
            "keys-repeated": {"keys": np.array('["a", "a"]')},
            "vectors-text": {"vectors": np.array(["x", "y"])},
            "vectors-1d": {"vectors": np.ones(2)},
            "ids-wrong-length": {"ids": np.arange(5)},
        }[damage]
        np.savez(bad, **{**members, **edits})
    with pytest.raises(DatasetFormatError, match=r"bad\.npz"):
        Embeddings.load(bad)


def test_a_missing_embeddings_file_stays_a_missing_file(tmp_path):
    with pytest.raises(MissingFileError):
        Embeddings.load(tmp_path / "absent.npz")
    with pytest.raises(MissingFileError):
        Embeddings.load(tmp_path)  # a folder
