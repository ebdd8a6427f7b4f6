"""The balanced gauge of a matrix factorisation: compare models, not factor splits.

A factorisation predicts ``M = U V^T``; any invertible ``k x k`` matrix ``G``
gives the same model as ``(U G, V G^-T)``. WALS pins the split only through its
regularisation (``lambda / w0`` at large unobserved weights, about 7e-5 in the
reference sweep), so two runs that predict the same matrix can have factors that
differ by such a ``G``, and every measure of the item space then measures the
split. :func:`balance` re-expresses ``(U, V)`` in the one split where both sides
carry the model equally::

    U' V'^T = U V^T,    U'^T U' = V'^T V' = S   (diagonal, decreasing)

that is ``U' = P S^(1/2)``, ``V' = Q S^(1/2)`` for the thin SVD ``U V^T = P S Q^T``.
It depends on ``(U, V)`` only through ``U V^T``: unique up to the sign of each
column (fixed here so that each column of ``V'`` has its largest-magnitude entry
positive) and, for repeated singular values, a rotation within them. It is
computed in ``O((m + n) k^2)`` from two thin QR factorisations and one ``k x k``
SVD, without forming the ``m x n`` product.

When it matters: a sweep over a weight or regularisation strength of WALS (the
split drifts with ``lambda / w0``), or comparing WALS to SVD, whose split is
already balanced (``U S^(1/2)``, ``V S^(1/2)``). Measures invariant to any
invertible linear map (CCA) do not change; CKA, Procrustes, unit matching and
neighbor sets do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..embeddings import Embeddings
from ..errors import NonFiniteError, ShapeMismatchError

__all__ = ["balance"]


def _matrix(x: Any, name: str) -> np.ndarray:
    a = x.vectors if isinstance(x, Embeddings) else np.asarray(x)
    if a.ndim != 2:
        raise ShapeMismatchError(f"{name} must be a 2-D (n x k) matrix, got shape {a.shape}")
    a = a.astype(np.float64, copy=False)
    if not np.isfinite(a).all():
        raise NonFiniteError(f"{name} contains NaN or infinite values")
    return a


def balance(users: Any, items: Any) -> tuple[Any, Any]:
    """The factors ``(U', V')`` of the same model ``U V^T`` in the balanced gauge.

    Parameters
    ----------
    users : (m, k) array or Embeddings
        User factors ``U``.
    items : (n, k) array or Embeddings
        Item factors ``V`` (same ``k``).

    Returns
    -------
    (users', items')
        Of the same types and shapes as the inputs (Embeddings keep their keys,
        ids and metadata, with ``metadata["gauge"] = "balanced"``; arrays come
        back float32 when both inputs are float32, else float64), with
        ``users' @ items'.T == users @ items.T`` and ``users'.T @ users' ==
        items'.T @ items'`` diagonal with decreasing entries (to float rounding).
        A rank-deficient product gives zero columns beyond its rank.
    """
    u = _matrix(users, "users")
    v = _matrix(items, "items")
    if u.shape[1] != v.shape[1]:
        raise ShapeMismatchError(
            f"users and items must have the same number of factors, got {u.shape[1]} and "
            f"{v.shape[1]}"
        )
    qu, ru = np.linalg.qr(u)
    qv, rv = np.linalg.qr(v)
    a, s, bt = np.linalg.svd(ru @ rv.T, full_matrices=False)
    root = np.sqrt(s)
    k = u.shape[1]
    u_new = np.zeros((u.shape[0], k))
    v_new = np.zeros((v.shape[0], k))
    u_new[:, : s.size] = qu @ (a * root)
    v_new[:, : s.size] = qv @ (bt.T * root)
    if v_new.shape[0]:
        pivot = np.argmax(np.abs(v_new), axis=0)
        signs = np.sign(v_new[pivot, np.arange(v_new.shape[1])])
        signs[signs == 0] = 1.0
        u_new *= signs
        v_new *= signs
    single = np.asarray(getattr(users, "vectors", users)).dtype == np.float32 and (
        np.asarray(getattr(items, "vectors", items)).dtype == np.float32
    )
    dtype = np.float32 if single else np.float64
    return _like(users, u_new.astype(dtype)), _like(items, v_new.astype(dtype))


def _like(original: Any, vectors: np.ndarray) -> Any:
    if isinstance(original, Embeddings):
        return Embeddings(
            original.keys,
            vectors,
            ids=original.ids,
            metadata={**original.metadata, "gauge": "balanced"},
        )
    return vectors
