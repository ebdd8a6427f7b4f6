"""Readers of the ml-100k and ml-1m byte formats, and load_ratings on any table."""

from __future__ import annotations

import gzip
from pathlib import Path

import embspace.paths
import numpy as np
import pandas as pd
import pytest
from embspace import datasets
from embspace.datasets.readers import ML100K_GENRES, detect_format, read_csv_folder, read_folder
from embspace.errors import (
    ChecksumError,
    DatasetFormatError,
    DuplicateEntryError,
    InvalidParameterError,
    NonFiniteError,
)

# ------------------------------------------------------------------- ml-100k
# (id, title, flags set) as u.item holds them; genres are named by u.genre order.
ML100K_ITEMS = [
    (1, "Toy Story (1995)", {3, 4, 5}),
    (2, "Café au lait (1993)", {5}),
    (7, 'Twelve "Monkeys" (1995)', {8, 15}),
    (9, "Á köldum klaka (Cold Fever) (1994)", set()),
    (12, "unknown", {0}),
]
ML100K_RATINGS = [(196, 1, 3), (186, 2, 5), (22, 7, 1), (196, 7, 4), (244, 9, 2), (22, 1, 4)]


def _write_ml100k(folder: Path, with_genre_file: bool = True) -> Path:
    folder.mkdir(parents=True)
    data = "".join(f"{u}\t{i}\t{r}\t88125{u:04d}\n" for u, i, r in ML100K_RATINGS)
    (folder / "u.data").write_bytes(data.encode("ascii"))
    lines = []
    for movie_id, title, flags in ML100K_ITEMS:
        bits = "|".join("1" if g in flags else "0" for g in range(19))
        lines.append(f"{movie_id}|{title}|01-Jan-1995||http://us.imdb.com/M/x?{movie_id}|{bits}\n")
    (folder / "u.item").write_bytes("".join(lines).encode("latin-1"))
    if with_genre_file:
        genre = "".join(f"{g}|{i}\n" for i, g in enumerate(ML100K_GENRES)) + "\n"
        (folder / "u.genre").write_bytes(genre.encode("latin-1"))
    return folder


@pytest.mark.parametrize("with_genre_file", [True, False])
def test_ml100k_reader(tmp_path, with_genre_file):
    folder = _write_ml100k(tmp_path / "ml-100k", with_genre_file)
    assert detect_format(folder) == "ml-100k"
    ratings = datasets.load(folder)
    assert ratings.name == "ml-100k"
    assert (ratings.n_users, ratings.n_items, ratings.n_ratings) == (4, 4, 6)
    assert ratings.user_keys == [22, 186, 196, 244]
    dense = ratings.matrix.toarray()
    for u, i, r in ML100K_RATINGS:
        assert dense[ratings.user_keys.index(u), list(ratings.item_ids).index(i)] == r
    keys = dict(zip(ratings.item_ids.tolist(), ratings.item_keys, strict=True))
    assert keys == {
        1: ("Toy Story (1995)", "Animation|Children's|Comedy"),
        2: ("Café au lait (1993)", "Comedy"),
        7: ('Twelve "Monkeys" (1995)', "Drama|Sci-Fi"),
        9: ("Á köldum klaka (Cold Fever) (1994)", ""),
    }
    # item 12 is in the metadata but nobody rated it
    assert len(ratings.item_metadata) == 5
    assert ratings.item_metadata.loc[12, "genres"] == "unknown"


def test_ml100k_custom_genre_order_and_bad_flags(tmp_path):
    folder = _write_ml100k(tmp_path / "a")
    names = [f"G{i}" for i in range(19)]
    (folder / "u.genre").write_text(
        "".join(f"{g}|{i}\n" for i, g in reversed(list(enumerate(names))))
    )
    _, items = read_folder(folder)
    assert items.set_index("movieId").loc[1, "genres"] == "G3|G4|G5"
    (folder / "u.genre").write_text("A|0\nB|1\n")
    with pytest.raises(DatasetFormatError, match="genre flags"):
        read_folder(folder)


# --------------------------------------------------------------------- ml-1m
ML1M_MOVIES = [
    (1, "Toy Story (1995)", "Animation|Children's|Comedy"),
    (5, "Père Noël est une ordure, Le (1982)", "Comedy"),
    (8, "Star Wars: Episode IV - A New Hope (1977)", "Action|Sci-Fi"),
    (10, "Colon at the end: (2000)", "Drama"),
    (11, 'Quote "in" title (1999)', "Horror"),
]
ML1M_RATINGS = [(1, 1, 5), (1, 5, 3), (2, 8, 4), (3, 10, 1), (3, 11, 2), (6040, 8, 5)]


def _write_ml1m(folder: Path) -> Path:
    folder.mkdir(parents=True)
    ratings = "".join(f"{u}::{i}::{r}::97830{u:04d}\n" for u, i, r in ML1M_RATINGS)
    (folder / "ratings.dat").write_bytes(ratings.encode("ascii"))
    movies = "".join(f"{i}::{t}::{g}\n" for i, t, g in ML1M_MOVIES)
    (folder / "movies.dat").write_bytes(movies.encode("latin-1"))
    (folder / "users.dat").write_bytes(b"1::F::1::10::48067\n")
    return folder


