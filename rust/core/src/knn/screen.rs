//! Exact k-NN of a query subset by int8 screening and exact re-ranking.
//!
//! # Algorithm
//!
//! Every row is mapped to a prepared `f64` vector `p_j` (and, for euclidean,
//! an offset `c_j`) such that the similarity `s(q, j) = v_q . p_j + c_j` is
//! larger for closer pairs; `v_q` is the query's vector:
//!
//! - cosine: `p_j = x_j / |x_j|` (0 for a zero row), `v_q = p_q`, `c = 0`;
//! - dot: `p_j = g x_j` with `g` a power of two (exact), `v_q = p_q`, `c = 0`;
//! - euclidean: `p_j = g (x_j - m)`, `v_q = 2 p_q`, `c_j = -|p_j|^2`
//!   (`m` the column means, `g` a power of two), so `|x_q - x_j|^2 =
//!   (|p_q|^2 - s(q, j)) / g^2`.
//!
//! Each vector is quantized to int8 with its own scale (`amax / 127`), and
//! the exact residual norms are kept. The products of the int8 codes are
//! computed with AVX-512 VNNI (`vpdpbusd`, the rows shifted by 128 to
//! unsigned, the shift removed by starting each sum at `-128 * sum(query
//! codes)`), so `approx = s_q s_j (codes_q . codes_j) + c_j` is exact up to
//! the scales' product. The error of `approx` against `s(q, j)` is at most
//! `|v_q| |e_j| + |e_q| |p~_j|` (`e` the quantization residuals, `p~` the
//! dequantized vectors), plus a rounding slack; every pair gets the interval
//! `[low, up]` of that width, widened further by a bound on the `f64`
//! rounding of the final keys.
//!
//! A query keeps every row whose `up` reaches the k-th largest `low` seen so
//! far (the same running-threshold buffer as the `f32` search). Every row
//! whose exact key could be at or before the k-th exact key passes that test
//! (the k rows behind the threshold have keys at most the threshold's), so
//! the kept rows contain the exact top k with all of its ties; they are then
//! ranked by the same `f64` keys as [`super::knn`], which makes the result
//! identical, index by index and bit by bit, to the `f32` search's.
//!
//! The int8 products run 4 times as many multiply-adds per instruction as
//! `f32` FMAs. The screen in the hot loop is one `f32` compare per pair
//! against a per-query threshold lowered by the largest error bound of all
//! rows; a row that passes is checked with its own bound in `f64`.
//!
//! Queries are split into blocks of a fixed size (independent of the thread
//! count); the kept set depends only on the block's scan order, and the
//! result not at all.

use rayon::prelude::*;

use super::{f32_at_most, initial_capacity, pow2_scale, Exact, Metric};
use crate::parallel::Cancel;

/// Queries of one micro-kernel call (accumulators: `ROW_VECS x QUERY_SUB`).
const QUERY_SUB: usize = 6;
/// 16-row groups of one micro-kernel call.
const ROW_VECS: usize = 4;
/// Queries per block (a rayon task): their codes stay in L1/L2 while the
/// rows stream through.
const QUERY_BLOCK: usize = 42 * QUERY_SUB;
/// 16-row groups between two polls of the cancel token.
const TILE_GROUPS: usize = 512;
/// The largest dimension of the screened path (int32 sums cannot overflow).
pub(super) const MAX_D: usize = 4096;
/// Relative inflation of computed bounds (covers their own `f64` rounding).
const REL: f64 = 1.0 / 1_048_576.0;
/// `2^-50`: per-operation slack for `f64` rounding, with room to spare.
const U50: f64 = 1.0 / 1_125_899_906_842_624.0;

/// The environment variable that turns the screened search off (`0`).
pub const SCREEN_ENV: &str = "EMBSPACE_KNN_SCREEN";

/// Whether this CPU runs the screened search (AVX-512 F/BW/VNNI).
pub fn cpu_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether a query-subset search of dimension `d` takes the screened path:
/// the CPU supports it, `d <= MAX_D`, and [`SCREEN_ENV`] is not `0`.
pub fn enabled(d: usize) -> bool {
    let off = std::env::var(SCREEN_ENV).is_ok_and(|v| v.trim() == "0");
    !off && d <= MAX_D && cpu_supported()
}

/// The smallest `f32` that is `>= v` (`v >= 0`).
fn f32_at_least(v: f64) -> f32 {
    let t = v as f32;
    if f64::from(t) >= v {
        t
    } else {
        t.next_up()
    }
}

