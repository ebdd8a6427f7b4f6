"""Ratings: a users x items matrix with the ids, keys and metadata around it.

A :class:`Ratings` maps original user and item ids onto contiguous indices
(sorted by id), holds the ratings as float32 CSR in both orientations (built by
the Rust core) and keeps item metadata (title, genres) aligned with the columns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import _core
from ._buffers import byte_view
from ._params import check_int
from .errors import (
    DuplicateEntryError,
    InvalidParameterError,
    NonFiniteError,
    ShapeMismatchError,
)
from .jsonio import plain_value

__all__ = ["DUPLICATE_POLICIES", "Ratings", "RatingsSummary"]

#: Policies for repeated (user, item) pairs, as accepted by ``duplicates=``.
DUPLICATE_POLICIES = ("error", "first", "last", "sum", "mean", "max")


@dataclass(frozen=True)
class RatingsSummary:
    """Counts, density and rating histogram of a :class:`Ratings`."""

    name: str | None
    n_users: int
    n_items: int
    n_ratings: int
    n_items_metadata: int | None
    density: float
    rating_min: float
    rating_max: float
    rating_mean: float
    histogram: dict[float, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (histogram keys as strings)."""
        d = dict(self.__dict__)
        d["histogram"] = {_fmt_rating(k): v for k, v in self.histogram.items()}
        return d

    def __str__(self) -> str:
        lines = [f"ratings {self.name}" if self.name else "ratings"]
        lines.append(f"  users      {self.n_users:>12,}")
        items = f"  items      {self.n_items:>12,} rated"
        if self.n_items_metadata is not None:
            items += f" (of {self.n_items_metadata:,} in the metadata)"
        lines.append(items)
        lines.append(f"  ratings    {self.n_ratings:>12,}")
        lines.append(f"  density    {self.density:>12.4%}")
        lines.append(
            f"  values     {self.rating_min:g} .. {self.rating_max:g}, mean {self.rating_mean:.6f}"
        )
        if self.histogram:
            width = max(self.histogram.values())
            lines.append("  histogram")
            for value, count in self.histogram.items():
                bar = "#" * max(1, round(30 * count / width)) if count else ""
                lines.append(f"    {_fmt_rating(value):>5}  {count:>10,}  {bar}")
        return "\n".join(lines)


def _fmt_rating(v: float) -> str:
    return f"{v:g}"


def _as_index_array(ids: np.ndarray, column: Hashable = "id") -> tuple[np.ndarray, np.ndarray]:
    """Contiguous codes (int64) for ``ids`` and the sorted unique ids (of the
    ids' own dtype)."""
    if ids.dtype.kind in "iu" and ids.size:
        lo, hi = int(ids.min()), int(ids.max())
        if hi - lo <= max(4 * ids.size, 1 << 20):
            # Integer ids in a compact range (MovieLens): a presence table is
            # several times faster than hashing and gives the same result.
            # Offsets are taken in int64 (unsigned ids in their own type, where
            # ids - lo cannot underflow), never in a narrow signed type, where
            # int8 ids -100 and 100 are 200 apart and would wrap.
            if ids.dtype.kind == "u":
                offsets = (ids - ids.dtype.type(lo)).astype(np.int64, copy=False)
            else:
                offsets = ids.astype(np.int64, copy=False) - lo
            present = np.zeros(hi - lo + 1, dtype=bool)
            present[offsets] = True
            lookup = np.cumsum(present, dtype=np.int64) - 1
            positions = np.flatnonzero(present)
            if ids.dtype.kind == "u":
                uniques = positions.astype(ids.dtype) + ids.dtype.type(lo)
            else:
                uniques = (positions + lo).astype(ids.dtype)
            return lookup[offsets], uniques
    if ids.dtype == object:
        check_id_types(ids, column)
    try:
        codes, uniques = pd.factorize(pd.Series(ids), sort=True)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(
            f"column {column!r} has ids that cannot be keys: {exc}"
        ) from None
    if (codes < 0).any():
        at = int(np.flatnonzero(codes < 0)[0])
        raise InvalidParameterError(
            f"column {column!r} has a missing id (NaN or None), first at position {at}"
        )
    return codes.astype(np.int64, copy=False), np.asarray(uniques)


