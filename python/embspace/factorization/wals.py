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
warm-started steps cannot shrink the poorly determined directions;
:meth:`WALS.fit` then warns (:class:`~embspace.errors.EmbspaceWarning`) instead
of passing it by.

Convergence: with ``tol`` set, the fit stops after the first iteration whose
relative loss decrease ``(L_{t-1} - L_t) / L_{t-1}`` (``L_t`` the loss after
iteration ``t``, ``L_0`` that of the starting point) is below ``tol``, and
``converged_`` says whether that happened before the ``iterations`` cap. The
test runs in the shared loop of :meth:`WALS.fit`, so every backend stops at the
same iteration, and a fit stopped at ``n_iter_`` has exactly the factors of a
fit with ``iterations=n_iter_`` and no ``tol``. On the CPU the recorded losses
come from each row's normal equations (see ``loss_history_``), exact to a few
``1e-7`` of ``sum W a^2`` plus the loss, so a ``tol`` below about ``1e-6``
would compare rounding.

The work is done by the backend of the device
(:mod:`.backends`: the Rust core on the CPU, the array-module code on a GPU).
Every backend starts from :func:`initial_factors` (the same starting point on
every device for a seed) and the weights of :mod:`.weights`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator

from .._params import check_number
from ..embeddings import Embeddings
from ..errors import EmbspaceWarning, InvalidParameterError
from ..ratings import Ratings
from ._common import (
    FittedAttributes,
    as_ratings,
    check_int,
    check_seed,
    check_threads,
    fitted_metadata,
)
from .aligned import line_aligned_empty
from .backends import WALS_BACKENDS, LossTerms, WalsBackend, WalsProblem, register_backend
from .weights import col_weights as make_col_weights
from .weights import row_weights as make_row_weights

__all__ = [
    "SOLVERS",
    "WALS",
    "LossTerms",
    "WalsBackend",
    "WalsProblem",
    "initial_factors",
    "register_backend",
]

#: Accepted values of ``solver``.
SOLVERS = ("cholesky", "cg")
#: Accepted values of ``regularization_scaling``.
REG_SCALINGS = ("none", "count")


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
    out = line_aligned_empty((n, k))
    step = max(1, (1 << 16) // max(k, 1))
    for start in range(0, n, step):
        stop = min(n, start + step)
        out[start:stop] = rng.normal(0.0, scale, size=(stop - start, k))
    return out


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
    "converged_",
)


