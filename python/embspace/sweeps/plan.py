"""The plan of a sweep: which runs are trained, which pairs of runs are compared,
and the checks that can be made before any training.

A sweep trains one run per ``(value, seed)``, every value with the same seeds,
the reference value's first. A run is named by its :data:`RunKey`
``(value_index, seed)``; a comparison by its :class:`PairKey`:

=================================================== ==========================================
pair                                                compares (a, b), in this order
=================================================== ==========================================
``(v, s, o, REFERENCE)``, ``v != ref``, ``o != s``  reference run of seed o, run (v, s)
``(v, s, s, REFERENCE)`` (``pairing="same_seed"``)  reference run of seed s, run (v, s)
``(v, lo, hi, NOISE)``, ``lo < hi``                 runs (v, lo) and (v, hi): the floor of v
``(v, s, s, name)``                                 run (v, s), the external embeddings ``name``
``(v, last, first, REFERENCE, chance=True)``        reference run of the first seed, run (v, last
                                                    seed) with its rows shuffled: chance level
``(v, first, first, name, chance=True)``            run (v, first seed), ``name`` shuffled
=================================================== ==========================================

**Pairing.** Runs that share a seed share their initial factors, so they are not
independent draws of their configurations. The pairs of distinct seeds are
always compared: for a value ``v`` and the reference ``r`` with ``s`` seeds, the
``s (s - 1)`` ordered pairs (reference seed ``o``, seed ``s`` of ``v``) with
``o != s`` and the ``s (s - 1) / 2`` pairs of distinct seeds within each value.
Together they are every pair of distinct seeds among the ``2 s`` runs of ``v``
and ``r``: the matrix the permutation test reads (:mod:`.statistics`). With
``pairing="cross"`` (the default) the table's similarity is the mean over the
ordered pairs ``o != s`` (the reference row: over its own pairs of distinct
seeds, its floor); with ``pairing="same_seed"`` the ``s`` pairs ``o = s`` are
compared too and the similarity is their mean (the behaviour before pairing
existed; the reference row is then a run against itself, 1). With one seed there
is no pair of distinct seeds: the pairing is ``"same_seed"``
(:attr:`SweepPlan.effective_pairing`).

The order of a pair's sides matters: not every measure is symmetric
(``unitmatch``); the permutation test takes each pair's score for both orders.
The pairs a run takes part in are fixed by the plan, so what a sweep still lacks
is always known: the runs not trained, and the pairs whose runs exist but which
are not compared yet.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import combinations
from typing import Any, TypeGuard

import numpy as np

from ..errors import EmbspaceWarning, InvalidParameterError
from ..jsonio import plain_value
from ..measures import DEFAULT_MEASURES, MEASURES, check_measures

__all__ = [
    "NOISE",
    "PAIRINGS",
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

#: The ``against`` label of the comparisons with the reference value.
REFERENCE = "reference"
#: The ``against`` label of the floor comparisons (runs of one value, distinct seeds).
NOISE = "noise"
#: How the table's similarity pairs the runs of a value with the reference runs.
PAIRINGS = ("cross", "same_seed")

#: A run: ``(index of its value in SweepPlan.values, seed)``.
RunKey = tuple[int, int]


@dataclass(frozen=True, order=True)
class PairKey:
    """One comparison of a sweep (see the module docs for what it compares).

    ``chance=True`` marks the shuffle-null comparison of a row (its second side
    with the rows shuffled, keys kept). Pairs sort in the order of the tables:
    by ``against`` group (via :meth:`SweepPlan.order`), then value, seed and
    other seed.
    """

    value_index: int
    seed: int
    other_seed: int
    against: str
    chance: bool = False


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


#: Parameters that set the dimension of the embeddings: ``factors`` (embspace's
#: WALS and SVD, implicit), ``n_components`` (scikit-learn's decompositions),
#: ``vector_size`` (gensim).
DIMENSION_PARAMS = ("factors", "n_components", "vector_size")


def run_dimension(params: Mapping[str, Any]) -> int | None:
    """The dimension d of the embeddings an estimator with ``params`` makes, when
    its parameters say it: the first integer among :data:`DIMENSION_PARAMS`.
    None otherwise (then nothing can be checked before training)."""
    for name in DIMENSION_PARAMS:
        d = params.get(name)
        if is_int(d) and d >= 1:
            return int(d)
    return None


@dataclass(frozen=True)
class SweepPlan:
    """Values, seeds, measures and pairing of a sweep, checked; the runs and
    pairs they make.

    ``values`` are distinct (:func:`same_value`), ``seeds`` consecutive
    integers, ``reference_index`` the position of the reference value,
    ``pairing`` one of :data:`PAIRINGS`; ``skipped`` the default measures left
    out because they cannot apply (measure -> why).
    """

    param: str
    values: list[Any]
    reference_index: int
    seeds: list[int]
    measures: tuple[str, ...]
    pairing: str = "cross"
    skipped: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def reference(self) -> Any:
        return self.values[self.reference_index]

    @property
    def n_runs(self) -> int:
        return len(self.values) * len(self.seeds)

    @property
    def effective_pairing(self) -> str:
        """:attr:`pairing`, except ``"same_seed"`` with one seed (there is no
        pair of distinct seeds)."""
        return self.pairing if len(self.seeds) > 1 else "same_seed"

    @property
    def runs(self) -> list[RunKey]:
        """Every run in training order: the reference value's seeds first, then
        the other values in order."""
        ri = self.reference_index
        order = [ri] + [i for i in range(len(self.values)) if i != ri]
        return [(i, s) for i in order for s in self.seeds]

    def index(self, value: Any) -> int:
        """The position of ``value`` in :attr:`values`."""
        for i, v in enumerate(self.values):
            if same_value(v, value):
                return i
        raise InvalidParameterError(f"{value!r} is not one of the sweep's values {self.values}")

    @cached_property
    def _internal_pairs(self) -> dict[RunKey, list[PairKey]]:
        """run -> the pairs between runs (no external embeddings) it takes part in."""
        ri = self.reference_index
        seeds = self.seeds
        pairs: list[PairKey] = []
        for vi in range(len(self.values)):
            pairs += [PairKey(vi, lo, hi, NOISE) for lo, hi in combinations(seeds, 2)]
            if vi != ri:
                pairs += [PairKey(vi, s, o, REFERENCE) for s in seeds for o in seeds if o != s]
            if self.effective_pairing == "same_seed":
                pairs += [PairKey(vi, s, s, REFERENCE) for s in seeds]
            pairs.append(PairKey(vi, seeds[-1], seeds[0], REFERENCE, chance=True))
        out: dict[RunKey, list[PairKey]] = {run: [] for run in self.runs}
        for p in sorted(set(pairs)):
            for side in dict.fromkeys(self.sides(p)):
                out[side].append(p)  # type: ignore[index]
        return out

    def pairs_of_run(self, run: RunKey, externals: Iterable[str] = ()) -> list[PairKey]:
        """Every pair the run takes part in, in the order they are computed: the
        pairs between runs (sorted), then one pair per external embeddings, and
        the chance pair of each external group for a run of the first seed."""
        vi, seed = run
        pairs = list(self._internal_pairs[run])
        for name in externals:
            pairs.append(PairKey(vi, seed, seed, name))
            if seed == self.seeds[0]:
                pairs.append(PairKey(vi, seed, seed, name, chance=True))
        return pairs

    def pairs(self, externals: Iterable[str] = ()) -> list[PairKey]:
        """Every pair of the whole sweep, sorted."""
        names = list(externals)
        return sorted({p for run in self.runs for p in self.pairs_of_run(run, names)})

    def sides(self, pair: PairKey) -> tuple[RunKey, RunKey | str]:
        """What ``pair`` compares, in order: two runs, or a run and the name of
        external embeddings (for a chance pair, the second side is the one
        shuffled)."""
        ri = self.reference_index
        if pair.against == REFERENCE:
            return (ri, pair.other_seed), (pair.value_index, pair.seed)
        if pair.against == NOISE:
            return (pair.value_index, pair.seed), (pair.value_index, pair.other_seed)
        return (pair.value_index, pair.seed), pair.against

    def order(self, pair: PairKey, externals: Sequence[str]) -> tuple[int, int, int, int, int]:
        """The sort key of ``pair`` in the tables: the reference group first,
        then the external groups in the order they were added, then the floors;
        chance pairs after the others of their group."""
        groups = [REFERENCE, *externals]
        g = groups.index(pair.against) if pair.against in groups else len(groups)
        return (g, int(pair.chance), pair.value_index, pair.seed, pair.other_seed)


def _applicable(
    names: tuple[str, ...],
    estimator_params: Mapping[str, Any],
    param: str,
    values: list[Any],
    ri: int,
    explicit: bool,
) -> tuple[tuple[str, ...], dict[str, str]]:
    """The measures that apply to every pair of the plan, checked before any
    training: measures named by the caller that cannot apply are refused
    (:class:`~embspace.errors.ShapeMismatchError`), default measures that
    cannot are skipped with a reason."""
    d_ref = run_dimension({**estimator_params, param: values[ri]})
    dims = sorted(
        {d for v in values if (d := run_dimension({**estimator_params, param: v})) is not None}
    )
    if d_ref is None or len(dims) < 2:
        return names, {}
    if explicit:
        for d in dims:
            check_measures(names, dims=(d_ref, d))
        return names, {}
    skipped = {
        n: f"needs the same dimension on both sides; the runs have d = {', '.join(map(str, dims))}"
        for n in names
        if MEASURES[n].needs_equal_d
    }
    kept = tuple(n for n in names if n not in skipped)
    if not kept:
        for d in dims:
            check_measures(names, dims=(d_ref, d))
    return kept, skipped


def make_plan(
    estimator_params: Mapping[str, Any],
    estimator_name: str,
    param: str,
    values: Sequence[Any],
    reference: Any,
    seeds: int,
    measures: str | Sequence[str] | None,
    pairing: str = "cross",
) -> SweepPlan:
    """Check a sweep's values, seeds, measures and pairing, before any training,
    and plan it.

    ``param`` must be one of ``estimator_params`` (not ``random_state``),
    ``values`` a non-empty sequence of distinct values, ``reference`` one of
    them (None: the first), ``seeds`` an integer >= 1; the seeds are
    ``base .. base + seeds - 1`` with ``base`` the estimator's own integer
    ``random_state`` (else 0); ``pairing`` one of :data:`PAIRINGS`. The
    measures are checked by :func:`~embspace.measures.check_measures` against
    the dimensions of the runs when the parameters tell them
    (:func:`run_dimension`): sweeping ``factors`` with ``unitmatch`` named in
    ``measures`` is refused here, not after the first training; with
    ``measures=None`` (the defaults, :data:`~embspace.measures.DEFAULT_MEASURES`)
    the measures that cannot apply are skipped, with an
    :class:`~embspace.errors.EmbspaceWarning` saying which and why
    (:attr:`SweepPlan.skipped`).
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
    if not isinstance(pairing, str) or pairing not in PAIRINGS:
        raise InvalidParameterError(
            f"pairing must be one of {', '.join(map(repr, PAIRINGS))}, got {pairing!r}"
        )
    explicit = measures is not None
    if measures is None:
        measures = DEFAULT_MEASURES
    if isinstance(measures, str):
        measures = (measures,)
    if isinstance(measures, Sequence) and not measures:
        raise InvalidParameterError("measures must name at least one measure")
    names = check_measures(measures)
    ri = matches[0]
    names, skipped = _applicable(names, estimator_params, param, plain, ri, explicit)
    if skipped:
        warnings.warn(
            "; ".join(f"measure {n!r} skipped: it {why}" for n, why in skipped.items()),
            EmbspaceWarning,
            stacklevel=3,
        )
    own_seed = estimator_params.get("random_state")
    base = int(own_seed) if is_int(own_seed) else 0
    return SweepPlan(
        param=param,
        values=plain,
        reference_index=ri,
        seeds=[base + i for i in range(int(seeds))],
        measures=names,
        pairing=pairing,
        skipped=skipped,
    )