#: numpy scalar types and the Python type they stand for in an id's type.
_ID_TYPES = {np.bool_: bool, np.str_: str, np.bytes_: bytes}


def _id_type(x: Any) -> Any:
    """The type signature of one id: its Python type (numpy scalars as the
    Python type they convert to), a tuple of signatures for a tuple id."""
    if isinstance(x, tuple):
        return tuple(_id_type(e) for e in x)
    if isinstance(x, np.generic):
        return _ID_TYPES.get(type(x)) or type(x.item())
    return type(x)


def check_id_types(ids: np.ndarray, column: Hashable = "id") -> None:
    """Refuse ids that cannot be keys: unhashable ones (lists, dicts), missing
    ones (None, NaN), and a column that mixes types (``1`` and ``"1"``, or
    ``1``, ``1.0`` and ``True``, which compare equal and would merge):
    :class:`~embspace.errors.InvalidParameterError` naming the first offender."""
    flat = list(ids)
    for at, x in enumerate(flat):
        try:
            hash(x)
        except TypeError:
            raise InvalidParameterError(
                f"column {column!r} has an unhashable id {x!r} ({type(x).__name__}) "
                f"at position {at}"
            ) from None
    missing = pd.isna(ids)
    if np.ndim(missing) == 1 and missing.any():
        at = int(np.flatnonzero(missing)[0])
        raise InvalidParameterError(
            f"column {column!r} has a missing id (NaN or None), first at position {at}"
        )
    if len(set(map(type, flat))) <= 1 and not (flat and isinstance(flat[0], tuple)):
        return  # one plain type: the common case, at C speed
    first = _id_type(flat[0])
    for at, x in enumerate(flat):
        if _id_type(x) != first:
            raise InvalidParameterError(
                f"column {column!r} mixes id types: {flat[0]!r} of type {_type_text(first)} and "
                f"{x!r} of type {_type_text(_id_type(x))} at position {at}; use one type for every id"
            )


def _type_text(signature: Any) -> str:
    if isinstance(signature, tuple):
        return "(" + ", ".join(_type_text(s) for s in signature) + ")"
    return signature.__name__


def _describe_repeat(
    index: pd.Index,
    rows: np.ndarray,
    cols: np.ndarray,
    n_cols: int,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
) -> str:
    """The first repeated (user, item) pair in table order, named by original ids."""
    keys = pd.Series(rows * n_cols + cols)
    second = int(np.flatnonzero(keys.duplicated().to_numpy())[0])
    first = int(np.flatnonzero((keys == keys.iloc[second]).to_numpy())[0])
    user, item = plain_value(user_ids[rows[second]]), plain_value(item_ids[cols[second]])
    return (
        f"user {user!r} rated item {item!r} more than once (table rows "
        f"{plain_value(index[first])!r} and {plain_value(index[second])!r}); pass duplicates= one of {DUPLICATE_POLICIES[1:]} to combine repeats"
    )


