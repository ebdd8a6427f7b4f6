"""NeighborTable: arrays, caching, one entity's neighbors by key, index or title."""

from __future__ import annotations

import embspace as es
import numpy as np
import pandas as pd
import pytest
from _knn_reference import brute_knn
from embspace.errors import (
    AmbiguousQueryError,
    DeviceUnavailableError,
    EntityNotFoundError,
    IndexOutOfRangeError,
    InvalidParameterError,
)
from embspace.neighbors import register_knn_backend


@pytest.fixture
def movies() -> es.Embeddings:
    rng = np.random.default_rng(0)
    titles = [f"Movie {i} ({1950 + i})" for i in range(60)]
    titles[3] = "Amélie (2001)"
    titles[4] = "They Live (1988)"
    titles[5] = "Emma (1996)"
    titles[6] = "Emma (1996)"
    keys = [(t, "Drama" if i % 2 else "Comedy") for i, t in enumerate(titles)]
    return es.Embeddings(keys, rng.standard_normal((60, 5)))


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dot"])
def test_knn_arrays_and_cache(movies: es.Embeddings, metric: str) -> None:
    table = es.NeighborTable(movies, metric=metric, num_threads=2)
    dist, idx = table.knn(8)
    want_d, want_i = brute_knn(movies.vectors, 8, metric)
    np.testing.assert_array_equal(idx, want_i)
    np.testing.assert_allclose(dist, want_d, rtol=1e-6, atol=1e-6)
    _, small_i = table.knn(3)  # served from the cached k = 8 table
    np.testing.assert_array_equal(small_i, want_i[:, :3])
    _, sub_i = table.knn(3, queries=[5, 0])
    np.testing.assert_array_equal(sub_i, want_i[[5, 0], :3])
    _, bigger_i = table.knn(12)
    np.testing.assert_array_equal(bigger_i, brute_knn(movies.vectors, 12, metric)[1])


def test_neighbors_frame_by_key_index_and_title(movies: es.Embeddings) -> None:
    table = es.NeighborTable(movies)
    by_key = table.neighbors(("They Live (1988)", "Comedy"), k=4)
    assert list(by_key.columns) == ["rank", "key", "title", "score", "distance", "index"]
    assert by_key["rank"].tolist() == [1, 2, 3, 4]
    want_d, want_i = brute_knn(movies.vectors, 4, "cosine", queries=[4])
    assert by_key["index"].tolist() == want_i[0].tolist()
    np.testing.assert_allclose(by_key["distance"], want_d[0], atol=1e-6)
    np.testing.assert_allclose(by_key["score"], 1.0 - want_d[0], atol=1e-6)  # cosine similarity
    assert by_key["key"].tolist() == [movies.keys[j] for j in want_i[0]]
    assert by_key["title"].tolist() == [movies.titles[j] for j in want_i[0]]
    assert by_key.attrs["query"] == movies.keys[4]
    pd.testing.assert_frame_equal(table.neighbors(4, k=4), by_key)
    pd.testing.assert_frame_equal(table.neighbors("They Live (1988)", k=4), by_key)
    pd.testing.assert_frame_equal(table.neighbors("they live", k=4), by_key)
    amelie = table.neighbors("AMELIE", k=2)
    assert amelie.attrs["query"] == movies.keys[3]
    assert 3 not in amelie["index"].tolist()


def test_scores_are_larger_for_closer_neighbors(movies: es.Embeddings) -> None:
    for metric in ("cosine", "euclidean", "dot"):
        frame = es.NeighborTable(movies, metric=metric).neighbors(0, k=10)
        assert (np.diff(frame["score"]) <= 0).all()
        assert (np.diff(frame["distance"]) >= 0).all()
    dot = es.NeighborTable(movies, metric="dot").neighbors(0, k=3)
    np.testing.assert_allclose(dot["score"], -dot["distance"])
    inner = movies.vectors.astype(np.float64) @ movies.vectors[0].astype(np.float64)
    np.testing.assert_allclose(dot["score"], inner[dot["index"]], rtol=1e-6)


def test_query_errors(movies: es.Embeddings) -> None:
    table = es.NeighborTable(movies)
    with pytest.raises(AmbiguousQueryError) as info:
        table.neighbors("Emma (1996)")
    assert len(info.value.candidates) == 2
    assert "Emma (1996) | Drama" in str(info.value) and "Emma (1996) | Comedy" in str(info.value)
    with pytest.raises(EntityNotFoundError) as info:
        table.neighbors("Amelia (2001)")
    assert "Amélie (2001)" in info.value.suggestions
    with pytest.raises(IndexOutOfRangeError):
        table.neighbors(60)
    with pytest.raises(EntityNotFoundError):
        table.neighbors(3.5)
    with pytest.raises(InvalidParameterError):
        table.neighbors(0, k=60)
    with pytest.raises(InvalidParameterError):
        table.knn(0)
    with pytest.raises(IndexOutOfRangeError):
        table.knn(3, queries=[-1])


def test_constructor_validates(movies: es.Embeddings) -> None:
    with pytest.raises(InvalidParameterError):
        es.NeighborTable(movies, metric="jaccard")
    with pytest.raises(InvalidParameterError):
        es.NeighborTable(movies.vectors)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError):
        es.NeighborTable(movies, num_threads=-2)
    with pytest.raises(InvalidParameterError):
        es.NeighborTable(movies, device="tpu")
    assert "60 entities" in repr(es.NeighborTable(movies))


def test_backends_are_pluggable(movies: es.Embeddings, monkeypatch: pytest.MonkeyPatch) -> None:
    from embspace import _registry, neighbors

    # without its GPU backend, device="gpu" has nothing to run on
    backends = _registry.DeviceRegistry("k-NN backend", {"cpu": neighbors.KNN_BACKENDS["cpu"]})
    monkeypatch.setattr(neighbors, "KNN_BACKENDS", backends)
    for module in (_registry, neighbors):
        monkeypatch.setattr(module, "module_for", lambda device: (device, np))
    with pytest.raises(DeviceUnavailableError):
        es.NeighborTable(movies, device="gpu").knn(3)
    calls = []

    def fake(vectors, k, metric, queries, num_threads):
        calls.append((vectors.shape, k, metric))
        return brute_knn(vectors, k, metric, queries)

    register_knn_backend("gpu", fake)
    _, idx = es.NeighborTable(movies, device="gpu").knn(3)
    assert calls == [((60, 5), 3, "cosine")]
    np.testing.assert_array_equal(idx, brute_knn(movies.vectors, 3, "cosine")[1])
