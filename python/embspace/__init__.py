"""embspace: how much does an embedding space change when a hyperparameter changes?

Load ratings (:mod:`embspace.datasets`), train embeddings (WALS, SVD), build
exact neighbor tables, compare two spaces with well-defined measures, and sweep
a hyperparameter against a baseline with the run-to-run noise floor beside it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from . import errors
from ._core import __version__
from .embeddings import Embeddings, align
from .ratings import Ratings

if TYPE_CHECKING:
    from . import cache, datasets, device, factorization, gpu, measures, neighbors, plots, sweeps
    from .factorization import SVD, WALS, balance
    from .measures import compare
    from .neighbors import NeighborTable
    from .sweeps import Sweep

__all__ = [
    "SVD",
    "WALS",
    "Embeddings",
    "NeighborTable",
    "Ratings",
    "Sweep",
    "__version__",
    "align",
    "balance",
    "cache",
    "compare",
    "datasets",
    "device",
    "errors",
    "factorization",
    "gpu",
    "measures",
    "neighbors",
    "plots",
    "sweeps",
]

# Submodules and names loaded on first use, so `import embspace` stays fast.
_LAZY = {
    "datasets": ("embspace.datasets", None),
    "Sweep": ("embspace.sweeps", "Sweep"),
    "sweeps": ("embspace.sweeps", None),
    "cache": ("embspace.cache", None),
    "device": ("embspace.device", None),
    "neighbors": ("embspace.neighbors", None),
    "plots": ("embspace.plots", None),
    "NeighborTable": ("embspace.neighbors", "NeighborTable"),
    "compare": ("embspace.measures", "compare"),
    "measures": ("embspace.measures", None),
    "WALS": ("embspace.factorization", "WALS"),
    "SVD": ("embspace.factorization", "SVD"),
    "balance": ("embspace.factorization", "balance"),
    "factorization": ("embspace.factorization", None),
    "gpu": ("embspace.gpu", None),
}


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'embspace' has no attribute {name!r}") from None
    module = import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
