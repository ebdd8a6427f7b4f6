"""Where array code runs: which device, which array module, how much memory.

The one ground-floor module for devices. Code that runs on both the CPU and a
CUDA device is written against an array module ``xp`` (``numpy`` or ``cupy``):

* :func:`resolve_device` names the device (``"cpu"``, ``"gpu"``, ``"auto"``);
* :func:`module_for` resolves a device once and returns it with its module;
* :func:`memory_budget` says how many bytes one batch of work may use;
* :func:`to_device` / :func:`to_numpy` move arrays; :func:`numpy_device` runs
  the GPU code paths with ``xp = numpy`` (tests and dry runs on a CPU).

Only :func:`memory_budget` and :func:`synchronize` behave differently on CuPy:
they ask the device.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np

from .errors import DeviceUnavailableError, InvalidParameterError

__all__ = [
    "DEFAULT_NUMPY_BUDGET",
    "DEVICES",
    "array_module",
    "gpu_available",
    "is_cupy",
    "memory_budget",
    "module_for",
    "numpy_device",
    "resolve_device",
    "synchronize",
    "to_device",
    "to_numpy",
]

DEVICES = ("cpu", "gpu", "auto")


@lru_cache(maxsize=1)
def gpu_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount()) > 0
    except Exception:
        return False


def resolve_device(device: str) -> str:
    """``"cpu"`` or ``"gpu"`` for ``device`` in :data:`DEVICES` (``"auto"`` picks
    the GPU when :func:`gpu_available`)."""
    if device not in DEVICES:
        raise InvalidParameterError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "auto":
        return "gpu" if gpu_available() else "cpu"
    if device == "gpu" and not gpu_available():
        raise DeviceUnavailableError(
            "device='gpu' needs CuPy and a CUDA device; install embspace[gpu] "
            "(cupy-cuda12x) or use device='cpu'"
        )
    return device


def array_module(device: str) -> ModuleType:
    """``numpy`` for the CPU, ``cupy`` for the GPU."""
    if resolve_device(device) == "gpu":
        import cupy

        return cupy
    return np


def to_numpy(a: Any) -> np.ndarray:
    """A numpy array from a numpy or CuPy array (copied off the device)."""
    get = getattr(a, "get", None)
    return np.asarray(get() if callable(get) and not isinstance(a, np.ndarray) else a)


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
