//! Tie-aware neighbor overlap of two spaces: the counts that define each
//! entity's k-NN sets up to ties, and the exact expected overlap and Jaccard
//! index under uniformly random tie-breaking.
//!
//! # Tie groups
//!
//! For a query `q` of one space, let `v_j` be the distance value of row `j`
//! (`1 - u_q . u_j` for cosine with the `f64` unit rows `u = x / |x|`, zero
//! rows having `u = 0`; `-(q . j)` for dot; `|q - j|` for euclidean; all in
//! `f64` from the `f32` values) and `v_(l)` the
//! l-th smallest over `j != q`. At level `l` the **strict set** is
//! `S = {j : v_j < v_(l) - tol}` and the **tie group** is
//! `T = {j : |v_j - v_(l)| <= tol}`; `|S| < l <= |S| + |T|`, and the l-NN set
//! is `S` plus `l - |S|` members of `T`. The tolerance is
//! `tol = tolerance * scale_q`, where `scale_q` bounds the size of the query's
//! values, the scale at which `f32` rounding of the inputs acts: 1 for cosine,
//! `|q| max_j |x_j|` for dot, `|q - c| + max_j |x_j - c|` for euclidean (`c` the
//! centroid, summed in sorted order so it does not depend on row order).
//! Everything here is a function of the values alone: reordering rows,
//! rotating or scaling a space changes the result only through the rounding
//! of its `f32` values, which `tol` absorbs.
//!
//! # Counts
//!
//! [`tie_overlap`] returns, per query and level `l = 1..=k`, eight counts
//! `[|S_A|, |T_A|, |S_B|, |T_B|, |S_A & S_B|, |S_A & T_B|, |T_A & S_B|, |T_A & T_B|]`.
//! It needs every row with `v_j <= v_(k) + tol`. Those come from exact k-NN
//! tables (`hint_a`, `hint_b`: the first `w >= k` neighbor indices of every
//! row, as [`crate::knn::knn`] returns them): a row is complete when its last
//! hint lies beyond `v_(k) + tol` (with a slack for rounding differences
//! between the table's distances and these), and otherwise its candidates are
//! found by a scan of all rows: an `f64` product keeps the rows within a
//! rounding bound of the limit, and their exact values decide. Rows of nearly
//! the same direction (parallel groups) are processed together and share
//! one scan when they lie within their tie tolerance of the scanned row (the
//! values of two queries differ by at most their distance, times the largest
//! norm for dot: `Space::shift`), which makes large parallel groups cost
//! one scan instead of one per member. Memory is the tables, the counts and
//! the candidates of 64 rows per thread at a time; never n x n. Time is the
//! tables' plus O(n w d) plus O(n d) per scan; results depend neither on the
//! grouping nor on the thread count.
//!
//! # Expectations
//!
//! [`tie_expectation`] turns counts into `E|X & Y|` and `E[|X & Y| / (2l - |X & Y|)]`
//! where `X = S_A + (uniform (l - |S_A|)-subset of T_A)` and `Y` likewise,
//! drawn independently (see its docs for the derivation).

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::knn::Metric;
use crate::parallel::with_threads;

/// Counts per (query, level): see the module docs.
pub const COUNTS: usize = 8;

/// The default relative tie tolerance, `2^-20` (16 units of `f32` roundoff,
/// 8 ulps of 1.0 in `f32`).
pub const DEFAULT_TOLERANCE: f64 = 1.0 / 1_048_576.0;

/// One space: `n x d` row-major `f32` values and its k-NN table
/// (`n x width` row-major indices, each row sorted by distance).
#[derive(Clone, Copy)]
pub struct Side<'a> {
    /// The vectors, `n x d`, row-major.
    pub data: &'a [f32],
    /// Columns of `data`.
    pub d: usize,
    /// The exact k-NN indices of every row (the row itself excluded).
    pub hint: &'a [i64],
    /// Columns of `hint`.
    pub width: usize,
}

/// Distance values and tolerances of one space.
struct Space<'a> {
    data: &'a [f32],
    d: usize,
    n: usize,
    metric: Metric,
    /// Per query: `tolerance * scale_q`.
    tol: Vec<f64>,
    /// Per query: the slack allowed between another code's distances and ours.
    slack: Vec<f64>,
    /// `f64` rows for the scan: unit rows (cosine), the rows (dot), the rows
    /// minus the centroid (euclidean).
    prep: Vec<f64>,
    /// Squared norms of `prep`'s rows (euclidean only).
    prep_sq: Vec<f64>,
    /// Per query: a bound on how far the scan's fast value (or, for euclidean,
    /// its square) may lie from the exact one.
    scan_slack: Vec<f64>,
    /// Per query: the scale of its values (see the module docs).
    scale: Vec<f64>,
    /// `|v_q(j) - v_r(j)| <= lip * |prep_q - prep_r|` for every row `j`.
    lip: f64,
    /// The largest norm of a `prep` row (for the grouping cells).
    unit: f64,
}

fn dot64(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum()
}