/// Quantize `v` to `codes` (int8 in `[-127, 127]`, the rest of `codes`
/// zeroed): returns `(scale, |v - scale codes|, |scale codes|)`, the norms
/// computed in `f64` (the caller inflates them). A scale that would be
/// subnormal in `f32` is 0 (codes 0, the residual is `v`).
fn quantize(v: &[f64], codes: &mut [i8]) -> (f32, f64, f64) {
    codes.fill(0);
    let amax = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let s = (amax / 127.0) as f32;
    if !s.is_normal() {
        return (0.0, v.iter().map(|x| x * x).sum::<f64>().sqrt(), 0.0);
    }
    let s64 = f64::from(s);
    let (mut e2, mut t2) = (0.0f64, 0.0f64);
    for (c, &x) in codes.iter_mut().zip(v) {
        let q = (x / s64).round().clamp(-127.0, 127.0);
        *c = q as i8;
        let r = q * s64; // exact: 8 by 24 significant bits
        e2 += (x - r) * (x - r);
        t2 += r * r;
    }
    (s, e2.sqrt(), t2.sqrt())
}

/// The prepared rows: packed int8 codes and per-row scales and bounds.
struct Rows {
    n: usize,
    d: usize,
    /// Dimensions padded to a multiple of 4.
    dp: usize,
    /// `u8` codes (int8 + 128), in 16-row groups: for group `G`, dimension
    /// quad `g` and lane `l`, bytes `G*16*dp + g*64 + 4l .. +4` hold
    /// dimensions `4g..4g+4` of row `16G + l`. Padded rows and dimensions
    /// hold code 0.
    packed: Vec<u8>,
    /// Per row (padded to the groups): scale, `f32` offset (euclidean),
    /// `f64` offset, residual norm and dequantized norm (rounded up).
    scale: Vec<f32>,
    off32: Vec<f32>,
    off64: Vec<f64>,
    err: Vec<f32>,
    tnorm: Vec<f32>,
    /// `max |e_j|`, `max |p~_j|`, `max |c_j|`, `max |p_j|` (inflated).
    emax: f64,
    tmax: f64,
    cmax: f64,
    pmax: f64,
    /// `f64` norms of the original rows (cosine; the exact keys use them).
    norm: Vec<f64>,
    /// Column means (euclidean) and the power-of-two scale (dot, euclidean).
    mean: Vec<f64>,
    g: f64,
    metric: Metric,
}

impl Rows {
    fn groups(&self) -> usize {
        self.scale.len() / 16
    }

    /// The prepared `f64` vector `p_i` of row `i` of `data`.
    fn vector(&self, data: &[f32], i: usize, out: &mut [f64]) {
        let row = &data[i * self.d..(i + 1) * self.d];
        match self.metric {
            Metric::Cosine => {
                let nrm = self.norm[i];
                for (o, &x) in out.iter_mut().zip(row) {
                    *o = if nrm > 0.0 { f64::from(x) / nrm } else { 0.0 };
                }
            }
            Metric::Dot => {
                for (o, &x) in out.iter_mut().zip(row) {
                    *o = f64::from(x) * self.g;
                }
            }
            Metric::Euclidean => {
                for ((o, &x), &m) in out.iter_mut().zip(row).zip(&self.mean) {
                    *o = (f64::from(x) - m) * self.g;
                }
            }
        }
    }
}

fn norm2(r: &[f32]) -> f64 {
    r.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>()
}

