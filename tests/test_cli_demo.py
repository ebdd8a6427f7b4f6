"""`python -m embspace demo` as a user runs it, on the real ml-latest-small."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from embspace.cli import main


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "embspace", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def test_demo_on_ml_latest_small(data_dir: Path, tmp_path: Path) -> None:
    """The whole workflow (--quick: one seed, 5 iterations), then again from the cache as JSON."""
    env = {**os.environ, "EMBSPACE_DATA_DIR": str(data_dir)}
    out_dir, cache = tmp_path / "demo-out", tmp_path / "cache"
    result = _run("demo", "--quick", "--out", str(out_dir), "--cache-dir", str(cache), env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # the dataset summary and where it was read from
    assert "ratings ml-latest-small" in out
    assert "users               610" in out
    assert "9,724 rated (of 9,742 in the metadata)" in out
    assert "ratings         100,836" in out
    assert "mean 3.501557" in out
    assert "26,818" in out  # the 4.0 bar of the histogram
    source = next(ln for ln in out.splitlines() if ln.startswith("  source "))
    assert source.startswith(f"  source     {data_dir}") and "EMBSPACE_DATA_DIR" in source
    assert "  filter     none (every user and item with a rating kept)" in out
    # items rated by one same user share a direction: the demo counts them
    parallel = [ln for ln in out.splitlines() if ln.startswith("  parallel ")]
    assert len(parallel) == 2 and all("of 9,724 items" in ln for ln in parallel)
    # --quick stops every run at 5 iterations, before the demo's tol: the summary says so
    assert "runs stopped at their cap of 5 iterations" in out
    # the workflow: neighbors, both tables, the summary, the files
    assert "neighbors of 3 random movies" in out
    assert "similarity to w0=0 (one seed)" in out and "similarity to svd (one seed)" in out
    assert "With one seed there is no noise floor" in out
    assert "closest to SVD" in out.replace("Closest to SVD", "closest to SVD")
    for name in ("sweep_unobserved_weight.png", "sweep_vs_svd.png", "neighbors.csv", "summary.txt"):
        assert (out_dir / name).is_file(), name
    written = json.loads((out_dir / "demo.json").read_text())
    assert written["filter"]["min_user_ratings"] == written["filter"]["min_item_ratings"] == 1
    assert set(written["parallel_vectors"]) == {"wals", "svd"}
    # --json: only JSON on stdout, and every training now comes from the cache
    result = _run(
        "demo", "--quick", "--json", "--out", str(out_dir), "--cache-dir", str(cache), env=env
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["dataset"] == "ml-latest-small"
    assert payload["trainings"] == {"trained": 0, "from_cache": 8}
    assert len(payload["sweep"]["table"]) == 2 * 6 * 4
    assert payload["ratings"]["n_ratings"] == 100_836
    wals = payload["parallel_vectors"]["wals"]
    assert wals["n_entities"] == 9_724 and 0 < wals["n_parallel"] < 9_724
    assert f"{wals['n_parallel']:,} of 9,724 items" in parallel[0]
    assert all(run["converged"] is False for run in payload["sweep"]["runs"])


def test_unknown_dataset_is_one_line_and_non_zero():
    result = _run("demo", "--dataset", "ml-nope", env=dict(os.environ))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("embspace: error: unknown dataset 'ml-nope'")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_download_failure_is_one_line(capsys, monkeypatch):
    monkeypatch.delenv("EMBSPACE_DATA_DIR", raising=False)
    code = main(["demo", "--dataset", "ml-100k"])  # the mirror is unreachable in tests
    assert code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("embspace: error: cannot download")
