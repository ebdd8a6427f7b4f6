//! Bindings of `embspace_core::ties`: tie-aware neighbor overlap counts and
//! their exact expectations under random tie-breaking.

use numpy::{PyArray1, PyArray3, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

use crate::convert::{slice1, slice2};
use crate::errors::{to_py, IntoPyResult};
use embspace_core::knn::Metric;
use embspace_core::ties::{tie_expectation as core_expectation, tie_overlap as core_overlap};
use embspace_core::ties::{Side, COUNTS};
use embspace_core::Error;

type Expectations<'py> = (Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>);

fn non_negative(value: i64, name: &str) -> PyResult<usize> {
    if value < 0 {
        return Err(to_py(Error::InvalidParameter(format!(
            "{name} must be >= 0, got {value}"
        ))));
    }
    Ok(value as usize)
}

/// Tie-aware overlap counts of two spaces of the same n entities.
///
/// `a` (n x d_a) and `b` (n x d_b) are float32, C-contiguous; `table_a` and
/// `table_b` (n x w, int64, k <= w <= n - 1) their exact k-NN indices as
/// `knn` returns them. Returns uint32 counts of shape (n, k, 8): for each row
/// and level l = 1..k, |S_A|, |T_A|, |S_B|, |T_B|, |S_A & S_B|, |S_A & T_B|,
/// |T_A & S_B|, |T_A & T_B| (strict sets S and tie groups T; see
/// `embspace_core::ties`). `tolerance` is relative to each query's scale.
#[pyfunction]
// `tolerance` defaults to embspace_core::ties::DEFAULT_TOLERANCE (2^-20), written
// out so that Python's signature shows the value (tests/test_core_binding.py).
#[pyo3(signature = (a, b, table_a, table_b, k, metric = "cosine", tolerance = 9.5367431640625e-07, num_threads = 0))]
#[allow(clippy::too_many_arguments)]
fn tie_overlap<'py>(
    py: Python<'py>,
    a: PyReadonlyArray2<'py, f32>,
    b: PyReadonlyArray2<'py, f32>,
    table_a: PyReadonlyArray2<'py, i64>,
    table_b: PyReadonlyArray2<'py, i64>,
    k: i64,
    metric: &str,
    tolerance: f64,
    num_threads: i64,
) -> PyResult<Bound<'py, PyArray3<u32>>> {
    let metric = Metric::parse(metric).py()?;
    let (xa, n, da) = slice2(&a, "a")?;
    let (xb, nb, db) = slice2(&b, "b")?;
    let (ha, na, wa) = slice2(&table_a, "table_a")?;
    let (hb, nhb, wb) = slice2(&table_b, "table_b")?;
    if nb != n || na != n || nhb != n {
        return Err(to_py(Error::ShapeMismatch(format!(
            "a, b and both tables must have the same rows, got {n}, {nb}, {na} and {nhb}"
        ))));
    }
    let k = non_negative(k, "k")?;
    let threads = non_negative(num_threads, "num_threads")?;
    let counts = py
        .detach(|| {
            core_overlap(
                Side {
                    data: xa,
                    d: da,
                    hint: ha,
                    width: wa,
                },
                Side {
                    data: xb,
                    d: db,
                    hint: hb,
                    width: wb,
                },
                n,
                k,
                metric,
                tolerance,
                threads,
            )
        })
        .py()?;
    PyArray1::from_vec(py, counts).reshape([n, k, COUNTS])
}

/// Exact expected overlap |X & Y| and Jaccard index under uniformly random
/// tie-breaking, independently on each side, from counts (m x 8, uint32, as
/// `tie_overlap` gives them) and the level k of each row (m, uint32).
/// Returns two float64 arrays of length m.
#[pyfunction]
#[pyo3(signature = (counts, k, num_threads = 0))]
fn tie_expectation<'py>(
    py: Python<'py>,
    counts: PyReadonlyArray2<'py, u32>,
    k: PyReadonlyArray1<'py, u32>,
    num_threads: i64,
) -> PyResult<Expectations<'py>> {
    let (c, _, width) = slice2(&counts, "counts")?;
    if width != COUNTS {
        return Err(to_py(Error::ShapeMismatch(format!(
            "counts must have {COUNTS} columns, got {width}"
        ))));
    }
    let levels = slice1(&k, "k")?;
    let threads = non_negative(num_threads, "num_threads")?;
    let (overlap, jaccard) = py.detach(|| core_expectation(c, levels, threads)).py()?;
    Ok((
        PyArray1::from_vec(py, overlap),
        PyArray1::from_vec(py, jaccard),
    ))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(tie_overlap, m)?)?;
    m.add_function(wrap_pyfunction!(tie_expectation, m)?)?;
    Ok(())
}
