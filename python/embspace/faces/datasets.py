"""The datasets the faces offer, and how they describe them.

Loading itself is :func:`embspace.datasets.load` (registry names,
``synthetic:`` specs, paths); this module lists what a chooser offers
(:func:`dataset_choices`), says where a dataset was read from
(:func:`load_described`) and describes ratings in one line
(:func:`describe_ratings`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import datasets
from ..datasets import SYNTHETIC_PREFIX

__all__ = [
    "SYNTHETIC_PRESETS",
    "DatasetChoice",
    "dataset_choices",
    "describe_ratings",
    "describe_source",
    "load_described",
]

#: Synthetic presets offered beside the registry (generated, seed 0).
SYNTHETIC_PRESETS = ("tiny", "ml-latest-small")


@dataclass(frozen=True)
class DatasetChoice:
    """A dataset a chooser offers: ``id`` is what :func:`embspace.datasets.load`
    takes, ``label`` says its state (on disk, or the size of the download)."""

    id: str
    label: str
    needs_download: bool


def _megabytes(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 1e6 else f"{n_bytes / 1e3:.0f} kB"


def dataset_choices() -> list[DatasetChoice]:
    """The registry datasets with their state (found in the data folder, in
    the cache, or the size of the download), then the synthetic presets."""
    out = []
    for status in datasets.list_datasets():
        if status.state == "not downloaded":
            label = f"{status.name} (download {_megabytes(status.size)})"
        elif status.state == "data dir":
            label = f"{status.name} (on disk)"
        else:
            label = f"{status.name} ({status.state})"
        out.append(DatasetChoice(status.name, label, status.state == "not downloaded"))
    for preset in SYNTHETIC_PRESETS:
        out.append(
            DatasetChoice(
                f"{SYNTHETIC_PREFIX}{preset}", f"synthetic {preset} (generated, seed 0)", False
            )
        )
    return out


def describe_ratings(ratings: Any) -> str:
    """One line: name, users, items and ratings."""
    name = getattr(ratings, "name", None) or "ratings"
    return (
        f"{name}: {ratings.n_users:,} users × {ratings.n_items:,} items, "
        f"{ratings.n_ratings:,} ratings"
    )


def describe_source(name: str, before: Any) -> str:
    """Where dataset ``name`` was read from, given its
    :func:`~embspace.datasets.locate` status before loading (None: not a
    registry name, so a path or a synthetic spec, described by itself)."""
    from ..datasets.folders import cached_folder

    if before is None:
        return name
    if before.path is None:
        return f"downloaded, verified and extracted into {cached_folder(name)}"
    if before.state == "data dir" and before.path.is_dir():
        return f"{before.path} (EMBSPACE_DATA_DIR, read in place)"
    if before.state == "data dir":
        return f"{before.path} (EMBSPACE_DATA_DIR, verified, extracted into the cache)"
    return f"{before.path} (cache)"


def load_described(source: str, *, progress: bool = True) -> tuple[Any, str]:
    """:func:`embspace.datasets.load` of ``source`` with the line saying where
    it was read from (:func:`describe_source`)."""
    before = datasets.locate(source) if source in datasets.REGISTRY else None
    ratings = datasets.load(source, progress=progress)
    return ratings, describe_source(source, before)
