"""The faces' shared module (embspace.faces): the value grammar, the estimator
registry, dataset choices, measure names and text tables, without any face."""

from __future__ import annotations

import math
from types import SimpleNamespace

import embspace
import numpy as np
import pandas as pd
import pytest
from embspace import datasets
from embspace._registry import Registry
from embspace.errors import InvalidParameterError, UnknownDatasetError
from embspace.faces import estimators, tables
from embspace.faces import measures as face_measures
from embspace.faces.datasets import dataset_choices, describe_ratings, load_described
from embspace.faces.keys import key_genres, key_title
from embspace.faces.values import (
    coerce,
    format_value,
    parse_params,
    parse_value,
    parse_values,
    same_value,
    split_list,
)

# ---------------------------------------------------------------------- scalars


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("10", 10),
        (" 10 ", 10),
        ("-3", -3),
        ("+1", 1),
        ("0.5", 0.5),
        (".5", 0.5),
        ("5.", 5.0),
        ("1e-3", 0.001),
        ("2E2", 200.0),
        ("None", None),
        ("null", None),
        ("TRUE", True),
        ("false", False),
        ('"cg"', "cg"),
        ("'cg'", "cg"),
        ("''", ""),
        ("cholesky", "cholesky"),
        ("[1, 2]", [1, 2]),
        ("1_000", "1_000"),  # not a number in any of the grammar's forms: text
    ],
)
def test_parse_value(text, want):
    got = parse_value(text)
    assert got == want and type(got) is type(want)


@pytest.mark.parametrize("text", ["inf", "-Infinity", "NaN", "nan", "+inf", "1e999"])
def test_non_finite_numbers_parse_as_floats_and_no_parameter_takes_them(text):
    value = parse_value(text)
    assert isinstance(value, float) and not math.isfinite(value)
    for like in (0.1, 10, None, "cholesky"):
        with pytest.raises(InvalidParameterError, match="alpha must be a finite number"):
            coerce(value, like, "alpha")


def test_coerce_gives_the_type_of_the_default():
    assert coerce(1, 0.5) == 1.0 and type(coerce(1, 0.5)) is float
    assert type(coerce(1, np.float32(0.5))) is float
    assert coerce(20.0, 10) == 20 and type(coerce(20.0, 10)) is int
    assert type(coerce(np.int64(3), 10)) is int
    assert coerce(7, 10) == 7
    with pytest.raises(InvalidParameterError, match=r"^factors takes whole numbers, got 2\.5$"):
        coerce(2.5, 10, "factors")
    for bad in ("ten", True, [1, 2]):
        with pytest.raises(InvalidParameterError, match="factors takes numbers"):
            coerce(bad, 10, "factors")
    with pytest.raises(InvalidParameterError, match="verbose takes true or false, got 1"):
        coerce(1, False, "verbose")
    assert coerce(True, False) is True
    # None is always passed on (the estimator decides); so is anything for a
    # default that is not a number or a boolean
    assert coerce(None, 10) is None
    assert coerce(3, None) == 3 and type(coerce(3, None)) is int
    assert coerce("cg", "cholesky") == "cg"
    assert coerce([1.0, 2.0], "log") == [1.0, 2.0]


def test_format_value_and_same_value():
    assert format_value(0.0) == "0"
    assert format_value(np.float32(0.5)) == "0.5"
    assert format_value(1e-5) == "1e-05"
    assert format_value(10) == "10"
    assert format_value(None) == "None"
    assert same_value(1, 1.0) and same_value(np.float64(0.5), 0.5)
    assert not same_value(True, 1) and not same_value(0, False)
    assert same_value(True, np.bool_(True))
    a = np.arange(3)
    assert same_value(a, a) and not same_value(a, np.arange(3))  # not comparable: identity


# ---------------------------------------------------------------------- lists


