"""Readers of the MovieLens folder formats, detected from the files present.

Every reader returns ``(ratings, items)``: ``ratings`` a DataFrame with columns
``userId`` (int64), ``movieId`` (int64) and ``rating`` (float32); ``items`` a
DataFrame with ``movieId``, ``title`` and ``genres`` (``|``-joined labels), or
None when the folder has no item file (an
:class:`~embspace.errors.EmbspaceWarning` then names the file looked for).

Formats:

``ml-100k``
    ``u.data`` (tab separated: user, item, rating, timestamp) and ``u.item``
    (``|`` separated, latin-1: id, title, release date, video date, IMDb URL,
    then one 0/1 flag per genre in the order of ``u.genre``).
``ml-1m`` (also ml-10m)
    ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``) and ``movies.dat``
    (``MovieID::Title::Genres``), latin-1.
``csv`` (ml-latest-small, ml-latest, ml-20m, ml-25m)
    ``ratings.csv`` and ``movies.csv`` with headers, UTF-8, quoted titles.

The item files are decoded by one rule (:func:`text_encoding`), whatever the
format's official encoding: UTF-8 when the bytes are valid UTF-8 (a byte-order
mark is dropped), else latin-1. A folder re-saved as UTF-8 then reads
``Amélie`` as ``Amélie``, not ``AmÃ©lie``, and the official latin-1 files, which
are not valid UTF-8 as soon as they hold an accent, read as before.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DatasetFormatError, EmbspaceWarning, MissingFileError

__all__ = [
    "ML100K_GENRES",
    "decode_text",
    "detect_format",
    "read_csv_folder",
    "read_folder",
    "read_ml1m",
    "read_ml100k",
    "resolve_folder",
    "text_encoding",
]

#: The 19 genres of ml-100k, in the order of its ``u.genre`` and ``u.item`` flags.
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

_RATING_NAMES = ["userId", "movieId", "rating", "timestamp"]
_RATING_DTYPES = {"userId": "int64", "movieId": "int64", "rating": "float32"}
_MARKERS = {"csv": "ratings.csv", "ml-100k": "u.data", "ml-1m": "ratings.dat"}

Frames = tuple[pd.DataFrame, pd.DataFrame | None]


def decode_text(raw: bytes) -> tuple[str, str]:
    """``(text, encoding)``: ``raw`` as UTF-8 when it is valid UTF-8 (a leading
    byte-order mark dropped), else as latin-1 (which decodes any bytes)."""
    try:
        return raw.decode("utf-8-sig"), "utf-8-sig"
    except UnicodeDecodeError:
        return raw.decode("latin-1"), "latin-1"


def text_encoding(path: Path) -> str:
    """The encoding :func:`decode_text` picks for the file ``path``."""
    return decode_text(path.read_bytes())[1]


def _format_in(folder: Path) -> str | None:
    for fmt, marker in _MARKERS.items():
        if (folder / marker).is_file():
            return fmt
    return None


def resolve_folder(folder: str | os.PathLike[str]) -> tuple[Path, str]:
    """``(folder, format)`` of a dataset folder. A folder whose only entry is
    another folder (a zip extracted one level too deep) is looked into."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetFormatError(f"{folder} is not a folder")
    fmt = _format_in(folder)
    if fmt is None:
        entries = [e for e in folder.iterdir() if not e.name.startswith((".", "__MACOSX"))]
        if len(entries) == 1 and entries[0].is_dir():
            inner = _format_in(entries[0])
            if inner is not None:
                return entries[0], inner
        seen = sorted(e.name for e in entries)[:12]
        raise DatasetFormatError(
            f"{folder} holds no MovieLens ratings file (ratings.csv, u.data or ratings.dat); "
            f"found {seen}"
        )
    return folder, fmt


def detect_format(folder: str | os.PathLike[str]) -> str:
    """``"csv"``, ``"ml-100k"`` or ``"ml-1m"``: the format of a dataset folder."""
    return resolve_folder(folder)[1]


