//! Bindings of `embspace_core::wals`: one call per half-sweep (GIL released),
//! the loss, the Gramian, and the name of the kernels in use.

use numpy::{
    PyArray2, PyReadonlyArray1, PyReadonlyArray2, PyReadwriteArray2, PyUntypedArrayMethods,
};
use pyo3::prelude::*;

use crate::convert::{slice1, slice2};
use crate::errors::{to_py, IntoPyResult};
use crate::interrupt::interruptible;
use embspace_core::wals::{
    self, CsrView, HalfSweepParams, Isa, LossDetail, LossParams, RegScaling, Solver, SweepReturns,
};
use embspace_core::Error;

fn shape_error(msg: String) -> PyErr {
    to_py(Error::ShapeMismatch(msg))
}

fn optional<'a>(
    w: &'a Option<PyReadonlyArray1<'_, f32>>,
    name: &str,
) -> PyResult<Option<&'a [f32]>> {
    w.as_ref().map(|a| slice1(a, name)).transpose()
}

/// Solve every row of ``solve_into`` (n_rows x k, float32, C-contiguous,
/// updated in place) with ``fixed`` (n_cols x k) held fixed, for the ratings
/// CSR (indptr int64, indices int32, data float32) of n_rows x n_cols.
/// Returns the loss at the new point as (observed, unobserved,
/// regularization), or with ``loss="total"`` only their sum, taken from each
/// row's normal equations instead of a pass over its ratings after its
/// solve (faster; other rounding). ``solver`` is "cholesky" or "cg" (``cg_steps``
/// iterations, warm-started from ``solve_into``); ``reg_scaling`` is "none"
/// or "count"; ``num_threads`` 0 uses every core. Ctrl-C stops the
/// half-sweep within a row (KeyboardInterrupt), and on any error or
/// interrupt the content of ``solve_into`` is unspecified (partly solved).
#[pyfunction]
#[pyo3(signature = (
    indptr, indices, data, n_cols, fixed, solve_into, *, unobserved_weight, regularization,
    solved_weights = None, fixed_weights = None, solver = "cholesky", cg_steps = 3,
    reg_scaling = "none", num_threads = 0, loss = "terms"
))]
#[allow(clippy::too_many_arguments)]
fn wals_half_sweep<'py>(
    py: Python<'py>,
    indptr: PyReadonlyArray1<'py, i64>,
    indices: PyReadonlyArray1<'py, i32>,
    data: PyReadonlyArray1<'py, f32>,
    n_cols: usize,
    fixed: PyReadonlyArray2<'py, f32>,
    solve_into: PyReadwriteArray2<'py, f32>,
    unobserved_weight: f64,
    regularization: f64,
    solved_weights: Option<PyReadonlyArray1<'py, f32>>,
    fixed_weights: Option<PyReadonlyArray1<'py, f32>>,
    solver: &str,
    cg_steps: usize,
    reg_scaling: &str,
    num_threads: usize,
    loss: &str,
) -> PyResult<SweepLoss> {
    let call = SweepCall {
        indptr,
        indices,
        data,
        n_cols,
        fixed,
        solve_into,
        unobserved_weight,
        regularization,
        solved_weights,
        fixed_weights,
        solver,
        cg_steps,
        reg_scaling,
        num_threads,
        loss,
    };
    let (_, after) = call.run(py, false)?;
    Ok(after)
}