def test_split_list_separators():
    assert split_list("0, 0.01 0.1;1") == ["0", "0.01", "0.1", "1"]
    assert split_list(" a ,b ; c  d ") == ["a", "b", "c", "d"]
    assert split_list("") == [] and split_list(" , ; ") == []
    for text in ("0,,1", "0, ,1", "0, 1,", ",0", "0;;1"):
        with pytest.raises(InvalidParameterError, match="empty item in the list"):
            split_list(text)


def test_parse_values_takes_the_type_of_the_default():
    assert parse_values("0, 0.01 0.1,1", like=0.01) == [0.0, 0.01, 0.1, 1.0]
    assert all(type(v) is float for v in parse_values("0 1 2", like=0.5))
    ints = parse_values("5, 10, 20.0", like=10)
    assert ints == [5, 10, 20] and all(type(v) is int for v in ints)
    assert parse_values("3;4", like=None) == [3, 4]
    assert parse_values("cg cholesky", like="cholesky") == ["cg", "cholesky"]


@pytest.mark.parametrize(
    ("text", "like", "message"),
    [
        ("", 0.1, "give at least one weight"),
        ("   ,  ", 0.1, "give at least one weight"),
        ("1, 2, 1.0", 0.1, "weight 1 is given twice"),
        ("1, 1.0", None, "weight 1 is given twice"),
        ("2.5", 10, "weight takes whole numbers, got 2.5"),
        ("inf", 0.1, "finite"),
        ("nan", 0.1, "finite"),
        ("0, abc", 0.01, "weight takes numbers, got 'abc'"),
        ("0,,1", 0.01, "empty item"),
    ],
)
def test_parse_values_rejects_bad_lists(text, like, message):
    with pytest.raises(InvalidParameterError, match=message):
        parse_values(text, like=like, name="weight")


def test_parse_params_from_text_and_from_items():
    defaults = {"factors": 10, "regularization": 0.07, "solver": "cholesky", "random_state": None}
    got = parse_params("factors=12, regularization=1 solver=cg random_state=3", defaults)
    assert got == {"factors": 12, "regularization": 1.0, "solver": "cg", "random_state": 3}
    assert type(got["regularization"]) is float
    assert parse_params("", defaults) == {}
    # one by one (the command line's --set), a value may hold separators
    items = ["factors=8", "solver=a, b", "factors=9"]
    assert parse_params(items, defaults) == {"factors": 9, "solver": "a, b"}
    with pytest.raises(InvalidParameterError, match="WALS has no parameter alpha; it has: factors"):
        parse_params("alpha=1", defaults, owner="WALS")
    for bad in ("factors", "factors=", "=3"):
        with pytest.raises(InvalidParameterError, match="given as name=value"):
            parse_params(bad, defaults)
    with pytest.raises(InvalidParameterError, match=r"factors takes whole numbers, got 2\.5"):
        parse_params("factors=2.5", defaults)
    with pytest.raises(InvalidParameterError, match="factors takes numbers, got True"):
        parse_params(["factors=true"], defaults)


# ---------------------------------------------------------------------- estimators


def test_the_registry_maps_names_to_the_estimator_classes():
    assert list(estimators.ESTIMATORS)[:2] == ["WALS", "SVD"]
    # then the adapters of embspace.trainers that train on ratings
    assert estimators.estimator_class("implicit-als") is embspace.trainers.ImplicitALS
    assert estimators.estimator_class("SKLEARN-PCA") is embspace.trainers.SklearnPCA
    assert estimators.estimator_class("WALS") is embspace.WALS
    assert estimators.estimator_class("svd") is embspace.SVD
    assert estimators.estimator_name("wAlS") == "WALS"
    with pytest.raises(InvalidParameterError, match="unknown estimator 'ALS'; known: WALS, SVD, "):
        estimators.estimator_class("ALS")
    assert estimators.estimator_defaults("SVD") == embspace.SVD().get_params(deep=False)


def test_sweepable_params_are_the_numeric_model_parameters():
    wals = estimators.sweepable_params("WALS")
    assert {"unobserved_weight", "factors", "regularization", "iterations"} <= set(wals)
    assert not {"random_state", "num_threads", "device", "solver", "row_weights"} & set(wals)
    assert estimators.sweepable_params("SVD") == ["factors"]


