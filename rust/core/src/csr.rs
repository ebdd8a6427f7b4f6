//! Compressed sparse row matrices of `f32`, built from coordinate triples.
//!
//! Layout is scipy's: `indptr` (n_rows + 1 offsets), `indices` (column of each
//! stored value, sorted within a row, no repeats) and `data`. Offsets are `i64`
//! so the layout holds more than 2^31 values; columns are `i32`.

use std::ops::Range;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::parallel::with_threads;

/// What to do when a (row, column) pair occurs more than once in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duplicates {
    /// Refuse the input with [`Error::DuplicateEntry`].
    Error,
    /// Keep the first value in input order.
    First,
    /// Keep the last value in input order.
    Last,
    /// Sum the values.
    Sum,
    /// Average the values.
    Mean,
    /// Keep the largest value.
    Max,
}

impl Duplicates {
    /// Parse a policy name as the Python layer spells it.
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "error" => Self::Error,
            "first" => Self::First,
            "last" => Self::Last,
            "sum" => Self::Sum,
            "mean" => Self::Mean,
            "max" => Self::Max,
            other => {
                return Err(Error::InvalidParameter(format!(
                    "unknown duplicates policy {other:?}: expected one of error, first, last, sum, mean, max"
                )))
            }
        })
    }
}

/// A CSR matrix of `f32` values.
#[derive(Debug, Clone, PartialEq)]
pub struct Csr {
    pub n_rows: usize,
    pub n_cols: usize,
    pub indptr: Vec<i64>,
    pub indices: Vec<i32>,
    pub data: Vec<f32>,
}

impl Csr {
    /// Number of stored values.
    pub fn nnz(&self) -> usize {
        self.data.len()
    }

    /// The column indices and values of row `i`.
    pub fn row(&self, i: usize) -> (&[i32], &[f32]) {
        let (a, b) = (self.indptr[i] as usize, self.indptr[i + 1] as usize);
        (&self.indices[a..b], &self.data[a..b])
    }

    /// Build from coordinate triples. Indices must lie in `[0, n_rows)` and
    /// `[0, n_cols)`, values must be finite; repeated pairs follow `policy`.
    /// Rows are sorted on `num_threads` threads (0 = every CPU); the result
    /// does not depend on it.
    pub fn from_coo(
        n_rows: usize,
        n_cols: usize,
        rows: &[i64],
        cols: &[i64],
        vals: &[f32],
        policy: Duplicates,
        num_threads: usize,
    ) -> Result<Self> {
        if rows.len() != cols.len() || rows.len() != vals.len() {
            return Err(Error::ShapeMismatch(format!(
                "rows, cols and values must have the same length (got {}, {}, {})",
                rows.len(),
                cols.len(),
                vals.len()
            )));
        }
        if n_cols > i32::MAX as usize {
            return Err(Error::InvalidParameter(format!(
                "{n_cols} columns exceed the supported maximum {}",
                i32::MAX
            )));
        }
        for (pos, ((&r, &c), &v)) in rows.iter().zip(cols).zip(vals).enumerate() {
            if r < 0 || r as u64 >= n_rows as u64 {
                return Err(Error::IndexOutOfRange(format!(
                    "row index {r} at position {pos} is outside [0, {n_rows})"
                )));
            }
            if c < 0 || c as u64 >= n_cols as u64 {
                return Err(Error::IndexOutOfRange(format!(
                    "column index {c} at position {pos} is outside [0, {n_cols})"
                )));
            }
            if !v.is_finite() {
                return Err(Error::NonFinite(format!(
                    "value {v} at position {pos} (row {r}, column {c}) is not finite"
                )));
            }
        }
        // Counting sort by row keeps input order within a row (stable).
        let mut counts = vec![0i64; n_rows + 1];
        for &r in rows {
            counts[r as usize + 1] += 1;
        }
        for i in 0..n_rows {
            counts[i + 1] += counts[i];
        }
        let mut next = counts.clone();
        let mut order = vec![0usize; rows.len()];
        for (pos, &r) in rows.iter().enumerate() {
            let slot = &mut next[r as usize];
            order[*slot as usize] = pos;
            *slot += 1;
        }
        // Sort each row by column (stable: equal columns keep input order).
        let sorted = with_threads(num_threads, || {
            (0..n_rows)
                .into_par_iter()
                .map(|i| {
                    let seg = &order[counts[i] as usize..counts[i + 1] as usize];
                    let mut pairs: Vec<(i32, f32)> =
                        seg.iter().map(|&p| (cols[p] as i32, vals[p])).collect();
                    pairs.sort_by_key(|p| p.0);
                    let mut idx = Vec::with_capacity(pairs.len());
                    let mut dat: Vec<f32> = Vec::with_capacity(pairs.len());
                    let mut run = 0usize; // length of the current run of equal columns
                    for (c, v) in pairs {
                        if idx.last() == Some(&c) {
                            run += 1;
                            let last = dat.last_mut().expect("run has a value");
                            match policy {
                                Duplicates::Error => return Err(c),
                                Duplicates::First => {}
                                Duplicates::Last => *last = v,
                                Duplicates::Sum => *last += v,
                                // running mean, exact enough for a handful of repeats
                                Duplicates::Mean => *last += (v - *last) / run as f32,
                                Duplicates::Max => *last = last.max(v),
                            }
                        } else {
                            run = 1;
                            idx.push(c);
                            dat.push(v);
                        }
                    }
                    Ok((idx, dat))
                })
                .collect::<std::result::Result<Vec<_>, i32>>()
        })?;
        // Report the first duplicate in row order, with its input positions.
        let mut rows_out: Vec<(Vec<i32>, Vec<f32>)> =
            sorted.map_err(|_| first_duplicate(n_rows, &counts, &order, cols))?;
        let mut indptr = Vec::with_capacity(n_rows + 1);
        indptr.push(0i64);
        let total: usize = rows_out.iter().map(|r| r.0.len()).sum();
        let mut indices = Vec::with_capacity(total);
        let mut data = Vec::with_capacity(total);
        for (idx, dat) in rows_out.iter_mut() {
            indices.append(idx);
            data.append(dat);
            indptr.push(indices.len() as i64);
        }
        Ok(Csr {
            n_rows,
            n_cols,
            indptr,
            indices,
            data,
        })
    }

