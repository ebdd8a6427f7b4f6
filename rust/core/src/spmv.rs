//! Sparse matrix-vector products of a float32 CSR matrix with float64
//! vectors, for the truncated SVD: [`csr_matvec`] (`y = A x`, rows
//! independent, each summed in `f64` in its stored order), and
//! [`SparseGram`], the Gramian's product `A^T (A x)` in one pass over the
//! matrix (ARPACK asks for it a hundred times or more) and `A X`.
//!
//! Every result is independent of the number of threads: the work is split
//! in parts fixed by the data, whose sums are added in a fixed order.

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

/// Stored values per part of a [`SparseGram`] product (a part's rows are
/// summed into a vector of its own; the parts are added in order).
const VALUES_PER_PART: usize = 1 << 19;
/// The most parts of a [`SparseGram`] product (each holds an `n_cols` vector).
const MAX_PARTS: usize = 32;

/// Row ranges of about equal numbers of stored values (at most `max` ranges
/// of at least `per_part` values), a function of `indptr` only.
fn parts(indptr: &[i64], per_part: usize, max: usize) -> Vec<(usize, usize)> {
    let n_rows = indptr.len() - 1;
    let nnz = indptr[n_rows] as usize;
    let n = nnz.div_ceil(per_part).clamp(1, max);
    let mut bounds = vec![0usize];
    for p in 1..n {
        let target = (nnz as u128 * p as u128 / n as u128) as i64;
        let r = indptr.partition_point(|&x| x < target).min(n_rows);
        if r > *bounds.last().expect("starts with 0") {
            bounds.push(r);
        }
    }
    if *bounds.last().expect("starts with 0") != n_rows || bounds.len() == 1 {
        bounds.push(n_rows);
    }
    bounds.windows(2).map(|w| (w[0], w[1])).collect()
}

/// A stored column number of a [`SparseGram`]: 16 bits when the matrix has
/// at most 65,536 columns (a quarter less to stream per product), else 32.
trait Col: Copy + Send + Sync {
    fn at(self) -> usize;
}

impl Col for u16 {
    #[inline(always)]
    fn at(self) -> usize {
        self as usize
    }
}

impl Col for u32 {
    #[inline(always)]
    fn at(self) -> usize {
        self as usize
    }
}

/// The column numbers of a [`SparseGram`]'s stored values (their ranks).
#[derive(Debug)]
enum Columns {
    Narrow(Vec<u16>),
    Wide(Vec<u32>),
}

/// The products `A^T (A x)` and `A X` of a sparse `n_rows x n_cols` matrix,
/// prepared once for the many products of a truncated SVD (ARPACK asks for
/// a hundred or more). The Gramian's product reads the matrix once, by rows:
/// each row's `t_i = a_i . x`, summed in `f64`, is scattered back as
/// `t_i a_i` into the sum of its part of the rows, and the parts (fixed by
/// the data) are added in order, so the result does not depend on the
/// number of threads. The column indices are checked once, here, not at
/// every product.
///
/// The columns are renumbered by decreasing number of stored values (ties
/// by column), so the values of `x` and of the sums that most entries touch
/// share few cache lines; renumbering changes no sum's order, so the
/// products are those of the matrix as given, to the bit. The column numbers
/// are kept in 16 bits when they fit. The values are not kept: every product
/// takes them (`data`, the matrix's values in stored order), so the matrix
/// is never copied.
#[derive(Debug)]
pub struct SparseGram {
    n_rows: usize,
    n_cols: usize,
    indptr: Vec<i64>,
    /// The rank of each stored value's column.
    cols: Columns,
    /// `order[r]`: the column of rank `r`.
    order: Vec<u32>,
    parts: Vec<(usize, usize)>,
    /// `x` by rank, the total, then the parts' sums (`(parts + 2) x n_cols`).
    work: std::sync::Mutex<Vec<f64>>,
}

