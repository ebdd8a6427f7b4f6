"""Byte views of numpy arrays for hashing without copies."""

from __future__ import annotations

import numpy as np


def byte_view(a: np.ndarray) -> memoryview:
    """The bytes of ``a`` in C order as a flat byte buffer (for hashing): a
    view when ``a`` is C-contiguous (no copy, unlike ``a.tobytes()``), equal to
    ``a.tobytes()`` byte for byte, zero-size arrays included."""
    flat = np.ascontiguousarray(a).reshape(-1)
    return flat.view(np.uint8).data
