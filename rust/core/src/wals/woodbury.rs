//! The fixed factor whitened by the common part of every row's normal matrix,
//! for solving short rows in the space of their entries (Woodbury), and for
//! the conjugate gradient preconditioned by that common part (which runs on
//! `I + Y^T Y` below, in the coordinates `z = L^T u`, see
//! [`super::Solver::ConjugateGradient`]).
//!
//! With the same regularisation `lambda > 0` for every row, the normal matrix of row `i`
//! is `B + X^T X`, where `B = w0 G + lambda I` is common to all rows and `X`
//! holds the row's `n` gathered entries `sqrt(w_t) v_t`. With `B = L L^T`
//! (Cholesky, `L = U^T`) and `y_j = L^-1 v_j` precomputed for every fixed
//! row,
//!
//! ```text
//! (B + X^T X)^-1 b = L^-T (I + Y^T Y)^-1 z,   z = L^-1 b = sum_t W_t a_t y_t,
//! (I + Y^T Y)^-1 z = Y^T (I + Y Y^T)^-1 g,    g_t = W_t a_t / sqrt(w_t),
//! ```
//!
//! with `Y` the `n x k` rows `sqrt(w_t) y_t`, so that `z = Y^T g` (the
//! push-through identity `(I + Y^T Y)^-1 Y^T = Y^T (I + Y Y^T)^-1`; a row with
//! an entry of `w_t = 0` has a part of `z` outside the span of `Y^T` and is
//! solved directly). The row then costs an `n x n` product over depth `k` and
//! an `n x n` Cholesky instead of a `k x k` product over depth `n` and a `k x
//! k` Cholesky: about `n^2 k / 2 + n^3 / 6` multiply-adds against `n k^2 / 2 +
//! k^3 / 6`, less for every `n < k`.
//!
//! Rounding: `I + Y Y^T` has every eigenvalue at least 1, so its
//! factorisation cannot fail in exact arithmetic. `Y^T (I + Y Y^T)^-1 g`
//! takes no difference of large terms (the equal form `z - Y^T (I + Y
//! Y^T)^-1 Y z` cancels by up to `1 + |Y|^2`, and cost `n` dot products more).
//! Storing `y_j` in `f32` rounds the fixed rows once more, at their own
//! precision. Against the `f64` reference the tests measure both ways: on
//! rows far shorter than `k`, whose `k x k` matrix summed in `f32` is
//! ill-conditioned, this path is the more accurate (3e-6 against 1.5e-4 in
//! `tests/test_wals.py`); on rows of up to `max_entries(k)` from k = 33 on,
//! with and without weights, its error is at most the direct path's (1.35e-5
//! against 1.94e-5 at k = 128 with weights; the cancelling form had up to 2.7x
//! the direct path's error there).

use rayon::prelude::*;

use super::aligned::AlignedVec;
use super::kernel::{padded, Isa};
use super::phases::{self, Phase};
use crate::dense::{cholesky_upper, MulAdd};
use crate::parallel::Cancel;

/// `B = w0 G + lambda I` factored, and the fixed factor whitened by it.
pub(crate) struct Whitened {
    /// `y_j = L^-1 v_j` for every fixed row (`n_fixed x k`, `f32`, starting
    /// on a cache line).
    pub y: AlignedVec,
    /// `U^T` (`= L`), lower triangle, `kp x kp` row-major: row `b` holds
    /// column `b` of `U`, so `U x` is a sum of contiguous rows.
    pub u_t: Vec<f64>,
    /// `U^-T`, lower triangle, `kp x kp` row-major.
    pub u_inv_t: Vec<f64>,
    /// Rows with at most this many entries are solved this way.
    pub max_n: usize,
}

/// The longest row solved in the space of its entries at `k` factors: the
/// two costs above, with the direct path's `k x k` Cholesky in `f64` (half
/// the rate of the `f32` products) and the per-row overhead of this path (a
/// transpose of the block, three triangular products in `f64`), cross near
/// `n = k`, and rows close to `k` entries gain little.
pub(crate) fn max_entries(k: usize) -> usize {
    k - (k / 8).max(1)
}

/// Below this many factors the direct path's `k x k` work is too small for
/// this path to win anything.
const MIN_FACTORS: usize = 32;

