"""A sweep as one self-contained HTML file: tables, interactive plots, the
per-entity changes, neighbors side by side, and the run's provenance.

The report is built from plain data (:class:`ReportData`: pandas DataFrames,
dicts and lists), never from a :class:`~embspace.Sweep` itself, so that it can
be rebuilt from a saved results folder (``embspace report RESULTS_DIR``):
:func:`embspace.sweeps.export.report_data` gathers it from a sweep,
:func:`embspace.sweeps.export.load_report_data` reads it back from the files
:func:`embspace.sweeps.export.save` writes.

The file opens offline: plotly.js is embedded once, inline (about 4.8 MB, most
of the file), the data as JSON in ``<script type="application/json">`` tags,
and a few lines of plain JavaScript (no library) search and sort the
per-entity table. Nothing is loaded from the network: no ``src`` or ``href``
points outside the file.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._atomic import write_atomic
from .errors import InvalidParameterError
from .jsonio import json_default, to_jsonable
from .plots import MEASURE_LABELS, x_positions

__all__ = [
    "DIGITS",
    "ReportData",
    "render_report",
    "value_label",
    "write_report",
]

#: Decimals shown for each numeric column of the sweep table (the text table's
#: precision: 3 decimals, calibrated scores 2).
DIGITS = {
    "similarity": 3,
    "stdev": 3,
    "floor": 3,
    "floor_stdev": 3,
    "reference_floor": 3,
    "chance": 3,
    "calibrated": 2,
    "p_value": 3,
    "p_adjusted": 3,
}

#: Per-entity rows listed at once in the changes table (the search and the
#: sort run over every row; only the first ones are drawn).
SHOWN_ROWS = 300

_REQUIRED_CONFIG = ("param", "values", "reference", "seeds", "measures")


@dataclass
class ReportData:
    """Everything a report shows, as plain data.

    ``config``: the sweep's configuration as :func:`embspace.sweeps.export.to_dict`
    writes it (``param``, ``values``, ``reference``, ``seeds``, ``measures``,
    ``entities``, ``k``, ``metric``, ``pairing``, ``gauge``,
    ``skipped_measures``, ``test``, ``estimator``, ``estimator_params``,
    ``data_fingerprint``). ``table``: :attr:`embspace.Sweep.table`.
    ``changes``: :meth:`embspace.Sweep.changes` of every value other than the
    reference, stacked, with a first column ``value`` (may be empty).
    ``neighbors``: the most changed entities of each value, each a dict with
    ``value``, ``key``, ``title``, ``n_ratings``, ``similarity``, ``floor``,
    ``q_value``, ``reference`` and ``changed`` (lists of ``{"title", "score"}``,
    the entity's neighbors in a reference run and in a run of the value),
    ``reference_seed`` and ``value_seed``. ``runs``: the
    :class:`~embspace.sweeps.RunRecord` dicts. ``provenance``: ``versions``
    (package -> version), ``dataset`` (fingerprint, name, sizes),
    ``changes_measure``, ``created`` and ``notes`` (sentences to show).
    """

    config: dict[str, Any]
    table: pd.DataFrame
    changes: pd.DataFrame
    neighbors: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)


def count_noun(data: ReportData) -> str:
    """What an entity's ``n_ratings`` counts: ``"ratings"`` for a ratings
    table, ``"occurrences"`` for a token corpus (its provenance's dataset
    has ``n_tokens``; a word's count is how often it occurs)."""
    dataset = data.provenance.get("dataset") or {}
    return "occurrences" if "n_tokens" in dataset else "ratings"


def value_label(v: Any) -> str:
    """A parameter value as the report prints it: floats by ``:g``, anything
    else by ``str`` (the faces' and the plots' format)."""
    if isinstance(v, (float, np.floating)):
        return f"{float(v):g}"
    return str(v)


def _num(x: Any) -> float:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return math.nan
    return f


def _fixed(x: Any, digits: int) -> str:
    f = _num(x)
    return f"{f:.{digits}f}" if math.isfinite(f) else "-"


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _json_script(element_id: str, payload: Any) -> str:
    text = json.dumps(to_jsonable(payload, finite=True), default=json_default, allow_nan=False)
    # nothing in the JSON may close the script element
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


# ---------------------------------------------------------------------- table
def _flag(x: Any) -> str:
    if x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return "yes" if bool(x) else "no"


def _table_html(data: ReportData, against: str) -> str:
    cfg = data.config
    table = data.table
    rows = table[table["against"] == against]
    seeds = cfg["seeds"]
    n = len(seeds)
    with_sd = n > 1
    reference = against == "reference"
    param = cfg["param"]
    ref_label = value_label(cfg["reference"])
    what = f"{param}={ref_label}" if reference else against
    head = f"similarity to {what}"
    head += f" (mean ± stdev over {n} seeds)" if with_sd else " (one seed)"
    header = [param, "measure", "similarity", "pairs", "floor", "chance", "calibrated"]
    if reference:
        header[5:5] = ["reference floor"]
        header += ["p_value", "p_adjusted", "changed"]
    header += ["converged"]
    body = []
    labels = [value_label(v) for v in cfg["values"]]
    measures = [m for m in cfg["measures"] if m in set(rows["measure"])]
    row_labels = rows["value"].map(value_label)
    for label in labels:
        part = rows[row_labels == label]
        for m in measures:
            r = part[part["measure"] == m]
            if r.empty:
                continue
            row = r.iloc[0]
            is_ref = reference and label == ref_label
            sim = _fixed(row["similarity"], DIGITS["similarity"])
            if with_sd and sim != "-" and math.isfinite(_num(row["stdev"])):
                sim += f" ± {_fixed(row['stdev'], DIGITS['stdev'])}"
            floor = _fixed(row["floor"], DIGITS["floor"])
            if with_sd and floor != "-" and math.isfinite(_num(row["floor_stdev"])):
                floor += f" ± {_fixed(row['floor_stdev'], DIGITS['floor_stdev'])}"
            cells = [
                ("value", label + (" (ref)" if is_ref else "")),
                ("measure", m),
                ("similarity", sim),
                (
                    "n_pairs",
                    str(int(row["n_pairs"])) if math.isfinite(_num(row["n_pairs"])) else "-",
                ),
                ("floor", floor),
            ]
            if reference:
                cells.append(
                    ("reference_floor", _fixed(row["reference_floor"], DIGITS["reference_floor"]))
                )
            cells += [
                ("chance", _fixed(row["chance"], DIGITS["chance"])),
                ("calibrated", _fixed(row["calibrated"], DIGITS["calibrated"])),
            ]
            if reference:
                cells += [
                    ("p_value", _fixed(row["p_value"], DIGITS["p_value"])),
                    ("p_adjusted", _fixed(row["p_adjusted"], DIGITS["p_adjusted"])),
                    ("changed", _flag(row["changed"])),
                ]
            cells.append(("converged", _flag(row["converged"])))
            klass = ' class="changed"' if reference and _flag(row["changed"]) == "yes" else ""
            tds = "".join(
                f'<td data-col="{c}"{" class=num" if c not in ("value", "measure") else ""}>'
                f"{_e(t)}</td>"
                for c, t in cells
            )
            body.append(
                f'<tr{klass} data-value="{_e(label)}" data-measure="{_e(m)}" '
                f'data-against="{_e(against)}">{tds}</tr>'
            )
    ths = "".join(f"<th>{_e(h)}</th>" for h in header)
    notes = []
    test = cfg.get("test") or {}
    if reference and n >= 2:
        n_tests = int(rows["p_adjusted"].map(_num).map(math.isfinite).sum())
        p_min = _num(test.get("smallest_p_value"))
        alpha = _num(test.get("alpha"))
        if n_tests and math.isfinite(p_min) and n_tests * p_min > alpha:
            notes.append(
                f"With {n} seeds the smallest p-value is {p_min:.3g}: after Holm over "
                f"{n_tests} tests none can reach {alpha:g}, so changed = no is no verdict "
                f"(seeds needed: {test.get('seeds_needed', '?')})."
            )
    if reference and n < 2:
        notes.append(
            "With one seed there is no floor and no test: nothing here can be told apart "
            "from re-seeding."
        )
    note_html = "".join(f'<p class="note verdict-note">{_e(t)}</p>' for t in notes)
    return (
        f'<h3 class="table-head">{_e(head)}</h3>'
        f'<table class="sweep" data-against="{_e(against)}"><thead><tr>{ths}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>{note_html}"
    )


def _explanations(data: ReportData) -> str:
    cfg = data.config
    test = cfg.get("test") or {}
    alpha = _num(test.get("alpha"))
    alpha_text = f"{alpha:g}" if math.isfinite(alpha) else "0.05"
    pairing = cfg.get("pairing", "cross")
    pair_text = (
        "each run of the value against the reference runs of the other seeds (runs of one "
        "seed share their start)"
        if pairing == "cross"
        else "each run of the value against the reference run of the same seed"
    )
    items = [
        f"<b>similarity</b>: mean (± stdev) over the <b>pairs</b> of runs compared: {pair_text}.",
        "<b>floor</b>: the similarity of the value's own runs of distinct seeds, what "
        "re-seeding alone does; the <b>reference floor</b> is the reference value's.",
        "<b>chance</b>: the score of unrelated spaces (the second space's rows shuffled).",
        "<b>calibrated</b> = (similarity − chance) / (floor − chance): 1 is as alike as a "
        "re-seed, 0 as alike as unrelated spaces.",
        "<b>p_value</b>: permutation test of the run labels (is the value's space different "
        "from the reference's beyond seed noise?); <b>p_adjusted</b>: Holm's adjustment over "
        f"the table's {test.get('n_tests', '?')} tests; <b>changed</b>: p_adjusted ≤ "
        f"{alpha_text} (- where there is no test).",
        "<b>converged</b>: every run of the row met its convergence test (no: one ran to its "
        "iteration cap or had no test; -: the estimator does not say).",
        "Against other embeddings (e.g. an SVD) there is no reference floor and no test.",
    ]
    return '<ul class="explain">' + "".join(f"<li>{t}</li>" for t in items) + "</ul>"


# ---------------------------------------------------------------------- plots
_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]


def _sweep_figure(data: ReportData) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    cfg = data.config
    table = data.table
    param = cfg["param"]
    values = list(cfg["values"])
    labels = [value_label(v) for v in values]
    ref_label = value_label(cfg["reference"])
    measures = [m for m in cfg["measures"] if m in set(table["measure"])]
    x_all, scale, _ = x_positions(values)
    if scale in ("symlog", "category"):
        xs: list[Any] = labels
        axis_type = "category"
        x_title = f"{param} (evenly spaced)"
    else:
        xs = [float(x) for x in x_all]
        axis_type = "log" if scale == "log" else "linear"
        x_title = f"{param} (log scale)" if scale == "log" else param
    pos = {label: xs[i] for i, label in enumerate(labels)}
    n = max(1, len(measures))
    ncols = n if n <= 3 else 3
    nrows = math.ceil(n / ncols)
    fig = make_subplots(
        rows=nrows,
        cols=ncols,
        subplot_titles=[MEASURE_LABELS.get(m, m) for m in measures],
        horizontal_spacing=0.07,
        vertical_spacing=0.16 if nrows > 1 else 0.1,
    )
    groups = list(dict.fromkeys(table["against"]))
    row_labels = table["value"].map(value_label)
    order = {label: i for i, label in enumerate(labels)}
    for i, m in enumerate(measures):
        r, c = i // ncols + 1, i % ncols + 1
        rows = table[table["measure"] == m]
        rl = row_labels[rows.index]
        ref_rows = rows[rows["against"] == "reference"]
        floors = ref_rows[ref_rows["floor"].map(_num).map(math.isfinite)]
        if len(floors):
            fl = sorted(floors.index, key=lambda j: order.get(rl[j], 0))
            fx = [pos[rl[j]] for j in fl]
            fy = [float(floors.at[j, "floor"]) for j in fl]
            fsd = [_num(floors.at[j, "floor_stdev"]) for j in fl]
            fsd = [s if math.isfinite(s) else 0.0 for s in fsd]
            fig.add_trace(
                go.Scatter(
                    x=fx + fx[::-1],
                    y=[y + s for y, s in zip(fy, fsd, strict=True)]
                    + [y - s for y, s in zip(fy, fsd, strict=True)][::-1],
                    mode="lines",
                    fill="toself",
                    fillcolor="rgba(120,120,120,0.18)",
                    line={"width": 0},
                    hoverinfo="skip",
                    showlegend=False,
                    legendgroup="floor",
                ),
                row=r,
                col=c,
            )
            fig.add_trace(
                go.Scatter(
                    x=fx,
                    y=fy,
                    mode="lines+markers",
                    line={"color": "#555", "dash": "dash", "width": 1},
                    marker={"symbol": "line-ew-open", "size": 10},
                    name="floor (each value reseeded, ± stdev)",
                    legendgroup="floor",
                    showlegend=i == 0,
                    hovertemplate="floor at %{x}: %{y:.3f}<extra></extra>",
                ),
                row=r,
                col=c,
            )
        chance = rows[rows["against"] == "reference"]["chance"].map(_num)
        chance = chance[chance.map(math.isfinite)]
        if len(chance):
            cl = sorted(chance.index, key=lambda j: order.get(rl[j], 0))
            fig.add_trace(
                go.Scatter(
                    x=[pos[rl[j]] for j in cl],
                    y=[float(chance[j]) for j in cl],
                    mode="lines",
                    line={"color": "#999", "dash": "dot", "width": 1},
                    name="chance (unrelated spaces)",
                    legendgroup="chance",
                    showlegend=i == 0,
                    hovertemplate="chance at %{x}: %{y:.3f}<extra></extra>",
                ),
                row=r,
                col=c,
            )
        for g, group in enumerate(groups):
            part = rows[rows["against"] == group]
            if group == "reference":
                part = part[rl[part.index] != ref_label]
            if part.empty:
                continue
            idx = sorted(part.index, key=lambda j: order.get(rl[j], 0))
            y = [float(part.at[j, "similarity"]) for j in idx]
            sd = [_num(part.at[j, "stdev"]) for j in idx]
            sd = [s if math.isfinite(s) else 0.0 for s in sd]
            name = f"vs {param}={ref_label}" if group == "reference" else f"vs {group}"
            fig.add_trace(
                go.Scatter(
                    x=[pos[rl[j]] for j in idx],
                    y=y,
                    error_y={"type": "data", "array": sd, "visible": True, "thickness": 1},
                    mode="lines+markers",
                    line={"color": _COLORS[g % len(_COLORS)]},
                    name=name,
                    legendgroup=group,
                    showlegend=i == 0,
                    hovertemplate=f"{name}<br>{param}=%{{x}}: %{{y:.3f}}<extra></extra>",
                ),
                row=r,
                col=c,
            )
        fig.update_xaxes(type=axis_type, title_text=x_title, row=r, col=c)
        fig.update_yaxes(title_text="similarity" if c == 1 else None, row=r, col=c)
    fig.update_layout(
        height=330 * nrows + 90,
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.12 if nrows == 1 else -0.06},
        template="plotly_white",
    )
    return fig


