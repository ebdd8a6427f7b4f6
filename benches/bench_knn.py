"""Exact k = 10 neighbor tables: embspace against faiss, scikit-learn and numpy.

All on 2 threads, cosine (faiss: IndexFlatIP on normalised rows), the query
excluded. Median of 3 runs; at the largest size the slow peers (numpy,
scikit-learn) run once. The table gives seconds, each peer's time divided by
embspace's, and how many rows of neighbor indices agree with embspace's exact
ones. ``--quick`` runs small sizes in seconds.

    python benches/bench_knn.py [--quick]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from _common import THREADS, limit_threads, print_table, timed, write_json

K = 10
FULL_SIZES = [(26_744, 10), (26_744, 64), (138_493, 10)]
QUICK_SIZES = [(3_000, 10), (3_000, 64), (8_000, 10)]
SLOW_PEERS_ONCE_ABOVE = 100_000


def embspace_knn(X: np.ndarray) -> np.ndarray:
    from embspace.neighbors import knn

    return knn(X, K, metric="cosine", num_threads=THREADS)[1]


def _normalised(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return np.ascontiguousarray(X / np.where(norms == 0, 1, norms), dtype=np.float32)


def _drop_self(raw: np.ndarray) -> np.ndarray:
    """First K neighbors of each row with the row itself removed by index
    (vectorised: a stable sort moves the row's own index to the end)."""
    is_self = raw == np.arange(raw.shape[0])[:, None]
    order = np.argsort(is_self, axis=1, kind="stable")
    return np.take_along_axis(raw, order, axis=1)[:, :K].astype(np.int64)


def faiss_knn(X: np.ndarray) -> np.ndarray:
    import faiss

    faiss.omp_set_num_threads(THREADS)
    Xn = _normalised(X)
    index = faiss.IndexFlatIP(X.shape[1])
    index.add(Xn)
    _, raw = index.search(Xn, K + 1)
    return _drop_self(raw)


def sklearn_knn(X: np.ndarray) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(metric="cosine", algorithm="brute").fit(X)
    raw = nn.kneighbors(X, n_neighbors=K + 1, return_distance=False)
    return _drop_self(raw)


def numpy_knn(X: np.ndarray, block: int = 2048) -> np.ndarray:
    Xn = _normalised(X)
    n = X.shape[0]
    out = np.empty((n, K), dtype=np.int64)
    for lo in range(0, n, block):
        S = Xn[lo : lo + block] @ Xn.T
        rows = np.arange(S.shape[0])
        S[rows, lo + rows] = -np.inf
        part = np.argpartition(-S, K, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(S, part, axis=1), axis=1, kind="stable")
        out[lo : lo + block] = np.take_along_axis(part, order, axis=1)
    return out


PEERS = {"faiss IndexFlatIP": faiss_knn, "scikit-learn brute": sklearn_knn, "numpy": numpy_knn}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    limits = limit_threads(THREADS)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    rows = []
    for n, d in sizes:
        rng = np.random.default_rng(n + d)
        X = rng.standard_normal((n, d)).astype(np.float32)
        embspace_knn(X[:100])  # warm up the extension and its thread pool
        t_ref, times, ref = timed(lambda X=X: embspace_knn(X), args.repeats)
        rows.append(
            {
                "size": f"{n:,} x {d}",
                "library": "embspace",
                "seconds": t_ref,
                "runs": len(times),
                "ratio (peer / embspace)": 1.0,
                "rows equal": "exact",
            }
        )
        for name, fn in PEERS.items():
            try:
                repeats = (
                    1
                    if (name != "faiss IndexFlatIP" and n > SLOW_PEERS_ONCE_ABOVE)
                    else args.repeats
                )
                t, times, idx = timed(lambda fn=fn, X=X: fn(X), repeats)
            except ImportError as exc:
                print(f"skipping {name}: {exc}", file=sys.stderr)
                continue
            same = float((np.sort(idx, axis=1) == np.sort(ref, axis=1)).all(axis=1).mean())
            rows.append(
                {
                    "size": f"{n:,} x {d}",
                    "library": name,
                    "seconds": t,
                    "runs": len(times),
                    "ratio (peer / embspace)": t / t_ref,
                    "rows equal": f"{same:.2%}",
                }
            )
        print_table(
            rows[-(len(PEERS) + 1) :],
            ["size", "library", "seconds", "runs", "ratio (peer / embspace)", "rows equal"],
        )
        print(flush=True)
    path = write_json(
        "knn_quick" if args.quick else "knn", {"k": K, "threads": THREADS, "rows": rows}
    )
    print(f"wrote {path}")
    del limits
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
