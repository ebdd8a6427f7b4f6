"""Any ratings table: named columns, implicit feedback (no rating column), and
MovieLens folders without their titles file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from embspace import datasets
from embspace.datasets.tables import detect_columns
from embspace.errors import DatasetFormatError, EmbspaceWarning, InvalidParameterError


def _dense(ratings, users, items) -> np.ndarray:
    """The ratings as a dense array in the order of the given user and item keys."""
    u = [ratings.user_keys.index(k) for k in users]
    i = [ratings.item_keys.index(k) for k in items]
    return ratings.matrix.toarray()[np.ix_(u, i)]


def test_a_table_with_other_column_names(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("customer_ref;sku;stars\nc1;A-1;5\nc2;A-1;3\nc1;B-7;1\n")
    with pytest.raises(DatasetFormatError, match="pass user="):
        datasets.load(path)
    ratings = datasets.load(path, user="customer_ref", item="sku")  # stars: a rating name
    assert ratings.name == "orders"
    np.testing.assert_array_equal(_dense(ratings, ["c1", "c2"], ["A-1", "B-7"]), [[5, 1], [3, 0]])
    same = datasets.load(path, user="customer_ref", item="sku", rating="stars", sep=";")
    np.testing.assert_array_equal(same.matrix.toarray(), ratings.matrix.toarray())


def test_implicit_feedback_rates_one(tmp_path: Path) -> None:
    events = pd.DataFrame(
        {
            "user": ["u1", "u1", "u2", "u1", "u3"],
            "item": [10, 20, 10, 10, 30],
            "timestamp": [1, 2, 3, 4, 5],
        }
    )
    with pytest.raises(DatasetFormatError, match="rating=False"):
        datasets.load(events)  # three columns, none of them a rating: say so
    ratings = datasets.load(events, rating=False)
    want = [[1, 1, 0], [1, 0, 0], [0, 0, 1]]  # the repeated (u1, 10) counts once
    np.testing.assert_array_equal(_dense(ratings, ["u1", "u2", "u3"], [10, 20, 30]), want)
    assert ratings.matrix.dtype == np.float32
    counted = datasets.load(events, rating=False, duplicates="sum")
    np.testing.assert_array_equal(
        _dense(counted, ["u1", "u2", "u3"], [10, 20, 30]), [[2, 1, 0], [1, 0, 0], [0, 0, 1]]
    )
    # two columns: implicit without being told
    two = datasets.load(events[["user", "item"]])
    np.testing.assert_array_equal(_dense(two, ["u1", "u2", "u3"], [10, 20, 30]), want)
    # a file without header, of two columns, read by position
    path = tmp_path / "clicks.tsv"
    path.write_text("1\t5\n1\t6\n2\t5\n1\t5\n")
    clicks = datasets.load(path)
    np.testing.assert_array_equal(_dense(clicks, [1, 2], [5, 6]), [[1, 1], [1, 0]])
    # a column named rating is not needed, and never clobbered
    named = pd.DataFrame({"rating": ["a", "b"], "item": [1, 2]})
    odd = datasets.load(named, user="rating", rating=False)
    assert odd.user_keys == ["a", "b"] and odd.matrix.toarray().tolist() == [[1, 0], [0, 1]]


def test_positions_given_as_text_and_column_errors(tmp_path: Path) -> None:
    path = tmp_path / "r.txt"
    path.write_text("5|1|4\n6|2|3\n")
    swapped = datasets.load(path, user="1", item="0", rating="2", sep="|")  # as the CLI passes
    np.testing.assert_array_equal(_dense(swapped, [1, 2], [5, 6]), [[4, 0], [0, 3]])
    with pytest.raises(InvalidParameterError, match="user column 'nope' not found"):
        datasets.load(path, user="nope")
    with pytest.raises(InvalidParameterError, match="user and item must be different"):
        detect_columns(["a", "b"], user="a", item="a")
    assert detect_columns(["who", "what"], user="who", item="what") == ("who", "what", None)
    with pytest.raises(DatasetFormatError, match="at least 3 columns"):
        detect_columns([0], positional=True)
    with pytest.raises(DatasetFormatError, match="at least 2 columns"):
        detect_columns([0], positional=True, rating=False)
    with pytest.raises(InvalidParameterError, match="apply to tables"):
        datasets.load("synthetic:tiny", rating=False)


# ---------------------------------------------------------------------- titles files
def _ml100k_without_titles(folder: Path) -> Path:
    folder.mkdir()
    (folder / "u.data").write_text("1\t10\t4\t0\n2\t10\t3\t0\n2\t20\t5\t0\n")
    return folder / "u.item"


def _ml1m_without_titles(folder: Path) -> Path:
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::10::4::0\n2::10::3::0\n2::20::5::0\n")
    return folder / "movies.dat"


def _csv_without_titles(folder: Path) -> Path:
    folder.mkdir()
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,10,4,0\n2,10,3,0\n2,20,5,0\n"
    )
    return folder / "movies.csv"


@pytest.mark.parametrize(
    "make", [_ml100k_without_titles, _ml1m_without_titles, _csv_without_titles]
)
def test_a_missing_titles_file_is_a_warning_naming_it(tmp_path: Path, make) -> None:
    looked_for = make(tmp_path / "data")
    with pytest.warns(EmbspaceWarning, match=re.escape(str(looked_for))):
        ratings = datasets.load(tmp_path / "data")
    assert ratings.item_keys == [10, 20]  # the ids stand in for the titles
    np.testing.assert_array_equal(ratings.matrix.toarray(), [[4, 0], [3, 5]])


def test_timestamp_orders_rows_for_first_and_last(tmp_path: Path) -> None:
    """timestamp= puts the rows in time order: duplicates="last" keeps each
    pair's latest rating and "first" its earliest, whatever the file's order;
    dates work as well as numbers; ties in time keep the file's order."""
    frame = pd.DataFrame(
        {
            "who": ["a", "a", "b", "a", "b", "c"],
            "what": ["x", "x", "y", "x", "y", "x"],
            "stars": [3.0, 5.0, 1.0, 4.0, 2.0, 2.5],
            "when": [20, 10, 5, 30, 5, 1],
        }
    )
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    kw = dict(user="who", item="what", rating="stars", timestamp="when")
    last = datasets.load(path, duplicates="last", **kw)
    first = datasets.load(path, duplicates="first", **kw)
    # a/x: times 20 (3), 10 (5), 30 (4) -> earliest 5, latest 4; b/y: both at 5 -> file order
    assert _dense(last, ["a", "b", "c"], ["x", "y"]).tolist() == [[4.0, 0], [0, 2.0], [2.5, 0]]
    assert _dense(first, ["a", "b", "c"], ["x", "y"]).tolist() == [[5.0, 0], [0, 1.0], [2.5, 0]]
    # without the timestamp, "last" is the file's last row of the pair
    plain = datasets.load(path, user="who", item="what", rating="stars", duplicates="last")
    assert _dense(plain, ["a"], ["x"]).tolist() == [[4.0]]
    reordered = frame.iloc[[3, 0, 1, 2, 4, 5]]
    assert _dense(datasets.load(reordered, duplicates="last", **kw), ["a"], ["x"]).tolist() == [
        [4.0]
    ]
    # dates
    dated = frame.assign(when=pd.to_datetime(frame["when"], unit="D").dt.strftime("%Y-%m-%d"))
    got = datasets.load(dated, duplicates="first", **kw)
    assert _dense(got, ["a", "b", "c"], ["x", "y"]).tolist() == [[5.0, 0], [0, 1.0], [2.5, 0]]
    # errors: absent column, values that are not times, missing times
    with pytest.raises(InvalidParameterError, match="timestamp column 'then' not found"):
        datasets.load(path, user="who", item="what", rating="stars", timestamp="then")
    with pytest.raises(InvalidParameterError, match="neither numbers nor dates"):
        datasets.load(frame.assign(when="soon"), duplicates="last", **kw)
    with pytest.raises(InvalidParameterError, match="1 missing value"):
        datasets.load(frame.assign(when=[1, 2, None, 4, 5, 6]), duplicates="last", **kw)
    with pytest.raises(InvalidParameterError, match="apply to tables"):
        datasets.load("synthetic:preset=tiny", timestamp="when")
