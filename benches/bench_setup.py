"""Setup paid once per dataset: the first WALS iteration against the others.

A fit's first iteration used to pay, besides its two half-sweeps, the loss of
the starting point (a pass over the ratings of its own, almost a half-sweep at
k = 10), and on a fresh :class:`~embspace.Ratings` the transposed CSR. Now the
CPU backend takes the starting loss from the first users half-sweep, each
row's from the normal equations its solve forms (``start_total()``), and the
transpose (built once per ``Ratings``, by the Rust core in parallel) is the
dataset's, reused by every fit on it (a sweep's runs share one ``Ratings``).

Measured in one process, 2 threads, on the same ``Ratings`` (the sweep
situation), alternating for ``--rounds`` rounds:

- ``fused``: the CPU backend as shipped;
- ``unfused``: the same backend with the base class's ``start()`` and
  ``start_total()`` (the loss of the starting point as a pass of its own over
  the ratings, as before).

For each fit: the first iteration (from ``fit()`` entry to the end of
iteration 1, so the problem's setup and the starting loss count) divided by
the median of the other iterations, in wall time and in the process's CPU
time (the work of both threads, which other processes taking turns on the
cores disturb less); the table gives the median ratio over the rounds, and
each round's. The once-per-dataset costs are timed apart:
``Ratings.from_csr`` (canonical check, item counts), the transpose and the
fingerprint. Ratios are compared, never absolute times (a shared machine's
speed drifts).

    python benches/bench_setup.py [--quick] [--rounds N] [--factors K ...]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from typing import Any

from _common import THREADS, limit_threads, print_table, write_json


def _load_avg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def fit_ratio(ratings: Any, k: int, iterations: int, fused: bool) -> dict[str, Any]:
    """One fit on ``ratings``: the first iteration's time over the median of the others."""
    import embspace as es
    from embspace.factorization import wals as wals_module
    from embspace.factorization.backends import WalsBackend
    from embspace.factorization.wals_cpu import CpuBackend

    class Unfused(CpuBackend):
        start = WalsBackend.start
        start_total = WalsBackend.start_total

    registry = wals_module.WALS_BACKENDS
    saved = registry.get("cpu")
    stamps: list[tuple[float, float]] = []
    model = es.WALS(factors=k, iterations=iterations, num_threads=THREADS, random_state=0)
    if not fused:
        registry.register("cpu", Unfused)

    def stamp(it: int, elapsed: float, loss: float) -> None:
        stamps.append((time.perf_counter(), time.process_time()))

    try:
        t0 = (time.perf_counter(), time.process_time())
        model.fit(ratings, progress=False, callback=stamp)
    finally:
        if saved is not None:
            registry.register("cpu", saved)
    out: dict[str, Any] = {"loss0": model.loss_history_[0]}
    # wall time, and the process's CPU time (both threads' work: less
    # sensitive to other processes taking turns on the cores)
    for clock, name in ((0, "wall"), (1, "cpu")):
        marks = [t0[clock], *(s[clock] for s in stamps)]
        per_iter = [b - a for a, b in itertools.pairwise(marks)]
        rest = statistics.median(per_iter[1:])
        out[name] = {"first": per_iter[0], "others": rest, "ratio": per_iter[0] / rest}
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="ml-1m shape, seconds")
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds (default 3)")
    parser.add_argument("--factors", type=int, nargs="+", default=[10], help="k (default 10)")
    parser.add_argument("--iterations", type=int, default=4, help="iterations per fit")
    args = parser.parse_args(argv)
    limit_threads()
    import embspace as es
    import embspace.factorization  # registers the backends
    import scipy.sparse as sp

    preset = "ml-1m" if args.quick else "ml-20m"
    generated = es.datasets.synthetic(preset=preset, seed=0)
    m = generated.matrix
    # a fresh Ratings from the bare matrix: what loading a dataset gives
    plain = sp.csr_matrix((m.data, m.indices, m.indptr), shape=m.shape)
    print(f"{generated}; load average {_load_avg()}", flush=True)
    t = time.perf_counter()
    ratings = es.Ratings.from_csr(plain)
    t_ratings = time.perf_counter() - t
    t = time.perf_counter()
    _ = ratings.item_matrix
    t_transpose = time.perf_counter() - t
    t = time.perf_counter()
    _ = ratings.fingerprint
    t_fingerprint = time.perf_counter() - t
    print(
        f"once per dataset: Ratings.from_csr {t_ratings:.3f} s, transpose {t_transpose:.3f} s, "
        f"fingerprint {t_fingerprint:.3f} s",
        flush=True,
    )
    rows = []
    for k in args.factors:
        results: dict[str, list[dict[str, Any]]] = {"fused": [], "unfused": []}
        fit_ratio(ratings, k, 2, True)  # warm-up: page in the arrays, load the code
        for _ in range(args.rounds):
            for variant in ("fused", "unfused"):
                results[variant].append(fit_ratio(ratings, k, args.iterations, variant == "fused"))
        for variant, runs in results.items():
            row: dict[str, Any] = {"k": k, "start loss": variant}
            for clock in ("wall", "cpu"):
                ratios = [r[clock]["ratio"] for r in runs]
                row[f"first/others {clock}"] = statistics.median(ratios)
                row[f"rounds {clock}"] = ", ".join(f"{x:.2f}" for x in ratios)
            row["others s/it"] = statistics.median(r["wall"]["others"] for r in runs)
            rows.append(row)
        f, u = results["fused"][0]["loss0"], results["unfused"][0]["loss0"]
        print(f"k={k}: starting loss fused {f:.10g}, unfused {u:.10g} (rel {abs(f - u) / u:.1e})")
    print()
    print_table(
        rows,
        [
            "k",
            "start loss",
            "first/others wall",
            "rounds wall",
            "first/others cpu",
            "rounds cpu",
            "others s/it",
        ],
    )
    print(f"\n{THREADS} threads; load average {_load_avg()} (at the end)")
    path = write_json(
        "setup_quick" if args.quick else "setup",
        {
            "data": str(generated),
            "threads": THREADS,
            "rounds": args.rounds,
            "once_per_dataset": {
                "ratings_from_csr": t_ratings,
                "transpose": t_transpose,
                "fingerprint": t_fingerprint,
            },
            "rows": rows,
            "load_average": _load_avg(),
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
