"""The reference sweep locally and on a Dask LocalCluster: overhead, same table.

The sweep of ``bench_sweep_stats.py`` (WALS k = 10, ``--iterations`` (20) over
the unobserved weight 0, 0.01, 0.1, 0.5, 1, 2 against 0, ``--seeds`` (3):
18 trainings, the default measures and every statistic) on
``embspace.datasets.synthetic(preset=...)`` (default ``ml-20m``: 138,493 users
x 26,744 items, 20,000,263 ratings), each on an empty cache:

- ``local``: ``Sweep.run()`` in this process with ``--threads`` (2) threads;
- ``dask``: ``Sweep.run(executor=client)`` on ``LocalCluster(n_workers=2,
  threads_per_worker=1, processes=True)``, each task with ``--threads /
  workers`` threads (1), so both use the same cores; the cluster's start is
  timed apart (a cluster is started once for many sweeps).

Overhead = dask / local - 1, on the sweep's wall time (``run()`` + ``table``).
The two tables are compared exactly (``assert_frame_equal``, ``check_exact``).
One run of each, in turns on a shared machine: read the overhead with the
noise of that in mind. Results: stdout and ``bench-results/dask.json``.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from _common import add_sweep_arguments, limit_threads, print_table, reference_sweep, write_json

WORKERS = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_sweep_arguments(parser)
    args = parser.parse_args(argv)
    limit_threads(args.threads)

    import warnings

    import embspace as es
    from distributed import Client, LocalCluster
    from pandas.testing import assert_frame_equal

    warnings.simplefilter("ignore", es.errors.EmbspaceWarning)  # "3 seeds cannot reach 0.05"
    t = time.perf_counter()
    ratings = es.datasets.synthetic(preset=args.preset, seed=0)
    data_s = time.perf_counter() - t
    print(f"{ratings!r} generated in {data_s:.1f} s", flush=True)
    per_task = max(1, args.threads // WORKERS)
    with tempfile.TemporaryDirectory() as cache:
        t = time.perf_counter()
        local = reference_sweep(ratings, args, f"{cache}/local", args.threads).run(progress=False)
        local_table = local.table
        local_s = time.perf_counter() - t
        print(f"local: {local_s:.1f} s", flush=True)
        t = time.perf_counter()
        with (
            LocalCluster(
                n_workers=WORKERS,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=40,
            ) as cluster,
            Client(cluster) as client,
        ):
            start_s = time.perf_counter() - t
            t = time.perf_counter()
            swept = reference_sweep(ratings, args, f"{cache}/dask", per_task)
            swept.run(progress=False, executor=client)
            dask_table = swept.table
            dask_s = time.perf_counter() - t
        print(f"dask: {dask_s:.1f} s (+ {start_s:.1f} s cluster start)", flush=True)
    try:
        assert_frame_equal(dask_table, local_table, check_exact=True)
        equal = True
    except AssertionError as exc:
        equal = False
        print(f"tables differ: {exc}")
    overhead = dask_s / local_s - 1
    train_local = sum(r.elapsed for r in local.runs)
    train_dask = sum(r.elapsed for r in swept.runs)
    rows = [
        {
            "run": f"local ({args.threads} threads)",
            "seconds": local_s,
            "training (sum)": train_local,
        },
        {
            "run": f"dask {WORKERS} workers x 1 slot ({per_task} thread/task)",
            "seconds": dask_s,
            "training (sum)": train_dask,
        },
        {"run": "cluster start", "seconds": start_s, "training (sum)": 0.0},
    ]
    print_table(rows, ["run", "seconds", "training (sum)"])
    print(f"overhead {overhead:+.1%} (target < 10%); tables equal: {equal}")
    write_json(
        "dask",
        {
            "preset": args.preset,
            "shape": list(ratings.matrix.shape),
            "n_ratings": ratings.n_ratings,
            "iterations": args.iterations,
            "seeds": args.seeds,
            "threads": args.threads,
            "workers": WORKERS,
            "threads_per_task": per_task,
            "data_s": data_s,
            "local_s": local_s,
            "dask_s": dask_s,
            "cluster_start_s": start_s,
            "training_sum_local_s": train_local,
            "training_sum_dask_s": train_dask,
            "overhead": overhead,
            "tables_equal": equal,
        },
    )
    return 0 if equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
