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
/// Rows sampled for the principal directions.
const SAMPLE_ROWS: usize = 20_000;
/// The largest dimension whose principal directions are computed (Jacobi).
const MAX_PROJECT_D: usize = 256;
/// The energy left outside the screened principal directions, at most (a
/// fraction of the total): the residual bound `|u_q| |r_j|` is then about
/// this fraction of the scores' scale, like the int8 error.
const TAIL: f64 = 0.01;

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
    enabled_with(std::env::var(SCREEN_ENV).ok().as_deref(), d)
}

/// [`enabled`] for the value `var` of [`SCREEN_ENV`].
fn enabled_with(var: Option<&str>, d: usize) -> bool {
    let off = var.is_some_and(|v| v.trim() == "0");
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
    let inv = 1.0 / s64; // any codes are valid: the residual is computed from them
    let (mut e2, mut t2) = (0.0f64, 0.0f64);
    for (c, &x) in codes.iter_mut().zip(v) {
        let q = (x * inv).round().clamp(-127.0, 127.0);
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
    /// Screened dimensions (`r`) padded to a multiple of 4.
    dp: usize,
    /// `u8` codes (int8 + 128) of `a_j = W p_j` (`p_j` without a basis), in
    /// 16-row groups: for group `G`, dimension quad `g` and lane `l`, bytes
    /// `G*16*dp + g*64 + 4l .. +4` hold dimensions `4g..4g+4` of row `16G + l`. Padded rows and dimensions
    /// hold code 0.
    packed: Vec<u8>,
    /// Per row (padded to the groups): scale, `f32` offset (euclidean),
    /// `f64` offset, and the bounds `[|e_j|, |a~_j|, rho_j, sigma_j]`
    /// (rounded up): quantization residual, dequantized norm, `|W r_j|` and
    /// `|r_j|` for the projection residual `r_j = p_j - W^T a_j`.
    scale: Vec<f32>,
    off32: Vec<f32>,
    off64: Vec<f64>,
    bounds: Vec<[f32; 4]>,
    /// The maxima of `bounds` over the rows, `max |c_j|`, `max |p_j|` (inflated).
    bmax: [f64; 4],
    cmax: f64,
    pmax: f64,
    /// Screened dimensions `r` and the basis `W` (`r x d`, rows of unit
    /// norm; empty when the screen uses the vectors themselves, `r = d`),
    /// and `gamma >= |I - W W^T|_2`.
    r: usize,
    basis: Vec<f64>,
    /// `W^T` (`d x r`).
    basis_t: Vec<f64>,
    gamma: f64,
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

impl Rows {
    /// `a = W v` (the first `r` values of `a`), with bounds `(sigma, rho)`:
    /// `sigma >= |v - W^T a|` and `rho >= |W (v - W^T a)|`, exact reals for
    /// the computed `a`. Without a basis `a = v` and both are 0.
    fn project(&self, v: &[f64], a: &mut [f64], res: &mut [f64]) -> (f64, f64) {
        let (d, r) = (self.d, self.r);
        if self.basis.is_empty() {
            a[..d].copy_from_slice(v);
            return (0.0, 0.0);
        }
        // a = W v, accumulated over the columns of W (vectorizes across a)
        let a = &mut a[..r];
        a.fill(0.0);
        for (&x, wt) in v.iter().zip(self.basis_t.chunks_exact(r)) {
            for (ai, &w) in a.iter_mut().zip(wt) {
                *ai += w * x;
            }
        }
        res.copy_from_slice(v);
        for (&ai, w) in a.iter().zip(self.basis.chunks_exact(d)) {
            for (x, &wk) in res.iter_mut().zip(w) {
                *x -= ai * wk;
            }
        }
        let vn = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let a1: f64 = a.iter().map(|x| x.abs()).sum();
        let an = a.iter().map(|x| x * x).sum::<f64>().sqrt();
        let slack = (d + r + 16) as f64 * U50 * (vn + a1);
        let sigma = res.iter().map(|x| x * x).sum::<f64>().sqrt() * (1.0 + REL) + slack;
        let rho =
            (self.gamma * an + (r as f64).sqrt() * (d as f64 + 16.0) * U50 * vn) * (1.0 + REL);
        (sigma, rho)
    }
}

/// Eigenvalues and eigenvectors (columns of the second, row-major `d x d`)
/// of the symmetric `d x d` matrix `a`, by cyclic Jacobi rotations.
fn jacobi(mut a: Vec<f64>, d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0f64; d * d];
    for i in 0..d {
        v[i * d + i] = 1.0;
    }
    let total: f64 = a.iter().map(|x| x * x).sum();
    for _sweep in 0..60 {
        let mut off = 0.0;
        for p in 0..d {
            for q in 0..d {
                if p != q {
                    off += a[p * d + q] * a[p * d + q];
                }
            }
        }
        if off <= 1e-28 * total {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (x, y) = (a[k * d + p], a[k * d + q]);
                    a[k * d + p] = c * x - s * y;
                    a[k * d + q] = s * x + c * y;
                }
                for k in 0..d {
                    let (x, y) = (a[p * d + k], a[q * d + k]);
                    a[p * d + k] = c * x - s * y;
                    a[q * d + k] = s * x + c * y;
                }
                for k in 0..d {
                    let (x, y) = (v[k * d + p], v[k * d + q]);
                    v[k * d + p] = c * x - s * y;
                    v[k * d + q] = s * x + c * y;
                }
            }
        }
    }
    ((0..d).map(|i| a[i * d + i]).collect(), v)
}

