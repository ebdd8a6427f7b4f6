//! Bindings of `embspace_core::csr`.

use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

use crate::convert::{slice1, slice2};
use crate::errors::IntoPyResult;
use embspace_core::csr::{transpose_threads, Csr, Duplicates};
use embspace_core::spmv;
use embspace_core::wals::CsrView;

type CsrArrays<'py> = (
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<i32>>,
    Bound<'py, PyArray1<f32>>,
);

fn into_arrays(py: Python<'_>, m: Csr) -> CsrArrays<'_> {
    (
        PyArray1::from_vec(py, m.indptr),
        PyArray1::from_vec(py, m.indices),
        PyArray1::from_vec(py, m.data),
    )
}

/// Build CSR arrays (indptr int64, indices int32, data float32) from
/// coordinate triples; `duplicates` is one of error, first, last, sum, mean,
/// max. Rows are sorted on `num_threads` threads (0 = every core).
#[pyfunction]
#[pyo3(signature = (n_rows, n_cols, rows, cols, values, duplicates = "error", num_threads = 0))]
#[allow(clippy::too_many_arguments)]
fn csr_from_coo<'py>(
    py: Python<'py>,
    n_rows: usize,
    n_cols: usize,
    rows: PyReadonlyArray1<'py, i64>,
    cols: PyReadonlyArray1<'py, i64>,
    values: PyReadonlyArray1<'py, f32>,
    duplicates: &str,
    num_threads: usize,
) -> PyResult<CsrArrays<'py>> {
    let policy = Duplicates::parse(duplicates).py()?;
    let (r, c, v) = (
        slice1(&rows, "rows")?,
        slice1(&cols, "cols")?,
        slice1(&values, "values")?,
    );
    let m = py
        .detach(|| Csr::from_coo(n_rows, n_cols, r, c, v, policy, num_threads))
        .py()?;
    Ok(into_arrays(py, m))
}

/// Transpose CSR arrays: returns the CSR arrays of the (n_cols x n_rows) transpose.
/// The input is validated first (sorted unique columns, finite values). Both
/// run on `num_threads` threads (0 = every core); the result does not depend
/// on it.
#[pyfunction]
#[pyo3(signature = (n_rows, n_cols, indptr, indices, data, num_threads = 0))]
fn csr_transpose<'py>(
    py: Python<'py>,
    n_rows: usize,
    n_cols: usize,
    indptr: PyReadonlyArray1<'py, i64>,
    indices: PyReadonlyArray1<'py, i32>,
    data: PyReadonlyArray1<'py, f32>,
    num_threads: usize,
) -> PyResult<CsrArrays<'py>> {
    let (p, i, d) = (
        slice1(&indptr, "indptr")?,
        slice1(&indices, "indices")?,
        slice1(&data, "data")?,
    );
    let m = py
        .detach(|| transpose_threads(n_rows, n_cols, p, i, d, num_threads))
        .py()?;
    Ok(into_arrays(py, m))
}

/// `A @ x` (float64) for CSR arrays (indptr int64, indices int32, data
/// float32) of an `n_rows x n_cols` matrix and a float64 `x` of length
/// `n_cols`; rows in parallel, each summed in float64 in stored order.
#[pyfunction]
#[pyo3(signature = (indptr, indices, data, n_cols, x, num_threads = 0))]
fn csr_matvec<'py>(
    py: Python<'py>,
    indptr: PyReadonlyArray1<'py, i64>,
    indices: PyReadonlyArray1<'py, i32>,
    data: PyReadonlyArray1<'py, f32>,
    n_cols: usize,
    x: PyReadonlyArray1<'py, f64>,
    num_threads: usize,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let (p, i, d) = (
        slice1(&indptr, "indptr")?,
        slice1(&indices, "indices")?,
        slice1(&data, "data")?,
    );
    let xs = slice1(&x, "x")?;
    let n_rows = p.len().saturating_sub(1);
    let view = CsrView::new(n_rows, n_cols, p, i, d).py()?;
    let out = PyArray1::<f64>::zeros(py, n_rows, false);
    {
        let mut rw = out.readwrite();
        let y = rw.as_slice_mut().expect("a new array is contiguous");
        py.detach(|| spmv::csr_matvec(view, xs, y, num_threads))
            .py()?;
    }
    Ok(out)
}