fn prepare(data: &[f32], n: usize, d: usize, metric: Metric) -> Rows {
    let row = |i: usize| &data[i * d..(i + 1) * d];
    let dp = d.div_ceil(4) * 4;
    let groups = n.div_ceil(16).div_ceil(ROW_VECS) * ROW_VECS;
    let mut rows = Rows {
        n,
        d,
        dp,
        packed: vec![128u8; groups * 16 * dp],
        scale: vec![0.0; groups * 16],
        off32: vec![0.0; groups * 16],
        off64: vec![0.0; groups * 16],
        err: vec![0.0; groups * 16],
        tnorm: vec![0.0; groups * 16],
        emax: 0.0,
        tmax: 0.0,
        cmax: 0.0,
        pmax: 0.0,
        norm: Vec::new(),
        mean: Vec::new(),
        g: 1.0,
        metric,
    };
    match metric {
        Metric::Cosine => {
            // the same expression as the f32 search: the exact keys are identical
            rows.norm = (0..n)
                .into_par_iter()
                .map(|i| norm2(row(i)).sqrt())
                .collect();
        }
        Metric::Dot => {
            let max = (0..n)
                .into_par_iter()
                .map(|i| norm2(row(i)).sqrt())
                .reduce(|| 0.0, f64::max);
            rows.g = pow2_scale(max);
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
            rows.mean = mean;
            let max = (0..n)
                .into_par_iter()
                .map(|i| {
                    row(i)
                        .iter()
                        .zip(&rows.mean)
                        .map(|(&x, &m)| (f64::from(x) - m).powi(2))
                        .sum::<f64>()
                        .sqrt()
                })
                .reduce(|| 0.0, f64::max);
            // room for the rounding of the centred values: |p| <= 1 after all
            rows.g = pow2_scale(max * (1.0 + REL));
        }
    }
    let mut packed = std::mem::take(&mut rows.packed);
    let mut scale = std::mem::take(&mut rows.scale);
    let mut off32 = std::mem::take(&mut rows.off32);
    let mut off64 = std::mem::take(&mut rows.off64);
    let mut err = std::mem::take(&mut rows.err);
    let mut tnorm = std::mem::take(&mut rows.tnorm);
    let pmax = packed
        .par_chunks_mut(16 * dp)
        .zip(scale.par_chunks_mut(16))
        .zip(off32.par_chunks_mut(16))
        .zip(off64.par_chunks_mut(16))
        .zip(err.par_chunks_mut(16))
        .zip(tnorm.par_chunks_mut(16))
        .enumerate()
        .map(|(gi, (((((pk, sc), o32), o64), er), tn))| {
            let mut v = vec![0f64; d];
            let mut codes = vec![0i8; dp];
            let mut pmax = 0f64;
            for l in 0..16 {
                let i = gi * 16 + l;
                if i >= n {
                    break;
                }
                rows.vector(data, i, &mut v);
                let (s, e, t) = quantize(&v, &mut codes);
                let p2: f64 = v.iter().map(|x| x * x).sum();
                pmax = pmax.max(p2.sqrt());
                sc[l] = s;
                er[l] = f32_at_least(e * (1.0 + REL));
                tn[l] = f32_at_least(t * (1.0 + REL));
                if metric == Metric::Euclidean {
                    o64[l] = -p2;
                    o32[l] = -p2 as f32;
                }
                for (q, quad) in codes.chunks_exact(4).enumerate() {
                    for (b, &c) in quad.iter().enumerate() {
                        pk[q * 64 + 4 * l + b] = (c as u8) ^ 0x80;
                    }
                }
            }
            pmax
        })
        .reduce(|| 0.0, f64::max);
    rows.emax = err.iter().fold(0.0f64, |m, &x| m.max(f64::from(x)));
    rows.tmax = tnorm.iter().fold(0.0f64, |m, &x| m.max(f64::from(x)));
    rows.cmax = off64.iter().fold(0.0f64, |m, &x| m.max(x.abs())) * (1.0 + REL);
    rows.pmax = pmax * (1.0 + REL);
    rows.packed = packed;
    rows.scale = scale;
    rows.off32 = off32;
    rows.off64 = off64;
    rows.err = err;
    rows.tnorm = tnorm;
    rows
}

/// A query's codes, scale and bounds.
#[derive(Clone)]
struct Query {
    /// Row index (`usize::MAX` for a padding slot).
    row: usize,
    sq: f64,
    /// `|v_q|`, `|e_q|` (inflated).
    vn: f64,
    eq: f64,
    /// The `f64` rounding slack of one key, in score units.
    eta: f64,
    /// The largest error bound of this query against any row, plus slack.
    emax: f64,
    /// The `f32` rounding slack of the hot-loop screen value.
    eps_v: f64,
    /// No useful hot-loop threshold (zero or tiny scale): every row is checked in f64.
    exhaustive: bool,
}

impl Query {
    fn padding() -> Self {
        Self {
            row: usize::MAX,
            sq: 0.0,
            vn: 0.0,
            eq: 0.0,
            eta: 0.0,
            emax: 0.0,
            eps_v: 0.0,
            exhaustive: false,
        }
    }

