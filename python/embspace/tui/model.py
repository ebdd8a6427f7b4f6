"""What the terminal UI shows, computed without Textual.

Everything here is plain Python over the public embspace API (datasets,
estimators, :class:`~embspace.Sweep`, :class:`~embspace.NeighborTable`,
:func:`~embspace.compare`, :func:`~embspace.search.search_titles`), so it is
tested directly and the widgets only display what these functions return:

- the sweep form: :class:`SweepSpec` (values read by :mod:`embspace.faces.values`);
- the sweep results: :func:`similarity_grid` (rows = values, columns =
  measures, cells = similarity with the noise floor) and :func:`chart_series`;
- the two models compared: :class:`ModelChoice`, :func:`model_choices` and
  :class:`ModelPair` (aligned embeddings, neighbor tables, per-entity Jaccard);
- the Neighbors screen: :func:`side_by_side` and :func:`complete_title`;
- the Changes screen: :func:`changes_table` and :func:`genres_of`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InvalidParameterError
from ..faces.estimators import (
    check_sweep_param,
    estimator_defaults,
    make_estimator,
)
from ..faces.values import format_value, parse_params, parse_values

__all__ = [
    "SHARED_MARK",
    "ChartSeries",
    "GridRow",
    "ModelChoice",
    "ModelPair",
    "NeighborRow",
    "SideBySide",
    "SweepSpec",
    "TitleIndex",
    "changes_table",
    "chart_series",
    "complete_title",
    "default_pair",
    "format_cell",
    "genres_of",
    "model_choices",
    "popularity_of",
    "search_entities",
    "side_by_side",
    "similarity_grid",
    "svd_factors",
]

#: Mark of a neighbor that both models share.
SHARED_MARK = "●"


def svd_factors(sweep: Any) -> int:
    """Factors of the SVD compared with a sweep: the reference value when the
    sweep varies ``factors``, else the estimator's ``factors`` (default 10)."""
    if sweep.param == "factors":
        return int(sweep.reference)
    return int(sweep.estimator.get_params(deep=False).get("factors", 10))


# ---------------------------------------------------------------------- sweep spec
@dataclass(frozen=True)
class SweepSpec:
    """A sweep as the form describes it; :meth:`make_sweep` builds the
    :class:`~embspace.Sweep`.

    ``params`` are the estimator's fixed parameters (the swept one is set per
    run by the sweep), ``values`` the swept values, ``reference`` one of them.
    """

    estimator: str
    params: Mapping[str, Any]
    param: str
    values: tuple[Any, ...]
    reference: Any
    seeds: int
    measures: tuple[str, ...]
    k: int = 10

    @classmethod
    def from_form(
        cls,
        *,
        estimator: str,
        params: str,
        param: str,
        values: str,
        reference: str,
        seeds: str,
        measures: Sequence[str],
        k: int = 10,
    ) -> SweepSpec:
        """Parse and check the text of the form's fields; raises
        :class:`InvalidParameterError` with a message for the user."""
        defaults = estimator_defaults(estimator)
        fixed = parse_params(params, defaults, owner=estimator)
        check_sweep_param(estimator, param, defaults)
        swept = tuple(parse_values(values, defaults[param], param))
        if reference.strip():
            ref = parse_values(reference, defaults[param], "reference")
            if len(ref) != 1:
                raise InvalidParameterError("give a single reference value")
            matches = [v for v in swept if v == ref[0]]
            if not matches:
                listed = ", ".join(format_value(v) for v in swept)
                raise InvalidParameterError(
                    f"reference {format_value(ref[0])} is not among the values ({listed})"
                )
            reference_value = matches[0]
        else:
            reference_value = swept[0]
        try:
            n_seeds = int(seeds.strip())
        except ValueError:
            raise InvalidParameterError(f"seeds must be a whole number, got {seeds!r}") from None
        if n_seeds < 1:
            raise InvalidParameterError("seeds must be at least 1")
        if not measures:
            raise InvalidParameterError("choose at least one measure")
        fixed.pop(param, None)
        return cls(
            estimator=estimator,
            params=fixed,
            param=param,
            values=swept,
            reference=reference_value,
            seeds=n_seeds,
            measures=tuple(measures),
            k=int(k),
        )

    def make_estimator(self) -> Any:
        """The estimator with the fixed parameters (the swept one at its default)."""
        return make_estimator(self.estimator, self.params)

    def make_sweep(self, ratings: Any, *, cache_dir: Any = None) -> Any:
        """The :class:`~embspace.Sweep` of this spec on ``ratings`` (not run yet)."""
        from ..sweeps import Sweep

        return Sweep(
            ratings,
            self.make_estimator(),
            param=self.param,
            values=list(self.values),
            reference=self.reference,
            seeds=self.seeds,
            measures=self.measures,
            cache_dir=cache_dir,
            k=self.k,
        )