def _changes_figures(data: ReportData, measure: str) -> list[tuple[str, Any]]:
    """The per-entity similarity's distribution per value, and its mean by popularity."""
    import plotly.graph_objects as go

    ch = data.changes
    if ch.empty:
        return []
    cfg = data.config
    param = cfg["param"]
    labels = [value_label(v) for v in cfg["values"]]
    ch_labels = ch["value"].map(value_label)
    present = [label for label in labels if (ch_labels == label).any()]
    noun = count_noun(data)
    edges = np.linspace(0.0, 1.0, 21)
    hist = go.Figure()
    pop = go.Figure()

    def by_popularity(nr: np.ndarray, s: np.ndarray) -> tuple[list[float], list[float], list[int]]:
        """Median count, mean of ``s`` and size of each bin [2^b, 2^(b+1)) of counts."""
        ok = np.isfinite(s) & np.isfinite(nr)
        b = np.floor(np.log2(np.maximum(nr[ok], 1.0))).astype(np.int64)
        xs, ys, ns = [], [], []
        for v in np.unique(b):
            sel = b == v
            xs.append(float(np.median(nr[ok][sel])))
            ys.append(float(np.mean(s[ok][sel])))
            ns.append(int(sel.sum()))
        return xs, ys, ns

    first = None
    top = 0.0  # the right end of the histogram's x axis: the last bin with entities
    for g, label in enumerate(present):
        part = ch[ch_labels == label]
        sim = part["similarity"].to_numpy(np.float64)
        sim = sim[np.isfinite(sim)]
        counts, _ = np.histogram(np.clip(sim, 0.0, 1.0), bins=edges)
        top = max(top, float(edges[1:][counts > 0].max()) if counts.any() else 0.0)
        color = _COLORS[(g + 1) % len(_COLORS)]
        hist.add_trace(
            go.Scatter(
                x=(edges[:-1] + edges[1:]) / 2,
                y=[int(c) if c > 0 else None for c in counts],
                mode="lines",
                line={"color": color, "shape": "hvh", "width": 2},
                connectgaps=False,
                name=f"{param}={label}",
                hovertemplate=f"{param}={label}<br>similarity %{{x:.3f}}: %{{y}} entities"
                "<extra></extra>",
            )
        )
        if first is None:
            first = part
        # mean per popularity bin (ratings in [1, 2), [2, 4), [4, 8), ...)
        xs, ys, ns = by_popularity(
            part["n_ratings"].to_numpy(np.float64), part["similarity"].to_numpy(np.float64)
        )
        pop.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                customdata=ns,
                mode="lines+markers",
                name=f"{param}={label}",
                line={"color": color},
                hovertemplate=f"{param}={label}<br>median {noun} %{{x:.0f}} "
                "(%{customdata} entities): mean similarity %{y:.3f}<extra></extra>",
            )
        )
    if first is not None and "floor_reference" in first:
        xs, ys, ns = by_popularity(
            first["n_ratings"].to_numpy(np.float64),
            first["floor_reference"].to_numpy(np.float64),
        )
        pop.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                customdata=ns,
                mode="lines+markers",
                name=f"floor: {param}={value_label(cfg['reference'])} reseeded",
                line={"color": "#333", "dash": "dash"},
                hovertemplate=f"floor<br>median {noun} %{{x:.0f}} (%{{customdata}} entities): "
                "mean similarity %{y:.3f}<extra></extra>",
            )
        )
        fr = first["floor_reference"].to_numpy(np.float64)
        fr = fr[np.isfinite(fr)]
        if fr.size:
            counts, _ = np.histogram(np.clip(fr, 0.0, 1.0), bins=edges)
            top = max(top, float(edges[1:][counts > 0].max()) if counts.any() else 0.0)
            hist.add_trace(
                go.Scatter(
                    x=(edges[:-1] + edges[1:]) / 2,
                    y=[int(c) if c > 0 else None for c in counts],
                    mode="lines",
                    line={"color": "#333", "dash": "dash", "shape": "hvh"},
                    name=f"floor: {param}={value_label(cfg['reference'])} reseeded",
                    hovertemplate="floor<br>similarity %{x:.3f}: %{y} entities<extra></extra>",
                )
            )
    hist.update_layout(
        template="plotly_white",
        height=360,
        margin={"l": 60, "r": 20, "t": 40, "b": 50},
        title={
            "text": f"Per-entity {measure} similarity to {param}={value_label(cfg['reference'])}",
            "font": {"size": 14},
        },
        xaxis={
            "title": f"per-entity similarity ({measure}, k = {cfg.get('k', '?')})",
            "range": [0.0, min(1.0, top + 0.05) if top > 0 else 1.0],
        },
        yaxis={"title": "entities (log scale)", "type": "log"},
    )
    pop.update_layout(
        template="plotly_white",
        height=360,
        margin={"l": 60, "r": 20, "t": 40, "b": 50},
        title={"text": "Per-entity similarity by popularity", "font": {"size": 14}},
        xaxis={
            "type": "log",
            "title": f"{noun} per entity (median of each bin [2^b, 2^(b+1)), log scale)",
        },
        yaxis_title="mean per-entity similarity",
    )
    return [("fig-changes-hist", hist), ("fig-changes-popularity", pop)]


