//! Bindings of `embspace_core::knn`.

use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

use crate::convert::{slice1, slice2};
use crate::errors::{to_py, IntoPyResult};
use crate::interrupt::interruptible;
use embspace_core::knn::{knn_cancellable, screen_candidates, screened, Metric};
use embspace_core::Error;

type KnnArrays<'py> = (Bound<'py, PyArray2<f32>>, Bound<'py, PyArray2<i64>>);

/// Exact k nearest neighbors of the rows `queries` (int64 row indices; all rows
/// when None) of `data` (n x d float32, C-contiguous), each query excluded by
/// index. `metric` is cosine, euclidean or dot (distance = negative inner
/// product). Returns (distances float32, indices int64), n_queries x k, each
/// row sorted by (distance, index). `num_threads = 0` uses every core.
/// Ctrl-C stops the search within a tile of candidates (KeyboardInterrupt).
#[pyfunction]
#[pyo3(signature = (data, k, metric = "cosine", queries = None, num_threads = 0))]
fn knn<'py>(
    py: Python<'py>,
    data: PyReadonlyArray2<'py, f32>,
    k: i64,
    metric: &str,
    queries: Option<PyReadonlyArray1<'py, i64>>,
    num_threads: i64,
) -> PyResult<KnnArrays<'py>> {
    let metric = Metric::parse(metric).py()?;
    let (x, n, d) = slice2(&data, "data")?;
    if k < 0 {
        return Err(to_py(Error::InvalidParameter(format!(
            "k must be at least 1, got {k}"
        ))));
    }
    if num_threads < 0 {
        return Err(to_py(Error::InvalidParameter(format!(
            "num_threads must be >= 0 (0 = all cores), got {num_threads}"
        ))));
    }
    let qs: Option<Vec<usize>> = match &queries {
        None => None,
        Some(a) => {
            let q = slice1(a, "queries")?;
            if let Some((pos, &bad)) = q
                .iter()
                .enumerate()
                .find(|(_, &v)| v < 0 || v as u64 >= n as u64)
            {
                return Err(to_py(Error::IndexOutOfRange(format!(
                    "query index {bad} at position {pos} is outside [0, {n})"
                ))));
            }
            Some(q.iter().map(|&v| v as usize).collect())
        }
    };
    let (k, threads) = (k as usize, num_threads as usize);
    let nq = qs.as_ref().map_or(n, Vec::len);
    let (dist, idx) = interruptible(py, |cancel| {
        knn_cancellable(x, n, d, qs.as_deref(), k, metric, threads, cancel)
    })?;
    Ok((
        PyArray1::from_vec(py, dist).reshape([nq, k])?,
        PyArray1::from_vec(py, idx).reshape([nq, k])?,
    ))
}

/// Whether `knn(..., queries=...)` on `d`-dimensional data takes the int8-screened
/// path (AVX-512 VNNI products with rigorous error bounds, then the exact
/// re-ranking: the same result). False without AVX-512 VNNI, for d > 4096, and
/// when the environment variable EMBSPACE_KNN_SCREEN is `0` (read at each call).
#[pyfunction]
fn knn_screened(d: usize) -> bool {
    screened(d)
}

/// Diagnostics of the screened search: the number of rows each of `queries`
/// (int64 row indices of `data`, n x d float32) re-ranked exactly, as uint64
/// (at least k; the others were ruled out by the int8 bounds). Runs the
/// screened search whatever EMBSPACE_KNN_SCREEN says; raises
/// InvalidParameterError on a CPU without AVX-512 VNNI or for d > 4096.
#[pyfunction]
#[pyo3(signature = (data, k, metric = "cosine", queries = None, num_threads = 0))]
fn knn_screen_candidates<'py>(
    py: Python<'py>,
    data: PyReadonlyArray2<'py, f32>,
    k: usize,
    metric: &str,
    queries: Option<PyReadonlyArray1<'py, i64>>,
    num_threads: usize,
) -> PyResult<Bound<'py, PyArray1<u64>>> {
    let metric = Metric::parse(metric).py()?;
    let (x, n, d) = slice2(&data, "data")?;
    let qs: Vec<usize> = match &queries {
        None => (0..n).collect(),
        Some(a) => {
            let q = slice1(a, "queries")?;
            if let Some((pos, &bad)) = q
                .iter()
                .enumerate()
                .find(|(_, &v)| v < 0 || v as u64 >= n as u64)
            {
                return Err(to_py(Error::IndexOutOfRange(format!(
                    "query index {bad} at position {pos} is outside [0, {n})"
                ))));
            }
            q.iter().map(|&v| v as usize).collect()
        }
    };
    let counts = py
        .detach(|| screen_candidates(x, n, d, &qs, k, metric, num_threads))
        .py()?;
    Ok(PyArray1::from_vec(py, counts))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(knn_screen_candidates, m)?)?;
    m.add_function(wrap_pyfunction!(knn, m)?)?;
    m.add_function(wrap_pyfunction!(knn_screened, m)?)?;
    Ok(())
}
