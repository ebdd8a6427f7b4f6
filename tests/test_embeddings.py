"""Embeddings: validation, builders, atomic .npz round trip, alignment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from embspace import Embeddings, align
from embspace.errors import (
    DatasetFormatError,
    DuplicateEntryError,
    EntityNotFoundError,
    InvalidParameterError,
    NonFiniteError,
    NoSharedKeysError,
    ShapeMismatchError,
)

KEYS = [("Toy Story (1995)", "Animation|Comedy"), ("Heat (1995)", "Action"), ("Casino (1995)", "")]


def _emb(d: int = 4, seed: int = 0) -> Embeddings:
    rng = np.random.default_rng(seed)
    return Embeddings(
        KEYS,
        rng.standard_normal((3, d)),
        ids=np.array([1, 6, 16]),
        metadata={"estimator": "WALS", "params": {"factors": d, "w0": 0.01}, "seed": seed},
    )


def test_basics_and_storage():
    e = _emb()
    assert (e.n, e.d, e.shape, len(e)) == (3, 4, (3, 4), 3)
    assert e.vectors.dtype == np.float32 and e.vectors.flags.c_contiguous
    assert e.index_of(("Heat (1995)", "Action")) == 1
    np.testing.assert_array_equal(e[KEYS[2]], e.vectors[2])
    assert e.titles == ["Toy Story (1995)", "Heat (1995)", "Casino (1995)"]
    assert KEYS[0] in e and ("nope", "") not in e and [] not in e
    with pytest.raises(EntityNotFoundError, match="not among the 3"):
        e.index_of(("nope", ""))
    sub = e.subset([KEYS[2], KEYS[0]])
    assert sub.keys == [KEYS[2], KEYS[0]]
    np.testing.assert_array_equal(sub.vectors, e.vectors[[2, 0]])
    np.testing.assert_array_equal(sub.ids, [16, 1])
    assert repr(e) == "<Embeddings: 3 x 4, WALS>"


@pytest.mark.parametrize(
    ("vectors", "error", "message"),
    [
        (np.ones(3), ShapeMismatchError, "2-D"),
        (np.ones((3, 2, 2)), ShapeMismatchError, "2-D"),
        (np.ones((2, 4)), ShapeMismatchError, "3 keys for 2 rows"),
        (np.array([[1.0, np.nan]] * 3), NonFiniteError, "row 0"),
        (np.array([[1.0, 1.0], [1.0, 1.0], [np.inf, 0.0]]), NonFiniteError, "row 2"),
        (np.array([["a", "b"]] * 3), InvalidParameterError, "real numbers"),
        (np.ones((3, 2)) * 1j, InvalidParameterError, "real numbers"),
    ],
)
def test_validation(vectors, error, message):
    with pytest.raises(error, match=message):
        Embeddings(KEYS, vectors)


def test_keys_and_ids_validation():
    with pytest.raises(DuplicateEntryError, match="rows 0 and 2"):
        Embeddings(["a", "b", "a"], np.zeros((3, 2)))
    with pytest.raises(InvalidParameterError, match="not hashable"):
        Embeddings([["a"], "b", "c"], np.zeros((3, 2)))
    with pytest.raises(ShapeMismatchError, match="2 ids for 3 keys"):
        Embeddings(KEYS, np.zeros((3, 2)), ids=[1, 2])
    e = Embeddings(np.array([5, 6, 7]), np.zeros((3, 2)))
    assert e.keys == [5, 6, 7] and all(type(k) is int for k in e.keys)


def test_from_dict_and_from_frame():
    e = Embeddings.from_dict({"a": [1, 2], "b": [3, 4]}, metadata={"m": 1})
    assert e.keys == ["a", "b"] and e.metadata == {"m": 1}
    np.testing.assert_array_equal(e.vectors, [[1, 2], [3, 4]])
    with pytest.raises(ShapeMismatchError):
        Embeddings.from_dict({"a": [1, 2], "b": [3]})
    with pytest.raises(ShapeMismatchError, match="empty"):
        Embeddings.from_dict({})
    frame = pd.DataFrame(
        {"title": ["A", "B"], "genres": ["x", "y"], "f0": [1.0, 2.0], "f1": [3.0, 4.0]}
    )
    f = Embeddings.from_frame(frame, key=["title", "genres"])
    assert f.keys == [("A", "x"), ("B", "y")]
    np.testing.assert_array_equal(f.vectors, [[1, 3], [2, 4]])
    g = Embeddings.from_frame(frame.set_index("title"), columns=["f1"])
    assert g.keys == ["A", "B"] and g.d == 1
    with pytest.raises(InvalidParameterError, match="key column"):
        Embeddings.from_frame(frame, key="nope")
    with pytest.raises(ShapeMismatchError, match="no numeric"):
        Embeddings.from_frame(frame[["title", "genres"]], key="title")
    back = f.to_frame()
    assert list(back.index) == [("A", "x"), ("B", "y")]


def test_save_load_round_trip(tmp_path):
    e = _emb(d=5)
    path = e.save(tmp_path / "items")
    assert path == tmp_path / "items.npz"
    loaded = Embeddings.load(path)
    assert loaded.keys == KEYS and all(isinstance(k, tuple) for k in loaded.keys)
    np.testing.assert_array_equal(loaded.vectors, e.vectors)
    np.testing.assert_array_equal(loaded.ids, [1, 6, 16])
    assert loaded.metadata == e.metadata
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.npz"]
    # no pickle inside: a plain numpy load without pickles reads every array
    with np.load(path, allow_pickle=False) as z:
        assert set(z.files) == {"format", "vectors", "keys", "metadata", "ids"}


def test_save_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "e.npz"
    _emb(seed=1).save(target)
    before = target.read_bytes()

    def broken_savez(fh, **arrays):
        fh.write(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        _emb(seed=2).save(target)
    assert target.read_bytes() == before  # the old file is untouched
    with pytest.raises(OSError, match="disk full"):
        _emb().save(tmp_path / "new.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.npz"]  # no partial, no temp file
    with pytest.raises(InvalidParameterError, match="cannot be saved"):
        Embeddings([object(), 1, 2], np.zeros((3, 1))).save(tmp_path / "x.npz")


def test_loading_foreign_files_is_a_format_error(tmp_path):
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.arange(3))
    with pytest.raises(DatasetFormatError, match="not an embspace embeddings file"):
        Embeddings.load(foreign)
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(DatasetFormatError, match="cannot read"):
        Embeddings.load(text)
    with pytest.raises(DatasetFormatError):
        Embeddings.load(tmp_path / "missing.npz")


def test_align_on_partially_shared_keys():
    a = Embeddings(["w", "x", "y", "z"], np.arange(8).reshape(4, 2))
    b = Embeddings(["z", "q", "x"], np.arange(9).reshape(3, 3) * 10)
    a2, b2 = align(a, b)
    assert a2.keys == b2.keys == ["x", "z"]
    np.testing.assert_array_equal(a2.vectors, [[2, 3], [6, 7]])
    np.testing.assert_array_equal(b2.vectors, [[60, 70, 80], [0, 10, 20]])
    same_a, same_b = align(a, a)
    assert same_a is a and same_b is a
    with pytest.raises(NoSharedKeysError, match="share no key"):
        align(a, Embeddings(["m", "n"], np.zeros((2, 2))))


def test_keys_are_plain_python_values_whatever_their_container():
    """numpy scalars become Python values (inside tuples too), so a key from
    a DataFrame or an ids array finds the same row as the literal."""
    v = np.zeros((4, 2), dtype=np.float32)
    e = Embeddings([np.int64(7), (np.int32(1), "a"), ("x", (np.float64(0.5),)), "s"], v)
    assert e.keys == [7, (1, "a"), ("x", (0.5,)), "s"]
    assert [type(k) for k in e.keys[:2]] == [int, tuple] and type(e.keys[1][0]) is int
    assert e.index_of(7) == 0 and e.index_of((1, "a")) == 1
    # fast paths (all plain, all tuples of plain, a range) keep the keys as given
    assert Embeddings(range(4), v).keys == [0, 1, 2, 3]
    t = [("a", 1), ("b", 2), ("c", None), ("d", 2.5)]
    assert Embeddings(t, v).keys == t
    # a repeat is found after conversion: np.int64(3) and 3 are one key
    with pytest.raises(DuplicateEntryError, match="rows 1 and 3"):
        Embeddings(["a", np.int64(3), "b", 3], v)
    with pytest.raises(DuplicateEntryError, match="rows 0 and 2"):
        Embeddings([("a", 1), ("b", 1), (np.str_("a"), np.int8(1)), "z"], v)
