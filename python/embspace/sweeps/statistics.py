"""The statistics of a sweep: from the scores of its pairs to means, stdevs and
the noise floor.

- ``similarity`` of a (value, measure, against) group is the mean over seeds of
  its seed-paired scores, ``stdev`` their sample standard deviation (ddof=1;
  NaN with one seed) and ``n_pairs`` how many were averaged;
- the **noise floor** of a measure is the mean over every pair of distinct
  seeds of the reference configuration (``seeds * (seeds - 1) / 2`` pairs),
  ``noise_floor_stdev`` their sample standard deviation; with one seed there is
  no pair and both are NaN.

Scores are always averaged in the order of their :class:`~.plan.PairKey`, so
the numbers do not depend on the order the pairs were computed in (a resumed
sweep gives the table of an uninterrupted one, bit for bit).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .plan import NOISE, PairKey

__all__ = ["Summary", "noise_floor", "stdev", "summarize"]


def stdev(values: Sequence[float]) -> float:
    """Sample standard deviation (ddof=1); NaN for fewer than two values."""
    if len(values) < 2:
        return float("nan")
    return float(np.std(np.asarray(values, dtype=np.float64), ddof=1))


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(np.asarray(values, dtype=np.float64))) if values else float("nan")


def noise_floor(
    scores: Mapping[PairKey, Mapping[str, float]], measures: Sequence[str]
) -> dict[str, tuple[float, float, int]]:
    """measure -> (mean, stdev, number of seed pairs) over the noise pairs of ``scores``."""
    noise = [scores[p] for p in sorted(p for p in scores if p.against == NOISE)]
    out = {}
    for m in measures:
        values = [s[m] for s in noise if m in s]
        out[m] = (_mean(values), stdev(values), len(values))
    return out


@dataclass(frozen=True)
class Summary:
    """The statistics of one (against, value, measure) group of seed pairs."""

    against: str
    value_index: int
    measure: str
    similarity: float
    stdev: float
    n_pairs: int


def summarize(
    scores: Mapping[PairKey, Mapping[str, float]],
    measures: Sequence[str],
    order: Callable[[PairKey], tuple[int, ...]],
) -> list[Summary]:
    """One :class:`Summary` per (against, value, measure) of the non-noise pairs
    in ``scores``: the groups in ``order`` of their pairs' group (its first
    element), then measure (in ``measures`` order), then value."""
    groups: dict[tuple[int, str, int, int], list[float]] = {}
    for p in sorted((p for p in scores if p.against != NOISE), key=order):
        for m, s in scores[p].items():
            key = (order(p)[0], p.against, p.value_index, measures.index(m))
            groups.setdefault(key, []).append(s)
    return [
        Summary(against, vi, measures[mi], _mean(sims), stdev(sims), len(sims))
        for (_, against, vi, mi), sims in sorted(
            groups.items(), key=lambda kv: (kv[0][0], kv[0][3], kv[0][2])
        )
    ]
