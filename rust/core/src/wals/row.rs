//! Solving one chunk of rows of a half-sweep, and the per-row loss terms.
//!
//! Everything here is `#[inline(always)]` and generic over a [`Kernel`], and
//! is instantiated by the entry points at the bottom inside functions
//! compiled for the kernel's target features (AVX-512, AVX2 + FMA, or the
//! baseline), so the plain loops vectorise for the instruction set in use.

use std::ops::Range;

use super::kernel::{
    padded, Block, Entries, Gather, Gathered, Isa, Kernel, PortableKernel, Upcoming, PAD,
    PREFETCH_VECTORS,
};
use super::phases::{self, Phase};
use super::woodbury::Whitened;
use super::{CsrView, LossDetail, RegScaling, Solver};
use crate::dense::{dot, dot_f32, mat_vec, mat_vec32, quad_form, reduce, MulAdd};
use crate::error::{Error, Result};
use crate::parallel::Cancel;

/// With zero regularisation, a pivot below this fraction of its diagonal
/// entry means the row's system is numerically singular: the normal matrix is
/// summed in `f32`, so smaller pivots are rounding noise.
pub(crate) const SINGULAR_RTOL: f64 = 64.0 * f32::EPSILON as f64;

/// A row's loss from its normal equations (`c - 2 b.u + u^T A u`, see
/// [`LossDetail::Total`]) is taken when it is at least this fraction of `c +
/// u^T A u`, the size of the `f32`-rounded terms it cancels from: its
/// relative error is then at most about 32 times their rounding (a few
/// `1e-7`). Below, the model explains the row almost exactly, the difference
/// would be rounding (even negative), and the row's entries are summed as
/// with [`LossDetail::Terms`].
const MIN_LOSS_FRACTION: f64 = 1.0 / 32.0;

/// Rows up to this many values (`|O_i| * kp`, 16 MiB of f32) are kept whole in
/// the scratch while they are solved by Cholesky, so the loss pass reads them
/// back in order; longer rows read the fixed factor again.
const WHOLE_ROW_VALUES: usize = 1 << 22;

/// The same for the conjugate-gradient solver (32 MiB of f32), whose steps
/// each read the row again: a row kept whole is read from the scratch, a
/// longer one gathered again from the fixed factor at every step.
const WHOLE_ROW_VALUES_CG: usize = 1 << 23;

/// The largest gathered row (in bytes) the conjugate gradient's passes take
/// as staying in L2 (1 MB a core on the Zen 4 this was measured on, with
/// room for the rest), see [`Kernel::dots_axpys`].
const RESIDENT_BYTES: usize = 256 << 10;

/// How many rows' whitened starting points the conjugate gradient computes at
/// once ([`Kernel::lower_t_mul_rows`]: `U` is read once for them, where one
/// row at a time read it from L2 for each, about 3.6k cycles a row at k =
/// 128).
const START_BATCH: usize = 32;

/// How many of the next row's entries are prefetched while a row is solved
/// with `k <= 16` (the distance the gather itself prefetches ahead: one
/// vector a row).
const NEXT_ROW_PREFETCH: usize = PREFETCH_VECTORS;

/// The end of the block that starts at `start` in a row of `n` entries:
/// `block_rows` entries, or the rest of the row when that is at most 1.5
/// blocks (a short last block would cost a whole pass of folds for a few
/// entries).
#[inline(always)]
fn block_end(start: usize, n: usize, block_rows: usize) -> usize {
    if n - start <= max_block(block_rows) {
        n
    } else {
        start + block_rows
    }
}

/// The largest block [`block_end`] forms.
#[inline(always)]
pub(crate) fn max_block(block_rows: usize) -> usize {
    block_rows + block_rows / 2
}

/// Row-independent data of one half-sweep (or of one loss evaluation).
pub(crate) struct Shared<'a> {
    pub ratings: CsrView<'a>,
    /// `n_fixed x k`.
    pub fixed: &'a [f32],
    pub k: usize,
    pub kp: usize,
    pub w0: f64,
    pub lambda: f64,
    /// Weights of the rows being solved (`R_i` for rows, `C_j` for columns).
    pub solved_weights: Option<&'a [f32]>,
    /// Weights of the fixed side.
    pub fixed_weights: Option<&'a [f32]>,
    pub solver: Solver,
    pub reg_scaling: RegScaling,
    /// `V^T V` of the fixed factor: `kp x kp`, full, zero padding.
    pub gram: &'a [f64],
    /// `w0 * gram`: the start of every row's normal matrix.
    pub base: &'a [f64],
    /// `gram` in `f32` (`kp x kp`), for the products `G p` of the block CG;
    /// empty with the Cholesky solver.
    pub gram32: &'a [f32],
    /// Entries per gathered block.
    pub block_rows: usize,
    /// For k <= 16: the fixed factor (its whitened rows with the whitened
    /// conjugate gradient) copied into rows of 16 values (zero padded,
    /// 64-byte aligned), so each gathered row is one cache line.
    pub padded_fixed: Option<&'a [f32]>,
    /// With the same regularisation `lambda > 0` for every row: the fixed
    /// factor whitened by `B = w0 G + lambda I`. With the Cholesky solver,
    /// rows of at most [`Whitened::max_n`] entries are solved in the space of
    /// their entries with it ([`solve_woodbury`]); the conjugate gradient
    /// runs on it, preconditioned by `B` ([`cg_whitened`]).
    pub whitened: Option<&'a Whitened>,
    /// Polled before every row: once raised, the chunk returns at once (its
    /// partial sums and factors are then meaningless).
    pub cancel: &'a Cancel,
    /// Which loss the rows report: [`LossDetail::Total`] takes each solved
    /// row's loss from its normal equations ([`solved_value`]) where the
    /// solve has them, instead of reading its entries again.
    pub detail: LossDetail,
}

/// Loss terms summed over a chunk of rows (see [`super::Loss`]). Rows whose
/// loss comes from their normal equations ([`LossDetail::Total`]) add their
/// observed and unobserved terms together to `data`; the others add them to
/// `observed` and `unobserved` (so `data` is zero with [`LossDetail::Terms`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Partial {
    pub observed: f64,
    pub unobserved: f64,
    pub data: f64,
    pub regularization: f64,
}

impl Partial {
    /// The sum of all the terms.
    pub fn total(&self) -> f64 {
        self.observed + self.unobserved + self.data + self.regularization
    }
}

impl std::ops::AddAssign for Partial {
    fn add_assign(&mut self, t: Partial) {
        self.observed += t.observed;
        self.unobserved += t.unobserved;
        self.data += t.data;
        self.regularization += t.regularization;
    }
}

/// Per-thread scratch space, allocated once and reused for every row.
pub(crate) struct Scratch {
    raw: Vec<f32>,
    sw: Vec<f32>,
    w: Vec<f32>,
    y: Vec<f32>,
    rhs32: Vec<f32>,
    u32: Vec<f32>,
    /// `X^T q` over one block, in `f32` (the block CG's products).
    q32: Vec<f32>,
    a: Vec<f64>,
    /// The gathered block transposed (`k x padded(n)`), for the
    /// [`Kernel::rows_gram`] of kernels that transpose.
    t: Vec<f32>,
    /// The whitened starting points `U u` of the next [`START_BATCH`] rows of
    /// a chunk (rows `kp` apart), for the conjugate gradient on whitened
    /// rows.
    z0: Vec<f64>,
    /// Solutions in whitened coordinates waiting for `u = U^-1 q` (rows `kp`
    /// apart), and those `u` in `f64` ([`flush`]).
    zd: Vec<f64>,
    xd: Vec<f64>,
    /// The losses of a chunk's rows not yet added, in row order.
    pending: Vec<Pending>,
    min_pivot: Vec<f64>,
    /// Reciprocals of the Cholesky factor's diagonal.
    inv: Vec<f64>,
    rhs: Vec<f64>,
    x: Vec<f64>,
    r: Vec<f64>,
    p: Vec<f64>,
    ap: Vec<f64>,
    /// `sum_t W_t a_t^2` of the row being solved (with [`LossDetail::Total`]).
    c: f64,
    /// The row's loss (with its regularisation) at its starting factor, and
    /// at the solution, where the solve computes them ([`solved_value`]), each
    /// with `c + u^T A u`, the size of the terms it cancels from.
    value_from: (f64, f64),
    value: (f64, f64),
}

