"""``compare``: every requested measure on two embeddings aligned by key."""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import warnings
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from .._params import check_choice, check_int, check_number
from .._threads import check_threads
from ..device import module_for
from ..embeddings import Embeddings, align
from ..errors import EmbspaceWarning, InvalidParameterError, ShapeMismatchError
from ..jsonio import to_jsonable
from ..neighbors import METRICS, NeighborTable
from ._base import MeasureResult
from ._blas import thin_blas
from .chance import CHANCE_PERMUTATIONS, shuffled_table
from .neighborhood import TIE_TOLERANCE, neighbor_tables, sampled_overlap, table_width
from .registry import DEFAULT_MEASURES, MEASURES, Measure, check_measures, get_measure
from .rsa import sample_by_key
from .sides import DenseSide, reads_sides
from .streaming import STREAMED, moments, streamed

__all__ = [
    "AUTO_SAMPLE_ABOVE",
    "AUTO_SAMPLE_SIZE",
    "DEFAULT_MEASURES",
    "INTERVAL_LEVEL",
    "STREAM_ABOVE",
    "Comparison",
    "bootstrap_interval",
    "chance_scores",
    "compare",
    "draw_sample",
    "sample_interval",
]

#: ``compare(..., sample=None)`` (the default) samples the neighbor measures
#: above this many shared entities (and computes them exactly up to it).
AUTO_SAMPLE_ABOVE = 200_000

#: The number of query entities of an automatic sample: a 95% interval of
#: half-width about ``1.96 sigma / 100`` (0.004 to 0.006 for the per-entity
#: Jaccard spreads of 0.2 to 0.3 seen on real and synthetic spaces).
AUTO_SAMPLE_SIZE = 10_000

#: The confidence level of :attr:`Comparison.intervals`.
INTERVAL_LEVEL = 0.95

#: Above this many shared entities, :func:`compare` computes the dense
#: measures on the CPU from streamed moments (:mod:`embspace.measures.streaming`:
#: O(n d + d^2) memory, the same values to float64 rounding).
STREAM_ABOVE = 200_000


def sample_interval(
    values: np.ndarray, population: int, *, level: float = INTERVAL_LEVEL
) -> tuple[float, float]:
    """Confidence interval of the mean of a finite population of ``population``
    per-entity values from ``values``, a simple random sample of them drawn
    without replacement (m = ``len(values)``, 2 <= m <= population).

    Student's t interval with the finite-population correction:
    ``mean +- t_(m-1, (1 + level) / 2) * s / sqrt(m) * sqrt(1 - m / population)``
    (``s``: the sample stdev, ddof = 1), clipped to the range of the values'
    measure [0, 1]. The per-entity values of the neighbor measures are bounded,
    so the mean of m >= a few hundred of them is close to normal (central limit
    theorem) and the coverage is close to ``level``; with m = population the
    interval is the exact mean.
    """
    from scipy.special import stdtrit  # Student's t quantile (lighter than scipy.stats)

    values = np.asarray(values, dtype=np.float64)
    m = values.size
    if values.ndim != 1 or m < 2 or m > population:
        raise InvalidParameterError(
            f"an interval needs 2 <= m <= {population} sampled values, got {values.shape}"
        )
    mean = float(values.mean())
    fpc = max(0.0, 1.0 - m / population)
    half = float(stdtrit(m - 1, 0.5 + level / 2.0)) * float(values.std(ddof=1))
    half *= float(np.sqrt(fpc / m))
    return max(0.0, mean - half), min(1.0, mean + half)