impl<'a> Space<'a> {
    fn new(data: &'a [f32], n: usize, d: usize, metric: Metric, tolerance: f64) -> Self {
        let row = |i: usize| &data[i * d..(i + 1) * d];
        let norm: Vec<f64> = (0..n)
            .into_par_iter()
            .map(|i| dot64(row(i), row(i)).sqrt())
            .collect();
        let mut prep: Vec<f64> = data.par_iter().map(|&x| f64::from(x)).collect();
        let mut prep_sq = Vec::new();
        // gamma-style bound of a d-term f64 dot product, with room to spare
        let g = 4.0 * (d + 8) as f64 * f64::EPSILON;
        let (scale, scan_slack): (Vec<f64>, Vec<f64>) = match metric {
            Metric::Cosine => {
                prep.par_chunks_mut(d).zip(&norm).for_each(|(r, &nr)| {
                    for x in r.iter_mut() {
                        *x = if nr > 0.0 { *x / nr } else { 0.0 };
                    }
                });
                (vec![1.0; n], vec![2.0 * g; n])
            }
            Metric::Dot => {
                let m = norm.iter().copied().fold(0.0, f64::max);
                let scale: Vec<f64> = norm.iter().map(|&v| v * m).collect();
                let slack = scale.iter().map(|&s| 2.0 * g * s).collect();
                (scale, slack)
            }
            Metric::Euclidean => {
                // centroid summed in sorted order: independent of the row order
                let centroid: Vec<f64> = (0..d)
                    .into_par_iter()
                    .map(|t| {
                        let mut col: Vec<f64> =
                            (0..n).map(|i| f64::from(data[i * d + t])).collect();
                        col.sort_unstable_by(f64::total_cmp);
                        col.iter().sum::<f64>() / n as f64
                    })
                    .collect();
                let radius: Vec<f64> = (0..n)
                    .into_par_iter()
                    .map(|i| {
                        row(i)
                            .iter()
                            .zip(&centroid)
                            .map(|(&x, &c)| (f64::from(x) - c).powi(2))
                            .sum::<f64>()
                            .sqrt()
                    })
                    .collect();
                let r = radius.iter().copied().fold(0.0, f64::max);
                prep.par_chunks_mut(d).for_each(|row| {
                    for (x, &c) in row.iter_mut().zip(&centroid) {
                        *x -= c;
                    }
                });
                prep_sq = prep
                    .par_chunks(d)
                    .map(|z| z.iter().map(|v| v * v).sum())
                    .collect();
                let scale: Vec<f64> = radius.iter().map(|&v| v + r).collect();
                // |q - x|^2 = |z_q|^2 + |z_x|^2 - 2 z_q . z_x, each z rounded once
                let slack = scale
                    .iter()
                    .map(|&s| 4.0 * g * (1.01 * s).powi(2))
                    .collect();
                (scale, slack)
            }
        };
        let rel_slack = (2f64.powi(-40)).max(8.0 * (d + 2) as f64 * f64::EPSILON);
        let max_norm = |p: &[f64]| {
            p.par_chunks(d)
                .map(|r| r.iter().map(|v| v * v).sum::<f64>().sqrt())
                .reduce(|| 0.0, f64::max)
        };
        let unit = max_norm(&prep);
        let lip = match metric {
            Metric::Dot => unit,
            Metric::Cosine | Metric::Euclidean => 1.0,
        };
        Self {
            data,
            d,
            n,
            metric,
            tol: scale.iter().map(|&s| tolerance * s).collect(),
            slack: scale.iter().map(|&s| rel_slack * s).collect(),
            prep,
            prep_sq,
            scan_slack,
            scale,
            lip,
            unit,
        }
    }

