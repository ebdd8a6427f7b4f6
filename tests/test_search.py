"""Title matching: exact, then case/accent-insensitive, then partial; ranked suggestions."""

from __future__ import annotations

import pytest
from embspace.errors import AmbiguousQueryError, EntityNotFoundError
from embspace.search import closest_titles, match_title, normalize, search_titles, tokens

TITLES = [
    "They Live (1988)",
    "Amélie (Fabuleux destin d'Amélie Poulain, Le) (2001)",
    "Godfather, The (1972)",
    "Godfather: Part II, The (1974)",
    "Emma (1996)",
    "Emma (1996)",
    "EMMA (2020)",
    "Léon: The Professional (1994)",
    "Live and Let Die (1973)",
]


def test_normalize_strips_accents_case_and_spacing() -> None:
    assert normalize("Amélie") == "amelie"
    assert normalize("  LÉON:   the  Professional ") == "leon: the professional"
    assert normalize("Straße") == "strasse"  # casefold, not lower
    assert normalize("ﬁlm") == "film"  # NFKD compatibility forms
    assert tokens("Godfather, The (1972)") == ["godfather", "the", "1972"]


def test_exact_title_wins() -> None:
    assert match_title(TITLES, "They Live (1988)") == 0
    assert match_title(TITLES, "EMMA (2020)") == 6  # exact beats the two normalised matches


def test_case_and_accent_insensitive_match() -> None:
    assert match_title(TITLES, "they live (1988)") == 0
    assert match_title(TITLES, "leon: the professional (1994)") == 7
    assert match_title(TITLES, "AMELIE (FABULEUX DESTIN D'AMELIE POULAIN, LE) (2001)") == 1


def test_substring_and_word_match() -> None:
    assert match_title(TITLES, "amelie") == 1
    assert match_title(TITLES, "professional leon") == 7  # every word, any order
    assert match_title(TITLES, "part ii") == 3


def test_duplicate_exact_titles_are_ambiguous() -> None:
    labels = [f"{t} | {i}" for i, t in enumerate(TITLES)]
    with pytest.raises(AmbiguousQueryError) as info:
        match_title(TITLES, "Emma (1996)", describe=labels)
    assert info.value.candidates == ["Emma (1996) | 4", "Emma (1996) | 5"]
    assert "Emma (1996) | 4" in str(info.value)


def test_several_partial_matches_are_ambiguous_and_listed() -> None:
    with pytest.raises(AmbiguousQueryError) as info:
        match_title(TITLES, "godfather")
    assert set(info.value.candidates) == {TITLES[2], TITLES[3]}
    assert TITLES[2] in str(info.value)
    with pytest.raises(AmbiguousQueryError) as info:
        match_title(TITLES, "live")
    assert set(info.value.candidates) == {TITLES[0], TITLES[8]}


def test_no_match_suggests_closest_titles() -> None:
    with pytest.raises(EntityNotFoundError) as info:
        match_title(TITLES, "Godfathr (1972)")
    assert info.value.suggestions[0] == "Godfather, The (1972)"
    assert "Godfather, The (1972)" in str(info.value)
    assert isinstance(info.value, KeyError)
    with pytest.raises(EntityNotFoundError):
        match_title(TITLES, "")


def test_search_titles_ranks_by_kind_then_similarity() -> None:
    ranked = search_titles(TITLES, "emma (1996)", limit=None)
    kinds = [(m.index, m.kind) for m in ranked]
    assert kinds[:2] == [(4, "normalized"), (5, "normalized")]
    assert all(m.kind in {"normalized", "prefix", "substring", "words", "similar"} for m in ranked)
    exact = search_titles(TITLES, "They Live (1988)", limit=1)
    assert exact[0].kind == "exact" and exact[0].score == 1.0
    assert [m.index for m in search_titles(TITLES, "godfather", limit=2)] == [2, 3]
    assert search_titles(TITLES, "zzzzzzzz") == []
    assert len(search_titles(TITLES, "e", limit=3)) == 3
    assert closest_titles(TITLES, "Leon", 1) == ["Léon: The Professional (1994)"]
