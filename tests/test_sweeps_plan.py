"""The parts of a sweep: its plan (runs, pairs, checks before training), its
statistics, its comparisons (one k-NN table per run), and the import floors."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import embspace as es
import numpy as np
import pytest
from embspace.errors import InvalidParameterError, ShapeMismatchError
from embspace.sweeps import Sweep
from embspace.sweeps.plan import NOISE, REFERENCE, PairKey, make_plan, run_dimension
from embspace.sweeps.statistics import noise_floor, stdev, summarize

PACKAGE = Path(es.__file__).parent


def _plan(**kw):
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
    assert plan.runs == [(1, 0), (1, 1), (1, 2), (0, 0), (0, 1), (0, 2), (2, 0), (2, 1), (2, 2)]
    pairs = plan.pairs()
    reference = [p for p in pairs if p.against == REFERENCE]
    noise = [p for p in pairs if p.against == NOISE]
    # one seed-paired comparison per run, every pair of distinct reference seeds
    assert sorted((p.value_index, p.seed) for p in reference) == sorted(plan.runs)
    assert all(p.seed == p.other_seed for p in reference)
    assert sorted((p.seed, p.other_seed) for p in noise) == [(0, 1), (0, 2), (1, 2)]
    assert len(pairs) == 9 + 3
    assert len(plan.pairs(["svd"])) == 9 + 3 + 9
    # what each pair compares, in order
    assert plan.sides(PairKey(2, 1, 1, REFERENCE)) == ((1, 1), (2, 1))
    assert plan.sides(PairKey(1, 0, 2, NOISE)) == ((1, 0), (1, 2))
    assert plan.sides(PairKey(0, 2, 2, "svd")) == ((0, 2), "svd")
    # every pair belongs to the runs it compares
    for p in plan.pairs(["svd"]):
        for side in plan.sides(p):
            if not isinstance(side, str):
                assert p in plan.pairs_of_run(side, ["svd"])


def test_plan_checks_measures_against_the_dimensions_before_training(tiny, monkeypatch) -> None:
    fits: list[int] = []
    original = es.SVD.fit

    def counting_fit(self, *args, **kwargs):
        fits.append(self.factors)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(es.SVD, "fit", counting_fit)
    with pytest.raises(ShapeMismatchError, match=r"'unitmatch'.*d = 4 and 6"):
        Sweep(tiny, es.SVD(random_state=0), "factors", [4, 6], cache_dir=False)
    with pytest.raises(ShapeMismatchError, match="'procrustes'"):
        Sweep(tiny, es.SVD(), "factors", [4, 6], measures=["cka", "procrustes"], cache_dir=False)
    assert fits == []
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
    rng = np.random.default_rng(0)
    pairs = [PairKey(v, s, s, REFERENCE) for v in range(3) for s in range(4)]
    pairs += [PairKey(1, a, b, NOISE) for a in range(4) for b in range(a + 1, 4)]
    pairs += [PairKey(v, s, s, "svd") for v in range(3) for s in range(4)]
    scores = {p: {"m1": float(rng.random()), "m2": float(rng.random())} for p in pairs}
    shuffled_keys = list(scores)
    random.Random(1).shuffle(shuffled_keys)
    shuffled = {p: scores[p] for p in shuffled_keys}

    def order(p: PairKey) -> tuple[int, int, int, int]:
        g = {REFERENCE: 0, "svd": 1}.get(p.against, 2)
        return (g, p.value_index, p.seed, p.other_seed)

    a = summarize(scores, ("m1", "m2"), order)
    assert a == summarize(shuffled, ("m1", "m2"), order)
    assert noise_floor(scores, ("m1", "m2")) == noise_floor(shuffled, ("m1", "m2"))
    # groups: reference then svd; within a group measure, then value
    assert [(s.against, s.measure, s.value_index) for s in a[:4]] == [
        (REFERENCE, "m1", 0),
        (REFERENCE, "m1", 1),
        (REFERENCE, "m1", 2),
        (REFERENCE, "m2", 0),
    ]
    s = a[1]
    sims = [scores[PairKey(1, seed, seed, REFERENCE)]["m1"] for seed in range(4)]
    assert s.similarity == sum(sims) / 4 and s.n_pairs == 4
    mean = sum(sims) / 4
    assert s.stdev == pytest.approx((sum((x - mean) ** 2 for x in sims) / 3) ** 0.5, rel=1e-12)
    floor = [scores[p]["m2"] for p in pairs if p.against == NOISE]
    m, sd, n = noise_floor(scores, ("m2",))["m2"]
    assert n == 6 and m == pytest.approx(sum(floor) / 6, rel=1e-12)
    assert sd == pytest.approx(np.std(floor, ddof=1), rel=1e-12)
    assert np.isnan(stdev([0.5])) and np.isnan(noise_floor({}, ("m1",))["m1"][0])


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
    for value, seed in [(0.5, 1), (1.0, 0)]:
        want = es.compare(
            sweep.embeddings(0.0, seed), sweep.embeddings(value, seed), measures=measures, k=7
        ).scores
        got = sweep.results
        got = got[(got["value"] == value) & (got["seed"] == seed) & (got["against"] == REFERENCE)]
        assert dict(zip(got["measure"], got["similarity"], strict=True)) == want


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
