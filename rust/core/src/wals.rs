//! Weighted alternating least squares with TensorFlow `WALSModel` semantics.
//!
//! Ratings `A` (n_rows x n_cols, observed set `O`), factors `U` (n_rows x k)
//! and `V` (n_cols x k). The weight of an observed entry is `w0 + R_i C_j`,
//! of an unobserved one `w0`. The loss is
//!
//! ```text
//! sum_{(i,j) in O} (w0 + R_i C_j) (A_ij - u_i . v_j)^2
//!   + w0 sum_{(i,j) not in O} (u_i . v_j)^2 + lambda (|U|^2 + |V|^2)
//! ```
//!
//! and a half-sweep minimises it exactly over one factor with the other
//! fixed: for each row `i`, with `G = V^T V` computed once,
//!
//! ```text
//! (w0 G + sum_{j in O_i} R_i C_j v_j v_j^T + lambda_i I) u_i = sum_{j in O_i} (w0 + R_i C_j) A_ij v_j
//! ```
//!
//! The column half-sweep is the same call on the transposed ratings with the
//! roles of the factors and of the weights swapped. `lambda_i` is `lambda`,
//! or `lambda * |O_i|` with [`RegScaling::Count`] (the Spark / Rendle style).
//!
//! Storage is `f32`. Each row's normal matrix is accumulated by a blocked
//! kernel in `f32` over blocks of at most a few thousand entries, and the
//! block sums are added in `f64`; the system is assembled and solved by
//! Cholesky in `f64`. With `k >= 32` and the same `lambda > 0` for every row,
//! a row with fewer entries than `k` (at most `k - k / 8`) is instead solved in
//! the space of its entries, with the fixed factor whitened once per
//! half-sweep by the part `w0 G + lambda I` all rows share (see [`woodbury`]),
//! when the rows' lengths say that saves more than the whitening costs: the
//! same minimiser, other rounding. The conjugate-gradient solver is
//! preconditioned by that shared part whenever every row shares it: it runs
//! on the fixed factor whitened the same way (see [`Solver::ConjugateGradient`]).
//! Rows are processed in chunks that depend only on the
//! data, and every reduction (the Gramian, the loss) sums per-chunk `f64`
//! partials in chunk order, so results are bit-identical for any number of
//! threads (on a given instruction set, see [`Isa`]).
//!
//! A row with no observed entry gets the zero vector: it minimises `w0 u^T G
//! u + lambda_i |u|^2`, and is its minimum-norm minimiser when that form is
//! singular (`w0 = 0` and `lambda_i = 0`). A non-empty row whose system is
//! singular (only possible with `lambda = 0`) is an [`Error::Numerical`].

mod aligned;
mod kernel;
pub mod phases;
mod row;
mod woodbury;

use rayon::prelude::*;

use aligned::AlignedVec;
pub use kernel::Isa;
use kernel::{padded, PAD};
use row::{Factors, Partial, Scratch, Shared};

use crate::csr::Csr;
use crate::error::{Error, Result};
use crate::parallel::{never_cancelled, with_threads, Cancel};

/// Largest number of factors accepted (the per-thread scratch grows as k^2).
pub const MAX_FACTORS: usize = 1024;

/// A borrowed CSR matrix (scipy layout) of ratings.
///
/// [`CsrView::new`] checks the structure (lengths, monotone `indptr`) in
/// `O(n_rows)`; column indices and values are checked as each row is read
/// (in range, finite). Columns are expected sorted without repeats (as
/// [`Csr`] and `embspace.Ratings` guarantee); a repeated column would count
/// as two observations.
#[derive(Debug, Clone, Copy)]
pub struct CsrView<'a> {
    pub n_rows: usize,
    pub n_cols: usize,
    pub indptr: &'a [i64],
    pub indices: &'a [i32],
    pub data: &'a [f32],
}

impl<'a> CsrView<'a> {
    /// Check the structure and wrap the three arrays.
    pub fn new(
        n_rows: usize,
        n_cols: usize,
        indptr: &'a [i64],
        indices: &'a [i32],
        data: &'a [f32],
    ) -> Result<Self> {
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
        if n_cols > i32::MAX as usize {
            return Err(Error::InvalidParameter(format!(
                "{n_cols} columns exceed the supported maximum {}",
                i32::MAX
            )));
        }
        if indptr[0] != 0 || indptr[n_rows] as u64 != data.len() as u64 {
            return Err(Error::ShapeMismatch(
                "indptr must start at 0 and end at the number of stored values".into(),
            ));
        }
        if let Some(i) = indptr.windows(2).position(|w| w[1] < w[0]) {
            return Err(Error::ShapeMismatch(format!("indptr decreases at row {i}")));
        }
        Ok(CsrView {
            n_rows,
            n_cols,
            indptr,
            indices,
            data,
        })
    }

