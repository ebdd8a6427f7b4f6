"""What the TUI shows (embspace.tui.views): pure functions, tested without Textual."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from embspace import datasets
from embspace.errors import InvalidParameterError
from embspace.tui.views import changes, form, grid, neighbors, pairs, search


def test_format_cell():
    assert grid.format_cell(0.87349, 0.95) == "0.873 (floor 0.950)"
    assert grid.format_cell(0.5, float("nan")) == "0.500"
    assert grid.format_cell(0.5, None) == "0.500"
    assert grid.format_cell(float("nan"), 0.9) == "—"


# ---------------------------------------------------------------------- results


def _table(rows):
    """A Sweep.table-shaped frame from (value, measure, against, similarity, floor) rows."""
    frame = pd.DataFrame(rows, columns=["value", "measure", "against", "similarity", "noise_floor"])
    frame["stdev"] = np.nan
    frame["noise_floor_stdev"] = np.nan
    frame["n_pairs"] = 1
    return frame


def test_similarity_grid_rows_are_values_and_cells_fill_as_results_arrive():
    table = _table(
        [
            (0.0, "neighbors", "reference", 1.0, 0.61),
            (0.0, "cca", "reference", 1.0, 0.97),
            (0.5, "neighbors", "reference", 0.4321, 0.61),
            (0.5, "neighbors", "svd", 0.2, 0.61),
        ]
    )
    table["floor"] = table["noise_floor"]
    rows = grid.similarity_grid(table, [0.0, 0.5, 2.0], ["neighbors", "cca"], reference=0.0)
    assert [r.label for r in rows] == ["0 (ref)", "0.5", "2"]
    assert rows[0].cells == ("1.000 (floor 0.610)", "1.000 (floor 0.970)")
    assert rows[1].cells == ("0.432 (floor 0.610)", "…")
    assert rows[2].cells == ("…", "…")
    assert [r.done for r in rows] == [True, False, False]
    svd = grid.similarity_grid(table, [0.0, 0.5], ["neighbors"], against="svd")
    assert [r.cells for r in svd] == [("…",), ("0.200 (floor 0.610)",)]
    # an empty table (nothing finished yet) gives placeholders only
    empty = grid.similarity_grid(table.iloc[:0], [1, 2], ["cka"])
    assert [r.cells for r in empty] == [("…",), ("…",)]


def test_similarity_grid_shows_each_values_own_floor():
    # a table with the value's own floor (``floor``) beside the reference's
    # (``noise_floor``): the cell shows the own floor, its test's yardstick
    table = _table(
        [
            (0.0, "cka", "reference", 0.95, 0.95),
            (1.0, "cka", "reference", 0.70, 0.95),
        ]
    )
    table["floor"] = [0.95, 0.72]
    rows = grid.similarity_grid(table, [0.0, 1.0], ["cka"], reference=0.0)
    assert [r.cells for r in rows] == [("0.950 (floor 0.950)",), ("0.700 (floor 0.720)",)]
    series = grid.chart_series(table, [0.0, 1.0], ["cka"], reference=0.0)
    assert series.floors["cka"] == (0.95, 0.72)


def test_similarity_grid_matches_int_and_float_values():
    table = _table([(1, "cka", "reference", 0.9, 0.8)])
    rows = grid.similarity_grid(table, [1.0, 2.0], ["cka"])
    assert rows[0].cells == ("0.900",)


def test_chart_series_positions_and_gaps():
    table = _table(
        [
            (1.0, "neighbors", "reference", 1.0, 0.5),
            (3.0, "neighbors", "reference", 0.25, 0.5),
            (1.0, "cka", "reference", 1.0, 0.9),
        ]
    )
    linear = grid.chart_series(table, [1.0, 2.0, 3.0], ["neighbors", "cka"])
    assert not linear.categorical
    assert linear.x == (1.0, 2.0, 3.0)
    assert linear.labels == ("1", "2", "3")
    assert linear.series["neighbors"][0] == 1.0 and linear.series["neighbors"][2] == 0.25
    assert math.isnan(linear.series["neighbors"][1])
    assert linear.series["cka"][0] == 1.0 and all(math.isnan(y) for y in linear.series["cka"][1:])
    # more than two decades: evenly spaced, labelled with the values
    wide = grid.chart_series(table, [0.0, 0.01, 1.0, 3.0], ["neighbors"])
    assert wide.categorical and wide.x == (0.0, 1.0, 2.0, 3.0)
    assert wide.labels == ("0", "0.01", "1", "3")
    assert wide.series["neighbors"][2:] == (1.0, 0.25)
    # against the reference, the reference value itself is not drawn (against SVD it is)
    ref = grid.chart_series(table, [1.0, 2.0, 3.0], ["neighbors"], reference=1.0)
    assert math.isnan(ref.series["neighbors"][0]) and ref.series["neighbors"][2] == 0.25
    svd_rows = table.assign(against="svd")
    svd = grid.chart_series(svd_rows, [1.0, 2.0, 3.0], ["neighbors"], against="svd", reference=1.0)
    assert svd.series["neighbors"][0] == 1.0
    # no floor column: no floors drawn
    assert all(math.isnan(f) for f in linear.floors["neighbors"])


def test_chart_floors_are_each_values_own():
    """The chart's floors are each value's own (the table's floor column),
    not the reference's, in the ``against`` group."""
    table = _table(
        [
            (1.0, "neighbors", "reference", 0.8, 0.8),
            (2.0, "neighbors", "reference", 0.3, 0.8),
            (2.0, "neighbors", "svd", 0.2, float("nan")),
        ]
    )
    table["floor"] = [0.8, 0.45, 0.44]
    ref = grid.chart_series(table, [1.0, 2.0, 3.0], ["neighbors"], reference=1.0)
    assert ref.floors["neighbors"][:2] == (0.8, 0.45) and math.isnan(ref.floors["neighbors"][2])
    svd = grid.chart_series(table, [1.0, 2.0, 3.0], ["neighbors"], against="svd")
    assert math.isnan(svd.floors["neighbors"][0]) and svd.floors["neighbors"][1] == 0.44


# ---------------------------------------------------------------------- neighbors


def _neighbors(keys, scores):
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(keys) + 1),
            "key": keys,
            "title": [k[0] for k in keys],
            "score": scores,
        }
    )