/// The cost of whitening one fixed row, in units of `k^2` multiply-adds of
/// `f32`: `k^2 / 2` multiply-adds in `f64` at half the rate, plus reading,
/// converting and writing the row (measured: 0.83 us a row at k = 128 on
/// one Zen 4 core, about 5.7 k^2 at the product's rate; rounded down, as
/// the saving is an estimate too).
const WHITEN_COST: f64 = 4.0;

/// Whether whitening the fixed factor (`n_fixed` rows) pays for itself on
/// the rows of `indptr`: the estimated saving over the rows short enough,
/// in multiply-adds of `f32` (the `f64` Cholesky counted twice), against
/// [`WHITEN_COST`].
pub(crate) fn worth_it(indptr: &[i64], k: usize, n_fixed: usize) -> bool {
    if k < MIN_FACTORS {
        return false;
    }
    let max_n = max_entries(k);
    let k = k as f64;
    let saved: f64 = indptr
        .windows(2)
        .map(|w| (w[1] - w[0]) as f64)
        .filter(|&n| n >= 1.0 && n <= max_n as f64)
        .map(|n| {
            (n * k * k / 2.0 + k * k * k / 3.0) - (n * n * k / 2.0 + n * n * n / 3.0 + 2.0 * k * k)
        })
        .sum();
    saved > WHITEN_COST * n_fixed as f64 * k * k
}

/// Factor `B = base + lambda I` (`base` is `w0 G`, `kp x kp` full with zero
/// padding) and whiten the `n_fixed` rows of `fixed`, for solving rows of at
/// most `max_n < k` entries (0 for the conjugate gradient, which solves every
/// row on them). `None` when `B` is not numerically positive
/// definite, which needs `lambda = 0` (a half-sweep does not whiten then):
/// the direct path then solves every row. `cancel` is polled before every
/// 1024 rows; once it is raised the rest are left zero (and the caller
/// discards the result).
#[allow(clippy::too_many_arguments)]
pub(crate) fn whiten(
    isa: Isa,
    fixed: &[f32],
    n_fixed: usize,
    k: usize,
    base: &[f64],
    lambda: f64,
    max_n: usize,
    cancel: &Cancel,
) -> Option<Whitened> {
    let kp = padded(k);
    let mut u = base[..kp * kp].to_vec();
    let mut min_pivot = vec![0.0; k];
    for d in 0..k {
        u[d * kp + d] += lambda;
        // a pivot this small next to its diagonal would make `U^-1` huge
        min_pivot[d] = 1e-10 * u[d * kp + d];
    }
    cholesky_upper::<crate::dense::Unfused>(&mut u, k, kp, &min_pivot).ok()?;
    // zero the strict lower triangle (scratch for the factorisation)
    for a in 0..kp {
        for b in 0..a.min(k) {
            u[a * kp + b] = 0.0;
        }
    }
    // U^-1 by back substitution, column by column: U x = e_c
    let mut u_inv = vec![0.0f64; kp * kp];
    for c in 0..k {
        for a in (0..=c).rev() {
            let mut s = if a == c { 1.0 } else { 0.0 };
            for b in a + 1..=c {
                s -= u[a * kp + b] * u_inv[b * kp + c];
            }
            u_inv[a * kp + c] = s / u[a * kp + a];
        }
    }
    let transpose = |m: &[f64]| {
        let mut t = vec![0.0f64; kp * kp];
        for a in 0..k {
            for b in 0..k {
                t[b * kp + a] = m[a * kp + b];
            }
        }
        t
    };
    let u_t = transpose(&u);
    let u_inv_t = transpose(&u_inv);
    let t = phases::now();
    let mut y = AlignedVec::zeroed(n_fixed * k);
    phases::lap(Phase::Whiten, t);
    phases::flush();
    const ROWS: usize = 1024;
    y.par_chunks_mut(ROWS * k)
        .zip(fixed.par_chunks(ROWS * k))
        .for_each(|(dst, src)| {
            if cancel.is_cancelled() {
                return;
            }
            let t = phases::now();
            run_whiten_rows(isa, &u_inv, k, kp, src, dst);
            phases::lap(Phase::Whiten, t);
            phases::flush();
        });
    Some(Whitened {
        y,
        u_t,
        u_inv_t,
        max_n,
    })
}

