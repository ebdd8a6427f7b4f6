"""The tables of a sweep, as pandas DataFrames built from its pair scores.

- :func:`table`: one row per (value, measure, against), :data:`TABLE_COLUMNS`;
- :func:`wide`: one ``against`` group of the table as a value x measure frame;
- :func:`results`: every comparison of a run with the reference or an
  external embeddings, tidy;
- :func:`noise`: the floor comparisons (runs of one value, distinct seeds);
- :func:`against_rows`: the rows of one ``against`` group.

Each is a pure function of the plan, the scores and the order of the
``against`` groups; :class:`~embspace.Sweep` exposes them as properties.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .plan import NOISE, REFERENCE, PairKey, SweepPlan, same_value
from .statistics import ALPHA, holm, row_statistics

__all__ = [
    "RESULTS_COLUMNS",
    "TABLE_COLUMNS",
    "against_rows",
    "noise",
    "results",
    "table",
    "wide",
]

#: Column order of :attr:`Sweep.table` (see :mod:`.statistics` for each column).
#: ``noise_floor`` and ``noise_floor_stdev`` are kept from before every value
#: had a floor: they equal ``reference_floor`` (and its stdev), missing on
#: rows against external embeddings.
TABLE_COLUMNS = (
    "value",
    "measure",
    "against",
    "similarity",
    "stdev",
    "noise_floor",
    "noise_floor_stdev",
    "n_pairs",
    "floor",
    "floor_stdev",
    "reference_floor",
    "chance",
    "calibrated",
    "p_value",
    "p_adjusted",
    "changed",
    "converged",
)

Scores = Mapping[PairKey, Mapping[str, float]]


def table(
    plan: SweepPlan,
    scores: Scores,
    externals: Sequence[str],
    converged: Callable[[int, str], bool | None] | None = None,
) -> pd.DataFrame:
    """One row per (value, measure, against) with :data:`TABLE_COLUMNS` (the
    statistics of :func:`.statistics.row_statistics`), Holm's adjustment over
    every test of the table (``p_adjusted``) and ``changed`` (``p_adjusted <=
    ALPHA``, a nullable boolean: missing where there is no test). Groups: the
    reference first, then ``externals`` in order; ``converged(value_index,
    against)`` says whether every run of a row converged (None without it).
    ``attrs`` hold ``param``, ``reference``, ``seeds`` (their number) and
    ``pairing``."""
    stats = row_statistics(plan, scores, externals, lambda p: plan.order(p, externals))
    adjusted = holm([r.p_value for r in stats])
    rows = []
    for r, p_adj in zip(stats, adjusted, strict=True):
        rows.append(
            {
                "value": plan.values[r.value_index],
                "measure": r.measure,
                "against": r.against,
                "similarity": r.similarity,
                "stdev": r.stdev,
                "noise_floor": r.reference_floor,
                "noise_floor_stdev": r.reference_floor_stdev,
                "n_pairs": r.n_pairs,
                "floor": r.floor,
                "floor_stdev": r.floor_stdev,
                "reference_floor": r.reference_floor,
                "chance": r.chance,
                "calibrated": r.calibrated,
                "p_value": r.p_value,
                "p_adjusted": float(p_adj),
                "changed": pd.NA if np.isnan(p_adj) else bool(p_adj <= ALPHA),
                "converged": None if converged is None else converged(r.value_index, r.against),
            }
        )
    frame = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    frame["changed"] = frame["changed"].astype("boolean")
    frame.attrs.update(
        param=plan.param,
        reference=plan.reference,
        seeds=len(plan.seeds),
        pairing=plan.effective_pairing,
    )
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


#: Columns of :func:`results`.
RESULTS_COLUMNS = ("value", "seed", "other_seed", "against", "measure", "similarity")


def results(plan: SweepPlan, scores: Scores, externals: Sequence[str]) -> pd.DataFrame:
    """Every comparison of a run with the reference value or with external
    embeddings, tidy: ``value, seed, other_seed, against, measure,
    similarity``; ``other_seed`` is the seed of the reference run compared
    (equal to ``seed`` against external embeddings). The floor pairs are in
    :func:`noise`, the chance levels in the table."""
    pairs = sorted(
        (p for p in scores if p.against != NOISE and not p.chance),
        key=lambda p: plan.order(p, externals),
    )
    rows = [
        {
            "value": plan.values[p.value_index],
            "seed": p.seed,
            "other_seed": p.other_seed,
            "against": p.against,
            "measure": m,
            "similarity": s,
        }
        for p in pairs
        for m, s in scores[p].items()
    ]
    return pd.DataFrame(rows, columns=list(RESULTS_COLUMNS))


def noise(plan: SweepPlan, scores: Scores) -> pd.DataFrame:
    """The floor comparisons: ``value, seed_a, seed_b, measure, similarity``,
    every pair of distinct seeds of every value (the reference value first)."""
    ri = plan.reference_index
    pairs = sorted(
        (p for p in scores if p.against == NOISE),
        key=lambda p: (p.value_index != ri, p.value_index, p.seed, p.other_seed),
    )
    rows = [
        {
            "value": plan.values[p.value_index],
            "seed_a": p.seed,
            "seed_b": p.other_seed,
            "measure": m,
            "similarity": s,
        }
        for p in pairs
        for m, s in scores[p].items()
    ]
    return pd.DataFrame(rows, columns=["value", "seed_a", "seed_b", "measure", "similarity"])


def against_rows(table: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows of ``table`` whose ``against`` is ``name``, renumbered from 0."""
    return table[table["against"] == name].reset_index(drop=True)
