"""Small widgets shared by the screens: the A/B model bar and the title suggester."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.suggester import Suggester
from textual.widgets import Input, Label, Select

from .views.pairs import ModelChoice
from .views.search import TitleIndex

__all__ = ["ModelBar", "TitleSuggester"]


class TitleSuggester(Suggester):
    """Completes a typed title with the shortest title starting with it
    (accents and case ignored), through :class:`embspace.tui.views.search.TitleIndex`;
    the work runs in a thread so typing never waits for it."""

    def __init__(self, titles: Sequence[str] = ()) -> None:
        super().__init__(use_cache=True, case_sensitive=True)
        self._index = TitleIndex(titles)

    def set_titles(self, titles: Sequence[str]) -> None:
        self._index = TitleIndex(titles)
        if self.cache is not None:
            self.cache.clear()

    async def get_suggestion(self, value: str) -> str | None:
        return await asyncio.to_thread(self._index.complete, value)


class ModelBar(Horizontal):
    """Chooses models A and B (finished sweep runs or SVD) and k.

    Every screen that compares two models has one; the app keeps them in step,
    so changing A on one screen changes it on the others."""

    class Changed(Message):
        """The user picked another model or k."""

        def __init__(self, bar: ModelBar, a: str | None, b: str | None, k: int) -> None:
            super().__init__()
            self.bar = bar
            self.a = a
            self.b = b
            self.k = k

    def __init__(self, *, id: str | None = None, k: int = 10) -> None:
        super().__init__(id=id, classes="model-bar")
        self._initial_k = k
        self._options: list[tuple[str, str]] = []

    def compose(self) -> ComposeResult:
        yield Label("A", classes="bar-label")
        yield Select[str]([], prompt="model A", compact=True, classes="model-a")
        yield Label("B", classes="bar-label")
        yield Select[str]([], prompt="model B", compact=True, classes="model-b")
        yield Label("k", classes="bar-label")
        yield Input(
            str(self._initial_k), compact=True, type="integer", classes="model-k", max_length=4
        )

    @property
    def select_a(self) -> Select[str]:
        return self.query_one(".model-a", Select)

    @property
    def select_b(self) -> Select[str]:
        return self.query_one(".model-b", Select)

    @property
    def k_input(self) -> Input:
        return self.query_one(".model-k", Input)

    def set_state(
        self, choices: Sequence[ModelChoice], a: str | None, b: str | None, k: int
    ) -> None:
        """Show ``choices`` with ``a``/``b`` selected and ``k``, without
        sending :class:`Changed`."""
        options = [(c.label, c.id) for c in choices]
        ids = {c.id for c in choices}
        with self.prevent(Select.Changed, Input.Changed):
            renew = options != self._options
            self._options = options
            for select, value in ((self.select_a, a), (self.select_b, b)):
                if renew:
                    select.set_options(options)
                if value in ids:
                    select.value = value
                else:
                    select.clear()
            if self.k_input.value != str(k):
                self.k_input.value = str(k)

    def _selected(self, select: Select[str]) -> str | None:
        value = select.value
        return None if value is Select.NULL else str(value)

    def _typed_k(self) -> int | None:
        try:
            k = int(self.k_input.value)
        except ValueError:
            return None
        return k if k >= 1 else None

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        k = self._typed_k()
        if k is not None:
            self.post_message(
                self.Changed(self, self._selected(self.select_a), self._selected(self.select_b), k)
            )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        k = self._typed_k()
        if k is None:
            self.app.notify(
                "k must be a whole number of at least 1", severity="error", markup=False
            )
            return
        self.post_message(
            self.Changed(self, self._selected(self.select_a), self._selected(self.select_b), k)
        )