# ---------------------------------------------------------------------- results
def format_cell(similarity: float, noise_floor: float | None = None) -> str:
    """``"0.873 (floor 0.950)"``; the floor is left out when unknown (one seed)."""
    if similarity is None or not math.isfinite(similarity):
        return "—"
    if noise_floor is None or not math.isfinite(noise_floor):
        return f"{similarity:.3f}"
    return f"{similarity:.3f} (floor {noise_floor:.3f})"


@dataclass(frozen=True)
class GridRow:
    """One row of the results table: a value of the swept parameter."""

    value: Any
    label: str
    cells: tuple[str, ...]
    done: bool


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return a is b


def _cells(
    table: pd.DataFrame, values: Sequence[Any], against: str
) -> dict[tuple[int, str], tuple[float, float]]:
    """(index in ``values``, measure) -> (similarity, noise floor) of the
    ``against`` rows of a :attr:`Sweep.table`."""
    out: dict[tuple[int, str], tuple[float, float]] = {}
    if not len(table):
        return out
    rows = table[table["against"] == against]
    for value, measure, sim, floor in zip(
        rows["value"], rows["measure"], rows["similarity"], rows["noise_floor"], strict=True
    ):
        for i, v in enumerate(values):
            if _same(v, value):
                out.setdefault((i, str(measure)), (float(sim), float(floor)))
                break
    return out


def similarity_grid(
    table: pd.DataFrame,
    values: Sequence[Any],
    measures: Sequence[str],
    *,
    reference: Any = None,
    against: str = "reference",
) -> list[GridRow]:
    """Rows = ``values`` (every one, finished or not), columns = ``measures``;
    each cell formats the ``similarity`` of that (value, measure) in ``table``
    (a :attr:`Sweep.table`) for the ``against`` group, with its noise floor,
    or ``"…"`` while it is not computed yet. The reference value's label is
    marked ``(ref)``."""
    cells = _cells(table, values, against)
    rows = []
    for i, value in enumerate(values):
        texts = tuple(format_cell(*cells[(i, m)]) if (i, m) in cells else "…" for m in measures)
        label = format_value(value)
        if reference is not None and _same(value, reference):
            label += " (ref)"
        rows.append(GridRow(value, label, texts, done=all((i, m) in cells for m in measures)))
    return rows


@dataclass(frozen=True)
class ChartSeries:
    """What the chart draws: ``x`` positions with tick ``labels``, and for each
    measure its similarities (NaN where not computed yet)."""

    x: tuple[float, ...]
    labels: tuple[str, ...]
    series: dict[str, tuple[float, ...]]
    categorical: bool


def chart_series(
    table: pd.DataFrame,
    values: Sequence[Any],
    measures: Sequence[str],
    *,
    against: str = "reference",
) -> ChartSeries:
    """Similarity against the swept value, one series per measure.

    Numbers spanning at most two decades are drawn at their value; wider
    ranges (0, 0.01 ... 2) and non-numbers are drawn evenly spaced with their
    values as tick labels (:func:`embspace.plots.x_positions` decides the
    scale, as for the matplotlib figure)."""
    from ..plots import x_positions

    positions, scale, labels = x_positions(list(values))
    categorical = scale != "linear"
    x = tuple(float(i) for i in range(len(values))) if categorical else tuple(map(float, positions))
    cells = _cells(table, values, against)
    series = {
        m: tuple(cells[(i, m)][0] if (i, m) in cells else float("nan") for i in range(len(values)))
        for m in measures
    }
    return ChartSeries(x=x, labels=tuple(labels), series=series, categorical=categorical)


# ---------------------------------------------------------------------- models
@dataclass(frozen=True)
class ModelChoice:
    """A model the Neighbors and Changes screens can show: a finished run of
    the sweep (``value``, ``seed``) or the SVD of the same ratings (``svd``)."""

    id: str
    label: str
    value: Any = None
    seed: int | None = None
    svd: bool = False


def model_choices(sweep: Any | None, *, svd: bool = True) -> list[ModelChoice]:
    """The finished runs of ``sweep`` in the order of its values and seeds,
    then the SVD (when ``svd``)."""
    out: list[ModelChoice] = []
    if sweep is not None:
        done = {(format_value(r.value), r.seed) for r in sweep.runs}
        for i, value in enumerate(sweep.values):
            for seed in sweep.seeds:
                if (format_value(value), seed) not in done:
                    continue
                label = f"{sweep.param}={format_value(value)}"
                if len(sweep.seeds) > 1:
                    label += f" seed {seed}"
                if _same(value, sweep.reference):
                    label += " (ref)"
                out.append(ModelChoice(f"run:{i}:{seed}", label, value=value, seed=seed))
    if svd:
        out.append(ModelChoice("svd", "SVD", svd=True))
    return out


