"""Command palette entries (ctrl+p): the main actions, and opening a title."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from .messages import OpenEntityRequested
from .views.search import search_entities

__all__ = ["ACTIONS", "ActionCommands", "EntityCommands"]

#: (palette text, help, app action) of the main actions.
ACTIONS: tuple[tuple[str, str, str], ...] = (
    ("Run sweep", "train and compare every value of the parameter (ctrl+r)", "run_sweep"),
    ("Cancel sweep", "stop the running sweep at its next iteration (ctrl+g)", "cancel_sweep"),
    ("Export results", "write the table (CSV) and the chart (PNG) (ctrl+s)", "export"),
    ("Load dataset", "load or download the dataset chosen on the Sweep screen (ctrl+l)", "load"),
    ("Show Sweep screen", "the sweep form, table and chart (1)", "show_screen('sweep')"),
    (
        "Show Neighbors screen",
        "neighbors of a title in models A and B (2)",
        "show_screen('neighbors')",
    ),
    (
        "Show Changes screen",
        "entities whose neighborhood changed most (3)",
        "show_screen('changes')",
    ),
    ("Swap models A and B", "exchange the two compared models (ctrl+t)", "swap_models"),
    ("Help", "screens and keys (?)", "help"),
)


class ActionCommands(Provider):
    """The main actions of the app."""

    def _run(self, action: str) -> Callable[[], object]:
        return partial(self.app.run_action, action)

    async def discover(self) -> Hits:
        for text, help_text, action in ACTIONS:
            yield DiscoveryHit(text, self._run(action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, help_text, action in ACTIONS:
            score = matcher.match(text)
            if score > 0:
                yield Hit(
                    score, matcher.highlight(text), self._run(action), text=text, help=help_text
                )


class EntityCommands(Provider):
    """``open <title>``: the titles of the app's ``ratings`` (None: no dataset
    loaded yet), opened in Neighbors by an :class:`~.messages.OpenEntityRequested`."""

    async def search(self, query: str) -> Hits:
        app = self.app
        ratings = getattr(app, "ratings", None)
        if ratings is None or len(query.strip()) < 2:
            return
        hits = search_entities(ratings.item_keys, query, limit=8)
        for rank, (key, label) in enumerate(hits):
            yield Hit(
                1.0 - rank / 10,
                f"Open {label}",
                partial(app.post_message, OpenEntityRequested(key)),
                text=f"Open {label}",
                help="show its neighbors in models A and B",
            )