/// `dst_j = U^-T src_j` (`= L^-1 v_j`) for every row of `src` (`k` values
/// each): `dst_j = sum_b v_jb (row b of U^-1)`, summed in `f64` in the order
/// of `b` (the zeros below the diagonal of `U^-1` add nothing), 16 columns
/// at a time.
#[inline(always)]
fn whiten_rows<M: MulAdd>(u_inv: &[f64], k: usize, kp: usize, src: &[f32], dst: &mut [f32]) {
    const C: usize = 16;
    for (v, out) in src.chunks_exact(k).zip(dst.chunks_exact_mut(k)) {
        let mut a0 = 0;
        while a0 < k {
            let mut acc = [0.0f64; C];
            // U^-1 is upper triangular: rows b past the last column add nothing
            for (b, &vb) in v[..k.min(a0 + C)].iter().enumerate() {
                let m: &[f64; C] = u_inv[b * kp + a0..b * kp + a0 + C].try_into().expect("16");
                for (a, &mc) in acc.iter_mut().zip(m) {
                    *a = M::mul_add(vb as f64, mc, *a);
                }
            }
            let w = (k - a0).min(C);
            for (o, &a) in out[a0..a0 + w].iter_mut().zip(&acc) {
                *o = a as f32;
            }
            a0 += C;
        }
    }
}

