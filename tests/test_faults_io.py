"""Regression tests of the fault battery on the file and network side: no
hang, no leftover, no raw exception, nothing lost.

Disk faults are produced three ways:

- an ``OSError`` injected at the operating-system call (``tempfile.mkstemp``
  or ``os.fsync`` as :mod:`embspace._atomic` uses them): always available;
- ``RLIMIT_FSIZE`` in a subprocess (the kernel refuses writes past the limit
  with ``EFBIG``): always available on POSIX;
- a real full (``ENOSPC``) or read-only (``EROFS``) tmpfs mounted in a
  private mount namespace of a subprocess (``unshare -m``): the tests run as
  root, where ``chmod`` does not make anything read-only. These run where
  mount namespaces are allowed and are skipped elsewhere (the injected
  variants above cover the same code paths).
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
import zipfile
from pathlib import Path
from types import SimpleNamespace

import embspace
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from embspace import WALS, Embeddings, Ratings, _atomic
from embspace.cache import CacheWarning, EmbeddingCache
from embspace.cli import main
from embspace.datasets import archive, fetch, load_ratings
from embspace.datasets.readers import read_csv_folder, read_ml1m, read_ml100k
from embspace.errors import (
    DatasetFormatError,
    DownloadError,
    InvalidParameterError,
    UnsafeArchiveError,
)

PYTHON_DIR = str(Path(embspace.__file__).resolve().parents[1])
TINY = "synthetic:tiny"


def run_main(capsys, *args: str) -> SimpleNamespace:
    try:
        code = main(list(args))
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=captured.out, stderr=captured.err)


def assert_one_line_error(done, *fragments: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    errors = [line for line in done.stderr.strip().splitlines() if "warning:" not in line]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith("embspace: error: "), done.stderr
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ----------------------------------------------------------------- downloads
class _Trickle:
    """A raw 127.0.0.1 HTTP server for one request: sends ``head`` (the status
    line and headers) and then ``body``, one byte every ``pause`` seconds once
    ``slow_from`` bytes are out. It stops by itself after the whole response
    or when the client goes away."""

    def __init__(self, head: bytes, body: bytes, *, pause: float, slow_from: int = 0) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/ml-test.zip"
        self.data = head + body
        self.pause = pause
        self.slow_from = slow_from
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(self.data[: self.slow_from])
                for b in self.data[self.slow_from :]:
                    conn.sendall(bytes([b]))
                    time.sleep(self.pause)
            except OSError:
                pass  # the client gave up: done

    def close(self) -> None:
        self.sock.close()
        self.thread.join()


def _head(length: int) -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n".encode()


@pytest.fixture
def trickle():
    servers: list[_Trickle] = []

    def make(*args, **kwargs) -> _Trickle:
        servers.append(_Trickle(*args, **kwargs))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def test_a_body_trickling_below_the_minimum_rate_fails(tmp_path, trickle):
    body = b"x" * 400
    srv = trickle(_head(len(body)), body, pause=0.02, slow_from=len(_head(len(body))))
    target = tmp_path / "dl" / "ml-test.zip"
    with pytest.raises(DownloadError, match="too slow") as info:
        fetch.download_file(srv.url, target, progress=False, min_rate=200, rate_window=0.5)
    assert "EMBSPACE_DOWNLOAD_MIN_RATE" in str(info.value)
    assert _leftovers(target.parent) == []


def test_trickled_headers_are_cut_off_by_the_deadline(tmp_path, trickle):
    # per-read timeouts never fire: a byte arrives every 20 ms
    srv = trickle(b"HTTP/1.1 200 OK\r\nX-Slow: " + b"y" * 2000, b"", pause=0.02)
    target = tmp_path / "dl" / "ml-test.zip"
    with pytest.raises(DownloadError, match=r"deadline of 0\.5 s"):
        fetch.download_file(srv.url, target, progress=False, deadline=0.5)
    assert _leftovers(target.parent) == []


def test_the_limits_come_from_the_environment(tmp_path, trickle, monkeypatch):
    monkeypatch.setenv("EMBSPACE_DOWNLOAD_MIN_RATE", "200")
    monkeypatch.setenv("EMBSPACE_DOWNLOAD_RATE_WINDOW", "0.5")
    assert fetch.download_limits() == (fetch.DEFAULT_DEADLINE, 200.0, 0.5)
    body = b"x" * 400
    head = _head(len(body))
    srv = trickle(head, body, pause=0.02, slow_from=len(head))
    with pytest.raises(DownloadError, match="too slow"):
        fetch.download_file(srv.url, tmp_path / "a.zip", progress=False)
    monkeypatch.setenv("EMBSPACE_DOWNLOAD_DEADLINE", "soon")
    with pytest.raises(InvalidParameterError, match="EMBSPACE_DOWNLOAD_DEADLINE"):
        fetch.download_limits()
    monkeypatch.delenv("EMBSPACE_DOWNLOAD_DEADLINE")
    with pytest.raises(InvalidParameterError, match="min_rate"):
        fetch.download_limits(min_rate=-1)


def test_a_fast_download_passes_the_limits(tmp_path, trickle):
    body = bytes(range(256)) * 64
    head = _head(len(body))
    srv = trickle(head, body, pause=0.0, slow_from=len(head) + len(body))
    target = fetch.download_file(
        srv.url, tmp_path / "ok.zip", progress=False, deadline=60, min_rate=1, rate_window=0.1
    )
    assert target.read_bytes() == body


def test_a_retry_removes_the_part_file_of_a_killed_download(tmp_path, trickle):
    target = tmp_path / "dl" / "ml-test.zip"
    target.parent.mkdir()
    # a download killed mid-way: its process is gone, its .part stays (unlocked)
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys\n"
            "from embspace._atomic import atomic_writer\n"
            "with atomic_writer(sys.argv[1], suffix='.part') as fh:\n"
            "    fh.write(b'half'); fh.flush()\n"
            "    os.kill(os.getpid(), 9)\n",
            str(target),
        ],
        env={**os.environ, "PYTHONPATH": PYTHON_DIR},
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL
    assert len([p for p in _leftovers(target.parent) if p.endswith(".part")]) == 1
    # a download of the same file under way in this process keeps its .part
    body = b"payload" * 100
    head = _head(len(body))
    srv = trickle(head, body, pause=0.0, slow_from=len(head) + len(body))
    (stale,) = _leftovers(target.parent)
    with _atomic.atomic_writer(target, suffix=".part") as in_flight:
        in_flight.write(b"other writer")
        (mine,) = set(_leftovers(target.parent)) - {stale}
        fetch.download_file(srv.url, target, progress=False)
        assert target.read_bytes() == body
        assert _leftovers(target.parent) == sorted([mine, "ml-test.zip"])
    # the other writer finished last: its content won, and nothing is left over
    assert _leftovers(target.parent) == ["ml-test.zip"]


# ----------------------------------------------------------------- the cache
def _pair(seed: int = 0):
    rng = np.random.default_rng(seed)
    users = Embeddings([f"u{i}" for i in range(5)], rng.normal(size=(5, 3)))
    items = Embeddings(list(range(4)), rng.normal(size=(4, 3)))
    return users, items


def _keys(cache: EmbeddingCache, n: int):
    m = sp.random(12, 9, density=0.5, random_state=1, format="csr")
    ratings = Ratings.from_csr(m)
    return [cache.key(ratings, WALS(factors=3, regularization=0.1 + i), i) for i in range(n)]


def test_clear_leaves_writes_under_way_alone(tmp_path):
    cache = EmbeddingCache(tmp_path)
    key = _keys(cache, 1)[0]
    stale = tmp_path / f".{key.digest}.npz.dead.tmp"  # left by a killed writer
    stale.write_bytes(b"half")
    with _atomic.atomic_writer(cache.path(key)) as fh:
        fh.write(b"an entry being written")
        (mine,) = set(_leftovers(tmp_path)) - {stale.name}
        assert cache.clear() == 0
        assert _leftovers(tmp_path) == [mine]  # the write under way keeps its file
    assert cache.path(key).read_bytes() == b"an entry being written"
    assert _leftovers(tmp_path) == [cache.path(key).name]


def test_clear_removes_what_a_killed_process_left(tmp_path):
    cache = EmbeddingCache(tmp_path)
    script = (
        "import sys, time\n"
        "from embspace._atomic import atomic_writer\n"
        "with atomic_writer(sys.argv[1]) as fh:\n"
        "    fh.write(b'x'); fh.flush(); print('ready', flush=True)\n"
        "    sys.stdin.read()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "abc.npz")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": PYTHON_DIR},
    )
    try:
        assert child.stdout.readline().strip() == b"ready"
        cache.clear()  # another process is writing: its file stays
        assert len(_leftovers(tmp_path)) == 1
        child.kill()
        child.wait(timeout=60)
        cache.clear()  # now it is a leftover
        assert _leftovers(tmp_path) == []
    finally:
        child.kill()
        child.wait(timeout=60)


def test_concurrent_writers_readers_and_clears(tmp_path):
    cache = EmbeddingCache(tmp_path)
    keys = _keys(cache, 6)
    users, items = _pair()
    errors: list[BaseException] = []
    stop = threading.Event()

    def guarded(fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # collected, re-raised below
                errors.append(exc)

        return run

    def write(key):
        for _ in range(5):
            assert cache.put(key, users, items) is not None

    def read():
        while not stop.is_set():
            for key in keys:
                run = cache.lookup(key)
                assert run is None or run.users.keys == users.keys

    def clear():
        while not stop.is_set():
            cache.clear()

    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)  # no failed write, no "corrupted" entry
        background = [threading.Thread(target=guarded(f)) for f in (read, read, clear)]
        writers = [threading.Thread(target=guarded(lambda k=k: write(k))) for k in keys]
        for t in background + writers:
            t.start()
        for t in writers:
            t.join()
        stop.set()
        for t in background:
            t.join()
    assert errors == []
    cache.clear()
    assert _leftovers(tmp_path) == []


def test_a_folder_at_an_entry_path(tmp_path):
    cache = EmbeddingCache(tmp_path)
    key = _keys(cache, 1)[0]
    cache.path(key).mkdir()
    (cache.path(key) / "keep.txt").write_text("not ours")
    assert cache.lookup(key) is None
    with pytest.warns(CacheWarning, match="cannot store the run"):
        assert cache.put(key, *_pair()) is None
    assert list(cache.entries()) == []
    assert cache.clear() == 0
    assert (cache.path(key) / "keep.txt").read_text() == "not ours"
    assert _leftovers(tmp_path) == [cache.path(key).name]


def _refuse_writes_under(monkeypatch, folder: Path, code: int = errno.EROFS) -> None:
    """``tempfile.mkstemp`` as :mod:`embspace._atomic` calls it fails with
    ``code`` in ``folder`` (a read-only or full disk there)."""
    real = _atomic.tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        where = Path(kwargs.get("dir") or ".").resolve()
        if where == folder.resolve() or folder.resolve() in where.parents:
            raise OSError(code, os.strerror(code), str(where))
        return real(*args, **kwargs)

    monkeypatch.setattr(_atomic.tempfile, "mkstemp", mkstemp)


def test_a_read_only_cache_keeps_the_training(tmp_path, monkeypatch, tiny):
    from embspace.sweeps import fit_cached

    cache = EmbeddingCache(tmp_path / "ro")
    _refuse_writes_under(monkeypatch, tmp_path / "ro")
    model = WALS(factors=4, iterations=2, random_state=0)
    with pytest.warns(CacheWarning, match="Read-only file system"):
        run = fit_cached(tiny, model, cache=cache)
    want = WALS(factors=4, iterations=2, random_state=0).fit(tiny, progress=False)
    np.testing.assert_array_equal(run.items.vectors, want.item_embeddings_.vectors)
    assert not run.cached and _leftovers(tmp_path / "ro") == []


# ----------------------------------------------------------------- archives
def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as zf:
        for name, data in members.items():
            if name.endswith("/"):
                zf.writestr(zipfile.ZipInfo(name), b"")
            else:
                zf.writestr(name, data)
    return buffer.getvalue()


def _extract(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "a.zip"
    path.write_bytes(data)
    return archive.extract_archive(path, tmp_path / "out" / "ds")


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_corrupted_compressed_data_is_a_format_error(tmp_path, method):
    payload = bytes(np.random.default_rng(0).integers(0, 50, 20000, dtype=np.uint8))
    data = bytearray(_zip({"ds/ratings.csv": payload}, method))
    start = data.find(b"ratings.csv") + len("ratings.csv") + 20  # inside the compressed stream
    for at in range(start, start + 400, 3):
        data[at] ^= 0xFF
    with pytest.raises(DatasetFormatError, match=r"ratings\.csv"):
        _extract(tmp_path, bytes(data))
    assert _leftovers(tmp_path / "out") == []


def test_an_unsupported_compression_method_is_a_format_error(tmp_path):
    data = bytearray(_zip({"ds/ratings.csv": b"userId,movieId,rating\n1,2,3\n"}))
    # method 98 (PPMd) in the local and the central header
    for sig, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = data.find(sig) + offset
        data[at : at + 2] = (98).to_bytes(2, "little")
    with pytest.raises(DatasetFormatError, match="compression method 98"):
        _extract(tmp_path, bytes(data))
    assert _leftovers(tmp_path / "out") == []


@pytest.mark.parametrize(
    "members",
    [
        {"ds/a": b"file", "ds/a/b.csv": b"x"},
        {"ds/a/b.csv": b"x", "ds/a": b"file"},
        {"ds/x/a": b"file", "ds/x/a/b/c.csv": b"x"},
    ],
)
def test_a_file_and_a_folder_of_one_name_are_refused(tmp_path, members):
    with pytest.raises(UnsafeArchiveError, match="needs that path as a folder"):
        _extract(tmp_path, _zip(members))
    assert _leftovers(tmp_path / "out") == []


# ----------------------------------------------------------------- tables and folders
def test_table_options_of_the_wrong_kind(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating\n1,2,3\n2,3,4\n")
    for kwargs, message in (
        ({"encoding": "no-such-codec"}, "unknown encoding"),
        ({"encoding": 8}, "encoding"),
        ({"sep": ""}, "sep must be a non-empty string"),
        ({"sep": b","}, "sep must be"),
        ({"items": [1, 2]}, "items must be a pandas DataFrame"),
    ):
        with pytest.raises(InvalidParameterError, match=message):
            load_ratings(path, **kwargs)
    for table in (42, None, [("a", 1, 2.0)], np.zeros((3, 3))):
        with pytest.raises(InvalidParameterError, match="path or a pandas DataFrame"):
            load_ratings(table)
    assert load_ratings(path, sep=",", encoding="latin-1").n_ratings == 2


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "latin-1"])
def test_item_files_decode_as_utf8_or_latin1(tmp_path, encoding):
    title = "Amélie (Le fabuleux destin d'Amélie Poulain) (2001)"
    ml1m = tmp_path / "ml-1m"
    ml1m.mkdir()
    (ml1m / "ratings.dat").write_text("1::4973::5::978300760\n")
    (ml1m / "movies.dat").write_bytes(f"4973::{title}::Comedy|Romance\n".encode(encoding))
    assert read_ml1m(ml1m)[1]["title"].tolist() == [title]
    ml100k = tmp_path / "ml-100k"
    ml100k.mkdir()
    (ml100k / "u.data").write_text("1\t1\t5\t874965758\n")
    flags = "|".join(["0"] * 18 + ["1"])
    (ml100k / "u.item").write_bytes(f"1|{title}|01-Jan-2001||http://x|{flags}\n".encode(encoding))
    assert read_ml100k(ml100k)[1]["title"].tolist() == [title]
    csv = tmp_path / "csv"
    csv.mkdir()
    (csv / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,4973,5.0,0\n")
    (csv / "movies.csv").write_bytes(
        f'movieId,title,genres\n4973,"{title}",Comedy\n'.encode(encoding)
    )
    assert read_csv_folder(csv)[1]["title"].tolist() == [title]


# ----------------------------------------------------------------- the command line
def test_damaged_embeddings_files_are_one_line_errors(tmp_path, capsys):
    good = Embeddings(["a", "b", "c"], np.eye(3)).save(tmp_path / "good.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(good.read_bytes()[:50])
    done = run_main(capsys, "compare", str(good), str(bad), "--measures", "cka", "-q")
    assert_one_line_error(done, "bad.npz", "not an embspace embeddings file")
    done = run_main(capsys, "neighbors", "--embeddings", str(bad), "a", "-q")
    assert_one_line_error(done, "bad.npz")


def test_os_errors_are_one_line_errors(tmp_path, capsys, monkeypatch):
    good = Embeddings(["a", "b", "c"], np.eye(3)).save(tmp_path / "good.npz")

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/somewhere/x.npz")

    monkeypatch.setattr("embspace.embeddings.Embeddings.load", no_space)
    done = run_main(capsys, "compare", str(good), str(good), "-q")
    assert_one_line_error(done, "No space left on device", "/somewhere/x.npz")


def test_train_into_a_read_only_folder_keeps_the_training(tmp_path, capsys, monkeypatch):
    out = tmp_path / "ro"
    out.mkdir()
    cache = tmp_path / "cache"
    _refuse_writes_under(monkeypatch, out)
    args = ["train", "-d", TINY, "--set", "iterations=2", "--cache-dir", str(cache), "-q", "--json"]
    done = run_main(capsys, *args, "--out", str(out / "items.npz"))
    assert_one_line_error(done, "Read-only file system", str(out))
    assert _leftovers(out) == []
    monkeypatch.undo()
    again = run_main(capsys, *args, "--out", str(tmp_path / "items.npz"))
    assert again.returncode == 0, again.stderr
    assert '"cached": true' in again.stdout  # the training was kept in the cache
    assert Embeddings.load(tmp_path / "items.npz").n == 300


def test_a_read_only_cache_folder_warns_and_trains(tmp_path, capsys, monkeypatch):
    _refuse_writes_under(monkeypatch, tmp_path / "cache")
    done = run_main(
        capsys,
        "train",
        *("-d", TINY, "--set", "iterations=2", "--cache-dir", str(tmp_path / "cache")),
        *("--out", str(tmp_path / "items.npz")),
    )
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "warning" in line]
    assert len(warned) == 1 and warned[0].startswith("embspace: warning: cannot store the run")
    assert Embeddings.load(tmp_path / "items.npz").n == 300


def _subprocess_cli(args: list[str], *, prelude: str = "", env=None) -> subprocess.CompletedProcess:
    code = f"import sys\n{prelude}\nfrom embspace.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": PYTHON_DIR, **(env or {})},
        stdin=subprocess.DEVNULL,
        timeout=600,
    )


@pytest.mark.skipif(os.name != "posix", reason="RLIMIT_FSIZE is POSIX")
def test_a_file_size_limit_during_train_is_one_line(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    prelude = (
        "import resource, signal\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
    )
    args = ["train", "-d", TINY, "--set", "iterations=2", "--no-cache", "-q"]
    done = _subprocess_cli([*args, "--out", str(out / "items.npz")], prelude=prelude)
    assert_one_line_error(done, "File too large")
    assert _leftovers(out) == []


def _private_mounts() -> bool:
    if shutil.which("unshare") is None or not sys.platform.startswith("linux"):
        return False
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", "mount -t tmpfs tmpfs /mnt"],
        capture_output=True,
        timeout=60,
    )
    return probe.returncode == 0


needs_mounts = pytest.mark.skipif(
    not _private_mounts(), reason="no private mount namespace (unshare -m) to mount a tmpfs in"
)


def _in_mount(mnt: Path, options: str, args: list[str], *, then_ro: bool = False):
    """``embspace ARGS`` in a private mount namespace where ``mnt`` is a fresh
    tmpfs (``options``), remounted read-only first when ``then_ro``."""
    mount = f"mount -t tmpfs -o {options} tmpfs {mnt}"
    if then_ro:
        mount += f" && mount -o remount,ro {mnt}"
    cli = " ".join([sys.executable, "-m", "embspace", *(f"'{a}'" for a in args)])
    return subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", f"{mount} && exec {cli}"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": PYTHON_DIR},
        stdin=subprocess.DEVNULL,
        timeout=600,
    )


@needs_mounts
def test_a_full_disk_during_a_sweep_keeps_the_trainings(tmp_path, capsys):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cache = tmp_path / "cache"
    sweep = [
        "sweep",
        *("-d", TINY, "--set", "iterations=2", "--cache-dir", str(cache)),
        *("--param", "regularization", "--values", "0.05,0.1", "--measures", "cka"),
    ]
    done = _in_mount(mnt, "size=16k", [*sweep, "-q", "--out", str(mnt / "results")])
    assert_one_line_error(done, "No space left on device", str(mnt))
    # the trainings were kept: the same sweep with room to write loads them
    again = run_main(capsys, *sweep, "--out", str(tmp_path / "results"))
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("loaded from the cache") == 6  # 2 values x 3 seeds (the default)


@needs_mounts
def test_train_onto_a_read_only_disk(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    args = ["train", "-d", TINY, "--set", "iterations=2", "--no-cache", "-q"]
    done = _in_mount(mnt, "size=1m", [*args, "--out", str(mnt / "items.npz")], then_ro=True)
    assert_one_line_error(done, "Read-only file system", str(mnt))


def test_the_frame_reader_refuses_mixed_ids_through_load_ratings():
    frame = pd.DataFrame({"user": [1, "1", 2], "item": [1, 2, 3], "rating": [1.0, 2.0, 3.0]})
    with pytest.raises(InvalidParameterError, match="mixes id types"):
        load_ratings(frame)