class Ratings:
    """A users x items ratings matrix with ids, keys and item metadata.

    Attributes
    ----------
    matrix : scipy.sparse.csr_matrix, shape (n_users, n_items), float32
        Ratings; rows follow :attr:`user_keys`, columns follow :attr:`item_keys`.
    item_matrix : scipy.sparse.csr_matrix, shape (n_items, n_users), float32
        The transpose in CSR form (built by the Rust core, in parallel, on
        first use, then kept: every fit on these ratings reuses it).
    user_ids, item_ids : numpy.ndarray
        Original ids of rows and columns, sorted ascending.
    items : pandas.DataFrame
        One row per column of :attr:`matrix`: ``id``, ``title``, ``genres``
        (where metadata was given) and ``n_ratings``.
    item_metadata : pandas.DataFrame or None
        The full item table as loaded, including items nobody rated.
    """

    def __init__(
        self,
        matrix: sp.csr_matrix,
        user_ids: Sequence[Hashable] | np.ndarray,
        item_ids: Sequence[Hashable] | np.ndarray,
        *,
        item_metadata: pd.DataFrame | None = None,
        name: str | None = None,
        duplicates: str = "error",
    ) -> None:
        if not sp.issparse(matrix):
            raise InvalidParameterError("matrix must be a scipy sparse matrix")
        matrix = _canonical_csr(matrix, duplicates)
        self.user_ids = _id_array(user_ids)
        self.item_ids = _id_array(item_ids)
        if self.user_ids.shape != (matrix.shape[0],) or self.item_ids.shape != (matrix.shape[1],):
            raise ShapeMismatchError(
                f"matrix is {matrix.shape[0]} x {matrix.shape[1]} but got "
                f"{self.user_ids.size} user ids and {self.item_ids.size} item ids"
            )
        for what, ids in (("user ids", self.user_ids), ("item ids", self.item_ids)):
            if ids.dtype == object:
                check_id_types(ids, what)
            if pd.Index(ids).has_duplicates:
                raise InvalidParameterError("user ids and item ids must be unique")
        self.matrix = matrix
        self.name = name
        self.item_metadata = item_metadata
        self.items = self._build_items(item_metadata)

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        user: Hashable = "userId",
        item: Hashable = "movieId",
        rating: Hashable = "rating",
        items: pd.DataFrame | None = None,
        duplicates: str = "error",
        name: str | None = None,
    ) -> Ratings:
        """Build from a long table of (user, item, rating) rows.

        ``items`` is an optional metadata table with the ``item`` column plus
        ``title`` and ``genres``. Repeated (user, item) pairs raise
        :class:`~embspace.errors.DuplicateEntryError` unless ``duplicates`` is
        one of ``first``, ``last``, ``sum``, ``mean``, ``max``.
        """
        if not isinstance(frame, pd.DataFrame):
            raise InvalidParameterError(
                f"from_frame takes a pandas DataFrame, got {type(frame).__name__}"
            )
        missing = [c for c in (user, item, rating) if c not in frame.columns]
        if missing:
            raise InvalidParameterError(
                f"column(s) {missing} not found; the table has {list(frame.columns)}"
            )
        if duplicates not in DUPLICATE_POLICIES:
            raise InvalidParameterError(
                f"duplicates must be one of {DUPLICATE_POLICIES}, got {duplicates!r}"
            )
        try:
            numeric = pd.to_numeric(frame[rating], errors="raise")
        except (TypeError, ValueError) as exc:
            raise InvalidParameterError(f"rating column {rating!r} is not numeric: {exc}") from None
        _check_real(numeric.dtype, f"rating column {rating!r}")
        wide = numeric.to_numpy(np.float64)
        values = _float32(wide)
        rows, user_ids = _as_index_array(frame[user].to_numpy(), user)
        cols, item_ids = _as_index_array(frame[item].to_numpy(), item)
        try:
            indptr, indices, data = _core.csr_from_coo(
                len(user_ids), len(item_ids), rows, cols, np.ascontiguousarray(values), duplicates
            )
        except NonFiniteError:
            at = int(np.flatnonzero(~np.isfinite(values))[0])
            beyond = " in float32" if np.isfinite(wide[at]) else ""
            raise NonFiniteError(
                f"rating {wide[at]} of user {plain_value(user_ids[rows[at]])!r}, item "
                f"{plain_value(item_ids[cols[at]])!r} (table row {plain_value(frame.index[at])!r}) "
                f"is not finite{beyond}"
            ) from None
        except DuplicateEntryError:
            raise DuplicateEntryError(
                _describe_repeat(frame.index, rows, cols, len(item_ids), user_ids, item_ids)
            ) from None
        _check_combined(data, duplicates)
        matrix = sp.csr_matrix(
            (data, indices, indptr), shape=(len(user_ids), len(item_ids)), copy=False
        )
        if items is not None and item in items.columns:
            repeated = items[item].duplicated()
            if repeated.any():
                raise DuplicateEntryError(
                    f"item metadata lists item {plain_value(items[item][repeated].iloc[0])!r} "
                    "more than once"
                )
            items = items.set_index(item, drop=False)
        return cls(matrix, user_ids, item_ids, item_metadata=items, name=name)

    @classmethod
    def from_csr(
        cls,
        matrix: sp.spmatrix,
        user_ids: Sequence[Hashable] | None = None,
        item_ids: Sequence[Hashable] | None = None,
        *,
        name: str | None = None,
        duplicates: str = "error",
    ) -> Ratings:
        """Wrap a sparse matrix (any scipy format); ids default to ``0..n-1``.
        Repeated entries follow ``duplicates`` as in :meth:`from_frame`."""
        if not sp.issparse(matrix):
            raise InvalidParameterError("expected a scipy sparse matrix")
        n_users, n_items = matrix.shape
        return cls(
            matrix,
            np.arange(n_users) if user_ids is None else user_ids,
            np.arange(n_items) if item_ids is None else item_ids,
            name=name,
            duplicates=duplicates,
        )

    def _build_items(self, metadata: pd.DataFrame | None) -> pd.DataFrame:
        counts = _column_counts(self.matrix.indices, self.n_items)
        table = pd.DataFrame({"id": self.item_ids, "n_ratings": counts})
        if metadata is not None:
            meta = metadata.reindex(self.item_ids)
            for column in ("title", "genres"):
                if column in meta.columns:
                    table[column] = meta[column].to_numpy()
            if "title" in table.columns:
                fallback = pd.Series([f"item {i}" for i in self.item_ids])
                table["title"] = table["title"].where(table["title"].notna(), fallback)
            if "genres" in table.columns:
                table["genres"] = table["genres"].fillna("")
        return table

    # ------------------------------------------------------------------ subsets
    def filter(self, *, min_user_ratings: int = 1, min_item_ratings: int = 1) -> Ratings:
        """The ratings of users with at least ``min_user_ratings`` ratings and
        items with at least ``min_item_ratings``, counted within the result.

        Removing sparse items lowers some users' counts and the other way round,
        so the rule is applied until nothing changes (the (u, i)-core): every
        user and item of the result meets its minimum. Ids, keys, item
        metadata and the name are kept (the name gains a ``[filtered u>=U,
        i>=I]`` suffix); the result may be empty (0 users and 0 items) when no
        core exists. ``filter()`` with the defaults drops users and items
        without ratings, which :class:`Ratings` never holds, so it returns an
        equal copy.

        Why: items rated by a single user get exactly parallel vectors in every
        WALS and SVD space, and their nearest neighbors are then ties; a
        minimum count removes them from a comparison (see
        :func:`embspace.measures.compare`'s tie report).
        """
        lo_u = check_int(min_user_ratings, "min_user_ratings", minimum=1)
        lo_i = check_int(min_item_ratings, "min_item_ratings", minimum=1)
        m = self.matrix
        users = np.arange(self.n_users)
        items = np.arange(self.n_items)
        while True:
            keep_u = np.diff(m.indptr) >= lo_u
            m = m[keep_u]
            users = users[keep_u]
            keep_i = _column_counts(m.indices, m.shape[1]) >= lo_i
            m = m[:, keep_i]
            items = items[keep_i]
            if keep_u.all() and keep_i.all():
                break
        suffix = f"[filtered u>={lo_u}, i>={lo_i}]"
        return Ratings(
            m.tocsr(),
            self.user_ids[users],
            self.item_ids[items],
            item_metadata=self.item_metadata,
            name=f"{self.name} {suffix}" if self.name else suffix,
        )

    # ------------------------------------------------------------------ views
    @cached_property
    def item_matrix(self) -> sp.csr_matrix:
        """The (n_items x n_users) transpose as CSR, built by the Rust core."""
        indptr, indices, data = _core.csr_transpose(self.n_users, self.n_items, *self.csr_arrays())
        return sp.csr_matrix(
            (data, indices, indptr), shape=(self.n_items, self.n_users), copy=False
        )

    def csr_arrays(self, by: str = "user") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indptr int64, indices int32, data float32) of the rows (``by="user"``)
        or of the transpose (``by="item"``), contiguous, as the Rust core takes them.

        Built once per orientation and kept (every fit on these ratings, e.g.
        the runs of a sweep, shares them); they share memory with
        :attr:`matrix` / :attr:`item_matrix`, so do not write into them."""
        return self._by_user if by == "user" else self._by_item

    @cached_property
    def _by_user(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _core_arrays(self.matrix)

    @cached_property
    def _by_item(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _core_arrays(self.item_matrix)

    @property
    def n_users(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.matrix.shape[1])

    @property
    def n_ratings(self) -> int:
        return int(self.matrix.nnz)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_users, self.n_items)

    @cached_property
    def user_keys(self) -> list[Hashable]:
        """Keys of the rows: the original user ids."""
        return [plain_value(u) for u in self.user_ids]

    @cached_property
    def item_keys(self) -> list[Hashable]:
        """Keys of the columns: ``(title, genres)`` when metadata has titles
        (as the reference notebook uses), else the original item id. A
        ``(title, genres)`` pair shared by several items gets ``" [id N]"``
        appended to its title so that keys stay unique."""
        if "title" not in self.items.columns:
            return [plain_value(i) for i in self.item_ids]
        genres = self.items["genres"] if "genres" in self.items.columns else [""] * self.n_items
        pairs = list(
            zip(self.items["title"].astype(str), pd.Series(genres).astype(str), strict=True)
        )
        seen = pd.Series(pairs).duplicated(keep=False).to_numpy()
        keys: list[Hashable] = list(pairs)
        if seen.any():
            keys = [
                (f"{t} [id {plain_value(i)}]", g) if dup else (t, g)
                for (t, g), i, dup in zip(pairs, self.item_ids, seen, strict=True)
            ]
        return keys

    @property
    def item_titles(self) -> list[str]:
        """A readable title per column (the title, or the id as text)."""
        if "title" in self.items.columns:
            return self.items["title"].astype(str).tolist()
        return [str(k) for k in self.item_keys]

    @cached_property
    def fingerprint(self) -> str:
        """sha256 (hex) of the matrix and the keys: equal data gives equal
        fingerprints, and keys of different types differ (user ``0`` is not user
        ``"0"``). Keys enter by ``repr``, which writes an int (or a tuple of
        strings) as ``str`` does and a string quoted, so data keyed by integers
        or by ``(title, genres)`` keeps its earlier fingerprint while string
        keys no longer collide with integers. numpy scalars count as the Python
        values they convert to (``np.int8(3)`` is ``3``), as the keys do."""
        h = hashlib.sha256()
        for arr in self.csr_arrays():
            h.update(byte_view(arr))
        h.update(repr(self.shape).encode())
        h.update("\x1f".join(map(repr, self.user_keys)).encode())
        h.update("\x1e".join(map(repr, self.item_keys)).encode())
        return h.hexdigest()

    def summary(self) -> RatingsSummary:
        """Counts, density, value range and histogram of the ratings."""
        data = self.matrix.data.astype(np.float64)
        values, counts = np.unique(data, return_counts=True)
        cells = self.n_users * self.n_items
        return RatingsSummary(
            name=self.name,
            n_users=self.n_users,
            n_items=self.n_items,
            n_ratings=self.n_ratings,
            n_items_metadata=None if self.item_metadata is None else len(self.item_metadata),
            density=self.n_ratings / cells if cells else 0.0,
            rating_min=float(data.min()) if data.size else float("nan"),
            rating_max=float(data.max()) if data.size else float("nan"),
            rating_mean=float(data.mean()) if data.size else float("nan"),
            histogram={
                float(v): int(c) for v, c in zip(values.tolist(), counts.tolist(), strict=True)
            },
        )

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return (
            f"<Ratings{label}: {self.n_users:,} users x {self.n_items:,} items, "
            f"{self.n_ratings:,} ratings>"
        )


def _core_arrays(m: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CSR arrays of ``m`` in the Rust core's types, copied only where
    the type or layout differs (scipy's int32 ``indptr``)."""
    return (
        np.ascontiguousarray(m.indptr, dtype=np.int64),
        np.ascontiguousarray(m.indices, dtype=np.int32),
        np.ascontiguousarray(m.data, dtype=np.float32),
    )