    /// A key shared by rows of (nearly) the same direction or position: the
    /// `prep` row, relative to the largest, on a grid of `2^-16`. Only used to
    /// put such rows next to each other; results never depend on it.
    fn cell(&self, q: usize) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        let f = if self.unit > 0.0 {
            65536.0 / self.unit
        } else {
            0.0
        };
        for &x in &self.prep[q * self.d..(q + 1) * self.d] {
            ((x * f).round() as i64).hash(&mut h);
        }
        h.finish()
    }

    /// A bound on `|v_q(j) - v_r(j)|` over every row `j`, computed values
    /// included (the values of two nearby queries differ by at most their
    /// distance: Cauchy-Schwarz for cosine and dot, the triangle inequality
    /// for euclidean).
    fn shift(&self, q: usize, r: usize) -> f64 {
        let d = self.d;
        let (pq, pr) = (
            &self.prep[q * d..(q + 1) * d],
            &self.prep[r * d..(r + 1) * d],
        );
        let dist = pq
            .iter()
            .zip(pr)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt();
        let rounding = 16.0 * (d + 8) as f64 * f64::EPSILON * self.scale[q].max(self.scale[r]);
        dist * self.lip * (1.0 + 1e-9) + rounding
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.d..(i + 1) * self.d]
    }

    /// The distance value of row `j` for query `q` (smaller is closer), in
    /// `f64`: `1 - u_q . u_j` with the unit rows `u = x / |x|` (cosine; zero
    /// rows have `u = 0`), `-(q . j)` (dot), `|q - j|` (euclidean).
    fn value(&self, q: usize, j: usize) -> f64 {
        let d = self.d;
        let (pq, pj) = (
            &self.prep[q * d..(q + 1) * d],
            &self.prep[j * d..(j + 1) * d],
        );
        let dot = || pq.iter().zip(pj).map(|(a, b)| a * b).sum::<f64>();
        let v = match self.metric {
            // unit rows (zero rows stay zero: cos = 0, value 1)
            Metric::Cosine => 1.0 - dot(),
            Metric::Dot => -dot(),
            Metric::Euclidean => {
                let (a, b) = (self.row(q), self.row(j));
                a.iter()
                    .zip(b)
                    .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
                    .sum::<f64>()
                    .sqrt()
            }
        };
        v + 0.0 // -0.0 -> +0.0, so equal zeros compare equal in the total order
    }

    /// Distance values of the table row `hint` of query `q`, sorted by
    /// (value, index), into `out`, truncated to the tie group of the k-th when
    /// the table reaches past it. Returns `Ok(None)` then, and otherwise
    /// `Ok(Some(limit))`: every row with `v_j <= limit` must be scanned.
    /// `Err(())` when the row is not sorted by distance.
    fn read_table(
        &self,
        q: usize,
        hint: &[i64],
        k: usize,
        out: &mut Vec<(f64, u32)>,
    ) -> std::result::Result<Option<f64>, ()> {
        let (tol, slack) = (self.tol[q], self.slack[q]);
        out.clear();
        out.extend(hint.iter().map(|&j| (self.value(q, j as usize), j as u32)));
        if out.windows(2).any(|w| w[1].0 < w[0].0 - 2.0 * slack) {
            return Err(());
        }
        out.sort_unstable_by(by_value);
        let kth = out[k - 1].0;
        let last = out[out.len() - 1].0;
        // A row outside the table is at least `last - 2 slack` away (the
        // table's own distances may differ from ours by `slack`).
        if hint.len() < self.n - 1 && last <= kth + tol + 2.0 * slack {
            return Ok(Some(kth + tol + 2.0 * slack));
        }
        self.finish(q, k, out);
        Ok(None)
    }

    /// Keep the candidates up to the tie group of the k-th (sorted input).
    fn finish(&self, q: usize, k: usize, out: &mut Vec<(f64, u32)>) {
        let kth = out[k - 1].0;
        let keep = out.partition_point(|c| c.0 <= kth + self.tol[q]);
        out.truncate(keep);
    }

    /// For each query `qs[t]`, every row `j != qs[t]` with
    /// `v_j <= limits[t]`, sorted, into `lists[t]`. One `f64` product per tile
    /// of candidates gives fast values; those within `scan_slack` of the
    /// limit get their exact value, which decides.
    fn scan(
        &self,
        qs: &[usize],
        limits: &[f64],
        lists: &mut [Vec<(f64, u32)>],
        tile: &mut Vec<f64>,
        ys: &mut Vec<f64>,
    ) {
        let (d, m) = (self.d, qs.len());
        ys.clear();
        for &q in qs {
            ys.extend_from_slice(&self.prep[q * d..(q + 1) * d]);
        }
        for list in lists.iter_mut() {
            list.clear();
        }
        let mut c0 = 0;
        while c0 < self.n {
            let cb = SCAN_TILE.min(self.n - c0);
            tile.resize(cb * m, 0.0);
            // tile (cb x m, column-major) = prep[c0..c0+cb] (cb x d) * ys^T (d x m)
            // SAFETY: the pointers cover cb*m, cb*d and m*d values with the
            // strides given, all inside the borrowed slices.
            unsafe {
                gemm::gemm(
                    cb,
                    m,
                    d,
                    tile.as_mut_ptr(),
                    cb as isize,
                    1,
                    false,
                    self.prep[c0 * d..].as_ptr(),
                    1,
                    d as isize,
                    ys.as_ptr(),
                    d as isize,
                    1,
                    0.0f64,
                    1.0f64,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            for (t, (&q, col)) in qs.iter().zip(tile.chunks_exact_mut(cb)).enumerate() {
                let (limit, sl) = (limits[t], self.scan_slack[q]);
                let list = &mut lists[t];
                // a fast score that is >= `thr` for every row that may pass
                let thr = match self.metric {
                    Metric::Cosine => 1.0 - (limit + sl),
                    Metric::Dot => -(limit + sl),
                    Metric::Euclidean => {
                        if limit < 0.0 {
                            continue;
                        }
                        // |z_q|^2 + |z_j|^2 - 2 p <= limit^2  <=>  2 p - |z_j|^2 >= ...
                        for (p, &rs) in col.iter_mut().zip(&self.prep_sq[c0..c0 + cb]) {
                            *p = 2.0 * *p - rs;
                        }
                        self.prep_sq[q] - (limit * limit + sl)
                    }
                };
                each_at_least(col, thr, |i| {
                    let j = c0 + i;
                    if j != q {
                        let v = self.value(q, j);
                        if v <= limit {
                            list.push((v, j as u32));
                        }
                    }
                });
            }
            c0 += cb;
        }
        for list in lists.iter_mut() {
            list.sort_unstable_by(by_value);
        }
    }
}

/// Calls `f(i)` for every `i` with `col[i] >= thr`, taking the comparisons 8
/// at a time into a mask (most chunks hold no hit).
#[inline(always)]
fn each_at_least(col: &[f64], thr: f64, mut f: impl FnMut(usize)) {
    let mut chunks = col.chunks_exact(8);
    let mut at = 0;
    for ch in &mut chunks {
        let mut mask = 0u32;
        for (u, &x) in ch.iter().enumerate() {
            mask |= u32::from(x >= thr) << u;
        }
        while mask != 0 {
            let u = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            f(at + u);
        }
        at += 8;
    }
    for (u, &x) in chunks.remainder().iter().enumerate() {
        if x >= thr {
            f(at + u);
        }
    }
}

fn by_value(a: &(f64, u32), b: &(f64, u32)) -> std::cmp::Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
}

/// Candidates per tile of the scan, and queries per block (the unit of
/// parallel work; its candidate lists are the only memory that grows with
/// tie-group sizes).
const SCAN_TILE: usize = 2048;
const QUERY_BLOCK: usize = 64;

/// Per level `l = 1..=k`: `s[l-1] = |S|`, `e[l-1] = |S| + |T|` (positions in
/// the sorted candidates: S is a prefix, T the range that follows).
fn levels(cands: &[(f64, u32)], k: usize, tol: f64, s: &mut Vec<u32>, e: &mut Vec<u32>) {
    s.clear();
    e.clear();
    let (mut lo, mut hi) = (0usize, 0usize);
    for l in 0..k {
        let v = cands[l].0;
        while lo < cands.len() && cands[lo].0 < v - tol {
            lo += 1;
        }
        while hi < cands.len() && cands[hi].0 <= v + tol {
            hi += 1;
        }
        s.push(lo as u32);
        e.push(hi as u32);
    }
}

#[derive(Default)]
struct Scratch {
    lists: [Vec<Vec<(f64, u32)>>; 2],
    /// Scanned rows of a block: their position in the block, their limit.
    leaders: Vec<(usize, f64)>,
    leader_q: Vec<usize>,
    leader_limit: Vec<f64>,
    /// For each pending row of a block: (its position, its leader's index).
    followers: Vec<(usize, usize)>,
    found: Vec<Vec<(f64, u32)>>,
    tile: Vec<f64>,
    ys: Vec<f64>,
    pos_b: Vec<u32>,
    bounds: [Vec<u32>; 4],
    diff: Vec<[i64; 4]>,
}

impl Scratch {
    fn lists(&mut self, m: usize) {
        for l in &mut self.lists {
            l.resize_with(m, Vec::new);
        }
    }

    /// Levels and counts of the `t`-th row of the block into `out`.
    fn count(&mut self, t: usize, tol: [f64; 2], k: usize, n: usize, out: &mut [u32]) {
        if self.pos_b.len() != n {
            self.pos_b = vec![u32::MAX; n];
        }
        let [sa, ea, sb, eb] = &mut self.bounds;
        levels(&self.lists[0][t], k, tol[0], sa, ea);
        levels(&self.lists[1][t], k, tol[1], sb, eb);
        combine(
            &self.lists[0][t],
            &self.lists[1][t],
            [sa, ea, sb, eb],
            &mut self.pos_b,
            &mut self.diff,
            k,
            out,
        );
    }
}