def _figure_div(element_id: str, fig: Any) -> str:
    return str(
        fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=element_id,
            config={"displaylogo": False, "responsive": True, "showSendToCloud": False},
        )
    )


# ---------------------------------------------------------------------- changes
def _changes_payload(data: ReportData) -> dict[str, Any]:
    """The per-entity table's data: the entities once (``title``, ``n_ratings``,
    in the order of the first value's rows), and per value its numbers in that
    order (rows are matched by key)."""
    ch = data.changes
    cfg = data.config
    out: dict[str, Any] = {"values": [], "title": [], "n_ratings": [], "rows": {}}
    if ch.empty:
        return out
    labels = [value_label(v) for v in cfg["values"]]
    ch_labels = ch["value"].map(value_label)

    def rnd(a: np.ndarray) -> list[Any]:
        return [round(float(x), 6) if math.isfinite(x) else None for x in a]

    order: dict[Any, int] | None = None
    for label in labels:
        part = ch[ch_labels == label]
        if part.empty:
            continue
        keys = list(part["key"])
        if order is None:
            order = {k: i for i, k in enumerate(keys)}
            out["title"] = [str(t) for t in part["title"]]
            out["n_ratings"] = [int(x) for x in part["n_ratings"]]
        if len(keys) != len(order) or any(k not in order for k in keys):
            raise InvalidParameterError(
                f"the per-entity changes of {cfg['param']}={label} are not of the same "
                "entities as the first value's"
            )
        at = np.array([order[k] for k in keys], dtype=np.int64)

        def column(name: str, at: np.ndarray = at, part: pd.DataFrame = part) -> np.ndarray:
            a = np.full(len(at), np.nan)
            a[at] = part[name].to_numpy(np.float64)
            return a

        changed: list[str] = ["-"] * len(at)
        for i, x in zip(at, part["changed"], strict=True):
            changed[i] = _flag(x)
        out["values"].append(label)
        out["rows"][label] = {
            "similarity": rnd(column("similarity")),
            "floor": rnd(column("floor")),
            "p_value": rnd(column("p_value")),
            "q_value": rnd(column("q_value")),
            "changed": changed,
        }
    return out