    /// The hot-loop threshold on `scale_j I + c_j / s_q` for the `f64`
    /// threshold `thr` on `up`: every pair with `up >= thr` passes it.
    fn hot(&self, thr: f64) -> f32 {
        if self.row == usize::MAX {
            return f32::INFINITY;
        }
        if self.exhaustive || thr == f64::NEG_INFINITY {
            return f32::NEG_INFINITY;
        }
        let a = (thr - self.emax - 2.0 * self.eta) / self.sq;
        let t = a - a.abs() * U50 - self.eps_v;
        if t > f64::from(f32::MAX) {
            f32::MAX
        } else if t < -f64::from(f32::MAX) {
            f32::NEG_INFINITY
        } else {
            f32_at_most(t)
        }
    }
}

/// The kept pairs of one query: `(low, up, row)`.
struct Kept {
    buf: Vec<(f64, f64, u32)>,
    /// The k-th largest `low` seen (`-inf` until k are known).
    thr: f64,
    cap: usize,
    k: usize,
}

impl Kept {
    fn new(k: usize) -> Self {
        let cap = initial_capacity(k);
        Self {
            buf: Vec::with_capacity(cap),
            thr: f64::NEG_INFINITY,
            cap,
            k,
        }
    }

    /// Offer a pair; true when the threshold rose.
    #[inline]
    fn push(&mut self, low: f64, up: f64, j: u32) -> bool {
        if up < self.thr {
            return false;
        }
        self.buf.push((low, up, j));
        self.buf.len() >= self.cap && self.compact()
    }

    /// Raise the threshold to the k-th largest `low`, drop the pairs whose
    /// `up` falls below it; true when it rose.
    fn compact(&mut self) -> bool {
        if self.buf.len() < self.k {
            return false;
        }
        let k = self.k;
        let (_, kth, _) = self
            .buf
            .select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
        let rose = kth.0 > self.thr;
        if rose {
            self.thr = kth.0;
        }
        let t = self.thr;
        self.buf.retain(|c| c.1 >= t);
        if self.buf.len() * 2 > self.cap {
            self.cap *= 2;
        }
        rose
    }
}

/// Exact k-NN of `queries` by screening (see the module docs); the same
/// result as [`super::run`] for the same queries. `None` when cancelled.
pub(super) fn run(
    data: &[f32],
    n: usize,
    d: usize,
    queries: &[usize],
    k: usize,
    metric: Metric,
    cancel: &Cancel,
) -> Option<(Vec<f32>, Vec<i64>)> {
    run_counted(data, n, d, queries, k, metric, cancel).map(|(dist, idx, _)| (dist, idx))
}

/// [`run`], with the number of rows each query re-ranked exactly (its kept
/// set at the end: at least `k`).
#[allow(clippy::type_complexity)]
pub(super) fn run_counted(
    data: &[f32],
    n: usize,
    d: usize,
    queries: &[usize],
    k: usize,
    metric: Metric,
    cancel: &Cancel,
) -> Option<(Vec<f32>, Vec<i64>, Vec<u64>)> {
    let nq = queries.len();
    let mut dist = vec![0f32; nq * k];
    let mut idx = vec![0i64; nq * k];
    let mut counts = vec![0u64; nq];
    if nq == 0 {
        return Some((dist, idx, counts));
    }
    let rows = prepare(data, n, d, metric);
    if cancel.is_cancelled() {
        return None;
    }
    let exact = Exact {
        data,
        d,
        metric,
        norm: &rows.norm,
    };
    dist.par_chunks_mut(QUERY_BLOCK * k)
        .zip(idx.par_chunks_mut(QUERY_BLOCK * k))
        .zip(counts.par_chunks_mut(QUERY_BLOCK))
        .zip(queries.par_chunks(QUERY_BLOCK))
        .for_each(|(((dist, idx), counts), block)| {
            if !cancel.is_cancelled() {
                process_block(&rows, &exact, data, k, cancel, block, dist, idx, counts);
            }
        });
    (!cancel.is_cancelled()).then_some((dist, idx, counts))
}

