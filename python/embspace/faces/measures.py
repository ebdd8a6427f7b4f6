"""The measures the faces compare with: the default list and the one check of names."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InvalidParameterError
from ..measures import DEFAULT_MEASURES
from ..measures import check_measures as _check_measures
from .values import split_list

__all__ = ["DEFAULT_MEASURES", "check_measures", "parse_measures"]


def check_measures(names: Sequence[str]) -> None:
    """Raise an :class:`~embspace.errors.InvalidParameterError` naming the
    unknown measures among ``names`` and listing the known ones
    (:func:`embspace.measures.check_measures`). Every face checks measure names
    through this function."""
    _check_measures(names)


def parse_measures(text: str) -> list[str]:
    """The measure names of a typed list (``"neighbors,cca"``, split as every
    list is: :func:`~embspace.faces.values.split_list`), checked."""
    names = split_list(text)
    if not names:
        raise InvalidParameterError("give at least one measure")
    check_measures(names)
    return names