/// Tie-aware overlap counts of two spaces of the same `n` entities (row `i`
/// of `a` and of `b` embed the same entity), for levels `1..=k`.
///
/// Returns `n * k * 8` counts, row-major `(query, level, count)`, in the order
/// given in the module docs. `tolerance` is relative (see the module docs;
/// [`DEFAULT_TOLERANCE`] is the library's choice); 0 makes only equal `f64`
/// values tie. `num_threads = 0` uses rayon's default; the result does not
/// depend on it.
///
/// Errors: shapes that do not agree, `k` outside `[1, n - 1]`, a table
/// narrower than `k` or wider than `n - 1`, table entries outside `[0, n)`,
/// equal to their row or repeated in a row, a table row not sorted by
/// distance (not a k-NN table of these vectors), non-finite values, a
/// tolerance that is negative or not finite.
#[allow(clippy::too_many_arguments)]
pub fn tie_overlap(
    a: Side<'_>,
    b: Side<'_>,
    n: usize,
    k: usize,
    metric: Metric,
    tolerance: f64,
    num_threads: usize,
) -> Result<Vec<u32>> {
    if !(tolerance.is_finite() && tolerance >= 0.0) {
        return Err(Error::InvalidParameter(format!(
            "the tie tolerance must be finite and >= 0, got {tolerance}"
        )));
    }
    if n < 2 || n > u32::MAX as usize {
        return Err(Error::InvalidParameter(format!(
            "tie-aware overlap needs 2 <= n <= {} entities, got {n}",
            u32::MAX
        )));
    }
    if k == 0 || k > n - 1 {
        return Err(Error::InvalidParameter(format!(
            "k = {k} must lie in [1, n - 1] = [1, {}]",
            n - 1
        )));
    }
    for (name, s) in [("A", &a), ("B", &b)] {
        validate_side(name, s, n, k)?;
    }
    with_threads(num_threads, || run(a, b, n, k, metric, tolerance))?
}

fn validate_side(name: &str, s: &Side<'_>, n: usize, k: usize) -> Result<()> {
    if s.d == 0 {
        return Err(Error::InvalidParameter(format!(
            "{name} must have at least one dimension (d = 0)"
        )));
    }
    if n.checked_mul(s.d) != Some(s.data.len()) {
        return Err(Error::ShapeMismatch(format!(
            "{name} has {} values, expected n x d = {n} x {}",
            s.data.len(),
            s.d
        )));
    }
    if s.width < k || s.width > n - 1 || n.checked_mul(s.width) != Some(s.hint.len()) {
        return Err(Error::ShapeMismatch(format!(
            "the neighbor table of {name} must be n x w with k = {k} <= w <= n - 1 = {}, \
             got {} values for w = {}",
            n - 1,
            s.hint.len(),
            s.width
        )));
    }
    if let Some(pos) = s.data.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite(format!(
            "{name}: value {} at row {}, column {} is not finite",
            s.data[pos],
            pos / s.d,
            pos % s.d
        )));
    }
    let mut seen = vec![u32::MAX; n];
    for (q, row) in s.hint.chunks_exact(s.width).enumerate() {
        for &j in row {
            if j < 0 || j as u64 >= n as u64 {
                return Err(Error::IndexOutOfRange(format!(
                    "the neighbor table of {name} has index {j} in row {q}, outside [0, {n})"
                )));
            }
            let ju = j as usize;
            if ju == q || seen[ju] == q as u32 {
                return Err(Error::InvalidParameter(format!(
                    "the neighbor table of {name} repeats index {j} or lists the row itself in row {q}"
                )));
            }
            seen[ju] = q as u32;
        }
    }
    Ok(())
}

fn run(
    a: Side<'_>,
    b: Side<'_>,
    n: usize,
    k: usize,
    metric: Metric,
    tolerance: f64,
) -> Result<Vec<u32>> {
    let spaces = [
        Space::new(a.data, n, a.d, metric, tolerance),
        Space::new(b.data, n, b.d, metric, tolerance),
    ];
    let sides = [a, b];
    let hint = |s: usize, q: usize| &sides[s].hint[q * sides[s].width..(q + 1) * sides[s].width];
    let tol = |q: usize| [spaces[0].tol[q], spaces[1].tol[q]];
    let kc = k * COUNTS;
    let mut counts = vec![0u32; n * kc];
    // 0 = fine, 1 = table of A unsorted, 2 = table of B unsorted
    let mut status = vec![0u8; n];
    // per row and side: the scan limit when its table ends inside its tie
    // group (NaN when the table is complete)
    let mut limits = vec![[f64::NAN; 2]; n];

    // 1. rows whose tables reach past their tie groups on both sides
    counts
        .par_chunks_mut(QUERY_BLOCK * kc)
        .zip(status.par_chunks_mut(QUERY_BLOCK))
        .zip(limits.par_chunks_mut(QUERY_BLOCK))
        .enumerate()
        .for_each_init(Scratch::default, |sc, (blk, ((out, st), lim))| {
            sc.lists(1);
            for t in 0..st.len() {
                let q = blk * QUERY_BLOCK + t;
                for s in 0..2 {
                    match spaces[s].read_table(q, hint(s, q), k, &mut sc.lists[s][0]) {
                        Err(()) => st[t] = st[t].max(s as u8 + 1),
                        Ok(None) => {}
                        Ok(Some(limit)) => lim[t][s] = limit,
                    }
                }
                if st[t] == 0 && lim[t].iter().all(|l| l.is_nan()) {
                    sc.count(0, tol(q), k, n, &mut out[t * kc..(t + 1) * kc]);
                }
            }
        });
    if let Some(q) = status.iter().position(|&s| s != 0) {
        let side = if status[q] == 1 { "A" } else { "B" };
        return Err(Error::InvalidParameter(format!(
            "the neighbor table of {side} is not sorted by distance in row {q}: \
             pass the exact k-NN indices of these vectors"
        )));
    }

    // 2. the others, with a scan; rows of nearly the same direction (parallel
    // groups) are put next to each other, so that one scan serves them all
    let mut rest: Vec<(u64, u64, usize)> = (0..n)
        .into_par_iter()
        .filter(|&q| limits[q].iter().any(|l| !l.is_nan()))
        .map(|q| (spaces[0].cell(q), spaces[1].cell(q), q))
        .collect();
    rest.par_sort_unstable();
    let rest: Vec<usize> = rest.into_iter().map(|(_, _, q)| q).collect();
    let done: Vec<Vec<u32>> = rest
        .par_chunks(QUERY_BLOCK)
        .map_init(Scratch::default, |sc, block| {
            sc.lists(block.len());
            for (s, space) in spaces.iter().enumerate() {
                scan_block(space, s, block, &limits, |q| hint(s, q), k, sc);
            }
            let mut out = vec![0u32; block.len() * kc];
            for (t, &q) in block.iter().enumerate() {
                sc.count(t, tol(q), k, n, &mut out[t * kc..(t + 1) * kc]);
            }
            out
        })
        .collect();
    for (block, out) in rest.chunks(QUERY_BLOCK).zip(done) {
        for (t, &q) in block.iter().enumerate() {
            counts[q * kc..(q + 1) * kc].copy_from_slice(&out[t * kc..(t + 1) * kc]);
        }
    }
    Ok(counts)
}

