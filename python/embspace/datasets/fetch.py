"""Streamed, verified downloads that never leave a partial file behind.

:func:`download_file` streams a URL into a temporary file beside the target
while hashing it, checks the exact size and sha256, and only then renames the
file onto the target (``os.replace``, atomic on one filesystem). Any failure,
including ``KeyboardInterrupt``, removes the temporary file.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from tqdm.auto import tqdm

from .._atomic import atomic_writer
from ..errors import ChecksumError, DownloadError

__all__ = ["download_file", "sha256_of", "verify_file"]

_CHUNK = 1 << 20  # bytes read per step


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
) -> Path:
    """Download ``url`` to ``target`` and return ``target``.

    ``size`` (bytes) and ``sha256`` (hex), when given, must match exactly, or
    :class:`~embspace.errors.ChecksumError` is raised. A network failure or a
    transfer cut short raises :class:`~embspace.errors.DownloadError`. In every
    failure case nothing is left at ``target`` or beside it. ``timeout`` is in
    seconds per blocking network operation.
    """
    target = Path(target)
    digest = ""

    def verify() -> None:
        if sha256 is not None and digest != sha256.lower():
            raise ChecksumError(
                f"{url} has sha256 {digest}, expected {sha256.lower()}: "
                "the file is corrupt or not the official one"
            )

    with atomic_writer(target, suffix=".part", check=verify) as out:
        digest = _stream(url, out, size=size, progress=progress, desc=desc, timeout=timeout)
    return target


def _stream(
    url: str,
    out: BinaryIO,
    *,
    size: int | None,
    progress: bool,
    desc: str | None,
    timeout: float,
) -> str:
    """Copy the body of ``url`` into the binary file ``out``; return its sha256."""
    from .._core import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"embspace/{__version__}"})
    digest = hashlib.sha256()
    received = 0
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"downloading {url} failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot download {url}: {reason}") from None
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
                    chunk = response.read(_CHUNK)
                except (http.client.HTTPException, OSError) as exc:
                    raise DownloadError(
                        f"download of {url} failed after {received:,} bytes: {exc!r}"
                    ) from None
                if not chunk:
                    break
                received += len(chunk)
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
