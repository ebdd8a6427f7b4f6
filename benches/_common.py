"""Helpers shared by the Python benchmarks: thread limits, timing, tables, JSON."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

THREADS = 2

#: The reference notebook's sweep: WALS (k = 10) over these unobserved weights, against 0.
REFERENCE_VALUES = (0.0, 0.01, 0.1, 0.5, 1.0, 2.0)


def add_sweep_arguments(parser: Any, preset: str = "ml-20m") -> None:
    """``--preset``, ``--iterations``, ``--seeds`` and ``--threads`` of the
    benchmarks that run the reference sweep (:func:`reference_sweep`)."""
    parser.add_argument("--preset", default=preset, help=f"synthetic preset (default {preset})")
    parser.add_argument("--iterations", type=int, default=20, help="WALS iterations (20)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per value (3)")
    parser.add_argument("--threads", type=int, default=THREADS, help=f"threads ({THREADS})")


def reference_sweep(ratings: Any, args: Any, cache: str, threads: int | None = None) -> Any:
    """The reference sweep (not run): WALS k = 10, ``args.iterations``, over
    :data:`REFERENCE_VALUES` against 0 with ``args.seeds`` seeds, cached in
    ``cache``, on ``threads`` threads (default ``args.threads``)."""
    import embspace as es

    threads = args.threads if threads is None else threads
    wals = es.WALS(factors=10, iterations=args.iterations, num_threads=threads)
    return es.Sweep(
        ratings,
        wals,
        "unobserved_weight",
        list(REFERENCE_VALUES),
        reference=0.0,
        seeds=args.seeds,
        cache_dir=cache,
        num_threads=threads,
    )


def limit_threads(n: int = THREADS) -> Any:
    """Cap BLAS/OpenMP pools at ``n`` threads for the whole process (returns the
    threadpoolctl controller, or None when threadpoolctl is missing)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=n)
    except ImportError:
        return None


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float], Any]:
    """Median wall time of ``repeats`` calls, all the times, and the last result."""
    times = []
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def write_json(name: str, payload: dict[str, Any]) -> Path:
    out_dir = Path(__file__).resolve().parents[1] / "bench-results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"{name}.json"
    payload = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        **payload,
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)
    return path
