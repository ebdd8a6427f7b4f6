"""A sweep stopped anywhere resumes in-process to the table of an uninterrupted one.

Regression: a run used to be recorded before its comparisons existed and was
skipped on resume, so a sweep stopped by a callback raising at ``run_done`` or
by Ctrl-C inside a comparison reported ``finished=True`` with rows averaging
fewer seed pairs than the others.
"""

from __future__ import annotations

from pathlib import Path

import embspace as es
import pytest
from embspace.sweeps import Sweep, SweepEvent, comparisons

MEASURES = ("neighbors", "cca", "unitmatch", "cka")
VALUES = [0.0, 0.1, 1.0]
SEEDS = 3


def _sweep(ratings, cache: Path) -> Sweep:
    wals = es.WALS(factors=6, iterations=6, num_threads=2)
    return Sweep(
        ratings, wals, "unobserved_weight", VALUES, seeds=SEEDS, measures=MEASURES, cache_dir=cache
    )


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("resume-cache")


@pytest.fixture(scope="module")
def uninterrupted(tiny, cache: Path) -> Sweep:
    sweep = _sweep(tiny, cache).run(progress=False)
    assert sweep.finished
    return sweep


def _assert_same_sweep(resumed: Sweep, expected: Sweep) -> None:
    assert resumed.finished
    table = resumed.table
    # every pair of distinct seeds: s (s - 1) ordered ones per value, and the
    # reference row over the s (s - 1) / 2 pairs of its own seeds
    distinct = SEEDS * (SEEDS - 1)
    assert (table["n_pairs"] == table["value"].map({0.0: distinct // 2}).fillna(distinct)).all()
    assert table["p_value"].notna().sum() == (len(VALUES) - 1) * len(MEASURES)
    assert table.equals(expected.table)
    assert resumed.results.equals(expected.results)
    assert resumed.noise.equals(expected.noise)
    assert resumed.noise_floor == pytest.approx(expected.noise_floor, nan_ok=True)
    assert len(resumed.noise) == len(VALUES) * len(MEASURES) * SEEDS * (SEEDS - 1) // 2


def _runs_of_row(row: dict) -> set[tuple[float, int]]:
    """The runs a compared pair (an event's row) involves."""
    if row["against"] == "reference":
        return {(row["value"], row["seed"]), (0.0, row["other_seed"])}
    if row["against"] == "noise":
        return {(row["value"], row["seed"]), (row["value"], row["other_seed"])}
    return {(row["value"], row["seed"])}


def _compared_runs(sweep: Sweep) -> set[tuple[float, int]]:
    """The runs that take part in a comparison of the sweep's tables."""
    runs: set[tuple[float, int]] = set()
    for r in sweep.results.to_dict("records"):
        runs |= _runs_of_row(r)
    for r in sweep.noise.to_dict("records"):
        runs |= {(r["value"], r["seed_a"]), (r["value"], r["seed_b"])}
    return runs


@pytest.mark.parametrize("stop_at", [(0.0, 1), (0.1, 1), (1.0, 2)], ids=str)
def test_resume_after_a_callback_raised_at_run_done(
    tiny, cache: Path, uninterrupted: Sweep, stop_at: tuple[float, int]
) -> None:
    class Stop(Exception):
        pass

    def stop(event: SweepEvent) -> None:
        if event.kind == "run_done" and (event.value, event.seed) == stop_at:
            raise Stop

    sweep = _sweep(tiny, cache)
    with pytest.raises(Stop):
        sweep.run(callback=stop, progress=False)
    # the run is trained, but none of its comparisons exist: not finished
    assert (stop_at[0], stop_at[1]) in [(r.value, r.seed) for r in sweep.runs]
    assert not sweep.finished
    assert stop_at not in _compared_runs(sweep)
    events: list[SweepEvent] = []
    sweep.run(callback=events.append, progress=False)
    _assert_same_sweep(sweep, uninterrupted)
    # the comparisons left out are made on resume and reported
    rows = [e.row for e in events if e.kind == "compare_done"]
    assert any(stop_at in _runs_of_row(r) and not r["chance"] for r in rows)
    assert stop_at in _compared_runs(sweep)
    # runs trained before the stop are not trained again
    trained_before = sweep.plan.index(stop_at) + 1
    assert [e.kind for e in events].count("run_done") == len(VALUES) * SEEDS - trained_before


@pytest.mark.parametrize("interrupt_at", [1, 4, 6, 11])
def test_resume_after_ctrl_c_inside_a_comparison(
    tiny, cache: Path, uninterrupted: Sweep, interrupt_at: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = [0]
    original = comparisons.compare

    def interrupted_compare(*args, **kwargs):
        calls[0] += 1
        if calls[0] == interrupt_at:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(comparisons, "compare", interrupted_compare)
    sweep = _sweep(tiny, cache)
    with pytest.raises(KeyboardInterrupt):
        sweep.run(progress=False)
    assert not sweep.finished
    n_compared = len(sweep.results.groupby(["value", "seed", "other_seed", "against"])) + len(
        sweep.noise.groupby(["value", "seed_a", "seed_b"])
    )
    assert n_compared == interrupt_at - 1  # every comparison before the interrupt is kept
    monkeypatch.undo()
    sweep.run(progress=False)
    _assert_same_sweep(sweep, uninterrupted)


def test_resume_recomputes_missing_against_pairs(
    tiny, cache: Path, uninterrupted: Sweep, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C inside against() leaves the sweep as it was; a later against() and
    a later run() complete the external group too."""
    svd = es.SVD(factors=6, random_state=0).fit(tiny)
    sweep = _sweep(tiny, cache).run(progress=False)
    before = sweep.table
    calls = [0]
    original = comparisons.compare

    def interrupted_compare(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(comparisons, "compare", interrupted_compare)
    with pytest.raises(KeyboardInterrupt):
        sweep.against(svd, name="svd")
    monkeypatch.undo()
    assert sweep.table.equals(before) and sweep.finished
    rows = sweep.against(svd, name="svd")
    expected = _sweep(tiny, cache).run(progress=False)
    assert rows.equals(expected.against(svd, name="svd"))
    assert sweep.table.equals(expected.table)
    assert len(rows) == len(VALUES) * len(MEASURES) and (rows["n_pairs"] == SEEDS).all()


def test_against_with_a_dimension_the_measures_refuse_changes_nothing(
    tiny, cache: Path, uninterrupted: Sweep
) -> None:
    from embspace.errors import ShapeMismatchError

    sweep = _sweep(tiny, cache).run(progress=False)
    before = sweep.table
    wide = es.SVD(factors=4, random_state=0).fit(tiny)
    with pytest.raises(ShapeMismatchError, match="unitmatch"):
        sweep.against(wide, name="svd4")
    assert sweep.table.equals(before) and sweep.finished
    assert before.equals(uninterrupted.table)
