"""The Changes screen: entities ranked by how much their neighborhood changed between A and B."""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, ClassVar

import pandas as pd
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Input, Label, Select, Static

from .model import changes_table
from .widgets import ModelBar

if TYPE_CHECKING:
    from .app import EmbspaceApp

__all__ = ["ChangesPane"]

#: Rows shown at most (the ranking is computed over every entity).
MAX_ROWS = 500


def _bound(text: str, name: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    value = int(text)
    if value < 0:
        raise ValueError(f"{name} must not be negative")
    return value


class ChangesPane(Vertical):
    """Lowest Jaccard first, filtered by genre and number of ratings; Enter
    opens the entity in the Neighbors screen."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("plus,equals_sign", "k_up", "k+1"),
        Binding("minus", "k_down", "k-1"),
        Binding("ctrl+t", "swap", "Swap A/B"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._jaccard: pd.Series | None = None
        self._request: tuple[str, str, int] | None = None
        self.rows: pd.DataFrame | None = None

    @property
    def embspace_app(self) -> EmbspaceApp:
        return self.app  # type: ignore[return-value]

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

    def set_genres(self, genres: list[str]) -> None:
        select = self.query_one("#genre", Select)
        with self.prevent(Select.Changed):
            select.set_options([(g, g) for g in genres])

    # ------------------------------------------------------------------ actions
    def action_k_up(self) -> None:
        self.embspace_app.set_k(self.embspace_app.k + 1)

    def action_k_down(self) -> None:
        self.embspace_app.set_k(max(1, self.embspace_app.k - 1))

    def action_swap(self) -> None:
        self.embspace_app.swap_models()

    # ------------------------------------------------------------------ compute
    def invalidate(self) -> None:
        """Forget the computed ranking (a new sweep reuses the model ids)."""
        self._request = None
        self._jaccard = None
        self.rows = None
        self.query_one("#changes-table", DataTable).clear(columns=True)

    def refresh_view(self) -> None:
        """Models or k changed: recompute the per-entity Jaccard."""
        app = self.embspace_app
        if app.model_a is None or app.model_b is None:
            self._jaccard = None
            self.rows = None
            self.query_one("#changes-table", DataTable).clear(columns=True)
            self._status("choose models A and B above (finished sweep runs or SVD)")
            return
        request = (app.model_a, app.model_b, app.k)
        if request == self._request and self._jaccard is not None:
            self._fill()
            return
        self._request = request
        self._jaccard = None
        self._status(
            f"comparing the neighborhoods of {app.model_label(app.model_a)} and "
            f"{app.model_label(app.model_b)} (k={app.k})…"
        )
        self._compute(*request)

    @work(thread=True, exclusive=True, group="changes", exit_on_error=False)
    def _compute(self, a: str, b: str, k: int) -> None:
        app = self.embspace_app
        try:
            series = app.model_pair(a, b).jaccard(k)
        except Exception as exc:
            self.app.call_from_thread(app.report_error, exc, "Changes")
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
        app = self.embspace_app
        genre = self.query_one("#genre", Select).value
        try:
            low = _bound(self.query_one("#min-ratings", Input).value, "min ratings")
            high = _bound(self.query_one("#max-ratings", Input).value, "max ratings")
            rows = changes_table(
                series,
                app.popularity,
                genre=None if genre is Select.NULL else str(genre),
                min_ratings=low,
                max_ratings=high,
            )
        except ValueError as exc:
            app.report_error(exc, "Changes")
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
            f"{app.model_label(app.model_a)} vs {app.model_label(app.model_b)}, k={app.k}: "
            f"mean Jaccard {mean:.3f} over {len(series):,} entities; "
            f"{len(rows):,} match the filters{more}. Enter opens one in Neighbors."
        )

    @on(DataTable.RowSelected, "#changes-table")
    def _opened(self, event: DataTable.RowSelected) -> None:
        if self.rows is None or event.row_key.value is None:
            return
        key: Hashable = self.rows.iloc[int(event.row_key.value)]["key"]
        self.embspace_app.open_entity(key)