impl SparseGram {
    /// Prepare the products of `a` (a column index out of range is an
    /// [`Error::IndexOutOfRange`]), on `num_threads` threads (0 = every core).
    pub fn new(a: CsrView<'_>, num_threads: usize) -> Result<Self> {
        let (n_rows, n_cols) = (a.n_rows, a.n_cols);
        let tasks = parts(a.indptr, VALUES_PER_PART, usize::MAX);
        with_threads(num_threads, || {
            // stored values per column, by task (exact integers)
            let counted: Vec<Result<Vec<u64>>> = tasks
                .par_iter()
                .map(|&(first, last)| {
                    let mut c = vec![0u64; n_cols];
                    for r in first..last {
                        let (idx, _) = a.row(r);
                        if idx.iter().any(|&j| j as u32 as usize >= n_cols) {
                            return Err(out_of_range(idx, r, n_cols));
                        }
                        for &j in idx {
                            c[j as usize] += 1;
                        }
                    }
                    Ok(c)
                })
                .collect();
            let mut counts = vec![0u64; n_cols];
            for c in counted {
                for (d, v) in counts.iter_mut().zip(c?) {
                    *d += v;
                }
            }
            let mut order: Vec<u32> = (0..n_cols as u32).collect();
            order.sort_by_key(|&j| (std::cmp::Reverse(counts[j as usize]), j));
            let mut rank = vec![0u32; n_cols];
            for (r, &j) in order.iter().enumerate() {
                rank[j as usize] = r as u32;
            }
            let cols = if n_cols <= 1 << 16 {
                Columns::Narrow(renumber(a.indices, &rank, |r| r as u16))
            } else {
                Columns::Wide(renumber(a.indices, &rank, |r| r))
            };
            let parts = parts(a.indptr, VALUES_PER_PART, MAX_PARTS);
            let work = vec![0.0f64; (parts.len() + 2) * n_cols];
            Ok(SparseGram {
                n_rows,
                n_cols,
                indptr: a.indptr.to_vec(),
                cols,
                order,
                parts,
                work: std::sync::Mutex::new(work),
            })
        })?
    }

    /// Number of rows of the matrix.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of columns of the matrix.
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    fn check_data(&self, data: &[f32]) -> Result<()> {
        let nnz = self.indptr[self.n_rows] as usize;
        if data.len() != nnz {
            return Err(Error::ShapeMismatch(format!(
                "the matrix has {nnz} stored values, got {}",
                data.len()
            )));
        }
        Ok(())
    }

    /// `z = A^T (A x)` (`x` and `z` of length `n_cols`) with the values
    /// `data`, on `num_threads` threads (0 = every core); the same result
    /// for any number of threads. Calls from several threads take turns.
    pub fn apply(&self, data: &[f32], x: &[f64], z: &mut [f64], num_threads: usize) -> Result<()> {
        self.check_data(data)?;
        let n = self.n_cols;
        if x.len() != n || z.len() != n {
            return Err(Error::ShapeMismatch(format!(
                "x and z have {} and {} values for a matrix of {n} columns",
                x.len(),
                z.len()
            )));
        }
        let mut work = self.work.lock().unwrap_or_else(|e| e.into_inner());
        let (xr, rest) = work.split_at_mut(n);
        let (total, sums) = rest.split_at_mut(n);
        for (d, &j) in xr.iter_mut().zip(&self.order) {
            *d = x[j as usize];
        }
        let xr = &*xr;
        with_threads(num_threads, || {
            sums.par_chunks_mut(n.max(1))
                .zip(&self.parts)
                .for_each(|(acc, &rows)| match &self.cols {
                    Columns::Narrow(c) => gram_rows(&self.indptr, c, data, rows, xr, acc),
                    Columns::Wide(c) => gram_rows(&self.indptr, c, data, rows, xr, acc),
                });
            // add the parts in order, ranks in parallel
            let sums = &*sums;
            total.par_chunks_mut(4096).enumerate().for_each(|(c, out)| {
                let (at, len) = (c * 4096, out.len());
                out.fill(0.0);
                for s in sums.chunks_exact(n) {
                    for (d, &v) in out.iter_mut().zip(&s[at..at + len]) {
                        *d += v;
                    }
                }
            });
        })?;
        for (&v, &j) in total.iter().zip(&self.order) {
            z[j as usize] = v;
        }
        Ok(())
    }

