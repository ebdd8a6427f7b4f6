"""MovieLens datasets: finding a registry dataset, downloading it, reading a
MovieLens folder or zip into :class:`~embspace.Ratings`.

:func:`embspace.datasets.load` is the front door; this module serves it for
registry names, folders and zips. A registry name is looked up in this order:

1. ``EMBSPACE_DATA_DIR/<name>/`` (an extracted folder, read in place);
2. ``EMBSPACE_DATA_DIR/<name>.zip`` (verified against the registry's size and
   sha256, then extracted into the cache, unless the cache already has it);
3. the cache folder ``<cache>/<name>/``;
4. a download of ``<name>.zip`` from ``EMBSPACE_MIRROR`` or GroupLens:
   streamed to a temporary file in the cache folder, verified, extracted
   safely into a temporary folder, renamed into place. On any failure the
   cache is left as it was.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import UnknownDatasetError
from ..paths import cache_dir, data_dir
from ..ratings import Ratings
from . import registry
from .archive import extract_archive
from .fetch import download_file, sha256_of, verify_file
from .folders import cached_folder, download_base
from .readers import read_folder, resolve_folder
from .registry import DatasetInfo

__all__ = [
    "DatasetStatus",
    "download",
    "info",
    "list_datasets",
    "load_registered",
    "locate",
    "read_movielens",
]

#: States reported by :func:`list_datasets`.
STATES = ("data dir", "cached", "not downloaded")


@dataclass(frozen=True)
class DatasetStatus:
    """Where a registry dataset stands on this machine.

    ``size`` is the zip's size in bytes; ``state`` is ``"data dir"`` (found in
    ``EMBSPACE_DATA_DIR``), ``"cached"`` or ``"not downloaded"``; ``path`` is
    the folder or zip found (None when not downloaded)."""

    name: str
    size: int
    state: str
    path: Path | None
    description: str


def info(name: str) -> DatasetInfo:
    """The registry entry of ``name``; :class:`~embspace.errors.UnknownDatasetError` if none."""
    try:
        return registry.REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownDatasetError(
            f"unknown dataset {name!r}; known datasets: {', '.join(registry.names())}"
        ) from None


def locate(name: str) -> DatasetStatus:
    """Where dataset ``name`` would be loaded from, without reading or downloading."""
    entry = info(name)
    base = data_dir()
    if base is not None:
        folder, archive = base / name, base / entry.filename
        if folder.is_dir():
            return DatasetStatus(name, entry.size, "data dir", folder, entry.description)
        if archive.is_file():
            return DatasetStatus(name, entry.size, "data dir", archive, entry.description)
    cached = cached_folder(name)
    if cached.is_dir():
        return DatasetStatus(name, entry.size, "cached", cached, entry.description)
    return DatasetStatus(name, entry.size, "not downloaded", None, entry.description)


def list_datasets() -> list[DatasetStatus]:
    """Every registry dataset with its size and state, in registry order."""
    return [locate(name) for name in registry.names()]


def download(name: str, *, progress: bool = True) -> Path:
    """Make dataset ``name`` available locally and return its folder.

    Uses the data folder or the cache when they have it; otherwise downloads,
    verifies and extracts it into the cache (see the module docstring)."""
    return _materialize(info(name), progress=progress)


def _materialize(entry: DatasetInfo, *, progress: bool) -> Path:
    status = locate(entry.name)
    if status.state == "data dir" and status.path is not None and status.path.is_dir():
        return status.path
    target = cached_folder(entry.name)
    if target.is_dir():
        return target
    if status.state == "data dir" and status.path is not None:  # a zip in the data folder
        verify_file(status.path, entry.size, entry.sha256)
        return extract_archive(status.path, target, progress=progress)
    cache = cache_dir(create=True)
    url = f"{download_base()}/{entry.filename}"
    with tempfile.TemporaryDirectory(
        prefix=f".{entry.name}.", suffix=".download", dir=cache
    ) as work:
        archive = download_file(
            url,
            Path(work) / entry.filename,
            size=entry.size,
            sha256=entry.sha256,
            progress=progress,
            desc=f"downloading {entry.filename}",
        )
        return extract_archive(archive, target, progress=progress)


def _read(folder: Path, name: str, duplicates: str) -> Ratings:
    ratings, items = read_folder(folder)
    return Ratings.from_frame(
        ratings,
        user="userId",
        item="movieId",
        rating="rating",
        items=items,
        duplicates=duplicates,
        name=name,
    )


def _load_zip(path: Path, *, duplicates: str, progress: bool) -> Ratings:
    """A zip given by path: a registry dataset if its name, size and digest say
    so, else extracted into the cache under ``<stem>-<sha256 prefix>``."""
    stem = path.name[: -len(".zip")] if path.name.lower().endswith(".zip") else path.stem
    digest = sha256_of(path)
    entry = registry.REGISTRY.get(stem)
    if entry is not None and entry.size == path.stat().st_size and entry.sha256 == digest:
        target = cached_folder(stem)
    else:
        target = cached_folder(f"{stem}-{digest[:16]}")
    if not target.is_dir():
        extract_archive(path, target, progress=progress)
    return _read(target, stem, duplicates)


def load_registered(name: str, *, duplicates: str = "error", progress: bool = True) -> Ratings:
    """The registry dataset ``name``, from the data folder, the cache or a
    download (in that order; see the module docstring)."""
    entry = info(name)
    return _read(_materialize(entry, progress=progress), entry.name, duplicates)


def read_movielens(path: Path, *, duplicates: str = "error", progress: bool = True) -> Ratings:
    """A MovieLens folder (format detected from its files) or a zip of one."""
    if path.is_dir():
        folder, _ = resolve_folder(path)
        return _read(folder, path.resolve().name, duplicates)
    return _load_zip(path, duplicates=duplicates, progress=progress)