def test_side_by_side_marks_shared_neighbors_and_gives_the_jaccard():
    keys = [(f"T{i}", "Drama") for i in range(8)]
    a = _neighbors([keys[1], keys[2], keys[3], keys[4]], [0.9, 0.8, 0.7, 0.6])
    b = _neighbors([keys[3], keys[5], keys[1], keys[6]], [0.95, 0.85, 0.5, 0.4])
    got = neighbors.side_by_side(keys[0], a, b)
    shared = {keys[1], keys[3]}
    assert got.shared == 2
    assert got.jaccard == pytest.approx(len(shared) / len(set(a["key"]) | set(b["key"])))
    assert got.k == 4 and got.title == "T0" and got.genres == "Drama"
    assert [r.a_title for r in got.rows] == ["T1", "T2", "T3", "T4"]
    assert [r.a_shared for r in got.rows] == [True, False, True, False]
    assert [r.b_title for r in got.rows] == ["T3", "T5", "T1", "T6"]
    assert [r.b_shared for r in got.rows] == [True, False, True, False]
    assert [r.b_score for r in got.rows] == [0.95, 0.85, 0.5, 0.4]
    same = neighbors.side_by_side(keys[0], a, a)
    assert same.jaccard == 1.0 and all(r.a_shared and r.b_shared for r in same.rows)


# ---------------------------------------------------------------------- changes


