//! Sparse matrix-vector products `y = A x` of a float32 CSR matrix with a
//! float64 vector, for the truncated SVD (ARPACK calls them a few hundred
//! times: `A x` on the ratings by user and `A^T y` on the ratings by item, so
//! both are row-wise gathers and neither is a scatter).
//!
//! Rows are independent and each is summed in `f64` in its stored order, so
//! the result does not depend on the number of threads.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::parallel::with_threads;
use crate::wals::CsrView;

/// Rows per parallel task.
const ROWS_PER_TASK: usize = 1024;

/// `y = A x` for `a` (`n_rows x n_cols`), `x` of length `n_cols`, `y` of
/// length `n_rows`. `num_threads = 0` uses every core. A column index out of
/// range is an [`Error::IndexOutOfRange`]; on error `y` is unspecified.
pub fn csr_matvec(a: CsrView<'_>, x: &[f64], y: &mut [f64], num_threads: usize) -> Result<()> {
    if x.len() != a.n_cols {
        return Err(Error::ShapeMismatch(format!(
            "x has {} values for a matrix of {} columns",
            x.len(),
            a.n_cols
        )));
    }
    if y.len() != a.n_rows {
        return Err(Error::ShapeMismatch(format!(
            "y has {} values for a matrix of {} rows",
            y.len(),
            a.n_rows
        )));
    }
    with_threads(num_threads, || {
        y.par_chunks_mut(ROWS_PER_TASK)
            .enumerate()
            .try_for_each(|(c, out)| {
                let first = c * ROWS_PER_TASK;
                for (r, yi) in out.iter_mut().enumerate() {
                    let (idx, vals) = a.row(first + r);
                    *yi = row_dot(idx, vals, x).ok_or_else(|| {
                        let j = idx.iter().find(|&&j| j as u32 as usize >= x.len());
                        Error::IndexOutOfRange(format!(
                            "column index {} in row {} is outside [0, {})",
                            j.copied().unwrap_or(-1),
                            first + r,
                            x.len()
                        ))
                    })?;
                }
                Ok(())
            })
    })?
}

/// `sum_t vals[t] x[idx[t]]` in `f64`, four interleaved sums added in a fixed
/// order; `None` when an index is outside `x`.
#[inline]
fn row_dot(idx: &[i32], vals: &[f32], x: &[f64]) -> Option<f64> {
    let n = x.len() as u32;
    if idx.iter().fold(false, |bad, &j| bad | (j as u32 >= n)) {
        return None;
    }
    let mut acc = [0.0f64; 4];
    let (ic, vc) = (idx.chunks_exact(4), vals.chunks_exact(4));
    let (it, vt) = (ic.remainder(), vc.remainder());
    for (i4, v4) in ic.zip(vc) {
        for l in 0..4 {
            // SAFETY: every index was checked against `x.len()` above.
            let xj = unsafe { *x.get_unchecked(i4[l] as u32 as usize) };
            acc[l] += v4[l] as f64 * xj;
        }
    }
    for (l, (&j, &v)) in it.iter().zip(vt).enumerate() {
        // SAFETY: as above.
        acc[l] += v as f64 * unsafe { *x.get_unchecked(j as u32 as usize) };
    }
    Some((acc[0] + acc[2]) + (acc[1] + acc[3]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csr::{Csr, Duplicates};

    fn matrix() -> Csr {
        // 5 x 4 with an empty row and a row longer than one unrolled chunk
        let rows = [0, 0, 1, 3, 3, 3, 3, 4];
        let cols = [1, 3, 0, 0, 1, 2, 3, 2];
        let vals = [2.0, -1.0, 0.5, 1.0, 2.0, 3.0, 4.0, -2.5];
        Csr::from_coo(5, 4, &rows, &cols, &vals, Duplicates::Error, 0).unwrap()
    }

    #[test]
    fn matches_a_hand_computed_product_for_any_thread_count() {
        let m = matrix();
        let x = [1.0, 10.0, 100.0, 1000.0];
        let want = [20.0 - 1000.0, 0.5, 0.0, 1.0 + 20.0 + 300.0 + 4000.0, -250.0];
        for threads in [1, 2, 3] {
            let mut y = vec![f64::NAN; 5];
            csr_matvec(CsrView::from_csr(&m), &x, &mut y, threads).unwrap();
            assert_eq!(y, want, "{threads} threads");
        }
    }

    #[test]
    fn bad_shapes_and_indices_are_typed_errors() {
        let m = matrix();
        let v = CsrView::from_csr(&m);
        let mut y = vec![0.0; 5];
        assert!(matches!(
            csr_matvec(v, &[0.0; 3], &mut y, 1),
            Err(Error::ShapeMismatch(_))
        ));
        assert!(matches!(
            csr_matvec(v, &[0.0; 4], &mut [0.0; 4], 1),
            Err(Error::ShapeMismatch(_))
        ));
        let (indptr, mut indices, data) = (m.indptr.clone(), m.indices.clone(), m.data.clone());
        indices[4] = 9;
        let bad = CsrView::new(5, 4, &indptr, &indices, &data).unwrap();
        match csr_matvec(bad, &[0.0; 4], &mut y, 2) {
            Err(Error::IndexOutOfRange(msg)) => assert!(msg.contains("9") && msg.contains("row 3")),
            other => panic!("{other:?}"),
        }
        indices[4] = -1;
        let neg = CsrView::new(5, 4, &indptr, &indices, &data).unwrap();
        assert!(matches!(
            csr_matvec(neg, &[0.0; 4], &mut y, 1),
            Err(Error::IndexOutOfRange(_))
        ));
    }
}