/// The candidates of side `s` for every row of `block` into `sc.lists[s]`.
/// Complete tables are read again; the other rows are scanned, one scan per
/// *leader*: a row takes the latest leaders' scan when it lies within its
/// tie tolerance of them (every row within its limit is then within the
/// leader's limit, raised to cover it; see [`Space::shift`]).
fn scan_block<'h>(
    space: &Space<'_>,
    s: usize,
    block: &[usize],
    limits: &[[f64; 2]],
    hint: impl Fn(usize) -> &'h [i64],
    k: usize,
    sc: &mut Scratch,
) {
    sc.leaders.clear();
    sc.followers.clear();
    for (t, &q) in block.iter().enumerate() {
        let limit = limits[q][s];
        if limit.is_nan() {
            let complete = space.read_table(q, hint(q), k, &mut sc.lists[s][t]);
            debug_assert!(matches!(complete, Ok(None)));
            continue;
        }
        // the latest leaders first: rows of a group are next to each other
        let lead = sc.leaders.iter().rev().take(4).position(|&(lt, ll)| {
            let lq = block[lt];
            let shift = space.shift(lq, q);
            shift <= space.tol[lq] && limit + shift <= ll.max(limits[lq][s] + 2.0 * space.tol[lq])
        });
        match lead {
            Some(back) => {
                let li = sc.leaders.len() - 1 - back;
                let lq = block[sc.leaders[li].0];
                let need = limit + space.shift(lq, q);
                if need > sc.leaders[li].1 {
                    sc.leaders[li].1 = need;
                }
                sc.followers.push((t, li));
            }
            None => sc.leaders.push((t, limit)),
        }
    }
    if sc.leaders.is_empty() {
        return;
    }
    sc.leader_q.clear();
    sc.leader_limit.clear();
    for &(t, limit) in &sc.leaders {
        sc.leader_q.push(block[t]);
        sc.leader_limit.push(limit);
    }
    sc.found.resize_with(sc.leaders.len(), Vec::new);
    let found = &mut sc.found[..sc.leaders.len()];
    space.scan(
        &sc.leader_q,
        &sc.leader_limit,
        found,
        &mut sc.tile,
        &mut sc.ys,
    );
    let lists = &mut sc.lists[s];
    for &(t, li) in &sc.followers {
        let (q, limit) = (block[t], limits[block[t]][s]);
        let lq = sc.leader_q[li];
        let list = &mut lists[t];
        list.clear();
        let from = found[li].iter().map(|&(_, j)| j as usize).chain([lq]);
        for j in from.filter(|&j| j != q) {
            let v = space.value(q, j);
            if v <= limit {
                list.push((v, j as u32));
            }
        }
        list.sort_unstable_by(by_value);
        space.finish(q, k, list);
    }
    for (&(t, _), f) in sc.leaders.iter().zip(found.iter_mut()) {
        let q = block[t];
        let limit = limits[q][s];
        let list = &mut lists[t];
        list.clear();
        list.extend(f.iter().copied().filter(|c| c.0 <= limit));
        space.finish(q, k, list);
    }
}

/// First level (0-based) at which position `p` is inside the prefix `bound`
/// (`bound` non-decreasing); `k` when never.
fn first_level(bound: &[u32], p: u32) -> usize {
    bound.partition_point(|&x| x <= p)
}

/// Counts of every level from the two sides' sorted candidates and their
/// level bounds `[s_a, e_a, s_b, e_b]`, into `out` (k x 8).
fn combine(
    la: &[(f64, u32)],
    lb: &[(f64, u32)],
    bounds: [&[u32]; 4],
    pos_b: &mut [u32],
    diff: &mut Vec<[i64; 4]>,
    k: usize,
    out: &mut [u32],
) {
    let [sa, ea, sb, eb] = bounds;
    for (i, &(_, j)) in lb.iter().enumerate() {
        pos_b[j as usize] = i as u32;
    }
    // diff[l][c]: change of count c (SS, ST, TS, TT) at level l (0-based)
    diff.clear();
    diff.resize(k + 1, [0; 4]);
    for (pa, &(_, j)) in la.iter().enumerate() {
        let pb = pos_b[j as usize];
        if pb == u32::MAX {
            continue;
        }
        // tied from level `lo`, strict from `hi` (0-based), on each side
        let lo_a = first_level(ea, pa as u32);
        let hi_a = first_level(sa, pa as u32);
        let lo_b = first_level(eb, pb);
        let hi_b = first_level(sb, pb);
        let mut add = |c: usize, from: usize, to: usize| {
            if from < to {
                diff[from][c] += 1;
                diff[to][c] -= 1;
            }
        };
        add(0, hi_a.max(hi_b), k); // strict in both
        add(1, hi_a.max(lo_b), hi_b); // strict in A, tied in B
        add(2, lo_a.max(hi_b), hi_a); // tied in A, strict in B
        add(3, lo_a.max(lo_b), hi_a.min(hi_b)); // tied in both
    }
    for &(_, j) in lb {
        pos_b[j as usize] = u32::MAX;
    }
    let mut run = [0i64; 4];
    for l in 0..k {
        for (r, dl) in run.iter_mut().zip(&diff[l]) {
            *r += dl;
        }
        let o = &mut out[l * COUNTS..(l + 1) * COUNTS];
        o[0] = sa[l];
        o[1] = ea[l] - sa[l];
        o[2] = sb[l];
        o[3] = eb[l] - sb[l];
        for c in 0..4 {
            o[4 + c] = run[c] as u32;
        }
    }
}