impl Scratch {
    /// Room for `n` gathered entries (grows, never shrinks; new padding is
    /// zero, and gathers never write nonzero padding).
    fn reserve(&mut self, n: usize, kp: usize) {
        if self.raw.len() < n * kp {
            self.raw.resize(n * kp, 0.0);
        }
        if self.sw.len() < n {
            self.sw.resize(n, 0.0);
            self.w.resize(n, 0.0);
        }
    }

    pub fn new(kp: usize, block_rows: usize) -> Scratch {
        Scratch {
            raw: vec![0.0; block_rows * kp],
            sw: vec![0.0; block_rows],
            w: vec![0.0; block_rows],
            y: vec![0.0; max_block(block_rows)],
            rhs32: vec![0.0; kp],
            u32: vec![0.0; kp],
            q32: vec![0.0; kp],
            a: vec![0.0; kp * kp],
            t: Vec::new(),
            z0: Vec::new(),
            zd: Vec::new(),
            xd: Vec::new(),
            pending: Vec::new(),
            min_pivot: vec![0.0; kp],
            inv: vec![0.0; kp],
            rhs: vec![0.0; kp],
            x: vec![0.0; kp],
            r: vec![0.0; kp],
            p: vec![0.0; kp],
            ap: vec![0.0; kp],
            c: 0.0,
            value_from: (0.0, 0.0),
            value: (0.0, 0.0),
        }
    }
}

/// The space of the rows of a block kept in the scratch: the fixed factor's
/// (`sqrt(w_t) v_j`), or the whitened one's (`sqrt(w_t) y_j`, `y_j = L^-1
/// v_j`), where a row's prediction `u . v_j` is `(U u) . y_j`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Space {
    Fixed,
    Whitened,
}