    /// Check the invariants of a CSR matrix given by its three arrays
    /// (monotone offsets, columns in range and strictly increasing per row,
    /// finite values).
    pub fn validate_parts(
        n_rows: usize,
        n_cols: usize,
        indptr: &[i64],
        indices: &[i32],
        data: &[f32],
    ) -> Result<()> {
        check_lengths(n_rows, indptr, indices, data)?;
        check_offsets(n_rows, indptr, data.len())?;
        check_rows(0..n_rows, n_cols, indptr, indices)?;
        check_finite(data, 0)
    }

    /// The transpose, as a CSR matrix (a CSC view of `self`). Columns within
    /// each output row come out sorted because input rows are scanned in order.
    pub fn transpose(&self) -> Csr {
        transpose_parts(
            self.n_rows,
            self.n_cols,
            &self.indptr,
            &self.indices,
            &self.data,
        )
    }
}

/// The lengths and the offsets: `indptr` of `n_rows + 1` entries, from 0
/// to `nnz`, never decreasing (so every row's slice is in bounds).
fn check_offsets(n_rows: usize, indptr: &[i64], nnz: usize) -> Result<()> {
    if indptr[0] != 0 || indptr[n_rows] as u64 != nnz as u64 {
        return Err(Error::ShapeMismatch(
            "indptr must start at 0 and end at the number of stored values".into(),
        ));
    }
    if let Some(i) = indptr.windows(2).position(|w| w[1] < w[0]) {
        return Err(Error::ShapeMismatch(format!("indptr decreases at row {i}")));
    }
    Ok(())
}

/// Columns in range and strictly increasing in each of `rows` (whose
/// offsets passed [`check_offsets`]); the first offending row's error.
fn check_rows(rows: Range<usize>, n_cols: usize, indptr: &[i64], indices: &[i32]) -> Result<()> {
    for i in rows {
        let seg = &indices[indptr[i] as usize..indptr[i + 1] as usize];
        for (t, &c) in seg.iter().enumerate() {
            if c < 0 || c as usize >= n_cols {
                return Err(Error::IndexOutOfRange(format!(
                    "column index {c} in row {i} is outside [0, {n_cols})"
                )));
            }
            if t > 0 && seg[t - 1] >= c {
                return Err(Error::DuplicateEntry(format!(
                    "columns of row {i} are not strictly increasing (duplicate or unsorted entry at column {c})"
                )));
            }
        }
    }
    Ok(())
}

