"""Embedding estimators: weighted ALS (:class:`WALS`) and truncated SVD (:class:`SVD`)."""

from __future__ import annotations

from .svd import SVD
from .wals import WALS

__all__ = ["SVD", "WALS"]
