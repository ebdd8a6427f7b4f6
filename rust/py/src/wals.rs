//! Bindings of `embspace_core::wals`: one call per half-sweep, GIL released.

use numpy::{PyReadonlyArray1, PyReadonlyArray2, PyReadwriteArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::convert::{slice1, slice2};
use crate::errors::{to_py, IntoPyResult};
use embspace_core::wals::{self, CsrView, HalfSweepParams, LossParams, RegScaling, Solver};
use embspace_core::Error;

/// (observed, unobserved, regularization) terms of the loss.
type LossTerms = (f64, f64, f64);

fn optional<'a>(
    a: &'a Option<PyReadonlyArray1<'_, f32>>,
    name: &str,
) -> PyResult<Option<&'a [f32]>> {
    a.as_ref().map(|a| slice1(a, name)).transpose()
}

fn threads(num_threads: i64) -> PyResult<usize> {
    usize::try_from(num_threads).map_err(|_| {
        to_py(Error::InvalidParameter(format!(
            "num_threads must be >= 0 (0 = all cores), got {num_threads}"
        )))
    })
}

/// Solve every row of `solve_into` (n_solve x k, float32, updated in place)
/// with `fixed` (n_fixed x k) held fixed, for ratings given as CSR arrays of
/// the n_solve x n_fixed matrix. Returns the loss terms after the update.
#[pyfunction]
#[pyo3(signature = (indptr, indices, data, fixed, solve_into, unobserved_weight, regularization,
    solved_weights=None, fixed_weights=None, solver="cholesky", cg_steps=3, reg_scaling="none",
    num_threads=0))]
#[allow(clippy::too_many_arguments)]
fn wals_half_sweep(
    py: Python<'_>,
    indptr: PyReadonlyArray1<'_, i64>,
    indices: PyReadonlyArray1<'_, i32>,
    data: PyReadonlyArray1<'_, f32>,
    fixed: PyReadonlyArray2<'_, f32>,
    mut solve_into: PyReadwriteArray2<'_, f32>,
    unobserved_weight: f64,
    regularization: f64,
    solved_weights: Option<PyReadonlyArray1<'_, f32>>,
    fixed_weights: Option<PyReadonlyArray1<'_, f32>>,
    solver: &str,
    cg_steps: usize,
    reg_scaling: &str,
    num_threads: i64,
) -> PyResult<LossTerms> {
    let solver = Solver::parse(solver, cg_steps).py()?;
    let reg_scaling = RegScaling::parse(reg_scaling).py()?;
    let nt = threads(num_threads)?;
    let (p, i, d) = (
        slice1(&indptr, "indptr")?,
        slice1(&indices, "indices")?,
        slice1(&data, "data")?,
    );
    let (v, n_fixed, k) = slice2(&fixed, "fixed")?;
    let shape = solve_into.shape().to_vec();
    if shape[1] != k {
        return Err(to_py(Error::ShapeMismatch(format!(
            "the factor to solve has {} columns but the fixed factor has {k}",
            shape[1]
        ))));
    }
    let n_solve = shape[0];
    let sw = optional(&solved_weights, "solved_weights")?;
    let fw = optional(&fixed_weights, "fixed_weights")?;
    let out = solve_into.as_slice_mut().map_err(|_| {
        to_py(Error::ShapeMismatch(
            "solve_into must be a C-contiguous, writeable 2-D array".into(),
        ))
    })?;
    let loss = py
        .detach(|| {
            let view = CsrView::new(n_solve, n_fixed, p, i, d)?;
            let params = HalfSweepParams {
                k,
                unobserved_weight,
                regularization,
                solved_weights: sw,
                fixed_weights: fw,
                solver,
                reg_scaling,
            };
            wals::half_sweep(view, v, out, &params, nt)
        })
        .py()?;
    Ok((loss.observed, loss.unobserved, loss.regularization))
}

/// The exact training loss terms of `row_factors` (n_rows x k) and
/// `col_factors` (n_cols x k) on the ratings given by rows as CSR arrays.
#[pyfunction]
#[pyo3(signature = (indptr, indices, data, row_factors, col_factors, unobserved_weight,
    regularization, row_weights=None, col_weights=None, reg_scaling="none", num_threads=0))]
#[allow(clippy::too_many_arguments)]
fn wals_loss(
    py: Python<'_>,
    indptr: PyReadonlyArray1<'_, i64>,
    indices: PyReadonlyArray1<'_, i32>,
    data: PyReadonlyArray1<'_, f32>,
    row_factors: PyReadonlyArray2<'_, f32>,
    col_factors: PyReadonlyArray2<'_, f32>,
    unobserved_weight: f64,
    regularization: f64,
    row_weights: Option<PyReadonlyArray1<'_, f32>>,
    col_weights: Option<PyReadonlyArray1<'_, f32>>,
    reg_scaling: &str,
    num_threads: i64,
) -> PyResult<LossTerms> {
    let reg_scaling = RegScaling::parse(reg_scaling).py()?;
    let nt = threads(num_threads)?;
    let (p, i, d) = (
        slice1(&indptr, "indptr")?,
        slice1(&indices, "indices")?,
        slice1(&data, "data")?,
    );
    let (u, n_rows, k) = slice2(&row_factors, "row_factors")?;
    let (v, n_cols, kv) = slice2(&col_factors, "col_factors")?;
    if kv != k {
        return Err(to_py(Error::ShapeMismatch(format!(
            "row factors have {k} columns but column factors have {kv}"
        ))));
    }
    let rw = optional(&row_weights, "row_weights")?;
    let cw = optional(&col_weights, "col_weights")?;
    let loss = py
        .detach(|| {
            let view = CsrView::new(n_rows, n_cols, p, i, d)?;
            let params = LossParams {
                k,
                unobserved_weight,
                regularization,
                row_weights: rw,
                col_weights: cw,
                reg_scaling,
            };
            wals::loss(view, u, v, &params, nt)
        })
        .py()?;
    Ok((loss.observed, loss.unobserved, loss.regularization))
}

/// The name of the instruction set the WALS kernels use on this machine.
#[pyfunction]
fn wals_isa() -> &'static str {
    wals::Isa::detect().name()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(wals_half_sweep, m)?)?;
    m.add_function(wrap_pyfunction!(wals_loss, m)?)?;
    m.add_function(wrap_pyfunction!(wals_isa, m)?)?;
    Ok(())
}