    /// `Y = A X` for `X` (`n_cols x k`, row-major) into `Y` (`n_rows x k`,
    /// row-major) with the values `data`: each row of `Y` sums its entries'
    /// rows of `X` in stored order, so the result does not depend on
    /// `num_threads` (0 = every core).
    pub fn matmat(
        &self,
        data: &[f32],
        x: &[f64],
        k: usize,
        y: &mut [f64],
        num_threads: usize,
    ) -> Result<()> {
        self.check_data(data)?;
        if k == 0 || x.len() != self.n_cols * k || y.len() != self.n_rows * k {
            return Err(Error::ShapeMismatch(format!(
                "X has {} values and Y {} for a {} x {} matrix and k = {k} (k >= 1)",
                x.len(),
                y.len(),
                self.n_rows,
                self.n_cols
            )));
        }
        // the rows of X by rank
        let mut xr = vec![0.0f64; x.len()];
        for (d, &j) in xr.chunks_exact_mut(k).zip(&self.order) {
            let j = j as usize;
            d.copy_from_slice(&x[j * k..j * k + k]);
        }
        let xr = &xr;
        with_threads(num_threads, || {
            y.par_chunks_mut(ROWS_PER_TASK * k)
                .enumerate()
                .for_each(|(c, out)| {
                    let first = c * ROWS_PER_TASK;
                    for (r, yr) in out.chunks_exact_mut(k).enumerate() {
                        let (a, b) = (
                            self.indptr[first + r] as usize,
                            self.indptr[first + r + 1] as usize,
                        );
                        match &self.cols {
                            Columns::Narrow(cs) => add_rows(&cs[a..b], &data[a..b], xr, k, yr),
                            Columns::Wide(cs) => add_rows(&cs[a..b], &data[a..b], xr, k, yr),
                        }
                    }
                })
        })
    }
}

/// `indices` renumbered by `rank`, in the column type `to` makes.
fn renumber<C: Col>(indices: &[i32], rank: &[u32], to: impl Fn(u32) -> C + Sync) -> Vec<C> {
    indices
        .par_chunks(VALUES_PER_PART)
        .flat_map_iter(|s| s.iter().map(|&j| to(rank[j as usize])))
        .collect()
}

/// `y = sum_t vals[t] x[cols[t], :]` (rows of `k`), in stored order.
#[inline(always)]
fn add_rows<C: Col>(cols: &[C], vals: &[f32], x: &[f64], k: usize, y: &mut [f64]) {
    y.fill(0.0);
    for (&j, &v) in cols.iter().zip(vals) {
        let (j, v) = (j.at(), v as f64);
        for (d, &xv) in y.iter_mut().zip(&x[j * k..j * k + k]) {
            *d += v * xv;
        }
    }
}

/// `acc = sum over the rows of (a_i . x) a_i` for the rows `rows`, with the
/// columns `cols` (checked against `x.len() = acc.len()` when the
/// [`SparseGram`] was built).
#[inline(always)]
fn gram_rows<C: Col>(
    indptr: &[i64],
    cols: &[C],
    data: &[f32],
    rows: (usize, usize),
    x: &[f64],
    acc: &mut [f64],
) {
    assert_eq!(x.len(), acc.len());
    acc.fill(0.0);
    for r in rows.0..rows.1 {
        let (a, b) = (indptr[r] as usize, indptr[r + 1] as usize);
        let (idx, vals) = (&cols[a..b], &data[a..b]);
        let mut s = [0.0f64; 4];
        let (ic, vc) = (idx.chunks_exact(4), vals.chunks_exact(4));
        let (it, vt) = (ic.remainder(), vc.remainder());
        for (i4, v4) in ic.zip(vc) {
            for l in 0..4 {
                // SAFETY: every column was checked below `n_cols` by
                // `SparseGram::new`, and `apply` checked `x.len() == n_cols`.
                s[l] += v4[l] as f64 * unsafe { *x.get_unchecked(i4[l].at()) };
            }
        }
        for (l, (&j, &v)) in it.iter().zip(vt).enumerate() {
            // SAFETY: as above.
            s[l] += v as f64 * unsafe { *x.get_unchecked(j.at()) };
        }
        let t = (s[0] + s[2]) + (s[1] + s[3]);
        for (&j, &v) in idx.iter().zip(vals) {
            // SAFETY: as above, and `acc.len() == x.len()`.
            unsafe { *acc.get_unchecked_mut(j.at()) += v as f64 * t };
        }
    }
}

