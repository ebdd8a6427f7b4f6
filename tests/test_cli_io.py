"""The command line with any embeddings file, any ratings table, and queries it
forgives: subprocesses (and main() in this process for the cheap checks)."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import embspace as es
import numpy as np
import pandas as pd
import pytest
from embspace import Embeddings
from embspace.cli import build_parser
from embspace.errors import EmbspaceWarning
from test_cli import TINY, assert_one_line_error, run_cli, run_main

RNG = np.random.default_rng(11)
TRAIN = ["--set", "factors=4", "--set", "iterations=2"]


# ---------------------------------------------------------------------- embeddings files
def test_compare_two_npy_files(tmp_path: Path) -> None:
    a = RNG.standard_normal((40, 5)).astype(np.float32)
    b = a + 0.3 * RNG.standard_normal((40, 5)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    done = run_cli(
        "compare", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "-m", "cka,neighbors", "--json"
    )
    assert done.returncode == 0, done.stderr
    scores = json.loads(done.stdout)["scores"]
    want = es.compare(
        Embeddings.from_array(a), Embeddings.from_array(b), measures=["cka", "neighbors"]
    )
    for m in ("cka", "neighbors"):
        assert scores[m] == pytest.approx(want.scores[m], abs=1e-12)
    assert 0 < scores["cka"] < 1


def test_compare_plain_npz_csv_and_word2vec(tmp_path: Path, capsys) -> None:
    words = [f"w{i}" for i in range(30)]
    a = Embeddings(words, RNG.standard_normal((30, 4)))
    b = Embeddings(words[::-1], RNG.standard_normal((30, 3)))  # other order, other d
    np.savez(tmp_path / "a.npz", emb=a.vectors, keys=np.array(words))  # a plain .npz
    b.save(tmp_path / "b.vec")
    want = es.compare(a, b, measures=["cka"]).scores["cka"]
    done = run_main(
        capsys, "compare", str(tmp_path / "a.npz"), str(tmp_path / "b.vec"), "-m", "cka", "--json"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["scores"]["cka"] == pytest.approx(want, abs=1e-12)
    # a name that says nothing: the first bytes tell word2vec; CSV needs --format
    (tmp_path / "b.vec").rename(tmp_path / "b.emb")
    a.save(tmp_path / "a.data", format="csv")
    done = run_main(
        capsys, "compare", str(tmp_path / "a.data"), str(tmp_path / "b.emb"), "-m", "cka"
    )
    assert_one_line_error(done, "a.data", "cannot tell the format", "--format")
    a.save(tmp_path / "b.data", format="csv")
    done = run_main(
        capsys, "compare", str(tmp_path / "a.data"), str(tmp_path / "b.data"), "--format", "csv",
        "-m", "cka", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["scores"]["cka"] == pytest.approx(1.0, abs=1e-6)


BROKEN = {
    "v.npy": b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (9, 9), }",
    "c.csv": b"key,v0,v1\na,1,2\nb,1,2,3\n",
    "w.txt": b"3 2\na 1 2\n",
    "w.bin": b"2 4\nword \x00\x00\x80?",
    "p.parquet": b"PAR1 garbage",
    "p.npz": b"PK\x03\x04 cut",
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_an_unreadable_embeddings_file_is_one_line_and_exit_2(tmp_path: Path, capsys, name) -> None:
    good = Embeddings(["a", "b", "c"], np.eye(3)).save(tmp_path / "good.npz")
    bad = tmp_path / name
    bad.write_bytes(BROKEN[name])
    done = run_main(capsys, "compare", str(good), str(bad), "-q")
    assert_one_line_error(done, str(bad), "cannot read")
    done = run_main(capsys, "neighbors", "--embeddings", str(bad), "a", "-q")
    assert_one_line_error(done, str(bad))


def test_unreadable_files_through_a_subprocess(tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(BROKEN["w.bin"])
    assert_one_line_error(
        run_cli("compare", str(tmp_path / "w.bin"), str(tmp_path / "w.bin")), "w.bin", "truncated"
    )
    assert_one_line_error(
        run_cli("compare", str(tmp_path / "none.npy"), str(tmp_path / "none.npy")), "does not exist"
    )
    (tmp_path / "x.txt").write_text("1 1\na 1\n")
    assert_one_line_error(
        run_cli("compare", str(tmp_path / "x.txt"), str(tmp_path / "x.txt"), "--format", "csv"),
        "x.txt",
    )


def test_train_out_writes_the_format_of_the_name(tmp_path: Path) -> None:
    cache = ["--cache-dir", str(tmp_path / "cache")]
    done = run_cli(
        "train", "-d", TINY, *TRAIN, *cache, "--out", str(tmp_path / "items.npz"),
        "--users-out", str(tmp_path / "users.npz"), "-q",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    items, users = Embeddings.load(tmp_path / "items.npz"), Embeddings.load(tmp_path / "users.npz")
    done = run_cli(
        "train", "-d", TINY, *TRAIN, *cache, "--out", str(tmp_path / "items.parquet"),
        "--users-out", str(tmp_path / "users.vec"), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["items"]["path"] == str(tmp_path / "items.parquet")
    assert "int keys are written as text" in done.stderr  # user ids as words: a warning
    back = Embeddings.load(tmp_path / "items.parquet")
    assert back.keys == items.keys and back.metadata == items.metadata
    np.testing.assert_array_equal(back.vectors, items.vectors)
    words = Embeddings.load(tmp_path / "users.vec")
    assert words.keys == [str(k) for k in users.keys]
    np.testing.assert_array_equal(words.vectors, users.vectors)
    # --format over the name; keys a format cannot hold are one line, and no file
    done = run_cli(
        "train", "-d", TINY, *TRAIN, *cache, "--out", str(tmp_path / "items.out"), "-f", "csv", "-q"
    )
    assert done.returncode == 0, done.stderr
    assert Embeddings.load(tmp_path / "items.out", format="csv").keys == items.keys
    done = run_cli("train", "-d", TINY, *TRAIN, *cache, "--out", str(tmp_path / "items.bin"), "-q")
    assert_one_line_error(done, "word2vec-binary format stores words", "tuple")
    assert not (tmp_path / "items.bin").exists()
    # and neighbors reads what train wrote
    title = items.keys[3][0]
    done = run_cli(
        "neighbors", "--embeddings", str(tmp_path / "items.parquet"), title, "-k", "2", "--json"
    )
    assert done.returncode == 0, done.stderr
    want = es.NeighborTable(items).neighbors(items.keys[3], k=2)
    assert [n["title"] for n in json.loads(done.stdout)[0]["neighbors"]] == list(want["title"])


# ---------------------------------------------------------------------- any ratings table
def _orders(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    """The tiny synthetic ratings as a shop would export them: other names, ';'."""
    tiny = es.datasets.synthetic(preset="tiny")
    coo = tiny.matrix.tocoo()
    frame = pd.DataFrame(
        {
            "customer_ref": [f"c{tiny.user_ids[u]}" for u in coo.row],
            "sku": [f"sku-{tiny.item_ids[i]}" for i in coo.col],
            "stars": coo.data,
            "when": np.arange(coo.nnz),
        }
    )
    path = tmp_path / "orders.csv"
    frame.to_csv(path, sep=";", index=False)
    return path, frame


def test_ratings_table_flags(tmp_path: Path) -> None:
    path, frame = _orders(tmp_path)
    cols = ["--user-col", "customer_ref", "--item-col", "sku"]
    out = tmp_path / "items.npz"
    done = run_cli(
        "train", "-d", str(path), *cols, "--rating-col", "stars", "--sep", ";", *TRAIN,
        "--no-cache", "--out", str(out), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    ratings = es.datasets.load(path, user="customer_ref", item="sku", rating="stars")
    want = es.WALS(factors=4, iterations=2, random_state=0).fit(ratings, progress=False)
    got = Embeddings.load(out)
    assert got.keys == want.item_embeddings_.keys and got.keys[0].startswith("sku-")
    np.testing.assert_array_equal(got.vectors, want.item_embeddings_.vectors)
    # implicit feedback: no rating column, every pair rates 1
    done = run_cli(
        "train", "-d", str(path), *cols, "--implicit", *TRAIN, "--no-cache",
        "--out", str(out), "--users-out", str(tmp_path / "u.npz"), "-q",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    ones = es.datasets.load(
        frame.assign(stars=1.0), user="customer_ref", item="sku", rating="stars"
    )
    want = es.WALS(factors=4, iterations=2, random_state=0).fit(ones, progress=False)
    np.testing.assert_array_equal(Embeddings.load(out).vectors, want.item_embeddings_.vectors)
    # a tab typed as \t, and positions of a file without header
    plain = tmp_path / "plain.txt"
    frame[["sku", "customer_ref", "stars"]].to_csv(plain, sep="\t", index=False, header=False)
    done = run_cli(
        "train", "-d", str(plain), "--user-col", "1", "--item-col", "0", "--rating-col", "2",
        "--sep", "\\t", *TRAIN, "--no-cache", "--out", str(out), "-q",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert Embeddings.load(out).keys == want.item_embeddings_.keys


def test_ratings_table_errors_are_one_line(tmp_path: Path, capsys) -> None:
    path, _ = _orders(tmp_path)
    out = str(tmp_path / "x.npz")
    done = run_main(capsys, "train", "-d", str(path), *TRAIN, "--no-cache", "--out", out)
    assert_one_line_error(done, "pass user=")
    done = run_main(
        capsys, "train", "-d", str(path), "--user-col", "nobody", "--item-col", "sku",
        *TRAIN, "--no-cache", "--out", out,
    )  # fmt: skip
    assert_one_line_error(done, "user column 'nobody' not found")
    done = run_main(capsys, "train", "-d", TINY, "--user-col", "u", "--out", out)
    assert_one_line_error(done, "user=", "apply to tables")
    done = run_main(capsys, "train", "-d", TINY, "--implicit", "--rating-col", "r", "--out", out)
    assert_one_line_error(done, "not allowed with argument")
    assert not Path(out).exists()


def test_a_missing_titles_file_is_a_warning_line(tmp_path: Path) -> None:
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    tiny = es.datasets.synthetic(preset="tiny")
    coo = tiny.matrix.tocoo()
    rows = zip(tiny.user_ids[coo.row], tiny.item_ids[coo.col], coo.data, strict=True)
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t{r:g}\t0\n" for u, i, r in rows))
    done = run_cli(
        "train", "-d", str(folder), *TRAIN, "--no-cache", "--out", str(tmp_path / "x.npz")
    )
    assert done.returncode == 0, done.stderr
    warned = [ln for ln in done.stderr.splitlines() if ln.startswith("embspace: warning:")]
    assert len(warned) == 1 and str(folder / "u.item") in warned[0]
    assert Embeddings.load(tmp_path / "x.npz").keys == tiny.item_ids.tolist()


# ---------------------------------------------------------------------- neighbors forgives
def _films(tmp_path: Path) -> tuple[Path, Embeddings]:
    titles = ["They Live (1988)", "Toy Story (1995)", "Toy Story 2 (1999)", "Heat (1995)"]
    titles += ["Toy Story 3 (2010)"] + [f"Film {i} (2000)" for i in range(15)]
    ids = [5, 1, 3114, 6, 78499, *range(200, 215)]
    keys = [(t, "Comedy") for t in titles]
    emb = Embeddings(keys, RNG.standard_normal((20, 4)), ids=np.array(ids))
    return emb.save(tmp_path / "films.npz"), emb


def test_neighbors_answers_what_it_can_and_lists_choices(tmp_path: Path) -> None:
    path, emb = _films(tmp_path)
    table = es.NeighborTable(emb)
    done = run_cli(
        "neighbors", "--embeddings", str(path), "They Live (1988)", "Toy Story", "-k", "3"
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stdout.startswith("neighbors of 'They Live (1988)' (cosine, k=3):\n")
    for title in table.neighbors("They Live (1988)", k=3)["title"]:
        assert title in done.stdout
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("embspace: error: 'Toy Story' matches 3 entities; choose one: ")
    choices = re.findall(r"(id:\d+) \"([^\"]+)\"", line)
    assert choices == [
        ("id:1", "Toy Story (1995)"),
        ("id:3114", "Toy Story 2 (1999)"),
        ("id:78499", "Toy Story 3 (2010)"),
    ]
    # every choice pastes back, as do rows; all resolve, so the status is 0
    done = run_cli(
        "neighbors",
        "--embeddings",
        str(path),
        *[c for c, _ in choices],
        "row:3",
        "-k",
        "2",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout)
    for answer, row in zip(answers, [1, 2, 4, 3], strict=True):
        want = table.neighbors(row=row, k=2)
        assert [n["index"] for n in answer["neighbors"]] == list(want["index"])


def test_neighbors_unresolved_queries_one_line_each(tmp_path: Path, capsys) -> None:
    path, _emb = _films(tmp_path)
    done = run_main(
        capsys, "neighbors", "--embeddings", str(path), "Zzyzx Qwerty", "Heat", "row:99", "id:7",
        "1995", "-k", "2", "--json",
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 4 and all(ln.startswith("embspace: error: ") for ln in lines)
    assert "'Zzyzx Qwerty'" in lines[0] and "matches" in lines[0]
    assert "'row:99'" in lines[1] and "outside" in lines[1]
    assert "'id:7'" in lines[2] and "no entity has the id" in lines[2]
    # a bare number is a title search: two titles hold 1995
    assert lines[3].startswith("embspace: error: '1995' matches 2 entities")
    answers = json.loads(done.stdout)
    assert [a["query"] for a in answers] == ["Zzyzx Qwerty", "Heat", "row:99", "id:7", "1995"]
    assert answers[1]["neighbors"] is not None and answers[1]["neighbors"][0]["rank"] == 1
    assert answers[0]["neighbors"] is None and answers[0]["error"] in lines[0]
    assert sorted(answers[4]["choices"]) == ["id:1", "id:6"]
    # one unknown query alone: one line, nothing on stdout
    done = run_main(capsys, "neighbors", "--embeddings", str(path), "Zzyzx", "-q")
    assert_one_line_error(done, "Zzyzx")


def test_the_readme_example_on_ml_latest_small(data_dir: Path, ml_small, tmp_path: Path) -> None:
    env = {"EMBSPACE_DATA_DIR": str(data_dir)}
    done = run_cli(
        "neighbors", "They Live (1988)", "Toy Story", "-k", "5", "--set", "iterations=5",
        "--cache-dir", str(tmp_path), env=env,
    )  # fmt: skip
    assert done.returncode == 2
    table = es.NeighborTable(es.WALS(iterations=5, random_state=0).fit(ml_small).item_embeddings_)
    they_live = table.neighbors("They Live (1988)", k=5)
    shown = done.stdout.splitlines()
    assert shown[0] == "neighbors of 'They Live (1988)' (cosine, k=5):"
    assert [ln.split(maxsplit=1)[1].rsplit(maxsplit=1)[0] for ln in shown[2:]] == list(
        they_live["title"]
    )
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("embspace: error:")]
    assert len(errors) == 1
    assert re.findall(r"id:\d+", errors[0]) == ["id:1", "id:3114", "id:78499"]
    done = run_cli(
        "neighbors", "id:3114", "-k", "5", "--set", "iterations=5", "--cache-dir", str(tmp_path),
        "--json", "-q", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (answer,) = json.loads(done.stdout)
    want = table.neighbors("Toy Story 2 (1999)", k=5)
    assert [n["title"] for n in answer["neighbors"]] == list(want["title"])


# ---------------------------------------------------------------------- seeds and progress
def test_sweep_defaults_to_three_seeds(tmp_path: Path) -> None:
    args = build_parser().parse_args(["sweep", "--param", "unobserved_weight", "--values", "0,1"])
    assert args.seeds == 3
    done = run_cli(
        "sweep", "-d", TINY, *TRAIN, "--param", "unobserved_weight", "--values", "0,1",
        "--no-cache", "--json", "-m", "cka",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["seeds"] == [0, 1, 2] and len(payload["runs"]) == 6
    assert all(r["noise_floor"] is not None for r in payload["table"])


def test_progress_bars_only_on_a_terminal_or_when_asked(tmp_path: Path, capsys) -> None:
    args = ["train", "-d", TINY, *TRAIN, "--no-cache", "--out", str(tmp_path / "x.npz")]
    quiet_by_default = run_cli(*args)  # stderr is a pipe here, not a terminal
    assert quiet_by_default.returncode == 0, quiet_by_default.stderr
    assert "it/s" not in quiet_by_default.stderr
    assert quiet_by_default.stderr.count("\n") == 1  # the one status line
    shown = run_cli(*args, "--progress")
    assert shown.returncode == 0, shown.stderr
    assert "WALS:" in shown.stderr and "it/s" in shown.stderr  # a tqdm bar, asked for
    silent = run_cli(*args, "--quiet")
    assert silent.returncode == 0 and silent.stderr == ""
    assert_one_line_error(run_main(capsys, *args, "--quiet", "--progress"), "not allowed with")


def test_str_keys_are_saved_without_a_warning_in_every_keyed_format(tmp_path: Path) -> None:
    # the formats warn only where keys change (int keys as words, keys lost in a .npy)
    emb = Embeddings(["a", "b"], np.eye(2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", EmbspaceWarning)
        for name in ("a.npz", "a.csv", "a.parquet", "a.txt", "a.bin"):
            Embeddings.load(emb.save(tmp_path / name))


def test_timestamp_and_duplicates_flags(tmp_path: Path, capsys) -> None:
    """--timestamp-col with --duplicates last trains on each pair's latest
    rating, as datasets.load(timestamp=, duplicates=) does."""
    path, frame = _orders(tmp_path)
    repeated = pd.concat([frame, frame.assign(stars=1.0, when=-frame["when"] - 1)])
    repeated.to_csv(path, sep=";", index=False)
    cols = ["--user-col", "customer_ref", "--item-col", "sku", "--rating-col", "stars"]
    out = tmp_path / "items.npz"
    done = run_cli(
        "train", "-d", str(path), *cols, "--timestamp-col", "when", "--duplicates", "last",
        *TRAIN, "--no-cache", "--out", str(out), "-q",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # the repeats are earlier (negative times): the latest ratings are the original ones
    want = es.WALS(factors=4, iterations=2, random_state=0).fit(
        es.datasets.load(frame, user="customer_ref", item="sku", rating="stars"), progress=False
    )
    np.testing.assert_array_equal(Embeddings.load(out).vectors, want.item_embeddings_.vectors)
    done = run_main(
        capsys, "train", "-d", str(path), *cols, "--duplicates", "newest", *TRAIN,
        "--no-cache", "--out", str(out),
    )  # fmt: skip
    assert_one_line_error(done, "duplicates must be one of")
