"""The MovieLens datasets embspace knows by name.

Sizes and sha256 digests are those of the official GroupLens zips (as published
in TensorFlow Datasets' checksum list); shapes are the official counts. A
download is accepted only when both size and digest match.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._registry import Registry

__all__ = ["GROUPLENS_BASE", "REGISTRY", "DatasetInfo", "names"]

#: Where GroupLens serves the zips; ``EMBSPACE_MIRROR`` replaces this base.
GROUPLENS_BASE = "https://files.grouplens.org/datasets/movielens"


@dataclass(frozen=True)
class DatasetInfo:
    """One downloadable dataset.

    Attributes
    ----------
    name : str
        Registry name; the zip is ``<name>.zip`` under the base URL.
    size : int
        Exact size of the zip, in bytes.
    sha256 : str
        Hex sha256 digest of the zip.
    description : str
        One line for listings.
    n_ratings, n_users, n_items : int or None
        Official shape: ratings, users, distinct rated items.
    n_items_metadata : int or None
        Items in the metadata file (rated or not).
    """

    name: str
    size: int
    sha256: str
    description: str
    n_ratings: int | None = None
    n_users: int | None = None
    n_items: int | None = None
    n_items_metadata: int | None = None

    @property
    def filename(self) -> str:
        """The zip's file name, ``<name>.zip``."""
        return f"{self.name}.zip"

    @property
    def url(self) -> str:
        """The official GroupLens URL (a mirror, if set, is applied at download time)."""
        return f"{GROUPLENS_BASE}/{self.filename}"


#: The MovieLens datasets embspace knows, by name.
REGISTRY: Registry[DatasetInfo] = Registry(
    "dataset",
    {
        info.name: info
        for info in (
            DatasetInfo(
                name="ml-latest-small",
                size=978_202,
                sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
                description="MovieLens latest small (2018): 100,836 ratings, 0.5-5 stars in half steps",
                n_ratings=100_836,
                n_users=610,
                n_items=9_724,
                n_items_metadata=9_742,
            ),
            DatasetInfo(
                name="ml-100k",
                size=4_924_029,
                sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
                description="MovieLens 100K (1998): 100,000 ratings, 1-5 stars",
                n_ratings=100_000,
                n_users=943,
                n_items=1_682,
                n_items_metadata=1_682,
            ),
            DatasetInfo(
                name="ml-1m",
                size=5_917_549,
                sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
                description="MovieLens 1M (2003): 1,000,209 ratings, 1-5 stars",
                n_ratings=1_000_209,
                n_users=6_040,
                n_items=3_706,
                n_items_metadata=3_883,
            ),
            DatasetInfo(
                name="ml-20m",
                size=198_702_078,
                sha256="96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
                description="MovieLens 20M (2015): 20,000,263 ratings, 0.5-5 stars in half steps",
                n_ratings=20_000_263,
                n_users=138_493,
                n_items=26_744,
                n_items_metadata=27_278,
            ),
            DatasetInfo(
                name="ml-25m",
                size=261_978_986,
                sha256="8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
                description="MovieLens 25M (2019): 25,000,095 ratings, 0.5-5 stars in half steps",
                n_ratings=25_000_095,
                n_users=162_541,
                n_items=59_047,
                n_items_metadata=62_423,
            ),
        )
    },
)


def names() -> list[str]:
    """Registry names, in registry order."""
    return list(REGISTRY)
