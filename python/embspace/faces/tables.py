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


def format_sweep_table(sweep: Any, against: str = "reference") -> str:
    """A value x measure text table of one ``against`` group of a
    :class:`~embspace.Sweep`, mean ± stdev over seeds, with the noise floor
    as its last row."""
    table = sweep.table
    rows = table[table["against"] == against]
    with_sd = len(sweep.seeds) > 1
    what = value_label(sweep.param, sweep.reference) if against == "reference" else against
    n = len(sweep.seeds)
    head = f"similarity to {what}"
    head += f" (mean ± stdev over {n} seeds)" if with_sd else " (one seed)"
    measures = [m for m in sweep.measures if m in set(rows["measure"])]
    lines: dict[str, list[str]] = {}
    for value in sweep.values:
        part = rows[rows["value"].map(lambda v, value=value: same_value(v, value))]
        if part.empty:
            continue
        cells = []
        for m in measures:
            r = part[part["measure"] == m]
            cells.append(
                _cell(float(r["similarity"].iloc[0]), float(r["stdev"].iloc[0]), with_sd)
                if len(r)
                else ""
            )
        lines[format_value(value)] = cells
    floor = sweep.noise_floor
    label = f"noise floor ({value_label(sweep.param, sweep.reference)} reseeded)"
    if n > 1:
        lines[label] = [_cell(floor[m][0], floor[m][1], floor[m][2] > 1) for m in measures]
    else:
        lines[label] = ["n/a (1 seed)" for _ in measures]
    return head + "\n" + text_table([sweep.param, *measures], [[k, *v] for k, v in lines.items()])


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
