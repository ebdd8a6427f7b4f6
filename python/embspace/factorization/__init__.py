"""Matrix factorisations that turn ratings into embeddings.

- :class:`WALS`: weighted alternating least squares with TensorFlow
  ``WALSModel`` semantics (the reference notebook's model), on the Rust core;
- :class:`SVD`: truncated SVD of the rating matrix (scipy ``svds``).

Both follow scikit-learn's conventions (``get_params``/``set_params``,
``fit`` returns the estimator, fitted attributes end in ``_``) and expose
``user_embeddings_`` and ``item_embeddings_`` as :class:`~embspace.Embeddings`.
"""

from __future__ import annotations

from . import wals_cpu, wals_gpu  # noqa: F401  (each registers its device's WALS backend)
from .backends import WALS_BACKENDS, LossTerms, WalsBackend, WalsProblem, register_backend
from .gauge import balance
from .svd import SVD
from .wals import WALS, initial_factors
from .weights import col_weights, row_weights

__all__ = [
    "SVD",
    "WALS",
    "WALS_BACKENDS",
    "LossTerms",
    "WalsBackend",
    "WalsProblem",
    "balance",
    "col_weights",
    "initial_factors",
    "register_backend",
    "row_weights",
]
