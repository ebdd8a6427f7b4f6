"""The whole reference workflow on synthetic ML-20M-shaped data, cold and warm cache.

The workflow is :func:`embspace.demo.run_demo` with one seed: WALS (k=10,
w0=0.01, 20 iterations) and the neighbors of 3 movies; the sweep of the
unobserved weight over 0, 0.01, 0.1, 0.5, 1, 2 against 0 (the step-2 model is
the sweep's w0=0.01 run, trained once); SVD (k=10) against every sweep run;
tables, CSV, JSON and PNG plots. That is 7 trainings (6 WALS + 1 SVD) and 12
comparisons (6 against w0=0, 6 against SVD) of 4 measures each, plus the
neighbor tables of step 2.

``cold`` starts from an empty cache (everything is trained); ``warm`` runs the
same workflow again on the filled cache (nothing is trained: it measures
loading, comparisons, plots). Each phase runs in a fresh subprocess limited to
``--threads`` threads (default 2), which reports its wall time and its peak
resident memory (``ru_maxrss``) together with the resident memory right after
the ratings were loaded, so the workflow's own footprint is visible.

Data: ``embspace.datasets.synthetic(preset="ml-20m")`` (138,493 users x 26,744
items, 20,000,263 ratings), generated once and stored in a temporary file the
phases read. ``--quick``: the ``ml-latest-small`` shape and 5 iterations.

Results: a table on stdout and ``bench-results/workflow.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "bench-results"


def _rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux: KiB units; macOS: bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _current_rss_mib() -> float:
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def _save_ratings(ratings, path: Path) -> None:
    import numpy as np

    m = ratings.matrix
    items = ratings.item_metadata
    np.savez(
        path,
        indptr=m.indptr,
        indices=m.indices,
        data=m.data,
        shape=np.array(m.shape),
        user_ids=ratings.user_ids,
        item_ids=ratings.item_ids,
        meta_ids=items["movieId"].to_numpy(),
        titles=items["title"].to_numpy(dtype=str),
        genres=items["genres"].to_numpy(dtype=str),
        name=np.array(ratings.name or "synthetic"),
    )


def _load_ratings(path: Path):
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp
    from embspace import Ratings

    with np.load(path) as z:
        matrix = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
        items = pd.DataFrame(
            {"movieId": z["meta_ids"], "title": z["titles"], "genres": z["genres"]}
        )
        return Ratings(
            matrix,
            z["user_ids"],
            z["item_ids"],
            item_metadata=items.set_index("movieId", drop=False),
            name=str(z["name"]),
        )


def _phase(args: argparse.Namespace) -> int:
    """Child process: one run of the workflow; prints one JSON line."""
    from embspace.demo import run_demo

    t = time.perf_counter()
    ratings = _load_ratings(Path(args.data))
    load_s = time.perf_counter() - t
    rss_loaded = _current_rss_mib()
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        result = run_demo(
            ratings,
            out=out,
            seeds=1,
            cache_dir=args.cache,
            progress=False,
            num_threads=args.threads,
            echo=None,
            iterations=args.iterations,
        )
    wall = time.perf_counter() - t
    print(
        json.dumps(
            {
                "wall_s": wall,
                "load_s": load_s,
                "peak_rss_mib": _rss_mib(),
                "rss_after_load_mib": rss_loaded,
                "trained": result.trained,
                "from_cache": result.cached,
                "comparisons": len(result.sweep.results) // len(result.sweep.measures),
                "timings": result.timings,
            }
        )
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="ml-latest-small shape, 5 iterations")
    parser.add_argument("--threads", type=int, default=2, help="threads (default 2)")
    parser.add_argument("--phase", choices=("cold", "warm"), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--iterations", type=int, default=20, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:
        return _phase(args)

    from embspace import datasets

    preset = "ml-latest-small" if args.quick else "ml-20m"
    iterations = 5 if args.quick else 20
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
        env[var] = str(args.threads)
    with tempfile.TemporaryDirectory() as work:
        work_dir = Path(work)
        t = time.perf_counter()
        ratings = datasets.synthetic(preset=preset, seed=0)
        gen_s = time.perf_counter() - t
        data = work_dir / "ratings.npz"
        _save_ratings(ratings, data)
        shape = (ratings.n_users, ratings.n_items, ratings.n_ratings)
        del ratings
        print(
            f"synthetic {preset}: {shape[0]:,} users x {shape[1]:,} items, {shape[2]:,} ratings "
            f"(generated in {gen_s:.1f} s); {args.threads} threads, {iterations} iterations",
            flush=True,
        )
        phases = {}
        for phase in ("cold", "warm"):
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--phase",
                phase,
                "--data",
                str(data),
                "--cache",
                str(work_dir / "cache"),
                "--threads",
                str(args.threads),
                "--iterations",
                str(iterations),
            ]
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                sys.stderr.write(done.stderr)
                return 1
            phases[phase] = json.loads(done.stdout.strip().splitlines()[-1])

    print(
        f"\n{'phase':<6} {'wall s':>8} {'train':>6} {'cached':>6} {'compares':>8} {'peak RSS MiB':>13} {'after load':>11}"
    )
    for phase, r in phases.items():
        print(
            f"{phase:<6} {r['wall_s']:>8.1f} {r['trained']:>6} {r['from_cache']:>6} "
            f"{r['comparisons']:>8} {r['peak_rss_mib']:>13.0f} {r['rss_after_load_mib']:>11.0f}"
        )
    cold = phases["cold"]["timings"]
    print(
        "cold breakdown (s): " + ", ".join(f"{k} {v:.1f}" for k, v in cold.items() if k != "total")
    )
    RESULTS.mkdir(exist_ok=True)
    name = "workflow-quick.json" if args.quick else "workflow.json"
    payload = {
        "benchmark": "workflow",
        "preset": preset,
        "shape": {"n_users": shape[0], "n_items": shape[1], "n_ratings": shape[2]},
        "threads": args.threads,
        "iterations": iterations,
        "generate_s": gen_s,
        "phases": phases,
    }
    (RESULTS / name).write_text(json.dumps(payload, indent=2))
    print(f"wrote {RESULTS / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
