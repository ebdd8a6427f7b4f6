"""Dense measures from streamed moments: O(n d + d^2) memory for any n.

Every dense measure of :data:`~embspace.measures.DEFAULT_MEASURES` and the
registry except ``rsa`` (which reads a sample) is a function of a few d x d
summaries of the two centred matrices ``Ac = A - mean(A)``, ``Bc``:

- the Gram and cross products ``Ac^T Ac``, ``Bc^T Bc``, ``Ac^T Bc`` (CKA,
  Procrustes, unit matching, PWCCA's weights);
- the triangular factors ``R`` of ``Ac = Q R`` (CCA, SVCCA, PWCCA: the
  singular values and right singular vectors of ``R`` are those of ``Ac``,
  and ``Ac V_r diag(1/s_r)`` is the orthonormal basis ``Q U_r`` the in-memory
  measures build), by CholeskyQR2 (two Cholesky factorisations of Gram
  matrices, one more pass: as accurate as a Householder QR while
  ``cond(Ac) <= 10^6``) and otherwise by a Householder tall-skinny QR (the
  previous ``R`` stacked on each block: as stable as one QR of the whole
  matrix, and it sees rank deficiency as the in-memory measures do);
- for debiased CKA, the sums of ``|a_i|^2 |b_i|^2`` and of the squared row
  norms.

:func:`moments` computes them in two passes over row blocks of
:data:`BLOCK_ROWS` rows (the column means, then the products), each block
converted to float64 on its own (a third pass for the QR factors), so the memory is the inputs (float32 or
float64, n x d, untouched) plus O(block d + d^2): no float64 copy of a whole
side, no n x n matrix. The results equal the in-memory measures' up to float64
rounding (the sums are taken in another order): exact measures, not
estimates. :func:`~embspace.compare` uses them above
:data:`~embspace.measures.comparison.STREAM_ABOVE` entities on the CPU.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from ..errors import (
    EmbspaceWarning,
    InvalidParameterError,
    NonFiniteError,
    NumericalError,
    ShapeMismatchError,
)
from ._base import MeasureResult, floats, warn_if_few_rows
from .units import match_units

__all__ = ["BLOCK_ROWS", "Moments", "moments", "streamed"]

#: Rows per block of the streaming passes (float64: 32 MiB per side at d = 64).
BLOCK_ROWS = 1 << 16

#: Largest condition number of a side's Gram matrix (cond(Ac)^2) for which
#: its QR factor comes from CholeskyQR2; beyond (cond(Ac) > 10^6, or rank
#: deficient) a Householder tall-skinny QR.
COND2_MAX = 1e12

#: Rows per block of the Householder tall-skinny QR (small: it is level-2
#: work, fastest in cache).
TSQR_ROWS = 1024


@dataclass(frozen=True)
class Moments:
    """The d x d summaries of two aligned n x d_a and n x d_b matrices (module docs)."""

    n: int
    mean_a: np.ndarray
    mean_b: np.ndarray
    gram_a: np.ndarray
    gram_b: np.ndarray
    cross: np.ndarray
    r_a: np.ndarray | None
    r_b: np.ndarray | None
    rows_ab: float
    rows_aa: float
    rows_bb: float
    total_a: float
    total_b: float


def _block(X: Any, lo: int, hi: int, side: str) -> np.ndarray:
    out = np.asarray(X[lo:hi], dtype=np.float64)
    if not np.isfinite(out).all():
        raise NonFiniteError(f"{side} contains NaN or infinite values")
    return out


def _qr_r(X: np.ndarray) -> np.ndarray:
    """The triangular factor R of the Householder QR of ``X`` (min(rows, d) x d)."""
    return cast(np.ndarray, np.linalg.qr(X, mode="r"))


def _triangular(
    X: Any, mean: np.ndarray, gram: np.ndarray, block_rows: int, side: str
) -> np.ndarray:
    """The triangular factor R of the QR of the centred ``X`` (d x d), from
    one more pass over the rows.

    Well-conditioned (``cond(gram) <= COND2_MAX``): CholeskyQR2, ``R1`` the
    Cholesky factor of the Gram matrix, ``R2`` that of the Gram matrix of
    ``Xc R1^-1`` (computed from the rows again, which restores the accuracy of
    a Householder QR for condition numbers up to about ``u^-1/2``), ``R = R2 R1``.
    Otherwise (near or exact rank deficiency, which the measures must see as
    the in-memory QR does): a Householder tall-skinny QR over blocks of
    :data:`TSQR_ROWS` rows (slower: level-2 work)."""
    n, d = np.shape(X)
    lam = np.linalg.eigvalsh(gram)
    if lam[0] > 0.0 and lam[-1] <= COND2_MAX * lam[0]:
        try:
            r1 = np.linalg.cholesky(gram).T
            inv = np.linalg.inv(r1)
            g2 = np.zeros((d, d))
            for lo in range(0, n, block_rows):
                q1 = (_block(X, lo, min(n, lo + block_rows), side) - mean) @ inv
                g2 += q1.T @ q1
            r2 = np.linalg.cholesky(g2).T
        except np.linalg.LinAlgError:
            pass
        else:
            return cast(np.ndarray, r2 @ r1)
    r = np.zeros((0, d))
    for lo in range(0, n, TSQR_ROWS):
        r = _qr_r(np.vstack([r, _block(X, lo, min(n, lo + TSQR_ROWS), side) - mean]))
    return r


def moments(A: Any, B: Any, *, qr: bool = True, block_rows: int = BLOCK_ROWS) -> Moments:
    """The :class:`Moments` of ``A`` and ``B`` (aligned, n x d_a and n x d_b,
    any float dtype, read in blocks of ``block_rows`` rows); ``qr=False``
    skips the triangular factors (not needed by CKA, Procrustes, unit
    matching). Two passes over the rows; O(block d + d^2) extra memory."""
    if np.ndim(A) != 2 or np.ndim(B) != 2:
        raise ShapeMismatchError("A and B must be 2-D (n x d)")
    n, da = np.shape(A)
    db = np.shape(B)[1]
    if np.shape(B)[0] != n:
        raise ShapeMismatchError(
            f"A and B must have the same rows (aligned entities), got {n} and {np.shape(B)[0]}"
        )
    if da == 0 or db == 0:
        raise ShapeMismatchError("A and B need at least one column")
    if n < 2:
        raise InvalidParameterError(f"the dense measures need at least 2 entities, got {n}")
    sum_a, sum_b = np.zeros(da), np.zeros(db)
    for lo in range(0, n, block_rows):
        hi = min(n, lo + block_rows)
        sum_a += _block(A, lo, hi, "A").sum(axis=0)
        sum_b += _block(B, lo, hi, "B").sum(axis=0)
    mean_a, mean_b = sum_a / n, sum_b / n
    gram_a, gram_b, cross = np.zeros((da, da)), np.zeros((db, db)), np.zeros((da, db))
    r_a = r_b = None
    rows_ab = rows_aa = rows_bb = total_a = total_b = 0.0
    for lo in range(0, n, block_rows):
        hi = min(n, lo + block_rows)
        Ac = _block(A, lo, hi, "A") - mean_a
        Bc = _block(B, lo, hi, "B") - mean_b
        gram_a += Ac.T @ Ac
        gram_b += Bc.T @ Bc
        cross += Ac.T @ Bc
        ra = (Ac * Ac).sum(axis=1)
        rb = (Bc * Bc).sum(axis=1)
        rows_ab += float(ra @ rb)
        rows_aa += float(ra @ ra)
        rows_bb += float(rb @ rb)
        total_a += float(ra.sum())
        total_b += float(rb.sum())
    if qr:
        r_a = _triangular(A, mean_a, gram_a, block_rows, "A")
        r_b = _triangular(B, mean_b, gram_b, block_rows, "B")
    return Moments(
        n, mean_a, mean_b, gram_a, gram_b, cross, r_a, r_b, rows_ab, rows_aa, rows_bb, total_a,
        total_b,
    )  # fmt: skip


def _spectrum(R: np.ndarray, n: int, side: str, name: str, *, warn: bool = True) -> tuple:
    """Singular values (descending), right singular vectors (columns) and the
    numerical rank of the centred matrix whose QR factor is ``R``, with the
    rank rule of :func:`embspace.measures._base.orthonormal_basis`."""
    d = R.shape[1]
    _, s, Vt = np.linalg.svd(R)
    s_max = float(s[0]) if s.shape[0] else 0.0
    if s_max == 0.0:
        raise NumericalError(f"{name}: {side} has no variance (every row is the same)")
    tol = max(n, d) * np.finfo(np.float64).eps * s_max
    rank = int((s > tol).sum())
    if warn and rank < d:
        warnings.warn(
            f"{name}: {side} is rank deficient (rank {rank} < d = {d} after centring); "
            f"using its {rank}-dimensional column space",
            EmbspaceWarning,
            stacklevel=4,
        )
    return s, Vt.T, rank


def _basis_product(m: Moments, ra: int, rb: int, sa, Va, sb, Vb) -> np.ndarray:  # type: ignore[no-untyped-def]
    """``(Ac V_a / s_a)^T (Bc V_b / s_b)`` on the leading ra and rb directions."""
    return (Va[:, :ra].T @ m.cross @ Vb[:, :rb]) / np.outer(sa[:ra], sb[:rb])


def _cca(m: Moments) -> MeasureResult:
    assert m.r_a is not None and m.r_b is not None
    warn_if_few_rows(m.n, m.r_a.shape[1], m.r_b.shape[1], "cca")
    sa, Va, ra = _spectrum(m.r_a, m.n, "A", "cca")
    sb, Vb, rb = _spectrum(m.r_b, m.n, "B", "cca")
    rho = np.clip(np.linalg.svd(_basis_product(m, ra, rb, sa, Va, sb, Vb), compute_uv=False), 0, 1)
    return MeasureResult(
        "cca", float(rho.mean()), {"correlations": floats(rho), "n_components": len(rho)}
    )


def _svcca(m: Moments, threshold: float = 0.99) -> MeasureResult:
    from .._params import check_number
    from .canonical import _kept_components

    threshold = check_number(threshold, "svcca: threshold", low=0.0, high=1.0, low_open=True)
    assert m.r_a is not None and m.r_b is not None
    spectra = []
    kept, ranks = [], []
    for side, R in (("A", m.r_a), ("B", m.r_b)):
        s, V, rank = _spectrum(R, m.n, side, "svcca", warn=False)
        r = _kept_components(s, float(threshold), rank)
        spectra.append((s, V))
        kept.append(r)
        ranks.append(rank)
    warn_if_few_rows(m.n, kept[0], kept[1], "svcca")
    (sa, Va), (sb, Vb) = spectra
    M = _basis_product(m, kept[0], kept[1], sa, Va, sb, Vb)
    rho = np.clip(np.linalg.svd(M, compute_uv=False), 0.0, 1.0)
    return MeasureResult(
        "svcca",
        float(rho.mean()),
        {
            "correlations": floats(rho),
            "kept_dims": {"A": kept[0], "B": kept[1]},
            "ranks": {"A": ranks[0], "B": ranks[1]},
            "n_components": len(rho),
            "all_kept": kept == ranks,
            "threshold": float(threshold),
        },
    )


def _pwcca(m: Moments) -> MeasureResult:
    assert m.r_a is not None and m.r_b is not None
    warn_if_few_rows(m.n, m.r_a.shape[1], m.r_b.shape[1], "pwcca")
    sa, Va, ra = _spectrum(m.r_a, m.n, "A", "pwcca")
    sb, Vb, rb = _spectrum(m.r_b, m.n, "B", "pwcca")
    U, s, _ = np.linalg.svd(_basis_product(m, ra, rb, sa, Va, sb, Vb), full_matrices=False)
    rho = np.clip(s, 0.0, 1.0)
    # H^T Ac = U^T diag(1/s_a) V_a^T Ac^T Ac
    HtA = U[:, : s.shape[0]].T @ ((Va[:, :ra].T @ m.gram_a) / sa[:ra, None])
    alpha = np.abs(HtA).sum(axis=1)
    alpha = alpha / alpha.sum()
    return MeasureResult(
        "pwcca",
        float((alpha * rho).sum()),
        {"correlations": floats(rho), "weights": floats(alpha)},
    )


def _frob2(M: np.ndarray) -> float:
    return float((M * M).sum())


def _cka(m: Moments) -> MeasureResult:
    cross = _frob2(m.cross)
    na, nb = float(np.sqrt(_frob2(m.gram_a))), float(np.sqrt(_frob2(m.gram_b)))
    if na == 0.0 or nb == 0.0:
        raise NumericalError("cka: a side has no variance (every row is the same)")
    return MeasureResult("cka", cross / (na * nb), {"hsic": cross, "norm_a": na, "norm_b": nb})


def _cka_debiased(m: Moments) -> MeasureResult:
    n = m.n
    if n < 4:
        raise InvalidParameterError(f"cka_debiased needs at least 4 entities, got {n}")

    def unbiased(frob: float, rows: float, ta: float, tb: float) -> float:
        return frob - n / (n - 2.0) * rows + ta * tb / ((n - 1.0) * (n - 2.0))

    cross = unbiased(_frob2(m.cross), m.rows_ab, m.total_a, m.total_b)
    self_a = unbiased(_frob2(m.gram_a), m.rows_aa, m.total_a, m.total_a)
    self_b = unbiased(_frob2(m.gram_b), m.rows_bb, m.total_b, m.total_b)
    if self_a <= 0.0 or self_b <= 0.0:
        raise NumericalError(
            "cka_debiased: the unbiased self-similarity of a side is not positive "
            "(no variance, or too few entities for its dimension)"
        )
    return MeasureResult(
        "cka_debiased",
        float(cross / np.sqrt(self_a * self_b)),
        {"hsic": cross, "self_a": self_a, "self_b": self_b},
    )


def _procrustes(m: Moments) -> MeasureResult:
    na, nb = float(np.sqrt(np.trace(m.gram_a))), float(np.sqrt(np.trace(m.gram_b)))
    if na == 0.0 or nb == 0.0:
        raise NumericalError("procrustes: a side has no variance (every row is the same)")
    nuclear = float(np.linalg.svd(m.cross / (na * nb), compute_uv=False).sum())
    score = min(max(nuclear, 0.0), 1.0)
    return MeasureResult(
        "procrustes",
        score,
        {
            "angular_distance": float(np.arccos(score)),
            "procrustes_distance": float(np.sqrt(max(2.0 - 2.0 * score, 0.0))),
        },
    )


def _unitmatch(m: Moments, replacement: bool = True, absolute: bool = False) -> MeasureResult:
    na, nb = np.sqrt(np.diag(m.gram_a)), np.sqrt(np.diag(m.gram_b))
    constant = int((na == 0).sum() + (nb == 0).sum())
    if constant:
        warnings.warn(
            f"unitmatch: {constant} constant unit(s); their correlations are taken as 0",
            EmbspaceWarning,
            stacklevel=3,
        )
    na, nb = np.where(na == 0, 1.0, na), np.where(nb == 0, 1.0, nb)
    C = np.clip(m.cross / np.outer(na, nb), -1.0, 1.0)
    return match_units(C, replacement=replacement, absolute=absolute)


#: measure name -> (function of :class:`Moments` and the measure's options,
#: whether it needs the QR factors).
STREAMED: dict[str, tuple[Any, bool]] = {
    "cca": (_cca, True),
    "svcca": (_svcca, True),
    "pwcca": (_pwcca, True),
    "cka": (_cka, False),
    "cka_debiased": (_cka_debiased, False),
    "procrustes": (_procrustes, False),
    "unitmatch": (_unitmatch, False),
}


def streamed(name: str, m: Moments, **options: Any) -> MeasureResult:
    """The dense measure ``name`` from the :class:`Moments` ``m`` (the same
    score and details as the in-memory measure, to float64 rounding)."""
    fn, needs_qr = STREAMED[name]
    if needs_qr and (m.r_a is None or m.r_b is None):
        raise InvalidParameterError(f"{name} needs moments computed with qr=True")
    return fn(m, **options)
