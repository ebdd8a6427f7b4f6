"""The Neighbors screen: search a title, see its neighbors in models A and B side by side."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import DataTable, Input, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from ..faces.keys import key_title
from .messages import ErrorReported, KStepRequested, SwapRequested
from .views.neighbors import SHARED_MARK, SideBySide
from .views.pairs import ModelPair, ModelsShown
from .views.search import search_entities, titles_of
from .widgets import ModelBar, TitleSuggester

__all__ = ["NeighborsPane"]

#: Search hits listed under the search box.
N_HITS = 8


def _score(x: float) -> str:
    return "" if math.isnan(x) else f"{x:.3f}"


class NeighborsPane(Vertical):
    """Search box with suggestions, hits, the entity and the side-by-side table.

    ``pairs(a, b)`` returns the :class:`~.views.pairs.ModelPair` of two model
    ids (called in a worker thread). The app tells the pane the dataset
    (:meth:`set_dataset`) and the models shown (:meth:`set_models`); the pane
    posts :class:`~.messages.KStepRequested` and :class:`~.messages.SwapRequested`
    up."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_search", "Search"),
        Binding("plus,equals_sign", "k_up", "k+1"),
        Binding("minus", "k_down", "k-1"),
        Binding("ctrl+t", "swap", "Swap A/B"),
        Binding("down", "focus_hits", "Matches", show=False),
    ]

    def __init__(self, pairs: Callable[[str, str], ModelPair], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._pairs = pairs
        self._key: Hashable | None = None
        self._keys: Sequence[Hashable] | None = None
        self._popularity: dict[Hashable, int] = {}
        self._models = ModelsShown()
        self._hits: list[Hashable] = []
        self._hits_query: str | None = None
        self.shown: SideBySide | None = None
        self.suggester = TitleSuggester()

    def compose(self) -> ComposeResult:
        yield ModelBar(id="nb-models")
        yield Input(
            placeholder="search a title (accents and case do not matter), Enter opens the best match",
            id="search",
            suggester=self.suggester,
        )
        yield OptionList(id="hits")
        yield Static("", markup=False, id="entity")
        yield DataTable(id="side", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self.query_one("#hits", OptionList).border_title = "matches"
        self.query_one("#side", DataTable).border_title = "nearest neighbors"
        self._show_empty("run a sweep on the Sweep screen (1), then search a title here")

    # ------------------------------------------------------------------ search
    def set_dataset(self, keys: Sequence[Hashable], popularity: dict[Hashable, int]) -> None:
        """The entities searched (item keys) and their numbers of ratings."""
        self._keys = keys
        self._popularity = popularity
        self.suggester.set_titles(titles_of(keys))
        self.query_one("#hits", OptionList).clear_options()
        self._hits = []
        self._hits_query = None

    def action_focus_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_focus_hits(self) -> None:
        """Down in the search box goes to the list of matches."""
        hits = self.query_one("#hits", OptionList)
        if hits.option_count:
            hits.focus()

    @on(Input.Changed, "#search")
    def _typed(self, event: Input.Changed) -> None:
        self._search(event.value)

    @work(thread=True, exclusive=True, group="search", exit_on_error=False)
    def _search(self, query: str, open_best: bool = False) -> None:
        """Rank the titles against ``query`` off the event loop (a tenth of a
        second over MovieLens), then list them, or open the best one."""
        keys = self._keys
        hits = [] if keys is None else search_entities(keys, query, limit=N_HITS)
        if get_current_worker().is_cancelled:  # a newer keystroke replaced this search
            return
        self.app.call_from_thread(self._show_hits, query, hits)
        if open_best:
            self.app.call_from_thread(self._open_best, query)

    def _show_hits(self, query: str, hits: list[tuple[Hashable, str]]) -> None:
        options = self.query_one("#hits", OptionList)
        options.clear_options()
        self._hits = [key for key, _ in hits]
        self._hits_query = query
        options.add_options([Option(Text(label), id=str(i)) for i, (_, label) in enumerate(hits)])
        if hits:
            options.highlighted = 0

    def _open_best(self, query: str) -> None:
        if not self._hits:
            self.notify(f"no title matches {query!r}", severity="warning", markup=False)
            return
        self.show_entity(self._hits[0])
        self.query_one("#side", DataTable).focus()

    @on(Input.Submitted, "#search")
    def _submitted(self, event: Input.Submitted) -> None:
        if self._keys is None:
            self.notify("load a dataset first (Sweep screen)", severity="warning", markup=False)
            return
        if self._hits_query == event.value:
            self._open_best(event.value)
        else:  # the matches of this text are not listed yet
            self._search(event.value, open_best=True)

    @on(OptionList.OptionSelected, "#hits")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        index = int(event.option.id or 0)
        if index < len(self._hits):
            self.show_entity(self._hits[index])
            self.query_one("#side", DataTable).focus()

    # ------------------------------------------------------------------ k / models
    def action_k_up(self) -> None:
        self.post_message(KStepRequested(+1))

    def action_k_down(self) -> None:
        self.post_message(KStepRequested(-1))

    def action_swap(self) -> None:
        self.post_message(SwapRequested())

    def set_models(self, models: ModelsShown) -> None:
        """The models A and B (and k) to show; :meth:`refresh_view` redraws."""
        self._models = models

    def refresh_view(self) -> None:
        """Models or k changed: recompute the shown entity."""
        if self._key is not None:
            self.show_entity(self._key)

    # ------------------------------------------------------------------ entity
    @property
    def key(self) -> Hashable | None:
        return self._key

    def show_entity(self, key: Hashable) -> None:
        """Show the neighbors of ``key`` in the current models A and B."""
        self._key = key
        models = self._models
        if models.a is None or models.b is None:
            self._show_empty("choose models A and B above (finished sweep runs or SVD)")
            return
        self.query_one("#entity", Static).update(Text(f"{key_title(key)}: computing…"))
        self._compute(key, models.a, models.b, models.k)

    @work(thread=True, exclusive=True, group="neighbors", exit_on_error=False)
    def _compute(self, key: Hashable, a: str, b: str, k: int) -> None:
        try:
            result = self._pairs(a, b).side_by_side(key, k)
        except Exception as exc:
            self.post_message(ErrorReported(exc, "Neighbors"))
            return
        self.app.call_from_thread(self._display, result, a, b)

    def _display(self, result: SideBySide, a: str, b: str) -> None:
        models = self._models
        if result.key != self._key or (a, b) != (models.a, models.b):
            return  # an older request
        self.shown = result
        label_a, label_b = models.label_a, models.label_b
        pop = self._popularity.get(result.key)
        head = Text()
        head.append(result.title, style="bold")
        if result.genres:
            head.append(f"  {result.genres}", style="italic")
        if pop is not None:
            head.append(f"  · {pop:,} ratings")
        head.append(
            f"\nJaccard@{result.k} of A and B: {result.jaccard:.3f} "
            f"({result.shared} of {result.k} neighbors shared, marked {SHARED_MARK})"
        )
        self.query_one("#entity", Static).update(head)
        table = self.query_one("#side", DataTable)
        table.clear(columns=True)
        # two title columns sharing the width left by the rank and score columns
        title_width = max(20, (table.size.width - 34) // 2) if table.size.width else 40
        table.add_column("#", key="rank", width=3)
        table.add_column(f"A: {label_a}", key="a", width=title_width)
        table.add_column("score", key="a_score", width=6)
        table.add_column(f"B: {label_b}", key="b", width=title_width)
        table.add_column("score", key="b_score", width=6)
        for row in result.rows:
            table.add_row(
                str(row.rank),
                _mark(row.a_title, row.a_shared),
                Text(_score(row.a_score), justify="right"),
                _mark(row.b_title, row.b_shared),
                Text(_score(row.b_score), justify="right"),
                key=str(row.rank),
            )
        table.border_title = f"{result.k} nearest neighbors (cosine similarity)"

    def _show_empty(self, hint: str) -> None:
        self.shown = None
        self.query_one("#entity", Static).update(Text(hint, style="dim"))
        self.query_one("#side", DataTable).clear(columns=True)


def _mark(title: str, shared: bool) -> Text:
    if shared:
        return Text(f"{SHARED_MARK} {title}", style="bold green")
    return Text(f"  {title}")
