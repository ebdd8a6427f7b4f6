"""Sweeps on synthetic data: seed pairing, the noise floor, .against(SVD), the cache, cancelling."""

from __future__ import annotations

import threading
from pathlib import Path

import embspace as es
import numpy as np
import pytest
from embspace.cache import CacheWarning, EmbeddingCache
from embspace.errors import EmbspaceWarning, InvalidParameterError, NotFittedError
from embspace.sweeps import Sweep, SweepCancelled, SweepEvent
from sklearn.base import clone

MEASURES = ("neighbors", "cca", "unitmatch", "cka")
VALUES = [0.0, 0.1, 1.0]


def _wals(**kw):
    params = {"factors": 6, "iterations": 6, "num_threads": 2, **kw}
    return es.WALS(**params)


@pytest.fixture
def fit_counter(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, int]]:
    """Records (unobserved_weight, random_state) of every real WALS training."""
    calls: list[tuple[float, int]] = []
    original = es.WALS.fit

    def counting_fit(self, *args, **kwargs):
        calls.append((self.unobserved_weight, self.random_state))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(es.WALS, "fit", counting_fit)
    return calls


@pytest.fixture(scope="module")
def swept(tiny, tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    """One sweep with 3 seeds, shared by the read-only tests."""
    cache = tmp_path_factory.mktemp("sweep-cache")
    return Sweep(
        tiny, _wals(), "unobserved_weight", VALUES, reference=0.0, seeds=3, cache_dir=cache
    ).run(progress=False)


def _compare(a, b) -> dict[str, float]:
    return es.compare(a, b, measures=MEASURES, k=10).scores


def _rows(table, against="reference"):
    return table[table["against"] == against]


def test_runs_are_the_estimator_with_the_value_and_seed(swept: Sweep, tiny) -> None:
    """Each run equals an independent training of clone(estimator) with the value and seed."""
    for value, seed in [(0.1, 1), (1.0, 2)]:
        own = clone(_wals()).set_params(unobserved_weight=value, random_state=seed).fit(tiny)
        got = swept.embeddings(value, seed)
        assert got.keys == own.item_embeddings_.keys
        np.testing.assert_array_equal(got.vectors, own.item_embeddings_.vectors)
    assert swept.seeds == [0, 1, 2]
    assert [(r.value, r.seed) for r in swept.runs] == [(v, s) for v in VALUES for s in range(3)]


def test_reference_row_is_its_own_floor(swept: Sweep) -> None:
    """With cross pairing the reference row compares reference runs of distinct
    seeds: it is the reference floor, not a run against itself."""
    rows = _rows(swept.table)
    ref = rows[rows["value"] == 0.0]
    assert list(ref["measure"]) == list(MEASURES)
    np.testing.assert_array_equal(ref["similarity"], ref["reference_floor"])
    np.testing.assert_array_equal(ref["similarity"], ref["floor"])
    assert (ref["similarity"] < 1.0 - 1e-4).all()
    assert (ref["n_pairs"] == 3).all()  # the 3 pairs of distinct seeds
    assert ref["p_value"].isna().all() and ref["changed"].isna().all()
    np.testing.assert_allclose(ref["calibrated"], 1.0, rtol=1e-12)


def test_table_pairs_distinct_seeds(swept: Sweep) -> None:
    """similarity: the mean over every (reference seed o, seed s) with o != s."""
    rows = _rows(swept.table)
    for value in (0.1, 1.0):
        pairs = [(o, s) for s in swept.seeds for o in swept.seeds if o != s]
        scores = [_compare(swept.embeddings(0.0, o), swept.embeddings(value, s)) for o, s in pairs]
        floor = [
            _compare(swept.embeddings(value, a), swept.embeddings(value, b))
            for a, b in [(0, 1), (0, 2), (1, 2)]
        ]
        for m in MEASURES:
            sims = [p[m] for p in scores]
            row = rows[(rows["value"] == value) & (rows["measure"] == m)].iloc[0]
            assert row["similarity"] == pytest.approx(np.mean(sims), abs=1e-9)
            assert row["stdev"] == pytest.approx(np.std(sims, ddof=1), abs=1e-9)
            assert row["n_pairs"] == 6
            assert row["floor"] == pytest.approx(np.mean([f[m] for f in floor]), abs=1e-9)
            # 3 seeds: 10 relabelings, so a p-value is a multiple of 1/10
            assert row["p_value"] * 10 == pytest.approx(round(row["p_value"] * 10), abs=1e-9)
            assert 0.1 - 1e-12 <= row["p_value"] <= 1.0
    assert set(swept.table.columns) >= {
        "value",
        "measure",
        "against",
        "similarity",
        "stdev",
        "noise_floor",
        "noise_floor_stdev",
        "n_pairs",
        "floor",
        "reference_floor",
        "chance",
        "calibrated",
        "p_value",
        "p_adjusted",
        "changed",
    }


def test_same_seed_pairing_keeps_the_seed_paired_table(swept: Sweep, tiny) -> None:
    """pairing="same_seed": the mean over the runs of the same seed, the
    reference row a run against itself (1); floors and tests as with cross."""
    with pytest.warns(EmbspaceWarning, match="smallest p-value is 0.1"):
        same = Sweep(
            tiny,
            _wals(),
            "unobserved_weight",
            VALUES,
            seeds=3,
            pairing="same_seed",
            cache_dir=swept.cache.folder,
        ).run(progress=False)
    assert same.pairing == "same_seed"
    rows = _rows(same.table)
    ref = rows[rows["value"] == 0.0]
    np.testing.assert_allclose(ref["similarity"], 1.0, atol=1e-5)
    np.testing.assert_allclose(ref["stdev"], 0.0, atol=1e-5)
    for value in (0.1, 1.0):
        per_seed = [
            _compare(swept.embeddings(0.0, s), swept.embeddings(value, s)) for s in swept.seeds
        ]
        for m in MEASURES:
            sims = [p[m] for p in per_seed]
            row = rows[(rows["value"] == value) & (rows["measure"] == m)].iloc[0]
            assert row["similarity"] == pytest.approx(np.mean(sims), abs=1e-9)
            assert row["stdev"] == pytest.approx(np.std(sims, ddof=1), abs=1e-9)
            assert row["n_pairs"] == 3
    cross = _rows(swept.table)
    for column in ("floor", "reference_floor", "chance", "p_value", "p_adjusted"):
        np.testing.assert_array_equal(rows[column], cross[column])


def test_noise_floor_is_every_pair_of_reference_seeds(swept: Sweep) -> None:
    noise = swept.noise
    assert sorted(set(zip(noise["seed_a"], noise["seed_b"], strict=True))) == [
        (0, 1),
        (0, 2),
        (1, 2),
    ]
    pairs = [(0, 1), (0, 2), (1, 2)]
    scores = [_compare(swept.embeddings(0.0, a), swept.embeddings(0.0, b)) for a, b in pairs]
    for m in MEASURES:
        sims = [s[m] for s in scores]
        floor = swept.table[swept.table["measure"] == m]["noise_floor"]
        assert floor.nunique() == 1
        assert floor.iloc[0] == pytest.approx(np.mean(sims), abs=1e-9)
        assert swept.noise_floor[m][1] == pytest.approx(np.std(sims, ddof=1), abs=1e-9)
        # two seeds of the same configuration do not give the same space
        assert floor.iloc[0] < 1.0 - 1e-4


def test_comparison_of_one_run(swept: Sweep) -> None:
    """The full Comparison behind a results row: same scores, per-entity values, bootstrap."""
    results = swept.results
    row = results[(results["value"] == 1.0) & (results["seed"] == 2) & (results["other_seed"] == 0)]
    comp = swept.comparison(1.0, seed=2)  # the reference run of the next seed (cyclically), 0
    assert comp.scores == swept.comparison(1.0, seed=2, other_seed=0).scores
    for m in MEASURES:
        expected = row[(row["against"] == "reference") & (row["measure"] == m)]["similarity"]
        assert comp.scores[m] == pytest.approx(float(expected.iloc[0]), abs=1e-12)
    per_entity = comp.per_entity["neighbors"]
    assert len(per_entity) == 300 and per_entity.mean() == pytest.approx(comp.scores["neighbors"])
    intervals = comp.bootstrap(n_boot=200)
    neighbors = intervals[intervals["measure"] == "neighbors"].iloc[0]
    assert neighbors["low"] <= comp.scores["neighbors"] <= neighbors["high"]
    with pytest.raises(InvalidParameterError, match="against must be one of"):
        swept.comparison(1.0, against="pca")


def test_one_seed_has_no_noise_floor(tiny) -> None:
    sweep = Sweep(tiny, _wals(), "unobserved_weight", [0.0, 0.5], cache_dir=False).run(
        progress=False
    )
    assert sweep.reference == 0.0  # default: the first value
    assert sweep.noise.empty
    assert sweep.table["noise_floor"].isna().all()
    assert sweep.table["stdev"].isna().all()
    assert (sweep.table["n_pairs"] == 1).all()


def test_against_svd(swept: Sweep, tiny) -> None:
    svd = es.SVD(factors=6, random_state=0).fit(tiny)
    rows = swept.against(svd.item_embeddings_, name="svd")
    assert set(rows["against"]) == {"svd"}
    assert len(rows) == len(VALUES) * len(MEASURES)
    for value in VALUES:
        per_seed = [_compare(swept.embeddings(value, s), svd.item_embeddings_) for s in swept.seeds]
        for m in MEASURES:
            row = rows[(rows["value"] == value) & (rows["measure"] == m)].iloc[0]
            assert row["similarity"] == pytest.approx(np.mean([p[m] for p in per_seed]), abs=1e-9)
    # appended to the table, and replaced (not duplicated) when given again
    assert len(_rows(swept.table, "svd")) == len(rows)
    again = swept.against(svd, name="svd")  # a fitted estimator works too
    assert len(_rows(swept.table, "svd")) == len(rows)
    np.testing.assert_allclose(again["similarity"], rows["similarity"])
    assert set(swept.results["against"]) == {"reference", "svd"}


def test_users_side_reuses_the_item_sweep_trainings(tiny, tmp_path: Path, fit_counter) -> None:
    items = Sweep(tiny, _wals(), "unobserved_weight", [0.0, 0.5], cache_dir=tmp_path)
    items.run(progress=False)
    assert len(fit_counter) == 2
    users = Sweep(
        tiny, _wals(), "unobserved_weight", [0.0, 0.5], entities="users", cache_dir=tmp_path
    ).run(progress=False)
    assert len(fit_counter) == 2, "the user sweep retrained runs that were cached"
    assert all(r.cached for r in users.runs)
    assert users.embeddings(0.5).keys == tiny.user_keys


def test_second_sweep_comes_from_the_cache(tiny, tmp_path: Path, fit_counter) -> None:
    first = Sweep(tiny, _wals(), "unobserved_weight", VALUES, seeds=2, cache_dir=tmp_path)
    first.run(progress=False)
    assert sorted(fit_counter) == sorted((v, s) for v in VALUES for s in (0, 1))
    assert not any(r.cached for r in first.runs)
    assert len(EmbeddingCache(tmp_path)) == 6
    fit_counter.clear()
    second = Sweep(tiny, _wals(), "unobserved_weight", VALUES, seeds=2, cache_dir=tmp_path)
    second.run(progress=False)
    assert fit_counter == []
    assert all(r.cached for r in second.runs)
    assert second.table.equals(first.table)


def test_corrupted_cache_entry_is_retrained(tiny, tmp_path: Path, fit_counter) -> None:
    first = Sweep(tiny, _wals(), "unobserved_weight", [0.0, 0.5], cache_dir=tmp_path).run(
        progress=False
    )
    victim = Path(next(r.cache_path for r in first.runs if r.value == 0.5))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 16] = b"\x00" * 16
    victim.write_bytes(bytes(data))
    fit_counter.clear()
    with pytest.warns(CacheWarning):
        second = Sweep(tiny, _wals(), "unobserved_weight", [0.0, 0.5], cache_dir=tmp_path).run(
            progress=False
        )
    assert fit_counter == [(0.5, 0)]
    cached = {r.value: r.cached for r in second.runs}
    assert cached == {0.0: True, 0.5: False}
    np.testing.assert_array_equal(second.embeddings(0.5).vectors, first.embeddings(0.5).vectors)
    assert second.table.equals(first.table)
    # the retrained entry is valid again
    assert (
        EmbeddingCache(tmp_path).get(
            EmbeddingCache(tmp_path).key(tiny, _wals(unobserved_weight=0.5, random_state=0), 0)
        )
        is not None
    )