/// The factors of a chunk's rows (`rows.len() x k`): solved and written
/// (then their loss terms added), or only read for their loss terms.
pub(crate) enum Factors<'a> {
    Solve(&'a mut [f32]),
    /// As `Solve`, and the loss terms of the rows' old content (the factors
    /// the half-sweep starts from) are summed as well.
    SolveFrom(&'a mut [f32]),
    Loss(&'a [f32]),
}

/// The regularisation of row `i` with `n` observed entries.
#[inline(always)]
fn row_lambda(sh: &Shared<'_>, n: usize) -> f64 {
    match sh.reg_scaling {
        RegScaling::None => sh.lambda,
        RegScaling::Count => sh.lambda * n as f64,
    }
}

/// Check the entries of one row: columns in range, finite values.
#[inline(always)]
fn check_row(sh: &Shared<'_>, row: usize, idx: &[i32], vals: &[f32]) -> Result<()> {
    let n_cols = sh.ratings.n_cols as u32;
    let bad_index = idx.iter().fold(false, |acc, &j| acc | (j as u32 >= n_cols));
    if bad_index {
        let j = idx
            .iter()
            .find(|&&j| j as u32 >= n_cols)
            .copied()
            .unwrap_or(-1);
        return Err(Error::IndexOutOfRange(format!(
            "column index {j} in row {row} is outside [0, {})",
            sh.ratings.n_cols
        )));
    }
    let finite = vals.iter().fold(true, |acc, v| acc & v.is_finite());
    if !finite {
        return Err(Error::NonFinite(format!(
            "row {row} holds a rating that is not finite"
        )));
    }
    Ok(())
}

/// Whether the row with columns `idx` is gathered whole into the scratch
/// (and read back from it by the loss pass).
#[inline(always)]
fn whole(sh: &Shared<'_>, idx: &[i32]) -> bool {
    let limit = match sh.solver {
        Solver::Cholesky => WHOLE_ROW_VALUES,
        Solver::ConjugateGradient { .. } => WHOLE_ROW_VALUES_CG,
    };
    idx.len() * sh.kp <= limit
}

/// How a row was solved, which says where its loss can come from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    /// The `k x k` normal matrix, factored: `s.a` holds `U` (`A = U^T U`)
    /// and `s.rhs` the right-hand side `b`.
    Direct,
    /// In the space of its entries ([`solve_woodbury`]): `s.value` holds the
    /// loss at the solution (with [`LossDetail::Total`]).
    Woodbury,
    /// Conjugate gradient on the row kept whole ([`solve_cg_block`]):
    /// `s.value_from` and `s.value` hold the loss at the start and at the end.
    CgBlock,
    /// Conjugate gradient reading the fixed factor at every step.
    Cg,
}

/// Solve (or evaluate) the rows `rows`; `out` holds their factors
/// (`rows.len() x k`). Returns the loss terms of the rows (at the new
/// factors when solving), and with [`Factors::SolveFrom`] those at the old
/// factors (otherwise zero).
#[inline(always)]
pub(crate) fn chunk<K: Kernel>(
    sh: &Shared<'_>,
    rows: Range<usize>,
    out: Factors<'_>,
    s: &mut Scratch,
) -> Result<(Partial, Partial)> {
    let k = sh.k;
    let mut part = Partial::default();
    let mut before = Partial::default();
    let rows_end = rows.end;
    let (out, from) = match out {
        Factors::Solve(out) => (out, false),
        Factors::SolveFrom(out) => (out, true),
        Factors::Loss(x) => {
            for (local, i) in rows.enumerate() {
                if sh.cancel.is_cancelled() {
                    return Ok((part, before));
                }
                let (idx, vals) = sh.ratings.row(i);
                check_row(sh, i, idx, vals)?;
                let lam = row_lambda(sh, idx.len());
                let t = row_loss::<K>(
                    sh,
                    i,
                    idx,
                    vals,
                    lam,
                    &x[local * k..local * k + k],
                    s,
                    Space::Fixed,
                    false,
                );
                part += t;
            }
            return Ok((part, before));
        }
    };
    // the conjugate gradient on whitened rows starts from z0 = U u
    let white_starts = cg_whitened(sh);
    let n_rows = rows.len();
    // Once a row solved in whitened coordinates waits to be taken back, the
    // losses of it and of the rows after it go into `s.pending` in row
    // order, added to `part` when the batch is taken back ([`flush`]).
    s.pending.clear();
    let mut deferred = 0;
    // a row's error, reported after the rows before it are taken back (one of
    // which may fail first)
    macro_rules! bail {
        ($e:expr) => {{
            let e = $e;
            flush::<K>(sh, s, out, &mut part, deferred)?;
            return Err(e);
        }};
    }
    for (local, i) in rows.enumerate() {
        if sh.cancel.is_cancelled() {
            return Ok((part, before));
        }
        let t = phases::now();
        if let (Some(wb), 0) = (white_starts, local % START_BATCH) {
            let nb = START_BATCH.min(n_rows - local);
            if s.z0.len() < START_BATCH * sh.kp {
                s.z0.resize(START_BATCH * sh.kp, 0.0);
            }
            let starts = &out[local * k..(local + nb) * k];
            K::lower_t_mul_rows(&wb.u_t, k, sh.kp, starts, k, &mut s.z0[..nb * sh.kp]);
        }
        let (idx, vals) = sh.ratings.row(i);
        if let Err(e) = check_row(sh, i, idx, vals) {
            bail!(e);
        }
        let u = &mut out[local * k..local * k + k];
        let lam = row_lambda(sh, idx.len());
        if idx.is_empty() {
            if from {
                before += row_loss::<K>(sh, i, idx, vals, lam, u, s, Space::Fixed, false);
            }
            // The minimiser of w0 u^T G u + lam |u|^2 (and the minimum-norm
            // solution when that quadratic is singular).
            u.fill(0.0);
            continue;
        }
        // the next row's entries, prefetched while this one is solved
        let next = if i + 1 < rows_end {
            sh.ratings.row(i + 1).0
        } else {
            &[]
        };
        let t = phases::lap(Phase::Setup, t);
        let solved = match sh.solver {
            Solver::Cholesky => match sh.whitened {
                Some(wb)
                    if idx.len() <= wb.max_n
                        && solve_woodbury::<K>(sh, wb, i, idx, vals, next, s) =>
                {
                    Ok(Path::Woodbury)
                }
                _ => solve_cholesky::<K>(sh, i, idx, vals, lam, next, s).map(|_| Path::Direct),
            },
            Solver::ConjugateGradient { steps } if whole(sh, idx) => {
                let z0 = (local % START_BATCH) * sh.kp;
                solve_cg_block::<K>(sh, i, idx, vals, lam, steps, u, z0, next, s)
                    .map(|_| Path::CgBlock)
            }
            Solver::ConjugateGradient { steps } => {
                solve_cg::<K>(sh, i, idx, vals, lam, steps, u, s).map(|_| Path::Cg)
            }
        };
        let path = match solved {
            Ok(path) => path,
            Err(e) => bail!(e),
        };
        // the solves count their own phases, except these two
        let t = match path {
            Path::Woodbury => phases::lap(Phase::Woodbury, t),
            Path::Cg => phases::lap(Phase::CgSteps, t),
            Path::Direct | Path::CgBlock => phases::now(),
        };
        // which space the block left in the scratch is in, and the solution
        let space = match path {
            Path::Woodbury => Space::Whitened,
            Path::CgBlock if cg_whitened(sh).is_some() => Space::Whitened,
            _ => Space::Fixed,
        };
        // both solvers keep a row that fits whole in the scratch (and leave
        // the solution in s.x, which the loss terms do not touch)
        let in_block = whole(sh, idx);
        // each loss from the normal equations where the solve left what it
        // takes and it is trusted, else from the row's entries
        // (a match, not a closure the compiler may leave out of line: see
        // `Kernel`)
        if from {
            before += match solved_value::<K>(sh, path, true, lam, u, s) {
                Some(v) => v,
                None => row_loss::<K>(sh, i, idx, vals, lam, u, s, space, in_block),
            };
        }
        if space == Space::Whitened {
            // s.x holds the solution in whitened coordinates, q = U u
            let (value, scale) = s.value;
            if sh.detail == LossDetail::Total && trusted(value, scale) {
                // u = U^-1 q later, with the next rows so taken
                if s.zd.len() < DEFER_BATCH * sh.kp {
                    s.zd.resize(DEFER_BATCH * sh.kp, 0.0);
                    s.xd.resize(DEFER_BATCH * sh.kp, 0.0);
                }
                let at = deferred * sh.kp;
                s.zd[at..at + k].copy_from_slice(&s.x[..k]);
                s.pending.push(Pending::Whitened {
                    local,
                    i,
                    lam,
                    value,
                });
                deferred += 1;
                if deferred == DEFER_BATCH {
                    flush::<K>(sh, s, out, &mut part, deferred)?;
                    deferred = 0;
                }
                phases::lap(Phase::Loss, t);
                continue;
            }
            let wb = sh
                .whitened
                .expect("rows solved whitened have the whitened factor");
            from_whitened::<K>(wb, k, sh.kp, &mut s.x, &mut s.p);
        }
        if let Err(e) = finite_solution(i, &s.x[..k]) {
            bail!(e);
        }
        let u = &mut out[local * k..local * k + k];
        for (d, &v) in u.iter_mut().zip(&s.x[..k]) {
            *d = v as f32;
        }
        let loss = match solved_value::<K>(sh, path, false, lam, u, s) {
            Some(v) => v,
            None => row_loss::<K>(sh, i, idx, vals, lam, u, s, space, in_block),
        };
        if deferred == 0 {
            // nothing waits before it (s.pending is empty)
            part += loss;
        } else {
            s.pending.push(Pending::Done(loss));
            if s.pending.len() >= 4 * DEFER_BATCH {
                flush::<K>(sh, s, out, &mut part, deferred)?;
                deferred = 0;
            }
        }
        phases::lap(Phase::Loss, t);
    }
    let t = phases::now();
    flush::<K>(sh, s, out, &mut part, deferred)?;
    phases::lap(Phase::Loss, t);
    Ok((part, before))
}

/// How many rows solved in whitened coordinates (`q = U u`, by Woodbury or
/// the conjugate gradient on whitened rows) [`chunk`] takes back to `u =
/// U^-1 q` at once ([`Kernel::lower_t_mul_rows`]: `U^-1` read once for them,
/// where one row at a time read it from L2 for each, about 3.4k cycles a row
/// at k = 128).
const DEFER_BATCH: usize = 32;

/// A row's part of a chunk's loss, in row order: its terms, or (solved in
/// whitened coordinates, its solution in [`Scratch::zd`]) what its trusted
/// loss from the normal equations needs once `u` is known.
enum Pending {
    Done(Partial),
    Whitened {
        local: usize,
        i: usize,
        lam: f64,
        value: f64,
    },
}

/// Whether a loss `value` computed from a row's normal equations (cancelling
/// from `c + u^T A u = scale`) is trusted: see [`MIN_LOSS_FRACTION`].
#[inline(always)]
fn trusted(value: f64, scale: f64) -> bool {
    !value.is_nan() && value >= MIN_LOSS_FRACTION * scale
}

/// The error for a solution of row `i` that float32 cannot hold.
#[inline(always)]
fn finite_solution(i: usize, x: &[f64]) -> Result<()> {
    if x.iter()
        .any(|v| !v.is_finite() || v.abs() > f32::MAX as f64)
    {
        return Err(Error::Numerical(format!(
            "the solution for row {i} is not finite in float32 (ratings or weights too large?)"
        )));
    }
    Ok(())
}

/// Take the `deferred` rows of `s.zd` back to `u = U^-1 q` (all at once),
/// store them in `out`, and add every pending row's loss to `part` in row
/// order. The first row (in order) whose solution float32 cannot hold is an
/// error.
#[inline(always)]
fn flush<K: Kernel>(
    sh: &Shared<'_>,
    s: &mut Scratch,
    out: &mut [f32],
    part: &mut Partial,
    deferred: usize,
) -> Result<()> {
    type M<K> = <K as Kernel>::Arith;
    let (k, kp) = (sh.k, sh.kp);
    if deferred > 0 {
        let wb = sh
            .whitened
            .expect("rows solved whitened have the whitened factor");
        K::lower_t_mul_rows(&wb.u_inv_t, k, kp, &s.zd[..deferred * kp], kp, &mut s.xd);
    }
    let mut slot = 0;
    for p in s.pending.drain(..) {
        match p {
            Pending::Done(loss) => *part += loss,
            Pending::Whitened {
                local,
                i,
                lam,
                value,
            } => {
                let x = &s.xd[slot * kp..slot * kp + k];
                slot += 1;
                finite_solution(i, x)?;
                let u = &mut out[local * k..local * k + k];
                for ((d, r), &v) in u.iter_mut().zip(&mut s.r[..k]).zip(x) {
                    *d = v as f32;
                    *r = *d as f64;
                }
                *part += row_value::<M<K>>(value, lam, &s.r[..k]);
            }
        }
    }
    Ok(())
}

/// The fixed factor as the gathers read it: the 16-wide padded copy when
/// there is one (each row one aligned cache line), else the factor itself.
#[inline(always)]
fn gather_source<'a>(sh: &Shared<'a>) -> Gather<'a> {
    match sh.padded_fixed {
        Some(p) => Gather {
            fixed: p,
            k: sh.kp,
            kp: sh.kp,
        },
        None => Gather {
            fixed: sh.fixed,
            k: sh.k,
            kp: sh.kp,
        },
    }
}

/// The whitened factor the conjugate gradient runs on where it is
/// preconditioned by `B = w0 G + lambda I` (see
/// [`super::Solver::ConjugateGradient`]): in the coordinates `z = U u` (`B =
/// U^T U`) a row's normal matrix is `I + Y^T W Y`, with `Y` its entries'
/// whitened rows `y_j = U^-T v_j`, and its right-hand side `U^-T b`.
#[inline(always)]
fn cg_whitened<'a>(sh: &Shared<'a>) -> Option<&'a Whitened> {
    match sh.solver {
        Solver::ConjugateGradient { .. } => sh.whitened,
        Solver::Cholesky => None,
    }
}

/// The rows the conjugate gradient gathers: the whitened factor where it is
/// preconditioned ([`cg_whitened`]; its padded copy at k < 16 is whitened
/// too), else the fixed one.
#[inline(always)]
fn cg_source<'a>(sh: &Shared<'a>) -> Gather<'a> {
    match (sh.padded_fixed, cg_whitened(sh)) {
        (None, Some(wb)) => Gather {
            fixed: &wb.y[..],
            k: sh.k,
            kp: sh.kp,
        },
        _ => gather_source(sh),
    }
}

