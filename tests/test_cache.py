"""The embeddings cache: keys, round trips, atomic writes, and bad entries never read as valid."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import zipfile
from pathlib import Path

import embspace
import numpy as np
import pytest
import scipy.sparse as sp
from embspace import Embeddings, Ratings
from embspace.cache import CacheKey, CacheWarning, EmbeddingCache, default_cache_folder
from embspace.errors import InvalidParameterError
from sklearn.base import BaseEstimator


class Toy(BaseEstimator):
    """A scikit-learn style estimator with a result-neutral parameter."""

    def __init__(self, factors=3, weight=0.5, random_state=None, num_threads=None, progress=True):
        self.factors = factors
        self.weight = weight
        self.random_state = random_state
        self.num_threads = num_threads
        self.progress = progress


class OtherToy(Toy):
    pass


def _ratings(seed: int = 0) -> Ratings:
    m = sp.random(12, 9, density=0.4, random_state=seed, format="csr", dtype=np.float32)
    m.data = np.ceil(m.data * 5).astype(np.float32)
    return Ratings.from_csr(m)


def _pair(n_users: int = 12, n_items: int = 9, d: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    users = Embeddings(list(range(n_users)), rng.normal(size=(n_users, d)), metadata={"side": "u"})
    items = Embeddings(
        [(f"movie {i}", "Drama|Comedy") for i in range(n_items)],
        rng.normal(size=(n_items, d)),
        ids=np.arange(100, 100 + n_items),
        metadata={"estimator": "Toy", "params": {"weight": 0.5}},
    )
    return users, items


def _same(a: Embeddings, b: Embeddings) -> None:
    assert a.keys == b.keys
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert a.metadata == b.metadata
    if a.ids is None:
        assert b.ids is None
    else:
        np.testing.assert_array_equal(a.ids, b.ids)


def test_put_get_round_trip_both_sides(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "runs")
    ratings = _ratings()
    users, items = _pair()
    key = cache.key(ratings, Toy(), 3)
    assert cache.get(key) is None and key not in cache
    path = cache.put(key, users, items, extra={"fit_time": 1.5})
    assert path == cache.path(key) and path.is_file() and key in cache
    assert path.name == f"{key.digest}.npz"
    _same(cache.get(key), items)
    _same(cache.get(key.for_entities("users")), users)
    got_users, got_items = cache.get_pair(key)
    _same(got_users, users)
    _same(got_items, items)
    assert cache.lookup(key).extra == {"fit_time": 1.5}
    assert len(cache) == 1 and list(cache.entries()) == [path]
    # no temporary file left behind
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_key_covers_data_estimator_params_seed_and_version(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = EmbeddingCache("unused")
    r0, r1 = _ratings(0), _ratings(1)
    base = cache.key(r0, Toy(), 0)
    digests = {
        "base": base.digest,
        "data": cache.key(r1, Toy(), 0).digest,
        "class": cache.key(r0, OtherToy(), 0).digest,
        "param": cache.key(r0, Toy(weight=0.25), 0).digest,
        "param2": cache.key(r0, Toy(factors=4), 0).digest,
        "seed": cache.key(r0, Toy(), 1).digest,
        "no seed": cache.key(r0, Toy(), None).digest,
    }
    monkeypatch.setattr(embspace._core, "__version__", "999.0")
    digests["version"] = cache.key(r0, Toy(), 0).digest
    assert len(set(digests.values())) == len(digests), digests
    monkeypatch.undo()
    # thread counts and progress do not change results: same entry
    assert cache.key(r0, Toy(num_threads=2, progress=False), 0).digest == base.digest
    # the seed given equals the estimator's own random_state: same entry
    assert cache.key(r0, Toy(random_state=0), 0).digest == base.digest
    # the side asked for is not part of the file name
    assert base.for_entities("users").digest == base.digest
    # the key fields are what they claim
    assert base.fingerprint == r0.fingerprint
    assert base.estimator.endswith("test_cache.Toy")
    assert json.loads(base.params) == {"factors": 3, "weight": 0.5}
    assert base.seed == 0 and base.version == embspace.__version__


def test_wals_cg_keys_name_their_iteration_and_exact_keys_stay() -> None:
    # the exact solver's key has no code field (the key of earlier versions);
    # "cg" became preconditioned, so its keys carry that and miss the plain
    # iteration's cached trainings (whose key is the one without the field)
    cache = EmbeddingCache("unused")
    r = _ratings()
    exact = cache.key(r, embspace.WALS(factors=3, random_state=0), 0)
    assert exact.code is None and "code" not in exact.identity()
    cg = cache.key(r, embspace.WALS(factors=3, solver="cg", random_state=0), 0)
    assert json.loads(cg.code) == {"cg": "preconditioned by w0 G + lambda I"}
    plain_era = dataclasses.replace(cg, code=None)
    assert cg.digest != plain_era.digest


def test_array_parameters_are_keyed_by_content() -> None:
    cache = EmbeddingCache("unused")
    r = _ratings()
    a = cache.key(r, Toy(weight=np.array([1.0, 2.0])), 0).digest
    b = cache.key(r, Toy(weight=np.array([1.0, 2.0])), 0).digest
    c = cache.key(r, Toy(weight=np.array([1.0, 2.5])), 0).digest
    assert a == b != c


def test_key_rejects_bad_input() -> None:
    cache = EmbeddingCache("unused")
    with pytest.raises(InvalidParameterError, match="random_state=5"):
        cache.key(_ratings(), Toy(random_state=5), 0)
    with pytest.raises(InvalidParameterError, match="entities"):
        cache.key(_ratings(), Toy(), 0, entities="movies")
    with pytest.raises(InvalidParameterError, match="seed"):
        cache.key(_ratings(), Toy(), 1.5)
    with pytest.raises(InvalidParameterError, match="Ratings"):
        cache.key(object(), Toy(), 0)
    with pytest.raises(InvalidParameterError, match="get_params"):
        cache.key(_ratings(), object(), 0)


def _stored(tmp_path: Path) -> tuple[EmbeddingCache, CacheKey, Path]:
    cache = EmbeddingCache(tmp_path)
    key = cache.key(_ratings(), Toy(), 0)
    return cache, key, cache.put(key, *_pair())


def _expect_rejected(cache: EmbeddingCache, key: CacheKey, path: Path) -> None:
    with pytest.warns(CacheWarning, match="trained again"):
        assert cache.get(key) is None
    assert not path.exists(), "a bad entry must be deleted"
    # and a fresh entry can be written in its place
    users, items = _pair(seed=1)
    cache.put(key, users, items)
    _same(cache.get(key), items)


def test_truncated_entry_is_rejected(tmp_path: Path) -> None:
    cache, key, path = _stored(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _expect_rejected(cache, key, path)


def test_garbage_entry_is_rejected(tmp_path: Path) -> None:
    cache, key, path = _stored(tmp_path)
    path.write_bytes(b"not a zip file at all" * 10)
    _expect_rejected(cache, key, path)


def test_flipped_bytes_are_detected(tmp_path: Path) -> None:
    """Corrupt the stored vectors inside a still-valid zip: the checksum catches it."""
    cache, key, path = _stored(tmp_path)
    with np.load(path, allow_pickle=False) as z:
        arrays = {name: z[name] for name in z.files}
    arrays["item_vectors"] = arrays["item_vectors"].copy()
    arrays["item_vectors"][2, 1] += 1e-3
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())
    with pytest.warns(CacheWarning, match="checksum"):
        assert cache.get(key) is None
    assert not path.exists()


def test_raw_byte_corruption_is_detected(tmp_path: Path) -> None:
    """Flip bytes in the middle of the file itself (zip CRC or our checksum catches it)."""
    cache, key, path = _stored(tmp_path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("item_vectors.npy")
    middle = info.header_offset + 30 + len(info.filename) + 128 + 8
    for i in range(middle, middle + 8):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    _expect_rejected(cache, key, path)


def test_foreign_entry_is_rejected(tmp_path: Path) -> None:
    """An entry of another key copied under this key's name is not used."""
    cache = EmbeddingCache(tmp_path)
    r = _ratings()
    key_a, key_b = cache.key(r, Toy(), 0), cache.key(r, Toy(), 1)
    path_a = cache.put(key_a, *_pair())
    path_b = cache.path(key_b)
    path_b.write_bytes(path_a.read_bytes())
    with pytest.warns(CacheWarning, match="foreign"):
        assert cache.get(key_b) is None
    assert not path_b.exists() and path_a.exists()