/// The screened dimensions, basis and `gamma` (see [`Rows`]): the fewest
/// principal directions (a multiple of 4) of the prepared vectors of a
/// sample of rows that leave at most [`TAIL`] of their energy outside; no
/// basis when that takes more than 3/4 of the dimensions. Any basis keeps the
/// search exact; a good one makes the products cheaper at a small cost in
/// the bounds' width.
fn choose_basis(rows: &Rows, data: &[f32]) -> (usize, Vec<f64>, f64) {
    let (n, d) = (rows.n, rows.d);
    let none = (d, Vec::new(), 0.0);
    if !(8..=MAX_PROJECT_D).contains(&d) {
        return none;
    }
    let s = n.min(SAMPLE_ROWS);
    let mut c = vec![0f64; d * d];
    let mut v = vec![0f64; d];
    for t in 0..s {
        rows.vector(data, t * n / s, &mut v);
        for (ci, &x) in c.chunks_exact_mut(d).zip(&v) {
            for (cij, &y) in ci.iter_mut().zip(&v) {
                *cij += x * y;
            }
        }
    }
    let (vals, vecs) = jacobi(c, d);
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&x, &y| vals[y].total_cmp(&vals[x]).then(x.cmp(&y)));
    let total: f64 = vals.iter().map(|x| x.max(0.0)).sum();
    if total.is_nan() || total <= 0.0 {
        return none;
    }
    let mut r = d;
    let mut tail = total;
    for (taken, &i) in order.iter().enumerate() {
        if taken > 0 && taken % 4 == 0 && tail <= TAIL * total {
            r = taken;
            break;
        }
        tail -= vals[i].max(0.0);
    }
    if 4 * r > 3 * d {
        return none;
    }
    let mut basis = vec![0f64; r * d];
    for (w, &i) in basis.chunks_exact_mut(d).zip(&order) {
        for (k, x) in w.iter_mut().enumerate() {
            *x = vecs[k * d + i];
        }
        let nrm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
        for x in w.iter_mut() {
            *x /= nrm;
        }
    }
    // |I - W W^T|_2 <= its Frobenius norm, plus the rounding of the products
    let mut f2 = 0.0;
    for (i, wi) in basis.chunks_exact(d).enumerate() {
        for (j, wj) in basis.chunks_exact(d).enumerate() {
            let g: f64 = wi.iter().zip(wj).map(|(x, y)| x * y).sum();
            let e = if i == j { 1.0 - g } else { g };
            f2 += e * e;
        }
    }
    let gamma = f2.sqrt() * (1.0 + REL) + (r * r) as f64 * (d as f64 + 16.0) * U50;
    (r, basis, gamma)
}

fn norm2(r: &[f32]) -> f64 {
    r.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>()
}

