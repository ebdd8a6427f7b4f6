//! Borrowing numpy arrays as Rust slices, with typed errors instead of panics.

use numpy::{Element, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::errors::to_py;
use embspace_core::Error;

/// A contiguous 1-D view, or a `ShapeMismatchError` naming the argument.
pub fn slice1<'a, T: Element>(a: &'a PyReadonlyArray1<'_, T>, name: &str) -> PyResult<&'a [T]> {
    a.as_slice().map_err(|_| {
        to_py(Error::ShapeMismatch(format!(
            "{name} must be a C-contiguous 1-D array"
        )))
    })
}

/// A C-contiguous 2-D view as a flat row-major slice and its (rows, cols).
pub fn slice2<'a, T: Element>(
    a: &'a PyReadonlyArray2<'_, T>,
    name: &str,
) -> PyResult<(&'a [T], usize, usize)> {
    let shape = a.shape();
    let (r, c) = (shape[0], shape[1]);
    let s = a.as_slice().map_err(|_| {
        to_py(Error::ShapeMismatch(format!(
            "{name} must be a C-contiguous 2-D array"
        )))
    })?;
    Ok((s, r, c))
}
