"""One side of the dense measures, prepared once and read by every comparison
of that side.

``cca``, ``cka`` and ``unitmatch`` each start from the same per-side work: the
float64 copy of the n x d vectors, its centred columns, and then an
orthonormal basis (``cca``: a thin QR and an SVD of R), unit-scaled columns
(``unitmatch``) or the norm of the Gram matrix (``cka``). Only the last step
combines the two sides, and it is d x d. A :class:`DenseSide` computes each
per-side part on first use, by the very operations the measures run on a plain
array, and keeps it, so

- one comparison centres each side once for all three measures;
- a caller that compares one embeddings many times (a sweep's run: its floor
  pairs, its pairs with the reference runs, a chance level's 5 shuffles against
  it) hands :func:`~embspace.compare` the same side each time (``dense=``), and
  pays the QR once.

The scores are the same, bit for bit, as from plain arrays (the same
operations on the same values). A side holds up to four float64 n x d arrays
(:attr:`DenseSide.nbytes`); keep it only as long as its comparisons.
"""

from __future__ import annotations

import warnings
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import EmbspaceWarning, InvalidParameterError
from ._base import as_float64, basis_and_rank, centered, check_finite, check_shapes, warn_rank

__all__ = ["DenseSide", "dense_pair", "reads_sides", "takes_sides", "warn_constant_units"]


class DenseSide:
    """The float64 values of one side (n x d, an array of ``xp``, finite) and
    what the dense measures derive from it alone, each computed on first use.

    Make one with :meth:`of` (from the float32 vectors of an
    :class:`~embspace.Embeddings`, say); ``source`` is the array it was made
    from, so that a caller can tell it belongs to the vectors it compares.
    """

    def __init__(self, values: Any, xp: ModuleType = np, source: Any = None) -> None:
        self.values = values
        self.xp = xp
        self.source = values if source is None else source
        self._centered: Any = None
        self._basis: tuple[Any, int] | None = None
        self._units: tuple[Any, int] | None = None
        self._gram: float | None = None

    @classmethod
    def of(
        cls, vectors: Any, xp: ModuleType = np, *, side: str = "A", name: str = "measure"
    ) -> DenseSide:
        """The side of ``vectors`` (n x d), checked as the measures check an
        input (numeric, 2-D, at least one column, finite; errors name it
        ``side`` of ``name``), its float64 values on ``xp``."""
        values = as_float64(vectors, xp, name)
        check_shapes(tuple(values.shape), tuple(values.shape), min_n=1, name=name)
        check_finite(values, xp, side, name)
        return cls(values, xp, source=vectors)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.values.shape[0]), int(self.values.shape[1]))

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays it holds now (the values and what was derived)."""
        arrays = [self.values, self._centered]
        arrays += [None if self._basis is None else self._basis[0]]
        arrays += [None if self._units is None else self._units[0]]
        own = sum(int(a.nbytes) for a in arrays if a is not None)
        return own - (int(self.values.nbytes) if self.values is self.source else 0)

    @property
    def centered(self) -> Any:
        """The values minus their column means."""
        if self._centered is None:
            self._centered = centered(self.values)
        return self._centered

    def basis(self, side: str, name: str) -> tuple[Any, int]:
        """An orthonormal basis of the centred columns and its numerical rank
        (:func:`~embspace.measures._base.orthonormal_basis`; it warns at each
        call when the rank is below d, as a measure would on its own)."""
        if self._basis is None:
            self._basis = basis_and_rank(self.centered, self.xp, side, name)
        warn_rank(self._basis[1], self.shape[1], side, name, stacklevel=4)
        return self._basis

    def unit_columns(self) -> tuple[Any, int]:
        """The centred columns scaled to unit norm (a constant column, of norm
        0, kept as it is) and the number of constant columns."""
        if self._units is None:
            xp = self.xp
            c = self.centered
            norms = xp.sqrt((c * c).sum(axis=0))
            constant = int((norms == 0).sum())
            norms = xp.where(norms == 0, 1.0, norms)
            self._units = (c / norms, constant)
        return self._units

    def gram_norm2(self) -> float:
        """The squared Frobenius norm of ``Ac^T Ac`` (Ac: the centred values)."""
        if self._gram is None:
            c = self.centered
            g = c.T @ c
            self._gram = float((g * g).sum())
        return self._gram


def takes_sides(function: Any) -> Any:
    """Mark a dense measure whose function takes :class:`DenseSide` for ``A``
    and ``B`` (besides arrays): :func:`~embspace.compare` then hands it the
    prepared sides."""
    function.takes_dense_sides = True
    return function


def reads_sides(function: Any) -> bool:
    """Whether ``function`` was marked with :func:`takes_sides`."""
    return bool(getattr(function, "takes_dense_sides", False))


def dense_pair(
    A: Any,
    B: Any,
    xp: ModuleType = np,
    *,
    equal_d: bool = False,
    min_n: int = 2,
    name: str = "measure",
) -> tuple[DenseSide, DenseSide]:
    """``A`` and ``B`` as two :class:`DenseSide`: arrays are checked and
    converted as by :func:`~embspace.measures._base.as_pair`; sides are taken
    as they are (checked when made), with the same checks of their shapes."""
    sides = []
    for X in (A, B):
        if isinstance(X, DenseSide):
            if X.xp is not xp:
                raise InvalidParameterError(f"{name}: a prepared side is not an array of {xp}")
            sides.append(X)
        else:
            sides.append(as_float64(X, xp, name))
    check_shapes(
        tuple(sides[0].shape), tuple(sides[1].shape), equal_d=equal_d, min_n=min_n, name=name
    )
    out = []
    for side, X in zip("AB", sides, strict=True):
        if not isinstance(X, DenseSide):
            check_finite(X, xp, side, name)  # a DenseSide was checked when made
            X = DenseSide(X, xp)
        out.append(X)
    return out[0], out[1]


def warn_constant_units(constant: int, name: str) -> None:
    """Warn that ``constant`` units have no variance (their correlations are 0)."""
    if constant:
        warnings.warn(
            f"{name}: {constant} constant unit(s); their correlations are taken as 0",
            EmbspaceWarning,
            stacklevel=4,
        )