/// Every value finite; `offset` is the position of `data[0]` in the whole.
fn check_finite(data: &[f32], offset: usize) -> Result<()> {
    if let Some(pos) = data.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite(format!(
            "stored value {} at position {} is not finite",
            data[pos],
            offset + pos
        )));
    }
    Ok(())
}

/// The array lengths of a CSR matrix of `n_rows` rows: `n_rows + 1` offsets,
/// as many indices as values.
fn check_lengths(n_rows: usize, indptr: &[i64], indices: &[i32], data: &[f32]) -> Result<()> {
    if indptr.len() != n_rows + 1 {
        return Err(Error::ShapeMismatch(format!(
            "indptr has length {} but the matrix has {n_rows} rows",
            indptr.len()
        )));
    }
    if indices.len() != data.len() {
        return Err(Error::ShapeMismatch(format!(
            "indices ({}) and data ({}) differ in length",
            indices.len(),
            data.len()
        )));
    }
    Ok(())
}

/// Stored values per parallel task of the validation.
const VALUES_PER_TASK: usize = 1 << 18;

/// [`Csr::validate_parts`] in the current pool: rows in tasks of about
/// [`VALUES_PER_TASK`] values, the first error in row order reported.
fn validate_in_pool(
    n_rows: usize,
    n_cols: usize,
    indptr: &[i64],
    indices: &[i32],
    data: &[f32],
) -> Result<()> {
    check_lengths(n_rows, indptr, indices, data)?;
    check_offsets(n_rows, indptr, data.len())?;
    let bounds = row_bounds(indptr, data.len().div_ceil(VALUES_PER_TASK));
    let rows: Vec<Result<()>> = bounds
        .par_windows(2)
        .map(|w| check_rows(w[0]..w[1], n_cols, indptr, indices))
        .collect();
    rows.into_iter().collect::<Result<()>>()?;
    let values: Vec<Result<()>> = data
        .par_chunks(VALUES_PER_TASK)
        .enumerate()
        .map(|(c, d)| check_finite(d, c * VALUES_PER_TASK))
        .collect();
    values.into_iter().collect()
}

/// Row boundaries splitting the matrix into at most `parts` ranges of about
/// equal numbers of stored values (`[0, ..., n_rows]`, strictly increasing
/// but for an empty matrix).
fn row_bounds(indptr: &[i64], parts: usize) -> Vec<usize> {
    let n_rows = indptr.len() - 1;
    let nnz = indptr[n_rows] as usize;
    let parts = parts.clamp(1, n_rows.max(1));
    let mut bounds = vec![0usize];
    for p in 1..parts {
        let target = (nnz as u128 * p as u128 / parts as u128) as i64;
        // the first row starting at or past the target
        let r = indptr.partition_point(|&x| x < target).min(n_rows);
        if r > *bounds.last().expect("starts with 0") {
            bounds.push(r);
        }
    }
    if *bounds.last().expect("starts with 0") != n_rows || n_rows == 0 {
        bounds.push(n_rows);
    }
    bounds
}

/// A raw pointer the scatter of [`transpose_threads`] shares between its
/// tasks, which write disjoint slots.
#[derive(Clone, Copy)]
struct Slots<T>(*mut T);
// SAFETY: the tasks write disjoint positions (each slot is claimed by one
// task's running offset), and the vector outlives the parallel loop.
unsafe impl<T: Send> Send for Slots<T> {}
unsafe impl<T: Send> Sync for Slots<T> {}

