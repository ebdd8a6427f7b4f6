"""The measure registry: capabilities (family, equal dimensions, cost) and check_measures."""

from __future__ import annotations

import numpy as np
import pytest
from embspace import measures as M
from embspace._registry import Registry
from embspace.errors import InvalidParameterError, ShapeMismatchError

BUILT_IN = (
    "neighbors",
    "mutual_knn",
    "overlap_curve",
    "cca",
    "svcca",
    "pwcca",
    "cka",
    "cka_debiased",
    "procrustes",
    "unitmatch",
    "rsa",
)


def test_measures_is_the_one_registry_with_the_default_measures() -> None:
    assert isinstance(M.MEASURES, Registry)
    assert set(BUILT_IN) <= set(M.MEASURES)
    assert M.DEFAULT_MEASURES == ("neighbors", "cca", "unitmatch", "cka")
    assert all(m in M.MEASURES for m in M.DEFAULT_MEASURES)
    from embspace import sweeps

    assert sweeps.DEFAULT_MEASURES is M.DEFAULT_MEASURES
    import inspect

    default = inspect.signature(M.compare).parameters["measures"].default
    assert default is M.DEFAULT_MEASURES


def _d_mismatch_refused(fn) -> bool:
    """Whether ``fn`` refuses a 3-column A with a 4-column B (shape error): the
    independent reference for ``needs_equal_d``."""
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((60, 3)), rng.standard_normal((60, 4))
    try:
        fn(A, B)
    except ShapeMismatchError:
        return True
    return False


@pytest.mark.parametrize("name", BUILT_IN)
def test_capabilities_match_what_each_measure_does(name: str) -> None:
    spec = M.get_measure(name)
    assert spec.name == name
    assert spec.needs_equal_d == _d_mismatch_refused(spec.function)
    # neighbor-based measures are exactly the ones that read k-NN tables
    import inspect

    takes_tables = "tables" in inspect.signature(spec.function).parameters
    assert spec.neighbor_based == takes_tables == (spec.family == "neighbors")
    assert spec.cost.startswith("O(")  # a documented big-O
    assert isinstance(spec.cost_tier, M.CostTier) and isinstance(spec.cost_tier, int)
    expected = (
        M.CostTier.QUADRATIC
        if spec.neighbor_based
        else M.CostTier.SAMPLE
        if name == "rsa"
        else M.CostTier.LINEAR
    )
    assert spec.cost_tier is expected


def test_cost_tiers_sort_cheapest_first() -> None:
    order = sorted(BUILT_IN, key=lambda n: M.MEASURES[n].cost_tier)
    assert order[0] == "rsa"
    assert set(order[-3:]) == {"neighbors", "mutual_knn", "overlap_curve"}
    assert M.CostTier.SAMPLE < M.CostTier.LINEAR < M.CostTier.QUADRATIC


def test_check_measures_validates_names() -> None:
    assert M.check_measures(["cka", "neighbors"]) == ("cka", "neighbors")
    assert M.check_measures("cca") == ("cca",)
    assert M.check_measures(iter(["rsa"])) == ("rsa",)
    with pytest.raises(InvalidParameterError, match="unknown measure 'neighbours'") as err:
        M.check_measures(["neighbours", "cka"])
    for name in M.MEASURES:
        assert name in str(err.value)
    with pytest.raises(InvalidParameterError, match="unknown measures 'a', 'b'"):
        M.check_measures(["a", "cka", "b"])
    with pytest.raises(InvalidParameterError, match="no measure"):
        M.check_measures([])
    with pytest.raises(InvalidParameterError, match="repeat"):
        M.check_measures(["cka", "cka"])
    with pytest.raises(InvalidParameterError, match="strings"):
        M.check_measures(["cka", 3])
    with pytest.raises(InvalidParameterError, match="sequence of names"):
        M.check_measures(7)


def test_check_measures_refuses_what_the_dimensions_forbid() -> None:
    names = ["neighbors", "unitmatch", "cka", "procrustes"]
    assert M.check_measures(names, dims=(10, 10)) == tuple(names)
    assert M.check_measures(["neighbors", "cca", "cka"], dims=(10, 16)) == (
        "neighbors",
        "cca",
        "cka",
    )
    with pytest.raises(ShapeMismatchError, match=r"'unitmatch', 'procrustes'.*d = 10 and 16"):
        M.check_measures(names, dims=(10, 16))
    for bad in [(10,), (0, 3), (2.5, 2), "ab", (True, 2)]:
        with pytest.raises(InvalidParameterError, match="dims"):
            M.check_measures(names, dims=bad)


def test_register_measure_defaults_and_errors() -> None:
    def first(A, B, *, xp=np):
        """First-column correlation. Range [-1, 1]. Invariances: none.

        Cost: O(n) time,
        O(1) memory. More text.
        """
        return M.MeasureResult("first", float(np.corrcoef(A[:, 0], B[:, 0])[0, 1]))

    def near(A, B, *, k=10, metric="cosine", tables=None):
        """Nothing documented."""
        return M.MeasureResult("near", 0.0)

    try:
        spec = M.register_measure("first", first)
        assert spec.cost == "O(n) time, O(1) memory"
        assert spec.cost_tier is M.CostTier.LINEAR and not spec.neighbor_based
        assert spec.description == "First-column correlation. Range [-1, 1]. Invariances: none."
        near_spec = M.register_measure("near", near, family="neighbors", needs_equal_d=True)
        assert near_spec.cost == "not documented"
        assert near_spec.cost_tier is M.CostTier.QUADRATIC and near_spec.neighbor_based
        with pytest.raises(ShapeMismatchError, match="'near'"):
            M.check_measures(["first", "near"], dims=(3, 4))
        with pytest.raises(InvalidParameterError, match="already registered"):
            M.register_measure("first", first)
        again = M.register_measure("first", first, cost="O(1)", cost_tier=1, replace=True)
        assert again.cost == "O(1)" and again.cost_tier is M.CostTier.SAMPLE
        assert M.get_measure("first") is again
    finally:
        assert M.MEASURES.unregister("first") is not None
        M.MEASURES.unregister("near")
    assert "first" not in M.MEASURES and M.MEASURES.unregister("first") is None
    with pytest.raises(InvalidParameterError, match="family"):
        M.register_measure("x", first, family="sparse")
    with pytest.raises(InvalidParameterError, match="cost_tier"):
        M.register_measure("x", first, cost_tier=7)
    with pytest.raises(InvalidParameterError, match="callable"):
        M.register_measure("x", "not a function")
    assert "x" not in M.MEASURES
    with pytest.raises(InvalidParameterError, match="unknown measure 'x'"):
        M.get_measure("x")