def _changes_html(data: ReportData, measure: str) -> str:
    payload = _changes_payload(data)
    if not payload["values"]:
        return '<p class="note">No per-entity changes: the sweep has no value besides its reference.</p>'
    cfg = data.config
    param = cfg["param"]
    options = "".join(
        f'<option value="{_e(v)}">{_e(param)}={_e(v)}</option>' for v in payload["values"]
    )
    n_seeds = len(cfg["seeds"])
    noun = count_noun(data)
    header = [
        ("title", "entity", "text"),
        ("n_ratings", noun, "num"),
        ("similarity", "similarity", "num"),
        ("floor", "floor", "num"),
        ("delta", "similarity − floor", "num"),
        ("p_value", "p_value", "num"),
        ("q_value", "q_value", "num"),
        ("changed", "changed", "text"),
    ]
    ths = "".join(
        f'<th data-key="{k}" data-type="{t}" tabindex="0" role="button">{_e(h)}'
        f'<span class="arrow"></span></th>'
        for k, h, t in header
    )
    return f"""
<p>Per entity, how far the runs of a value moved its {_e(cfg.get("entities", "items"))}'
neighborhood ({_e(measure)}, k = {_e(cfg.get("k", "?"))}) from the reference's:
<b>similarity</b> is the mean over the pairs of runs, <b>floor</b> the mean of the entity's
similarity between runs of distinct seeds of the value and of the reference (what re-seeding
alone does), <b>p_value</b> a per-entity permutation test of the run labels, <b>q_value</b>
Benjamini-Hochberg across entities, <b>changed</b>: q_value ≤ 0.05 (- without a test).
<b>{noun}</b> is the entity's number of {noun} (its popularity). With {n_seeds} seed(s) the
per-entity test's smallest p-value is bounded by the seeds: few seeds cannot flag any entity.
Click a column to sort; type to search the titles.</p>
<div class="controls">
  <label>value <select id="changes-value">{options}</select></label>
  <label>search <input id="changes-search" type="search" placeholder="title contains…"></label>
  <span id="changes-count" class="note"></span>
</div>
<div class="scroll"><table id="changes-table" class="changes">
<thead><tr>{ths}</tr></thead><tbody></tbody></table></div>
{_json_script("changes-data", payload)}
"""


