//! Exact k nearest neighbors under cosine, euclidean and dot-product metrics.
//!
//! # Algorithm
//!
//! The rows of `data` are prepared once as an `f32` matrix in which a larger
//! inner product means a closer pair (see [`Metric`]). Queries are split into
//! blocks of a fixed size (the partition never depends on the thread count);
//! rayon runs the blocks in parallel. Each block walks the candidates in tiles:
//! one `gemm` call (the `gemm` crate, `Parallelism::None`) gives the scores of
//! the tile against every query of the block, and each query keeps its
//! candidates in a small buffer with an acceptance threshold (a score below the
//! threshold cannot enter the top k), so memory is O(block) and not O(n^2).
//!
//! # Exactness
//!
//! The products are `f32`, but the answer is the one of an `f64` brute force:
//! the buffer keeps every candidate whose `f32` score lies within twice a
//! rigorous rounding bound of the k-th best score (`2 * gamma_(d+4) * scale`,
//! where `gamma_m = m u / (1 - m u)` and `u = 2^-24`; `scale` bounds the sizes
//! involved). Every candidate of the exact top k is in that set, so the final
//! step recomputes the kept candidates' distances in `f64` from the original
//! values and sorts them by `(distance, index)`. Ties, exact duplicate rows
//! and near-ties are therefore decided in `f64`, ties by the lower index.
//!
//! The `f64` distances are, for a query row `q` and candidate row `j` of the
//! original data (converted exactly from `f32`):
//! - cosine: `1 - (q . j) / (|q| |j|)`, with `cos = 0` when either row has
//!   zero norm (distance 1);
//! - euclidean: the squared distance `sum_i (q_i - j_i)^2` ranks; its square
//!   root is reported;
//! - dot: `-(q . j)` (the negative inner product, so smaller is closer).
//!
//! Results are sorted by that `f64` value, then by index, and reported as
//! `f32` (the rounded `f64` value). The query itself is excluded by index,
//! not by position, so a duplicate row of the query is a regular candidate.
//! Many exactly tied scores (for instance thousands of identical rows) make
//! the kept set grow past k; that costs memory, never correctness.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::parallel::{never_cancelled, with_threads, Cancel};

mod screen;
pub use screen::{cpu_supported as screen_supported, SCREEN_ENV};

/// Whether a search of the rows `queries` (a subset, not the full table) of
/// `d`-dimensional data takes the int8-screened path (module `screen`: AVX-512
/// VNNI products with rigorous error bounds, then the same exact re-ranking;
/// the result is identical). False on CPUs without AVX-512 VNNI, for
/// `d > 4096`, and when the environment variable [`SCREEN_ENV`]
/// (`EMBSPACE_KNN_SCREEN`) is `0`; the `f32` search runs then.
pub fn screened(d: usize) -> bool {
    screen::enabled(d)
}

/// Diagnostics of the screened search: the number of rows each query of
/// `queries` re-ranked exactly (at least `k`; the rest were ruled out by the
/// int8 bounds). Same arguments and errors as [`knn`]; an error too where
/// [`screen::cpu_supported`] is false (no AVX-512 VNNI).
pub fn screen_candidates(
    data: &[f32],
    n: usize,
    d: usize,
    queries: &[usize],
    k: usize,
    metric: Metric,
    num_threads: usize,
) -> Result<Vec<u64>> {
    validate(data, n, d, Some(queries), k)?;
    if !screen::cpu_supported() || d > screen::MAX_D {
        return Err(Error::InvalidParameter(
            "the screened k-NN needs AVX-512 VNNI and d <= 4096".into(),
        ));
    }
    let cancel = Cancel::new();
    let out = with_threads(num_threads, || {
        screen::run_counted(data, n, d, queries, k, metric, &cancel)
    })?;
    Ok(out.map(|(_, _, c)| c).unwrap_or_default())
}

/// The metric of a neighbor table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Cosine distance `1 - cos`; rows of zero norm have `cos = 0` with every row.
    Cosine,
    /// Euclidean distance.
    Euclidean,
    /// Negative inner product `-(a . b)`: smaller is closer, like a distance.
    Dot,
}

