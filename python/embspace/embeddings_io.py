"""Embeddings files in and out: one registry of formats.

Each format is an :class:`EmbeddingsFormat` (a reader, a writer and the file
name endings it claims) in :data:`FORMATS`, a
:class:`~embspace._registry.Registry`. :meth:`embspace.Embeddings.load` and
:meth:`embspace.Embeddings.save` pick one by ``format=``, else by the end of the
file name; where an ending is shared (``.npz``) or unknown, reading looks at
the file's first bytes.

==================== ====================== =================================================
format               endings                keys that round-trip (vectors: float32, always)
==================== ====================== =================================================
``embspace``         ``.npz`` (with marker) every key embspace holds (str, int, float, bool,
                                            None and tuples of them), ids and metadata
``npz``              ``.npz`` (no marker)   str or int (member ``keys``), ids; without a
                                            ``keys`` member, or ``keys=``: row numbers
``npy``              ``.npy``               row numbers, or a keys file / array (``keys=``)
``csv``              ``.csv``, ``.tsv``     str or int, and tuples of them (columns
                     (``.gz`` too)          ``key_0``, ``key_1``, ...)
``parquet``          ``.parquet``, ``.pq``  str, int, float, bool and tuples of them;
                                            metadata (needs pyarrow)
``word2vec``         ``.txt``, ``.vec``     str (words without whitespace); reads GloVe's
                     (``.gz`` too)          headerless text as well
``word2vec-binary``  ``.bin`` (``.gz`` too) str (words without whitespace)
==================== ====================== =================================================

Text formats write the shortest decimal text that reads back as the same
float32 value, so every format round-trips the vectors exactly.

A reader is ``read(path, **options) -> EmbeddingsData``, a writer
``write(path, embeddings, **options)``; :func:`register_format` adds one. Every
file that cannot be read raises :class:`~embspace.errors.DatasetFormatError`
(:class:`~embspace.errors.MissingFileError` when it is absent), naming the file
and the format; an operating-system error with an errno (permission denied, an
I/O error) stays the ``OSError`` it is. Writes are atomic
(:func:`embspace._atomic.atomic_writer`): keys a format cannot hold are refused
with an :class:`~embspace.errors.InvalidParameterError` before the file is touched.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import operator
import os
import re
import warnings
import zipfile
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol, cast

import numpy as np

from ._atomic import atomic_writer
from ._params import check_choice, check_path
from ._registry import Registry
from .errors import (
    DatasetFormatError,
    EmbspaceError,
    EmbspaceWarning,
    InvalidParameterError,
    MissingFileError,
    ShapeMismatchError,
)
from .jsonio import json_default, key_from_json, key_to_json

__all__ = [
    "EMBSPACE_MARKER",
    "FORMATS",
    "EmbeddingsData",
    "EmbeddingsFormat",
    "EmbeddingsLike",
    "as_numpy",
    "decode_arrays",
    "encode_arrays",
    "format_for_reading",
    "format_for_writing",
    "read_embeddings",
    "read_keys",
    "register_format",
    "write_embeddings",
    "write_keys",
]

#: The ``format`` member of an embspace ``.npz`` file.
EMBSPACE_MARKER = "embspace.embeddings/1"


# ---------------------------------------------------------------------- shapes
@dataclass
class EmbeddingsData:
    """What a file holds: ``vectors`` (n x d, any real dtype; made float32 by
    :class:`~embspace.Embeddings`), ``keys`` (length n; None means the row
    numbers ``0..n-1``), optional ``ids`` (length n) and ``metadata``."""

    vectors: np.ndarray
    keys: list[Hashable] | None = None
    ids: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class EmbeddingsLike(Protocol):
    """What a writer reads of an :class:`~embspace.Embeddings`."""

    keys: list[Hashable]
    vectors: np.ndarray
    ids: np.ndarray | None
    metadata: dict[str, Any]


Reader = Callable[..., EmbeddingsData]
Writer = Callable[..., None]


@dataclass(frozen=True)
class EmbeddingsFormat:
    """One file format of embeddings.

    ``extensions`` are the lower-case endings of file names it claims (``.npz``,
    ``.csv.gz``); ``read(path, **options)`` returns an :class:`EmbeddingsData`
    and ``write(path, embeddings, **options)`` writes one atomically; the
    options each takes are ``read_options`` / ``write_options``. ``sniff(path)``,
    when given, says from the first bytes whether a file is in this format
    (used where an ending is shared or unknown). ``keys`` says in words which
    keys round-trip."""

    name: str
    extensions: tuple[str, ...]
    read: Reader
    write: Writer
    read_options: tuple[str, ...] = ()
    write_options: tuple[str, ...] = ()
    sniff: Callable[[Path], bool] | None = None
    keys: str = ""
    description: str = ""


#: The formats :meth:`Embeddings.load` and :meth:`Embeddings.save` know, by name.
FORMATS: Registry[EmbeddingsFormat] = Registry("embeddings format")


def register_format(fmt: EmbeddingsFormat, *, replace: bool = False) -> EmbeddingsFormat:
    """Add ``fmt`` to :data:`FORMATS` (a name already there is refused unless
    ``replace=True``). Earlier formats win where two claim an ending."""
    if not isinstance(fmt, EmbeddingsFormat):
        raise InvalidParameterError(
            f"register_format takes an EmbeddingsFormat, got {type(fmt).__name__}"
        )
    return FORMATS.register(fmt.name, fmt, replace=replace)


# ---------------------------------------------------------------------- choosing a format
def _ending_matches(path: Path) -> list[EmbeddingsFormat]:
    """The formats claiming the longest ending of ``path``'s name, in registry order."""
    name = path.name.lower()
    best, found = 0, []
    for fmt in FORMATS.values():
        length = max((len(e) for e in fmt.extensions if name.endswith(e)), default=0)
        if length > best:
            best, found = length, [fmt]
        elif length and length == best:
            found.append(fmt)
    return found


def _known(fmt: Any) -> EmbeddingsFormat:
    if isinstance(fmt, EmbeddingsFormat):
        return fmt
    return FORMATS.lookup(fmt)


def _sniffs(fmt: EmbeddingsFormat, path: Path) -> bool:
    if fmt.sniff is None:
        return False
    try:
        return bool(fmt.sniff(path))
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return False