/// Check the CSR matrix given by its three arrays ([`Csr::validate_parts`])
/// and transpose it, on `num_threads` threads (0 = every core). The result
/// equals [`transpose_parts`]'s for any number of threads (it is a
/// permutation of the values fixed by the data): the rows are split into
/// parts of about equal numbers of values, each part counts its columns,
/// the counts give each part its slots in every output row (parts in row
/// order), and the parts scatter into them in parallel.
pub fn transpose_threads(
    n_rows: usize,
    n_cols: usize,
    indptr: &[i64],
    indices: &[i32],
    data: &[f32],
    num_threads: usize,
) -> Result<Csr> {
    with_threads(num_threads, || {
        validate_in_pool(n_rows, n_cols, indptr, indices, data)?;
        let nnz = data.len();
        // per-part counts cost parts x n_cols: at most about the data itself
        let parts = rayon::current_num_threads()
            .min(nnz / n_cols.max(1))
            .min(nnz / (1 << 16))
            .clamp(1, 64);
        if parts == 1 {
            return Ok(transpose_parts(n_rows, n_cols, indptr, indices, data));
        }
        let bounds = row_bounds(indptr, parts);
        let mut slots: Vec<Vec<i64>> = bounds
            .par_windows(2)
            .map(|w| {
                let mut c = vec![0i64; n_cols];
                let seg = &indices[indptr[w[0]] as usize..indptr[w[1]] as usize];
                for &j in seg {
                    c[j as usize] += 1;
                }
                c
            })
            .collect();
        // output offsets, and each part's first slot in every output row
        let mut out_ptr = vec![0i64; n_cols + 1];
        for j in 0..n_cols {
            let mut at = out_ptr[j];
            for part in slots.iter_mut() {
                let c = part[j];
                part[j] = at;
                at += c;
            }
            out_ptr[j + 1] = at;
        }
        let mut out_indices = vec![0i32; nnz];
        let mut out_data = vec![0f32; nnz];
        let (oi, od) = (
            Slots(out_indices.as_mut_ptr()),
            Slots(out_data.as_mut_ptr()),
        );
        slots
            .into_par_iter()
            .zip(bounds.par_windows(2))
            .for_each(|(mut next, w)| {
                let (oi, od) = (oi, od);
                for i in w[0]..w[1] {
                    let (a, b) = (indptr[i] as usize, indptr[i + 1] as usize);
                    for (&c, &v) in indices[a..b].iter().zip(&data[a..b]) {
                        let slot = &mut next[c as usize];
                        // SAFETY: `slot` runs over this part's own range of
                        // output row `c` (disjoint from every other part's,
                        // within `0..nnz`), and the vectors outlive the loop.
                        unsafe {
                            *oi.0.add(*slot as usize) = i as i32;
                            *od.0.add(*slot as usize) = v;
                        }
                        *slot += 1;
                    }
                }
            });
        Ok(Csr {
            n_rows: n_cols,
            n_cols: n_rows,
            indptr: out_ptr,
            indices: out_indices,
            data: out_data,
        })
    })?
}

/// The transpose of the CSR matrix given by its three arrays (which must
/// satisfy [`Csr::validate_parts`]), read in place without copying them.
pub fn transpose_parts(
    n_rows: usize,
    n_cols: usize,
    indptr: &[i64],
    indices: &[i32],
    data: &[f32],
) -> Csr {
    let mut counts = vec![0i64; n_cols + 1];
    for &c in indices {
        counts[c as usize + 1] += 1;
    }
    for j in 0..n_cols {
        counts[j + 1] += counts[j];
    }
    let mut next = counts.clone();
    let mut out_indices = vec![0i32; data.len()];
    let mut out_data = vec![0f32; data.len()];
    for i in 0..n_rows {
        let (a, b) = (indptr[i] as usize, indptr[i + 1] as usize);
        for (&c, &v) in indices[a..b].iter().zip(&data[a..b]) {
            let slot = &mut next[c as usize];
            out_indices[*slot as usize] = i as i32;
            out_data[*slot as usize] = v;
            *slot += 1;
        }
    }
    Csr {
        n_rows: n_cols,
        n_cols: n_rows,
        indptr: counts,
        indices: out_indices,
        data: out_data,
    }
}