    /// A view of an owned [`Csr`] (whose invariants already hold).
    pub fn from_csr(m: &'a Csr) -> Self {
        CsrView {
            n_rows: m.n_rows,
            n_cols: m.n_cols,
            indptr: &m.indptr,
            indices: &m.indices,
            data: &m.data,
        }
    }

    /// Number of stored values.
    pub fn nnz(&self) -> usize {
        self.data.len()
    }

    /// Column indices and values of row `i`.
    #[inline]
    pub fn row(&self, i: usize) -> (&'a [i32], &'a [f32]) {
        let (a, b) = (self.indptr[i] as usize, self.indptr[i + 1] as usize);
        (&self.indices[a..b], &self.data[a..b])
    }
}

/// How each row's system is solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Solver {
    /// Form the normal equations and solve them exactly by Cholesky.
    Cholesky,
    /// `steps` iterations of conjugate gradient, warm-started from the
    /// current factor, without forming the normal matrix. When every row
    /// shares `B = w0 G + lambda I` (`lambda > 0`, not scaled by count) the
    /// iteration is preconditioned by `B`: it runs on the fixed factor
    /// whitened once per half-sweep (`y_j = L^-1 v_j`, `B = L L^T`, see
    /// [`woodbury`]), on the system `(I + Y^T W Y) z = L^-1 b` with `z = L^T
    /// u`, so a step costs `2 k |O_i|` (no `G p`) and a row whose observed
    /// part has rank `r` is solved exactly in `r + 1` steps. Otherwise the
    /// plain iteration runs (each step `2 k |O_i| + k^2`). Approximate: in
    /// exact arithmetic each step lowers the loss, but on rows whose normal
    /// equations are ill-conditioned past the reach of the `f32` products
    /// (condition number ~1e7) rounding can raise it (`WALS.fit` warns
    /// then).
    ConjugateGradient { steps: usize },
}

impl Solver {
    /// `"cholesky"` or `"cg"` (with `steps >= 1` iterations).
    pub fn parse(name: &str, steps: usize) -> Result<Self> {
        match name {
            "cholesky" => Ok(Solver::Cholesky),
            "cg" if steps >= 1 => Ok(Solver::ConjugateGradient { steps }),
            "cg" => Err(Error::InvalidParameter(
                "the conjugate-gradient solver needs cg_steps >= 1".into(),
            )),
            other => Err(Error::InvalidParameter(format!(
                "unknown solver {other:?}: expected \"cholesky\" or \"cg\""
            ))),
        }
    }
}

/// How the regularisation of a row depends on its number of ratings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegScaling {
    /// `lambda` for every row (TensorFlow WALS).
    None,
    /// `lambda * |O_i|` (Spark ALS, Rendle): the loss term is
    /// `lambda (sum_i |O_i| |u_i|^2 + sum_j |O_j| |v_j|^2)`.
    Count,
}

impl RegScaling {
    /// `"none"` or `"count"`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "none" => Ok(RegScaling::None),
            "count" => Ok(RegScaling::Count),
            other => Err(Error::InvalidParameter(format!(
                "unknown regularization scaling {other:?}: expected \"none\" or \"count\""
            ))),
        }
    }
}

/// Which loss a half-sweep returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossDetail {
    /// The three terms of [`Loss`], each row's summed over its entries: after
    /// its solve the row's entries are read again for `p_t = u . v_j`.
    Terms,
    /// Only [`Loss::total`]. A row's loss is the quadratic `f(u) = c -
    /// 2 b.u + u^T A u` of its normal equations `A u = b`, with `c = sum_t
    /// W_t a_t^2`. The solve has just formed them, so no pass over the row's
    /// entries follows it:
    /// - solved directly, `u^T A u = |U u|^2` with the Cholesky factor `U`
    ///   of `A`;
    /// - in the space of its entries ([`woodbury`]), `u^T A u = |q|^2 +
    ///   |c|^2` with `q = U_B u` and `c` the solution of the `n x n` system;
    /// - by conjugate gradient on the row kept whole, the steps keep `r = b -
    ///   A x`, so `x^T A x = b.x - r.x`.
    ///
    /// Rows solved without those quantities (conjugate gradient on rows too
    /// long to keep whole, and the starting loss of rows solved in the space
    /// of their entries) sum their entries as with `Terms`. The rounding
    /// differs from `Terms` (whose `p_t` are `f32` dot products): `A` and `b`
    /// are summed in `f32` (and the whitened factor stored in `f32`), and
    /// cancel down to the loss from `c`, so the total is exact to a few
    /// `1e-7` of `c` plus the loss (at most `1.5e-7` measured), where `Terms`
    /// is exact to about `1e-7` of the loss. A row whose loss comes out
    /// below 1/32 of `c + u^T A u` (a model that explains the row almost
    /// exactly, where the difference would be rounding) sums its entries as
    /// with `Terms` too, so a near-exact fit keeps an exact, non-negative
    /// loss.
    Total,
}