def test_check_sweep_param():
    estimators.check_sweep_param("WALS", "unobserved_weight")
    estimators.check_sweep_param("wals", "solver")  # not numeric, still a hyperparameter
    with pytest.raises(InvalidParameterError, match="WALS has no parameter 'nope'; it has: "):
        estimators.check_sweep_param("WALS", "nope")
    with pytest.raises(InvalidParameterError, match="random_state cannot be swept"):
        estimators.check_sweep_param("SVD", "random_state")
    with pytest.raises(InvalidParameterError, match="num_threads cannot be swept"):
        estimators.check_sweep_param("WALS", "num_threads")


def test_make_estimator_sets_checks_and_coerces():
    wals = estimators.make_estimator("wals", {"factors": 6.0, "unobserved_weight": 1}, seed=4)
    params = wals.get_params(deep=False)
    assert isinstance(wals, embspace.WALS)
    assert params["factors"] == 6 and type(params["factors"]) is int
    assert params["unobserved_weight"] == 1.0 and type(params["unobserved_weight"]) is float
    assert params["random_state"] == 4
    # a seed in the parameters wins; None leaves the default
    assert estimators.make_estimator("WALS", {"random_state": 9}, seed=4).random_state == 9
    assert estimators.make_estimator("WALS").random_state is None
    # device and threads only where the estimator has them (SVD has no device)
    svd = estimators.make_estimator("SVD", seed=1, num_threads=2, device="cpu")
    assert svd.get_params(deep=False) == {"factors": 10, "random_state": 1, "num_threads": 2}
    with pytest.raises(InvalidParameterError, match="SVD has no parameter bogus, other; it has"):
        estimators.make_estimator("SVD", {"bogus": 1, "other": 2})
    with pytest.raises(InvalidParameterError, match="factors takes whole numbers"):
        estimators.make_estimator("SVD", {"factors": 2.5})


class _Mean:
    """A minimal scikit-learn style estimator, for registering one."""

    def __init__(self, factors: int = 3, shrink: float = 0.5, random_state: int | None = None):
        self.factors, self.shrink, self.random_state = factors, shrink, random_state

    def get_params(self, deep: bool = False) -> dict:
        return {"factors": self.factors, "shrink": self.shrink, "random_state": self.random_state}

    def set_params(self, **params) -> _Mean:
        for k, v in params.items():
            setattr(self, k, v)
        return self


def test_a_registered_estimator_is_offered_like_the_built_in_ones(monkeypatch):
    registry = Registry("estimator", dict(estimators.ESTIMATORS))
    monkeypatch.setattr(estimators, "ESTIMATORS", registry)
    registry.register("Mean", _Mean)
    assert estimators.estimator_class("mean") is _Mean
    assert estimators.sweepable_params("Mean") == ["factors", "shrink"]
    made = estimators.make_estimator("Mean", {"shrink": 1}, seed=2)
    assert (made.factors, made.shrink, made.random_state) == (3, 1.0, 2)
    with pytest.raises(InvalidParameterError, match="already registered"):
        registry.register("Mean", _Mean)


# ---------------------------------------------------------------------- the faces agree


def test_the_command_line_and_the_sweep_form_read_settings_alike(tmp_path, capsys):
    from embspace.cli import _estimator, build_parser, main
    from embspace.tui.views.form import SweepSpec

    text = "factors=8, regularization=1 unobserved_weight=.5"
    args = build_parser().parse_args(
        ["train", "--out", "x.npz", *[f"--set={p}" for p in split_list(text)]]
    )
    cli = _estimator(args).get_params(deep=False)
    form = SweepSpec.from_form(
        estimator="WALS",
        params=text,
        param="iterations",
        values="3",
        reference="",
        seeds="1",
        measures=["cka"],
    )
    tui = form.make_estimator().get_params(deep=False)
    assert (
        cli.pop("random_state") == 0 and tui.pop("random_state") is None
    )  # seeds differ by design
    assert cli == tui
    assert type(cli["regularization"]) is float and cli["unobserved_weight"] == 0.5
    # and refuse the same text with the same words
    out = str(tmp_path / "x.npz")
    assert main(["train", "-d", "synthetic:tiny", "--set", "factors=2.5", "--out", out]) == 2
    message = capsys.readouterr().err
    with pytest.raises(InvalidParameterError) as raised:
        SweepSpec.from_form(
            estimator="WALS",
            params="factors=2.5",
            param="iterations",
            values="3",
            reference="",
            seeds="1",
            measures=["cka"],
        )
    assert message.strip() == f"embspace: error: {raised.value}"
    assert "factors takes whole numbers, got 2.5" in message