def format_for_reading(
    path: Path, format: str | EmbeddingsFormat | None = None
) -> EmbeddingsFormat:
    """The format to read ``path`` with: ``format`` when given; else the format
    claiming the file name's ending (the first whose ``sniff`` recognises the
    file where several claim it, else the first); else the first format whose
    ``sniff`` recognises the content."""
    if format is not None:
        return _known(format)
    claimed = _ending_matches(path)
    if claimed:
        return next((f for f in claimed if _sniffs(f, path)), claimed[0])
    for fmt in FORMATS.values():
        if _sniffs(fmt, path):
            return fmt
    raise DatasetFormatError(
        f"cannot tell the format of {path} from its name or its first bytes; name it with "
        f"format= (--format on the command line): one of {', '.join(FORMATS)}"
    )


def format_for_writing(
    path: Path, format: str | EmbeddingsFormat | None = None
) -> EmbeddingsFormat | None:
    """The format to write ``path`` in: ``format`` when given, else the first
    format claiming the name's ending; None when no format claims it (the caller
    decides: :meth:`Embeddings.save` then writes embspace's ``.npz``)."""
    if format is not None:
        return _known(format)
    claimed = _ending_matches(path)
    return claimed[0] if claimed else None


def _check_options(
    fmt: EmbeddingsFormat, options: Mapping[str, Any], allowed: Sequence[str], verb: str
) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        takes = ", ".join(allowed) if allowed else "none"
        raise InvalidParameterError(
            f"{verb} the {fmt.name} format takes no option {', '.join(unknown)} "
            f"(its options: {takes})"
        )


def read_embeddings(
    path: str | os.PathLike[str],
    format: str | EmbeddingsFormat | None = None,
    **options: Any,
) -> tuple[EmbeddingsData, EmbeddingsFormat]:
    """``(data, format)`` of the embeddings file ``path`` (see the module docs).

    A missing file (or a folder) is a :class:`~embspace.errors.MissingFileError`;
    any file the format cannot read a
    :class:`~embspace.errors.DatasetFormatError`; an option the format does not
    take an :class:`~embspace.errors.InvalidParameterError`."""
    path = check_path(path, "path")
    if not path.is_file():
        raise MissingFileError(f"{path} does not exist or is not a file")
    fmt = format_for_reading(path, format)
    _check_options(fmt, options, fmt.read_options, "reading")
    try:
        data = fmt.read(path, **options)
    except EmbspaceError:
        raise
    except OSError as exc:
        if exc.errno is not None:  # permission denied, I/O error: the OS's own error
            raise
        raise _format_error(path, fmt, exc, guessed=format is None) from None
    except Exception as exc:  # any damage is a format error, never a raw one
        raise _format_error(path, fmt, exc, guessed=format is None) from None
    if not isinstance(data, EmbeddingsData):
        raise InvalidParameterError(
            f"the reader of format {fmt.name!r} returned {type(data).__name__}, "
            "not an EmbeddingsData"
        )
    return data, fmt


