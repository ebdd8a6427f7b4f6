"""Weighted alternating least squares with TensorFlow ``WALSModel`` semantics.

Minimises (DESIGN §3)::

    sum_{(i,j) in O} (w0 + R_i C_j) (A_ij - u_i . v_j)^2 + w0 sum_{(i,j) not in O} (u_i . v_j)^2
        + lambda (|U|^2 + |V|^2)

by exact block minimisation: one iteration is a row half-sweep (every user
vector solved with the item factors fixed) then a column half-sweep. Each
half-sweep is one call into the Rust core, which releases the GIL; Python
shows progress and can stop between half-sweeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .. import _core
from ..backend import resolve_device
from ..errors import InvalidParameterError
from ..ratings import Ratings
from ._base import EmbeddingEstimator, as_ratings, check_int, check_nonneg
from .weights import column_weights, row_weights

__all__ = ["SOLVERS", "WALS", "initial_factors", "wals_loss"]

SOLVERS = ("cholesky", "cg")
_REG_SCALINGS = ("none", "count")

Callback = Callable[[int, float, float], Any]


def initial_factors(
    n_users: int, n_items: int, factors: int, random_state: int | None, scale: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The starting factors (float32): independent normal entries with standard
    deviation ``scale`` (default ``1 / sqrt(factors)``), users drawn first, from
    ``numpy.random.default_rng(random_state)``. Every backend starts from these."""
    rng = np.random.default_rng(random_state)
    s = 1.0 / np.sqrt(factors) if scale is None else float(scale)
    u = (rng.standard_normal((n_users, factors)) * s).astype(np.float32)
    v = (rng.standard_normal((n_items, factors)) * s).astype(np.float32)
    return u, v


def wals_loss(
    ratings: Ratings,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    *,
    unobserved_weight: float,
    regularization: float,
    row_weights: np.ndarray | None = None,
    col_weights: np.ndarray | None = None,
    regularization_scaling: str = "none",
    num_threads: int | None = None,
) -> float:
    """The exact WALS training loss of the given factors (computed by the Rust core)."""
    terms = _core.wals_loss(
        *ratings.csr_arrays("user"),
        np.ascontiguousarray(user_factors, dtype=np.float32),
        np.ascontiguousarray(item_factors, dtype=np.float32),
        float(unobserved_weight),
        float(regularization),
        row_weights,
        col_weights,
        regularization_scaling,
        _threads(num_threads),
    )
    return float(sum(terms))


def _threads(num_threads: int | None) -> int:
    if num_threads is None:
        return 0
    return check_int(num_threads, "num_threads", 1)


