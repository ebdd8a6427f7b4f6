"""The array backend: numpy on the CPU, CuPy on a CUDA device.

Code that runs on both is written against an array module ``xp`` (``numpy`` or
``cupy``); :func:`array_module` picks it from a ``device`` argument.
"""

from __future__ import annotations

from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np

from .errors import DeviceUnavailableError, InvalidParameterError

__all__ = ["DEVICES", "array_module", "gpu_available", "resolve_device", "to_numpy"]

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