def _why(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _format_error(
    path: Path, fmt: EmbeddingsFormat, exc: BaseException, *, guessed: bool = False
) -> DatasetFormatError:
    hint = (
        " (told by its name or first bytes; format= or --format names another)" if guessed else ""
    )
    return DatasetFormatError(f"cannot read {path} as {fmt.name}{hint}: {_why(exc)}")


def write_embeddings(
    path: str | os.PathLike[str],
    embeddings: EmbeddingsLike,
    format: str | EmbeddingsFormat,
    **options: Any,
) -> Path:
    """Write ``embeddings`` to ``path`` in ``format`` (atomically) and return the path."""
    path = check_path(path, "path")
    fmt = _known(format)
    _check_options(fmt, options, fmt.write_options, "writing")
    fmt.write(path, embeddings, **options)
    return path


# ---------------------------------------------------------------------- array-likes
def as_numpy(x: Any, what: str = "vectors") -> np.ndarray:
    """``x`` as a numpy array: numpy arrays as they are; torch-like tensors by
    ``.detach().cpu().numpy()`` (each step where the object has it); CuPy
    arrays by ``.get()``; anything with ``__array__`` (JAX, pandas, xarray),
    and lists, by :func:`numpy.asarray`. Anything else is an
    :class:`~embspace.errors.InvalidParameterError`."""
    if isinstance(x, np.ndarray):
        return x
    try:
        if hasattr(x, "__cuda_array_interface__") and callable(getattr(x, "get", None)):
            return np.asarray(x.get())  # CuPy: to the host
        obj = x
        for step in ("detach", "cpu"):
            method = getattr(obj, step, None)
            if callable(method):
                obj = method()
        to_numpy = getattr(obj, "numpy", None)
        if callable(to_numpy):
            return np.asarray(to_numpy())
        if hasattr(obj, "__array__") or isinstance(obj, (list, tuple)):
            return np.asarray(obj)
    except (TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise InvalidParameterError(
            f"cannot turn the {what} ({type(x).__name__}) into a numpy array: {_why(exc)}"
        ) from None
    raise InvalidParameterError(
        f"the {what} must be an array (numpy, torch, CuPy, anything with __array__), "
        f"got {type(x).__name__}"
    )


_INT_TEXT = re.compile(r"^-?\d+$")


def _keys_from_texts(texts: Sequence[str]) -> list[Hashable]:
    """Keys read as text: ints when every one is an integer, else the strings."""
    if texts and all(_INT_TEXT.match(t) for t in texts):
        return [int(t) for t in texts]
    return list(texts)


def read_keys(path: str | os.PathLike[str]) -> list[Hashable]:
    """The keys stored in a keys file: a ``.npy`` of one 1-D array (its values,
    types kept), or text with one key per line (UTF-8; read as ints when every
    line is an integer, else as strings)."""
    path = check_path(path, "keys file")
    if not path.is_file():
        raise MissingFileError(f"keys file {path} does not exist or is not a file")
    try:
        if path.name.lower().endswith(".npy"):
            array = np.load(path, allow_pickle=False)
            if not isinstance(array, np.ndarray) or array.ndim != 1:
                raise ValueError("it does not hold one 1-D array")
            return list(array.tolist())
        with _open_read(path) as fh:
            text = fh.read().decode("utf-8-sig")
    except (ValueError, EOFError) as exc:
        raise DatasetFormatError(f"cannot read keys file {path}: {_why(exc)}") from None
    except OSError as exc:
        if exc.errno is not None:
            raise
        raise DatasetFormatError(f"cannot read keys file {path}: {_why(exc)}") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    return _keys_from_texts([line.rstrip("\r") for line in lines])


def _keys_file_bytes(path: Path, keys: Sequence[Hashable]) -> bytes:
    """The content of a keys file at ``path`` holding ``keys``; refuses keys
    that would not read back equal (see :func:`write_keys`)."""
    kinds = _scalar_kinds(keys)
    if kinds not in ({"str"}, {"int"}, set()):
        raise InvalidParameterError(
            f"a keys file holds str or int keys, not {' and '.join(sorted(kinds))}"
        )
    if path.name.lower().endswith(".npy"):
        buffer = io.BytesIO()
        np.save(buffer, _plain_key_array(keys, "keys file"), allow_pickle=False)
        return buffer.getvalue()
    texts = [str(k) for k in keys]
    if kinds == {"str"}:
        bad = next((t for t in texts if "\n" in t or "\r" in t), None)
        if bad is not None:
            raise InvalidParameterError(f"key {bad!r} holds a line break: use a .npy keys file")
        if all(_INT_TEXT.match(t) for t in texts):
            raise InvalidParameterError(
                "every key is a string of digits, which a text keys file reads back as ints; "
                "use a .npy keys file"
            )
    return "".join(t + "\n" for t in texts).encode("utf-8")


def write_keys(path: str | os.PathLike[str], keys: Sequence[Hashable]) -> Path:
    """Write ``keys`` (all str or all int) atomically to a keys file that
    :func:`read_keys` reads back equal: a ``.npy`` array when the name ends in
    ``.npy``, else UTF-8 text with one key per line (refused for keys holding a
    line break, and for strings that are all digits, which would read back as ints)."""
    path = check_path(path, "keys file")
    payload = _keys_file_bytes(path, keys)
    with atomic_writer(path) as fh:
        fh.write(payload)
    return path


def _scalar_kinds(values: Iterable[Any]) -> set[str]:
    kinds = set()
    for v in values:
        if isinstance(v, bool) or isinstance(v, np.bool_):
            kinds.add("bool")
        elif isinstance(v, (int, np.integer)):
            kinds.add("int")
        elif isinstance(v, (float, np.floating)):
            kinds.add("float")
        elif isinstance(v, str):
            kinds.add("str")
        else:
            kinds.add(type(v).__name__)
    return kinds


def _keys_option(keys: Any, n: int, path: Path) -> list[Hashable] | None:
    """The ``keys=`` option of a reader: None, a keys file, or a sequence/array."""
    if keys is None:
        return None
    if isinstance(keys, (str, os.PathLike)):
        found = read_keys(keys)
    elif isinstance(keys, np.ndarray) or hasattr(keys, "__array__") or hasattr(keys, "numpy"):
        found = list(as_numpy(keys, "keys").tolist())
    elif isinstance(keys, Iterable):
        found = list(keys)
    else:
        raise InvalidParameterError(
            f"keys must be a keys file or a sequence of keys, got {type(keys).__name__}"
        )
    if len(found) != n:
        raise ShapeMismatchError(f"{len(found)} keys for the {n} rows of {path}")
    return found


# ---------------------------------------------------------------------- files
@contextmanager
def _open_read(path: Path) -> Iterator[IO[bytes]]:
    """``path`` opened for binary reading, decompressed when its name ends in ``.gz``."""
    if path.name.lower().endswith(".gz"):
        with gzip.open(path, "rb") as fh:
            yield cast("IO[bytes]", fh)
    else:
        with open(path, "rb") as fh:
            yield fh


@contextmanager
def _open_write(path: Path) -> Iterator[IO[bytes]]:
    """An atomic binary writer of ``path``, compressing when its name ends in ``.gz``
    (with no time stamp in the gzip header, so equal content gives equal bytes)."""
    with atomic_writer(path) as fh:
        if path.name.lower().endswith(".gz"):
            with gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as gz:
                yield cast("IO[bytes]", gz)
        else:
            yield fh


def _head(path: Path, size: int = 4096) -> bytes:
    with _open_read(path) as fh:
        return fh.read(size)


# ---------------------------------------------------------------------- embspace .npz
# The one encoding of keys, ids and metadata in .npz files, shared by
# Embeddings.save/load and the run cache (embspace.cache, through
# embspace.embeddings.encode_side/decode_side). Nothing is pickled:
#
# ``<prefix>vectors``   the float32 matrix;
# ``<prefix>keys``      JSON list of the keys (tuples as lists);
# ``<prefix>ids``       the ids array as it is, for every dtype numpy stores
#                       natively (bool, int8..uint64, floats, complex, str,
#                       bytes, datetimes), so the dtype round-trips;
# ``<prefix>ids_json``  or, for an object array (string ids of a pandas
#                       column, tuples), a JSON list of its values, read back
#                       as an object array of the same values;
# ``<prefix>metadata``  JSON object.


def _json_text(value: Any, what: str) -> np.ndarray:
    try:
        return np.array(json.dumps(value, default=json_default))
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"the {what} cannot be saved as JSON: {exc}") from None


def _json_member(arrays: Mapping[str, np.ndarray], name: str, kind: type) -> Any:
    """The JSON value of the member ``name``, which must be a ``kind``."""
    member = arrays[name]
    if not isinstance(member, np.ndarray) or member.shape != () or member.dtype.kind != "U":
        raise ValueError(f"{name} is not a JSON text")
    value = json.loads(str(member))
    if not isinstance(value, kind):
        raise ValueError(f"{name} holds a JSON {type(value).__name__}, expected a {kind.__name__}")
    return value


def _object_array(values: list[Any]) -> np.ndarray:
    """A 1-D object array holding ``values`` as they are (tuples stay tuples)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


# The JSON texts of the last few key lists encoded, with the keys they encode
# (a sweep saves every run's sides with the same keys: encoding them costs
# about 2 us per key, 0.3 s per run on ML-20M). An entry is reused only for a
# list of the very same key objects, element by element (keys are hashable,
# so immutable: the same objects have the same text); the texts are read-only.
_KEYS_TEXTS: list[tuple[list[Hashable], np.ndarray]] = []
_KEYS_TEXTS_MAX = 4


def _keys_text(keys: Sequence[Hashable]) -> np.ndarray:
    """``_json_text`` of the keys as :func:`key_to_json` writes them."""
    for held, text in list(_KEYS_TEXTS):
        if len(held) == len(keys) and all(map(operator.is_, held, keys)):
            return text
    text = _json_text([key_to_json(k) for k in keys], "keys")
    text.flags.writeable = False
    _KEYS_TEXTS.insert(0, (list(keys), text))
    del _KEYS_TEXTS[_KEYS_TEXTS_MAX:]
    return text


def encode_arrays(emb: EmbeddingsLike, prefix: str = "") -> dict[str, np.ndarray]:
    """The arrays that store ``emb`` (vectors, keys, ids, metadata), named
    ``<prefix>vectors`` and so on; :func:`decode_arrays` reads them back."""
    arrays = {
        f"{prefix}vectors": emb.vectors,
        f"{prefix}keys": _keys_text(emb.keys),
        f"{prefix}metadata": _json_text(emb.metadata, "metadata"),
    }
    if emb.ids is not None:
        ids = np.asarray(emb.ids)
        if ids.dtype == object:
            arrays[f"{prefix}ids_json"] = _json_text([key_to_json(x) for x in ids.tolist()], "ids")
        elif ids.dtype.hasobject:
            raise InvalidParameterError(f"ids of dtype {ids.dtype} cannot be saved")
        else:
            arrays[f"{prefix}ids"] = ids
    return arrays


def decode_arrays(arrays: Mapping[str, np.ndarray], prefix: str = "") -> EmbeddingsData:
    """The data stored by :func:`encode_arrays`. A member that is missing or of
    the wrong kind raises ``KeyError`` or ``ValueError`` (the callers turn them
    into their own errors)."""
    keys = [key_from_json(k) for k in _json_member(arrays, f"{prefix}keys", list)]
    metadata = _json_member(arrays, f"{prefix}metadata", dict)
    ids: np.ndarray | None = None
    if f"{prefix}ids_json" in arrays:
        values = _json_member(arrays, f"{prefix}ids_json", list)
        ids = _object_array([key_from_json(x) for x in values])
    elif f"{prefix}ids" in arrays:
        ids = arrays[f"{prefix}ids"]
    return EmbeddingsData(arrays[f"{prefix}vectors"], keys, ids, metadata)


def _zip_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


def _sniff_embspace(path: Path) -> bool:
    return _head(path, 4).startswith(b"PK") and "format.npy" in _zip_names(path)


def _read_embspace(path: Path) -> EmbeddingsData:
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
            fh.seek(0)
            if not magic.startswith(b"PK") and not magic.startswith(b"\x93NUMPY"):
                raise ValueError("it is not an .npz (zip) archive" if magic else "it is empty")
            z = np.load(fh, allow_pickle=False)
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise ValueError(
                    "it holds a single array (.npy), not an .npz archive (format='npy' reads it)"
                )
            with z:
                if "format" not in z or str(z["format"]) != EMBSPACE_MARKER:
                    raise ValueError("it has no embspace embeddings format marker")
                arrays = {name: z[name] for name in z.files}
            return decode_arrays(arrays)
    except OSError as exc:
        if exc.errno is not None:
            raise
        raise _embspace_error(path, exc) from None
    except Exception as exc:
        raise _embspace_error(path, exc) from None


def _embspace_error(path: Path, exc: BaseException) -> DatasetFormatError:
    return DatasetFormatError(
        f"cannot read {path}: not an embspace embeddings file, or a damaged one ({_why(exc)})"
    )


def _write_embspace(path: Path, emb: EmbeddingsLike) -> None:
    payload = {"format": np.array(EMBSPACE_MARKER), **encode_arrays(emb)}
    with atomic_writer(path) as fh:
        np.savez(fh, allow_pickle=False, **payload)


# ---------------------------------------------------------------------- plain .npz / .npy
def _sniff_npz(path: Path) -> bool:
    return _head(path, 4).startswith(b"PK") and "format.npy" not in _zip_names(path)


def _read_npz(path: Path, *, keys: Any = None, array: str | None = None) -> EmbeddingsData:
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise DatasetFormatError(
            f"cannot read {path}: not an embspace embeddings file nor a plain .npz, "
            f"or a damaged one ({_why(exc)})"
        ) from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise DatasetFormatError(
            f"cannot read {path} as npz: it holds a single array (.npy); format='npy' reads it"
        )
    with z:
        names = list(z.files)
        if array is not None:
            if array not in names:
                raise DatasetFormatError(
                    f"cannot read {path} as npz: no array {array!r} (it holds {names})"
                )
            name = array
        elif "vectors" in names:
            name = "vectors"
        else:
            shapes = {n: z[n].shape for n in names}
            matrices = [n for n, s in shapes.items() if len(s) == 2]
            if len(matrices) != 1:
                what = "no 2-D array" if not matrices else f"several 2-D arrays {matrices}"
                raise DatasetFormatError(
                    f"cannot read {path}: not an embspace embeddings file, and a plain .npz with "
                    f"{what} (it holds {shapes}); pass array=NAME to choose the vectors"
                )
            name = matrices[0]
        vectors = z[name]
        if vectors.ndim != 2:
            raise DatasetFormatError(
                f"cannot read {path} as npz: array {name!r} has shape {vectors.shape}, not n x d"
            )
        n = vectors.shape[0]
        found = _keys_option(keys, n, path)
        if found is None and "keys" in names and name != "keys":
            found = _member_keys(z["keys"], n, path)
        ids = None
        if "ids" in names and name != "ids":
            ids = z["ids"]
            if ids.shape != (n,):
                raise DatasetFormatError(
                    f"cannot read {path} as npz: {ids.size} ids for {n} rows of vectors"
                )
    return EmbeddingsData(vectors, found, ids)


def _member_keys(member: np.ndarray, n: int, path: Path) -> list[Hashable]:
    if member.shape != (n,) or member.dtype.kind not in "iuU":
        raise DatasetFormatError(
            f"cannot read {path} as npz: its keys array (shape {member.shape}, dtype "
            f"{member.dtype}) is not n = {n} str or int keys"
        )
    return list(member.tolist())


def _plain_key_array(keys: Sequence[Hashable], fmt: str) -> np.ndarray:
    kinds = _scalar_kinds(keys)
    if kinds == {"str"}:
        return np.array(keys, dtype=str)
    if kinds == {"int"}:
        try:
            return np.array(keys, dtype=np.int64)
        except OverflowError:
            pass
    raise InvalidParameterError(
        f"the {fmt} format stores str or int keys, not {' and '.join(sorted(kinds)) or 'these'}; "
        "format='embspace' (.npz), CSV or parquet keep tuple keys"
    )


def _write_npz(path: Path, emb: EmbeddingsLike) -> None:
    arrays = {"vectors": emb.vectors}
    if emb.keys:
        arrays["keys"] = _plain_key_array(emb.keys, "npz")
    if emb.ids is not None:
        ids = np.asarray(emb.ids)
        if not ids.dtype.hasobject:
            arrays["ids"] = ids
    with atomic_writer(path) as fh:
        np.savez(fh, allow_pickle=False, **arrays)


def _sniff_npy(path: Path) -> bool:
    return _head(path, 6) == b"\x93NUMPY"


def _read_npy(path: Path, *, keys: Any = None) -> EmbeddingsData:
    with open(path, "rb") as fh:
        if fh.read(6) != b"\x93NUMPY":
            raise DatasetFormatError(f"cannot read {path} as npy: it is not a .npy file")
        fh.seek(0)
        vectors = np.load(fh, allow_pickle=False)
    if vectors.ndim != 2:
        raise DatasetFormatError(
            f"cannot read {path} as npy: it holds an array of shape {vectors.shape}, not n x d"
        )
    return EmbeddingsData(vectors, _keys_option(keys, vectors.shape[0], path))


def _write_npy(path: Path, emb: EmbeddingsLike, *, keys_file: Any = None) -> None:
    keys_payload = None
    if keys_file is not None:
        keys_path = check_path(keys_file, "keys_file")
        if keys_path.resolve() == path.resolve():
            raise InvalidParameterError("keys_file must differ from the vectors file")
        keys_payload = _keys_file_bytes(keys_path, emb.keys)  # refused before any write
    elif emb.keys != list(range(len(emb.keys))):
        warnings.warn(
            f"{path}: a .npy holds the vectors only; its keys are lost (keys_file=... writes "
            "them, a .npz keeps them)",
            EmbspaceWarning,
            stacklevel=4,
        )
    with atomic_writer(path) as fh:
        np.save(fh, emb.vectors, allow_pickle=False)
    if keys_payload is not None:
        with atomic_writer(keys_path) as fh:
            fh.write(keys_payload)


# ---------------------------------------------------------------------- CSV and parquet
#: Normalised names of a column that holds keys (when ``key=`` is not given).
_KEY_NAMES = frozenset(
    {"key", "keys", "word", "token", "name", "title", "entity", "id", "item", "user", "label"}
)
_NUMBER = re.compile(
    r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$|^\s*[-+]?(nan|inf)\s*$", re.I
)
_TUPLE_KEY = re.compile(r"^key_(\d+)$")


def _norm(name: object) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def _key_like_name(name: object) -> bool:
    n = _norm(name)
    return n in _KEY_NAMES or (n.endswith("id") and len(n) > 2)


def _tuple_key_columns(names: Sequence[Any]) -> list[Any] | None:
    """``key_0, key_1, ...`` (consecutive from 0) among ``names``, else None."""
    found = {}
    for name in names:
        m = _TUPLE_KEY.match(str(name))
        if m:
            found[int(m.group(1))] = name
    if found and sorted(found) == list(range(len(found))):
        return [found[i] for i in range(len(found))]
    return None


def _column_label(label: Any, names: Sequence[Any], what: str, path: Path) -> Any:
    """``label`` among ``names``; a label given as digits names a position in a
    file without header (whose columns are 0, 1, ...)."""
    if label in names:
        return label
    if isinstance(label, str) and label.isdigit() and int(label) in names:
        return int(label)
    raise InvalidParameterError(
        f"{what} column {label!r} is not in {path} (its columns: {list(names)})"
    )


def _key_labels(key: Any, names: Sequence[Any], path: Path) -> list[Any]:
    if key is False:
        return []
    if isinstance(key, (list, tuple)):
        labels = [_column_label(k, names, "key", path) for k in key]
        if not labels:
            raise InvalidParameterError("key= lists no column")
        return labels
    return [_column_label(key, names, "key", path)]


def _text_cell_is_list(text: str) -> bool:
    t = text.strip()
    return t.startswith("[") and t.endswith("]")


def _parse_list_cells(cells: Sequence[str], column: Any) -> np.ndarray:
    rows = []
    for i, cell in enumerate(cells):
        t = str(cell).strip()
        if not _text_cell_is_list(t):
            raise ValueError(
                f"row {i}: column {column!r} holds {t[:40]!r}, not a [v1, v2, ...] list"
            )
        inner = t[1:-1].replace(",", " ").split()
        try:
            rows.append(np.array(inner, dtype=np.float64))
        except ValueError:
            raise ValueError(
                f"row {i}: column {column!r} holds a value that is not a number"
            ) from None
    lengths = {r.size for r in rows}
    if len(lengths) > 1:
        raise ValueError(f"the lists of column {column!r} differ in length ({sorted(lengths)})")
    if not rows:
        return np.zeros((0, 0))
    return np.vstack(rows)


def _sniff_separator(line: str, path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".tsv", ".tsv.gz")):
        return "\t"
    for sep in ("\t", ",", ";", "|"):
        if sep in line:
            return sep
    return " "


def _split_line(line: str, sep: str) -> list[str]:
    if sep == " ":
        return line.split()
    if len(sep) > 1:
        return line.split(sep)
    return next(csv.reader([line], delimiter=sep))


def _read_csv(
    path: Path,
    *,
    key: Any = None,
    columns: Sequence[Any] | None = None,
    sep: str | None = None,
    header: bool | None = None,
    encoding: str = "utf-8",
) -> EmbeddingsData:
    import pandas as pd

    if sep is not None and (not isinstance(sep, str) or not sep):
        raise InvalidParameterError(f"sep must be a non-empty string, got {sep!r}")
    if header is not None and not isinstance(header, bool):
        raise InvalidParameterError(f"header must be True, False or None, got {header!r}")
    with _open_read(path) as fh:
        text = fh.read().decode(encoding)
    text = text.lstrip("\ufeff")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise DatasetFormatError(f"cannot read {path} as csv: it is empty")
    delimiter = sep if sep is not None else _sniff_separator(lines[0], path)
    first = _split_line(lines[0], delimiter)
    if header is None:
        rest = first[1:] if len(first) > 1 else first
        header = not all(_NUMBER.match(f) or _text_cell_is_list(f) for f in rest)
    if header:
        names: list[Any] = [str(f).strip() for f in first]
        sample = _split_line(lines[1], delimiter) if len(lines) > 1 else []
    else:
        names = list(range(len(first)))
        sample = first
    if len(set(names)) != len(names):
        raise DatasetFormatError(f"cannot read {path} as csv: repeated column names {names}")
    # which columns hold keys, which the vectors
    if key is not None:
        key_cols = _key_labels(key, names, path)
    elif "key" in names:
        key_cols = ["key"]
    elif (tuple_cols := _tuple_key_columns(names)) is not None:
        key_cols = tuple_cols
    elif sample and not _NUMBER.match(sample[0]) and not _text_cell_is_list(sample[0]):
        key_cols = [names[0]]
    elif header and _key_like_name(names[0]):
        key_cols = [names[0]]
    else:
        key_cols = []
    if columns is not None:
        vector_cols = [_column_label(c, names, "vector", path) for c in columns]
    else:
        vector_cols = [c for c in names if c not in key_cols]
    if not vector_cols:
        raise DatasetFormatError(f"cannot read {path} as csv: no vector columns (columns: {names})")
    at = {c: i for i, c in enumerate(names)}
    list_col = (
        vector_cols[0]
        if len(vector_cols) == 1
        and len(sample) > at[vector_cols[0]]
        and _text_cell_is_list(sample[at[vector_cols[0]]])
        else None
    )
    dtypes: dict[Any, Any] = {c: str for c in key_cols}
    dtypes.update({c: str if c == list_col else np.float64 for c in vector_cols})
    single = len(delimiter) == 1 or delimiter == " "
    frame = pd.read_csv(
        io.StringIO(text),
        sep=r"\s+" if delimiter == " " else (delimiter if single else re.escape(delimiter)),
        header=0 if header else None,
        names=names,  # no usecols: it would hide rows with too many fields
        dtype=dtypes,
        keep_default_na=False,
        na_values={c: ["", "nan", "NaN"] for c in vector_cols if c != list_col},
        engine="c" if single else "python",
    )
    if list_col is not None:
        vectors = _parse_list_cells(frame[list_col].tolist(), list_col)
    else:
        vectors = frame[vector_cols].to_numpy(dtype=np.float64)
    as_tuples = len(key_cols) > 1 or isinstance(key, (list, tuple))
    if key is None and key_cols and _TUPLE_KEY.match(str(key_cols[0])):
        as_tuples = True
    return EmbeddingsData(vectors, _frame_keys(frame, key_cols, text_keys=True, tuples=as_tuples))


def _frame_keys(
    frame: Any, key_cols: list[Any], *, text_keys: bool, tuples: bool
) -> list[Hashable] | None:
    """The keys in the columns ``key_cols`` of ``frame`` (a DataFrame or a dict
    of lists): tuples when ``tuples``, else the one column's values."""
    if not key_cols:
        return None
    parts = []
    for col in key_cols:
        values = list(frame[col])
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
            raise ValueError(f"key column {col!r} has missing values")
        parts.append(_keys_from_texts(values) if text_keys else values)
    if not tuples:
        return parts[0]
    return list(zip(*parts, strict=True))


def _key_columns(
    keys: Sequence[Hashable], fmt: str, allowed: frozenset[str]
) -> tuple[list[str], list[list[Any]]]:
    """``(names, columns)`` of the key columns that store ``keys``: one column
    ``key`` for scalar keys, ``key_0, key_1, ...`` for tuples of one length.
    Each column holds one kind of value among ``allowed``."""
    if keys and all(isinstance(k, tuple) for k in keys):
        widths = {len(k) for k in keys}  # type: ignore[arg-type]
        if len(widths) != 1 or 0 in widths:
            raise InvalidParameterError(
                f"the {fmt} format stores tuple keys of one length, got lengths {sorted(widths)}"
            )
        width = widths.pop()
        columns = [[k[j] for k in keys] for j in range(width)]  # type: ignore[index]
        names = [f"key_{j}" for j in range(width)]
    else:
        columns, names = [list(keys)], ["key"]
    for name, values in zip(names, columns, strict=True):
        kinds = _scalar_kinds(values)
        if len(kinds) > 1 or not kinds <= allowed:
            raise InvalidParameterError(
                f"the {fmt} format stores keys whose parts are all one of {', '.join(sorted(allowed))}; "
                f"{name} holds {' and '.join(sorted(kinds))}"
            )
        if fmt == "csv" and kinds == {"str"} and all(_INT_TEXT.match(v) for v in values):
            raise InvalidParameterError(
                f"every value of {name} is a string of digits, which CSV reads back as ints; "
                "parquet or .npz keep them as strings"
            )
    return names, columns


def _write_csv(
    path: Path, emb: EmbeddingsLike, *, sep: str | None = None, layout: str = "columns"
) -> None:
    import pandas as pd

    check_choice(layout, "layout", ("columns", "list"))
    if sep is None:
        sep = "\t" if path.name.lower().endswith((".tsv", ".tsv.gz")) else ","
    if not isinstance(sep, str) or len(sep) != 1 or sep in '"\r\n.-+0123456789[]eE ':
        raise InvalidParameterError(f"sep must be one character such as ',' or '\\t', got {sep!r}")
    names, columns = _key_columns(emb.keys, "csv", frozenset({"str", "int"}))
    data: dict[str, Any] = {
        n: pd.Series(c, dtype=object) for n, c in zip(names, columns, strict=True)
    }
    if layout == "list":
        data["vector"] = ["[" + ", ".join(map(str, row)) + "]" for row in emb.vectors]
    else:
        for j in range(emb.vectors.shape[1]):
            data[f"v{j}"] = emb.vectors[:, j]
    frame = pd.DataFrame(data)
    with _open_write(path) as fh:
        text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
        frame.to_csv(text, index=False, sep=sep, lineterminator="\n")
        text.flush()
        text.detach()


def _sniff_parquet(path: Path) -> bool:
    return _head(path, 4) == b"PAR1"


def _pyarrow(action: str, path: Path) -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        message = f"{action} {path} as parquet needs pyarrow: pip install 'embspace[parquet]'"
        if action == "reading":
            raise DatasetFormatError(message) from None
        raise InvalidParameterError(message) from None
    return pa, pq


def _read_parquet(
    path: Path, *, key: Any = None, columns: Sequence[Any] | None = None
) -> EmbeddingsData:
    pa, pq = _pyarrow("reading", path)
    table = pq.read_table(path)
    names = list(table.column_names)
    types = {n: table.schema.field(n).type for n in names}

    def numeric(n: str) -> bool:
        return bool(pa.types.is_floating(types[n]) or pa.types.is_integer(types[n]))

    def is_list(n: str) -> bool:
        t = types[n]
        return bool(
            pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
        )

    if key is not None:
        key_cols = _key_labels(key, names, path)
    elif "key" in names:
        key_cols = ["key"]
    elif (tuple_cols := _tuple_key_columns(names)) is not None:
        key_cols = tuple_cols
    else:
        other = [n for n in names if not numeric(n) and not is_list(n)]
        if len(other) == 1:
            key_cols = other
        elif (
            not other
            and names
            and _key_like_name(names[0])
            and pa.types.is_integer(types[names[0]])
        ):
            key_cols = [names[0]]
        else:
            key_cols = []
    if columns is not None:
        vector_cols = [_column_label(c, names, "vector", path) for c in columns]
    else:
        rest = [n for n in names if n not in key_cols]
        lists = [n for n in rest if is_list(n)]
        vector_cols = lists if len(lists) == 1 else [n for n in rest if numeric(n)]
    if not vector_cols:
        raise DatasetFormatError(f"cannot read {path} as parquet: no vector columns ({names})")
    if len(vector_cols) == 1 and is_list(vector_cols[0]):
        cells = table.column(vector_cols[0]).to_pylist()
        if any(c is None for c in cells):
            raise ValueError(f"column {vector_cols[0]!r} has missing lists")
        lengths = {len(c) for c in cells}
        if len(lengths) > 1:
            raise ValueError(
                f"the lists of {vector_cols[0]!r} differ in length ({sorted(lengths)})"
            )
        vectors = np.array(cells, dtype=np.float64).reshape(
            len(cells), lengths.pop() if cells else 0
        )
    else:
        bad = [c for c in vector_cols if not numeric(c)]
        if bad:
            raise ValueError(f"vector column(s) {bad} are not numeric")
        vectors = (
            np.column_stack(
                [
                    table.column(c).to_numpy(zero_copy_only=False).astype(np.float64)
                    for c in vector_cols
                ]
            )
            if table.num_rows
            else np.zeros((0, len(vector_cols)))
        )
    frame = {c: table.column(c).to_pylist() for c in key_cols}
    metadata: dict[str, Any] = {}
    stored = (table.schema.metadata or {}).get(b"embspace.metadata")
    if stored is not None:
        value = json.loads(stored.decode("utf-8"))
        if isinstance(value, dict):
            metadata = value
    tuples = len(key_cols) > 1 or isinstance(key, (list, tuple))
    if key is None and key_cols and _TUPLE_KEY.match(str(key_cols[0])):
        tuples = True
    keys = _frame_keys(frame, key_cols, text_keys=False, tuples=tuples)
    return EmbeddingsData(vectors, keys, None, metadata)


def _write_parquet(path: Path, emb: EmbeddingsLike, *, layout: str = "columns") -> None:
    check_choice(layout, "layout", ("columns", "list"))
    pa, pq = _pyarrow("writing", path)
    names, columns = _key_columns(emb.keys, "parquet", frozenset({"str", "int", "float", "bool"}))
    arrays: dict[str, Any] = {}
    for name, values in zip(names, columns, strict=True):
        kinds = _scalar_kinds(values)
        kind = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
        try:
            arrays[name] = pa.array(values, type=kind[kinds.pop()] if kinds else pa.string())
        except (OverflowError, pa.ArrowInvalid) as exc:
            raise InvalidParameterError(
                f"the keys cannot be stored in parquet: {_why(exc)}"
            ) from None
    vectors = emb.vectors.astype(np.float32, copy=False)
    if layout == "list":
        n, d = vectors.shape
        offsets = pa.array(
            np.arange(0, n * d + 1, d, dtype=np.int32) if n else np.zeros(1, np.int32)
        )
        arrays["vector"] = pa.ListArray.from_arrays(offsets, pa.array(vectors.reshape(-1)))
    else:
        for j in range(vectors.shape[1]):
            arrays[f"v{j}"] = pa.array(vectors[:, j])
    table = pa.table(arrays)
    meta = json.dumps(emb.metadata, default=json_default).encode("utf-8")
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), b"embspace.metadata": meta}
    )
    with atomic_writer(path) as fh:
        pq.write_table(table, fh)