_CHANGES_JS = """
(function () {
  var data = JSON.parse(document.getElementById('changes-data').textContent);
  var table = document.getElementById('changes-table');
  if (!table || !data.values.length) { return; }
  var select = document.getElementById('changes-value');
  var search = document.getElementById('changes-search');
  var count = document.getElementById('changes-count');
  var body = table.tBodies[0];
  var state = {key: 'similarity', asc: true};
  var LIMIT = %(limit)d;
  function fmt(x, d) { return (x === null || x === undefined) ? '-' : x.toFixed(d); }
  function rows() {
    var v = data.rows[select.value];
    var out = [];
    for (var i = 0; i < data.title.length; i++) {
      var s = v.similarity[i], f = v.floor[i];
      out.push({title: data.title[i], n_ratings: data.n_ratings[i], similarity: s, floor: f,
                delta: (s === null || f === null) ? null : s - f,
                p_value: v.p_value[i], q_value: v.q_value[i], changed: v.changed[i]});
    }
    return out;
  }
  function render() {
    var q = search.value.trim().toLowerCase();
    var all = rows();
    var shown = all.filter(function (r) { return !q || r.title.toLowerCase().indexOf(q) >= 0; });
    var k = state.key, sign = state.asc ? 1 : -1;
    shown.sort(function (a, b) {
      var x = a[k], y = b[k];
      if (x === null && y === null) { return 0; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      if (typeof x === 'string') { return sign * x.localeCompare(y); }
      return sign * (x - y);
    });
    var frag = document.createDocumentFragment();
    shown.slice(0, LIMIT).forEach(function (r) {
      var tr = document.createElement('tr');
      if (r.changed === 'yes') { tr.className = 'changed'; }
      [[r.title, 'text'], [String(r.n_ratings), 'num'], [fmt(r.similarity, 3), 'num'],
       [fmt(r.floor, 3), 'num'], [fmt(r.delta, 3), 'num'], [fmt(r.p_value, 3), 'num'],
       [fmt(r.q_value, 3), 'num'], [r.changed, 'text']].forEach(function (c) {
        var td = document.createElement('td');
        td.textContent = c[0];
        if (c[1] === 'num') { td.className = 'num'; }
        tr.appendChild(td);
      });
      frag.appendChild(tr);
    });
    body.replaceChildren(frag);
    count.textContent = 'showing ' + Math.min(LIMIT, shown.length) + ' of ' + shown.length +
      ' matching (' + all.length + ' entities)';
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      th.querySelector('.arrow').textContent =
        th.dataset.key === state.key ? (state.asc ? ' \\u25b2' : ' \\u25bc') : '';
    });
  }
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
    function sortBy() {
      if (state.key === th.dataset.key) { state.asc = !state.asc; }
      else { state.key = th.dataset.key; state.asc = th.dataset.type === 'text'; }
      render();
    }
    th.addEventListener('click', sortBy);
    th.addEventListener('keydown', function (e) { if (e.key === 'Enter') { sortBy(); } });
  });
  select.addEventListener('change', render);
  search.addEventListener('input', render);
  render();
})();
(function () {
  var select = document.getElementById('neighbors-value');
  if (!select) { return; }
  function show() {
    document.querySelectorAll('.nb-group').forEach(function (g) {
      g.hidden = g.dataset.value !== select.value;
    });
  }
  select.addEventListener('change', show);
  show();
})();
"""


