"""Exact neighbor tables of an :class:`~embspace.Embeddings`.

The k-NN itself is computed by a backend per device: the Rust core on the CPU
(``embspace._core.knn``; see ``rust/core/src/knn.rs`` for the algorithm and its
exactness guarantee), the array-module search of :mod:`embspace.gpu.knn_xp` on a
GPU (the same answer, by blocked products on CuPy). A backend is a function ``(vectors, k, metric, queries,
num_threads) -> (distances, indices)`` registered with
:func:`register_knn_backend`, so another device plugs in without touching
:class:`NeighborTable`.

Distances (smaller is closer), and the score shown by
:meth:`NeighborTable.neighbors` (larger is more similar):

========== ============================================ =====================
metric     distance                                     score
========== ============================================ =====================
cosine     ``1 - cos`` (``cos = 0`` for zero rows)      ``cos``
euclidean  ``|a - b|``                                  ``-|a - b|``
dot        ``-(a . b)`` (negative inner product)        ``a . b``
========== ============================================ =====================

Neighbors are exact: each query is excluded by index, ties go to the lower
index, and the order is that of a float64 brute force.

A subset of queries (``queries=``, as :func:`embspace.measures.sampled_overlap`
and ``compare(..., sample=m)`` search) runs, on CPUs with AVX-512 VNNI, an
int8-screened search: int8 products (in the principal directions of the rows
when a few of them hold all but 1% of the energy) with rigorous per-pair error
bounds rule out the rows that cannot be among the k nearest, and the rest are
ranked by the same float64 keys, so the answer is identical, bit for bit, to
the float32 search's (``rust/core/src/knn/screen.rs``; 3 to 4 times less CPU
time at d = 64 in ``benches/bench_sampling.py``). ``EMBSPACE_KNN_SCREEN=0`` in the environment (read at each
call) forces the float32 search; ``embspace._core.knn_screened(d)`` says which
path runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Sequence
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from . import _core
from ._params import check_int
from ._registry import DeviceRegistry
from ._threads import check_threads
from .device import module_for
from .embeddings import Embeddings
from .errors import EntityNotFoundError, InvalidParameterError
from .gpu.knn_xp import METRICS, knn_xp
from .search import match_title

__all__ = [
    "KNN_BACKENDS",
    "METRICS",
    "KnnBackend",
    "NeighborTable",
    "knn",
    "register_knn_backend",
]

#: The default of ``query`` (None can be a key).
_NO_QUERY: Any = object()

KnnBackend = Callable[
    [np.ndarray, int, str, "np.ndarray | None", int], tuple[np.ndarray, np.ndarray]
]


def _cpu_knn(
    vectors: np.ndarray, k: int, metric: str, queries: np.ndarray | None, num_threads: int
) -> tuple[np.ndarray, np.ndarray]:
    return _core.knn(vectors, k, metric, queries, num_threads)


def _gpu_knn(
    vectors: np.ndarray, k: int, metric: str, queries: np.ndarray | None, num_threads: int
) -> tuple[np.ndarray, np.ndarray]:
    return knn_xp(vectors, k, metric=metric, queries=queries, xp=module_for("gpu")[1])


#: The exact k-NN search of each device.
KNN_BACKENDS: DeviceRegistry[KnnBackend] = DeviceRegistry(
    "k-NN backend", {"cpu": _cpu_knn, "gpu": _gpu_knn}
)


def register_knn_backend(device: str, backend: KnnBackend) -> None:
    """Make ``backend`` compute the k-NN of tables created with ``device``
    (``"cpu"`` or ``"gpu"``; it replaces the built-in one)."""
    KNN_BACKENDS.register(device, backend)


def _check_k(k: Any, n: int) -> int:
    k = check_int(k, "k")
    if not 1 <= k <= n - 1:
        raise InvalidParameterError(
            f"k = {k} must lie in [1, n - 1] = [1, {n - 1}] for {n} entities"
        )
    return k


def knn(
    vectors: Any,
    k: int,
    *,
    metric: str = "cosine",
    queries: Sequence[int] | np.ndarray | None = None,
    num_threads: int | None = None,
    device: str = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbors of the rows of an (n x d) matrix.

    Returns ``(distances, indices)``: float32 and int64 arrays of shape
    (n_queries, k), each row sorted by (distance, index); ``queries`` are row
    indices (all rows when None), each excluded from its own neighbors. The
    input is used as float32 (as :class:`~embspace.Embeddings` stores it); the
    neighbors are those of a float64 brute force on those values.
    """
    if metric not in METRICS:
        raise InvalidParameterError(f"metric must be one of {METRICS}, got {metric!r}")
    x = np.asarray(vectors)
    if x.ndim != 2:
        from .errors import ShapeMismatchError

        raise ShapeMismatchError(f"vectors must be 2-D (n x d), got shape {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    k = _check_k(k, x.shape[0])
    q = None
    if queries is not None:
        q = np.asarray(queries)
        if q.ndim != 1 or not (np.issubdtype(q.dtype, np.integer) or q.size == 0):
            raise InvalidParameterError("queries must be a 1-D sequence of integer row indices")
        q = np.ascontiguousarray(q, dtype=np.int64)
    backend = KNN_BACKENDS.for_device(device)
    return backend(x, k, metric, q, check_threads(num_threads))


class NeighborTable:
    """Exact nearest neighbors of the entities of an :class:`Embeddings`.

    Parameters
    ----------
    embeddings : Embeddings
    metric : {"cosine", "euclidean", "dot"}
        See the module docs for distances and scores.
    num_threads : int, optional
        Threads of the k-NN: None (every CPU) or ``1 <= num_threads <=
        embspace._threads.max_threads()``. Results do not depend on it.
    device : {"cpu", "gpu", "auto"}
        Where the k-NN runs; a device needs a registered backend.

    The last full table computed by :meth:`knn` is kept, and smaller k are
    served from it.
    """

    def __init__(
        self,
        embeddings: Embeddings,
        metric: str = "cosine",
        num_threads: int | None = None,
        device: str = "cpu",
    ) -> None:
        if not isinstance(embeddings, Embeddings):
            raise InvalidParameterError(
                f"NeighborTable needs an Embeddings, got {type(embeddings).__name__}"
            )
        if metric not in METRICS:
            raise InvalidParameterError(f"metric must be one of {METRICS}, got {metric!r}")
        check_threads(num_threads)
        module_for(device)
        self.embeddings = embeddings
        self.metric = metric
        self.num_threads = num_threads
        self.device = device
        self._table: tuple[np.ndarray, np.ndarray] | None = None

    def __repr__(self) -> str:
        return (
            f"<NeighborTable: {self.embeddings.n:,} entities x {self.embeddings.d}, {self.metric}>"
        )

    @property
    def n(self) -> int:
        return self.embeddings.n

    def knn(
        self, k: int, queries: Sequence[int] | np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(distances, indices)`` of the k nearest neighbors, shape (n_queries, k).

        ``queries`` are row indices (all rows when None). Full tables are cached:
        a later call with a smaller or equal k returns (read-only) slices of the
        cached one.
        """
        k = _check_k(k, self.n)
        if queries is None:
            if self._table is not None and self._table[0].shape[1] >= k:
                d, i = self._table
                return d[:, :k], i[:, :k]
            table = self._run(k, None)
            for a in table:
                a.setflags(write=False)  # the cache is shared: hand out read-only arrays
            self._table = table
            return table
        if self._table is not None and self._table[0].shape[1] >= k:
            q = self._rows(queries)
            return self._table[0][q, :k], self._table[1][q, :k]
        return self._run(k, queries)

    def _rows(self, queries: Sequence[int] | np.ndarray) -> np.ndarray:
        q = np.asarray(queries)
        if q.ndim != 1 or not (np.issubdtype(q.dtype, np.integer) or q.size == 0):
            raise InvalidParameterError("queries must be a 1-D sequence of integer row indices")
        q = q.astype(np.int64)
        bad = (q < 0) | (q >= self.n)
        if bad.any():
            from .errors import IndexOutOfRangeError

            raise IndexOutOfRangeError(f"query index {int(q[bad][0])} is outside [0, {self.n})")
        return q

    def _run(
        self, k: int, queries: Sequence[int] | np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        return knn(
            self.embeddings.vectors,
            k,
            metric=self.metric,
            queries=queries,
            num_threads=self.num_threads,
            device=self.device,
        )

    def resolve(self, query: Hashable = _NO_QUERY, *, row: int | None = None) -> int:
        """The row of one entity named by ``query`` or ``row=``.

        In this order, the first that applies decides:

        1. ``row=N``: row N (then no ``query``);
        2. a key of the embeddings: its row (so a key that reads ``"row:3"``
           is that key);
        3. ``"row:N"``: row N; ``"id:N"``: the entity whose original id
           (:attr:`Embeddings.ids`) is N, or whose key is N when the embeddings
           have no ids;
        4. an integer: when the embeddings have integer keys (user ids, row
           numbers), it can only be a key, so an absent one is an
           :class:`~embspace.errors.EntityNotFoundError`; otherwise it is a row
           index (kept from earlier versions: it cannot be mistaken for a key);
        5. any other string: a title (exact, then case- and accent-insensitive;
           see :mod:`embspace.search`). A string of digits is a title too.

        Rows outside ``[0, n)`` raise
        :class:`~embspace.errors.IndexOutOfRangeError`; an ambiguous title an
        :class:`~embspace.errors.AmbiguousQueryError` whose ``rows`` lists the
        candidates (:meth:`query_of` names each one unambiguously)."""
        emb = self.embeddings
        if row is not None:
            if query is not _NO_QUERY:
                raise InvalidParameterError("give a query or row=, not both")
            return self._row(check_int(row, "row"))
        if query is _NO_QUERY:
            raise InvalidParameterError("give a query (a key, 'id:N', 'row:N' or a title) or row=")
        if query in emb:
            return emb.index_of(query)
        if isinstance(query, str):
            prefix, sep, rest = query.partition(":")
            if sep and prefix.strip().lower() in ("row", "id"):
                return self._prefixed(prefix.strip().lower(), rest.strip(), query)
        if isinstance(query, (int, np.integer)) and not isinstance(query, (bool, np.bool_)):
            if self._int_keys:
                raise EntityNotFoundError(
                    f"no entity has the key {int(query)}; for a row index use row={int(query)} "
                    f"or 'row:{int(query)}'"
                )
            return self._row(int(query))
        if isinstance(query, str):
            return match_title(emb.titles, query, describe=[_label(key) for key in emb.keys])
        raise EntityNotFoundError(f"{query!r} is neither a key, a row index nor a title")

    def _row(self, row: int) -> int:
        if not 0 <= row < self.n:
            from .errors import IndexOutOfRangeError

            raise IndexOutOfRangeError(f"row index {row} is outside [0, {self.n})")
        return row

    def _prefixed(self, kind: str, text: str, query: str) -> int:
        """The row of ``row:N`` or ``id:N``."""
        if kind == "row":
            if not re.fullmatch(r"[-+]?\d+", text):
                raise EntityNotFoundError(f"{query!r}: a row is an integer, as in 'row:0'")
            return self._row(int(text))
        candidates: list[Hashable] = [text]
        if re.fullmatch(r"[-+]?\d+", text):
            candidates.insert(0, int(text))
        index = self._id_index
        for value in candidates:
            found = index.get(value) if index is not None else None
            if found is None and index is None and value in self.embeddings:
                found = self.embeddings.index_of(value)
            if found is not None:
                return found
        what = "id" if index is not None else "key (these embeddings have no ids)"
        raise EntityNotFoundError(f"no entity has the {what} {text!r}")

    @cached_property
    def _int_keys(self) -> bool:
        """Whether any key is an integer (then an integer query is a key)."""
        return any(isinstance(k, int) and not isinstance(k, bool) for k in self.embeddings.keys)

    @cached_property
    def _id_index(self) -> dict[Hashable, int] | None:
        """``{id: row}`` of the unique ids (None when the embeddings have no ids)."""
        ids = self.embeddings.ids
        if ids is None:
            return None
        index: dict[Hashable, int] = {}
        repeated: set[Hashable] = set()
        for i, value in enumerate(ids.tolist()):
            try:
                if value in index:
                    repeated.add(value)
                index[value] = i
            except TypeError:  # an unhashable id cannot be asked for
                continue
        for value in repeated:
            del index[value]
        return index

    def query_of(self, row: int) -> str:
        """A query that names ``row`` and only it, to paste back (on the command
        line too): ``"id:N"`` when the row has a unique id made of letters,
        digits or ``-_.``, else ``"row:N"``."""
        row = self._row(check_int(row, "row"))
        ids = self.embeddings.ids
        if ids is not None:
            value = ids[row].item() if isinstance(ids[row], np.generic) else ids[row]
            text = str(value)
            if (
                isinstance(value, (int, str))
                and not isinstance(value, bool)
                and re.fullmatch(r"[-\w.]+", text)
                and self._id_index is not None
                and self._id_index.get(value) == row
            ):
                try:
                    if self._prefixed("id", text, text) == row:  # it reads back as this row
                        return f"id:{text}"
                except EntityNotFoundError:
                    pass
        return f"row:{row}"

    def neighbors(
        self, query: Hashable = _NO_QUERY, k: int = 10, *, row: int | None = None
    ) -> pd.DataFrame:
        """The k nearest neighbors of one entity (named as :meth:`resolve`
        reads it: a key, ``"id:N"``, ``"row:N"``, ``row=N`` or a title) as a
        DataFrame with columns ``rank`` (1 = closest), ``key``, ``title``,
        ``score`` (larger is more similar), ``distance`` and ``index`` (row in
        the embeddings)."""
        row = self.resolve(query, row=row)
        dist, idx = self.knn(k, [row])
        dist, idx = dist[0].astype(np.float64), idx[0]
        keys = self.embeddings.keys
        titles = self.embeddings.titles
        frame = pd.DataFrame(
            {
                "rank": np.arange(1, len(idx) + 1),
                "key": pd.Series([keys[j] for j in idx], dtype=object),
                "title": [titles[j] for j in idx],
                "score": _score(self.metric, dist),
                "distance": dist,
                "index": idx,
            }
        )
        frame.attrs["query"] = keys[row]
        frame.attrs["metric"] = self.metric
        return frame


def _score(metric: str, distance: np.ndarray) -> np.ndarray:
    if metric == "cosine":
        return 1.0 - distance
    return -distance


def _label(key: Hashable) -> str:
    if isinstance(key, tuple):
        return " | ".join(str(part) for part in key)
    return str(key)
