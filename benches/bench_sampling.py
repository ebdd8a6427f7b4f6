"""Sampled vs exact compare() of millions of entities (d = 64, 2 threads).

Two synthetic n x 64 float32 spaces of the same entities (a 16-dimensional
latent structure plus noise; B sees a perturbed latent, rotated), built in
blocks with a fixed seed. For each n, in a fresh process (so that the peak
memory is that size's):

- ``sampled``: ``compare(a, b, ["neighbors"], sample=m)`` for m = 10,000 (the
  target) and 1,000 (growth in m): time, score, 95% interval and its
  half-width, and the smallest m whose interval would have a half-width of
  at most 0.01 (from the sample's stdev: ``t s sqrt(1/m - 1/n) <= 0.01``);
- ``exact``: ``compare(a, b, ["neighbors"], sample=0)`` where it is
  computable (``--exact-up-to``; O(n^2 d)), and whether each interval covers it;
- ``dense``: ``compare(a, b, ["cca", "unitmatch", "cka"])`` (exact, streamed
  above 200,000 entities);
- peak resident memory (``ru_maxrss``) after the sampled runs and at the end,
  and the inputs' size (2 n d float32);
- each run's CPU time (user + system, all threads) beside its wall time, and
  the load average: on a shared machine the wall time of a 2-thread run is
  at least half its CPU time, and more when other processes compete;
- ``search``: the exact k-NN of the 10,000 queries in space A alone (what
  ``sample=`` runs per side), int8-screened (AVX-512 VNNI, when the CPU has
  it) beside the float32 search (``EMBSPACE_KNN_SCREEN=0``, up to
  ``--plain-up-to`` entities), whether both give the same table, and the
  rows each query re-ranked exactly (the screen's candidates).

Growth exponents are the least-squares slopes of log time against log n.
The Embeddings are built before the clock starts (their construction time is
reported apart: a Python key list and index per side).

    python benches/bench_sampling.py [--quick | --full] [--sizes N ...] [--exact-up-to N]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

import numpy as np
from _common import THREADS, limit_threads, print_table, write_json

D, K, LATENT = 64, 10, 16
TARGET_M, SMALL_M = 10_000, 1_000
TARGET_HALF_WIDTH = 0.01
BLOCK = 1 << 20


def make_pair(n: int, d: int = D, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two n x d float32 spaces sharing a latent structure (blockwise: no
    temporaries larger than one block)."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((LATENT, d)) / np.sqrt(LATENT)
    R = np.linalg.qr(rng.standard_normal((d, d)))[0]
    A = np.empty((n, d), np.float32)
    B = np.empty((n, d), np.float32)
    for lo in range(0, n, BLOCK):
        hi = min(n, lo + BLOCK)
        Z = rng.standard_normal((hi - lo, LATENT))
        A[lo:hi] = Z @ W + 0.1 * rng.standard_normal((hi - lo, d))
        Zb = Z + 0.1 * rng.standard_normal((hi - lo, LATENT))
        B[lo:hi] = (Zb @ W + 0.1 * rng.standard_normal((hi - lo, d))) @ R
    return A, B


def _cpu_s() -> float:
    """CPU time of this process so far (user + system, all threads)."""
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def _rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB -> GiB


def needed_m(stdev: float, n: int, half: float = TARGET_HALF_WIDTH) -> int:
    """The smallest m with 1.96 s sqrt(1/m - 1/n) <= half (normal quantile)."""
    z = 1.959964
    inv = (half / (z * stdev)) ** 2 + 1.0 / n
    return min(n, math.ceil(1.0 / inv))


def search(a: np.ndarray, n: int, plain: bool) -> dict:
    """Screened vs float32 k-NN of TARGET_M queries of ``a`` (table_width columns)."""
    from embspace import _core
    from embspace.measures.neighborhood import table_width
    from embspace.neighbors import knn

    m = min(TARGET_M, n)
    rows = np.sort(np.random.default_rng(0).choice(n, m, replace=False))
    w = table_width(K, n)
    out: dict = {"m": m, "width": w, "screened_path": _core.knn_screened(a.shape[1])}
    runs = {}
    for name, flag in (("screened", "1"), ("plain", "0")):
        if name == "plain" and not plain:
            continue
        os.environ["EMBSPACE_KNN_SCREEN"] = flag
        t0, c0 = time.perf_counter(), _cpu_s()
        runs[name] = knn(a, w, queries=rows, num_threads=THREADS)
        out[f"{name}_s"], out[f"{name}_cpu_s"] = time.perf_counter() - t0, _cpu_s() - c0
        out[f"{name}_load"] = os.getloadavg()
    os.environ.pop("EMBSPACE_KNN_SCREEN", None)
    if "plain" in runs:
        (ds, i_s), (dp, ip) = runs["screened"], runs["plain"]
        out["identical"] = bool(np.array_equal(i_s, ip) and np.array_equal(ds, dp))
    if out["screened_path"]:
        counts = _core.knn_screen_candidates(a, w, "cosine", rows.astype(np.int64), THREADS)
        out["candidates"] = {
            "mean": float(counts.mean()),
            "median": float(np.median(counts)),
            "p99": float(np.percentile(counts, 99)),
            "max": int(counts.max()),
        }
    return out


def child(n: int, exact: bool, plain_up_to: int = 1_000_000) -> dict:
    import embspace as es

    limit_threads(THREADS)
    out: dict = {"n": n, "d": D, "k": K, "input_gib": 2 * n * D * 4 / 2**30}
    out["load_average_start"] = os.getloadavg()
    warm = make_pair(3000, seed=1)  # imports and thread pools, off the clock
    es.compare(*warm, ["neighbors", "cca", "unitmatch", "cka"], sample=500, num_threads=THREADS)
    del warm
    t0 = time.perf_counter()
    A, B = make_pair(n)
    out["generate_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    a, b = es.Embeddings(range(n), A), es.Embeddings(range(n), B)
    out["embeddings_s"] = time.perf_counter() - t0
    del A, B
    t0, c0 = time.perf_counter(), _cpu_s()
    dense = es.compare(a, b, ["cca", "unitmatch", "cka"], num_threads=THREADS)
    out["dense_s"], out["dense_cpu_s"] = time.perf_counter() - t0, _cpu_s() - c0
    out["dense_scores"] = dense.scores
    out["sampled"] = {}
    for m in (TARGET_M, SMALL_M):
        if m >= n:
            continue
        t0, c0 = time.perf_counter(), _cpu_s()
        c = es.compare(a, b, ["neighbors"], sample=m, sample_seed=0, num_threads=THREADS)
        elapsed, cpu = time.perf_counter() - t0, _cpu_s() - c0
        low, high = c.intervals["neighbors"]
        stdev = float(np.std(c.results["neighbors"].per_entity, ddof=1))
        out["sampled"][m] = {
            "time_s": elapsed,
            "cpu_s": cpu,
            "score": c.scores["neighbors"],
            "low": low,
            "high": high,
            "half_width": (high - low) / 2,
            "stdev": stdev,
            "m_for_half_width_0.01": needed_m(stdev, n),
        }
    out["peak_rss_sampled_gib"] = _rss_gib()
    out["search"] = search(a.vectors, n, n <= plain_up_to)
    if exact:
        t0, c0 = time.perf_counter(), _cpu_s()
        c = es.compare(a, b, ["neighbors"], sample=0, num_threads=THREADS)
        out["exact"] = {
            "time_s": time.perf_counter() - t0,
            "cpu_s": _cpu_s() - c0,
            "score": c.scores["neighbors"],
        }
        for r in out["sampled"].values():
            r["covers_exact"] = bool(r["low"] <= c.scores["neighbors"] <= r["high"])
    out["peak_rss_gib"] = _rss_gib()
    out["load_average_end"] = os.getloadavg()
    return out


def slope(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 2:
        return None
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 20k, 50k, all exact (seconds)")
    parser.add_argument("--full", action="store_true", help="n = 100k, 300k, 1M, 10M (minutes)")
    parser.add_argument("--sizes", type=int, nargs="+", help="entity counts to run")
    parser.add_argument("--exact-up-to", type=int, help="exact compare up to this n")
    parser.add_argument(
        "--plain-up-to",
        type=int,
        default=1_000_000,
        help="time the float32 query search beside the screened one up to this n",
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--exact", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.exact, args.plain_up_to)))
        return 0
    if args.quick:
        sizes, exact_up_to = [20_000, 50_000], 50_000
    elif args.full:
        sizes, exact_up_to = [100_000, 300_000, 1_000_000, 10_000_000], 300_000
    else:
        sizes, exact_up_to = [100_000, 300_000, 1_000_000], 100_000
    sizes = args.sizes or sizes
    if args.exact_up_to is not None:
        exact_up_to = args.exact_up_to
    results: list[dict] = []
    failed: list[dict] = []
    for n in sizes:
        cmd = [sys.executable, __file__, "--child", str(n)] + (
            ["--exact"] if n <= exact_up_to else []
        )
        cmd += ["--plain-up-to", str(args.plain_up_to)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:  # e.g. out of memory: say so, go on with the others
            failed.append({"n": n, "returncode": proc.returncode, "stderr": proc.stderr[-2000:]})
            print(f"n = {n:,} failed ({proc.returncode}): {proc.stderr[-500:]}", flush=True)
            continue
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        res["process_s"] = time.perf_counter() - t0
        results.append(res)
        print(f"n = {n:,} done in {res['process_s']:.0f} s: {json.dumps(res)}", flush=True)
    if not results:
        return 1
    results.sort(key=lambda r: r["n"])
    rows = []
    for r in results:
        s = r["sampled"].get(str(TARGET_M)) or {}
        small = r["sampled"].get(str(SMALL_M)) or {}
        rows.append(
            {
                "n": f"{r['n']:,}",
                "sampled 10k s": s.get("time_s", float("nan")),
                "10k cpu s": s.get("cpu_s", float("nan")),
                "sampled 1k s": small.get("time_s", float("nan")),
                "score": s.get("score", float("nan")),
                "half-width": s.get("half_width", float("nan")),
                "m for 0.01": s.get("m_for_half_width_0.01", ""),
                "exact s": r.get("exact", {}).get("time_s", float("nan")),
                "exact": r.get("exact", {}).get("score", float("nan")),
                "covers": s.get("covers_exact", ""),
                "search s": r["search"].get("screened_s", float("nan")),
                "f32 search s": r["search"].get("plain_s", float("nan")),
                "same": r["search"].get("identical", ""),
                "cands": r["search"].get("candidates", {}).get("mean", float("nan")),
                "dense s": r["dense_s"],
                "peak GiB": r["peak_rss_gib"],
                "load": r["load_average_end"][1],
                "input GiB": r["input_gib"],
            }
        )
    print(f"\ncompare(neighbors, k = {K}), d = {D}, {THREADS} threads; times in seconds")
    print_table(rows, list(rows[0]))
    ns = [r["n"] for r in results]
    growth = {
        "sampled_10k": slope(
            [r["n"] for r in results if str(TARGET_M) in r["sampled"]],
            [
                r["sampled"][str(TARGET_M)]["time_s"]
                for r in results
                if str(TARGET_M) in r["sampled"]
            ],
        ),
        "exact": slope(
            [r["n"] for r in results if "exact" in r],
            [r["exact"]["time_s"] for r in results if "exact" in r],
        ),
        "dense": slope(ns, [r["dense_s"] for r in results]),
    }
    print("growth exponents (time ~ n^e):", {k: v and round(v, 2) for k, v in growth.items()})
    path = write_json(
        "sampling",
        {
            "d": D,
            "k": K,
            "threads": THREADS,
            "results": results,
            "failed": failed,
            "growth": growth,
        },
    )
    print(f"wrote {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
