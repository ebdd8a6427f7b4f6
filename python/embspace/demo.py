"""The reference workflow end to end, as ``embspace demo`` runs it.

:func:`run_demo` reproduces the reference notebook on a dataset (default
ml-latest-small):

1. load the ratings, optionally keeping only users and items with a minimum
   number of ratings (the demo prints the filter it used, "none" by default);
2. train WALS with 10 factors and unobserved weight 0.01 (the reference
   notebook's other defaults: 20 iterations, regularization 0.07, "log" column
   weights), say how many items sit in groups of exactly parallel vectors
   (their neighbors are ties), and print the neighbors of 3 movies drawn at
   random (seeded) among those with at least 20 ratings;
3. sweep the unobserved weight over 0, 0.01, 0.1, 0.5, 1, 2 against weight 0
   with the measures neighbors, cca, unitmatch and cka, ``seeds`` seeds per
   value, runs of different seeds compared: each value's floor (its own
   seed-to-seed similarity), calibrated scores and the permutation test
   (Holm-adjusted; the summary says when the seeds are too few for it);
4. train SVD with 10 factors and compare every sweep run with it;
5. print the tables and the movies that moved most at the value farthest from
   the reference on ``neighbors`` (with their popularity, their own floor and
   the per-movie test, :func:`top_changes`), write PNG plots, CSV and JSON
   into ``out``, and close with a summary in words computed from the numbers.

Every WALS run has the notebook's 20 iterations as its cap and a convergence
test (``tol``, :data:`DEMO_TOL`): a run stops early when its relative loss
decrease per iteration falls below it. On ml-latest-small no run gets there in
20 iterations (the loss still falls by 0.03% to 0.6% per iteration), so the
runs are exactly the notebook's, and the summary says that they stopped at the
cap; converging takes 50 to 100 iterations for w0 >= 0.01 and about 320 at
w0 = 0 (``iterations=400``).

Trainings go through the embeddings cache, so a second demo is fast and the
WALS of step 2 is reused by the sweep.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._atomic import write_atomic
from .cache import EmbeddingCache
from .errors import EmbspaceWarning
from .faces.datasets import filter_described, load_described, parallel_groups
from .faces.tables import (
    SHORT_NAMES,
    format_neighbors,
    format_sweep_table,
    text_table,
    value_label,
)
from .faces.values import format_value, same_value
from .jsonio import json_default
from .measures import DEFAULT_MEASURES
from .sweeps import Sweep, SweepEvent, fit_cached
from .sweeps.training import stopped_at_cap

__all__ = [
    "DEMO_VALUES",
    "DemoResult",
    "format_changes",
    "pick_movies",
    "plateau",
    "run_demo",
    "summarize",
    "top_changes",
    "unstable_reference",
]

#: The unobserved weights of the reference notebook's sweep.
DEMO_VALUES = (0.0, 0.01, 0.1, 0.5, 1.0, 2.0)
#: The reference notebook's measures: the package defaults.
DEMO_MEASURES = DEFAULT_MEASURES
#: The reference notebook's number of WALS iterations: the demo's cap.
DEMO_ITERATIONS = 20
#: The relative loss decrease per iteration below which a demo run has
#: converged (and stops). On ml-latest-small at w0 = 2, a run stopped there
#: (about 60 iterations) and one of 200 iterations have CCA 0.999 and CKA
#: 0.9998 (Jaccard of 10-NN sets 0.86); after 20 iterations, CCA 0.94.
DEMO_TOL = 1e-4
PARAM = "unobserved_weight"


@dataclass
class DemoResult:
    """What :func:`run_demo` computed and wrote: the ratings and their
    ``overview`` (:class:`~embspace.ratings.RatingsSummary`), the step-2 model
    (a :class:`~embspace.sweeps.TrainedRun`), the queried movies and their
    neighbor tables, the sweep (with the SVD rows), the summary lines, the
    files written, timings in seconds, how many trainings ran or came
    from the cache, the ``filter`` applied to the ratings (minimums and what
    they kept) and the ``parallel`` vectors of the step-2 model and the SVD
    (:class:`~embspace.faces.datasets.ParallelGroups` as dicts)."""

    dataset: str
    ratings: Any
    model: Any
    queries: list[Any]
    neighbors: dict[str, pd.DataFrame]
    sweep: Sweep
    svd_table: pd.DataFrame
    summary: list[str]
    files: dict[str, Path]
    timings: dict[str, float] = field(default_factory=dict)
    overview: Any = None
    trained: int = 0
    cached: int = 0
    filter: dict[str, Any] = field(default_factory=dict)
    parallel: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: dataset, neighbor tables, sweep (table, results, runs), summary, files, timings."""
        return {
            "dataset": self.dataset,
            "ratings": self.overview.to_dict(),
            "neighbors": {
                title: frame.to_dict(orient="records") for title, frame in self.neighbors.items()
            },
            "sweep": self.sweep.to_dict(),
            "summary": self.summary,
            "files": {k: str(v) for k, v in self.files.items()},
            "timings": self.timings,
            "trainings": {"trained": self.trained, "from_cache": self.cached},
            "filter": self.filter,
            "parallel_vectors": self.parallel,
        }


