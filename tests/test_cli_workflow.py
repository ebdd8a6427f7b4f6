"""`embspace demo`: the reference workflow end to end, its files, and a summary true to its numbers."""

from __future__ import annotations

import json
import re

import embspace as es
import pandas as pd
import pytest
from embspace.demo import DEMO_VALUES, pick_movies, run_demo, summarize, top_changes
from test_plots import assert_png

MEASURES = ["neighbors", "cca", "unitmatch", "cka"]


@pytest.fixture(scope="module")
def demo_tiny(tmp_path_factory: pytest.TempPathFactory):
    """The demo on the synthetic "tiny" ratings with 2 seeds, in this process."""
    out = tmp_path_factory.mktemp("demo")
    printed: list[str] = []
    result = run_demo(
        es.datasets.synthetic(preset="tiny", seed=0),
        out=out,
        seeds=2,
        cache_dir=tmp_path_factory.mktemp("cache"),
        progress=False,
        echo=printed.append,
        iterations=8,
    )
    return result, "\n".join(printed), out


def test_demo_runs_every_step(demo_tiny) -> None:
    result, printed, _ = demo_tiny
    sweep = result.sweep
    assert sweep.param == "unobserved_weight" and sweep.values == list(DEMO_VALUES)
    assert sweep.reference == 0.0 and sweep.seeds == [0, 1] and list(sweep.measures) == MEASURES
    assert set(sweep.table["against"]) == {"reference", "svd"}
    assert len(sweep.table) == 2 * len(DEMO_VALUES) * len(MEASURES)
    # step 2's model is the sweep's w0=0.01 seed-0 run: trained once, then loaded
    assert result.model.cached is False
    run = next(r for r in sweep.runs if r.value == 0.01 and r.seed == 0)
    assert run.cached is True
    assert result.trained == 1 + 11 + 1 and result.cached == 1
    # three movies, 10 neighbors each, printed
    assert len(result.neighbors) == 3
    for title, frame in result.neighbors.items():
        assert len(frame) == 10 and title in printed
    assert "similarity to w0=0 (mean ± stdev over 2 seeds)" in printed
    assert "similarity to svd" in printed
    head = "unobserved_weight    measure     similarity  floor  calibrated"
    assert head + "  p_adjusted  changed" in printed  # the reference table has the test
    svd_part = printed[printed.index("similarity to svd") :]
    assert "p_adjusted" not in svd_part.split("\n\n")[0]  # the SVD table has none
    for line in result.summary:
        assert line in printed


def test_demo_files(demo_tiny) -> None:
    result, _, out = demo_tiny
    names = {p.name for p in out.iterdir()}
    assert names == {p.name for p in result.files.values()}
    assert {
        "sweep_unobserved_weight_table.csv",
        "sweep_unobserved_weight_results.csv",
        "sweep_unobserved_weight.json",
        "sweep_unobserved_weight.png",
        # what `embspace report OUT` needs (tests/test_report.py)
        "sweep_unobserved_weight_changes.csv",
        "sweep_unobserved_weight_neighbors.json",
        "sweep_unobserved_weight_provenance.json",
        "sweep_vs_reference.png",
        "sweep_vs_svd.png",
        "neighbors.csv",
        "summary.txt",
        "demo.json",
    } == names
    for png in ("sweep_unobserved_weight.png", "sweep_vs_reference.png", "sweep_vs_svd.png"):
        assert_png(out / png)
    table = pd.read_csv(out / "sweep_unobserved_weight_table.csv")
    pd.testing.assert_series_equal(
        table["similarity"], result.sweep.table["similarity"], check_names=False
    )
    neighbors = pd.read_csv(out / "neighbors.csv")
    assert len(neighbors) == 30 and set(neighbors["query"]) == set(result.neighbors)
    assert (out / "summary.txt").read_text().splitlines() == result.summary
    assert json.loads((out / "demo.json").read_text())["summary"] == result.summary


def _listed(summary: list[str], pattern: str) -> list[str]:
    """The values a summary sentence lists ("w0 = 0.1, 0.5 and 2 ...")."""
    for line in summary:
        found = re.search(pattern, line)
        if found:
            return re.split(r", | and ", found.group(1))
    return []


def _value_in(line: str) -> list[str]:
    return re.findall(r"w0=([0-9.]+)", line)