impl Metric {
    /// Parse a metric name as the Python layer spells it.
    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "cosine" => Self::Cosine,
            "euclidean" => Self::Euclidean,
            "dot" => Self::Dot,
            other => {
                return Err(Error::InvalidParameter(format!(
                    "unknown metric {other:?}: expected one of cosine, euclidean, dot"
                )))
            }
        })
    }
}

/// Queries per block (a rayon task) and candidates per tile: a tile of scores
/// (`TILE_CANDIDATES x QUERY_BLOCK` f32, 1 MiB) stays in a core's L2 cache,
/// and the shape suits the `gemm` kernels when d is small (measured).
const QUERY_BLOCK: usize = 512;
const TILE_CANDIDATES: usize = 512;
/// Memory allowed for the per-query candidate buffers of one block, in bytes.
const BUFFER_BYTES: usize = 64 << 20;
/// Unit roundoff of f32.
const U32: f64 = 1.0 / 16_777_216.0;

/// Exact k nearest neighbors of `queries` (row indices into `data`, all rows
/// when `None`) among the `n` rows of `data` (row-major, `n x d`), the query
/// itself excluded by index.
///
/// Returns `(distances, indices)`, both `n_queries x k` row-major, each row
/// sorted by `(distance, index)`. See the module docs for the distances and
/// the exactness guarantee. `num_threads = 0` uses every CPU; the result
/// does not depend on it.
///
/// Errors: `d = 0`, `data.len() != n * d`, `k = 0`, `k > n - 1`, non-finite
/// values, query indices outside `[0, n)`, `num_threads` above
/// [`crate::parallel::max_threads`], and distances too large for `f32` (only
/// with values beyond about 1e19).
///
/// A query subset (`Some`) is searched by int8 screening where the CPU has
/// AVX-512 VNNI (see [`screened`]), with the same result.
pub fn knn(
    data: &[f32],
    n: usize,
    d: usize,
    queries: Option<&[usize]>,
    k: usize,
    metric: Metric,
    num_threads: usize,
) -> Result<(Vec<f32>, Vec<i64>)> {
    never_cancelled(knn_cancellable(
        data,
        n,
        d,
        queries,
        k,
        metric,
        num_threads,
        &Cancel::new(),
    ))
}

/// [`knn`], stopped early when `cancel` is raised: every worker polls it
/// before each tile of candidates (a product of at most 512 x 512 x d), and
/// the call then returns `Ok(None)` without a result.
#[allow(clippy::too_many_arguments)]
pub fn knn_cancellable(
    data: &[f32],
    n: usize,
    d: usize,
    queries: Option<&[usize]>,
    k: usize,
    metric: Metric,
    num_threads: usize,
    cancel: &Cancel,
) -> Result<Option<(Vec<f32>, Vec<i64>)>> {
    validate(data, n, d, queries, k)?;
    let screen = queries.is_some() && screened(d);
    let all: Vec<usize>;
    let queries = match queries {
        Some(q) => q,
        None => {
            all = (0..n).collect();
            &all
        }
    };
    let Some((dist, idx)) = with_threads(num_threads, || {
        if screen {
            screen::run(data, n, d, queries, k, metric, cancel)
        } else {
            run(data, n, d, queries, k, metric, cancel)
        }
    })?
    else {
        return Ok(None);
    };
    if let Some(pos) = dist.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite(format!(
            "the {metric:?} distance of query {} to row {} overflows float32; rescale the data",
            queries[pos / k],
            idx[pos]
        )));
    }
    Ok(Some((dist, idx)))
}

