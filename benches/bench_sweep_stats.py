"""The statistics of the reference sweep against its training time.

The sweep of the reference notebook: WALS (k = 10, 20 iterations) over the
unobserved weight 0, 0.01, 0.1, 0.5, 1, 2 against 0, with 3 seeds (18
trainings), the default measures (neighbors, cca, unitmatch, cka), on
``embspace.datasets.synthetic(preset="ml-20m")`` (138,493 users x 26,744 items,
20,000,263 ratings). Its statistics are everything that is not training: one
k-NN table per run, every pair of runs with distinct seeds compared from the
tables (the floors and the cross pairs), the chance level of each row (5
shuffles, from the tables relabelled), the permutation tests and Holm
(``sweep.table``). Target: the statistics take at most a third of the training.

Phases, in one process limited to ``--threads`` threads (default 2):

- ``cold``: ``Sweep.run()`` on an empty cache; training = the sum of the runs'
  wall times (``RunRecord.elapsed``), statistics = the rest of ``run()`` plus
  ``sweep.table``;
- ``warm``: the same sweep again on the filled cache (nothing trained): its
  whole ``run()`` + ``table`` less the time spent loading runs from the cache is
  the statistics again, without training around it;
- ``changes``: ``sweep.changes(2)``, the per-entity view of one value
  (reported, not part of the target).

The number of k-NN searches is counted (one per run: every comparison reads
the kept tables). ``--preset`` picks another synthetic shape (e.g.
``ml-latest-small`` for a quick check), ``--iterations`` the WALS iterations.
Results: a table on stdout and ``bench-results/sweep_stats.json``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from _common import add_sweep_arguments, limit_threads, print_table, reference_sweep, write_json


def _phase(ratings, args, cache: str) -> dict:
    t0 = time.perf_counter()
    sweep = reference_sweep(ratings, args, cache)
    sweep.run(progress=False)
    run_s = time.perf_counter() - t0
    t = time.perf_counter()
    table = sweep.table
    table_s = time.perf_counter() - t
    runs_s = sum(r.elapsed for r in sweep.runs)
    return {
        "sweep": sweep,
        "table": table,
        "run_s": run_s,
        "runs_s": runs_s,
        "table_s": table_s,
        "statistics_s": run_s - runs_s + table_s,
        "cached": sum(r.cached for r in sweep.runs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_sweep_arguments(parser)
    args = parser.parse_args(argv)
    limit_threads(args.threads)

    import warnings

    import embspace as es
    from embspace import neighbors

    warnings.simplefilter("ignore", es.errors.EmbspaceWarning)  # "3 seeds cannot reach 0.05"
    searches: list[int] = []
    original = neighbors.knn

    def counting_knn(vectors, k, **kwargs):
        searches.append(int(k))
        return original(vectors, k, **kwargs)

    neighbors.knn = counting_knn

    t = time.perf_counter()
    ratings = es.datasets.synthetic(preset=args.preset, seed=0)
    data_s = time.perf_counter() - t
    print(f"{ratings!r} generated in {data_s:.1f} s", flush=True)
    with tempfile.TemporaryDirectory() as cache:
        cold = _phase(ratings, args, cache)
        n_cold = len(searches)
        warm = _phase(ratings, args, cache)
        n_warm = len(searches) - n_cold
        t = time.perf_counter()
        changes = cold["sweep"].changes(2.0)
        changes_s = time.perf_counter() - t
    sweep = cold["sweep"]
    n_pairs = len(sweep._plan.pairs())
    n_chance = sum(p.chance for p in sweep._plan.pairs())
    training = cold["runs_s"]
    rows = [
        {
            "what": f"training ({len(sweep.runs)} runs)",
            "seconds": training,
            "share of training": 1.0,
        },
        {
            "what": "cold sweep (training + statistics)",
            "seconds": training + cold["statistics_s"],
            "share of training": (training + cold["statistics_s"]) / training,
        },
        {
            "what": "statistics, cold sweep",
            "seconds": cold["statistics_s"],
            "share of training": cold["statistics_s"] / training,
        },
        {
            "what": "statistics, warm cache",
            "seconds": warm["statistics_s"],
            "share of training": warm["statistics_s"] / training,
        },
        {
            "what": "  of which table()",
            "seconds": warm["table_s"],
            "share of training": warm["table_s"] / training,
        },
        {
            "what": f"loading {len(sweep.runs)} runs (warm)",
            "seconds": warm["runs_s"],
            "share of training": warm["runs_s"] / training,
        },
        {
            "what": "changes(2) per entity",
            "seconds": changes_s,
            "share of training": changes_s / training,
        },
    ]
    print_table(rows, ["what", "seconds", "share of training"])
    print(
        f"{len(sweep.runs)} runs, {n_pairs - n_chance} comparisons + {n_chance} chance levels "
        f"(x5 shuffles); k-NN searches: {n_cold} cold, {n_warm} warm "
        f"({len(changes)} entities in changes)"
    )
    ok = cold["statistics_s"] <= training / 3
    print(f"target statistics <= training / 3: {'met' if ok else 'NOT met'}")
    cold_s = training + cold["statistics_s"]
    print(
        f"cold sweep {cold_s:.1f} s (target for the ml-20m preset, 3 seeds, 2 threads: <= 90 s); "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    write_json(
        "sweep_stats",
        {
            "preset": args.preset,
            "shape": list(ratings.matrix.shape),
            "n_ratings": ratings.n_ratings,
            "iterations": args.iterations,
            "seeds": args.seeds,
            "threads": args.threads,
            "data_s": data_s,
            "training_s": training,
            "statistics_cold_s": cold["statistics_s"],
            "cold_s": cold_s,
            "load_average_end": os.getloadavg(),
            "statistics_warm_s": warm["statistics_s"],
            "table_s": warm["table_s"],
            "loading_warm_s": warm["runs_s"],
            "changes_s": changes_s,
            "comparisons": n_pairs - n_chance,
            "chance_levels": n_chance,
            "knn_searches_cold": n_cold,
            "knn_searches_warm": n_warm,
            "target_met": ok,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
