//! Compressed sparse row matrices of `f32`, built from coordinate triples.
//!
//! Layout is scipy's: `indptr` (n_rows + 1 offsets), `indices` (column of each
//! stored value, sorted within a row, no repeats) and `data`. Offsets are `i64`
//! so the layout holds more than 2^31 values; columns are `i32`.

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
        if indptr[0] != 0 || indptr[n_rows] as u64 != data.len() as u64 {
            return Err(Error::ShapeMismatch(
                "indptr must start at 0 and end at the number of stored values".into(),
            ));
        }
        for i in 0..n_rows {
            let (a, b) = (indptr[i], indptr[i + 1]);
            if b < a {
                return Err(Error::ShapeMismatch(format!("indptr decreases at row {i}")));
            }
            let seg = &indices[a as usize..b as usize];
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
        if let Some(pos) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite(format!(
                "stored value {} at position {pos} is not finite",
                data[pos]
            )));
        }
        Ok(())
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
}