def default_pair(
    choices: Sequence[ModelChoice], sweep: Any | None
) -> tuple[str | None, str | None]:
    """Ids of the models shown first: A = the reference run (first seed),
    B = the run of the value farthest from it in the list (first seed), or the
    SVD when the sweep has a single finished value."""
    runs = [c for c in choices if not c.svd]
    if not runs:
        return (None, None)
    a = next((c for c in runs if sweep is not None and _same(c.value, sweep.reference)), runs[0])
    others = [c for c in runs if not _same(c.value, a.value) and c.seed == a.seed]
    if others:
        return (a.id, others[-1].id)
    svd = next((c for c in choices if c.svd), None)
    return (a.id, svd.id if svd is not None else None)


def _title(key: Hashable) -> str:
    return str(key[0]) if isinstance(key, tuple) and key else str(key)


def _genres(key: Hashable) -> str:
    return str(key[1]) if isinstance(key, tuple) and len(key) > 1 else ""


@dataclass(frozen=True)
class NeighborRow:
    """One rank of the side-by-side table; ``*_shared`` marks a neighbor that
    is also among the other model's k neighbors."""

    rank: int
    a_title: str
    a_score: float
    a_shared: bool
    b_title: str
    b_score: float
    b_shared: bool


@dataclass(frozen=True)
class SideBySide:
    """The k nearest neighbors of one entity in models A and B."""

    key: Hashable
    k: int
    rows: tuple[NeighborRow, ...]
    shared: int
    jaccard: float

    @property
    def title(self) -> str:
        return _title(self.key)

    @property
    def genres(self) -> str:
        return _genres(self.key)


def side_by_side(key: Hashable, a: pd.DataFrame, b: pd.DataFrame) -> SideBySide:
    """Pair two neighbor lists of ``key`` rank by rank.

    ``a`` and ``b`` are :meth:`NeighborTable.neighbors` frames (columns
    ``rank``, ``key``, ``title``, ``score``) of the same entity in two models
    over the same entities. Shared neighbors are marked on both sides and the
    Jaccard index |A ∩ B| / |A ∪ B| of the two sets is returned with them."""
    keys_a = list(a["key"])
    keys_b = list(b["key"])
    set_a, set_b = set(keys_a), set(keys_b)
    shared = set_a & set_b
    union = set_a | set_b
    rows = []
    for i in range(max(len(keys_a), len(keys_b))):
        ra = a.iloc[i] if i < len(a) else None
        rb = b.iloc[i] if i < len(b) else None
        rows.append(
            NeighborRow(
                rank=i + 1,
                a_title="" if ra is None else str(ra["title"]),
                a_score=float("nan") if ra is None else float(ra["score"]),
                a_shared=ra is not None and ra["key"] in shared,
                b_title="" if rb is None else str(rb["title"]),
                b_score=float("nan") if rb is None else float(rb["score"]),
                b_shared=rb is not None and rb["key"] in shared,
            )
        )
    k = max(len(keys_a), len(keys_b))
    jaccard = len(shared) / len(union) if union else 1.0
    return SideBySide(key=key, k=k, rows=tuple(rows), shared=len(shared), jaccard=jaccard)


@dataclass
class ModelPair:
    """Models A and B restricted to their shared entities (in A's order), with
    their neighbor tables and per-entity Jaccard computed on demand and kept.

    Thread-safe: the UI computes in worker threads."""

    a: Any
    b: Any
    metric: str = "cosine"
    _tables: dict[str, Any] = field(default_factory=dict, repr=False)
    _jaccard: dict[int, pd.Series] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        from ..embeddings import align

        self.a, self.b = align(self.a, self.b)

    @property
    def keys(self) -> list[Hashable]:
        return list(self.a.keys)

    def _table(self, side: str) -> Any:
        from ..neighbors import NeighborTable

        with self._lock:
            if side not in self._tables:
                emb = self.a if side == "a" else self.b
                self._tables[side] = NeighborTable(emb, metric=self.metric)
            return self._tables[side]

    def side_by_side(self, key: Hashable, k: int) -> SideBySide:
        """The k nearest neighbors of ``key`` in A and B, shared ones marked."""
        if k < 1 or k >= self.a.n:
            raise InvalidParameterError(f"k must be between 1 and {self.a.n - 1}, got {k}")
        index = self.a.index_of(key)
        a = self._table("a").neighbors(self.a.keys[index], k=k)
        b = self._table("b").neighbors(self.b.keys[index], k=k)
        return side_by_side(key, a, b)

    def jaccard(self, k: int) -> pd.Series:
        """Per-entity Jaccard of the k-NN sets in A and B (index: keys), from
        :func:`embspace.compare`'s ``neighbors`` measure."""
        with self._lock:
            cached = self._jaccard.get(k)
        if cached is not None:
            return cached
        from ..measures import compare

        result = compare(self.a, self.b, measures=("neighbors",), k=k, metric=self.metric)
        series = result.per_entity["neighbors"]
        with self._lock:
            self._jaccard[k] = series
        return series