# ---------------------------------------------------------------------- datasets


def test_dataset_choices_show_the_state_of_each_registry_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBSPACE_DATA_DIR", str(tmp_path / "empty"))
    choices = dataset_choices()
    by_id = {c.id: c for c in choices}
    for name in datasets.REGISTRY:
        assert by_id[name].needs_download
        assert "download" in by_id[name].label
    assert by_id["ml-latest-small"].label == "ml-latest-small (download 978 kB)"
    assert by_id["ml-20m"].label == "ml-20m (download 198.7 MB)"
    assert not by_id["synthetic:tiny"].needs_download
    assert [c.id for c in choices][-2:] == ["synthetic:tiny", "synthetic:ml-latest-small"]
    # an extracted folder in the data dir makes it available without download
    (tmp_path / "data" / "ml-100k").mkdir(parents=True)
    monkeypatch.setenv("EMBSPACE_DATA_DIR", str(tmp_path / "data"))
    by_id = {c.id: c for c in dataset_choices()}
    assert by_id["ml-100k"].label == "ml-100k (on disk)" and not by_id["ml-100k"].needs_download
    assert by_id["ml-1m"].needs_download


def test_load_described_says_where_the_data_came_from(data_dir, monkeypatch, tmp_path):
    ratings, source = load_described("synthetic:tiny", progress=False)
    assert ratings.fingerprint == datasets.synthetic(preset="tiny", seed=0).fingerprint
    assert source == "synthetic:tiny"
    with pytest.raises(InvalidParameterError, match="unknown preset 'huge'"):
        load_described("synthetic:huge")
    with pytest.raises(UnknownDatasetError):
        load_described(str(tmp_path / "missing"))
    monkeypatch.setenv("EMBSPACE_DATA_DIR", str(data_dir))
    ratings, source = load_described("ml-latest-small", progress=False)
    assert ratings.n_ratings == 100_836
    status = datasets.locate("ml-latest-small")
    assert source.startswith(str(status.path)) and "EMBSPACE_DATA_DIR" in source


def test_describe_ratings(tiny):
    line = describe_ratings(tiny)
    assert line == "synthetic-tiny: 200 users × 300 items, 10,000 ratings"


# ---------------------------------------------------------------------- measures, keys


def test_measures():
    assert face_measures.DEFAULT_MEASURES is embspace.measures.DEFAULT_MEASURES
    assert face_measures.parse_measures("neighbors, cka") == ["neighbors", "cka"]
    with pytest.raises(InvalidParameterError, match="unknown measure"):
        face_measures.parse_measures("neighbors,nope")
    with pytest.raises(InvalidParameterError, match="give at least one measure"):
        face_measures.parse_measures(" ")
    face_measures.check_measures(list(embspace.measures.MEASURES))


def test_key_title_and_genres():
    assert key_title(("Heat (1995)", "Action|Crime")) == "Heat (1995)"
    assert key_genres(("Heat (1995)", "Action|Crime")) == "Action|Crime"
    assert key_title(42) == "42" and key_genres(42) == ""
    assert key_title(("Solo",)) == "Solo" and key_genres(("Solo",)) == ""


# ---------------------------------------------------------------------- tables


