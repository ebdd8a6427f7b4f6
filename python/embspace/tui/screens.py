"""Modal screens: the help screen and the export dialog."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

__all__ = ["KEYS", "SCREENS", "ExportScreen", "HelpScreen", "help_text"]

#: (screen key, name, what it shows) of the three screens.
SCREENS = (
    (
        "1",
        "Sweep",
        "choose a dataset (registry names show whether they are on disk; or type a path) and "
        "the minimum ratings per user and per item to keep (Enter reloads), "
        "the estimator and its parameters, the parameter to sweep, its values, the reference "
        "value, seeds and measures; run it and read the table (rows = values, columns = "
        "measures, cells = similarity to the reference with the noise floor) and the chart. "
        "Runs found in the cache are marked cached; with a tol in the parameters, runs say "
        "whether they converged, and the log ends with the items of the reference run that "
        "sit in groups of exactly parallel vectors.",
    ),
    (
        "2",
        "Neighbors",
        "search a title (accents and case do not matter); its k nearest neighbors in model A "
        "and model B side by side (A and B: any finished run of the sweep, or SVD), shared "
        "neighbors marked ●, with the entity's Jaccard.",
    ),
    (
        "3",
        "Changes",
        "per entity, the value of A or B against the reference (or SVD): similarity, "
        "floor (re-seeding alone), q (FDR) and changed; changed first, filtered by genre and "
        "number of ratings; ctrl+s exports it; Enter opens one in Neighbors.",
    ),
)

#: (key, action) of every key binding, as the help screen lists them.
KEYS = (
    ("1 2 3  (f2 f3 f4)", "show the Sweep, Neighbors, Changes screen"),
    ("ctrl+r", "run the sweep"),
    ("ctrl+g", "cancel the running sweep (finished runs stay in the cache)"),
    ("ctrl+s", "export: table and results (CSV), JSON, chart (PNG)"),
    ("ctrl+f", "show or hide the sweep form"),
    ("ctrl+l", "load (or download) the chosen dataset"),
    ("/", "search a title (Neighbors)"),
    ("+  -", "more / fewer neighbors k (Neighbors, Changes)"),
    ("ctrl+t", "swap models A and B"),
    ("enter", "open the selected entity (Neighbors matches, Changes)"),
    ("tab  shift+tab", "next / previous field"),
    ("escape", "leave a text field (letters and digits type into fields)"),
    ("ctrl+p", "command palette: every action, and 'open <title>'"),
    ("?  f1", "this help"),
    ("ctrl+q", "quit"),
)


def help_text() -> Group:
    """The help screen's content: the screens, then the keys."""
    title = Text.assemble(
        ("embspace", "bold"),
        ": how much does an embedding space change when a hyperparameter changes?\n",
    )
    screens = Table(box=None, show_header=False, padding=(0, 1), expand=True)
    screens.add_column(width=2, style="bold")
    screens.add_column(width=10, style="bold")
    screens.add_column(ratio=1)
    for key, name, what in SCREENS:
        screens.add_row(key, name, what)
    keys = Table(box=None, show_header=False, padding=(0, 1), expand=True)
    keys.add_column(width=18, style="bold")
    keys.add_column(ratio=1)
    for key, action in KEYS:
        keys.add_row(key, action)
    return Group(
        title,
        Text("Screens", style="bold underline"),
        screens,
        Text("\nKeys", style="bold underline"),
        keys,
    )


class HelpScreen(ModalScreen[None]):
    """The screens and keys."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close", show=False),
        Binding("f1", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(help_text(), id="help-text")
            yield Label("escape: close", id="help-close")


class ExportScreen(ModalScreen["Path | None"]):
    """Asks for the folder the sweep's table (CSV), results, JSON and chart
    (PNG) are written to; dismisses with the folder or None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self._folder = folder

    def compose(self) -> ComposeResult:
        with Vertical(id="export-box"):
            yield Label(
                "Export the sweep: table (CSV), per-run results (CSV), JSON and chart (PNG)"
            )
            yield Input(str(self._folder), id="export-folder")
            with Horizontal(id="export-buttons"):
                yield Button("Export", id="export-ok", variant="primary")
                yield Button("Cancel", id="export-cancel")

    def on_mount(self) -> None:
        self.query_one("#export-folder", Input).focus()

    def _submit(self) -> None:
        text = self.query_one("#export-folder", Input).value.strip()
        if not text:
            self.notify("give a folder", severity="error", markup=False)
            return
        self.dismiss(Path(text).expanduser())

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "export-ok":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