fn validate(data: &[f32], n: usize, d: usize, queries: Option<&[usize]>, k: usize) -> Result<()> {
    if d == 0 {
        return Err(Error::InvalidParameter(
            "embeddings must have at least one dimension (d = 0)".into(),
        ));
    }
    match n.checked_mul(d) {
        Some(len) if len == data.len() => {}
        _ => {
            return Err(Error::ShapeMismatch(format!(
                "data has {} values, expected n x d = {n} x {d}",
                data.len()
            )))
        }
    }
    if n > u32::MAX as usize {
        return Err(Error::InvalidParameter(format!(
            "{n} rows exceed the supported maximum {}",
            u32::MAX
        )));
    }
    if k == 0 {
        return Err(Error::InvalidParameter("k must be at least 1".into()));
    }
    if n == 0 || k > n - 1 {
        return Err(Error::InvalidParameter(format!(
            "k = {k} is larger than the {} other rows (n = {n}); k must lie in [1, n - 1]",
            n.saturating_sub(1)
        )));
    }
    if let Some(pos) = data.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite(format!(
            "value {} at row {}, column {} is not finite",
            data[pos],
            pos / d,
            pos % d
        )));
    }
    if let Some(qs) = queries {
        if let Some((pos, &q)) = qs.iter().enumerate().find(|(_, &q)| q >= n) {
            return Err(Error::IndexOutOfRange(format!(
                "query index {q} at position {pos} is outside [0, {n})"
            )));
        }
    }
    Ok(())
}

/// The metric-specific `f32` matrices: `cand` (n x dp) and a way to build the
/// row of a query, such that `query_row . cand_row` is larger for closer pairs.
struct Prepared {
    dp: usize,
    cand: Vec<f32>,
    /// Query rows, `n x dp` (only for euclidean, where they differ from `cand`).
    query: Option<Vec<f32>>,
    /// Norms of the prepared query rows, for the rounding bound.
    qnorm: Vec<f64>,
    /// `f64` norms of the original rows (cosine only).
    norm: Vec<f64>,
}

fn prepare(data: &[f32], n: usize, d: usize, metric: Metric) -> Prepared {
    let row = |i: usize| &data[i * d..(i + 1) * d];
    let norm2 = |r: &[f32]| r.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>();
    match metric {
        Metric::Cosine => {
            let norm: Vec<f64> = (0..n)
                .into_par_iter()
                .map(|i| norm2(row(i)).sqrt())
                .collect();
            let mut cand = vec![0f32; n * d];
            cand.par_chunks_mut(d).enumerate().for_each(|(i, out)| {
                if norm[i] > 0.0 {
                    for (o, &x) in out.iter_mut().zip(row(i)) {
                        *o = (f64::from(x) / norm[i]) as f32;
                    }
                }
            });
            Prepared {
                dp: d,
                cand,
                query: None,
                qnorm: vec![1.0; n],
                norm,
            }
        }
        Metric::Dot => {
            let norms: Vec<f64> = (0..n)
                .into_par_iter()
                .map(|i| norm2(row(i)).sqrt())
                .collect();
            let s = pow2_scale(norms.iter().copied().fold(0.0, f64::max));
            let cand: Vec<f32> = data
                .par_iter()
                .map(|&x| (f64::from(x) * s) as f32)
                .collect();
            Prepared {
                dp: d,
                cand,
                query: None,
                qnorm: norms.iter().map(|&v| v * s).collect(),
                norm: Vec::new(),
            }
        }
        Metric::Euclidean => {
            let mut mean = vec![0f64; d];
            for i in 0..n {
                for (m, &x) in mean.iter_mut().zip(row(i)) {
                    *m += f64::from(x);
                }
            }
            for m in &mut mean {
                *m /= n as f64;
            }
            let z2: Vec<f64> = (0..n)
                .into_par_iter()
                .map(|i| {
                    row(i)
                        .iter()
                        .zip(&mean)
                        .map(|(&x, &m)| (f64::from(x) - m).powi(2))
                        .sum::<f64>()
                })
                .collect();
            let s = pow2_scale(z2.iter().copied().fold(0.0, f64::max).sqrt());
            let dp = d + 1;
            let mut cand = vec![0f32; n * dp];
            let mut query = vec![0f32; n * dp];
            cand.par_chunks_mut(dp)
                .zip(query.par_chunks_mut(dp))
                .enumerate()
                .for_each(|(i, (c, q))| {
                    for t in 0..d {
                        let z = (f64::from(data[i * d + t]) - mean[t]) * s;
                        q[t] = z as f32;
                        c[t] = (2.0 * z) as f32;
                    }
                    q[d] = 1.0;
                    c[d] = (-z2[i] * s * s) as f32;
                });
            Prepared {
                dp,
                cand,
                query: Some(query),
                qnorm: z2.iter().map(|&v| v.sqrt() * s).collect(),
                norm: Vec::new(),
            }
        }
    }
}

