"""Weighted alternating least squares (TensorFlow ``WALSModel`` semantics).

The loss, for ratings ``A`` (observed set ``O``), factors ``U`` (users) and
``V`` (items), row weights ``R`` and column weights ``C``::

    sum_{(i,j) in O} (w0 + R_i C_j) (A_ij - u_i . v_j)^2
      + w0 sum_{(i,j) not in O} (u_i . v_j)^2 + lambda (|U|^2 + |V|^2)

One iteration solves every user row exactly with ``V`` fixed, then every
item row with ``U`` fixed (each an exact block minimisation, so in exact
arithmetic the loss never increases). Factors are stored in float32: on an
ill-conditioned problem (ratings around 1e6 with little regularization, rows
whose normal equations have a condition number past ~1e7) rounding can make
a half-sweep raise the loss, above all with ``solver="cg"``, whose few
warm-started steps cannot shrink the poorly determined directions; :meth:`WALS.fit`
then warns (:class:`~embspace.errors.EmbspaceWarning`) instead of passing it by. The work is done by a backend: the CPU one calls the Rust
core once per half-sweep with the GIL released. The pieces any backend needs
are plain functions of arrays: :func:`initial_factors` (the same starting
point on every device), :func:`loss_terms` (the loss formula, written against
an array module so it runs on numpy or CuPy) and :mod:`.weights`.
"""

from __future__ import annotations

import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator

from .. import _core
from .._params import check_number
from ..embeddings import Embeddings
from ..errors import DeviceUnavailableError, EmbspaceWarning, InvalidParameterError
from ..gpu.device import module_for
from ..ratings import Ratings
from ._common import (
    FittedAttributes,
    as_ratings,
    check_int,
    check_seed,
    check_threads,
    fitted_metadata,
)
from .weights import col_weights as make_col_weights
from .weights import row_weights as make_row_weights

__all__ = [
    "SOLVERS",
    "WALS",
    "LossTerms",
    "WalsBackend",
    "WalsProblem",
    "initial_factors",
    "loss_terms",
    "register_backend",
]

#: Accepted values of ``solver``.
SOLVERS = ("cholesky", "cg")
#: Accepted values of ``regularization_scaling``.
REG_SCALINGS = ("none", "count")


@dataclass(frozen=True)
class LossTerms:
    """The training loss by term (see the module docstring)."""

    observed: float
    unobserved: float
    regularization: float

    @property
    def total(self) -> float:
        return self.observed + self.unobserved + self.regularization


