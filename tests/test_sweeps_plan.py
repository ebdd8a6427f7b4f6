"""The parts of a sweep: its plan (runs, pairs, checks before training), its
statistics, its comparisons (one k-NN table per run), and the import floors."""

from __future__ import annotations

import ast
import random
import warnings
from pathlib import Path

import embspace as es
import numpy as np
import pandas as pd
import pytest
from embspace.errors import InvalidParameterError, ShapeMismatchError
from embspace.measures import DEFAULT_MEASURES as DEFAULT
from embspace.sweeps import Sweep
from embspace.sweeps.plan import NOISE, REFERENCE, PairKey, make_plan, run_dimension
from embspace.sweeps.statistics import noise_floor, row_statistics, stdev

PACKAGE = Path(es.__file__).parent


def _plan(check: bool = True, **kw):
    if not check:
        from embspace.sweeps.plan import SweepPlan

        plan = _plan(**{k: v for k, v in kw.items() if k != "measures"})
        return SweepPlan(plan.param, plan.values, plan.reference_index, plan.seeds, kw["measures"])
    args = {
        "estimator_params": es.WALS(factors=6).get_params(),
        "estimator_name": "WALS",
        "param": "unobserved_weight",
        "values": [0.0, 0.1, 1.0],
        "reference": 0.1,
        "seeds": 3,
        "measures": ("neighbors", "cka"),
        **kw,
    }
    return make_plan(**args)


# ---------------------------------------------------------------------- plan
def test_runs_and_pairs_of_a_plan() -> None:
    plan = _plan()
    assert plan.reference == 0.1 and plan.reference_index == 1 and plan.seeds == [0, 1, 2]
    assert plan.pairing == plan.effective_pairing == "cross"
    assert plan.runs == [(1, 0), (1, 1), (1, 2), (0, 0), (0, 1), (0, 2), (2, 0), (2, 1), (2, 2)]
    pairs = plan.pairs()
    reference = [p for p in pairs if p.against == REFERENCE and not p.chance]
    noise = [p for p in pairs if p.against == NOISE]
    chance = [p for p in pairs if p.chance]
    # every value against the reference runs of the other seeds: all ordered
    # pairs of distinct seeds, s (s - 1) per value; none for the reference itself
    assert sorted((p.value_index, p.seed, p.other_seed) for p in reference) == [
        (v, s, o) for v in (0, 2) for s in range(3) for o in range(3) if o != s
    ]
    # the floor of every value: its pairs of distinct seeds
    assert sorted((p.value_index, p.seed, p.other_seed) for p in noise) == [
        (v, a, b) for v in range(3) for a, b in [(0, 1), (0, 2), (1, 2)]
    ]
    # one chance pair per row: reference run of the first seed, run of the last
    assert [(p.value_index, p.seed, p.other_seed) for p in chance] == [
        (0, 2, 0),
        (1, 2, 0),
        (2, 2, 0),
    ]
    assert len(pairs) == 12 + 9 + 3
    assert len(plan.pairs(["svd"])) == 24 + 9 + 3
    # what each pair compares, in order
    assert plan.sides(PairKey(2, 1, 0, REFERENCE)) == ((1, 0), (2, 1))
    assert plan.sides(PairKey(0, 0, 2, NOISE)) == ((0, 0), (0, 2))
    assert plan.sides(PairKey(0, 2, 2, "svd")) == ((0, 2), "svd")
    assert plan.sides(PairKey(2, 2, 0, REFERENCE, chance=True)) == ((1, 0), (2, 2))
    # no pair of runs that share a seed, except the chance pairs of one seed
    for p in pairs:
        a, b = plan.sides(p)
        assert a[1] != b[1]
    # every pair belongs to the runs it compares
    for p in plan.pairs(["svd"]):
        for side in plan.sides(p):
            if not isinstance(side, str):
                assert p in plan.pairs_of_run(side, ["svd"])


def test_same_seed_pairing_and_one_seed() -> None:
    plan = _plan(pairing="same_seed")
    same = [p for p in plan.pairs() if p.against == REFERENCE and p.seed == p.other_seed]
    # today's pairs (the reference run of the same seed; for the reference, itself)
    # on top of the cross pairs, which the floors and the test need
    assert sorted((p.value_index, p.seed) for p in same if not p.chance) == sorted(plan.runs)
    assert len(plan.pairs()) == 24 + 9
    one = _plan(seeds=1)
    assert one.pairing == "cross" and one.effective_pairing == "same_seed"
    assert [(p.value_index, p.seed, p.other_seed, p.chance) for p in one.pairs()] == [
        (0, 0, 0, False),
        (0, 0, 0, True),
        (1, 0, 0, False),
        (1, 0, 0, True),
        (2, 0, 0, False),
        (2, 0, 0, True),
    ]
    with pytest.raises(InvalidParameterError, match="pairing"):
        _plan(pairing="paired")


