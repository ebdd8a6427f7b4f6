"""Peak memory of the reference sweep on a MovieLens-shaped synthetic dataset.

The sweep of ``bench_sweep_stats.py`` (WALS k = 10 over the unobserved weight
0, 0.01, 0.1, 0.5, 1, 2 against 0, 3 seeds: 18 trainings, the default measures,
every statistic of ``sweep.table``) on ``embspace.datasets.synthetic(preset=...)``,
default ``ml-25m`` (162,541 users x 59,047 items, 25,000,095 ratings: the shape
of MovieLens 25M, not its data, which this machine cannot download). The peak
resident memory of the process (``resource.getrusage(RUSAGE_SELF).ru_maxrss``)
is reported after generating the data and after the sweep. The memory of a
WALS run does not depend on its number of iterations (the same arrays every
iteration), so ``--iterations`` may be lowered to keep the run short on a
shared machine; say so when quoting the number.

Results: lines on stdout and ``bench-results/sweep_memory_<preset>.json``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time

from _common import add_sweep_arguments, limit_threads, reference_sweep, write_json


def _peak_gib() -> float:
    """Peak resident memory of this process so far, GiB (Linux reports KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib * (1 if sys.platform.startswith("linux") else 1 / 1024) / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_sweep_arguments(parser, preset="ml-25m")
    args = parser.parse_args(argv)
    limit_threads(args.threads)

    import warnings

    import embspace as es

    warnings.simplefilter("ignore", es.errors.EmbspaceWarning)
    t = time.perf_counter()
    ratings = es.datasets.synthetic(preset=args.preset, seed=0)
    data_s = time.perf_counter() - t
    data_peak = _peak_gib()
    print(f"{ratings!r} generated in {data_s:.1f} s; peak RSS {data_peak:.2f} GiB", flush=True)
    with tempfile.TemporaryDirectory() as cache:
        sweep = reference_sweep(ratings, args, cache)
        t = time.perf_counter()
        sweep.run(progress=False)
        table = sweep.table
        sweep_s = time.perf_counter() - t
    peak = _peak_gib()
    print(
        f"sweep: {len(sweep.runs)} runs x {args.iterations} iterations, {len(table)} table rows "
        f"in {sweep_s:.1f} s; peak RSS {peak:.2f} GiB (target: within 24 GiB: "
        f"{'met' if peak <= 24 else 'NOT met'})"
    )
    write_json(
        f"sweep_memory_{args.preset}",
        {
            "preset": args.preset,
            "synthetic": True,
            "shape": list(ratings.matrix.shape),
            "n_ratings": ratings.n_ratings,
            "iterations": args.iterations,
            "seeds": args.seeds,
            "threads": args.threads,
            "data_s": data_s,
            "sweep_s": sweep_s,
            "peak_rss_after_data_gib": data_peak,
            "peak_rss_gib": peak,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
