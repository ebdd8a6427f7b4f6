"""JSON in and out: the one place numpy values, paths and entity keys become JSON.

* :func:`to_jsonable` turns a nested structure into plain JSON values (numpy
  scalars and arrays, paths, tuples; non-finite floats to ``None`` on request);
* :func:`json_default` is the ``default=`` hook of :func:`json.dumps` for the
  same types;
* :func:`key_to_json` / :func:`key_from_json` round-trip entity keys (tuples
  become lists and back; str, int, float, bool and None stay as they are).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Mapping
from pathlib import PurePath
from typing import Any

import numpy as np

from .errors import InvalidParameterError

__all__ = [
    "json_default",
    "key_from_json",
    "key_to_json",
    "parse_literal",
    "plain_value",
    "to_jsonable",
]


def parse_literal(text: str) -> Any:
    """A literal typed by a person: JSON (``10``, ``0.01``, ``true``, ``null``,
    ``"text"``, ``[1, 2]``), ``none``/``true``/``false`` in any case, else the
    text itself. The scalar grammar under every value a user types (command
    line, terminal UI, dataset specs)."""
    lowered = text.strip().lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def plain_value(v: Any) -> Any:
    """``v`` with a numpy scalar turned into the Python scalar of the same value."""
    return v.item() if isinstance(v, np.generic) else v


def json_default(x: Any) -> Any:
    """The ``default=`` hook of :func:`json.dumps`: numpy scalars and arrays as
    Python values and lists, paths as strings; anything else is a TypeError."""
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, PurePath):
        return str(x)
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def to_jsonable(
    obj: Any,
    *,
    finite: bool = False,
    fallback: Callable[[Any], Any] | None = None,
) -> Any:
    """``obj`` as plain JSON values, recursively.

    Mappings become dicts with ``str`` keys, lists and tuples become lists,
    numpy arrays and scalars become lists and Python scalars, paths become
    strings. With ``finite=True`` NaN and infinities become ``None`` (strict
    JSON). Any other object is passed to ``fallback`` (e.g. ``repr`` or
    ``str``), or kept as it is when ``fallback`` is None.
    """
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return None if finite and not math.isfinite(obj) else obj
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v, finite=finite, fallback=fallback) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, finite=finite, fallback=fallback) for v in obj]
    if isinstance(obj, (np.ndarray, np.generic)):
        return to_jsonable(obj.tolist(), finite=finite, fallback=fallback)
    if isinstance(obj, PurePath):
        return str(obj)
    return obj if fallback is None else fallback(obj)


def key_to_json(k: Hashable) -> Any:
    """An entity key as a JSON value: tuples as lists (recursively), numpy
    scalars as Python scalars. Keys of other types cannot be saved
    (:class:`~embspace.errors.InvalidParameterError`)."""
    if isinstance(k, tuple):
        return [key_to_json(x) for x in k]
    if isinstance(k, np.generic):
        return k.item()
    if isinstance(k, (str, int, float, bool)) or k is None:
        return k
    raise InvalidParameterError(f"key {k!r} cannot be saved: use str, int, float or tuples of them")


def key_from_json(k: Any) -> Hashable:
    """The inverse of :func:`key_to_json`: lists become tuples (recursively)."""
    return tuple(key_from_json(x) for x in k) if isinstance(k, list) else k
