"""Device helpers shared by the array-module (``xp``) code paths.

Everything here works with ``xp = numpy`` (the CPU, used in CI) and
``xp = cupy`` (a CUDA device). Only :func:`memory_budget` and
:func:`synchronize` behave differently: on CuPy they ask the device.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import numpy as np

from ..backend import array_module, resolve_device, to_numpy
from ..errors import InvalidParameterError

__all__ = [
    "DEFAULT_NUMPY_BUDGET",
    "is_cupy",
    "memory_budget",
    "module_for",
    "numpy_device",
    "synchronize",
    "to_device",
    "to_numpy",
]

#: Working-memory budget (bytes) of one batch when ``xp`` is numpy: 512 MiB.
DEFAULT_NUMPY_BUDGET = 512 * 1024**2

#: Fraction of the free device memory one batch may use on CuPy.
DEVICE_BUDGET_FRACTION = 0.4

#: Upper bound (bytes) of one batch on CuPy: larger batches gain nothing.
DEVICE_BUDGET_CAP = 8 * 1024**3


def is_cupy(xp: ModuleType) -> bool:
    """True when ``xp`` is the CuPy module (not numpy)."""
    return xp is not np and getattr(xp, "__name__", "") == "cupy"


_numpy_device_depth = 0


@contextmanager
def numpy_device() -> Iterator[None]:
    """Inside this block ``device="gpu"`` (and ``"auto"``) run the GPU code paths
    with ``xp = numpy`` on the CPU.

    For tests and dry runs on machines without a GPU: the estimators take the
    same array-module branch they take on a device, only the module differs.
    Not thread-safe (a process-wide switch).
    """
    global _numpy_device_depth
    _numpy_device_depth += 1
    try:
        yield
    finally:
        _numpy_device_depth -= 1


def module_for(device: str) -> tuple[str, ModuleType]:
    """The resolved device (``"cpu"`` or ``"gpu"``) and its array module.

    Raises :class:`~embspace.errors.InvalidParameterError` for an unknown
    device and :class:`~embspace.errors.DeviceUnavailableError` for ``"gpu"``
    without CuPy or a device; ``"auto"`` falls back to the CPU. Inside
    :func:`numpy_device`, ``"gpu"`` and ``"auto"`` give ``("gpu", numpy)``.
    """
    if _numpy_device_depth and device in ("gpu", "auto"):
        return "gpu", np
    resolved = resolve_device(device)
    return resolved, array_module(resolved)


def to_device(xp: ModuleType, a: Any, dtype: Any = None, *, copy: bool = False) -> Any:
    """``a`` as a C-contiguous array of ``xp`` (always a new array on the device for
    CuPy; with ``copy=True`` never sharing memory with ``a`` on numpy either)."""
    if copy:
        return xp.array(a, dtype=dtype, order="C", copy=True)
    return xp.ascontiguousarray(xp.asarray(a, dtype=dtype))


def synchronize(xp: ModuleType) -> None:
    """Wait for the device to finish queued work (no-op for numpy); for timings."""
    if is_cupy(xp):
        xp.cuda.Device().synchronize()


def memory_budget(xp: ModuleType, budget: int | None = None) -> int:
    """Bytes one batch of work may allocate.

    ``budget`` (bytes) wins when given. Otherwise numpy gets
    :data:`DEFAULT_NUMPY_BUDGET`, and CuPy gets
    :data:`DEVICE_BUDGET_FRACTION` of the device's free memory plus the free
    blocks cached by CuPy's memory pool (at most :data:`DEVICE_BUDGET_CAP`).
    """
    if budget is not None:
        if int(budget) <= 0:
            raise InvalidParameterError(f"memory budget must be positive, got {budget}")
        return int(budget)
    if not is_cupy(xp):
        return DEFAULT_NUMPY_BUDGET
    free, _total = xp.cuda.Device().mem_info
    pooled = int(xp.get_default_memory_pool().free_bytes())
    return int(min(DEVICE_BUDGET_CAP, DEVICE_BUDGET_FRACTION * (int(free) + pooled)))