/// [`whiten_rows`] compiled for `isa` (which must be available).
fn run_whiten_rows(isa: Isa, u_inv: &[f64], k: usize, kp: usize, src: &[f32], dst: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` was checked with `Isa::available` by the caller.
        Isa::Avx512 => unsafe { whiten_avx512(u_inv, k, kp, src, dst) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { whiten_avx2(u_inv, k, kp, src, dst) },
        _ => whiten_rows::<crate::dense::Unfused>(u_inv, k, kp, src, dst),
    }
}

/// [`whiten_rows`] with intrinsics ([`tri_mul_rows`] of the upper-triangular
/// `U^-1`: the same sums in the same order, so the same bits).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn whiten_avx512(u_inv: &[f64], k: usize, kp: usize, src: &[f32], dst: &mut [f32]) {
    use super::kernel::{tri_mul_rows, Triangle};
    use std::arch::x86_64::*;
    assert!(dst.len() == src.len());
    tri_mul_rows(u_inv, Triangle::Upper, k, kp, src, k, |r, a0, sums| {
        let mut buf = [0.0f32; 16];
        _mm256_storeu_ps(buf.as_mut_ptr(), _mm512_cvtpd_ps(sums[0]));
        _mm256_storeu_ps(buf.as_mut_ptr().add(8), _mm512_cvtpd_ps(sums[1]));
        let w = (k - a0).min(16);
        dst[r * k + a0..r * k + a0 + w].copy_from_slice(&buf[..w]);
    });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn whiten_avx2(u_inv: &[f64], k: usize, kp: usize, src: &[f32], dst: &mut [f32]) {
    whiten_rows::<crate::dense::Fused>(u_inv, k, kp, src, dst)
}

/// `out[..k] = T^T x` for a lower-triangular `T` stored by rows (`kp`
/// apart, zero above the diagonal and beyond `k`, as [`whiten`] leaves
/// [`Whitened::u_t`] and [`Whitened::u_inv_t`]): `out_a = sum_{b >= a} T_ba
/// x_b`, as contiguous axpys of the rows of `T`. With [`Whitened::u_t`] this
/// is `U x`, with [`Whitened::u_inv_t`] `U^-1 x`. (The AVX-512 kernel's
/// [`super::kernel::Kernel::lower_t_mul`] keeps the sums in registers
/// instead, in another order.)
#[inline(always)]
pub(crate) fn lower_t_mul<M: MulAdd>(t: &[f64], k: usize, kp: usize, x: &[f64], out: &mut [f64]) {
    out[..k].fill(0.0);
    for (b, &xb) in x[..k].iter().enumerate() {
        for (o, &m) in out[..=b].iter_mut().zip(&t[b * kp..b * kp + b + 1]) {
            *o = M::mul_add(xb, m, *o);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// `U^T U = B`, `U^-1` and `y_j = U^-T v_j` against `f64` arithmetic,
    /// every instruction set giving the same whitened rows.
    #[test]
    fn whitening_inverts_the_factor_of_b() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for k in [1, 7, 16, 17, 40, 128] {
            let kp = padded(k);
            let n = 50;
            let fixed: Vec<f32> = (0..n * k).map(|_| rng.random_range(-1.0..1.0)).collect();
            let (w0, lambda) = (0.3, 0.07);
            let mut base = vec![0.0f64; kp * kp];
            for a in 0..k {
                for b in 0..k {
                    let g: f64 = (0..n)
                        .map(|j| fixed[j * k + a] as f64 * fixed[j * k + b] as f64)
                        .sum();
                    base[a * kp + b] = w0 * g;
                }
            }
            let mut results = vec![];
            for isa in [Isa::Avx512, Isa::Avx2, Isa::Portable] {
                if !isa.available() {
                    continue;
                }
                let wb = whiten(isa, &fixed, n, k, &base, lambda, 3, &Cancel::new())
                    .expect("B is positive definite");
                assert_eq!(wb.max_n, 3);
                // U (the transpose of u_t) times U^-1 (the transpose of
                // u_inv_t) is the identity, and U^T U = B
                for a in 0..k {
                    for b in 0..k {
                        let u = |r: usize, c: usize| wb.u_t[c * kp + r];
                        let ui = |r: usize, c: usize| wb.u_inv_t[c * kp + r];
                        let eye: f64 = (0..k).map(|m| u(a, m) * ui(m, b)).sum();
                        let want = if a == b { 1.0 } else { 0.0 };
                        assert!((eye - want).abs() < 1e-12, "k={k} {isa:?} ({a}, {b})");
                        let utu: f64 = (0..k).map(|m| u(m, a) * u(m, b)).sum();
                        let bab = base[a * kp + b] + if a == b { lambda } else { 0.0 };
                        assert!((utu - bab).abs() < 1e-12 * (1.0 + bab.abs()));
                        if a > b {
                            assert_eq!(u(a, b), 0.0);
                            assert_eq!(ui(a, b), 0.0);
                        }
                    }
                }
                // L y_j = U^T y_j = v_j, to the rounding of y_j to f32
                for j in 0..n {
                    for a in 0..k {
                        let uy: f64 = (0..=a)
                            .map(|m| wb.u_t[a * kp + m] * wb.y[j * k + m] as f64)
                            .sum();
                        let v = fixed[j * k + a] as f64;
                        assert!((uy - v).abs() < 1e-5, "k={k} {isa:?} j={j}: {uy} vs {v}");
                    }
                }
                results.push(wb.y.to_vec());
            }
            assert!(
                results.iter().all(|y| *y == results[0]),
                "k={k}: same bits on every isa"
            );
        }
    }

    #[test]
    fn a_singular_b_is_not_whitened() {
        // w0 = 0 and lambda = 0: B = 0
        let (k, n) = (8, 20);
        let fixed = vec![0.5f32; n * k];
        let base = vec![0.0f64; padded(k) * padded(k)];
        assert!(whiten(Isa::Portable, &fixed, n, k, &base, 0.0, 5, &Cancel::new()).is_none());
    }

    /// A raised token stops the whitening before its first rows.
    #[test]
    fn a_raised_token_stops_the_whitening() {
        let (k, n) = (8, 3000);
        let fixed = vec![0.5f32; n * k];
        let mut base = vec![0.0f64; padded(k) * padded(k)];
        for d in 0..k {
            base[d * padded(k) + d] = 1.0;
        }
        let quiet = whiten(Isa::Portable, &fixed, n, k, &base, 0.1, 0, &Cancel::new()).unwrap();
        assert!(quiet.y.iter().all(|&v| v != 0.0));
        let raised = Cancel::new();
        raised.cancel();
        let stopped = whiten(Isa::Portable, &fixed, n, k, &base, 0.1, 0, &raised).unwrap();
        assert!(stopped.y.iter().all(|&v| v == 0.0));
    }

    /// `lower_t_mul` is the product with the transpose of a lower triangle.
    #[test]
    fn lower_t_mul_matches_the_definition() {
        // small integers: every order of summation is exact
        for k in [1, 3, 5, 16, 17, 38, 130] {
            let kp = padded(k);
            let mut t = vec![0.0f64; kp * kp];
            for b in 0..k {
                for a in 0..=b {
                    t[b * kp + a] = ((1 + a + 3 * b) % 23) as f64;
                }
            }
            let x: Vec<f64> = (0..k).map(|i| (i % 7) as f64 - 1.5).collect();
            let mut out = vec![f64::NAN; kp];
            lower_t_mul::<crate::dense::Unfused>(&t, k, kp, &x, &mut out);
            for a in 0..k {
                let want: f64 = (a..k).map(|b| t[b * kp + a] * x[b]).sum();
                assert_eq!(out[a], want, "k={k} a={a}");
            }
            assert!(
                out[k..].iter().all(|v| v.is_nan()),
                "k={k}: nothing written past k"
            );
        }
    }
}