impl LossDetail {
    /// `"terms"` or `"total"`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "terms" => Ok(LossDetail::Terms),
            "total" => Ok(LossDetail::Total),
            other => Err(Error::InvalidParameter(format!(
                "unknown loss detail {other:?}: expected \"terms\" or \"total\""
            ))),
        }
    }
}

/// Parameters of one half-sweep.
#[derive(Debug, Clone, Copy)]
pub struct HalfSweepParams<'a> {
    /// Number of factors.
    pub k: usize,
    /// `w0`, the weight of every unobserved entry (>= 0).
    pub unobserved_weight: f64,
    /// `lambda` (>= 0).
    pub regularization: f64,
    /// Weights of the rows being solved (`R` in the row half-sweep, `C` in
    /// the column half-sweep); `None` means all ones.
    pub solved_weights: Option<&'a [f32]>,
    /// Weights of the fixed side (`C` in the row half-sweep).
    pub fixed_weights: Option<&'a [f32]>,
    pub solver: Solver,
    pub reg_scaling: RegScaling,
}

/// Parameters of a loss evaluation (`ratings` by rows, `U` rows, `V` columns).
#[derive(Debug, Clone, Copy)]
pub struct LossParams<'a> {
    pub k: usize,
    pub unobserved_weight: f64,
    pub regularization: f64,
    pub row_weights: Option<&'a [f32]>,
    pub col_weights: Option<&'a [f32]>,
    pub reg_scaling: RegScaling,
}

/// The training loss, by term.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Loss {
    /// `sum_{(i,j) in O} (w0 + R_i C_j) (A_ij - u_i . v_j)^2`.
    pub observed: f64,
    /// `w0 sum_{(i,j) not in O} (u_i . v_j)^2`, computed as
    /// `w0 (tr(U^T U V^T V) - sum_{(i,j) in O} (u_i . v_j)^2)`.
    pub unobserved: f64,
    /// `lambda (|U|^2 + |V|^2)` (count-weighted with [`RegScaling::Count`]).
    pub regularization: f64,
}

impl Loss {
    /// The sum of the three terms.
    pub fn total(&self) -> f64 {
        self.observed + self.unobserved + self.regularization
    }
}

/// Entries per gathered block. For k > 16 the block is 32 KiB, so the
/// register tiles stream it from L1 (at k = 128, a 64 KiB block runs the
/// product about 35% slower); for k <= 16 the product is cheap next to the
/// gather, and a larger block (128 KiB) keeps more rows whole for the loss.
fn block_rows(kp: usize) -> usize {
    if kp == PAD {
        2048
    } else {
        ((1usize << 13) / kp).max(16)
    }
}

fn check_k(k: usize) -> Result<()> {
    if k == 0 || k > MAX_FACTORS {
        return Err(Error::InvalidParameter(format!(
            "the number of factors must be in [1, {MAX_FACTORS}], got {k}"
        )));
    }
    Ok(())
}

fn check_scalar(name: &str, v: f64) -> Result<()> {
    if !v.is_finite() {
        return Err(Error::NonFinite(format!("{name} must be finite, got {v}")));
    }
    if v < 0.0 {
        return Err(Error::InvalidParameter(format!(
            "{name} must be >= 0, got {v}"
        )));
    }
    Ok(())
}

fn check_weights(name: &str, w: Option<&[f32]>, n: usize) -> Result<()> {
    let Some(w) = w else { return Ok(()) };
    if w.len() != n {
        return Err(Error::ShapeMismatch(format!(
            "{name} has {} values for {n} rows",
            w.len()
        )));
    }
    if let Some(p) = w.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite(format!(
            "{name}[{p}] = {} is not finite",
            w[p]
        )));
    }
    if let Some(p) = w.iter().position(|&v| v < 0.0) {
        return Err(Error::InvalidParameter(format!(
            "{name}[{p}] = {} is negative",
            w[p]
        )));
    }
    Ok(())
}

fn check_factor(name: &str, x: &[f32], n: usize, k: usize) -> Result<()> {
    if x.len() != n * k {
        return Err(Error::ShapeMismatch(format!(
            "{name} has {} values, expected {n} x {k} = {}",
            x.len(),
            n * k
        )));
    }
    let bad = x
        .par_chunks(1 << 16)
        .enumerate()
        .filter_map(|(c, xs)| {
            xs.iter()
                .position(|v| !v.is_finite())
                .map(|p| c * (1 << 16) + p)
        })
        .min();
    if let Some(p) = bad {
        return Err(Error::NonFinite(format!(
            "{name} holds a non-finite value at row {}, column {}",
            p / k,
            p % k
        )));
    }
    Ok(())
}

