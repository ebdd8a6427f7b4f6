"""WALS written against an array module ``xp`` (numpy on the CPU, CuPy on a GPU).

The same algorithm as the Rust CPU path (TensorFlow ``WALSModel`` semantics,
see :mod:`embspace.factorization.wals`): with weights ``W_ij = w0 + R_i C_j`` on observed entries and
``w0`` elsewhere, one iteration solves every user row, then every item row,
each exactly:

    (w0 G + sum_{j in O_i} R_i C_j v_j v_j^T + lambda_i I) u_i = sum_{j in O_i} (w0 + R_i C_j) A_ij v_j

with ``G = V^T V`` computed once per half-sweep and ``lambda_i = lambda``
(or ``lambda * |O_i|`` with ``scale_regularization``).

How the systems are built without a Python loop over rows: the rows of one
side are sorted by rating count and grouped by a padded length ``L`` (the
count rounded up to a coarse grid, at most 25 % padding). One batch of ``b``
rows gathers the fixed factors of its entries into a ``(b, L, k)`` tensor
(padding gathers any row and gets weight zero), scales it by ``sqrt(R_i C_j)``
and forms all observed Gram parts with one batched float32 product
``(b, k, L) @ (b, L, k)``; the right-hand sides are one batched product
``(b, 1, L) @ (b, L, k)``. Rows longer than 1024 entries are split into chunks
of at most 1024 whose float32 partial products are summed in float64. The
systems get ``w0 G + lambda I`` (float64) added and are solved in float64 by a
batched Cholesky factorisation and batched triangular solves
(:func:`embspace.gpu.linalg.cholesky_solve`), like the Rust path, which
accumulates in float32 blocks and solves in float64. The batch size comes from the
memory budget (:func:`embspace.device.memory_budget`: a share of the free
device memory on CuPy, 512 MiB on numpy). Rows without ratings get the
regularised solution of a zero right-hand side, which is exactly zero.

**Small k: the normal equations as sparse products** (``strategy="sparse"``,
chosen by ``"auto"`` for ``k <= SPARSE_MAX_K``). The padded batches above cost a
few kernel launches per padded length (about 80 batches a sweep on ML-20M), which
at k = 10 leaves a GPU idle: 0.12 s an iteration on an H200, slower than 16 CPU
cores. With ``W_ij = R_i C_j`` every observed part is one sparse-times-dense
product over the whole side:

    sum_{j in O_i} W_ij v_j v_j^T = (P Q)_i,    sum_{j in O_i} (w0 + W_ij) A_ij v_j = (S V)_i

where ``P`` holds ``W_ij`` and ``S`` holds ``(w0 + W_ij) A_ij`` on the pattern of
the ratings (CSR, built once at setup: the weights never change) and
``Q[j] = vech(v_j v_j^T)`` packs the upper triangle of each fixed row's outer
product (``k (k + 1) / 2`` values). Both products are float64 (cuSPARSE SpMM on
CuPy, which is deterministic for a non-transposed CSR operand; scipy on numpy),
so the systems are summed more accurately than by the float32 batches. The rows
of a side are cut into chunks whose float64 systems fit the memory budget; each
chunk is unpacked into ``(b, k, k)`` systems and solved by one batched call.
The loss terms are then summed by one float64 pass over the entries (``O(nnz
k)``). A side whose ``Q`` does not fit the budget, or with ``2^31`` entries or
more, takes the padded batches.

**The conjugate-gradient solver** (``solver="cg"``) runs ``cg_steps`` steps on the
stacked systems, warm-started from the current factors. With ``lambda > 0`` not
scaled by count every system shares ``B = w0 G + lambda I = L L^T`` and the
iteration is preconditioned by it, as on the CPU: it runs on ``(L^-1 A L^-T) z =
L^-1 b`` with ``z = L^T u`` (the same iterates as the Rust path's whitened fixed
factor, in exact arithmetic), so a row whose ratings add a term of rank ``r`` is
solved exactly in ``r + 1`` steps. Otherwise the plain iteration runs.

Factors are float32 on the device (as on the CPU); the loss is accumulated in
float64 on the device with the same formula as the CPU path (:meth:`WalsXp.loss`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from ..device import is_cupy, to_device, to_numpy
from ..device import memory_budget as _memory_budget
from ..errors import InvalidParameterError, NonFiniteError, NumericalError, ShapeMismatchError
from .linalg import cholesky_solve

__all__ = [
    "SPARSE_MAX_K",
    "STRATEGIES",
    "CsrArrays",
    "WalsXp",
    "padded_lengths",
    "plan_batches",
]

#: (indptr int64 (n_rows + 1,), indices int32 (nnz,), data float32 (nnz,)) of one orientation.
CsrArrays = tuple[np.ndarray, np.ndarray, np.ndarray]

#: Accepted values of ``solver``.
SOLVERS = ("cholesky", "cg")
#: Accepted values of ``strategy`` (how the normal equations are formed).
STRATEGIES = ("auto", "batched", "sparse")
#: ``strategy="auto"`` forms the normal equations by sparse products up to this
#: many factors, by padded batches above (where the batched float32 products
#: run near the GPU's rate; see benches/gpu/README.md for the measurements).
SPARSE_MAX_K = 32
#: With zero regularization a CG direction whose curvature ``p.Ap / p.p`` is at
#: most this fraction of the mean diagonal of ``A`` shows a singular system (the
#: Rust core's ``SINGULAR_RTOL``, its Cholesky pivot tolerance).
SINGULAR_RTOL = 64.0 * float(np.finfo(np.float32).eps)
#: The shared part ``w0 G + lambda I`` of the systems preconditions the CG only
#: when every pivot of its Cholesky factor exceeds this fraction of its
#: diagonal entry (the Rust core's whitening rule).
_MIN_PIVOT = 1e-10

#: Loss terms ``(observed, unobserved, regularization)`` (Python floats).
LossTuple = tuple[float, float, float]

#: ``callback(iteration, elapsed_seconds, loss)`` after each iteration (iteration counts from 1).
IterationCallback = Callable[[int, float, float], Any]


def padded_lengths(counts: np.ndarray) -> np.ndarray:
    """Padded length of rows with ``counts`` entries (int64, same shape).

    Counts up to 16 round up to a multiple of 4; above, to a multiple of a
    quarter of the largest power of two below the count (17..32 -> step 4,
    33..64 -> step 8, ...), so padding stays under 25 % and the number of
    distinct lengths grows only with the logarithm of the largest count.
    """
    c = np.maximum(np.asarray(counts, dtype=np.int64), 1)
    exponent = np.floor(np.log2(np.maximum(c - 1, 1))).astype(np.int64)
    step = np.maximum(4, (np.int64(1) << exponent) // 4)
    return -(-c // step) * step


#: Entries summed in float32 by one product before the partial sums go to float64.
CHUNK = 1024


def _chunk(length: int) -> int:
    """Entries per float32 partial sum for rows of padded length ``length``: all of
    them up to :data:`CHUNK`, else the largest power of two dividing ``length``
    (at most :data:`CHUNK`; padded lengths above 1024 are multiples of 256)."""
    if length <= CHUNK:
        return length
    return min(CHUNK, length & -length)


def _bytes_per_row(length: int, k: int) -> int:
    """Working memory of one row of a batch: the (L, k) gathers, the per-entry
    arrays, the float32 partial Gram matrices and the float64 k x k systems."""
    partials = length // _chunk(length)
    return 8 * length * k + 96 * length + 8 * partials * k * (k + 1) + 40 * k * k + 64 * k


def _observed_parts(
    xp: ModuleType, scaled: Any, gathered: Any, rhs_weights: Any
) -> tuple[Any, Any]:
    """``sum_t s_t s_t^T`` (b, k, k) and ``sum_t y_t g_t`` (b, k), float64, over the
    L entries of each row: float32 batched products over chunks of at most
    :data:`CHUNK` entries, whose partial sums are added in float64."""
    b, length, k = gathered.shape
    c = _chunk(length)
    if c == length:
        gram = xp.matmul(scaled.transpose(0, 2, 1), scaled)
        rhs = xp.matmul(rhs_weights[:, None, :], gathered)[:, 0, :]
        return gram.astype(np.float64), rhs.astype(np.float64)
    parts = length // c
    s4 = scaled.reshape(b, parts, c, k)
    gram = xp.matmul(s4.transpose(0, 1, 3, 2), s4).astype(np.float64).sum(axis=1)
    w4 = rhs_weights.reshape(b, parts, 1, c)
    rhs = xp.matmul(w4, gathered.reshape(b, parts, c, k))[:, :, 0, :].astype(np.float64).sum(axis=1)
    return gram, rhs


def plan_batches(counts: np.ndarray, k: int, budget_bytes: int) -> list[tuple[np.ndarray, int]]:
    """Split the rows with at least one entry into batches ``(rows, L)``.

    Rows are ordered by (count, row index); each batch holds rows of one
    padded length ``L`` (:func:`padded_lengths`) and at most as many rows as
    fit in ``budget_bytes`` (at least one). Returns host int64 row arrays.
    """
    counts = np.asarray(counts, dtype=np.int64)
    nonempty = np.flatnonzero(counts > 0)
    if nonempty.size == 0:
        return []
    order = nonempty[np.argsort(counts[nonempty], kind="stable")]
    lengths = padded_lengths(counts[order])
    # Boundaries between groups of equal padded length (lengths are sorted).
    cuts = np.flatnonzero(np.diff(lengths)) + 1
    starts = np.concatenate(([0], cuts))
    stops = np.concatenate((cuts, [order.size]))
    batches: list[tuple[np.ndarray, int]] = []
    for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
        length = int(lengths[start])
        per_batch = max(1, budget_bytes // _bytes_per_row(length, k))
        for lo in range(start, stop, per_batch):
            batches.append((order[lo : min(stop, lo + per_batch)], length))
    return batches


@dataclass
class _Batch:
    rows: Any  # xp int64 (b,)
    starts: Any  # xp int64 (b,): offsets of the rows in indices/data
    counts: Any  # xp int64 (b,)
    length: int  # padded length L


@dataclass
class _Side:
    """One orientation of the ratings, on the device, with its batch plan."""

    n_rows: int
    indices: Any  # xp int64 (nnz,): column of each entry
    data: Any  # xp float32 (nnz,)
    counts: Any  # xp float32 (n_rows,): entries per row (for scaled regularisation)
    own_weights: Any  # xp float32 (n_rows,)
    empty_rows: Any  # xp int64
    batches: list[_Batch] = field(default_factory=list)
    #: The sparse strategy's chunks (empty with the batched one).
    chunks: list[_Chunk] = field(default_factory=list)
    #: Per entry (sparse strategy): its row, and ``W_ij = R_i C_j`` (float64).
    entry_rows: Any = None
    entry_weights: Any = None

    @property
    def strategy(self) -> str:
        """``"sparse"`` or ``"batched"``: how this side's normal equations are
        formed (a side without entries has neither; it counts as sparse)."""
        return "sparse" if self.chunks or not self.batches else "batched"


@dataclass
class _Chunk:
    """Rows ``rows`` (xp int64, all with entries) of one side and their
    ratings as two CSR matrices over the fixed side's rows: ``weights``
    (``W_ij``) and ``targets`` (``(w0 + W_ij) A_ij``), float64."""

    rows: Any
    counts: Any  # xp float64 (b,): entries per row
    weights: Any
    targets: Any


def _check_csr(csr: CsrArrays, n_rows: int, n_cols: int, name: str) -> CsrArrays:
    indptr, indices, data = (np.asarray(a) for a in csr)
    if indptr.ndim != 1 or indptr.size != n_rows + 1:
        raise ShapeMismatchError(
            f"{name} indptr must have {n_rows + 1} entries, got {indptr.shape}"
        )
    indptr = indptr.astype(np.int64, copy=False)
    if indptr[0] != 0 or np.any(np.diff(indptr) < 0):
        raise InvalidParameterError(f"{name} indptr must start at 0 and never decrease")
    nnz = int(indptr[-1])
    if indices.shape != (nnz,) or data.shape != (nnz,):
        raise ShapeMismatchError(
            f"{name} indices and data must have {nnz} entries, got {indices.shape} and {data.shape}"
        )
    if nnz and (indices.min() < 0 or indices.max() >= n_cols):
        raise InvalidParameterError(f"{name} indices must lie in [0, {n_cols})")
    data = data.astype(np.float32, copy=False)
    if not np.isfinite(data).all():
        raise NonFiniteError(f"{name} ratings must be finite")
    return indptr, indices.astype(np.int64, copy=False), data


def _check_vector(v: np.ndarray | None, n: int, name: str) -> np.ndarray:
    if v is None:
        return np.ones(n, dtype=np.float32)
    v = np.asarray(v, dtype=np.float32)
    if v.shape != (n,):
        raise ShapeMismatchError(f"{name} must have shape ({n},), got {v.shape}")
    if not np.isfinite(v).all():
        raise NonFiniteError(f"{name} must be finite")
    if np.any(v < 0):
        raise InvalidParameterError(f"{name} must be non-negative")
    return v


def _check_factors(f: np.ndarray, n: int, name: str) -> np.ndarray:
    f = np.asarray(f, dtype=np.float32)
    if f.ndim != 2 or f.shape[0] != n or f.shape[1] < 1:
        raise ShapeMismatchError(f"{name} must have shape ({n}, k) with k >= 1, got {f.shape}")
    if not np.isfinite(f).all():
        raise NonFiniteError(f"{name} must be finite")
    return f


class WalsXp:
    """WALS state on an array module: factors, both orientations and their batch plans.

    Parameters
    ----------
    user_csr, item_csr : (indptr, indices, data)
        The ratings by user (n_users rows over n_items columns) and by item
        (the transpose), as :meth:`embspace.Ratings.csr_arrays` returns them.
    user_init, item_init : ndarray, shapes (n_users, k) and (n_items, k)
        Initial factors (float32); copied to the device.
    unobserved_weight : float
        ``w0 >= 0``, the weight of every entry (observed or not).
    regularization : float
        ``lambda >= 0``.
    row_weights, col_weights : ndarray or None
        ``R`` (n_users,) and ``C`` (n_items,), non-negative; ``None`` means ones.
    scale_regularization : bool
        Use ``lambda * |O_i|`` for row ``i`` (Spark/Rendle style) instead of ``lambda``.
    solver : {"cholesky", "cg"}
        Exact batched Cholesky solves, or ``cg_steps`` batched conjugate-gradient
        steps warm-started from the current factors (as the Rust ``"cg"`` solver).
    cg_steps : int
        Steps of the ``"cg"`` solver.
    xp : module
        ``numpy`` or ``cupy``.
    memory_budget : int or None
        Bytes one batch may use; ``None`` asks :func:`~embspace.device.memory_budget`.
    strategy : {"auto", "batched", "sparse"}
        How the normal equations are formed (see the module docstring): padded
        batches of gathered factors, or two sparse products per half-sweep;
        ``"auto"`` takes the sparse products for ``k <= SPARSE_MAX_K``. Both give
        the same systems up to rounding (the sparse ones are summed in float64).
        A side that cannot take the sparse products (its packed outer products
        exceed the memory budget, or it has ``2^31`` entries or more) takes the
        batches; :attr:`strategies` says what each side uses.
    """

    def __init__(
        self,
        user_csr: CsrArrays,
        item_csr: CsrArrays,
        user_init: np.ndarray,
        item_init: np.ndarray,
        *,
        unobserved_weight: float,
        regularization: float,
        row_weights: np.ndarray | None = None,
        col_weights: np.ndarray | None = None,
        scale_regularization: bool = False,
        solver: str = "cholesky",
        cg_steps: int = 3,
        xp: ModuleType = np,
        memory_budget: int | None = None,
        strategy: str = "auto",
    ) -> None:
        if solver not in SOLVERS:
            raise InvalidParameterError(f"solver must be one of {SOLVERS}, got {solver!r}")
        if strategy not in STRATEGIES:
            raise InvalidParameterError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        if isinstance(cg_steps, bool) or int(cg_steps) != cg_steps or cg_steps < 1:
            raise InvalidParameterError(f"cg_steps must be an integer >= 1, got {cg_steps!r}")
        n_users = int(np.asarray(user_csr[0]).size) - 1
        n_items = int(np.asarray(item_csr[0]).size) - 1
        if n_users < 0 or n_items < 0:
            raise ShapeMismatchError("indptr arrays must not be empty")
        user_init = _check_factors(user_init, n_users, "user_init")
        item_init = _check_factors(item_init, n_items, "item_init")
        if user_init.shape[1] != item_init.shape[1]:
            raise ShapeMismatchError(
                f"user_init has {user_init.shape[1]} factors, item_init {item_init.shape[1]}"
            )
        for value, name in (
            (unobserved_weight, "unobserved_weight"),
            (regularization, "regularization"),
        ):
            if not np.isfinite(value) or value < 0:
                raise InvalidParameterError(f"{name} must be finite and >= 0, got {value}")
        u_ptr, u_idx, u_data = _check_csr(user_csr, n_users, n_items, "user_csr")
        i_ptr, i_idx, i_data = _check_csr(item_csr, n_items, n_users, "item_csr")
        if u_idx.size != i_idx.size:
            raise ShapeMismatchError("user_csr and item_csr hold different numbers of ratings")
        r = _check_vector(row_weights, n_users, "row_weights")
        c = _check_vector(col_weights, n_items, "col_weights")

        self.xp = xp
        self.k = int(user_init.shape[1])
        self.w0 = np.float32(unobserved_weight)
        self.lam = np.float32(regularization)
        self.scale_regularization = bool(scale_regularization)
        self.solver = solver
        self.cg_steps = int(cg_steps)
        self.row_weights = to_device(xp, r)
        self.col_weights = to_device(xp, c)
        # Copies: the half-sweeps update the factors in place.
        self.user_factors = to_device(xp, user_init, copy=True)
        self.item_factors = to_device(xp, item_init, copy=True)
        budget = _memory_budget(xp, memory_budget)
        sparse = strategy == "sparse" or (strategy == "auto" and self.k <= SPARSE_MAX_K)
        self.users = self._side(
            u_ptr, u_idx, u_data, self.row_weights, self.col_weights, n_items, budget, sparse
        )
        self.items = self._side(
            i_ptr, i_idx, i_data, self.col_weights, self.row_weights, n_users, budget, sparse
        )
        #: What each side uses: ``{"users": "sparse" or "batched", "items": ...}``.
        self.strategies = {"users": self.users.strategy, "items": self.items.strategy}
        # Row index of every user-side entry, for the loss (the sparse
        # strategy's per-entry rows of the user side are the same array).
        if self.users.entry_rows is not None:
            self._loss_rows = self.users.entry_rows
        else:
            self._loss_rows = to_device(
                xp, np.repeat(np.arange(n_users, dtype=np.int64), np.diff(u_ptr))
            )
        # per entry: two float32 gathers, their float64 copies and product, indices
        self._loss_chunk = max(1, budget // (40 * self.k + 64))

    def _side(
        self,
        indptr: np.ndarray,
        indices: np.ndarray,
        data: np.ndarray,
        own: Any,
        other: Any,
        n_fixed: int,
        budget: int,
        sparse: bool,
    ) -> _Side:
        xp = self.xp
        counts = np.diff(indptr)
        side = _Side(
            n_rows=counts.size,
            indices=to_device(xp, indices),
            data=to_device(xp, data),
            counts=to_device(xp, counts.astype(np.float32)),
            own_weights=own,
            empty_rows=to_device(xp, np.flatnonzero(counts == 0).astype(np.int64)),
        )
        packed = self.k * (self.k + 1) // 2
        if sparse and indices.size < 2**31 and 8 * n_fixed * packed <= budget:
            self._sparse_chunks(side, indptr, other, n_fixed, budget)
            return side
        for rows, length in plan_batches(counts, self.k, budget):
            side.batches.append(
                _Batch(
                    rows=to_device(xp, rows),
                    starts=to_device(xp, indptr[rows]),
                    counts=to_device(xp, counts[rows]),
                    length=length,
                )
            )
        return side

    def _sparse_chunks(
        self, side: _Side, indptr: np.ndarray, other: Any, n_fixed: int, budget: int
    ) -> None:
        """The sparse strategy's setup for ``side`` (its CSR row pointers
        ``indptr``, the fixed side's weights ``other`` and row count
        ``n_fixed``): per-entry rows and weights, and the
        rows with entries cut into chunks whose packed products, float64
        systems and solves fit ``budget`` (at least one row a chunk)."""
        xp = self.xp
        counts = np.diff(indptr)
        n_rows = counts.size
        rows_of = np.repeat(np.arange(n_rows, dtype=np.int64), counts)
        side.entry_rows = to_device(xp, rows_of)
        cols = side.indices
        own_w = side.own_weights[side.entry_rows].astype(np.float64)
        side.entry_weights = own_w * other[cols].astype(np.float64)
        targets = (float(self.w0) + side.entry_weights) * side.data.astype(np.float64)
        k = self.k
        packed = k * (k + 1) // 2
        # per row: the packed product, the k x k system and its factor (float64),
        # the right-hand side and solution; the products' own share of the budget
        per_row = 8 * (packed + 3 * k * k + 4 * k)
        room = max(per_row, budget - 8 * n_fixed * packed)
        per_chunk = max(1, room // per_row)
        nonempty = np.flatnonzero(counts > 0)
        sparse_mod = _sparse_module(xp)
        for lo in range(0, nonempty.size, per_chunk):
            rows = nonempty[lo : lo + per_chunk]
            first, last = int(rows[0]), int(rows[-1])
            start, stop = int(indptr[first]), int(indptr[last + 1])
            # rows between first and last without entries have empty CSR rows:
            # keep them out, so the chunk's matrices cover exactly ``rows``
            local_ptr = indptr[first : last + 2] - start
            local_ptr = np.concatenate(([0], local_ptr[1:][counts[first : last + 1] > 0]))
            shape = (rows.size, n_fixed)
            ptr = to_device(xp, local_ptr.astype(np.int32))
            idx = cols[start:stop].astype(np.int32)
            side.chunks.append(
                _Chunk(
                    rows=to_device(xp, rows),
                    counts=to_device(xp, counts[rows].astype(np.float64)),
                    weights=sparse_mod.csr_matrix(
                        (side.entry_weights[start:stop], idx, ptr), shape=shape
                    ),
                    targets=sparse_mod.csr_matrix((targets[start:stop], idx, ptr), shape=shape),
                )
            )

    # ------------------------------------------------------------------ sweeps
    def solve_users(self) -> LossTuple:
        """Row half-sweep: every user row solved given the item factors; returns
        the loss terms (observed, unobserved, regularization) at the new point."""
        return self.half_sweep("users")

    def solve_items(self) -> LossTuple:
        """Column half-sweep: every item row solved given the user factors; returns
        the loss terms at the new point."""
        return self.half_sweep("items")

    def iterate(self) -> LossTuple:
        """One WALS iteration (users, then items); the loss terms at its end."""
        self.solve_users()
        return self.solve_items()

    def half_sweep(self, side: str) -> LossTuple:
        """Solve the ``"users"`` or ``"items"`` factors with the other side fixed
        and return the loss terms ``(observed, unobserved, regularization)`` of
        the new factors (the observed part is summed while the systems' gathered
        factors are still in memory; no second pass over the ratings)."""
        if side == "users":
            plan, fixed, other_w, out = (
                self.users,
                self.item_factors,
                self.col_weights,
                self.user_factors,
            )
        elif side == "items":
            plan, fixed, other_w, out = (
                self.items,
                self.user_factors,
                self.row_weights,
                self.item_factors,
            )
        else:
            raise InvalidParameterError(f"side must be 'users' or 'items', got {side!r}")
        fixed64 = fixed.astype(np.float64)
        gram_fixed = fixed64.T @ fixed64  # G in float64
        del fixed64
        if plan.strategy == "sparse":
            observed, squares = self._solve_sparse(plan, fixed, out, gram_fixed)
        else:
            observed, squares = self._solve_side(plan, fixed, other_w, out, gram_fixed)
        out64 = out.astype(np.float64)
        everything = (gram_fixed * (out64.T @ out64)).sum()
        del out64
        unobserved = float(self.w0) * (everything - squares)
        return float(observed), float(unobserved), self._regularization_term()

    def _solve_side(
        self, side: _Side, fixed: Any, other_weights: Any, out: Any, gram_fixed: Any
    ) -> tuple[Any, Any]:
        """Solve every row of ``side`` into ``out``; returns the device scalars
        ``sum_O W (a - p)^2`` and ``sum_O p^2`` of the new factors."""
        xp = self.xp
        base = self._base(gram_fixed)
        whitening = self._cg_whitening(base)
        observed = xp.zeros((), dtype=np.float64)
        squares = xp.zeros((), dtype=np.float64)
        for batch in side.batches:
            offsets = xp.arange(batch.length, dtype=np.int64)
            mask = offsets[None, :] < batch.counts[:, None]
            pos = xp.where(mask, batch.starts[:, None] + offsets[None, :], 0)
            cols = side.indices[pos]
            ratings = xp.where(mask, side.data[pos], np.float32(0))
            weights = xp.where(
                mask, side.own_weights[batch.rows][:, None] * other_weights[cols], np.float32(0)
            )
            gathered = fixed[cols]  # (b, L, k) float32
            scaled = gathered * xp.sqrt(weights)[:, :, None]
            rhs_weights = (self.w0 + weights) * ratings  # (b, L)
            systems, rhs = _observed_parts(xp, scaled, gathered, rhs_weights)
            del scaled
            x32 = self._solve_systems(
                systems, rhs, base, whitening, side.counts[batch.rows], batch.rows, out
            )
            # loss terms of the new rows: predictions of every (padded) entry
            pred = xp.matmul(gathered, x32[:, :, None])[:, :, 0].astype(np.float64)
            pred = xp.where(mask, pred, 0.0)
            err = ratings.astype(np.float64) - pred
            entry_w = float(self.w0) + weights.astype(np.float64)
            observed = observed + xp.where(mask, entry_w * err * err, 0.0).sum()
            squares = squares + (pred * pred).sum()
            del gathered
        self._finish(side, out)
        return observed, squares

    def _solve_sparse(self, side: _Side, fixed: Any, out: Any, gram_fixed: Any) -> tuple[Any, Any]:
        """The sparse strategy's :meth:`_solve_side`: per chunk, the observed
        Gram parts ``P Q`` and right-hand sides ``S V`` by two float64 sparse
        products, one batched solve; then the loss sums by a pass over the
        entries."""
        xp = self.xp
        k = self.k
        base = self._base(gram_fixed)
        whitening = self._cg_whitening(base)
        fixed64 = fixed.astype(np.float64)
        upper_r, upper_c = np.triu_indices(k)
        iu_r, iu_c = to_device(xp, upper_r), to_device(xp, upper_c)
        packed = fixed64[:, iu_r] * fixed64[:, iu_c]  # Q: (n_fixed, k (k + 1) / 2)
        for chunk in side.chunks:
            parts = chunk.weights @ packed  # (b, k (k + 1) / 2)
            systems = xp.empty((parts.shape[0], k, k), dtype=np.float64)
            systems[:, iu_r, iu_c] = parts
            systems[:, iu_c, iu_r] = parts
            del parts
            rhs = xp.asarray(chunk.targets @ fixed64)
            self._solve_systems(systems, rhs, base, whitening, chunk.counts, chunk.rows, out)
            del systems, rhs
        del packed
        self._finish(side, out)
        weights = side.entry_weights
        return self._entry_sums(
            side.entry_rows, side.indices, side.data, lambda lo, hi: weights[lo:hi], out, fixed
        )

    def _base(self, gram_fixed: Any) -> Any:
        """``w0 G`` (+ ``lambda I`` without scaled regularisation): every
        row's system before its observed part."""
        base = float(self.w0) * gram_fixed
        if not self.scale_regularization:
            base = base + float(self.lam) * self.xp.eye(self.k, dtype=np.float64)
        return base

    def _cg_whitening(self, base: Any) -> tuple[Any, Any] | None:
        """The preconditioner of ``solver="cg"`` for one half-sweep: :func:`_whitening`
        of ``base`` when every row shares it (``lambda > 0`` not scaled by count),
        else None (the plain iteration; and always with the exact solver)."""
        if self.solver != "cg" or self.scale_regularization or float(self.lam) <= 0.0:
            return None
        return _whitening(self.xp, base)

    def _solve_systems(
        self,
        systems: Any,
        rhs: Any,
        base: Any,
        whitening: tuple[Any, Any] | None,
        counts: Any,
        rows: Any,
        out: Any,
    ) -> Any:
        """Add ``base`` (and ``lambda |O_i| I`` with scaled regularisation) to the
        observed parts ``systems`` (b, k, k) float64 of the rows ``rows`` (with
        ``counts`` entries each), solve them with the model's solver (the CG
        preconditioned by ``whitening``, :meth:`_cg_whitening`, where given) and
        write the float32 solutions into ``out``; returns them."""
        xp = self.xp
        k = self.k
        systems += base
        if self.scale_regularization:
            lam_rows = float(self.lam) * counts.astype(np.float64)
            systems += lam_rows[:, None, None] * xp.eye(k, dtype=np.float64)
        if whitening is not None:
            # preconditioned by the shared part B = L L^T, as the Rust path:
            # CG on (L^-1 A L^-T) z = L^-1 b with z = L^T x (row vectors here);
            # the factor's share of the budget holds the product's temporary
            low, inv = whitening
            left = xp.matmul(inv, systems)
            xp.matmul(left, inv.T, out=systems)
            del left
            z = _cg(xp, systems, rhs @ inv.T, out[rows].astype(np.float64) @ low, self.cg_steps)
            x = z @ inv
        elif self.solver == "cg":
            floor = None
            if float(self.lam) == 0.0:
                # as the Rust solver: fewer ratings than factors and w0 = 0
                # is singular outright, else the curvature test in _cg
                if float(self.w0) == 0.0 and int(counts.min()) < k:
                    raise NumericalError(_SINGULAR_CG)
                trace = xp.trace(systems, axis1=1, axis2=2)
                floor = SINGULAR_RTOL * trace / k
            x = _cg(xp, systems, rhs, out[rows].astype(np.float64), self.cg_steps, floor)
        else:
            x = cholesky_solve(xp, systems, rhs)
        x32 = x.astype(np.float32)
        out[rows] = x32
        return x32

    def _finish(self, side: _Side, out: Any) -> None:
        """Rows without entries get exactly zero; factors must be finite."""
        if side.empty_rows.size:
            out[side.empty_rows] = 0
        if not bool(self.xp.isfinite(out).all()):
            raise NumericalError(
                "WALS produced factors that are not finite in float32; "
                "raise regularization or unobserved_weight (or rescale the ratings)"
            )

    def _entry_sums(
        self,
        rows: Any,
        cols: Any,
        data: Any,
        weights: Callable[[int, int], Any],
        solved: Any,
        fixed: Any,
    ) -> tuple[Any, Any]:
        """``sum_O (w0 + W)(A - p)^2`` and ``sum_O p^2`` (device float64
        scalars) over the entries ``(rows[t], cols[t])`` with ratings ``data``,
        ``weights(lo, hi)`` the float64 ``W`` of the entries ``lo:hi``, and
        ``p`` the prediction of the ``solved`` (by row) and ``fixed`` (by
        column) factors; in pieces of the loss budget."""
        xp = self.xp
        observed = xp.zeros((), dtype=np.float64)
        squares = xp.zeros((), dtype=np.float64)
        nnz = int(cols.size)
        w0 = float(self.w0)
        for lo in range(0, nnz, self._loss_chunk):
            hi = min(nnz, lo + self._loss_chunk)
            r, c = rows[lo:hi], cols[lo:hi]
            pred = (solved[r].astype(np.float64) * fixed[c].astype(np.float64)).sum(axis=1)
            err = data[lo:hi].astype(np.float64) - pred
            observed = observed + ((w0 + weights(lo, hi)) * err * err).sum()
            squares = squares + (pred * pred).sum()
        return observed, squares

    def _regularization_term(self) -> float:
        u64, v64 = self.user_factors.astype(np.float64), self.item_factors.astype(np.float64)
        if self.scale_regularization:
            penalty = (self.users.counts.astype(np.float64) * (u64 * u64).sum(axis=1)).sum() + (
                self.items.counts.astype(np.float64) * (v64 * v64).sum(axis=1)
            ).sum()
        else:
            penalty = (u64 * u64).sum() + (v64 * v64).sum()
        return float(self.lam) * float(penalty)

    # ------------------------------------------------------------------ loss
    def loss_terms(self) -> LossTuple:
        """``(observed, unobserved, regularization)`` of the current factors, by a
        separate pass over the ratings (float64 sums on the device):
        ``sum_O (w0 + R_i C_j)(A_ij - u_i.v_j)^2``, ``w0 sum_{not O} (u_i.v_j)^2``
        (computed as ``w0 (<U^T U, V^T V> - sum_O (u_i.v_j)^2)`` so that no
        dense users x items matrix is formed) and ``lambda (|U|^2 + |V|^2)``
        (``lambda (sum_i |O_i| |u_i|^2 + sum_j |O_j| |v_j|^2)`` with
        ``scale_regularization``)."""
        u, v = self.user_factors, self.item_factors
        w0 = float(self.w0)
        rows, cols = self._loss_rows, self.users.indices

        def weights(lo: int, hi: int) -> Any:
            r, c = rows[lo:hi], cols[lo:hi]
            return (self.row_weights[r] * self.col_weights[c]).astype(np.float64)

        observed, squares = self._entry_sums(rows, cols, self.users.data, weights, u, v)
        u64, v64 = u.astype(np.float64), v.astype(np.float64)
        everything = ((u64.T @ u64) * (v64.T @ v64)).sum()
        return float(observed), float(w0 * (everything - squares)), self._regularization_term()

    def loss(self) -> float:
        """The total loss of the current factors (:meth:`loss_terms` summed)."""
        return float(sum(self.loss_terms()))

    def factors(self) -> tuple[np.ndarray, np.ndarray]:
        """(user_factors, item_factors) copied to the host as float32 numpy arrays."""
        return (
            np.ascontiguousarray(to_numpy(self.user_factors), dtype=np.float32),
            np.ascontiguousarray(to_numpy(self.item_factors), dtype=np.float32),
        )