/// `z = U x` in place (`x` a row's factor, `z` its whitened coordinates),
/// with `tmp` as scratch.
#[inline(always)]
fn to_whitened<K: Kernel>(wb: &Whitened, k: usize, kp: usize, x: &mut [f64], tmp: &mut [f64]) {
    tmp[..k].copy_from_slice(&x[..k]);
    K::lower_t_mul(&wb.u_t, k, kp, tmp, x);
}

/// `x = U^-1 z` in place, the inverse of [`to_whitened`].
#[inline(always)]
fn from_whitened<K: Kernel>(wb: &Whitened, k: usize, kp: usize, z: &mut [f64], tmp: &mut [f64]) {
    tmp[..k].copy_from_slice(&z[..k]);
    K::lower_t_mul(&wb.u_inv_t, k, kp, tmp, z);
}

/// Per entry of a block (columns `bi`, ratings `bv`): `w_t = s_i f_j`, `W_t =
/// w0 + w_t` into `w` (kept for the loss), `sqrt(w_t)` into `sw` (the block
/// holds `sqrt(w_t) v_j`) and `W_t a_t` into `y`. Returns the block's part of
/// `c = sum_t W_t a_t^2` with [`LossDetail::Total`] (else 0).
#[inline(always)]
fn entry_weights(
    sh: &Shared<'_>,
    si: f32,
    bi: &[i32],
    bv: &[f32],
    sw: &mut [f32],
    w: &mut [f32],
    y: &mut [f32],
) -> f64 {
    let w0 = sh.w0 as f32;
    match sh.fixed_weights {
        Some(f) => {
            assert_eq!(f.len(), sh.ratings.n_cols);
            for (d, &j) in sw.iter_mut().zip(bi) {
                // SAFETY: `check_row` verified `j < n_cols = f.len()`.
                *d = si * unsafe { *f.get_unchecked(j as u32 as usize) };
            }
        }
        None => sw.fill(si),
    }
    let per_entry = sw.iter_mut().zip(w.iter_mut()).zip(y.iter_mut());
    for (((sw, w), y), &a) in per_entry.zip(bv) {
        *w = w0 + *sw;
        *y = *w * a;
        *sw = sw.sqrt();
    }
    match sh.detail {
        LossDetail::Total => weighted_squares(w, bv),
        LossDetail::Terms => 0.0,
    }
}

/// Gather the whole row `i` into `s.raw` (`|O_i| x kp`, row `t` is
/// `sqrt(w_t) v_j`), its weights into `s.sw` and `s.w`, and its right-hand
/// side `sum_t W_t a_t v_j` into `s.rhs` (block sums in `f32`, added in
/// `f64`). The row must fit ([`whole`]). Each block's gather prefetches on
/// into the next block, and the last one into `next` (the entries gathered
/// next from `g`, or none).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gather_whole<K: Kernel>(
    sh: &Shared<'_>,
    g: &Gather<'_>,
    i: usize,
    idx: &[i32],
    vals: &[f32],
    next: &[i32],
    s: &mut Scratch,
) {
    let kp = sh.kp;
    let si = sh.solved_weights.map_or(1.0, |w| w[i]);
    s.rhs[..kp].fill(0.0);
    s.reserve(idx.len(), kp);
    s.c = 0.0;
    let mut start = 0;
    while start < idx.len() {
        let end = block_end(start, idx.len(), sh.block_rows);
        let nb = end - start;
        let (bi, bv) = (&idx[start..end], &vals[start..end]);
        s.c += entry_weights(
            sh,
            si,
            bi,
            bv,
            &mut s.sw[start..end],
            &mut s.w[start..end],
            &mut s.y[..nb],
        );
        let e = Entries {
            idx: bi,
            sw: &s.sw[start..end],
            y: &s.y[..nb],
            ahead: if end < idx.len() { &idx[end..] } else { next },
        };
        s.rhs32[..kp].fill(0.0);
        let mut out = Gathered {
            g: &mut s.raw[start * kp..end * kp],
            rhs: &mut s.rhs32,
        };
        K::gather(g, &e, &mut out);
        for (r, &a) in s.rhs[..kp].iter_mut().zip(&s.rhs32[..kp]) {
            *r += a as f64;
        }
        start = end;
    }
}

/// `ap = (w0 G + lam I + X^T X) p` with `X` the gathered row in `raw` (`n x
/// kp`): the Gramian part in `f64`, `X^T (X p)` from `f32` products over
/// blocks of `block_rows` entries, each block's sum added in `f64` (the
/// precision of the Cholesky path's normal matrix). With `whitened`, `X`
/// holds whitened rows and `ap = (I + X^T X) p`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn apply_block<K: Kernel>(
    sh: &Shared<'_>,
    whitened: bool,
    raw: &[f32],
    n: usize,
    lam: f64,
    p: &[f64],
    ap: &mut [f64],
    p32: &mut [f32],
    dots: &mut [f32],
    q32: &mut [f32],
) {
    type M<K> = <K as Kernel>::Arith;
    let (k, kp) = (sh.k, sh.kp);
    for (d, &v) in p32[..k].iter_mut().zip(&p[..k]) {
        *d = v as f32;
    }
    p32[k..kp].fill(0.0);
    let t = phases::now();
    if whitened {
        ap[..k].copy_from_slice(&p[..k]);
    } else {
        // G p in f32 (half the bytes of the f64 Gramian, read once per step)
        mat_vec32::<M<K>>(sh.gram32, k, kp, p32, q32);
        for ((a, &g), &v) in ap[..k].iter_mut().zip(&q32[..k]).zip(&p[..k]) {
            *a = g as f64 * sh.w0 + lam * v;
        }
    }
    let t = phases::lap(Phase::CgGramProducts, t);
    // the gathered row stays in L2 from pass to pass, or streams
    let resident = n * kp * 4 <= RESIDENT_BYTES;
    let mut c0 = 0;
    while c0 < n {
        let c1 = (c0 + sh.block_rows).min(n);
        let y = &mut dots[..c1 - c0];
        K::dots_axpys(&raw[c0 * kp..c1 * kp], c1 - c0, kp, p32, y, q32, resident);
        for (a, &qd) in ap[..k].iter_mut().zip(q32[..kp].iter()) {
            *a += qd as f64;
        }
        c0 = c1;
    }
    phases::lap(Phase::CgBlockPasses, t);
}

