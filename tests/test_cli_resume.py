"""A sweep killed after its first finished run resumes from the cache, without retraining."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

# enough runs that the kill lands long before the last one finishes
SWEEP = [
    "sweep",
    "-d",
    "synthetic:n_users=600,n_items=400,n_ratings=30000,seed=3",
    "--set",
    "factors=8",
    "--set",
    "iterations=10",
    "--param",
    "unobserved_weight",
    "--values",
    "0,0.05,0.2,0.5,1,2",
    "--seeds",
    "2",
    "--measures",
    "neighbors,cka",
]


def _entries(folder: Path) -> dict[str, int]:
    """Finished cache entries (not temporary files) and their modification times."""
    if not folder.is_dir():
        return {}
    return {
        p.name: p.stat().st_mtime_ns for p in folder.glob("*.npz") if not p.name.startswith(".")
    }


def _run_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("run ")]


def test_killed_sweep_resumes_without_retraining(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "embspace", *SWEEP, "--cache-dir", str(cache)]

    # 1. start the sweep and kill it (SIGKILL: no cleanup) right after its first finished run
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    first = None
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("run "):
            first = line
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=600)
    proc.stderr.close()
    assert first is not None and first.startswith("run 1/12 ") and "trained in" in first
    assert proc.returncode == -signal.SIGKILL
    finished = _entries(cache)
    assert 1 <= len(finished) < 12, f"{len(finished)} runs had finished when the sweep was killed"

    # 2. run it again: the finished runs are loaded, the others trained
    done = subprocess.run(
        [*cmd, "--json"], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr
    assert "deleted" not in done.stderr  # no bad entry was found
    lines = _run_lines(done.stderr)
    assert len(lines) == 12
    loaded = [ln for ln in lines if "loaded from the cache" in ln]
    assert len(loaded) == len(finished)
    assert lines[: len(finished)] == loaded  # the first runs, in plan order
    assert all("trained in" in ln for ln in lines[len(finished) :])
    # the cached entries were read, not rewritten
    after = _entries(cache)
    assert len(after) == 12
    assert {name: after[name] for name in finished} == finished
    resumed = json.loads(done.stdout)
    assert [r["cached"] for r in resumed["runs"]] == [True] * len(finished) + [False] * (
        12 - len(finished)
    )

    # 3. the results equal those of an uninterrupted sweep in a fresh cache
    clean = subprocess.run(
        [
            sys.executable,
            "-m",
            "embspace",
            *SWEEP,
            "--cache-dir",
            str(tmp_path / "fresh"),
            "--json",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert clean.returncode == 0, clean.stderr
    uninterrupted = json.loads(clean.stdout)
    assert resumed["table"] == uninterrupted["table"]
    assert resumed["results"] == uninterrupted["results"]
    assert resumed["noise"] == uninterrupted["noise"]