def test_plan_checks_measures_against_the_dimensions_before_training(tiny, monkeypatch) -> None:
    fits: list[int] = []
    original = es.SVD.fit

    def counting_fit(self, *args, **kwargs):
        fits.append(self.factors)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(es.SVD, "fit", counting_fit)
    # measures named by the caller that cannot apply are refused
    with pytest.raises(ShapeMismatchError, match=r"'unitmatch'.*d = 4 and 6"):
        Sweep(tiny, es.SVD(random_state=0), "factors", [4, 6], measures=DEFAULT, cache_dir=False)
    with pytest.raises(ShapeMismatchError, match="'procrustes'"):
        Sweep(tiny, es.SVD(), "factors", [4, 6], measures=["cka", "procrustes"], cache_dir=False)
    # the default measures that cannot apply are skipped, with a note, before training
    with pytest.warns(es.errors.EmbspaceWarning, match=r"'unitmatch' skipped.*d = 4, 6"):
        skipping = Sweep(tiny, es.SVD(random_state=0), "factors", [4, 6], cache_dir=False)
    assert fits == []
    assert skipping.measures == tuple(m for m in DEFAULT if m != "unitmatch")
    assert set(skipping.skipped_measures) == {"unitmatch"}
    assert run_dimension({"factors": 8}) == 8
    assert run_dimension({"factors": None}) is None and run_dimension({}) is None
    # measures that allow different dimensions compare runs of different d
    sweep = Sweep(
        tiny,
        es.SVD(random_state=0),
        "factors",
        [4, 6],
        measures=["neighbors", "cca", "cka"],
        cache_dir=False,
    ).run(progress=False)
    assert fits == [4, 6]
    row = sweep.table[(sweep.table["value"] == 6) & (sweep.table["measure"] == "cca")]
    want = es.compare(sweep.embeddings(4), sweep.embeddings(6), measures=["cca"]).scores["cca"]
    assert row["similarity"].item() == want
    assert sweep.embeddings(6).d == 6 and sweep.embeddings(4).d == 4
    # the default measures without a dimension change are all kept, silently
    with warnings.catch_warnings():
        warnings.simplefilter("error", es.errors.EmbspaceWarning)
        kept = Sweep(tiny, es.WALS(factors=4), "unobserved_weight", [0.0, 1.0], seeds=5)
    assert kept.measures == DEFAULT and kept.skipped_measures == {}


def test_settings_are_checked_before_training(tiny) -> None:
    def make(**kw):
        args = {"param": "unobserved_weight", "values": [0.0, 1.0], "cache_dir": False, **kw}
        return Sweep(tiny, es.WALS(factors=4), **args)

    with pytest.raises(InvalidParameterError, match="k = 300 neighbors"):
        make(k=300)  # tiny has 300 items
    assert make(k=299, measures=["cka"]).k == 299  # no neighbor measure: k unused
    with pytest.raises(InvalidParameterError, match="metric"):
        make(metric="cosin")
    with pytest.raises(InvalidParameterError, match="num_threads"):
        make(num_threads=0)
    with pytest.raises(InvalidParameterError, match="at least one measure"):
        make(measures=[])
    with pytest.raises(InvalidParameterError, match="repeat"):
        make(measures=["cka", "cka"])
    assert make(measures="cka").measures == ("cka",)
    with pytest.raises(InvalidParameterError, match="device"):
        make(device="tpu")
    # the device is resolved once, at construction
    auto = make(device="auto")
    assert auto.device == es.device.module_for("auto")[0]
    assert auto.device in ("cpu", "gpu")