def test_events_and_callback_stop(tiny, tmp_path: Path, fit_counter) -> None:
    events: list[SweepEvent] = []

    def stop_after_first_run(event: SweepEvent) -> None:
        events.append(event)
        if event.kind == "run_done":
            raise SweepCancelled("enough")

    sweep = Sweep(tiny, _wals(), "unobserved_weight", [0.0, 0.5, 1.0], cache_dir=tmp_path)
    with pytest.raises(SweepCancelled):
        sweep.run(callback=stop_after_first_run, progress=False)
    kinds = [e.kind for e in events]
    assert kinds[0] == "run_start" and kinds[-1] == "run_done"
    iterations = [e for e in events if e.kind == "iteration"]
    assert [e.iteration for e in iterations] == list(range(1, 7))
    assert all(e.n_iterations == 6 and e.n_runs == 3 for e in iterations)
    assert len(sweep.runs) == 1 and not sweep.finished
    # the finished run is in the cache: a new sweep loads it and trains the rest
    fit_counter.clear()
    events.clear()
    again = Sweep(tiny, _wals(), "unobserved_weight", [0.0, 0.5, 1.0], cache_dir=tmp_path)
    again.run(callback=events.append, progress=False)
    assert fit_counter == [(0.5, 0), (1.0, 0)]
    done = [e for e in events if e.kind == "run_done"]
    assert [(e.value, e.cached) for e in done] == [(0.0, True), (0.5, False), (1.0, False)]
    compared = [e.row for e in events if e.kind == "compare_done"]
    # one seed: each run against the reference run of its seed, and its chance level
    assert [(r["value"], r["chance"]) for r in compared] == [
        (v, c) for v in (0.0, 0.5, 1.0) for c in (False, True)
    ]
    assert set(compared[1]) >= {"value", "seed", "other_seed", "against", "chance", *MEASURES}
    assert events[-1].kind == "done"