/// ``wals_half_sweep`` that also returns the loss of the point it starts
/// from: ``(loss before, loss after)``, each (observed, unobserved,
/// regularization), or each a total with ``loss="total"``. ``solve_into``
/// must hold the current factor (finite),
/// whatever the solver; each row's terms at it are taken from the entries
/// the solve gathers, so this costs little more than the half-sweep alone.
#[pyfunction]
#[pyo3(signature = (
    indptr, indices, data, n_cols, fixed, solve_into, *, unobserved_weight, regularization,
    solved_weights = None, fixed_weights = None, solver = "cholesky", cg_steps = 3,
    reg_scaling = "none", num_threads = 0, loss = "terms"
))]
#[allow(clippy::too_many_arguments)]
fn wals_half_sweep_from<'py>(
    py: Python<'py>,
    indptr: PyReadonlyArray1<'py, i64>,
    indices: PyReadonlyArray1<'py, i32>,
    data: PyReadonlyArray1<'py, f32>,
    n_cols: usize,
    fixed: PyReadonlyArray2<'py, f32>,
    solve_into: PyReadwriteArray2<'py, f32>,
    unobserved_weight: f64,
    regularization: f64,
    solved_weights: Option<PyReadonlyArray1<'py, f32>>,
    fixed_weights: Option<PyReadonlyArray1<'py, f32>>,
    solver: &str,
    cg_steps: usize,
    reg_scaling: &str,
    num_threads: usize,
    loss: &str,
) -> PyResult<(SweepLoss, SweepLoss)> {
    let call = SweepCall {
        indptr,
        indices,
        data,
        n_cols,
        fixed,
        solve_into,
        unobserved_weight,
        regularization,
        solved_weights,
        fixed_weights,
        solver,
        cg_steps,
        reg_scaling,
        num_threads,
        loss,
    };
    let (before, after) = call.run(py, true)?;
    Ok((before.expect("asked for"), after))
}

/// (observed, unobserved, regularization).
type Terms = (f64, f64, f64);

fn terms(loss: wals::Loss) -> Terms {
    (loss.observed, loss.unobserved, loss.regularization)
}

/// A half-sweep's loss as Python gets it: by term, or only the total.
#[derive(IntoPyObject)]
enum SweepLoss {
    Terms(Terms),
    Total(f64),
}

impl From<wals::SweepLoss> for SweepLoss {
    fn from(l: wals::SweepLoss) -> SweepLoss {
        match l {
            wals::SweepLoss::Terms(l) => SweepLoss::Terms(terms(l)),
            wals::SweepLoss::Total(t) => SweepLoss::Total(t),
        }
    }
}

/// The arguments of one half-sweep, as Python passed them.
struct SweepCall<'py, 's> {
    indptr: PyReadonlyArray1<'py, i64>,
    indices: PyReadonlyArray1<'py, i32>,
    data: PyReadonlyArray1<'py, f32>,
    n_cols: usize,
    fixed: PyReadonlyArray2<'py, f32>,
    solve_into: PyReadwriteArray2<'py, f32>,
    unobserved_weight: f64,
    regularization: f64,
    solved_weights: Option<PyReadonlyArray1<'py, f32>>,
    fixed_weights: Option<PyReadonlyArray1<'py, f32>>,
    solver: &'s str,
    cg_steps: usize,
    reg_scaling: &'s str,
    num_threads: usize,
    loss: &'s str,
}

impl SweepCall<'_, '_> {
    /// Check the arguments and run the half-sweep (interruptibly); with
    /// `start_loss` also the loss of the starting point.
    fn run(mut self, py: Python<'_>, start_loss: bool) -> PyResult<(Option<SweepLoss>, SweepLoss)> {
        let solver = Solver::parse(self.solver, self.cg_steps).py()?;
        let reg_scaling = RegScaling::parse(self.reg_scaling).py()?;
        let detail = LossDetail::parse(self.loss).py()?;
        let n_cols = self.n_cols;
        let (p, i, d) = (
            slice1(&self.indptr, "indptr")?,
            slice1(&self.indices, "indices")?,
            slice1(&self.data, "data")?,
        );
        let (fx, n_fixed, k) = slice2(&self.fixed, "fixed")?;
        let shape = self.solve_into.shape().to_vec();
        let (n_solve, k2) = (shape[0], shape[1]);
        if n_fixed != n_cols || k2 != k || p.len() != n_solve + 1 {
            return Err(shape_error(format!(
                "ratings of {} x {n_cols} need a fixed factor of {n_cols} rows and a factor to \
                 solve of {} rows with the same number of columns; got {n_fixed} x {k} and \
                 {n_solve} x {k2}",
                p.len().saturating_sub(1),
                p.len().saturating_sub(1)
            )));
        }
        let out = self.solve_into.as_slice_mut().map_err(|_| {
            shape_error("solve_into must be a C-contiguous, writeable float32 2-D array".into())
        })?;
        let sw = optional(&self.solved_weights, "solved_weights")?;
        let fw = optional(&self.fixed_weights, "fixed_weights")?;
        let params = HalfSweepParams {
            k,
            unobserved_weight: self.unobserved_weight,
            regularization: self.regularization,
            solved_weights: sw,
            fixed_weights: fw,
            solver,
            reg_scaling,
        };
        let threads = self.num_threads;
        let returns = SweepReturns { start_loss, detail };
        interruptible(py, |cancel| {
            let view = CsrView::new(n_solve, n_cols, p, i, d)?;
            let out = wals::half_sweep_run(view, fx, out, &params, threads, returns, cancel)?;
            Ok(out.map(|(before, after)| (before.map(SweepLoss::from), SweepLoss::from(after))))
        })
    }
}