# ---------------------------------------------------------------------- words
def _join(words: Sequence[str]) -> str:
    words = list(words)
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _monotone(ys: Sequence[float]) -> int:
    """+1 when non-decreasing (and not flat), -1 when non-increasing, else 0."""
    d = np.diff(np.asarray(ys, dtype=np.float64))
    if d.size == 0 or np.allclose(d, 0):
        return 0
    if (d >= -1e-9).all():
        return 1
    if (d <= 1e-9).all():
        return -1
    return 0


def _num(x: Any) -> float:
    """A table cell as a float (NaN for missing)."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return math.nan
    return f


def _cell(rows: pd.DataFrame, value: Any, measure: str, column: str) -> float:
    """The ``column`` of the row of ``value`` and ``measure`` in ``rows`` (NaN when absent)."""
    r = rows[(rows["measure"] == measure) & rows["value"].map(lambda v: same_value(v, value))]
    return _num(r[column].iloc[0]) if len(r) and column in r else math.nan


def _range(xs: Sequence[float]) -> str:
    """``"0.960-0.996"`` (or one number when they round alike)."""
    lo, hi = f"{min(xs):.3f}", f"{max(xs):.3f}"
    return lo if lo == hi else f"{lo}-{hi}"


def unstable_reference(
    table: pd.DataFrame, reference: Any, measures: Sequence[str]
) -> dict[str, tuple[float, float, float]]:
    """measure -> (reference floor, lowest and highest floor of the other
    values) for the measures on which the reference value's seed-to-seed
    similarity (its ``floor`` in the reference group) is below the floor of
    every other value: there the reference is the least stable value. Empty
    without floors (one seed)."""
    rows = table[table["against"] == "reference"]
    out: dict[str, tuple[float, float, float]] = {}
    for m in measures:
        part = rows[rows["measure"] == m]
        is_ref = part["value"].map(lambda v: same_value(v, reference)).to_numpy(bool)
        ref = part["floor"][is_ref].map(_num).to_numpy(np.float64)
        other = part["floor"][~is_ref].map(_num).to_numpy(np.float64)
        if (
            ref.size != 1
            or not np.isfinite(ref[0])
            or other.size == 0
            or not np.isfinite(other).all()
        ):
            continue
        if ref[0] < other.min():
            out[m] = (float(ref[0]), float(other.min()), float(other.max()))
    return out


def plateau(
    values: Sequence[Any], similarity: Sequence[float], stdev: Sequence[float]
) -> int | None:
    """Where a similarity stops rising along sorted numeric ``values``: the
    index of the first value after which no later value is higher by more
    than the larger of the two stdevs (missing stdevs count as 0). The last
    index means it is still rising at the largest value; None when a
    similarity is missing."""
    y = np.asarray(similarity, dtype=np.float64)
    sd = np.nan_to_num(np.asarray(stdev, dtype=np.float64), nan=0.0)
    if y.size == 0 or not np.isfinite(y).all():
        return None
    for i in range(y.size):
        later = np.arange(i + 1, y.size)
        if np.all(y[later] - y[i] <= np.maximum(sd[later], sd[i])):
            return i
    return y.size - 1  # pragma: no cover - the last index always qualifies


def summarize(sweep: Sweep, svd_name: str | None = "svd") -> list[str]:
    """The closing summary in words, every statement computed from the tables
    (:attr:`~embspace.Sweep.table`):

    - what the seeds allow: with one seed, no floor and no test; when the
      permutation test's smallest p-value times the number of tests (Holm)
      exceeds 0.05, no verdict, only calibrated scores;
    - per value other than the reference: ``changed`` (``p_adjusted <= 0.05``
      after Holm) on which measures, and the ``calibrated`` scores;
    - the reference when it is the least stable value (its floor below every
      other value's on a measure);
    - the largest change from the reference;
    - convergence (:func:`convergence_lines`);
    - against ``svd_name``: the closest values and where the similarity stops
      rising (:func:`plateau`).
    """
    from .sweeps.statistics import ALPHA, seeds_needed, smallest_p_value

    param, ref = sweep.param, sweep.reference
    table = sweep.table
    measures = list(sweep.measures)
    short = SHORT_NAMES.get(param, param)
    lines: list[str] = []
    others = [v for v in sweep.values if not same_value(v, ref)]
    ref_rows = table[table["against"] == "reference"]
    ref_label = value_label(param, ref)

    def by(rows: pd.DataFrame, m: str) -> Callable[[Any], float]:
        """The similarity of a value on measure ``m`` in ``rows`` (a sort key)."""
        return lambda v: _cell(rows, v, m, "similarity")

    s = len(sweep.seeds)
    tested = (
        ref_rows[ref_rows["p_value"].map(_num).map(math.isfinite)] if len(ref_rows) else ref_rows
    )
    n_tests = len(tested)
    verdicts = False
    if s < 2:
        lines.append(
            "With one seed there is no noise floor and no test: rerun with 2 or more seeds "
            "before reading small differences."
        )
    elif n_tests:
        p_min = smallest_p_value(s)
        if n_tests * p_min > ALPHA:
            lines.append(
                f"With {s} seeds the permutation test's smallest p-value is {p_min:.3g}, so after "
                f"Holm's adjustment over the {n_tests} tests of the table none can reach {ALPHA:g}: "
                f"these seeds are too few for any verdict ({seeds_needed(n_tests)} seeds are "
                "needed); the calibrated scores below describe, they do not test."
            )
        else:
            verdicts = True
            lines.append(
                f"A value has changed the space on a measure when its Holm-adjusted p-value (the "
                f"permutation test of the run labels over {s} seeds, {n_tests} tests) is at most "
                f"{ALPHA:g}."
            )
    if s >= 2 and others:
        lines.append(
            "Calibrated scores: 1 = as alike as a re-seed, 0 = as alike as unrelated spaces "
            "(rows shuffled)."
        )
        for v in others:
            cal = [f"{m} {_cell(ref_rows, v, m, 'calibrated'):.2f}" for m in measures]
            head = f"{short} = {format_value(v)} against {ref_label}"
            if verdicts:
                changed = [m for m in measures if _cell(ref_rows, v, m, "p_adjusted") <= ALPHA]
                kept = [
                    m
                    for m in measures
                    if m not in changed and math.isfinite(_cell(ref_rows, v, m, "p_adjusted"))
                ]
                if changed and not kept:
                    verdict = "changed on every measure"
                elif changed:
                    verdict = f"changed on {_join(changed)}, not shown on {_join(kept)}"
                else:
                    verdict = "no change shown on any measure"
                lines.append(f"{head}: {verdict}; calibrated {_join(cal)}.")
            else:
                lines.append(f"{head}: calibrated {_join(cal)}.")
        unstable = unstable_reference(table, ref, measures)
        if unstable:
            where = "every measure" if len(unstable) == len(measures) else _join(list(unstable))
            own = _join([f"{f:.3f} on {m}" for m, (f, _, _) in unstable.items()])
            rest = _join([_range([lo, hi]) for _, lo, hi in unstable.values()])
            lines.append(
                f"{short} = {format_value(ref)} is an unstable reference: two seeds of it agree "
                f"only {own}, against {rest} at the other values (the least stable value on "
                f"{where})."
            )

    if others:
        lows = {m: min(others, key=by(ref_rows, m)) for m in measures}
        if len(set(map(format_value, lows.values()))) == 1:
            v = next(iter(lows.values()))
            parts = [f"{m} {_cell(ref_rows, v, m, 'similarity'):.3f}" for m in measures]
            lines.append(
                f"The largest change from {ref_label} is at {value_label(param, v)} on every "
                f"measure ({_join(parts)})."
            )
        else:
            parts = [
                f"{m} at {value_label(param, v)} ({_cell(ref_rows, v, m, 'similarity'):.3f})"
                for m, v in lows.items()
            ]
            lines.append(f"The largest change from {ref_label} is: {_join(parts)}.")

    lines.extend(convergence_lines(sweep))

    if svd_name and svd_name in set(table["against"]):
        svd_rows = table[table["against"] == svd_name]
        best = {m: max(sweep.values, key=by(svd_rows, m)) for m in measures}
        name = svd_name.upper() if svd_name == "svd" else svd_name
        if len(set(map(format_value, best.values()))) == 1:
            v = next(iter(best.values()))
            parts = [f"{m} {_cell(svd_rows, v, m, 'similarity'):.3f}" for m in measures]
            lines.append(
                f"The spaces closest to {name} are at {value_label(param, v)} on every measure "
                f"({_join(parts)})."
            )
        else:
            parts = [
                f"{m} at {value_label(param, v)} ({_cell(svd_rows, v, m, 'similarity'):.3f})"
                for m, v in best.items()
            ]
            counts = pd.Series([format_value(v) for v in best.values()]).value_counts()
            lines.append(
                f"Closest to {name}: {_join(parts)}; {short}={counts.index[0]} wins on "
                f"{counts.iloc[0]} of {len(measures)} measures."
            )
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in sweep.values)
        if numeric and len(sweep.values) > 1:
            order = sorted(sweep.values)
            stops: dict[str, list[str]] = {}
            rising: list[str] = []
            for m in measures:
                i = plateau(
                    order,
                    [_cell(svd_rows, v, m, "similarity") for v in order],
                    [_cell(svd_rows, v, m, "stdev") for v in order],
                )
                if i is None:
                    continue
                if i == len(order) - 1:
                    rising.append(m)
                else:
                    stops.setdefault(format_value(order[i]), []).append(m)
            parts = [f"at {short} = {v} on {_join(ms)}" for v, ms in stops.items()]
            if parts:
                text = (
                    f"Similarity to {name} stops rising {_join(parts)} (no larger value is higher "
                    "by more than a stdev)"
                )
                if rising:
                    text += f"; it still rises up to {short} = {format_value(order[-1])} on {_join(rising)}"
                lines.append(text + ".")
            elif rising:
                lines.append(
                    f"Similarity to {name} still rises up to {short} = {format_value(order[-1])} "
                    f"on {_join(rising)}."
                )
    return lines


def top_changes(sweep: Sweep, value: Any, n: int = 10) -> pd.DataFrame:
    """The ``n`` entities whose neighborhoods moved most between ``value`` and
    the reference (:meth:`~embspace.Sweep.changes`): smallest ``q_value``
    first (missing last), then the largest drop below their own floor
    (``floor - similarity``, missing last), then the lowest similarity, then
    more ratings. Columns ``title, n_ratings, similarity, floor, q_value,
    changed``. The statistics' warning about too few seeds is silenced: the
    summary says it in words."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmbspaceWarning)
        frame = sweep.changes(value)
    frame = frame.assign(drop=frame["floor"] - frame["similarity"])
    frame = frame.sort_values(
        ["q_value", "drop", "similarity", "n_ratings"],
        ascending=[True, False, True, False],
        kind="mergesort",
        na_position="last",
    )
    cols = ["title", "n_ratings", "similarity", "floor", "q_value", "changed"]
    return frame[cols].head(n).reset_index(drop=True)


def format_changes(frame: pd.DataFrame) -> str:
    """A :func:`top_changes` frame as text: numbers to 3 decimals, ``-`` when missing."""

    def fixed(x: Any) -> str:
        return "-" if pd.isna(x) else f"{float(x):.3f}"

    rows = [
        [
            str(r.title),
            f"{int(r.n_ratings):,}",
            fixed(r.similarity),
            fixed(r.floor),
            fixed(r.q_value),
            "-" if pd.isna(r.changed) else ("yes" if r.changed else "no"),
        ]
        for r in frame.itertuples(index=False)
    ]
    return text_table(["title", "ratings", "similarity", "floor", "q_value", "changed"], rows)


def convergence_lines(sweep: Sweep) -> list[str]:
    """What the summary says about convergence: which runs stopped at their
    iteration cap before their ``tol`` (and how fast the loss was still
    falling), or that every run converged. Nothing when the runs had no
    convergence test."""
    runs = [r for r in sweep.runs if r.tol is not None]
    if not runs:
        return []
    param = sweep.param
    capped = [r for r in runs if stopped_at_cap(r)]
    tol = format_value(max(r.tol for r in runs if r.tol is not None))
    if not capped:
        most = max((r.n_iter for r in runs if r.n_iter is not None), default=None)
        within = f" within {most} iterations" if most is not None else ""
        return [f"Every run converged{within} (relative loss decrease per iteration below {tol})."]
    caps = sorted({r.n_iter for r in capped if r.n_iter is not None})
    cap = f" of {_join([str(c) for c in caps])} iterations" if caps else ""
    decreases = [r.last_decrease for r in capped if r.last_decrease is not None]
    still = (
        f" (the loss was still falling by {min(decreases):.2%} to {max(decreases):.2%} per "
        "iteration)"
        if decreases
        else ""
    )
    values = list(dict.fromkeys(format_value(r.value) for r in capped))
    if len(capped) == len(runs):
        who = f"All {len(runs)} runs"
    else:
        short = SHORT_NAMES.get(param, param)
        who = f"{len(capped)} of {len(runs)} runs ({short} = {_join(values)})"
    return [
        f"{who} stopped at their cap{cap} before the relative loss decrease fell below "
        f"{tol}{still}: the similarities measure the iteration budget as well as {param}; "
        "rerun with more iterations (--iterations) to compare converged models."
    ]


# ---------------------------------------------------------------------- the workflow
def pick_movies(ratings: Any, n: int = 3, seed: int = 0, min_ratings: int = 20) -> list[Any]:
    """``n`` item keys drawn at random (``seed``) among the items with at least
    ``min_ratings`` ratings (all items when fewer than ``n`` qualify)."""
    counts = ratings.items["n_ratings"].to_numpy()
    pool = np.flatnonzero(counts >= min_ratings)
    if pool.size < n:
        pool = np.arange(ratings.n_items)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(pool, size=min(n, pool.size), replace=False)
    keys = ratings.item_keys
    return [keys[i] for i in sorted(chosen, key=lambda i: -counts[i])]


def run_demo(
    dataset: Any = "ml-latest-small",
    *,
    out: str | Path | None = "embspace-demo",
    seeds: int = 3,
    quick: bool = False,
    cache_dir: str | Path | bool | None = None,
    progress: bool = True,
    num_threads: int | None = None,
    device: str = "cpu",
    echo: Callable[[str], Any] | None = print,
    log: Callable[[str], Any] | None = None,
    n_movies: int = 3,
    movie_seed: int = 0,
    iterations: int | None = None,
    tol: float | None = DEMO_TOL,
    min_user_ratings: int = 1,
    min_item_ratings: int = 1,
) -> DemoResult:
    """Run the reference workflow (see the module docstring) and return its results.

    ``dataset`` is a registry name, a path, a ``synthetic:`` spec (as the CLI
    takes them) or a :class:`~embspace.Ratings`. ``echo`` receives the printed
    sections (None: silent); ``log`` one line per finished training (None:
    silent). ``quick`` uses one seed and 5 iterations. ``out=None`` writes no files.
    ``iterations`` is the WALS cap (None: :data:`DEMO_ITERATIONS`) and ``tol``
    its convergence test (None: :data:`DEMO_TOL`; 0: run every iteration).
    ``min_user_ratings`` and ``min_item_ratings`` filter the ratings first
    (:meth:`~embspace.Ratings.filter`; 1 and 1 keep everything).
    """
    import embspace as es

    say = echo or (lambda text: None)
    note = log or (lambda text: None)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    if quick:
        seeds, iterations = 1, iterations or 5
    n_iter = iterations or DEMO_ITERATIONS
    tol = DEMO_TOL if tol is None else tol

    t = time.perf_counter()
    if isinstance(dataset, es.Ratings):
        ratings, name, source = dataset, dataset.name or "ratings", "given in Python"
    else:
        name = str(dataset)
        ratings, source = load_described(name, progress=progress)
    ratings, filtered = filter_described(ratings, min_user_ratings, min_item_ratings)
    timings["load"] = time.perf_counter() - t
    overview = ratings.summary()  # once: its histogram sorts every rating
    say(f"== {name}\n{overview}\n  source     {source}\n  filter     {filtered}\n")
    filter_info = {
        "min_user_ratings": min_user_ratings,
        "min_item_ratings": min_item_ratings,
        "description": filtered,
    }

    cache = (
        None
        if cache_dir is False
        else EmbeddingCache(None if cache_dir is None or cache_dir is True else cache_dir)
    )
    base = es.WALS(factors=10, unobserved_weight=0.01, iterations=n_iter, tol=tol, random_state=0)
    if num_threads is not None:
        base.set_params(num_threads=num_threads)
    if "device" in base.get_params():
        base.set_params(device=device)
    trained = cached = 0

    # 2. one model and the neighbors of three movies
    t = time.perf_counter()
    first = fit_cached(ratings, base, cache=cache, progress=progress)
    trained, cached = trained + (not first.cached), cached + first.cached
    note(
        f"WALS {value_label(PARAM, 0.01)} seed=0: "
        + ("loaded from the cache" if first.cached else f"trained in {first.fit_time:.2f} s")
    )
    timings["train"] = time.perf_counter() - t
    t = time.perf_counter()
    table = es.NeighborTable(first.items, metric="cosine", num_threads=num_threads, device=device)
    queries = pick_movies(ratings, n_movies, movie_seed)
    neighbors: dict[str, pd.DataFrame] = {}
    wals_parallel = parallel_groups(first.items)
    say(
        f"== WALS factors=10 {value_label(PARAM, 0.01)}, {_iterations_text(first, n_iter, tol)}\n"
        f"  parallel   {wals_parallel.describe('items')}\n"
    )
    say(f"== neighbors of {len(queries)} random movies")
    for key in queries:
        frame = table.neighbors(key, k=10)
        title = key[0] if isinstance(key, tuple) else str(key)
        neighbors[title] = frame
        say(f"\n{title}" + (f"  [{key[1]}]" if isinstance(key, tuple) and len(key) > 1 else ""))
        say(format_neighbors(frame))
    say("")
    timings["neighbors"] = time.perf_counter() - t

    # 3. the sweep against weight 0
    t = time.perf_counter()
    sweep = Sweep(
        ratings,
        base,
        PARAM,
        list(DEMO_VALUES),
        reference=0.0,
        seeds=seeds,
        measures=DEMO_MEASURES,
        cache_dir=False if cache is None else cache.folder,
        device=device,
        num_threads=num_threads,
    )

    def on_event(event: SweepEvent) -> None:
        if event.kind == "run_done":
            how = "loaded from the cache" if event.cached else f"trained in {event.elapsed:.2f} s"
            note(
                f"run {(event.run_index or 0) + 1}/{event.n_runs} {value_label(PARAM, event.value)} seed={event.seed}: {how}"
            )

    with warnings.catch_warnings():
        # the summary says which runs stopped at their cap, in words
        warnings.filterwarnings("ignore", ".* runs stopped at their cap", EmbspaceWarning)
        sweep.run(callback=on_event, progress=progress)
    timings["sweep"] = time.perf_counter() - t
    for r in sweep.runs:
        trained, cached = trained + (not r.cached), cached + r.cached

    # 4. SVD against every sweep run
    t = time.perf_counter()
    svd = fit_cached(ratings, es.SVD(factors=10, random_state=0), cache=cache)
    trained, cached = trained + (not svd.cached), cached + svd.cached
    note(
        "SVD factors=10: "
        + ("loaded from the cache" if svd.cached else f"trained in {svd.fit_time:.2f} s")
    )
    svd_table = sweep.against(svd.items, name="svd")
    svd_parallel = parallel_groups(svd.items)
    say(f"== SVD factors=10\n  parallel   {svd_parallel.describe('items')}\n")
    timings["svd"] = time.perf_counter() - t

    say(format_sweep_table(sweep, "reference"))
    say("")
    say(format_sweep_table(sweep, "svd"))
    say("")
    others = [v for v in sweep.values if not same_value(v, sweep.reference)]
    if others and "neighbors" in sweep.measures:
        ref_rows = sweep.table[
            (sweep.table["against"] == "reference") & (sweep.table["measure"] == "neighbors")
        ]
        moved = min(others, key=lambda v: _cell(ref_rows, v, "neighbors", "similarity"))
        say(
            f"== where {value_label(PARAM, moved)} moved most from "
            f"{value_label(PARAM, sweep.reference)}: per movie, the Jaccard of its 10-NN sets "
            "(similarity) beside re-seeding alone (floor); q_value: the per-movie test, FDR "
            "across movies"
        )
        say(format_changes(top_changes(sweep, moved)))
        say("")

    # 5. files and the summary
    summary = summarize(sweep, "svd")
    files: dict[str, Path] = {}
    if out is not None:
        t = time.perf_counter()
        used = {
            "filter": filter_info,
            "parallel_vectors": {"wals": wals_parallel.to_dict(), "svd": svd_parallel.to_dict()},
        }
        files = _write_outputs(Path(out), sweep, neighbors, summary, overview, name, used)
        timings["files"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_all
    say("== summary")
    for line in summary:
        say(f"- {line}")
    if files and out is not None:
        say(
            f"\nwrote {len(files)} files to {Path(out)}/: "
            + ", ".join(sorted(p.name for p in files.values()))
        )
    say(
        f"{trained} trainings, {cached} from the cache; {timings['total']:.1f} s in all "
        f"(sweep {timings['sweep']:.1f} s)."
    )
    return DemoResult(
        dataset=name,
        ratings=ratings,
        model=first,
        queries=queries,
        neighbors=neighbors,
        sweep=sweep,
        svd_table=svd_table,
        summary=summary,
        files=files,
        timings=timings,
        overview=overview,
        trained=trained,
        cached=cached,
        filter=filter_info,
        parallel={"wals": wals_parallel.to_dict(), "svd": svd_parallel.to_dict()},
    )


def _iterations_text(run: Any, cap: int, tol: float) -> str:
    """How a demo training ended: ``"20 iterations (the cap; ...)"`` or
    ``"converged in 45 iterations (...)"``."""
    done = cap if run.n_iter is None else run.n_iter
    if not tol:
        return f"{done} iterations"
    if run.converged:
        return f"converged in {done} iterations (relative loss decrease below {tol:g})"
    still = (
        f", the loss still falling by {run.last_decrease:.2%} per iteration"
        if run.last_decrease is not None
        else ""
    )
    return f"{done} iterations (the cap; not converged to {tol:g}{still})"


def _write_outputs(
    out: Path,
    sweep: Sweep,
    neighbors: dict[str, pd.DataFrame],
    summary: list[str],
    overview: Any,
    name: str,
    used: dict[str, Any],
) -> dict[str, Path]:
    from .plots import save_figure

    out.mkdir(parents=True, exist_ok=True)
    files = {f"sweep_{k}": v for k, v in sweep.save(out).items()}
    files["plot_reference"] = save_figure(
        sweep.plot(against="reference"), out / "sweep_vs_reference.png"
    )
    files["plot_svd"] = save_figure(sweep.plot(against="svd"), out / "sweep_vs_svd.png")
    frames = []
    for title, frame in neighbors.items():
        f = frame.copy()
        f.insert(0, "query", title)
        if "key" in f.columns:
            f["key"] = f["key"].map(str)
        frames.append(f)
    if frames:
        files["neighbors"] = write_atomic(
            out / "neighbors.csv", pd.concat(frames).to_csv(index=False).encode()
        )
    files["summary"] = write_atomic(out / "summary.txt", ("\n".join(summary) + "\n").encode())
    meta = {"dataset": name, "ratings": overview.to_dict(), **used, "summary": summary}
    files["demo"] = write_atomic(
        out / "demo.json", json.dumps(meta, indent=2, default=json_default).encode()
    )
    return files