/// Warm-started conjugate gradient on the normal equations of row `i`, with
/// the row gathered once into `s.raw` and every product `A p` taken on that
/// contiguous block ([`apply_block`]), preconditioned where
/// [`cg_whitened`] says (the block then holds whitened rows); the solution
/// is left in `s.x[..k]` (on whitened rows in whitened coordinates, `z = U
/// u`: the caller takes `u = U^-1 z`) and the block stays in `s` for the
/// loss pass. It starts from `start`, which on whitened rows is taken as `U
/// start` from `s.z0[z0..z0 + k]` (computed for several rows at once by the
/// caller). The gather prefetches the first of the `next` row's entries.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn solve_cg_block<K: Kernel>(
    sh: &Shared<'_>,
    i: usize,
    idx: &[i32],
    vals: &[f32],
    lam: f64,
    steps: usize,
    start: &[f32],
    z0: usize,
    next: &[i32],
    s: &mut Scratch,
) -> Result<()> {
    type M<K> = <K as Kernel>::Arith;
    let (k, kp) = (sh.k, sh.kp);
    let n = idx.len();
    let wb = cg_whitened(sh);
    let t = phases::now();
    gather_whole::<K>(sh, &cg_source(sh), i, idx, vals, next, s);
    let t = phases::lap(Phase::Gather, t);
    // the block holds sqrt(w_t) v_j: its squared norm is the trace of X^T X
    let floor = curvature_floor(sh, i, n, lam, || {
        s.raw[..n * kp].iter().map(|&g| g as f64 * g as f64).sum()
    })?;
    if wb.is_some() {
        s.x[..k].copy_from_slice(&s.z0[z0..z0 + k]);
    } else {
        for (x, &u) in s.x[..k].iter_mut().zip(start) {
            *x = u as f64;
        }
    }
    let Scratch {
        raw,
        y,
        u32: p32,
        q32,
        x,
        r,
        p,
        ap,
        rhs,
        c,
        value_from,
        value,
        ..
    } = s;
    let white = wb.is_some();
    apply_block::<K>(sh, white, raw, n, lam, x, ap, p32, y, q32);
    let total = sh.detail == LossDetail::Total;
    if total {
        // f(x) = c - 2 b.x + x.(A x) at the start
        let xax = dot::<M<K>>(&x[..k], &ap[..k]);
        *value_from = (*c - 2.0 * dot::<M<K>>(&rhs[..k], &x[..k]) + xax, *c + xax);
    }
    let t = phases::lap(Phase::CgFirstProduct, t);
    // inlined, as all that `chunk` calls (see `Kernel`)
    let ok = cg_iterate::<M<K>>(
        k,
        steps,
        floor,
        rhs,
        x,
        r,
        p,
        ap,
        #[inline(always)]
        |p: &[f64], ap: &mut [f64]| apply_block::<K>(sh, white, raw, n, lam, p, ap, p32, y, q32),
    );
    if total {
        // at the end, with the residual r = b - A x the iteration keeps,
        // x.(A x) = b.x - r.x
        let bx = dot::<M<K>>(&rhs[..k], &x[..k]);
        let xax = bx - dot::<M<K>>(&r[..k], &x[..k]);
        *value = (*c - 2.0 * bx + xax, *c + xax);
    }
    phases::lap(Phase::CgSteps, t);
    ok.then_some(()).ok_or_else(|| singular_cg(i, n))
}

/// With `lam = 0` the normal matrix of row `i` (`n` ratings) may be singular.
/// Returns the curvature floor for [`cg_iterate`]: 0 when `lam > 0` (never
/// singular), else [`SINGULAR_RTOL`] times the mean diagonal of the matrix
/// (`trace_xtx()` is the trace of its observed part `X^T W X`), the CG
/// counterpart of the Cholesky pivot test. A row with fewer ratings than
/// factors and `w0 = 0` is singular outright: an [`Error::Numerical`].
#[inline(always)]
fn curvature_floor(
    sh: &Shared<'_>,
    i: usize,
    n: usize,
    lam: f64,
    trace_xtx: impl FnOnce() -> f64,
) -> Result<f64> {
    if lam > 0.0 {
        return Ok(0.0);
    }
    if sh.w0 == 0.0 && n < sh.k {
        return Err(singular_cg(i, n));
    }
    let kp = sh.kp;
    let trace_g: f64 = (0..sh.k).map(|d| sh.gram[d * kp + d]).sum();
    let trace = sh.w0 * trace_g + trace_xtx();
    Ok(SINGULAR_RTOL * trace / sh.k as f64)
}

/// The error of a singular system met by the conjugate-gradient solver (the
/// same [`Error::Numerical`] the Cholesky solver raises).
fn singular_cg(i: usize, n: usize) -> Error {
    Error::Numerical(format!(
        "the normal equations of row {i} ({n} ratings) are singular (conjugate gradient): \
         use regularization > 0 (or unobserved_weight > 0)"
    ))
}

/// Normal equations by blocked accumulation, then Cholesky; the solution is
/// left in `s.x[..k]`. When the row fits in one block, the block (and the
/// observed weights) stay in `s` for the loss pass.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn solve_cholesky<K: Kernel>(
    sh: &Shared<'_>,
    i: usize,
    idx: &[i32],
    vals: &[f32],
    lam: f64,
    next: &[i32],
    s: &mut Scratch,
) -> Result<()> {
    let (k, kp) = (sh.k, sh.kp);
    let g = gather_source(sh);
    let si = sh.solved_weights.map_or(1.0, |w| w[i]);
    s.rhs[..kp].fill(0.0);
    // Blocks go one after the other when the whole row fits, else all at 0.
    let whole = idx.len() * kp <= WHOLE_ROW_VALUES;
    s.reserve(
        if whole {
            idx.len()
        } else {
            max_block(sh.block_rows)
        },
        kp,
    );
    let mut first = true;
    let mut start = 0;
    s.c = 0.0;
    let mut t = phases::now();
    while start < idx.len() {
        let end = block_end(start, idx.len(), sh.block_rows);
        let nb = end - start;
        let (bi, bv) = (&idx[start..end], &vals[start..end]);
        let at = if whole { start } else { 0 };
        s.c += entry_weights(
            sh,
            si,
            bi,
            bv,
            &mut s.sw[at..at + nb],
            &mut s.w[at..at + nb],
            &mut s.y[..nb],
        );
        // the product prefetches the next gather's rows (below)
        let e = Entries {
            idx: bi,
            sw: &s.sw[at..at + nb],
            y: &s.y[..nb],
            ahead: &[],
        };
        s.rhs32[..kp].fill(0.0);
        let mut out = Gathered {
            g: &mut s.raw[at * kp..(at + nb) * kp],
            rhs: &mut s.rhs32,
        };
        let base = if first { Some(sh.base) } else { None };
        if kp == PAD {
            // One tile covers the matrix: gathered and multiplied in one
            // pass. The next row's first entries are requested after its
            // last block, to arrive while this row is solved.
            K::gather_syrk(&g, &e, &mut out, k, &mut s.a, base);
            if end == idx.len() {
                g.prefetch_rows(&next[..next.len().min(NEXT_ROW_PREFETCH)]);
            }
            t = phases::lap(Phase::Product, t);
        } else {
            K::gather(&g, &e, &mut out);
            t = phases::lap(Phase::Gather, t);
            // The rows of the next gather (this row's next block or the
            // next row), prefetched during the product.
            let (src, upcoming) = if end < idx.len() {
                (
                    sh.fixed,
                    &idx[end..block_end(end, idx.len(), sh.block_rows)],
                )
            } else {
                (row_source(sh, next), &next[..next.len().min(sh.block_rows)])
            };
            let blk = Block {
                raw: &s.raw[at * kp..(at + nb) * kp],
                wtd: &s.raw[at * kp..(at + nb) * kp],
                nb,
                k,
                kp,
                prefetch: Upcoming {
                    fixed: src,
                    k,
                    idx: upcoming,
                },
            };
            K::syrk(&blk, &mut s.a, base);
            t = phases::lap(Phase::Product, t);
        }
        first = false;
        for (r, &a) in s.rhs[..kp].iter_mut().zip(&s.rhs32[..kp]) {
            *r += a as f64;
        }
        start = end;
    }
    for d in 0..k {
        s.a[d * kp + d] += lam;
        s.min_pivot[d] = if lam > 0.0 {
            0.0
        } else {
            SINGULAR_RTOL * s.a[d * kp + d]
        };
    }
    let t = phases::now();
    if K::cholesky(&mut s.a, k, kp, &s.min_pivot).is_err() {
        // The f32 block sums can lose positive definiteness when the row's
        // normal matrix is huge next to lambda: redo this row exactly in f64.
        assemble_exact::<K::Arith>(sh, i, idx, vals, lam, s);
        K::cholesky(&mut s.a, k, kp, &s.min_pivot).map_err(|j| {
            Error::Numerical(format!(
                "the normal equations of row {i} ({} ratings) are singular at pivot {j}: \
                 use regularization > 0 (or unobserved_weight > 0)",
                idx.len()
            ))
        })?;
    }
    let t = phases::lap(Phase::Factor, t);
    for d in 0..k {
        s.inv[d] = 1.0 / s.a[d * kp + d];
    }
    s.x[..kp].copy_from_slice(&s.rhs[..kp]);
    K::solve(&s.a, &s.inv, k, kp, &mut s.x);
    phases::lap(Phase::Solve, t);
    Ok(())
}

/// The factor the gather of a row with columns `idx` reads (for `k > 16`):
/// the whitened one when the row is solved with it, else the fixed one.
#[inline(always)]
fn row_source<'a>(sh: &Shared<'a>, idx: &[i32]) -> &'a [f32] {
    match sh.whitened {
        Some(wb) if !idx.is_empty() && idx.len() <= wb.max_n => &wb.y[..],
        _ => sh.fixed,
    }
}

