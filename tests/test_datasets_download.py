"""The download path end to end against a local HTTP server (127.0.0.1, port 0)."""

from __future__ import annotations

import hashlib
import http.server
import io
import stat
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from embspace import datasets, paths
from embspace._registry import Registry
from embspace.datasets import fetch, registry
from embspace.datasets.registry import DatasetInfo
from embspace.errors import ChecksumError, DownloadError, UnsafeArchiveError


class _Server:
    """Serves ``files`` (path -> bytes); ``truncate`` paths announce the full
    length but send half and close; counts requests per path."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.truncate: set[str] = set()
        self.hits: dict[str, int] = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in server.truncate:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mirror"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Server]:
    srv = _Server()
    monkeypatch.setenv("EMBSPACE_MIRROR", srv.url + "/")
    monkeypatch.delenv("EMBSPACE_DATA_DIR", raising=False)
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture(scope="module")
def real_zip(data_dir: Path) -> bytes:
    path = data_dir / "ml-latest-small.zip"
    if not path.is_file():
        pytest.skip("ml-latest-small.zip not in the data folder")
    return path.read_bytes()


def _files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*")) if folder.exists() else []


def test_download_verify_cache_and_reuse(server, real_zip):
    server.files["/mirror/ml-latest-small.zip"] = real_zip
    cache = paths.cache_dir()
    assert datasets.locate("ml-latest-small").state == "not downloaded"
    ratings = datasets.load("ml-latest-small", progress=False)
    assert (ratings.n_ratings, ratings.n_users, ratings.n_items) == (100_836, 610, 9_724)
    assert server.hits == {"/mirror/ml-latest-small.zip": 1}
    # Only the extracted folder is left in the cache: no temporary files.
    assert [p.name for p in cache.iterdir()] == ["ml-latest-small"]
    with zipfile.ZipFile(io.BytesIO(real_zip)) as zf:
        expected = {Path(n).name: zf.read(n) for n in zf.namelist() if not n.endswith("/")}
    got = {p.name: p.read_bytes() for p in (cache / "ml-latest-small").iterdir()}
    assert got == expected
    assert datasets.locate("ml-latest-small").state == "cached"
    again = datasets.load("ml-latest-small", progress=False)
    assert server.hits == {"/mirror/ml-latest-small.zip": 1}  # not downloaded again
    assert again.fingerprint == ratings.fingerprint
    assert datasets.download("ml-latest-small") == cache / "ml-latest-small"
    assert server.hits == {"/mirror/ml-latest-small.zip": 1}


def test_download_with_a_progress_bar(server, real_zip, capsys):
    server.files["/mirror/ml-latest-small.zip"] = real_zip
    folder = datasets.download("ml-latest-small", progress=True)
    assert (folder / "ratings.csv").is_file()
    assert "ml-latest-small.zip" in capsys.readouterr().err


def test_corrupted_zip_is_refused_and_nothing_is_kept(server, real_zip):
    blob = bytearray(real_zip)
    blob[1000] ^= 0x01  # same size, different bytes
    server.files["/mirror/ml-latest-small.zip"] = bytes(blob)
    with pytest.raises(ChecksumError, match="sha256"):
        datasets.load("ml-latest-small", progress=False)
    assert _files(paths.cache_dir()) == []


def test_wrong_size_is_refused(server, real_zip):
    server.files["/mirror/ml-latest-small.zip"] = real_zip + b"\0" * 10
    with pytest.raises(ChecksumError, match="bytes"):
        datasets.load("ml-latest-small", progress=False)
    assert _files(paths.cache_dir()) == []


def test_truncated_transfer_leaves_nothing(server, real_zip):
    path = "/mirror/ml-latest-small.zip"
    server.files[path] = real_zip
    server.truncate.add(path)
    with pytest.raises(DownloadError, match=r"cut short|failed after"):
        datasets.load("ml-latest-small", progress=False)
    assert _files(paths.cache_dir()) == []
    # The next attempt, with a whole transfer, succeeds.
    server.truncate.clear()
    assert datasets.load("ml-latest-small", progress=False).n_ratings == 100_836


def test_interrupted_download_leaves_nothing(server, real_zip, monkeypatch):
    server.files["/mirror/ml-latest-small.zip"] = real_zip
    real_tqdm = fetch.tqdm

    class InterruptingBar(real_tqdm):  # Ctrl-C after the first chunk has been written
        def update(self, n=1):
            super().update(n)
            raise KeyboardInterrupt

    monkeypatch.setattr(fetch, "tqdm", InterruptingBar)
    with pytest.raises(KeyboardInterrupt):
        datasets.load("ml-latest-small", progress=False)
    assert _files(paths.cache_dir()) == []


def test_download_file_leaves_nothing_beside_its_target(server, tmp_path):
    body = bytes(range(256)) * 64
    digest = hashlib.sha256(body).hexdigest()
    server.files["/mirror/blob"] = body
    target = tmp_path / "out" / "blob.bin"
    url = server.url + "/blob"
    with pytest.raises(ChecksumError, match="sha256"):
        fetch.download_file(url, target, size=len(body), sha256="0" * 64, progress=False)
    assert _files(tmp_path / "out") == []
    server.truncate.add("/mirror/blob")
    with pytest.raises(DownloadError, match="cut short"):
        fetch.download_file(url, target, size=len(body), sha256=digest, progress=False)
    assert _files(tmp_path / "out") == []
    server.truncate.clear()
    assert fetch.download_file(url, target, size=len(body), sha256=digest, progress=False) == target
    assert target.read_bytes() == body
    assert _files(tmp_path / "out") == [target]
    fetch.verify_file(target, len(body), digest)
    with pytest.raises(ChecksumError, match="bytes"):
        fetch.verify_file(target, len(body) + 1, digest)


def test_http_error_and_unreachable_host(server, monkeypatch):
    with pytest.raises(DownloadError, match="404"):
        datasets.download("ml-100k", progress=False)
    assert _files(paths.cache_dir()) == []
    monkeypatch.setenv("EMBSPACE_MIRROR", "http://127.0.0.1:9/unreachable")
    with pytest.raises(DownloadError, match="cannot download"):
        datasets.download("ml-100k", progress=False)
    assert _files(paths.cache_dir()) == []


# --------------------------------------------------------------- unsafe archives
def _zip(members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for info, data in members:
            zf.writestr(info, data)
    return buf.getvalue()


def _serve_as_dataset(server: _Server, monkeypatch: pytest.MonkeyPatch, name: str, blob: bytes):
    """Register ``name`` with the blob's true size and sha256, so only the
    archive's safety decides."""
    entry = DatasetInfo(name, len(blob), hashlib.sha256(blob).hexdigest(), "test archive")
    extended = Registry("dataset", {**datasets.REGISTRY, name: entry})
    monkeypatch.setattr(registry, "REGISTRY", extended)
    server.files[f"/mirror/{name}.zip"] = blob


