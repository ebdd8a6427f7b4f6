"""Writing a sweep out: a JSON-ready dict, and the table, results, JSON and plot
as files (each written atomically)."""

from __future__ import annotations

import json
import math
from collections.abc import Hashable
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from .._atomic import write_atomic
from ..jsonio import json_default, plain_value, to_jsonable

__all__ = ["Exportable", "records", "save", "to_dict"]


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
        "estimator_params": to_jsonable(sweep.estimator.get_params(deep=False), fallback=repr),
        "data_fingerprint": sweep.ratings.fingerprint,
        "table": records(sweep.table),
        "results": records(sweep.results),
        "noise": records(sweep.noise),
        "runs": [r.to_dict() for r in sweep.runs],
    }


def save(sweep: Exportable, folder: str | Path, stem: str | None = None) -> dict[str, Path]:
    """Write ``<stem>_table.csv``, ``<stem>_results.csv``, ``<stem>.json`` and
    ``<stem>.png`` into ``folder`` (created), each atomically. ``stem``
    defaults to ``sweep_<param>``. Returns ``{"table", "results", "json",
    "png"}`` -> path."""
    from ..plots import save_figure

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = stem or f"sweep_{sweep.param}"
    paths = {
        "table": folder / f"{stem}_table.csv",
        "results": folder / f"{stem}_results.csv",
        "json": folder / f"{stem}.json",
        "png": folder / f"{stem}.png",
    }
    write_atomic(paths["table"], sweep.table.to_csv(index=False).encode())
    write_atomic(paths["results"], sweep.results.to_csv(index=False).encode())
    write_atomic(
        paths["json"],
        json.dumps(to_dict(sweep), indent=2, default=json_default, allow_nan=True).encode(),
    )
    save_figure(sweep.plot(), paths["png"])
    return paths