def read_folder(folder: str | os.PathLike[str]) -> Frames:
    """Read a MovieLens folder of any supported format (see the module docstring)."""
    path, fmt = resolve_folder(folder)
    reader = {"csv": read_csv_folder, "ml-100k": read_ml100k, "ml-1m": read_ml1m}[fmt]
    return reader(path)


# --------------------------------------------------------------------------- csv
def read_csv_folder(folder: str | os.PathLike[str], *, engine: str | None = None) -> Frames:
    """``ratings.csv`` (+ ``movies.csv``) of ml-latest(-small), ml-20m, ml-25m.

    ``engine`` is pandas' CSV engine for the ratings: the default C engine
    reads ml-20m's 20M lines in about 3 s on one core with the least memory
    (``"pyarrow"`` gives the same frame)."""
    folder = Path(folder)
    path = folder / "ratings.csv"
    header = [h.strip().strip('"') for h in _first_line(path, "utf-8").split(",")]
    missing = [c for c in _RATING_NAMES[:3] if c not in header]
    if missing:
        raise DatasetFormatError(f"{path}: header {header} lacks column(s) {missing}")
    try:
        ratings = pd.read_csv(
            path,
            usecols=_RATING_NAMES[:3],
            dtype=_RATING_DTYPES,
            engine=engine or "c",
            encoding="utf-8",
        )
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(f"cannot read {path}: {exc}") from None
    ratings = ratings[_RATING_NAMES[:3]]
    movies = folder / "movies.csv"
    if not movies.is_file():
        _no_titles(movies)
        return ratings, None
    try:
        items = pd.read_csv(
            movies,
            dtype={"movieId": "int64", "title": str, "genres": str},
            keep_default_na=False,
            na_values=[],
            encoding=text_encoding(movies),
            engine="c",
        )
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(f"cannot read {movies}: {exc}") from None
    return ratings, _check_items(items, movies)