# ---------------------------------------------------------------------- neighbors
def _neighbors_html(data: ReportData) -> str:
    if not data.neighbors:
        return (
            '<p class="note">No neighbor lists: the sweep has no value besides its reference.</p>'
        )
    cfg = data.config
    param = cfg["param"]
    ref_label = value_label(cfg["reference"])
    noun = count_noun(data)
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in data.neighbors:
        groups.setdefault(value_label(item["value"]), []).append(item)
    options = "".join(f'<option value="{_e(v)}">{_e(param)}={_e(v)}</option>' for v in groups)
    parts = []
    for label, items in groups.items():
        cards = []
        for it in items:
            ref_titles = [str(n["title"]) for n in it["reference"]]
            new_titles = [str(n["title"]) for n in it["changed"]]
            shared = set(ref_titles) & set(new_titles)

            def listing(entries: Sequence[Mapping[str, Any]], shared: set[str] = shared) -> str:
                lis = []
                for n in entries:
                    cls = "shared" if str(n["title"]) in shared else "only"
                    lis.append(
                        f'<li class="{cls}"><div><span>{_e(n["title"])}</span>'
                        f'<span class="num">{_fixed(n.get("score"), 3)}</span></div></li>'
                    )
                return "<ol>" + "".join(lis) + "</ol>"

            stats = (
                f"{int(it.get('n_ratings', 0))} {noun} · similarity "
                f"{_fixed(it.get('similarity'), 3)} · floor {_fixed(it.get('floor'), 3)} · "
                f"{len(shared)} of {len(ref_titles)} neighbors shared"
            )
            cards.append(
                f'<div class="nb-card"><h4>{_e(it["title"])}</h4><p class="note">{_e(stats)}</p>'
                f'<div class="nb-cols"><div><h5>{_e(param)}={_e(ref_label)} '
                f"(seed {_e(it.get('reference_seed'))})</h5>{listing(it['reference'])}</div>"
                f"<div><h5>{_e(param)}={_e(label)} (seed {_e(it.get('value_seed'))})</h5>"
                f"{listing(it['changed'])}</div></div></div>"
            )
        parts.append(f'<div class="nb-group" data-value="{_e(label)}">{"".join(cards)}</div>')
    return (
        f"<p>The {len(next(iter(groups.values())))} entities whose neighborhoods moved most "
        "(smallest q_value first, then the furthest below their floor: similarity − floor) and their neighbors in a run "
        "of the reference and in a run of the value, side by side; neighbors found in both "
        "lists are in grey, those in one list only in bold. Scores: the metric's similarity "
        f"({_e(cfg.get('metric', '?'))}).</p>"
        f'<div class="controls"><label>value <select id="neighbors-value">{options}</select>'
        f"</label></div>{''.join(parts)}"
    )


