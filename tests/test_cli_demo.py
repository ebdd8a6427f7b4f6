"""`python -m embspace demo` as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys

from embspace.cli import main


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "embspace", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_demo_prints_the_ml_latest_small_summary(data_dir):
    env = {**os.environ, "EMBSPACE_DATA_DIR": str(data_dir)}
    result = _run("demo", env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "ratings ml-latest-small" in out
    assert "users               610" in out
    assert "9,724 rated (of 9,742 in the metadata)" in out
    assert "ratings         100,836" in out
    assert "mean 3.501557" in out
    assert "26,818" in out  # the 4.0 bar of the histogram
    source = out.strip().splitlines()[-1]
    assert source.startswith(f"  source     {data_dir}") and "EMBSPACE_DATA_DIR" in source


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