# ---------------------------------------------------------------------- word2vec
_HEADER = re.compile(rb"^\s*(\d+)\s+(\d+)\s*$")


def _header(line: bytes) -> tuple[int, int] | None:
    m = _HEADER.match(line)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _looks_like_text_record(line: bytes, d: int | None) -> bool:
    try:
        text = line.decode("utf-8").rstrip()
    except UnicodeDecodeError:
        return False
    parts = text.rsplit(None, d) if d is not None else text.split()
    if d is not None and len(parts) != d + 1:
        return False
    return len(parts) >= 2 and all(_NUMBER.match(p) for p in parts[1:])


def _sniff_word2vec_text(path: Path) -> bool:
    lines = _head(path, 65536).split(b"\n")
    if len(lines) < 2:
        return False
    found = _header(lines[0])
    if found is None:
        return _looks_like_text_record(lines[0], None)  # GloVe: no header
    return found[0] == 0 or _looks_like_text_record(lines[1], found[1])


def _sniff_word2vec_binary(path: Path) -> bool:
    head = _head(path, 65536)
    newline = head.find(b"\n")
    return newline > 0 and _header(head[:newline]) is not None and not _sniff_word2vec_text(path)


def _read_word2vec_text(
    path: Path, *, encoding: str = "utf-8", errors: str = "strict"
) -> EmbeddingsData:
    words: list[Hashable] = []
    rows: list[np.ndarray] = []
    declared: int | None = None
    d: int | None = None
    with _open_read(path) as raw:
        fh = io.TextIOWrapper(raw, encoding=encoding, errors=errors, newline=None)
        for number, line in enumerate(fh, 1):
            line = line.rstrip()  # word2vec.c ends each line with a space
            if not line:
                continue
            if d is None:
                found = _header(line.encode("ascii", "replace"))
                if found is not None:
                    declared, d = found
                    if d < 1:
                        raise ValueError(f"line {number}: the header gives dimension {d}")
                    continue
                d = len(line.split()) - 1  # GloVe: no header, d from the first line
                if d < 1:
                    raise ValueError(f"line {number} holds a word with no numbers")
            parts = line.rsplit(None, d)
            if len(parts) != d + 1 or not parts[0]:
                raise ValueError(f"line {number} holds {len(parts) - 1} numbers, expected {d}")
            try:
                rows.append(np.array(parts[1:], dtype=np.float64))
            except ValueError:
                raise ValueError(
                    f"line {number}: a value of {parts[0]!r} is not a number"
                ) from None
            words.append(parts[0])
            if declared is not None and len(words) > declared:
                raise ValueError(f"the header announces {declared} words, the file holds more")
    if d is None:
        raise ValueError("it is empty")
    if declared is not None and len(words) != declared:
        raise ValueError(f"the header announces {declared} words, the file holds {len(words)}")
    vectors = np.vstack(rows) if rows else np.zeros((0, d))
    return EmbeddingsData(vectors, list(words))