def _symlink_member(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def _ratings_csv() -> bytes:
    return b"userId,movieId,rating,timestamp\n1,1,4.0,0\n"


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "bomb"])
def test_unsafe_archives_are_refused(server, monkeypatch, tmp_path, kind):
    outside = tmp_path / "outside.txt"
    members: list[tuple[zipfile.ZipInfo | str, bytes]] = [("evil/ratings.csv", _ratings_csv())]
    if kind == "dotdot":
        members.append(("evil/../../outside.txt", b"escaped"))
    elif kind == "absolute":
        members.append((str(outside), b"escaped"))
    elif kind == "symlink":
        members.append(_symlink_member("evil/movies.csv", str(outside)))
    else:
        members.append(("evil/movies.csv", b"\0" * (64 << 20)))  # 64 MiB of zeros, ~64 KiB packed
    blob = _zip(members)
    if kind == "absolute":
        assert str(outside) in zipfile.ZipFile(io.BytesIO(blob)).namelist()
    _serve_as_dataset(server, monkeypatch, "evil", blob)
    with pytest.raises(UnsafeArchiveError):
        datasets.load("evil", progress=False)
    assert server.hits == {"/mirror/evil.zip": 1}  # downloaded and verified, then refused
    assert _files(paths.cache_dir()) == []
    assert not outside.exists()
    assert not (paths.cache_dir().parent / "outside.txt").exists()


def test_a_safe_custom_archive_loads(server, monkeypatch):
    blob = _zip(
        [
            ("good/ratings.csv", b"userId,movieId,rating,timestamp\n1,1,4.0,0\n2,1,3.5,0\n"),
            ("good/movies.csv", b'movieId,title,genres\n1,"Foo, The (2001)",Drama\n'),
        ]
    )
    _serve_as_dataset(server, monkeypatch, "good", blob)
    ratings = datasets.load("good", progress=False)
    assert ratings.item_keys == [("Foo, The (2001)", "Drama")]
    assert [p.name for p in paths.cache_dir().iterdir()] == ["good"]


