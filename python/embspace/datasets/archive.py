"""Safe zip extraction.

Every member is checked before anything is written: no absolute paths or
drive letters, no ``..`` components, no symlinks or other non-regular members,
no repeated names, no file whose path is also a folder of another member, only
compression methods this Python can read, and the archive must not expand past
a bound (total bytes, and the compression ratio of large members and of the
whole archive). Damaged data found while extracting (a bad CRC, corrupted
deflate, lzma or bzip2 streams) is a :class:`~embspace.errors.DatasetFormatError`. The
members are then written into a temporary folder beside the destination and
that folder is renamed onto the destination, so the destination either does
not exist or is complete.
"""

from __future__ import annotations

import lzma
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from tqdm.auto import tqdm

from ..errors import DatasetFormatError, UnsafeArchiveError

__all__ = ["MAX_EXTRACTED_BYTES", "MAX_MEMBERS", "MAX_RATIO", "check_archive", "extract_archive"]

#: Largest total uncompressed size accepted, in bytes (ml-25m expands to ~1.2 GB).
MAX_EXTRACTED_BYTES = 8 << 30
#: Largest compression ratio (uncompressed / compressed) accepted for a member
#: larger than :data:`_RATIO_FLOOR` bytes and for the whole archive. MovieLens
#: text compresses about 3-6x; a zip bomb reaches ~1000x.
MAX_RATIO = 100.0
#: Most members accepted.
MAX_MEMBERS = 100_000
# Members smaller than this may compress arbitrarily well (tiny repetitive files).
_RATIO_FLOOR = 1 << 20
_CHUNK = 1 << 20
#: Compression methods zipfile reads (the others raise NotImplementedError).
_METHODS = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
}
#: What reading a damaged member raises (bz2 reports bad data as OSError or
#: ValueError; errors while *writing* the extracted files are not caught).
_DAMAGE = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
)


@dataclass(frozen=True)
class _Member:
    info: zipfile.ZipInfo
    parts: tuple[str, ...]  # safe relative path components
    is_dir: bool


def _safe_parts(name: str) -> tuple[str, ...]:
    """The components of a member name, or UnsafeArchiveError if it could escape."""
    if "\x00" in name:
        raise UnsafeArchiveError(f"archive member {name!r} has a NUL byte in its name")
    unified = name.replace("\\", "/")
    if unified.startswith("/") or PureWindowsPath(name).drive or PureWindowsPath(name).root:
        raise UnsafeArchiveError(f"archive member {name!r} has an absolute path")
    parts = tuple(p for p in PurePosixPath(unified).parts if p not in ("", "."))
    if ".." in parts:
        raise UnsafeArchiveError(f"archive member {name!r} points outside the archive (..)")
    return parts


def check_archive(
    zf: zipfile.ZipFile,
    *,
    max_total_bytes: int = MAX_EXTRACTED_BYTES,
    max_ratio: float = MAX_RATIO,
    max_members: int = MAX_MEMBERS,
) -> list[_Member]:
    """Validate every member of ``zf`` (see the module docstring) and return
    them with their safe relative paths. Raises
    :class:`~embspace.errors.UnsafeArchiveError` on the first violation."""
    infos = zf.infolist()
    if len(infos) > max_members:
        raise UnsafeArchiveError(f"archive has {len(infos):,} members, more than {max_members:,}")
    members: list[_Member] = []
    seen: set[tuple[str, ...]] = set()
    files: dict[tuple[str, ...], str] = {}
    folders: dict[tuple[str, ...], str] = {}
    total = compressed = 0
    for info in infos:
        parts = _safe_parts(info.filename)
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(f"archive member {info.filename!r} is a symbolic link")
        is_dir = info.is_dir() or kind == stat.S_IFDIR
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeArchiveError(f"archive member {info.filename!r} is not a regular file")
        if is_dir and info.file_size:
            raise UnsafeArchiveError(f"archive member {info.filename!r} is a folder with data")
        if info.flag_bits & 0x1:
            raise DatasetFormatError(f"archive member {info.filename!r} is encrypted")
        if not parts:
            if is_dir:
                continue
            raise UnsafeArchiveError(f"archive member {info.filename!r} has an empty path")
        if parts in seen:
            raise UnsafeArchiveError(f"archive member {info.filename!r} occurs more than once")
        seen.add(parts)
        if not is_dir and info.compress_type not in _METHODS:
            raise DatasetFormatError(
                f"archive member {info.filename!r} uses compression method "
                f"{info.compress_type}, which cannot be read (supported: "
                f"{', '.join(_METHODS.values())})"
            )
        # a path that is a file for one member and a folder for another
        for depth in range(1, len(parts) + (1 if is_dir else 0)):
            folders.setdefault(parts[:depth], info.filename)
            if parts[:depth] in files:
                _clash(files[parts[:depth]], info.filename)
        if not is_dir:
            if parts in folders:
                _clash(info.filename, folders[parts])
            files[parts] = info.filename
        if info.file_size > _RATIO_FLOOR and info.file_size > max_ratio * max(
            info.compress_size, 1
        ):
            raise UnsafeArchiveError(
                f"archive member {info.filename!r} expands {info.file_size / max(info.compress_size, 1):,.0f}x "
                f"({info.compress_size:,} -> {info.file_size:,} bytes), more than the bound {max_ratio:g}x"
            )
        total += info.file_size
        compressed += info.compress_size
        if total > max_total_bytes:
            raise UnsafeArchiveError(
                f"archive expands to more than {max_total_bytes:,} bytes (the bound)"
            )
        members.append(_Member(info, parts, is_dir))
    if total > _RATIO_FLOOR and total > max_ratio * max(compressed, 1):
        raise UnsafeArchiveError(
            f"archive expands {total / max(compressed, 1):,.0f}x ({compressed:,} -> {total:,} bytes), "
            f"more than the bound {max_ratio:g}x"
        )
    return members


