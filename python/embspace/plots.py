"""Plots of sweep tables (matplotlib, object API: no pyplot state, safe headless and in threads)."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ._atomic import write_atomic
from .errors import InvalidParameterError

__all__ = [
    "MEASURE_LABELS",
    "axis_label",
    "plot_changes_by",
    "plot_sweep",
    "save_figure",
    "x_positions",
]

#: Panel titles of the known measures.
MEASURE_LABELS = {
    "neighbors": "neighbors (mean Jaccard of k-NN sets)",
    "cca": "CCA (mean canonical correlation)",
    "unitmatch": "unit match (mean best correlation)",
    "cka": "linear CKA",
    "cka_debiased": "debiased CKA",
    "procrustes": "Procrustes similarity",
    "svcca": "SVCCA",
    "pwcca": "PWCCA",
    "mutual_knn": "mutual k-NN",
}

_REQUIRED = ("value", "measure", "against", "similarity")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


#: Numbers whose non-zero magnitudes span more than this ratio are drawn on a
#: logarithmic axis (``"log"``, or ``"symlog"`` when 0 or negatives are among them).
WIDE_RANGE = 10.0

#: What the x-axis label adds for each scale that is not evenly spaced in the values.
SCALE_NOTES = {
    "symlog": "symlog scale",
    "log": "log scale",
    "category": "evenly spaced",
}


def x_positions(values: Sequence[Any]) -> tuple[np.ndarray, str, list[str]]:
    """Where to draw each value on the x axis: ``(positions, scale, labels)``.

    Numbers are drawn at their value. When their non-zero magnitudes span more
    than a decade (:data:`WIDE_RANGE`) the axis is logarithmic: ``"log"`` when
    all are positive, else ``"symlog"`` (linear within the smallest non-zero
    magnitude of 0, logarithmic beyond), so 0, 0.01, 0.1, 0.5, 1 and 2 are all
    readable and none is squeezed into its neighbour; otherwise ``"linear"``.
    Anything else (strings, None) is drawn at 0, 1, 2, ... (``"category"``).
    """
    labels = [f"{v:g}" if isinstance(v, float) else str(v) for v in values]
    if values and all(_is_number(v) for v in values):
        x = np.asarray(values, dtype=np.float64)
        nonzero = np.abs(x[x != 0])
        wide = nonzero.size >= 2 and nonzero.max() / nonzero.min() > WIDE_RANGE
        if not wide:
            return x, "linear", labels
        return x, ("log" if (x > 0).all() else "symlog"), labels
    return np.arange(len(values), dtype=np.float64), "category", labels


def axis_label(param: str, scale: str) -> str:
    """The x-axis label: the parameter, and how the axis is spaced when it is
    not linear in the values (``"unobserved_weight (symlog scale)"``)."""
    note = SCALE_NOTES.get(scale)
    return f"{param} ({note})" if note else param


def plot_sweep(
    table: pd.DataFrame,
    *,
    param: str | None = None,
    reference: Any = None,
    against: str | Sequence[str] | None = None,
    measures: Sequence[str] | None = None,
    values: Sequence[Any] | None = None,
    title: str | None = None,
) -> Figure:
    """One panel per measure of a sweep table (see :attr:`embspace.Sweep.table`).

    Each panel shows, for each ``against`` group, the mean similarity at each
    value (error bars: stdev over seeds). The ``"reference"`` group leaves out
    the reference value itself (the reference compared with itself is no
    change, not a measurement; a dotted vertical line marks where it is).
    When the reference group is drawn, the floor of every value (its
    ``floor`` column: the seed-to-seed similarity at that value, what
    re-seeding alone produces; the reference value's point is the reference
    floor) is a dashed line with a band of +- one ``floor_stdev``: a band per
    value, since the values differ in stability. A figure of other groups only
    (against SVD) has no band: the seeds of a sweep value say nothing about an
    embeddings without seeds. The x axis is
    drawn by :func:`x_positions` and its label says its scale
    (:func:`axis_label`). ``values`` fixes the order of the x axis (default:
    the order in the table).
    """
    missing = [c for c in _REQUIRED if c not in table.columns]
    if missing:
        raise InvalidParameterError(f"the table lacks column(s) {missing}")
    if table.empty:
        raise InvalidParameterError("the table is empty: nothing to plot")
    param = param or table.attrs.get("param") or "value"
    if reference is None:
        reference = table.attrs.get("reference")
    if against is None:
        groups = list(dict.fromkeys(table["against"]))
    else:
        groups = [against] if isinstance(against, str) else list(against)
        unknown = [g for g in groups if g not in set(table["against"])]
        if unknown:
            raise InvalidParameterError(
                f"no rows against {unknown}; the table has {sorted(set(table['against']))}"
            )
    if measures is None:
        measures = list(dict.fromkeys(table["measure"]))
    else:
        measures = [m for m in measures if m in set(table["measure"])]
    if values is None:
        values = list(dict.fromkeys(table["value"]))
    x_all, scale, labels = x_positions(list(values))
    ref_index = _find(values, reference) if reference is not None else None
    with_reference = "reference" in groups

    n = len(measures)
    ncols = n if n <= 4 else 3
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(3.6 * ncols + 0.4, 3.2 * nrows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    ref_label = f"{param}={_fmt(reference)}" if reference is not None else "reference"
    for i, measure in enumerate(measures):
        ax = axes[i // ncols][i % ncols]
        rows = table[table["measure"] == measure]
        low = 0.0
        for g, group in enumerate(groups):
            part = rows[rows["against"] == group]
            if group == "reference" and ref_index is not None:
                # the reference against itself: no line is drawn to it
                part = part[[_position(values, v) != ref_index for v in part["value"]]]
            if part.empty:
                continue
            idx = [_position(values, v) for v in part["value"]]
            x = x_all[idx]
            y = part["similarity"].to_numpy(np.float64)
            err = part["stdev"].to_numpy(np.float64) if "stdev" in part else np.zeros_like(y)
            err = np.where(np.isfinite(err), err, 0.0)
            order = np.argsort(x)
            label = f"vs {ref_label}" if group == "reference" else f"vs {group}"
            ax.errorbar(
                x[order],
                y[order],
                yerr=err[order],
                marker="o",
                ms=4,
                capsize=3,
                color=colors[g % len(colors)],
                label=label,
            )
            low = min(low, float(np.nanmin(y - err)))
        if with_reference and ref_index is not None:
            ax.axvline(
                x_all[ref_index], color="0.6", ls=":", lw=1, label=f"the reference, {ref_label}"
            )
        # each value's own seed noise, only beside the comparisons with the reference
        ref_part = rows[rows["against"] == "reference"] if with_reference else rows.iloc[:0]
        floors = ref_part[ref_part["floor"].notna()] if "floor" in ref_part else ref_part.iloc[:0]
        if len(floors):
            fx = x_all[[_position(values, v) for v in floors["value"]]]
            fy = floors["floor"].to_numpy(np.float64)
            fsd = (
                floors["floor_stdev"].to_numpy(np.float64)
                if "floor_stdev" in floors
                else np.zeros_like(fy)
            )
            fsd = np.where(np.isfinite(fsd), fsd, 0.0)
            order = np.argsort(fx)
            ax.plot(
                fx[order],
                fy[order],
                color="0.35",
                ls="--",
                lw=1,
                marker="_",
                ms=8,
                label="floor (each value reseeded)",
            )
            if (fsd > 0).any():
                ax.fill_between(
                    fx[order], (fy - fsd)[order], (fy + fsd)[order], color="0.5", alpha=0.2, lw=0
                )
            low = min(low, float(np.nanmin(fy - fsd)))
        elif with_reference:
            ax.text(
                0.02,
                0.03,
                "no noise floor (one seed)",
                transform=ax.transAxes,
                fontsize=7,
                color="0.4",
            )
        ax.set_title(MEASURE_LABELS.get(measure, measure), fontsize=9)
        ax.set_xlabel(axis_label(param, scale), fontsize=9)
        ax.set_ylabel("similarity")
        ax.set_ylim(min(low - 0.05, 0.0), 1.05)
        if scale == "symlog":
            positive = np.abs(x_all[x_all != 0])
            thresh = float(positive.min())
            ax.set_xscale("symlog", linthresh=thresh, linscale=0.6)
            lo = float(x_all.min())
            left = lo - 0.3 * thresh if lo >= 0 else lo * 1.4
            ax.set_xlim(left, float(x_all.max()) * 1.4 if x_all.max() > 0 else thresh)
        elif scale == "log":
            ax.set_xscale("log")
            ax.set_xlim(float(x_all.min()) / 1.4, float(x_all.max()) * 1.4)
        if scale in ("symlog", "log", "category") or len(values) <= 8:
            ax.set_xticks(x_all, labels, fontsize=8, rotation=0 if len(values) <= 6 else 45)
            ax.minorticks_off()
        ax.grid(True, alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7, loc="lower left")
    for j in range(n, nrows * ncols):
        axes[j // ncols][j % ncols].set_visible(False)
    fig.suptitle(title or f"How the space changes with {param}", fontsize=11)
    return fig


def plot_changes_by(
    frame: pd.DataFrame, *, by: str | None = None, title: str | None = None
) -> Figure:
    """Two panels of a per-group summary of entity changes (the frame of
    :meth:`embspace.Sweep.changes_by`: a group column ``by``, ``similarity``,
    ``floor``, ``changed_fraction`` and ``n_entities``): the mean per-entity
    similarity beside the mean floor per group (bars), and the fraction of
    tested entities flagged changed (bars; a note when there is no test)."""
    by = by or frame.attrs.get("by")
    need = ["similarity", "floor", "changed_fraction", "n_entities"]
    if by is None or by not in frame.columns:
        raise InvalidParameterError(f"the frame lacks its group column {by!r}")
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise InvalidParameterError(f"the frame lacks column(s) {missing}")
    if frame.empty:
        raise InvalidParameterError("the frame is empty: nothing to plot")
    labels = [str(v) for v in frame[by]]
    x = np.arange(len(labels), dtype=np.float64)
    fig = Figure(figsize=(max(5.0, 0.7 * len(labels) + 2.0), 5.6), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True)
    width = 0.4
    top.bar(
        x - width / 2,
        frame["similarity"].to_numpy(np.float64),
        width,
        label="similarity",
        color="#1f77b4",
    )
    top.bar(
        x + width / 2,
        frame["floor"].to_numpy(np.float64),
        width,
        label="floor (re-seeding)",
        color="0.6",
    )
    top.set_ylabel("mean per-entity similarity")
    top.set_ylim(0.0, 1.05)
    top.legend(fontsize=7, loc="upper left")
    top.grid(True, axis="y", alpha=0.3)
    fraction = frame["changed_fraction"].to_numpy(np.float64)
    if np.isfinite(fraction).any():
        bottom.bar(x, np.where(np.isfinite(fraction), fraction, 0.0), 0.6, color="#d62728")
        bottom.set_ylim(0.0, max(0.05, float(np.nanmax(fraction)) * 1.15))
    else:
        bottom.text(
            0.5,
            0.5,
            "no test (one seed, or not against the reference)",
            transform=bottom.transAxes,
            ha="center",
            fontsize=8,
            color="0.4",
        )
    bottom.set_ylabel("fraction changed")
    bottom.set_xticks(
        x,
        [f"{lab}\n(n={n})" for lab, n in zip(labels, frame["n_entities"], strict=True)],
        fontsize=7,
        rotation=0 if len(labels) <= 6 else 45,
    )
    bottom.set_xlabel(by)
    bottom.grid(True, axis="y", alpha=0.3)
    value = frame.attrs.get("value")
    what = f" at {frame.attrs.get('param', 'value')}={_fmt(value)}" if value is not None else ""
    fig.suptitle(title or f"Where the space moved{what}, by {by}", fontsize=10)
    return fig


def _find(values: Sequence[Any], v: Any) -> int | None:
    for i, w in enumerate(values):
        if (w == v and isinstance(w, bool) == isinstance(v, bool)) or w is v:
            return i
    return None


def _position(values: Sequence[Any], v: Any) -> int:
    i = _find(values, v)
    if i is None:
        raise InvalidParameterError(f"value {v!r} is not among {list(values)}")
    return i


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def save_figure(fig: Figure, path: str | os.PathLike[str], *, dpi: int = 120) -> Path:
    """Render ``fig`` as PNG and write it to ``path`` atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return write_atomic(path, buffer.getvalue())