def _changes_frame():
    """A :meth:`Sweep.changes`-shaped frame (hand-made)."""
    keys = [
        ("Alien (1979)", "Horror|Sci-Fi"),
        ("Heat (1995)", "Action|Crime|Thriller"),
        ("Amélie (2001)", "Comedy|Romance"),
        ("Blade Runner (1982)", "Action|Sci-Fi|Thriller"),
        ("Clue (1985)", "Comedy|Crime"),
    ]
    return pd.DataFrame(
        {
            "key": pd.Series(keys, dtype=object),
            "title": [k[0] for k in keys],
            "n_ratings": [120, 40, 80, 300, 5],
            "similarity": [0.5, 0.1, 0.1, 0.0, 0.9],
            "floor": [0.6, 0.5, 0.6, 0.2, 0.9],
            "floor_value": [0.6, 0.5, 0.6, 0.2, 0.9],
            "floor_reference": [0.6, 0.5, 0.6, 0.2, 0.9],
            "p_value": [0.2, 0.01, 0.01, 0.3, np.nan],
            "q_value": [0.25, 0.02, 0.02, 0.3, np.nan],
            "changed": pd.array([False, True, True, False, pd.NA], dtype="boolean"),
        }
    )


def test_changes_table_ranks_changed_first_then_drop_below_floor_and_filters():
    frame = _changes_frame()
    table = changes.changes_table(frame)
    # q ascending (missing last); the tie at q = 0.02 goes to the larger drop below the
    # floor (Amélie 0.5, Heat 0.4)
    assert list(table["title"]) == [
        "Amélie (2001)",
        "Heat (1995)",
        "Alien (1979)",
        "Blade Runner (1982)",
        "Clue (1985)",
    ]
    np.testing.assert_allclose(table["drop"], table["floor"] - table["similarity"])
    by_title = frame.set_index("title")
    for col in ("n_ratings", "similarity", "floor", "q_value"):
        np.testing.assert_array_equal(
            table[col].to_numpy(np.float64), by_title.loc[table["title"], col].to_numpy(np.float64)
        )
    assert list(table["changed"].astype(object).fillna("-")) == [True, True, False, False, "-"]
    assert table.iloc[0]["key"] == frame["key"][2]
    sci_fi = changes.changes_table(frame, genre="Sci-Fi")
    assert list(sci_fi["title"]) == ["Alien (1979)", "Blade Runner (1982)"]
    # a genre matches whole names only ("Action" is not "Action|..." prefix matching)
    assert changes.changes_table(frame, genre="Act").empty
    popular = changes.changes_table(frame, min_ratings=50, max_ratings=200)
    assert list(popular["title"]) == ["Amélie (2001)", "Alien (1979)"]
    with pytest.raises(InvalidParameterError, match="above"):
        changes.changes_table(frame, min_ratings=10, max_ratings=5)
    out = changes.export_frame(table)
    assert list(out.columns) == list(changes.EXPORT_COLUMNS)
    assert out["key"].iloc[0] == str(frame["key"][2])


def test_sweep_request_maps_models_to_configurations():
    sweep = SimpleNamespace(reference=0.0)
    ref = pairs.ModelChoice("run:0:0", "w0=0", value=0.0, seed=0)
    ref1 = pairs.ModelChoice("run:0:1", "w0=0", value=0.0, seed=1)
    one = pairs.ModelChoice("run:1:1", "w0=1", value=1.0, seed=1)
    two = pairs.ModelChoice("run:2:0", "w0=2", value=2.0, seed=0)
    svd = pairs.ModelChoice("svd", "SVD", svd=True)
    assert changes.sweep_request(sweep, ref, one) == (1.0, "reference")
    assert changes.sweep_request(sweep, one, ref1) == (1.0, "reference")
    assert changes.sweep_request(sweep, ref, ref1) == (0.0, "reference")
    assert changes.sweep_request(sweep, two, svd) == (2.0, "svd")
    assert changes.sweep_request(sweep, svd, ref) == (0.0, "svd")
    assert "reference (0)" in changes.sweep_request(sweep, one, two)
    assert "both SVD" in changes.sweep_request(sweep, svd, svd)
    assert "choose models" in changes.sweep_request(None, ref, one)
    assert "choose models" in changes.sweep_request(sweep, ref, None)