/// The hypergeometric distribution: draws `draws` of `total` items of which
/// `marked` are marked; returns the smallest possible number of marked items
/// drawn and the probabilities from there on (summing to 1).
fn hypergeometric(total: u64, marked: u64, draws: u64) -> (u64, Vec<f64>) {
    let lo = draws.saturating_sub(total - marked);
    let hi = marked.min(draws);
    // log-weights by the ratio P(x + 1) / P(x), then normalised
    let mut logw = Vec::with_capacity((hi - lo + 1) as usize);
    let mut acc = 0.0f64;
    logw.push(0.0);
    for x in lo..hi {
        let num = ((marked - x) as f64) * ((draws - x) as f64);
        let den = ((x + 1) as f64) * ((total - marked + x + 1 - draws) as f64);
        acc += (num / den).ln();
        logw.push(acc);
    }
    let m = logw.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut p: Vec<f64> = logw.iter().map(|&w| (w - m).exp()).collect();
    let s: f64 = p.iter().sum();
    for v in &mut p {
        *v /= s;
    }
    (lo, p)
}

/// Exact expected overlap `E|X & Y|` and Jaccard index
/// `E[|X & Y| / (2l - |X & Y|)]` of one (query, level) from its eight counts.
///
/// `X = S_A + X_T` with `X_T` a uniform `m_A = l - |S_A|`-subset of `T_A`, and
/// `Y = S_B + Y_T` likewise, independent. With `P' = S_A & T_B`,
/// `Q = T_A & T_B` and `P = T_A & S_B`, the four parts of `X & Y` are disjoint:
///
/// `|X & Y| = |S_A & S_B| + |Y_T & P'| + |X_T & P| + |X_T & (Y_T & Q)|`.
///
/// The last three are dependent. Given `Y_T`, let `G = Y_T & Q`
/// (`|G| = v'`): `P` and `G` are disjoint subsets of `T_A`, so
/// `|X_T & P| + |X_T & G| = |X_T & (P + G)|` is hypergeometric
/// `HG(|T_A|, |P| + v', m_A)`, and it depends on `Y_T` only through `v'`.
/// `(u', v') = (|Y_T & P'|, |Y_T & Q|)` is multivariate hypergeometric; we
/// take `v' ~ HG(|T_B|, |Q|, m_B)` and `u' | v' ~ HG(|T_B| - |Q|, |P'|, m_B - v')`.
/// Then `|X & Y| = |S_A & S_B| + u' + h` with `u'` and `h` independent given `v'`:
///
/// `E f(|X & Y|) = sum_v' P(v') sum_u' P(u' | v') sum_h P(h | v') f(|S_A & S_B| + u' + h)`.
///
/// The expected overlap has the closed form
/// `|S_A & S_B| + m_B |P'| / |T_B| + m_A |P| / |T_A| + m_A m_B |Q| / (|T_A| |T_B|)`.
pub fn expectation(c: &[u32; COUNTS], level: u32) -> Result<(f64, f64)> {
    let [s_a, t_a, s_b, t_b, c_ss, c_st, c_ts, c_tt] = c.map(u64::from);
    let l = u64::from(level);
    let ok = l >= 1
        && s_a < l
        && l <= s_a + t_a
        && s_b < l
        && l <= s_b + t_b
        && c_ss + c_st <= s_a
        && c_ss + c_ts <= s_b
        && c_ts + c_tt <= t_a
        && c_st + c_tt <= t_b;
    if !ok {
        return Err(Error::InvalidParameter(format!(
            "inconsistent tie counts {c:?} for k = {level}: need |S| < k <= |S| + |T| on both \
             sides and intersections no larger than the sets they split"
        )));
    }
    let (m_a, m_b) = (l - s_a, l - s_b);
    let mean = c_ss as f64
        + (m_b * c_st) as f64 / t_b as f64
        + (m_a * c_ts) as f64 / t_a as f64
        + (m_a as f64 * m_b as f64) * c_tt as f64 / (t_a as f64 * t_b as f64);
    let two_l = 2.0 * l as f64;
    let f = |z: u64| z as f64 / (two_l - z as f64);
    if m_a == t_a && m_b == t_b {
        // nothing is random: both sets are fixed
        let z = c_ss + c_st + c_ts + c_tt;
        return Ok((z as f64, f(z)));
    }
    let (v_lo, p_v) = hypergeometric(t_b, c_tt, m_b);
    let mut jac = 0.0;
    for (i, &pv) in p_v.iter().enumerate() {
        if pv == 0.0 {
            continue;
        }
        let v = v_lo + i as u64;
        let (u_lo, p_u) = hypergeometric(t_b - c_tt, c_st, m_b - v);
        let (h_lo, p_h) = hypergeometric(t_a, c_ts + v, m_a);
        let mut inner = 0.0;
        for (iu, &pu) in p_u.iter().enumerate() {
            let base = c_ss + u_lo + iu as u64 + h_lo;
            let mut s = 0.0;
            for (ih, &ph) in p_h.iter().enumerate() {
                s += ph * f(base + ih as u64);
            }
            inner += pu * s;
        }
        jac += pv * inner;
    }
    Ok((mean, jac))
}