def _read_word2vec_binary(
    path: Path, *, encoding: str = "utf-8", errors: str = "strict"
) -> EmbeddingsData:
    with _open_read(path) as fh:
        data = fh.read()
    newline = data.find(b"\n")
    found = _header(data[:newline]) if newline >= 0 else None
    if found is None:
        raise ValueError("it does not start with a header line 'n d'")
    n, d = found
    if d < 1:
        raise ValueError(f"the header gives dimension {d}")
    record = 4 * d
    pos = newline + 1
    if n * (record + 2) > len(data) - pos:  # at least one byte of word and its space
        raise ValueError(
            f"the header announces {n} words of dimension {d}, more than its "
            f"{len(data) - pos} bytes can hold (a truncated file?)"
        )
    vectors = np.empty((n, d), dtype="<f4")
    words: list[Hashable] = []
    size = len(data)
    for i in range(n):
        while pos < size and data[pos] in b"\n\r":
            pos += 1
        space = data.find(b" ", pos)
        if space < 0 or space == pos:
            raise ValueError(f"word {i + 1} of {n} is missing or empty (a truncated file?)")
        try:
            word = data[pos:space].decode(encoding, errors)
        except UnicodeDecodeError as exc:
            raise ValueError(f"word {i + 1} of {n} is not {encoding} text ({exc.reason})") from None
        end = space + 1 + record
        if end > size:
            raise ValueError(f"the vector of word {i + 1} of {n} ({word!r}) is cut short")
        vectors[i] = np.frombuffer(data, dtype="<f4", count=d, offset=space + 1)
        words.append(word)
        pos = end
    if data[pos:].strip():
        raise ValueError(f"{size - pos} bytes follow the {n} words the header announces")
    return EmbeddingsData(vectors, words)