/// Row `i` (`n = |O_i|` entries, at most [`Whitened::max_n`] and fewer than
/// `k`) solved in the space of its entries (see [`super::woodbury`]): the
/// whitened rows `sqrt(w_t) y_j` gathered whole into `s.raw` with `z = sum_t
/// W_t a_t y_j` (block sums in `f32`, added in `f64`), `I + Y Y^T` (`n x n`,
/// products in `f32` over the depth `k`) factored by Cholesky in `f64`, and
/// `q = Y^T (I + Y Y^T)^-1 g` in `f64` (`g_t = W_t a_t / sqrt(w_t)`, so
/// that `z = Y^T g`), left in `s.x[..k]`: the solution in whitened
/// coordinates, `q = U u` (the caller takes `u = U^-1 q`). The block stays
/// in `s` for the loss pass. Returns `false` when an entry has no weight of
/// its own (`w_t = 0`: its part of `z` is not in the span of `Y^T`) or `I +
/// Y Y^T` fails to factor (only through rounding: its eigenvalues are at
/// least 1), and the caller then solves the row directly.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn solve_woodbury<K: Kernel>(
    sh: &Shared<'_>,
    wb: &Whitened,
    i: usize,
    idx: &[i32],
    vals: &[f32],
    next: &[i32],
    s: &mut Scratch,
) -> bool {
    type M<K> = <K as Kernel>::Arith;
    let (k, kp) = (sh.k, sh.kp);
    let n = idx.len();
    let np = padded(n);
    debug_assert!(n >= 1 && np <= kp);
    let g = Gather {
        fixed: &wb.y[..],
        k,
        kp,
    };
    // the product below prefetches the next row (from its own source)
    gather_whole::<K>(sh, &g, i, idx, vals, &[], s);
    if s.sw[..n].contains(&0.0) {
        return false;
    }
    let upcoming = Upcoming {
        fixed: row_source(sh, next),
        k,
        idx: &next[..next.len().min(sh.block_rows)],
    };
    K::rows_gram(&s.raw, n, k, kp, &mut s.t, upcoming, &mut s.a);
    for c in 0..n {
        s.a[c * np + c] += 1.0;
        s.min_pivot[c] = 0.0;
    }
    if K::cholesky(&mut s.a, n, np, &s.min_pivot).is_err() {
        return false;
    }
    for c in 0..n {
        s.inv[c] = 1.0 / s.a[c * np + c];
    }
    // With z = Y^T g, (I + Y^T Y)^-1 z = Y^T (I + Y Y^T)^-1 g: c = M^-1 g
    // (M = I + Y Y^T) and q = Y^T c, with no difference of large terms (the
    // form z - Y^T M^-1 Y z cancels by up to 1 + |Y|^2, and costs the n dot
    // products Y z more).
    let g = &mut s.r[..n];
    for (((gt, &w), &a), &sw) in g.iter_mut().zip(&s.w[..n]).zip(vals).zip(&s.sw[..n]) {
        // W_t a_t rounded as the gather's right-hand side takes it
        *gt = (w * a) as f64 / sw as f64;
    }
    s.x[..n].copy_from_slice(g);
    s.x[n..np.div_ceil(8) * 8].fill(0.0);
    K::solve(&s.a, &s.inv, n, np, &mut s.x);
    // q = Y^T c, then u = U^-1 q
    let q = &mut s.p[..k];
    q.fill(0.0);
    for (c, &xc) in s.x[..n].iter().enumerate() {
        for (qa, &ya) in q.iter_mut().zip(&s.raw[c * kp..c * kp + k]) {
            *qa = M::<K>::mul_add(xc, ya as f64, *qa);
        }
    }
    // The loss at u, with q = U u: u^T A u = |q|^2 + |Y q|^2 and b.u = z.q,
    // where Y q = (M - I) c = g - c.
    if sh.detail == LossDetail::Total {
        let (q, c, g) = (&s.p[..k], &s.x[..n], &s.r[..n]);
        let yq: f64 = c.iter().zip(g).map(|(&c, &g)| (g - c) * (g - c)).sum();
        let uau = dot::<M<K>>(q, q) + yq;
        s.value = (s.c - 2.0 * dot::<M<K>>(&s.rhs[..k], q) + uau, s.c + uau);
    }
    // the caller takes u = U^-1 q (of several rows at once where it can)
    s.x[..k].copy_from_slice(&s.p[..k]);
    true
}

/// The normal matrix and right-hand side of row `i` with exact products
/// summed in `f64` (the slow path), into `s.a`, `s.rhs` and `s.min_pivot`.
#[inline(always)]
fn assemble_exact<M: MulAdd>(
    sh: &Shared<'_>,
    i: usize,
    idx: &[i32],
    vals: &[f32],
    lam: f64,
    s: &mut Scratch,
) {
    let (k, kp) = (sh.k, sh.kp);
    s.a[..kp * kp].copy_from_slice(&sh.base[..kp * kp]);
    s.rhs[..kp].fill(0.0);
    let si = sh.solved_weights.map_or(1.0, |w| w[i]) as f64;
    let v64 = &mut s.p[..k];
    for (&j, &a_t) in idx.iter().zip(vals) {
        let j = j as usize;
        for (d, &x) in v64.iter_mut().zip(&sh.fixed[j * k..j * k + k]) {
            *d = x as f64;
        }
        let wt = si * sh.fixed_weights.map_or(1.0, |f| f[j]) as f64;
        let y = (sh.w0 + wt) * a_t as f64;
        for a in 0..k {
            let c = wt * v64[a];
            let row = &mut s.a[a * kp..a * kp + k];
            for b in a..k {
                row[b] = M::mul_add(c, v64[b], row[b]);
            }
            s.rhs[a] = M::mul_add(y, v64[a], s.rhs[a]);
        }
    }
    for d in 0..k {
        s.a[d * kp + d] += lam;
        s.min_pivot[d] = if lam > 0.0 {
            0.0
        } else {
            SINGULAR_RTOL * s.a[d * kp + d]
        };
    }
}

/// `ap = (w0 G + lam I + sum_t w_t v_t v_t^T) p`, reading the fixed rows
/// directly; with `rhs`, also `rhs = sum_t y_t v_t`. With `wb`, the rows
/// `v_t` are the whitened ones and `w0 G + lam I` is `I`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn apply<M: MulAdd>(
    sh: &Shared<'_>,
    wb: Option<&Whitened>,
    i: usize,
    idx: &[i32],
    vals: &[f32],
    lam: f64,
    p: &[f64],
    ap: &mut [f64],
    mut rhs: Option<&mut [f64]>,
) {
    let k = sh.k;
    let kp = sh.kp;
    let src = match wb {
        Some(wb) => {
            ap[..k].copy_from_slice(&p[..k]);
            &wb.y
        }
        None => {
            mat_vec::<M>(sh.gram, k, kp, p, ap);
            for (a, &v) in ap[..k].iter_mut().zip(&p[..k]) {
                *a = *a * sh.w0 + lam * v;
            }
            sh.fixed
        }
    };
    let si = sh.solved_weights.map_or(1.0, |s| s[i]) as f64;
    for (&j, &a_t) in idx.iter().zip(vals) {
        let v = &src[j as usize * k..j as usize * k + k];
        let wt = si * sh.fixed_weights.map_or(1.0, |f| f[j as usize]) as f64;
        let q = wt * dot_f32::<M>(v, p);
        for (a, &x) in ap[..k].iter_mut().zip(v) {
            *a = M::mul_add(q, x as f64, *a);
        }
        if let Some(r) = rhs.as_deref_mut() {
            let yt = (sh.w0 + wt) * a_t as f64;
            for (a, &x) in r[..k].iter_mut().zip(v) {
                *a = M::mul_add(yt, x as f64, *a);
            }
        }
    }
}

