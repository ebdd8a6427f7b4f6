"""How NeighborTable reads a query: a key, ``id:N``, ``row:N``, ``row=N`` or a
title, with no integer meaning a key for one value and a row for another."""

from __future__ import annotations

import embspace as es
import numpy as np
import pandas as pd
import pytest
from embspace.errors import (
    AmbiguousQueryError,
    EntityNotFoundError,
    IndexOutOfRangeError,
    InvalidParameterError,
)

RNG = np.random.default_rng(3)


@pytest.fixture
def users() -> es.Embeddings:
    """Integer keys 10, 20, ..., 400 (as user ids are): an integer is always a key."""
    return es.Embeddings([10 * (i + 1) for i in range(40)], RNG.standard_normal((40, 3)))


@pytest.fixture
def movies() -> es.Embeddings:
    titles = [f"Film {i} ({1950 + i})" for i in range(30)]
    titles[1], titles[2], titles[3] = "Toy Story (1995)", "Toy Story 2 (1999)", "Emma (1996)"
    titles[4] = "Emma (1996)"
    keys = [(t, "Drama" if i % 2 else "Comedy") for i, t in enumerate(titles)]
    ids = np.arange(100, 130)
    return es.Embeddings(keys, RNG.standard_normal((30, 3)), ids=ids)


def _same_row(table: es.NeighborTable, a: pd.DataFrame, row: int) -> None:
    want = table.neighbors(row=row, k=3)
    pd.testing.assert_frame_equal(a, want)
    assert a.attrs["query"] == table.embeddings.keys[row]


def test_an_integer_is_a_key_when_the_keys_are_integers(users: es.Embeddings) -> None:
    table = es.NeighborTable(users)
    _same_row(table, table.neighbors(50, k=3), 4)  # key 50 is row 4
    with pytest.raises(EntityNotFoundError, match="row=0 or 'row:0'"):
        table.neighbors(0, k=3)  # 0 is no key: never silently row 0
    with pytest.raises(EntityNotFoundError):
        table.neighbors(np.int64(7), k=3)
    _same_row(table, table.neighbors("row:0", k=3), 0)
    _same_row(table, table.neighbors(" row: 0", k=3), 0)
    # no ids: id:N is the key N
    _same_row(table, table.neighbors("id:50", k=3), 4)
    # a bare number in a string is a title: the title of key 50 is "50"
    _same_row(table, table.neighbors("50", k=3), 4)


def test_an_integer_is_a_row_when_no_key_is_an_integer(movies: es.Embeddings) -> None:
    table = es.NeighborTable(movies)
    _same_row(table, table.neighbors(5, k=3), 5)  # as in earlier versions
    _same_row(table, table.neighbors(np.int32(5), k=3), 5)
    with pytest.raises(IndexOutOfRangeError, match="outside"):
        table.neighbors(30)


def test_id_and_row_queries(movies: es.Embeddings) -> None:
    table = es.NeighborTable(movies)
    _same_row(table, table.neighbors("id:107", k=3), 7)
    _same_row(table, table.neighbors("ID:107", k=3), 7)
    _same_row(table, table.neighbors("row:7", k=3), 7)
    _same_row(table, table.neighbors(row=7, k=3), 7)
    with pytest.raises(EntityNotFoundError, match="no entity has the id '7'"):
        table.neighbors("id:7")
    with pytest.raises(IndexOutOfRangeError):
        table.neighbors("row:30")
    with pytest.raises(IndexOutOfRangeError):
        table.neighbors(row=-1)
    with pytest.raises(EntityNotFoundError, match="integer"):
        table.neighbors("row:seven")
    with pytest.raises(InvalidParameterError, match="not both"):
        table.neighbors("Emma (1996)", row=3)
    with pytest.raises(InvalidParameterError, match="give a query"):
        table.neighbors()
    with pytest.raises(InvalidParameterError, match="row"):
        table.neighbors(row="3")


def test_a_key_wins_over_the_prefixes() -> None:
    emb = es.Embeddings(["row:1", "id:0", "x"], RNG.standard_normal((3, 2)))
    table = es.NeighborTable(emb)
    assert table.resolve("row:1") == 0 and table.resolve("id:0") == 1
    assert table.resolve("row:2") == 2


def test_ambiguous_and_unknown_titles_carry_their_rows(movies: es.Embeddings) -> None:
    table = es.NeighborTable(movies)
    with pytest.raises(AmbiguousQueryError) as info:
        table.neighbors("toy story")
    assert info.value.rows == [1, 2]
    assert info.value.candidates == ["Toy Story (1995) | Drama", "Toy Story 2 (1999) | Comedy"]
    assert "'id:N'" in str(info.value) and "'row:N'" in str(info.value)
    with pytest.raises(AmbiguousQueryError) as info:
        table.neighbors("Emma (1996)")
    assert info.value.rows == [3, 4]
    with pytest.raises(EntityNotFoundError) as info:
        table.neighbors("Toy Stroy (1995)")
    assert info.value.rows[0] == 1 and info.value.suggestions[0] == "Toy Story (1995)"


def test_query_of_names_each_row_and_reads_back(movies: es.Embeddings, users) -> None:
    table = es.NeighborTable(movies)
    assert table.query_of(3) == "id:103"
    for emb in (movies, users):
        t = es.NeighborTable(emb)
        assert [t.resolve(t.query_of(r)) for r in range(emb.n)] == list(range(emb.n))
    assert es.NeighborTable(users).query_of(2) == "row:2"  # no ids
    # repeated ids, or ids that do not paste, fall back to the row
    odd = es.Embeddings(
        ["a", "b", "c", "d"],
        RNG.standard_normal((4, 2)),
        ids=np.array([5, 5, "x y", 7], dtype=object),
    )
    t = es.NeighborTable(odd)
    assert [t.query_of(r) for r in range(4)] == ["row:0", "row:1", "row:2", "id:7"]
    assert [t.resolve(t.query_of(r)) for r in range(4)] == [0, 1, 2, 3]
    # string ids that look like numbers read back too
    named = es.Embeddings(["a", "b"], RNG.standard_normal((2, 2)), ids=np.array(["10", "u2"]))
    t = es.NeighborTable(named)
    assert [t.query_of(r) for r in range(2)] == ["id:10", "id:u2"]
    assert [t.resolve(t.query_of(r)) for r in range(2)] == [0, 1]
