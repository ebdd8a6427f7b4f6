"""Streamed, verified downloads that never leave a partial file behind, and
never hang.

:func:`download_file` streams a URL into a temporary file beside the target
while hashing it, checks the exact size and sha256, and only then renames the
file onto the target (``os.replace``, atomic on one filesystem). Any failure,
including ``KeyboardInterrupt``, removes the temporary file; the ``.part``
files of downloads that were killed (and so could not clean up) are removed by
the next download of the same target.

Three limits stop a download that does not progress, each a
:class:`~embspace.errors.DownloadError`:

``timeout``
    seconds any single network operation may block (connect, one read).
``deadline``
    seconds the whole download may take, headers included (default
    ``$EMBSPACE_DOWNLOAD_DEADLINE``, else 3600). A watchdog shuts the
    connection down when it passes, so even a server that trickles its
    headers is cut off.
``min_rate``
    bytes per second the transfer must average over every window of
    ``rate_window`` seconds once the body flows (defaults
    ``$EMBSPACE_DOWNLOAD_MIN_RATE``, else 1024, and
    ``$EMBSPACE_DOWNLOAD_RATE_WINDOW``, else 30). A server that sends one byte
    every few seconds never trips the per-read timeout, but fails this rule.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from typing import Any, BinaryIO

from tqdm.auto import tqdm

from .._atomic import atomic_writer, remove_stale_temps, temp_pattern
from .._params import check_number
from ..errors import ChecksumError, DownloadError, InvalidParameterError

__all__ = ["download_file", "download_limits", "sha256_of", "verify_file"]

_CHUNK = 1 << 20  # most bytes read per step

#: Defaults of the limits (see the module docstring), in seconds and bytes/s.
DEFAULT_DEADLINE = 3600.0
DEFAULT_MIN_RATE = 1024.0
DEFAULT_RATE_WINDOW = 30.0


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidParameterError(f"${name} must be a number, got {raw!r}") from None
    return check_number(value, f"${name}", low=0.0)


def download_limits(
    deadline: float | None = None,
    min_rate: float | None = None,
    rate_window: float | None = None,
) -> tuple[float, float, float]:
    """``(deadline, min_rate, rate_window)``: the arguments given, else the
    environment variables, else the defaults. A ``deadline`` or ``min_rate``
    of 0 switches that rule off."""
    d = (
        _env_number("EMBSPACE_DOWNLOAD_DEADLINE", DEFAULT_DEADLINE)
        if deadline is None
        else deadline
    )
    r = (
        _env_number("EMBSPACE_DOWNLOAD_MIN_RATE", DEFAULT_MIN_RATE)
        if min_rate is None
        else min_rate
    )
    w = (
        _env_number("EMBSPACE_DOWNLOAD_RATE_WINDOW", DEFAULT_RATE_WINDOW)
        if rate_window is None
        else rate_window
    )
    return (
        check_number(d, "deadline", low=0.0),
        check_number(r, "min_rate", low=0.0),
        check_number(w, "rate_window", low=0.0, low_open=True),
    )


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex sha256 digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: str | os.PathLike[str], size: int, sha256: str) -> None:
    """Raise :class:`~embspace.errors.ChecksumError` unless ``path`` has exactly
    ``size`` bytes and the sha256 digest ``sha256`` (hex)."""
    actual = os.path.getsize(path)
    if actual != size:
        raise ChecksumError(f"{path} has {actual:,} bytes, expected {size:,}")
    digest = sha256_of(path)
    if digest != sha256.lower():
        raise ChecksumError(f"{path} has sha256 {digest}, expected {sha256.lower()}")


def download_file(
    url: str,
    target: str | os.PathLike[str],
    *,
    size: int | None = None,
    sha256: str | None = None,
    progress: bool = True,
    desc: str | None = None,
    timeout: float = 60.0,
    deadline: float | None = None,
    min_rate: float | None = None,
    rate_window: float | None = None,
) -> Path:
    """Download ``url`` to ``target`` and return ``target``.

    ``size`` (bytes) and ``sha256`` (hex), when given, must match exactly, or
    :class:`~embspace.errors.ChecksumError` is raised. A network failure, a
    transfer cut short, or one that breaks a limit (``timeout`` seconds per
    blocking operation, ``deadline`` seconds in all, ``min_rate`` bytes/s
    over every ``rate_window`` seconds: see the module docstring and
    :func:`download_limits`) raises :class:`~embspace.errors.DownloadError`.
    In every failure case nothing is left at ``target`` or beside it.
    """
    target = Path(target)
    timeout = check_number(timeout, "timeout", low=0.0, low_open=True)
    limits = download_limits(deadline, min_rate, rate_window)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target.parent, temp_pattern(target, ".part"))
    digest = ""

    def verify() -> None:
        if sha256 is not None and digest != sha256.lower():
            raise ChecksumError(
                f"{url} has sha256 {digest}, expected {sha256.lower()}: "
                "the file is corrupt or not the official one"
            )

    with atomic_writer(target, suffix=".part", check=verify) as out:
        digest = _stream(
            url, out, size=size, progress=progress, desc=desc, timeout=timeout, limits=limits
        )
    return target


class _Watchdog:
    """Shuts the connection's socket down once ``seconds`` have passed, so a
    read blocked on a server that sends too little returns at once."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire) if seconds > 0 else None
        if self._timer is not None:
            self._timer.daemon = True
            self._timer.start()

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            if self.expired:
                _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            if self._sock is not None:
                _shutdown(self._sock)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


