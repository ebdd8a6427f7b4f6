"""The one grammar of the values a person types, for every face.

The command line (``--set NAME=VALUE``, ``--values``, ``--reference``) and the
terminal UI (the sweep form's fields) read values with these functions, so
the same text means the same value everywhere.

Scalars (:func:`parse_value`) are :func:`embspace.jsonio.parse_literal`
(JSON: ``10``, ``0.01``, ``1e-3``, ``true``, ``null``, ``"text"``;
``none``/``true``/``false`` in any case; anything else is the text itself),
plus three forms JSON does not spell:

- decimal numbers such as ``.5``, ``5.`` or ``+1`` are numbers;
- ``inf``, ``-infinity``, ``nan`` (any case) are floats, which
  :func:`coerce` then refuses: no parameter takes a non-finite number;
- ``'text'`` in single quotes is the text between them.

Typed values take the type of the parameter's default (:func:`coerce`):

- a number where the default is a float becomes a float (``1`` -> ``1.0``),
  so that equal settings share labels and cache entries;
- a float where the default is an int must be a whole number (``20.0`` ->
  ``20``); ``2.5`` for an int parameter is an
  :class:`~embspace.errors.InvalidParameterError` ("factors takes whole
  numbers, got 2.5"), never silently rounded nor passed on;
- text, lists or booleans where the default is a number, or anything but
  ``true``/``false`` where it is a boolean, are errors; other defaults
  (strings, None) accept any value and the estimator checks it.

Lists (:func:`split_list`) are separated by commas or semicolons (with
optional spaces around them) or by spaces alone: ``"0, 0.01 0.1;1"`` is four
items. Two separators in a row, or a leading or trailing comma, leave an empty
item, which is an error; an item cannot itself contain a separator.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..errors import InvalidParameterError
from ..jsonio import parse_literal

__all__ = [
    "check_names",
    "coerce",
    "format_value",
    "parse_params",
    "parse_value",
    "parse_values",
    "same_value",
    "split_list",
]

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NON_FINITE = re.compile(r"[+-]?(?:inf|infinity|nan)", re.IGNORECASE)
_SEPARATOR = re.compile(r"\s*[,;]\s*|\s+")
_ITEM_CHAR = re.compile(r"[^\s,;]")


def parse_value(text: str) -> Any:
    """The value ``text`` spells, by the grammar of the module docstring
    (no type is imposed: see :func:`coerce`).

    >>> parse_value("10"), parse_value(".5"), parse_value("None"), parse_value("'cg'")
    (10, 0.5, None, 'cg')
    """
    raw = str(text).strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return raw[1:-1]
    value = parse_literal(raw)
    if isinstance(value, str):
        if _NUMBER.fullmatch(value):
            return float(value) if any(c in value for c in ".eE") else int(value)
        if _NON_FINITE.fullmatch(value):
            return float(value)
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def coerce(value: Any, like: Any = None, name: str = "value") -> Any:
    """``value`` given the type of ``like`` (the parameter's default), by the
    rules of the module docstring; ``name`` names the parameter in errors.

    Raises
    ------
    InvalidParameterError
        A non-finite number, a non-number for a numeric default, a fractional
        number for an integer default, a non-boolean for a boolean default.
    """
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        raise InvalidParameterError(f"{name} must be a finite number, got {format_value(value)}")
    if value is None or like is None:
        return value
    if isinstance(like, (bool, np.bool_)):
        if not isinstance(value, (bool, np.bool_)):
            raise InvalidParameterError(f"{name} takes true or false, got {value!r}")
        return bool(value)
    if not _is_number(like):
        return value
    if not _is_number(value):
        raise InvalidParameterError(f"{name} takes numbers, got {value!r}")
    if isinstance(like, (float, np.floating)):
        return float(value)
    if isinstance(value, (float, np.floating)):
        if not float(value).is_integer():
            raise InvalidParameterError(f"{name} takes whole numbers, got {float(value):g}")
        return int(value)
    return int(value)


def format_value(value: Any) -> str:
    """A value as the faces print it: floats by ``:g`` (``0.01``, ``0``,
    ``1e-05``), anything else by ``str`` (``10``, ``None``, ``cg``)."""
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    return str(value)


def same_value(a: Any, b: Any) -> bool:
    """Whether two parameter values are the same setting: equal, with a
    boolean never equal to a number (``True`` is not ``1``); values that
    cannot be compared are the same only when they are the same object."""
    if isinstance(a, (bool, np.bool_)) or isinstance(b, (bool, np.bool_)):
        return isinstance(a, (bool, np.bool_)) and isinstance(b, (bool, np.bool_)) and a == b
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return a is b


def split_list(text: str) -> list[str]:
    """The items of a typed list (separators: commas, semicolons, spaces; see
    the module docstring). A text of separators only is the empty list.

    Raises
    ------
    InvalidParameterError
        An empty item (``"0,,1"``, ``"0, 1,"``).
    """
    if not _ITEM_CHAR.search(text):
        return []
    parts = _SEPARATOR.split(text.strip())
    if not all(parts):
        raise InvalidParameterError(f"empty item in the list {text!r}")
    return parts


def parse_values(text: str, like: Any = None, name: str = "value") -> list[Any]:
    """The values of a typed list, each parsed and given the type of ``like``
    (:func:`coerce`): ``parse_values("0, 0.01 1", like=0.5)`` is
    ``[0.0, 0.01, 1.0]``.

    Raises
    ------
    InvalidParameterError
        No value, an empty item, a value :func:`coerce` refuses, or a value
        given twice (after coercion: ``"1, 1.0"`` for a float parameter).
    """
    parts = split_list(text)
    if not parts:
        raise InvalidParameterError(f"give at least one {name}")
    values = [coerce(parse_value(p), like, name) for p in parts]
    for i, v in enumerate(values):
        if any(same_value(v, w) for w in values[:i]):
            raise InvalidParameterError(f"{name} {format_value(v)} is given twice")
    return values


def check_names(owner: str, names: Iterable[str], defaults: Mapping[str, Any]) -> None:
    """Raise an :class:`InvalidParameterError` naming every one of ``names``
    that is not a parameter of ``owner`` (whose parameters are the keys of
    ``defaults``), and listing the parameters it has."""
    unknown = [n for n in names if n not in defaults]
    if unknown:
        raise InvalidParameterError(
            f"{owner} has no parameter {', '.join(unknown)}; it has: {', '.join(sorted(defaults))}"
        )


def parse_params(
    items: str | Iterable[str], defaults: Mapping[str, Any], *, owner: str = "the estimator"
) -> dict[str, Any]:
    """``name=value`` settings as a dict, each value parsed and given the
    type of its default.

    ``items`` is a typed list (``"factors=10, iterations=20"``, split by
    :func:`split_list`) or the settings one by one (the command line's
    repeated ``--set``; a value may then contain separators). Every name must
    be a key of ``defaults`` (``owner`` names whose parameters they are in the
    error); a name given twice keeps its last value.

    Raises
    ------
    InvalidParameterError
        A setting without ``=``, name or value, an unknown name, or a value
        :func:`coerce` refuses.
    """
    parts = split_list(items) if isinstance(items, str) else list(items)
    params: dict[str, Any] = {}
    for part in parts:
        name, sep, raw = part.partition("=")
        name = name.strip()
        if not sep or not name or not raw.strip():
            raise InvalidParameterError(f"a parameter is given as name=value, got {part!r}")
        check_names(owner, [name], defaults)
        params[name] = coerce(parse_value(raw), defaults[name], name)
    return params