fn resolve_isa(isa: Isa) -> Result<Isa> {
    if isa.available() {
        Ok(isa)
    } else {
        Err(Error::InvalidParameter(format!(
            "this CPU cannot run the {} kernels",
            isa.name()
        )))
    }
}

/// Row boundaries of the work chunks: about 1024 chunks of similar cost
/// (entries x k^2 plus the solve), a function of the data and `k` only.
fn partition(indptr: &[i64], kp: usize) -> Vec<usize> {
    let n = indptr.len() - 1;
    let kp = kp as u64;
    let cost = |i: usize| (indptr[i + 1] - indptr[i]) as u64 * kp * kp / 2 + kp * kp * kp / 6 + 256;
    let total: u64 = (0..n).map(cost).sum();
    let target = (total / 1024).max(1 << 18);
    let mut bounds = vec![0];
    let mut acc = 0u64;
    for i in 0..n {
        acc += cost(i);
        if acc >= target {
            bounds.push(i + 1);
            acc = 0;
        }
    }
    if *bounds.last().expect("starts with 0") != n {
        bounds.push(n);
    }
    bounds
}

/// `X^T X` of `x` (`n x k`) as a `kp x kp` full symmetric `f64` matrix with
/// zero padding: exact products summed in `f64`, over fixed chunks of rows
/// whose partial sums are added in order.
fn gram_padded(isa: Isa, x: &[f32], n: usize, k: usize) -> Vec<f64> {
    let kp = padded(k);
    let rows_per_chunk = n.div_ceil(64).max(1024);
    let chunks: Vec<(usize, usize)> = (0..n)
        .step_by(rows_per_chunk)
        .map(|a| (a, (a + rows_per_chunk).min(n)))
        .collect();
    let partials: Vec<Vec<f64>> = chunks
        .par_iter()
        .map(|&(a, b)| {
            let mut g = vec![0.0f64; kp * kp];
            row::run_gram(isa, x, k, kp, a..b, &mut g);
            g
        })
        .collect();
    let mut g = vec![0.0f64; kp * kp];
    for p in &partials {
        for (d, v) in g.iter_mut().zip(p) {
            *d += v;
        }
    }
    // Keep the upper triangle and mirror it.
    for a in 0..kp {
        for b in 0..a {
            g[a * kp + b] = g[b * kp + a];
        }
    }
    g
}

/// `sum_j m_j |x_j|^2` over the rows of `x`, with `m_j = 1` or `counts[j]`.
fn weighted_sq_norm(x: &[f32], k: usize, counts: Option<&[u32]>) -> f64 {
    const ROWS: usize = 4096;
    let partials: Vec<f64> = x
        .par_chunks(ROWS * k)
        .enumerate()
        .map(|(c, rows)| {
            rows.chunks_exact(k)
                .enumerate()
                .map(|(r, v)| {
                    let m = counts.map_or(1.0, |cnt| cnt[c * ROWS + r] as f64);
                    m * v.iter().map(|&a| a as f64 * a as f64).sum::<f64>()
                })
                .sum::<f64>()
        })
        .collect();
    partials.iter().sum()
}

/// How many stored values each column of `r` has.
fn column_counts(r: &CsrView<'_>) -> Result<Vec<u32>> {
    let mut counts = vec![0u32; r.n_cols];
    for &j in r.indices {
        let slot = counts.get_mut(j as usize).ok_or_else(|| {
            Error::IndexOutOfRange(format!("column index {j} is outside [0, {})", r.n_cols))
        })?;
        *slot += 1;
    }
    Ok(counts)
}

/// Minimise the loss over the rows of `solve_into` (`ratings.n_rows x k`)
/// with `fixed` (`ratings.n_cols x k`) held fixed, in place, and return the
/// loss at the new point. `num_threads = 0` uses every core.
///
/// With [`Solver::ConjugateGradient`] the current content of `solve_into` is
/// the starting point (it must be finite); with [`Solver::Cholesky`] it is
/// ignored. On error the content of `solve_into` is unspecified.
pub fn half_sweep(
    ratings: CsrView<'_>,
    fixed: &[f32],
    solve_into: &mut [f32],
    params: &HalfSweepParams<'_>,
    num_threads: usize,
) -> Result<Loss> {
    half_sweep_with(
        ratings,
        fixed,
        solve_into,
        params,
        num_threads,
        Isa::detect(),
    )
}