/// A power of two `s` with `s * max_norm` in `(1/2, 1]` (1 for zero data), so
/// scaling is exact and no product can overflow `f32`.
fn pow2_scale(max_norm: f64) -> f64 {
    if max_norm > 0.0 {
        2f64.powi(-(max_norm.log2().ceil() as i32))
    } else {
        1.0
    }
}

/// The half-width of the margin: a bound on `|score_f32 - score_exact|` for a
/// query whose prepared row has norm `qn` (candidates' prepared norms are <= 1).
fn rounding_bound(metric: Metric, dp: usize, qn: f64) -> f64 {
    let m = (dp + 4) as f64 * U32;
    let gamma = if m < 0.5 {
        1.02 * m / (1.0 - m)
    } else {
        f64::INFINITY
    };
    let size = match metric {
        Metric::Cosine => 1.0,
        Metric::Dot => qn,
        Metric::Euclidean => 2.0 * qn + 1.0,
    };
    gamma * size + 1e-30
}

/// The largest `f32` that is `<= v`.
fn f32_at_most(v: f64) -> f32 {
    let t = v as f32;
    if f64::from(t) <= v {
        t
    } else if t > 0.0 {
        f32::from_bits(t.to_bits() - 1)
    } else if t == 0.0 {
        -f32::from_bits(1)
    } else {
        f32::from_bits(t.to_bits() + 1)
    }
}

/// Buffer length that triggers a compaction: small, so the threshold rises
/// soon after better candidates arrive.
fn initial_capacity(k: usize) -> usize {
    (2 * k).max(k + 32)
}

/// The candidates of one query: every score that may still belong to the top k.
struct Candidates {
    buf: Vec<(f32, u32)>,
    /// Scores below this cannot enter the top k (`-inf` until k are known).
    thr: f32,
    cap: usize,
    k: usize,
    margin: f64,
}

impl Candidates {
    fn new(k: usize, margin: f64) -> Self {
        let cap = initial_capacity(k);
        Self {
            buf: Vec::with_capacity(cap),
            thr: f32::NEG_INFINITY,
            cap,
            k,
            margin,
        }
    }

    #[inline]
    fn push(&mut self, score: f32, index: u32) {
        self.buf.push((score, index));
        if self.buf.len() >= self.cap {
            self.compact();
        }
    }

    /// Raise the threshold to (k-th best score - margin) and drop what falls below.
    fn compact(&mut self) {
        if self.buf.len() < self.k {
            return;
        }
        let k = self.k;
        let (_, kth, _) = self
            .buf
            .select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
        let thr = f32_at_most(f64::from(kth.0) - self.margin);
        if thr > self.thr {
            self.thr = thr;
        }
        let t = self.thr;
        self.buf.retain(|c| c.0 >= t);
        if self.buf.len() * 2 > self.cap {
            self.cap *= 2;
        }
    }

    /// Offer a column of scores (candidates `base..base + col.len()`);
    /// `mask` gives the hit bits of a chunk of [`SCAN_WIDTH`] scores.
    #[inline(always)]
    fn scan(&mut self, col: &[f32], base: usize, mask: impl Fn(&[f32; SCAN_WIDTH], f32) -> u32) {
        let mut chunks = col.chunks_exact(SCAN_WIDTH);
        let mut at = base;
        for ch in &mut chunks {
            let ch: &[f32; SCAN_WIDTH] = ch.try_into().expect("exact chunk");
            let mut hits = mask(ch, self.thr);
            while hits != 0 {
                let t = hits.trailing_zeros() as usize;
                hits &= hits - 1;
                // the threshold may have risen since the mask was taken
                if ch[t] >= self.thr {
                    self.push(ch[t], (at + t) as u32);
                }
            }
            at += SCAN_WIDTH;
        }
        for (t, &x) in chunks.remainder().iter().enumerate() {
            if x >= self.thr {
                self.push(x, (at + t) as u32);
            }
        }
    }
}

/// Scores checked at once against a threshold: most chunks hold no candidate.
const SCAN_WIDTH: usize = 32;

