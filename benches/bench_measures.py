"""compare() of neighbors + cca + unitmatch against repcomp 0.1's brute path.

Two 26,744 x 10 embeddings of the same entities (B a noisy linear map of A),
2 threads. repcomp runs ``NeighborsComparison(nn_method="brute")``,
``CCAComparison()`` and ``UnitMatchComparison()`` (its annoy default is broken
and is not a reference). repcomp gets float64 copies of the very float32 values
embspace sees, so both rank neighbors in float64. embspace: median of 3 runs;
repcomp once at full size (minutes), 3 times with ``--quick``.

repcomp is installed in the benchmark environment only, without its obsolete
pins: ``pip install --no-deps repcomp`` (plus ``annoy``, which its import
needs); this script does that when repcomp is missing, unless ``--no-install``.

    python benches/bench_measures.py [--quick] [--no-install]
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import numpy as np
from _common import THREADS, limit_threads, print_table, timed, write_json

FULL_N, QUICK_N, D, K = 26_744, 3_000, 10, 10


def _ensure_repcomp(install: bool) -> bool:
    try:
        importlib.import_module("repcomp.comparison")
        return True
    except ImportError:
        if not install:
            return False
    print("installing repcomp (--no-deps) and annoy into this environment", flush=True)
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    if subprocess.call([*pip, "--no-deps", "repcomp==0.1"]) or subprocess.call([*pip, "annoy"]):
        return False
    importlib.invalidate_caches()
    try:
        importlib.import_module("repcomp.comparison")
        return True
    except ImportError:
        return False


def _data(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, D)).astype(np.float32)
    B = (A @ rng.standard_normal((D, D)) + 0.8 * rng.standard_normal((n, D))).astype(np.float32)
    return A, B


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3,000 entities (seconds)")
    parser.add_argument("--no-install", action="store_true", help="never pip install repcomp")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    limits = limit_threads(THREADS)
    n = QUICK_N if args.quick else FULL_N
    A, B = _data(n)

    import embspace as es

    def ours() -> es.measures.Comparison:
        return es.compare(
            A, B, measures=["neighbors", "cca", "unitmatch"], k=K, num_threads=THREADS
        )

    ours()  # warm up
    t_ours, _, comp = timed(ours, args.repeats)
    # per measure: the measure function itself on the aligned arrays (compare()
    # adds the key alignment, which the total includes)
    parts = {}
    for name in ("neighbors", "cca", "unitmatch"):
        fn = es.measures.get_measure(name).function
        opts = {"k": K, "num_threads": THREADS} if name == "neighbors" else {}
        parts[name] = timed(lambda fn=fn, opts=opts: fn(A, B, **opts), args.repeats)[0]

    rows = []
    have_repcomp = _ensure_repcomp(not args.no_install)
    ref_values: dict[str, float] = {}
    ref_times: dict[str, float] = {}
    if have_repcomp:
        from repcomp.comparison import CCAComparison, NeighborsComparison, UnitMatchComparison

        E1, E2 = A.astype(np.float64), B.astype(np.float64)
        repeats = args.repeats if args.quick else 1
        for name, comparator in (
            ("neighbors", NeighborsComparison(nn_method="brute", num_neighbors=K)),
            ("cca", CCAComparison()),
            ("unitmatch", UnitMatchComparison(replacement=True)),
        ):
            t, _, out = timed(lambda c=comparator: c.run_comparison(E1, E2), repeats)
            ref_times[name] = t
            ref_values[name] = float(out["similarity"])
    else:
        print("repcomp is not importable: no reference timings", file=sys.stderr)

    for name in ("neighbors", "cca", "unitmatch"):
        ours_v = comp.scores[name]
        row = {"measure": name, "embspace s": parts[name], "embspace value": ours_v}
        if name in ref_values:
            row.update(
                {
                    "repcomp s": ref_times[name],
                    "ratio": ref_times[name] / parts[name],
                    "repcomp value": ref_values[name],
                    "|difference|": abs(ours_v - ref_values[name]),
                }
            )
        rows.append(row)
    total = {"measure": "all three", "embspace s": t_ours, "embspace value": ""}
    if ref_times:
        total.update(
            {"repcomp s": sum(ref_times.values()), "ratio": sum(ref_times.values()) / t_ours}
        )
    rows.append(total)
    print(f"{n:,} x {D} embeddings, k = {K}, {THREADS} threads")
    print_table(
        rows,
        [
            "measure",
            "embspace s",
            "repcomp s",
            "ratio",
            "embspace value",
            "repcomp value",
            "|difference|",
        ],
    )
    print(
        "\nall canonical correlations, exact (embspace):",
        np.round(comp.details["cca"]["correlations"], 6),
    )
    if have_repcomp:
        from sklearn.cross_decomposition import CCA

        xs, ys = CCA(n_components=D).fit(A.astype(np.float64), B.astype(np.float64)).transform(A, B)
        sk = [float(np.corrcoef(xs[:, i], ys[:, i])[0, 1]) for i in range(D)]
        print("                 scikit-learn CCA (repcomp):", np.round(sk, 6))
    path = write_json(
        "measures_quick" if args.quick else "measures",
        {"n": n, "d": D, "k": K, "threads": THREADS, "rows": rows, "repcomp": have_repcomp},
    )
    print(f"wrote {path}")
    del limits
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