def _words(keys: Sequence[Hashable], fmt: str) -> list[str]:
    kinds = _scalar_kinds(keys)
    if not kinds <= {"str", "int"}:
        raise InvalidParameterError(
            f"the {fmt} format stores words (str keys), not {' and '.join(sorted(kinds))} keys; "
            "format='embspace' (.npz), CSV or parquet keep them"
        )
    if "int" in kinds:
        warnings.warn(
            f"the {fmt} format stores words: int keys are written as text and read back as str",
            EmbspaceWarning,
            stacklevel=5,
        )
    words = [str(k) for k in keys]
    for w in words:
        if not w or w.split() != [w]:
            raise InvalidParameterError(
                f"the {fmt} format stores words without whitespace; key {w!r} is not one"
            )
    return words


def _write_word2vec_text(path: Path, emb: EmbeddingsLike) -> None:
    words = _words(emb.keys, "word2vec")
    vectors = emb.vectors.astype(np.float32, copy=False)
    with _open_write(path) as fh:
        fh.write(f"{vectors.shape[0]} {vectors.shape[1]}\n".encode("ascii"))
        for word, row in zip(words, vectors, strict=True):
            fh.write(f"{word} {' '.join(map(str, row))}\n".encode())


def _write_word2vec_binary(path: Path, emb: EmbeddingsLike) -> None:
    words = _words(emb.keys, "word2vec-binary")
    vectors = np.ascontiguousarray(emb.vectors, dtype="<f4")
    with _open_write(path) as fh:
        fh.write(f"{vectors.shape[0]} {vectors.shape[1]}\n".encode("ascii"))
        for word, row in zip(words, vectors, strict=True):
            fh.write(word.encode("utf-8") + b" " + row.tobytes() + b"\n")  # as word2vec.c writes


