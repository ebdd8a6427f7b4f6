"""Embeddings files in and out (embspace.embeddings_io): every format round-trips
keys, order and float32 vectors exactly; hand-made files of each format read as
written; broken files are typed errors naming the file; array-likes and gensim
KeyedVectors come in."""

from __future__ import annotations

import errno
import gzip
import re
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from embspace import Embeddings
from embspace.embeddings_io import (
    FORMATS,
    EmbeddingsFormat,
    format_for_reading,
    read_keys,
    register_format,
    write_embeddings,
    write_keys,
)
from embspace.errors import (
    DatasetFormatError,
    EmbspaceWarning,
    InvalidParameterError,
    MissingFileError,
    ShapeMismatchError,
)

RNG = np.random.default_rng(7)


def _vectors(n: int, d: int = 4) -> np.ndarray:
    """float32 values of every magnitude: a text format must keep each exactly."""
    v = RNG.standard_normal((n, d)).astype(np.float32)
    v[0, 0] = np.float32(1e-30)
    v[-1, -1] = np.float32(-3.0e38)
    v[n // 2, 0] = np.float32(0.1)
    return v


STR_KEYS = ["zebra", "apple", "Amélie", "x,y", 'say "hi"', "0.5", "mañana", "ü-ß"]
INT_KEYS = [42, -7, 0, 10**12, 3, 99, 5, 1]
TUPLE_KEYS = [("Heat (1995)", "Action"), ("Heat (1995)", "Crime"), ("Up", "")] + [
    (f"t{i}", "g") for i in range(5)
]
ANY_KEYS = ["a", 1, 2.5, None, False, ("x", 3), ("y", (1, "z")), -4]

#: (format, file name, the key sets that round-trip in it)
ROUND_TRIPS = [
    ("embspace", "e.npz", [STR_KEYS, INT_KEYS, TUPLE_KEYS, ANY_KEYS]),
    ("npz", "p.npz", [STR_KEYS, INT_KEYS]),
    ("csv", "c.csv", [STR_KEYS, INT_KEYS, TUPLE_KEYS]),
    ("csv", "c.tsv", [STR_KEYS, INT_KEYS, TUPLE_KEYS]),
    ("csv", "c.csv.gz", [STR_KEYS, TUPLE_KEYS]),
    (
        "parquet",
        "p.parquet",
        [STR_KEYS, INT_KEYS, TUPLE_KEYS, [0.5, -1.0, 2.25, 8.0, 1e-9, 3.5, -0.0625, 1e300]],
    ),
    ("word2vec", "w.txt", [[k.replace(" ", "_") for k in STR_KEYS]]),
    ("word2vec", "w.vec.gz", [[k.replace(" ", "_") for k in STR_KEYS]]),
    ("word2vec-binary", "w.bin", [[k.replace(" ", "_") for k in STR_KEYS]]),
    ("word2vec-binary", "w.bin.gz", [[k.replace(" ", "_") for k in STR_KEYS]]),
]


def _same(a: Embeddings, b: Embeddings) -> None:
    assert a.keys == b.keys
    assert [type(k) for k in a.keys] == [type(k) for k in b.keys]
    assert b.vectors.dtype == np.float32
    np.testing.assert_array_equal(a.vectors, b.vectors)


@pytest.mark.parametrize(
    ("fmt", "name", "keys"),
    [(f, n, k) for f, n, sets in ROUND_TRIPS for k in sets],
    ids=[f"{n}-{i}" for _, n, sets in ROUND_TRIPS for i in range(len(sets))],
)
def test_round_trip_by_the_file_name(tmp_path: Path, fmt: str, name: str, keys: list) -> None:
    emb = Embeddings(keys, _vectors(len(keys)), metadata={"made": "here"})
    path = emb.save(tmp_path / name, format=None if fmt != "npz" else "npz")
    assert path == tmp_path / name
    assert format_for_reading(path).name == fmt  # the name (and first bytes) tell the format
    back = Embeddings.load(path)
    _same(emb, back)
    if fmt in ("embspace", "parquet"):
        assert back.metadata == {"made": "here"}
    # the format given explicitly reads the same
    _same(emb, Embeddings.load(path, format=fmt))
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary file left


def test_embspace_keeps_ids_and_plain_npz_keeps_simple_ids(tmp_path: Path) -> None:
    emb = Embeddings(["a", "b", "c"], _vectors(3), ids=np.array([7, 8, 9], dtype=np.int32))
    for fmt in ("embspace", "npz"):
        back = Embeddings.load(emb.save(tmp_path / f"{fmt}.npz", format=fmt))
        assert back.ids.dtype == np.int32 and back.ids.tolist() == [7, 8, 9]


def test_npy_keys_are_row_numbers_or_a_keys_file(tmp_path: Path) -> None:
    emb = Embeddings(STR_KEYS, _vectors(len(STR_KEYS)))
    with pytest.warns(EmbspaceWarning, match="keys are lost"):
        path = emb.save(tmp_path / "v.npy")
    back = Embeddings.load(path)
    assert back.keys == list(range(len(STR_KEYS)))
    np.testing.assert_array_equal(back.vectors, emb.vectors)
    # a keys file, as text or as .npy, written beside it and read back by keys=
    for keys_name in ("keys.txt", "keys.npy"):
        emb.save(tmp_path / "k.npy", keys_file=tmp_path / keys_name)
        _same(emb, Embeddings.load(tmp_path / "k.npy", keys=tmp_path / keys_name))
    ints = Embeddings(INT_KEYS, _vectors(len(INT_KEYS)))
    ints.save(tmp_path / "i.npy", keys_file=tmp_path / "i.txt")
    assert (tmp_path / "i.txt").read_text().split() == [str(k) for k in INT_KEYS]
    _same(ints, Embeddings.load(tmp_path / "i.npy", keys=tmp_path / "i.txt"))
    # keys given as an array or a list
    _same(emb, Embeddings.load(tmp_path / "k.npy", keys=np.array(STR_KEYS)))
    _same(emb, Embeddings.load(tmp_path / "k.npy", keys=STR_KEYS))
    # row-number keys need no keys file and no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Embeddings(range(3), _vectors(3)).save(tmp_path / "rows.npy")
    with pytest.raises(ShapeMismatchError, match="2 keys for the 8 rows"):
        Embeddings.load(tmp_path / "k.npy", keys=["a", "b"])


def test_keys_files(tmp_path: Path) -> None:
    (tmp_path / "words.txt").write_text("the\nof\r\n\nAmélie\n", encoding="utf-8")
    assert read_keys(tmp_path / "words.txt") == ["the", "of", "", "Amélie"]
    (tmp_path / "ids.txt").write_text("5\n-3\n17\n")
    assert read_keys(tmp_path / "ids.txt") == [5, -3, 17]
    with pytest.raises(InvalidParameterError, match="digits"):
        write_keys(tmp_path / "digits.txt", ["1", "2"])
    with pytest.raises(InvalidParameterError, match="line break"):
        write_keys(tmp_path / "nl.txt", ["a\nb", "c"])
    with pytest.raises(InvalidParameterError, match="str or int"):
        write_keys(tmp_path / "t.txt", [("a", 1)])
    write_keys(tmp_path / "digits.npy", ["1", "2"])  # a .npy keeps them as strings
    assert read_keys(tmp_path / "digits.npy") == ["1", "2"]
    assert not (tmp_path / "digits.txt").exists() and not (tmp_path / "nl.txt").exists()
    with pytest.raises(MissingFileError):
        read_keys(tmp_path / "absent.txt")
    np.save(tmp_path / "matrix.npy", np.zeros((2, 2)))
    with pytest.raises(DatasetFormatError, match="1-D"):
        read_keys(tmp_path / "matrix.npy")


@pytest.mark.parametrize(
    ("name", "keys", "match"),
    [
        ("p.npz", TUPLE_KEYS, "str or int keys"),
        ("p.npz", ANY_KEYS, "str or int keys"),
        ("c.csv", ANY_KEYS, "one of int, str"),
        ("c.csv", ["1", "2", "3"], "string of digits"),
        ("c.csv", [1, "a", 2], "one of int, str"),
        ("c.csv", [("a", 1), ("b",)], "one length"),
        ("p.parquet", [1, "a"], "parts are all one of"),
        ("p.parquet", [1, 2.5], "parts are all one of"),
        ("w.txt", TUPLE_KEYS, "words"),
        ("w.txt", ["two words", "x"], "without whitespace"),
        ("w.bin", ["", "x"], "without whitespace"),
        ("w.bin", [1.5, 2.5], "words"),
        ("k.npy", [("a", 1), ("b", 2)], "str or int keys"),
    ],
)
def test_keys_a_format_cannot_hold_are_refused_before_writing(
    tmp_path: Path, name: str, keys: list, match: str
) -> None:
    target = tmp_path / name
    target.write_bytes(b"old content")
    options: dict[str, Any] = {
        "k.npy": {"keys_file": tmp_path / "k.npz"},
        "p.npz": {"format": "npz"},
    }.get(name, {})
    with pytest.raises(InvalidParameterError, match=match):
        Embeddings(keys, _vectors(len(keys), 2)).save(target, **options)
    assert target.read_bytes() == b"old content"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_int_keys_in_word2vec_come_back_as_words(tmp_path: Path) -> None:
    emb = Embeddings(INT_KEYS, _vectors(len(INT_KEYS)))
    for name in ("w.txt", "w.bin"):
        with pytest.warns(EmbspaceWarning, match="read back as str"):
            path = emb.save(tmp_path / name)
        back = Embeddings.load(path)
        assert back.keys == [str(k) for k in INT_KEYS]
        np.testing.assert_array_equal(back.vectors, emb.vectors)


@pytest.mark.parametrize("layout", ["columns", "list"])
@pytest.mark.parametrize("name", ["c.csv", "p.parquet"])
def test_csv_and_parquet_layouts(tmp_path: Path, layout: str, name: str) -> None:
    emb = Embeddings(TUPLE_KEYS, _vectors(len(TUPLE_KEYS), 3))
    path = emb.save(tmp_path / name, layout=layout)
    _same(emb, Embeddings.load(path))
    if name == "c.csv":
        header = path.read_text().splitlines()[0]
        assert header == ("key_0,key_1,vector" if layout == "list" else "key_0,key_1,v0,v1,v2")


def test_save_keeps_its_old_rules_for_other_names(tmp_path: Path) -> None:
    emb = Embeddings(["a", "b"], _vectors(2))
    assert emb.save(tmp_path / "items") == tmp_path / "items.npz"
    assert emb.save(tmp_path / "items.data") == tmp_path / "items.data.npz"
    assert emb.save(tmp_path / "x.csv", format="embspace") == tmp_path / "x.csv.npz"
    assert format_for_reading(tmp_path / "items.data.npz").name == "embspace"
    # an explicit format writes the name as given
    path = emb.save(tmp_path / "vectors.data", format="word2vec")
    assert path == tmp_path / "vectors.data"
    assert path.read_text().splitlines()[0] == "2 4"


# ---------------------------------------------------------------------- hand-made files
def test_hand_made_word2vec_text_and_glove(tmp_path: Path) -> None:
    path = tmp_path / "w.txt"
    # word2vec.c ends each line with a space; CRLF line ends are read too
    path.write_bytes("3 2\nthe 0.5 -1 \nof 1e-3 2.5\r\ncafé -0.25 4\n".encode())
    emb = Embeddings.load(path)
    assert emb.keys == ["the", "of", "café"]
    np.testing.assert_array_equal(
        emb.vectors, np.array([[0.5, -1], [1e-3, 2.5], [-0.25, 4]], dtype=np.float32)
    )
    glove = tmp_path / "glove.6B.2d.txt"
    glove.write_text("the 0.5 -1\nof 1 2\n")
    emb = Embeddings.load(glove)
    assert emb.keys == ["the", "of"] and emb.vectors.tolist() == [[0.5, -1.0], [1.0, 2.0]]
    latin = tmp_path / "latin.txt"
    latin.write_bytes("1 1\ncaf\xe9 1\n".encode("latin-1"))
    assert Embeddings.load(latin, encoding="latin-1").keys == ["café"]
    assert Embeddings.load(latin, errors="replace").keys == ["caf\ufffd"]


@pytest.mark.parametrize("newline", [True, False])
def test_hand_made_word2vec_binary(tmp_path: Path, newline: bool) -> None:
    # word2vec.c writes a newline after each vector; gensim writes none: both are read
    rows = {"the": [0.5, -1.0, 2.0], "café": [1e-3, 0.0, -7.25], "of": [3.0, 4.0, 5.0]}
    body = b"".join(
        w.encode() + b" " + struct.pack("<3f", *v) + (b"\n" if newline else b"")
        for w, v in rows.items()
    )
    path = tmp_path / "w.bin"
    path.write_bytes(b"3 3\n" + body)
    emb = Embeddings.load(path)
    assert emb.keys == list(rows)
    np.testing.assert_array_equal(emb.vectors, np.array(list(rows.values()), dtype=np.float32))
    gz = tmp_path / "w.bin.gz"
    gz.write_bytes(gzip.compress(b"3 3\n" + body))
    _same(emb, Embeddings.load(gz))


def test_hand_made_csv_files(tmp_path: Path) -> None:
    def load(text: str, name: str = "c.csv", **options: Any) -> Embeddings:
        (tmp_path / name).write_text(text, encoding="utf-8")
        return Embeddings.load(tmp_path / name, **options)

    # a key column found by its values, one column per dimension
    emb = load("word,d1,d2\napple,0.1,0.2\npear,1,-2\n")
    assert emb.keys == ["apple", "pear"] and emb.vectors.tolist() == [
        [np.float32(0.1), np.float32(0.2)],
        [1.0, -2.0],
    ]
    # no header: the first line is data
    assert load("apple,0.1,0.2\npear,1,-2\n").keys == ["apple", "pear"]
    # integer ids named like ids are keys; plain numbers with a header are row-numbered
    assert load("movieId,f1,f2\n10,1,2\n20,3,4\n").keys == [10, 20]
    plain = load("a,b\n1,2\n3,4\n")
    assert plain.keys == [0, 1] and plain.vectors.tolist() == [[1, 2], [3, 4]]
    # options: the key column, the vector columns, the separator
    chosen = load("x;y;z\n1;2;3\n4;5;6\n", key="x", columns=["z"])
    assert chosen.keys == [1, 4] and chosen.vectors.tolist() == [[3], [6]]
    assert load("a b c\nq 1 2\nr 3 4\n", "s.csv", sep=" ").keys == ["q", "r"]
    headerless = load("7,1,2\n8,3,4\n", key=0)  # positions name the columns of no header
    assert headerless.keys == [7, 8] and headerless.vectors.tolist() == [[1, 2], [3, 4]]
    assert load("7,1,2\n8,3,4\n", key="0").keys == [7, 8]
    # one list column
    listed = load('key,vector\nx,"[1, 2.5]"\ny,"[3 4]"\n')
    assert listed.keys == ["x", "y"] and listed.vectors.tolist() == [[1, 2.5], [3, 4]]
    # tab separated by its name
    assert load("w\tv\na\t1\n", "t.tsv").keys == ["a"]
    # keys that read as "NA" or "null" stay words
    assert load("word,v\nNA,1\nnull,2\n").keys == ["NA", "null"]


def test_hand_made_npz_and_parquet(tmp_path: Path) -> None:
    np.savez(tmp_path / "one.npz", emb=np.arange(6.0).reshape(3, 2), other=np.arange(3))
    one = Embeddings.load(tmp_path / "one.npz")
    assert one.keys == [0, 1, 2] and one.vectors.tolist() == [[0, 1], [2, 3], [4, 5]]
    np.savez(tmp_path / "two.npz", a=np.ones((2, 2)), b=np.zeros((2, 3)))
    assert Embeddings.load(tmp_path / "two.npz", array="b").d == 3
    assert Embeddings.load(tmp_path / "two.npz", array="b", keys=["p", "q"]).keys == ["p", "q"]
    np.savez(tmp_path / "k.npz", vectors=np.ones((2, 2)), keys=np.array(["u", "v"]))
    assert Embeddings.load(tmp_path / "k.npz").keys == ["u", "v"]
    frame = pd.DataFrame({"token": ["a", "b"], "emb": [np.array([1.0, 2.0]), np.array([3.0, 4.0])]})
    frame.to_parquet(tmp_path / "l.parquet")
    listed = Embeddings.load(tmp_path / "l.parquet")
    assert listed.keys == ["a", "b"] and listed.vectors.tolist() == [[1, 2], [3, 4]]
    pd.DataFrame({"item_id": [5, 6], "f0": [1.0, 2.0], "f1": [3.0, 4.0]}).to_parquet(
        tmp_path / "ids.parquet"
    )
    ids = Embeddings.load(tmp_path / "ids.parquet")
    assert ids.keys == [5, 6] and ids.vectors.tolist() == [[1, 3], [2, 4]]
    pd.DataFrame(np.eye(2)).to_parquet(tmp_path / "plain.parquet")
    assert Embeddings.load(tmp_path / "plain.parquet").keys == [0, 1]
    chosen = Embeddings.load(tmp_path / "ids.parquet", key=False, columns=["f1"])
    assert chosen.keys == [0, 1] and chosen.vectors.tolist() == [[3], [4]]


def test_the_format_is_read_from_the_first_bytes_when_the_name_says_nothing(
    tmp_path: Path,
) -> None:
    emb = Embeddings(["a", "b", "c"], _vectors(3))
    for fmt in ("embspace", "npz", "npy", "parquet", "word2vec", "word2vec-binary"):
        path = tmp_path / f"{fmt}.data"
        written = emb.save(
            path, format=fmt, **({"keys_file": tmp_path / "k.txt"} if fmt == "npy" else {})
        )
        if fmt == "embspace":  # saved as embspace.data.npz: give it a name that says nothing
            written.rename(path)
        assert format_for_reading(path).name == fmt
        back = Embeddings.load(path)
        assert back.keys == (list(range(3)) if fmt == "npy" else ["a", "b", "c"])
        np.testing.assert_array_equal(back.vectors, emb.vectors)
    # a word2vec text file named .bin is refused, and reads with format=
    emb.save(tmp_path / "text.bin", format="word2vec")
    with pytest.raises(DatasetFormatError, match=r"text\.bin as word2vec-binary"):
        Embeddings.load(tmp_path / "text.bin")
    assert Embeddings.load(tmp_path / "text.bin", format="word2vec").keys == ["a", "b", "c"]
    (tmp_path / "notes.data").write_text("just some words\n")
    with pytest.raises(DatasetFormatError, match="cannot tell the format"):
        Embeddings.load(tmp_path / "notes.data")


def test_format_and_option_errors(tmp_path: Path) -> None:
    emb = Embeddings(["a", "b"], _vectors(2))
    path = emb.save(tmp_path / "e.npz")
    with pytest.raises(InvalidParameterError, match="unknown embeddings format 'nope'"):
        Embeddings.load(path, format="nope")
    with pytest.raises(InvalidParameterError, match="no option key"):
        Embeddings.load(path, key="x")
    with pytest.raises(InvalidParameterError, match="no option sep"):
        emb.save(tmp_path / "w.txt", sep=",")
    with pytest.raises(InvalidParameterError, match="layout"):
        emb.save(tmp_path / "c.csv", layout="rows")
    with pytest.raises(InvalidParameterError, match="already registered"):
        register_format(FORMATS["csv"])
    with pytest.raises(InvalidParameterError, match="EmbeddingsFormat"):
        register_format("csv")  # type: ignore[arg-type]


def test_a_registered_format_is_used_by_load_and_save(tmp_path: Path) -> None:
    def read(path: Path) -> Any:
        from embspace.embeddings_io import EmbeddingsData

        words, *rows = path.read_text().splitlines()
        return EmbeddingsData(
            np.array([[float(x) for x in r.split("|")] for r in rows]), words.split("|")
        )

    def write(path: Path, emb: Any) -> None:
        lines = ["|".join(map(str, emb.keys))] + ["|".join(map(str, r)) for r in emb.vectors]
        path.write_text("\n".join(lines))

    fmt = register_format(EmbeddingsFormat("pipes", (".pipes",), read, write))
    try:
        emb = Embeddings(["a", "b"], [[1, 2], [3, 4]])
        path = emb.save(tmp_path / "x.pipes")
        assert path.read_text() == "a|b\n1.0|2.0\n3.0|4.0"
        _same(emb, Embeddings.load(path))
        assert format_for_reading(path) is fmt
    finally:
        FORMATS.unregister("pipes")


# ---------------------------------------------------------------------- broken files
def _good(tmp_path: Path, name: str, **options: Any) -> bytes:
    emb = Embeddings(["a", "b", "c"], np.arange(6.0).reshape(3, 2))
    return emb.save(tmp_path / f"good-{name}", **options).read_bytes()


BROKEN: dict[str, list[tuple[str, Any]]] = {
    "p.npz": [
        ("two matrices", lambda p: np.savez(p, a=np.ones((2, 2)), b=np.ones((2, 2)))),
        ("no matrix", lambda p: np.savez(p, a=np.ones(3))),
        ("pickled", lambda p: np.savez(p, vectors=np.array([{"a": 1}, None], dtype=object))),
        (
            "short keys",
            lambda p: np.savez(p, vectors=np.ones((3, 2)), keys=np.array(["a", "b"])),
        ),
        ("repeated keys", lambda p: np.savez(p, vectors=np.ones((2, 2)), keys=np.array([1, 1]))),
        ("nan", lambda p: np.savez(p, vectors=np.array([[1.0, np.nan]]))),
        ("truncated", lambda p: p.write_bytes(_GOOD["p.npz"][:60])),
        ("empty", lambda p: p.write_bytes(b"")),
    ],
    "v.npy": [
        ("truncated", lambda p: p.write_bytes(_GOOD["v.npy"][:-5])),
        ("1-D", lambda p: np.save(p, np.arange(3.0))),
        ("text", lambda p: p.write_text("0.1 0.2\n")),
        ("pickled", lambda p: np.save(p, np.array([[{}]], dtype=object), allow_pickle=True)),
        ("strings", lambda p: np.save(p, np.array([["a", "b"]]))),
        ("empty", lambda p: p.write_bytes(b"")),
    ],
    "c.csv": [
        ("empty", lambda p: p.write_text("")),
        ("ragged", lambda p: p.write_text("key,v0,v1\na,1,2\nb,1,2,3\n")),
        ("not a number", lambda p: p.write_text("key,v0\na,1\nb,zwei\n")),
        ("missing value", lambda p: p.write_text("key,v0,v1\na,1,\n")),
        ("repeated key", lambda p: p.write_text("key,v0\na,1\na,2\n")),
        ("ragged lists", lambda p: p.write_text('key,vector\na,"[1, 2]"\nb,"[1]"\n')),
        ("bad list", lambda p: p.write_text('key,vector\na,"[1, 2]"\nb,"oops"\n')),
        ("not utf-8", lambda p: p.write_bytes(b"key,v0\ncaf\xe9,1\n")),
        ("no vectors", lambda p: p.write_text("key\na\nb\n")),
        ("repeated columns", lambda p: p.write_text("key,v,v\na,1,2\n")),
    ],
    "p.parquet": [
        ("garbage", lambda p: p.write_bytes(b"PAR1 this is not parquet")),
        ("truncated", lambda p: p.write_bytes(_GOOD["p.parquet"][:-40])),
        ("nan", lambda p: pd.DataFrame({"key": ["a"], "v0": [np.nan]}).to_parquet(p)),
        (
            "ragged lists",
            lambda p: pd.DataFrame({"key": ["a", "b"], "v": [[1.0, 2.0], [1.0]]}).to_parquet(p),
        ),
        (
            "missing key",
            lambda p: pd.DataFrame({"key": ["a", None], "v0": [1.0, 2.0]}).to_parquet(p),
        ),
        ("no vectors", lambda p: pd.DataFrame({"key": ["a"], "name": ["b"]}).to_parquet(p)),
    ],
    "w.txt": [
        ("empty", lambda p: p.write_text("")),
        ("fewer words", lambda p: p.write_text("3 2\na 1 2\nb 3 4\n")),
        ("more words", lambda p: p.write_text("1 2\na 1 2\nb 3 4\n")),
        ("short line", lambda p: p.write_text("2 2\na 1 2\nb 3\n")),
        ("not a number", lambda p: p.write_text("1 2\na 1 x\n")),
        ("zero dimension", lambda p: p.write_text("1 0\na\n")),
        ("repeated word", lambda p: p.write_text("2 1\na 1\na 2\n")),
        ("not utf-8", lambda p: p.write_bytes(b"1 1\ncaf\xe9 1\n")),
        ("infinite", lambda p: p.write_text("1 1\na inf\n")),
    ],
    "w.bin": [
        ("truncated", lambda p: p.write_bytes(_GOOD["w.bin"][:-6])),
        ("header too big", lambda p: p.write_bytes(b"1000 300\n" + _GOOD["w.bin"][4:])),
        ("trailing bytes", lambda p: p.write_bytes(_GOOD["w.bin"] + b"extra")),
        ("no header", lambda p: p.write_bytes(b"a " + struct.pack("<2f", 1, 2))),
        ("not utf-8", lambda p: p.write_bytes(b"1 1\n\xff\xfe " + struct.pack("<f", 1))),
        ("nan", lambda p: p.write_bytes(b"1 1\na " + struct.pack("<f", float("nan")))),
        ("empty", lambda p: p.write_bytes(b"")),
    ],
    "e.npz": [
        (
            "bad keys",
            lambda p: np.savez(
                p,
                format=np.array("embspace.embeddings/1"),
                vectors=np.ones((1, 1)),
                keys=np.array("{}"),
                metadata=np.array("{}"),
            ),
        ),
        ("text", lambda p: p.write_text("hello")),
    ],
}
_GOOD: dict[str, bytes] = {}


@pytest.mark.parametrize(
    ("name", "damage"),
    [(name, d) for name, cases in BROKEN.items() for d, _ in cases],
    ids=[f"{name}-{d}" for name, cases in BROKEN.items() for d, _ in cases],
)
def test_broken_files_are_format_errors_naming_the_file(
    tmp_path: Path, name: str, damage: str
) -> None:
    if not _GOOD:
        for good in ("p.npz", "v.npy", "p.parquet", "w.bin"):
            options = {"format": "npz"} if good == "p.npz" else {}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", EmbspaceWarning)
                _GOOD[good] = _good(tmp_path, good, **options)
    make = dict(BROKEN[name])[damage]
    path = tmp_path / name
    make(path)
    with pytest.raises(DatasetFormatError, match=f"cannot read {re.escape(str(path))}"):
        Embeddings.load(path)


@pytest.mark.parametrize("name", ["e.npz", "v.npy", "c.csv", "p.parquet", "w.txt", "w.bin"])
def test_a_missing_file_or_a_folder_is_a_missing_file(tmp_path: Path, name: str) -> None:
    with pytest.raises(MissingFileError, match="does not exist"):
        Embeddings.load(tmp_path / name)
    (tmp_path / "folder.txt").mkdir()
    with pytest.raises(MissingFileError):
        Embeddings.load(tmp_path / "folder.txt")


def test_an_unreadable_file_stays_a_permission_error(tmp_path: Path, monkeypatch) -> None:
    path = Embeddings(["a"], [[1.0]]).save(tmp_path / "w.txt")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr("embspace.embeddings_io.open", refuse, raising=False)
    with pytest.raises(PermissionError):
        Embeddings.load(path)


def test_a_write_cut_short_leaves_the_old_file(tmp_path: Path) -> None:
    class Failing(np.ndarray):
        def __iter__(self):  # the disk fills up after the first row
            yield np.asarray(self)[0]
            raise OSError(errno.ENOSPC, "No space left on device")

    class Fake:
        def __init__(self) -> None:
            self.keys = ["a", "b", "c"]
            self.vectors = np.arange(6, dtype=np.float32).reshape(3, 2).view(Failing)
            self.ids = None
            self.metadata: dict = {}

    target = tmp_path / "w.txt"
    target.write_bytes(b"old")
    with pytest.raises(OSError, match="No space left"):
        write_embeddings(target, Fake(), "word2vec")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.txt"]


# ---------------------------------------------------------------------- array-likes and gensim
class TorchLike:
    """What embspace reads of a torch tensor: detach(), cpu(), numpy()."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.calls: list[str] = []

    def detach(self) -> TorchLike:
        self.calls.append("detach")
        return self

    def cpu(self) -> TorchLike:
        self.calls.append("cpu")
        return self

    def numpy(self) -> np.ndarray:
        self.calls.append("numpy")
        return self.array


class ArrayLike:
    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.array


class CupyLike:
    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.__cuda_array_interface__ = {"shape": array.shape}

    def get(self) -> np.ndarray:
        return self.array

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise TypeError("Implicit conversion to a NumPy array is not allowed")


def test_from_array_takes_numpy_torch_cupy_and_array_likes(tmp_path: Path) -> None:
    x = RNG.standard_normal((3, 2))
    plain = Embeddings.from_array(x)
    assert plain.keys == [0, 1, 2] and plain.vectors.dtype == np.float32
    np.testing.assert_array_equal(plain.vectors, x.astype(np.float32))
    tensor = TorchLike(x)
    from_torch = Embeddings.from_array(tensor, keys=["a", "b", "c"])
    assert tensor.calls == ["detach", "cpu", "numpy"]
    np.testing.assert_array_equal(from_torch.vectors, plain.vectors)
    assert Embeddings.from_array(ArrayLike(x), keys=TorchLike(np.array([5, 6, 7]))).keys == [
        5,
        6,
        7,
    ]
    np.testing.assert_array_equal(Embeddings.from_array(CupyLike(x)).vectors, plain.vectors)
    assert Embeddings.from_array(x.tolist(), keys=("p", "q", "r")).keys == ["p", "q", "r"]
    (tmp_path / "k.txt").write_text("u\nv\nw\n")
    assert Embeddings.from_array(x, keys=tmp_path / "k.txt").keys == ["u", "v", "w"]
    with pytest.raises(InvalidParameterError, match="must be an array"):
        Embeddings.from_array(object())
    with pytest.raises(ShapeMismatchError, match="2-D"):
        Embeddings.from_array(np.ones(3))
    with pytest.raises(ShapeMismatchError, match="2 keys for 3 rows"):
        Embeddings.from_array(x, keys=["a", "b"])


class KeyedVectorsLike:
    def __init__(self, keys: list[str], vectors: np.ndarray) -> None:
        self.index_to_key = keys
        self.vectors = vectors


def test_from_keyed_vectors_duck_typed() -> None:
    vectors = RNG.standard_normal((3, 4)).astype(np.float32)
    kv = KeyedVectorsLike(["king", "queen", "man"], vectors)
    emb = Embeddings.from_keyed_vectors(kv)
    assert emb.keys == ["king", "queen", "man"]
    np.testing.assert_array_equal(emb.vectors, vectors)
    model = type("Word2VecLike", (), {"wv": kv})()
    assert Embeddings.from_keyed_vectors(model).keys == emb.keys
    with pytest.raises(InvalidParameterError, match="KeyedVectors"):
        Embeddings.from_keyed_vectors(np.ones((2, 2)))


def test_with_gensim_itself(tmp_path: Path) -> None:
    gensim_models = pytest.importorskip("gensim.models")
    words = ["king", "queen", "café", "man", "woman"]
    vectors = RNG.standard_normal((5, 3)).astype(np.float32)
    kv = gensim_models.KeyedVectors(vector_size=3)
    kv.add_vectors(words, vectors)
    emb = Embeddings.from_keyed_vectors(kv)
    assert emb.keys == words
    np.testing.assert_array_equal(emb.vectors, vectors)
    back = emb.to_keyed_vectors()
    assert list(back.index_to_key) == words
    np.testing.assert_array_equal(back.vectors, vectors)
    # gensim's files read here, and ours there, exactly
    for binary, name in ((False, "g.txt"), (True, "g.bin")):
        kv.save_word2vec_format(str(tmp_path / name), binary=binary)
        _same(emb, Embeddings.load(tmp_path / name))
        ours = emb.save(tmp_path / f"ours-{name}")
        read = gensim_models.KeyedVectors.load_word2vec_format(str(ours), binary=binary)
        assert list(read.index_to_key) == words
        np.testing.assert_array_equal(read.vectors, vectors)
    model = gensim_models.Word2Vec(
        [["a", "b", "c"], ["b", "c", "d"]] * 5, vector_size=4, min_count=1, seed=1, workers=1
    )
    from_model = Embeddings.from_keyed_vectors(model)
    assert from_model.keys == list(model.wv.index_to_key)
    np.testing.assert_array_equal(from_model.vectors, model.wv.vectors)


def test_to_keyed_vectors_without_gensim_is_an_import_error(monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_gensim(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("gensim"):
            raise ImportError("No module named 'gensim'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gensim)
    with pytest.raises(ImportError, match="needs gensim"):
        Embeddings(["a"], [[1.0]]).to_keyed_vectors()


def test_key_texts_are_reused_only_for_the_same_key_objects() -> None:
    """encode_arrays remembers the JSON text of the last key lists (a sweep
    saves every run with the same keys): the same objects give the text a
    fresh encoding gives, and equal keys of another type get their own."""
    import json

    from embspace.embeddings_io import encode_arrays

    vectors = np.zeros((3, 2), dtype=np.float32)
    keys: list[Any] = [("a", "x"), ("b", "y"), ("c", "z")]
    first = encode_arrays(Embeddings(keys, vectors))["keys"]
    again = encode_arrays(Embeddings(list(keys), vectors))["keys"]
    assert json.loads(str(again)) == [["a", "x"], ["b", "y"], ["c", "z"]] == json.loads(str(first))
    assert not again.flags.writeable
    # 1.0 == 1: equal lists, different texts
    ints = [1, 2, 3]
    assert str(encode_arrays(Embeddings(ints, vectors))["keys"]) == "[1, 2, 3]"
    floats = [1.0, 2.0, 3.0]
    assert str(encode_arrays(Embeddings(floats, vectors))["keys"]) == "[1.0, 2.0, 3.0]"
    # a list changed in place after it was encoded is encoded again
    changed = [("a", "x"), ("b", "y"), ("c", "z")]
    encode_arrays(Embeddings(changed, vectors))
    changed[1] = ("d", "w")
    assert json.loads(str(encode_arrays(Embeddings(changed, vectors))["keys"]))[1] == ["d", "w"]