def initial_factors(
    n_rows: int, n_cols: int, k: int, scale: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Starting factors: ``U`` (``n_rows x k``) then ``V`` (``n_cols x k``),
    float32, drawn from ``normal(0, scale)`` by ``rng`` in that order, so
    every backend starts from the same point for a seed. Drawn in blocks of
    rows (the same stream as one draw), so no float64 copy of a whole factor
    is ever held."""
    return _normal_f32(rng, n_rows, k, scale), _normal_f32(rng, n_cols, k, scale)


def _normal_f32(rng: np.random.Generator, n: int, k: int, scale: float) -> np.ndarray:
    out = np.empty((n, k), dtype=np.float32)
    step = max(1, (1 << 16) // max(k, 1))
    for start in range(0, n, step):
        stop = min(n, start + step)
        out[start:stop] = rng.normal(0.0, scale, size=(stop - start, k))
    return out


def loss_terms(
    xp: ModuleType,
    indptr: Any,
    indices: Any,
    data: Any,
    u: Any,
    v: Any,
    *,
    unobserved_weight: float,
    regularization: float,
    row_weights: Any = None,
    col_weights: Any = None,
    regularization_scaling: str = "none",
    chunk: int = 1 << 20,
) -> LossTerms:
    """The loss of factors ``u`` (rows) and ``v`` (columns) for ratings given
    as CSR arrays by rows, written against the array module ``xp`` (numpy or
    CuPy), in float64. The unobserved part is
    ``w0 (tr(U^T U V^T V) - sum_{(i,j) in O} (u_i . v_j)^2)``; observed
    entries are visited in chunks of ``chunk``."""
    n_rows = int(indptr.shape[0]) - 1
    counts_rows = xp.diff(indptr)
    rows = xp.repeat(xp.arange(n_rows), counts_rows)
    u64 = u.astype(xp.float64)
    v64 = v.astype(xp.float64)
    observed = 0.0
    sq = 0.0
    for a in range(0, int(data.shape[0]), chunk):
        r = rows[a : a + chunk]
        c = indices[a : a + chunk]
        p = xp.sum(u64[r] * v64[c], axis=1)
        w = xp.full(p.shape, unobserved_weight, dtype=xp.float64)
        extra = xp.ones(p.shape, dtype=xp.float64)
        if row_weights is not None:
            extra = extra * row_weights[r].astype(xp.float64)
        if col_weights is not None:
            extra = extra * col_weights[c].astype(xp.float64)
        w = w + extra
        e = data[a : a + chunk].astype(xp.float64) - p
        observed += float(xp.sum(w * e * e))
        sq += float(xp.sum(p * p))
    everything = float(xp.sum((u64.T @ u64) * (v64.T @ v64)))
    if regularization_scaling == "count":
        counts_cols = xp.bincount(indices, minlength=int(v.shape[0]))
        reg_u = float(xp.sum(counts_rows * xp.sum(u64 * u64, axis=1)))
        reg_v = float(xp.sum(counts_cols * xp.sum(v64 * v64, axis=1)))
    else:
        reg_u = float(xp.sum(u64 * u64))
        reg_v = float(xp.sum(v64 * v64))
    return LossTerms(
        observed=observed,
        unobserved=unobserved_weight * (everything - sq),
        regularization=regularization * (reg_u + reg_v),
    )


@dataclass
class WalsProblem:
    """Everything a backend needs for one fit: the ratings in both
    orientations (CSR arrays), the weights, the starting factors and the
    hyperparameters. Arrays are numpy; a device backend copies them."""

    by_user: tuple[np.ndarray, np.ndarray, np.ndarray]
    by_item: tuple[np.ndarray, np.ndarray, np.ndarray]
    n_users: int
    n_items: int
    user_factors: np.ndarray
    item_factors: np.ndarray
    unobserved_weight: float
    regularization: float
    row_weights: np.ndarray | None
    col_weights: np.ndarray | None
    solver: str
    cg_steps: int
    regularization_scaling: str
    num_threads: int


class WalsBackend(ABC):
    """Runs the half-sweeps of one fit on a device.

    A backend owns the factors while it runs: :meth:`half_sweep` updates one
    side in place and returns the loss at the new point, :meth:`loss` returns
    the loss of the current factors, :meth:`factors` copies both to numpy.
    """

    def __init__(self, problem: WalsProblem) -> None:
        self.problem = problem

    @abstractmethod
    def half_sweep(self, side: str) -> LossTerms:
        """Solve the ``"users"`` or ``"items"`` factors with the other fixed."""

    @abstractmethod
    def loss(self) -> LossTerms:
        """The loss of the current factors."""

    @abstractmethod
    def factors(self) -> tuple[np.ndarray, np.ndarray]:
        """(user factors, item factors), float32 numpy arrays."""


class CpuBackend(WalsBackend):
    """The Rust core: one call per half-sweep, the GIL released while it runs.
    Results are bit-identical for any ``num_threads``."""

    def __init__(self, problem: WalsProblem) -> None:
        super().__init__(problem)
        self.u = np.ascontiguousarray(problem.user_factors, dtype=np.float32)
        self.v = np.ascontiguousarray(problem.item_factors, dtype=np.float32)

    def _common(self) -> dict[str, Any]:
        p = self.problem
        return {
            "unobserved_weight": p.unobserved_weight,
            "regularization": p.regularization,
            "reg_scaling": p.regularization_scaling,
            "num_threads": p.num_threads,
        }

    def half_sweep(self, side: str) -> LossTerms:
        p = self.problem
        if side == "users":
            csr, n_cols, fixed, solve = p.by_user, p.n_items, self.v, self.u
            solved_w, fixed_w = p.row_weights, p.col_weights
        elif side == "items":
            csr, n_cols, fixed, solve = p.by_item, p.n_users, self.u, self.v
            solved_w, fixed_w = p.col_weights, p.row_weights
        else:
            raise InvalidParameterError(f"side must be 'users' or 'items', got {side!r}")
        terms = _core.wals_half_sweep(
            *csr,
            n_cols,
            fixed,
            solve,
            solved_weights=solved_w,
            fixed_weights=fixed_w,
            solver=p.solver,
            cg_steps=p.cg_steps,
            **self._common(),
        )
        return LossTerms(*terms)

    def loss(self) -> LossTerms:
        p = self.problem
        terms = _core.wals_loss(
            *p.by_user,
            p.n_items,
            self.u,
            self.v,
            row_weights=p.row_weights,
            col_weights=p.col_weights,
            **self._common(),
        )
        return LossTerms(*terms)

    def factors(self) -> tuple[np.ndarray, np.ndarray]:
        return self.u, self.v


def _gpu_backend(problem: WalsProblem) -> WalsBackend:
    from ..gpu.wals_backend import gpu_backend  # lazy: the GPU backend builds on this module

    return gpu_backend(problem)


_BACKENDS: dict[str, Callable[[WalsProblem], WalsBackend]] = {
    "cpu": CpuBackend,
    "gpu": _gpu_backend,
}


def register_backend(device: str, factory: Callable[[WalsProblem], WalsBackend]) -> None:
    """Make ``WALS(device=device)`` run on ``factory(problem)`` (``device`` is
    ``"cpu"`` or ``"gpu"``, as :func:`embspace.backend.resolve_device` names it;
    ``"gpu"`` is :mod:`embspace.gpu.wals_backend` by default)."""
    if device not in ("cpu", "gpu"):
        raise InvalidParameterError(f"device must be 'cpu' or 'gpu', got {device!r}")
    _BACKENDS[device] = factory


def _backend_for(device: str) -> Callable[[WalsProblem], WalsBackend]:
    resolved = module_for(device)[0]
    factory = _BACKENDS.get(resolved)
    if factory is None:
        if device == "auto":
            return _BACKENDS["cpu"]
        raise DeviceUnavailableError(
            f"WALS has no {resolved.upper()} backend in this build; use device='cpu'"
        )
    return factory


_FITTED = (
    "user_factors_",
    "item_factors_",
    "user_embeddings_",
    "item_embeddings_",
    "loss_history_",
    "loss_",
    "n_iter_",
    "fit_time_",
    "seed_",
    "interrupted_",
)


class WALS(FittedAttributes, BaseEstimator):
    """Weighted alternating least squares with TensorFlow ``WALSModel`` semantics.

    The defaults reproduce the reference notebook (Google's WALS sample):
    10 factors, unobserved weight 0.01, regularization 0.07, 20 iterations, row
    weights 1 and column weights ``C_j = n_j ** -0.08``.

    Parameters
    ----------
    factors : int
        Dimension ``k`` of the embeddings, at most ``min(n_users, n_items)``.
    unobserved_weight : float
        ``w0 >= 0``, the weight of every unobserved (user, item) cell.
    regularization : float
        ``lambda >= 0``.
    iterations : int
        Number of iterations (>= 1); each is a user and an item half-sweep.
    row_weights : None, "none" or array of n_users floats
        ``R`` (ones by default); see :mod:`embspace.factorization.weights`.
    col_weights : None, "none", "log", "linear" or array of n_items floats
        ``C``: ``"log"`` is ``n_j ** -col_weight_exponent``, ``"linear"`` is
        ``col_weight_factor / n_j``.
    col_weight_exponent, col_weight_factor : float
        Parameters of the ``"log"`` and ``"linear"`` column weights.
    solver : "cholesky" or "cg"
        Exact solve of each row's normal equations (default), or ``cg_steps``
        conjugate-gradient steps warm-started from the current factor.
        Both raise :class:`~embspace.errors.NumericalError` on a singular
        row system (possible only with ``regularization=0``). On an
        ill-conditioned problem ``"cg"`` can raise the loss; ``fit`` warns.
    cg_steps : int
        Steps of the ``"cg"`` solver.
    regularization_scaling : "none" or "count"
        ``"count"`` scales lambda by each row's number of ratings (Spark ALS).
    init_scale : float or None
        Standard deviation (> 0) of the normal initialisation; None means
        ``1 / sqrt(factors)``. (TensorFlow's ``WALSModel`` draws from N(0, 1),
        which is ``init_scale=1.0``.) With the exact solver the user factors are
        solved first, so only the item factors' starting point matters.
    random_state : int, numpy.random.Generator or None
        Seed of the initialisation; None draws a fresh seed (kept in ``seed_``).
    num_threads : int or None
        Threads of the CPU backend; None uses every core. Results do not
        depend on it.
    device : "cpu", "gpu" or "auto"
        Where to train; "auto" uses a GPU backend when one is available.

    Attributes
    ----------
    user_factors_, item_factors_ : ndarray, float32, (n_users, k) / (n_items, k)
    user_embeddings_, item_embeddings_ : Embeddings
        The factors keyed like ``Ratings.user_keys`` / ``Ratings.item_keys``,
        with the ids and a metadata dict (estimator, parameters, seed, data
        fingerprint, final loss).
    loss_history_ : list of float
        The loss of the starting point, then after every half-sweep
        (``1 + 2 * n_iter_`` values).
    loss_ : float
        The final loss.
    n_iter_ : int
        Completed iterations.
    fit_time_ : float
        Seconds spent in :meth:`fit`.
    seed_ : int or None
        The seed actually used (None when ``random_state`` is a Generator).
    interrupted_ : bool
        True when a KeyboardInterrupt stopped the fit (see :meth:`fit`).
    """

    _estimator_name: ClassVar[str] = "WALS"
    _fitted = _FITTED

    def __init__(
        self,
        factors: int = 10,
        unobserved_weight: float = 0.01,
        regularization: float = 0.07,
        iterations: int = 20,
        row_weights: Any = None,
        col_weights: Any = "log",
        col_weight_exponent: float = 0.08,
        col_weight_factor: float = 130.0,
        solver: str = "cholesky",
        cg_steps: int = 3,
        regularization_scaling: str = "none",
        init_scale: float | None = None,
        random_state: int | np.random.Generator | None = None,
        num_threads: int | None = None,
        device: str = "cpu",
    ) -> None:
        self.factors = factors
        self.unobserved_weight = unobserved_weight
        self.regularization = regularization
        self.iterations = iterations
        self.row_weights = row_weights
        self.col_weights = col_weights
        self.col_weight_exponent = col_weight_exponent
        self.col_weight_factor = col_weight_factor
        self.solver = solver
        self.cg_steps = cg_steps
        self.regularization_scaling = regularization_scaling
        self.init_scale = init_scale
        self.random_state = random_state
        self.num_threads = num_threads
        self.device = device

    # ------------------------------------------------------------------ checks
    def _problem(self, ratings: Ratings, rng: np.random.Generator) -> WalsProblem:
        k = check_int(self.factors, "factors", minimum=1)
        limit = min(ratings.n_users, ratings.n_items)
        if k > limit:
            raise InvalidParameterError(
                f"factors={k} exceeds min(n_users, n_items) = {limit} of the "
                f"{ratings.n_users} x {ratings.n_items} ratings"
            )
        w0 = _nonnegative(self.unobserved_weight, "unobserved_weight")
        lam = _nonnegative(self.regularization, "regularization")
        if self.solver not in SOLVERS:
            raise InvalidParameterError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        steps = check_int(self.cg_steps, "cg_steps", minimum=1)
        if self.regularization_scaling not in REG_SCALINGS:
            raise InvalidParameterError(
                f"regularization_scaling must be one of {REG_SCALINGS}, "
                f"got {self.regularization_scaling!r}"
            )
        threads = check_threads(self.num_threads)
        scale = 1.0 / np.sqrt(k) if self.init_scale is None else self.init_scale
        # a zero scale starts (and, both sides being zero, stays) at U = V = 0
        scale = check_number(scale, "init_scale", low=0.0, low_open=True)
        by_user = ratings.csr_arrays("user")
        by_item = ratings.csr_arrays("item")
        item_counts = np.diff(by_item[0])
        rw = make_row_weights(self.row_weights, ratings.n_users)
        cw = make_col_weights(
            self.col_weights,
            item_counts,
            exponent=self.col_weight_exponent,
            factor=self.col_weight_factor,
        )
        u0, v0 = initial_factors(ratings.n_users, ratings.n_items, k, scale, rng)
        return WalsProblem(
            by_user=by_user,
            by_item=by_item,
            n_users=ratings.n_users,
            n_items=ratings.n_items,
            user_factors=u0,
            item_factors=v0,
            unobserved_weight=w0,
            regularization=lam,
            row_weights=rw,
            col_weights=cw,
            solver=self.solver,
            cg_steps=steps,
            regularization_scaling=self.regularization_scaling,
            num_threads=threads,
        )

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        X: Ratings | Any,
        callback: Callable[[int, float, float], Any] | None = None,
        progress: bool = True,
    ) -> WALS:
        """Train on ``X`` (a :class:`~embspace.Ratings` or any scipy sparse
        users x items matrix, whose rows and columns are then keyed 0..n-1).

        After every iteration ``callback(iteration, elapsed_seconds, loss)`` is
        called (iteration counts from 1) and the progress bar (``progress``,
        on stderr) shows the loss.

        Ctrl-C is noticed when the running half-sweep returns: the estimator
        then keeps the factors of the last completed half-sweep (fitted
        attributes set, ``interrupted_ = True``, ``n_iter_`` the completed
        iterations) and the KeyboardInterrupt propagates. Any other error
        leaves the estimator unfitted.
        """
        t0 = time.perf_counter()
        ratings = as_ratings(X)
        iterations = check_int(self.iterations, "iterations", minimum=1)
        rng, seed = check_seed(self.random_state)
        factory = _backend_for(self.device)
        problem = self._problem(ratings, rng)
        backend = factory(problem)
        history = [backend.loss().total]
        done = 0
        interrupted = False
        bar = _progress_bar(iterations, progress)
        try:
            for it in range(1, iterations + 1):
                history.append(backend.half_sweep("users").total)
                history.append(backend.half_sweep("items").total)
                _warn_on_rise(history, it, self.solver)
                done = it
                bar.update(1)
                bar.set_postfix(loss=f"{history[-1]:.6g}", refresh=False)
                if callback is not None:
                    callback(it, time.perf_counter() - t0, history[-1])
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            bar.close()
            if interrupted:
                self._record(ratings, backend, history, done, t0, seed, interrupted=True)
        self._record(ratings, backend, history, done, t0, seed, interrupted=False)
        return self

    def _record(
        self,
        ratings: Ratings,
        backend: WalsBackend,
        history: list[float],
        done: int,
        t0: float,
        seed: int | None,
        *,
        interrupted: bool,
    ) -> None:
        u, v = backend.factors()
        u = np.ascontiguousarray(u, dtype=np.float32)
        v = np.ascontiguousarray(v, dtype=np.float32)
        meta = fitted_metadata(self, ratings, seed)
        meta.update(loss=history[-1], n_iter=done, interrupted=interrupted)
        self.user_factors_ = u
        self.item_factors_ = v
        self.user_embeddings_ = Embeddings(
            ratings.user_keys, u, ids=ratings.user_ids, metadata={**meta, "side": "users"}
        )
        self.item_embeddings_ = Embeddings(
            ratings.item_keys, v, ids=ratings.item_ids, metadata={**meta, "side": "items"}
        )
        self.loss_history_ = list(history)
        self.loss_ = history[-1]
        self.n_iter_ = done
        self.seed_ = seed
        self.interrupted_ = interrupted
        self.fit_time_ = time.perf_counter() - t0


#: A half-sweep raises the loss when it exceeds the previous value by more
#: than this fraction of it plus :data:`_RISE_ATOL` times the starting loss
#: (rounding noise of a loss near zero is not a rise).
_RISE_RTOL = 1e-4
_RISE_ATOL = 1e-7


def _first_rise(history: list[float]) -> int | None:
    """The index of the first loss in ``history`` that rose past the tolerance."""
    floor = _RISE_ATOL * abs(history[0])
    for t in range(1, len(history)):
        if history[t] > history[t - 1] + _RISE_RTOL * abs(history[t - 1]) + floor:
            return t
    return None


def _warn_on_rise(history: list[float], iteration: int, solver: str) -> None:
    """Warn, once per fit, when a half-sweep of ``iteration`` (the last two
    entries of ``history``) raised the loss."""
    t = _first_rise(history)
    if t is None or t < len(history) - 2:
        return
    side = "users" if t == len(history) - 2 else "items"
    why = (
        "the conjugate-gradient steps work in float32 and cannot resolve rows whose "
        "normal equations are ill-conditioned; use solver='cholesky' or a larger regularization"
        if solver == "cg"
        else "float32 rounding dominates this problem (very large ratings or almost no "
        "regularization); rescale the ratings or raise the regularization"
    )
    warnings.warn(
        f"WALS loss rose from {history[t - 1]:.6g} to {history[t]:.6g} in the {side} "
        f"half-sweep of iteration {iteration}: {why}",
        EmbspaceWarning,
        stacklevel=3,
    )


def _nonnegative(value: Any, name: str) -> float:
    return check_number(value, name, low=0.0)


def _progress_bar(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="WALS", unit="it", disable=not enabled, leave=False)