def test_ml1m_reader(tmp_path):
    folder = _write_ml1m(tmp_path / "ml-1m")
    assert detect_format(folder) == "ml-1m"
    ratings = datasets.load(folder)
    assert (ratings.n_users, ratings.n_items, ratings.n_ratings) == (4, 5, 6)
    assert ratings.user_keys == [1, 2, 3, 6040]
    assert ratings.item_keys == [(t, g) for _, t, g in ML1M_MOVIES]
    dense = ratings.matrix.toarray()
    ids = ratings.item_ids.tolist()
    for u, i, r in ML1M_RATINGS:
        assert dense[ratings.user_keys.index(u), ids.index(i)] == r
    assert ratings.matrix.dtype == np.float32


def test_ml1m_bad_movie_line(tmp_path):
    folder = _write_ml1m(tmp_path / "x")
    (folder / "movies.dat").write_bytes(b"1::Only a title\n")
    with pytest.raises(DatasetFormatError, match="line 1"):
        read_folder(folder)


def test_registry_names_resolve_through_the_data_folder(tmp_path, monkeypatch):
    _write_ml100k(tmp_path / "data" / "ml-100k")
    _write_ml1m(tmp_path / "data" / "ml-1m")
    monkeypatch.setenv("EMBSPACE_DATA_DIR", str(tmp_path / "data"))
    assert datasets.load("ml-100k").n_ratings == len(ML100K_RATINGS)
    assert datasets.load("ml-1m").n_ratings == len(ML1M_RATINGS)
    # a zip in the data folder is verified against the registry before use
    (tmp_path / "data2").mkdir()
    (tmp_path / "data2" / "ml-1m.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    monkeypatch.setenv("EMBSPACE_DATA_DIR", str(tmp_path / "data2"))
    with pytest.raises(ChecksumError, match="bytes"):
        datasets.load("ml-1m")
    assert not embspace.paths.cache_dir().exists() or not any(embspace.paths.cache_dir().iterdir())


def test_folder_one_level_too_deep_and_unknown_folder(tmp_path):
    _write_ml1m(tmp_path / "outer" / "ml-1m")
    assert datasets.load(tmp_path / "outer").n_ratings == len(ML1M_RATINGS)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(DatasetFormatError, match="no MovieLens ratings file"):
        datasets.load(tmp_path / "empty")


def test_csv_folder_engines_agree_and_na_titles_stay_text(tmp_path):
    folder = tmp_path / "ml-latest"
    folder.mkdir()
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\r\n1,1,4.5,1\r\n1,2,0.5,2\r\n3,2,5.0,3\r\n"
    )
    (folder / "movies.csv").write_bytes(
        'movieId,title,genres\r\n1,"NA",(no genres listed)\r\n2,"Amélie, Le (2001)",Comedy|Romance\r\n'.encode()
    )
    a, items = read_csv_folder(folder, engine="c")
    b, _ = read_csv_folder(folder, engine="pyarrow")
    pd.testing.assert_frame_equal(a, b)
    assert items["title"].tolist() == ["NA", "Amélie, Le (2001)"]
    assert items["genres"].tolist() == ["(no genres listed)", "Comedy|Romance"]
    (folder / "ratings.csv").write_text("user,movie,stars\n1,1,4\n")
    with pytest.raises(DatasetFormatError, match="lacks column"):
        read_csv_folder(folder)


# --------------------------------------------------------------- load_ratings
TABLE = pd.DataFrame(
    {"user": ["u1", "u2", "u1", "u3"], "item": [10, 10, 20, 30], "score": [4.0, 3.5, 1.0, 5.0]}
)


def _expected_dense() -> np.ndarray:
    # users u1, u2, u3 x items 10, 20, 30
    return np.array([[4.0, 1.0, 0.0], [3.5, 0.0, 0.0], [0.0, 0.0, 5.0]], dtype=np.float32)


def test_load_ratings_from_a_dataframe():
    ratings = datasets.load_ratings(TABLE)
    assert ratings.user_keys == ["u1", "u2", "u3"]
    assert ratings.item_keys == [10, 20, 30]
    np.testing.assert_array_equal(ratings.matrix.toarray(), _expected_dense())