def _opener(watch: _Watchdog) -> urllib.request.OpenerDirector:
    """A urllib opener whose connections report their socket to ``watch``."""

    def watched(cls: Any) -> Any:
        class Watched(cls):
            def connect(self) -> None:
                super().connect()
                watch.attach(self.sock)

        return Watched

    class Http(urllib.request.HTTPHandler):
        def do_open(self, http_class: Any, req: Any, **kw: Any) -> Any:
            return super().do_open(watched(http_class), req, **kw)

    class Https(urllib.request.HTTPSHandler):
        def do_open(self, http_class: Any, req: Any, **kw: Any) -> Any:
            return super().do_open(watched(http_class), req, **kw)

    return urllib.request.build_opener(Http, Https)


def _stream(
    url: str,
    out: BinaryIO,
    *,
    size: int | None,
    progress: bool,
    desc: str | None,
    timeout: float,
    limits: tuple[float, float, float],
) -> str:
    """Copy the body of ``url`` into the binary file ``out``; return its sha256."""
    deadline, min_rate, window = limits
    watch = _Watchdog(deadline)
    try:
        return _stream_watched(url, out, size, progress, desc, timeout, watch, min_rate, window)
    except DownloadError:
        if watch.expired:
            raise DownloadError(
                f"download of {url} did not finish within the deadline of {deadline:g} s "
                "(EMBSPACE_DOWNLOAD_DEADLINE)"
            ) from None
        raise
    finally:
        watch.cancel()


def _stream_watched(
    url: str,
    out: BinaryIO,
    size: int | None,
    progress: bool,
    desc: str | None,
    timeout: float,
    watch: _Watchdog,
    min_rate: float,
    window: float,
) -> str:
    from .._core import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"embspace/{__version__}"})
    digest = hashlib.sha256()
    received = 0
    try:
        response = _opener(watch).open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"downloading {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot download {url}: {reason}") from None
    # (time, bytes received so far) now and then: the rate over the last window
    marks: deque[tuple[float, int]] = deque([(time.monotonic(), 0)])
    with response:
        announced = response.headers.get("Content-Length")
        announced_size = int(announced) if announced and announced.isdigit() else None
        if size is not None and announced_size is not None and announced_size != size:
            raise ChecksumError(
                f"{url} is {announced_size:,} bytes but the expected file has {size:,}"
            )
        total = size if size is not None else announced_size
        with tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=desc or f"downloading {url.rsplit('/', 1)[-1]}",
            disable=not progress,
            leave=False,
        ) as bar:
            while True:
                try:
                    # read1: whatever has arrived (at most _CHUNK), so the
                    # limits are checked between the bytes of a slow server
                    chunk = response.read1(_CHUNK)
                except (http.client.HTTPException, OSError, ValueError) as exc:
                    raise DownloadError(
                        f"download of {url} failed after {received:,} bytes: {exc!r}"
                    ) from None
                if watch.expired:
                    raise DownloadError(f"download of {url} passed its deadline")
                if not chunk:
                    break
                received += len(chunk)
                _check_rate(url, marks, received, min_rate, window)
                if size is not None and received > size:
                    raise ChecksumError(f"{url} sent more than the expected {size:,} bytes")
                digest.update(chunk)
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise DownloadError(f"cannot write the download of {url}: {exc}") from None
                bar.update(len(chunk))
    expected = announced_size if announced_size is not None else size
    if expected is not None and received < expected:
        raise DownloadError(
            f"download of {url} was cut short: {received:,} of {expected:,} bytes received"
        )
    if size is not None and received != size:
        raise ChecksumError(f"{url} has {received:,} bytes, expected {size:,}")
    return digest.hexdigest()


def _check_rate(
    url: str, marks: deque[tuple[float, int]], received: int, min_rate: float, window: float
) -> None:
    """DownloadError when fewer than ``min_rate * window`` bytes arrived in the
    last ``window`` seconds (checked once a whole window has passed)."""
    if min_rate <= 0:
        return
    now = time.monotonic()
    if now - marks[-1][0] >= window / 64:  # a bounded number of reference points
        marks.append((now, received))
    # keep the newest mark at least a window old as the reference point
    while len(marks) > 2 and now - marks[1][0] >= window:
        marks.popleft()
    since, then = marks[0]
    if now - since >= window and (received - then) < min_rate * (now - since):
        rate = (received - then) / (now - since)
        raise DownloadError(
            f"download of {url} is too slow: {rate:,.1f} bytes/s over the last "
            f"{now - since:.0f} s, below the minimum of {min_rate:g} bytes/s "
            "(EMBSPACE_DOWNLOAD_MIN_RATE)"
        )