/// [`half_sweep`] that also returns the loss at the point it starts from:
/// `(loss before, loss after)`, where "before" is the loss of the current
/// content of `solve_into` (which must be finite, whatever the solver) with
/// `fixed`. It costs little more than the half-sweep alone: each row's loss
/// terms at its old factor are taken from the entries the solve has just
/// gathered, so a fit gets the loss of its starting point without a pass of
/// its own over the ratings.
pub fn half_sweep_from(
    ratings: CsrView<'_>,
    fixed: &[f32],
    solve_into: &mut [f32],
    params: &HalfSweepParams<'_>,
    num_threads: usize,
) -> Result<(Loss, Loss)> {
    never_cancelled(half_sweep_impl(
        ratings,
        fixed,
        solve_into,
        params,
        num_threads,
        Isa::detect(),
        &Cancel::new(),
        true,
        ShortRows::Auto,
        LossDetail::Terms,
    ))
    .map(|(after, before)| (terms(before.expect("asked for")), terms(after)))
}

/// [`half_sweep`] on a chosen instruction set (for tests and benchmarks).
pub fn half_sweep_with(
    ratings: CsrView<'_>,
    fixed: &[f32],
    solve_into: &mut [f32],
    params: &HalfSweepParams<'_>,
    num_threads: usize,
    isa: Isa,
) -> Result<Loss> {
    never_cancelled(half_sweep_impl(
        ratings,
        fixed,
        solve_into,
        params,
        num_threads,
        isa,
        &Cancel::new(),
        false,
        ShortRows::Auto,
        LossDetail::Terms,
    ))
    .map(|(after, _)| terms(after))
}

/// What [`half_sweep_run`] returns besides the new factors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepReturns {
    /// Also the loss at the starting point, as [`half_sweep_from`] does.
    pub start_loss: bool,
    /// How the losses are summed: by term, or only their total.
    pub detail: LossDetail,
}

/// A loss as a [`LossDetail`] asked for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SweepLoss {
    /// [`LossDetail::Terms`].
    Terms(Loss),
    /// [`LossDetail::Total`].
    Total(f64),
}

impl SweepLoss {
    fn of(p: Partial, detail: LossDetail) -> SweepLoss {
        match detail {
            LossDetail::Terms => SweepLoss::Terms(terms(p)),
            LossDetail::Total => SweepLoss::Total(p.total()),
        }
    }
}

/// [`half_sweep`] with what it returns chosen by `returns`, stopped early
/// when `cancel` is raised: the workers poll it before every row, and the
/// call then returns `Ok(None)`, leaving `solve_into` partly updated
/// (unspecified). Otherwise returns `(loss before, loss after)`, "before"
/// (the loss at the content of `solve_into` on entry, see
/// [`half_sweep_from`]) only with `returns.start_loss`, both as
/// `returns.detail` says.
pub fn half_sweep_run(
    ratings: CsrView<'_>,
    fixed: &[f32],
    solve_into: &mut [f32],
    params: &HalfSweepParams<'_>,
    num_threads: usize,
    returns: SweepReturns,
    cancel: &Cancel,
) -> Result<Option<(Option<SweepLoss>, SweepLoss)>> {
    let detail = returns.detail;
    let out = half_sweep_impl(
        ratings,
        fixed,
        solve_into,
        params,
        num_threads,
        Isa::detect(),
        cancel,
        returns.start_loss,
        ShortRows::Auto,
        detail,
    )?;
    Ok(out.map(|(after, before)| {
        (
            before.map(|b| SweepLoss::of(b, detail)),
            SweepLoss::of(after, detail),
        )
    }))
}

/// Which rows a half-sweep with the Cholesky solver solves in the space of
/// their entries ([`woodbury`]), when every row shares `w0 G + lambda I`
/// with `lambda > 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShortRows {
    /// Rows of at most [`woodbury::max_entries`] entries, when that saves
    /// more than whitening the fixed factor costs.
    Auto,
    /// Rows of at most [`woodbury::max_entries`] entries, at any `k` and
    /// whatever the saving (for tests).
    #[cfg_attr(not(test), allow(dead_code))]
    Always,
    /// None (for tests).
    #[cfg_attr(not(test), allow(dead_code))]
    Never,
}

/// The loss after the half-sweep, and with `start_loss` the loss at the
/// starting point (the content of `solve_into` on entry).
type SweepLosses = (Partial, Option<Partial>);

/// The terms of a loss summed with [`LossDetail::Terms`] (where no row adds
/// to `data`).
fn terms(p: Partial) -> Loss {
    debug_assert_eq!(p.data, 0.0, "a loss by terms has no unsplit data term");
    Loss {
        observed: p.observed,
        unobserved: p.unobserved,
        regularization: p.regularization,
    }
}

