"""Sweeps: train one estimator over the values of a hyperparameter and compare the spaces.

:class:`Sweep` is the entry point; the package has one idea per module:

- :mod:`.plan`: values, seeds, the runs and which pairs of runs are compared
  (every value with every seed; the pairs of distinct seeds), the measure
  checks made before any training;
- :mod:`.training`: fitting through the embeddings cache (:func:`fit_cached`),
  progress events, cancellation;
- :mod:`.comparisons`: :func:`embspace.compare` of two runs with each run's
  k-NN table computed once;
- :mod:`.statistics`: pair scores -> similarities, each value's floor, chance
  levels, calibrated scores, the permutation test of the run labels and Holm's
  adjustment;
- :mod:`.changes`: per entity, where a value moved the space (per-entity
  tests, Benjamini-Hochberg), and its summary by popularity or metadata;
- :mod:`.views`: the table, wide, results and noise DataFrames;
- :mod:`.export`: ``to_dict`` and the files written by ``save``;
- :mod:`.sweep`: the :class:`Sweep` that coordinates them.

Trainings go through an :class:`~embspace.cache.EmbeddingCache`, so a sweep
that was interrupted resumes without retraining its finished runs, and a
second sweep that shares runs with the first (same data, estimator, parameters
and seed) reuses them. A resumed sweep also makes the comparisons that an
interruption left out: its table equals the uninterrupted one.
"""

from __future__ import annotations

from ..measures import DEFAULT_MEASURES
from .changes import CHANGES_COLUMNS
from .plan import NOISE, PAIRINGS, REFERENCE
from .sweep import Sweep
from .training import EVENT_KINDS, RunRecord, SweepCancelled, SweepEvent, TrainedRun, fit_cached
from .views import TABLE_COLUMNS

__all__ = [
    "CHANGES_COLUMNS",
    "DEFAULT_MEASURES",
    "EVENT_KINDS",
    "NOISE",
    "PAIRINGS",
    "REFERENCE",
    "TABLE_COLUMNS",
    "RunRecord",
    "Sweep",
    "SweepCancelled",
    "SweepEvent",
    "TrainedRun",
    "fit_cached",
]