/// Bit `t` set when `ch[t] >= thr` (NaN never hits).
#[inline(always)]
fn hit_mask(ch: &[f32; SCAN_WIDTH], thr: f32) -> u32 {
    let mut mask = 0u32;
    for (t, &x) in ch.iter().enumerate() {
        mask |= u32::from(x >= thr) << t;
    }
    mask
}

/// [`hit_mask`] with AVX2 compares and movemask.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn hit_mask_avx2(ch: &[f32; SCAN_WIDTH], thr: f32) -> u32 {
    use std::arch::x86_64::*;
    let t = _mm256_set1_ps(thr);
    let p = ch.as_ptr();
    let mut mask = 0u32;
    for j in 0..SCAN_WIDTH / 8 {
        // SAFETY: p + 8 j + 7 < SCAN_WIDTH, inside the chunk (unaligned load).
        let x = _mm256_loadu_ps(p.add(8 * j));
        let m = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(x, t)) as u32;
        mask |= m << (8 * j);
    }
    mask
}

/// Offer every query's column of a tile of scores to its candidates (AVX2
/// compares when the CPU has them, chosen at run time).
fn scan_tile(scores: &[f32], cb: usize, base: usize, cands: &mut [Candidates]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2.
            return unsafe { scan_tile_avx2(scores, cb, base, cands) };
        }
    }
    for (col, c) in scores.chunks_exact(cb).zip(cands.iter_mut()) {
        c.scan(col, base, hit_mask);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scan_tile_avx2(scores: &[f32], cb: usize, base: usize, cands: &mut [Candidates]) {
    for (col, c) in scores.chunks_exact(cb).zip(cands.iter_mut()) {
        // SAFETY: this function only runs where AVX2 is available.
        c.scan(col, base, |ch, thr| unsafe { hit_mask_avx2(ch, thr) });
    }
}

/// Exact `f64` distance keys (smaller is closer; squared for euclidean).
struct Exact<'a> {
    data: &'a [f32],
    d: usize,
    metric: Metric,
    norm: &'a [f64],
}

impl Exact<'_> {
    fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.d..(i + 1) * self.d]
    }

    /// The key of candidate `j` for query `q`; `+ 0.0` turns `-0.0` into
    /// `+0.0`, so the total order used for sorting sees equal zeros as equal.
    fn key(&self, q: usize, j: usize) -> f64 {
        self.raw_key(q, j) + 0.0
    }

    fn raw_key(&self, q: usize, j: usize) -> f64 {
        let (a, b) = (self.row(q), self.row(j));
        match self.metric {
            Metric::Cosine => {
                let den = self.norm[q] * self.norm[j];
                if den > 0.0 {
                    1.0 - dot64(a, b) / den
                } else {
                    1.0
                }
            }
            Metric::Dot => -dot64(a, b),
            Metric::Euclidean => a
                .iter()
                .zip(b)
                .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
                .sum(),
        }
    }

    fn reported(&self, key: f64) -> f32 {
        match self.metric {
            Metric::Euclidean => key.max(0.0).sqrt() as f32,
            _ => key as f32,
        }
    }
}

fn dot64(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum()
}

fn run(
    data: &[f32],
    n: usize,
    d: usize,
    queries: &[usize],
    k: usize,
    metric: Metric,
    cancel: &Cancel,
) -> Option<(Vec<f32>, Vec<i64>)> {
    let nq = queries.len();
    let mut dist = vec![0f32; nq * k];
    let mut idx = vec![0i64; nq * k];
    if nq == 0 {
        return Some((dist, idx));
    }
    let prep = prepare(data, n, d, metric);
    let exact = Exact {
        data,
        d,
        metric,
        norm: &prep.norm,
    };
    // Fewer queries per block when k is large, to bound the buffers' memory.
    let per_query = initial_capacity(k) * std::mem::size_of::<(f32, u32)>() * 2;
    let qb = QUERY_BLOCK.min((BUFFER_BYTES / per_query).max(1));
    let tile = TILE_CANDIDATES.min(n);
    dist.par_chunks_mut(qb * k)
        .zip(idx.par_chunks_mut(qb * k))
        .zip(queries.par_chunks(qb))
        .for_each_init(
            || (vec![0f32; tile * qb], vec![0f32; qb * prep.dp]),
            |(scores, qrows), ((dist, idx), block)| {
                if !cancel.is_cancelled() {
                    process_block(
                        &prep, &exact, n, k, metric, cancel, block, scores, qrows, dist, idx,
                    );
                }
            },
        );
    (!cancel.is_cancelled()).then_some((dist, idx))
}

