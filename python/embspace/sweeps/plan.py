"""The plan of a sweep: which runs are trained, which pairs of runs are compared,
and the checks that can be made before any training.

A sweep trains one run per ``(value, seed)``, the reference value's seeds first
(they give the noise floor). A run is named by its :data:`RunKey`
``(value_index, seed)``; a comparison by its :class:`PairKey`:

========================================= ==================================
pair                                      compares (a, b), in this order
========================================= ==================================
``(v, s, s, REFERENCE)``                  reference run of seed s, run (v, s)
``(ref, lo, hi, NOISE)`` with lo < hi     reference runs of seeds lo and hi
``(v, s, s, name)``                       run (v, s), the embeddings ``name``
========================================= ==================================

(the reference run of a seed is compared with itself too: a score of 1, the
row of the reference value). The order matters: not every measure is symmetric
(``unitmatch``). The pairs a run takes part in are fixed by the plan, so what a
sweep still lacks is always known: the runs not trained, and the pairs whose
runs exist but which are not compared yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any, TypeGuard

import numpy as np

from ..errors import InvalidParameterError
from ..jsonio import plain_value
from ..measures import check_measures

__all__ = [
    "NOISE",
    "REFERENCE",
    "PairKey",
    "RunKey",
    "SweepPlan",
    "format_value",
    "is_int",
    "make_plan",
    "run_dimension",
    "same_value",
]

#: The ``against`` label of the seed-paired comparisons with the reference value.
REFERENCE = "reference"
#: The ``against`` label of the noise-floor comparisons (reference seeds with each other).
NOISE = "noise"

#: A run: ``(index of its value in SweepPlan.values, seed)``.
RunKey = tuple[int, int]


@dataclass(frozen=True, order=True)
class PairKey:
    """One comparison of a sweep (see the module docs for what it compares).

    Pairs sort in the order of the tables: by ``against`` group (via
    :meth:`SweepPlan.order`), then value, seed and other seed.
    """

    value_index: int
    seed: int
    other_seed: int
    against: str


def is_int(x: Any) -> TypeGuard[int]:
    """An integer, numpy's included, that is not a bool."""
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def same_value(a: Any, b: Any) -> bool:
    """Equality of two parameter values (0 == 0.0, but True is not 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    try:
        eq = a == b
        return bool(eq) if not isinstance(eq, np.ndarray) else bool(eq.all())
    except Exception:
        return a is b


def format_value(v: Any) -> str:
    """A parameter value for messages and labels (floats in ``%g``)."""
    return f"{v:g}" if isinstance(v, float) else str(v)


def run_dimension(params: Mapping[str, Any]) -> int | None:
    """The dimension d of the embeddings an estimator with ``params`` makes, when
    its parameters say it: an integer ``factors`` (embspace's WALS and SVD).
    None otherwise (then nothing can be checked before training)."""
    d = params.get("factors")
    return int(d) if is_int(d) and d >= 1 else None


@dataclass(frozen=True)
class SweepPlan:
    """Values, seeds and measures of a sweep, checked; the runs and pairs they make.

    ``values`` are distinct (:func:`same_value`), ``seeds`` consecutive
    integers, ``reference_index`` the position of the reference value.
    """

    param: str
    values: list[Any]
    reference_index: int
    seeds: list[int]
    measures: tuple[str, ...]

    @property
    def reference(self) -> Any:
        return self.values[self.reference_index]

    @property
    def n_runs(self) -> int:
        return len(self.values) * len(self.seeds)

    @property
    def runs(self) -> list[RunKey]:
        """Every run in training order: the reference value's seeds first (they
        give the noise floor), then the other values in order."""
        ri = self.reference_index
        order = [ri] + [i for i in range(len(self.values)) if i != ri]
        return [(i, s) for i in order for s in self.seeds]

    def index(self, value: Any) -> int:
        """The position of ``value`` in :attr:`values`."""
        for i, v in enumerate(self.values):
            if same_value(v, value):
                return i
        raise InvalidParameterError(f"{value!r} is not one of the sweep's values {self.values}")

    def pairs_of_run(self, run: RunKey, externals: Iterable[str] = ()) -> list[PairKey]:
        """Every pair the run takes part in, in the order they are computed: its
        comparison with the reference run of its seed; for a reference run also
        the noise-floor pairs with the other seeds and the runs of the other
        values that compare with it; then one pair per external embeddings."""
        vi, seed = run
        ri = self.reference_index
        pairs = [PairKey(vi, seed, seed, REFERENCE)]
        if vi == ri:
            pairs += [
                PairKey(ri, min(seed, other), max(seed, other), NOISE)
                for other in self.seeds
                if other != seed
            ]
            pairs += [PairKey(v, seed, seed, REFERENCE) for v in range(len(self.values)) if v != ri]
        pairs += [PairKey(vi, seed, seed, name) for name in externals]
        return pairs

    def pairs(self, externals: Iterable[str] = ()) -> list[PairKey]:
        """Every pair of the whole sweep, sorted."""
        names = list(externals)
        return sorted({p for run in self.runs for p in self.pairs_of_run(run, names)})

    def sides(self, pair: PairKey) -> tuple[RunKey, RunKey | str]:
        """What ``pair`` compares, in order: two runs, or a run and the name of
        external embeddings."""
        ri = self.reference_index
        if pair.against == REFERENCE:
            return (ri, pair.seed), (pair.value_index, pair.seed)
        if pair.against == NOISE:
            return (ri, pair.seed), (ri, pair.other_seed)
        return (pair.value_index, pair.seed), pair.against

    def order(self, pair: PairKey, externals: Sequence[str]) -> tuple[int, int, int, int]:
        """The sort key of ``pair`` in the tables: the reference group first,
        then the external groups in the order they were added, then the noise."""
        groups = [REFERENCE, *externals]
        g = groups.index(pair.against) if pair.against in groups else len(groups)
        return (g, pair.value_index, pair.seed, pair.other_seed)


def make_plan(
    estimator_params: Mapping[str, Any],
    estimator_name: str,
    param: str,
    values: Sequence[Any],
    reference: Any,
    seeds: int,
    measures: str | Sequence[str],
) -> SweepPlan:
    """Check a sweep's values, seeds and measures, before any training, and plan it.

    ``param`` must be one of ``estimator_params`` (not ``random_state``),
    ``values`` a non-empty sequence of distinct values, ``reference`` one of
    them (None: the first), ``seeds`` an integer >= 1; the seeds are
    ``base .. base + seeds - 1`` with ``base`` the estimator's own integer
    ``random_state`` (else 0). The measures are checked by
    :func:`~embspace.measures.check_measures`, against the dimensions of each
    value's runs and the reference's when the parameters tell them
    (:func:`run_dimension`): sweeping ``factors`` with ``unitmatch`` is refused
    here, not after the first training.
    """
    if not isinstance(param, str) or param not in estimator_params:
        raise InvalidParameterError(
            f"{param!r} is not a parameter of {estimator_name}; "
            f"it has: {', '.join(sorted(estimator_params))}"
        )
    if param == "random_state":
        raise InvalidParameterError(
            "random_state cannot be swept: use seeds= to train several seeds per value"
        )
    if isinstance(values, (str, bytes)):
        raise InvalidParameterError(f"values must be a sequence of values of {param}, not a string")
    try:
        plain = [plain_value(v) for v in values]
    except TypeError:
        raise InvalidParameterError(f"values must be a sequence of values of {param}") from None
    if not plain:
        raise InvalidParameterError("values must not be empty")
    for i, j in combinations(range(len(plain)), 2):
        if same_value(plain[i], plain[j]):
            raise InvalidParameterError(f"value {plain[i]!r} occurs more than once in values")
    reference = plain[0] if reference is None else plain_value(reference)
    matches = [i for i, v in enumerate(plain) if same_value(v, reference)]
    if not matches:
        raise InvalidParameterError(
            f"reference {reference!r} is not among the values {plain}; add it to values"
        )
    if not is_int(seeds) or seeds < 1:
        raise InvalidParameterError(f"seeds must be an integer >= 1, got {seeds!r}")
    if isinstance(measures, str):
        measures = (measures,)
    if isinstance(measures, Sequence) and not measures:
        raise InvalidParameterError("measures must name at least one measure")
    names = check_measures(measures)
    ri = matches[0]
    d_ref = run_dimension({**estimator_params, param: plain[ri]})
    for v in plain:
        d = run_dimension({**estimator_params, param: v})
        if d is not None and d_ref is not None:
            check_measures(names, dims=(d_ref, d))
    own_seed = estimator_params.get("random_state")
    base = int(own_seed) if is_int(own_seed) else 0
    return SweepPlan(
        param=param,
        values=plain,
        reference_index=ri,
        seeds=[base + i for i in range(int(seeds))],
        measures=names,
    )
