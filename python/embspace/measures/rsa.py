"""Representational similarity analysis on a sample of entities."""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Hashable, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from .._params import check_int
from ..errors import InvalidParameterError, NumericalError, ShapeMismatchError
from ._base import MeasureResult, as_pair, host

__all__ = ["rsa", "sample_by_key"]


def _canonical(key: Any) -> str:
    """A text form of a key that equal keys share (``1``, ``1.0``, ``True`` and
    ``np.int64(1)`` are one dictionary key, so they get one form) and that does
    not depend on the Python process (unlike ``hash``)."""
    if isinstance(key, tuple):
        return "(" + ",".join(_canonical(x) for x in key) + ")"
    if isinstance(key, np.generic):
        key = key.item()
    if isinstance(key, bool):
        key = int(key)
    if isinstance(key, float) and key.is_integer():
        key = int(key)
    if isinstance(key, int):
        return f"i{key}"
    if isinstance(key, float):
        return f"f{key!r}"
    if isinstance(key, str):
        return "s" + json.dumps(key)
    if key is None:
        return "n"
    return "r" + repr(key)


def sample_by_key(keys: Sequence[Hashable], size: int, random_state: int = 0) -> np.ndarray:
    """The rows of a uniform random sample of ``size`` entities, chosen by key.

    Each key gets a pseudo-random rank, the BLAKE2b digest of its canonical
    text form keyed by ``random_state``; the ``size`` keys of lowest rank are
    taken (all rows when ``size >= len(keys)``). The chosen *keys* depend only
    on the key set and ``random_state``: not on the order of the rows, nor on
    the process. Returns their row indices, ascending (int64).

    Cost: one hash per key, O(n log size).
    """
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)):
        raise InvalidParameterError(f"random_state must be an integer, got {random_state!r}")
    if not -(2**127) <= int(random_state) < 2**127:
        raise InvalidParameterError(f"random_state {random_state} does not fit in 128 bits")
    n = len(keys)
    if size >= n:
        return np.arange(n, dtype=np.int64)
    salt = int(random_state).to_bytes(16, "little", signed=True)
    ranked = []
    for i, key in enumerate(keys):
        text = _canonical(key).encode()
        ranked.append((hashlib.blake2b(text, digest_size=16, key=salt).digest(), text, i))
    chosen = heapq.nsmallest(size, ranked)  # equal digests: by the text form
    return np.sort(np.array([i for _, _, i in chosen], dtype=np.int64))


def _cosine_rdm_upper(X: Any, xp: ModuleType) -> np.ndarray:
    norms = xp.sqrt((X * X).sum(axis=1))
    U = X / xp.where(norms == 0, 1.0, norms)[:, None]
    D = 1.0 - U @ U.T
    rows, cols = np.triu_indices(X.shape[0], k=1)
    return host(D)[rows, cols]


def rsa(
    A: Any,
    B: Any,
    *,
    sample: int = 1000,
    random_state: int = 0,
    keys: Sequence[Hashable] | None = None,
    xp: ModuleType = np,
) -> MeasureResult:
    """RSA: Spearman correlation of the two cosine-distance matrices of a sample.

    ``sample`` entities (all of them when n is smaller) are drawn by key with
    ``random_state`` (:func:`sample_by_key`; ``keys`` are the entities' keys,
    which :func:`embspace.compare` passes, and default to the row positions);
    on each side the m x m matrix of cosine distances between them is computed
    (on ``xp``), and the score is the Spearman rank correlation of the two
    upper triangles (ranks on the host, ties averaged, scipy). Range [-1, 1].

    Invariances: the order of the entities (the sample is a function of the
    key set, and the correlation of the pairs does not depend on their
    order); rotation and isotropic scaling of either side, column permutation
    and sign flips, and any change that keeps the order of pairwise cosine
    distances. Not invariant to translation.

    Cost: O(m^2 d) for the distances and O(m^2 log m) for the ranks, O(m^2)
    memory, plus one hash per entity to draw the sample.
    """
    from scipy.stats import spearmanr

    sample = check_int(sample, "rsa: sample", minimum=3)
    random_state = check_int(random_state, "rsa: random_state", minimum=0)
    A, B = as_pair(A, B, xp, min_n=3, name="rsa")
    n = A.shape[0]
    if keys is None:
        keys = range(n)
    elif len(keys) != n:
        raise ShapeMismatchError(f"rsa: {len(keys)} keys for {n} entities")
    m = min(int(sample), n)
    rows = sample_by_key(keys, m, random_state)
    sel = xp.asarray(rows)
    da = _cosine_rdm_upper(A[sel], xp)
    db = _cosine_rdm_upper(B[sel], xp)
    if np.ptp(da) == 0 or np.ptp(db) == 0:
        raise NumericalError("rsa: every sampled pair is at the same distance on one side")
    rho = float(spearmanr(da, db).statistic)
    return MeasureResult(
        "rsa", rho, {"sample": m, "random_state": int(random_state), "sampled_by": "key"}
    )