def test_genres_of_splits_movielens_genres():
    keys = [("A", "Drama|Comedy"), ("B", "(no genres listed)"), ("C", ""), 7]
    assert changes.genres_of(keys) == ["(no genres listed)", "Comedy", "Drama"]


def test_search_entities_and_completion_ignore_accents_and_case():
    keys = [
        ("Amélie (2001)", "Comedy|Romance"),
        ("American Beauty (1999)", "Drama"),
        ("Godfather, The (1972)", "Crime|Drama"),
        ("Heat (1995)", "Action"),
    ]
    titles = [k[0] for k in keys]
    hits = search.search_entities(keys, "AMELIE", limit=3)
    assert hits[0] == (keys[0], "Amélie (2001)  Comedy|Romance")
    assert search.search_entities(keys, "godfather", limit=1)[0][0] == keys[2]
    assert search.search_entities(keys, "   ", limit=5) == []
    # the completion extends what was typed, whatever its accents and case
    assert search.complete_title(titles, "amel") == "Amélie (2001)"
    assert search.complete_title(titles, "AMER") == "American Beauty (1999)"
    # "father" is inside a title but does not start one: no completion
    assert search.complete_title(titles, "father") is None
    assert search.complete_title(titles, "") is None
    # the shortest of several completions, the first among equals
    index = search.TitleIndex(["Toy Story 2 (1999)", "Toy Story (1995)", "Toys (1992)", "Toyz"])
    assert index.complete("toy st") == "Toy Story (1995)"
    assert index.complete("TOY") == "Toyz"
    assert index.complete("toys") == "Toys (1992)"


# ---------------------------------------------------------------------- sweep spec, models


@pytest.fixture(scope="module")
def tiny():
    return datasets.synthetic(preset="tiny", seed=0)


@pytest.fixture(scope="module")
def small_sweep(tiny):
    import embspace

    return embspace.Sweep(
        tiny,
        embspace.WALS(factors=4, iterations=2),
        param="unobserved_weight",
        values=[0.0, 1.0],
        seeds=2,
        measures=("neighbors",),
        cache_dir=False,
    ).run(progress=False)


def test_sweep_spec_from_the_form(tiny):
    spec = form.SweepSpec.from_form(
        estimator="WALS",
        params="factors=6, iterations=3, unobserved_weight=0.5",
        param="unobserved_weight",
        values="0, 0.1 1",
        reference="",
        seeds="2",
        measures=["neighbors", "cka"],
        k=5,
    )
    assert spec.values == (0.0, 0.1, 1.0) and spec.reference == 0.0
    # the swept parameter is set per run, not fixed
    assert dict(spec.params) == {"factors": 6, "iterations": 3}
    sweep = spec.make_sweep(tiny, cache_dir=False)
    assert sweep.values == [0.0, 0.1, 1.0] and sweep.seeds == [0, 1] and sweep.k == 5
    assert sweep.measures == ("neighbors", "cka")
    params = sweep.estimator.get_params()
    assert params["factors"] == 6 and params["iterations"] == 3
    ref = form.SweepSpec.from_form(
        estimator="SVD",
        params="",
        param="factors",
        values="5 10",
        reference="10",
        seeds="1",
        measures=["cca"],
    )
    assert ref.reference == 10 and type(ref.reference) is int


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"reference": "3"}, "reference 3 is not among the values"),
        ({"reference": "0 1"}, "single reference"),
        ({"seeds": "0"}, "at least 1"),
        ({"seeds": "two"}, "whole number"),
        ({"measures": []}, "at least one measure"),
        ({"param": "alpha"}, "WALS has no parameter 'alpha'"),
        ({"params": "alpha=1"}, "WALS has no parameter alpha"),
        ({"params": "factors=2.5"}, r"factors takes whole numbers, got 2\.5"),
        ({"param": "random_state"}, "cannot be swept"),
        ({"params": "factors=ten"}, "takes numbers"),
        ({"values": ""}, "at least one"),
    ],
)
def test_sweep_spec_rejects_bad_fields(fields, message):
    typed = {
        "estimator": "WALS",
        "params": "factors=4",
        "param": "unobserved_weight",
        "values": "0, 1",
        "reference": "0",
        "seeds": "1",
        "measures": ["neighbors"],
    }
    typed.update(fields)
    with pytest.raises(InvalidParameterError, match=message):
        form.SweepSpec.from_form(**typed)


