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
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
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

    def resolve(self, query: Hashable) -> int:
        """The row of ``query``: a key of the embeddings first, then an integer
        row index, then a title (exact, then case- and accent-insensitive; see
        :mod:`embspace.search`)."""
        emb = self.embeddings
        if query in emb:
            return emb.index_of(query)
        if isinstance(query, (int, np.integer)) and not isinstance(query, bool):
            row = int(query)
            if not 0 <= row < emb.n:
                from .errors import IndexOutOfRangeError

                raise IndexOutOfRangeError(f"row index {row} is outside [0, {emb.n})")
            return row
        if isinstance(query, str):
            return match_title(emb.titles, query, describe=[_label(key) for key in emb.keys])
        raise EntityNotFoundError(f"{query!r} is neither a key, a row index nor a title")

    def neighbors(self, query: Hashable, k: int = 10) -> pd.DataFrame:
        """The k nearest neighbors of one entity as a DataFrame with columns
        ``rank`` (1 = closest), ``key``, ``title``, ``score`` (larger is more
        similar), ``distance`` and ``index`` (row in the embeddings)."""
        row = self.resolve(query)
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