# ---------------------------------------------------------------------- changes
def genres_of(keys: Iterable[Hashable]) -> list[str]:
    """Every genre found in ``(title, "A|B|C")`` keys, sorted (``"(no genres
    listed)"`` kept as MovieLens writes it)."""
    found: set[str] = set()
    for key in keys:
        found.update(g for g in _genres(key).split("|") if g)
    return sorted(found)


def changes_table(
    jaccard: pd.Series,
    popularity: Mapping[Hashable, int] | None = None,
    *,
    genre: str | None = None,
    min_ratings: int | None = None,
    max_ratings: int | None = None,
) -> pd.DataFrame:
    """Entities ranked by how much their neighborhood changed: lowest Jaccard
    first (ties: more ratings first, then title).

    ``jaccard`` is a per-entity Series indexed by key; ``popularity`` maps a
    key to its number of ratings. ``genre`` keeps entities whose genres
    contain it; ``min_ratings`` / ``max_ratings`` bound the rating count
    (inclusive). Columns: ``key``, ``title``, ``genres``, ``n_ratings``
    (-1 when unknown), ``jaccard``."""
    if min_ratings is not None and max_ratings is not None and min_ratings > max_ratings:
        raise InvalidParameterError(
            f"min ratings ({min_ratings}) is above max ratings ({max_ratings})"
        )
    keys = list(jaccard.index)
    pop = popularity or {}
    frame = pd.DataFrame(
        {
            "key": pd.Series(keys, dtype=object),
            "title": [_title(k) for k in keys],
            "genres": [_genres(k) for k in keys],
            "n_ratings": np.asarray([int(pop.get(k, -1)) for k in keys], dtype=np.int64),
            "jaccard": np.asarray(jaccard.to_numpy(), dtype=np.float64),
        }
    )
    keep = np.ones(len(frame), dtype=bool)
    if genre:
        keep &= np.asarray([genre in g.split("|") for g in frame["genres"]], dtype=bool)
    if min_ratings is not None:
        keep &= frame["n_ratings"].to_numpy() >= min_ratings
    if max_ratings is not None:
        keep &= frame["n_ratings"].to_numpy() <= max_ratings
    frame = frame[keep]
    frame = frame.sort_values(
        ["jaccard", "n_ratings", "title"], ascending=[True, False, True], kind="mergesort"
    )
    return frame.reset_index(drop=True)


def popularity_of(ratings: Any) -> dict[Hashable, int]:
    """Item key -> number of ratings, from a :class:`~embspace.Ratings`."""
    counts = ratings.items["n_ratings"].to_numpy()
    return {key: int(n) for key, n in zip(ratings.item_keys, counts, strict=True)}


# ---------------------------------------------------------------------- search
def search_entities(
    keys: Sequence[Hashable], query: str, limit: int = 10
) -> list[tuple[Hashable, str]]:
    """Entities whose title matches ``query`` (accent- and case-insensitive,
    best first, by :func:`embspace.search.search_titles`): ``(key, label)``
    pairs, the label being "title  genres"."""
    if not query.strip():
        return []
    from ..search import search_titles

    titles = [_title(k) for k in keys]
    out = []
    for hit in search_titles(titles, query, limit=limit):
        index = hit.index
        key = keys[index]
        genres = _genres(key)
        out.append((key, f"{titles[index]}  {genres}" if genres else titles[index]))
    return out


class TitleIndex:
    """Titles with their normalised forms (:func:`embspace.search.normalize`:
    accents and case ignored), computed once, for completing a title as it is
    typed: a few milliseconds per keystroke over MovieLens' ten thousand."""

    def __init__(self, titles: Sequence[str]) -> None:
        from ..search import normalize

        self.titles = [str(t) for t in titles]
        self._normalized = [normalize(t) for t in self.titles]

    def complete(self, typed: str) -> str | None:
        """The shortest title whose normalised form starts with the
        normalised ``typed`` (ties: the first), else None."""
        from ..search import normalize

        start = normalize(typed)
        if not start:
            return None
        best: int | None = None
        for i, norm in enumerate(self._normalized):
            if norm.startswith(start) and (best is None or len(norm) < len(self._normalized[best])):
                best = i
        return None if best is None else self.titles[best]


def complete_title(titles: Sequence[str], typed: str) -> str | None:
    """:meth:`TitleIndex.complete` over ``titles`` (build a
    :class:`TitleIndex` once to complete many times)."""
    return TitleIndex(titles).complete(typed)
