"""WALS training speed: embspace (exact Cholesky) against implicit's CPU ALS.

On the synthetic ML-20M preset (138,493 users x 26,744 items, 20,000,263
ratings), 2 threads each (implicit with its BLAS pool at 1 thread, as it
recommends), k = 10, 64, 128: seconds per iteration (median over the
iterations run; the libraries run in turns for ``--rounds`` rounds and each
is reported by its best round, so a drift of the shared machine's speed does
not decide a ratio), peak memory, and the ratios implicit / embspace for
implicit's conjugate-gradient solver (``use_cg=True``, its default, 3 steps)
and its exact solver (``use_cg=False``), and embspace's own conjugate-gradient solver (``solver="cg"``,
3 steps, as implicit's, preconditioned by the part every row shares) beside them, with how far its
loss ends above the exact solver's after the same iterations from the same start (``cg loss
gap``, relative). Each run is a separate process, so
its peak RSS is its own; memory is reported as (peak RSS - RSS before the data
was loaded) / (ratings CSR in both orientations + both factors). The flop
rate uses the issue's count per iteration, nnz k^2 + (users + items) k^3 / 3,
and the count of the arithmetic embspace actually does (2 half-sweeps of
nnz k (k + 1) multiply-adds, i.e. 2 nnz k (k + 1) flops, plus the Cholesky
factorisations), both against numpy's sgemm rate (4096^3, 2 threads)
measured in the same run, in wall seconds and (``% of sgemm (cpu)``) in
CPU seconds of the process, which a shared machine's other load disturbs
less. Then the reference notebook's setting (k = 10,
20 iterations) end to end on ml-latest-small. The losses of the two libraries
differ (implicit fits confidence-weighted preferences), so only speed is
compared.

    python benches/bench_wals.py [--quick] [--rounds N] [--ks 10 64 128]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
THREADS = 2
FULL = {
    "ks": (10, 64, 128),
    "iters": {"embspace": {10: 5, 64: 4, 128: 3}, "cg": 4, "exact": {10: 4, 64: 3, 128: 2}},
}
QUICK = {"ks": (10, 64), "iters": {"embspace": {10: 3, 64: 3}, "cg": 3, "exact": {10: 3, 64: 2}}}


# ---------------------------------------------------------------- worker


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _peak_rss() -> int:
    """This process's high-water RSS (``VmHWM``, in bytes). Not ``ru_maxrss``:
    after fork + exec that keeps the parent's peak (the data generator's)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


def worker(lib: str, data_path: str, k: int, iterations: int) -> dict[str, Any]:
    """One training run in this process; prints a JSON result."""
    if not lib.startswith("embspace"):
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = "1"
    import numpy as np
    import scipy.sparse as sp

    # import the library first, so the baseline holds the code, not the data
    if lib.startswith("embspace"):
        import embspace as es
        import embspace.factorization
    else:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits
    base = _rss()
    # separate .npy files: np.load reads each straight into its array
    # (an .npz goes through a bytes copy, which would inflate the peak)
    parts = {n: np.load(os.path.join(data_path, f"{n}.npy")) for n in ("indptr", "indices", "data")}
    shape = tuple(int(x) for x in np.load(os.path.join(data_path, "shape.npy")))
    matrix = sp.csr_matrix((parts["data"], parts["indices"], parts["indptr"]), shape=shape)
    stamps: list[float] = []
    cpu_stamps: list[float] = []

    def callback(iteration: int, elapsed: float, loss: float) -> None:
        stamps.append(time.perf_counter())
        cpu_stamps.append(time.process_time())

    t0 = time.perf_counter()
    c0 = time.process_time()
    if lib.startswith("embspace"):
        ratings = es.Ratings.from_csr(matrix)
        solver = "cg" if lib == "embspace-cg" else "cholesky"
        model = es.WALS(
            factors=k, iterations=iterations, num_threads=THREADS, random_state=0, solver=solver
        ).fit(ratings, callback=callback, progress=False)
        kernels = es._core.wals_kernels()
        loss = model.loss_
    else:
        with threadpool_limits(limits=1):
            model = AlternatingLeastSquares(
                factors=k,
                regularization=0.07,
                iterations=iterations,
                use_cg=(lib == "cg"),
                num_threads=THREADS,
                random_state=0,
            )
            model.fit(matrix, show_progress=False, callback=callback)
        kernels = "implicit"
        loss = None
    total = time.perf_counter() - t0
    starts = [t0, *stamps[:-1]]
    per_iter = [b - a for a, b in zip(starts, stamps, strict=True)]
    cpu_starts = [c0, *cpu_stamps[:-1]]
    cpu_per_iter = [b - a for a, b in zip(cpu_starts, cpu_stamps, strict=True)]
    # each run is a fresh process, so embspace's first iteration also pays
    # the dataset's setup (the Ratings and its transposed CSR, built once per
    # dataset); the table reports the median over iterations, and
    # bench_setup.py the first iteration of a fit on ratings already in use
    # (a sweep's runs), against the others
    peak = _peak_rss()
    nnz = matrix.nnz
    data_bytes = 2 * (nnz * 8 + (shape[0] + shape[1] + 2) * 8) + (shape[0] + shape[1]) * k * 4
    return {
        "lib": lib,
        "k": k,
        "iterations": iterations,
        "seconds_per_iteration": float(np.median(per_iter)),
        "iteration_seconds": per_iter,
        # CPU seconds of the whole process (both threads): on a shared
        # machine, less disturbed by other processes than the wall time
        "cpu_seconds_per_iteration": float(np.median(cpu_per_iter)),
        "fit_seconds": total,
        "peak_rss": peak,
        "base_rss": base,
        "data_bytes": data_bytes,
        "memory_ratio": (peak - base) / data_bytes,
        "kernels": kernels,
        "loss": loss,
    }


