"""The Changes screen: where the space moved, per entity, from :meth:`embspace.Sweep.changes`."""

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
from .views.pairs import ModelsShown
from .widgets import ModelBar

__all__ = ["ChangesPane"]

#: Rows shown at most (the ranking is computed over every entity).
MAX_ROWS = 500

#: What the pane asks the app for models A and B: ``(frame, what)``, the
#: :meth:`embspace.Sweep.changes` frame and a description of the comparison
#: (with any warning of the statistics), or a sentence saying why there is none.
ChangesSource = Callable[[str, str], "tuple[pd.DataFrame, str] | str"]


class ChangesPane(Vertical):
    """Per entity, the columns of :meth:`embspace.Sweep.changes` for the
    configurations of models A and B (a value against the reference or SVD):
    similarity, floor (re-seeding alone), q_value (FDR across entities) and
    changed; ranked by q_value, then by how far the similarity falls below
    the floor; filtered by genre and number of ratings. Enter opens the
    entity in the Neighbors screen; the app's export (ctrl+s) writes the table.

    ``changes(a, b)`` (a :data:`ChangesSource`, called in a worker thread)
    gives the frame of two model ids. The app tells the pane the dataset
    (:meth:`set_dataset`) and the models shown (:meth:`set_models`); the pane
    posts :class:`~.messages.OpenEntityRequested`,
    :class:`~.messages.KStepRequested` and :class:`~.messages.SwapRequested` up."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("plus,equals_sign", "k_up", "k+1"),
        Binding("minus", "k_down", "k-1"),
        Binding("ctrl+t", "swap", "Swap A/B"),
    ]

    def __init__(self, changes: ChangesSource, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._changes = changes
        self._models = ModelsShown()
        self._popularity: dict[Hashable, int] = {}
        self._frame: pd.DataFrame | None = None
        self._what = ""
        self._request: tuple[str, str] | None = None
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
        ).border_title = "where the space moved: changed first, then farthest below the floor"
        self._status("run a sweep on the Sweep screen (1) and choose models A and B")

    def _status(self, text: str) -> None:
        self.query_one("#changes-status", Static).update(Text(text))

    def set_dataset(self, genres: list[str], popularity: dict[Hashable, int]) -> None:
        """The genres offered by the filter (and the entities' numbers of
        ratings, kept for callers; the table takes ``n_ratings`` from the sweep)."""
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
    @property
    def what(self) -> str:
        """The comparison shown (``"w0=1 vs w0=0 ..."``), empty when none."""
        return self._what if self.rows is not None else ""

    def invalidate(self) -> None:
        """Forget the computed table (a new sweep reuses the model ids)."""
        self._request = None
        self._frame = None
        self.rows = None
        self.query_one("#changes-table", DataTable).clear(columns=True)

    def refresh_view(self) -> None:
        """Models changed: recompute the per-entity changes."""
        models = self._models
        if models.a is None or models.b is None:
            self._frame = None
            self.rows = None
            self.query_one("#changes-table", DataTable).clear(columns=True)
            self._status("choose models A and B above (finished sweep runs or SVD)")
            return
        request = (models.a, models.b)
        if request == self._request and self._frame is not None:
            self._fill()
            return
        self._request = request
        self._frame = None
        self._status(f"comparing {models.label_a} and {models.label_b} entity by entity…")
        self._compute(*request)

    @work(thread=True, exclusive=True, group="changes", exit_on_error=False)
    def _compute(self, a: str, b: str) -> None:
        try:
            got = self._changes(a, b)
        except Exception as exc:
            self.post_message(ErrorReported(exc, "Changes"))
            return
        self.app.call_from_thread(self._computed, (a, b), got)

    def _computed(self, request: tuple[str, str], got: tuple[pd.DataFrame, str] | str) -> None:
        if request != self._request:
            return  # an older request
        if isinstance(got, str):
            self._frame = None
            self.rows = None
            self.query_one("#changes-table", DataTable).clear(columns=True)
            self._status(got)
            return
        self._frame, self._what = got
        self._fill()

    @on(Select.Changed, "#genre")
    @on(Input.Submitted, "#min-ratings")
    @on(Input.Submitted, "#max-ratings")
    def _filter_changed(self) -> None:
        if self._frame is not None:
            self._fill()

    def _fill(self) -> None:
        frame = self._frame
        if frame is None:
            return
        genre = self.query_one("#genre", Select).value
        try:
            low = parse_bound(self.query_one("#min-ratings", Input).value, "min ratings")
            high = parse_bound(self.query_one("#max-ratings", Input).value, "max ratings")
            rows = changes_table(
                frame,
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
        # long titles are cut so that the numbers, genres and ratings stay in view
        width = table.size.width or 110
        genres_width = 22
        title_width = max(20, width - genres_width - 5 - 6 - 6 - 6 - 7 - 7 - 18)
        table.add_column("#", key="rank", width=5)
        table.add_column("sim", key="similarity", width=6)
        table.add_column("floor", key="floor", width=6)
        table.add_column("q", key="q_value", width=6)
        table.add_column("changed", key="changed", width=7)
        table.add_column("title", key="title", width=title_width)
        table.add_column("genres", key="genres", width=genres_width)
        table.add_column("ratings", key="ratings", width=7)

        def number(x: float) -> Text:
            return Text("-" if pd.isna(x) else f"{x:.3f}", justify="right")

        shown = rows.head(MAX_ROWS)
        for i, row in enumerate(shown.itertuples(index=False)):
            changed = "-" if pd.isna(row.changed) else ("yes" if row.changed else "no")
            table.add_row(
                str(i + 1),
                number(row.similarity),
                number(row.floor),
                number(row.q_value),
                Text(changed, justify="right"),
                Text(row.title),
                Text(row.genres, style="italic"),
                Text("" if row.n_ratings < 0 else f"{row.n_ratings:,}", justify="right"),
                key=str(i),
            )
        n_changed = int(frame["changed"].fillna(False).astype(bool).sum())
        more = f", first {MAX_ROWS} shown" if len(rows) > MAX_ROWS else ""
        self._status(
            f"{self._what}: mean similarity {float(frame['similarity'].mean()):.3f}, floor "
            f"{float(frame['floor'].mean()):.3f}; {n_changed:,} of {len(frame):,} entities "
            f"changed; {len(rows):,} match the filters{more}. Enter opens one in Neighbors."
        )

    @on(DataTable.RowSelected, "#changes-table")
    def _opened(self, event: DataTable.RowSelected) -> None:
        if self.rows is None or event.row_key.value is None:
            return
        key: Hashable = self.rows.iloc[int(event.row_key.value)]["key"]
        self.post_message(OpenEntityRequested(key))
