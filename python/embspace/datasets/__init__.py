"""Datasets: the MovieLens registry, readers, any ratings table, synthetic data.

>>> import embspace as es
>>> ratings = es.datasets.load("ml-latest-small")      # data dir, cache, or download
>>> ratings = es.datasets.load_ratings("my.csv")       # any CSV/TSV/parquet or DataFrame
>>> fake = es.datasets.synthetic(preset="ml-1m", seed=0)

Environment variables: ``EMBSPACE_DATA_DIR`` (a folder of zips or extracted
folders searched first), ``EMBSPACE_CACHE_DIR`` (the cache), ``EMBSPACE_MIRROR``
(a base URL replacing GroupLens). See :mod:`embspace.datasets.loader`.
"""

from __future__ import annotations

from . import registry
from .generator import PRESETS, PlantedModel, synthetic
from .loader import DatasetStatus, download, info, list_datasets, load, locate
from .registry import REGISTRY, DatasetInfo
from .tables import load_ratings

__all__ = [
    "PRESETS",
    "REGISTRY",
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
]