/// The products ``A^T (A @ x)`` and ``A @ X`` of a CSR matrix (indptr
/// int64, indices int32, data float32, ``n_cols`` columns) prepared once for
/// the many products of a truncated SVD: the structure is checked and the
/// columns renumbered here (see ``embspace_core::spmv::SparseGram``); the
/// values stay in ``data``, which this object keeps (a reference, not a
/// copy). Results are float64 and the same for any ``num_threads`` (0 =
/// every core).
#[pyclass(frozen, module = "embspace._core")]
pub struct SparseGram {
    inner: spmv::SparseGram,
    data: Py<PyArray1<f32>>,
}

#[pymethods]
impl SparseGram {
    #[new]
    #[pyo3(signature = (indptr, indices, data, n_cols, num_threads = 0))]
    fn new(
        py: Python<'_>,
        indptr: PyReadonlyArray1<'_, i64>,
        indices: PyReadonlyArray1<'_, i32>,
        data: PyReadonlyArray1<'_, f32>,
        n_cols: usize,
        num_threads: usize,
    ) -> PyResult<Self> {
        let (p, i, d) = (
            slice1(&indptr, "indptr")?,
            slice1(&indices, "indices")?,
            slice1(&data, "data")?,
        );
        let view = CsrView::new(p.len().saturating_sub(1), n_cols, p, i, d).py()?;
        let inner = py
            .detach(|| spmv::SparseGram::new(view, num_threads))
            .py()?;
        Ok(SparseGram {
            inner,
            data: data.as_unbound().clone_ref(py),
        })
    }

    /// Number of rows of the matrix.
    #[getter]
    fn n_rows(&self) -> usize {
        self.inner.n_rows()
    }

    /// Number of columns of the matrix.
    #[getter]
    fn n_cols(&self) -> usize {
        self.inner.n_cols()
    }

    /// ``A^T (A @ x)`` for a float64 ``x`` of length ``n_cols``.
    #[pyo3(signature = (x, num_threads = 0))]
    fn apply<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray1<'py, f64>,
        num_threads: usize,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let data = self.data.bind(py).try_readonly()?;
        let d = slice1(&data, "data")?;
        let xs = slice1(&x, "x")?;
        let out = PyArray1::<f64>::zeros(py, self.inner.n_cols(), false);
        {
            let mut rw = out.readwrite();
            let z = rw.as_slice_mut().expect("a new array is contiguous");
            py.detach(|| self.inner.apply(d, xs, z, num_threads)).py()?;
        }
        Ok(out)
    }

    /// ``A @ X`` (``n_rows x k``) for a C-contiguous float64 ``X`` of
    /// ``n_cols x k``.
    #[pyo3(signature = (x, num_threads = 0))]
    fn matmat<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f64>,
        num_threads: usize,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let data = self.data.bind(py).try_readonly()?;
        let d = slice1(&data, "data")?;
        let (xs, _, k) = slice2(&x, "x")?;
        let out = PyArray2::<f64>::zeros(py, [self.inner.n_rows(), k], false);
        {
            let mut rw = out.readwrite();
            let y = rw.as_slice_mut().expect("a new array is contiguous");
            py.detach(|| self.inner.matmat(d, xs, k, y, num_threads))
                .py()?;
        }
        Ok(out)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(csr_matvec, m)?)?;
    m.add_class::<SparseGram>()?;
    m.add_function(wrap_pyfunction!(csr_from_coo, m)?)?;
    m.add_function(wrap_pyfunction!(csr_transpose, m)?)?;
    Ok(())
}