/// Warm-started conjugate gradient on the normal equations of row `i`,
/// without forming them, reading the fixed rows (whitened where
/// [`cg_whitened`] says) at every step; the solution is left in `s.x[..k]`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn solve_cg<K: Kernel>(
    sh: &Shared<'_>,
    i: usize,
    idx: &[i32],
    vals: &[f32],
    lam: f64,
    steps: usize,
    start: &[f32],
    s: &mut Scratch,
) -> Result<()> {
    type M<K> = <K as Kernel>::Arith;
    let k = sh.k;
    let floor = curvature_floor(sh, i, idx.len(), lam, || {
        let si = sh.solved_weights.map_or(1.0, |w| w[i]) as f64;
        idx.iter()
            .map(|&j| {
                let j = j as usize;
                let v = &sh.fixed[j * k..j * k + k];
                let wt = si * sh.fixed_weights.map_or(1.0, |f| f[j]) as f64;
                wt * v.iter().map(|&x| x as f64 * x as f64).sum::<f64>()
            })
            .sum()
    })?;
    let wb = cg_whitened(sh);
    for (x, &u) in s.x[..k].iter_mut().zip(start) {
        *x = u as f64;
    }
    if let Some(wb) = wb {
        to_whitened::<K>(wb, k, sh.kp, &mut s.x, &mut s.p);
    }
    s.rhs[..k].fill(0.0);
    apply::<M<K>>(sh, wb, i, idx, vals, lam, &s.x, &mut s.ap, Some(&mut s.rhs));
    let Scratch {
        x, r, p, ap, rhs, ..
    } = s;
    // inlined, as all that `chunk` calls (see `Kernel`)
    let ok = cg_iterate::<M<K>>(
        k,
        steps,
        floor,
        rhs,
        x,
        r,
        p,
        ap,
        #[inline(always)]
        |p: &[f64], ap: &mut [f64]| apply::<M<K>>(sh, wb, i, idx, vals, lam, p, ap, None),
    );
    if let Some(wb) = wb {
        from_whitened::<K>(wb, k, sh.kp, x, p);
    }
    ok.then_some(()).ok_or_else(|| singular_cg(i, idx.len()))
}

/// The conjugate-gradient iteration shared by both CG paths: from `ap = A
/// x` (already computed) and the right-hand side `rhs`, `steps` steps with
/// `apply(p, ap)` computing `ap = A p`; stops early at a zero residual or a
/// non-positive curvature (rounding). In exact arithmetic each step lowers
/// the row's quadratic; in floating point a row whose matrix is
/// ill-conditioned (condition number past ~1e7, the `f32` products' reach)
/// can step the wrong way, which `WALS.fit` reports as a loss rise.
///
/// `floor > 0` (only with zero regularisation) is the singularity test: a
/// direction with curvature `p^T A p <= floor * p^T p` shows an eigenvalue
/// that small, and the iteration returns `false` (the system is singular);
/// otherwise it returns `true`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn cg_iterate<M: MulAdd>(
    k: usize,
    steps: usize,
    floor: f64,
    rhs: &[f64],
    x: &mut [f64],
    r: &mut [f64],
    p: &mut [f64],
    ap: &mut [f64],
    mut apply: impl FnMut(&[f64], &mut [f64]),
) -> bool {
    for d in 0..k {
        r[d] = rhs[d] - ap[d];
        p[d] = r[d];
    }
    let mut rs = dot::<M>(&r[..k], &r[..k]);
    for _ in 0..steps {
        if rs.is_nan() || rs <= 0.0 {
            break;
        }
        apply(p, ap);
        let pap = dot::<M>(&p[..k], &ap[..k]);
        if floor > 0.0 && pap <= floor * dot::<M>(&p[..k], &p[..k]) {
            return false;
        }
        if !pap.is_finite() || pap <= 0.0 {
            break;
        }
        let alpha = rs / pap;
        for d in 0..k {
            x[d] = M::mul_add(alpha, p[d], x[d]);
            r[d] = M::mul_add(-alpha, ap[d], r[d]);
        }
        let rs_new = dot::<M>(&r[..k], &r[..k]);
        let beta = rs_new / rs;
        for d in 0..k {
            p[d] = M::mul_add(beta, p[d], r[d]);
        }
        rs = rs_new;
    }
    true
}

/// `sum_t w_t a_t^2` in `f64`, in eight lanes (entry `t` in lane `t % 8`)
/// added in a fixed order.
#[inline(always)]
fn weighted_squares(w: &[f32], a: &[f32]) -> f64 {
    let mut l = [0.0f64; 8];
    let (wc, ac) = (w.chunks_exact(8), a.chunks_exact(8));
    let tail = (wc.remainder(), ac.remainder());
    for (wt, at) in wc.zip(ac) {
        for j in 0..8 {
            l[j] += wt[j] as f64 * (at[j] as f64 * at[j] as f64);
        }
    }
    for (j, (&wt, &at)) in tail.0.iter().zip(tail.1).enumerate() {
        l[j] += wt as f64 * (at as f64 * at as f64);
    }
    reduce(l)
}

/// The terms of a row whose loss `value` (its observed and unobserved terms
/// and its regularisation) is known: `lam |u|^2` as the regularisation, the
/// rest as `data`. `ud` is the row's factor `u` in `f64`.
#[inline(always)]
fn row_value<M: MulAdd>(value: f64, lam: f64, ud: &[f64]) -> Partial {
    let regularization = lam * dot::<M>(ud, ud);
    Partial {
        data: value - regularization,
        regularization,
        ..Partial::default()
    }
}

/// `u^T A u` of a row solved directly, from its factored normal equations
/// (`s.a` holds `U` with `U^T U = A`): `|U u|^2`, with `u` in `s.r[..k]`.
/// In `O(k^2)`, against `O(|O_i| k)` for [`row_loss`].
#[inline(always)]
fn direct_quad<K: Kernel>(sh: &Shared<'_>, s: &Scratch) -> f64 {
    type M<K> = <K as Kernel>::Arith;
    let (k, kp) = (sh.k, sh.kp);
    let mut quad = 0.0;
    for a in 0..k {
        let r = dot::<M<K>>(&s.a[a * kp + a..a * kp + k], &s.r[a..k]);
        quad = M::<K>::mul_add(r, r, quad);
    }
    quad
}

/// The terms of a row solved by `path`, at `u` (its starting factor when
/// `from`, else its solution), from the normal equations the solve formed
/// ([`LossDetail::Total`]): the quadratic `f(u) = c - 2 b.u + u^T A u`
/// (`s.c` holds `c = sum_t W_t a_t^2`; solved directly, `s.rhs` holds `b`,
/// `s.x` the solution in `f64` and `u^T A u` is [`direct_quad`] at the
/// starting factor; the other solves leave `(f(u), c + u^T A u)` in
/// `s.value_from` and `s.value`). `None` with [`LossDetail::Terms`],
/// where the solve left no value, or when `f(u)` is below
/// [`MIN_LOSS_FRACTION`] of `c + u^T A u`: the row's entries must then be
/// summed ([`row_loss`]).
#[inline(always)]
fn solved_value<K: Kernel>(
    sh: &Shared<'_>,
    path: Path,
    from: bool,
    lam: f64,
    u: &[f32],
    s: &mut Scratch,
) -> Option<Partial> {
    type M<K> = <K as Kernel>::Arith;
    if sh.detail == LossDetail::Terms {
        return None;
    }
    let k = sh.k;
    for (d, &v) in s.r[..k].iter_mut().zip(u) {
        *d = v as f64;
    }
    let (value, scale) = match (path, from) {
        (Path::Direct, true) => {
            let quad = direct_quad::<K>(sh, s);
            let bu = dot::<M<K>>(&s.rhs[..k], &s.r[..k]);
            (s.c - 2.0 * bu + quad, s.c + quad)
        }
        (Path::Direct, false) => {
            // `u` is the solution `x` of `A x = b` (in `s.x`) rounded to
            // `f32`: with `d = u - x`, `u^T A u = b.x + 2 b.d + d^T A d`, so
            // `f(u) = c - b.x + d^T A d` (the solve is backward stable:
            // `x^T (A x - b)` is rounding of `f64`), in `O(k)`. The term left
            // out is at most `k 2^-48 sum_a x_a^2 A_aa` (`|d_a| <= 2^-24 |x_a|`,
            // `|A_ab| <= sqrt(A_aa A_bb)`): `k 2^-24` of what the `f32` products
            // that formed `A` may already have put into `x^T A x` (and, of
            // `lambda`, exact here, `k 2^-48` of the loss).
            let bx = dot::<M<K>>(&s.rhs[..k], &s.x[..k]);
            let bu = dot::<M<K>>(&s.rhs[..k], &s.r[..k]);
            (s.c - bx, s.c + 2.0 * bu - bx)
        }
        (Path::CgBlock, true) => s.value_from,
        (Path::CgBlock | Path::Woodbury, false) => s.value,
        (Path::Woodbury, true) | (Path::Cg, _) => return None,
    };
    if !trusted(value, scale) {
        return None;
    }
    Some(row_value::<M<K>>(value, lam, &s.r[..k]))
}