fn out_of_range(idx: &[i32], row: usize, n: usize) -> Error {
    let j = idx.iter().find(|&&j| j as u32 as usize >= n);
    Error::IndexOutOfRange(format!(
        "column index {} in row {row} is outside [0, {n})",
        j.copied().unwrap_or(-1)
    ))
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

    /// A pseudo-random `n x m` matrix with `per_row` to `per_row + 4`
    /// values a row (distinct columns while `per_row + 4 <= m` and 101 is
    /// coprime with `m`), every 13th row empty.
    fn big(n: usize, m: usize, per_row: usize) -> Csr {
        let (mut r, mut c, mut v) = (vec![], vec![], vec![]);
        for i in 0..n {
            if i % 13 == 5 {
                continue;
            }
            for t in 0..(per_row + i % 5) {
                r.push(i as i64);
                c.push(((i * 7919 + t * 101) % m) as i64);
                v.push(((i + 3 * t) % 9) as f32 - 4.0);
            }
        }
        Csr::from_coo(n, m, &r, &c, &v, Duplicates::First, 0).unwrap()
    }

    fn dense_gram_matvec(m: &Csr, x: &[f64]) -> Vec<f64> {
        let mut z = vec![0.0; m.n_cols];
        for i in 0..m.n_rows {
            let (idx, vals) = m.row(i);
            let t: f64 = idx
                .iter()
                .zip(vals)
                .map(|(&j, &v)| v as f64 * x[j as usize])
                .sum();
            for (&j, &v) in idx.iter().zip(vals) {
                z[j as usize] += v as f64 * t;
            }
        }
        z
    }

    #[test]
    fn gram_matches_the_dense_product_for_any_thread_count() {
        // more values than one part: several parts are summed
        let m = big(8000, 900, 300);
        assert!(m.nnz() > 2 * VALUES_PER_PART);
        assert!(parts(&m.indptr, VALUES_PER_PART, MAX_PARTS).len() > 2);
        let x: Vec<f64> = (0..900)
            .map(|j| ((j * 37 % 101) as f64 - 50.0) / 7.0)
            .collect();
        let want = dense_gram_matvec(&m, &x);
        let scale = want.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let mut first = None;
        for threads in [1, 2, 3, 5] {
            let g = SparseGram::new(CsrView::from_csr(&m), threads).unwrap();
            assert_eq!((g.n_rows(), g.n_cols()), (8000, 900));
            assert!(matches!(g.cols, Columns::Narrow(_)));
            let mut z = vec![f64::NAN; 900];
            g.apply(&m.data, &x, &mut z, threads).unwrap();
            for (a, b) in z.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-12 * scale, "{a} vs {b}");
            }
            // a second product reuses the work space
            let mut again = vec![0.0; 900];
            g.apply(&m.data, &x, &mut again, 1).unwrap();
            assert_eq!(again, z);
            match &first {
                None => first = Some(z),
                Some(f) => assert_eq!(&z, f, "{threads} threads"),
            }
        }
        // a hand-computed case: A e0 = [0, 0.5, 0, 1, 0], A^T of that = 0.5 row1 + row3
        let s = matrix();
        let g = SparseGram::new(CsrView::from_csr(&s), 2).unwrap();
        let mut z = vec![0.0; 4];
        g.apply(&s.data, &[1.0, 0.0, 0.0, 0.0], &mut z, 2).unwrap();
        assert_eq!(z, [0.25 + 1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn gram_with_more_columns_than_16_bits_hold() {
        let (n, m) = (300, 70_000);
        let (mut r, mut c, mut v) = (vec![], vec![], vec![]);
        for i in 0..n {
            for t in 0..40 {
                r.push(i as i64);
                c.push(((i * 7919 + t * 1777) % m) as i64);
                v.push(((i + t) % 7) as f32 - 3.0);
            }
        }
        let a = Csr::from_coo(n, m, &r, &c, &v, Duplicates::First, 0).unwrap();
        let g = SparseGram::new(CsrView::from_csr(&a), 2).unwrap();
        assert!(matches!(g.cols, Columns::Wide(_)));
        let x: Vec<f64> = (0..m).map(|j| ((j % 17) as f64 - 8.0) / 3.0).collect();
        let want = dense_gram_matvec(&a, &x);
        let mut z = vec![0.0; m];
        g.apply(&a.data, &x, &mut z, 3).unwrap();
        for (p, q) in z.iter().zip(&want) {
            assert!((p - q).abs() <= 1e-12 * q.abs().max(1.0));
        }
        let mut y = vec![0.0; n];
        g.matmat(&a.data, &x, 1, &mut y, 2).unwrap();
        let mut y1 = vec![0.0; n];
        csr_matvec(CsrView::from_csr(&a), &x, &mut y1, 1).unwrap();
        for (p, q) in y.iter().zip(&y1) {
            assert!((p - q).abs() <= 1e-12 * q.abs().max(1.0));
        }
    }

    #[test]
    fn matmat_matches_column_products_for_any_thread_count() {
        let m = big(3000, 400, 20);
        let k = 3;
        let x: Vec<f64> = (0..400 * k)
            .map(|t| ((t * 13 % 29) as f64 - 14.0) / 3.0)
            .collect();
        let mut cols = vec![];
        for c in 0..k {
            let xc: Vec<f64> = (0..400).map(|j| x[j * k + c]).collect();
            let mut y = vec![0.0; 3000];
            csr_matvec(CsrView::from_csr(&m), &xc, &mut y, 1).unwrap();
            cols.push(y);
        }
        let mut first = None;
        for threads in [1, 2, 4] {
            let g = SparseGram::new(CsrView::from_csr(&m), threads).unwrap();
            let mut y = vec![f64::NAN; 3000 * k];
            g.matmat(&m.data, &x, k, &mut y, threads).unwrap();
            for i in 0..3000 {
                for (c, col) in cols.iter().enumerate() {
                    let w = col[i];
                    assert!((y[i * k + c] - w).abs() <= 1e-12 * w.abs().max(1.0));
                }
            }
            match &first {
                None => first = Some(y),
                Some(f) => assert_eq!(&y, f),
            }
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
        match SparseGram::new(bad, 2) {
            Err(Error::IndexOutOfRange(msg)) => assert!(msg.contains("9") && msg.contains("row 3")),
            other => panic!("{other:?}"),
        }
        indices[4] = -1;
        let neg = CsrView::new(5, 4, &indptr, &indices, &data).unwrap();
        assert!(matches!(
            csr_matvec(neg, &[0.0; 4], &mut y, 1),
            Err(Error::IndexOutOfRange(_))
        ));
        assert!(matches!(
            SparseGram::new(neg, 1),
            Err(Error::IndexOutOfRange(_))
        ));
        let g = SparseGram::new(v, 1).unwrap();
        let data = &m.data;
        assert!(matches!(
            g.apply(data, &[0.0; 4], &mut [0.0; 5], 1),
            Err(Error::ShapeMismatch(_))
        ));
        assert!(matches!(
            g.apply(&data[1..], &[0.0; 4], &mut [0.0; 4], 1),
            Err(Error::ShapeMismatch(_))
        ));
        assert!(matches!(
            g.matmat(data, &[0.0; 8], 2, &mut [0.0; 8], 1),
            Err(Error::ShapeMismatch(_))
        ));
        assert!(matches!(
            g.matmat(data, &[], 0, &mut [], 1),
            Err(Error::ShapeMismatch(_))
        ));
    }
}
