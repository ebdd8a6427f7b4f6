"""The Changes screen: entities ranked by how much their neighborhood changed between A and B."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import ClassVar

import pandas as pd
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Label, Select, Static

from .messages import ErrorReported, KStepRequested, OpenEntityRequested, SwapRequested
from .views.changes import changes_table, parse_bound
from .views.pairs import ModelPair, ModelsShown
from .widgets import ModelBar

__all__ = ["ChangesPane"]

#: Rows shown at most (the ranking is computed over every entity).
MAX_ROWS = 500


class ChangesPane(Vertical):
    """Lowest Jaccard first, filtered by genre and number of ratings; Enter
    opens the entity in the Neighbors screen.

    ``pairs(a, b)`` returns the :class:`~.views.pairs.ModelPair` of two model
    ids (called in a worker thread). The app tells the pane the dataset
    (:meth:`set_dataset`) and the models shown (:meth:`set_models`); the pane
    posts :class:`~.messages.OpenEntityRequested`,
    :class:`~.messages.KStepRequested` and :class:`~.messages.SwapRequested` up."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("plus,equals_sign", "k_up", "k+1"),
        Binding("minus", "k_down", "k-1"),
        Binding("ctrl+t", "swap", "Swap A/B"),
    ]

    def __init__(self, pairs: Callable[[str, str], ModelPair], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._pairs = pairs
        self._models = ModelsShown()
        self._popularity: dict[Hashable, int] = {}
        self._jaccard: pd.Series | None = None
        self._request: tuple[str, str, int] | None = None
        self.rows: pd.DataFrame | None = None

    def compose(self) -> ComposeResult:
        yield ModelBar(id="ch-models")
        with Horizontal(id="filters"):
            yield Label("Genre", classes="bar-label")
            yield Select[str]([], prompt="all genres", id="genre", compact=True)
            yield Label("ratings ≥", classes="bar-label")
            yield Input("", placeholder="any", id="min-ratings", type="integer", compact=True)
            yield Label("≤", classes="bar-label")
            yield Input("", placeholder="any", id="max-ratings", type="integer", compact=True)
        yield Static("", markup=False, id="changes-status")
        yield DataTable(id="changes-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one(
            "#changes-table", DataTable
        ).border_title = "neighborhood change, largest first"
        self._status("run a sweep on the Sweep screen (1) and choose models A and B")

    def _status(self, text: str) -> None:
        self.query_one("#changes-status", Static).update(Text(text))

    def set_dataset(self, genres: list[str], popularity: dict[Hashable, int]) -> None:
        """The genres offered by the filter and the entities' numbers of ratings."""
        self._popularity = popularity
        select = self.query_one("#genre", Select)
        with self.prevent(Select.Changed):
            select.set_options([(g, g) for g in genres])

    # ------------------------------------------------------------------ actions
    def action_k_up(self) -> None:
        self.post_message(KStepRequested(+1))

    def action_k_down(self) -> None:
        self.post_message(KStepRequested(-1))

    def action_swap(self) -> None:
        self.post_message(SwapRequested())

    def set_models(self, models: ModelsShown) -> None:
        """The models A and B (and k) to compare; :meth:`refresh_view` recomputes."""
        self._models = models

    # ------------------------------------------------------------------ compute
    def invalidate(self) -> None:
        """Forget the computed ranking (a new sweep reuses the model ids)."""
        self._request = None
        self._jaccard = None
        self.rows = None
        self.query_one("#changes-table", DataTable).clear(columns=True)

    def refresh_view(self) -> None:
        """Models or k changed: recompute the per-entity Jaccard."""
        models = self._models
        if models.a is None or models.b is None:
            self._jaccard = None
            self.rows = None
            self.query_one("#changes-table", DataTable).clear(columns=True)
            self._status("choose models A and B above (finished sweep runs or SVD)")
            return
        request = (models.a, models.b, models.k)
        if request == self._request and self._jaccard is not None:
            self._fill()
            return
        self._request = request
        self._jaccard = None
        self._status(
            f"comparing the neighborhoods of {models.label_a} and {models.label_b} (k={models.k})…"
        )
        self._compute(*request)

    @work(thread=True, exclusive=True, group="changes", exit_on_error=False)
    def _compute(self, a: str, b: str, k: int) -> None:
        try:
            series = self._pairs(a, b).jaccard(k)
        except Exception as exc:
            self.post_message(ErrorReported(exc, "Changes"))
            return
        self.app.call_from_thread(self._computed, (a, b, k), series)

    def _computed(self, request: tuple[str, str, int], series: pd.Series) -> None:
        if request != self._request:
            return  # an older request
        self._jaccard = series
        self._fill()

    @on(Select.Changed, "#genre")
    @on(Input.Submitted, "#min-ratings")
    @on(Input.Submitted, "#max-ratings")
    def _filter_changed(self) -> None:
        if self._jaccard is not None:
            self._fill()

    def _fill(self) -> None:
        series = self._jaccard
        if series is None:
            return
        models = self._models
        genre = self.query_one("#genre", Select).value
        try:
            low = parse_bound(self.query_one("#min-ratings", Input).value, "min ratings")
            high = parse_bound(self.query_one("#max-ratings", Input).value, "max ratings")
            rows = changes_table(
                series,
                self._popularity,
                genre=None if genre is Select.NULL else str(genre),
                min_ratings=low,
                max_ratings=high,
            )
        except ValueError as exc:
            self.post_message(ErrorReported(exc, "Changes"))
            return
        self.rows = rows
        table = self.query_one("#changes-table", DataTable)
        table.clear(columns=True)
        # long titles are cut so that genres and ratings stay in view
        width = table.size.width or 110
        genres_width = 28
        title_width = max(24, width - genres_width - 5 - 7 - 7 - 14)
        table.add_column("#", key="rank", width=5)
        table.add_column("Jaccard", key="jaccard", width=7)
        table.add_column("title", key="title", width=title_width)
        table.add_column("genres", key="genres", width=genres_width)
        table.add_column("ratings", key="ratings", width=7)
        shown = rows.head(MAX_ROWS)
        for i, row in enumerate(shown.itertuples(index=False)):
            table.add_row(
                str(i + 1),
                Text(f"{row.jaccard:.3f}", justify="right"),
                Text(row.title),
                Text(row.genres, style="italic"),
                Text("" if row.n_ratings < 0 else f"{row.n_ratings:,}", justify="right"),
                key=str(i),
            )
        mean = float(series.mean()) if len(series) else float("nan")
        more = f", first {MAX_ROWS} shown" if len(rows) > MAX_ROWS else ""
        self._status(
            f"{models.label_a} vs {models.label_b}, k={models.k}: "
            f"mean Jaccard {mean:.3f} over {len(series):,} entities; "
            f"{len(rows):,} match the filters{more}. Enter opens one in Neighbors."
        )

    @on(DataTable.RowSelected, "#changes-table")
    def _opened(self, event: DataTable.RowSelected) -> None:
        if self.rows is None or event.row_key.value is None:
            return
        key: Hashable = self.rows.iloc[int(event.row_key.value)]["key"]
        self.post_message(OpenEntityRequested(key))
