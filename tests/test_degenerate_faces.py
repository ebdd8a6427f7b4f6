"""Degenerate data in the faces: the minimum-count filter on the command line and in
the demo (which say what they used), the report of exactly parallel embedding rows,
and what the demo says about convergence."""

from __future__ import annotations

import json

import embspace as es
import numpy as np
import pandas as pd
import pytest
from embspace import Embeddings
from embspace.demo import run_demo
from embspace.errors import InvalidParameterError
from embspace.faces.datasets import ParallelGroups, filter_described, parallel_groups
from test_cli import TINY, assert_one_line_error, run_cli, run_main

MIN_USER, MIN_ITEM = 30, 20


def core(ratings: es.Ratings, min_user: int, min_item: int) -> tuple[list, list, int]:
    """The (u, i)-core computed by hand on a table of (user, item) pairs: drop users
    and items below their minimum until nothing changes. Returns the user ids,
    item ids (sorted) and number of ratings kept."""
    coo = ratings.matrix.tocoo()
    pairs = pd.DataFrame({"user": ratings.user_ids[coo.row], "item": ratings.item_ids[coo.col]})
    while True:
        users = pairs["user"].map(pairs["user"].value_counts())
        items = pairs["item"].map(pairs["item"].value_counts())
        keep = (users >= min_user) & (items >= min_item)
        if keep.all():
            break
        pairs = pairs[keep]
    return sorted(pairs["user"].unique()), sorted(pairs["item"].unique()), len(pairs)


@pytest.fixture(scope="module")
def tiny_core() -> tuple[list, list, int]:
    return core(es.datasets.synthetic(preset="tiny", seed=0), MIN_USER, MIN_ITEM)


# ---------------------------------------------------------------------- faces helpers


def test_filter_described(tiny, tiny_core) -> None:
    same, line = filter_described(tiny)
    assert same is tiny and line.startswith("none")
    kept, line = filter_described(tiny, MIN_USER, MIN_ITEM)
    users, items, n = tiny_core
    assert sorted(kept.user_ids) == users and sorted(kept.item_ids) == items
    assert kept.n_ratings == n
    assert line == (
        f"users with >= {MIN_USER} and items with >= {MIN_ITEM} ratings (applied until both "
        f"hold): kept {len(users)} of 200 users, {len(items)} of 300 items, "
        f"{n:,} of 10,000 ratings"
    )
    with pytest.raises(InvalidParameterError, match="no ratings are left"):
        filter_described(tiny, 10_000, 1)
    with pytest.raises(InvalidParameterError, match="min_item_ratings"):
        filter_described(tiny, 1, 0)


