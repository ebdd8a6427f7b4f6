"""CPU vs GPU benchmark of embspace on the synthetic ML-20M preset, one JSON file of results.

Sections, each timed on the GPU (``device="gpu"``: the array-module code on
CuPy) and on the CPU (``device="cpu"``: the Rust core on every core):

* ``wals``: seconds per WALS iteration at k = 10, 64, 128, 256, through the
  public estimator (``embspace.WALS(...).fit`` with a per-iteration callback;
  an iteration includes its loss), plus the GPU solve alone
  (:class:`embspace.gpu.wals_xp.WalsXp`, no loss), and the agreement of the
  two paths at k = 64 after the same iterations from the same init;
* ``knn``: the exact 10-NN table of the 138,493 user embeddings at k = 64
  (``NeighborTable(...).knn(10)``), and how many rows agree exactly;
* ``sweep``: the whole reference workflow (``embspace.demo.run_demo`` with one
  seed: 6 WALS trainings of the unobserved-weight sweep at k = 10 with 20
  iterations + SVD, compared against w0 = 0 and against SVD) on each device.

The GPU sections run first, so their figures exist even if the CPU part is cut
short; the JSON file is rewritten (atomically) after every measurement.

``--cpu-only`` checks this script on a machine without a GPU: the "gpu" side
runs the very same code paths with ``xp = numpy``
(:func:`embspace.gpu.numpy_device`); with ``--quick`` the data are small
(the ml-100k shape, k = 4 and 8) so the whole run takes seconds to a minute.

Usage: ``python benches/gpu/run.py [--out PATH] [--cpu-only] [--quick]``; the
prepared entry point for a GPU machine is ``benches/gpu/run.sh`` (see README).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]

#: Iterations timed per factor count: (gpu, cpu). The first GPU iteration of a
#: fit warms up kernels and the memory pool and is reported separately.
FULL_PLAN = {10: (6, 3), 20: (6, 2), 32: (6, 2), 48: (6, 2), 64: (6, 2), 128: (4, 1), 256: (3, 1)}
QUICK_PLAN = {4: (3, 2), 8: (3, 2)}


class Report:
    """The results dict, written atomically to ``path`` after every update."""

    def __init__(self, path: Path, deadline_s: float) -> None:
        self.path = path
        self.t0 = time.perf_counter()
        self.deadline_s = deadline_s
        self.data: dict[str, Any] = {"status": "running", "started": time.time()}
        self.save()

    def late(self, section: str, key: str) -> bool:
        """True (and the skip recorded) once the run is past its deadline."""
        if time.perf_counter() - self.t0 < self.deadline_s:
            return False
        self.section(section)[key] = {"skipped": f"past the {self.deadline_s:.0f} s deadline"}
        self.save()
        say(f"  {section}/{key} skipped (deadline)")
        return True

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".gpu-bench-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(self.data, fh, indent=2, default=_jsonable)
        os.replace(tmp, self.path)

    def section(self, name: str) -> dict[str, Any]:
        return self.data.setdefault(name, {})


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def say(text: str) -> None:
    print(text, flush=True)


@contextlib.contextmanager
def guarded(report: Report, section: str, key: str) -> Iterator[None]:
    """Record an exception under ``report[section][key]`` instead of aborting the run."""
    try:
        yield
    except Exception as exc:  # a benchmark records failures and carries on
        report.section(section)[key] = {"error": f"{type(exc).__name__}: {exc}"}
        say(f"  {section}/{key} FAILED: {type(exc).__name__}: {exc}")
        traceback.print_exc()
    finally:
        report.save()


def environment(gpu_device: str) -> dict[str, Any]:
    import embspace
    import scipy

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "embspace": embspace.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "gpu_side": gpu_device,
    }
    try:
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        free, total = cupy.cuda.Device().mem_info
        info.update(
            cupy=cupy.__version__,
            cuda_runtime=cupy.cuda.runtime.runtimeGetVersion(),
            gpu=props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
            gpu_memory_gib=round(total / 2**30, 1),
            gpu_free_gib=round(free / 2**30, 1),
        )
    except Exception as exc:
        info["cupy"] = f"unavailable ({type(exc).__name__})"
    return info


class Devices:
    """The two sides: ``cpu`` (Rust) and ``gpu`` (CuPy, or numpy with --cpu-only)."""

    def __init__(self, cpu_only: bool) -> None:
        from embspace import device as gdev

        self.cpu_only = cpu_only
        self.gdev = gdev
        self.xp = np if cpu_only else gdev.module_for("gpu")[1]

    @contextlib.contextmanager
    def gpu(self) -> Iterator[None]:
        """Context of the GPU side (numpy emulation with --cpu-only)."""
        if self.cpu_only:
            with self.gdev.numpy_device():
                yield
        else:
            yield

    def sync(self) -> None:
        self.gdev.synchronize(self.xp)

    def free_pool(self) -> None:
        if not self.cpu_only:
            self.xp.get_default_memory_pool().free_all_blocks()


def _timed_fit(
    make: Callable[[], Any], ratings: Any, sync: Callable[[], None]
) -> tuple[Any, list[float], float]:
    """Fit ``make()`` on ``ratings``; (model, per-iteration seconds, total seconds)."""
    stamps: list[float] = []

    def callback(iteration: int, elapsed: float, loss: float) -> None:
        sync()
        stamps.append(time.perf_counter())

    sync()
    t0 = time.perf_counter()
    model = make().fit(ratings, callback=callback, progress=False)
    sync()
    total = time.perf_counter() - t0
    steps = np.diff([t0, *stamps]).tolist()
    return model, steps, total


def bench_wals(report: Report, dev: Devices, ratings: Any, plan: dict, threads: int) -> None:
    import embspace as es
    from embspace.gpu.wals_xp import WalsXp

    sec = report.section("wals")
    sec["note"] = (
        "s_per_iter: median seconds of one iteration through WALS.fit (loss included), "
        "the first GPU iteration excluded (warm-up, listed in first_iter_s); "
        "gpu_solve_s_per_iter: the GPU half-sweeps alone (embspace.gpu.wals_xp.WalsXp)"
    )
    for k, (gpu_iters, cpu_iters) in plan.items():
        key = f"k={k}"
        row: dict[str, Any] = {"factors": k}
        sec[key] = row
        with guarded(report, "wals", key + "/gpu"), dev.gpu():
            model, steps, total = _timed_fit(
                lambda k=k, n=gpu_iters: es.WALS(
                    factors=k, iterations=n, random_state=0, device="gpu"
                ),
                ratings,
                dev.sync,
            )
            row["gpu"] = {
                "iterations": gpu_iters,
                "first_iter_s": steps[0],
                "s_per_iter": float(np.median(steps[1:])) if len(steps) > 1 else steps[0],
                "iter_s": steps,
                "fit_s": total,
                "final_loss": float(model.loss_history_[-1]),
            }
            say(f"  WALS k={k:<4} gpu {row['gpu']['s_per_iter']:.4f} s/iter (fit {total:.2f} s)")
            del model
            dev.free_pool()
        with guarded(report, "wals", key + "/gpu_solve"):
            row["gpu_solve"] = _solve_timing(WalsXp, ratings, k, gpu_iters, dev, "auto")
            _say_solve(k, row["gpu_solve"])
            dev.free_pool()
        # the other way of forming the normal equations, to place SPARSE_MAX_K
        if k <= ALT_STRATEGY_MAX_K:
            with guarded(report, "wals", key + "/gpu_solve_alt"):
                auto = row["gpu_solve"]["strategies"]["users"]
                other = "batched" if auto == "sparse" else "sparse"
                row["gpu_solve_alt"] = _solve_timing(WalsXp, ratings, k, gpu_iters, dev, other)
                _say_solve(k, row["gpu_solve_alt"])
                dev.free_pool()
        if report.late("wals", key + "/cpu"):
            continue
        with guarded(report, "wals", key + "/cpu"):
            model, steps, total = _timed_fit(
                lambda k=k, n=cpu_iters: es.WALS(
                    factors=k, iterations=n, random_state=0, num_threads=threads, device="cpu"
                ),
                ratings,
                lambda: None,
            )
            row["cpu"] = {
                "iterations": cpu_iters,
                "threads": threads,
                "s_per_iter": float(np.median(steps)),
                "iter_s": steps,
                "fit_s": total,
                "final_loss": float(model.loss_history_[-1]),
            }
            say(f"  WALS k={k:<4} cpu {row['cpu']['s_per_iter']:.4f} s/iter (fit {total:.2f} s)")
            del model
        if "gpu" in row and "cpu" in row and "s_per_iter" in row["gpu"]:
            row["speedup"] = row["cpu"]["s_per_iter"] / row["gpu"]["s_per_iter"]


def _say_solve(k: int, t: dict[str, Any]) -> None:
    s = t["strategies"]
    say(
        f"  WalsXp k={k:<4} {t['strategy']} (users {s['users']}, items {s['items']}) "
        f"{t['s_per_iter']:.4f} s/iter, setup {t['setup_s']:.2f} s, loss {t['loss_per_iter'][-1]:.6g}"
    )


#: Up to this k the benchmark also times the strategy "auto" did not choose.
ALT_STRATEGY_MAX_K = 128


def _solve_timing(
    wals_xp: Any, ratings: Any, k: int, iterations: int, dev: Devices, strategy: str
) -> dict[str, Any]:
    """The half-sweeps alone (``WalsXp.iterate``) with ``strategy``: setup,
    per-iteration seconds, the loss pass, the flop rate of the batched products."""
    rng = np.random.default_rng(0)
    u0 = (rng.standard_normal((ratings.n_users, k)) * 0.1).astype(np.float32)
    v0 = (rng.standard_normal((ratings.n_items, k)) * 0.1).astype(np.float32)
    dev.sync()
    t0 = time.perf_counter()
    state = wals_xp(
        ratings.csr_arrays(by="user"),
        ratings.csr_arrays(by="item"),
        u0,
        v0,
        unobserved_weight=0.01,
        regularization=0.07,
        xp=dev.xp,
        strategy=strategy,
    )
    dev.sync()
    setup = time.perf_counter() - t0
    solves = []
    losses = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        losses.append(float(sum(state.iterate())))
        dev.sync()
        solves.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    state.loss()
    loss_s = time.perf_counter() - t0
    out = {
        "strategy": strategy,
        "strategies": dict(state.strategies),
        "setup_s": setup,
        "batches": [len(state.users.batches), len(state.items.batches)],
        "chunks": [len(state.users.chunks), len(state.items.chunks)],
        "s_per_iter": float(np.median(solves[1:])) if len(solves) > 1 else solves[0],
        "iter_s": solves,
        "loss_per_iter": losses,
        "loss_s": loss_s,
        "flops_per_iter": _wals_flops(ratings, k),
    }
    out["tflops"] = out["flops_per_iter"] / out["s_per_iter"] / 1e12
    del state
    return out


def _wals_flops(ratings: Any, k: int) -> float:
    """Flops of one iteration: the observed Gram parts (2 k^2 per rating and side,
    full k x k products) + the Cholesky solves ((users + items) k^3 / 3)."""
    return 4.0 * ratings.n_ratings * k * k + (ratings.n_users + ratings.n_items) * k**3 / 3.0


def bench_agreement(
    report: Report, dev: Devices, ratings: Any, k: int, iterations: int, threads: int
) -> None:
    import embspace as es

    if report.late("agreement", f"wals_k={k}"):
        return
    with guarded(report, "agreement", f"wals_k={k}"):
        with dev.gpu():
            g = es.WALS(factors=k, iterations=iterations, random_state=0, device="gpu")
            g.fit(ratings, progress=False)
        c = es.WALS(
            factors=k, iterations=iterations, random_state=0, num_threads=threads, device="cpu"
        ).fit(ratings, progress=False)
        out = {"iterations": iterations}
        for name in ("user_factors_", "item_factors_"):
            a, b = getattr(g, name), getattr(c, name)
            out[name + "max_abs_diff"] = float(np.abs(a - b).max())
            out[name + "rel_fro_diff"] = float(np.linalg.norm(a - b) / np.linalg.norm(b))
        out["loss_gpu"] = [float(v) for v in g.loss_history_]
        out["loss_cpu"] = [float(v) for v in c.loss_history_]
        out["loss_rel_diff"] = float(
            abs(g.loss_history_[-1] - c.loss_history_[-1]) / abs(c.loss_history_[-1])
        )
        report.section("agreement")[f"wals_k={k}"] = out
        say(
            f"  agreement k={k}: rel. factor diff {out['user_factors_rel_fro_diff']:.2e} / "
            f"{out['item_factors_rel_fro_diff']:.2e}, loss rel. diff {out['loss_rel_diff']:.2e}"
        )


def bench_knn(report: Report, dev: Devices, vectors: np.ndarray, k: int, threads: int) -> None:
    import embspace as es

    sec = report.section("knn")
    sec["shape"] = list(vectors.shape)
    sec["k"] = k
    keys = list(range(vectors.shape[0]))
    emb = es.Embeddings(keys, vectors)
    results = {}
    with guarded(report, "knn", "gpu"), dev.gpu():
        table = es.NeighborTable(emb, metric="cosine", device="gpu")
        dev.sync()
        t0 = time.perf_counter()
        results["gpu"] = table.knn(k)
        dev.sync()
        sec["gpu"] = {"s": time.perf_counter() - t0}
        say(f"  kNN {vectors.shape[0]:,} x {vectors.shape[1]} gpu {sec['gpu']['s']:.3f} s")
        dev.free_pool()
    if report.late("knn", "cpu"):
        return
    with guarded(report, "knn", "cpu"):
        table = es.NeighborTable(emb, metric="cosine", num_threads=threads, device="cpu")
        t0 = time.perf_counter()
        results["cpu"] = table.knn(k)
        sec["cpu"] = {"s": time.perf_counter() - t0, "threads": threads}
        say(f"  kNN {vectors.shape[0]:,} x {vectors.shape[1]} cpu {sec['cpu']['s']:.3f} s")
    if "gpu" in results and "cpu" in results:
        same_rows = np.all(results["gpu"][1] == results["cpu"][1], axis=1)
        sec["rows_identical_fraction"] = float(same_rows.mean())
        sec["rows_same_set_fraction"] = float(
            np.mean(
                [
                    set(a.tolist()) == set(b.tolist())
                    for a, b in zip(results["gpu"][1], results["cpu"][1], strict=True)
                ]
            )
        )
        sec["max_abs_distance_diff"] = float(np.abs(results["gpu"][0] - results["cpu"][0]).max())
        sec["speedup"] = sec["cpu"]["s"] / sec["gpu"]["s"]
        report.save()


def bench_sweep(report: Report, dev: Devices, ratings: Any, iterations: int, threads: int) -> None:
    from embspace.demo import run_demo

    sec = report.section("sweep")
    sec["what"] = (
        "embspace.demo.run_demo(seeds=1): WALS k=10 unobserved-weight sweep over "
        "0, 0.01, 0.1, 0.5, 1, 2 against 0, SVD k=10 against every run; cold cache"
    )
    sec["iterations"] = iterations
    for side in ("gpu", "cpu"):
        if side == "cpu" and report.late("sweep", side):
            continue
        with guarded(report, "sweep", side), tempfile.TemporaryDirectory() as cache:
            ctx = dev.gpu() if side == "gpu" else contextlib.nullcontext()
            with ctx:
                dev.sync()
                t0 = time.perf_counter()
                result = run_demo(
                    ratings,
                    out=None,
                    seeds=1,
                    cache_dir=cache,
                    progress=False,
                    num_threads=threads,
                    device=side,
                    echo=None,
                    iterations=iterations,
                )
                dev.sync()
                wall = time.perf_counter() - t0
            sec[side] = {
                "wall_s": wall,
                "trained": result.trained,
                "timings": result.timings,
                "table": result.sweep.table.to_dict(orient="records"),
            }
            say(f"  reference sweep {side}: {wall:.1f} s ({result.trained} trainings)")
            dev.free_pool()
    if "wall_s" in sec.get("gpu", {}) and "wall_s" in sec.get("cpu", {}):
        sec["speedup"] = sec["cpu"]["wall_s"] / sec["gpu"]["wall_s"]
        g = {(r["value"], r["measure"], r["against"]): r["similarity"] for r in sec["gpu"]["table"]}
        c = {(r["value"], r["measure"], r["against"]): r["similarity"] for r in sec["cpu"]["table"]}
        shared = [key for key in g if key in c]
        sec["max_abs_similarity_diff"] = float(
            max((abs(g[key] - c[key]) for key in shared), default=float("nan"))
        )
        report.save()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        help="JSON file, or a folder for gpu-bench.json (default: $OUT, else bench-results/)",
    )
    parser.add_argument("--cpu-only", action="store_true", help="the GPU side runs on numpy")
    parser.add_argument("--quick", action="store_true", help="small data (ml-100k shape)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads")
    parser.add_argument(
        "--sections",
        default="wals,agreement,knn,sweep",
        help="comma-separated subset of wals,agreement,knn,sweep",
    )
    parser.add_argument(
        "--ks",
        help="comma-separated factor counts of the wals section (default: all of the plan)",
    )
    parser.add_argument(
        "--deadline-s",
        type=float,
        default=330.0,
        help="skip the remaining CPU measurements once this many seconds have passed",
    )
    args = parser.parse_args(argv)

    out = Path(args.out or os.environ.get("OUT") or REPO / "bench-results")
    if out.suffix != ".json":
        out = out / ("gpu-bench-quick.json" if args.quick else "gpu-bench.json")
    report = Report(out, args.deadline_s)
    tests_rc = os.environ.get("EMBSPACE_GPU_TESTS_RC")
    report.data["gpu_tests_rc"] = None if tests_rc is None else int(tests_rc)
    sections = set(args.sections.split(","))
    t_start = time.perf_counter()

    import embspace as es

    dev = Devices(args.cpu_only)
    report.data["environment"] = environment("numpy (--cpu-only)" if args.cpu_only else "cupy")
    report.data["args"] = vars(args)
    say(json.dumps(report.data["environment"]))

    preset = "ml-100k" if args.quick else "ml-20m"
    t0 = time.perf_counter()
    ratings = es.datasets.synthetic(preset=preset, seed=0)
    report.data["data"] = {
        "preset": preset,
        "n_users": ratings.n_users,
        "n_items": ratings.n_items,
        "n_ratings": ratings.n_ratings,
        "generate_s": time.perf_counter() - t0,
    }
    report.save()
    say(
        f"synthetic {preset}: {ratings.n_users:,} x {ratings.n_items:,}, {ratings.n_ratings:,} ratings"
    )

    plan = QUICK_PLAN if args.quick else FULL_PLAN
    if args.ks:
        wanted = {int(k) for k in args.ks.split(",")}
        plan = {k: v for k, v in plan.items() if k in wanted}
    if "wals" in sections:
        bench_wals(report, dev, ratings, plan, args.threads)
    if "agreement" in sections:
        # k = 10 forms the normal equations by sparse products, k = 64 by batches
        for k in (4, 8) if args.quick else (10, 64):
            bench_agreement(report, dev, ratings, k, 3, args.threads)
    if "knn" in sections:
        with guarded(report, "knn", "embeddings"), dev.gpu():
            k_emb = 8 if args.quick else 64
            model = es.WALS(factors=k_emb, iterations=3, random_state=0, device="gpu")
            vectors = model.fit(ratings, progress=False).user_factors_
            dev.free_pool()
        if "embeddings" not in report.section("knn"):
            bench_knn(report, dev, vectors, 10, args.threads)
    if "sweep" in sections:
        bench_sweep(report, dev, ratings, 5 if args.quick else 20, args.threads)

    report.data["status"] = "done"
    report.data["wall_s"] = time.perf_counter() - t_start
    report.save()
    say(f"results: {out} ({report.data['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