# ---------------------------------------------------------------------- provenance
def _kv_table(pairs: Sequence[tuple[str, Any]], klass: str = "kv") -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_show(v))}</td></tr>" for k, v in pairs)
    return f'<table class="{klass}">{rows}</table>'


def _show(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_show(x) for x in v)
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_show(x)}" for k, x in v.items()) or "-"
    if v is None:
        return "None"
    return str(v)


def _provenance_html(data: ReportData) -> str:
    cfg = data.config
    prov = data.provenance
    dataset = dict(prov.get("dataset") or {})
    dataset.setdefault("fingerprint", cfg.get("data_fingerprint"))
    ds = _kv_table(list(dataset.items()))
    params = cfg.get("estimator_params") or {}
    est_rows = [
        (
            k,
            (
                f"swept: {', '.join(value_label(v) for v in cfg['values'])}"
                if k == cfg["param"]
                else ("varied: the seeds" if k == "random_state" else v)
            ),
        )
        for k, v in params.items()
    ]
    est = _kv_table(est_rows)
    sweep_rows: list[tuple[str, Any]] = [
        ("estimator", cfg.get("estimator")),
        ("parameter", cfg["param"]),
        ("values", [value_label(v) for v in cfg["values"]]),
        ("reference", value_label(cfg["reference"])),
        ("seeds", cfg["seeds"]),
        ("pairing", cfg.get("pairing")),
        ("entities", cfg.get("entities")),
        ("k", cfg.get("k")),
        ("metric", cfg.get("metric")),
        ("measures", list(cfg["measures"])),
        ("measures skipped", cfg.get("skipped_measures") or {}),
        ("gauge", cfg.get("gauge")),
        ("device (comparisons)", prov.get("device")),
        ("threads", prov.get("num_threads") or "every CPU"),
        ("per-entity measure", prov.get("changes_measure")),
        ("test", cfg.get("test") or {}),
    ]
    sw = _kv_table(sweep_rows)
    versions = _kv_table(list((prov.get("versions") or {}).items()))
    run_cols = [
        ("run_index", "run"),
        ("value", cfg["param"]),
        ("seed", "seed"),
        ("cached", "cached"),
        ("fit_time", "fit time (s)"),
        ("elapsed", "elapsed (s)"),
        ("n_iter", "iterations"),
        ("loss", "loss"),
        ("converged", "converged"),
        ("tol", "tol"),
        ("last_decrease", "last decrease"),
    ]
    ths = "".join(f"<th>{_e(h)}</th>" for _, h in run_cols)
    trs = []
    for run in data.runs:
        tds = []
        for c, _ in run_cols:
            v = run.get(c)
            if c in ("fit_time", "elapsed"):
                t = _fixed(v, 3)
            elif c in ("loss", "last_decrease", "tol"):
                t = "-" if v is None or not math.isfinite(_num(v)) else f"{_num(v):.6g}"
            elif c == "value":
                t = value_label(v)
            elif c in ("cached", "converged"):
                t = _flag(v)
            else:
                t = "-" if v is None else str(v)
            tds.append(f'<td class="num">{_e(t)}</td>')
        trs.append("<tr>" + "".join(tds) + "</tr>")
    total_fit = sum(
        _num(r.get("fit_time")) for r in data.runs if math.isfinite(_num(r.get("fit_time")))
    )
    total_el = sum(
        _num(r.get("elapsed")) for r in data.runs if math.isfinite(_num(r.get("elapsed")))
    )
    runs = (
        f'<div class="scroll"><table class="runs"><thead><tr>{ths}</tr></thead>'
        f"<tbody>{''.join(trs)}</tbody></table></div>"
        f'<p class="note">{len(data.runs)} runs; training {total_fit:.2f} s in all (for cached '
        f"runs, the time of the training that made the cache entry), {total_el:.2f} s spent "
        "by this sweep.</p>"
    )
    return f"""
<div class="prov-grid">
<div><h3>Dataset</h3>{ds}<h3>Sweep</h3>{sw}</div>
<div><h3>Estimator parameters</h3>{est}<h3>Packages</h3>{versions}</div>
</div>
<h3>Runs: timings and convergence</h3>{runs}
"""


_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
  margin: 0 auto; max-width: 1200px; padding: 0 24px 48px; }