class WALS(EmbeddingEstimator):
    """Weighted ALS embeddings of users and items.

    Parameters
    ----------
    factors : int
        Embedding dimension k (>= 1, at most min(n_users, n_items)).
    unobserved_weight : float
        w0 >= 0, the weight of every unobserved entry (the notebook's default 0.01).
    regularization : float
        lambda >= 0 on |U|^2 + |V|^2 (not scaled by counts unless
        ``regularization_scaling="count"``, Spark/Rendle style lambda * n_i).
    iterations : int
        Number of iterations (row half-sweep + column half-sweep each).
    row_weights : None, "log", "linear" or array (n_users,)
        R; None means all ones (the notebook).
    col_weights : None, "log", "linear" or array (n_items,)
        C; "log" is C_j = n_j^(-col_weight_exponent), "linear" C_j =
        col_weight_factor / n_j, with n_j item j's number of ratings (0 for unrated).
    col_weight_exponent, col_weight_factor : float
        Parameters of the named weightings (also used for named row weights).
    solver : "cholesky" or "cg"
        Exact Cholesky solve per row, or ``cg_steps`` steps of conjugate
        gradient warm-started from the current factors (approximate, for large k).
    init_scale : float or None
        Standard deviation of the initial factors (default 1 / sqrt(k)).
    random_state : int or None
        Seed of the initial factors; results are bit-identical for a seed
        whatever ``num_threads``.
    num_threads : int or None
        Threads of the Rust core (None: all cores).
    device : "cpu", "gpu" or "auto"
        Where to train.

    Attributes
    ----------
    user_factors_, item_factors_ : ndarray (n_users, k), (n_items, k), float32
    user_embeddings_, item_embeddings_ : Embeddings keyed by ``ratings.user_keys`` / ``item_keys``
    loss_history_ : list of float
        The loss before training, then after every iteration (length iterations + 1).
    half_sweep_losses_ : list of float
        The loss before training, then after every half-sweep (length 2 iterations + 1);
        it never increases.
    n_iter_ : int
    fit_time_ : float, seconds
    """

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
        random_state: int | None = None,
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
    def _validated(self, ratings: Ratings) -> dict[str, Any]:
        k = check_int(self.factors, "factors", 1)
        limit = min(ratings.n_users, ratings.n_items)
        if k > limit:
            raise InvalidParameterError(
                f"factors={k} exceeds min(n_users, n_items) = {limit} of the "
                f"{ratings.n_users} x {ratings.n_items} ratings"
            )
        if self.solver not in SOLVERS:
            raise InvalidParameterError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if self.regularization_scaling not in _REG_SCALINGS:
            raise InvalidParameterError(
                f"regularization_scaling must be one of {_REG_SCALINGS}, "
                f"got {self.regularization_scaling!r}"
            )
        if self.init_scale is not None:
            check_nonneg(self.init_scale, "init_scale")
        return {
            "k": k,
            "w0": check_nonneg(self.unobserved_weight, "unobserved_weight"),
            "lam": check_nonneg(self.regularization, "regularization"),
            "iterations": check_int(self.iterations, "iterations", 0),
            "cg_steps": check_int(self.cg_steps, "cg_steps", 1),
            "threads": _threads(self.num_threads),
            "exponent": check_nonneg(self.col_weight_exponent, "col_weight_exponent"),
            "factor": check_nonneg(self.col_weight_factor, "col_weight_factor"),
        }

    def weights(self, ratings: Ratings) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(R, C): the row and column weights this estimator uses on ``ratings``
        (None means all ones)."""
        p = self._validated(ratings)
        return (
            row_weights(self.row_weights, ratings.matrix, p["exponent"], p["factor"]),
            column_weights(self.col_weights, ratings.matrix, p["exponent"], p["factor"]),
        )

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, callback: Callback | None = None, progress: bool = True) -> WALS:
        """Train on ``X`` (a :class:`~embspace.Ratings` or a scipy sparse users x
        items matrix). ``callback(iteration, elapsed_seconds, loss)`` runs after
        every iteration; an exception it raises stops training and propagates.
        Ctrl-C stops within one half-sweep; the estimator is then left as it was
        before ``fit`` (no partial fitted attributes). Returns ``self``."""
        ratings = as_ratings(X)
        p = self._validated(ratings)
        device = resolve_device(self.device)
        R, C = self.weights(ratings)
        start = time.perf_counter()
        u, v = initial_factors(
            ratings.n_users, ratings.n_items, p["k"], self.random_state, self.init_scale
        )
        if device == "gpu":  # pragma: no cover - needs a CUDA device
            from ..gpu import fit_wals_gpu

            u, v, losses = fit_wals_gpu(self, ratings, u, v, R, C, p, callback, progress)
        else:
            losses = self._fit_cpu(ratings, u, v, R, C, p, callback, progress)
        self.half_sweep_losses_ = losses
        self.loss_history_ = [losses[0], *losses[2::2]]
        self.n_iter_ = p["iterations"]
        self.fit_time_ = time.perf_counter() - start
        self._set_embeddings(ratings, u, v)
        return self

    def _fit_cpu(
        self,
        ratings: Ratings,
        u: np.ndarray,
        v: np.ndarray,
        R: np.ndarray | None,
        C: np.ndarray | None,
        p: dict[str, Any],
        callback: Callback | None,
        progress: bool,
    ) -> list[float]:
        by_user = ratings.csr_arrays("user")
        by_item = ratings.csr_arrays("item")
        common = {"solver": self.solver, "cg_steps": p["cg_steps"]}
        common["reg_scaling"] = self.regularization_scaling
        common["num_threads"] = p["threads"]
        start = time.perf_counter()
        losses = [
            wals_loss(
                ratings,
                u,
                v,
                unobserved_weight=p["w0"],
                regularization=p["lam"],
                row_weights=R,
                col_weights=C,
                regularization_scaling=self.regularization_scaling,
                num_threads=self.num_threads,
            )
        ]
        bar = tqdm(
            total=p["iterations"],
            desc=f"WALS k={p['k']}",
            unit="it",
            disable=not progress or p["iterations"] == 0,
            leave=False,
            file=None,
        )
        try:
            for it in range(1, p["iterations"] + 1):
                # Row half-sweep: users solved with items fixed (R solved, C fixed).
                terms = _core.wals_half_sweep(*by_user, v, u, p["w0"], p["lam"], R, C, **common)
                losses.append(float(sum(terms)))
                # Column half-sweep: items solved with users fixed.
                terms = _core.wals_half_sweep(*by_item, u, v, p["w0"], p["lam"], C, R, **common)
                losses.append(float(sum(terms)))
                elapsed = time.perf_counter() - start
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.6g}")
                if callback is not None:
                    callback(it, elapsed, losses[-1])
        finally:
            bar.close()
        return losses
