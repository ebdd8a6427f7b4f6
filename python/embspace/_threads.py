"""The one check of ``num_threads``, shared by everything that takes it.

The WALS and SVD estimators, :func:`embspace.neighbors.knn` and
:class:`~embspace.NeighborTable`, :class:`~embspace.Sweep` (and through them the
measures, the CLI's ``--threads`` and the demo) all call :func:`check_threads`.
The upper bound is the Rust core's own, :func:`embspace._core.max_threads`:
4 times the CPUs this process may use (``std::thread::available_parallelism``,
which honours CPU affinity and cgroup quotas), and at least 16. More threads
than that only cost start-up time (thousands of threads take seconds to
start) and contention; results never depend on the thread count.
"""

from __future__ import annotations

import numbers
from typing import Any

from . import _core
from .errors import InvalidParameterError

__all__ = ["check_threads", "max_threads"]


def max_threads() -> int:
    """The largest accepted ``num_threads``: ``max(16, 4 * CPUs available)``."""
    return int(_core.max_threads())


def check_threads(num_threads: Any) -> int:
    """``num_threads`` as the Rust core takes it: None (every CPU) is 0, an
    integer in ``[1, max_threads()]`` is itself; anything else (0, negative,
    too large, bool, float, string) is an InvalidParameterError."""
    if num_threads is None:
        return 0
    limit = max_threads()
    if isinstance(num_threads, bool) or not isinstance(num_threads, numbers.Integral):
        raise InvalidParameterError(
            f"num_threads must be None (every CPU) or an integer in [1, {limit}], "
            f"got {num_threads!r}"
        )
    if not 1 <= int(num_threads) <= limit:
        raise InvalidParameterError(
            f"num_threads must be None (every CPU) or an integer in [1, {limit}] "
            f"(at most 4 x the CPUs available, at least 16), got {num_threads}"
        )
    return int(num_threads)
