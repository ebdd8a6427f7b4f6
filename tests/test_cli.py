"""The command line end to end, through subprocesses: exit codes, outputs, files, --json, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import embspace as es
import numpy as np
import pytest
from embspace import Embeddings
from embspace.cli import build_parser, main

TINY = "synthetic:tiny"
SUBCOMMANDS = [
    ["demo"],
    ["datasets"],
    ["datasets", "list"],
    ["datasets", "info"],
    ["datasets", "download"],
    ["train"],
    ["neighbors"],
    ["compare"],
    ["sweep"],
    ["report"],
]


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    """``python -m embspace ARGS`` in a subprocess (stdin closed, not a TTY)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "embspace", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> SimpleNamespace:
    """``embspace ARGS`` in this process (``main()``), for the cheap checks."""
    try:
        code = main(list(args))
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=captured.out, stderr=captured.err)


def assert_one_line_error(done: Any, *fragments: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("embspace: error: "), lines[0]
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert done.stdout == ""
    return lines[0]


# ---------------------------------------------------------------------- help and parsing
@pytest.mark.parametrize("words", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_has_help_with_an_example(words, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main([*words, "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out and f"embspace {words[0]}" in out.split("example", 1)[1]


def test_subcommands() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == {
        "demo",
        "datasets",
        "train",
        "neighbors",
        "compare",
        "sweep",
        "report",
        "tui",
    }


def test_help_and_version_through_a_subprocess() -> None:
    done = run_cli("--help")
    assert done.returncode == 0 and "sweep" in done.stdout and "example" in done.stdout
    done = run_cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"embspace {es.__version__}"


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["sweep", "--values", "0,1"], ["required", "--param"]),
        (["train", "--out", "x.npz", "--bogus"], ["unrecognized arguments: --bogus"]),
        (["demo", "--seeds", "0"], ["--seeds", ">= 1"]),
        (["frobnicate"], ["invalid choice"]),
        ([], ["required"]),
    ],
)
def test_bad_arguments_are_one_line_errors(args, fragments, capsys) -> None:
    assert_one_line_error(run_main(capsys, *args), *fragments)


def test_a_bad_argument_through_a_subprocess() -> None:
    assert_one_line_error(run_cli("sweep", "--param", "x"), "required", "--values")


def test_user_errors_are_one_line(tmp_path: Path, capsys) -> None:
    # through a subprocess: no traceback reaches the terminal
    assert_one_line_error(
        run_cli("train", "--dataset", "no-such-dataset", "--out", str(tmp_path / "x.npz")),
        "unknown dataset",
        "no-such-dataset",
    )
    assert_one_line_error(run_main(capsys, "datasets", "info", "ml-2b"), "unknown dataset")
    missing = tmp_path / "missing.npz"
    assert_one_line_error(run_main(capsys, "compare", str(missing), str(missing)), "does not exist")
    out = str(tmp_path / "x.npz")
    assert_one_line_error(
        run_main(capsys, "train", "-d", TINY, "--set", "bogus=1", "--out", out),
        "WALS has no parameter bogus",
    )
    assert_one_line_error(
        run_main(capsys, "train", "-d", TINY, "-e", "PCA", "--out", out), "unknown estimator"
    )
    assert_one_line_error(
        run_main(capsys, "train", "-d", TINY, "--set", "factors=-3", "--out", out), "factors"
    )
    assert_one_line_error(
        run_main(capsys, "train", "-d", "synthetic:tiny,bogus=1", "--out", out), "synthetic"
    )
    assert_one_line_error(
        run_main(
            capsys,
            "sweep",
            "-d",
            TINY,
            "--param",
            "unobserved_weight",
            "--values",
            "0,1",
            "--reference",
            "5",
        ),
        "reference 5.0 is not among",
    )
    assert_one_line_error(
        run_main(capsys, "sweep", "-d", TINY, "--param", "nope", "--values", "0,1"),
        "WALS has no parameter 'nope'",
    )
    not_embeddings = tmp_path / "junk.npz"
    not_embeddings.write_bytes(b"junk")
    assert_one_line_error(
        run_main(capsys, "compare", str(not_embeddings), str(not_embeddings)), "junk.npz"
    )
    assert not (tmp_path / "x.npz").exists()


# ---------------------------------------------------------------------- datasets
def test_datasets_list_and_info(data_dir: Path) -> None:
    env = {"EMBSPACE_DATA_DIR": str(data_dir)}
    done = run_cli("datasets", "list", "--json", env=env)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    names = [r["name"] for r in rows]
    assert names[:1] == ["ml-latest-small"] and {"ml-100k", "ml-1m", "ml-20m"} <= set(names)
    small = rows[0]
    assert small["state"] == "data dir" and small["n_ratings"] == 100_836
    done = run_cli("datasets", "info", "ml-latest-small", env=env)
    assert done.returncode == 0 and "978,202" in done.stdout
    assert "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436" in done.stdout
    done = run_cli("datasets", "download", "ml-latest-small", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert Path(json.loads(done.stdout)["path"]).is_dir()
    done = run_cli("datasets", "list", env=env)
    assert done.returncode == 0 and "ml-latest-small" in done.stdout and "data dir" in done.stdout


def test_download_without_network_is_a_one_line_error() -> None:
    # conftest points EMBSPACE_MIRROR at an unreachable address
    done = run_cli("datasets", "download", "ml-100k", env={"EMBSPACE_DATA_DIR": ""})
    assert_one_line_error(done)


# ---------------------------------------------------------------------- train, neighbors, compare
def test_train_neighbors_compare_on_tiny(tmp_path: Path, capsys) -> None:
    cache = tmp_path / "cache"
    items_a, users_a, items_b = tmp_path / "a.npz", tmp_path / "a-users.npz", tmp_path / "b.npz"
    common = ["-d", TINY, "--set", "factors=6", "--set", "iterations=5", "--cache-dir", str(cache)]
    done = run_cli("train", *common, "--out", str(items_a), "--users-out", str(users_a), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["cached"] is False and report["items"]["n"] == 300 and report["items"]["d"] == 6
    assert report["params"]["factors"] == 6 and report["params"]["random_state"] == 0
    tiny = es.datasets.synthetic(preset="tiny")
    a = Embeddings.load(items_a)
    assert a.keys == tiny.item_keys and a.vectors.shape == (300, 6)
    assert Embeddings.load(users_a).keys == tiny.user_keys
    # the same training again comes from the cache and gives the same file content
    done = run_cli("train", *common, "--out", str(tmp_path / "again.npz"), "--json")
    assert json.loads(done.stdout)["cached"] is True
    np.testing.assert_array_equal(Embeddings.load(tmp_path / "again.npz").vectors, a.vectors)
    # the Python API gives the same embeddings
    own = es.WALS(factors=6, iterations=5, random_state=0).fit(tiny)
    np.testing.assert_array_equal(own.item_embeddings_.vectors, a.vectors)

    done = run_cli(
        "train", *common, "--set", "unobserved_weight=1", "--out", str(items_b), "--quiet"
    )
    assert done.returncode == 0 and done.stderr == "" and "item embeddings: 300 x 6" in done.stdout

    # neighbors of a title, from the file
    title = a.keys[5][0]
    done = run_cli("neighbors", "--embeddings", str(items_a), title, "-k", "4", "--json")
    assert done.returncode == 0, done.stderr
    (answer,) = json.loads(done.stdout)
    assert answer["query"] == title and len(answer["neighbors"]) == 4
    expected = es.NeighborTable(a).neighbors(a.keys[5], k=4)
    assert [n["title"] for n in answer["neighbors"]] == list(expected["title"])
    done = run_main(capsys, "neighbors", "--embeddings", str(items_a), title, "-k", "3")
    assert done.returncode == 0 and title in done.stdout
    assert done.stdout.count("\n") == 5  # heading, column names, 3 rows
    assert_one_line_error(
        run_main(capsys, "neighbors", "--embeddings", str(items_a), "zzzz qqqq xxxx"),
        "zzzz qqqq xxxx",
    )

    # compare: a file with itself scores 1 (neighbors: what compare() says,
    # below 1 exactly where ties at the k-th neighbor are broken independently
    # on each side), two weights score what compare() says
    done = run_cli("compare", str(items_a), str(items_a), "--json")
    assert done.returncode == 0, done.stderr
    same = json.loads(done.stdout)
    for m in ("cca", "unitmatch", "cka"):
        assert same["scores"][m] == pytest.approx(1.0, abs=1e-5)
    self_nb = es.compare(a, a, measures=["neighbors"])
    assert same["scores"]["neighbors"] == pytest.approx(self_nb.scores["neighbors"], abs=1e-12)
    if same["details"]["neighbors"]["tied_fraction"] == 0:
        assert same["scores"]["neighbors"] == 1.0
    else:
        assert 0.9 < same["scores"]["neighbors"] < 1.0
    # ties for certain: every vector four times, so the 10 nearest of an
    # entity are its 3 copies, the 4 of the nearest other group and 3 of the
    # 4 of the next; two independent draws of 3 of those 4 agree on all 3
    # with probability 1/4 (Jaccard 1), else on 2 (Jaccard 9/11): 19/22
    groups = np.random.default_rng(0).standard_normal((75, 6)).astype(np.float32)
    Embeddings(a.keys, np.repeat(groups, 4, axis=0)).save(tmp_path / "tied.npz")
    tied_file = str(tmp_path / "tied.npz")
    done = run_cli("compare", tied_file, tied_file, "--measures", "neighbors", "--json")
    assert done.returncode == 0, done.stderr
    tied = json.loads(done.stdout)
    assert tied["details"]["neighbors"]["tied_fraction"] == 1.0
    assert tied["scores"]["neighbors"] == pytest.approx(19 / 22, abs=1e-12)
    done = run_cli("compare", str(items_a), str(items_b), "--measures", "neighbors,cka", "--json")
    scores = json.loads(done.stdout)["scores"]
    b = Embeddings.load(items_b)
    reference = es.compare(a, b, measures=["neighbors", "cka"]).scores
    assert set(scores) == {"neighbors", "cka"}
    for m in scores:
        assert scores[m] == pytest.approx(reference[m], abs=1e-9)
    done = run_main(capsys, "compare", str(items_a), str(items_b))
    assert done.returncode == 0 and "300 shared entities" in done.stdout and "cka" in done.stdout
    # --sample: the neighbor measures of 100 sampled queries, with compare()'s interval
    done = run_cli(
        "compare", str(items_a), str(items_b), "--measures", "neighbors", "--sample", "100",
        "--seed", "3", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    sampled = json.loads(done.stdout)
    want = es.compare(a, b, measures=["neighbors"], sample=100, sample_seed=3)
    assert sampled["scores"]["neighbors"] == pytest.approx(want.scores["neighbors"], abs=1e-12)
    low, high = want.intervals["neighbors"]
    assert low < want.scores["neighbors"] < high
    done = run_main(capsys, "compare", str(items_a), str(items_b), "--sample", "100", "--seed", "3")
    assert "100 sampled query entities" in done.stdout
    assert f"[{low:.4f}, {high:.4f}]" in done.stdout
    assert_one_line_error(
        run_main(capsys, "compare", str(items_a), str(items_b), "--sample", "1"),
        "at least 2 query entities",
    )
    assert_one_line_error(
        run_main(capsys, "compare", str(items_a), str(items_b), "--measures", "nope"),
        "unknown measure",
    )


# ---------------------------------------------------------------------- sweep
def test_sweep_on_tiny_writes_files_and_json(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_cli(
        "sweep",
        "-d",
        TINY,
        "--set",
        "factors=6",
        "--set",
        "iterations=5",
        "--param",
        "unobserved_weight",
        "--values",
        "0,0.1,1",
        "--seeds",
        "2",
        "--against-svd",
        "--out",
        str(out),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["param"] == "unobserved_weight" and payload["values"] == [0.0, 0.1, 1.0]
    assert payload["reference"] == 0.0 and payload["seeds"] == [0, 1]
    table = payload["table"]
    assert {r["against"] for r in table} == {"reference", "svd"}
    assert len(table) == 2 * 3 * 4
    ref = [r for r in table if r["against"] == "reference" and r["value"] == 0.0]
    # cross pairing: the reference row compares reference runs of distinct
    # seeds, so it is the reference's noise floor (below 1), not a self-comparison
    assert all(r["similarity"] == r["noise_floor"] < 1.0 for r in ref)
    assert all(r["noise_floor"] < 1.0 for r in table if r["against"] == "reference")
    # against the SVD the floor is the value's own, and there is no reference floor
    svd = [r for r in table if r["against"] == "svd"]
    assert all(r["noise_floor"] is None and r["floor"] < 1.0 for r in svd)
    assert payload["pairing"] == "cross"
    assert len(payload["runs"]) == 6
    # one line per finished run on stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("run ")]
    assert len(lines) == 6 and all("trained in" in ln for ln in lines)
    files = payload["files"]
    assert {Path(p).name for p in files.values()} == {
        "sweep_unobserved_weight_table.csv",
        "sweep_unobserved_weight_results.csv",
        "sweep_unobserved_weight.json",
        "sweep_unobserved_weight.png",
        "sweep_unobserved_weight_changes.csv",
        "sweep_unobserved_weight_neighbors.json",
        "sweep_unobserved_weight_provenance.json",
    }
    assert Path(files["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the text output: a table per group, from the cache this time
    done = run_cli(
        "sweep", "-d", TINY, "--set", "factors=6", "--set", "iterations=5",
        "--param", "unobserved_weight", "--values", "0,0.1,1", "--seeds", "2",
        "--cache-dir", str(tmp_path / "cache"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "similarity to w0=0 (mean ± stdev over 2 seeds)" in done.stdout
    # each value's floor, its calibrated score and the test
    assert "similarity  floor  calibrated  p_adjusted  changed" in done.stdout
    assert sum("loaded from the cache" in ln for ln in done.stderr.splitlines()) == 6


def test_sweeping_factors_skips_or_refuses_before_training(tmp_path: Path) -> None:
    """The default measures skip unitmatch (it needs equal d) with a note; a
    named unitmatch is refused with one error line; neither trains anything."""
    common = (
        "sweep", "-d", TINY, "--set", "iterations=2", "--param", "factors",
        "--values", "3,4", "--no-cache",
    )  # fmt: skip
    done = run_cli(*common, "--json")
    assert done.returncode == 0, done.stderr
    assert "measure 'unitmatch' skipped" in done.stderr
    payload = json.loads(done.stdout)
    assert {r["measure"] for r in payload["table"]} == {"neighbors", "cca", "cka"}
    assert set(payload["skipped_measures"]) == {"unitmatch"}
    done = run_cli(*common, "--measures", "cka,unitmatch")
    assert done.returncode == 2
    assert done.stderr.startswith("embspace: error:") and "'unitmatch'" in done.stderr
    assert "run 1/" not in done.stderr  # nothing was trained


# ---------------------------------------------------------------------- the real data
def test_neighbors_on_ml_latest_small(data_dir: Path, ml_small, tmp_path: Path) -> None:
    env = {"EMBSPACE_DATA_DIR": str(data_dir)}
    done = run_cli(
        "neighbors", "They Live", "toy story (1995)", "-k", "3", "--json", "--set", "iterations=5",
        "--cache-dir", str(tmp_path), env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout)
    assert [a["query"] for a in answers] == ["They Live", "toy story (1995)"]
    assert all(len(a["neighbors"]) == 3 for a in answers)
    # the same as the Python API gives for the same training
    table = es.NeighborTable(es.WALS(iterations=5, random_state=0).fit(ml_small).item_embeddings_)
    for answer, title in zip(answers, ["They Live (1988)", "Toy Story (1995)"], strict=True):
        expected = table.neighbors(title, k=3)
        assert [n["title"] for n in answer["neighbors"]] == list(expected["title"])
        assert title not in list(expected["title"])
        np.testing.assert_allclose([n["score"] for n in answer["neighbors"]], expected["score"])
    # an unknown title is one line (the training comes from the cache this time)
    done = run_cli(
        "neighbors", "Zzyzx Qwerty (2099)", "--quiet", "--set", "iterations=5",
        "--cache-dir", str(tmp_path), env=env,
    )  # fmt: skip
    assert_one_line_error(done, "Zzyzx Qwerty (2099)")


def test_sweep_against_svd_has_the_dimension_of_the_runs(tmp_path: Path) -> None:
    """--against-svd fits an SVD of the reference run's dimension, whatever the
    estimator calls it (here scikit-learn's n_components), so the measures
    that need equal dimensions (unitmatch) score it."""
    pytest.importorskip("sklearn")
    done = run_cli(
        "sweep", "-d", TINY, "-e", "sklearn-truncated-svd", "--set", "n_components=4",
        "--param", "n_iter", "--values", "3,5", "--seeds", "2", "--measures", "unitmatch,cka",
        "--against-svd", "--cache-dir", str(tmp_path / "cache"), "--json", "--quiet",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    svd = [r for r in json.loads(done.stdout)["table"] if r["against"] == "svd"]
    assert {r["measure"] for r in svd} == {"unitmatch", "cka"}
    assert all(r["similarity"] is not None and 0 < r["similarity"] <= 1 for r in svd)
