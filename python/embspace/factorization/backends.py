"""The contract between the WALS estimator and the devices it trains on.

:class:`WalsProblem` is everything one fit needs (arrays on the host),
:class:`WalsBackend` runs its half-sweeps on one device and returns
:class:`LossTerms`. Backends live in :data:`WALS_BACKENDS`, one per device:
the Rust core (:mod:`.wals_cpu`) serves ``"cpu"`` and the array-module code
(:mod:`.wals_gpu`) serves ``"gpu"``; each registers itself here, and
:func:`register_backend` plugs in another.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .._registry import DeviceRegistry

__all__ = [
    "WALS_BACKENDS",
    "LossTerms",
    "WalsBackend",
    "WalsProblem",
    "register_backend",
]


@dataclass(frozen=True)
class LossTerms:
    """The training loss by term (see the module docstring)."""

    observed: float
    unobserved: float
    regularization: float

    @property
    def total(self) -> float:
        return self.observed + self.unobserved + self.regularization


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

    A backend owns the factors while it runs: :meth:`start` returns the loss
    of the starting factors (called once, before the first half-sweep),
    :meth:`half_sweep` updates one side and returns the loss at the new point,
    :meth:`loss` returns the loss of the current factors, :meth:`factors`
    copies both to numpy, and :meth:`checkpoint` keeps the current factors
    aside (what an interrupted fit reports). A fit calls :meth:`start_total`
    and :meth:`half_sweep_total`, which return only the total and default to
    the terms' sum; a backend overrides them where the total costs less.
    """

    def __init__(self, problem: WalsProblem) -> None:
        self.problem = problem

    @abstractmethod
    def half_sweep(self, side: str) -> LossTerms:
        """Solve the ``"users"`` or ``"items"`` factors with the other fixed."""

    @abstractmethod
    def loss(self) -> LossTerms:
        """The loss of the current factors."""

    def start(self) -> LossTerms:
        """The loss of the starting factors; :meth:`WALS.fit
        <embspace.factorization.WALS.fit>` calls it once, before its first
        half-sweep, which is ``half_sweep("users")``. The default is
        :meth:`loss`. A backend may instead compute that loss together with
        the first users half-sweep (one pass over the ratings instead of
        two) and return the half-sweep's result from the next
        ``half_sweep("users")``; until then :meth:`factors` and
        :meth:`checkpoint` still show the starting factors."""
        return self.loss()

    def start_total(self) -> float:
        """:meth:`start`, returning only the total (what :meth:`WALS.fit
        <embspace.factorization.WALS.fit>` records). The default is
        ``start().total``; a backend may compute the total more cheaply than
        its terms."""
        return self.start().total

    def half_sweep_total(self, side: str) -> float:
        """:meth:`half_sweep`, returning only the total of the loss at the new
        point (what :meth:`WALS.fit <embspace.factorization.WALS.fit>`
        records). The default is ``half_sweep(side).total``; a backend may
        compute the total more cheaply than its terms."""
        return self.half_sweep(side).total

    @abstractmethod
    def factors(self) -> tuple[np.ndarray, np.ndarray]:
        """(user factors, item factors), float32 numpy arrays."""

    def checkpoint(self) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
        """Keep the current factors, unchanged by later (or interrupted)
        half-sweeps, and return a function that gives them as float32 numpy
        arrays. The default copies :meth:`factors` now; a backend whose
        half-sweeps never write into the arrays they replace, or that can
        copy on its device, overrides this."""
        u, v = self.factors()
        kept = (np.array(u, dtype=np.float32), np.array(v, dtype=np.float32))
        return lambda: kept


#: The WALS backend of each device: a factory ``problem -> WalsBackend``.
WALS_BACKENDS: DeviceRegistry[Callable[[WalsProblem], WalsBackend]] = DeviceRegistry("WALS backend")


def register_backend(device: str, factory: Callable[[WalsProblem], WalsBackend]) -> None:
    """Make ``WALS(device=device)`` run on ``factory(problem)`` (``device`` is
    ``"cpu"`` or ``"gpu"``, as :func:`embspace.device.resolve_device` names it;
    it replaces the built-in backend of that device)."""
    WALS_BACKENDS.register(device, factory)