/// The training loss (observed, unobserved, regularization) of
/// ``row_factors`` (n_rows x k) and ``col_factors`` (n_cols x k) for the
/// ratings CSR by rows. Ctrl-C stops it within a row (KeyboardInterrupt).
#[pyfunction]
#[pyo3(signature = (
    indptr, indices, data, n_cols, row_factors, col_factors, *, unobserved_weight,
    regularization, row_weights = None, col_weights = None, reg_scaling = "none",
    num_threads = 0
))]
#[allow(clippy::too_many_arguments)]
fn wals_loss<'py>(
    py: Python<'py>,
    indptr: PyReadonlyArray1<'py, i64>,
    indices: PyReadonlyArray1<'py, i32>,
    data: PyReadonlyArray1<'py, f32>,
    n_cols: usize,
    row_factors: PyReadonlyArray2<'py, f32>,
    col_factors: PyReadonlyArray2<'py, f32>,
    unobserved_weight: f64,
    regularization: f64,
    row_weights: Option<PyReadonlyArray1<'py, f32>>,
    col_weights: Option<PyReadonlyArray1<'py, f32>>,
    reg_scaling: &str,
    num_threads: usize,
) -> PyResult<(f64, f64, f64)> {
    let reg_scaling = RegScaling::parse(reg_scaling).py()?;
    let (p, i, d) = (
        slice1(&indptr, "indptr")?,
        slice1(&indices, "indices")?,
        slice1(&data, "data")?,
    );
    let (u, n_rows, k) = slice2(&row_factors, "row_factors")?;
    let (v, n_c, k2) = slice2(&col_factors, "col_factors")?;
    if n_c != n_cols || k2 != k || p.len() != n_rows + 1 {
        return Err(shape_error(format!(
            "ratings of {} x {n_cols} need factors of {} x k and {n_cols} x k; got \
             {n_rows} x {k} and {n_c} x {k2}",
            p.len().saturating_sub(1),
            p.len().saturating_sub(1)
        )));
    }
    let rw = optional(&row_weights, "row_weights")?;
    let cw = optional(&col_weights, "col_weights")?;
    let loss = interruptible(py, |cancel| {
        let view = CsrView::new(n_rows, n_cols, p, i, d)?;
        let params = LossParams {
            k,
            unobserved_weight,
            regularization,
            row_weights: rw,
            col_weights: cw,
            reg_scaling,
        };
        wals::loss_cancellable(view, u, v, &params, num_threads, cancel)
    })?;
    Ok((loss.observed, loss.unobserved, loss.regularization))
}

/// ``factors.T @ factors`` (k x k, float64) summed in a fixed order.
#[pyfunction]
#[pyo3(signature = (factors, num_threads = 0))]
fn wals_gramian<'py>(
    py: Python<'py>,
    factors: PyReadonlyArray2<'py, f32>,
    num_threads: usize,
) -> PyResult<Bound<'py, PyArray2<f64>>> {
    let (x, _, k) = slice2(&factors, "factors")?;
    let g = py.detach(|| wals::gramian(x, k, num_threads)).py()?;
    let rows: Vec<Vec<f64>> = g.chunks(k.max(1)).map(|r| r.to_vec()).collect();
    PyArray2::from_vec2(py, &rows).map_err(|e| shape_error(e.to_string()))
}

/// The instruction set of the WALS kernels on this CPU ("avx512", "avx2"
/// or "portable").
#[pyfunction]
fn wals_kernels() -> &'static str {
    Isa::detect().name()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(wals_half_sweep, m)?)?;
    m.add_function(wrap_pyfunction!(wals_half_sweep_from, m)?)?;
    m.add_function(wrap_pyfunction!(wals_loss, m)?)?;
    m.add_function(wrap_pyfunction!(wals_gramian, m)?)?;
    m.add_function(wrap_pyfunction!(wals_kernels, m)?)?;
    Ok(())
}