# ---------------------------------------------------------------------- statistics
def test_statistics_are_exact_and_do_not_depend_on_the_order_of_the_pairs() -> None:
    plan = _plan(seeds=4, measures=("m1", "m2"), check=False)
    rng = np.random.default_rng(0)
    pairs = plan.pairs(["svd"])
    scores = {p: {"m1": float(rng.random()), "m2": float(rng.random())} for p in pairs}
    shuffled_keys = list(scores)
    random.Random(1).shuffle(shuffled_keys)
    shuffled = {p: scores[p] for p in shuffled_keys}

    def order(p: PairKey) -> tuple[int, ...]:
        return plan.order(p, ["svd"])

    a = row_statistics(plan, scores, ["svd"], order)
    # bit for bit (NaN where there is no test)
    assert pd.DataFrame(a).equals(pd.DataFrame(row_statistics(plan, shuffled, ["svd"], order)))
    assert noise_floor(scores, ("m1", "m2"), 1) == noise_floor(shuffled, ("m1", "m2"), 1)
    # groups: reference then svd; within a group measure, then value
    assert [(s.against, s.measure, s.value_index) for s in a[:4]] == [
        (REFERENCE, "m1", 0),
        (REFERENCE, "m1", 1),
        (REFERENCE, "m1", 2),
        (REFERENCE, "m2", 0),
    ]
    assert len(a) == 2 * 3 * 2
    row = next(s for s in a if (s.against, s.measure, s.value_index) == (REFERENCE, "m1", 2))
    # similarity: every ordered pair of distinct seeds (reference seed o, seed s of value 2)
    sims = [scores[PairKey(2, s, o, REFERENCE)]["m1"] for s in range(4) for o in range(4) if o != s]
    assert row.n_pairs == 12 and row.similarity == pytest.approx(np.mean(sims), rel=1e-12)
    assert row.stdev == pytest.approx(np.std(sims, ddof=1), rel=1e-12)
    floor = [scores[PairKey(2, a, b, NOISE)]["m1"] for a in range(4) for b in range(a + 1, 4)]
    ref_floor = [scores[PairKey(1, a, b, NOISE)]["m1"] for a in range(4) for b in range(a + 1, 4)]
    assert row.floor == pytest.approx(np.mean(floor), rel=1e-12)
    assert row.floor_stdev == pytest.approx(np.std(floor, ddof=1), rel=1e-12)
    assert row.reference_floor == pytest.approx(np.mean(ref_floor), rel=1e-12)
    chance = scores[PairKey(2, 3, 0, REFERENCE, chance=True)]["m1"]
    assert row.chance == chance
    both = (np.mean(floor) + np.mean(ref_floor)) / 2
    assert row.calibrated == pytest.approx((np.mean(sims) - chance) / (both - chance), rel=1e-9)
    assert 1 / 35 <= row.p_value <= 1
    # the reference row is its own floor, without a test
    ref = next(s for s in a if (s.against, s.measure, s.value_index) == (REFERENCE, "m1", 1))
    assert ref.similarity == pytest.approx(np.mean(ref_floor), rel=1e-12) and ref.n_pairs == 6
    assert np.isnan(ref.p_value) and ref.calibrated == pytest.approx(1.0, rel=1e-12)
    # against svd: mean over seeds, the value's own floor, no reference floor, no test
    svd = next(s for s in a if (s.against, s.measure, s.value_index) == ("svd", "m2", 2))
    sims = [scores[PairKey(2, s, s, "svd")]["m2"] for s in range(4)]
    assert svd.similarity == pytest.approx(np.mean(sims), rel=1e-12) and svd.n_pairs == 4
    floor = [scores[PairKey(2, a, b, NOISE)]["m2"] for a in range(4) for b in range(a + 1, 4)]
    assert svd.floor == pytest.approx(np.mean(floor), rel=1e-12)
    assert np.isnan(svd.reference_floor) and np.isnan(svd.p_value)
    chance = scores[PairKey(2, 0, 0, "svd", chance=True)]["m2"]
    assert svd.calibrated == pytest.approx((np.mean(sims) - chance) / (svd.floor - chance))
    m, sd, n = noise_floor(scores, ("m2",), 1)["m2"]
    ref_floor = [scores[PairKey(1, a, b, NOISE)]["m2"] for a in range(4) for b in range(a + 1, 4)]
    assert n == 6 and m == pytest.approx(sum(ref_floor) / 6, rel=1e-12)
    assert sd == pytest.approx(np.std(ref_floor, ddof=1), rel=1e-12)
    assert np.isnan(stdev([0.5])) and np.isnan(noise_floor({}, ("m1",), 0)["m1"][0])
    # a row whose test lacks a pair has no p-value yet
    partial = {p: v for p, v in scores.items() if p != PairKey(2, 0, 3, NOISE)}
    row = next(
        s
        for s in row_statistics(plan, partial, ["svd"], order)
        if (s.against, s.measure, s.value_index) == (REFERENCE, "m1", 2)
    )
    assert np.isnan(row.p_value) and row.n_pairs == 12