def run_worker(lib: str, data_path: str, k: int, iterations: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", lib, data_path, str(k), str(iterations)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- parent


def sgemm_rate() -> tuple[float, float]:
    """numpy float32 matmul rate on 2 BLAS threads, best of 3: (GFLOP per
    wall second, GFLOP per CPU second of the process)."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    n = 4096
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    best = best_cpu = float("inf")
    with threadpool_limits(limits=THREADS):
        a @ b
        for _ in range(3):
            t = time.perf_counter()
            c = time.process_time()
            a @ b
            best = min(best, time.perf_counter() - t)
            best_cpu = min(best_cpu, time.process_time() - c)
    return 2 * n**3 / best / 1e9, 2 * n**3 / best_cpu / 1e9


def flops(nnz: int, n_rows: int, k: int) -> tuple[float, float]:
    """(the issue's count, embspace's arithmetic) per iteration, in flops."""
    issue = nnz * k**2 + n_rows * k**3 / 3
    mine = 2 * nnz * k * (k + 1) + n_rows * k**3 / 3
    return issue, mine


def notebook_setting() -> dict[str, Any] | None:
    """k = 10 x 20 iterations with the notebook's defaults on ml-latest-small."""
    import embspace as es
    from embspace.errors import EmbspaceError

    os.environ.setdefault("EMBSPACE_DATA_DIR", str(HERE.parent.parent / "shared" / "data"))
    try:
        t0 = time.perf_counter()
        ratings = es.datasets.load("ml-latest-small", progress=False)
    except (EmbspaceError, OSError) as exc:
        print(f"ml-latest-small unavailable ({exc}); skipping the notebook setting")
        return None
    import embspace.factorization

    t1 = time.perf_counter()
    model = es.WALS(random_state=0, num_threads=THREADS).fit(ratings, progress=False)
    t2 = time.perf_counter()
    return {
        "load_seconds": t1 - t0,
        "fit_seconds": t2 - t1,
        "fit_time_": model.fit_time_,
        "n_ratings": ratings.n_ratings,
        "loss_first": model.loss_history_[0],
        "loss_last": model.loss_,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, seconds")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="times each library is run, in turns; the best round is reported (default 2)",
    )
    parser.add_argument(
        "--ks",
        type=int,
        nargs="+",
        help="numbers of factors to run (default: 10 64 128; --quick: 10 64)",
    )
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        lib, path, k, iters = args.worker
        print(json.dumps(worker(lib, path, int(k), int(iters))))
        return 0

    import embspace as es
    import numpy as np

    plan = QUICK if args.quick else FULL
    if args.ks:
        unknown = sorted(set(args.ks) - set(plan["ks"]))
        if unknown:
            parser.error(f"--ks: no iteration counts for k = {unknown}; choose from {plan['ks']}")
        plan = {**plan, "ks": tuple(args.ks)}
    t0 = time.perf_counter()
    if args.quick:
        ratings = es.datasets.synthetic(3_000, 1_500, 150_000, seed=0)
    else:
        ratings = es.datasets.synthetic(preset="ml-20m", seed=0)
    print(f"{ratings} generated in {time.perf_counter() - t0:.1f} s", flush=True)
    gemm, gemm_cpu = sgemm_rate()
    print(
        f"numpy sgemm 4096^3 on {THREADS} threads: {gemm:.0f} GFLOP/s "
        f"({gemm_cpu:.0f} GFLOP per CPU second); load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    m = ratings.matrix
    with tempfile.TemporaryDirectory() as tmp:
        path = tmp
        for name, arr in (("indptr", m.indptr), ("indices", m.indices), ("data", m.data)):
            np.save(os.path.join(tmp, f"{name}.npy"), arr)
        np.save(os.path.join(tmp, "shape.npy"), np.array(m.shape))
        rows = []
        for k in plan["ks"]:
            iters = {
                "embspace": plan["iters"]["embspace"][k],
                "embspace-cg": plan["iters"]["embspace"][k],
                "cg": plan["iters"]["cg"],
                "exact": plan["iters"]["exact"][k],
            }
            # the libraries take turns, round after round, so a change in the
            # machine's speed (shared hosts drift by tens of percent) hits all
            # of them; each is reported by its best round (lowest median)
            rounds: dict[str, list[dict[str, Any]]] = {lib: [] for lib in iters}
            for _ in range(args.rounds):
                for lib, n_iter in iters.items():
                    rounds[lib].append(run_worker(lib, path, k, n_iter))
            runs = {
                lib: {
                    **min(results, key=lambda r: r["seconds_per_iteration"]),
                    "round_seconds_per_iteration": [r["seconds_per_iteration"] for r in results],
                    "memory_ratio": max(r["memory_ratio"] for r in results),
                }
                for lib, results in rounds.items()
            }
            ours = runs["embspace"]["seconds_per_iteration"]
            issue, mine = flops(ratings.n_ratings, ratings.n_users + ratings.n_items, k)
            row = {
                "k": k,
                "embspace s/it": ours,
                "implicit cg s/it": runs["cg"]["seconds_per_iteration"],
                "implicit exact s/it": runs["exact"]["seconds_per_iteration"],
                "cg/embspace": runs["cg"]["seconds_per_iteration"] / ours,
                "exact/embspace": runs["exact"]["seconds_per_iteration"] / ours,
                "GFLOP/s (issue count)": issue / ours / 1e9,
                "GFLOP/s (done)": mine / ours / 1e9,
                "% of sgemm": 100 * mine / ours / 1e9 / gemm,
                # the same ratio in CPU seconds (embspace's and sgemm's)
                "% of sgemm (cpu)": 100
                * mine
                / runs["embspace"]["cpu_seconds_per_iteration"]
                / 1e9
                / gemm_cpu,
                # cold: the dataset's setup included (see the worker)
                "first it / median": runs["embspace"]["iteration_seconds"][0] / ours,
                "embspace cg s/it": runs["embspace-cg"]["seconds_per_iteration"],
                "cg/embspace cg": runs["cg"]["seconds_per_iteration"]
                / runs["embspace-cg"]["seconds_per_iteration"],
                # same start, same iterations: what the approximate steps leave
                "cg loss gap": runs["embspace-cg"]["loss"] / runs["embspace"]["loss"] - 1,
                "mem embspace": runs["embspace"]["memory_ratio"],
                "mem cg": runs["cg"]["memory_ratio"],
                "mem exact": runs["exact"]["memory_ratio"],
                "runs": runs,
            }
            rows.append(row)
            per_round = "; ".join(
                f"{lib} " + ", ".join(f"{t:.3f}" for t in r["round_seconds_per_iteration"])
                for lib, r in runs.items()
            )
            print(
                f"k={k}: embspace {ours:.3f} s/it, implicit cg "
                f"{row['implicit cg s/it']:.3f}, exact {row['implicit exact s/it']:.3f} "
                f"(rounds: {per_round})",
                flush=True,
            )
    notebook = notebook_setting()
    print()
    from _common import print_table, write_json

    columns = [
        "k",
        "embspace s/it",
        "implicit cg s/it",
        "implicit exact s/it",
        "cg/embspace",
        "exact/embspace",
        "GFLOP/s (issue count)",
        "GFLOP/s (done)",
        "% of sgemm",
        "% of sgemm (cpu)",
        "first it / median",
        "embspace cg s/it",
        "cg/embspace cg",
        "cg loss gap",
        "mem embspace",
        "mem cg",
        "mem exact",
    ]
    print_table(rows, columns)
    print(
        f"\ns/it: median over a run's iterations, best of {args.rounds} round(s) taken in turns; "
        "mem = (peak RSS - RSS before loading) / (CSR both orientations + factors), worst round; "
        "first it / median: embspace's first iteration with the dataset's setup (cold); "
        "cg loss gap: embspace cg's final loss / the exact solve's - 1 (same start and iterations); "
        f"kernels: {rows[0]['runs']['embspace']['kernels']}; sgemm {gemm:.0f} GFLOP/s "
        f"({gemm_cpu:.0f} per CPU second); % of sgemm (cpu): the same ratio in CPU seconds "
        f"(both threads), less disturbed by a loaded machine; load average at the end "
        f"{os.getloadavg()[0]:.2f}"
    )
    if notebook:
        print(
            f"ml-latest-small, k=10 x 20 iterations (notebook defaults): load "
            f"{notebook['load_seconds']:.2f} s, fit {notebook['fit_seconds']:.2f} s, "
            f"loss {notebook['loss_first']:.4g} -> {notebook['loss_last']:.4g}"
        )
    name = "wals_quick" if args.quick else "wals"
    if args.ks:
        name += "_k" + "_".join(str(k) for k in plan["ks"])
    path = write_json(
        name,
        {
            "data": str(ratings),
            "threads": THREADS,
            "rounds": args.rounds,
            "sgemm_gflops": gemm,
            "sgemm_gflops_per_cpu_second": gemm_cpu,
            "load_average_end": os.getloadavg(),
            "rows": rows,
            "notebook": notebook,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