def _column_counts(indices: np.ndarray, n_cols: int) -> np.ndarray:
    """How many stored values each column has (int64), by bincount over
    slices: bincount converts its input to int64, and a whole ML-20M index
    array would be a 160 MB copy."""
    counts = np.zeros(n_cols, dtype=np.int64)
    step = 1 << 20
    for start in range(0, indices.size, step):
        counts += np.bincount(indices[start : start + step], minlength=n_cols)
    return counts


def _canonical_csr(matrix: sp.spmatrix, duplicates: str) -> sp.csr_matrix:
    """float32 CSR with sorted, unique columns per row and finite values.

    A matrix already in canonical CSR form is used as it is (after a finiteness
    check); anything else is rebuilt from its coordinates by the Rust core, which
    applies the ``duplicates`` policy."""
    if duplicates not in DUPLICATE_POLICIES:
        raise InvalidParameterError(
            f"duplicates must be one of {DUPLICATE_POLICIES}, got {duplicates!r}"
        )
    _check_real(matrix.dtype, "the ratings matrix")
    if sp.isspmatrix_csr(matrix) or isinstance(matrix, sp.csr_array):
        if matrix.has_canonical_format:
            m = sp.csr_matrix((_float32(matrix.data), matrix.indices, matrix.indptr), matrix.shape)
            if not np.isfinite(m.data).all():
                raise NonFiniteError("ratings contain NaN or infinite values (in float32)")
            return m
    coo = sp.coo_matrix(matrix)
    n_rows, n_cols = coo.shape
    indptr, indices, data = _core.csr_from_coo(
        n_rows,
        n_cols,
        coo.row.astype(np.int64),
        coo.col.astype(np.int64),
        _float32(coo.data),
        duplicates,
    )
    _check_combined(data, duplicates)
    return sp.csr_matrix((data, indices, indptr), shape=(n_rows, n_cols), copy=False)


