"""The Sweep screen: the form, the progress of a running sweep, its table and chart."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import (
    Button,
    Checkbox,
    DataTable,
    Input,
    Label,
    Log,
    ProgressBar,
    Select,
    SelectionList,
    Static,
    Tab,
    Tabs,
)
from textual_plotext import PlotextPlot

from ..faces.estimators import ESTIMATORS, trains_on
from ..faces.values import format_value
from .messages import ErrorReported
from .views.form import SweepSpec, form_defaults, offered_measures, parse_count
from .views.grid import chart_series, similarity_grid

__all__ = ["SweepPane"]

#: Colors of the chart's series (and of their noise-floor lines), by measure order.
CHART_COLORS = ("cyan", "magenta", "green", "orange", "red", "blue", "yellow", "white")
#: Width of a similarity cell: "0.873 (floor 0.950)".
CELL_WIDTH = 19


def _cells(cells: tuple[str, ...]) -> list[Text]:
    return [Text(c, justify="right") for c in cells]


class SweepPane(Vertical):
    """Form on the left; progress, table, chart and run log on the right.

    It posts the user's requests (:class:`DatasetChosen`, :class:`LoadRequested`,
    :class:`RunRequested`, :class:`CancelRequested`, :class:`ExportRequested`)
    and the running sweep's :class:`Started`, :class:`Progress` and
    :class:`Stopped` up to the app, which calls :meth:`start`, :meth:`cancel`,
    :meth:`set_dataset_choices`, :meth:`show_dataset_status` ... down."""

    class DatasetChosen(Message):
        """The user picked dataset ``source`` in the chooser."""

        def __init__(self, source: str) -> None:
            super().__init__()
            self.source = source

    class LoadRequested(Message):
        """The user typed a path (or spec) and pressed Enter: load ``source``."""

        def __init__(self, source: str) -> None:
            super().__init__()
            self.source = source

    class RunRequested(Message):
        """The Run button."""

    class CancelRequested(Message):
        """The Cancel button."""

    class ExportRequested(Message):
        """The Export button."""

    class Started(Message):
        """The worker built ``sweep`` from ``spec`` and starts running it."""

        def __init__(self, sweep: Any, spec: SweepSpec) -> None:
            super().__init__()
            self.sweep = sweep
            self.spec = spec

    class Progress(Message):
        """A :class:`~embspace.sweeps.SweepEvent` of the running sweep."""

        def __init__(self, sweep: Any, event: Any) -> None:
            super().__init__()
            self.sweep = sweep
            self.event = event

    class Note(Message):
        """A line for the status bar from the worker."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Stopped(Message):
        """The sweep worker ended: ``status`` is "done", "cancelled" or "failed"."""

        def __init__(
            self, sweep: Any | None, status: str, error: BaseException | None = None
        ) -> None:
            super().__init__()
            self.sweep = sweep
            self.status = status
            self.error = error

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._sweep: Any = None
        self._cancel = threading.Event()
        self._group = "reference"
        self._grid_shape: tuple[int, str] | None = None

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        estimator = next(iter(ESTIMATORS))
        form = form_defaults(estimator)
        with Horizontal(id="sweep-body"):
            with VerticalScroll(id="sweep-form"):
                with Horizontal(classes="field"):
                    yield Label("Dataset")
                    yield Select[str]([], id="dataset", prompt="choose a dataset", compact=True)
                with Horizontal(classes="field"):
                    yield Label("or path")
                    yield Input(
                        placeholder="folder or .zip, Enter loads", id="dataset-path", compact=True
                    )
                with Horizontal(classes="field"):
                    yield Label("Min/user")
                    yield Input(
                        "1",
                        id="min-user-ratings",
                        type="integer",
                        compact=True,
                        tooltip="keep only users with at least this many ratings (Enter reloads)",
                    )
                with Horizontal(classes="field"):
                    yield Label("Min/item")
                    yield Input(
                        "1",
                        id="min-item-ratings",
                        type="integer",
                        compact=True,
                        tooltip="keep only items with at least this many ratings (Enter "
                        "reloads); items rated by one user get exactly parallel vectors",
                    )
                yield Static("no dataset loaded", markup=False, id="dataset-status")
                with Horizontal(classes="field"):
                    yield Label("Estimator")
                    # the screen loads ratings: corpus trainers are the CLI's (--corpus)
                    yield Select[str](
                        [(e, e) for e in ESTIMATORS if trains_on(e) == "ratings"],
                        value=estimator,
                        allow_blank=False,
                        id="estimator",
                        compact=True,
                    )
                with Horizontal(classes="field"):
                    yield Label("Params")
                    yield Input(form.params, id="params", compact=True)
                with Horizontal(classes="field"):
                    yield Label("Sweep")
                    yield Select[str](
                        [(p, p) for p in form.choices],
                        value=form.param,
                        allow_blank=False,
                        id="param",
                        compact=True,
                    )
                with Horizontal(classes="field"):
                    yield Label("Values")
                    yield Input(form.values, id="values", compact=True)
                with Horizontal(classes="field"):
                    yield Label("Reference")
                    yield Input(
                        form.reference, placeholder="first value", id="reference", compact=True
                    )
                with Horizontal(classes="field"):
                    yield Label("Seeds")
                    yield Input("2", id="seeds", type="integer", compact=True)
                with Horizontal(classes="field"):
                    yield Label("k")
                    yield Input("10", id="sweep-k", type="integer", compact=True)
                yield Checkbox("also compare every run with SVD", id="vs-svd", compact=True)
                yield Label("Measures", classes="section")
                yield SelectionList[str](
                    *[(m, m, checked) for m, checked in offered_measures()], id="measures"
                )
                with Horizontal(id="sweep-buttons"):
                    yield Button("Run ^r", id="run", variant="primary", compact=True)
                    yield Button(
                        "Cancel ^g", id="cancel", variant="error", compact=True, disabled=True
                    )
                    yield Button("Export ^s", id="export", compact=True, disabled=True)
            with Vertical(id="sweep-results"):
                yield Static("set up a sweep and press ctrl+r", markup=False, id="sweep-status")
                with Horizontal(classes="bar-row"):
                    yield Label("runs", classes="bar-name")
                    yield ProgressBar(total=1, show_eta=False, id="runs-bar")
                    yield Label("", markup=False, id="runs-label", classes="bar-text")
                with Horizontal(classes="bar-row"):
                    yield Label("training", classes="bar-name")
                    yield ProgressBar(total=1, show_eta=False, id="train-bar")
                    yield Label("", markup=False, id="train-label", classes="bar-text")
                yield Tabs(Tab("vs reference", id="group-reference"), id="groups")
                yield DataTable(id="grid", cursor_type="row", zebra_stripes=True)
                yield PlotextPlot(id="chart")
                yield Log(id="runs-log", max_lines=500)

    def on_mount(self) -> None:
        self.query_one("#grid", DataTable).border_title = "similarity"
        self.query_one("#chart", PlotextPlot).border_title = "similarity against the value"
        self.query_one("#runs-log", Log).border_title = "runs"
        self.query_one("#sweep-form").border_title = "sweep"
        self._draw_chart()

    # ------------------------------------------------------------------ dataset
    def set_dataset_choices(self, choices: list[tuple[Text, str]], selected: str | None) -> None:
        select = self.query_one("#dataset", Select)
        with self.prevent(Select.Changed):
            select.set_options(choices)
            if selected is not None and selected in {v for _, v in choices}:
                select.value = selected

    def show_dataset_status(self, text: str) -> None:
        self.query_one("#dataset-status", Static).update(text)

    def dataset_source(self) -> str | None:
        """The dataset the form names: the typed path when there is one, else
        the chosen dataset, else None."""
        path = self.query_one("#dataset-path", Input).value.strip()
        if path:
            return path
        value = self.query_one("#dataset", Select).value
        return None if value is Select.NULL else str(value)

    def dataset_filter(self) -> tuple[int, int]:
        """``(min_user_ratings, min_item_ratings)`` of the form (blank: 1);
        raises InvalidParameterError on a value that is not a whole number >= 1."""
        return (
            parse_count(
                self.query_one("#min-user-ratings", Input).value, "min ratings per user", default=1
            ),
            parse_count(
                self.query_one("#min-item-ratings", Input).value, "min ratings per item", default=1
            ),
        )

    @on(Input.Submitted, "#min-user-ratings, #min-item-ratings")
    def _filter_given(self) -> None:
        source = self.dataset_source()
        if source is not None:
            self.post_message(self.LoadRequested(source))

    @on(Select.Changed, "#dataset")
    def _dataset_chosen(self, event: Select.Changed) -> None:
        if event.value is not Select.NULL:
            self.post_message(self.DatasetChosen(str(event.value)))

    @on(Input.Submitted, "#dataset-path")
    def _path_given(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.post_message(self.LoadRequested(event.value.strip()))

    # ------------------------------------------------------------------ form
    @on(Select.Changed, "#estimator")
    def _estimator_chosen(self, event: Select.Changed) -> None:
        form = form_defaults(str(event.value))
        self.query_one("#params", Input).value = form.params
        select = self.query_one("#param", Select)
        select.set_options([(p, p) for p in form.choices])
        if form.param:
            select.value = form.param
        self.query_one("#values", Input).value = form.values
        self.query_one("#reference", Input).value = form.reference

    @property
    def compare_with_svd(self) -> bool:
        """Whether the form asks to compare every run with SVD too."""
        return bool(self.query_one("#vs-svd", Checkbox).value)

    def read_spec(self) -> SweepSpec:
        """The spec of the form (raises InvalidParameterError on bad fields)."""
        param = self.query_one("#param", Select).value
        return SweepSpec.from_form(
            estimator=str(self.query_one("#estimator", Select).value),
            params=self.query_one("#params", Input).value,
            param="" if param is Select.NULL else str(param),
            values=self.query_one("#values", Input).value,
            reference=self.query_one("#reference", Input).value,
            seeds=self.query_one("#seeds", Input).value,
            measures=list(self.query_one("#measures", SelectionList).selected),
            k=self.query_one("#sweep-k", Input).value,
        )

    @on(Button.Pressed, "#run")
    def _run_pressed(self) -> None:
        self.post_message(self.RunRequested())

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self) -> None:
        self.post_message(self.CancelRequested())

    @on(Button.Pressed, "#export")
    def _export_pressed(self) -> None:
        self.post_message(self.ExportRequested())

    # ------------------------------------------------------------------ running
    @property
    def running(self) -> bool:
        return any(w.group == "sweep" and not w.is_finished for w in self.workers)

    @property
    def sweep(self) -> Any:
        return self._sweep

    def start(
        self,
        spec: SweepSpec,
        *,
        load: Callable[[], Any],
        svd: Callable[[Any], Any] | None = None,
    ) -> None:
        """Run ``spec`` in a thread worker on the ratings ``load()`` returns
        (called in the worker: it may load a dataset); with ``svd``, compare
        every run with the embeddings ``svd(sweep)`` returns."""
        self._cancel.clear()
        self.show_form(False)
        self._set_running(True)
        self.query_one("#runs-log", Log).clear()
        self.query_one("#sweep-status", Static).update("starting…")
        self._worker(spec, load, svd)

    def show_form(self, show: bool | None = None) -> None:
        """Show or hide (None: toggle) the form; hidden, the results take the
        whole width."""
        form = self.query_one("#sweep-form")
        show = form.has_class("-hidden") if show is None else show
        form.set_class(not show, "-hidden")
        if show:
            self.query_one("#values", Input).focus()
        else:
            self.query_one("#grid", DataTable).focus()

    def cancel(self) -> bool:
        """Ask the running sweep to stop at its next iteration."""
        if not self.running:
            return False
        self._cancel.set()
        if self._sweep is not None:
            self._sweep.cancel()
        self.query_one("#sweep-status", Static).update("cancelling…")
        return True

    @work(thread=True, exclusive=True, group="sweep", exit_on_error=False)
    def _worker(
        self,
        spec: SweepSpec,
        load: Callable[[], Any],
        svd: Callable[[Any], Any] | None,
    ) -> None:
        from ..sweeps import SweepCancelled

        sweep = None
        try:
            ratings = load()
            if self._cancel.is_set():
                raise SweepCancelled("cancelled before the first run")
            sweep = spec.make_sweep(ratings)
            self._sweep = sweep
            self.post_message(self.Started(sweep, spec))

            def callback(event: Any) -> None:
                if self._cancel.is_set():
                    raise SweepCancelled("the sweep was cancelled")
                self.post_message(self.Progress(sweep, event))

            sweep.run(callback=callback, progress=False)
            if svd is not None:
                self.post_message(self.Note("comparing every run with SVD…"))
                sweep.against(svd(sweep), name="svd")
        except SweepCancelled:
            self.post_message(self.Stopped(sweep, "cancelled"))
        except Exception as exc:
            self.post_message(self.Stopped(sweep, "failed", exc))
        else:
            self.post_message(self.Stopped(sweep, "done"))

    def _set_running(self, running: bool) -> None:
        self.query_one("#run", Button).disabled = running
        self.query_one("#cancel", Button).disabled = not running
        self.query_one("#export", Button).disabled = running or self._sweep is None

    @on(Started)
    def _started(self, message: Started) -> None:
        sweep = message.sweep
        self._group = "reference"
        self._reset_groups()
        runs = self.query_one("#runs-bar", ProgressBar)
        runs.update(total=sweep.n_runs, progress=0)
        self.query_one("#runs-label", Label).update(f"0/{sweep.n_runs}")
        self.query_one("#train-bar", ProgressBar).update(total=None, progress=0)
        self.query_one("#train-label", Label).update("")
        name = getattr(sweep.ratings, "name", None) or "ratings"
        self.query_one("#sweep-status", Static).update(
            f"{type(sweep.estimator).__name__} {sweep.param} over "
            f"{', '.join(format_value(v) for v in sweep.values)} on {name}; "
            f"reference {format_value(sweep.reference)}, {len(sweep.seeds)} seed(s)"
        )
        self.refresh_results()

    @on(Note)
    def _note(self, message: Note) -> None:
        self.query_one("#sweep-status", Static).update(message.text)

    @on(Progress)
    def _progress(self, message: Progress) -> None:
        event = message.event
        kind = event.kind
        if kind == "run_start":
            self.query_one("#runs-label", Label).update(
                f"{event.run_index}/{event.n_runs}  now {message.sweep.param}="
                f"{format_value(event.value)} seed {event.seed}"
            )
            self.query_one("#train-bar", ProgressBar).update(total=None, progress=0)
            self.query_one("#train-label", Label).update("")
        elif kind == "iteration":
            bar = self.query_one("#train-bar", ProgressBar)
            bar.update(total=event.n_iterations, progress=event.iteration)
            loss = "" if event.loss is None else f"  loss {event.loss:.5g}"
            total = f"/{event.n_iterations}" if event.n_iterations else ""
            self.query_one("#train-label", Label).update(
                f"iteration {event.iteration}{total}{loss}"
            )
        elif kind == "run_done":
            done = event.run_index + 1
            self.query_one("#runs-bar", ProgressBar).update(progress=done)
            self.query_one("#runs-label", Label).update(f"{done}/{event.n_runs}")
            train = self.query_one("#train-bar", ProgressBar)
            train.update(total=1 if train.total is None else train.total, progress=train.total or 1)
            self._log_run(message.sweep, event)
        elif kind == "compare_done":
            self.refresh_results()
        elif kind == "done":
            self.refresh_results()

    def _log_run(self, sweep: Any, event: Any) -> None:
        what = (
            f"{event.run_index + 1}/{event.n_runs} {sweep.param}={format_value(event.value)} "
            f"seed {event.seed}"
        )
        record = next((r for r in sweep.runs if r.run_index == event.run_index), None)
        state = ""
        if record is not None and record.tol is not None:
            state = " (converged)" if record.converged else " (the cap: tol not reached)"
        if event.cached:
            line = f"{what}: cached{state}"
        else:
            iters = f", {event.n_iterations} iterations" if event.n_iterations else ""
            loss = f", loss {event.loss:.5g}" if event.loss is not None else ""
            line = f"{what}: trained{iters}{state}{loss}"
        self.query_one("#runs-log", Log).write_line(line)

    def _log_parallel(self, sweep: Any) -> None:
        """One line in the runs log: how many entities of the reference run
        (first seed) sit in groups of exactly parallel vectors."""
        from ..faces.datasets import parallel_groups
        from ..faces.tables import value_label

        try:
            seed = sweep.seeds[0]
            groups = parallel_groups(sweep.embeddings(sweep.reference, seed))
        except Exception:  # a run that is not there: nothing to say
            return
        where = f"{value_label(sweep.param, sweep.reference)} seed {seed}"
        line = groups.describe(sweep.entities, where, why=False)
        self.query_one("#runs-log", Log).write_line(f"parallel: {line}")

    @on(Stopped)
    def _stopped(self, message: Stopped) -> None:
        if message.sweep is not None:
            self._sweep = message.sweep
        self._set_running(False)
        status = self.query_one("#sweep-status", Static)
        sweep = message.sweep
        n_done = 0 if sweep is None else len(sweep.runs)
        n_runs = 0 if sweep is None else sweep.n_runs
        if sweep is not None:
            self.query_one("#runs-label", Label).update(f"{n_done}/{n_runs}")
        if message.status == "done" and sweep is not None:
            from ..sweeps.training import stopped_at_cap

            cached = sum(1 for r in sweep.runs if r.cached)
            capped = sum(1 for r in sweep.runs if stopped_at_cap(r))
            at_cap = f"; {capped} stopped at the iteration cap before tol" if capped else ""
            status.update(f"done: {n_runs} runs ({cached} cached){at_cap}")
            took = sum(r.elapsed for r in sweep.runs)
            self._log_parallel(sweep)
            self.notify(
                f"sweep finished: {n_runs} runs ({cached} from the cache), "
                f"{took:.1f} s of training and loading",
                title="Sweep",
                markup=False,
            )
            if capped:
                self.notify(
                    f"{capped} of {n_runs} runs stopped at their iteration cap before the "
                    "relative loss decrease fell below tol: the similarities measure the "
                    "iteration budget too; raise iterations",
                    title="Not converged",
                    severity="warning",
                    timeout=10,
                    markup=False,
                )
        elif message.status == "cancelled":
            status.update(f"cancelled after {n_done} of {n_runs} runs (finished runs are cached)")
            self.notify(
                f"sweep cancelled after {n_done} of {n_runs} runs",
                title="Sweep",
                severity="warning",
                markup=False,
            )
        else:
            status.update(f"failed: {message.error}")
            self.notify(
                str(message.error), title="Sweep failed", severity="error", timeout=10, markup=False
            )
        self._reset_groups()
        self.refresh_results()

    # ------------------------------------------------------------------ results
    def _reset_groups(self) -> None:
        tabs = self.query_one("#groups", Tabs)
        has_svd = self._sweep is not None and "svd" in set(self._sweep.table["against"])
        present = tabs.query("#group-svd")
        if has_svd and not present:
            tabs.add_tab(Tab("vs SVD", id="group-svd"))
        elif not has_svd and present:
            tabs.remove_tab("group-svd")
            self._group = "reference"

    @on(Tabs.TabActivated, "#groups")
    def _group_chosen(self, event: Tabs.TabActivated) -> None:
        group = "svd" if event.tab.id == "group-svd" else "reference"
        if group != self._group:
            self._group = group
            self.refresh_results()

    def refresh_results(self) -> None:
        """Redraw the table and chart from the sweep's current table (a
        failure is reported, never fatal)."""
        try:
            self._refresh_results()
        except Exception as exc:
            self.post_message(ErrorReported(exc, "Results"))

    def _refresh_results(self) -> None:
        sweep = self._sweep
        grid = self.query_one("#grid", DataTable)
        if sweep is None:
            grid.clear(columns=True)
            self._grid_shape = None
            self._draw_chart()
            return
        measures = list(sweep.measures)
        rows = similarity_grid(
            sweep.table, sweep.values, measures, reference=sweep.reference, against=self._group
        )
        shape = (id(sweep), self._group)
        if shape != self._grid_shape:
            # a new sweep or group: lay the table out once, cells fill in below
            grid.clear(columns=True)
            width = max([len(r.label) for r in rows] + [len(sweep.param)])
            grid.add_column(sweep.param, key="value", width=width)
            for m in measures:
                grid.add_column(m, key=m, width=max(len(m), CELL_WIDTH))
            for row in rows:
                style = "bold" if "(ref)" in row.label else ""
                grid.add_row(Text(row.label, style=style), *_cells(row.cells), key=row.label)
            self._grid_shape = shape
        else:
            for row in rows:
                for m, cell in zip(measures, _cells(row.cells), strict=True):
                    grid.update_cell(row.label, m, cell)
        against = (
            f"reference {sweep.param}={format_value(sweep.reference)}"
            if self._group == "reference"
            else "SVD"
        )
        grid.border_title = f"similarity to the {against}, mean over {len(sweep.seeds)} seed(s)"
        self._draw_chart()

    def _draw_chart(self) -> None:
        chart = self.query_one("#chart", PlotextPlot)
        plt = chart.plt
        plt.clear_data()
        plt.clear_figure()
        sweep = self._sweep
        if sweep is None:
            plt.title("no sweep yet")
            chart.refresh()
            return
        series = chart_series(
            sweep.table,
            sweep.values,
            list(sweep.measures),
            against=self._group,
            reference=sweep.reference,
        )
        # each value's own seed noise (its floor), dashed, in the measure's color
        for i, (measure, ys) in enumerate(series.series.items()):
            color = CHART_COLORS[i % len(CHART_COLORS)]
            own = series.floors.get(measure, ())
            fl = [(x, f) for x, f in zip(series.x, own, strict=True) if not math.isnan(f)]
            if fl:
                plt.plot([p[0] for p in fl], [p[1] for p in fl], marker="-", color=color)
            pts = [(x, y) for x, y in zip(series.x, ys, strict=True) if not math.isnan(y)]
            if pts:
                plt.plot(
                    [p[0] for p in pts],
                    [p[1] for p in pts],
                    label=measure,
                    marker="braille",
                    color=color,
                )
        plt.xticks(list(series.x), list(series.labels))
        if len(series.x) > 1:
            plt.xlim(min(series.x), max(series.x))
        from ..plots import axis_label  # matplotlib is imported once a chart is drawn

        plt.xlabel(axis_label(sweep.param, "category" if series.categorical else "linear"))
        plt.ylabel("similarity")
        if any(not math.isnan(f) for fs in series.floors.values() for f in fs):
            plt.title("dashes: each value's noise floor (its runs between seeds)")
        finite = [
            y
            for ys in (*series.series.values(), *series.floors.values())
            for y in ys
            if not math.isnan(y)
        ]
        plt.ylim(min([0.0, *finite]), 1.02)
        chart.refresh()
