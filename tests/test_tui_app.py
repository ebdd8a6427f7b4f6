"""The Textual app driven by Textual's Pilot on synthetic data.

Every number the app shows is checked against the public API run directly in
the test (a Sweep without cache, NeighborTable, compare)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("textual")
pytest.importorskip("textual_plotext")

import embspace
from embspace.faces.datasets import parallel_groups
from embspace.tui.app import EmbspaceApp
from embspace.tui.screens import ExportScreen, HelpScreen
from rich.console import Console
from textual import events
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Log, OptionList, Select, Static, TabbedContent

SIZE = (120, 40)
MEASURES = ("neighbors", "cca", "unitmatch", "cka")
VALUES = (0.0, 0.1, 1.0)
PARAMS = {"factors": 8, "iterations": 4, "regularization": 0.07}


def run(app: EmbspaceApp, scenario: Callable[[Pilot], Awaitable[None]]) -> None:
    """Run ``scenario`` against ``app`` in a headless terminal of SIZE."""

    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            try:
                await settle(pilot)
                await scenario(pilot)
            finally:  # a failed check must not leave a training running to its end
                app.sweep_pane.cancel()

    asyncio.run(main())


async def settle(pilot: Pilot) -> None:
    """Until no worker runs (finishing one can start another) and the
    messages they posted are handled."""
    app = pilot.app
    for _ in range(100):
        await app.workers.wait_for_complete()
        await pilot.pause()
        if all(w.is_finished for w in app.workers):
            await pilot.pause()
            return
    raise AssertionError("workers kept starting")


async def until(pilot: Pilot, condition: Callable[[], bool], what: str) -> None:
    """Let the app run until ``condition()`` holds (a guard against hanging,
    not a time limit: it counts event-loop turns)."""
    for _ in range(20_000):
        if condition():
            return
        await pilot.pause(0.01)
    raise AssertionError(f"never happened: {what}")


async def send_keys(pilot: Pilot, *keys: tuple[str, str | None]) -> None:
    """Deliver ``(key, character)`` events the way the terminal driver does,
    then let the app handle them. (``Pilot.press`` also waits for the whole
    process to go idle after every key, which never happens while a training
    thread computes, so it would only measure its own one-second timeout.)"""
    app = pilot.app
    for key, char in keys:
        event = events.Key(key, char)
        event.set_sender(app)
        app.post_message(event)
    await pilot.pause(0.01)


def fill_form(
    app: EmbspaceApp,
    *,
    params: str = "factors=8, iterations=4, regularization=0.07",
    values: str = "0, 0.1, 1",
    reference: str = "0",
    seeds: str = "2",
) -> None:
    pane = app.sweep_pane
    pane.query_one("#estimator", Select).value = "WALS"
    pane.query_one("#params", Input).value = params
    pane.query_one("#param", Select).value = "unobserved_weight"
    pane.query_one("#values", Input).value = values
    pane.query_one("#reference", Input).value = reference
    pane.query_one("#seeds", Input).value = seeds


def reference_sweep(ratings, values=VALUES, seeds=2, **params):
    """The same sweep through the public API, without the cache."""
    return embspace.Sweep(
        ratings,
        embspace.WALS(**(params or PARAMS)),
        param="unobserved_weight",
        values=list(values),
        reference=0.0,
        seeds=seeds,
        measures=MEASURES,
        cache_dir=False,
    ).run(progress=False)


def cell(table: DataTable, row: str, column: str) -> str:
    return str(table.get_cell(row, column))


def notifications(app: EmbspaceApp) -> list:
    return list(app._notifications)


@pytest.fixture
def tiny():
    return embspace.datasets.synthetic(preset="tiny", seed=0)


# ---------------------------------------------------------------------- sweep


def test_sweep_fills_the_table_and_chart_then_reruns_from_the_cache(tiny):
    app = EmbspaceApp("synthetic:tiny")
    expected = reference_sweep(tiny)

    async def scenario(pilot: Pilot) -> None:
        assert app.ratings.fingerprint == tiny.fingerprint
        fill_form(app)
        await pilot.press("ctrl+r")
        await settle(pilot)
        grid = app.query_one("#grid", DataTable)
        assert [str(c.label) for c in grid.ordered_columns] == ["unobserved_weight", *MEASURES]
        assert grid.row_count == len(VALUES)
        table = expected.table
        for value, label in zip(VALUES, ("0 (ref)", "0.1", "1"), strict=True):
            for measure in MEASURES:
                row = table[(table["value"] == value) & (table["measure"] == measure)].iloc[0]
                # the value's own floor, what its test reads it against
                want = f"{row['similarity']:.3f} (floor {row['floor']:.3f})"
                assert cell(grid, label, measure) == want
        # the reference row compares reference runs of distinct seeds (cross
        # pairing): it is its own noise floor in every measure
        for m in MEASURES:
            similarity, floor = cell(grid, "0 (ref)", m).removesuffix(")").split(" (floor ")
            assert similarity == floor and float(similarity) < 1.0
        log = app.query_one("#runs-log", Log)
        # a line per run, then the parallel item vectors of the reference run
        runs, (parallel,) = log.lines[: expected.n_runs], log.lines[expected.n_runs :]
        assert len(runs) == expected.n_runs
        assert all(": trained" in line for line in runs)
        groups = parallel_groups(expected.embeddings(0.0, 0))
        assert parallel == f"parallel: {groups.describe('items', 'w0=0 seed 0', why=False)}"
        assert "done: 6 runs (0 cached)" in str(app.query_one("#sweep-status", Static).content)
        chart = str(app.query_one("#chart").render())
        assert all(m in chart for m in MEASURES) and "unobserved_weight" in chart

        # the same sweep again: every run comes from the cache, same table
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert len(log.lines) == expected.n_runs + 1 and log.lines[-1] == parallel
        assert all(line.endswith(": cached") for line in log.lines[:-1])
        assert [r.cached for r in app.sweep.runs] == [True] * expected.n_runs
        row = table[(table["value"] == 1.0) & (table["measure"] == "cka")].iloc[0]
        assert cell(grid, "1", "cka").startswith(f"{row['similarity']:.3f}")

    run(app, scenario)


def test_sweep_against_svd_adds_a_group_to_the_table(tiny):
    app = EmbspaceApp("synthetic:tiny")
    expected = reference_sweep(tiny, values=(0.0, 1.0), seeds=1)
    svd = embspace.SVD(factors=8, random_state=0).fit(tiny)
    against = expected.against(svd.item_embeddings_, name="svd")

    async def scenario(pilot: Pilot) -> None:
        fill_form(app, values="0, 1", seeds="1")
        app.query_one("#vs-svd").value = True
        await pilot.press("ctrl+r")
        await settle(pilot)
        tabs = app.query_one("#groups")
        assert tabs.query("#group-svd")
        tabs.active = "group-svd"
        await settle(pilot)
        grid = app.query_one("#grid", DataTable)
        assert "SVD" in str(grid.border_title)
        for value, label in ((0.0, "0 (ref)"), (1.0, "1")):
            for measure in MEASURES:
                row = against[(against["value"] == value) & (against["measure"] == measure)]
                assert cell(grid, label, measure) == f"{row['similarity'].iloc[0]:.3f}"
        tabs.active = "group-reference"
        await settle(pilot)
        assert cell(grid, "0 (ref)", "cka").startswith("1.000")

    run(app, scenario)


def test_cancel_stops_a_running_sweep_and_keeps_its_finished_runs(tiny):
    app = EmbspaceApp("synthetic:tiny")

    async def scenario(pilot: Pilot) -> None:
        fill_form(app, params="factors=16, iterations=400", values="0, 0.5, 1, 2, 4", seeds="1")
        await pilot.press("ctrl+r")
        pane = app.sweep_pane
        await until(pilot, lambda: app.sweep is not None and len(app.sweep.runs) >= 1, "a run")
        await until(
            pilot,
            lambda: app.query_one("#train-bar").progress >= 2,
            "iterations of the second run",
        )
        assert pane.running
        await send_keys(pilot, ("ctrl+g", None))
        await settle(pilot)
        sweep = app.sweep
        assert not pane.running and not sweep.finished
        done = len(sweep.runs)
        assert 1 <= done < sweep.n_runs
        status = str(app.query_one("#sweep-status", Static).content)
        assert f"cancelled after {done} of {sweep.n_runs} runs" in status
        assert any("cancelled" in n.message for n in notifications(app))
        assert not app.query_one("#run").disabled and app.query_one("#cancel").disabled
        # the table shows what finished and placeholders for the rest
        grid = app.query_one("#grid", DataTable)
        assert cell(grid, "0 (ref)", "cka").startswith("1.000")
        assert cell(grid, "4", "cka") == "…"

    run(app, scenario)


def test_keys_are_handled_while_a_training_runs():
    """Switch screens and type while WALS trains in its worker thread: every
    key takes effect while that first training is still running."""
    app = EmbspaceApp("synthetic:ml-latest-small")

    async def scenario(pilot: Pilot) -> None:
        fill_form(app, params="factors=32, iterations=500", values="0, 1", seeds="1")
        await pilot.press("ctrl+r")
        bar = app.query_one("#train-bar")
        await until(pilot, lambda: bar.progress >= 1, "the first iteration")
        sweep = app.sweep
        tabs = app.query_one("#tabs", TabbedContent)
        search = app.query_one("#search", Input)

        def still_training() -> bool:
            return app.sweep_pane.running and len(sweep.runs) == 0 and bar.progress < 500

        await send_keys(pilot, ("2", "2"))
        await until(pilot, lambda: tabs.active == "neighbors", "2 shows the Neighbors screen")
        assert still_training()
        await send_keys(pilot, ("slash", "/"))
        await until(pilot, lambda: search.has_focus, "/ focuses the search box")
        assert still_training()
        await send_keys(pilot, ("t", "t"), ("h", "h"), ("e", "e"))
        await until(pilot, lambda: search.value == "the", "the letters are typed")
        assert still_training()
        progress = bar.progress
        await send_keys(pilot, ("escape", None))
        await until(pilot, lambda: not search.has_focus, "escape leaves the search box")
        await send_keys(pilot, ("1", "1"))
        await until(pilot, lambda: tabs.active == "sweep", "1 shows the Sweep screen")
        # and the training went on meanwhile: iterations keep arriving
        await until(pilot, lambda: bar.progress > progress, "more iterations")
        assert still_training()
        await send_keys(pilot, ("ctrl+g", None))
        await settle(pilot)
        assert not app.sweep_pane.running and len(sweep.runs) == 0

    run(app, scenario)


def test_bad_input_is_reported_and_the_app_keeps_running(tmp_path):
    app = EmbspaceApp("synthetic:tiny")

    async def scenario(pilot: Pilot) -> None:
        fill_form(app, values="0, abc")
        await pilot.press("ctrl+r")
        await settle(pilot)
        errors = [n for n in notifications(app) if n.severity == "error"]
        assert errors and "unobserved_weight takes numbers, got 'abc'" in errors[-1].message
        assert app.sweep is None
        path = app.query_one("#dataset-path", Input)
        path.value = str(tmp_path / "no-such-folder")
        path.focus()
        await pilot.press("enter")
        await settle(pilot)
        errors = [n for n in notifications(app) if n.severity == "error"]
        assert "no-such-folder" in errors[-1].message
        assert app.is_running and app.ratings is not None
        # a failed download (the tests' mirror is unreachable) is a notification too
        path.value = ""
        app.query_one("#dataset", Select).value = "ml-1m"
        await settle(pilot)
        status = str(app.query_one("#dataset-status", Static).content)
        assert "not downloaded yet" in status  # choosing it does not start a download
        await pilot.press("ctrl+l")
        await settle(pilot)
        errors = [n for n in notifications(app) if n.severity == "error"]
        assert errors[-1].title == "Loading ml-1m"
        assert app.is_running and app.ratings.name == "synthetic-tiny"

    run(app, scenario)


def test_export_writes_the_table_csv_and_the_chart_png(tiny, tmp_path):
    app = EmbspaceApp("synthetic:tiny")

    async def scenario(pilot: Pilot) -> None:
        fill_form(app, values="0, 1", seeds="1")
        await pilot.press("ctrl+r")
        await settle(pilot)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)
        app.screen.query_one("#export-folder", Input).value = str(tmp_path / "out")
        await pilot.press("enter")
        await settle(pilot)
        assert not isinstance(app.screen, ExportScreen)
        csv = tmp_path / "out" / "sweep_unobserved_weight_table.csv"
        png = tmp_path / "out" / "sweep_unobserved_weight.png"
        assert csv.read_text() == app.sweep.table.to_csv(index=False)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert any(str(csv) in n.message for n in notifications(app))

    run(app, scenario)


# ---------------------------------------------------------------------- neighbors, changes


def _side_titles(table: DataTable, column: str) -> list[str]:
    return [str(c)[2:] for c in table.get_column(column)]


def _side_marks(table: DataTable, column: str) -> list[bool]:
    return [str(c).startswith("●") for c in table.get_column(column)]


def test_search_a_title_and_see_its_neighbors_in_both_models(tiny):
    app = EmbspaceApp("synthetic:tiny")
    expected = reference_sweep(tiny, values=(0.0, 1.0), seeds=1)
    a, b = expected.embeddings(0.0), expected.embeddings(1.0)
    key = tiny.item_keys[7]
    title = key[0]

    async def scenario(pilot: Pilot) -> None:
        fill_form(app, values="0, 1", seeds="1")
        await pilot.press("ctrl+r")
        await settle(pilot)
        await pilot.press("2", "slash")
        # type the title in upper case: the search ignores case
        for ch in title[:12].upper():
            await pilot.press(ch if ch.isalnum() else {" ": "space"}.get(ch, ch))
        await settle(pilot)
        hits = app.query_one("#hits", OptionList)
        labels = [str(hits.get_option_at_index(i).prompt) for i in range(hits.option_count)]
        assert any(label.startswith(title) for label in labels)
        index = next(i for i, label in enumerate(labels) if label.startswith(title))
        hits.focus()
        hits.highlighted = index
        await pilot.press("enter")
        await settle(pilot)
        assert app.neighbors_pane.key == key
        side = app.query_one("#side", DataTable)
        want_a = embspace.NeighborTable(a).neighbors(key, k=10)
        want_b = embspace.NeighborTable(b).neighbors(key, k=10)
        assert _side_titles(side, "a") == list(want_a["title"])
        assert _side_titles(side, "b") == list(want_b["title"])
        shared = set(want_a["key"]) & set(want_b["key"])
        assert _side_marks(side, "a") == [k in shared for k in want_a["key"]]
        assert _side_marks(side, "b") == [k in shared for k in want_b["key"]]
        jaccard = embspace.compare(a, b, measures=("neighbors",), k=10).per_entity["neighbors"]
        text = str(app.query_one("#entity", Static).content)
        assert f"Jaccard@10 of A and B: {jaccard.loc[[key]].iloc[0]:.3f}" in text
        # k is adjustable
        await pilot.press("plus", "plus")
        await settle(pilot)
        assert side.row_count == 12 and app.k == 12
        want = embspace.NeighborTable(b).neighbors(key, k=12)
        assert _side_titles(side, "b") == list(want["title"])
        # swap A and B
        await pilot.press("ctrl+t")
        await settle(pilot)
        assert _side_titles(side, "a") == list(want["title"])

    run(app, scenario)


def _same_rows(rows, frame) -> None:
    """The pane's rows are ``frame``'s (Sweep.changes), entity by entity."""
    want = frame.set_index(frame["key"].map(str))
    got = rows.set_index(rows["key"].map(str))
    assert set(got.index) <= set(want.index)
    for col in ("n_ratings", "similarity", "floor", "q_value"):
        np.testing.assert_array_equal(
            got[col].to_numpy(np.float64), want.loc[got.index, col].to_numpy(np.float64)
        )


def test_changes_shows_sweep_changes_filters_exports_and_opens_an_entity(tiny, tmp_path):
    app = EmbspaceApp("synthetic:tiny")
    expected = reference_sweep(tiny, values=(0.0, 1.0), seeds=2)
    with pytest.warns(embspace.errors.EmbspaceWarning, match="smallest p-value"):
        want = expected.changes(1.0)
    a = expected.embeddings(0.0, seed=0)

    async def scenario(pilot: Pilot) -> None:
        fill_form(app, values="0, 1", seeds="2")
        await pilot.press("ctrl+r")
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        rows = app.changes_pane.rows
        assert len(rows) == len(want)
        _same_rows(rows, want)
        # ranked: q ascending (missing last), then the largest drop below the floor
        drops = (rows["floor"] - rows["similarity"]).to_numpy()
        assert rows["q_value"].isna().all() or rows["q_value"].is_monotonic_increasing
        if rows["q_value"].isna().all():
            assert (np.diff(drops) <= 1e-12).all()
        table = app.query_one("#changes-table", DataTable)
        assert str(table.get_cell_at((0, 1))) == f"{rows['similarity'].iloc[0]:.3f}"
        assert str(table.get_cell_at((0, 2))) == f"{rows['floor'].iloc[0]:.3f}"
        status = str(app.query_one("#changes-status").render())
        assert "w0=1 vs w0=0" in status and "smallest p-value" in status

        genre = app.query_one("#genre", Select)
        wanted = "Drama"
        genre.value = wanted
        await settle(pilot)
        rows = app.changes_pane.rows
        assert len(rows) == sum(wanted in k[1].split("|") for k in want["key"])
        assert all(wanted in g.split("|") for g in rows["genres"])
        low = app.query_one("#min-ratings", Input)
        low.value = "30"
        low.focus()
        await pilot.press("enter")
        await settle(pilot)
        rows = app.changes_pane.rows
        counts = dict(zip(tiny.item_keys, tiny.items["n_ratings"], strict=True))
        assert len(rows) > 0 and all(counts[k] >= 30 for k in rows["key"])
        _same_rows(rows, want)

        # the export writes the table shown beside the sweep's files, and its
        # notice lists every file written
        notices: list[str] = []
        shown_notify = app.notify
        app.notify = lambda message, **kw: notices.append(str(message))  # type: ignore[method-assign]
        app._export_to(tmp_path / "out")
        await settle(pilot)
        await app.workers.wait_for_complete()
        await settle(pilot)
        app.notify = shown_notify  # type: ignore[method-assign]
        written = sorted(p.name for p in (tmp_path / "out").iterdir())
        assert "changes.csv" in written and any(n.endswith("_changes.csv") for n in written)
        assert len(notices) == 1
        assert sorted(Path(line).name for line in notices[0].splitlines()) == written
        text = (tmp_path / "out" / "changes.csv").read_text()
        assert text.startswith("# w0=1 vs w0=0")
        exported = pd.read_csv(tmp_path / "out" / "changes.csv", comment="#")
        assert list(exported.columns) == [
            "key",
            "title",
            "n_ratings",
            "similarity",
            "floor",
            "q_value",
            "changed",
        ]
        assert list(exported["title"]) == list(rows["title"])
        np.testing.assert_allclose(exported["similarity"], rows["similarity"])

        # B = SVD on the Changes screen: the Neighbors screen follows; A (w0=0) against SVD
        app.query_one("#ch-models .model-b", Select).value = "svd"
        await settle(pilot)
        assert app.query_one("#nb-models .model-b", Select).value == "svd"
        svd = embspace.SVD(factors=8, random_state=0).fit(tiny).item_embeddings_
        expected.against(svd, name="svd")
        _same_rows(app.changes_pane.rows, expected.changes(0.0, against="svd"))
        # two runs that are not a value against the reference: said, no table
        app.query_one("#ch-models .model-a", Select).value = "run:1:0"
        app.query_one("#ch-models .model-b", Select).value = "run:1:1"
        await settle(pilot)
        assert app.changes_pane.rows is None
        status = str(app.query_one("#changes-status").render())
        assert "choose a run of the reference (or SVD)" in status
        app.query_one("#ch-models .model-a", Select).value = "run:0:0"
        app.query_one("#ch-models .model-b", Select).value = "run:1:0"
        await settle(pilot)
        rows = app.changes_pane.rows
        _same_rows(rows, want)

        table.focus()
        await pilot.press("down", "enter")
        await settle(pilot)
        assert app.query_one("#tabs", TabbedContent).active == "neighbors"
        assert app.neighbors_pane.key == rows["key"].iloc[1]
        listed = embspace.NeighborTable(a).neighbors(rows["key"].iloc[1], k=10)
        assert _side_titles(app.query_one("#side", DataTable), "a") == list(listed["title"])

    run(app, scenario)


# ---------------------------------------------------------------------- help, palette


def test_help_screen_and_command_palette():
    app = EmbspaceApp("synthetic:tiny")

    async def scenario(pilot: Pilot) -> None:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        console = Console(width=100, record=True, file=io.StringIO())
        console.print(app.screen.query_one("#help-text", Static).content)
        text = console.export_text()
        for key in ("ctrl+r", "ctrl+g", "ctrl+s", "Neighbors", "Changes"):
            assert key in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        # the palette runs the app's actions
        await pilot.press("ctrl+p")
        for ch in "changes screen":
            await pilot.press("space" if ch == " " else ch)
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert app.query_one("#tabs", TabbedContent).active == "changes"

    run(app, scenario)


def test_cli_tui_subcommand_starts_the_app(monkeypatch):
    from embspace import cli

    started: list[tuple[str | None, object]] = []

    def fake_run(self: EmbspaceApp) -> None:  # the terminal is not ours in a test
        started.append((self._initial, self._initial_ratings))

    monkeypatch.setattr(EmbspaceApp, "run", fake_run)
    assert cli.main(["tui", "--dataset", "synthetic:tiny"]) == 0
    assert cli.main(["tui"]) == 0
    assert started == [("synthetic:tiny", None), (None, None)]


def test_app_accepts_ratings_in_memory(tiny):
    app = EmbspaceApp(ratings=tiny)

    async def scenario(pilot: Pilot) -> None:
        assert app.ratings is tiny
        status = str(app.query_one("#dataset-status", Static).content)
        assert f"{tiny.n_ratings:,} ratings" in status

    run(app, scenario)


def test_every_palette_action_is_an_action_of_the_app():
    """Each command palette entry runs ``App.run_action``, which does nothing
    (silently) for a name without an ``action_`` method."""
    from embspace.tui.commands import ACTIONS

    for text, _, action in ACTIONS:
        name = action.split("(", 1)[0]
        assert callable(getattr(EmbspaceApp, f"action_{name}", None)), text


def test_the_palette_opens_a_title_in_the_neighbors_screen(tiny):
    app = EmbspaceApp("synthetic:tiny")
    key = tiny.item_keys[2]

    async def scenario(pilot: Pilot) -> None:
        await pilot.press("ctrl+p")
        for ch in key[0][:22].lower():
            await pilot.press("space" if ch == " " else ch)
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert app.query_one("#tabs", TabbedContent).active == "neighbors"
        assert app.neighbors_pane.key == key
        text = str(app.query_one("#entity", Static).content)
        assert "choose models A and B" in text  # no sweep has run yet

    run(app, scenario)


# ---------------------------------------------------------------------- degenerate data, convergence


def test_minimum_counts_in_the_form_filter_the_ratings_and_say_so(tiny):
    from test_degenerate_faces import core

    app = EmbspaceApp("synthetic:tiny")
    _, items, n = core(tiny, 1, 20)

    async def scenario(pilot: Pilot) -> None:
        field = app.query_one("#min-item-ratings", Input)
        field.value = "20"
        field.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert sorted(app.ratings.item_ids) == items and app.ratings.n_ratings == n
        assert app.dataset_filter == (1, 20)
        status = str(app.query_one("#dataset-status", Static).content)
        assert "filter: users with >= 1 and items with >= 20 ratings" in status
        assert f"{len(items)} of 300 items, {n:,} of 10,000 ratings" in status
        # a sweep runs on the filtered ratings
        fill_form(app, values="0, 1", seeds="1")
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert app.sweep.ratings is app.ratings
        assert app.sweep.embeddings(0.0).n == len(items)
        # a bad minimum is reported and nothing starts
        field.value = "0"
        before = app.sweep
        await pilot.press("ctrl+r")
        await settle(pilot)
        errors = [n for n in notifications(app) if n.severity == "error"]
        assert "min ratings per item must be at least 1" in errors[-1].message
        assert app.sweep is before
        # back to every item: the next sweep loads the whole dataset again
        field.value = "1"
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert app.sweep.ratings.fingerprint == tiny.fingerprint
        assert app.dataset_filter == (1, 1)

    run(app, scenario)


@pytest.mark.filterwarnings("ignore:.*stopped at their cap:embspace.errors.EmbspaceWarning")
def test_runs_stopped_at_the_cap_are_reported(tiny):
    app = EmbspaceApp("synthetic:tiny")

    async def scenario(pilot: Pilot) -> None:
        fill_form(app, params="factors=8, iterations=2, tol=1e-9", values="0, 1", seeds="1")
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert all(r.converged is False and r.tol == 1e-9 for r in app.sweep.runs)
        status = str(app.query_one("#sweep-status", Static).content)
        assert "2 stopped at the iteration cap before tol" in status
        lines = app.query_one("#runs-log", Log).lines
        assert sum("(the cap: tol not reached)" in line for line in lines) == 2
        warned = [n for n in notifications(app) if n.title == "Not converged"]
        assert warned and warned[-1].severity == "warning"
        # a tol met at once: every run says it converged, and nobody is warned
        app.clear_notifications()
        fill_form(app, params="factors=8, iterations=50, tol=0.5", values="0, 1", seeds="1")
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert all(r.converged for r in app.sweep.runs)
        lines = app.query_one("#runs-log", Log).lines
        assert sum("(converged)" in line for line in lines) == 2
        assert not [n for n in notifications(app) if n.title == "Not converged"]

    run(app, scenario)
