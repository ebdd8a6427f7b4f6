"""On-disk cache of trained embeddings, so sweeps resume and reruns are free.

One finished training is one file ``<digest>.npz`` in the cache folder. The
digest is the sha256 of the fields of its :class:`CacheKey`:

- the data fingerprint (:attr:`Ratings.fingerprint`, or the ``fingerprint``
  of other data, e.g. :attr:`embspace.trainers.TokenCorpus.fingerprint`: a
  sha256 of every token of the corpus, in order),
- the estimator's qualified class name,
- its parameters as sorted JSON, without ``random_state`` (the seed is its own
  field) and without the parameters that do not change the result
  (:data:`RESULT_NEUTRAL_PARAMS`: thread counts, progress, verbosity); a
  parameter that is a function (the ``function`` of
  :class:`embspace.trainers.FunctionTrainer`) enters as
  :func:`function_identity`: its qualified name and the sha256 of its source
  code (of its bytecode, constants and names when the source cannot be read),
  plus the values its closure captured,
- the seed,
- the embspace version,
- for code that is not embspace's own, its :func:`code_identity` (``code``):
  the qualified class name, the top-level package and its ``__version__``
  (``implicit``, ``gensim``, ``sklearn``, ...) and, for a class outside
  embspace, the sha256 of the class's source (of its methods' bytecode when
  the source cannot be read). embspace's own estimators have
  no ``code`` field (their code is the embspace version), so their keys are
  those of earlier versions, except where an algorithm changed its results
  beyond rounding within a version: ``WALS(solver="cg")`` says its iteration
  is the preconditioned one (its :meth:`~embspace.WALS.code_identity`).

So a changed function body, a new release of implicit/gensim/scikit-learn, or
an edited estimator class makes new entries; what is *not* hashed is the code a
function or class calls (helpers in other functions or modules): change the
function's name or a parameter when only such a helper changes, or clear the
cache.

Each file holds the user and the item embeddings of the run (keys and
float32 vectors; one side only for a one-sided trainer such as Word2Vec) plus
a JSON header that echoes the key fields and a sha256 of the arrays. The key
also names which of the two sides :meth:`EmbeddingCache.get` returns
(``entities``), but the side is not part of the digest: a sweep over users
reuses the trainings of a sweep over items.

Files are written atomically (temporary file in the same folder, then
``os.replace``), so a sweep killed at any moment leaves either a complete entry
or none.

**Shared caches.** The folder may also be an fsspec URL, so that the workers of
a cluster share one cache (see :class:`EmbeddingCache`): ``file://...`` is a
local (or NFS) folder, written as above; on an object store (``s3://``,
``gs://``, ``az://``, ``memory://``, ... :data:`OBJECT_STORES`) an entry is one
PUT of the complete object, which those stores make visible whole or not at all
(a reader sees the previous object or the new one, never a part); on any other
fsspec file system it is written under a temporary name beside the entry and
then moved onto it. Two writers racing on one entry write the same training:
whichever write lands last, the entry is complete and valid, and the loser's
write is harmless. Reads verify the checksum on every file system. The cache only saves work: an entry that cannot be written (a
read-only or full disk, a folder in its place) is reported with a
:class:`CacheWarning` and the training is returned all the same. On read, an entry whose header does not match the expected key
(a foreign file, a digest collision, an entry of another version) or whose
checksum fails (truncated or corrupted) is reported with a
:class:`CacheWarning`, deleted, and treated as missing, so the run is trained
again; it is never returned as valid.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import io
import json
import logging
import os
import posixpath
import re
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import remove_stale_temps, write_atomic
from ._buffers import byte_view
from ._params import check_path
from .embeddings import Embeddings, decode_side, encode_side
from .errors import InvalidParameterError, os_error_text
from .jsonio import json_default
from .paths import cache_dir

__all__ = [
    "ENTITIES",
    "OBJECT_STORES",
    "RESULT_NEUTRAL_PARAMS",
    "SEED_PARAM",
    "CacheKey",
    "CacheWarning",
    "CachedRun",
    "EmbeddingCache",
    "code_identity",
    "default_cache_folder",
    "estimator_params",
    "function_identity",
    "write_atomic",
]

_log = logging.getLogger(__name__)

#: The two sides of a factorization a cache entry holds.
ENTITIES = ("items", "users")

#: Estimator parameters that never change the trained embeddings (embspace
#: results are identical whatever the thread count), left out of the key.
RESULT_NEUTRAL_PARAMS = frozenset(
    {"num_threads", "n_jobs", "threads", "progress", "verbose", "show_progress"}
)

#: The seed parameter: its own key field, so it is left out of the parameters.
SEED_PARAM = "random_state"

_FORMAT = "embspace.run-cache/1"

#: fsspec protocols of object stores, where one PUT of a complete object is
#: atomic (readers see the old object or the new one, never a partial one): a
#: cache entry there is written in one put, without a temporary name.
OBJECT_STORES = frozenset(
    {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "r2", "memory"}
)

#: A URL with a protocol (``s3://bucket/runs``); anything else is a local path.
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


class CacheWarning(UserWarning):
    """A cache entry was unreadable, corrupted or foreign; it was deleted and retrained."""


def default_cache_folder() -> Path:
    """``runs`` in the embspace cache folder, the one datasets are cached in
    (:func:`embspace.paths.cache_dir`: ``$EMBSPACE_CACHE_DIR`` when set,
    else ``$XDG_CACHE_HOME/embspace`` or ``~/.cache/embspace``, ...)."""
    return cache_dir() / "runs"


def _canonical(value: Any) -> Any:
    """A JSON-stable form of a parameter value: arrays by shape, dtype and sha256."""
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value)
        return {
            "ndarray": hashlib.sha256(byte_view(data)).hexdigest(),
            "shape": list(data.shape),
            "dtype": str(data.dtype),
        }
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "get_params"):
        return {"class": _qualname(value), "params": estimator_params(value)}
    if inspect.isfunction(value) or inspect.ismethod(value) or isinstance(value, functools.partial):
        return function_identity(value)
    # Anything else by its repr: an object whose repr is not stable only misses
    # the cache, it can never hit a wrong entry.
    return repr(value)


def _qualname(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _code_digest(code: Any, h: Any) -> None:
    """Feed a code object's bytecode, names and constants (nested code objects
    recursively) to the hash ``h``."""
    h.update(code.co_code)
    h.update(repr((code.co_names, code.co_varnames, code.co_freevars)).encode())
    for const in code.co_consts:
        if inspect.iscode(const):
            _code_digest(const, h)
        else:
            h.update(repr(const).encode())


def function_identity(func: Any) -> dict[str, Any]:
    """What identifies a training function in a cache key: ``function`` (its
    module and qualified name), ``code`` (sha256 of its source code, or of its
    bytecode, names and constants when the source cannot be read: a function
    made by ``exec`` or in a session without files), ``closure`` (the values
    its closure captured, each as a parameter value is) and, for a bound
    method, ``self`` (the object, as a parameter value is: an object without
    ``get_params`` by its ``repr``, which only makes the cache miss when it
    holds an address); a
    ``functools.partial`` by its function, arguments and keywords. Another body
    gives another ``code``; the functions it calls are not hashed."""
    if isinstance(func, functools.partial):
        return {
            "partial": function_identity(func.func),
            "args": [_canonical(a) for a in func.args],
            "keywords": _canonical(dict(func.keywords)),
        }
    out: dict[str, Any] = {}
    if inspect.ismethod(func):
        out["self"] = _canonical(func.__self__)
        func = func.__func__
    h = hashlib.sha256()
    try:
        h.update(b"source:" + inspect.getsource(func).encode())
    except (OSError, TypeError):
        h.update(b"bytecode:")
        _code_digest(func.__code__, h)
    out["function"] = f"{func.__module__}.{func.__qualname__}"
    out["code"] = h.hexdigest()
    cells = getattr(func, "__closure__", None) or ()
    names = func.__code__.co_freevars
    if cells:
        closure = {}
        for name, cell in zip(names, cells, strict=False):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                value = None
            # a nested function that calls itself holds itself in its closure
            closure[name] = "<itself>" if value is func else _canonical(value)
        out["closure"] = closure
    return out


def _package_version(module: str) -> str | None:
    """``__version__`` of the top-level package of ``module``, when it has one."""
    root = sys.modules.get(module.split(".")[0])
    version = getattr(root, "__version__", None)
    return str(version) if version is not None else None


def code_identity(estimator: Any) -> dict[str, Any] | None:
    """What identifies the code of ``estimator`` beyond the embspace version
    (the ``code`` field of a :class:`CacheKey`).

    An estimator with a ``code_identity()`` method says it itself (the adapters
    of :mod:`embspace.trainers`: their class, the third-party package and its
    version, e.g. ``{"class": ..., "package": "implicit", "version":
    "0.7.3"}``; :class:`embspace.WALS` names its CG iteration). Another
    class of embspace: None (its code is the embspace version). Any other
    class: its qualified name, its top-level package and that package's
    ``__version__`` (None when it has none), and the sha256 of
    the class's own source (of its methods' bytecode when the source cannot
    be read); the base classes' code is covered by their package's version
    only."""
    own = getattr(estimator, "code_identity", None)
    if callable(own):
        ident = own()
        return None if ident is None else dict(_canonical(ident))
    cls = type(estimator)
    if cls.__module__.split(".")[0] == "embspace":
        return None
    return {
        "class": _qualname(estimator),
        "package": cls.__module__.split(".")[0],
        "version": _package_version(cls.__module__),
        "source": _class_digest(cls),
    }


def _class_digest(cls: type) -> str:
    """sha256 of a class's source; of the bytecode of the functions it defines
    (in name order) when the source cannot be read (a class made by ``exec``
    or typed into a session)."""
    h = hashlib.sha256()
    try:
        h.update(b"source:" + inspect.getsource(cls).encode())
    except (OSError, TypeError):
        h.update(b"bytecode:")
        for name, member in sorted(vars(cls).items()):
            func = getattr(member, "__func__", member)  # staticmethod, classmethod
            if inspect.isfunction(func):
                h.update(name.encode())
                _code_digest(func.__code__, h)
    return h.hexdigest()


def estimator_params(estimator: Any) -> dict[str, Any]:
    """The estimator's parameters that determine its result, JSON-ready and sorted
    (``get_params(deep=False)`` minus :data:`RESULT_NEUTRAL_PARAMS` and the seed)."""
    try:
        params = estimator.get_params(deep=False)
    except (AttributeError, TypeError):
        raise InvalidParameterError(
            f"{type(estimator).__name__} is not a scikit-learn style estimator (no get_params())"
        ) from None
    return {
        name: _canonical(params[name])
        for name in sorted(params)
        if name not in RESULT_NEUTRAL_PARAMS and name != SEED_PARAM
    }


@dataclass(frozen=True)
class CacheKey:
    """What identifies one training. :attr:`digest` names its file."""

    fingerprint: str
    estimator: str
    params: str
    seed: int | None
    version: str
    entities: str = "items"
    #: :func:`code_identity` of the estimator as sorted JSON; None for
    #: embspace's own estimators (then not part of the digest, so their keys
    #: are unchanged).
    code: str | None = None

    def identity(self) -> dict[str, Any]:
        """The fields that the digest covers (every field but ``entities``;
        ``code`` only when set)."""
        fields = asdict(self)
        fields.pop("entities")
        if fields["code"] is None:
            fields.pop("code")
        return fields

    @property
    def digest(self) -> str:
        """sha256 (hex) of the identity fields as sorted JSON."""
        blob = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def for_entities(self, entities: str) -> CacheKey:
        """The same training, asking for the other side."""
        _check_entities(entities)
        return CacheKey(**{**asdict(self), "entities": entities})


def _check_entities(entities: str) -> None:
    if entities not in ENTITIES:
        raise InvalidParameterError(f"entities must be one of {ENTITIES}, got {entities!r}")


def _array_checksum(arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(a.dtype).encode())
        h.update(repr(a.shape).encode())
        h.update(byte_view(a))
    return h.hexdigest()


def _side_arrays(prefix: str, emb: Embeddings) -> dict[str, np.ndarray]:
    """The arrays of one side, in the encoding of :meth:`Embeddings.save`."""
    return encode_side(emb, f"{prefix}_")


def _missing_side(entities: str, have: Mapping[str, Any]) -> InvalidParameterError:
    return InvalidParameterError(
        f"this training has no {entities} side, only {', '.join(have) or 'none'} "
        "(a one-sided trainer such as Word2Vec has items only)"
    )


@dataclass(frozen=True)
class CachedRun:
    """A valid cache entry: its sides (``"items"`` and/or ``"users"``), the
    ``extra`` dict stored with it, its file."""

    sides: dict[str, Embeddings]
    extra: dict[str, Any]
    path: Path | str

    def side(self, entities: str) -> Embeddings:
        """One side; a side the entry does not have raises
        :class:`~embspace.errors.InvalidParameterError`."""
        _check_entities(entities)
        if entities not in self.sides:
            raise _missing_side(entities, self.sides)
        return self.sides[entities]

    @property
    def users(self) -> Embeddings:
        return self.side("users")

    @property
    def items(self) -> Embeddings:
        return self.side("items")


class _BadEntry(Exception):
    """Internal: why an entry was rejected."""


class EmbeddingCache:
    """Trained embeddings on disk, one file per (data, estimator, params, seed, version).

    Parameters
    ----------
    folder : path or URL, optional
        Where entries live; created on the first write. Default
        :func:`default_cache_folder`. A string with a protocol is an fsspec URL
        (needs ``fsspec``, and the file system's own package, e.g. ``s3fs``):
        ``file:///shared/runs`` is the local or NFS folder ``/shared/runs``
        (:attr:`folder` is then that :class:`~pathlib.Path`), any other
        (``s3://bucket/runs``, ``memory://runs``) is kept as the URL
        (:attr:`folder` and :attr:`url` are the URL; entry paths are URLs).
    storage_options : dict, optional
        Passed to the fsspec file system of a URL (credentials, endpoint).
    """

    def __init__(
        self,
        folder: str | os.PathLike[str] | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        #: the fsspec URL of a cache that is not a local folder, else None
        self.url: str | None = None
        self.storage_options = dict(storage_options or {})
        self._fs: Any = None
        if isinstance(folder, str) and (match := _URL.match(folder)) is not None:
            if match.group(1).lower() in ("file", "local"):
                folder = folder[match.end() :] or "/"
            else:
                self.url = folder.rstrip("/")
        self.folder: Path | str = (
            self.url
            if self.url is not None
            else check_path(folder, "folder").expanduser()
            if folder is not None
            else default_cache_folder()
        )

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.folder)!r})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fs"] = None  # made again where the cache is unpickled (a worker)
        return state

    @property
    def fs(self) -> Any:
        """The fsspec file system of :attr:`url` (None for a local folder)."""
        if self.url is None:
            return None
        if self._fs is None:
            try:
                from fsspec.core import url_to_fs
            except ImportError:
                raise InvalidParameterError(
                    f"the cache {self.url!r} is an fsspec URL: install fsspec "
                    "(pip install 'embspace[dask]')"
                ) from None
            try:
                self._fs = url_to_fs(self.url, **self.storage_options)[0]
            except (ImportError, ValueError) as exc:
                raise InvalidParameterError(f"cannot open the cache {self.url!r}: {exc}") from None
        return self._fs

    def _object_store(self) -> bool:
        assert self.url is not None
        return self.url.split("://", 1)[0].lower() in OBJECT_STORES

    # ------------------------------------------------------------------ keys
    def key(
        self, ratings: Any, estimator: Any, seed: int | None, entities: str = "items"
    ) -> CacheKey:
        """The key of training ``estimator`` with ``random_state=seed`` on
        ``ratings``; ``entities`` picks the side that :meth:`get` returns.

        An estimator whose own ``random_state`` is an integer other than
        ``seed`` raises :class:`~embspace.errors.InvalidParameterError` (the
        entry would describe another training)."""
        from ._core import __version__

        _check_entities(entities)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise InvalidParameterError(f"seed must be an integer or None, got {seed!r}")
        get_params: Callable[..., dict[str, Any]] = getattr(estimator, "get_params", lambda **_: {})
        own = get_params(deep=False).get(SEED_PARAM)
        if isinstance(own, (int, np.integer)) and not isinstance(own, bool) and seed != own:
            raise InvalidParameterError(
                f"the estimator has random_state={own} but the key asks for seed {seed}"
            )
        fingerprint = getattr(ratings, "fingerprint", None)
        if not isinstance(fingerprint, str):
            raise InvalidParameterError(
                "ratings must be an embspace Ratings (with a fingerprint), or other data with "
                "a fingerprint such as embspace.trainers.TokenCorpus"
            )
        params = json.dumps(estimator_params(estimator), sort_keys=True, separators=(",", ":"))
        code = code_identity(estimator)
        return CacheKey(
            fingerprint=fingerprint,
            estimator=_qualname(estimator),
            params=params,
            seed=None if seed is None else int(seed),
            version=str(__version__),
            entities=entities,
            code=None if code is None else json.dumps(code, sort_keys=True, separators=(",", ":")),
        )

    def path(self, key: CacheKey) -> Path | str:
        """The file of ``key`` (whether or not it exists): a path, or a URL
        for a cache on an fsspec URL."""
        if self.url is not None:
            return f"{self.url}/{key.digest}.npz"
        assert isinstance(self.folder, Path)
        return self.folder / f"{key.digest}.npz"

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, CacheKey):
            return False
        path = self.path(key)
        return bool(self.fs.isfile(path)) if isinstance(path, str) else path.is_file()

    # ------------------------------------------------------------------ read
    def get(self, key: CacheKey) -> Embeddings | None:
        """The cached embeddings of ``key.entities``, or None when there is no
        valid entry (a bad entry is warned about and deleted)."""
        run = self.lookup(key)
        return None if run is None else run.side(key.entities)

    def get_pair(self, key: CacheKey) -> tuple[Embeddings, Embeddings] | None:
        """``(user_embeddings, item_embeddings)`` of ``key``, or None (see :meth:`get`)."""
        run = self.lookup(key)
        return None if run is None else (run.users, run.items)

    def lookup(self, key: CacheKey) -> CachedRun | None:
        """The whole entry of ``key`` (both sides and its ``extra``), or None
        when there is no valid entry (a bad entry is warned about and deleted)."""
        path = self.path(key)
        if isinstance(path, str):
            try:
                data = self.fs.cat_file(path)
            except FileNotFoundError:
                return None
            try:
                return self._read(path, key, io.BytesIO(data))
            except _BadEntry as exc:
                self._reject(path, str(exc))
                return None
        if not path.is_file():
            return None
        try:
            return self._read(path, key)
        except FileNotFoundError:
            return None  # deleted meanwhile (clear() in another thread or process): a miss
        except _BadEntry as exc:
            self._reject(path, str(exc))
            return None

    def _read(self, path: Path | str, key: CacheKey, source: Any = None) -> CachedRun:
        try:
            with np.load(path if source is None else source, allow_pickle=False) as z:
                header = json.loads(str(z["header"]))
                arrays = {name: z[name] for name in z.files if name != "header"}
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise _BadEntry(f"unreadable ({type(exc).__name__}: {exc})") from None
        if not isinstance(header, dict) or header.get("format") != _FORMAT:
            raise _BadEntry("not an embspace run-cache file")
        if header.get("key") != key.identity():
            raise _BadEntry("not the entry of the expected key (a foreign entry)")
        if header.get("checksum") != _array_checksum(arrays):
            raise _BadEntry("corrupted (checksum mismatch)")
        try:
            sides = {
                side: decode_side(arrays, f"{prefix}_")
                for side, prefix in (("users", "user"), ("items", "item"))
                if f"{prefix}_vectors" in arrays
            }
        except Exception as exc:
            raise _BadEntry(f"invalid ({type(exc).__name__}: {exc})") from None
        if not sides:
            raise _BadEntry("invalid (no embeddings in it)")
        extra = header.get("extra")
        return CachedRun(sides, dict(extra) if isinstance(extra, dict) else {}, path)

    def _reject(self, path: Path | str, why: str) -> None:
        try:
            if isinstance(path, str):
                self.fs.rm_file(path)
            else:
                path.unlink(missing_ok=True)
            done = "deleted"
        except FileNotFoundError:
            done = "deleted"
        except OSError as exc:  # a read-only cache: the entry stays, and is never used
            done = f"left in place ({os_error_text(exc)})"
        name = posixpath.basename(path) if isinstance(path, str) else path.name
        message = f"cache entry {name} is {why}; {done}, the run will be trained again"
        _log.warning(message)
        warnings.warn(message, CacheWarning, stacklevel=4)

    # ------------------------------------------------------------------ write
    def put(
        self,
        key: CacheKey,
        user_embeddings: Embeddings | None,
        item_embeddings: Embeddings | None,
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> Path | str | None:
        """Store one training atomically and return its path. ``extra`` is a
        JSON-serialisable dict kept in the header (fit time, iterations). One
        side may be None (a one-sided trainer), not both.

        When the entry cannot be written (an ``OSError``: read-only or full
        disk, no permission, a folder at its path) nothing is left behind, a
        :class:`CacheWarning` says why, and None is returned: the caller keeps
        its result, only the cache misses it."""
        given = [e for e in (user_embeddings, item_embeddings) if e is not None]
        if not given or not all(isinstance(e, Embeddings) for e in given):
            raise InvalidParameterError(
                "put() takes the user and the item Embeddings (one of them may be None)"
            )
        arrays = {
            **(_side_arrays("user", user_embeddings) if user_embeddings is not None else {}),
            **(_side_arrays("item", item_embeddings) if item_embeddings is not None else {}),
        }
        header = {
            "format": _FORMAT,
            "key": key.identity(),
            "checksum": _array_checksum(arrays),
            "extra": dict(extra or {}),
        }
        payload = {**arrays, "header": np.array(json.dumps(header, default=json_default))}
        buffer = io.BytesIO()
        np.savez(buffer, allow_pickle=False, **payload)
        path = self.path(key)
        try:
            if isinstance(path, str):
                return self._put_url(path, buffer.getvalue())
            return write_atomic(path, buffer.getvalue())
        except OSError as exc:
            message = (
                f"cannot store the run in the cache ({os_error_text(exc)}); "
                "the result is kept, but it will be trained again next time"
            )
            _log.warning(message)
            warnings.warn(message, CacheWarning, stacklevel=2)
            return None

    def _put_url(self, path: str, data: bytes) -> str:
        """Write one entry on an fsspec file system: one put of the complete
        object on an object store (atomic there), else a temporary name beside
        the entry moved onto it."""
        fs = self.fs
        if self._object_store():
            fs.pipe_file(path, data)
            return path
        assert self.url is not None
        fs.makedirs(self.url, exist_ok=True)
        tmp = f"{self.url}/.{posixpath.basename(path)}.{uuid.uuid4().hex}.tmp"
        try:
            fs.pipe_file(tmp, data)
            fs.mv(tmp, path)
        except BaseException:
            try:
                fs.rm_file(tmp)
            except OSError:
                pass
            raise
        return path

    # ------------------------------------------------------------------ housekeeping
    def _url_entries(self) -> list[str]:
        assert self.url is not None
        try:
            found = self.fs.glob(f"{self.url}/*.npz")
        except FileNotFoundError:
            return []
        names = sorted(posixpath.basename(p) for p in found)
        return [f"{self.url}/{n}" for n in names if not n.startswith(".")]

    def entries(self) -> Iterator[Path | str]:
        """The entry files now in the folder (temporary files of unfinished
        writes, and anything that is not a file, excluded); URLs for a cache
        on an fsspec URL."""
        if self.url is not None:
            return iter(self._url_entries())
        assert isinstance(self.folder, Path)
        if not self.folder.is_dir():
            return iter(())
        return iter(
            sorted(
                p for p in self.folder.glob("*.npz") if not p.name.startswith(".") and p.is_file()
            )
        )

    def __len__(self) -> int:
        return sum(1 for _ in self.entries())

    def clear(self) -> int:
        """Delete every entry, and the temporary files that killed writers left
        behind; returns the number of entries deleted. The temporary files of
        writes still under way (another thread or process storing a run) are
        left alone, so those writes complete. (On an fsspec URL only the
        entries are deleted: a file system there cannot tell a dead writer's
        temporary file from a live one's.)"""
        n = 0
        for p in self.entries():
            if isinstance(p, str):
                try:
                    self.fs.rm_file(p)
                except FileNotFoundError:
                    pass
            else:
                p.unlink(missing_ok=True)
            n += 1
        if isinstance(self.folder, Path):
            remove_stale_temps(self.folder, ".*.tmp")
        return n