def test_other_npz_is_rejected(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    key = cache.key(_ratings(), Toy(), 0)
    _, items = _pair()
    items.save(cache.path(key))  # an embeddings file, not a cache entry
    with pytest.warns(CacheWarning, match="unreadable|not an embspace"):
        assert cache.get(key) is None


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = EmbeddingCache(tmp_path / "runs")
    key = cache.key(_ratings(), Toy(), 0)

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    # the cache only saves work: a failed write is warned about, not raised
    with pytest.warns(CacheWarning, match="disk full"):
        assert cache.put(key, *_pair()) is None
    monkeypatch.undo()
    assert list((tmp_path / "runs").iterdir()) == []
    assert cache.get(key) is None


def test_a_failed_write_is_no_cache_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fit_cached keeps the training when the cache cannot store it, and
    records no path (not the text "None")."""
    from embspace import WALS
    from embspace.sweeps import fit_cached

    monkeypatch.setattr(os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError("full")))
    cache = EmbeddingCache(tmp_path / "runs")
    with pytest.warns(CacheWarning, match="full"):
        run = fit_cached(_ratings(), WALS(factors=2, iterations=2, random_state=0), cache=cache)
    assert run.cache_path is None and not run.cached
    assert run.items.vectors.shape == (9, 2)


def test_put_rejects_non_embeddings(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    key = cache.key(_ratings(), Toy(), 0)
    with pytest.raises(InvalidParameterError):
        cache.put(key, np.zeros((2, 2)), np.zeros((2, 2)))


def test_clear(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    r = _ratings()
    for seed in range(3):
        cache.put(cache.key(r, Toy(), seed), *_pair(seed=seed))
    (tmp_path / ".leftover.npz.123.tmp").write_bytes(b"x")
    assert len(cache) == 3
    assert cache.clear() == 3
    assert list(tmp_path.iterdir()) == []


def test_default_folder_follows_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBSPACE_CACHE_DIR", str(tmp_path))
    assert default_cache_folder() == tmp_path / "runs"
    assert EmbeddingCache().folder == tmp_path / "runs"