#[allow(clippy::too_many_arguments)]
fn half_sweep_impl(
    ratings: CsrView<'_>,
    fixed: &[f32],
    solve_into: &mut [f32],
    params: &HalfSweepParams<'_>,
    num_threads: usize,
    isa: Isa,
    cancel: &Cancel,
    start_loss: bool,
    short_rows: ShortRows,
    detail: LossDetail,
) -> Result<Option<SweepLosses>> {
    let isa = resolve_isa(isa)?;
    let k = params.k;
    check_k(k)?;
    check_scalar("unobserved_weight", params.unobserved_weight)?;
    check_scalar("regularization", params.regularization)?;
    if let Solver::ConjugateGradient { steps: 0 } = params.solver {
        return Err(Error::InvalidParameter(
            "the conjugate-gradient solver needs at least one step".into(),
        ));
    }
    let (n_solve, n_fixed) = (ratings.n_rows, ratings.n_cols);
    check_weights("solved_weights", params.solved_weights, n_solve)?;
    check_weights("fixed_weights", params.fixed_weights, n_fixed)?;
    if solve_into.len() != n_solve * k {
        return Err(Error::ShapeMismatch(format!(
            "the factor to solve has {} values, expected {n_solve} x {k} = {}",
            solve_into.len(),
            n_solve * k
        )));
    }
    with_threads(num_threads, || {
        check_factor("the fixed factor", fixed, n_fixed, k)?;
        if start_loss || matches!(params.solver, Solver::ConjugateGradient { .. }) {
            check_factor("the starting factor", solve_into, n_solve, k)?;
        }
        let kp = padded(k);
        let gram = gram_padded(isa, fixed, n_fixed, k);
        let base: Vec<f64> = gram.iter().map(|g| g * params.unobserved_weight).collect();
        let gram32: Vec<f32> = match params.solver {
            Solver::ConjugateGradient { .. } => gram.iter().map(|&g| g as f32).collect(),
            Solver::Cholesky => Vec::new(),
        };
        let sh = Shared {
            ratings,
            fixed,
            k,
            kp,
            w0: params.unobserved_weight,
            lambda: params.regularization,
            solved_weights: params.solved_weights,
            fixed_weights: params.fixed_weights,
            solver: params.solver,
            reg_scaling: params.reg_scaling,
            gram: &gram,
            base: &base,
            gram32: &gram32,
            block_rows: block_rows(kp),
            padded_fixed: None,
            whitened: None,
            cancel,
            detail,
        };
        // Every row shares `B = w0 G + lambda I` when `lambda > 0` does not
        // scale with the row's count (and `B` is then positive definite).
        // With the Cholesky solver, short rows are solved in the space of
        // their entries when that saves more than it costs (with `lambda =
        // 0` the direct solve also tells which rows are singular); the
        // conjugate gradient is preconditioned by `B` whenever it is shared.
        let shared_b = params.reg_scaling == RegScaling::None && params.regularization > 0.0;
        let cg = matches!(params.solver, Solver::ConjugateGradient { .. });
        let max_n = match (params.solver, short_rows) {
            (Solver::ConjugateGradient { .. }, _) | (_, ShortRows::Never) => 0,
            _ if !shared_b => 0,
            (_, ShortRows::Always) => woodbury::max_entries(k),
            (_, ShortRows::Auto) if woodbury::worth_it(ratings.indptr, k, n_fixed) => {
                woodbury::max_entries(k)
            }
            _ => 0,
        };
        let whitened = if max_n > 0 || (cg && shared_b) {
            let wb = woodbury::whiten(
                isa,
                fixed,
                n_fixed,
                k,
                &base,
                params.regularization,
                max_n,
                cancel,
            );
            if cancel.is_cancelled() {
                return Ok(None);
            }
            wb
        } else {
            None
        };
        // the rows the gathers read at k < 16: the whitened ones where the
        // conjugate gradient runs on them
        let padded_rows = if kp == PAD && k < PAD {
            let src = match &whitened {
                Some(wb) if cg => &wb.y[..],
                _ => fixed,
            };
            Some(pad_rows(src, n_fixed, k))
        } else {
            None
        };
        let sh = Shared {
            padded_fixed: padded_rows.as_deref(),
            whitened: whitened.as_ref(),
            ..sh
        };
        let bounds = partition(ratings.indptr, kp);
        let mut slices = Vec::with_capacity(bounds.len() - 1);
        let mut rest: &mut [f32] = solve_into;
        for w in bounds.windows(2) {
            let (head, tail) = rest.split_at_mut((w[1] - w[0]) * k);
            slices.push((w[0]..w[1], head));
            rest = tail;
        }
        let scratch = PerThread::new(kp, sh.block_rows);
        let parts: Vec<Result<(Partial, Partial)>> = slices
            .into_par_iter()
            .map(|(rows, out)| {
                let out = if start_loss {
                    Factors::SolveFrom(out)
                } else {
                    Factors::Solve(out)
                };
                scratch.with(|s| row::run_chunk(isa, &sh, rows, out, s))
            })
            .collect();
        if cancel.is_cancelled() {
            return Ok(None);
        }
        let mut after = Vec::with_capacity(parts.len());
        let mut before = Vec::with_capacity(parts.len());
        for p in parts {
            let (a, b) = p?;
            after.push(Ok(a));
            before.push(Ok(b));
        }
        let counts = match params.reg_scaling {
            RegScaling::None => None,
            RegScaling::Count => Some(column_counts(&ratings)?),
        };
        let fixed_reg = params.regularization * weighted_sq_norm(fixed, k, counts.as_deref());
        let mut loss = sum_partials(after)?;
        loss.regularization += fixed_reg;
        let start = if start_loss {
            let mut b = sum_partials(before)?;
            b.regularization += fixed_reg;
            Some(b)
        } else {
            None
        };
        Ok(Some((loss, start)))
    })?
}

