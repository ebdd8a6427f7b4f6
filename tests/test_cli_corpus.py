"""Sweeping a text trainer from the command line: ``embspace sweep --corpus FILE``
with gensim's Word2Vec, and :meth:`TokenCorpus.from_file`, which reads the file."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from embspace.errors import DatasetFormatError, InvalidParameterError, MissingFileError
from embspace.sweeps import Sweep
from embspace.trainers import GensimWord2Vec, TokenCorpus
from test_cli import assert_one_line_error, run_main

# ------------------------------------------------------------------ reading the file


def test_from_file_reads_one_sentence_a_line(tmp_path: Path) -> None:
    text = "\ufeffThe cat  sat\ton the mat\n\nA dog\u00a0barked \u00e9t\u00e9\n  \nlast line"
    path = tmp_path / "c.txt"
    path.write_bytes(text.encode("utf-8"))
    corpus = TokenCorpus.from_file(path)
    # the byte-order mark goes, blank lines stay as empty sentences, every
    # white space (tab, no-break space) separates tokens, no newline is kept
    assert corpus.sentences == [
        ["The", "cat", "sat", "on", "the", "mat"],
        [],
        ["A", "dog", "barked", "\u00e9t\u00e9"],
        [],
        ["last", "line"],
    ]
    assert TokenCorpus.from_file(path, lowercase=True).sentences[0][0] == "the"
    # gzip by its name: the same corpus, the same fingerprint
    packed = tmp_path / "c.txt.gz"
    packed.write_bytes(gzip.compress(text.encode("utf-8")))
    assert TokenCorpus.from_file(packed).fingerprint == corpus.fingerprint
    assert TokenCorpus.from_file(str(packed)).sentences == corpus.sentences


def test_from_file_errors_are_typed(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="no corpus file"):
        TokenCorpus.from_file(tmp_path / "absent.txt")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("fine line\ncaf\u00e9 au lait\n".encode("latin-1"))
    with pytest.raises(DatasetFormatError, match="line 2 is not UTF-8"):
        TokenCorpus.from_file(latin)
    fake = tmp_path / "fake.gz"
    fake.write_bytes(b"plain text, not gzip\n")
    with pytest.raises(DatasetFormatError, match="gzip"):
        TokenCorpus.from_file(fake)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(b"a b c\n" * 1000)[:40])
    with pytest.raises(DatasetFormatError, match="gzip"):
        TokenCorpus.from_file(cut)
    blank = tmp_path / "blank.txt"
    blank.write_text(" \n\n\t\n", encoding="utf-8")
    with pytest.raises(InvalidParameterError, match="no tokens"):
        TokenCorpus.from_file(blank)


# ------------------------------------------------------------------ the command line


@pytest.fixture(scope="module")
def lee_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """gensim's Lee background corpus (300 news stories), one story a line."""
    pytest.importorskip("gensim")
    from gensim.test.utils import datapath

    path = tmp_path_factory.mktemp("corpus") / "lee.txt"
    path.write_bytes(Path(datapath("lee_background.cor")).read_bytes())
    return path


SWEEP = [
    "sweep", "--corpus", "", "-e", "gensim-word2vec", "--param", "window",
    "--values", "2,6", "--seeds", "2", "--set", "vector_size=12", "--set", "epochs=2",
    "--set", "min_count=10", "--measures", "neighbors,cka",
]  # fmt: skip


def _args(lee: Path, *more: str) -> list[str]:
    args = list(SWEEP)
    args[2] = str(lee)
    return [*args, *more]


def test_the_command_line_sweeps_word2vec_on_a_corpus_file(
    lee_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    report = tmp_path / "words.html"
    done = run_main(
        capsys,
        *_args(lee_file, "--json", "--cache-dir", str(cache), "--report", str(report)),
    )
    assert done.returncode == 0, done.stderr
    assert "corpus: 300 sentences" in done.stderr
    payload = json.loads(done.stdout)
    assert payload["estimator"] == "GensimWord2Vec"
    assert payload["estimator_params"]["vector_size"] == 12
    cli_table = pd.DataFrame(payload["table"])

    # the same sweep in Python, on the corpus read independently here (str.split
    # per line), reads every run from the cache the command line filled
    with open(lee_file, encoding="utf-8") as f:
        corpus = TokenCorpus(line.split() for line in f)
    sweep = Sweep(
        corpus,
        GensimWord2Vec(vector_size=12, epochs=2, min_count=10, random_state=0),
        "window",
        [2, 6],
        seeds=2,
        measures=("neighbors", "cka"),
        cache_dir=cache,
    )
    trained: list[object] = []
    sweep.run(
        progress=False,
        callback=lambda e: trained.append(e) if e.kind == "run_done" and not e.cached else None,
    )
    assert trained == []
    want = sweep.table
    assert len(cli_table) == len(want)
    np.testing.assert_allclose(cli_table["similarity"], want["similarity"], rtol=0, atol=0)
    np.testing.assert_allclose(
        cli_table["floor"].astype(float), want["floor"].astype(float), rtol=0, atol=0
    )
    # the words were embedded: self-similarity of the reference is its floor, < 1
    assert ((want["value"] == 2) & (want["similarity"] < 1.0)).any()
    html = report.read_text(encoding="utf-8")
    assert corpus.fingerprint in html and "occurrences per entity" in html


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--against-svd"], ("--against-svd needs ratings",)),
        (["--entities", "users"], ("words only", "--entities items")),
        (["--min-item-ratings", "3"], ("min_count",)),
    ],
)
def test_corpus_options_that_cannot_apply_are_one_line_errors(
    lee_file: Path, capsys: pytest.CaptureFixture[str], extra: list[str], fragments: tuple[str, ...]
) -> None:
    assert_one_line_error(run_main(capsys, *_args(lee_file, "--no-cache", *extra)), *fragments)


def test_a_corpus_needs_a_text_trainer_and_a_text_trainer_a_corpus(
    lee_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _args(lee_file, "--no-cache")
    no_corpus = args[:1] + args[3:]
    assert_one_line_error(run_main(capsys, *no_corpus), "trains on a token corpus", "--corpus")
    wals = [
        "sweep", "--corpus", str(lee_file), "-d", "synthetic:tiny", "--param",
        "unobserved_weight", "--values", "0,1", "--no-cache",
    ]  # fmt: skip
    assert_one_line_error(run_main(capsys, *wals), "--corpus is for", "gensim-word2vec")
    absent = _args(tmp_path / "absent.txt", "--no-cache")
    assert_one_line_error(run_main(capsys, *absent), "no corpus file")