/// The codes and bounds of the queries of one block (padded to `QUERY_SUB`).
fn prepare_queries(rows: &Rows, data: &[f32], block: &[usize]) -> (Vec<Query>, Vec<i8>, Vec<i32>) {
    let (d, dp) = (rows.d, rows.dp);
    let slots = block.len().div_ceil(QUERY_SUB) * QUERY_SUB;
    let mut info = vec![Query::padding(); slots];
    let mut codes = vec![0i8; slots * dp];
    let mut init = vec![0i32; slots];
    let mut v = vec![0f64; d];
    for (t, &q) in block.iter().enumerate() {
        rows.vector(data, q, &mut v);
        if rows.metric == Metric::Euclidean {
            for x in &mut v {
                *x *= 2.0;
            }
        }
        let c = &mut codes[t * dp..(t + 1) * dp];
        let (s, e, tn) = quantize(&v, c);
        let vn = v.iter().map(|x| x * x).sum::<f64>().sqrt() * (1.0 + REL);
        let eq = e * (1.0 + REL);
        let tq = tn * (1.0 + REL);
        init[t] = -128 * c.iter().map(|&x| i32::from(x)).sum::<i32>();
        let sq = f64::from(s);
        // |s(q, j)| and the key's size, in score units
        let size = match rows.metric {
            Metric::Cosine => 1.0,
            Metric::Dot => vn * rows.pmax,
            Metric::Euclidean => (vn / 2.0 + rows.pmax).powi(2),
        };
        let eta = (d as f64 + 16.0) * U50 * size + f64::MIN_POSITIVE;
        let emax = (vn * rows.emax + eq * rows.tmax) * (1.0 + REL)
            + U50 * (vn * rows.pmax + rows.cmax + tq * rows.tmax);
        let exhaustive = sq.is_nan() || sq < 2f64.powi(-100);
        let vmax = if exhaustive {
            0.0
        } else {
            (tq * rows.tmax + rows.cmax) / sq
        };
        info[t] = Query {
            row: q,
            sq,
            vn,
            eq,
            eta,
            emax,
            eps_v: vmax / 1_048_576.0,
            exhaustive,
        };
    }
    (info, codes, init)
}

/// The neighbors of the queries `block`; stops (leaving `dist` and `idx`
/// unspecified) as soon as `cancel` is raised.
#[allow(clippy::too_many_arguments)]
fn process_block(
    rows: &Rows,
    exact: &Exact<'_>,
    data: &[f32],
    k: usize,
    cancel: &Cancel,
    block: &[usize],
    dist: &mut [f32],
    idx: &mut [i64],
    counts: &mut [u64],
) {
    let (info, codes, init) = prepare_queries(rows, data, block);
    let slots = info.len();
    let mut kept: Vec<Kept> = (0..slots).map(|_| Kept::new(k)).collect();
    let mut hot: Vec<f32> = info.iter().map(|q| q.hot(f64::NEG_INFINITY)).collect();
    let inv: Vec<f32> = info
        .iter()
        .map(|q| {
            if q.exhaustive || q.row == usize::MAX {
                0.0
            } else {
                (1.0 / q.sq) as f32
            }
        })
        .collect();
    let euclid = rows.metric == Metric::Euclidean;
    let groups = rows.groups();
    let gstride = 16 * rows.dp;
    let mut acc = [[0i32; 16]; ROW_VECS * QUERY_SUB];
    let mut masks = [0u16; ROW_VECS * QUERY_SUB];
    let mut g0 = 0;
    while g0 < groups {
        if cancel.is_cancelled() {
            return;
        }
        let g1 = (g0 + TILE_GROUPS).min(groups);
        for gr in (g0..g1).step_by(ROW_VECS) {
            for s0 in (0..slots).step_by(QUERY_SUB) {
                // SAFETY: the CPU has AVX-512 F/BW/VNNI (`enabled`); the
                // pointers cover ROW_VECS groups of rows (groups is a
                // multiple of ROW_VECS), QUERY_SUB query slots and their
                // scales, offsets and thresholds.
                let any = unsafe {
                    let args = Kernel {
                        data: rows.packed.as_ptr().add(gr * gstride),
                        gstride,
                        quads: rows.dp / 4,
                        codes: codes.as_ptr().add(s0 * rows.dp),
                        qstride: rows.dp,
                        init: init.as_ptr().add(s0),
                        scale: rows.scale.as_ptr().add(gr * 16),
                        off: rows.off32.as_ptr().add(gr * 16),
                        inv: inv.as_ptr().add(s0),
                        hot: hot.as_ptr().add(s0),
                    };
                    if euclid {
                        kernel::<true>(&args, &mut acc, &mut masks)
                    } else {
                        kernel::<false>(&args, &mut acc, &mut masks)
                    }
                };
                if any != 0 {
                    on_hits(rows, &info, &mut kept, &mut hot, &acc, &masks, any, gr, s0);
                }
            }
        }
        g0 = g1;
    }
    let mut keyed: Vec<(f64, u32)> = Vec::new();
    for (t, (&q, c)) in block.iter().zip(kept.iter_mut()).enumerate() {
        c.compact();
        counts[t] = c.buf.len() as u64;
        keyed.clear();
        keyed.extend(c.buf.iter().map(|&(_, _, j)| (exact.key(q, j as usize), j)));
        keyed.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (r, &(key, j)) in keyed.iter().take(k).enumerate() {
            dist[t * k + r] = exact.reported(key);
            idx[t * k + r] = i64::from(j);
        }
    }
}