# ---------------------------------------------------------------------- comparisons
def test_each_run_gets_one_knn_table(tiny, monkeypatch) -> None:
    """Sweep computes one k-NN table per run (and one per external embeddings)
    and compare() reads them: the neighbor measures never search themselves."""
    from embspace import neighbors
    from embspace.measures import neighborhood

    searched: list[int] = []
    original = neighbors.knn

    def counting_knn(vectors, k, **kwargs):
        searched.append(int(k))
        return original(vectors, k, **kwargs)

    def no_search(*args, **kwargs):
        raise AssertionError("a neighbor measure searched although the sweep has tables")

    monkeypatch.setattr(neighbors, "knn", counting_knn)
    monkeypatch.setattr(neighborhood, "knn", no_search)
    measures = ("neighbors", "mutual_knn", "cca")
    sweep = Sweep(
        tiny,
        es.WALS(factors=4, iterations=3),
        "unobserved_weight",
        [0.0, 0.5, 1.0],
        seeds=2,
        measures=measures,
        k=7,
        cache_dir=False,
    ).run(progress=False)
    # six runs, 6 + 2 + 1 comparisons; each table is wider than k so that the
    # tie group at the k-th neighbor shows (neighborhood.table_width)
    assert searched == [neighborhood.table_width(7, tiny.n_items)] * 6
    svd = es.SVD(factors=4, random_state=0).fit(tiny)
    sweep.against(svd, name="svd")
    assert searched == [neighborhood.table_width(7, tiny.n_items)] * 7
    sweep.comparison(0.5, seed=1)
    sweep.comparison(1.0, seed=0, against="svd")
    assert searched == [neighborhood.table_width(7, tiny.n_items)] * 7
    monkeypatch.undo()
    # the scores are those of compare() searching on its own
    for value, seed, other in [(0.5, 1, 0), (1.0, 0, 1)]:
        want = es.compare(
            sweep.embeddings(0.0, other), sweep.embeddings(value, seed), measures=measures, k=7
        ).scores
        got = sweep.results
        got = got[
            (got["value"] == value)
            & (got["seed"] == seed)
            & (got["other_seed"] == other)
            & (got["against"] == REFERENCE)
        ]
        assert dict(zip(got["measure"], got["similarity"], strict=True)) == want
    # and so are the chance levels, from shuffled tables instead of a search
    table = sweep.table
    row = table[(table["value"] == 1.0) & (table["against"] == REFERENCE)]
    want = es.compare(
        sweep.embeddings(0.0, 0), sweep.embeddings(1.0, 1), measures=measures, k=7, chance=True
    ).chance
    assert dict(zip(row["measure"], row["chance"], strict=True)) == pytest.approx(want, abs=1e-12)


# ---------------------------------------------------------------------- floors
def _imports(path: Path) -> set[str]:
    """The embspace modules ``path`` imports, as dotted names relative to the package."""
    tree = ast.parse(path.read_text())
    rel = path.relative_to(PACKAGE).with_suffix("")
    package = list(rel.parts[:-1])
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join([*base, *(node.module.split(".") if node.module else [])])
                names = [mod] + [f"{mod}.{a.name}" if mod else a.name for a in node.names]
            elif (node.module or "").startswith("embspace"):
                names = [node.module.removeprefix("embspace").lstrip(".")]
            else:
                continue
            out.update(n for n in names if n)
        elif isinstance(node, ast.Import):
            out.update(
                a.name.removeprefix("embspace").lstrip(".")
                for a in node.names
                if a.name.startswith("embspace.")
            )
    return out


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("measures", ("sweeps", "plots", "cli", "demo", "tui")),
        ("plots.py", ("sweeps", "cli", "demo", "tui")),
        ("sweeps", ("cli", "demo", "tui")),
    ],
)
def test_imports_run_downward(folder: str, forbidden: tuple[str, ...]) -> None:
    target = PACKAGE / folder
    files = sorted(target.glob("*.py")) if target.is_dir() else [target]
    assert files
    for path in files:
        bad = sorted(
            m for m in _imports(path) if any(m == f or m.startswith(f + ".") for f in forbidden)
        )
        assert not bad, f"{path.name} imports {bad}"