/// The neighbors of the queries `block`; stops (leaving `dist` and `idx`
/// unspecified) as soon as `cancel` is raised.
#[allow(clippy::too_many_arguments)]
fn process_block(
    prep: &Prepared,
    exact: &Exact<'_>,
    n: usize,
    k: usize,
    metric: Metric,
    cancel: &Cancel,
    block: &[usize],
    scores: &mut [f32],
    qrows: &mut [f32],
    dist: &mut [f32],
    idx: &mut [i64],
) {
    let dp = prep.dp;
    let m = block.len();
    let qsrc = prep.query.as_deref().unwrap_or(&prep.cand);
    for (t, &q) in block.iter().enumerate() {
        qrows[t * dp..(t + 1) * dp].copy_from_slice(&qsrc[q * dp..(q + 1) * dp]);
    }
    let mut cands: Vec<Candidates> = block
        .iter()
        .map(|&q| Candidates::new(k, 2.0 * rounding_bound(metric, dp, prep.qnorm[q])))
        .collect();
    let tile = TILE_CANDIDATES.min(n);
    let mut c0 = 0;
    while c0 < n {
        if cancel.is_cancelled() {
            return;
        }
        let cb = tile.min(n - c0);
        // scores (cb x m, column-major: one contiguous column per query)
        //   = cand[c0..c0+cb] (cb x dp, row-major) * qrows^T (dp x m)
        // SAFETY: the pointers cover cb*m, cb*dp and m*dp values with the
        // strides given, all inside the slices borrowed here.
        debug_assert!(scores.len() >= cb * m && qrows.len() >= m * dp);
        unsafe {
            gemm::gemm(
                cb,
                m,
                dp,
                scores.as_mut_ptr(),
                cb as isize,
                1,
                false,
                prep.cand[c0 * dp..].as_ptr(),
                1,
                dp as isize,
                qrows.as_ptr(),
                dp as isize,
                1,
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        for (t, &q) in block.iter().enumerate() {
            if (c0..c0 + cb).contains(&q) {
                scores[t * cb + q - c0] = f32::NAN; // the query itself: never accepted
            }
        }
        scan_tile(&scores[..cb * m], cb, c0, &mut cands);
        c0 += cb;
    }
    let mut keyed: Vec<(f64, u32)> = Vec::new();
    for (t, (&q, c)) in block.iter().zip(cands.iter_mut()).enumerate() {
        c.compact();
        keyed.clear();
        keyed.extend(c.buf.iter().map(|&(_, j)| (exact.key(q, j as usize), j)));
        keyed.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (r, &(key, j)) in keyed.iter().take(k).enumerate() {
            dist[t * k + r] = exact.reported(key);
            idx[t * k + r] = i64::from(j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Plain f64 brute force with the same keys and tie rule.
    fn brute(data: &[f32], n: usize, d: usize, k: usize, metric: Metric) -> Vec<Vec<(f64, usize)>> {
        let norm: Vec<f64> = (0..n)
            .map(|i| dot64(&data[i * d..(i + 1) * d], &data[i * d..(i + 1) * d]).sqrt())
            .collect();
        let ex = Exact {
            data,
            d,
            metric,
            norm: &norm,
        };
        (0..n)
            .map(|q| {
                let mut all: Vec<(f64, usize)> = (0..n)
                    .filter(|&j| j != q)
                    .map(|j| (ex.key(q, j), j))
                    .collect();
                all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                all.truncate(k);
                all
            })
            .collect()
    }

    fn random(n: usize, d: usize, seed: u64, ints: bool) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * d)
            .map(|_| {
                if ints {
                    rng.random_range(-2i32..=2) as f32
                } else {
                    rng.random::<f32>() * 2.0 - 1.0
                }
            })
            .collect()
    }

    fn check(data: &[f32], n: usize, d: usize, k: usize, metric: Metric, threads: usize) {
        let (dist, idx) = knn(data, n, d, None, k, metric, threads).unwrap();
        let want = brute(data, n, d, k, metric);
        for q in 0..n {
            for r in 0..k {
                let (key, j) = want[q][r];
                assert_eq!(
                    idx[q * k + r],
                    j as i64,
                    "metric {metric:?} query {q} rank {r}"
                );
                let rep = match metric {
                    Metric::Euclidean => key.sqrt(),
                    _ => key,
                };
                let got = f64::from(dist[q * k + r]);
                assert!(
                    (got - rep).abs() <= 1e-6 * (1.0 + rep.abs()),
                    "{metric:?} q {q} r {r}: {got} vs {rep}"
                );
            }
        }
    }

    #[test]
    fn matches_brute_force_on_random_data_with_duplicates() {
        // more rows than one tile and one block, with duplicated rows
        let (n, d) = (2300, 7);
        let mut data = random(n, d, 1, false);
        for (dst, src) in [(5usize, 17usize), (900, 17), (2299, 3), (2100, 2101)] {
            let row: Vec<f32> = data[src * d..(src + 1) * d].to_vec();
            data[dst * d..(dst + 1) * d].copy_from_slice(&row);
        }
        for metric in [Metric::Cosine, Metric::Euclidean, Metric::Dot] {
            for threads in [1, 3] {
                check(&data, n, d, 10, metric, threads);
            }
        }
    }

    #[test]
    fn ties_on_integer_data_go_to_the_lower_index() {
        // small integers: every product is exact, so ties are real ties
        let (n, d) = (300, 3);
        let data = random(n, d, 2, true);
        for metric in [Metric::Cosine, Metric::Euclidean, Metric::Dot] {
            for k in [1, 10, n - 1] {
                check(&data, n, d, k, metric, 2);
            }
        }
    }

    #[test]
    fn subset_of_queries_and_thread_independence() {
        let (n, d) = (700, 5);
        let data = random(n, d, 3, false);
        let qs = [699usize, 0, 350, 350];
        let (d1, i1) = knn(&data, n, d, Some(&qs), 4, Metric::Cosine, 1).unwrap();
        let (da, ia) = knn(&data, n, d, None, 4, Metric::Cosine, 2).unwrap();
        for (t, &q) in qs.iter().enumerate() {
            assert_eq!(&i1[t * 4..t * 4 + 4], &ia[q * 4..q * 4 + 4]);
            assert_eq!(&d1[t * 4..t * 4 + 4], &da[q * 4..q * 4 + 4]);
        }
        let (_, i3) = knn(&data, n, d, Some(&[]), 4, Metric::Dot, 1).unwrap();
        assert!(i3.is_empty());
    }

    #[test]
    fn a_raised_token_stops_the_call_and_a_quiet_one_changes_nothing() {
        let (n, d) = (1500, 6);
        let data = random(n, d, 4, false);
        let quiet = Cancel::new();
        let raised = Cancel::new();
        raised.cancel();
        for metric in [Metric::Cosine, Metric::Euclidean, Metric::Dot] {
            let want = knn(&data, n, d, None, 5, metric, 2).unwrap();
            let got = knn_cancellable(&data, n, d, None, 5, metric, 3, &quiet).unwrap();
            assert_eq!(got, Some(want));
            let stopped = knn_cancellable(&data, n, d, None, 5, metric, 2, &raised).unwrap();
            assert_eq!(stopped, None);
        }
        // bad input is still reported, before any work
        assert!(matches!(
            knn_cancellable(&data, n, d, None, 0, Metric::Dot, 1, &raised),
            Err(Error::InvalidParameter(_))
        ));
    }

    #[test]
    fn zero_rows_have_cosine_distance_one() {
        let data = [0.0, 0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 1.0];
        let (dist, idx) = knn(&data, 4, 2, Some(&[0]), 3, Metric::Cosine, 1).unwrap();
        assert_eq!(idx, vec![1, 2, 3]);
        assert_eq!(dist, vec![1.0, 1.0, 1.0]);
        let (dist, idx) = knn(&data, 4, 2, Some(&[1]), 3, Metric::Cosine, 1).unwrap();
        assert_eq!(idx, vec![2, 0, 3]);
        assert_eq!(dist, vec![0.0, 1.0, 1.0]);
    }

    #[test]
    fn huge_and_offset_values_stay_exact() {
        let (n, d) = (400, 4);
        let base = random(n, d, 4, false);
        let big: Vec<f32> = base.iter().map(|&x| x * 1e15).collect();
        let huge: Vec<f32> = base.iter().map(|&x| x * 1e30).collect();
        check(&huge, n, d, 5, Metric::Euclidean, 2);
        check(&huge, n, d, 5, Metric::Cosine, 2);
        assert!(matches!(
            knn(&huge, n, d, None, 5, Metric::Dot, 2),
            Err(Error::NonFinite(_))
        ));
        let shifted: Vec<f32> = base.iter().map(|&x| x + 1000.0).collect();
        for metric in [Metric::Euclidean, Metric::Dot, Metric::Cosine] {
            check(&big, n, d, 5, metric, 2);
            check(&shifted, n, d, 5, metric, 2);
        }
    }

    #[test]
    fn rejects_bad_input() {
        let data = [1.0f32, 2.0, 3.0, 4.0];
        let err = |r: Result<(Vec<f32>, Vec<i64>)>| r.unwrap_err();
        assert!(matches!(
            err(knn(&data, 2, 2, None, 0, Metric::Cosine, 1)),
            Error::InvalidParameter(_)
        ));
        assert!(matches!(
            err(knn(&data, 2, 2, None, 2, Metric::Cosine, 1)),
            Error::InvalidParameter(_)
        ));
        assert!(matches!(
            err(knn(&data, 4, 0, None, 1, Metric::Cosine, 1)),
            Error::InvalidParameter(_)
        ));
        assert!(matches!(
            err(knn(&data, 3, 2, None, 1, Metric::Cosine, 1)),
            Error::ShapeMismatch(_)
        ));
        assert!(matches!(
            err(knn(&[1.0, f32::NAN], 2, 1, None, 1, Metric::Dot, 1)),
            Error::NonFinite(_)
        ));
        assert!(matches!(
            err(knn(&data, 2, 2, Some(&[2]), 1, Metric::Dot, 1)),
            Error::IndexOutOfRange(_)
        ));
        assert!(matches!(
            err(knn(&[], 0, 2, None, 1, Metric::Dot, 1)),
            Error::InvalidParameter(_)
        ));
        assert!(Metric::parse("manhattan").is_err());
        assert_eq!(Metric::parse("dot").unwrap(), Metric::Dot);
    }

    #[test]
    fn signed_zeros_tie() {
        // dot products +0.0 and -0.0 are equal: ties go to the lower index
        let data = [1.0, 0.0, 0.0, 1.0, -0.0, -0.0, 0.0, 2.0];
        let (_, idx) = knn(&data, 4, 2, Some(&[0]), 3, Metric::Dot, 1).unwrap();
        assert_eq!(idx, vec![1, 2, 3]);
    }

    #[test]
    fn many_exact_ties_keep_lowest_indices() {
        // 3000 identical rows: every candidate ties; the k lowest indices win
        let (n, d) = (3000, 2);
        let data = vec![1.0f32; n * d];
        for metric in [Metric::Cosine, Metric::Euclidean, Metric::Dot] {
            let (_, idx) = knn(&data, n, d, Some(&[0, 5, 2999]), 3, metric, 2).unwrap();
            assert_eq!(idx, vec![1, 2, 3, 0, 1, 2, 0, 1, 2]);
        }
    }

    #[test]
    fn f32_at_most_rounds_down() {
        for v in [0.1f64, -0.1, 1.0 / 3.0, -1e-40, 0.0, 1e-50, -1e-50] {
            assert!(f64::from(f32_at_most(v)) <= v, "{v}");
        }
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for _ in 0..1000 {
            let v: f64 = rng.random::<f64>() * 4.0 - 2.0;
            let t = f64::from(f32_at_most(v));
            assert!(t <= v && v - t <= v.abs() * 1.2e-7, "{v} {t}");
        }
    }
}
