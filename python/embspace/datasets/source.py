"""The front door of :mod:`embspace.datasets`: one :func:`load` for every source.

A source is one of

* a registry name (``"ml-latest-small"``, ``"ml-100k"``, ``"ml-1m"``,
  ``"ml-20m"``, ``"ml-25m"``): :mod:`.movielens` finds or downloads it;
* ``"synthetic:..."``: MovieLens-shaped synthetic data (:func:`synthetic_spec`);
* a path: a MovieLens folder or zip (:mod:`.movielens`), or a ratings table
  file (CSV/TSV/parquet, :mod:`.tables`);
* a pandas DataFrame of (user, item, rating) rows (:mod:`.tables`).
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import InvalidParameterError, UnknownDatasetError
from ..jsonio import parse_literal
from ..ratings import Ratings
from . import registry
from .generator import synthetic
from .movielens import load_registered, read_movielens
from .tables import ratings_from_table

__all__ = ["SYNTHETIC_PREFIX", "load", "load_ratings", "synthetic_spec"]

#: The prefix of a synthetic dataset spec.
SYNTHETIC_PREFIX = "synthetic:"


def synthetic_spec(spec: str) -> dict[str, Any]:
    """The keyword arguments of :func:`~embspace.datasets.synthetic` named by a
    spec ``"synthetic:PRESET,key=value,..."`` (values parsed by
    :func:`embspace.jsonio.parse_literal`), e.g. ``"synthetic:tiny"`` or
    ``"synthetic:preset=ml-1m,seed=1"``."""
    if not spec.startswith(SYNTHETIC_PREFIX):
        raise InvalidParameterError(f"a synthetic spec starts with {SYNTHETIC_PREFIX!r}: {spec!r}")
    kwargs: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in spec[len(SYNTHETIC_PREFIX) :].split(","))):
        name, sep, raw = part.partition("=")
        if sep:
            kwargs[name.strip()] = parse_literal(raw)
        elif "preset" not in kwargs:
            kwargs["preset"] = name
        else:
            raise InvalidParameterError(f"bad synthetic dataset spec {spec!r}")
    return kwargs


def load(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    user: Hashable | None = None,
    item: Hashable | None = None,
    rating: Hashable | None = None,
    timestamp: Hashable | None = None,
    sep: str | None = None,
    encoding: str | None = None,
    items: pd.DataFrame | None = None,
    name: str | None = None,
    duplicates: str = "error",
    progress: bool = True,
    min_user_ratings: int = 1,
    min_item_ratings: int = 1,
) -> Ratings:
    """Ratings from a registry name, a ``synthetic:`` spec, a path or a DataFrame.

    Parameters
    ----------
    source : str, path or pandas.DataFrame
        A registry name (see :func:`~embspace.datasets.list_datasets`), found in
        ``EMBSPACE_DATA_DIR``, the cache, or downloaded and verified; a
        ``"synthetic:..."`` spec (:func:`synthetic_spec`); a MovieLens folder
        (format detected from its files) or a zip of one; a ratings table file
        (delimited text, optionally compressed, or parquet); or a DataFrame. A
        string equal to a registry name is the dataset; write ``./ml-100k`` for a
        folder of that name.
    user, item, rating : column label, optional
        Columns of a table (detected when omitted; positions 0, 1, 2, ... for a
        file without header). Not accepted for registry names, folders, zips.
        ``rating=False``: implicit feedback, no rating column; every (user,
        item) pair present rates 1.0 (also assumed for a table of exactly two
        columns; see :func:`~embspace.datasets.tables.ratings_from_table`).
    timestamp : column label, optional
        A column of times (numbers or dates) of a table: rows are put in time
        order first, so that ``duplicates="first"`` / ``"last"`` keep each
        pair's earliest / latest rating (the times are not kept).
    sep, encoding : str, optional
        Field separator (sniffed by default) and text encoding (UTF-8, falling
        back to latin-1) of a table file.
    items : pandas.DataFrame, optional
        Item metadata of a table (the item column plus ``title``, ``genres``).
    name : str, optional
        Name of the ratings of a table (default: the file's stem).
    duplicates : str
        Policy for repeated (user, item) pairs: ``"error"`` (default),
        ``"first"``, ``"last"``, ``"sum"``, ``"mean"``, ``"max"``.
    progress : bool
        Progress bars for downloads and extraction.
    min_user_ratings, min_item_ratings : int
        Keep only the users and items with at least this many ratings, applied
        until both hold (:meth:`~embspace.Ratings.filter`); 1 keeps everything.

    Returns
    -------
    Ratings
        With item metadata (``title``, ``genres``) when the data has it, so
        that ``item_keys`` are ``(title, genres)``.

    Raises
    ------
    UnknownDatasetError
        ``source`` is a string that is neither a registry name, a spec nor an
        existing path.
    InvalidParameterError
        ``source`` is not a string, path or DataFrame; table options given for a
        source that is not a table; a bad spec.
    ChecksumError, DownloadError, UnsafeArchiveError, DatasetFormatError
        The data could not be obtained or read; nothing half-written is kept.
    """
    ratings = _load(
        source,
        user=user,
        item=item,
        rating=rating,
        timestamp=timestamp,
        sep=sep,
        encoding=encoding,
        items=items,
        name=name,
        duplicates=duplicates,
        progress=progress,
    )
    if min_user_ratings == 1 and min_item_ratings == 1:
        return ratings
    return ratings.filter(min_user_ratings=min_user_ratings, min_item_ratings=min_item_ratings)


def _load(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    user: Hashable | None,
    item: Hashable | None,
    rating: Hashable | None,
    timestamp: Hashable | None,
    sep: str | None,
    encoding: str | None,
    items: pd.DataFrame | None,
    name: str | None,
    duplicates: str,
    progress: bool,
) -> Ratings:
    options: dict[str, Any] = {"user": user, "item": item, "rating": rating, "sep": sep}
    options.update(timestamp=timestamp)
    options.update(encoding=encoding, items=items, name=name)
    given = [k for k, v in options.items() if v is not None]

    def table(path_or_frame: Path | pd.DataFrame) -> Ratings:
        return ratings_from_table(
            path_or_frame,
            user=user,
            item=item,
            rating=rating,
            sep=sep,
            encoding=encoding,
            items=items,
            name=name,
            duplicates=duplicates,
            timestamp=timestamp,
        )

    if isinstance(source, pd.DataFrame):
        return table(source)

    def not_a_table(what: str) -> None:
        if given:
            raise InvalidParameterError(
                f"{', '.join(g + '=' for g in given)} apply to tables; {what} is read in its "
                "own format"
            )

    if isinstance(source, str) and source in registry.REGISTRY:
        not_a_table(f"the registry dataset {source!r}")
        return load_registered(source, duplicates=duplicates, progress=progress)
    if isinstance(source, str) and source.startswith(SYNTHETIC_PREFIX):
        not_a_table("a synthetic dataset")
        kwargs = synthetic_spec(source)
        try:
            return synthetic(**kwargs)
        except TypeError as exc:
            raise InvalidParameterError(f"bad synthetic dataset spec {source!r}: {exc}") from None
    if not isinstance(source, (str, os.PathLike)):
        raise InvalidParameterError(
            f"expected a dataset name, a path or a pandas DataFrame, got {type(source).__name__}"
        )
    path = Path(source).expanduser()
    if path.is_dir() or (path.is_file() and path.suffix.lower() == ".zip"):
        not_a_table("a folder or zip")
        return read_movielens(path, duplicates=duplicates, progress=progress)
    if path.is_file():
        return table(path)
    raise UnknownDatasetError(
        f"unknown dataset {os.fspath(source)!r}: not a registry name "
        f"({', '.join(registry.names())}), a {SYNTHETIC_PREFIX} spec, nor an existing file or "
        "folder"
    )


def load_ratings(
    path_or_frame: str | os.PathLike[str] | pd.DataFrame,
    *,
    user: Hashable | None = None,
    item: Hashable | None = None,
    rating: Hashable | None = None,
    sep: str | None = None,
    duplicates: str = "error",
    items: pd.DataFrame | None = None,
    encoding: str | None = None,
    name: str | None = None,
) -> Ratings:
    """Ratings from a path or a DataFrame: :func:`load` without registry names
    or specs (a string is always a path). Kept for scripts written against
    earlier versions; :func:`load` takes the same arguments."""
    if isinstance(path_or_frame, str):
        path_or_frame = Path(path_or_frame)
    if isinstance(path_or_frame, os.PathLike) and not Path(path_or_frame).exists():
        from ..errors import MissingFileError

        raise MissingFileError(f"{os.fspath(path_or_frame)} does not exist")
    return load(
        path_or_frame,
        user=user,
        item=item,
        rating=rating,
        sep=sep,
        duplicates=duplicates,
        items=items,
        encoding=encoding,
        name=name,
    )
