"""``compare``: every requested measure on two embeddings aligned by key."""

from __future__ import annotations

import contextlib
import inspect
import json
import warnings
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..embeddings import Embeddings, align
from ..errors import EmbspaceWarning, InvalidParameterError
from ..gpu.device import module_for
from ._base import MeasureResult, get_measure
from ._blas import thin_blas
from .neighborhood import TIE_TOLERANCE, neighbor_tables

__all__ = ["DEFAULT_MEASURES", "Comparison", "bootstrap_interval", "compare"]

DEFAULT_MEASURES = ("neighbors", "cca", "unitmatch", "cka")


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def bootstrap_interval(
    values: np.ndarray, *, n_boot: int = 1000, level: float = 0.95, random_state: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (entities resampled
    with replacement ``n_boot`` times; deterministic for a ``random_state``)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise InvalidParameterError("bootstrap needs a non-empty 1-D array of per-entity values")
    if not 0.0 < level < 1.0:
        raise InvalidParameterError(f"level must lie in (0, 1), got {level!r}")
    if n_boot < 1:
        raise InvalidParameterError(f"n_boot must be positive, got {n_boot!r}")
    rng = np.random.default_rng(random_state)
    n = values.size
    means = np.empty(n_boot)
    step = max(1, (8 << 20) // n)
    for lo in range(0, n_boot, step):
        m = min(step, n_boot - lo)
        means[lo : lo + m] = values[rng.integers(0, n, size=(m, n))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


class Comparison:
    """The measures of two aligned embeddings.

    Attributes
    ----------
    results : dict[str, MeasureResult]
    scores : dict[str, float]
        Measure name -> headline score.
    details : dict[str, dict]
        Measure name -> everything else it reports (for the neighbor measures,
        among others ``tied_fraction``: the share of entities whose k-NN set
        involves ties, on either side).
    per_entity : pandas.DataFrame
        Indexed by the shared keys, one column per measure with per-entity values.
    n_shared, n_a, n_b : int
        Shared entities, and entities of each side before alignment.
    """

    def __init__(
        self,
        results: Mapping[str, MeasureResult],
        keys: list[Hashable],
        *,
        n_a: int,
        n_b: int,
        k: int,
        metric: str,
    ) -> None:
        self.results = dict(results)
        self.keys = keys
        self.n_shared = len(keys)
        self.n_a = n_a
        self.n_b = n_b
        self.k = k
        self.metric = metric

    @property
    def scores(self) -> dict[str, float]:
        return {name: r.score for name, r in self.results.items()}

    @property
    def details(self) -> dict[str, dict[str, Any]]:
        return {name: r.details for name, r in self.results.items()}

    @property
    def per_entity(self) -> pd.DataFrame:
        columns = {
            name: r.per_entity for name, r in self.results.items() if r.per_entity is not None
        }
        return pd.DataFrame(columns, index=pd.Index(self.keys, tupleize_cols=False, name="key"))

    def __getitem__(self, name: str) -> float:
        return self.results[name].score

    def bootstrap(
        self, *, n_boot: int = 1000, level: float = 0.95, random_state: int = 0
    ) -> pd.DataFrame:
        """Bootstrap intervals over entities for each per-entity measure: columns
        measure, score, low, high."""
        rows = []
        for name, r in self.results.items():
            if r.per_entity is not None:
                lo, hi = bootstrap_interval(
                    r.per_entity, n_boot=n_boot, level=level, random_state=random_state
                )
                rows.append({"measure": name, "score": r.score, "low": lo, "high": hi})
        return pd.DataFrame(rows, columns=["measure", "score", "low", "high"])

    def to_frame(self) -> pd.DataFrame:
        """One row per measure: measure, score, stdev (when it has one)."""
        rows = [
            {"measure": name, "score": r.score, "stdev": r.details.get("stdev", np.nan)}
            for name, r in self.results.items()
        ]
        return pd.DataFrame(rows, columns=["measure", "score", "stdev"])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (no per-entity arrays)."""
        out = {
            "n_shared": self.n_shared,
            "n_a": self.n_a,
            "n_b": self.n_b,
            "k": self.k,
            "metric": self.metric,
            "scores": self.scores,
            "details": self.details,
        }
        out = _jsonable(out)
        json.dumps(out)  # fail here, not in the caller, if something slipped through
        return out

    def __repr__(self) -> str:
        head = f"<Comparison of {self.n_shared:,} shared entities (A: {self.n_a:,}, B: {self.n_b:,}), k={self.k}, {self.metric}"
        width = max((len(n) for n in self.results), default=0)
        lines = [head]
        for name, r in self.results.items():
            sd = r.details.get("stdev")
            extra = f"  (stdev {sd:.4f})" if isinstance(sd, float) else ""
            lines.append(f"  {name:<{width}}  {r.score:.6f}{extra}")
        return "\n".join(lines) + ">"


def _as_embeddings(x: Any, side: str) -> Embeddings:
    if isinstance(x, Embeddings):
        return x
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise InvalidParameterError(
            f"{side} must be an Embeddings or an n x d array, got {type(x).__name__}"
        )
    return Embeddings(range(arr.shape[0]), arr)


def _accepts(fn: Any) -> set[str]:
    return {
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in ("A", "B")
    }


def compare(
    a: Any,
    b: Any,
    measures: str | Iterable[str] = DEFAULT_MEASURES,
    *,
    k: int = 10,
    metric: str = "cosine",
    num_threads: int | None = None,
    device: str = "cpu",
    **options: Any,
) -> Comparison:
    """Compare two embeddings with the named measures.

    ``a`` and ``b`` are :class:`~embspace.Embeddings` (aligned on their shared
    keys, in ``a``'s order, with an ``EmbspaceWarning`` when either side has keys
    the other lacks; :class:`~embspace.errors.NoSharedKeysError` when none are
    shared) or plain n x d arrays whose rows already correspond.

    ``k`` and ``metric`` set the neighbor measures (one k-NN table per side and
    one tie-aware overlap are computed and shared by all of them; their details
    report ``tied_fraction``, the share of entities whose k-NN set depends on
    how ties are broken, see :mod:`embspace.measures.neighborhood`); dense
    measures run on ``device``
    ("cpu", "gpu" or "auto"). Other ``options`` go to the measures: a measure's
    name maps to a dict of its own options (``unitmatch={"absolute": True}``),
    and any other keyword reaches every requested measure that takes it
    (``replacement=False``, ``threshold=0.95``, ``max_k=50``); a keyword no
    requested measure takes is an error.
    """
    names = [measures] if isinstance(measures, str) else list(measures)
    if not names:
        raise InvalidParameterError("no measure requested")
    if len(set(names)) != len(names):
        raise InvalidParameterError(f"measures repeat a name: {names}")
    specs = [get_measure(n) for n in names]
    per_measure: dict[str, dict[str, Any]] = {n: {} for n in names}
    for key, value in options.items():
        if key in per_measure:
            if not isinstance(value, Mapping):
                raise InvalidParameterError(f"options for {key!r} must be a dict, got {value!r}")
            per_measure[key].update(value)
    shared_opts = {key: v for key, v in options.items() if key not in per_measure}
    for key in shared_opts:
        if not any(key in _accepts(s.function) for s in specs):
            raise InvalidParameterError(f"no requested measure takes the option {key!r}")
    for s in specs:
        unknown = set(per_measure[s.name]) - _accepts(s.function)
        if unknown:
            raise InvalidParameterError(f"measure {s.name!r} takes no option(s) {sorted(unknown)}")
    if "keys" in shared_opts or any("keys" in o for o in per_measure.values()):
        raise InvalidParameterError("'keys' is not an option: the keys are the aligned embeddings'")

    ea, eb = _as_embeddings(a, "a"), _as_embeddings(b, "b")
    aa, bb = align(ea, eb)
    if aa.n < ea.n or aa.n < eb.n:
        warnings.warn(
            f"comparing the {aa.n:,} shared entities (A has {ea.n:,}, B has {eb.n:,})",
            EmbspaceWarning,
            stacklevel=2,
        )
    for s in specs:
        if s.needs_equal_d and aa.d != bb.d:
            from ..errors import ShapeMismatchError

            raise ShapeMismatchError(
                f"measure {s.name!r} needs the same dimension, got d = {aa.d} and {bb.d}"
            )

    def options_for(s: Any) -> dict[str, Any]:
        accepted = _accepts(s.function)
        opts = {key: v for key, v in shared_opts.items() if key in accepted}
        opts.update(per_measure[s.name])
        return opts

    # one tie-aware overlap per metric and tie tolerance (from one k-NN table per
    # side), with as many levels as the most demanding neighbor measure needs,
    # shared by all of them
    need: dict[tuple[str, float], int] = {}
    for s in specs:
        if s.family == "neighbors":
            opts = options_for(s)
            key = (opts.get("metric", metric), opts.get("tie_tolerance", TIE_TOLERANCE))
            need[key] = max(need.get(key, 0), int(opts.get("max_k") or opts.get("k", k)))
    tables = {
        key: neighbor_tables(
            aa.vectors,
            bb.vectors,
            kk,
            metric=key[0],
            tie_tolerance=key[1],
            num_threads=num_threads,
            device=device,
        )
        for key, kk in need.items()
    }
    xp = module_for(device)[1]
    dense_a = dense_b = None
    results: dict[str, MeasureResult] = {}
    # thin matrices on the CPU: BLAS on one thread (see ``_blas``)
    blas = thin_blas(max(aa.d, bb.d)) if xp is np else contextlib.nullcontext()
    with blas:
        for s in specs:
            opts = options_for(s)
            if s.family == "neighbors":
                opts = {"k": k, "metric": metric, **opts}
                opts["tables"] = tables[(opts["metric"], opts.get("tie_tolerance", TIE_TOLERANCE))]
                results[s.name] = s.function(aa.vectors, bb.vectors, **opts)
            else:
                if dense_a is None:
                    dense_a = xp.asarray(aa.vectors, dtype=xp.float64)
                    dense_b = xp.asarray(bb.vectors, dtype=xp.float64)
                if "keys" in _accepts(s.function):
                    opts["keys"] = aa.keys  # e.g. rsa samples by key
                results[s.name] = s.function(dense_a, dense_b, xp=xp, **opts)
    return Comparison(results, aa.keys, n_a=ea.n, n_b=eb.n, k=k, metric=metric)