fn prepare(data: &[f32], n: usize, d: usize, metric: Metric) -> Rows {
    let row = |i: usize| &data[i * d..(i + 1) * d];
    let groups = n.div_ceil(16).div_ceil(ROW_VECS) * ROW_VECS;
    let mut rows = Rows {
        n,
        d,
        dp: 0,
        packed: Vec::new(),
        scale: vec![0.0; groups * 16],
        off32: vec![0.0; groups * 16],
        off64: vec![0.0; groups * 16],
        bounds: vec![[0.0; 4]; groups * 16],
        bmax: [0.0; 4],
        cmax: 0.0,
        pmax: 0.0,
        r: d,
        basis: Vec::new(),
        basis_t: Vec::new(),
        gamma: 0.0,
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
    let (r, basis, gamma) = choose_basis(&rows, data);
    if !basis.is_empty() {
        rows.basis_t = (0..d * r).map(|t| basis[(t % r) * d + t / r]).collect();
    }
    (rows.r, rows.basis, rows.gamma) = (r, basis, gamma);
    let dp = r.div_ceil(4) * 4;
    rows.dp = dp;
    let mut packed = vec![128u8; groups * 16 * dp];
    let mut scale = std::mem::take(&mut rows.scale);
    let mut off32 = std::mem::take(&mut rows.off32);
    let mut off64 = std::mem::take(&mut rows.off64);
    let mut bounds = std::mem::take(&mut rows.bounds);
    let pmax = packed
        .par_chunks_mut(16 * dp)
        .zip(scale.par_chunks_mut(16))
        .zip(off32.par_chunks_mut(16))
        .zip(off64.par_chunks_mut(16))
        .zip(bounds.par_chunks_mut(16))
        .enumerate()
        .map(|(gi, ((((pk, sc), o32), o64), bd))| {
            let mut v = vec![0f64; d];
            let mut a = vec![0f64; d];
            let mut res = vec![0f64; d];
            let mut codes = vec![0i8; dp];
            let mut pmax = 0f64;
            for l in 0..16 {
                let i = gi * 16 + l;
                if i >= n {
                    break;
                }
                rows.vector(data, i, &mut v);
                let (sigma, rho) = rows.project(&v, &mut a, &mut res);
                let (s, e, t) = quantize(&a[..r], &mut codes);
                let p2: f64 = v.iter().map(|x| x * x).sum();
                pmax = pmax.max(p2.sqrt());
                sc[l] = s;
                bd[l] = [
                    f32_at_least(e * (1.0 + REL)),
                    f32_at_least(t * (1.0 + REL)),
                    f32_at_least(rho),
                    f32_at_least(sigma),
                ];
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
    for b in &bounds {
        for (m, &x) in rows.bmax.iter_mut().zip(b) {
            *m = m.max(f64::from(x));
        }
    }
    rows.cmax = off64.iter().fold(0.0f64, |m, &x| m.max(x.abs())) * (1.0 + REL);
    rows.pmax = pmax * (1.0 + REL);
    rows.packed = packed;
    rows.scale = scale;
    rows.off32 = off32;
    rows.off64 = off64;
    rows.bounds = bounds;
    rows
}

/// A query's codes, scale and bounds.
#[derive(Clone)]
struct Query {
    /// Row index (`usize::MAX` for a padding slot).
    row: usize,
    sq: f64,
    /// `|b_q|` (`b_q = W v_q`, or `v_q` without a basis), `|e_q|` (its
    /// quantization residual), `|u_q| = |v_q - W^T b_q|` (inflated).
    vn: f64,
    eq: f64,
    un: f64,
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
            un: 0.0,
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
    let mut b = vec![0f64; d];
    let mut res = vec![0f64; d];
    let r = rows.r;
    for (t, &q) in block.iter().enumerate() {
        rows.vector(data, q, &mut v);
        if rows.metric == Metric::Euclidean {
            for x in &mut v {
                *x *= 2.0;
            }
        }
        let (un, _) = rows.project(&v, &mut b, &mut res);
        let c = &mut codes[t * dp..(t + 1) * dp];
        let (s, e, tn) = quantize(&b[..r], c);
        let full = v.iter().map(|x| x * x).sum::<f64>().sqrt() * (1.0 + REL);
        let vn = b[..r].iter().map(|x| x * x).sum::<f64>().sqrt() * (1.0 + REL);
        let eq = e * (1.0 + REL);
        let tq = tn * (1.0 + REL);
        init[t] = -128 * c.iter().map(|&x| i32::from(x)).sum::<i32>();
        let sq = f64::from(s);
        // |s(q, j)| and the key's size, in score units
        let size = match rows.metric {
            Metric::Cosine => 1.0,
            Metric::Dot => full * rows.pmax,
            Metric::Euclidean => (full / 2.0 + rows.pmax).powi(2),
        };
        // the rounding of b = W v, against any row (|a_j| <= |p_j| <= pmax)
        let delta = if rows.basis.is_empty() {
            0.0
        } else {
            (r as f64).sqrt() * (d as f64 + 16.0) * U50 * full * rows.pmax * 1.5
        };
        let eta = (d as f64 + 16.0) * U50 * size + delta + f64::MIN_POSITIVE;
        let [em, tm, rm, sm] = rows.bmax;
        let emax = (vn * em + eq * tm + vn * rm + un * sm) * (1.0 + REL)
            + U50 * (full * rows.pmax + rows.cmax + tq * tm);
        let exhaustive = sq.is_nan() || sq < 2f64.powi(-100);
        let vmax = if exhaustive {
            0.0
        } else {
            (tq * tm + rows.cmax) / sq
        };
        info[t] = Query {
            row: q,
            sq,
            vn,
            eq,
            un,
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
            let [ej, tj, rj, sj] = rows.bounds[j].map(f64::from);
            let e = (q.vn * (ej + rj) + q.eq * tj + q.un * sj) * (1.0 + REL)
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
    fn projected_screen_where_the_residuals_decide() {
        // 4 latent directions in 32 dimensions plus noise holding about 0.6%
        // of the energy: the screen uses 4 dimensions, and the neighbors'
        // order depends on the residual dimensions
        let (n, d) = (4000, 32);
        let mut rng = ChaCha8Rng::seed_from_u64(14);
        let w: Vec<f32> = (0..4 * d).map(|_| rng.random::<f32>() - 0.5).collect();
        let mut data = vec![0f32; n * d];
        for i in 0..n {
            let z: [f32; 4] = std::array::from_fn(|_| rng.random::<f32>() - 0.5);
            for c in 0..d {
                let noise = (rng.random::<f32>() - 0.5) * 0.04;
                data[i * d + c] = (0..4).map(|t| z[t] * w[t * d + c]).sum::<f32>() + noise;
            }
        }
        let qs = sample(n, 150, 15);
        for metric in METRICS {
            let rows = prepare(&data, n, d, metric);
            assert_eq!(rows.r, 4, "{metric:?}");
            assert!(
                rows.bmax[3] > 1e-3,
                "{metric:?}: the residuals are not negligible"
            );
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
    fn a_basis_only_where_few_directions_hold_the_energy() {
        let (n, d) = (2000, 24);
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let w: Vec<f32> = (0..3 * d).map(|_| rng.random::<f32>() - 0.5).collect();
        let mut low = vec![0f32; n * d];
        for i in 0..n {
            let z: [f32; 3] = std::array::from_fn(|_| rng.random::<f32>() - 0.5);
            for c in 0..d {
                low[i * d + c] = z[0] * w[c] + z[1] * w[d + c] + z[2] * w[2 * d + c];
            }
        }
        let flat = random(n, d, 13);
        for metric in METRICS {
            let rows = prepare(&low, n, d, metric);
            // euclidean centres the rows: still 3 directions
            assert_eq!((rows.r, rows.dp), (4, 4), "{metric:?}");
            assert!(rows.gamma < 1e-9);
            assert!(rows.bmax[3] < 1e-4, "{metric:?} residual {}", rows.bmax[3]);
            let rows = prepare(&flat, n, d, metric);
            assert_eq!((rows.r, rows.basis.len()), (d, 0), "{metric:?}");
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
        // the rule, without setting the variable (other tests read it)
        assert!(!enabled_with(Some("0"), 64));
        assert!(!enabled_with(Some(" 0 "), 64));
        assert_eq!(enabled_with(None, 64), cpu_supported());
        assert_eq!(enabled_with(Some("1"), 64), cpu_supported());
        assert!(!enabled_with(None, MAX_D + 1));
    }
}
