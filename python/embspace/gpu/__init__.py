"""The GPU backend: the same algorithms written against an array module ``xp``.

``xp`` is ``numpy`` on the CPU (how CI runs and tests this code) or ``cupy`` on
a CUDA device. The public estimators take ``device="cpu" | "gpu" | "auto"``
and call in here when the device is not the Rust CPU path:

* :mod:`embspace.gpu.wals_xp`: WALS with batched per-row systems and a batched
  Cholesky solve;
* :mod:`embspace.gpu.knn_xp`: exact k-NN by blocked matrix products and
  per-block top-k, ties to the lower index;
* :mod:`embspace.gpu.linalg`: the batched SPD solve;
* array-module selection, memory budget and transfers live in :mod:`embspace.device`.
"""

from __future__ import annotations

from ..device import (
    is_cupy,
    memory_budget,
    module_for,
    numpy_device,
    synchronize,
    to_device,
    to_numpy,
)
from .knn_xp import knn_xp
from .linalg import cholesky_solve
from .wals_xp import WalsXp

__all__ = [
    "WalsXp",
    "cholesky_solve",
    "is_cupy",
    "knn_xp",
    "memory_budget",
    "module_for",
    "numpy_device",
    "synchronize",
    "to_device",
    "to_numpy",
]
