"""Writing a sweep out: a JSON-ready dict, and the table, results, JSON and plot
as files (each written atomically); what an HTML report needs
(:func:`report_data`), saved beside them and read back (:func:`load_report_data`)
so that ``embspace report RESULTS_DIR`` rebuilds the report of a saved sweep."""

from __future__ import annotations

import json
import math
import platform
import warnings
from collections.abc import Hashable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from .._atomic import write_atomic
from ..errors import InvalidParameterError, MissingFileError
from ..jsonio import json_default, key_from_json, key_to_json, plain_value, to_jsonable
from ..report import ReportData
from .changes import CHANGES_COLUMNS
from .plan import REFERENCE, same_value
from .views import TABLE_COLUMNS

__all__ = [
    "REPORT_ENTITIES",
    "REPORT_FILES",
    "Exportable",
    "load_report_data",
    "records",
    "report_data",
    "save",
    "to_dict",
]

#: Entities per value whose neighbor lists the report shows side by side.
REPORT_ENTITIES = 6

#: Packages whose versions a report records (those installed).
VERSIONED = (
    "embspace",
    "numpy",
    "scipy",
    "scikit-learn",
    "pandas",
    "plotly",
    "implicit",
    "gensim",
    "cupy-cuda12x",
)

#: The files of a results folder, by kind: ``<stem>`` + suffix. The last three
#: (written since the HTML report) are what :func:`load_report_data` needs
#: beside the JSON.
REPORT_FILES = {
    "table": "_table.csv",
    "results": "_results.csv",
    "json": ".json",
    "png": ".png",
    "changes": "_changes.csv",
    "neighbors": "_neighbors.json",
    "provenance": "_provenance.json",
}


class Exportable(Protocol):
    """What the exporters read of a sweep (:class:`~embspace.Sweep` has it all);
    a protocol, so this module needs no import of the sweep itself."""

    param: str
    values: list[Any]
    reference: Any
    seeds: list[int]
    measures: Any
    entities: str
    k: int
    metric: str
    estimator: Any
    ratings: Any
    pairing: str
    gauge: str | None
    skipped_measures: dict[str, str]
    device: str
    num_threads: int | None

    @property
    def test(self) -> dict[str, Any]: ...

    @property
    def table(self) -> pd.DataFrame: ...

    @property
    def results(self) -> pd.DataFrame: ...

    @property
    def noise(self) -> pd.DataFrame: ...

    @property
    def runs(self) -> list[Any]: ...

    def plot(self) -> Any: ...

    def changes(self, value: Any, against: str = ..., measure: str = ...) -> pd.DataFrame: ...

    def embeddings(self, value: Any, seed: int | None = None) -> Any: ...


def records(frame: pd.DataFrame) -> list[dict[str, Hashable]]:
    """The rows of ``frame`` as dicts of plain values (NaN and missing values as None)."""
    return [
        {
            k: (None if v is pd.NA or (isinstance(v, float) and math.isnan(v)) else plain_value(v))
            for k, v in row.items()
        }
        for row in frame.to_dict(orient="records")
    ]


def to_dict(sweep: Exportable) -> dict[str, Any]:
    """Configuration (with the pairing, the gauge, the measures skipped and what
    the test can reach with these seeds), table, per-pair results, floor pairs
    and runs, JSON-ready."""
    return {
        "param": sweep.param,
        "values": sweep.values,
        "reference": sweep.reference,
        "seeds": sweep.seeds,
        "measures": list(sweep.measures),
        "entities": sweep.entities,
        "k": sweep.k,
        "metric": sweep.metric,
        "pairing": sweep.pairing,
        "gauge": sweep.gauge,
        "skipped_measures": dict(sweep.skipped_measures),
        "test": to_jsonable(sweep.test, finite=True),
        "estimator": type(sweep.estimator).__name__,
        "estimator_params": to_jsonable(
            sweep.estimator.get_params(deep=False), fallback=describe_object
        ),
        "data_fingerprint": sweep.ratings.fingerprint,
        "table": records(sweep.table),
        "results": records(sweep.results),
        "noise": records(sweep.noise),
        "runs": [r.to_dict() for r in sweep.runs],
    }


def describe_object(obj: Any) -> str:
    """A parameter value that JSON cannot hold, as text that is the same in
    every process: a function or class by its module and qualified name
    (``mymodule.train``; its ``repr`` holds a memory address), anything else
    by its ``repr``."""
    name = getattr(obj, "__qualname__", None)
    if callable(obj) and isinstance(name, str):
        module = getattr(obj, "__module__", None)
        return f"{module}.{name}" if module else name
    return repr(obj)


def _versions() -> dict[str, str]:
    """Python and the installed packages of :data:`VERSIONED` -> version."""
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if "embspace" not in out:  # run from a source tree: the compiled core knows
        from .._core import __version__

        out["embspace"] = str(__version__)
    out["platform"] = platform.platform()
    return out


def changes_measure(measures: Any) -> str:
    """The neighbor measure of the report's per-entity changes: the sweep's first
    neighbor-based measure, else ``"neighbors"``."""
    from ..measures import MEASURES

    for m in measures:
        if m in MEASURES and MEASURES[m].neighbor_based:
            return str(m)
    return "neighbors"