def test_parallel_groups_on_planted_rows() -> None:
    """Rows 0, 3, 5 are one direction (scaled by powers of two: exactly parallel
    after normalisation), rows 1 and 6 another, and rows 2, 4, 7 are distinct."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(6, 4)).astype(np.float32)
    vectors = np.stack(
        [base[0], base[1], base[2], 2 * base[0], base[3], 0.25 * base[0], 4 * base[1], base[4]]
    )
    groups = parallel_groups(Embeddings(list("abcdefgh"), vectors))
    assert groups == ParallelGroups(n_entities=8, n_parallel=5, n_groups=2, largest=3)
    text = groups.describe("items", "the model")
    assert text.startswith("5 of 8 items (62.5%) sit in 2 groups of exactly parallel vectors")
    assert "in the model (largest 3)" in text
    none = parallel_groups(Embeddings(list("abc"), base[:3]))
    assert none.n_parallel == 0 and none.describe("users") == (
        "no two users have exactly parallel vectors"
    )


# ---------------------------------------------------------------------- command line


def test_train_with_minimum_counts(tmp_path, tiny_core) -> None:
    out = tmp_path / "items.npz"
    done = run_cli(
        "train", "-d", TINY, "--set", "factors=4", "--set", "iterations=3",
        "--min-user-ratings", str(MIN_USER), "--min-item-ratings", str(MIN_ITEM),
        "--out", str(out), "--no-cache", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    users, items, n = tiny_core
    report = json.loads(done.stdout)["ratings"]
    assert (report["n_users"], report["n_items"], report["n_ratings"]) == (
        len(users),
        len(items),
        n,
    )
    assert report["min_user_ratings"] == MIN_USER and report["min_item_ratings"] == MIN_ITEM
    emb = Embeddings.load(out)
    assert sorted(emb.ids) == items
    assert f"filter: users with >= {MIN_USER} and items with >= {MIN_ITEM} ratings" in done.stderr


def test_sweep_with_minimum_counts_trains_on_the_filtered_ratings(tmp_path) -> None:
    done = run_cli(
        "sweep", "-d", TINY, "--set", "factors=4", "--set", "iterations=10",
        "--set", "tol=0.5", "--param", "unobserved_weight", "--values", "0,1",
        "--min-item-ratings", str(MIN_ITEM), "--no-cache", "--json", "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    want = es.datasets.load(TINY, min_item_ratings=MIN_ITEM, progress=False)
    assert payload["data_fingerprint"] == want.fingerprint
    # a tol of 0.5 is met at once: every run and row converged
    assert all(r["converged"] is True and r["n_iter"] < 10 for r in payload["runs"])
    assert {row["converged"] for row in payload["table"]} == {True}


def test_train_says_whether_it_converged(tmp_path, capsys) -> None:
    common = ["train", "-d", TINY, "--set", "factors=4", "--no-cache", "--quiet"]
    capped = run_main(
        capsys, *common, "--set", "iterations=3", "--set", "tol=1e-9",
        "--out", str(tmp_path / "a.npz"),
    )  # fmt: skip
    assert capped.returncode == 0, capped.stderr
    assert "3 iterations: stopped at the iteration cap before tol=1e-09" in capped.stdout
    done = run_main(
        capsys, *common, "--set", "iterations=300", "--set", "tol=0.01",
        "--out", str(tmp_path / "b.npz"), "--json",
    )  # fmt: skip
    report = json.loads(done.stdout)
    want = es.WALS(factors=4, iterations=300, tol=0.01, random_state=0).fit(
        es.datasets.synthetic(preset="tiny", seed=0), progress=False
    )
    assert report["converged"] is True and report["n_iter"] == want.n_iter_ < 300


def test_minimum_counts_errors(tmp_path, capsys) -> None:
    assert_one_line_error(
        run_main(capsys, "train", "--min-item-ratings", "0", "--out", "x.npz"),
        "--min-item-ratings",
    )
    assert_one_line_error(run_main(capsys, "demo", "--tol", "-1"), "--tol")
    assert_one_line_error(
        run_main(capsys, "neighbors", "--embeddings", "x.npz", "--min-user-ratings", "2", "Heat"),
        "do not apply to --embeddings",
    )
    empty = ["train", "-d", TINY, "--min-user-ratings", "100000", "--no-cache"]
    assert_one_line_error(
        run_main(capsys, *empty, "--out", str(tmp_path / "x.npz")), "no ratings are left"
    )
    assert not (tmp_path / "x.npz").exists()


# ---------------------------------------------------------------------- the demo


def test_demo_says_what_it_used(tiny, tiny_core) -> None:
    printed: list[str] = []
    result = run_demo(
        tiny,
        out=None,
        quick=True,
        cache_dir=False,
        progress=False,
        echo=printed.append,
        min_user_ratings=MIN_USER,
        min_item_ratings=MIN_ITEM,
    )
    text = "\n".join(printed)
    users, items, n = tiny_core
    assert sorted(result.ratings.item_ids) == items and result.ratings.n_ratings == n
    assert result.filter["min_user_ratings"] == MIN_USER
    assert f"  filter     {result.filter['description']}" in text
    assert f"kept {len(users)} of 200 users" in result.filter["description"]
    # the parallel rows of the step-2 model and of the SVD, counted and printed
    wals = parallel_groups(result.model.items)
    assert result.parallel["wals"] == wals.to_dict()
    assert f"  parallel   {wals.describe('items')}" in text
    assert result.to_dict()["parallel_vectors"]["svd"]["n_entities"] == len(items)
    # --quick caps the runs at 5 iterations, before the demo's tol: the summary says so
    runs = result.sweep.runs
    assert all(r.n_iter == 5 and r.converged is False for r in runs)
    line = next(ln for ln in result.summary if "stopped at their cap" in ln)
    assert line.startswith(f"All {len(runs)} runs stopped at their cap of 5 iterations")
    low = min(r.last_decrease for r in runs)
    assert f"{low:.2%}" in line
    assert "5 iterations (the cap; not converged to 0.0001" in text


def test_demo_with_converged_runs_says_so(tiny) -> None:
    result = run_demo(
        tiny, out=None, quick=True, cache_dir=False, progress=False, echo=None,
        iterations=300, tol=1e-2,
    )  # fmt: skip
    runs = result.sweep.runs
    assert all(r.converged for r in runs)
    most = max(r.n_iter for r in runs)
    assert most < 300
    assert (
        f"Every run converged within {most} iterations (relative loss decrease per "
        "iteration below 0.01)." in result.summary
    )
