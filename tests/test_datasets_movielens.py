"""The real ml-latest-small, found through EMBSPACE_DATA_DIR (zip or folder) and the cache."""

from __future__ import annotations

import csv
import shutil
import zipfile
from pathlib import Path

import embspace
import numpy as np
import pytest
import scipy.sparse as sp
from embspace import datasets
from embspace.errors import ChecksumError, UnknownDatasetError

# The histogram and counts published in shared/data/README.md.
README_HISTOGRAM = {
    0.5: 1_370,
    1.0: 2_811,
    1.5: 1_791,
    2.0: 7_551,
    2.5: 5_550,
    3.0: 20_047,
    3.5: 13_136,
    4.0: 26_818,
    4.5: 8_551,
    5.0: 13_211,
}


@pytest.fixture(scope="module")
def small_zip(data_dir: Path) -> Path:
    path = data_dir / "ml-latest-small.zip"
    if not path.is_file():
        pytest.skip("ml-latest-small.zip not in the data folder")
    return path


@pytest.fixture(scope="module")
def small_folder(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An extracted ml-latest-small folder (the data folder's, else unzipped here)."""
    folder = data_dir / "ml-latest-small"
    if folder.is_dir():
        return folder
    out = tmp_path_factory.mktemp("unzipped")
    with zipfile.ZipFile(data_dir / "ml-latest-small.zip") as zf:
        zf.extractall(out)
    return out / "ml-latest-small"


def _reference(folder: Path) -> tuple[sp.csr_matrix, dict[int, tuple[str, str]]]:
    """The ratings matrix and the movies, parsed with the csv module (not pandas)."""
    with open(folder / "ratings.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))[1:]
    users = np.array([int(r[0]) for r in rows])
    movies = np.array([int(r[1]) for r in rows])
    values = np.array([float(r[2]) for r in rows], dtype=np.float32)
    uid, ui = np.unique(users, return_inverse=True)
    mid, mi = np.unique(movies, return_inverse=True)
    matrix = sp.coo_matrix((values, (ui, mi)), shape=(uid.size, mid.size)).tocsr()
    with open(folder / "movies.csv", newline="", encoding="utf-8") as fh:
        meta = {int(r[0]): (r[1], r[2]) for r in list(csv.reader(fh))[1:]}
    return matrix, meta


def _check_ml_small(ratings: embspace.Ratings, folder: Path) -> None:
    assert ratings.name == "ml-latest-small"
    assert (ratings.n_ratings, ratings.n_users, ratings.n_items) == (100_836, 610, 9_724)
    assert len(ratings.item_metadata) == 9_742
    assert ratings.user_keys == list(range(1, 611))
    reference, meta = _reference(folder)
    assert ratings.matrix.shape == reference.shape
    assert abs(ratings.matrix - reference).sum() == 0
    assert ratings.matrix.dtype == np.float32
    # Every title and genre string survives exactly (quoted commas, UTF-8).
    assert len(meta) == 9_742
    keys = dict(zip(ratings.item_ids.tolist(), ratings.item_keys, strict=True))
    for movie_id, key in keys.items():
        title, genres = meta[movie_id]
        assert key in ((title, genres), (f"{title} [id {movie_id}]", genres))
    assert keys[11] == ("American President, The (1995)", "Comedy|Drama|Romance")
    assert keys[73] == ("Misérables, Les (1995)", "Drama|War")
    summary = ratings.summary()
    assert summary.histogram == README_HISTOGRAM
    assert summary.rating_mean == pytest.approx(3.501557, abs=5e-7)


def test_from_the_extracted_folder(monkeypatch, small_folder, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "ml-latest-small").symlink_to(small_folder, target_is_directory=True)
    monkeypatch.setenv("EMBSPACE_DATA_DIR", str(data))
    status = datasets.locate("ml-latest-small")
    assert status.state == "data dir" and status.path == data / "ml-latest-small"
    ratings = datasets.load("ml-latest-small", progress=False)
    _check_ml_small(ratings, small_folder)
    cache = embspace.paths.cache_dir()
    assert not cache.exists() or not any(cache.iterdir())  # read in place, nothing cached


def test_from_the_zip_extracts_into_the_cache(monkeypatch, small_zip, small_folder, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(small_zip, data / "ml-latest-small.zip")
    monkeypatch.setenv("EMBSPACE_DATA_DIR", str(data))
    ratings = datasets.load("ml-latest-small", progress=False)
    _check_ml_small(ratings, small_folder)
    cache = embspace.paths.cache_dir()
    assert sorted(p.name for p in cache.iterdir()) == ["ml-latest-small"]
    extracted = cache / "ml-latest-small"
    for name in ("ratings.csv", "movies.csv", "README.txt"):
        assert (extracted / name).read_bytes() == (small_folder / name).read_bytes()
    # Without the data folder, the cached copy is used.
    monkeypatch.delenv("EMBSPACE_DATA_DIR")
    assert datasets.locate("ml-latest-small").state == "cached"
    again = datasets.load("ml-latest-small", progress=False)
    assert again.fingerprint == ratings.fingerprint


def test_a_wrong_zip_in_the_data_folder_is_refused(monkeypatch, small_zip, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    blob = bytearray(small_zip.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (data / "ml-latest-small.zip").write_bytes(bytes(blob))
    monkeypatch.setenv("EMBSPACE_DATA_DIR", str(data))
    with pytest.raises(ChecksumError, match="sha256"):
        datasets.load("ml-latest-small", progress=False)
    cache = embspace.paths.cache_dir()
    assert not cache.exists() or not any(cache.rglob("*"))


def test_a_path_is_read_directly(small_folder, small_zip):
    by_folder = datasets.load(small_folder)
    assert by_folder.n_ratings == 100_836 and by_folder.name == "ml-latest-small"
    by_zip = datasets.load(str(small_zip), progress=False)
    assert by_zip.fingerprint == by_folder.fingerprint
    # the verified registry zip lands in the cache under its registry name
    assert (embspace.paths.cache_dir() / "ml-latest-small" / "ratings.csv").is_file()
    by_file = datasets.load(small_folder / "ratings.csv")
    assert by_file.n_ratings == 100_836 and "title" not in by_file.items.columns
    assert abs(by_file.matrix - by_folder.matrix).sum() == 0


def test_the_ml_small_fixture(ml_small, small_folder):
    _check_ml_small(ml_small, small_folder)
    assert embspace.datasets.load is datasets.load


def test_registry_and_listing(monkeypatch, tmp_path):
    assert list(datasets.REGISTRY) == ["ml-latest-small", "ml-100k", "ml-1m", "ml-20m", "ml-25m"]
    entry = datasets.info("ml-latest-small")
    assert (entry.size, entry.sha256[:8]) == (978_202, "696d65a3")
    assert entry.url == "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"
    assert datasets.info("ml-20m").n_ratings == 20_000_263
    monkeypatch.setenv("EMBSPACE_DATA_DIR", str(tmp_path / "nothing-here"))
    (embspace.paths.cache_dir() / "ml-1m").mkdir(parents=True)
    states = {s.name: (s.size, s.state) for s in datasets.list_datasets()}
    assert states["ml-1m"] == (5_917_549, "cached")
    assert states["ml-100k"] == (4_924_029, "not downloaded")
    with pytest.raises(UnknownDatasetError, match="ml-latest-small, ml-100k"):
        datasets.info("ml-7")


def test_unknown_names_list_the_registry():
    with pytest.raises(UnknownDatasetError) as excinfo:
        datasets.load("movielens-huge")
    message = str(excinfo.value)
    for name in datasets.REGISTRY:
        assert name in message
    assert isinstance(excinfo.value, KeyError)


def test_cache_folder_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv("EMBSPACE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if embspace.paths.sys.platform.startswith("linux"):
        assert embspace.paths.cache_dir() == tmp_path / "xdg" / "embspace"
    monkeypatch.setenv("EMBSPACE_CACHE_DIR", str(tmp_path / "mine"))
    assert embspace.paths.cache_dir(create=True) == tmp_path / "mine"
    assert (tmp_path / "mine").is_dir()