@pytest.mark.parametrize("kind", ["csv", "tsv", "semicolon", "gz", "parquet", "dcolon"])
def test_load_ratings_from_files(tmp_path, kind):
    frame = TABLE.rename(columns={"user": "user_id", "item": "movieId", "score": "Rating"})
    if kind == "csv":
        path = tmp_path / "r.csv"
        frame.to_csv(path, index=False)
    elif kind == "tsv":
        path = tmp_path / "r.tsv"
        frame.to_csv(path, index=False, sep="\t")
    elif kind == "semicolon":
        path = tmp_path / "r.txt"
        frame.to_csv(path, index=False, sep=";")
    elif kind == "gz":
        path = tmp_path / "r.csv.gz"
        with gzip.open(path, "wt") as fh:
            frame.to_csv(fh, index=False)
    elif kind == "dcolon":
        path = tmp_path / "r.dat"
        path.write_text(
            "\n".join("::".join(map(str, row)) for row in frame.itertuples(index=False))
        )
    else:
        path = tmp_path / "r.parquet"
        frame.to_parquet(path)
    ratings = datasets.load_ratings(path)  # "dcolon" has no header: columns by position
    assert ratings.name == "r"
    assert ratings.user_keys == ["u1", "u2", "u3"]
    np.testing.assert_array_equal(ratings.matrix.toarray(), _expected_dense())


def test_headerless_file_is_read_by_position(tmp_path):
    path = tmp_path / "u.data"
    path.write_text("1\t5\t3\t0\n2\t5\t4\t0\n1\t6\t1\t0\n")
    ratings = datasets.load_ratings(path)
    np.testing.assert_array_equal(ratings.matrix.toarray(), [[3, 1], [4, 0]])
    # a different column order, by position
    swapped = datasets.load_ratings(path, user=1, item=0, rating=2)
    np.testing.assert_array_equal(swapped.matrix.toarray(), [[3, 4], [1, 0]])


def test_column_options_and_detection_errors(tmp_path):
    frame = pd.DataFrame({"a": [1, 2], "b": [3, 3], "c": [2.0, 5.0], "d": [9.0, 9.0]})
    with pytest.raises(DatasetFormatError, match="pass user="):
        datasets.load_ratings(frame)
    ratings = datasets.load_ratings(frame, user="b", item="a", rating="d")
    np.testing.assert_array_equal(ratings.matrix.toarray(), [[9.0, 9.0]])
    two = pd.DataFrame({"userId": [1], "user": [2], "item": [1], "rating": [1.0]})
    with pytest.raises(DatasetFormatError, match="several columns could hold the users"):
        datasets.load_ratings(two)
    assert datasets.load_ratings(two, user="user").user_keys == [2]
    with pytest.raises(InvalidParameterError, match="not found"):
        datasets.load_ratings(TABLE, rating="stars")
    with pytest.raises(InvalidParameterError, match="different columns"):
        datasets.load_ratings(TABLE, user="item", item="item")
    with pytest.raises(InvalidParameterError, match="not numeric"):
        datasets.load_ratings(TABLE.assign(score=["a", "b", "c", "d"]))
    with pytest.raises(InvalidParameterError, match="duplicates must be"):
        datasets.load_ratings(TABLE, duplicates="median")


def test_load_ratings_errors_are_typed(tmp_path):
    with pytest.raises(DatasetFormatError, match="does not exist"):
        datasets.load_ratings(tmp_path / "missing.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DatasetFormatError, match="empty"):
        datasets.load_ratings(empty)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("user,item,rating\n1,2,3\n1,2,3,4,5\n")
    with pytest.raises(DatasetFormatError, match="cannot read"):
        datasets.load_ratings(ragged)
    nan = tmp_path / "nan.csv"
    nan.write_text("user,item,rating\n1,2,\n")
    with pytest.raises(NonFiniteError, match="user 1, item 2"):
        datasets.load_ratings(nan)
    missing_id = tmp_path / "missing_id.csv"
    missing_id.write_text("user,item,rating\n,2,3\n")
    with pytest.raises(InvalidParameterError, match="missing id"):
        datasets.load_ratings(missing_id)
    fake_parquet = tmp_path / "x.parquet"
    fake_parquet.write_bytes(b"PAR1 not really")
    with pytest.raises(DatasetFormatError, match="parquet"):
        datasets.load_ratings(fake_parquet)


def test_load_ratings_duplicates_and_latin1(tmp_path):
    path = tmp_path / "dups.csv"
    path.write_bytes("user,item,rating\nJosé,1,2\nJosé,1,4\nAnn,1,1\n".encode("latin-1"))
    with pytest.raises(DuplicateEntryError, match="user 'José' rated item 1 more than once"):
        datasets.load_ratings(path)
    assert datasets.load_ratings(path, duplicates="mean").matrix.toarray().tolist() == [
        [1.0],
        [3.0],
    ]


def test_load_ratings_with_item_metadata():
    items = pd.DataFrame({"item": [10, 20, 30], "title": ["A", "B", "C"], "genres": ["x", "y", ""]})
    ratings = datasets.load_ratings(TABLE, items=items)
    assert ratings.item_keys == [("A", "x"), ("B", "y"), ("C", "")]
    with pytest.raises(InvalidParameterError, match="no column"):
        datasets.load_ratings(TABLE, items=items.rename(columns={"item": "movieId"}))
    with pytest.raises(DuplicateEntryError, match="item 10"):
        datasets.load_ratings(TABLE, items=pd.concat([items, items.iloc[:1]]))
