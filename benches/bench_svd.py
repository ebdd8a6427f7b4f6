"""Truncated SVD: embspace's ``SVD`` against scipy's ``svds``, speed and accuracy.

On the synthetic ML-20M preset (``--quick``: ML-1M), k = 10, in one process,
the methods taking turns for ``--rounds`` rounds (each reported by its median
round, and by the ratio of medians, since a shared machine's speed drifts):

- ``embspace``: ``SVD(factors=k, num_threads=2)``, as shipped (ARPACK on the
  Gramian of the smaller side, one Rust pass over the float32 ratings per
  product, stopped at a relative residual of 1e-10);
- ``scipy f32``: ``svds(A, k)`` on the float32 matrix (ARPACK in single
  precision, scipy's own single-threaded sparse products): the speed target;
- ``scipy f64``: ``svds(A, k)`` on a float64 copy (ARPACK to float64
  rounding): the accuracy reference.

Every method starts from the same start vector. Accuracy, against two
references: the relative difference of the singular values from ``scipy
f64``'s, and each method's own residual ``max_i |A^T u_i - s_i v_i| / s_i``
computed in float64 (an independent measure: it does not trust any of the
three; embspace's is taken on its float64 triplets, computed again outside
the timing, before ``fit`` stores them as float32 factors). Threads:
embspace's products on 2 threads; BLAS on 1 thread for everyone (embspace's
fit limits it itself; idle BLAS threads spin and would take the cores from
the sparse products, which on 2 cores costs scipy as much as embspace).

    python benches/bench_svd.py [--quick] [--rounds N] [--factors K]
"""

from __future__ import annotations

import argparse
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


def _sorted(u: Any, s: Any, vt: Any) -> tuple[Any, Any, Any]:
    import numpy as np

    order = np.argsort(-s, kind="stable")
    return u[:, order], s[order], vt[order]


def residual(a64: Any, u: Any, s: Any, vt: Any) -> float:
    """``max_i |A^T u_i - s_i v_i| / s_i`` in float64."""
    import numpy as np

    u = np.asarray(u, dtype=np.float64)
    r = a64.T @ u - vt.T.astype(np.float64) * s
    return float(np.max(np.linalg.norm(r, axis=0) / s))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="ml-1m shape, seconds")
    parser.add_argument("--rounds", type=int, default=3, help="rounds in turns (default 3)")
    parser.add_argument("--factors", type=int, default=10, help="k (default 10)")
    args = parser.parse_args(argv)
    limit_threads()
    import embspace as es
    import numpy as np
    from embspace.factorization.svd import _truncated_svd
    from scipy.sparse.linalg import svds
    from threadpoolctl import threadpool_limits

    preset = "ml-1m" if args.quick else "ml-20m"
    ratings = es.datasets.synthetic(preset=preset, seed=0)
    k = args.factors
    m32 = ratings.matrix
    m64 = m32.astype(np.float64)
    _ = ratings.item_matrix, ratings.fingerprint  # once per dataset, not timed
    print(f"{ratings}; k={k}; load average {_load_avg()}", flush=True)
    seed = 0
    n = min(ratings.shape)
    v0 = np.random.default_rng(seed).uniform(-1.0, 1.0, size=n)

    def ours() -> Any:
        return es.SVD(factors=k, random_state=seed, num_threads=THREADS).fit(ratings)

    # scipy at its best: BLAS on one thread (ARPACK's dense work is small, and
    # idle BLAS threads spin; embspace's fit does the same internally)
    def scipy32() -> tuple[Any, Any, Any]:
        with threadpool_limits(limits=1, user_api="blas"):
            return _sorted(*svds(m32, k=k, v0=v0.astype(np.float32)))

    def scipy64() -> tuple[Any, Any, Any]:
        with threadpool_limits(limits=1, user_api="blas"):
            return _sorted(*svds(m64, k=k, v0=v0))

    methods = {"embspace": ours, "scipy f32": scipy32, "scipy f64": scipy64}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in methods}
    results: dict[str, Any] = {}
    for _ in range(args.rounds):
        for name, fn in methods.items():
            w, c = time.perf_counter(), time.process_time()
            results[name] = fn()
            times[name].append((time.perf_counter() - w, time.process_time() - c))
    # fit draws its start vector as v0 is drawn here: its float64 triplets
    # (before they are stored as float32 factors) for the residual, untimed
    model = results["embspace"]
    results["embspace"] = _sorted(*_truncated_svd(ratings, k, v0, THREADS))
    assert np.array_equal(results["embspace"][1], model.singular_values_)
    ref = results["scipy f64"][1]
    base = statistics.median(t[0] for t in times["scipy f32"])
    rows = []
    for name in methods:
        u, s, vt = results[name]
        wall = statistics.median(t[0] for t in times[name])
        rows.append(
            {
                "method": name,
                "wall s": wall,
                "cpu s": statistics.median(t[1] for t in times[name]),
                "scipy f32 / this": base / wall,
                "rounds (wall)": ", ".join(f"{t[0]:.2f}" for t in times[name]),
                "max rel diff of s vs f64": float(np.max(np.abs(s - ref) / ref)),
                "residual": residual(m64, u, s, vt),
            }
        )
    print()
    print_table(
        rows,
        [
            "method",
            "wall s",
            "cpu s",
            "scipy f32 / this",
            "rounds (wall)",
            "max rel diff of s vs f64",
            "residual",
        ],
    )
    print(
        f"\nembspace on {THREADS} threads (scipy's sparse products are single-threaded); "
        f"load average {_load_avg()} (at the end)"
    )
    path = write_json(
        "svd_quick" if args.quick else "svd",
        {
            "data": str(ratings),
            "k": k,
            "threads": THREADS,
            "rounds": args.rounds,
            "rows": rows,
            "singular_values": {name: results[name][1].tolist() for name in methods},
            "load_average": _load_avg(),
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