def test_model_choices_and_default_pair(small_sweep):
    choices = pairs.model_choices(small_sweep)
    assert [c.id for c in choices] == ["run:0:0", "run:0:1", "run:1:0", "run:1:1", "svd"]
    assert choices[0].label == "unobserved_weight=0 seed 0 (ref)"
    assert choices[3].label == "unobserved_weight=1 seed 1"
    assert (choices[2].value, choices[2].seed) == (1.0, 0) and choices[-1].svd
    assert pairs.default_pair(choices, small_sweep) == ("run:0:0", "run:1:0")
    # only the reference finished: B is the SVD
    only_ref = [c for c in choices if c.value in (None, 0.0)]
    assert pairs.default_pair(only_ref, small_sweep) == ("run:0:0", "svd")
    assert pairs.default_pair([choices[-1]], small_sweep) == (None, None)
    assert [c.id for c in pairs.model_choices(None)] == ["svd"]


def test_model_pair_matches_neighbor_table_and_compare(small_sweep):
    import embspace

    a, b = small_sweep.embeddings(0.0), small_sweep.embeddings(1.0, seed=1)
    pair = pairs.ModelPair(a, b)
    key = a.keys[11]
    got = pair.side_by_side(key, 5)
    want_a = embspace.NeighborTable(a).neighbors(key, k=5)
    want_b = embspace.NeighborTable(b).neighbors(key, k=5)
    assert [r.a_title for r in got.rows] == list(want_a["title"])
    assert [r.b_title for r in got.rows] == list(want_b["title"])
    per_entity = embspace.compare(a, b, measures=("neighbors",), k=5).per_entity["neighbors"]
    assert got.jaccard == pytest.approx(per_entity.loc[[key]].iloc[0])
    jaccard = pair.jaccard(5)
    assert list(jaccard.index) == list(a.keys)
    np.testing.assert_allclose(jaccard.to_numpy(), per_entity.to_numpy())
    assert pair.jaccard(5) is jaccard  # kept
    with pytest.raises(InvalidParameterError, match="k must be between 1 and"):
        pair.side_by_side(key, a.n)
    # models over different entities are compared on the shared ones, in A's order
    partial = pairs.ModelPair(a, b.subset(b.keys[5:]))
    assert partial.keys == [k for k in a.keys if k in set(b.keys[5:])]


def test_svd_factors_and_popularity(small_sweep, tiny):
    assert pairs.svd_factors(small_sweep) == 4
    spec = form.SweepSpec.from_form(
        estimator="SVD",
        params="",
        param="factors",
        values="3 6",
        reference="6",
        seeds="1",
        measures=["cca"],
    )
    assert pairs.svd_factors(spec.make_sweep(tiny, cache_dir=False)) == 6
    pop = changes.popularity_of(tiny)
    counts = np.diff(tiny.matrix.tocsc().indptr)
    assert [pop[k] for k in tiny.item_keys] == counts.tolist()


# ---------------------------------------------------------------------- the form's defaults


