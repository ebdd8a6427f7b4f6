"""The embspace terminal UI: Sweep, Neighbors and Changes screens in one Textual app."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Hashable
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Header, Input, TabbedContent, TabPane

from .. import datasets
from .._atomic import write_atomic
from ..errors import EmbspaceWarning
from ..faces.datasets import (
    DatasetChoice,
    dataset_choices,
    describe_ratings,
    filter_described,
)
from ..faces.tables import value_label
from .changes_pane import ChangesPane
from .commands import ActionCommands, EntityCommands
from .messages import ErrorReported, KStepRequested, OpenEntityRequested, SwapRequested
from .neighbors_pane import NeighborsPane
from .screens import ExportScreen, HelpScreen
from .sweep_pane import SweepPane
from .views.changes import export_frame, genres_of, popularity_of, sweep_request
from .views.pairs import (
    ModelChoice,
    ModelPair,
    ModelsShown,
    default_pair,
    model_choices,
    svd_factors,
)
from .widgets import ModelBar

__all__ = ["EmbspaceApp"]

SCREENS_IDS = ("sweep", "neighbors", "changes")
#: The widget each screen focuses when shown.
MAIN_WIDGET = {"sweep": "#grid", "neighbors": "#side", "changes": "#changes-table"}


class EmbspaceApp(App[None]):
    """Run sweeps, read their similarity table and chart, and look up neighbors.

    The app owns the data (ratings, the sweep, the models compared, the SVD
    and model-pair caches); the panes show it. A pane posts what the user asks
    for as a message (:mod:`.messages`, ``SweepPane.RunRequested``, ...), the
    app handles it and calls the panes' methods to show the outcome.

    Parameters
    ----------
    dataset : str, optional
        A registry name (``"ml-latest-small"``), ``"synthetic:<preset>"`` or a
        local folder/zip, loaded at start (downloaded only if needed and asked).
    ratings : Ratings, optional
        Ratings already in memory, used instead of ``dataset``.
    """

    CSS_PATH = "embspace.tcss"
    TITLE = "embspace"
    SUB_TITLE = "how much does the embedding space change?"
    COMMANDS = App.COMMANDS | {ActionCommands, EntityCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "show_screen('sweep')", "Sweep"),
        Binding("2", "show_screen('neighbors')", "Neighbors"),
        Binding("3", "show_screen('changes')", "Changes"),
        Binding("f2", "show_screen('sweep')", "Sweep", show=False),
        Binding("f3", "show_screen('neighbors')", "Neighbors", show=False),
        Binding("f4", "show_screen('changes')", "Changes", show=False),
        Binding("ctrl+r", "run_sweep", "Run"),
        Binding("ctrl+g", "cancel_sweep", "Cancel"),
        Binding("ctrl+s", "export", "Export"),
        Binding("ctrl+f", "toggle_form", "Form"),
        Binding("ctrl+l", "load", "Load", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("f1", "help", "Help", show=False),
        Binding("escape", "leave_field", "Leave field", show=False),
    ]

    def __init__(self, dataset: str | None = None, *, ratings: Any = None) -> None:
        super().__init__()
        self._initial = dataset
        self._initial_ratings = ratings
        self.ratings: Any = None
        self.dataset_id: str | None = None
        #: (min_user_ratings, min_item_ratings) of the loaded ratings
        self.dataset_filter: tuple[int, int] = (1, 1)
        self.popularity: dict[Hashable, int] = {}
        self.model_a: str | None = None
        self.model_b: str | None = None
        self.k = 10
        self.choices: list[ModelChoice] = []
        self._models_chosen = False  # the user picked A/B: keep them as runs finish
        self._datasets: list[DatasetChoice] = []
        # Three locks, each guarding one cache. The main thread only ever takes
        # _pairs_lock, and only for dict updates: loading (a download, maybe)
        # and fitting an SVD hold theirs for long, in worker threads only.
        self._load_lock = threading.Lock()
        self._svd_lock = threading.Lock()
        self._pairs_lock = threading.Lock()
        self._sweep: Any = None
        self._loaded: dict[str, Any] = {}
        self._filtered: dict[tuple[str, tuple[int, int]], tuple[Any, str]] = {}
        self._pairs: dict[tuple[str, str], ModelPair] = {}
        self._svd: dict[tuple[str, int], Any] = {}

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="sweep", id="tabs"):
            with TabPane("Sweep", id="sweep"):
                yield SweepPane(id="sweep-pane")
            with TabPane("Neighbors", id="neighbors"):
                yield NeighborsPane(self.model_pair, id="neighbors-pane")
            with TabPane("Changes", id="changes"):
                yield ChangesPane(self.sweep_changes, id="changes-pane")
        yield Footer()

    @property
    def sweep_pane(self) -> SweepPane:
        return self.query_one("#sweep-pane", SweepPane)

    @property
    def neighbors_pane(self) -> NeighborsPane:
        return self.query_one("#neighbors-pane", NeighborsPane)

    @property
    def changes_pane(self) -> ChangesPane:
        return self.query_one("#changes-pane", ChangesPane)

    @property
    def sweep(self) -> Any:
        """The current (running, finished or cancelled) sweep, or None (a
        plain attribute: worker threads read it)."""
        return self._sweep

    def on_mount(self) -> None:
        self._refresh_dataset_choices(self._initial)
        if self._initial_ratings is not None:
            ratings = self._initial_ratings
            name = getattr(ratings, "name", None) or "ratings"
            self._loaded[name] = ratings  # so that the filter fields can apply to it
            self._dataset_loaded(ratings, name)
        elif self._initial:
            self.choose_dataset(self._initial, download=True)

    # ------------------------------------------------------------------ errors
    def report_error(self, exc: BaseException, title: str = "Error") -> None:
        """Show an error as a notification; the app keeps running."""
        self.notify(
            str(exc) or type(exc).__name__, title=title, severity="error", timeout=10, markup=False
        )

    # ------------------------------------------------------------------ datasets
    def _refresh_dataset_choices(self, selected: str | None = None) -> None:
        try:
            self._datasets = dataset_choices()
        except Exception as exc:
            self._datasets = []
            self.report_error(exc, "Datasets")
        options = [(Text(c.label), c.id) for c in self._datasets]
        if selected and selected not in {c.id for c in self._datasets}:
            options.append((Text(f"path: {selected}"), selected))
        self.sweep_pane.set_dataset_choices(options, selected)

    def _choice(self, source: str) -> DatasetChoice | None:
        return next((c for c in self._datasets if c.id == source), None)

    def choose_dataset(self, source: str, *, download: bool = False) -> None:
        """The user picked ``source``: load it now unless that needs a download
        the user has not asked for (then say how to start it)."""
        choice = self._choice(source)
        if choice is not None and choice.needs_download and not download:
            self.sweep_pane.show_dataset_status(
                f"{choice.id} is not downloaded yet: ctrl+l (or running the sweep) downloads it"
            )
            return
        self.load_dataset(source)

    def load_dataset(self, source: str) -> None:
        """Load ``source`` with the form's minimum counts in a thread worker;
        errors become notifications."""
        try:
            minimums = self.sweep_pane.dataset_filter()
        except Exception as exc:
            self.report_error(exc, "Dataset filter")
            return
        self.sweep_pane.show_dataset_status(f"loading {source}…")
        self._load_worker(source, minimums)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load_worker(self, source: str, minimums: tuple[int, int] = (1, 1)) -> None:
        try:
            ratings, described = self._load(source, minimums)
        except Exception as exc:
            self.call_from_thread(self._load_failed, source, exc)
            return
        self.call_from_thread(self._dataset_loaded, ratings, source, minimums, described)

    def _load(self, source: str, minimums: tuple[int, int] = (1, 1)) -> tuple[Any, str]:
        """The ratings of ``source`` kept by ``minimums`` (users, items) and
        the line saying what the filter kept; both are loaded once."""
        with self._load_lock:
            if source not in self._loaded:
                self._loaded[source] = datasets.load(source, progress=False)
            key = (source, minimums)
            if key not in self._filtered:
                self._filtered[key] = filter_described(self._loaded[source], *minimums)
            return self._filtered[key]

    def _load_failed(self, source: str, exc: BaseException) -> None:
        self.sweep_pane.show_dataset_status(f"could not load {source}")
        self.report_error(exc, f"Loading {source}")

    def _ratings_for_sweep(self, source: str | None, minimums: tuple[int, int] = (1, 1)) -> Any:
        """Called from the sweep worker: the ratings of ``source`` kept by
        ``minimums`` (loaded in the calling thread when needed), or the loaded
        ones when they are those."""
        if source is None:
            source = self.dataset_id
        if source is None:
            raise LookupError("no dataset is loaded: choose one on the Sweep screen")
        if source == self.dataset_id and minimums == self.dataset_filter:
            return self.ratings
        self.call_from_thread(self.sweep_pane.show_dataset_status, f"loading {source}…")
        ratings, described = self._load(source, minimums)
        self.call_from_thread(self._dataset_loaded, ratings, source, minimums, described)
        return ratings

    def _dataset_loaded(
        self,
        ratings: Any,
        source: str,
        minimums: tuple[int, int] = (1, 1),
        described: str | None = None,
    ) -> None:
        if self.ratings is ratings:
            return
        self.ratings = ratings
        self.dataset_id = source
        self.dataset_filter = minimums
        self.popularity = popularity_of(ratings)
        with self._pairs_lock:
            self._pairs.clear()
        sweep = self.sweep
        if sweep is not None and sweep.ratings is not ratings:
            # the models of a sweep on other data cannot be looked up by these titles
            self.choices = []
            self.model_a = self.model_b = None
            self._sync_bars()
            self.changes_pane.invalidate()
            self._models_changed()
        status = describe_ratings(ratings)
        if minimums != (1, 1) and described:
            status += f"\nfilter: {described}"
        self.sweep_pane.show_dataset_status(status)
        self.neighbors_pane.set_dataset(ratings.item_keys, self.popularity)
        self.changes_pane.set_dataset(genres_of(ratings.item_keys), self.popularity)
        self._refresh_dataset_choices(source)
        self.notify(describe_ratings(ratings), title="Dataset loaded", markup=False)

    @on(SweepPane.DatasetChosen)
    def _dataset_chosen(self, message: SweepPane.DatasetChosen) -> None:
        self.choose_dataset(message.source)

    @on(SweepPane.LoadRequested)
    def _load_requested(self, message: SweepPane.LoadRequested) -> None:
        self.load_dataset(message.source)

    # ------------------------------------------------------------------ the sweep
    @on(SweepPane.RunRequested)
    def _run_requested(self) -> None:
        self.action_run_sweep()

    @on(SweepPane.CancelRequested)
    def _cancel_requested(self) -> None:
        self.action_cancel_sweep()

    @on(SweepPane.ExportRequested)
    def _export_requested(self) -> None:
        self.action_export()

    @on(SweepPane.Started)
    def _sweep_started(self, message: SweepPane.Started) -> None:
        self.sweep_started(message.sweep)

    @on(SweepPane.Progress)
    def _sweep_progress(self, message: SweepPane.Progress) -> None:
        if message.event.kind == "run_done":
            self.runs_changed(message.sweep)

    @on(SweepPane.Stopped)
    def _sweep_stopped(self, message: SweepPane.Stopped) -> None:
        if message.sweep is not None:
            self.runs_changed(message.sweep)

    # ------------------------------------------------------------------ models
    def sweep_started(self, sweep: Any) -> None:
        self._sweep = sweep
        with self._pairs_lock:
            self._pairs.clear()
        self.model_a = self.model_b = None
        self._models_chosen = False
        self.changes_pane.invalidate()
        self.runs_changed(sweep)
        self._models_changed()

    def runs_changed(self, sweep: Any) -> None:
        """Runs finished: offer them as models A and B."""
        if sweep.ratings is not self.ratings:
            return
        self.choices = model_choices(sweep)
        ids = {c.id for c in self.choices}
        changed = False
        if not self._models_chosen or self.model_a not in ids or self.model_b not in ids:
            a, b = default_pair(self.choices, sweep)
            if (a, b) != (self.model_a, self.model_b):
                self.model_a, self.model_b = a, b
                changed = True
        self._sync_bars()
        if changed:
            self._models_changed()

    def model_label(self, model_id: str | None) -> str:
        return next((c.label for c in self.choices if c.id == model_id), "—")

    def embeddings_of(self, model_id: str) -> Any:
        """The item embeddings of a model id (a sweep run or "svd"); thread-safe."""
        sweep = self.sweep
        choice = next((c for c in self.choices if c.id == model_id), None)
        if sweep is None or choice is None:
            raise LookupError(f"model {model_id!r} is not available: run a sweep first")
        if choice.svd:
            return self.svd_embeddings(sweep)
        return sweep.embeddings(choice.value, seed=choice.seed)

    def svd_embeddings(self, sweep: Any) -> Any:
        """Item embeddings of the SVD of the sweep's ratings with the sweep's
        number of factors (fitted once per dataset and size; thread-safe)."""
        from ..factorization import SVD

        factors = svd_factors(sweep)
        key = (sweep.ratings.fingerprint, factors)
        with self._svd_lock:
            if key not in self._svd:
                model = SVD(factors=factors, random_state=0).fit(sweep.ratings)
                self._svd[key] = model.item_embeddings_
            return self._svd[key]

    def model_pair(self, a: str, b: str) -> ModelPair:
        """Models ``a`` and ``b`` aligned, with their neighbor tables (kept)."""
        with self._pairs_lock:
            pair = self._pairs.get((a, b))
        if pair is None:
            pair = ModelPair(self.embeddings_of(a), self.embeddings_of(b))
            with self._pairs_lock:
                pair = self._pairs.setdefault((a, b), pair)
        return pair

    def sweep_changes(self, a: str, b: str) -> tuple[pd.DataFrame, str] | str:
        """The Changes screen's data for models ``a`` and ``b``:
        (:meth:`embspace.Sweep.changes` of their configurations, a description
        with the statistics' warnings), or why there is none (see
        :func:`.views.changes.sweep_request`). Registers the SVD with the sweep
        when it is compared and the sweep has no rows against it; thread-safe
        (called in a worker)."""
        sweep = self.sweep
        choice_a = next((c for c in self.choices if c.id == a), None)
        choice_b = next((c for c in self.choices if c.id == b), None)
        request = sweep_request(sweep, choice_a, choice_b)
        if isinstance(request, str):
            return request
        value, against = request
        if against == "svd" and "svd" not in set(sweep.table["against"]):
            sweep.against(self.svd_embeddings(sweep), name="svd")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", EmbspaceWarning)
            frame = sweep.changes(value, against=against)
        other = value_label(sweep.param, sweep.reference) if against == "reference" else "SVD"
        what = f"{value_label(sweep.param, value)} vs {other} (all seed pairs)"
        notes = [str(w.message) for w in caught if issubclass(w.category, EmbspaceWarning)]
        if notes:
            what += " [" + "; ".join(notes) + "]"
        return frame, what

    def models_shown(self) -> ModelsShown:
        """Models A and B, their labels and k, as the panes are told them."""
        return ModelsShown(
            self.model_a,
            self.model_b,
            self.k,
            self.model_label(self.model_a),
            self.model_label(self.model_b),
        )

    def _sync_bars(self) -> None:
        for bar in self.query(ModelBar):
            bar.set_state(self.choices, self.model_a, self.model_b, self.k)
        self._tell_models()

    def _tell_models(self) -> None:
        shown = self.models_shown()
        self.neighbors_pane.set_models(shown)
        self.changes_pane.set_models(shown)

    def _models_changed(self) -> None:
        self._tell_models()
        self.neighbors_pane.refresh_view()
        if self.query_one("#tabs", TabbedContent).active == "changes":
            self.changes_pane.refresh_view()

    @on(ModelBar.Changed)
    def _bar_changed(self, event: ModelBar.Changed) -> None:
        if (event.a, event.b) != (self.model_a, self.model_b):
            self._models_chosen = True
        self.set_models(event.a, event.b, event.k)

    def set_models(self, a: str | None, b: str | None, k: int | None = None) -> None:
        k = self.k if k is None else k
        if (a, b, k) == (self.model_a, self.model_b, self.k):
            return
        self.model_a, self.model_b, self.k = a, b, k
        self._sync_bars()
        self._models_changed()

    def set_k(self, k: int) -> None:
        self.set_models(self.model_a, self.model_b, k)

    def swap_models(self) -> None:
        self.set_models(self.model_b, self.model_a)

    def open_entity(self, key: Hashable) -> None:
        """Show ``key`` in the Neighbors screen."""
        self._switch_to("neighbors")
        self.neighbors_pane.show_entity(key)
        self._focus_now("#side")

    @on(KStepRequested)
    def _k_step(self, message: KStepRequested) -> None:
        self.set_k(max(1, self.k + message.step))

    @on(SwapRequested)
    def _swap_requested(self) -> None:
        self.swap_models()

    @on(OpenEntityRequested)
    def _open_requested(self, message: OpenEntityRequested) -> None:
        self.open_entity(message.key)

    @on(ErrorReported)
    def _error_reported(self, message: ErrorReported) -> None:
        self.report_error(message.error, message.title)

    @on(TabbedContent.TabActivated, "#tabs")
    def _tab_shown(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "changes":
            self.changes_pane.refresh_view()

    # ------------------------------------------------------------------ actions
    def action_show_screen(self, name: str) -> None:
        """Switch to a screen and focus its main table (so the one-letter
        keys keep working; ``/`` goes to the search box)."""
        if name in SCREENS_IDS:
            self._switch_to(name)
            self._focus_now(MAIN_WIDGET[name])

    def _focus_now(self, selector: str) -> None:
        """Focus at once (``Widget.focus`` waits a turn of the event loop, and
        a key pressed meanwhile could switch screens under it)."""
        widget = self.query_one(selector)
        widget.screen.set_focus(widget)

    def _switch_to(self, name: str) -> None:
        # Drop the focus first: a focused widget that gets hidden hands its
        # focus to a neighbour of its own screen, which would switch back.
        self.screen.set_focus(None)
        self.query_one("#tabs", TabbedContent).active = name

    def action_leave_field(self) -> None:
        """Leave a text field so the one-letter keys work again."""
        if isinstance(self.focused, Input):
            tabs = self.query_one("#tabs", TabbedContent)
            self._focus_now(MAIN_WIDGET[tabs.active])

    def action_run_sweep(self) -> None:
        pane = self.sweep_pane
        if pane.running:
            self.notify(
                "a sweep is already running (ctrl+g cancels it)", severity="warning", markup=False
            )
            return
        try:
            spec = pane.read_spec()
            minimums = pane.dataset_filter()
        except Exception as exc:
            self.report_error(exc, "Sweep settings")
            return
        source = pane.dataset_source()
        if source is None and self.ratings is None:
            self.notify("choose a dataset first", severity="error", markup=False)
            return
        self._switch_to("sweep")
        svd = self.svd_embeddings if pane.compare_with_svd else None
        pane.start(spec, load=partial(self._ratings_for_sweep, source, minimums), svd=svd)

    def action_toggle_form(self) -> None:
        self._switch_to("sweep")
        self.sweep_pane.show_form(None)

    def action_cancel_sweep(self) -> None:
        if not self.sweep_pane.cancel():
            self.notify("no sweep is running", severity="warning", markup=False)

    def action_swap_models(self) -> None:
        """Exchange models A and B (the command palette's "Swap models A and B")."""
        self.swap_models()

    def action_load(self) -> None:
        source = self.sweep_pane.dataset_source()
        if source is None:
            self.notify("choose a dataset or type a path", severity="error", markup=False)
            return
        self.load_dataset(source)

    def action_export(self) -> None:
        sweep = self.sweep
        if sweep is None or not len(sweep.runs):
            self.notify(
                "nothing to export yet: run a sweep first", severity="warning", markup=False
            )
            return
        if self.sweep_pane.running:
            self.notify(
                "wait for the sweep to finish (or cancel it) before exporting",
                severity="warning",
                markup=False,
            )
            return
        name = (self.dataset_id or "ratings").replace("/", "_").replace(":", "_").strip(
            "._"
        ) or "ratings"
        default = Path.cwd() / "embspace-results" / f"{Path(name).name}_{sweep.param}"
        self.push_screen(ExportScreen(default), self._export_to)

    def _export_to(self, folder: Path | None) -> None:
        if folder is not None:
            pane = self.changes_pane
            changes = None if pane.rows is None else (pane.rows, pane.what)
            self._export_worker(self.sweep, folder, changes)

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def _export_worker(
        self, sweep: Any, folder: Path, changes: tuple[pd.DataFrame, str] | None = None
    ) -> None:
        """The sweep's files (:meth:`embspace.Sweep.save`) and, when the Changes
        screen shows a table, ``changes.csv`` (its rows as filtered, columns
        :data:`.views.changes.EXPORT_COLUMNS`, the comparison in a first
        ``#`` line); every file written atomically."""
        try:
            paths = sweep.save(folder)
            if changes is not None:
                rows, what = changes
                text = f"# {what}\n" + export_frame(rows).to_csv(index=False)
                # beside (not instead of) the sweep's own <stem>_changes.csv
                paths["changes_shown"] = write_atomic(Path(folder) / "changes.csv", text.encode())
        except Exception as exc:
            self.call_from_thread(self.report_error, exc, "Export failed")
            return
        listed = "\n".join(str(p) for p in paths.values())
        self.call_from_thread(self.notify, listed, title="Exported", timeout=10)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())