def _sparse_module(xp: ModuleType) -> Any:
    """``cupyx.scipy.sparse`` for CuPy, ``scipy.sparse`` for numpy."""
    if is_cupy(xp):  # pragma: no cover - needs a GPU
        import cupyx.scipy.sparse

        return cupyx.scipy.sparse
    import scipy.sparse

    return scipy.sparse


_SINGULAR_CG = (
    "a system of the batch is singular (conjugate gradient): use regularization > 0 "
    "(or unobserved_weight > 0)"
)


def _whitening(xp: ModuleType, base: Any) -> tuple[Any, Any] | None:
    """``(L, L^-1)`` with ``base = L L^T`` (k x k float64, the part ``w0 G + lambda
    I`` every row's system shares), which preconditions the conjugate gradient;
    ``None`` when ``base`` is not numerically positive definite, by the Rust
    path's rule (a pivot ``L_dd^2`` at most ``1e-10`` of its diagonal entry):
    the iteration then runs unpreconditioned."""
    try:
        low = xp.linalg.cholesky(base)
    except np.linalg.LinAlgError:
        return None
    pivots = xp.diagonal(low) ** 2
    # CuPy returns NaN for a failed factorisation instead of raising
    if not bool(xp.all(xp.isfinite(low))) or not bool(
        xp.all(pivots > _MIN_PIVOT * xp.diagonal(base))
    ):
        return None
    return low, xp.linalg.inv(low)