def test_cancel_from_another_thread(tiny, tmp_path: Path) -> None:
    sweep = Sweep(tiny, _wals(), "unobserved_weight", [0.0, 0.5, 1.0], cache_dir=tmp_path)
    second_run_started = threading.Event()
    outcome: list[BaseException | None] = []

    def on_event(event: SweepEvent) -> None:
        if event.kind == "iteration" and event.run_index == 1 and event.iteration == 2:
            second_run_started.set()
            sweep.cancel()

    def work() -> None:
        try:
            sweep.run(callback=on_event, progress=False)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert second_run_started.is_set()
    assert isinstance(outcome[0], SweepCancelled)
    assert [r.value for r in sweep.runs] == [0.0]
    # only the finished run was written
    assert len(EmbeddingCache(tmp_path)) == 1
    # run() again continues from where it stopped
    sweep.run(progress=False)
    assert sweep.finished and [r.value for r in sweep.runs] == [0.0, 0.5, 1.0]


def test_seeds_follow_the_estimators_random_state(tiny) -> None:
    sweep = Sweep(
        tiny, _wals(random_state=7), "unobserved_weight", [0.0, 0.5], seeds=2, cache_dir=False
    )
    assert sweep.seeds == [7, 8]
    assert sweep.plan == [(0.0, 7), (0.0, 8), (0.5, 7), (0.5, 8)]


