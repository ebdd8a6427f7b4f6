"""The tables of a sweep, as pandas DataFrames built from its pair scores.

- :func:`table`: one row per (value, measure, against), :data:`TABLE_COLUMNS`;
- :func:`wide`: one ``against`` group of the table as a value x measure frame;
- :func:`results`: every comparison of a run, tidy;
- :func:`noise`: the noise-floor comparisons;
- :func:`against_rows`: the rows of one ``against`` group.

Each is a pure function of the plan, the scores and the order of the
``against`` groups; :class:`~embspace.Sweep` exposes them as properties.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pandas as pd

from .plan import NOISE, REFERENCE, PairKey, SweepPlan, same_value
from .statistics import noise_floor, summarize

__all__ = ["TABLE_COLUMNS", "against_rows", "noise", "results", "table", "wide"]

#: Column order of :attr:`Sweep.table`.
TABLE_COLUMNS = (
    "value",
    "measure",
    "against",
    "similarity",
    "stdev",
    "noise_floor",
    "noise_floor_stdev",
    "n_pairs",
    "converged",
)

Scores = Mapping[PairKey, Mapping[str, float]]


def table(
    plan: SweepPlan,
    scores: Scores,
    externals: Sequence[str],
    converged: Callable[[int, str], bool | None] | None = None,
) -> pd.DataFrame:
    """One row per (value, measure, against): mean ``similarity`` over seeds,
    its ``stdev``, the reference configuration's ``noise_floor`` and
    ``noise_floor_stdev`` (repeated on every row of a measure), and ``n_pairs``
    (seeds averaged), and ``converged(value_index, against)`` (None without it).
    Groups: the reference first, then ``externals`` in order.
    ``attrs`` hold ``param``, ``reference`` and ``seeds`` (their number)."""
    floor = noise_floor(scores, plan.measures)
    rows = []
    for s in summarize(scores, plan.measures, lambda p: plan.order(p, externals)):
        nf, nf_sd, _ = floor[s.measure]
        rows.append(
            {
                "value": plan.values[s.value_index],
                "measure": s.measure,
                "against": s.against,
                "similarity": s.similarity,
                "stdev": s.stdev,
                "noise_floor": nf,
                "noise_floor_stdev": nf_sd,
                "n_pairs": s.n_pairs,
                "converged": None if converged is None else converged(s.value_index, s.against),
            }
        )
    frame = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    frame.attrs.update(param=plan.param, reference=plan.reference, seeds=len(plan.seeds))
    return frame


def wide(plan: SweepPlan, table: pd.DataFrame, against: str = REFERENCE) -> pd.DataFrame:
    """The similarities of one ``against`` group of ``table`` as a value x measure
    frame (index named after the parameter, values and measures in plan order)."""
    t = table[table["against"] == against]
    if t.empty:
        return pd.DataFrame(columns=list(plan.measures))
    w = t.pivot(index="value", columns="measure", values="similarity")
    order = [v for v in plan.values if any(same_value(v, x) for x in w.index)]
    w = w.reindex(index=order, columns=[m for m in plan.measures if m in w.columns])
    w.index.name = plan.param
    w.columns.name = None
    return w


def results(plan: SweepPlan, scores: Scores, externals: Sequence[str]) -> pd.DataFrame:
    """Every comparison of a run, tidy: ``value, seed, against, measure,
    similarity`` (the noise-floor pairs are in :func:`noise`)."""
    pairs = sorted(
        (p for p in scores if p.against != NOISE), key=lambda p: plan.order(p, externals)
    )
    rows = [
        {
            "value": plan.values[p.value_index],
            "seed": p.seed,
            "against": p.against,
            "measure": m,
            "similarity": s,
        }
        for p in pairs
        for m, s in scores[p].items()
    ]
    return pd.DataFrame(rows, columns=["value", "seed", "against", "measure", "similarity"])


def noise(scores: Scores) -> pd.DataFrame:
    """The noise-floor comparisons: ``seed_a, seed_b, measure, similarity``
    (reference configuration, every pair of distinct seeds)."""
    rows = [
        {"seed_a": p.seed, "seed_b": p.other_seed, "measure": m, "similarity": s}
        for p in sorted(p for p in scores if p.against == NOISE)
        for m, s in scores[p].items()
    ]
    return pd.DataFrame(rows, columns=["seed_a", "seed_b", "measure", "similarity"])


def against_rows(table: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows of ``table`` whose ``against`` is ``name``, renumbered from 0."""
    return table[table["against"] == name].reset_index(drop=True)