# --------------------------------------------------------------- ml-25m through a mirror
def _ml25m_zip() -> tuple[bytes, dict[tuple[int, int], float], dict[int, tuple[str, str]]]:
    """A small archive in the layout and formats of the real ml-25m.zip: the
    folder ``ml-25m/`` with ``ratings.csv`` (userId,movieId,rating,timestamp;
    half stars), ``movies.csv`` (quoted titles with commas and quotes, UTF-8
    accents, ``(no genres listed)``), ``tags.csv``, ``links.csv``, the genome
    files and ``README.txt``. Returns the zip, the ratings and the movies it
    holds (as written, for the reference)."""
    rng = np.random.default_rng(25)
    movies = {
        1: ("Toy Story (1995)", "Adventure|Animation|Children|Comedy|Fantasy"),
        2: ("Jumanji (1995)", "Adventure|Children|Fantasy"),
        11: ("American President, The (1995)", "Comedy|Drama|Romance"),
        29: ("City of Lost Children, The (Cité des enfants perdus, La) (1995)", "Adventure|Drama"),
        32: ("Twelve Monkeys (a.k.a. 12 Monkeys) (1995)", "Mystery|Sci-Fi|Thriller"),
        1136: ("Monty Python and the Holy Grail (1975)", "Adventure|Comedy|Fantasy"),
        5952: ('"Great Performances" Cats (1998)', "Musical"),
        209171: ("Women of Devil's Island (1962)", "Action|Adventure|Drama"),
        209163: ("Bad Poems (2018)", "Comedy|Drama"),
        209169: ("A Girl Thing (2001)", "(no genres listed)"),
    }
    ids = sorted(movies)
    ratings: dict[tuple[int, int], float] = {}
    for user in [1, 2, 3, 7, 42, 162541]:
        for movie in rng.choice(ids, size=int(rng.integers(2, len(ids))), replace=False):
            ratings[(user, int(movie))] = float(rng.integers(1, 11)) / 2  # 0.5 .. 5.0
    for movie in ids:  # every movie rated at least once
        ratings.setdefault((5, movie), 3.5)

    def quoted(text: str) -> str:
        return '"' + text.replace('"', '""') + '"' if ("," in text or '"' in text) else text

    lines = ["userId,movieId,rating,timestamp"]
    for n, ((user, movie), stars) in enumerate(sorted(ratings.items())):
        lines.append(f"{user},{movie},{stars:g},{1147880044 + n}")
    members = {
        "ml-25m/ratings.csv": "\n".join(lines) + "\n",
        "ml-25m/movies.csv": "movieId,title,genres\n"
        + "".join(f"{m},{quoted(t)},{g}\n" for m, (t, g) in sorted(movies.items())),
        "ml-25m/tags.csv": "userId,movieId,tag,timestamp\n3,260,classic,1439472355\n",
        "ml-25m/links.csv": "movieId,imdbId,tmdbId\n1,0114709,862\n2,0113497,8844\n",
        "ml-25m/genome-tags.csv": "tagId,tag\n1,007\n2,007 (series)\n",
        "ml-25m/genome-scores.csv": "movieId,tagId,relevance\n1,1,0.02875\n1,2,0.02375\n",
        "ml-25m/README.txt": "Summary\n=======\n\nThis dataset (ml-25m) describes 5-star rating...\n",
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ml-25m/", b"")  # the real zip lists its folder
        for name, text in members.items():
            zf.writestr(name, text.encode("utf-8"))
    return buf.getvalue(), ratings, movies


def test_ml25m_real_checksum_refuses_another_archive(server):
    blob, _, _ = _ml25m_zip()
    server.files["/mirror/ml-25m.zip"] = blob
    with pytest.raises(ChecksumError):
        datasets.load("ml-25m", progress=False)
    assert server.hits == {"/mirror/ml-25m.zip": 1}
    assert _files(paths.cache_dir()) == []


def test_ml25m_loads_through_a_mirror(server, monkeypatch):
    """``load("ml-25m")`` end to end: download from the mirror, size and
    sha256 checked (the registry entry given this archive's, since the real
    one cannot be served here), extracted into ``<cache>/ml-25m``, read; every
    rating equals the CSV's, read back independently with the csv module."""
    import csv

    blob, want, movies = _ml25m_zip()
    real = datasets.REGISTRY["ml-25m"]
    assert (real.size, real.n_users, real.n_items) == (261_978_986, 162_541, 59_047)
    entry = DatasetInfo("ml-25m", len(blob), hashlib.sha256(blob).hexdigest(), real.description)
    monkeypatch.setattr(
        registry, "REGISTRY", Registry("dataset", {**datasets.REGISTRY, "ml-25m": entry})
    )
    server.files["/mirror/ml-25m.zip"] = blob
    assert datasets.locate("ml-25m").state == "not downloaded"
    ratings = datasets.load("ml-25m", progress=False)
    assert server.hits == {"/mirror/ml-25m.zip": 1}
    folder = paths.cache_dir() / "ml-25m"
    assert datasets.locate("ml-25m").state == "cached" and folder.is_dir()
    assert [p.name for p in paths.cache_dir().iterdir()] == ["ml-25m"]
    # the ratings as the csv module reads the extracted file
    with open(folder / "ratings.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {(int(r["userId"]), int(r["movieId"])): float(r["rating"]) for r in rows} == want
    users = sorted({u for u, _ in want})
    items = sorted(movies)
    assert (ratings.n_ratings, ratings.n_users, ratings.n_items) == (
        len(want),
        len(users),
        len(items),
    )
    got = {}
    coo = ratings.matrix.tocoo()
    for i, j, v in zip(coo.row, coo.col, coo.data, strict=True):
        got[(int(ratings.user_ids[i]), int(ratings.item_ids[j]))] = float(v)
    assert got == want
    titles = dict(zip(ratings.item_ids.tolist(), ratings.item_keys, strict=True))
    assert titles == movies  # quoted commas, quotes, accents and "(no genres listed)" intact
    again = datasets.load("ml-25m", progress=False)  # from the cache, not downloaded again
    assert server.hits == {"/mirror/ml-25m.zip": 1}
    assert again.fingerprint == ratings.fingerprint