fn first_duplicate(n_rows: usize, counts: &[i64], order: &[usize], cols: &[i64]) -> Error {
    for i in 0..n_rows {
        let seg = &order[counts[i] as usize..counts[i + 1] as usize];
        let mut seen: Vec<(i64, usize)> = seg.iter().map(|&p| (cols[p], p)).collect();
        seen.sort();
        for w in seen.windows(2) {
            if w[0].0 == w[1].0 {
                return Error::DuplicateEntry(format!(
                    "duplicate entry (row {i}, column {}) at input positions {} and {}",
                    w[0].0, w[0].1, w[1].1
                ));
            }
        }
    }
    Error::DuplicateEntry("duplicate entry".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dense(m: &Csr) -> Vec<Vec<f32>> {
        let mut out = vec![vec![0.0; m.n_cols]; m.n_rows];
        for (i, row) in out.iter_mut().enumerate() {
            let (c, v) = m.row(i);
            for (&c, &v) in c.iter().zip(v) {
                row[c as usize] = v;
            }
        }
        out
    }

    #[test]
    fn builds_sorted_rows_and_empty_rows() {
        let m = Csr::from_coo(
            3,
            4,
            &[2, 0, 0, 2],
            &[1, 3, 0, 0],
            &[1.0, 2.0, 3.0, 4.0],
            Duplicates::Error,
            2,
        )
        .unwrap();
        assert_eq!(m.indptr, vec![0, 2, 2, 4]);
        assert_eq!(m.indices, vec![0, 3, 0, 1]);
        assert_eq!(m.data, vec![3.0, 2.0, 4.0, 1.0]);
        Csr::validate_parts(3, 4, &m.indptr, &m.indices, &m.data).unwrap();
    }

    #[test]
    fn duplicate_policies() {
        let r = [0, 0, 0];
        let c = [1, 1, 1];
        let v = [1.0, 5.0, 3.0];
        let err = Csr::from_coo(1, 2, &r, &c, &v, Duplicates::Error, 2).unwrap_err();
        assert!(matches!(err, Error::DuplicateEntry(ref s) if s.contains("column 1")));
        let get = |p| Csr::from_coo(1, 2, &r, &c, &v, p, 1).unwrap().data;
        assert_eq!(get(Duplicates::First), vec![1.0]);
        assert_eq!(get(Duplicates::Last), vec![3.0]);
        assert_eq!(get(Duplicates::Sum), vec![9.0]);
        assert_eq!(get(Duplicates::Mean), vec![3.0]);
        assert_eq!(get(Duplicates::Max), vec![5.0]);
        assert!(Duplicates::parse("median").is_err());
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            Csr::from_coo(1, 1, &[0], &[0], &[f32::NAN], Duplicates::Error, 2),
            Err(Error::NonFinite(_))
        ));
        assert!(matches!(
            Csr::from_coo(1, 1, &[1], &[0], &[1.0], Duplicates::Error, 2),
            Err(Error::IndexOutOfRange(_))
        ));
        assert!(matches!(
            Csr::from_coo(1, 1, &[0], &[-1], &[1.0], Duplicates::Error, 2),
            Err(Error::IndexOutOfRange(_))
        ));
        assert!(matches!(
            Csr::from_coo(1, 1, &[0, 0], &[0], &[1.0], Duplicates::Error, 2),
            Err(Error::ShapeMismatch(_))
        ));
        assert!(Csr::validate_parts(1, 3, &[0, 2], &[2, 1], &[1.0, 1.0]).is_err());
        assert!(Csr::validate_parts(1, 3, &[0, 1], &[5], &[1.0]).is_err());
        assert!(Csr::validate_parts(2, 3, &[0, 1], &[0], &[1.0]).is_err());
    }

    #[test]
    fn transpose_matches_dense_transpose() {
        // a deterministic pseudo-random pattern
        let (n, m) = (17usize, 11usize);
        let mut rows = vec![];
        let mut cols = vec![];
        let mut vals = vec![];
        for i in 0..n {
            for j in 0..m {
                if (i * 7 + j * 3) % 5 == 0 {
                    rows.push(i as i64);
                    cols.push(j as i64);
                    vals.push((i * m + j) as f32);
                }
            }
        }
        let a = Csr::from_coo(n, m, &rows, &cols, &vals, Duplicates::Error, 2).unwrap();
        for threads in [1, 3] {
            let again = Csr::from_coo(n, m, &rows, &cols, &vals, Duplicates::Error, threads);
            assert_eq!(again.unwrap(), a);
        }
        let t = a.transpose();
        let (da, dt) = (dense(&a), dense(&t));
        for i in 0..n {
            for j in 0..m {
                assert_eq!(da[i][j], dt[j][i]);
            }
        }
        assert_eq!(t.transpose(), a);
        Csr::validate_parts(t.n_rows, t.n_cols, &t.indptr, &t.indices, &t.data).unwrap();
    }

    /// A `n x m` matrix with about `nnz` values in a scattered pattern, the
    /// rows in `empty` left empty, and the last column never used.
    fn scattered(n: usize, m: usize, per_row: usize, empty: &[usize]) -> Csr {
        let (mut rows, mut cols, mut vals) = (vec![], vec![], vec![]);
        for i in 0..n {
            if empty.contains(&i) {
                continue;
            }
            for t in 0..(per_row + i % 7) {
                let j = (i * 31 + t * t * 17 + t * 5) % (m - 1);
                rows.push(i as i64);
                cols.push(j as i64);
                vals.push((i * 3 + t) as f32 * 0.5);
            }
        }
        Csr::from_coo(n, m, &rows, &cols, &vals, Duplicates::Max, 0).unwrap()
    }

    #[test]
    fn parallel_transpose_equals_the_serial_one_for_any_thread_count() {
        // enough values (> 2 x 65536) for the parallel path
        let a = scattered(3000, 700, 60, &[0, 5, 2999]);
        assert!(a.nnz() > 1 << 17);
        let want = a.transpose();
        assert_eq!(want.row(699).0.len(), 0);
        for threads in [1, 2, 3, 5, 8] {
            let got =
                transpose_threads(a.n_rows, a.n_cols, &a.indptr, &a.indices, &a.data, threads)
                    .unwrap();
            assert_eq!(got, want, "{threads} threads");
        }
        // small and empty matrices take the serial path
        let small = scattered(20, 9, 3, &[4]);
        let t = transpose_threads(20, 9, &small.indptr, &small.indices, &small.data, 4).unwrap();
        assert_eq!(t, small.transpose());
        let none = transpose_threads(0, 3, &[0], &[], &[], 2).unwrap();
        assert_eq!((none.n_rows, none.n_cols, none.indptr), (3, 0, vec![0; 4]));
    }

    #[test]
    fn parallel_validation_reports_the_serial_error() {
        let a = scattered(3000, 700, 60, &[]);
        let n = a.n_rows;
        let check = |p: &[i64], i: &[i32], d: &[f32]| {
            let serial = Csr::validate_parts(n, 700, p, i, d).unwrap_err();
            for threads in [1, 2, 3] {
                let par = transpose_threads(n, 700, p, i, d, threads).unwrap_err();
                assert_eq!(
                    format!("{par:?}"),
                    format!("{serial:?}"),
                    "{threads} threads"
                );
            }
            serial
        };
        // two bad columns: the one in the earlier row is reported
        let mut idx = a.indices.clone();
        let late = a.indptr[2500] as usize;
        let early = a.indptr[1200] as usize + 1;
        idx[late] = 700;
        idx[early] = -3;
        let e = check(&a.indptr, &idx, &a.data);
        assert!(matches!(e, Error::IndexOutOfRange(ref m) if m.contains("row 1200")));
        // an unsorted row
        let mut idx = a.indices.clone();
        let at = a.indptr[2000] as usize;
        idx.swap(at, at + 1);
        assert!(matches!(
            check(&a.indptr, &idx, &a.data),
            Error::DuplicateEntry(_)
        ));
        // two non-finite values: the first position is reported
        let mut data = a.data.clone();
        data[150_000] = f32::INFINITY;
        data[90_000] = f32::NAN;
        let e = check(&a.indptr, &a.indices, &data);
        assert!(matches!(e, Error::NonFinite(ref m) if m.contains("90000")));
        // offsets that decrease, past the end of the values on the way
        let mut ptr = a.indptr.clone();
        ptr[10] = a.nnz() as i64 + 100;
        let e = check(&ptr, &a.indices, &a.data);
        assert!(matches!(e, Error::ShapeMismatch(ref m) if m.contains("row 10")));
        assert!(Csr::validate_parts(2, 3, &[0, 9, 1], &[0], &[1.0]).is_err());
    }
}