def test_form_defaults_for_the_built_in_estimators():
    wals = form.form_defaults("WALS")
    assert wals.params == "factors=10, iterations=20, regularization=0.07"
    assert (wals.param, wals.values, wals.reference) == (
        "unobserved_weight",
        "0, 0.01, 0.1, 0.5, 1, 2",
        "0",
    )
    assert wals.param in wals.choices and "random_state" not in wals.choices
    svd = form.form_defaults("svd")
    assert svd == form.FormDefaults("factors=10", ("factors",), "factors", "5, 10, 20, 50", "10")
    # what the form proposes parses into a sweep
    spec = form.SweepSpec.from_form(
        estimator="WALS",
        params=wals.params,
        param=wals.param,
        values=wals.values,
        reference=wals.reference,
        seeds="1",
        measures=["cka"],
    )
    assert spec.values == (0.0, 0.01, 0.1, 0.5, 1.0, 2.0) and spec.reference == 0.0


class _Shrink:
    """A scikit-learn style estimator with no entry in the form's tables."""

    def __init__(self, shrink: float = 0.25, random_state=None):
        self.shrink, self.random_state = shrink, random_state

    def get_params(self, deep=False):
        return {"shrink": self.shrink, "random_state": self.random_state}

    def set_params(self, **params):
        for k, v in params.items():
            setattr(self, k, v)
        return self


def test_form_defaults_for_a_registered_estimator(monkeypatch):
    from embspace._registry import Registry
    from embspace.faces import estimators

    registry = Registry("estimator", dict(estimators.ESTIMATORS))
    registry.register("Shrink", _Shrink)
    monkeypatch.setattr(estimators, "ESTIMATORS", registry)
    got = form.form_defaults("Shrink")
    assert got == form.FormDefaults("", ("shrink",), "shrink", "0.25", "0.25")


def test_offered_measures_put_the_defaults_first_and_checked():
    offered = form.offered_measures(
        ["rsa", "cka", "overlap_curve", "neighbors", "cca", "unitmatch"]
    )
    assert offered == [
        ("neighbors", True),
        ("cca", True),
        ("unitmatch", True),
        ("cka", True),
        ("rsa", False),
    ]
    assert form.offered_measures(["procrustes", "cka"]) == [("cka", True), ("procrustes", False)]
    from embspace.measures import MEASURES

    assert {m for m, _ in form.offered_measures()} == set(MEASURES) - {"overlap_curve"}


def test_parse_count_and_bound():
    assert form.parse_count(" 3 ", "seeds") == 3 and form.parse_count(4, "k") == 4
    assert form.parse_count("", "k", default=10) == 10
    with pytest.raises(InvalidParameterError, match="k must be a whole number, got 'x'"):
        form.parse_count("x", "k")
    with pytest.raises(InvalidParameterError, match="seeds must be at least 1"):
        form.parse_count("0", "seeds")
    with pytest.raises(InvalidParameterError, match="must be a whole number"):
        form.parse_count("", "seeds")
    assert changes.parse_bound("  ", "min ratings") is None
    assert changes.parse_bound("30", "min ratings") == 30
    with pytest.raises(ValueError, match="min ratings must not be negative"):
        changes.parse_bound("-1", "min ratings")


def test_sweep_spec_reads_k_from_its_field():
    fields = dict(
        estimator="WALS",
        params="",
        param="unobserved_weight",
        values="0 1",
        reference="",
        seeds="1",
        measures=["cka"],
    )
    assert form.SweepSpec.from_form(**fields, k=" 7 ").k == 7
    assert form.SweepSpec.from_form(**fields, k="").k == 10
    with pytest.raises(InvalidParameterError, match="k must be a whole number"):
        form.SweepSpec.from_form(**fields, k="ten")


def test_models_shown_and_titles():
    shown = pairs.ModelsShown()
    assert not shown.ready and (shown.label_a, shown.label_b, shown.k) == ("—", "—", 10)
    assert pairs.ModelsShown("run:0:0", "svd", 5, "w=0", "SVD").ready
    keys = [("Heat (1995)", "Action"), 17, ("Solo",)]
    assert search.titles_of(keys) == ["Heat (1995)", "17", "Solo"]
