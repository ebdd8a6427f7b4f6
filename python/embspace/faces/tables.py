"""Sweep and neighbor tables as plain text (the command line and the demo print them)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from .keys import key_genres
from .values import format_value, same_value

__all__ = [
    "SHORT_NAMES",
    "format_neighbors",
    "format_sweep_table",
    "neighbors_text",
    "text_table",
    "value_label",
]

#: Short names of parameters in labels (``w0=0.01``).
SHORT_NAMES = {"unobserved_weight": "w0"}


def value_label(param: str, value: Any) -> str:
    """``"w0=0.01"``: a parameter (by its short name when it has one) and a value."""
    return f"{SHORT_NAMES.get(param, param)}={format_value(value)}"


def _cell(mean: float, sd: float, with_sd: bool) -> str:
    if not math.isfinite(mean):
        return "n/a"
    if with_sd and math.isfinite(sd):
        return f"{mean:.3f} ± {sd:.3f}"
    return f"{mean:.3f}"


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain columns two spaces apart: the first left-aligned, the others
    right-aligned, trailing spaces removed."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = f"{cells[0]!s:<{widths[0]}}"
        rest = [f"{c!s:>{w}}" for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    return "\n".join([line(header), *(line(r) for r in rows)])


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _fixed(x: Any, digits: int = 3) -> str:
    f = _num(x)
    return f"{f:.{digits}f}" if math.isfinite(f) else "-"


def format_sweep_table(sweep: Any, against: str = "reference") -> str:
    """One ``against`` group of a :class:`~embspace.Sweep`'s table as text,
    one line per (value, measure): ``similarity`` (mean ± stdev over seed
    pairs), ``floor`` (seed-to-seed similarity at that value), ``calibrated``
    (1 = as alike as a re-seed, 0 = as alike as unrelated spaces) and, against
    the reference only, ``p_adjusted`` (permutation test, Holm over the table)
    and ``changed`` (``p_adjusted <= 0.05``). Against other embeddings (SVD)
    there is no reference floor and no test: those columns are left out.
    Missing numbers print as ``-`` (one seed: no floor, no test); a last line
    says when the seeds are too few for any test to reach 0.05 (then
    ``changed = no`` is no verdict)."""
    table = sweep.table
    rows = table[table["against"] == against]
    with_sd = len(sweep.seeds) > 1
    reference = against == "reference"
    what = value_label(sweep.param, sweep.reference) if reference else against
    n = len(sweep.seeds)
    head = f"similarity to {what}"
    head += f" (mean ± stdev over {n} seeds)" if with_sd else " (one seed)"
    measures = [m for m in sweep.measures if m in set(rows["measure"])]
    header = [sweep.param, "measure", "similarity", "floor", "calibrated"]
    if reference:
        header += ["p_adjusted", "changed"]
    body: list[list[str]] = []
    for value in sweep.values:
        part = rows[rows["value"].map(lambda v, value=value: same_value(v, value))]
        for m in measures:
            r = part[part["measure"] == m]
            if r.empty:
                continue
            row = r.iloc[0]
            is_ref = reference and same_value(value, sweep.reference)
            cells = [
                format_value(value) + (" (ref)" if is_ref else ""),
                m,
                _cell(_num(row["similarity"]), _num(row["stdev"]), with_sd),
                _fixed(row.get("floor")),
                _fixed(row.get("calibrated"), 2),
            ]
            if reference:
                changed = row.get("changed")
                cells += [
                    _fixed(row.get("p_adjusted")),
                    "-" if changed is None or pd.isna(changed) else ("yes" if changed else "no"),
                ]
            body.append(cells)
    text = head + "\n" + text_table(header, body)
    if reference and n >= 2:
        from ..sweeps.statistics import ALPHA, smallest_p_value

        n_tests = int(rows["p_adjusted"].map(_num).map(math.isfinite).sum())
        p_min = smallest_p_value(n)
        if n_tests and n_tests * p_min > ALPHA:
            text += (
                f"\n(with {n} seeds the smallest p-value is {p_min:.3g}: after Holm over "
                f"{n_tests} tests none can reach {ALPHA:g}, so changed = no is no verdict)"
            )
    return text


def format_neighbors(frame: pd.DataFrame) -> str:
    """rank, title, genres (when every key carries them) and score (3
    decimals) of a :meth:`~embspace.NeighborTable.neighbors` frame: the demo's
    listing."""
    out = pd.DataFrame({"rank": frame["rank"]})
    if "title" in frame.columns:
        out["title"] = frame["title"]
    else:
        out["key"] = frame["key"].astype(str)
    if (
        "key" in frame.columns
        and frame["key"].map(lambda k: isinstance(k, tuple) and len(k) > 1).all()
    ):
        out["genres"] = frame["key"].map(key_genres)
    out["score"] = frame["score"].map(lambda s: f"{s:.3f}")
    return out.to_string(index=False)


def neighbors_text(frame: pd.DataFrame) -> str:
    """rank, title (or key) and score (4 decimals) of a
    :meth:`~embspace.NeighborTable.neighbors` frame: the command line's listing."""
    cols = [c for c in ("rank", "title", "key", "score") if c in frame.columns]
    if "title" in cols and "key" in cols:
        cols.remove("key")
    return frame[cols].to_string(index=False, float_format=lambda x: f"{x:.4f}")
