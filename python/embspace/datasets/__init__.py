"""Datasets: the MovieLens registry, readers, any ratings table, synthetic data.

>>> import embspace as es
>>> ratings = es.datasets.load("ml-latest-small")      # data dir, cache, or download
>>> ratings = es.datasets.load("my.csv", user="customer", item="sku")  # any table or DataFrame
>>> fake = es.datasets.load("synthetic:preset=ml-1m,seed=0")  # or datasets.synthetic(...)

Environment variables: ``EMBSPACE_DATA_DIR`` (a folder of zips or extracted
folders searched first), ``EMBSPACE_CACHE_DIR`` (the cache), ``EMBSPACE_MIRROR``
(a base URL replacing GroupLens). :func:`load` (:mod:`.source`) is the one door;
:mod:`.movielens`, :mod:`.tables`, :mod:`.generator`, :mod:`.readers`, :mod:`.archive`
and :mod:`.fetch` serve it.
"""

from __future__ import annotations

from . import registry
from .generator import PRESETS, PlantedModel, synthetic
from .movielens import DatasetStatus, download, info, list_datasets, locate
from .registry import REGISTRY, DatasetInfo
from .source import SYNTHETIC_PREFIX, load, load_ratings, synthetic_spec

__all__ = [
    "PRESETS",
    "REGISTRY",
    "SYNTHETIC_PREFIX",
    "DatasetInfo",
    "DatasetStatus",
    "PlantedModel",
    "download",
    "info",
    "list_datasets",
    "load",
    "load_ratings",
    "locate",
    "registry",
    "synthetic",
    "synthetic_spec",
]
