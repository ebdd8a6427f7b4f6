"""Where a space moved: per-entity similarities, floors and tests, and their
summary by popularity or by a metadata column.

For a value ``v`` of a sweep and the reference ``r`` (or external embeddings),
each entity gets, from a neighbor measure's per-entity values (``neighbors``:
the Jaccard index of its k-NN sets in two runs):

- ``similarity``: the mean over the pairs of the sweep's pairing (as the table:
  with ``pairing="cross"`` the ``s (s - 1)`` ordered pairs of a reference run
  and a run of ``v`` with distinct seeds);
- ``floor_value`` and ``floor_reference``: the mean over the pairs of distinct
  seeds of ``v`` and of ``r`` (what re-seeding alone does to this entity's
  neighborhood), and ``floor``, their mean;
- ``p_value``: the permutation test of the run labels
  (:func:`.statistics.permutation_test`) on the entity's own similarity matrix
  of the ``2 s`` runs (pairs of distinct seeds): are the entity's
  neighborhoods more alike within a configuration than across the two?
  One-sided; its smallest value is
  :func:`.statistics.smallest_p_value` (1/10 with 3 seeds, 1/35 with 4);
- ``q_value``: Benjamini-Hochberg over the entities with a p-value (false
  discovery rate), and ``changed``: ``q_value <= 0.05``, missing where there is
  no test (one seed, the reference value itself, external embeddings).

:func:`group_changes` summarises such a frame by groups of entities (quantile
bins of popularity, or a metadata column).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd

from .._params import check_int
from ..errors import InvalidParameterError
from .statistics import ALPHA, benjamini_hochberg, permutation_test

__all__ = ["CHANGES_COLUMNS", "entity_changes", "group_changes", "popularity_bins"]

#: Columns of :meth:`embspace.Sweep.changes`.
CHANGES_COLUMNS = (
    "key",
    "title",
    "n_ratings",
    "similarity",
    "floor",
    "floor_value",
    "floor_reference",
    "p_value",
    "q_value",
    "changed",
)


def _mean(arrays: Sequence[np.ndarray], n: int) -> np.ndarray:
    if not arrays:
        return np.full(n, np.nan)
    return np.mean(np.stack(arrays), axis=0)


def entity_changes(
    keys: Sequence[Hashable],
    titles: Sequence[str],
    n_ratings: np.ndarray,
    similarity: Sequence[np.ndarray],
    floor_value: Sequence[np.ndarray],
    floor_reference: Sequence[np.ndarray] | None,
    test_matrix: np.ndarray | None,
) -> pd.DataFrame:
    """The per-entity frame (:data:`CHANGES_COLUMNS`), one row per entity in
    the order of ``keys``: ``similarity``, ``floor_value`` and
    ``floor_reference`` are the means of the given per-entity arrays (each of
    length n); ``floor_reference=None`` (external embeddings) gives ``floor =
    floor_value``. ``test_matrix`` (2s x 2s x n, see
    :func:`.statistics.permutation_test`) gives the p-values, None no test."""
    n = len(keys)
    sim = _mean(similarity, n)
    fv = _mean(floor_value, n)
    fr = np.full(n, np.nan) if floor_reference is None else _mean(floor_reference, n)
    floor = fv if floor_reference is None else (fv + fr) / 2.0
    if test_matrix is None:
        p = np.full(n, np.nan)
    else:
        p = np.asarray(permutation_test(test_matrix).p_value, dtype=np.float64)
    q = benjamini_hochberg(p)
    changed = pd.array([pd.NA if np.isnan(x) else bool(x <= ALPHA) for x in q], dtype="boolean")
    return pd.DataFrame(
        {
            "key": pd.Series(list(keys), dtype=object),
            "title": list(titles),
            "n_ratings": np.asarray(n_ratings, dtype=np.int64),
            "similarity": sim,
            "floor": floor,
            "floor_value": fv,
            "floor_reference": fr,
            "p_value": p,
            "q_value": q,
            "changed": changed,
        },
        columns=list(CHANGES_COLUMNS),
    )


def popularity_bins(n_ratings: np.ndarray, bins: int = 5) -> pd.Series:
    """Quantile bins of ``n_ratings`` (at most ``bins``, fewer when quantiles
    coincide, as they do for the many entities with one rating), as an ordered
    categorical of labels ``"lo-hi ratings"`` (the smallest and largest count
    in the bin)."""
    bins = check_int(bins, "bins", minimum=1)
    counts = pd.Series(np.asarray(n_ratings, dtype=np.int64))
    codes = pd.qcut(counts.rank(method="min"), q=bins, labels=False, duplicates="drop")
    if codes.isna().any():  # a single distinct rank: one bin
        codes = pd.Series(np.zeros(len(counts), dtype=np.int64))
    codes = codes.astype(np.int64)
    labels = {}
    for c in sorted(set(codes)):
        part = counts[codes == c]
        lo, hi = int(part.min()), int(part.max())
        labels[c] = f"{lo} ratings" if lo == hi else f"{lo}-{hi} ratings"
    order = [labels[c] for c in sorted(labels)]
    return pd.Series(pd.Categorical([labels[c] for c in codes], categories=order, ordered=True))


def group_changes(frame: pd.DataFrame, labels: pd.Series, by: str) -> pd.DataFrame:
    """Summarise a :func:`entity_changes` frame by the group ``labels`` of its
    rows (one label per row; a string with ``|`` separators counts the entity in
    each of its parts, as MovieLens genres): one row per group, in category
    order for a categorical, else sorted, with ``n_entities``, the median
    ``n_ratings``, the mean ``similarity``, ``floor`` and ``floor_value``,
    ``n_changed`` and ``changed_fraction`` (among the entities with a test; NaN
    when none has one)."""
    if len(labels) != len(frame):
        raise InvalidParameterError(f"{len(labels)} labels for {len(frame)} entities")
    data = frame[["n_ratings", "similarity", "floor", "floor_value", "changed"]].copy()
    data[by] = labels.to_numpy() if isinstance(labels, pd.Series) else list(labels)
    categories = None
    if isinstance(labels.dtype, pd.CategoricalDtype):
        categories = list(labels.cat.categories)
    elif labels.map(lambda v: isinstance(v, str) and "|" in v).any():
        data[by] = data[by].map(lambda v: v.split("|") if isinstance(v, str) else [v])
        data = data.explode(by)
    rows = []
    groups = data.groupby(by, sort=categories is None, observed=True, dropna=False)
    for label, part in groups:
        tested = part["changed"].dropna()
        rows.append(
            {
                by: label,
                "n_entities": len(part),
                "n_ratings": float(part["n_ratings"].median()),
                "similarity": float(part["similarity"].mean()),
                "floor": float(part["floor"].mean()),
                "floor_value": float(part["floor_value"].mean()),
                "n_changed": int(tested.sum()),
                "changed_fraction": float(tested.mean()) if len(tested) else float("nan"),
            }
        )
    out = pd.DataFrame(rows)
    if categories is not None:
        out[by] = pd.Categorical(out[by], categories=categories, ordered=True)
        out = out.sort_values(by).reset_index(drop=True)
    return out