def _fake_sweep(seeds):
    """A Sweep-shaped object: 2 values x 2 measures against the reference, one SVD row."""
    nan = float("nan")
    cols = ["value", "measure", "against", "similarity", "stdev", "floor", "calibrated"]
    cols += ["p_adjusted", "changed", "reference_floor"]
    rows = [
        (0.0, "neighbors", "reference", 0.9, 0.05, 0.9, 1.0, nan, pd.NA, 0.9),
        (0.0, "cka", "reference", 0.99, nan, 0.99, 1.0, nan, pd.NA, 0.99),
        (1.0, "neighbors", "reference", 0.41234, 0.0123, 0.95, 0.3456, 0.012, True, 0.9),
        (1.0, "cka", "reference", nan, nan, 0.98, nan, 0.5, False, 0.99),
        (0.0, "neighbors", "svd", 0.2, 0.01, 0.9, 0.21, nan, pd.NA, nan),
    ]
    table = pd.DataFrame(rows, columns=cols)
    return SimpleNamespace(
        table=table,
        seeds=list(range(seeds)),
        param="unobserved_weight",
        reference=0.0,
        values=[0.0, 1.0],
        measures=("neighbors", "cka"),
    )


def test_format_sweep_table():
    text = tables.format_sweep_table(_fake_sweep(2))
    assert text.splitlines() == [
        "similarity to w0=0 (mean ± stdev over 2 seeds)",
        "unobserved_weight    measure     similarity  floor  calibrated  p_adjusted  changed",
        "0 (ref)            neighbors  0.900 ± 0.050  0.900        1.00           -        -",
        "0 (ref)                  cka          0.990  0.990        1.00           -        -",
        "1                  neighbors  0.412 ± 0.012  0.950        0.35       0.012      yes",
        "1                        cka            n/a  0.980           -       0.500       no",
        # 2 seeds: smallest p 1/2, 2 tests: Holm cannot reach 0.05
        "(with 2 seeds the smallest p-value is 0.5: after Holm over 2 tests none can reach 0.05,"
        " so changed = no is no verdict)",
    ]
    # 8 seeds: 2 * 1/6435 <= 0.05, the test can flag a change: no such line
    eight = tables.format_sweep_table(_fake_sweep(8)).splitlines()
    assert len(eight) == 6 and not eight[-1].startswith("(with")
    # against SVD: the value's own floor, no reference floor, no test columns
    one = tables.format_sweep_table(_fake_sweep(1), "svd")
    assert one.splitlines() == [
        "similarity to svd (one seed)",
        "unobserved_weight    measure  similarity  floor  calibrated",
        "0                  neighbors       0.200  0.900        0.21",
    ]


def test_text_table_and_labels():
    assert (
        tables.text_table(["a", "bb"], [["xyz", "1"], ["q", "22"]]) == "a    bb\nxyz   1\nq    22"
    )
    assert tables.value_label("unobserved_weight", 0.01) == "w0=0.01"
    assert tables.value_label("factors", 10) == "factors=10"


def test_neighbor_listings():
    frame = pd.DataFrame(
        {
            "rank": [1, 2],
            "key": [("Heat (1995)", "Action"), ("Alien (1979)", "Horror|Sci-Fi")],
            "title": ["Heat (1995)", "Alien (1979)"],
            "score": [0.91234, 0.5],
        }
    )
    assert tables.format_neighbors(frame).splitlines() == [
        " rank        title        genres score",
        "    1  Heat (1995)        Action 0.912",
        "    2 Alien (1979) Horror|Sci-Fi 0.500",
    ]
    assert tables.neighbors_text(frame).splitlines() == [
        " rank        title  score",
        "    1  Heat (1995) 0.9123",
        "    2 Alien (1979) 0.5000",
    ]
    ids = pd.DataFrame({"rank": [1], "key": [7], "score": [0.25]})
    assert tables.format_neighbors(ids).splitlines() == [" rank key score", "    1   7 0.250"]
    assert tables.neighbors_text(ids).splitlines() == [" rank  key  score", "    1    7 0.2500"]
