"""The statistics of a sweep: floors, the permutation test, multiple testing, and
the calibrated score, from the scores of its compared pairs.

Every value of a sweep is trained with the same ``s`` seeds. Two runs that share
a seed share their initial factors, so their similarity is not the similarity of
two independent draws of their configurations: every statistic here is built on
**pairs of runs with distinct seeds** (see :mod:`.plan` for the pairs).

Per (value ``v``, measure) of the reference group, with ``r`` the reference value:

- ``floor``: the seed-to-seed similarity of ``v``, the mean over the
  ``s (s - 1) / 2`` pairs of distinct seeds of ``v`` (``floor_stdev`` their
  sample stdev); ``reference_floor`` is that of ``r``;
- ``similarity``: with ``pairing="cross"`` the mean over the ``s (s - 1)``
  ordered pairs (reference run of seed ``j``, run of ``v`` with seed ``i``),
  ``i != j``; for ``v = r`` these are the pairs of distinct reference seeds, so
  the reference row is the reference floor. With ``pairing="same_seed"`` the
  mean over the ``s`` pairs ``i = j`` (the reference row is then 1, a run
  against itself). ``stdev`` is the sample stdev of the averaged pair scores
  (descriptive: pairs share runs, so they are not independent), ``n_pairs``
  how many distinct comparisons were averaged;
- ``chance``: the score of the measure for two spaces with nothing in common
  beyond their marginal statistics: the reference run of the first seed
  against the run of ``v`` with the last seed, its rows shuffled (keys kept),
  averaged over :data:`~embspace.measures.chance.CHANCE_PERMUTATIONS`
  permutations (:func:`embspace.measures.chance_scores`);
- ``calibrated = (similarity - chance) / (floor_mean - chance)`` with
  ``floor_mean`` the mean of ``floor`` and ``reference_floor``: 1 means as alike
  as a re-seed of the same configuration, 0 as alike as unrelated spaces; NaN
  when a floor is missing (one seed) or equals chance;
- ``p_value``: the permutation test of the run labels (:func:`permutation_test`)
  on the ``2 s`` runs of ``v`` and ``r``, one-sided (are runs of one
  configuration more alike than runs of the two?);
- ``p_adjusted``: Holm's step-down adjustment (:func:`holm`) over the **family
  of every (value, measure) test of the table**: all rows of the reference group
  except the reference value itself; ``changed`` is ``p_adjusted <= 0.05``
  (:data:`ALPHA`), missing (``pd.NA``) where there is no test.

Rows against external embeddings (:meth:`~embspace.Sweep.against`, e.g. an SVD)
have the same ``similarity`` (mean over seeds of the run against the external
embeddings), ``floor`` is that of ``v``, ``calibrated`` uses ``floor`` alone (an
external embeddings has no seeds), and there is no reference floor and no test.

Scores are always averaged in the order of their :class:`~.plan.PairKey`, so
the numbers do not depend on the order the pairs were computed in (a resumed
sweep gives the table of an uninterrupted one, bit for bit).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

import numpy as np

from .plan import NOISE, REFERENCE, PairKey, SweepPlan

__all__ = [
    "ALPHA",
    "MAX_EXACT_RELABELINGS",
    "RANDOM_RELABELINGS",
    "PermutationResult",
    "RowStatistics",
    "benjamini_hochberg",
    "calibrated",
    "holm",
    "noise_floor",
    "permutation_test",
    "row_statistics",
    "seeds_needed",
    "smallest_p_value",
    "stdev",
]

#: The level of ``changed`` (after Holm in the table, after Benjamini-Hochberg
#: across entities in :meth:`~embspace.Sweep.changes`).
ALPHA = 0.05

#: The permutation test enumerates every relabeling when there are at most this
#: many (``s <= 8`` seeds: ``C(2s - 1, s - 1)`` = 6,435 for ``s = 8``) ...
MAX_EXACT_RELABELINGS = 10_000

#: ... else it draws this many random relabelings (fixed seed 0), so the
#: smallest p-value is ``1 / (RANDOM_RELABELINGS + 1) = 1e-4``.
RANDOM_RELABELINGS = 9_999

Scores = Mapping[PairKey, Mapping[str, float]]


def stdev(values: Sequence[float]) -> float:
    """Sample standard deviation (ddof=1); NaN for fewer than two values."""
    if len(values) < 2:
        return float("nan")
    return float(np.std(np.asarray(values, dtype=np.float64), ddof=1))


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(np.asarray(values, dtype=np.float64))) if len(values) else float("nan")


# ---------------------------------------------------------------------- the test
@lru_cache(maxsize=32)
def _relabelings(
    s: int, max_exact: int, n_random: int, random_state: int
) -> tuple[np.ndarray, bool]:
    """The relabelings of ``2 s`` runs into two groups of ``s``, as an (N, 2s)
    bool array (True: group A); row 0 is the observed labeling (the first ``s``
    runs in A). Exact: every split with run 0 in A (a split and its mirror give
    the same statistic), ``C(2s - 1, s - 1)`` rows. Random (when that exceeds
    ``max_exact``): the observed labeling and ``n_random`` uniform random splits."""
    m = 2 * s
    n_exact = math.comb(m - 1, s - 1)
    if n_exact <= max_exact:
        rows = np.zeros((n_exact, m), dtype=bool)
        for i, rest in enumerate(combinations(range(1, m), s - 1)):
            rows[i, 0] = True
            rows[i, list(rest)] = True
        exact = True
    else:
        rng = np.random.default_rng(random_state)
        rows = np.zeros((n_random + 1, m), dtype=bool)
        rows[0, :s] = True
        for i in range(1, n_random + 1):
            rows[i, rng.permutation(m)[:s]] = True
        exact = False
    rows.setflags(write=False)
    return rows, exact


@dataclass(frozen=True)
class PermutationResult:
    """The outcome of :func:`permutation_test`.

    ``statistic``: mean within-group minus mean between-group similarity of the
    observed labeling (a float, or an array with one value per entity);
    ``p_value``: the fraction of relabelings whose statistic is at least the
    observed one (observed included), same shape; ``n_relabelings``: how many
    were counted; ``exact``: every relabeling enumerated (else random ones).
    """

    statistic: float | np.ndarray
    p_value: float | np.ndarray
    n_relabelings: int
    exact: bool


def _valid_labelings(
    s: int, tags: np.ndarray, max_exact: int, n_random: int, random_state: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
    """Relabelings, the pairs of runs with distinct tags, and which pairs each
    relabeling puts within a group; labelings without a within or a between
    pair are dropped (with 2 seeds, a split that pairs the two runs of each
    seed)."""
    labels, exact = _relabelings(s, max_exact, n_random, random_state)
    m = 2 * s
    pairs = [(p, q) for p, q in combinations(range(m), 2) if tags[p] != tags[q]]
    pa = np.fromiter((p for p, _ in pairs), dtype=np.intp, count=len(pairs))
    pb = np.fromiter((q for _, q in pairs), dtype=np.intp, count=len(pairs))
    same = labels[:, pa] == labels[:, pb]
    n_within = same.sum(axis=1)
    valid = (n_within > 0) & (n_within < len(pairs))
    return same[valid], n_within[valid], pa, pb, exact


def permutation_test(
    S: np.ndarray,
    tags: Sequence[int] | np.ndarray | None = None,
    *,
    max_exact: int = MAX_EXACT_RELABELINGS,
    n_random: int = RANDOM_RELABELINGS,
    random_state: int = 0,
) -> PermutationResult:
    """Permutation test of the run labels on a similarity matrix of ``2 s`` runs.

    ``S`` is (2s, 2s) or (2s, 2s, n): the similarity of every pair of runs (one
    value, or one per entity), the first ``s`` runs of one configuration (A),
    the last ``s`` of the other (B); only ``S[p, q]`` with ``p < q`` is read.
    ``tags`` (length 2s, default ``[0..s-1, 0..s-1]``: the seeds) marks runs
    that share an initialisation: a pair of runs with the same tag is never
    used, whatever the labeling (so with the default tags only pairs of
    distinct seeds count).

    Statistic: the mean similarity of the pairs within a group minus the mean
    of the pairs between the groups (large: runs of one configuration are more
    alike than runs of different ones). p-value (one-sided): the fraction of
    relabelings (splits of the 2s runs into two groups of s) whose statistic is
    at least the observed one (within ``1e-12`` relative, so rounding does not
    break ties), the observed labeling included. Every relabeling is
    enumerated when there are at most ``max_exact`` (``C(2s - 1, s - 1)``: a
    split and its mirror give the same statistic), else ``n_random`` random
    ones are drawn with ``random_state`` and ``p = (1 + #{T_b >= T}) / (1 +
    n_random)``. The smallest attainable p-value is :func:`smallest_p_value`.

    Under the null hypothesis that the two configurations give the same
    distribution of spaces, and runs of distinct seeds are independent, the
    labels are exchangeable and the test is exact up to the tag mask (pairs of
    runs that share a seed are left out of every relabeling, a fixed
    design; identical configurations give identical same-seed runs and a
    statistic of 0, never a small p-value).
    """
    S = np.asarray(S, dtype=np.float64)
    if S.ndim not in (2, 3) or S.shape[0] != S.shape[1] or S.shape[0] % 2 or S.shape[0] < 4:
        raise ValueError(f"S must be (2s, 2s) or (2s, 2s, n) with s >= 2, got {S.shape}")
    s = S.shape[0] // 2
    tags = np.tile(np.arange(s), 2) if tags is None else np.asarray(tags)
    if tags.shape != (2 * s,):
        raise ValueError(f"tags must have length {2 * s}, got {tags.shape}")
    same, n_within, pa, pb, exact = _valid_labelings(s, tags, max_exact, n_random, random_state)
    n_pairs = len(pa)
    # T = weights @ values: +1 / n_within on within pairs, -1 / n_between on the others
    weights = np.where(same, 1.0 / n_within[:, None], -1.0 / (n_pairs - n_within)[:, None])
    values = S[pa, pb]  # (n_pairs,) or (n_pairs, n)
    # the scale of the statistic, for a tolerance of float rounding: per entity
    scale = 1.0 + np.nanmax(np.abs(values), axis=0) if values.size else np.float64(1.0)
    scale = np.asarray(scale, dtype=np.float64)
    if values.ndim == 1:
        T = weights @ values
        observed = float(T[0])
        p = float(np.mean(T >= observed - 1e-12 * float(scale)))
        return PermutationResult(observed, p, len(T), exact)
    n = values.shape[1]
    observed_all = np.empty(n)
    p_all = np.empty(n)
    step = max(1, (8 << 20) // max(len(weights), 1))  # at most 64 MiB of statistics at once
    for lo in range(0, n, step):
        T = weights @ values[:, lo : lo + step]
        tol = 1e-12 * scale[lo : lo + step]
        observed_all[lo : lo + step] = T[0]
        p_all[lo : lo + step] = np.mean(T >= T[0] - tol, axis=0)
    return PermutationResult(observed_all, p_all, len(weights), exact)


def smallest_p_value(
    s: int, *, max_exact: int = MAX_EXACT_RELABELINGS, n_random: int = RANDOM_RELABELINGS
) -> float:
    """The smallest p-value :func:`permutation_test` can give with ``s`` seeds
    per configuration (and seeds shared between them): 1 over the number of
    relabelings counted. 1/2 for s = 2 (of its 3 splits one pairs the runs of
    each seed and is left out), 1/10 for 3, 1/35 for 4, 1/126 for 5, 1/462 for
    6, ...; ``1 / (n_random + 1)`` beyond ``max_exact`` relabelings. NaN for
    ``s < 2`` (no test)."""
    if s < 2:
        return float("nan")
    tags = np.tile(np.arange(s), 2)
    same, *_ = _valid_labelings(s, tags, max_exact, n_random, 0)
    return 1.0 / len(same)


def seeds_needed(n_tests: int, alpha: float = ALPHA) -> int:
    """The fewest seeds with which a family of ``n_tests`` Holm-adjusted tests
    can flag a change at ``alpha``: the smallest ``s`` with ``n_tests *
    smallest_p_value(s) <= alpha``."""
    s = 2
    while n_tests * smallest_p_value(s) > alpha:
        s += 1
    return s


# ---------------------------------------------------------------------- multiple tests
def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control) of the
    finite entries of ``p_values``; NaN entries stay NaN and are not counted in
    the family. With the m finite p-values sorted, ``p_(1) <= ... <= p_(m)``:
    ``adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))``."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    if m:
        order = idx[np.argsort(p[idx], kind="stable")]
        adj = np.minimum(1.0, (m - np.arange(m)) * p[order])
        out[order] = np.maximum.accumulate(adj)
    return out


def benjamini_hochberg(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values (false discovery rate) of the finite entries
    of ``p_values``; NaN entries stay NaN and are not counted. With the m finite
    p-values sorted: ``q_(i) = min_{j >= i} min(1, m p_(j) / j)``."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    if m:
        order = idx[np.argsort(p[idx], kind="stable")]
        q = p[order] * m / np.arange(1, m + 1)
        out[order] = np.minimum(1.0, np.minimum.accumulate(q[::-1])[::-1])
    return out


def calibrated(similarity: float, chance: float, floor: float) -> float:
    """``(similarity - chance) / (floor - chance)``: 1 = as alike as a re-seed,
    0 = as alike as unrelated spaces; NaN when an input is NaN or the floor is
    not above chance by more than float rounding."""
    if not all(math.isfinite(x) for x in (similarity, chance, floor)):
        return float("nan")
    span = floor - chance
    if abs(span) <= 1e-12 * (1.0 + abs(floor)):
        return float("nan")
    return (similarity - chance) / span


# ---------------------------------------------------------------------- the table
def noise_floor(
    scores: Scores, measures: Sequence[str], value_index: int
) -> dict[str, tuple[float, float, int]]:
    """measure -> (mean, stdev, number of seed pairs) of the floor pairs of the
    value at ``value_index`` (its runs of distinct seeds, compared)."""
    noise = [
        scores[p]
        for p in sorted(p for p in scores if p.against == NOISE and p.value_index == value_index)
    ]
    out = {}
    for m in measures:
        values = [s[m] for s in noise if m in s]
        out[m] = (_mean(values), stdev(values), len(values))
    return out


@dataclass(frozen=True)
class RowStatistics:
    """The statistics of one (against, value, measure) row of the table (see
    the module docs); ``p_value`` is NaN where there is no test."""

    against: str
    value_index: int
    measure: str
    similarity: float
    stdev: float
    n_pairs: int
    floor: float
    floor_stdev: float
    reference_floor: float
    reference_floor_stdev: float
    chance: float
    calibrated: float
    p_value: float


def _test_matrix(plan: SweepPlan, scores: Scores, vi: int, measure: str) -> np.ndarray | None:
    """The (2s, 2s) similarities of the runs of the reference (first s) and of
    value ``vi`` (last s) over their pairs of distinct seeds (NaN elsewhere);
    None while a pair is missing."""
    ri, seeds = plan.reference_index, plan.seeds
    s = len(seeds)
    S = np.full((2 * s, 2 * s), np.nan)
    for (a, sa), (b, sb) in combinations(list(enumerate(seeds)), 2):
        pairs = [
            (a, b, PairKey(ri, sa, sb, NOISE)),
            (s + a, s + b, PairKey(vi, sa, sb, NOISE)),
            (a, s + b, PairKey(vi, sb, sa, REFERENCE)),
            (b, s + a, PairKey(vi, sa, sb, REFERENCE)),
        ]
        for p, q, key in pairs:
            got = scores.get(key)
            if got is None or measure not in got:
                return None
            S[p, q] = S[q, p] = got[measure]
    return S


def row_statistics(
    plan: SweepPlan,
    scores: Scores,
    externals: Sequence[str],
    order: Callable[[PairKey], tuple[int, ...]],
) -> list[RowStatistics]:
    """One :class:`RowStatistics` per (against, value, measure) that has scores:
    the reference group first, then ``externals`` in order; within a group by
    measure (in plan order), then value. ``order`` sorts the pairs (the plan's
    :meth:`~.plan.SweepPlan.order` with the externals)."""
    measures = plan.measures
    ri = plan.reference_index
    cross = plan.effective_pairing == "cross"
    floors = {vi: noise_floor(scores, measures, vi) for vi in range(len(plan.values))}
    groups: dict[tuple[int, str, int, int], list[float]] = {}
    chance: dict[tuple[str, int], Mapping[str, float]] = {}
    for p in sorted(scores, key=order):
        if p.chance:
            chance[(p.against, p.value_index)] = scores[p]
            continue
        if p.against == NOISE:
            if not (cross and p.value_index == ri):
                continue
            against = REFERENCE  # with cross pairing the reference row is its own floor
        else:
            against = p.against
            if against == REFERENCE and cross != (p.seed != p.other_seed):
                continue  # a pair of the test, not of this pairing's similarity
        g = 0 if against == REFERENCE else 1 + list(externals).index(against)
        for m, value in scores[p].items():
            groups.setdefault((g, against, p.value_index, measures.index(m)), []).append(value)
    rows = []
    for (_, against, vi, mi), sims in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][3], kv[0][2])
    ):
        m = measures[mi]
        similarity = _mean(sims)
        floor, floor_sd, _ = floors[vi][m]
        chance_score = chance.get((against, vi), {}).get(m, float("nan"))
        p_value = float("nan")
        if against == REFERENCE:
            ref_floor, ref_floor_sd, _ = floors[ri][m]
            both = (floor + ref_floor) / 2.0
            if vi != ri and len(plan.seeds) >= 2:
                S = _test_matrix(plan, scores, vi, m)
                if S is not None:
                    p_value = float(permutation_test(S).p_value)
        else:
            ref_floor = ref_floor_sd = float("nan")
            both = floor
        rows.append(
            RowStatistics(
                against=against,
                value_index=vi,
                measure=m,
                similarity=similarity,
                stdev=stdev(sims),
                n_pairs=len(sims),
                floor=floor,
                floor_stdev=floor_sd,
                reference_floor=ref_floor,
                reference_floor_stdev=ref_floor_sd,
                chance=chance_score,
                calibrated=calibrated(similarity, chance_score, both),
                p_value=p_value,
            )
        )
    return rows
