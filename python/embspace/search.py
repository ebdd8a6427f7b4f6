"""Finding entities by title: exact, then case- and accent-insensitive matching.

The matching rules (used by :meth:`embspace.NeighborTable.neighbors` and, for
suggestions, by the TUI):

1. exact title (``title == query``);
2. normalised exact: both sides normalised by :func:`normalize` (Unicode NFKD,
   accents stripped, casefolded, runs of whitespace collapsed);
3. normalised substring, or every word of the query among the title's words
   (so ``"godfather"`` finds ``"Godfather, The (1972)"``).

The first rule that matches anything decides: one match is the answer, several
are ambiguous. :func:`search_titles` ranks every title against a query, best
first, with :mod:`difflib` similarity for titles that no rule matches.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import AmbiguousQueryError, EntityNotFoundError

__all__ = ["TitleMatch", "closest_titles", "match_title", "normalize", "search_titles", "tokens"]

_WORD = re.compile(r"\w+")


def normalize(text: str) -> str:
    """Case- and accent-insensitive form of ``text``: NFKD, combining marks
    removed, casefolded, whitespace collapsed (``"Amélie"`` -> ``"amelie"``)."""
    decomposed = unicodedata.normalize("NFKD", str(text))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())


def tokens(text: str) -> list[str]:
    """The words of the normalised ``text`` (letters and digits)."""
    return _WORD.findall(normalize(text))


@dataclass(frozen=True)
class TitleMatch:
    """One ranked title: its row ``index``, the ``title``, how it matched
    (``"exact"``, ``"normalized"``, ``"prefix"``, ``"substring"``, ``"words"``
    or ``"similar"``) and a ``score`` in [0, 1] (1 for exact)."""

    index: int
    title: str
    kind: str
    score: float


_RANK = {"exact": 0, "normalized": 1, "prefix": 2, "substring": 3, "words": 4, "similar": 5}


def _kind(
    title_norm: str,
    title_words: set[str],
    query: str,
    query_norm: str,
    query_words: list[str],
    title: str,
) -> str | None:
    if title == query:
        return "exact"
    if not query_norm:
        return None
    if title_norm == query_norm:
        return "normalized"
    if title_norm.startswith(query_norm):
        return "prefix"
    if query_norm in title_norm:
        return "substring"
    if query_words and all(w in title_words for w in query_words):
        return "words"
    return None


def search_titles(titles: Sequence[str], query: str, limit: int | None = 10) -> list[TitleMatch]:
    """Rank ``titles`` against ``query``, best first.

    Titles that match a rule of the module come first (exact, normalised exact,
    prefix, substring, all words), then the others by :mod:`difflib` similarity
    of the normalised strings (those above 0.4). Within a kind, higher
    similarity and then the lower index come first. ``limit=None`` returns every
    title that matches or resembles the query.
    """
    query = str(query)
    qn = normalize(query)
    qw = _WORD.findall(qn)
    out: list[TitleMatch] = []
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(qn)
    for i, title in enumerate(titles):
        title = str(title)
        tn = normalize(title)
        kind = _kind(tn, set(_WORD.findall(tn)), query, qn, qw, title)
        matcher.set_seq1(tn)
        if kind is None:
            # cheap upper bounds first: most titles are far from the query
            if matcher.real_quick_ratio() < 0.4 or matcher.quick_ratio() < 0.4:
                continue
            score = matcher.ratio()
            if score < 0.4:
                continue
            kind = "similar"
        else:
            score = 1.0 if kind == "exact" else matcher.ratio()
        out.append(TitleMatch(i, title, kind, float(score)))
    out.sort(key=lambda m: (_RANK[m.kind], -m.score, m.index))
    return out if limit is None else out[: max(int(limit), 0)]


def closest_titles(titles: Sequence[str], query: str, limit: int = 5) -> list[str]:
    """The ``limit`` titles closest to ``query`` (for error messages)."""
    return [m.title for m in search_titles(titles, query, limit)]


def match_title(titles: Sequence[str], query: str, *, describe: Sequence[str] | None = None) -> int:
    """The row whose title matches ``query`` under the module's rules.

    Raises :class:`~embspace.errors.EntityNotFoundError` (with ``suggestions``,
    the closest titles) when nothing matches, and
    :class:`~embspace.errors.AmbiguousQueryError` (with ``candidates``) when the
    deciding rule matches several rows. ``describe`` gives a longer label per row
    (for instance title and genres) for the candidates of an ambiguous query.
    """
    query = str(query)
    qn = normalize(query)
    qw = _WORD.findall(qn)
    labels = describe if describe is not None else titles
    exact = [i for i, t in enumerate(titles) if str(t) == query]
    if len(exact) == 1:
        return exact[0]
    if exact:
        _ambiguous(query, exact, labels, "have exactly this title")
    norms = [normalize(str(t)) for t in titles]
    same = [i for i, tn in enumerate(norms) if qn and tn == qn]
    if len(same) == 1:
        return same[0]
    if same:
        _ambiguous(query, same, labels, "match it ignoring case and accents")
    partial = []
    if qn:
        for i, tn in enumerate(norms):
            if qn in tn or (qw and all(w in set(_WORD.findall(tn)) for w in qw)):
                partial.append(i)
    if len(partial) == 1:
        return partial[0]
    if partial:
        ranked = sorted(
            partial, key=lambda i: (-difflib.SequenceMatcher(None, norms[i], qn).ratio(), i)
        )
        _ambiguous(query, ranked, labels, "contain it")
    close = search_titles(titles, query, 5)
    suggestions = [m.title for m in close]
    hint = f"; closest titles: {'; '.join(suggestions)}" if suggestions else ""
    raise EntityNotFoundError(
        f"no title matches {query!r}{hint}", suggestions, [m.index for m in close]
    )


def _ambiguous(query: str, rows: list[int], labels: Sequence[str], how: str) -> None:
    shown = [str(labels[i]) for i in rows]
    listed = "; ".join(shown[:10]) + (f"; ... ({len(shown) - 10} more)" if len(shown) > 10 else "")
    raise AmbiguousQueryError(
        f"{len(rows)} entities {how} {query!r}: {listed}. Choose one by its key, "
        "'id:N' (its dataset id) or 'row:N' (its row).",
        shown,
        rows,
    )
