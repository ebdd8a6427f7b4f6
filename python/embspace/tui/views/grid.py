"""The sweep's results as the Sweep screen shows them: the table and the chart's series."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ...faces.values import format_value, same_value

__all__ = ["ChartSeries", "GridRow", "chart_series", "format_cell", "similarity_grid"]


def format_cell(similarity: float, floor: float | None = None) -> str:
    """``"0.873 (floor 0.950)"``; the floor is left out when unknown (one seed)."""
    if similarity is None or not math.isfinite(similarity):
        return "—"
    if floor is None or not math.isfinite(floor):
        return f"{similarity:.3f}"
    return f"{similarity:.3f} (floor {floor:.3f})"


@dataclass(frozen=True)
class GridRow:
    """One row of the results table: a value of the swept parameter."""

    value: Any
    label: str
    cells: tuple[str, ...]
    done: bool


def _cells(
    table: pd.DataFrame, values: Sequence[Any], against: str
) -> dict[tuple[int, str], tuple[float, float]]:
    """(index in ``values``, measure) -> (similarity, floor) of the ``against``
    rows of a :attr:`Sweep.table`. The floor is the value's own (the ``floor``
    column: the similarity of its runs between seeds, what its test reads the
    similarity against; NaN without that column: the reference value's floor,
    ``noise_floor``, is not the value's and is never shown as its floor)."""
    out: dict[tuple[int, str], tuple[float, float]] = {}
    if not len(table):
        return out
    rows = table[table["against"] == against]
    floors = rows["floor"] if "floor" in rows.columns else np.full(len(rows), np.nan)
    for value, measure, sim, floor in zip(
        rows["value"], rows["measure"], rows["similarity"], floors, strict=True
    ):
        for i, v in enumerate(values):
            if same_value(v, value):
                out.setdefault((i, str(measure)), (float(sim), float(floor)))
                break
    return out


def similarity_grid(
    table: pd.DataFrame,
    values: Sequence[Any],
    measures: Sequence[str],
    *,
    reference: Any = None,
    against: str = "reference",
) -> list[GridRow]:
    """Rows = ``values`` (every one, finished or not), columns = ``measures``;
    each cell formats the ``similarity`` of that (value, measure) in ``table``
    (a :attr:`Sweep.table`) for the ``against`` group, with the value's own floor,
    or ``"…"`` while it is not computed yet. The reference value's label is
    marked ``(ref)``."""
    cells = _cells(table, values, against)
    rows = []
    for i, value in enumerate(values):
        texts = tuple(format_cell(*cells[(i, m)]) if (i, m) in cells else "…" for m in measures)
        label = format_value(value)
        if reference is not None and same_value(value, reference):
            label += " (ref)"
        rows.append(GridRow(value, label, texts, done=all((i, m) in cells for m in measures)))
    return rows


@dataclass(frozen=True)
class ChartSeries:
    """What the chart draws: ``x`` positions with tick ``labels``, and for each
    measure its similarities (NaN where not computed yet) and each value's own
    noise floor (``floors``: the table's ``floor``, the similarity of the
    value's runs between seeds; NaN where there is none)."""

    x: tuple[float, ...]
    labels: tuple[str, ...]
    series: dict[str, tuple[float, ...]]
    categorical: bool
    floors: dict[str, tuple[float, ...]]


def chart_series(
    table: pd.DataFrame,
    values: Sequence[Any],
    measures: Sequence[str],
    *,
    against: str = "reference",
    reference: Any = None,
) -> ChartSeries:
    """Similarity against the swept value, one series per measure.

    Numbers spanning at most a decade are drawn at their value; wider ranges
    (0, 0.01 ... 2) and non-numbers are drawn evenly spaced with their values
    as tick labels (:func:`embspace.plots.x_positions` decides the scale, as
    for the matplotlib figure; ``categorical`` says the chart is not to
    scale). Against the reference, the ``reference`` value itself (compared
    with itself) is left out (NaN), as in the matplotlib figure."""
    from ...plots import x_positions

    positions, scale, labels = x_positions(list(values))
    categorical = scale != "linear"
    x = tuple(float(i) for i in range(len(values))) if categorical else tuple(map(float, positions))
    cells = _cells(table, values, against)
    skip = {
        i
        for i, v in enumerate(values)
        if against == "reference" and reference is not None and same_value(v, reference)
    }
    series = {
        m: tuple(
            cells[(i, m)][0] if (i, m) in cells and i not in skip else float("nan")
            for i in range(len(values))
        )
        for m in measures
    }
    floors = {
        m: tuple(cells[(i, m)][1] if (i, m) in cells else float("nan") for i in range(len(values)))
        for m in measures
    }
    return ChartSeries(
        x=x, labels=tuple(labels), series=series, categorical=categorical, floors=floors
    )
