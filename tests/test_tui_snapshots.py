"""Snapshots of the main screens at 120 x 40 (pytest-textual-snapshot).

Content is deterministic: the synthetic "tiny" dataset (seed 0), a small WALS
sweep with fixed seeds, and nothing time-dependent on screen (notifications
are cleared before the shot). Update with ``pytest --snapshot-update`` after a
deliberate change, and look at the SVGs before committing them."""

from __future__ import annotations

import pytest

pytest.importorskip("textual")
pytest.importorskip("textual_plotext")
pytest.importorskip("pytest_textual_snapshot")

from embspace.tui.app import EmbspaceApp
from textual.pilot import Pilot
from textual.widgets import Input, Select

SIZE = (120, 40)


async def settle(pilot: Pilot) -> None:
    app = pilot.app
    for _ in range(100):
        await app.workers.wait_for_complete()
        await pilot.pause()
        if all(w.is_finished for w in app.workers):
            await pilot.pause()
            return
    raise AssertionError("workers kept starting")


async def run_small_sweep(pilot: Pilot) -> None:
    app = pilot.app
    await settle(pilot)
    pane = app.sweep_pane
    pane.query_one("#params", Input).value = "factors=8, iterations=4, regularization=0.07"
    pane.query_one("#param", Select).value = "unobserved_weight"
    pane.query_one("#values", Input).value = "0, 0.1, 1"
    pane.query_one("#reference", Input).value = "0"
    pane.query_one("#seeds", Input).value = "2"
    await pilot.press("ctrl+r")
    await settle(pilot)


async def quiet(pilot: Pilot) -> None:
    await settle(pilot)
    pilot.app.clear_notifications()
    await pilot.pause()


def test_sweep_form(snap_compare):
    async def run_before(pilot: Pilot) -> None:
        await quiet(pilot)

    assert snap_compare(EmbspaceApp("synthetic:tiny"), terminal_size=SIZE, run_before=run_before)


def test_sweep_results(snap_compare):
    async def run_before(pilot: Pilot) -> None:
        await run_small_sweep(pilot)
        await quiet(pilot)

    assert snap_compare(EmbspaceApp("synthetic:tiny"), terminal_size=SIZE, run_before=run_before)


def test_neighbors(snap_compare):
    async def run_before(pilot: Pilot) -> None:
        await run_small_sweep(pilot)
        app = pilot.app
        await pilot.press("2", "slash")
        title = app.ratings.item_keys[7][0]
        app.query_one("#search", Input).value = title
        await settle(pilot)
        await pilot.press("enter")
        await quiet(pilot)

    assert snap_compare(EmbspaceApp("synthetic:tiny"), terminal_size=SIZE, run_before=run_before)


def test_changes(snap_compare):
    async def run_before(pilot: Pilot) -> None:
        await run_small_sweep(pilot)
        await pilot.press("3")
        await quiet(pilot)

    assert snap_compare(EmbspaceApp("synthetic:tiny"), terminal_size=SIZE, run_before=run_before)
