"""Ratings from any table: a CSV/TSV/parquet file or a pandas DataFrame.

A leaf of :mod:`embspace.datasets`: :func:`embspace.datasets.load` routes table
files and DataFrames here. :func:`ratings_from_table` finds the user, item and rating columns by name when that
is unambiguous (``userId``/``user_id``/``user``..., ``movieId``/``item``...,
``rating``/``score``...), by position (user, item, rating) when the file has
no header, or as told with ``user=``, ``item=``, ``rating=``. Implicit
feedback (no rating column: ``rating=False``, or a table of two columns) rates
every pair present 1.0.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import lzma
import os
import re
import warnings
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from .._params import check_path
from ..errors import DatasetFormatError, InvalidParameterError, MissingFileError
from ..jsonio import plain_value
from ..ratings import DUPLICATE_POLICIES, Ratings

__all__ = ["detect_columns", "ratings_from_table", "read_table"]

#: Normalised column names (lower case, letters and digits only) per role.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "user": ("user", "userid", "users", "uid", "useridx", "customer", "customerid", "reviewerid"),
    "item": (
        "item",
        "itemid",
        "items",
        "iid",
        "movie",
        "movieid",
        "product",
        "productid",
        "asin",
        "book",
        "bookid",
        "isbn",
        "track",
        "trackid",
        "song",
        "songid",
        "artist",
        "artistid",
    ),
    "rating": ("rating", "ratings", "score", "value", "stars", "rate", "preference", "overall"),
}
_SEPARATORS = ("\t", "::", ",", ";", "|")
_NUMBER = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")
_OPENERS: dict[str, Callable[..., Any]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}

Column = Hashable


def _norm(name: object) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def _given_label(label: Column, cols: list[Column], role: str) -> Column:
    """``label`` among ``cols``; text of digits names a position of a table
    without header (whose column labels are 0, 1, 2, ...), as the command line
    passes it."""
    if label in cols:
        return label
    if isinstance(label, str) and label.strip().isdigit() and int(label) in cols:
        return int(label)
    raise InvalidParameterError(f"{role} column {label!r} not found; the table has {cols}")


def detect_columns(
    columns: Sequence[Column],
    *,
    user: Column | None = None,
    item: Column | None = None,
    rating: Column | Literal[False] | None = None,
    positional: bool = False,
) -> tuple[Column, Column, Column | None]:
    """``(user, item, rating)`` column labels among ``columns``; ``rating`` is
    None for implicit feedback (no rating column).

    Given labels are checked (:class:`~embspace.errors.InvalidParameterError`
    if absent). ``rating=False`` says there is no rating column; so does a
    table of exactly two columns when ``rating`` is not given. Missing ones are
    found by name; with ``positional`` (a table without header) they are the
    first columns in the order user, item, rating. A role that matches no
    column, or several, raises :class:`~embspace.errors.DatasetFormatError`
    naming the option to pass.
    """
    cols = list(columns)
    implicit = rating is False or (rating is None and len(cols) == 2)
    given: dict[str, Column | None] = {
        "user": user,
        "item": item,
        "rating": None if rating is False else rating,
    }
    for role, label in given.items():
        if label is not None:
            given[role] = _given_label(label, cols, role)
    roles = ("user", "item") if implicit else ("user", "item", "rating")
    if positional:
        if len(cols) < len(roles):
            raise DatasetFormatError(
                f"a table without header needs at least {len(roles)} columns "
                f"({', '.join(roles)}), got {len(cols)}"
            )
        defaults = dict(zip(roles, cols[: len(roles)], strict=True))
        picked = {r: (given[r] if given[r] is not None else defaults[r]) for r in roles}
    else:
        picked = {}
        taken = {given[r] for r in roles if given[r] is not None}
        for role in roles:
            label = given[role]
            if label is not None:
                picked[role] = label
                continue
            matches = [c for c in cols if c not in taken and _norm(c) in SYNONYMS[role]]
            if len(matches) > 1:
                raise DatasetFormatError(
                    f"several columns could hold the {role}s: {matches}; pass {role}=... to choose"
                )
            if not matches:
                hint = (
                    " (or rating=False: implicit feedback, every pair rates 1)"
                    if role == "rating"
                    else ""
                )
                raise DatasetFormatError(
                    f"cannot tell which column holds the {role}s (columns: {cols}); "
                    f"pass {role}=...{hint}"
                )
            picked[role] = matches[0]
            taken.add(matches[0])
    values = list(picked.values())
    if len(set(values)) < len(values):
        raise InvalidParameterError(
            f"{', '.join(roles[:-1])} and {roles[-1]} must be different columns, got {picked}"
        )
    return picked["user"], picked["item"], picked.get("rating")


def _open_text(path: Path, encoding: str) -> io.TextIOBase:
    opener = _OPENERS.get(path.suffix.lower())
    if opener is not None:
        return cast(
            io.TextIOBase, opener(path, "rt", encoding=encoding, errors="replace", newline="")
        )
    return open(path, encoding=encoding, errors="replace", newline="")


def _first_line(path: Path, encoding: str) -> str:
    try:
        with _open_text(path, encoding) as fh:
            for line in fh:
                if line.strip():
                    return line.rstrip("\r\n").lstrip("\ufeff")
    except (OSError, EOFError, lzma.LZMAError) as exc:
        raise DatasetFormatError(f"cannot read {path}: {exc}") from None
    raise DatasetFormatError(f"{path} is empty")


def _sniff_separator(line: str) -> str:
    for sep in _SEPARATORS:
        if sep in line:
            return sep
    return r"\s+"


def _is_parquet(path: Path) -> bool:
    if path.suffix.lower() in (".parquet", ".pq"):
        return True
    with open(path, "rb") as fh:
        return fh.read(4) == b"PAR1"


def _check_text_options(sep: object, encoding: object) -> None:
    """``sep``: None or a non-empty string; ``encoding``: None or a codec name
    Python knows; else an InvalidParameterError (not pandas' ValueError or
    Python's LookupError from deep inside the reader)."""
    if sep is not None and (not isinstance(sep, str) or not sep):
        raise InvalidParameterError(f"sep must be a non-empty string, got {sep!r}")
    if encoding is not None:
        if not isinstance(encoding, str):
            raise InvalidParameterError(f"encoding must be a codec name, got {encoding!r}")
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise InvalidParameterError(f"unknown encoding {encoding!r}") from None


def _as_path(path: object, what: str = "path") -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidParameterError(
            f"{what} must be a file path or a pandas DataFrame, got {type(path).__name__}"
        )
    return check_path(path, what)


def read_table(
    path: str | os.PathLike[str], *, sep: str | None = None, encoding: str | None = None
) -> tuple[pd.DataFrame, bool]:
    """Read a delimited text file (optionally .gz/.bz2/.xz) or a parquet file.

    ``sep`` defaults to the first of tab, ``::``, comma, semicolon, ``|``
    found in the first line (else runs of whitespace). A first line with a
    number in any field is data, not a header. Text is UTF-8, falling back to
    latin-1 when it does not decode (or ``encoding`` as given).

    Returns ``(frame, has_header)``; without a header columns are 0, 1, 2, ...
    """
    _check_text_options(sep, encoding)
    path = _as_path(path)
    if not path.is_file():
        raise DatasetFormatError(f"{path} is not a file")
    if _is_parquet(path):
        try:
            return pd.read_parquet(path), True
        except ImportError:
            raise DatasetFormatError(
                f"reading {path} needs pyarrow: pip install 'embspace[parquet]'"
            ) from None
        except (OSError, ValueError) as exc:
            raise DatasetFormatError(f"cannot read {path} as parquet: {exc}") from None
    encodings = [encoding] if encoding else ["utf-8", "latin-1"]
    last: Exception | None = None
    for enc in encodings:
        line = _first_line(path, enc)
        delimiter = sep if sep is not None else _sniff_separator(line)
        fields = re.split(r"\s+", line.strip()) if delimiter == r"\s+" else line.split(delimiter)
        has_header = not any(_NUMBER.match(f) for f in fields)  # names are never numbers
        try:
            frame = _read_delimited(path, delimiter, enc, has_header)
        except UnicodeDecodeError as exc:
            last = exc
            continue
        except (ValueError, pd.errors.ParserError, OSError, EOFError) as exc:
            raise DatasetFormatError(f"cannot read {path}: {exc}") from None
        if has_header:
            frame.columns = [str(c).strip() for c in frame.columns]
        return frame, has_header
    raise DatasetFormatError(f"cannot decode {path} as {' or '.join(encodings)}: {last}")


def _read_delimited(path: Path, sep: str, encoding: str, header: bool) -> pd.DataFrame:
    if len(sep) > 1 and sep != r"\s+":
        if path.suffix.lower() not in _OPENERS:
            raw = path.read_bytes()
            token = sep.encode(encoding)
            if b"\t" not in raw:  # exact and fast: the C engine takes one-character separators
                return pd.read_csv(
                    io.BytesIO(raw.replace(token, b"\t")),
                    sep="\t",
                    header=0 if header else None,
                    encoding=encoding,
                    engine="c",
                )
        return pd.read_csv(
            path,
            sep=re.escape(sep),
            header=0 if header else None,
            encoding=encoding,
            engine="python",
        )
    return pd.read_csv(path, sep=sep, header=0 if header else None, encoding=encoding, engine="c")


def ratings_from_table(
    path_or_frame: str | os.PathLike[str] | pd.DataFrame,
    *,
    user: Column | None = None,
    item: Column | None = None,
    rating: Column | Literal[False] | None = None,
    sep: str | None = None,
    duplicates: str = "error",
    items: pd.DataFrame | None = None,
    encoding: str | None = None,
    name: str | None = None,
    timestamp: Column | None = None,
) -> Ratings:
    """Ratings from a CSV/TSV/parquet file or a DataFrame of (user, item, rating) rows.

    Implicit feedback (who bought, clicked or watched what, with no rating)
    rates every (user, item) pair present 1.0: asked for with
    ``rating=False``, and assumed for a table of exactly two columns when
    ``rating`` is not given. Repeated pairs then count once, unless
    ``duplicates="sum"``, which rates each pair by its number of rows.

    Parameters
    ----------
    path_or_frame : path or pandas.DataFrame
        A table file (delimited text, optionally compressed, or parquet) or a
        DataFrame.
    user, item, rating : column label, optional
        Columns to use; detected when omitted (see :func:`detect_columns`).
        For a file without header, labels are positions 0, 1, 2, ... (also
        given as text: ``"1"``). ``rating=False``: no rating column.
    sep : str, optional
        Field separator of a text file (default: sniffed from the first line).
    duplicates : str
        What to do with repeated (user, item) pairs: ``"error"`` (default:
        :class:`~embspace.errors.DuplicateEntryError`), ``"first"``,
        ``"last"``, ``"sum"``, ``"mean"``, ``"max"``.
    items : pandas.DataFrame, optional
        Item metadata with the item column plus ``title`` and ``genres``.
    encoding : str, optional
        Text encoding (default UTF-8, falling back to latin-1).
    name : str, optional
        Name of the ratings (default: the file's stem).
    timestamp : column label, optional
        A column of times (numbers, e.g. Unix seconds, or dates): the rows are
        put in time order first (stable: rows of equal times keep their file
        order), so that ``duplicates="first"`` keeps each pair's earliest
        rating and ``"last"`` its latest. The times are not kept. Without it,
        "first" and "last" follow the file's row order.
    """
    if duplicates not in DUPLICATE_POLICIES:
        raise InvalidParameterError(
            f"duplicates must be one of {DUPLICATE_POLICIES}, got {duplicates!r}"
        )
    _check_text_options(sep, encoding)
    if items is not None and not isinstance(items, pd.DataFrame):
        raise InvalidParameterError(f"items must be a pandas DataFrame, got {type(items).__name__}")
    if isinstance(path_or_frame, pd.DataFrame):
        frame, positional = path_or_frame, False
        if not any(isinstance(c, str) for c in frame.columns):
            positional = True  # integer column labels: a frame read without header
    else:
        path = _as_path(path_or_frame, "path_or_frame")
        if path.is_dir():
            raise DatasetFormatError(f"{path} is a folder, not a table file")
        if not path.exists():
            raise MissingFileError(f"{path} does not exist")
        frame, has_header = read_table(path, sep=sep, encoding=encoding)
        positional = not has_header
        if name is None:
            name = path.name.split(".")[0] or path.name
    u, i, r = detect_columns(
        frame.columns, user=user, item=item, rating=rating, positional=positional
    )
    if timestamp is not None:
        frame = _in_time_order(frame, _given_label(timestamp, list(frame.columns), "timestamp"))
    if items is not None and i not in items.columns:
        raise InvalidParameterError(
            f"items metadata has no column {i!r} to match the item column; it has {list(items.columns)}"
        )
    if r is None:
        frame, r = _implicit(frame, u, i, duplicates)
        duplicates = "sum" if duplicates == "sum" else "error"  # the pairs are unique now
    return Ratings.from_frame(
        frame, user=u, item=i, rating=r, items=items, duplicates=duplicates, name=name
    )


def _in_time_order(frame: pd.DataFrame, column: Column) -> pd.DataFrame:
    """``frame`` sorted by ``column`` (stable), which must hold numbers or
    dates, none missing."""
    times = frame[column]
    if not pd.api.types.is_numeric_dtype(times) or pd.api.types.is_bool_dtype(times):
        try:
            with warnings.catch_warnings():  # pandas warns when it parses element by element
                warnings.simplefilter("ignore", UserWarning)
                times = pd.to_datetime(times, errors="raise")
        except (ValueError, TypeError, OverflowError):
            raise InvalidParameterError(
                f"timestamp column {column!r} holds values that are neither numbers nor dates "
                f"(e.g. {plain_value(times.iloc[0])!r})"
            ) from None
    missing = np.flatnonzero(pd.isna(times).to_numpy())
    if missing.size:
        raise InvalidParameterError(
            f"timestamp column {column!r} has {missing.size} missing value(s), first at row "
            f"{int(missing[0])}"
        )
    order = np.argsort(times.to_numpy(), kind="stable")
    return frame.iloc[order]


def _implicit(
    frame: pd.DataFrame, user: Column, item: Column, duplicates: str
) -> tuple[pd.DataFrame, Column]:
    """``(frame, label)``: the user and item columns of ``frame`` with a rating
    column of ones under a fresh label; repeated pairs kept once, except for
    ``duplicates="sum"`` (then each row adds 1)."""
    pairs = frame[[user, item]]
    if duplicates != "sum":
        pairs = pairs.drop_duplicates()
    label: Column = "rating"
    while label in pairs.columns:
        label = f"_{label}"
    return pairs.assign(**{str(label): np.float32(1.0)}), label
