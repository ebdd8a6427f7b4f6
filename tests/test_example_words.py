"""examples/word_embeddings.py: a Word2Vec sweep on gensim's Lee corpus, run
with fast settings; its table has the sweep's statistics and its runs behave."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import embspace as es
import numpy as np
import pandas as pd
import pytest
from embspace.sweeps import TABLE_COLUMNS

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "word_embeddings.py"

pytestmark = pytest.mark.filterwarnings("ignore:with [0-9]+ seeds?:embspace.errors.EmbspaceWarning")


def _example():
    spec = importlib.util.spec_from_file_location("word_embeddings_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_word_embeddings_example_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("gensim")
    args = [
        "--epochs",
        "2",
        "--vector-size",
        "12",
        "--values",
        "2",
        "6",
        "--seeds",
        "3",
        "--out",
        str(tmp_path / "out"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--quiet",
    ]
    sweep = _example().main(args)
    printed = capsys.readouterr().out
    assert "similarity to window=2" in printed and "words whose neighbors moved most" in printed
    table = sweep.table
    assert tuple(table.columns) == TABLE_COLUMNS
    assert sorted(table["value"].unique()) == [2, 6]
    assert set(table["measure"]) == set(sweep.measures)
    assert len(table) == 2 * len(sweep.measures)
    assert sweep.seeds == [0, 1, 2]
    # floors, chance and the test are there; the reference row is its own floor
    assert table["floor"].notna().all() and table["chance"].notna().all()
    ref = table[table["value"] == 2]
    np.testing.assert_allclose(ref["similarity"], ref["floor"])
    assert table.loc[table["value"] == 6, "p_value"].notna().all()
    # the files, and the table written equals Sweep.table
    written = pd.read_csv(tmp_path / "out" / "sweep_window_table.csv")
    np.testing.assert_allclose(written["similarity"], table["similarity"])
    # the HTML report: the corpus described by its sizes, the words in the changes table
    html = (tmp_path / "out" / "sweep_window.html").read_text(encoding="utf-8")
    assert sweep.ratings.fingerprint in html and "n_tokens" in html
    assert str(sweep.changes(6)["key"].iloc[0]) in html
    # a word's count is its occurrences in the corpus, and the report says so
    assert 'data-key="n_ratings" data-type="num" tabindex="0" role="button">occurrences' in html
    assert "occurrences per entity" in html and " ratings · similarity" not in html
    # every run against itself: 1 on the measures that are not neighbor-based
    for value in (2, 6):
        for seed in sweep.seeds:
            run = sweep.embeddings(value, seed)
            scores = es.compare(run, run, ("cca", "cka", "unitmatch")).scores
            for m, s in scores.items():
                assert s == pytest.approx(1.0, abs=1e-4), m
    # a second run reads every training from the cache and gives the same table
    again = _example().main(args)
    assert all(r.cached for r in again.runs)
    pd.testing.assert_frame_equal(again.table, table)