def draw_sample(n: int, m: int, seed: int) -> np.ndarray:
    """The rows (sorted, int64) of ``m`` of ``n`` entities drawn uniformly
    without replacement with ``numpy.random.default_rng(seed)``: the query
    entities of ``compare(..., sample=m, sample_seed=seed)``."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, m, replace=False)).astype(np.int64)


def _check_sample(sample: Any) -> int | None:
    """``sample`` as a number of queries (0: exact; None: automatic)."""
    if sample is None:
        return None
    if sample is False:
        return 0
    if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)):
        raise InvalidParameterError(
            "sample must be a number of query entities (>= 2), 0 or False (exact), "
            f"or None (automatic), got {sample!r}"
        )
    if sample != 0 and sample < 2:
        raise InvalidParameterError(
            f"sample must be at least 2 query entities (0 or False: exact), got {int(sample)}"
        )
    return int(sample)


def bootstrap_interval(
    values: np.ndarray, *, n_boot: int = 1000, level: float = 0.95, random_state: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (entities resampled
    with replacement ``n_boot`` times; deterministic for a ``random_state``)."""
    n_boot = check_int(n_boot, "n_boot", minimum=1)
    level = check_number(level, "level", low=0.0, high=1.0, low_open=True, high_open=True)
    random_state = check_int(random_state, "random_state", minimum=0)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise InvalidParameterError("bootstrap needs a non-empty 1-D array of per-entity values")
    rng = np.random.default_rng(random_state)
    n = values.size
    means = np.empty(n_boot)
    step = max(1, (8 << 20) // n)
    for lo in range(0, n_boot, step):
        m = min(step, n_boot - lo)
        means[lo : lo + m] = values[rng.integers(0, n, size=(m, n))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


class Comparison:
    """The measures of two aligned embeddings.

    Attributes
    ----------
    results : dict[str, MeasureResult]
    scores : dict[str, float]
        Measure name -> headline score.
    details : dict[str, dict]
        Measure name -> everything else it reports (for the neighbor measures,
        among others ``tied_fraction``: the share of entities whose k-NN set
        involves ties, on either side).
    per_entity : pandas.DataFrame
        Indexed by the shared keys, one column per measure with per-entity
        values; with sampled neighbor measures, indexed by the sampled keys
        only (``attrs["sampled"]`` is then True).
    n_shared, n_a, n_b : int
        Shared entities, and entities of each side before alignment.
    intervals : dict[str, tuple[float, float]]
        Neighbor measure -> its 95% confidence interval ``(low, high)``: from the
        sample when the measure was estimated from sampled query entities
        (:func:`sample_interval`), ``(score, score)`` when it was computed
        exactly. Dense measures are always exact and have no entry.
    sample : int or None
        The number of sampled query entities of the neighbor measures, None
        when they are exact.
    sampled_keys : list or None
        The keys of the sampled query entities (in ``a``'s order), None when
        exact; ``per_entity`` then covers these entities only.
    chance : dict[str, float] or None
        With ``compare(..., chance=True)``: measure -> its chance level, the mean
        score of ``a`` against ``b`` with ``b``'s rows shuffled (keys kept)
        over :data:`~embspace.measures.chance.CHANCE_PERMUTATIONS` shuffles
        (see :mod:`embspace.measures.chance`); None otherwise.
    """

    chance: dict[str, float] | None = None

    def __init__(
        self,
        results: Mapping[str, MeasureResult],
        keys: list[Hashable],
        *,
        n_a: int,
        n_b: int,
        k: int,
        metric: str,
        sampled_rows: np.ndarray | None = None,
        intervals: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        self.results = dict(results)
        self.sampled_rows = sampled_rows
        self.intervals = dict(intervals or {})
        self.keys = keys
        self.n_shared = len(keys)
        self.n_a = n_a
        self.n_b = n_b
        self.k = k
        self.metric = metric

    @property
    def scores(self) -> dict[str, float]:
        return {name: r.score for name, r in self.results.items()}

    @property
    def details(self) -> dict[str, dict[str, Any]]:
        return {name: r.details for name, r in self.results.items()}

    @property
    def sample(self) -> int | None:
        return None if self.sampled_rows is None else int(self.sampled_rows.size)

    @property
    def sampled_keys(self) -> list[Hashable] | None:
        if self.sampled_rows is None:
            return None
        return [self.keys[i] for i in self.sampled_rows]

    @property
    def per_entity(self) -> pd.DataFrame:
        keys = self.keys
        columns = {
            name: r.per_entity for name, r in self.results.items() if r.per_entity is not None
        }
        sampled = self.sampled_keys
        if sampled is not None:
            keys = sampled
            columns = {name: v for name, v in columns.items() if len(v) == len(keys)}
        frame = pd.DataFrame(columns, index=pd.Index(keys, tupleize_cols=False, name="key"))
        frame.attrs["sampled"] = sampled is not None
        return frame

    def __getitem__(self, name: str) -> float:
        return self.results[name].score

    def bootstrap(
        self, *, n_boot: int = 1000, level: float = 0.95, random_state: int = 0
    ) -> pd.DataFrame:
        """Bootstrap intervals over entities for each per-entity measure: columns
        measure, score, low, high."""
        rows = []
        for name, r in self.results.items():
            if r.per_entity is not None:
                lo, hi = bootstrap_interval(
                    r.per_entity, n_boot=n_boot, level=level, random_state=random_state
                )
                rows.append({"measure": name, "score": r.score, "low": lo, "high": hi})
        return pd.DataFrame(rows, columns=["measure", "score", "low", "high"])

    def to_frame(self) -> pd.DataFrame:
        """One row per measure: measure, score, stdev (when it has one)."""
        rows = [
            {"measure": name, "score": r.score, "stdev": r.details.get("stdev", np.nan)}
            for name, r in self.results.items()
        ]
        return pd.DataFrame(rows, columns=["measure", "score", "stdev"])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (no per-entity arrays)."""
        out = {
            "n_shared": self.n_shared,
            "n_a": self.n_a,
            "n_b": self.n_b,
            "k": self.k,
            "metric": self.metric,
            "scores": self.scores,
            "details": self.details,
            "sample": self.sample,
            "intervals": {name: list(iv) for name, iv in self.intervals.items()},
        }
        if self.chance is not None:
            out["chance"] = self.chance
        out = to_jsonable(out, finite=True)
        json.dumps(out)  # fail here, not in the caller, if something slipped through
        return out

    def __repr__(self) -> str:
        head = f"<Comparison of {self.n_shared:,} shared entities (A: {self.n_a:,}, B: {self.n_b:,}), k={self.k}, {self.metric}"
        width = max((len(n) for n in self.results), default=0)
        lines = [head]
        for name, r in self.results.items():
            sd = r.details.get("stdev")
            extra = f"  (stdev {sd:.4f})" if isinstance(sd, float) else ""
            if self.sample is not None and name in self.intervals:
                lo, hi = self.intervals[name]
                extra += f"  95% CI [{lo:.4f}, {hi:.4f}] from {self.sample:,} sampled entities"
            lines.append(f"  {name:<{width}}  {r.score:.6f}{extra}")
        return "\n".join(lines) + ">"


def _as_embeddings(x: Any, side: str) -> Embeddings:
    if isinstance(x, Embeddings):
        return x
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise InvalidParameterError(
            f"{side} must be an Embeddings or an n x d array, got {type(x).__name__}"
        )
    return Embeddings(range(arr.shape[0]), arr)


def _accepts(fn: Any) -> frozenset[str]:
    """The options ``fn`` takes by name (read once per hashable function)."""
    try:
        return _accepted_options(fn)
    except TypeError:  # an unhashable callable: read its signature each time
        return _accepted_options.__wrapped__(fn)


@functools.lru_cache(maxsize=256)
def _accepted_options(fn: Any) -> frozenset[str]:
    return frozenset(
        p.name
        for p in inspect.signature(fn).parameters.values()
        # ``tables`` is compare()'s to fill (pass NeighborTable through ``knn=``)
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        and p.name not in ("A", "B", "tables")
    )


def _precomputed_tables(
    knn: Any, ea: Embeddings, eb: Embeddings, aa: Embeddings, bb: Embeddings
) -> tuple[NeighborTable, NeighborTable]:
    """``knn`` checked against the two compared sides: two :class:`NeighborTable`,
    each over the very rows (keys, order and vectors) that are compared."""
    if (
        isinstance(knn, (str, bytes))
        or not isinstance(knn, (tuple, list))
        or len(knn) != 2
        or not all(isinstance(t, NeighborTable) for t in knn)
    ):
        raise InvalidParameterError(
            "knn must be a pair (table_a, table_b) of NeighborTable, one per side, "
            f"got {type(knn).__name__}"
        )
    if aa is not ea or bb is not eb:
        raise ShapeMismatchError(
            "precomputed k-NN tables (knn=) need both sides to hold the same keys in the "
            f"same order (A has {ea.n:,}, B has {eb.n:,}, {aa.n:,} shared): leave knn= out "
            "and compare() computes the tables of the shared entities"
        )
    for side, table, emb in (("a", knn[0], ea), ("b", knn[1], eb)):
        own = table.embeddings
        if own is emb:
            continue
        if own.n != emb.n or own.d != emb.d:
            raise ShapeMismatchError(
                f"knn: the table of {side} covers {own.n:,} x {own.d} embeddings, "
                f"but {side} is {emb.n:,} x {emb.d}"
            )
        if own.keys != emb.keys or not np.array_equal(own.vectors, emb.vectors):
            raise ShapeMismatchError(
                f"knn: the table of {side} is not a table of {side} (other keys or vectors)"
            )
    return knn[0], knn[1]


def _check_dense(dense: Any) -> tuple[DenseSide | None, DenseSide | None]:
    """``dense`` (None or a pair of DenseSide or None) as a pair."""
    if dense is None:
        return (None, None)
    if (
        isinstance(dense, (str, bytes))
        or not isinstance(dense, (tuple, list))
        or len(dense) != 2
        or not all(side is None or isinstance(side, DenseSide) for side in dense)
    ):
        raise InvalidParameterError(
            "dense must be a pair (side_a, side_b) of DenseSide or None, "
            f"got {type(dense).__name__}"
        )
    return dense[0], dense[1]


def _dense_sides(
    dense: tuple[DenseSide | None, DenseSide | None],
    given: tuple[Embeddings, Embeddings],
    aligned: tuple[Embeddings, Embeddings],
    xp: Any,
    name: str,
) -> tuple[DenseSide, DenseSide]:
    """The prepared sides of the two aligned embeddings: those of ``dense``,
    checked (of these vectors, on ``xp``), the others made here."""
    out = []
    for side, prepared, emb, aligned_emb in zip("ab", dense, given, aligned, strict=True):
        if prepared is None:
            out.append(DenseSide.of(aligned_emb.vectors, xp, side=side.upper(), name=name))
            continue
        if aligned_emb is not emb:
            raise ShapeMismatchError(
                "prepared dense sides (dense=) need both sides to hold the same keys in the "
                "same order: leave dense= out and compare() prepares the shared entities"
            )
        if prepared.xp is not xp:
            raise InvalidParameterError(f"dense: the side of {side} is not on the device's arrays")
        source = prepared.source
        if source is not emb.vectors and (
            tuple(np.shape(source)) != emb.vectors.shape
            or not np.array_equal(np.asarray(source), emb.vectors)
        ):
            raise ShapeMismatchError(
                f"dense: the side of {side} is not a side of {side} (other vectors)"
            )
        out.append(prepared)
    return out[0], out[1]


def uses_dense_sides(names: Iterable[str], n: int, xp: Any) -> bool:
    """Whether a comparison of ``n`` entities on ``xp`` hands prepared sides to
    one of the measures ``names`` (not where they are streamed)."""
    if xp is np and n > STREAM_ABOVE:
        return False
    return any(reads_sides(MEASURES[m].function) for m in names)


def compare(
    a: Any,
    b: Any,
    measures: str | Iterable[str] = DEFAULT_MEASURES,
    *,
    k: int = 10,
    metric: str = "cosine",
    num_threads: int | None = None,
    device: str = "cpu",
    knn: tuple[NeighborTable, NeighborTable] | None = None,
    dense: tuple[DenseSide | None, DenseSide | None] | None = None,
    chance: bool = False,
    chance_permutations: int = CHANCE_PERMUTATIONS,
    chance_seed: int = 0,
    sample: int | bool | None = None,
    sample_seed: int = 0,
    **options: Any,
) -> Comparison:
    """Compare two embeddings with the named measures.

    ``a`` and ``b`` are :class:`~embspace.Embeddings` (aligned on their shared
    keys, in ``a``'s order, with an ``EmbspaceWarning`` when either side has keys
    the other lacks; :class:`~embspace.errors.NoSharedKeysError` when none are
    shared) or plain n x d arrays whose rows already correspond.
    ``measures`` are checked by :func:`~embspace.measures.check_measures`
    (including the dimensions of both sides) before anything is computed.

    ``k`` and ``metric`` set the neighbor measures (one k-NN table per side and
    one tie-aware overlap are computed and shared by all of them; their details
    report ``tied_fraction``, the share of entities whose k-NN set depends on
    how ties are broken, see :mod:`embspace.measures.neighborhood`); dense
    measures run on ``device``
    ("cpu", "gpu" or "auto"). Other ``options`` go to the measures: a measure's
    name maps to a dict of its own options (``unitmatch={"absolute": True}``),
    and any other keyword reaches every requested measure that takes it
    (``replacement=False``, ``threshold=0.95``, ``max_k=50``); a keyword no
    requested measure takes is an error.

    ``knn = (table_a, table_b)`` hands in precomputed neighbor tables, so a
    caller that compares one embeddings many times (a sweep) computes its k-NN
    once: each is a :class:`~embspace.NeighborTable` of that side (its
    ``embeddings`` are ``a``/``b`` themselves, or the same keys, order and
    vectors), whose metric every requested neighbor measure must use. The
    neighbor measures then read ``table.knn(K)`` (K: the most neighbors any of
    them needs; a table computes it once and serves smaller k from its cache)
    instead of searching, on the table's own device and threads; the scores are
    those compare() computes without ``knn``. Both sides must hold the same keys
    in the same order (no alignment), else a
    :class:`~embspace.errors.ShapeMismatchError`; anything other than two
    NeighborTable is an :class:`~embspace.errors.InvalidParameterError`.
    Without neighbor measures, ``knn`` is checked and unused.

    ``dense = (side_a, side_b)`` hands in the sides prepared for the dense
    measures (:class:`~embspace.measures.sides.DenseSide`, either may be None:
    made here), so a caller that compares one embeddings many times centres
    and factors it once: each must be made (:meth:`DenseSide.of
    <embspace.measures.sides.DenseSide.of>`) from that side's vectors (the
    same array, or equal values) on the array module of ``device``, and both
    sides must hold the same keys in the same order (else a
    :class:`~embspace.errors.ShapeMismatchError`). The scores are the same,
    bit for bit. Without dense measures it is checked and unused.

    ``chance=True`` also computes each measure's chance level
    (:attr:`Comparison.chance`): the mean score of ``a`` against ``b`` with
    ``b``'s rows shuffled (keys kept), over ``chance_permutations`` shuffles
    drawn with ``numpy.random.default_rng(chance_seed)``; the shuffles read the
    k-NN tables of the comparison relabelled, so the neighbor measures search
    no more than without it (:mod:`embspace.measures.chance`).

    **Millions of entities.** The neighbor measures cost O(n^2 d) exactly;
    ``sample=m`` estimates them from ``m`` query entities drawn uniformly
    without replacement from the n shared ones (row positions in ``a``'s
    order, ``numpy.random.default_rng(sample_seed).choice``, sorted;
    deterministic for a ``sample_seed`` whatever the threads), each with its
    exact k-NN among all n entities and the same tie-aware values as the
    exact computation (:func:`~embspace.measures.neighborhood.sampled_overlap`),
    in O(m n d). The score is the mean over the sampled entities, an unbiased
    estimate of the exact score (the mean over all n), and
    :attr:`Comparison.intervals` holds its 95% confidence interval: Student's t
    interval of the mean of the per-entity values with the finite-population
    correction ``sqrt(1 - m / n)`` (:func:`sample_interval`; its coverage over
    repeated samples is checked in ``tests/test_measures_sampling.py``).
    ``per_entity`` then covers the sampled entities only
    (:attr:`Comparison.sampled_keys`). ``sample=None`` (the default) is
    automatic: :data:`AUTO_SAMPLE_SIZE` (10,000) queries above
    :data:`AUTO_SAMPLE_ABOVE` (200,000) shared entities when ``knn`` is not
    given, exact otherwise; ``sample=0`` or ``False`` is always exact; ``m >= n``
    is exact (its interval is ``(score, score)``). Anything else (a negative
    number, 1, a float, True) is an :class:`~embspace.errors.InvalidParameterError`.
    The seed is ``sample_seed`` (not ``random_state``, which is ``rsa``'s option).
    An explicit ``sample=m`` also sets ``rsa``'s own ``sample`` (the entities
    its distance matrices cover; drawn by key) unless ``rsa={"sample": ...}``
    sets it.
    With ``knn`` tables and a sample, the queries' rows are read from the tables.
    With ``chance=True`` and a sample, each shuffle is a sampled comparison with
    the same queries.

    Dense measures are never sampled: above :data:`STREAM_ABOVE` shared entities
    on the CPU, those of :mod:`embspace.measures.streaming` (all but ``rsa``)
    are computed exactly from moments streamed over row blocks, in
    O(n d + d^2) memory (no float64 copy of a side, no n x n matrix).
    """
    if not isinstance(chance, bool):
        raise InvalidParameterError(f"chance must be True or False, got {chance!r}")
    if chance:
        chance_permutations = check_int(chance_permutations, "chance_permutations", minimum=1)
        chance_seed = check_int(chance_seed, "chance_seed", minimum=0)
    check_threads(num_threads)
    sample = _check_sample(sample)
    sample_seed = check_int(sample_seed, "sample_seed", minimum=0)
    k = check_int(k, "k", minimum=1)
    metric = check_choice(metric, "metric", METRICS)
    names = list(check_measures(measures))
    specs = [get_measure(n) for n in names]
    per_measure: dict[str, dict[str, Any]] = {n: {} for n in names}
    for key, value in options.items():
        if key in per_measure:
            if not isinstance(value, Mapping):
                raise InvalidParameterError(f"options for {key!r} must be a dict, got {value!r}")
            per_measure[key].update(value)
    shared_opts = {key: v for key, v in options.items() if key not in per_measure}
    for key in shared_opts:
        if not any(key in _accepts(s.function) for s in specs):
            raise InvalidParameterError(f"no requested measure takes the option {key!r}")
    for s in specs:
        unknown = set(per_measure[s.name]) - _accepts(s.function)
        if unknown:
            raise InvalidParameterError(f"measure {s.name!r} takes no option(s) {sorted(unknown)}")
    if sample and "rsa" in per_measure:
        # rsa reads a sample of entities too: the same number, unless rsa={"sample": ...}
        per_measure["rsa"].setdefault("sample", sample)
    if "keys" in shared_opts or any("keys" in o for o in per_measure.values()):
        raise InvalidParameterError("'keys' is not an option: the keys are the aligned embeddings'")

    ea, eb = _as_embeddings(a, "a"), _as_embeddings(b, "b")
    aa, bb = align(ea, eb)
    if aa.n < ea.n or aa.n < eb.n:
        warnings.warn(
            f"comparing the {aa.n:,} shared entities (A has {ea.n:,}, B has {eb.n:,})",
            EmbspaceWarning,
            stacklevel=2,
        )
    check_measures(names, dims=(aa.d, bb.d))
    given = None if knn is None else _precomputed_tables(knn, ea, eb, aa, bb)
    neighbor_based = any(s.neighbor_based for s in specs)
    if sample is None:
        sample = AUTO_SAMPLE_SIZE if given is None and aa.n > AUTO_SAMPLE_ABOVE else 0
    rows = None
    if neighbor_based and 0 < sample < aa.n:
        rows = draw_sample(aa.n, sample, sample_seed)
    if chance and given is None and rows is None and neighbor_based:
        metrics = {per_measure[s.name].get("metric", metric) for s in specs if s.neighbor_based}
        if metrics == {metric}:
            # one table per side, shared by the comparison and every shuffle of b
            given = (
                NeighborTable(aa, metric=metric, num_threads=num_threads, device=device),
                NeighborTable(bb, metric=metric, num_threads=num_threads, device=device),
            )

    def options_for(s: Measure) -> dict[str, Any]:
        accepted = _accepts(s.function)
        opts = {key: v for key, v in shared_opts.items() if key in accepted}
        opts.update(per_measure[s.name])
        return opts

    # one tie-aware overlap per metric and tie tolerance (from one k-NN table per
    # side), with as many levels as the most demanding neighbor measure needs,
    # shared by all of them
    need: dict[tuple[str, float], int] = {}
    for s in specs:
        if s.neighbor_based:
            opts = options_for(s)
            m = check_choice(opts.get("metric", metric), f"{s.name}: metric", METRICS)
            kk = check_int(opts.get("max_k") or opts.get("k", k), f"{s.name}: k", minimum=1)
            shared = (m, opts.get("tie_tolerance", TIE_TOLERANCE))
            need[shared] = max(need.get(shared, 0), kk)
    tables = {}
    for shared, kk in need.items():
        m, tol = shared
        index_tables = None
        if rows is not None:
            if given is not None:
                for side, table in zip("ab", given, strict=True):
                    if table.metric != m:
                        raise InvalidParameterError(
                            f"knn: the table of {side} is {table.metric!r}, but a requested "
                            f"neighbor measure uses metric {m!r}"
                        )
                width = table_width(kk, aa.n)
                index_tables = (given[0].knn(width, rows)[1], given[1].knn(width, rows)[1])
            tables[shared] = sampled_overlap(
                aa.vectors,
                bb.vectors,
                rows,
                kk,
                metric=m,
                tie_tolerance=tol,
                num_threads=num_threads,
                device=device,
                tables=index_tables,
            )
            continue
        if given is not None:
            for side, table in zip("ab", given, strict=True):
                if table.metric != m:
                    raise InvalidParameterError(
                        f"knn: the table of {side} is {table.metric!r}, but a requested "
                        f"neighbor measure uses metric {m!r}"
                    )
            # wider than kk, so that the tie group at the k-th neighbor shows
            width = min(table_width(kk, aa.n), aa.n - 1)
            index_tables = (given[0].knn(width)[1], given[1].knn(width)[1])
        tables[shared] = neighbor_tables(
            aa.vectors,
            bb.vectors,
            kk,
            metric=m,
            tie_tolerance=tol,
            num_threads=num_threads,
            device=device,
            tables=index_tables,
        )
    xp = module_for(device)[1]
    dense = _check_dense(dense)
    sides: tuple[DenseSide, DenseSide] | None = None
    stream = None
    if xp is np and aa.n > STREAM_ABOVE:
        on_moments = [s.name for s in specs if s.name in STREAMED]
        if on_moments:
            stream = moments(aa.vectors, bb.vectors, qr=any(STREAMED[n][1] for n in on_moments))
    sub_a = sub_b = None
    if rows is not None:
        sub_a, sub_b = aa.vectors[rows], bb.vectors[rows]
    results: dict[str, MeasureResult] = {}
    # thin matrices on the CPU: BLAS on one thread (see ``_blas``)
    blas = thin_blas(max(aa.d, bb.d)) if xp is np else contextlib.nullcontext()
    with blas:
        for s in specs:
            opts = options_for(s)
            if s.neighbor_based:
                opts = {"k": k, "metric": metric, **opts}
                opts["tables"] = tables[(opts["metric"], opts.get("tie_tolerance", TIE_TOLERANCE))]
                if rows is None:
                    results[s.name] = s.function(aa.vectors, bb.vectors, **opts)
                else:
                    result = s.function(sub_a, sub_b, **opts)
                    result.details["sample"] = int(rows.size)
                    result.details["sample_seed"] = sample_seed
                    results[s.name] = result
            elif stream is not None and s.name in STREAMED:
                results[s.name] = streamed(s.name, stream, **opts)
            elif s.name == "rsa" and xp is np and aa.n > STREAM_ABOVE:
                # rsa reads its sample only: hand it those rows (the same sample,
                # drawn by key) instead of float64 copies of both sides
                size = check_int(opts.get("sample", 1000), "rsa: sample", minimum=3)
                picked = sample_by_key(
                    aa.keys,
                    size,
                    check_int(opts.get("random_state", 0), "rsa: random_state", minimum=0),
                )
                results[s.name] = s.function(
                    aa.vectors[picked],
                    bb.vectors[picked],
                    keys=[aa.keys[i] for i in picked],
                    **opts,
                )
            else:
                if sides is None:
                    sides = _dense_sides(dense, (ea, eb), (aa, bb), xp, s.name)
                if "keys" in _accepts(s.function):
                    opts["keys"] = aa.keys  # e.g. rsa samples by key
                if reads_sides(s.function):
                    results[s.name] = s.function(*sides, xp=xp, **opts)
                else:
                    results[s.name] = s.function(sides[0].values, sides[1].values, xp=xp, **opts)
    intervals: dict[str, tuple[float, float]] = {}
    for s in specs:
        if s.neighbor_based:
            r = results[s.name]
            if rows is None or r.per_entity is None:
                intervals[s.name] = (r.score, r.score)
            else:
                intervals[s.name] = sample_interval(r.per_entity, aa.n)
                r.details["interval"] = list(intervals[s.name])
    comparison = Comparison(
        results,
        aa.keys,
        n_a=ea.n,
        n_b=eb.n,
        k=k,
        metric=metric,
        sampled_rows=rows,
        intervals=intervals,
    )
    if chance:
        comparison.chance = chance_scores(
            aa,
            bb,
            names,
            permutations=chance_permutations,
            random_state=chance_seed,
            knn=given if rows is None else None,
            dense=(sides[0] if sides is not None else dense[0] if aa is ea else None, None),
            make_tables=False,
            sample=sample if rows is not None else 0,
            sample_seed=sample_seed,
            k=k,
            metric=metric,
            num_threads=num_threads,
            device=device,
            **options,
        )
    return comparison


def chance_scores(
    a: Embeddings,
    b: Embeddings,
    measures: str | Iterable[str],
    *,
    permutations: int = CHANCE_PERMUTATIONS,
    random_state: int = 0,
    knn: tuple[NeighborTable, NeighborTable] | None = None,
    dense: tuple[DenseSide | None, DenseSide | None] | None = None,
    make_tables: bool = True,
    **compare_options: Any,
) -> dict[str, float]:
    """measure -> the mean score of ``a`` against ``b`` with ``b``'s rows
    shuffled (keys kept), over ``permutations`` shuffles drawn from
    ``numpy.random.default_rng(random_state)``.

    ``a`` and ``b`` are aligned by key first (their shared entities, in ``a``'s
    order). ``knn = (table_a, table_b)``: their k-NN tables (as for
    :func:`~embspace.compare`; both sides must then hold the same keys in the
    same order); each shuffle reads ``table_b`` relabelled (:func:`~embspace.measures.chance.shuffled_table`)
    instead of searching. Without ``knn`` and with neighbor measures, the two
    tables are made here once (``make_tables=False``: not made, each shuffle
    then searches, as :func:`~embspace.compare` does when a measure's own
    ``metric`` option differs from ``metric``). ``dense``: as for
    :func:`~embspace.compare`, of which only ``a``'s side is read (``b``'s rows
    are shuffled); made here when not given (and ``a`` needs no alignment)
    and a dense measure takes it, so the shuffles prepare ``a`` once.
    ``compare_options`` (``k``, ``metric``, ``num_threads``, ``device``,
    measure options) go to :func:`~embspace.compare`.
    """
    permutations = check_int(permutations, "chance permutations", minimum=1)
    random_state = check_int(random_state, "chance random_state", minimum=0)
    names = check_measures(measures)
    side_a = _check_dense(dense)[0]
    if knn is None:
        original = a
        a, b = align(a, b)
        if a is not original:
            side_a = None  # prepared for other rows
        if make_tables and any(MEASURES[n].neighbor_based for n in names):
            opts = {
                o: compare_options[o] for o in ("num_threads", "device") if o in compare_options
            }
            metric = compare_options.get("metric", "cosine")
            knn = (NeighborTable(a, metric=metric, **opts), NeighborTable(b, metric=metric, **opts))
    xp = module_for(compare_options.get("device", "cpu"))[1]
    if side_a is None and uses_dense_sides(names, a.n, xp):
        side_a = DenseSide.of(a.vectors, xp, name="chance")
    rng = np.random.default_rng(random_state)
    totals = dict.fromkeys(names, 0.0)
    for _ in range(permutations):
        order = rng.permutation(b.n)
        shuffled = b._with_vectors(b.vectors[order])  # b's keys, rows permuted: no new checks
        tables = None if knn is None else (knn[0], shuffled_table(knn[1], order, shuffled))
        result = compare(a, shuffled, names, knn=tables, dense=(side_a, None), **compare_options)
        for n in names:
            totals[n] += float(result.scores[n])
    return {n: totals[n] / permutations for n in names}