def report_data(sweep: Exportable, n_entities: int = REPORT_ENTITIES) -> ReportData:
    """What the HTML report of a finished ``sweep`` shows, as plain data
    (:class:`embspace.report.ReportData`): its configuration and table, the
    per-entity changes of every value other than the reference (against the
    reference, measure :func:`changes_measure`), the ``n_entities`` most changed
    entities of each value (smallest ``q_value``, then furthest below their
    floor: lowest ``similarity - floor``, then lowest similarity) with
    their ``k`` neighbors in a reference run and in a run of the value (the
    seeds :meth:`~embspace.Sweep.comparison` pairs by default), the runs, and
    the provenance (package versions, dataset, time). Warnings raised while
    computing the changes become the report's notes."""
    from ..neighbors import NeighborTable

    config = to_dict(sweep)
    measure = changes_measure(sweep.measures)
    ref = sweep.reference
    seeds = list(sweep.seeds)
    frames = []
    neighbors: list[dict[str, Any]] = []
    notes: list[str] = []
    tables: dict[tuple[int, Any], Any] = {}

    def table_of(value_index: int, value: Any, seed: int) -> Any:
        if (value_index, seed) not in tables:
            tables[(value_index, seed)] = NeighborTable(
                sweep.embeddings(value, seed),
                metric=sweep.metric,
                num_threads=sweep.num_threads,
                device=sweep.device,
            )
        return tables[(value_index, seed)]

    ref_index = next(i for i, v in enumerate(sweep.values) if same_value(v, ref))
    value_seed = seeds[0]
    ref_seed = seeds[1] if sweep.pairing == "cross" and len(seeds) > 1 else seeds[0]
    for vi, value in enumerate(sweep.values):
        if vi == ref_index:
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            frame = sweep.changes(value, against=REFERENCE, measure=measure)
        for w in caught:
            text = str(w.message)
            if text not in notes:
                notes.append(text)
        frame = frame.copy()
        frame.insert(0, "value", [value] * len(frame))
        frames.append(frame)
        below = frame.assign(below=frame["similarity"] - frame["floor"])
        order = below.sort_values(
            ["q_value", "below", "similarity"], na_position="last", kind="stable"
        ).index[:n_entities]
        ref_table = table_of(ref_index, ref, ref_seed)
        val_table = table_of(vi, value, value_seed)
        for row in order:
            r = frame.loc[row]
            entries = []
            for t in (ref_table, val_table):
                nb = t.neighbors(row=int(row), k=sweep.k)
                entries.append(
                    [
                        {"title": str(title), "score": float(score)}
                        for title, score in zip(nb["title"], nb["score"], strict=True)
                    ]
                )
            neighbors.append(
                {
                    "value": value,
                    "key": key_to_json(r["key"]),
                    "title": str(r["title"]),
                    "n_ratings": int(r["n_ratings"]),
                    "similarity": float(r["similarity"]),
                    "floor": float(r["floor"]),
                    "q_value": float(r["q_value"]),
                    "reference_seed": ref_seed,
                    "value_seed": value_seed,
                    "reference": entries[0],
                    "changed": entries[1],
                }
            )
    columns = ["value", *CHANGES_COLUMNS]
    changes = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    r = sweep.ratings
    provenance = {
        "versions": _versions(),
        "dataset": _dataset_sizes(r),
        "changes_measure": measure,
        "device": sweep.device,
        "num_threads": sweep.num_threads,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "notes": notes,
    }
    return ReportData(
        config={k: v for k, v in config.items() if k not in ("table", "results", "noise", "runs")},
        table=sweep.table,
        changes=changes,
        neighbors=neighbors,
        runs=config["runs"],
        provenance=provenance,
    )


def _dataset_sizes(data: Any) -> dict[str, Any]:
    """Name, fingerprint and sizes of a sweep's data: users, items and ratings
    of a :class:`~embspace.Ratings`; sentences, tokens and distinct words of a
    token corpus (anything with ``n_tokens`` and ``counts()``)."""
    out: dict[str, Any] = {"name": getattr(data, "name", None), "fingerprint": data.fingerprint}
    matrix = getattr(data, "matrix", None)
    if matrix is not None:
        out.update(
            n_users=int(matrix.shape[0]), n_items=int(matrix.shape[1]), n_ratings=int(matrix.nnz)
        )
    elif hasattr(data, "n_tokens") and hasattr(data, "counts"):
        out.update(n_sentences=len(data), n_tokens=int(data.n_tokens), n_words=len(data.counts()))
    return out


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, default=json_default, allow_nan=True).encode()