/// `x` (`n x k`, `k < 16`) copied into rows of 16 values, one cache line
/// each, zero padded.
fn pad_rows(x: &[f32], n: usize, k: usize) -> AlignedVec {
    let mut out = AlignedVec::zeroed(n * PAD);
    out.lines_mut()
        .par_chunks_mut(4096)
        .zip(x.par_chunks(4096 * k))
        .for_each(|(dst, src)| {
            for (d, s) in dst.iter_mut().zip(src.chunks_exact(k)) {
                d.0[..k].copy_from_slice(s);
            }
        });
    out
}

/// One scratch space per thread of the current pool, kept for the whole call
/// (a row's scratch grows to the longest row it meets; reallocating it for
/// every rayon job would page-fault it in again each time). Which thread
/// uses which scratch does not affect any result.
struct PerThread {
    slots: Vec<std::sync::Mutex<Scratch>>,
}

impl PerThread {
    fn new(kp: usize, block_rows: usize) -> Self {
        let n = rayon::current_num_threads().max(1);
        PerThread {
            slots: (0..n)
                .map(|_| std::sync::Mutex::new(Scratch::new(kp, block_rows)))
                .collect(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Scratch) -> T) -> T {
        let i = rayon::current_thread_index().unwrap_or(0) % self.slots.len();
        let mut guard = self.slots[i].lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }
}

fn sum_partials(parts: Vec<Result<Partial>>) -> Result<Partial> {
    let mut loss = Partial::default();
    for p in parts {
        loss += p?;
    }
    Ok(loss)
}

/// The training loss of `row_factors` (`ratings.n_rows x k`) and
/// `col_factors` (`ratings.n_cols x k`), with `ratings` by rows.
pub fn loss(
    ratings: CsrView<'_>,
    row_factors: &[f32],
    col_factors: &[f32],
    params: &LossParams<'_>,
    num_threads: usize,
) -> Result<Loss> {
    never_cancelled(loss_cancellable(
        ratings,
        row_factors,
        col_factors,
        params,
        num_threads,
        &Cancel::new(),
    ))
}

/// [`loss`], stopped early (returning `Ok(None)`) when `cancel` is raised;
/// the workers poll it before every row.
pub fn loss_cancellable(
    ratings: CsrView<'_>,
    row_factors: &[f32],
    col_factors: &[f32],
    params: &LossParams<'_>,
    num_threads: usize,
    cancel: &Cancel,
) -> Result<Option<Loss>> {
    let isa = Isa::detect();
    let k = params.k;
    check_k(k)?;
    check_scalar("unobserved_weight", params.unobserved_weight)?;
    check_scalar("regularization", params.regularization)?;
    let (n_rows, n_cols) = (ratings.n_rows, ratings.n_cols);
    check_weights("row_weights", params.row_weights, n_rows)?;
    check_weights("col_weights", params.col_weights, n_cols)?;
    with_threads(num_threads, || {
        check_factor("row_factors", row_factors, n_rows, k)?;
        check_factor("col_factors", col_factors, n_cols, k)?;
        let kp = padded(k);
        let gram = gram_padded(isa, col_factors, n_cols, k);
        let sh = Shared {
            ratings,
            fixed: col_factors,
            k,
            kp,
            w0: params.unobserved_weight,
            lambda: params.regularization,
            solved_weights: params.row_weights,
            fixed_weights: params.col_weights,
            solver: Solver::Cholesky,
            reg_scaling: params.reg_scaling,
            gram: &gram,
            base: &gram,
            gram32: &[],
            block_rows: block_rows(kp),
            padded_fixed: None,
            whitened: None,
            cancel,
            detail: LossDetail::Terms,
        };
        let bounds = partition(ratings.indptr, PAD);
        let parts: Vec<Result<Partial>> = bounds
            .par_windows(2)
            .map_init(
                || Scratch::new(kp, 1),
                |s, w| {
                    let x = &row_factors[w[0] * k..w[1] * k];
                    row::run_chunk(isa, &sh, w[0]..w[1], Factors::Loss(x), s).map(|(p, _)| p)
                },
            )
            .collect();
        if cancel.is_cancelled() {
            return Ok(None);
        }
        let mut loss = sum_partials(parts)?;
        let counts = match params.reg_scaling {
            RegScaling::None => None,
            RegScaling::Count => Some(column_counts(&ratings)?),
        };
        loss.regularization +=
            params.regularization * weighted_sq_norm(col_factors, k, counts.as_deref());
        Ok(Some(terms(loss)))
    })?
}

/// `X^T X` of `x` (`n x k`, row-major) as a full `k x k` row-major matrix,
/// summed in a fixed order (the same for any number of threads).
pub fn gramian(x: &[f32], k: usize, num_threads: usize) -> Result<Vec<f64>> {
    check_k(k)?;
    if !x.len().is_multiple_of(k) {
        return Err(Error::ShapeMismatch(format!(
            "{} values do not form rows of {k}",
            x.len()
        )));
    }
    let n = x.len() / k;
    let isa = Isa::detect();
    with_threads(num_threads, || {
        check_factor("factors", x, n, k)?;
        let kp = padded(k);
        let g = gram_padded(isa, x, n, k);
        let mut out = vec![0.0; k * k];
        for a in 0..k {
            out[a * k..a * k + k].copy_from_slice(&g[a * kp..a * kp + k]);
        }
        Ok(out)
    })?
}

/// Internals exposed for the criterion benchmarks and the examples; not a
/// stable API.
#[doc(hidden)]
pub mod bench {
    use super::kernel::{self, Block, Kernel};
    use super::Isa;
    use crate::csr::{Csr, Duplicates};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A synthetic ratings matrix shaped like MovieLens: each of `n_users`
    /// users has `20 + Pareto(1.8)` ratings (about `20 + mean_extra` on
    /// average, at most `max_count`, which must be well under `n_items`:
    /// the distinct items are drawn by rejection), of items drawn with
    /// Zipf-like popularity `(rank + 30)^-1.2`, in half stars from 0.5 to 5.
    /// Deterministic for a `seed`.
    pub fn synthetic_ratings(
        n_users: usize,
        n_items: usize,
        mean_extra: f64,
        max_count: usize,
        seed: u64,
    ) -> Csr {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let w: Vec<f64> = (0..n_items).map(|r| (r as f64 + 30.0).powf(-1.2)).collect();
        let total: f64 = w.iter().sum();
        let mut acc = 0.0;
        let cdf: Vec<f64> = w
            .iter()
            .map(|x| {
                acc += x / total;
                acc
            })
            .collect();
        let (mut rows, mut cols, mut vals) = (vec![], vec![], vec![]);
        let mut seen = vec![usize::MAX; n_items];
        for u in 0..n_users {
            let x: f64 = rng.random();
            let extra = ((1.0 - x).powf(-1.0 / 1.8) - 1.0) * mean_extra * 0.8;
            let count = (20 + extra as usize).min(max_count);
            let mut got = 0;
            while got < count {
                let j = cdf
                    .partition_point(|&p| p < rng.random::<f64>())
                    .min(n_items - 1);
                if seen[j] == u {
                    continue;
                }
                seen[j] = u;
                rows.push(u as i64);
                cols.push(j as i64);
                vals.push(rng.random_range(1..=10) as f32 * 0.5);
                got += 1;
            }
        }
        Csr::from_coo(n_users, n_items, &rows, &cols, &vals, Duplicates::Error, 0)
            .expect("valid by construction")
    }

    /// `n x k` factors uniform in `+-1/sqrt(k)`, deterministic for a `seed`.
    pub fn random_factors(n: usize, k: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let s = 1.0 / (k as f32).sqrt();
        (0..n * k).map(|_| rng.random_range(-s..s)).collect()
    }

    /// `k` rounded up to the block width.
    pub fn padded(k: usize) -> usize {
        kernel::padded(k)
    }

    /// `out += block^T block` on the upper tile cover (`out` is `kp x kp`),
    /// for a block of `nb` rows of `kp` values (zero padded), with the
    /// kernel of `isa` (AVX-512 or portable).
    pub fn block_gram(isa: Isa, block: &[f32], nb: usize, k: usize, out: &mut [f64]) {
        let kp = kernel::padded(k);
        let blk = Block {
            raw: block,
            wtd: block,
            nb,
            k,
            kp,
            prefetch: kernel::Upcoming::NONE,
        };
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if isa.available() => kernel::Avx512Kernel::syrk(&blk, out, None),
            _ => kernel::PortableKernel::syrk(&blk, out, None),
        }
    }
}

#[cfg(test)]
mod tests;