/// Check the pairs that passed the hot-loop screen with their own bounds.
#[allow(clippy::too_many_arguments)]
#[cold]
#[inline(never)]
fn on_hits(
    rows: &Rows,
    info: &[Query],
    kept: &mut [Kept],
    hot: &mut [f32],
    acc: &[[i32; 16]; ROW_VECS * QUERY_SUB],
    masks: &[u16; ROW_VECS * QUERY_SUB],
    mut any: u32,
    gr: usize,
    s0: usize,
) {
    while any != 0 {
        let b = any.trailing_zeros() as usize;
        any &= any - 1;
        let (r, t) = (b / QUERY_SUB, b % QUERY_SUB);
        let slot = s0 + t;
        let q = &info[slot];
        let mut lanes = masks[b];
        while lanes != 0 {
            let l = lanes.trailing_zeros() as usize;
            lanes &= lanes - 1;
            let j = (gr + r) * 16 + l;
            if j >= rows.n || j == q.row {
                continue;
            }
            let dotp = q.sq * f64::from(rows.scale[j]) * f64::from(acc[b][l]);
            let c = rows.off64[j];
            let approx = dotp + c;
            let e = (q.vn * f64::from(rows.err[j]) + q.eq * f64::from(rows.tnorm[j])) * (1.0 + REL)
                + U50 * (dotp.abs() + c.abs())
                + q.eta;
            if kept[slot].push(approx - e, approx + e, j as u32) {
                hot[slot] = q.hot(kept[slot].thr);
            }
        }
    }
}

/// Pointers of one micro-kernel call.
struct Kernel {
    data: *const u8,
    gstride: usize,
    quads: usize,
    codes: *const i8,
    qstride: usize,
    init: *const i32,
    scale: *const f32,
    off: *const f32,
    inv: *const f32,
    hot: *const f32,
}