def _cg(xp: ModuleType, a: Any, b: Any, x: Any, steps: int, floor: Any = None) -> Any:
    """``steps`` conjugate-gradient steps on every system ``a[i] x = b[i]`` of the
    stack (float64), warm-started from ``x``. A system stops (keeps its current
    ``x``) once its residual is zero or its curvature ``p.Ap`` is not positive,
    like the Rust solver. ``floor`` (per system, given with zero
    regularization) is the singularity test: a direction with ``p.Ap <= floor
    p.p`` raises :class:`~embspace.errors.NumericalError`."""
    r = b - xp.matmul(a, x[:, :, None])[:, :, 0]
    p = r.copy()
    rs = (r * r).sum(axis=1)
    active = xp.isfinite(rs) & (rs > 0)
    for _ in range(steps):
        ap = xp.matmul(a, p[:, :, None])[:, :, 0]
        pap = (p * ap).sum(axis=1)
        if floor is not None and bool((active & (pap <= floor * (p * p).sum(axis=1))).any()):
            raise NumericalError(_SINGULAR_CG)
        active = active & xp.isfinite(pap) & (pap > 0)
        alpha = xp.where(active, rs / xp.where(active, pap, 1.0), 0.0)
        x = x + alpha[:, None] * p
        r = r - alpha[:, None] * ap
        rs_new = (r * r).sum(axis=1)
        beta = xp.where(active, rs_new / xp.where(active, rs, 1.0), 0.0)
        p = r + beta[:, None] * p
        rs = xp.where(active, rs_new, rs)
        active = active & xp.isfinite(rs) & (rs > 0)
    return x