h1 { font-size: 24px; margin: 24px 0 4px; }
h2 { font-size: 19px; margin: 32px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
h4 { margin: 0 0 2px; font-size: 14px; }
h5 { margin: 6px 0 2px; font-size: 12px; color: #555; font-weight: 600; }
nav a { margin-right: 14px; color: #1f5fa8; text-decoration: none; }
.sub, .note { color: #555; font-size: 13px; }
.verdict-note { background: #fff8e1; border-left: 3px solid #f0b400; padding: 6px 10px; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0; }
th, td { padding: 3px 9px; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }
thead th { background: #f5f6f8; border-bottom: 1px solid #ccc; position: sticky; top: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.changed td { background: #fdecea; }
table.changes th { cursor: pointer; user-select: none; white-space: nowrap; }
.scroll { max-height: 520px; overflow: auto; border: 1px solid #eee; }
.controls { margin: 8px 0; display: flex; gap: 18px; align-items: center; flex-wrap: wrap; }
.controls input, .controls select { font: inherit; padding: 2px 6px; }
.explain { font-size: 13px; color: #333; padding-left: 20px; }
.nb-group[hidden] { display: none; }
.nb-group { display: grid; grid-template-columns: repeat(auto-fill, minmax(500px, 1fr)); gap: 12px; }
.nb-card { border: 1px solid #e2e2e2; border-radius: 6px; padding: 10px 12px; }
.nb-cols { display: grid; grid-template-columns: 1fr 1fr; gap: 10px; }
.nb-cols ol { margin: 0; padding-left: 20px; font-size: 12px; }
.nb-cols li div { display: flex; justify-content: space-between; gap: 6px; }
.nb-cols li span.num { color: #666; }
.nb-cols li.shared { color: #888; }
.nb-cols li.only { font-weight: 600; }
.prov-grid { display: grid; grid-template-columns: 1fr 1fr; gap: 24px; }
table.kv th { font-weight: 600; white-space: nowrap; background: none; position: static; }
table.kv td { word-break: break-word; }
"""


def render_report(data: ReportData, title: str | None = None) -> str:
    """The report of ``data`` as one HTML document (str), self-contained.

    Needs plotly (``pip install embspace[report]``); raises
    :class:`~embspace.errors.InvalidParameterError` when ``data`` lacks what a
    report shows (a config key, the table's columns)."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:  # pragma: no cover - plotly is a dependency of the report extra
        raise InvalidParameterError(
            "the HTML report needs plotly: pip install 'embspace[report]'"
        ) from None
    missing = [k for k in _REQUIRED_CONFIG if k not in data.config]
    if missing:
        raise InvalidParameterError(f"the report's config lacks {missing}")
    for col in ("value", "measure", "against", "similarity", "floor", "p_adjusted"):
        if col not in data.table.columns:
            raise InvalidParameterError(f"the report's table lacks the column {col!r}")
    cfg = data.config
    prov = data.provenance
    param = cfg["param"]
    measure = str(prov.get("changes_measure") or "neighbors")
    title = title or f"How the space changes with {param}"
    groups = list(dict.fromkeys(data.table["against"]))
    tables = "".join(_table_html(data, g) for g in groups)
    sweep_fig = _figure_div("fig-sweep", _sweep_figure(data))
    change_figs = "".join(_figure_div(i, f) for i, f in _changes_figures(data, measure))
    notes = "".join(
        f'<p class="note verdict-note">{_e(t[:1].upper() + t[1:])}</p>'
        for t in prov.get("notes") or []
    )
    n_seeds = len(cfg["seeds"])
    subtitle = (
        f"{_e(cfg.get('estimator', ''))}, {_e(param)} over "
        f"{_e(', '.join(value_label(v) for v in cfg['values']))} "
        f"(reference {_e(value_label(cfg['reference']))}), {n_seeds} seed(s), "
        f"{_e(cfg.get('entities', 'items'))} compared; data "
        f"{_e((prov.get('dataset') or {}).get('name', ''))} "
        f"<code>{_e(str(cfg.get('data_fingerprint', ''))[:16])}</code>"
        f"{' · made ' + _e(prov['created']) if prov.get('created') else ''}"
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="embspace {_e((prov.get("versions") or {}).get("embspace", ""))}">
<title>{_e(title)}</title>
<style>{_CSS}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head>
<body>
<h1>{_e(title)}</h1>
<p class="sub">{subtitle}</p>
<nav><a href="#tables">Tables</a><a href="#plots">Plots</a><a href="#changes">Per-entity
changes</a><a href="#neighbors">Neighbors</a><a href="#provenance">Provenance</a></nav>
{notes}
<h2 id="tables">Tables</h2>
{tables}
{_explanations(data)}
<h2 id="plots">Plots</h2>
<p class="note">Similarity of each value's runs to the reference's (mean ± stdev over the
pairs of seeds), each value's floor (its own runs reseeded, band ± stdev) and chance. The
reference compared with itself is not drawn. Hover for numbers; drag to zoom, double-click to
reset; click a legend entry to hide it.</p>
{sweep_fig}
{change_figs}
<h2 id="changes">Per-entity changes</h2>
{_changes_html(data, measure)}
<h2 id="neighbors">Neighbors of the most changed entities</h2>
{_neighbors_html(data)}
<h2 id="provenance">Provenance</h2>
{_provenance_html(data)}
<script type="text/javascript">{_CHANGES_JS % {"limit": SHOWN_ROWS}}</script>
</body>
</html>
"""


def write_report(data: ReportData, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Render ``data`` (:func:`render_report`) and write it to ``path``
    atomically (the folder must exist). Returns the path."""
    path = Path(path)
    text = render_report(data, title=title)
    write_atomic(path, text.encode("utf-8"))
    return path
