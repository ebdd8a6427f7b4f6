"""Sweep plots: one panel per measure, the noise band, valid PNG files."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from embspace.errors import InvalidParameterError
from embspace.plots import axis_label, plot_sweep, save_figure, x_positions

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _table(
    measures=("neighbors", "cca", "unitmatch", "cka"), noise=0.8, groups=("reference", "svd")
):
    values = [0.0, 0.01, 0.1, 0.5, 1.0, 2.0]
    rows = []
    for g in groups:
        for m in measures:
            for i, v in enumerate(values):
                rows.append(
                    {
                        "value": v,
                        "measure": m,
                        "against": g,
                        "similarity": 1.0 - 0.1 * i if g == "reference" else 0.5 + 0.05 * i,
                        "stdev": 0.02,
                        "noise_floor": noise if g == "reference" else np.nan,
                        "noise_floor_stdev": 0.03,
                        "n_pairs": 3,
                        # each value's own floor: 0.8 at the reference, rising after it
                        "floor": noise + 0.03 * i,
                        "floor_stdev": 0.03,
                    }
                )
    return pd.DataFrame(rows)


def _panels(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def assert_png(path: Path, min_width: int = 200) -> np.ndarray:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[1] >= min_width and image.shape[0] >= 100
    # not a blank canvas
    assert float(image[..., :3].std()) > 0.01
    return image


def test_one_panel_per_measure_with_noise_band(tmp_path: Path) -> None:
    table = _table()
    fig = plot_sweep(table, param="unobserved_weight", reference=0.0)
    panels = _panels(fig)
    assert len(panels) == 4
    assert [ax.get_title().split()[0].lower() for ax in panels] == [
        "neighbors",
        "cca",
        "unit",
        "linear",
    ]
    for ax in panels:
        assert ax.get_xlabel().startswith("unobserved_weight (symlog scale")
        # two groups: reference (without the reference itself) and svd (every value)
        lines = [ln for ln in ax.get_lines() if ln.get_marker() == "o"]
        assert len(lines) == 2
        np.testing.assert_allclose(sorted(lines[0].get_xdata()), [0.01, 0.1, 0.5, 1, 2])
        np.testing.assert_allclose(sorted(lines[1].get_xdata()), [0, 0.01, 0.1, 0.5, 1, 2])
        # the floor of every value (the reference's included): a dashed line through
        # 0.8, 0.83, ... and a band of +- 0.03 around it
        (floor,) = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
        np.testing.assert_allclose(floor.get_xdata(), [0, 0.01, 0.1, 0.5, 1, 2])
        np.testing.assert_allclose(floor.get_ydata(), 0.8 + 0.03 * np.arange(6))
        (band,) = ax.collections[-1:]
        verts = band.get_paths()[0].vertices
        inside = verts[np.isclose(verts[:, 0], 0.5)][:, 1]
        np.testing.assert_allclose(sorted(set(np.round(inside, 9))), [0.86, 0.92])
        assert ax.get_xscale() == "symlog"
    path = save_figure(fig, tmp_path / "sweep.png")
    assert_png(path)


def test_subset_of_groups_and_many_measures() -> None:
    measures = ("neighbors", "cca", "unitmatch", "cka", "cka_debiased", "procrustes", "svcca")
    fig = plot_sweep(_table(measures=measures), against="svd")
    panels = _panels(fig)
    assert len(panels) == 7
    for ax in panels:
        assert len([ln for ln in ax.get_lines() if ln.get_marker() == "o"]) == 1


def test_without_noise_floor_says_so() -> None:
    fig = plot_sweep(_table(noise=np.nan, groups=("reference",)))
    for ax in _panels(fig):
        assert any("no noise floor" in t.get_text() for t in ax.texts)
        assert ax.patches == [] or all(p.get_extents().height == 0 for p in ax.patches)
        assert not [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
        assert not [c for c in ax.collections if type(c).__name__ == "FillBetweenPolyCollection"]


def test_categorical_and_linear_axes() -> None:
    x, scale, labels = x_positions(["log", "linear", None])
    assert scale == "category" and list(x) == [0, 1, 2] and labels == ["log", "linear", "None"]
    x, scale, _ = x_positions([5, 10, 20])
    assert scale == "linear" and list(x) == [5, 10, 20]
    _, scale, _ = x_positions([0, 0.001, 1])
    assert scale == "symlog"


def test_bad_tables() -> None:
    with pytest.raises(InvalidParameterError, match="lacks"):
        plot_sweep(pd.DataFrame({"value": [1]}))
    with pytest.raises(InvalidParameterError, match="empty"):
        plot_sweep(_table().iloc[:0])
    with pytest.raises(InvalidParameterError, match="no rows against"):
        plot_sweep(_table(), against="pca")


def _marker_lines(ax):
    return [ln for ln in ax.get_lines() if ln.get_marker() == "o"]


@pytest.mark.parametrize("reference", [0.0, 1.0])
def test_no_line_to_the_reference_compared_with_itself(reference: float) -> None:
    table = _table(groups=("reference",))
    fig = plot_sweep(table, param="unobserved_weight", reference=reference)
    values = [0.0, 0.01, 0.1, 0.5, 1.0, 2.0]
    others = [v for v in values if v != reference]
    for ax in _panels(fig):
        (line,) = _marker_lines(ax)
        np.testing.assert_allclose(line.get_xdata(), others)
        # the drawn similarities are the table's, at the other values, in x order
        want = [1.0 - 0.1 * values.index(v) for v in others]
        np.testing.assert_allclose(line.get_ydata(), want)
        # a dotted vertical line marks where the reference is
        marks = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
        assert len(marks) == 1 and list(marks[0].get_xdata()) == [reference, reference]


def test_without_a_known_reference_every_value_is_drawn() -> None:
    table = _table(groups=("reference",))
    fig = plot_sweep(table, param="unobserved_weight")  # no attrs, no reference given
    for ax in _panels(fig):
        (line,) = _marker_lines(ax)
        assert len(line.get_xdata()) == 6
        assert not [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]


def test_no_reference_band_against_other_embeddings() -> None:
    fig = plot_sweep(_table(), param="unobserved_weight", reference=0.0, against="svd")
    for ax in _panels(fig):
        (line,) = _marker_lines(ax)
        assert len(line.get_xdata()) == 6  # every value, the reference value included
        assert not [ln for ln in ax.get_lines() if ln.get_linestyle() in ("--", ":")]
        assert all(p.get_extents().height == 0 for p in ax.patches)
        # no band at all: the error bars are the only collections
        assert not [c for c in ax.collections if "Poly" in type(c).__name__]
        assert not any("noise floor" in t.get_text() for t in ax.texts)
    legend = _panels(fig)[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["vs svd"]


def test_wide_values_are_on_a_symlog_axis_that_says_so() -> None:
    """0, 0.01, 0.1, 0.5, 1, 2: 0 on the linear part, the others on equal decades."""
    fig = plot_sweep(_table(), param="unobserved_weight", reference=0.0)
    ax = _panels(fig)[0]
    assert ax.get_xscale() == "symlog" and "symlog scale" in ax.get_xlabel()
    fig.canvas.draw()
    px = [ax.transData.transform((v, 0.5))[0] for v in (0.0, 0.01, 0.1, 1.0)]
    decade = px[2] - px[1]
    assert decade > 0 and px[3] - px[2] == pytest.approx(decade, rel=1e-6)
    assert px[1] - px[0] > 0.2 * decade  # 0 and 0.01 do not sit on each other


def test_axis_scales_and_labels() -> None:
    x, scale, _ = x_positions([0.01, 0.1, 1.0])
    assert scale == "log" and list(x) == [0.01, 0.1, 1.0]
    assert x_positions([0.0, 0.5, 1.0, 2.0])[1] == "linear"  # within a decade: drawn to scale
    assert x_positions([-1.0, 0.0, 0.01, 1.0])[1] == "symlog"
    assert axis_label("w", "linear") == "w"
    assert axis_label("w", "log") == "w (log scale)"
    assert "evenly spaced" in axis_label("solver", "category")
    table = _table(groups=("svd",))
    table = table[table["value"] > 0]
    fig = plot_sweep(table, param="unobserved_weight")
    ax = _panels(fig)[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "unobserved_weight (log scale)"