# ----------------------------------------------------------------------- ml-100k
def read_ml100k(folder: str | os.PathLike[str]) -> Frames:
    """``u.data`` (+ ``u.item``, ``u.genre``) of ml-100k."""
    folder = Path(folder)
    ratings = _read_numeric(folder / "u.data", "\t")
    item_path = folder / "u.item"
    if not item_path.is_file():
        _no_titles(item_path)
        return ratings, None
    genres = _ml100k_genres(folder / "u.genre")
    text, _ = decode_text(item_path.read_bytes())
    try:
        raw = pd.read_csv(
            io.StringIO(text),
            sep="|",
            header=None,
            dtype=str,
            quoting=csv.QUOTE_NONE,
            keep_default_na=False,
            na_values=[],
            engine="c",
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise DatasetFormatError(f"cannot read {item_path}: {exc}") from None
    n_flags = raw.shape[1] - 5
    if n_flags != len(genres):
        raise DatasetFormatError(
            f"{item_path} has {raw.shape[1]} fields per line; expected 5 + {len(genres)} genre flags"
        )
    flags = raw.iloc[:, 5:].to_numpy() == "1"
    labels = np.array(genres, dtype=object)
    try:
        ids = raw[0].astype("int64")
    except ValueError as exc:
        raise DatasetFormatError(f"{item_path}: bad movie id: {exc}") from None
    items = pd.DataFrame(
        {
            "movieId": ids,
            "title": raw[1].astype(str),
            "genres": ["|".join(labels[row]) for row in flags],
        }
    )
    return ratings, _check_items(items, item_path)


def _ml100k_genres(path: Path) -> tuple[str, ...]:
    """Genre labels ordered by flag index, from ``u.genre`` (``name|index`` lines)
    when present, else :data:`ML100K_GENRES`."""
    if not path.is_file():
        return ML100K_GENRES
    pairs: list[tuple[int, str]] = []
    for line in decode_text(path.read_bytes())[0].splitlines():
        if not line.strip():
            continue
        name, sep, index = line.rpartition("|")
        if not sep or not index.strip().isdigit():
            raise DatasetFormatError(f"{path}: bad line {line!r} (expected name|index)")
        pairs.append((int(index), name))
    pairs.sort()
    if [i for i, _ in pairs] != list(range(len(pairs))):
        raise DatasetFormatError(f"{path}: genre indices are not 0..{len(pairs) - 1}")
    return tuple(name for _, name in pairs)


# ------------------------------------------------------------------------- ml-1m
def read_ml1m(folder: str | os.PathLike[str]) -> Frames:
    """``ratings.dat`` (+ ``movies.dat``) of ml-1m / ml-10m (``::`` separated;
    ``movies.dat`` latin-1 officially, UTF-8 when it decodes as UTF-8)."""
    folder = Path(folder)
    ratings = _read_numeric(folder / "ratings.dat", "::")
    movies = folder / "movies.dat"
    if not movies.is_file():
        _no_titles(movies)
        return ratings, None
    ids: list[int] = []
    titles: list[str] = []
    genres: list[str] = []
    for number, line in enumerate(decode_text(movies.read_bytes())[0].splitlines(), 1):
        if not line.strip():
            continue
        # id::title::genres; the title may itself hold ':' (even a trailing one),
        # so split off the id on the left and the genres on the right.
        head, sep1, rest = line.partition("::")
        title, sep2, tail = rest.rpartition("::")
        if not (sep1 and sep2) or not head.strip().isdigit():
            raise DatasetFormatError(f"{movies}, line {number}: expected id::title::genres")
        ids.append(int(head))
        titles.append(title)
        genres.append(tail)
    items = pd.DataFrame(
        {"movieId": np.array(ids, dtype=np.int64), "title": titles, "genres": genres}
    )
    return ratings, _check_items(items, movies)


# ------------------------------------------------------------------------ shared
def _no_titles(path: Path) -> None:
    """Warn that the titles file ``path`` is missing (the items keep their ids as keys)."""
    warnings.warn(
        f"no titles file {path}: the items are keyed by their ids, with no titles or genres",
        EmbspaceWarning,
        stacklevel=3,
    )


def _read_numeric(path: Path, sep: str) -> pd.DataFrame:
    """A headerless all-numeric ratings file (user, item, rating, timestamp)."""
    if not path.is_file():
        raise MissingFileError(f"{path} does not exist")
    source: str | os.PathLike[str] | io.BytesIO = path
    if len(sep) > 1:
        # pandas' C engine takes one-character separators only; ratings files are
        # numeric, so replacing the separator by a tab is exact and far faster
        # than the Python engine.
        raw = path.read_bytes()
        if b"\t" in raw:
            raise DatasetFormatError(f"{path}: unexpected tab in a {sep!r}-separated file")
        source = io.BytesIO(raw.replace(sep.encode(), b"\t"))
        sep = "\t"
    try:
        frame = pd.read_csv(
            source,
            sep=sep,
            header=None,
            names=_RATING_NAMES,
            usecols=_RATING_NAMES[:3],
            dtype=_RATING_DTYPES,
            engine="c",
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise DatasetFormatError(f"cannot read {path}: {exc}") from None
    return frame[_RATING_NAMES[:3]]


def _first_line(path: Path, encoding: str) -> str:
    if not path.is_file():
        raise MissingFileError(f"{path} does not exist")
    with open(path, encoding=encoding, errors="replace", newline="") as fh:
        return fh.readline().rstrip("\r\n").lstrip("\ufeff")


def _check_items(items: pd.DataFrame, path: Path) -> pd.DataFrame:
    missing = [c for c in ("movieId", "title", "genres") if c not in items.columns]
    if missing:
        raise DatasetFormatError(f"{path}: missing column(s) {missing}")
    items = items[["movieId", "title", "genres"]].reset_index(drop=True)
    dup = items["movieId"].duplicated()
    if dup.any():
        raise DatasetFormatError(
            f"{path}: movie id {int(items['movieId'][dup].iloc[0])} occurs more than once"
        )
    return items
