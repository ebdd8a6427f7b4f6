"""MovieLens-shaped synthetic ratings with a planted low-rank structure.

:func:`synthetic` draws, for a seed:

- user activity: every user rates at least ``min_user_ratings`` items, plus a
  power-law (Lomax/Pareto, tail index ``activity_exponent``) number of extra
  ratings, capped at ``max_user_fraction`` of the items; the counts add up to
  exactly ``n_ratings``;
- item popularity: Zipf-like, the item of popularity rank ``r`` is drawn with
  probability proportional to ``(r + r0) ** -popularity_exponent``; every item
  is rated at least once;
- which items each user rates: distinct items drawn by popularity (weighted
  sampling without replacement), so no (user, item) pair repeats;
- the ratings: ``mean + user bias + item bias + <u_user, v_item> + noise`` with
  rank-``rank`` factors (item factors share directions through their genres),
  Gaussian ``noise`` (in stars), rounded to half stars in [0.5, 5] (or, for the
  users who do not use half stars, to whole stars in [1, 5]);
- item metadata: unique synthetic titles with a year, and one to four of the
  MovieLens genre labels, so ``(title, genres)`` keys are unique.

Everything is vectorised numpy driven by one ``numpy.random.Generator`` per
part (counts and pairs, factors, values, titles), so changing ``noise`` or
``rank`` does not change which pairs are rated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, overload

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .. import _core
from .._params import check_int, check_number
from ..errors import InvalidParameterError
from ..ratings import Ratings

__all__ = ["GENRES", "PRESETS", "PlantedModel", "Preset", "synthetic"]

#: The 20 genre labels of MovieLens (ml-latest, ml-20m, ml-25m).
GENRES = (
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "IMAX",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
    "(no genres listed)",
)
# Relative frequency of each real genre (the last label is used for items with none).
_GENRE_WEIGHTS = np.array(
    [12, 8, 3, 4, 19, 7, 4, 24, 4, 1, 5, 1, 2, 3, 8, 5, 10, 2, 1], dtype=np.float64
)
# Probability of 0 (no genres listed), 1, 2, 3, 4 genres per item.
_GENRE_COUNT_P = np.array([0.01, 0.39, 0.35, 0.18, 0.07])

_ADJECTIVES = (
    "Silent", "Crimson", "Broken", "Hidden", "Last", "Golden", "Electric", "Wild", "Lonely",
    "Secret", "Burning", "Frozen", "Midnight", "Lost", "Iron", "Velvet", "Hollow", "Savage",
    "Distant", "Bright", "Dark", "Little", "Endless", "Quiet", "Restless", "Stolen", "Sacred",
    "Bitter", "Falling", "Rising", "Scarlet", "Wandering", "Forgotten", "Shattered", "Glass",
    "Paper", "Northern", "Southern", "Final", "Perfect",
)  # fmt: skip
_NOUNS = (
    "River", "Garden", "Empire", "Horizon", "Stranger", "Kingdom", "Summer", "Winter", "Road",
    "Harbor", "Mirror", "Shadow", "Storm", "Island", "Letter", "Promise", "City", "Machine",
    "Dream", "Heart", "Night", "Station", "Frontier", "Circus", "Detective", "Orchard", "Planet",
    "Symphony", "Voyage", "Witness", "Desert", "Forest", "Tower", "Bridge", "Signal", "Ocean",
    "Season", "Canyon", "Lantern", "Kiss", "Engine", "Journey", "Secret", "Crown", "Ghost",
    "Echo", "Valley", "Fortune", "Passage", "Carnival",
)  # fmt: skip
_ROMAN = ("", " II", " III", " IV", " V", " VI", " VII", " VIII", " IX", " X")


@dataclass(frozen=True)
class Preset:
    """A named shape: users, items (all rated) and ratings, and whether half stars occur."""

    n_users: int
    n_items: int
    n_ratings: int
    half_stars: bool = True


#: Shapes of the official datasets (``n_items`` = distinct rated items), plus a
#: small ``tiny`` one for tests.
PRESETS: dict[str, Preset] = {
    "tiny": Preset(200, 300, 10_000),
    "ml-latest-small": Preset(610, 9_724, 100_836),
    "ml-100k": Preset(943, 1_682, 100_000, half_stars=False),
    "ml-1m": Preset(6_040, 3_706, 1_000_209, half_stars=False),
    "ml-20m": Preset(138_493, 26_744, 20_000_263),
    "ml-25m": Preset(162_541, 59_047, 25_000_095),
}


@dataclass(frozen=True)
class PlantedModel:
    """The model the ratings were drawn from; rows follow the :class:`Ratings` order.

    ``score = mean + user_bias[u] + item_bias[i] + user_factors[u] @ item_factors[i]``
    plus Gaussian noise of standard deviation ``noise`` (stars), then rounded.
    """

    mean: float
    user_bias: np.ndarray  # (n_users,) float32
    item_bias: np.ndarray  # (n_items,) float32
    user_factors: np.ndarray  # (n_users, rank) float32
    item_factors: np.ndarray  # (n_items, rank) float32
    half_star_users: np.ndarray  # (n_users,) bool
    noise: float


@overload
def synthetic(
    n_users: int | None = None,
    n_items: int | None = None,
    n_ratings: int | None = None,
    *,
    preset: str | None = None,
    rank: int = 10,
    noise: float = 0.5,
    seed: int = 0,
    min_user_ratings: int = 20,
    popularity_exponent: float = 1.2,
    activity_exponent: float = 1.8,
    max_user_fraction: float = 0.5,
    half_star_fraction: float | None = None,
    name: str | None = None,
    return_model: Literal[False] = False,
) -> Ratings: ...
@overload
def synthetic(
    n_users: int | None = None,
    n_items: int | None = None,
    n_ratings: int | None = None,
    *,
    preset: str | None = None,
    rank: int = 10,
    noise: float = 0.5,
    seed: int = 0,
    min_user_ratings: int = 20,
    popularity_exponent: float = 1.2,
    activity_exponent: float = 1.8,
    max_user_fraction: float = 0.5,
    half_star_fraction: float | None = None,
    name: str | None = None,
    return_model: Literal[True],
) -> tuple[Ratings, PlantedModel]: ...
def synthetic(
    n_users: int | None = None,
    n_items: int | None = None,
    n_ratings: int | None = None,
    *,
    preset: str | None = None,
    rank: int = 10,
    noise: float = 0.5,
    seed: int = 0,
    min_user_ratings: int = 20,
    popularity_exponent: float = 1.2,
    activity_exponent: float = 1.8,
    max_user_fraction: float = 0.5,
    half_star_fraction: float | None = None,
    name: str | None = None,
    return_model: bool = False,
) -> Ratings | tuple[Ratings, PlantedModel]:
    """MovieLens-shaped ratings (see the module docstring), deterministic for ``seed``.

    Parameters
    ----------
    n_users, n_items, n_ratings : int, optional
        Exact shape: users, items (each rated at least once) and ratings.
        Unset values come from ``preset``; without a preset the default is
        the ``"tiny"`` shape, and ``n_ratings`` defaults to 50 per user (within
        what the other constraints allow).
    preset : str, optional
        One of :data:`PRESETS`: ``"tiny"`` (200 x 300, 10,000 ratings),
        ``"ml-latest-small"``, ``"ml-100k"``, ``"ml-1m"``, ``"ml-20m"``,
        ``"ml-25m"`` (the official shapes).
    rank : int
        Rank of the planted factors.
    noise : float
        Standard deviation of the Gaussian noise added to each score, in stars.
    seed : int
        Seed of the numpy generators.
    min_user_ratings : int
        Fewest ratings per user (MovieLens: 20).
    popularity_exponent : float
        Zipf exponent of item popularity (larger: more skew).
    activity_exponent : float
        Tail index of the power law of user activity (smaller: heavier tail).
    max_user_fraction : float
        Most items one user rates, as a fraction of ``n_items`` (raised when
        the shape needs it).
    half_star_fraction : float, optional
        Share of users who rate in half stars (the others use whole stars).
        Default: 0.6, or 0 for the presets of whole-star datasets.
    name : str, optional
        Name of the returned ratings (default ``"synthetic-<preset>"``).
    return_model : bool
        Also return the :class:`PlantedModel`.

    Returns
    -------
    Ratings, or (Ratings, PlantedModel) when ``return_model``.
        User ids ``1..n_users``, item ids ``1..n_items``; item metadata with
        ``title`` and ``genres``.
    """
    shape = _resolve_shape(n_users, n_items, n_ratings, preset, min_user_ratings)
    n_users, n_items, n_ratings = shape.n_users, shape.n_items, shape.n_ratings
    if half_star_fraction is None:
        half_star_fraction = 0.6 if shape.half_stars else 0.0
    _check_params(
        rank, noise, popularity_exponent, activity_exponent, max_user_fraction, half_star_fraction
    )
    seeds = np.random.SeedSequence(_seed_entropy(seed)).spawn(4)
    rng_pairs, rng_model, rng_values, rng_titles = (np.random.default_rng(s) for s in seeds)

    counts = _user_counts(
        rng_pairs, n_users, n_items, n_ratings, min_user_ratings, activity_exponent,
        max_user_fraction,
    )  # fmt: skip
    # Popularity in rank space: rank 0 is the most popular item.
    offset = max(1.0, 0.002 * n_items)
    weights = (np.arange(n_items, dtype=np.float64) + 1.0 + offset) ** -popularity_exponent
    popularity = weights / weights.sum()
    rows, ranks = _sample_pairs(rng_pairs, counts, popularity)
    rank_to_item = rng_pairs.permutation(n_items)
    cols = rank_to_item[ranks]

    items, genre_matrix = _item_metadata(rng_titles, n_items)
    model = _planted_model(
        rng_model, n_users, n_items, rank, genre_matrix, popularity[np.argsort(rank_to_item)],
        half_star_fraction, noise,
    )  # fmt: skip
    values = _rate(rng_values, model, rows, cols)

    indptr, indices, data = _core.csr_from_coo(n_users, n_items, rows, cols, values, "error")
    matrix = sp.csr_matrix((data, indices, indptr), shape=(n_users, n_items), copy=False)
    label = name or (f"synthetic-{preset}" if preset else "synthetic")
    ratings = Ratings(
        matrix,
        np.arange(1, n_users + 1, dtype=np.int64),
        np.arange(1, n_items + 1, dtype=np.int64),
        item_metadata=items.set_index("movieId", drop=False),
        name=label,
    )
    return (ratings, model) if return_model else ratings


# ------------------------------------------------------------------ parameters
def _seed_entropy(seed: int) -> int:
    return check_int(seed, "seed", minimum=0)


def _positive_int(value: object, what: str, minimum: int = 1) -> int:
    return check_int(value, what, minimum=minimum)


def _resolve_shape(
    n_users: int | None,
    n_items: int | None,
    n_ratings: int | None,
    preset: str | None,
    min_user_ratings: int,
) -> Preset:
    if preset is not None:
        if preset not in PRESETS:
            raise InvalidParameterError(
                f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}"
            )
        base = PRESETS[preset]
    else:
        base = PRESETS["tiny"]
    custom_shape = preset is None and (n_users is not None or n_items is not None)
    nu = _positive_int(base.n_users if n_users is None else n_users, "n_users")
    ni = _positive_int(base.n_items if n_items is None else n_items, "n_items")
    m = _positive_int(min_user_ratings, "min_user_ratings", minimum=0)
    if n_ratings is None:
        if custom_shape:
            n_ratings = min(max(50 * nu, m * nu, ni), nu * ni)
        else:
            n_ratings = base.n_ratings
    nr = _positive_int(n_ratings, "n_ratings")
    if m > ni:
        raise InvalidParameterError(
            f"min_user_ratings={m} exceeds n_items={ni}: no user can rate that many items"
        )
    if nr < m * nu:
        raise InvalidParameterError(
            f"n_ratings={nr:,} is fewer than n_users x min_user_ratings = {m * nu:,}"
        )
    if nr < ni:
        raise InvalidParameterError(
            f"n_ratings={nr:,} is fewer than n_items={ni:,}: every item must be rated once"
        )
    if nr > nu * ni:
        raise InvalidParameterError(
            f"n_ratings={nr:,} exceeds n_users x n_items = {nu * ni:,} (pairs are unique)"
        )
    return Preset(nu, ni, nr, base.half_stars)


def _check_params(
    rank: int,
    noise: float,
    popularity_exponent: float,
    activity_exponent: float,
    max_user_fraction: float,
    half_star_fraction: float,
) -> None:
    _positive_int(rank, "rank")
    checks = (
        ("noise", noise, 0.0, math.inf, True),
        ("popularity_exponent", popularity_exponent, 0.0, math.inf, True),
        ("activity_exponent", activity_exponent, 0.0, math.inf, False),
        ("max_user_fraction", max_user_fraction, 0.0, 1.0, False),
        ("half_star_fraction", half_star_fraction, 0.0, 1.0, True),
    )
    for what, value, low, high, low_ok in checks:
        check_number(
            value, what, low=low, high=None if math.isinf(high) else high, low_open=not low_ok
        )


# ------------------------------------------------------------------ structure
def _user_counts(
    rng: np.random.Generator,
    n_users: int,
    n_items: int,
    n_ratings: int,
    minimum: int,
    exponent: float,
    max_fraction: float,
) -> np.ndarray:
    """Ratings per user (int64): ``minimum`` plus power-law extras, each at most
    the cap, summing to exactly ``n_ratings``."""
    cap = max(minimum, math.ceil(max_fraction * n_items))
    if n_ratings > cap * n_users:
        cap = math.ceil(n_ratings / n_users)  # the shape needs heavier users
    cap = min(cap, n_items)
    extra_total = n_ratings - minimum * n_users
    room = cap - minimum
    weights = rng.pareto(exponent, n_users) + 1e-3  # Lomax: power-law tail, mode at 0
    alloc = np.zeros(n_users)
    free = np.ones(n_users, dtype=bool)
    remaining = float(extra_total)
    while free.any():  # water-filling: users over the cap get the cap, the rest is re-shared
        idx = np.flatnonzero(free)
        share = remaining * weights[idx] / weights[idx].sum()
        over = share > room
        if not over.any():
            alloc[idx] = share
            break
        alloc[idx[over]] = room
        remaining -= room * int(over.sum())
        free[idx[over]] = False
    extra = np.minimum(np.floor(alloc).astype(np.int64), room)
    short = extra_total - int(extra.sum())
    if short:  # largest remainders first, among users below the cap
        order = np.argsort(-(alloc - np.floor(alloc)), kind="stable")
        order = order[extra[order] < room]
        extra[order[:short]] += 1
    return extra + minimum


class _AliasTable:
    """Walker/Vose alias table: O(1) draws from a discrete distribution."""

    def __init__(self, p: np.ndarray) -> None:
        n = p.size
        scaled = (p * (n / p.sum())).tolist()
        prob = np.ones(n)
        alias = np.arange(n, dtype=np.int64)
        small = [i for i, x in enumerate(scaled) if x < 1.0]
        large = [i for i, x in enumerate(scaled) if x >= 1.0]
        while small and large:
            s, big = small.pop(), large[-1]
            prob[s], alias[s] = scaled[s], big
            scaled[big] += scaled[s] - 1.0
            if scaled[big] < 1.0:
                small.append(large.pop())
        self.prob, self.alias = prob, alias  # leftovers keep prob 1 (rounding error only)

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """``size`` independent indices (int64)."""
        # One uniform per draw: its integer part picks the column, its
        # fractional part (38+ bits left for up to 2**15 columns) the side.
        x = rng.random(size) * self.prob.size
        idx = x.astype(np.int64)
        np.minimum(idx, self.prob.size - 1, out=idx)
        x -= idx
        return np.where(x < self.prob[idx], idx, self.alias[idx])


def _in_sorted(keys: np.ndarray, sorted_sets: list[np.ndarray]) -> np.ndarray:
    """Mask of ``keys`` (sorted, unique) found in any of the sorted arrays.

    The smaller of the two arrays is searched in the larger one."""
    found = np.zeros(keys.shape, dtype=bool)
    if keys.size == 0:
        return found
    for s in sorted_sets:
        if s.size == 0:
            continue
        if s.size <= keys.size:
            pos = np.searchsorted(keys, s)
            hit = pos < keys.size
            hit[hit] = keys[pos[hit]] == s[hit]
            found[pos[hit]] = True
        else:
            pos = np.minimum(np.searchsorted(s, keys), s.size - 1)
            found |= s[pos] == keys
    return found


# Users rating more than 1/_HEAVY_SHARE of the items are sampled exactly (cost:
# the whole catalogue per user); the others by rounds of draws with replacement.
_HEAVY_SHARE = 8


def _sample_pairs(
    rng: np.random.Generator, counts: np.ndarray, popularity: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user, item-rank) pairs: ``counts[u]`` items for user ``u``, each
    item at least once overall, drawn by ``popularity`` without replacement.

    Returns (rows, ranks), int64 arrays of length ``counts.sum()``."""
    n_users, n_items = counts.size, popularity.size
    n_ratings = int(counts.sum())
    # 1. Every item once: give item j the user owning a random distinct rating slot.
    slots = rng.choice(n_ratings, size=n_items, replace=False)
    owners = np.searchsorted(np.cumsum(counts), slots, side="right")
    first = np.sort(owners.astype(np.int64) * n_items + rng.permutation(n_items))
    need = counts - np.bincount(owners, minlength=n_users)
    held: list[np.ndarray] = [first]  # sorted key arrays of the pairs taken so far

    # 2. Heavy users (many items relative to the catalogue) exactly, by
    #    Efraimidis-Spirakis keys over the whole catalogue, in row chunks.
    heavy = np.flatnonzero((counts * _HEAVY_SHARE > n_items) & (need > 0))
    exact = _sample_exact(rng, heavy, need[heavy], popularity, held)
    need[heavy] = 0

    # 3. The others: draw the missing number with replacement, keep the new
    #    distinct pairs, repeat for what collided (a shrinking remainder).
    table = _AliasTable(popularity)
    for round_ in range(60):
        active = np.flatnonzero(need > 0)
        if active.size == 0:
            break
        factor = 1 if round_ == 0 else min(2**round_, 32)
        keys = np.repeat(active.astype(np.int64) * n_items, need[active] * factor)
        keys += table.draw(rng, keys.size)
        keys.sort()
        fresh = np.empty(keys.size, dtype=bool)
        fresh[0] = True
        np.not_equal(keys[1:], keys[:-1], out=fresh[1:])
        keys = keys[fresh]
        keys = keys[~_in_sorted(keys, held)]
        if factor > 1:  # keep a random subset of at most need[u] new items per user
            owner = keys // n_items
            order = np.lexsort((rng.random(keys.size), owner))
            keys, owner = keys[order], owner[order]
            start = np.searchsorted(owner, owner, side="left")
            keys = np.sort(keys[np.arange(keys.size) - start < need[owner]])
        need -= np.bincount(keys // n_items, minlength=n_users)
        held.append(keys)
    rest = np.flatnonzero(need > 0)
    if rest.size:  # what the rounds left (very rare): exactly, like heavy users
        held.extend(_sample_exact(rng, rest, need[rest], popularity, held))
    # (the rounds never draw for heavy users, so their pairs join only now)
    rows, ranks = np.divmod(np.concatenate(held + exact), n_items)
    return rows, ranks


def _sample_exact(
    rng: np.random.Generator,
    users: np.ndarray,
    need: np.ndarray,
    popularity: np.ndarray,
    held: list[np.ndarray],
) -> list[np.ndarray]:
    """For each user, ``need`` new items weighted by popularity without
    replacement (the smallest Exp(1)/p keys), skipping pairs already held."""
    n_items = popularity.size
    out: list[np.ndarray] = []
    chunk = max(1, (1 << 22) // n_items)
    for start in range(0, users.size, chunk):
        block = users[start : start + chunk].astype(np.int64)
        want = need[start : start + chunk]
        keys = rng.standard_exponential((block.size, n_items)) / popularity
        flat = (block[:, None] * n_items + np.arange(n_items)).ravel()
        keys.ravel()[_in_sorted(flat, held)] = np.inf
        parts = []
        for row, (user, k) in enumerate(zip(block, want, strict=True)):
            if k <= 0:
                continue
            picked = np.argpartition(keys[row], k - 1)[:k] if k < n_items else np.arange(n_items)
            picked.sort()
            parts.append(user * n_items + picked)
        if parts:
            out.append(np.concatenate(parts))  # sorted: users ascend, items ascend per user
    return out


# ------------------------------------------------------------------ metadata
def _item_metadata(rng: np.random.Generator, n_items: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Items table (movieId 1..n, title with year, genres) and the item x genre
    membership matrix (bool, 19 real genres)."""
    years = 2018 - np.minimum(np.floor(rng.exponential(18.0, n_items)), 116).astype(np.int64)
    years.sort()  # ids grow with the year, as MovieLens ids roughly do
    phrases = [f"The {a} {n}" for a in _ADJECTIVES for n in _NOUNS] + [
        f"{n} of the {a} {m}" for n in _NOUNS[:20] for a in _ADJECTIVES[:10] for m in _NOUNS[20:]
    ]
    phrase_arr = np.array(phrases, dtype=object)
    titles = np.empty(n_items, dtype=object)
    bounds = np.flatnonzero(np.diff(years)) + 1
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, n_items], strict=True):
        size = int(hi - lo)
        pick = rng.permutation(len(phrases))
        idx = np.arange(size)
        base = phrase_arr[pick[idx % len(phrases)]]
        sequel = idx // len(phrases)
        titles[lo:hi] = [
            f"{b}{_ROMAN[s] if s < len(_ROMAN) else f' {s + 1}'} ({years[lo]})"
            for b, s in zip(base, sequel, strict=True)
        ]
    n_real = _GENRE_WEIGHTS.size
    k = rng.choice(_GENRE_COUNT_P.size, size=n_items, p=_GENRE_COUNT_P)
    order = np.argsort(rng.standard_exponential((n_items, n_real)) / _GENRE_WEIGHTS, axis=1)
    member = np.zeros((n_items, n_real), dtype=bool)
    chosen = np.arange(n_real) < k[:, None]
    member[np.repeat(np.arange(n_items), k), order[chosen]] = True
    labels = np.array(GENRES[:n_real], dtype=object)
    genres = ["|".join(labels[row]) if row.any() else GENRES[-1] for row in member]
    table = pd.DataFrame(
        {"movieId": np.arange(1, n_items + 1, dtype=np.int64), "title": titles, "genres": genres}
    )
    return table, member


def _planted_model(
    rng: np.random.Generator,
    n_users: int,
    n_items: int,
    rank: int,
    genre_matrix: np.ndarray,
    popularity: np.ndarray,
    half_star_fraction: float,
    noise: float,
) -> PlantedModel:
    """Biases and rank-``rank`` factors; item factors mix genre directions with
    item-specific noise, so items of the same genres lie close together."""
    genre_dirs = rng.standard_normal((genre_matrix.shape[1], rank))
    n_genres = np.maximum(genre_matrix.sum(axis=1, keepdims=True), 1)
    shared = (genre_matrix @ genre_dirs) / np.sqrt(n_genres)
    own = rng.standard_normal((n_items, rank))
    item_factors = 0.6 * (np.sqrt(0.7) * shared + np.sqrt(0.3) * own)
    user_factors = rng.standard_normal((n_users, rank)) / np.sqrt(rank)
    log_pop = np.log(popularity)
    z_pop = (log_pop - log_pop.mean()) / (log_pop.std() or 1.0)
    item_bias = 0.3 * rng.standard_normal(n_items) + 0.15 * z_pop  # popular items rate higher
    item_bias -= popularity @ item_bias  # so the mean rating stays near ``mean``
    user_bias = 0.35 * rng.standard_normal(n_users)
    return PlantedModel(
        mean=3.6,
        user_bias=user_bias.astype(np.float32),
        item_bias=item_bias.astype(np.float32),
        user_factors=user_factors.astype(np.float32),
        item_factors=item_factors.astype(np.float32),
        half_star_users=rng.random(n_users) < half_star_fraction,
        noise=float(noise),
    )


def _rate(
    rng: np.random.Generator, model: PlantedModel, rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """Rounded ratings (float32) of the pairs, in chunks to bound memory.

    Half-star users round to the nearest 0.5 in [0.5, 5], the others to the
    nearest whole star in [1, 5]."""
    out = np.empty(rows.size, dtype=np.float32)
    step = 1 << 21
    for lo in range(0, rows.size, step):
        u, i = rows[lo : lo + step], cols[lo : lo + step]
        score = np.einsum("ij,ij->i", model.user_factors[u], model.item_factors[i])
        score += model.user_bias[u]
        score += model.item_bias[i]
        score += np.float32(model.mean)
        score += np.float32(model.noise) * rng.standard_normal(u.size, dtype=np.float32)
        steps = np.where(model.half_star_users[u], np.float32(2.0), np.float32(1.0))
        score *= steps
        np.round(score, out=score)
        score /= steps  # the nearest half or whole star
        np.clip(score, 1.0 / steps, np.float32(5.0), out=score)
        out[lo : lo + step] = score
    return out