# ---------------------------------------------------------------------- the registry
for _fmt in (
    EmbeddingsFormat(
        "embspace",
        (".npz",),
        _read_embspace,
        _write_embspace,
        sniff=_sniff_embspace,
        keys="every key (str, int, float, bool, None, tuples), ids and metadata",
        description="embspace's own .npz (a format marker, JSON keys and metadata, no pickle)",
    ),
    EmbeddingsFormat(
        "npz",
        (".npz",),
        _read_npz,
        _write_npz,
        read_options=("keys", "array"),
        sniff=_sniff_npz,
        keys="str or int (member 'keys'), else row numbers or keys=",
        description="a plain .npz: the vectors (member 'vectors' or its one 2-D array), 'keys', 'ids'",
    ),
    EmbeddingsFormat(
        "npy",
        (".npy",),
        _read_npy,
        _write_npy,
        read_options=("keys",),
        write_options=("keys_file",),
        sniff=_sniff_npy,
        keys="row numbers, or a keys file / array (keys=)",
        description="one n x d array",
    ),
    EmbeddingsFormat(
        "csv",
        (".csv", ".tsv", ".csv.gz", ".tsv.gz"),
        _read_csv,
        _write_csv,
        read_options=("key", "columns", "sep", "header", "encoding"),
        write_options=("sep", "layout"),
        keys="str or int, tuples of them (key_0, key_1, ...)",
        description="a key column and one column per dimension, or one [v1, ...] list column",
    ),
    EmbeddingsFormat(
        "parquet",
        (".parquet", ".pq"),
        _read_parquet,
        _write_parquet,
        read_options=("key", "columns"),
        write_options=("layout",),
        sniff=_sniff_parquet,
        keys="str, int, float, bool, tuples of them; metadata",
        description="a key column and one column per dimension, or one list column",
    ),
    EmbeddingsFormat(
        "word2vec",
        (".txt", ".vec", ".txt.gz", ".vec.gz"),
        _read_word2vec_text,
        _write_word2vec_text,
        read_options=("encoding", "errors"),
        sniff=_sniff_word2vec_text,
        keys="str (words without whitespace)",
        description="word2vec text: 'n d', then 'word v1 ... vd' lines (GloVe: no header)",
    ),
    EmbeddingsFormat(
        "word2vec-binary",
        (".bin", ".bin.gz"),
        _read_word2vec_binary,
        _write_word2vec_binary,
        read_options=("encoding", "errors"),
        sniff=_sniff_word2vec_binary,
        keys="str (words without whitespace)",
        description="word2vec binary: 'n d', then 'word ' and d little-endian float32 per word",
    ),
):
    register_format(_fmt)
del _fmt