def test_summary_tells_the_truth(demo_tiny) -> None:
    """Each claim of the summary is checked against the table it was made from."""
    result, _, _ = demo_tiny
    sweep = result.sweep
    t = sweep.table
    svd = t[t["against"] == "svd"]
    best = {
        m: svd[svd["measure"] == m].sort_values("similarity").iloc[-1]["value"] for m in MEASURES
    }
    line = next(ln for ln in result.summary if "closest to svd" in ln.lower())
    if len(set(best.values())) == 1:
        assert "on every measure" in line
        assert _value_in(line)[0] == f"{next(iter(best.values())):g}"
    else:
        for m, v in best.items():
            assert f"{m} at w0={v:g}" in line
    ref = t[(t["against"] == "reference") & (t["value"] != 0.0)]
    low = {m: ref[ref["measure"] == m].sort_values("similarity").iloc[0]["value"] for m in MEASURES}
    line = next(ln for ln in result.summary if ln.startswith("The largest change"))
    if len(set(low.values())) == 1:
        assert f"w0={next(iter(low.values())):g} on every measure" in line
    else:
        for m, v in low.items():
            assert f"{m} at w0={v:g}" in line
    # 2 seeds: the test cannot reach 0.05, so the summary gives no verdict
    test = sweep.test
    line = next(ln for ln in result.summary if ln.startswith("With 2 seeds"))
    assert f"{test['smallest_p_value']:.3g}" in line and f"{test['n_tests']} tests" in line
    assert f"({test['seeds_needed']} seeds are needed)" in line
    assert not any("changed on" in ln or "no change shown" in ln for ln in result.summary)
    for value in DEMO_VALUES[1:]:
        rows = ref[ref["value"] == value].set_index("measure")
        line = next(ln for ln in result.summary if ln.startswith(f"w0 = {value:g} against"))
        for m in MEASURES:
            assert f"{m} {rows.loc[m, 'calibrated']:.2f}" in line


def test_demo_prints_the_movies_that_moved_most(demo_tiny) -> None:
    result, printed, _ = demo_tiny
    sweep = result.sweep
    t = sweep.table
    nb = t[(t["against"] == "reference") & (t["measure"] == "neighbors") & (t["value"] != 0.0)]
    moved = nb.sort_values("similarity").iloc[0]["value"]
    assert f"== where w0={moved:g} moved most from w0=0" in printed
    top = top_changes(sweep, moved)
    with pytest.warns(es.errors.EmbspaceWarning):
        full = sweep.changes(moved).set_index("title")
    assert len(top) == 10
    # the rows are the sweep's, in the documented order: q, then the drop below the floor
    for col in ("n_ratings", "similarity", "floor", "q_value"):
        assert list(top[col]) == list(full.loc[top["title"], col])

    # an independent ranking in plain Python: q ascending (missing last), then the drop
    def rank(item):
        _, r = item
        q = r["q_value"] if r["q_value"] == r["q_value"] else float("inf")
        drop = r["floor"] - r["similarity"]
        return (q, -drop if drop == drop else float("inf"), r["similarity"], -r["n_ratings"])

    ranked = sorted(full.iterrows(), key=rank)[:10]
    assert [rank(x)[:2] for x in ranked] == [
        rank((None, r))[:2] for _, r in top.set_index("title").iterrows()
    ]
    for row in top.itertuples(index=False):
        assert row.title in printed and f"{row.similarity:.3f}" in printed


def test_one_seed_summary_says_there_is_no_noise_floor(demo_tiny) -> None:
    result, _, _ = demo_tiny
    sweep = es.Sweep(
        result.ratings,
        es.WALS(factors=10, iterations=8, random_state=0),
        "unobserved_weight",
        [0.0, 1.0],
        cache_dir=False,
    ).run(progress=False)
    lines = summarize(sweep, svd_name=None)
    assert lines[0].startswith("With one seed there is no noise floor and no test")


def test_pick_movies_is_seeded_and_prefers_rated_movies() -> None:
    ratings = es.datasets.synthetic(preset="tiny", seed=0)
    a, b = pick_movies(ratings, 3, seed=4), pick_movies(ratings, 3, seed=4)
    assert a == b and len(set(a)) == 3
    counts = dict(zip(ratings.item_keys, ratings.items["n_ratings"], strict=True))
    assert all(counts[k] >= 20 for k in a)
    assert pick_movies(ratings, 3, seed=5) != a
