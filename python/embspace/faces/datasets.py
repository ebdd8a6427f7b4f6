"""The datasets the faces offer, and how they describe them.

Loading itself is :func:`embspace.datasets.load` (registry names,
``synthetic:`` specs, paths); this module lists what a chooser offers
(:func:`dataset_choices`), says where a dataset was read from
(:func:`load_described`), what a minimum-count filter kept
(:func:`filter_described`) and how many entities have exactly parallel
vectors in a trained space (:func:`parallel_groups`), and describes ratings
in one line (:func:`describe_ratings`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .. import datasets
from .._params import check_int
from ..datasets import SYNTHETIC_PREFIX
from ..errors import InvalidParameterError

__all__ = [
    "SYNTHETIC_PRESETS",
    "DatasetChoice",
    "ParallelGroups",
    "dataset_choices",
    "describe_filter",
    "describe_ratings",
    "describe_source",
    "filter_described",
    "load_described",
    "parallel_groups",
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


def describe_filter(before: Any, after: Any, min_user_ratings: int, min_item_ratings: int) -> str:
    """What a minimum-count filter did, in one line: ``"none"`` for ``1, 1``,
    else the rule and the users, items and ratings it kept of ``before``."""
    if min_user_ratings == 1 and min_item_ratings == 1:
        return "none (every user and item with a rating kept)"
    return (
        f"users with >= {min_user_ratings} and items with >= {min_item_ratings} ratings "
        f"(applied until both hold): kept {after.n_users:,} of {before.n_users:,} users, "
        f"{after.n_items:,} of {before.n_items:,} items, "
        f"{after.n_ratings:,} of {before.n_ratings:,} ratings"
    )


def filter_described(
    ratings: Any, min_user_ratings: int = 1, min_item_ratings: int = 1
) -> tuple[Any, str]:
    """``ratings.filter(min_user_ratings=, min_item_ratings=)`` (``ratings``
    itself for ``1, 1``) with the line of :func:`describe_filter`.

    Raises
    ------
    InvalidParameterError
        A minimum that is not an integer >= 1, or a filter that leaves no
        ratings (nothing could be trained on).
    """
    lo_u = check_int(min_user_ratings, "min_user_ratings", minimum=1)
    lo_i = check_int(min_item_ratings, "min_item_ratings", minimum=1)
    if lo_u == 1 and lo_i == 1:
        return ratings, describe_filter(ratings, ratings, 1, 1)
    kept = ratings.filter(min_user_ratings=lo_u, min_item_ratings=lo_i)
    if kept.n_ratings == 0:
        raise InvalidParameterError(
            f"no ratings are left with users of >= {lo_u} and items of >= {lo_i} ratings "
            f"(of {ratings.n_users:,} users and {ratings.n_items:,} items): lower the minimums"
        )
    return kept, describe_filter(ratings, kept, lo_u, lo_i)


@dataclass(frozen=True)
class ParallelGroups:
    """Entities of a space whose vectors are exactly parallel to another's
    (:meth:`embspace.Embeddings.duplicate_rows` with ``direction=True``):
    ``n_entities`` in all, ``n_parallel`` of them in ``n_groups`` groups, the
    largest of ``largest``. No measure can tell the members of a group apart:
    their nearest neighbors are ties."""

    n_entities: int
    n_parallel: int
    n_groups: int
    largest: int

    def describe(self, entities: str = "items", where: str = "", *, why: bool = True) -> str:
        """One line: ``"2,845 of 9,724 items (29.3%) sit in 412 groups of
        exactly parallel vectors in <where> (largest 57): within a group the
        nearest neighbors are ties"`` (the last clause only with ``why``)."""
        at = f" in {where}" if where else ""
        if not self.n_parallel:
            return f"no two {entities}{at} have exactly parallel vectors"
        share = self.n_parallel / self.n_entities if self.n_entities else 0.0
        text = (
            f"{self.n_parallel:,} of {self.n_entities:,} {entities} ({share:.1%}) sit in "
            f"{self.n_groups:,} groups of exactly parallel vectors{at} (largest "
            f"{self.largest:,})"
        )
        return text + (": within a group the nearest neighbors are ties" if why else "")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def parallel_groups(embeddings: Any) -> ParallelGroups:
    """The groups of exactly parallel rows of ``embeddings`` (an
    :class:`~embspace.Embeddings`), counted. Cost: ``O(n d log n)``."""
    rows = embeddings.duplicate_rows(direction=True)
    if rows.empty:
        return ParallelGroups(int(embeddings.n), 0, 0, 0)
    return ParallelGroups(
        n_entities=int(embeddings.n),
        n_parallel=len(rows),
        n_groups=int(rows["group"].nunique()),
        largest=int(rows["size"].max()),
    )
