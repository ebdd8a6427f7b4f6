"""Finding an entity by its title: ranked matches and completion as it is typed."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from ...faces.keys import key_genres, key_title
from ...search import normalize, search_titles

__all__ = ["TitleIndex", "complete_title", "search_entities", "titles_of"]


def titles_of(keys: Sequence[Hashable]) -> list[str]:
    """The title of every key, in order."""
    return [key_title(k) for k in keys]


def search_entities(
    keys: Sequence[Hashable], query: str, limit: int = 10
) -> list[tuple[Hashable, str]]:
    """Entities whose title matches ``query`` (accent- and case-insensitive,
    best first, by :func:`embspace.search.search_titles`): ``(key, label)``
    pairs, the label being "title  genres"."""
    if not query.strip():
        return []
    titles = titles_of(keys)
    out = []
    for hit in search_titles(titles, query, limit=limit):
        index = hit.index
        key = keys[index]
        genres = key_genres(key)
        out.append((key, f"{titles[index]}  {genres}" if genres else titles[index]))
    return out


class TitleIndex:
    """Titles with their normalised forms (:func:`embspace.search.normalize`:
    accents and case ignored), computed once, for completing a title as it is
    typed: a few milliseconds per keystroke over MovieLens' ten thousand."""

    def __init__(self, titles: Sequence[str]) -> None:
        self.titles = [str(t) for t in titles]
        self._normalized = [normalize(t) for t in self.titles]

    def complete(self, typed: str) -> str | None:
        """The shortest title whose normalised form starts with the
        normalised ``typed`` (ties: the first), else None."""
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
