//! Small dense linear algebra in `f64`: Cholesky factorisation of a symmetric
//! positive definite matrix, the two triangular solves, dot products and
//! quadratic forms with a fixed summation order.
//!
//! Matrices are row-major with a leading dimension `ld >= n`. The Cholesky
//! factor is stored as the *upper* triangle `U` with `A = U^T U`, written over
//! the upper triangle of `A`; the strict lower triangle is used as scratch
//! and holds no meaningful values afterwards.
//!
//! Every function is `#[inline(always)]` and generic over [`MulAdd`], so that
//! the WALS kernels can instantiate them inside functions compiled for a wider
//! instruction set (fused multiply-add, AVX-512) while the same source also
//! builds for the baseline target.

use crate::error::{Error, Result};

/// How `a * b + c` is evaluated: fused (one rounding, needs the FMA
/// instruction to be fast) or as a multiply followed by an add.
pub trait MulAdd {
    /// `a * b + c` in `f64`.
    fn mul_add(a: f64, b: f64, c: f64) -> f64;
    /// `a * b + c` in `f32`.
    fn mul_add32(a: f32, b: f32, c: f32) -> f32;
}

/// Fused multiply-add (use only where the target has an FMA unit).
pub struct Fused;

/// Separate multiply and add (any target).
pub struct Unfused;

impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f64, b: f64, c: f64) -> f64 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    fn mul_add32(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

impl MulAdd for Unfused {
    #[inline(always)]
    fn mul_add(a: f64, b: f64, c: f64) -> f64 {
        a * b + c
    }
    #[inline(always)]
    fn mul_add32(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// Number of independent partial sums of the dot products: a fixed order, so
/// results do not depend on the caller, and wide enough to vectorise.
const LANES: usize = 8;

/// `sum_i a[i] * b[i]` over `min(len)` elements, in a fixed order (eight
/// interleaved partial sums, then a fixed tree).
#[inline(always)]
pub fn dot<M: MulAdd>(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..LANES {
            acc[l] = M::mul_add(x[l], y[l], acc[l]);
        }
    }
    for (l, (x, y)) in ca.remainder().iter().zip(cb.remainder()).enumerate() {
        acc[l] = M::mul_add(*x, *y, acc[l]);
    }
    reduce(acc)
}

/// `sum_i a[i] * b[i]` with `a` in `f32` (widened exactly) and `b` in `f64`.
#[inline(always)]
pub fn dot_f32<M: MulAdd>(a: &[f32], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..LANES {
            acc[l] = M::mul_add(x[l] as f64, y[l], acc[l]);
        }
    }
    for (l, (x, y)) in ca.remainder().iter().zip(cb.remainder()).enumerate() {
        acc[l] = M::mul_add(*x as f64, *y, acc[l]);
    }
    reduce(acc)
}

/// The sum of eight interleaved partial sums, in the fixed tree every
/// reduction here uses.
#[inline(always)]
pub(crate) fn reduce(acc: [f64; LANES]) -> f64 {
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

/// `x^T S x` for a symmetric `n x n` matrix `S` stored in full (row-major,
/// leading dimension `ld`), as `x . (S x)` with `S x` by [`mat_vec`] into
/// `tmp` (`n` values), then one dot product.
#[inline(always)]
pub fn quad_form<M: MulAdd>(s: &[f64], n: usize, ld: usize, x: &[f64], tmp: &mut [f64]) -> f64 {
    mat_vec::<M>(s, n, ld, x, tmp);
    dot::<M>(&tmp[..n], &x[..n])
}

/// `y = S x` for a symmetric `n x n` matrix `S` stored in full (row-major,
/// leading dimension `ld`), as `sum_i x_i S_i` (row `i` is column `i`): row
/// axpys, independent across the elements of `y`, instead of `n` dot
/// products each ending in a horizontal sum.
/// Columns are taken 32 at a time, their sums held in registers over all
/// rows (each element still sums over `i` in order).
#[inline(always)]
pub fn mat_vec<M: MulAdd>(s: &[f64], n: usize, ld: usize, x: &[f64], y: &mut [f64]) {
    mat_vec_blocked::<M, f64, 32>(s, n, ld, x, y)
}

/// [`mat_vec`] in `f32`: `y = S x` for a symmetric `f32` matrix (row-major,
/// leading dimension `ld`), 64 columns at a time held in registers.
#[inline(always)]
pub fn mat_vec32<M: MulAdd>(s: &[f32], n: usize, ld: usize, x: &[f32], y: &mut [f32]) {
    mat_vec_blocked::<M, f32, 64>(s, n, ld, x, y)
}

/// The element types the dense kernels run in, with their multiply-add.
pub trait Scalar: Copy + Default {
    fn fma<M: MulAdd>(a: Self, b: Self, c: Self) -> Self;
}

impl Scalar for f64 {
    #[inline(always)]
    fn fma<M: MulAdd>(a: f64, b: f64, c: f64) -> f64 {
        M::mul_add(a, b, c)
    }
}

impl Scalar for f32 {
    #[inline(always)]
    fn fma<M: MulAdd>(a: f32, b: f32, c: f32) -> f32 {
        M::mul_add32(a, b, c)
    }
}

/// `y = sum_i x_i S_i` by blocks of `B` columns whose sums stay in registers
/// across all rows, then the remaining columns.
#[inline(always)]
fn mat_vec_blocked<M: MulAdd, T: Scalar, const B: usize>(
    s: &[T],
    n: usize,
    ld: usize,
    x: &[T],
    y: &mut [T],
) {
    let (x, y) = (&x[..n], &mut y[..n]);
    let mut j0 = 0;
    while j0 + B <= n {
        let mut acc = [T::default(); B];
        for (i, &xi) in x.iter().enumerate() {
            let row: &[T; B] = s[i * ld + j0..i * ld + j0 + B]
                .try_into()
                .expect("a whole block");
            for l in 0..B {
                acc[l] = T::fma::<M>(xi, row[l], acc[l]);
            }
        }
        y[j0..j0 + B].copy_from_slice(&acc);
        j0 += B;
    }
    if j0 < n {
        let tail = &mut y[j0..];
        tail.fill(T::default());
        for (i, &xi) in x.iter().enumerate() {
            for (yj, &sij) in tail.iter_mut().zip(&s[i * ld + j0..i * ld + n]) {
                *yj = T::fma::<M>(xi, sij, *yj);
            }
        }
    }
}

/// Factor the leading `n x n` block of `a` (row-major, leading dimension
/// `ld`; only the upper triangle is read) as `U^T U`, in place.
///
/// `min_pivot[j]` is the smallest acceptable value of pivot `j` (the Schur
/// complement `a_jj - sum_p u_pj^2` before its square root); a pivot at or
/// below it stops the factorisation and returns `Err(j)`. Pass zeros to
/// accept any positive definite matrix.
///
/// The algorithm is right-looking with panels of four rows, so the trailing
/// update does four multiply-adds per element loaded and stored.
#[inline(always)]
pub fn cholesky_upper<M: MulAdd>(
    a: &mut [f64],
    n: usize,
    ld: usize,
    min_pivot: &[f64],
) -> std::result::Result<(), usize> {
    assert!(ld >= n && a.len() >= n.saturating_sub(1) * ld + n && min_pivot.len() >= n);
    let mut j0 = 0;
    while j0 < n {
        let pw = (n - j0).min(4);
        // Factor the panel rows j0..j0+pw, updating only within the panel.
        for p in 0..pw {
            let j = j0 + p;
            let d = a[j * ld + j];
            if !d.is_finite() || d <= min_pivot[j] {
                return Err(j);
            }
            let s = d.sqrt();
            a[j * ld + j] = s;
            let inv = 1.0 / s;
            for v in &mut a[j * ld + j + 1..j * ld + n] {
                *v *= inv;
            }
            for q in p + 1..pw {
                let i = j0 + q;
                let c = a[j * ld + i];
                let (head, tail) = a.split_at_mut(i * ld);
                let src = &head[j * ld + i..j * ld + n];
                let dst = &mut tail[i..n];
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = M::mul_add(-c, *s, *d);
                }
            }
        }
        // Rank-pw update of the trailing rows with the panel rows.
        if pw == 4 {
            let (panel, rest) = a.split_at_mut((j0 + 4) * ld);
            let r0 = &panel[j0 * ld..j0 * ld + n];
            let r1 = &panel[(j0 + 1) * ld..(j0 + 1) * ld + n];
            let r2 = &panel[(j0 + 2) * ld..(j0 + 2) * ld + n];
            let r3 = &panel[(j0 + 3) * ld..(j0 + 3) * ld + n];
            for i in j0 + 4..n {
                let (c0, c1, c2, c3) = (-r0[i], -r1[i], -r2[i], -r3[i]);
                // Start at a multiple of 8 so the loop runs in whole vectors;
                // the few elements left of the diagonal are scratch.
                let start = (i & !7).max(j0 + 4);
                let row = &mut rest[(i - j0 - 4) * ld..(i - j0 - 4) * ld + n];
                for m in start..n {
                    let mut v = row[m];
                    v = M::mul_add(c0, r0[m], v);
                    v = M::mul_add(c1, r1[m], v);
                    v = M::mul_add(c2, r2[m], v);
                    v = M::mul_add(c3, r3[m], v);
                    row[m] = v;
                }
            }
        }
        j0 += pw;
    }
    Ok(())
}

/// Solve `U^T U x = b` in place (`x` holds `b` on entry), with `U` the factor
/// written by [`cholesky_upper`].
#[inline(always)]
pub fn cholesky_solve<M: MulAdd>(u: &[f64], n: usize, ld: usize, x: &mut [f64]) {
    // U^T y = b: forward, by rows of U (contiguous axpys).
    for p in 0..n {
        let yp = x[p] / u[p * ld + p];
        x[p] = yp;
        let row = &u[p * ld + p + 1..p * ld + n];
        for (xm, um) in x[p + 1..n].iter_mut().zip(row) {
            *xm = M::mul_add(-yp, *um, *xm);
        }
    }
    // U x = y: backward, by dot products with rows of U.
    for j in (0..n).rev() {
        let s = dot::<M>(&u[j * ld + j + 1..j * ld + n], &x[j + 1..n]);
        x[j] = (x[j] - s) / u[j * ld + j];
    }
}

/// [`cholesky_solve`] with the reciprocals of `U`'s diagonal given (`inv[p]
/// = 1 / U[p][p]`, computed once per factor): the two substitutions then
/// multiply instead of dividing, which takes the division latency off their
/// dependency chains. Results differ from [`cholesky_solve`] by rounding.
#[inline(always)]
pub fn cholesky_solve_inv<M: MulAdd>(u: &[f64], inv: &[f64], n: usize, ld: usize, x: &mut [f64]) {
    for p in 0..n {
        let yp = x[p] * inv[p];
        x[p] = yp;
        let row = &u[p * ld + p + 1..p * ld + n];
        for (xm, um) in x[p + 1..n].iter_mut().zip(row) {
            *xm = M::mul_add(-yp, *um, *xm);
        }
    }
    for j in (0..n).rev() {
        let s = dot::<M>(&u[j * ld + j + 1..j * ld + n], &x[j + 1..n]);
        x[j] = (x[j] - s) * inv[j];
    }
}

/// Solve the symmetric positive definite system `A x = b` (a convenience for
/// tests and callers outside the hot loops). `a` is `n x n`, row-major.
pub fn solve_spd(a: &[f64], n: usize, b: &[f64]) -> Result<Vec<f64>> {
    if a.len() != n * n || b.len() != n {
        return Err(Error::ShapeMismatch(format!(
            "solve_spd needs an {n} x {n} matrix and {n} right-hand side values, got {} and {}",
            a.len(),
            b.len()
        )));
    }
    if a.iter().chain(b).any(|v| !v.is_finite()) {
        return Err(Error::NonFinite(
            "matrix or right-hand side is not finite".into(),
        ));
    }
    let mut u = a.to_vec();
    let zeros = vec![0.0; n];
    cholesky_upper::<Unfused>(&mut u, n, n, &zeros)
        .map_err(|j| Error::Numerical(format!("matrix is not positive definite (pivot {j})")))?;
    let mut x = b.to_vec();
    cholesky_solve::<Unfused>(&u, n, n, &mut x);
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A random SPD matrix B^T B + shift I (n x n) and its B.
    fn spd(n: usize, m: usize, shift: f64, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let b: Vec<f64> = (0..m * n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..m).map(|t| b[t * n + i] * b[t * n + j]).sum::<f64>();
            }
            a[i * n + i] += shift;
        }
        a
    }

    fn mat_vec_full(a: &[f64], n: usize, x: &[f64]) -> Vec<f64> {
        (0..n)
            .map(|i| (0..n).map(|j| a[i * n + j] * x[j]).sum())
            .collect()
    }

    #[test]
    fn factor_reproduces_the_matrix() {
        for n in [1, 2, 3, 4, 5, 7, 8, 9, 16, 33, 64] {
            let a = spd(n, n + 3, 0.5, n as u64);
            let mut u = a.clone();
            cholesky_upper::<Unfused>(&mut u, n, n, &vec![0.0; n]).unwrap();
            for i in 0..n {
                for j in i..n {
                    let v: f64 = (0..=i).map(|p| u[p * n + i] * u[p * n + j]).sum();
                    assert!((v - a[i * n + j]).abs() < 1e-10 * (1.0 + a[i * n + j].abs()));
                }
            }
        }
    }

    #[test]
    fn solve_matches_the_system_with_padding_and_fma() {
        // leading dimension larger than n, as the WALS kernels use it
        for n in [1, 5, 10, 16, 31, 64, 100] {
            let ld = n + 7;
            let a = spd(n, 2 * n, 0.1, 100 + n as u64);
            let mut padded = vec![f64::NAN; n * ld];
            for i in 0..n {
                padded[i * ld..i * ld + n].copy_from_slice(&a[i * n..i * n + n]);
                // the strict lower triangle is never read
                for j in 0..i {
                    padded[i * ld + j] = f64::NAN;
                }
            }
            let b: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
            let mut x = b.clone();
            cholesky_upper::<Fused>(&mut padded, n, ld, &vec![0.0; n]).unwrap();
            cholesky_solve::<Fused>(&padded, n, ld, &mut x);
            let inv: Vec<f64> = (0..n).map(|p| 1.0 / padded[p * ld + p]).collect();
            let mut y = b.clone();
            cholesky_solve_inv::<Fused>(&padded, &inv, n, ld, &mut y);
            for sol in [&x, &y] {
                let r = mat_vec_full(&a, n, sol);
                for i in 0..n {
                    assert!(
                        (r[i] - b[i]).abs() < 1e-9,
                        "n={n} i={i} {} vs {}",
                        r[i],
                        b[i]
                    );
                }
            }
        }
    }

    #[test]
    fn rejects_indefinite_and_small_pivots() {
        let a = [1.0, 2.0, 2.0, 1.0]; // eigenvalues 3 and -1
        let mut u = a;
        assert_eq!(cholesky_upper::<Unfused>(&mut u, 2, 2, &[0.0, 0.0]), Err(1));
        let singular = [1.0, 1.0, 1.0, 1.0];
        let mut u = singular;
        assert!(cholesky_upper::<Unfused>(&mut u, 2, 2, &[0.0, 1e-12]).is_err());
        let mut nan = [f64::NAN, 0.0, 0.0, 1.0];
        assert_eq!(
            cholesky_upper::<Unfused>(&mut nan, 2, 2, &[0.0, 0.0]),
            Err(0)
        );
        assert!(matches!(
            solve_spd(&a, 2, &[1.0, 1.0]),
            Err(Error::Numerical(_))
        ));
        assert!(matches!(
            solve_spd(&a, 3, &[1.0, 1.0]),
            Err(Error::ShapeMismatch(_))
        ));
    }

    #[test]
    fn dots_and_forms_match_naive_sums() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for n in [0, 1, 7, 8, 9, 23] {
            let a: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
            let b: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
            let a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
            let naive: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot::<Unfused>(&a, &b) - naive).abs() < 1e-12);
            let naive32: f64 = a32.iter().zip(&b).map(|(x, y)| *x as f64 * y).sum();
            assert!((dot_f32::<Fused>(&a32, &b) - naive32).abs() < 1e-12);
        }
        let n = 6;
        let s = spd(n, 4, 0.0, 3);
        let x: Vec<f64> = (0..n).map(|i| i as f64 - 2.5).collect();
        let sx = mat_vec_full(&s, n, &x);
        let naive: f64 = x.iter().zip(&sx).map(|(a, b)| a * b).sum();
        assert!((quad_form::<Unfused>(&s, n, n, &x, &mut vec![0.0; n]) - naive).abs() < 1e-10);
        let mut y = vec![0.0; n];
        mat_vec::<Fused>(&s, n, n, &x, &mut y);
        for i in 0..n {
            assert!((y[i] - sx[i]).abs() < 1e-10);
        }
        // two whole blocks of 32 columns and a tail, with a leading dimension
        let (n, ld) = (70, 80);
        let s = spd(n, 90, 0.1, 4);
        let mut padded = vec![f64::NAN; n * ld];
        for i in 0..n {
            padded[i * ld..i * ld + n].copy_from_slice(&s[i * n..i * n + n]);
        }
        let x: Vec<f64> = (0..n).map(|i| (i as f64 * 0.7).cos()).collect();
        let sx = mat_vec_full(&s, n, &x);
        let mut y = vec![0.0; n];
        mat_vec::<Fused>(&padded, n, ld, &x, &mut y);
        for i in 0..n {
            assert!((y[i] - sx[i]).abs() < 1e-9 * (1.0 + sx[i].abs()), "{i}");
        }
        let (n, ld) = (150, 160); // two blocks of 64 and a tail
        let s = spd(n, 170, 0.1, 5);
        let s32: Vec<f32> = (0..n * ld)
            .map(|p| {
                if p % ld < n {
                    s[p / ld * n + p % ld] as f32
                } else {
                    f32::NAN
                }
            })
            .collect();
        let x32: Vec<f32> = (0..n).map(|i| (i as f32 * 0.3).sin()).collect();
        let want: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|j| s32[j * ld + i] as f64 * x32[j] as f64).sum())
            .collect();
        let mut y32 = vec![0.0f32; n];
        mat_vec32::<Fused>(&s32, n, ld, &x32, &mut y32);
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for i in 0..n {
            assert!((y32[i] as f64 - want[i]).abs() < 1e-5 * scale, "{i}");
        }
    }
}
