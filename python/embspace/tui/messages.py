"""Requests the panes post up to the app (which answers by calling pane methods).

A pane never calls the app: it posts one of these (they bubble up the DOM to
the app, as Textual messages do) and the app handles it, then tells the panes
what to show through their own methods. Messages of one pane only are defined
on that pane (``SweepPane.RunRequested``, ...); these are shared by several.
"""

from __future__ import annotations

from collections.abc import Hashable

from textual.message import Message

__all__ = ["ErrorReported", "KStepRequested", "OpenEntityRequested", "SwapRequested"]


class ErrorReported(Message):
    """Something failed (often in a worker thread): tell the user, keep running."""

    def __init__(self, error: BaseException, title: str = "Error") -> None:
        super().__init__()
        self.error = error
        self.title = title


class KStepRequested(Message):
    """Show ``step`` more (or, negative, fewer) neighbors; k stays at least 1."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step


class SwapRequested(Message):
    """Exchange models A and B."""


class OpenEntityRequested(Message):
    """Show entity ``key`` on the Neighbors screen."""

    def __init__(self, key: Hashable) -> None:
        super().__init__()
        self.key = key
