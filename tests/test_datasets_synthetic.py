"""The synthetic MovieLens-shaped generator."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from embspace import datasets
from embspace.datasets.generator import GENRES, PRESETS
from embspace.errors import InvalidParameterError

YEAR_TITLE = re.compile(r"^.+ \((\d{4})\)$")


def _check_structure(ratings, n_users, n_items, n_ratings, min_user_ratings=20):
    m = ratings.matrix
    assert ratings.shape == (n_users, n_items)
    assert ratings.n_ratings == n_ratings
    per_user = np.diff(m.indptr)
    per_item = np.bincount(m.indices, minlength=n_items)
    assert per_user.min() >= min_user_ratings
    assert per_item.min() >= 1  # every item rated at least once
    coo = m.tocoo()
    pairs = coo.row.astype(np.int64) * n_items + coo.col
    assert np.unique(pairs).size == n_ratings  # no repeated (user, item) pair
    assert ratings.user_keys == list(range(1, n_users + 1))
    assert ratings.item_ids.tolist() == list(range(1, n_items + 1))
    return per_user, per_item


def test_tiny_fixture_shape_and_values(tiny):
    per_user, per_item = _check_structure(tiny, 200, 300, 10_000)
    values = tiny.matrix.data
    assert values.dtype == np.float32
    assert values.min() >= 0.5 and values.max() <= 5.0
    np.testing.assert_array_equal(values * 2, np.round(values * 2))  # half stars
    assert set(np.unique(values).tolist()) == {0.5 * k for k in range(1, 11)}
    # power-law popularity and activity: heavy heads
    top = np.sort(per_item)[::-1][: 300 // 10].sum()
    assert top / 10_000 > 0.25
    assert per_user.max() > 3 * np.median(per_user)


def test_titles_genres_and_keys(tiny):
    items = tiny.items
    assert len(set(tiny.item_keys)) == tiny.n_items
    assert [k[0] for k in tiny.item_keys] == items["title"].tolist()
    assert not any("[id " in t for t in items["title"])  # unique without disambiguation
    years = [int(YEAR_TITLE.match(t).group(1)) for t in items["title"]]
    assert min(years) >= 1900 and max(years) <= 2018
    labels = {g for genres in items["genres"] for g in genres.split("|")}
    assert labels <= set(GENRES) and len(GENRES) == 20
    for genres in items["genres"]:
        parts = genres.split("|")
        assert parts == sorted(parts) and len(parts) == len(set(parts))
    assert len(tiny.item_metadata) == 300


def test_deterministic_for_a_seed_and_seeds_differ():
    a = datasets.synthetic(preset="tiny", seed=3)
    b = datasets.synthetic(preset="tiny", seed=3)
    c = datasets.synthetic(preset="tiny", seed=4)
    assert a.fingerprint == b.fingerprint
    assert (a.matrix != b.matrix).nnz == 0
    assert a.item_keys == b.item_keys
    assert a.fingerprint != c.fingerprint
    assert (a.matrix != c.matrix).nnz > 0
    assert a.item_keys != c.item_keys


def test_noise_and_rank_change_values_not_pattern():
    a = datasets.synthetic(preset="tiny", seed=1, noise=0.0)
    b = datasets.synthetic(preset="tiny", seed=1, noise=1.0, rank=4)
    np.testing.assert_array_equal(a.matrix.indptr, b.matrix.indptr)
    np.testing.assert_array_equal(a.matrix.indices, b.matrix.indices)
    assert not np.array_equal(a.matrix.data, b.matrix.data)


def test_planted_low_rank_model_explains_the_ratings():
    ratings, model = datasets.synthetic(preset="tiny", seed=2, noise=0.3, return_model=True)
    coo = ratings.matrix.tocoo()
    u, i = coo.row, coo.col
    bias = model.mean + model.user_bias[u] + model.item_bias[i]
    interaction = np.einsum("ij,ij->i", model.user_factors[u], model.item_factors[i])
    assert model.user_factors.shape == (200, 10) and model.item_factors.shape == (300, 10)
    # the low-rank part explains what the biases leave (rounding and noise aside)
    residual = coo.data - bias
    assert np.corrcoef(residual, interaction)[0, 1] > 0.6
    assert np.corrcoef(coo.data, bias + interaction)[0, 1] > 0.8


def test_whole_star_presets_and_half_star_fraction():
    r = datasets.synthetic(preset="ml-100k", seed=0)
    _check_structure(r, 943, 1_682, 100_000)
    assert set(np.unique(r.matrix.data).tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert r.name == "synthetic-ml-100k"
    half = datasets.synthetic(preset="tiny", half_star_fraction=1.0)
    assert (half.matrix.data % 1 == 0.5).mean() > 0.3


@pytest.mark.parametrize("preset", ["ml-1m", "ml-latest-small"])
def test_official_preset_shapes(preset):
    shape = PRESETS[preset]
    r = datasets.synthetic(preset=preset, seed=0)
    _check_structure(r, shape.n_users, shape.n_items, shape.n_ratings)


def test_preset_values_match_the_registry():
    for name in ("ml-latest-small", "ml-100k", "ml-1m", "ml-20m", "ml-25m"):
        entry, shape = datasets.info(name), PRESETS[name]
        assert (shape.n_users, shape.n_items, shape.n_ratings) == (
            entry.n_users,
            entry.n_items,
            entry.n_ratings,
        )


@pytest.mark.parametrize(
    ("n_users", "n_items", "n_ratings", "min_user_ratings"),
    [
        (50, 40, 1_200, 20),  # custom
        (30, 25, 750, 20),  # every user rates every item
        (5, 1_000, 1_000, 20),  # every item exactly once
        (1, 7, 7, 0),  # one user
        (400, 30, 8_000, 20),  # every user is heavy relative to the catalogue
    ],
)
def test_custom_and_extreme_shapes(n_users, n_items, n_ratings, min_user_ratings):
    r = datasets.synthetic(n_users, n_items, n_ratings, min_user_ratings=min_user_ratings, seed=5)
    _check_structure(r, n_users, n_items, n_ratings, min_user_ratings)


def test_lazy_import_from_the_top_package():
    code = (
        "import embspace, sys; assert 'embspace.datasets' not in sys.modules; "
        "r = embspace.datasets.synthetic(preset='tiny', seed=0); print(r.n_ratings, r.fingerprint)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    n, fingerprint = out.stdout.split()
    assert int(n) == 10_000
    assert (
        fingerprint == datasets.synthetic(preset="tiny", seed=0).fingerprint
    )  # same in a new process


def test_default_shape():
    r = datasets.synthetic(seed=0)
    assert (r.n_users, r.n_items, r.n_ratings) == (200, 300, 10_000)
    assert datasets.synthetic(100, 80, seed=0).n_ratings == 5_000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"n_users": 10, "n_items": 10, "n_ratings": 101, "min_user_ratings": 0},
            "exceeds n_users x n_items",
        ),
        ({"n_users": 10, "n_items": 50, "n_ratings": 199}, "fewer than n_users x min_user_ratings"),
        ({"n_users": 10, "n_items": 500, "n_ratings": 300}, "every item must be rated"),
        ({"n_users": 10, "n_items": 10, "n_ratings": 50}, "exceeds n_items"),
        ({"preset": "ml-30m"}, "unknown preset"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"rank": 0}, "rank"),
        ({"noise": -0.1}, "noise"),
        ({"noise": float("nan")}, "noise"),
        ({"popularity_exponent": "big"}, "popularity_exponent"),
        ({"half_star_fraction": 1.5}, "half_star_fraction"),
        ({"n_users": 0}, "n_users"),
        ({"n_items": True}, "n_items"),
    ],
)
def test_bad_parameters(kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        datasets.synthetic(**kwargs)