def save(sweep: Exportable, folder: str | Path, stem: str | None = None) -> dict[str, Path]:
    """Write ``<stem>_table.csv``, ``<stem>_results.csv``, ``<stem>.json``,
    ``<stem>.png`` and what the HTML report needs besides (:func:`report_data`):
    ``<stem>_changes.csv`` (the per-entity changes of every value, keys as
    JSON), ``<stem>_neighbors.json`` (the most changed entities' neighbor
    lists) and ``<stem>_provenance.json`` (versions, dataset, time) into
    ``folder`` (created), each atomically. ``stem`` defaults to
    ``sweep_<param>``. Returns kind -> path, kinds :data:`REPORT_FILES`."""
    from ..plots import save_figure

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = stem or f"sweep_{sweep.param}"
    paths = {kind: folder / f"{stem}{suffix}" for kind, suffix in REPORT_FILES.items()}
    data = report_data(sweep)
    write_atomic(paths["table"], sweep.table.to_csv(index=False).encode())
    write_atomic(paths["results"], sweep.results.to_csv(index=False).encode())
    write_atomic(paths["json"], _dumps(to_dict(sweep)))
    save_figure(sweep.plot(), paths["png"])
    changes = data.changes.copy()
    changes["key"] = [json.dumps(key_to_json(k)) for k in changes["key"]]
    write_atomic(paths["changes"], changes.to_csv(index=False).encode())
    write_atomic(paths["neighbors"], _dumps(to_jsonable(data.neighbors)))
    write_atomic(paths["provenance"], _dumps(to_jsonable(data.provenance)))
    return paths


def _stems(folder: Path) -> list[str]:
    suffix = REPORT_FILES["table"]
    return sorted(
        p.name[: -len(suffix)]
        for p in folder.glob(f"*{suffix}")
        if (folder / (p.name[: -len(suffix)] + REPORT_FILES["json"])).is_file()
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidParameterError(f"{path} is not a sweep results file: {exc}") from None


def load_report_data(folder: str | Path, stem: str | None = None) -> ReportData:
    """Read back what :func:`save` wrote into ``folder`` for the report
    (:class:`embspace.report.ReportData`). ``stem``: which sweep, when the folder
    holds several (default: the only one). A folder without results, or written
    before the report's files existed, is a
    :class:`~embspace.errors.MissingFileError` naming what is missing; a damaged
    file an :class:`~embspace.errors.InvalidParameterError`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(f"results folder {folder} does not exist")
    if stem is None:
        stems = _stems(folder)
        if not stems:
            raise MissingFileError(
                f"{folder} holds no sweep results (no <stem>_table.csv beside <stem>.json): "
                "write them with `embspace sweep ... --out DIR`"
            )
        if len(stems) > 1:
            raise InvalidParameterError(
                f"{folder} holds several sweeps ({', '.join(stems)}): choose one with --stem"
            )
        stem = stems[0]
    paths = {kind: folder / f"{stem}{suffix}" for kind, suffix in REPORT_FILES.items()}
    needed = ("json", "changes", "neighbors", "provenance")
    missing = [paths[k].name for k in needed if not paths[k].is_file()]
    if missing:
        raise MissingFileError(
            f"{folder} lacks {', '.join(missing)} (results written before embspace made "
            "reports?): rerun the sweep with --out (its runs are cached)"
        )
    saved = _read_json(paths["json"])
    neighbors = _read_json(paths["neighbors"])
    provenance = _read_json(paths["provenance"])
    if not isinstance(saved, dict) or "table" not in saved or "param" not in saved:
        raise InvalidParameterError(f"{paths['json']} is not a sweep results file")
    table = pd.DataFrame(saved["table"], columns=list(TABLE_COLUMNS))
    for col in TABLE_COLUMNS:
        if col not in ("value", "measure", "against", "changed", "converged"):
            table[col] = pd.to_numeric(table[col], errors="coerce").astype(np.float64)
    table["changed"] = table["changed"].astype("boolean")
    table.attrs.update(
        param=saved["param"],
        reference=saved["reference"],
        seeds=len(saved["seeds"]),
        pairing=saved.get("pairing"),
    )
    try:
        # every column as text first: keys, titles and values keep their spelling
        changes = pd.read_csv(paths["changes"], dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InvalidParameterError(f"{paths['changes']} is not a changes table: {exc}") from None
    lacking = [c for c in ("value", *CHANGES_COLUMNS) if c not in changes.columns]
    if lacking:
        raise InvalidParameterError(f"{paths['changes']} lacks the column(s) {lacking}")
    try:
        changes["key"] = [key_from_json(json.loads(k)) for k in changes["key"]]
    except json.JSONDecodeError as exc:
        raise InvalidParameterError(f"{paths['changes']}: a key is not JSON: {exc}") from None
    for col in CHANGES_COLUMNS:
        if col not in ("key", "title", "changed"):
            changes[col] = pd.to_numeric(changes[col], errors="coerce")
    changes["changed"] = changes["changed"].map({"True": True, "False": False}).astype("boolean")
    # the values as the sweep's, typed (the CSV holds str(value))
    by_text = {str(v): v for v in saved["values"]}
    changes["value"] = [by_text.get(v, v) for v in changes["value"]]
    return ReportData(
        config={k: v for k, v in saved.items() if k not in ("table", "results", "noise", "runs")},
        table=table,
        changes=changes,
        neighbors=list(neighbors),
        runs=list(saved.get("runs", [])),
        provenance=dict(provenance),
    )