def _clash(file: str, other: str) -> None:
    raise UnsafeArchiveError(
        f"archive member {file!r} is a file, but {other!r} needs that path as a folder"
    )


def extract_archive(
    zip_path: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    max_total_bytes: int = MAX_EXTRACTED_BYTES,
    max_ratio: float = MAX_RATIO,
    progress: bool = False,
) -> Path:
    """Extract ``zip_path`` safely so that ``dest`` becomes the dataset folder.

    When the archive holds a single top-level folder (as the MovieLens zips
    do), that folder's content becomes ``dest``; otherwise the archive's whole
    content does. ``dest`` must not exist yet (if another process created it
    meanwhile, that complete copy is kept). Returns ``dest``.

    Raises :class:`~embspace.errors.UnsafeArchiveError` for an unsafe archive
    (nothing is written then) and :class:`~embspace.errors.DatasetFormatError`
    for a file that is not a readable zip.
    """
    dest = Path(dest)
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetFormatError(f"{zip_path} is not a readable zip archive: {exc}") from None
    with zf:
        members = check_archive(zf, max_total_bytes=max_total_bytes, max_ratio=max_ratio)
        dest.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".extract", dir=dest.parent))
        try:
            total = sum(m.info.file_size for m in members)
            with tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"extracting {Path(zip_path).name}",
                disable=not progress,
                leave=False,
            ) as bar:
                written = 0
                for member in members:
                    target = work.joinpath(*member.parts)
                    if member.is_dir:
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    written += _copy_member(zf, member, target, max_total_bytes - written, bar)
            root = _single_top_folder(work)
            try:
                os.rename(root, dest)
            except OSError:
                if not dest.is_dir():
                    raise
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error) as exc:
            raise DatasetFormatError(f"{zip_path} is a damaged zip archive: {exc}") from None
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return dest


def _copy_member(zf: zipfile.ZipFile, member: _Member, target: Path, budget: int, bar: tqdm) -> int:
    """Write one member; refuse it if it yields more bytes than declared or than ``budget``."""
    written = 0
    limit = min(member.info.file_size, budget)
    name = member.info.filename
    try:
        src = zf.open(member.info)
    except _DAMAGE as exc:
        raise DatasetFormatError(f"archive member {name!r} cannot be read: {exc}") from None
    with src, open(target, "xb") as out:
        while True:
            try:
                chunk = src.read(_CHUNK)
            except _DAMAGE as exc:
                raise DatasetFormatError(f"archive member {name!r} is damaged: {exc}") from None
            if not chunk:
                break
            written += len(chunk)
            if written > limit:
                raise UnsafeArchiveError(
                    f"archive member {member.info.filename!r} expands past its declared size "
                    "or the bound"
                )
            out.write(chunk)
            bar.update(len(chunk))
    return written


def _single_top_folder(work: Path) -> Path:
    """The one top-level folder of the extracted tree (macOS ``__MACOSX`` ignored), else ``work``."""
    entries = [e for e in work.iterdir() if e.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return work