/// The loss terms of row `i` with factor `u`: observed `sum_t W_t (a_t -
/// p_t)^2`, unobserved `w0 (u^T G u - sum_t p_t^2)` and `lam |u|^2`, with
/// `p_t = u . v_j`. With `in_block`, the row's entries are the gathered rows
/// in `s` (`sqrt(w_t) v_j` and `W_t`) and `p_t` is a float32 dot product;
/// otherwise the fixed rows are read again and `p_t` is computed in `f64`.
/// The sums are in `f64` either way. A block in the whitened `space` holds
/// `sqrt(w_t) y_j`, and `p_t` is then its dot product with `U u` (rounded
/// to `f32` as `u` is in the other space).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn row_loss<K: Kernel>(
    sh: &Shared<'_>,
    i: usize,
    idx: &[i32],
    vals: &[f32],
    lam: f64,
    u: &[f32],
    s: &mut Scratch,
    space: Space,
    in_block: bool,
) -> Partial {
    type M<K> = <K as Kernel>::Arith;
    let (k, kp) = (sh.k, sh.kp);
    let ud = &mut s.r[..k];
    for (d, &v) in ud.iter_mut().zip(u) {
        *d = v as f64;
    }
    let norm2 = dot::<M<K>>(ud, ud);
    if norm2 == 0.0 && idx.is_empty() {
        return Partial::default();
    }
    let all = quad_form::<M<K>>(sh.gram, k, kp, ud, &mut s.ap);
    let mut observed = 0.0;
    let mut sq = 0.0;
    if in_block {
        let n = idx.len();
        match (space, sh.whitened) {
            (Space::Whitened, Some(wb)) => {
                K::lower_t_mul(&wb.u_t, k, kp, &s.r, &mut s.p);
                for (d, &v) in s.u32[..k].iter_mut().zip(&s.p[..k]) {
                    *d = v as f32;
                }
            }
            _ => s.u32[..k].copy_from_slice(u),
        }
        let mut obs_l = [0.0f64; 8];
        let mut sq_l = [0.0f64; 8];
        for c0 in (0..n).step_by(sh.block_rows) {
            let c1 = (c0 + sh.block_rows).min(n);
            let p = &mut s.y[..c1 - c0];
            K::dots(&s.raw[c0 * kp..c1 * kp], c1 - c0, kp, &s.u32, p);
            // the block holds sqrt(w_t) v_j: divide the weight out again; a
            // zero weight leaves no trace of v_j, so read that row again
            let sw = &s.sw[c0..c1];
            for (pt, &w) in p.iter_mut().zip(sw) {
                let q = *pt / w;
                *pt = if w > 0.0 { q } else { 0.0 };
            }
            if sw.iter().fold(false, |z, &w| z | (w <= 0.0)) {
                for (t, pt) in p.iter_mut().enumerate() {
                    if sw[t] <= 0.0 {
                        let j = idx[c0 + t] as usize;
                        *pt = dot_f32::<M<K>>(&sh.fixed[j * k..j * k + k], &s.r[..k]) as f32;
                    }
                }
            }
            // eight interleaved f64 sums, in a fixed order
            K::loss_sums(p, &s.w[c0..c1], &vals[c0..c1], &mut obs_l, &mut sq_l);
        }
        observed = reduce(obs_l);
        sq = reduce(sq_l);
        return Partial {
            observed,
            unobserved: sh.w0 * (all - sq),
            data: 0.0,
            regularization: lam * norm2,
        };
    }
    let ud = &s.r[..k];
    let si = sh.solved_weights.map_or(1.0, |s| s[i]) as f64;
    for (&j, &a) in idx.iter().zip(vals) {
        let v = &sh.fixed[j as usize * k..j as usize * k + k];
        let p = dot_f32::<M<K>>(v, ud);
        let wt = sh.w0 + si * sh.fixed_weights.map_or(1.0, |f| f[j as usize]) as f64;
        let e = a as f64 - p;
        observed += wt * e * e;
        sq += p * p;
    }
    Partial {
        observed,
        unobserved: sh.w0 * (all - sq),
        data: 0.0,
        regularization: lam * norm2,
    }
}

// ---------------------------------------------------------------- entry points

/// Run [`chunk`] with the kernel of `isa` (which must be available).
pub(crate) fn run_chunk(
    isa: Isa,
    sh: &Shared<'_>,
    rows: Range<usize>,
    out: Factors<'_>,
    s: &mut Scratch,
) -> Result<(Partial, Partial)> {
    let parts = match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` was checked with `Isa::available` by the caller.
        Isa::Avx512 => unsafe { chunk_avx512(sh, rows, out, s) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { chunk_avx2(sh, rows, out, s) },
        _ => chunk::<PortableKernel>(sh, rows, out, s),
    };
    phases::flush();
    parts
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn chunk_avx512(
    sh: &Shared<'_>,
    rows: Range<usize>,
    out: Factors<'_>,
    s: &mut Scratch,
) -> Result<(Partial, Partial)> {
    chunk::<super::kernel::Avx512Kernel>(sh, rows, out, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chunk_avx2(
    sh: &Shared<'_>,
    rows: Range<usize>,
    out: Factors<'_>,
    s: &mut Scratch,
) -> Result<(Partial, Partial)> {
    chunk::<super::kernel::Avx2Kernel>(sh, rows, out, s)
}

/// `g += X^T X` over rows `rows` of `x` (`n x k`), in `f64` (exact
/// products), on the upper triangle of the `kp x kp` matrix `g` (columns from
/// each row's diagonal rounded down to a multiple of 8; the rest is left
/// alone). Four rows at a time, in row order.
pub(crate) fn run_gram(
    isa: Isa,
    x: &[f32],
    k: usize,
    kp: usize,
    rows: Range<usize>,
    g: &mut [f64],
) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` was checked with `Isa::available` by the caller.
        Isa::Avx512 => unsafe { gram_avx512(x, k, kp, rows, g) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 => unsafe { gram_avx2(x, k, kp, rows, g) },
        _ => gram::<crate::dense::Unfused>(x, k, kp, rows, g),
    }
}

#[inline(always)]
fn gram<M: MulAdd>(x: &[f32], k: usize, kp: usize, rows: Range<usize>, g: &mut [f64]) {
    assert!(g.len() >= kp * kp && kp >= k && x.len() >= rows.end * k);
    let mut t = vec![0.0f64; 4 * kp];
    let mut i = rows.start;
    while i < rows.end {
        let nr = (rows.end - i).min(4);
        t.fill(0.0);
        for r in 0..nr {
            for (d, &v) in t[r * kp..r * kp + k]
                .iter_mut()
                .zip(&x[(i + r) * k..(i + r) * k + k])
            {
                *d = v as f64;
            }
        }
        let (t0, rest) = t.split_at(kp);
        let (t1, rest) = rest.split_at(kp);
        let (t2, t3) = rest.split_at(kp);
        for a in 0..k {
            let (c0, c1, c2, c3) = (t0[a], t1[a], t2[a], t3[a]);
            let start = a & !7;
            let row = &mut g[a * kp..a * kp + kp];
            for b in start..kp {
                let mut v = row[b];
                v = M::mul_add(c0, t0[b], v);
                v = M::mul_add(c1, t1[b], v);
                v = M::mul_add(c2, t2[b], v);
                v = M::mul_add(c3, t3[b], v);
                row[b] = v;
            }
        }
        i += nr;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn gram_avx512(x: &[f32], k: usize, kp: usize, rows: Range<usize>, g: &mut [f64]) {
    gram::<crate::dense::Fused>(x, k, kp, rows, g)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gram_avx2(x: &[f32], k: usize, kp: usize, rows: Range<usize>, g: &mut [f64]) {
    gram::<crate::dense::Fused>(x, k, kp, rows, g)
}
