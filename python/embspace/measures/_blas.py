"""One BLAS thread for the dense measures of thin matrices.

The QR, SVD and Gram products of an n x d matrix with d <= 64 are a few
milliseconds of work, and OpenBLAS's threads cost far more than they save
there, worst when the Rust thread pool is busy too: a 9,724 x 10 QR took
1.4 ms on one thread and 58 ms on two (2-core machine). Results are
unchanged; wider matrices keep the library's threads.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

#: Up to this many columns, dense comparisons run BLAS on one thread.
THIN_BLAS_MAX_D = 64

_lock = threading.Lock()
_controller: Any = None


def _blas_controller() -> Any:
    """threadpoolctl's controller, built once (it scans the loaded libraries),
    or None without threadpoolctl (scikit-learn brings it)."""
    global _controller
    with _lock:
        if _controller is None:
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:
                _controller = False
            else:
                _controller = ThreadpoolController()
        return _controller or None


def thin_blas(d: int) -> contextlib.AbstractContextManager[Any]:
    """A context that limits BLAS to one thread when ``d <= THIN_BLAS_MAX_D``."""
    if d > THIN_BLAS_MAX_D:
        return contextlib.nullcontext()
    controller = _blas_controller()
    if controller is None:
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")