def _check_min_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidParameterError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _float32(values: np.ndarray) -> np.ndarray:
    """``values`` as contiguous float32; a value beyond the float32 range
    becomes infinite (no overflow warning) and is then refused as not finite."""
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(values, dtype=np.float32)


def _check_combined(data: np.ndarray, duplicates: str) -> None:
    """Finite inputs combined by ``duplicates="sum"`` (or ``"mean"``, which
    sums as it goes) can overflow float32: refuse the result rather than
    store an infinite rating."""
    if not np.isfinite(data).all():
        raise NonFiniteError(
            f"combining repeated entries (duplicates={duplicates!r}) overflows float32"
        )


def _id_array(ids: Any) -> np.ndarray:
    """``ids`` as a 1-D array; tuple ids stay tuples (one object per id), not
    a 2-D array."""
    if isinstance(ids, np.ndarray):
        return ids
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise InvalidParameterError(f"ids must be a sequence, got {type(ids).__name__}")
    ids = list(ids)
    if any(isinstance(x, tuple) for x in ids):
        out = np.empty(len(ids), dtype=object)
        for i, x in enumerate(ids):
            out[i] = x
        return out
    return np.asarray(ids)


def _check_real(dtype: np.dtype, what: str) -> None:
    """Ratings are real numbers: a complex (or non-numeric) dtype is refused
    rather than silently cut to its real part."""
    if dtype.kind not in "biuf":
        kind = "complex" if dtype.kind == "c" else "not numeric"
        raise InvalidParameterError(f"{what} is {kind} (dtype {dtype}); ratings must be real")