/// [`expectation`] for `m` rows of counts (`m x 8`) and their levels, in
/// parallel. Errors on the first inconsistent row.
pub fn tie_expectation(
    counts: &[u32],
    levels: &[u32],
    num_threads: usize,
) -> Result<(Vec<f64>, Vec<f64>)> {
    if counts.len() != levels.len() * COUNTS {
        return Err(Error::ShapeMismatch(format!(
            "counts must be m x {COUNTS} for m = {} levels, got {} values",
            levels.len(),
            counts.len()
        )));
    }
    let res: Vec<Result<(f64, f64)>> = with_threads(num_threads, || {
        counts
            .par_chunks_exact(COUNTS)
            .zip(levels.par_iter())
            .map(|(c, &l)| expectation(c.try_into().expect("chunk of 8"), l))
            .collect()
    })?;
    let mut overlap = Vec::with_capacity(levels.len());
    let mut jaccard = Vec::with_capacity(levels.len());
    for (row, r) in res.into_iter().enumerate() {
        let (o, j) = r.map_err(|e| match e {
            Error::InvalidParameter(m) => Error::InvalidParameter(format!("row {row}: {m}")),
            other => other,
        })?;
        overlap.push(o);
        jaccard.push(j);
    }
    Ok((overlap, jaccard))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knn::knn;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Random rows with planted groups of parallel rows: scaled by powers of
    /// two (exactly parallel in f32) or not (parallel up to f32 rounding).
    fn planted(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x: Vec<f32> = (0..n * d)
            .map(|_| rng.random::<f32>() * 2.0 - 1.0)
            .collect();
        let mut i = 0;
        while i + 12 < n {
            let g = rng.random_range(2..12usize);
            for m in 1..g {
                let s = [0.5f32, 2.0, 3.0, 1.0, 0.7, 4.0][m % 6];
                for t in 0..d {
                    x[(i + m) * d + t] = x[i * d + t] * s;
                }
            }
            i += g + rng.random_range(0..4usize);
        }
        x
    }

    /// Sets and counts straight from the definition, every value computed.
    fn brute(a: &[f32], b: &[f32], n: usize, d: usize, k: usize, metric: Metric) -> Vec<u32> {
        let sa = Space::new(a, n, d, metric, DEFAULT_TOLERANCE);
        let sb = Space::new(b, n, d, metric, DEFAULT_TOLERANCE);
        let mut out = Vec::new();
        for q in 0..n {
            let sorted = |s: &Space<'_>| {
                let mut v: Vec<f64> = (0..n).filter(|&j| j != q).map(|j| s.value(q, j)).collect();
                v.sort_by(f64::total_cmp);
                v
            };
            let (va, vb) = (sorted(&sa), sorted(&sb));
            let classes = |s: &Space<'_>, v: &[f64], l: usize| -> Vec<u8> {
                let kth = v[l - 1];
                (0..n)
                    .map(|j| {
                        if j == q {
                            return 0;
                        }
                        let x = s.value(q, j);
                        if x < kth - s.tol[q] {
                            2
                        } else if x <= kth + s.tol[q] {
                            1
                        } else {
                            0
                        }
                    })
                    .collect()
            };
            for l in 1..=k {
                let (ca, cb) = (classes(&sa, &va, l), classes(&sb, &vb, l));
                let cnt =
                    |f: &dyn Fn(u8, u8) -> bool| (0..n).filter(|&j| f(ca[j], cb[j])).count() as u32;
                out.extend([
                    cnt(&|x, _| x == 2),
                    cnt(&|x, _| x == 1),
                    cnt(&|_, y| y == 2),
                    cnt(&|_, y| y == 1),
                    cnt(&|x, y| x == 2 && y == 2),
                    cnt(&|x, y| x == 2 && y == 1),
                    cnt(&|x, y| x == 1 && y == 2),
                    cnt(&|x, y| x == 1 && y == 1),
                ]);
            }
        }
        out
    }

    #[test]
    fn counts_match_the_definition_for_any_table_width() {
        check_counts(160, 3, 6, &[6, 9, 40, 159]);
    }

    #[test]
    fn counts_match_the_definition_past_one_scan_tile() {
        // more rows than a scan tile, tables that end inside the tie groups
        check_counts(SCAN_TILE + 300, 2, 3, &[3]);
    }

    fn check_counts(n: usize, d: usize, k: usize, widths: &[usize]) {
        let a = planted(n, d, 1);
        // B: A with some rows replaced, so the groups overlap only in part
        let mut b = a.clone();
        let other = planted(n, d, 2);
        for i in (0..n).step_by(3) {
            b[i * d..(i + 1) * d].copy_from_slice(&other[i * d..(i + 1) * d]);
        }
        // exact duplicates tie under every metric, parallel rows under cosine
        for i in (0..n).step_by(7) {
            let row: Vec<f32> = a[i * d..(i + 1) * d].to_vec();
            b[(i + 1) * d..(i + 2) * d].copy_from_slice(&row);
            b[(i + 2) * d..(i + 3) * d].copy_from_slice(&row);
        }
        for metric in [Metric::Cosine, Metric::Dot, Metric::Euclidean] {
            let want = brute(&a, &b, n, d, k, metric);
            for &w in widths {
                let ha = knn(&a, n, d, None, w, metric, 2).unwrap().1;
                let hb = knn(&b, n, d, None, w, metric, 2).unwrap().1;
                for threads in [1, 3] {
                    let got = tie_overlap(
                        Side {
                            data: &a,
                            d,
                            hint: &ha,
                            width: w,
                        },
                        Side {
                            data: &b,
                            d,
                            hint: &hb,
                            width: w,
                        },
                        n,
                        k,
                        metric,
                        DEFAULT_TOLERANCE,
                        threads,
                    )
                    .unwrap();
                    assert_eq!(got, want, "{metric:?} width {w}, {threads} threads");
                }
            }
            // the planted groups do tie
            assert!(want.chunks(COUNTS).any(|c| c[3] > 1), "{metric:?}");
        }
    }

    /// Every tie-break enumerated: the average of f over all choices.
    fn enumerate(c: [u32; COUNTS], l: u32) -> (f64, f64) {
        // build explicit sets with those counts
        let [s_a, t_a, s_b, t_b, c_ss, c_st, c_ts, c_tt] = c.map(|x| x as usize);
        let mut next = 0usize;
        let mut take = |m: usize| -> Vec<usize> {
            let v: Vec<usize> = (next..next + m).collect();
            next += m;
            v
        };
        let ss = take(c_ss);
        let st = take(c_st);
        let ts = take(c_ts);
        let tt = take(c_tt);
        let sa_only = take(s_a - c_ss - c_st);
        let ta_only = take(t_a - c_ts - c_tt);
        let sb_only = take(s_b - c_ss - c_ts);
        let tb_only = take(t_b - c_st - c_tt);
        let sa: Vec<usize> = [&ss[..], &st, &sa_only].concat();
        let ta: Vec<usize> = [&ts[..], &tt, &ta_only].concat();
        let sb: Vec<usize> = [&ss[..], &ts, &sb_only].concat();
        let tb: Vec<usize> = [&st[..], &tt, &tb_only].concat();
        let subsets = |set: &[usize], m: usize| -> Vec<Vec<usize>> {
            (0u32..1 << set.len())
                .filter(|mask| mask.count_ones() as usize == m)
                .map(|mask| {
                    (0..set.len())
                        .filter(|&i| mask >> i & 1 == 1)
                        .map(|i| set[i])
                        .collect()
                })
                .collect()
        };
        let l = l as usize;
        let (xs, ys) = (subsets(&ta, l - s_a), subsets(&tb, l - s_b));
        let (mut so, mut sj, mut cnt) = (0.0, 0.0, 0.0);
        for x in &xs {
            for y in &ys {
                let xa: Vec<usize> = [&sa[..], x].concat();
                let yb: Vec<usize> = [&sb[..], y].concat();
                let z = xa.iter().filter(|e| yb.contains(e)).count() as f64;
                so += z;
                sj += z / (2.0 * l as f64 - z);
                cnt += 1.0;
            }
        }
        (so / cnt, sj / cnt)
    }

    #[test]
    fn expectation_equals_enumeration() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut checked = 0;
        while checked < 400 {
            let l = rng.random_range(1..7u32);
            let s_a = rng.random_range(0..l);
            let s_b = rng.random_range(0..l);
            let t_a = rng.random_range(l - s_a..=(l - s_a + 5));
            let t_b = rng.random_range(l - s_b..=(l - s_b + 5));
            let c_tt = rng.random_range(0..=t_a.min(t_b));
            let c_ts = rng.random_range(0..=(t_a - c_tt).min(s_b));
            let c_st = rng.random_range(0..=(t_b - c_tt).min(s_a));
            let c_ss = rng.random_range(0..=(s_a - c_st).min(s_b - c_ts));
            let c = [s_a, t_a, s_b, t_b, c_ss, c_st, c_ts, c_tt];
            let (o, j) = expectation(&c, l).unwrap();
            let (wo, wj) = enumerate(c, l);
            assert!((o - wo).abs() < 1e-12, "{c:?} l {l}: {o} vs {wo}");
            assert!((j - wj).abs() < 1e-12, "{c:?} l {l}: {j} vs {wj}");
            checked += 1;
        }
    }

    #[test]
    fn expectation_with_huge_tie_groups() {
        // one slot on each side in the same group of a million rows: they
        // agree with probability 1 / 1e6
        let t = 1_000_000u32;
        let (o, j) = expectation(&[0, t, 0, t, 0, 0, 0, t], 1).unwrap();
        assert!(
            (o - 1e-6).abs() < 1e-20 && (j - 1e-6).abs() < 1e-20,
            "{o} {j}"
        );
        // ten slots: E|X & Y| = 10 * 10 / 1e6, and J is finite and below it
        let (o, j) = expectation(&[0, t, 0, t, 0, 0, 0, t], 10).unwrap();
        assert!((o - 1e-4).abs() < 1e-16, "{o}");
        assert!(j > 0.0 && j < o / 10.0, "{j}");
        // sides that share half of their groups
        let (o, _) = expectation(&[5, t, 5, t, 5, 0, 0, t / 2], 10).unwrap();
        assert!((o - (5.0 + 25.0 * 0.5 / 1e6)).abs() < 1e-12, "{o}");
    }

    #[test]
    fn expectation_by_hand_and_bad_counts() {
        // l = 1, each side picks one of the same two tied rows: overlap 1/2
        let (o, j) = expectation(&[0, 2, 0, 2, 0, 0, 0, 2], 1).unwrap();
        assert_eq!((o, j), (0.5, 0.5));
        // no ties: the plain Jaccard 3 / (2 * 4 - 3)
        let (o, j) = expectation(&[3, 1, 3, 1, 2, 0, 0, 1], 4).unwrap();
        assert_eq!((o, j), (3.0, 0.6));
        assert!(expectation(&[1, 1, 0, 1, 0, 0, 0, 0], 1).is_err());
        assert!(expectation(&[0, 1, 0, 1, 0, 0, 0, 2], 1).is_err());
        assert!(tie_expectation(&[0, 1, 0, 1, 0, 0, 0, 0], &[1, 1], 1).is_err());
    }

    #[test]
    fn rejects_bad_tables() {
        let (n, d) = (20, 2);
        let a = planted(n, d, 3);
        let (_, h) = knn(&a, n, d, None, 4, Metric::Cosine, 1).unwrap();
        let run = |h: &[i64], w: usize, k: usize| {
            tie_overlap(
                Side {
                    data: &a,
                    d,
                    hint: h,
                    width: w,
                },
                Side {
                    data: &a,
                    d,
                    hint: h,
                    width: w,
                },
                n,
                k,
                Metric::Cosine,
                DEFAULT_TOLERANCE,
                1,
            )
        };
        assert!(run(&h, 4, 4).is_ok());
        assert!(matches!(run(&h, 4, 5), Err(Error::ShapeMismatch(_))));
        let mut bad = h.clone();
        bad[0] = 0; // the row itself
        assert!(matches!(run(&bad, 4, 2), Err(Error::InvalidParameter(_))));
        bad[0] = 99;
        assert!(matches!(run(&bad, 4, 2), Err(Error::IndexOutOfRange(_))));
        let mut rev = h.clone();
        for row in rev.chunks_mut(4) {
            row.reverse(); // no longer sorted by distance (where the row has no ties)
        }
        assert!(matches!(run(&rev, 4, 2), Err(Error::InvalidParameter(_))));
        assert!(tie_overlap(
            Side {
                data: &a,
                d,
                hint: &h,
                width: 4
            },
            Side {
                data: &a,
                d,
                hint: &h,
                width: 4
            },
            n,
            2,
            Metric::Cosine,
            -1.0,
            1
        )
        .is_err());
    }
}