/// The int8 products of `ROW_VECS` 16-row groups with `QUERY_SUB` queries,
/// screened against the queries' hot thresholds: returns a bit per
/// (group, query) accumulator with a passing lane, whose sums go to `acc`
/// and lane masks to `masks`.
///
/// # Safety
/// The CPU has AVX-512 F/BW/VNNI; the pointers of `a` cover what they describe.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[allow(clippy::needless_range_loop)] // register blocking reads best with indices
unsafe fn kernel<const EUCLID: bool>(
    a: &Kernel,
    acc: &mut [[i32; 16]; ROW_VECS * QUERY_SUB],
    masks: &mut [u16; ROW_VECS * QUERY_SUB],
) -> u32 {
    use std::arch::x86_64::*;
    let mut s = [[_mm512_setzero_si512(); QUERY_SUB]; ROW_VECS];
    for row in &mut s {
        for (t, acc) in row.iter_mut().enumerate() {
            *acc = _mm512_set1_epi32(*a.init.add(t));
        }
    }
    for g in 0..a.quads {
        let x: [__m512i; ROW_VECS] = std::array::from_fn(|r| {
            _mm512_loadu_si512(a.data.add(r * a.gstride + g * 64) as *const _)
        });
        for t in 0..QUERY_SUB {
            let b = _mm512_set1_epi32(
                (a.codes.add(t * a.qstride + 4 * g) as *const i32).read_unaligned(),
            );
            for r in 0..ROW_VECS {
                s[r][t] = _mm512_dpbusd_epi32(s[r][t], x[r], b);
            }
        }
    }
    let mut any = 0u32;
    for (r, row) in s.iter().enumerate() {
        let sc = _mm512_loadu_ps(a.scale.add(16 * r));
        let off = if EUCLID {
            _mm512_loadu_ps(a.off.add(16 * r))
        } else {
            _mm512_setzero_ps()
        };
        for (t, &v) in row.iter().enumerate() {
            let f = _mm512_cvtepi32_ps(v);
            let val = if EUCLID {
                _mm512_fmadd_ps(f, sc, _mm512_mul_ps(off, _mm512_set1_ps(*a.inv.add(t))))
            } else {
                _mm512_mul_ps(f, sc)
            };
            let m = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(val, _mm512_set1_ps(*a.hot.add(t)));
            if m != 0 {
                let b = r * QUERY_SUB + t;
                masks[b] = m;
                _mm512_storeu_si512(acc[b].as_mut_ptr() as *mut _, v);
                any |= 1 << b;
            }
        }
    }
    any
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn kernel<const EUCLID: bool>(
    _a: &Kernel,
    _acc: &mut [[i32; 16]; ROW_VECS * QUERY_SUB],
    _masks: &mut [u16; ROW_VECS * QUERY_SUB],
) -> u32 {
    unreachable!("the screened k-NN runs on x86-64 with AVX-512 VNNI only")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::with_threads;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const METRICS: [Metric; 3] = [Metric::Cosine, Metric::Euclidean, Metric::Dot];

    /// The screened and the f32 search of the same queries, and a plain f64
    /// brute force (same keys and tie rule), agree exactly.
    fn agree(data: &[f32], n: usize, d: usize, queries: &[usize], k: usize, metric: Metric) {
        if !cpu_supported() {
            return; // nothing to compare: the f32 search runs
        }
        let cancel = Cancel::new();
        let plain = with_threads(2, || {
            super::super::run(data, n, d, queries, k, metric, &cancel)
        })
        .unwrap()
        .unwrap();
        for threads in [1, 3] {
            let got = with_threads(threads, || run(data, n, d, queries, k, metric, &cancel))
                .unwrap()
                .unwrap();
            assert_eq!(got.1, plain.1, "{metric:?} indices, {threads} threads");
            let same_bits = got
                .0
                .iter()
                .zip(&plain.0)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same_bits, "{metric:?} distances, {threads} threads");
        }
        // brute force on a few queries
        let norm: Vec<f64> = (0..n)
            .map(|i| norm2(&data[i * d..(i + 1) * d]).sqrt())
            .collect();
        let ex = Exact {
            data,
            d,
            metric,
            norm: &norm,
        };
        for (t, &q) in queries.iter().enumerate().take(40) {
            let mut all: Vec<(f64, usize)> = (0..n)
                .filter(|&j| j != q)
                .map(|j| (ex.key(q, j), j))
                .collect();
            all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let want: Vec<i64> = all[..k].iter().map(|&(_, j)| j as i64).collect();
            assert_eq!(
                &plain.1[t * k..(t + 1) * k],
                &want[..],
                "{metric:?} query {q}"
            );
        }
    }

    fn random(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * d)
            .map(|_| rng.random::<f32>() * 2.0 - 1.0)
            .collect()
    }

    fn sample(n: usize, m: usize, seed: u64) -> Vec<usize> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..m).map(|_| rng.random_range(0..n)).collect()
    }

    #[test]
    fn random_data_of_several_shapes() {
        // n not a multiple of 64, d not a multiple of 4, more queries than a block
        for (n, d, m, k) in [
            (1000, 7, 300, 10),
            (777, 64, 50, 13),
            (300, 1, 20, 5),
            (129, 33, 129, 128),
        ] {
            let data = random(n, d, n as u64);
            let qs = sample(n, m, 1);
            for metric in METRICS {
                agree(&data, n, d, &qs, k, metric);
            }
        }
    }

    #[test]
    fn low_rank_clustered_data() {
        // a 3-dimensional latent in 24 dimensions, plus small noise: dense
        // neighborhoods, many candidates inside the bounds
        let (n, d) = (3000, 24);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let w: Vec<f32> = (0..3 * d).map(|_| rng.random::<f32>() - 0.5).collect();
        let mut data = vec![0f32; n * d];
        for i in 0..n {
            let z: [f32; 3] = std::array::from_fn(|_| rng.random::<f32>() - 0.5);
            for c in 0..d {
                let noise = (rng.random::<f32>() - 0.5) * 1e-3;
                data[i * d + c] = z[0] * w[c] + z[1] * w[d + c] + z[2] * w[2 * d + c] + noise;
            }
        }
        let qs = sample(n, 100, 2);
        for metric in METRICS {
            agree(&data, n, d, &qs, 10, metric);
        }
    }

    #[test]
    fn exact_ties_duplicates_and_zero_rows() {
        // small integers: exact ties everywhere; duplicated and zero rows
        let (n, d) = (900, 5);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut data: Vec<f32> = (0..n * d)
            .map(|_| rng.random_range(-2i32..=2) as f32)
            .collect();
        for i in (0..n).step_by(7) {
            data[i * d..(i + 1) * d].fill(0.0);
        }
        let row: Vec<f32> = data[10 * d..11 * d].to_vec();
        for i in (11..n).step_by(13) {
            data[i * d..(i + 1) * d].copy_from_slice(&row);
        }
        let qs: Vec<usize> = [0usize, 7, 10, 11, 24, 899]
            .into_iter()
            .chain(sample(n, 60, 4))
            .collect();
        for metric in METRICS {
            for k in [1, 10, 40] {
                agree(&data, n, d, &qs, k, metric);
            }
        }
        // all rows identical: the k lowest indices win
        let same = vec![0.5f32; 2000 * 3];
        for metric in METRICS {
            agree(&same, 2000, 3, &[0, 5, 1999], 3, metric);
        }
    }

    #[test]
    fn near_ties_within_one_ulp() {
        // copies of a few rows, each perturbed by one unit in the last place
        // in one coordinate: neighbors separated far below the int8 resolution
        let (n, d) = (1200, 16);
        let base = random(8, d, 6);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut data = vec![0f32; n * d];
        for i in 0..n {
            let b = i % 8;
            data[i * d..(i + 1) * d].copy_from_slice(&base[b * d..(b + 1) * d]);
            let c = rng.random_range(0..d);
            let x = &mut data[i * d + c];
            *x = match rng.random_range(0..3) {
                0 => x.next_up(),
                1 => x.next_down(),
                _ => *x,
            };
        }
        let qs = sample(n, 80, 8);
        for metric in METRICS {
            agree(&data, n, d, &qs, 10, metric);
        }
    }

    #[test]
    fn large_small_and_offset_values() {
        let (n, d) = (600, 9);
        let base = random(n, d, 9);
        let qs = sample(n, 40, 10);
        for f in [1e15f32, 1e-15, 1e30] {
            let scaled: Vec<f32> = base.iter().map(|&x| x * f).collect();
            for metric in METRICS {
                if metric == Metric::Dot && f > 1e20 {
                    continue; // distances overflow f32 (an error in both paths)
                }
                agree(&scaled, n, d, &qs, 5, metric);
            }
        }
        let shifted: Vec<f32> = base.iter().map(|&x| x + 1000.0).collect();
        // rows of very different norms (the dot metric prefers the long ones)
        let mut mixed = base.clone();
        for i in 0..n {
            let f = 10f32.powi((i % 13) as i32 - 6);
            for x in &mut mixed[i * d..(i + 1) * d] {
                *x *= f;
            }
        }
        for metric in METRICS {
            agree(&shifted, n, d, &qs, 5, metric);
            agree(&mixed, n, d, &qs, 5, metric);
        }
    }

    #[test]
    fn quantize_bounds_hold() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut codes = vec![0i8; 12];
        for _ in 0..200 {
            let v: Vec<f64> = (0..10).map(|_| rng.random::<f64>() - 0.5).collect();
            let (s, e, t) = quantize(&v, &mut codes);
            let s = f64::from(s);
            let r: Vec<f64> = codes[..10].iter().map(|&c| f64::from(c) * s).collect();
            let e2: f64 = v.iter().zip(&r).map(|(a, b)| (a - b).powi(2)).sum();
            assert!((e2.sqrt() - e).abs() <= 1e-12 && e <= s * (10f64).sqrt() / 2.0 * 1.0001);
            assert!((r.iter().map(|x| x * x).sum::<f64>().sqrt() - t).abs() <= 1e-12);
            assert_eq!(&codes[10..], &[0, 0]);
        }
        let (s, e, _) = quantize(&[0.0, 0.0], &mut codes);
        assert_eq!((s, e), (0.0, 0.0));
        let (s, e, _) = quantize(&[1e-45, 0.0], &mut codes);
        assert_eq!(s, 0.0);
        assert!(e > 0.0);
    }

    #[test]
    fn the_env_variable_turns_it_off() {
        // read at every call; the variable is only set in this test
        if cpu_supported() {
            assert!(enabled(64));
            assert!(!enabled(MAX_D + 1));
        }
        std::env::set_var(SCREEN_ENV, "0");
        let off = enabled(64);
        std::env::remove_var(SCREEN_ENV);
        assert!(!off);
    }
}
