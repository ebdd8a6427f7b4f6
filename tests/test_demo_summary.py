"""The demo's summary in words on hand-made sweep tables: each sentence's numbers are the table's."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from embspace.demo import plateau, summarize, unstable_reference
from embspace.sweeps.statistics import smallest_p_value

VALUES = [0.0, 0.5, 1.0, 2.0]
MEASURES = ("neighbors", "cka")
NAN = float("nan")


def _fake(seeds: int, p_adjusted: dict[tuple[float, str], float]) -> SimpleNamespace:
    """4 values x 2 measures against w0=0 and against SVD, with floors,
    calibrated scores and adjusted p-values chosen by hand."""
    floors = {  # value -> measure -> floor; w0=0 is the least stable on cka only
        0.0: {"neighbors": 0.60, "cka": 0.47},
        0.5: {"neighbors": 0.55, "cka": 0.96},
        1.0: {"neighbors": 0.70, "cka": 0.99},
        2.0: {"neighbors": 0.72, "cka": 0.996},
    }
    ref_sim = {0.5: (0.50, 0.30), 1.0: (0.40, 0.25), 2.0: (0.35, 0.20)}
    # against SVD: neighbors stops rising after 1 (2 is higher by less than a stdev),
    # cka still rises at 2
    svd_sim = {
        "neighbors": [(0.20, 0.01), (0.30, 0.01), (0.40, 0.02), (0.41, 0.02)],
        "cka": [(0.50, 0.01), (0.60, 0.01), (0.70, 0.01), (0.80, 0.01)],
    }
    rows = []
    for i, v in enumerate(VALUES):
        for j, m in enumerate(MEASURES):
            is_ref = v == 0.0
            sim = floors[0.0][m] if is_ref else ref_sim[v][j]
            p = NAN if is_ref else p_adjusted[(v, m)]
            rows.append(
                {
                    "value": v,
                    "measure": m,
                    "against": "reference",
                    "similarity": sim,
                    "stdev": 0.01,
                    "floor": floors[v][m],
                    "reference_floor": floors[0.0][m],
                    "calibrated": 1.0 if is_ref else round(0.1 * (i + 1) + 0.01 * j, 4),
                    "p_value": p,
                    "p_adjusted": p,
                    "changed": pd.NA if is_ref else p <= 0.05,
                }
            )
            s, sd = svd_sim[m][i]
            rows.append(
                {
                    "value": v,
                    "measure": m,
                    "against": "svd",
                    "similarity": s,
                    "stdev": sd,
                    "floor": floors[v][m],
                    "reference_floor": NAN,
                    "calibrated": 0.5,
                    "p_value": NAN,
                    "p_adjusted": NAN,
                    "changed": pd.NA,
                }
            )
    return SimpleNamespace(
        table=pd.DataFrame(rows),
        seeds=list(range(seeds)),
        param="unobserved_weight",
        reference=0.0,
        values=list(VALUES),
        measures=MEASURES,
        runs=[],
    )


def _p(changed_pairs: set[tuple[float, str]]) -> dict[tuple[float, str], float]:
    return {
        (v, m): (0.01 if (v, m) in changed_pairs else 0.4) for v in VALUES[1:] for m in MEASURES
    }


def _line(lines: list[str], start: str) -> str:
    found = [ln for ln in lines if ln.startswith(start)]
    assert len(found) == 1, (start, lines)
    return found[0]


def test_verdicts_per_value_with_enough_seeds() -> None:
    sweep = _fake(6, _p({(0.5, "neighbors"), (1.0, "neighbors"), (1.0, "cka"), (2.0, "cka")}))
    table = sweep.table
    lines = summarize(sweep)
    assert lines[0].startswith("A value has changed the space on a measure when")
    assert "over 6 seeds, 6 tests" in lines[0]
    want = {
        0.5: "changed on neighbors, not shown on cka",
        1.0: "changed on every measure",
        2.0: "changed on cka, not shown on neighbors",
    }
    for v, verdict in want.items():
        line = _line(lines, f"w0 = {v:g} against w0=0: ")
        assert verdict in line
        for m in MEASURES:
            cal = table[(table["against"] == "reference") & (table["value"] == v)]
            cal = cal.set_index("measure").loc[m, "calibrated"]
            assert f"{m} {cal:.2f}" in line
    # no value changed on any measure
    quiet = summarize(_fake(6, _p(set())))
    assert "no change shown on any measure" in _line(quiet, "w0 = 2 against")


def test_too_few_seeds_gives_no_verdict() -> None:
    sweep = _fake(3, _p({(1.0, "cka")}))  # p-values as if; 3 seeds cannot reach 0.05 over 6 tests
    lines = summarize(sweep)
    first = lines[0]
    p_min = smallest_p_value(3)
    assert first.startswith("With 3 seeds") and f"{p_min:.3g}" in first
    assert "6 tests" in first and 6 * p_min > 0.05
    # the seeds that would be needed: the first s with 6 * p_min(s) <= 0.05
    need = next(s for s in range(2, 20) if 6 * smallest_p_value(s) <= 0.05)
    assert f"({need} seeds are needed)" in first
    assert not any("changed on" in ln or "no change shown" in ln for ln in lines)
    assert _line(lines, "w0 = 1 against w0=0: calibrated neighbors 0.30 and cka 0.31")


def test_one_seed() -> None:
    lines = summarize(_fake(1, _p(set())))
    assert lines[0].startswith("With one seed there is no noise floor and no test")
    assert not any("calibrated" in ln for ln in lines)


def test_unstable_reference_sentence_has_the_table_floors() -> None:
    sweep = _fake(6, _p(set()))
    table = sweep.table
    found = unstable_reference(table, 0.0, MEASURES)
    assert list(found) == ["cka"]  # on neighbors w0=0.5 (0.55) is below the reference (0.60)
    ref = table[(table["against"] == "reference") & (table["measure"] == "cka")]
    own = float(ref.loc[ref["value"] == 0.0, "floor"].iloc[0])
    rest = ref.loc[ref["value"] != 0.0, "floor"]
    line = _line(summarize(sweep), "w0 = 0 is an unstable reference")
    assert f"agree only {own:.3f} on cka, against {rest.min():.3f}-{rest.max():.3f}" in line
    assert "the least stable value on cka" in line
    assert "0.47" in line and "0.960-0.996" in line


def test_plateau_against_svd() -> None:
    sweep = _fake(6, _p(set()))
    line = _line(summarize(sweep), "Similarity to SVD stops rising")
    svd = sweep.table[sweep.table["against"] == "svd"]
    for m, where in (("neighbors", "at w0 = 1 on neighbors"), ("cka", "up to w0 = 2 on cka")):
        part = svd[svd["measure"] == m].sort_values("value")
        y, sd = part["similarity"].to_numpy(), part["stdev"].to_numpy()
        # an independent reading of the rule: the first value after which nothing is higher
        # by more than a stdev
        first = min(
            i
            for i in range(len(y))
            if all(y[j] - y[i] <= max(sd[i], sd[j]) for j in range(i + 1, len(y)))
        )
        assert where in line
        assert re.search(rf"w0 = {part['value'].iloc[first]:g} on {m}", line)
    assert "still rises up to w0 = 2 on cka" in line


@pytest.mark.parametrize(
    ("y", "sd", "want"),
    [
        ([0.1, 0.2, 0.3], [0.0, 0.0, 0.0], 2),  # rises to the end
        ([0.3, 0.2, 0.1], [0.0, 0.0, 0.0], 0),  # never rises
        ([0.1, 0.5, 0.52, 0.505], [0.01, 0.01, 0.03, 0.01], 1),  # 0.52 within 0.03 of 0.5
        ([0.1, 0.5, 0.52, 0.51], [0.01, 0.01, 0.01, 0.01], 2),
        ([0.1, 0.5, 0.4, 0.9], [0.01, 0.01, 0.01, 0.01], 3),  # a later rise counts
    ],
)
def test_plateau_rule(y, sd, want) -> None:
    assert plateau(list(range(len(y))), y, sd) == want
    assert plateau([0, 1], [0.1, np.nan], [0.0, 0.0]) is None
