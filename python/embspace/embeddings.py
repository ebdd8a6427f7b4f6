"""Embeddings: entity keys with a float32 matrix, and their alignment.

An :class:`Embeddings` is an (n x d) float32 matrix whose row ``i`` belongs to
``keys[i]``, plus optional original ``ids`` and a ``metadata`` dict that records
what produced it (estimator, parameters, seed, data fingerprint).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable, Mapping, Sequence
from itertools import chain
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from ._params import check_path
from .embeddings_io import (
    EmbeddingsData,
    EmbeddingsFormat,
    as_numpy,
    decode_arrays,
    encode_arrays,
    format_for_writing,
    read_embeddings,
    read_keys,
    write_embeddings,
)
from .errors import (
    DatasetFormatError,
    DuplicateEntryError,
    EmbspaceError,
    InvalidParameterError,
    NonFiniteError,
    NoSharedKeysError,
    ShapeMismatchError,
)

__all__ = ["Embeddings", "align"]

# ---------------------------------------------------------------- file encoding
# The one encoding of keys, ids and metadata in .npz files, shared by
# Embeddings.save/load and the run cache (embspace.cache), so that a value
# comes back the same whichever of the two stored it; it lives in
# embspace.embeddings_io (see encode_arrays there), with the other formats.


def encode_side(emb: Embeddings, prefix: str = "") -> dict[str, np.ndarray]:
    """The arrays that store ``emb`` (vectors, keys, ids, metadata), named
    ``<prefix>vectors`` and so on; :func:`decode_side` reads them back."""
    return encode_arrays(emb, prefix)


def decode_side(arrays: Mapping[str, np.ndarray], prefix: str = "") -> Embeddings:
    """The :class:`Embeddings` stored by :func:`encode_side`. A member that is
    missing or of the wrong kind raises ``KeyError`` or ``ValueError`` (the
    callers turn them into their own errors)."""
    data = decode_arrays(arrays, prefix)
    return Embeddings(data.keys or [], data.vectors, ids=data.ids, metadata=data.metadata)


#: Key types kept as they are (exact types: numpy scalars are converted).
_PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})


def _plain_key(k: Hashable) -> Hashable:
    if type(k) in _PLAIN_TYPES:
        return k
    if isinstance(k, np.generic):
        return k.item()
    if isinstance(k, tuple):
        if _PLAIN_TYPES.issuperset(map(type, k)):
            return k
        return tuple(_plain_key(x) for x in k)
    return k


def _plain_keys(keys: Sequence[Hashable]) -> list[Hashable]:
    """``keys`` as a list of plain Python values (numpy scalars converted)."""
    if isinstance(keys, range):
        return list(keys)
    if isinstance(keys, (str, bytes)) or not isinstance(keys, Iterable):
        raise InvalidParameterError(f"keys must be a sequence of keys, got {type(keys).__name__}")
    keys = list(keys)
    # the common cases, checked at C speed: all plain, or all tuples of plain
    types = set(map(type, keys))
    if _PLAIN_TYPES.issuperset(types):
        return keys
    tuples = cast("list[tuple[Hashable, ...]]", keys)
    if types == {tuple} and _PLAIN_TYPES.issuperset(map(type, chain.from_iterable(tuples))):
        return keys
    return [_plain_key(k) for k in keys]


def _key_index(keys: list[Hashable]) -> dict[Hashable, int]:
    """``{key: row}``; a repeated key is a DuplicateEntryError, an unhashable
    one an InvalidParameterError."""
    try:
        index = dict(zip(keys, range(len(keys)), strict=True))
    except TypeError:
        bad = next(k for k in keys if not _hashable(k))
        raise InvalidParameterError(f"key {bad!r} is not hashable") from None
    if len(index) != len(keys):
        seen: dict[Hashable, int] = {}
        for i, k in enumerate(keys):
            if k in seen:
                raise DuplicateEntryError(
                    f"key {k!r} occurs more than once (rows {seen[k]} and {i})"
                )
            seen[k] = i
    return index


def _hashable(k: Any) -> bool:
    try:
        hash(k)
    except TypeError:
        return False
    return True


class Embeddings:
    """Keys plus a float32 matrix: row ``i`` of :attr:`vectors` embeds ``keys[i]``.

    Parameters
    ----------
    keys : sequence of hashable, length n
        Unique entity keys (for MovieLens items: ``(title, genres)`` tuples).
    vectors : array-like, shape (n, d)
        Finite values; stored as C-contiguous float32.
    ids : array-like, length n, optional
        Original numeric ids, when the keys are not the ids themselves.
    metadata : dict, optional
        JSON-serialisable description of what produced the embeddings.
    """

    def __init__(
        self,
        keys: Sequence[Hashable],
        vectors: Any,
        *,
        ids: Sequence[Any] | np.ndarray | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        vectors = np.asarray(vectors)
        if vectors.ndim != 2:
            raise ShapeMismatchError(f"vectors must be 2-D (n x d), got shape {vectors.shape}")
        if not np.issubdtype(vectors.dtype, np.number) or np.iscomplexobj(vectors):
            raise InvalidParameterError(f"vectors must be real numbers, got dtype {vectors.dtype}")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if not np.isfinite(vectors).all():
            bad = int(np.flatnonzero(~np.isfinite(vectors).all(axis=1))[0])
            raise NonFiniteError(f"vectors contain NaN or infinite values (first in row {bad})")
        keys = _plain_keys(keys)
        if len(keys) != vectors.shape[0]:
            raise ShapeMismatchError(f"{len(keys)} keys for {vectors.shape[0]} rows of vectors")
        index = _key_index(keys)
        if ids is not None:
            ids = np.asarray(ids)
            if ids.shape != (len(keys),):
                raise ShapeMismatchError(f"{ids.size} ids for {len(keys)} keys")
        self.keys: list[Hashable] = keys
        self.vectors: np.ndarray = vectors
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidParameterError(f"metadata must be a dict, got {type(metadata).__name__}")
        self.ids: np.ndarray | None = ids
        self.metadata: dict[str, Any] = dict(metadata or {})
        self._index = index

    # ------------------------------------------------------------------ basics
    @property
    def n(self) -> int:
        """Number of entities (rows)."""
        return int(self.vectors.shape[0])

    @property
    def d(self) -> int:
        """Dimension (columns)."""
        return int(self.vectors.shape[1])

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n, self.d)

    def __len__(self) -> int:
        return self.n

    def __contains__(self, key: object) -> bool:
        try:
            return key in self._index
        except TypeError:
            return False

    def index_of(self, key: Hashable) -> int:
        """Row of ``key``; ``KeyError`` (an :class:`EntityNotFoundError`) if absent."""
        from .errors import EntityNotFoundError

        try:
            return self._index[_plain_key(key)]
        except (KeyError, TypeError):
            raise EntityNotFoundError(f"key {key!r} is not among the {self.n} entities") from None

    def __getitem__(self, key: Hashable) -> np.ndarray:
        """The vector of ``key`` (a view, shape (d,))."""
        return self.vectors[self.index_of(key)]

    @property
    def titles(self) -> list[str]:
        """A readable label per row: the first element of tuple keys (the title), else the key."""
        return [str(k[0]) if isinstance(k, tuple) and k else str(k) for k in self.keys]

    def take(self, rows: Iterable[int] | np.ndarray) -> Embeddings:
        """The embeddings of the given rows, in that order."""
        rows = np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows, dtype=np.int64)
        return Embeddings(
            [self.keys[i] for i in rows],
            self.vectors[rows],
            ids=None if self.ids is None else self.ids[rows],
            metadata=self.metadata,
        )

    def _with_vectors(
        self,
        vectors: np.ndarray,
        *,
        ids: np.ndarray | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Embeddings:
        """These keys with other vectors: the very key list and index (not
        copied, not checked again), ``vectors`` an n x d float32 array that the
        caller knows to be finite (a permutation of these rows, or the vectors
        of embeddings with equal keys), ``ids``, and ``metadata`` (default:
        these). Key comparisons with this embeddings are then identity checks."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != self.n:
            raise ShapeMismatchError(f"{self.n} keys for vectors of shape {vectors.shape}")
        if ids is not None and np.shape(ids) != (self.n,):
            raise ShapeMismatchError(f"{np.size(ids)} ids for {self.n} keys")
        out = Embeddings.__new__(Embeddings)
        out.keys = self.keys
        out.vectors = vectors
        out.ids = ids
        out.metadata = dict(self.metadata if metadata is None else metadata)
        out._index = self._index
        return out

    def subset(self, keys: Iterable[Hashable]) -> Embeddings:
        """The embeddings of ``keys``, in that order."""
        return self.take([self.index_of(k) for k in keys])

    def duplicate_rows(self, *, direction: bool = False) -> pd.DataFrame:
        """Entities whose vectors are exactly equal (``direction=True``: exactly
        parallel, i.e. equal after scaling to unit length, zero vectors apart).

        Such rows cannot be told apart by any measure: their neighbors are
        ties, and on ratings data they are common (items rated by one same user
        get parallel vectors in every WALS and SVD space).

        Returns a DataFrame with one row per duplicated entity: ``group`` (0 is
        the largest group), ``size`` (entities in the group), ``key`` and
        ``row``; sorted by group, then row. Empty when every row is distinct.
        Cost: ``O(n d log n)``.
        """
        x = self.vectors
        if direction:
            norms = np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
            nonzero = norms[:, 0] > 0
            x = np.where(nonzero[:, None], x / np.where(nonzero[:, None], norms, 1.0), 0.0)
            x = x.astype(np.float32)
        columns = ["group", "size", "key", "row"]
        if self.n == 0:
            return pd.DataFrame(columns=columns)
        _, inverse, counts = np.unique(x, axis=0, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        rows = np.flatnonzero(counts[inverse] > 1)
        if rows.size == 0:
            return pd.DataFrame(columns=columns)
        sizes = counts[inverse[rows]]
        order = np.lexsort((rows, inverse[rows], -sizes))
        rows, sizes = rows[order], sizes[order]
        labels = inverse[rows]
        group = np.cumsum(np.r_[True, labels[1:] != labels[:-1]]) - 1
        return pd.DataFrame(
            {
                "group": group,
                "size": sizes,
                "key": [self.keys[i] for i in rows],
                "row": rows,
            }
        )

    def __repr__(self) -> str:
        made = self.metadata.get("estimator")
        what = f", {made}" if made else ""
        return f"<Embeddings: {self.n:,} x {self.d}{what}>"

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_dict(
        cls, mapping: Mapping[Hashable, Any], *, metadata: Mapping[str, Any] | None = None
    ) -> Embeddings:
        """From ``{key: vector}``; rows follow the mapping's order."""
        if not isinstance(mapping, Mapping):
            raise InvalidParameterError(f"from_dict takes a mapping, got {type(mapping).__name__}")
        keys = list(mapping.keys())
        if not keys:
            raise ShapeMismatchError("cannot build embeddings from an empty mapping")
        try:
            vectors = np.vstack(
                [np.asarray(mapping[k], dtype=np.float64).reshape(1, -1) for k in keys]
            )
        except ValueError as exc:
            raise ShapeMismatchError(f"vectors of the mapping differ in length: {exc}") from None
        return cls(keys, vectors, metadata=metadata)

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        key: str | Sequence[str] | None = None,
        columns: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Embeddings:
        """From a DataFrame: keys from column(s) ``key`` (a list gives tuple keys)
        or from the index when ``key`` is None; vectors from ``columns`` (default:
        every numeric column that is not a key column)."""
        if not isinstance(frame, pd.DataFrame):
            raise InvalidParameterError(
                f"from_frame takes a pandas DataFrame, got {type(frame).__name__}"
            )
        if key is None:
            keys = list(frame.index)
            rest = frame
        else:
            key_cols = [key] if isinstance(key, str) else list(key)
            missing = [c for c in key_cols if c not in frame.columns]
            if missing:
                raise InvalidParameterError(f"key column(s) {missing} not in the frame")
            if len(key_cols) == 1:
                keys = frame[key_cols[0]].tolist()
            else:
                keys = list(frame[key_cols].itertuples(index=False, name=None))
            rest = frame.drop(columns=key_cols)
        if columns is None:
            columns = [c for c in rest.columns if pd.api.types.is_numeric_dtype(rest[c])]
        if not columns:
            raise ShapeMismatchError("no numeric columns to use as vectors")
        return cls(keys, rest[list(columns)].to_numpy(dtype=np.float64), metadata=metadata)

    def to_frame(self) -> pd.DataFrame:
        """A DataFrame indexed by key with columns ``0..d-1``."""
        index = pd.Index(self.keys, tupleize_cols=False)
        return pd.DataFrame(self.vectors, index=index)

    @classmethod
    def from_array(
        cls,
        x: Any,
        keys: Sequence[Hashable] | str | os.PathLike[str] | None = None,
        *,
        ids: Sequence[Any] | np.ndarray | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Embeddings:
        """From any (n x d) array-like: a numpy array, a torch tensor (detached
        and moved to the CPU), a CuPy array, anything with ``__array__`` (see
        :func:`embspace.embeddings_io.as_numpy`). ``keys``: a sequence or
        array of n keys, a keys file (:func:`embspace.embeddings_io.read_keys`),
        or None for the row numbers ``0..n-1``."""
        vectors = as_numpy(x, "vectors")
        if vectors.ndim != 2:
            raise ShapeMismatchError(f"vectors must be 2-D (n x d), got shape {vectors.shape}")
        if keys is None:
            found: Sequence[Hashable] = range(vectors.shape[0])
        elif isinstance(keys, (str, os.PathLike)):
            found = read_keys(keys)
        elif not isinstance(keys, (list, tuple, range)) and (
            hasattr(keys, "__array__") or hasattr(keys, "numpy")
        ):
            found = list(as_numpy(keys, "keys").tolist())
        else:
            found = keys
        return cls(found, vectors, ids=ids, metadata=metadata)

    @classmethod
    def from_keyed_vectors(
        cls, kv: Any, *, metadata: Mapping[str, Any] | None = None
    ) -> Embeddings:
        """From gensim ``KeyedVectors`` (or a model holding them as ``.wv``,
        such as ``Word2Vec``): keys ``kv.index_to_key``, vectors ``kv.vectors``,
        in that order. Duck-typed: gensim itself is not imported."""
        target = kv
        if not hasattr(target, "index_to_key") and hasattr(target, "wv"):
            target = target.wv
        if not hasattr(target, "index_to_key") or not hasattr(target, "vectors"):
            raise InvalidParameterError(
                "from_keyed_vectors takes gensim KeyedVectors (with .index_to_key and .vectors) "
                f"or a model with .wv, got {type(kv).__name__}"
            )
        return cls.from_array(target.vectors, list(target.index_to_key), metadata=metadata)

    def to_keyed_vectors(self) -> Any:
        """These embeddings as gensim ``KeyedVectors`` (same keys, order and
        float32 vectors). Needs gensim (:class:`ImportError` otherwise)."""
        try:
            from gensim.models import KeyedVectors
        except ImportError:
            raise ImportError("to_keyed_vectors needs gensim: pip install gensim") from None
        kv = KeyedVectors(vector_size=self.d, dtype=np.float32)
        kv.add_vectors(list(self.keys), self.vectors)
        return kv

    # ------------------------------------------------------------------ files
    def save(
        self,
        path: str | os.PathLike[str],
        format: str | EmbeddingsFormat | None = None,
        **options: Any,
    ) -> Path:
        """Write to ``path`` atomically and return the path written.

        The format is ``format`` (a name of :data:`embspace.embeddings_io.FORMATS`:
        ``embspace``, ``npz``, ``npy``, ``csv``, ``parquet``, ``word2vec``,
        ``word2vec-binary``), else the one the name's ending claims (``.npz`` is
        embspace's own format); a name no format claims gets ``.npz`` appended
        and embspace's format, as does ``format="embspace"`` for a name not
        ending in ``.npz``. ``options`` go to the writer: ``keys_file=`` (npy),
        ``sep=``, ``layout="columns"|"list"`` (csv), ``layout=`` (parquet).
        Keys a format cannot hold are an
        :class:`~embspace.errors.InvalidParameterError` (see the table in
        :mod:`embspace.embeddings_io`); nothing is written then."""
        path = check_path(path, "path")
        fmt = format_for_writing(path, format)
        if fmt is None or fmt.name == "embspace":
            if path.suffix != ".npz":
                path = path.with_suffix(path.suffix + ".npz")
            fmt = fmt or "embspace"  # type: ignore[assignment]
        return write_embeddings(path, self, fmt, **options)  # type: ignore[arg-type]

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        format: str | EmbeddingsFormat | None = None,
        **options: Any,
    ) -> Embeddings:
        """Read an embeddings file in any format of
        :data:`embspace.embeddings_io.FORMATS`.

        The format is ``format``, else the one the name's ending claims (a
        ``.npz`` with embspace's marker is embspace's format, any other the plain
        ``npz``), else the one the first bytes show. ``options`` go to the
        reader: ``keys=`` (a keys file or an array; npy, npz), ``array=`` (npz),
        ``key=``, ``columns=`` (csv, parquet), ``sep=``, ``header=`` (csv),
        ``encoding=`` (csv, word2vec), ``errors=`` (word2vec).

        A missing file raises :class:`~embspace.errors.MissingFileError` (also
        a ``FileNotFoundError``); one that cannot be opened (permissions) its
        ``OSError``; any file that is not a complete, valid file of its format
        (truncated, corrupted, empty, members or values of the wrong type,
        repeated keys, non-finite values, ...) a
        :class:`~embspace.errors.DatasetFormatError` naming it."""
        path = check_path(path, "path")
        data, fmt = read_embeddings(path, format, **options)
        return cls._from_data(data, path, fmt.name)

    @classmethod
    def _from_data(cls, data: EmbeddingsData, path: Path, format_name: str) -> Embeddings:
        vectors = np.asarray(data.vectors)
        keys: Sequence[Hashable] = range(vectors.shape[0]) if data.keys is None else data.keys
        try:
            if vectors.ndim != 2:
                raise ShapeMismatchError(f"the vectors have shape {vectors.shape}, not n x d")
            return cls(keys, vectors, ids=data.ids, metadata=data.metadata)
        except EmbspaceError as exc:
            why = " ".join(str(exc).split())
            if format_name == "embspace":
                raise DatasetFormatError(
                    f"cannot read {path}: not an embspace embeddings file, or a damaged one ({why})"
                ) from None
            raise DatasetFormatError(f"cannot read {path} as {format_name}: {why}") from None


def align(a: Embeddings, b: Embeddings) -> tuple[Embeddings, Embeddings]:
    """Restrict ``a`` and ``b`` to their shared keys, in ``a``'s order.

    Raises :class:`~embspace.errors.NoSharedKeysError` when they share none.
    When both already have the same keys in the same order they are returned
    unchanged (no copy)."""
    if not isinstance(a, Embeddings) or not isinstance(b, Embeddings):
        raise InvalidParameterError(
            f"align takes two Embeddings, got {type(a).__name__} and {type(b).__name__}"
        )
    if a.keys == b.keys:
        return a, b
    shared = [i for i, k in enumerate(a.keys) if k in b._index]
    if not shared:
        raise NoSharedKeysError(
            f"the two embeddings ({a.n} and {b.n} entities) share no key; "
            f"e.g. {a.keys[:1]} vs {b.keys[:1]}"
        )
    rows_b = [b._index[a.keys[i]] for i in shared]
    return a.take(shared), b.take(rows_b)
