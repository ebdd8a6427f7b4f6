"""The sweep form: what it proposes for each estimator, and the sweep it describes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import InvalidParameterError
from ...faces.estimators import (
    check_sweep_param,
    estimator_defaults,
    estimator_name,
    make_estimator,
    sweepable_params,
)
from ...faces.measures import DEFAULT_MEASURES
from ...faces.values import format_value, parse_params, parse_values, same_value

__all__ = [
    "FORM_PARAMS",
    "FORM_SWEEP",
    "FormDefaults",
    "SweepSpec",
    "form_defaults",
    "offered_measures",
    "parse_count",
]

#: Parameters the form fills in for each estimator (the rest keep their defaults).
FORM_PARAMS = {
    "WALS": ("factors", "iterations", "regularization"),
    "SVD": ("factors",),
}
#: What the form proposes to sweep first, with its values and reference.
FORM_SWEEP = {
    "WALS": ("unobserved_weight", "0, 0.01, 0.1, 0.5, 1, 2", "0"),
    "SVD": ("factors", "5, 10, 20, 50", "10"),
}


@dataclass(frozen=True)
class FormDefaults:
    """The text the form shows for an estimator: fixed ``params``, the swept
    ``param`` (one of ``choices``), its ``values`` and ``reference``."""

    params: str
    choices: tuple[str, ...]
    param: str
    values: str
    reference: str


def form_defaults(estimator: str) -> FormDefaults:
    """What the form proposes for ``estimator``: :data:`FORM_PARAMS` and
    :data:`FORM_SWEEP` for the built-in ones; for another registered
    estimator, its ``factors`` (when it has one) and its first sweepable
    parameter at its default value."""
    name = estimator_name(estimator)
    defaults = estimator_defaults(name)
    choices = tuple(sweepable_params(name))
    fixed = FORM_PARAMS.get(name, ("factors",))
    params = ", ".join(f"{p}={format_value(defaults[p])}" for p in fixed if p in defaults)
    if name in FORM_SWEEP:
        param, values, reference = FORM_SWEEP[name]
    elif choices:
        param = choices[0]
        values = reference = format_value(defaults[param])
    else:
        param = values = reference = ""
    return FormDefaults(params, choices, param, values, reference)


def offered_measures(known: Sequence[str] | None = None) -> list[tuple[str, bool]]:
    """The measures the form lists, each with whether it starts checked: the
    default measures first (checked), then the others by name. ``known``:
    the registered measures (default: :data:`embspace.measures.MEASURES`);
    ``overlap_curve`` is left out (a curve, not one similarity)."""
    if known is None:
        from ...measures import MEASURES

        known = list(MEASURES)
    rest = sorted(m for m in known if m not in DEFAULT_MEASURES)
    names = [m for m in (*DEFAULT_MEASURES, *rest) if m in known and m != "overlap_curve"]
    return [(m, m in DEFAULT_MEASURES) for m in names]


def parse_count(text: str | int, name: str, *, default: int | None = None) -> int:
    """A whole number of at least 1 typed in a field (``default`` when the
    field is blank and a default is given)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        raw = str(text).strip()
        if not raw and default is not None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise InvalidParameterError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 1:
        raise InvalidParameterError(f"{name} must be at least 1")
    return value


@dataclass(frozen=True)
class SweepSpec:
    """A sweep as the form describes it; :meth:`make_sweep` builds the
    :class:`~embspace.Sweep`.

    ``params`` are the estimator's fixed parameters (the swept one is set per
    run by the sweep), ``values`` the swept values, ``reference`` one of them.
    """

    estimator: str
    params: Mapping[str, Any]
    param: str
    values: tuple[Any, ...]
    reference: Any
    seeds: int
    measures: tuple[str, ...]
    k: int = 10

    @classmethod
    def from_form(
        cls,
        *,
        estimator: str,
        params: str,
        param: str,
        values: str,
        reference: str,
        seeds: str,
        measures: Sequence[str],
        k: str | int = 10,
    ) -> SweepSpec:
        """Parse and check the text of the form's fields (values by
        :mod:`embspace.faces.values`); raises :class:`InvalidParameterError`
        with a message for the user."""
        name = estimator_name(estimator)
        defaults = estimator_defaults(name)
        fixed = parse_params(params, defaults, owner=name)
        check_sweep_param(name, param, defaults)
        swept = tuple(parse_values(values, defaults[param], param))
        if reference.strip():
            ref = parse_values(reference, defaults[param], "reference")
            if len(ref) != 1:
                raise InvalidParameterError("give a single reference value")
            matches = [v for v in swept if same_value(v, ref[0])]
            if not matches:
                listed = ", ".join(format_value(v) for v in swept)
                raise InvalidParameterError(
                    f"reference {format_value(ref[0])} is not among the values ({listed})"
                )
            reference_value = matches[0]
        else:
            reference_value = swept[0]
        n_seeds = parse_count(seeds, "seeds")
        if not measures:
            raise InvalidParameterError("choose at least one measure")
        fixed.pop(param, None)
        return cls(
            estimator=name,
            params=fixed,
            param=param,
            values=swept,
            reference=reference_value,
            seeds=n_seeds,
            measures=tuple(measures),
            k=parse_count(k, "k", default=10),
        )

    def make_estimator(self) -> Any:
        """The estimator with the fixed parameters (the swept one at its default)."""
        return make_estimator(self.estimator, self.params)

    def make_sweep(self, ratings: Any, *, cache_dir: Any = None) -> Any:
        """The :class:`~embspace.Sweep` of this spec on ``ratings`` (not run yet)."""
        from ...sweeps import Sweep

        return Sweep(
            ratings,
            self.make_estimator(),
            param=self.param,
            values=list(self.values),
            reference=self.reference,
            seeds=self.seeds,
            measures=self.measures,
            cache_dir=cache_dir,
            k=self.k,
        )
