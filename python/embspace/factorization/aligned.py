"""float32 factors that start on a 64-byte cache line.

The Rust core gathers whole rows of the fixed factor. A row of ``k`` values
(``4 k`` a multiple of 64 bytes) that starts on a line is ``k / 16`` lines,
and each of the core's 16-lane loads lies in one of them. numpy puts large
arrays 16 bytes past a line (``malloc``'s header), where each row touches one
line more and every load is split across two: at k = 64 the gathers of a
half-sweep took about 8% longer. The starting factors are drawn into such
arrays and the CPU backend solves into them, so no factor is copied to be
aligned."""

from __future__ import annotations

import numpy as np

__all__ = ["LINE", "as_line_aligned", "line_aligned_empty"]

#: Bytes of a cache line.
LINE = 64


def line_aligned_empty(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised C-contiguous float32 array of ``shape`` whose first
    element starts on a cache line (it views a buffer ``LINE`` bytes longer)."""
    nbytes = int(np.prod(shape, dtype=np.int64)) * 4
    raw = np.empty(nbytes + LINE, dtype=np.uint8)
    start = -raw.ctypes.data % LINE
    return raw[start : start + nbytes].view(np.float32).reshape(shape)


def as_line_aligned(x: np.ndarray) -> np.ndarray:
    """``x`` itself when it is a C-contiguous float32 array on a cache line,
    else a copy of it that is (cast to float32)."""
    if (
        isinstance(x, np.ndarray)
        and x.dtype == np.float32
        and x.flags.c_contiguous
        and x.ctypes.data % LINE == 0
    ):
        return x
    out = line_aligned_empty(np.shape(x))
    np.copyto(out, x, casting="same_kind")
    return out