class WALS(FittedAttributes, BaseEstimator):
    """Weighted alternating least squares with TensorFlow ``WALSModel`` semantics.

    The defaults reproduce the reference notebook: 10 factors (the notebook's
    choice; Google's WALS sample, whose training code the notebook copied,
    defaults to 5 latent factors), and the sample's other defaults: unobserved
    weight 0.01, regularization 0.07, 20 iterations, row weights 1 and column
    weights ``C_j = n_j ** -0.08``. No convergence test by default
    (``tol=None``), so a default fit runs exactly those 20 iterations.

    Parameters
    ----------
    factors : int
        Dimension ``k`` of the embeddings, at most ``min(n_users, n_items)``.
    unobserved_weight : float
        ``w0 >= 0``, the weight of every unobserved (user, item) cell.
    regularization : float
        ``lambda >= 0``.
    iterations : int
        The number of iterations (>= 1), or their cap when ``tol`` is set;
        each is a user and an item half-sweep.
    tol : float or None
        Relative loss decrease below which the fit stops: after iteration
        ``t``, stop when ``(L_{t-1} - L_t) / L_{t-1} < tol`` (a rise, possible
        only from float32 rounding at the optimum, also stops it). ``None``
        (default) or ``0`` never stops early: the fit runs exactly
        ``iterations`` iterations, as the reference notebook did. Typical
        values: ``1e-4`` to ``1e-6``. A finite number ``>= 0``.
    row_weights : None, "none" or array of n_users floats
        ``R``. ``None`` (the default) or ``"none"`` means all ones, so an
        observed cell weighs ``w0 + C_j``. This is **not** TensorFlow's
        ``None``: in ``WALSModel``, ``row_weights=None`` (with
        ``col_weights=None``) selects its ALS mode, where every cell, observed
        or not, weighs ``w0``; here that mode is
        ``col_weights=numpy.zeros(n_items)``. TensorFlow's default
        (``row_weights=1``) is this ``None``. See
        :mod:`embspace.factorization.weights`.
    col_weights : None, "none", "log", "linear" or array of n_items floats
        ``C``: ``"log"`` is ``n_j ** -col_weight_exponent``, ``"linear"`` is
        ``col_weight_factor / n_j``; ``None`` or ``"none"`` all ones (as for
        ``row_weights``, not TensorFlow's ALS mode).
    col_weight_exponent, col_weight_factor : float
        Parameters of the ``"log"`` and ``"linear"`` column weights.
    solver : "cholesky" or "cg"
        Exact solve of each row's normal equations (default), or ``cg_steps``
        conjugate-gradient steps warm-started from the current factor. With
        ``regularization > 0`` not scaled by count, every row's system shares
        ``unobserved_weight * V^T V + regularization * I``, and the steps are
        preconditioned by it (on the fixed factor whitened once per
        half-sweep): a row whose ratings add a term of rank ``r`` is solved
        exactly in ``r + 1`` steps. On the synthetic ML-20M preset at k = 64,
        three steps end 8 iterations 3.8e-5 (relative) above the exact
        solver's loss, where the plain iteration ended 3.3e-3 above it; an
        iteration takes 0.58-0.63x the exact solve's time at k = 64 and
        0.40-0.46x at k = 128 (README, Speed), so at k >= 64 ``"cg"`` is the faster
        way to nearly the same loss.
        The exact solve takes a row with fewer ratings than ``factors``
        (``factors >= 32``, ``regularization > 0`` and not scaled by count)
        in the space of its ratings (Woodbury identity): the same minimiser
        at less cost, rounded differently. Both raise :class:`~embspace.errors.NumericalError` on a singular
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
        Threads of the CPU backend: None (every core) or ``1 <= num_threads
        <= embspace._threads.max_threads()``. Results do not depend on it.
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
        (``1 + 2 * n_iter_`` values). On the CPU each row's loss is taken
        from the normal equations its solve formed (``c - 2 b.u + u^T A u``),
        with no pass over the ratings after the solve. ``A`` and ``b`` are
        summed in float32 and cancel down to the loss from ``sum W a^2``, so
        a value is exact to a few ``1e-7`` of ``sum W a^2`` plus the loss
        (at most 1.5e-7 measured; on the ML-20M preset at k = 10 the history
        is within 2.2e-7 of the loss summed over the ratings by term). A row
        the model explains almost exactly (its loss below 1/32 of ``c + u^T A
        u``, where the difference would be rounding) sums its ratings
        instead, so a near-exact fit keeps an exact, non-negative loss.
    loss_ : float
        The final loss.
    n_iter_ : int
        Completed iterations (at most ``iterations``; fewer when ``tol`` stopped
        the fit or Ctrl-C interrupted it).
    converged_ : bool
        True when ``tol`` stopped the fit: the relative loss decrease of
        iteration ``n_iter_`` was below ``tol``. False when the fit ran to
        its ``iterations`` cap (always, with ``tol=None`` or ``0``: nothing
        was tested) or was interrupted. (A fit that converges exactly at the
        cap is True.)
    fit_time_ : float
        Seconds spent in :meth:`fit`.
    seed_ : int or None
        The seed actually used (None when ``random_state`` is a Generator).
    interrupted_ : bool
        True when a KeyboardInterrupt stopped the fit; the attributes then
        describe the last completed iteration (see :meth:`fit`).
    """

    _estimator_name: ClassVar[str] = "WALS"
    _fitted = _FITTED

    def __init__(
        self,
        factors: int = 10,
        unobserved_weight: float = 0.01,
        regularization: float = 0.07,
        iterations: int = 20,
        tol: float | None = None,
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
        self.tol = tol
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
        on stderr) shows the loss. With ``tol`` set the fit stops after the
        first iteration whose relative loss decrease is below ``tol``
        (``converged_ = True``, ``n_iter_`` that iteration), the callback
        having seen it; otherwise it runs ``iterations`` iterations.

        Ctrl-C stops the running half-sweep within a row. The estimator then
        keeps the state of the last completed iteration (fitted attributes
        set, ``interrupted_ = True``): the factors after ``n_iter_``
        iterations, ``loss_`` their loss and ``loss_history_`` its
        ``1 + 2 * n_iter_`` values, so ``fit(iterations=n_iter_)`` would give
        the same factors; then the KeyboardInterrupt propagates. Any other
        error (or Ctrl-C before the loss of the starting point is known,
        which on the CPU is computed with the first users half-sweep) leaves
        the estimator unfitted, also when it was fitted before.
        """
        for name in self._fitted:  # a failed refit must not show the previous fit
            self.__dict__.pop(name, None)
        t0 = time.perf_counter()
        ratings = as_ratings(X)
        iterations = check_int(self.iterations, "iterations", minimum=1)
        tol = _tolerance(self.tol)
        rng, seed = check_seed(self.random_state)
        factory = WALS_BACKENDS.for_device(self.device)
        problem = self._problem(ratings, rng)
        backend = factory(problem)
        history = [backend.start_total()]
        kept = backend.checkpoint()
        done = 0
        converged = interrupted = False
        bar = _progress_bar(iterations, progress)
        try:
            for it in range(1, iterations + 1):
                history.append(backend.half_sweep_total("users"))
                history.append(backend.half_sweep_total("items"))
                _warn_on_rise(history, it, self.solver)
                done = it
                kept = backend.checkpoint()
                converged = tol is not None and _relative_decrease(history[-3], history[-1]) < tol
                bar.update(1)
                bar.set_postfix(loss=f"{history[-1]:.6g}", refresh=False)
                if callback is not None:
                    callback(it, time.perf_counter() - t0, history[-1])
                if converged:
                    break
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            bar.close()
            if interrupted:
                # the last completed iteration: its factors, loss and history
                factors, history = kept(), history[: 1 + 2 * done]
                self._record(
                    ratings, factors, history, done, t0, seed, interrupted=True, converged=False
                )
        self._record(
            ratings, backend.factors(), history, done, t0, seed, interrupted=False,
            converged=converged,
        )  # fmt: skip
        return self

    def code_identity(self) -> dict[str, Any] | None:
        """What the cache key adds to the embspace version for this
        estimator (:func:`embspace.cache.code_identity`): nothing for the
        exact solver, whose keys stay those of earlier versions; for
        ``solver="cg"`` the revision of its iteration, which became
        preconditioned (other iterates, not only other rounding), so that a
        cached training of the plain iteration is not taken for one of it."""
        return {"cg": "preconditioned by w0 G + lambda I"} if self.solver == "cg" else None

    def _record(
        self,
        ratings: Ratings,
        factors: tuple[np.ndarray, np.ndarray],
        history: list[float],
        done: int,
        t0: float,
        seed: int | None,
        *,
        interrupted: bool,
        converged: bool,
    ) -> None:
        u, v = factors
        u = np.ascontiguousarray(u, dtype=np.float32)
        v = np.ascontiguousarray(v, dtype=np.float32)
        meta = fitted_metadata(self, ratings, seed)
        meta.update(loss=history[-1], n_iter=done, interrupted=interrupted, converged=converged)
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
        self.converged_ = converged
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


def _relative_decrease(before: float, after: float) -> float:
    """``(before - after) / before``: the relative loss decrease of an
    iteration (negative when the loss rose; 0 when ``before`` is 0, where the
    loss, a sum of non-negative terms, cannot decrease)."""
    return (before - after) / before if before > 0 else 0.0


def _tolerance(tol: Any) -> float | None:
    """``tol`` checked: None (also for 0: no early stop) or a float > 0."""
    if tol is None:
        return None
    value = check_number(tol, "tol", low=0.0)
    return value if value > 0 else None


def _nonnegative(value: Any, name: str) -> float:
    return check_number(value, name, low=0.0)


def _progress_bar(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="WALS", unit="it", disable=not enabled, leave=False)
