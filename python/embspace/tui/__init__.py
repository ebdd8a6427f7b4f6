"""The embspace terminal UI (``embspace tui``), a Textual app.

Three screens: **Sweep** (choose a dataset, estimator and sweep; run it in a
worker thread with progress, read the similarity table and chart, export CSV
and PNG), **Neighbors** (a title's nearest neighbors in two models side by
side, shared ones marked, with its Jaccard) and **Changes** (per entity,
:meth:`embspace.Sweep.changes`: similarity, floor, q-value, changed). The logic it shows lives in
:mod:`embspace.tui.views`, which does not import Textual; the panes post
messages up to the app (:mod:`embspace.tui.messages`) and the app calls the
panes' methods down.

Needs the ``tui`` extra (``pip install embspace[tui]``: textual, textual-plotext).
"""

from __future__ import annotations

from typing import Any

__all__ = ["run"]


def run(dataset: str | None = None, *, ratings: Any = None) -> None:
    """Start the app in the terminal and return when it quits.

    ``dataset`` is a registry name (``"ml-latest-small"``), ``"synthetic:<preset>"``
    or a local folder/zip loaded at start; ``ratings`` an in-memory
    :class:`~embspace.Ratings` used instead."""
    try:
        from .app import EmbspaceApp
    except ImportError as exc:  # textual is an optional dependency
        raise ImportError(
            f"the terminal UI needs the 'tui' extra: pip install 'embspace[tui]' ({exc})"
        ) from exc
    EmbspaceApp(dataset, ratings=ratings).run()