def test_plot_and_save(swept: Sweep, tmp_path: Path) -> None:
    from test_plots import assert_png

    fig = swept.plot()
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == len(MEASURES)
    paths = swept.save(tmp_path / "out")
    # the tables, the plot, and what the HTML report needs (tests/test_report.py)
    assert set(paths) == {"table", "results", "json", "png", "changes", "neighbors", "provenance"}
    assert_png(paths["png"])
    import json

    import pandas as pd

    table = pd.read_csv(paths["table"])
    assert len(table) == len(swept.table)
    np.testing.assert_allclose(table["similarity"], swept.table["similarity"])
    payload = json.loads(paths["json"].read_text())
    assert payload["param"] == "unobserved_weight" and payload["seeds"] == [0, 1, 2]
    assert len(payload["runs"]) == 9
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        p.name for p in paths.values()
    )


def test_bad_arguments(tiny) -> None:
    def make(**kw):
        args = {"param": "unobserved_weight", "values": [0.0, 1.0], "cache_dir": False, **kw}
        return Sweep(tiny, _wals(), **args)

    with pytest.raises(InvalidParameterError, match="not a parameter of WALS"):
        make(param="learning_rate")
    with pytest.raises(InvalidParameterError, match=r"reference 0\.5 is not among"):
        make(reference=0.5)
    with pytest.raises(InvalidParameterError, match="more than once"):
        make(values=[0.0, 1.0, 1.0])
    with pytest.raises(InvalidParameterError, match="empty"):
        make(values=[])
    with pytest.raises(InvalidParameterError, match="seeds"):
        make(seeds=0)
    with pytest.raises(InvalidParameterError, match="entities"):
        make(entities="movies")
    with pytest.raises(InvalidParameterError, match="unknown measure"):
        make(measures=["neighbours"])
    with pytest.raises(InvalidParameterError, match="random_state cannot be swept"):
        make(param="random_state", values=[0, 1])
    with pytest.raises(InvalidParameterError, match="Ratings"):
        Sweep(np.zeros((3, 3)), _wals(), "unobserved_weight", [0.0])
    with pytest.raises(InvalidParameterError, match="scikit-learn"):
        Sweep(tiny, object(), "unobserved_weight", [0.0])
    sweep = make()
    with pytest.raises(NotFittedError):
        sweep.against(es.SVD(factors=2, random_state=0).fit(tiny))
    with pytest.raises(NotFittedError):
        sweep.embeddings(0.0)
    with pytest.raises(InvalidParameterError):
        sweep.embeddings(3.0)


def test_per_entity_changes_stay_exact_above_the_sampling_size(tiny, monkeypatch) -> None:
    """compare() samples the neighbor measures of large spaces; the changes of
    a sweep need every entity's value, so they are computed exactly (here
    against embeddings in another key order, where no kept table is read)."""
    from embspace.measures import comparison

    monkeypatch.setattr(comparison, "AUTO_SAMPLE_ABOVE", 20)
    monkeypatch.setattr(comparison, "AUTO_SAMPLE_SIZE", 10)
    sweep = Sweep(tiny, _wals(), "unobserved_weight", [0.0, 0.5], seeds=2, cache_dir=False)
    sweep.run(progress=False)
    base = sweep.embeddings(0.5, 0)
    order = np.arange(base.n)[::-1]
    other = es.Embeddings([base.keys[i] for i in order], base.vectors[order] + 0.1)
    assert es.compare(base, other, ["neighbors"]).sample == 10  # sampled by default here
    sweep.against(other, name="other")
    changes = sweep.changes(0.5, against="other")
    assert len(changes) == base.n
    exact = [
        es.compare(sweep.embeddings(0.5, s), other, ["neighbors"], sample=0)
        .per_entity["neighbors"]
        .to_numpy()
        for s in sweep.seeds
    ]
    got = changes.set_index("key").loc[list(base.keys), "similarity"].to_numpy()
    np.testing.assert_allclose(got, np.mean(exact, axis=0), atol=1e-12)
