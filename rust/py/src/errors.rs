//! Mapping of core errors onto the exception classes of `embspace.errors`.

use embspace_core::Error;
use pyo3::prelude::*;

/// The Python exception for a core error: the class of the same kind in
/// `embspace.errors`, constructed with the core's message.
pub fn to_py(err: Error) -> PyErr {
    let (name, msg) = match err {
        Error::InvalidParameter(m) => ("InvalidParameterError", m),
        Error::ShapeMismatch(m) => ("ShapeMismatchError", m),
        Error::NonFinite(m) => ("NonFiniteError", m),
        Error::DuplicateEntry(m) => ("DuplicateEntryError", m),
        Error::IndexOutOfRange(m) => ("IndexOutOfRangeError", m),
        Error::Numerical(m) => ("NumericalError", m),
    };
    Python::attach(|py| {
        match py
            .import("embspace.errors")
            .and_then(|module| module.getattr(name))
        {
            Ok(class) => match class.call1((msg.clone(),)) {
                Ok(instance) => PyErr::from_value(instance),
                Err(e) => e,
            },
            Err(_) => pyo3::exceptions::PyValueError::new_err(msg),
        }
    })
}

/// Extension trait: `core_result.py()?` converts a core error into a `PyErr`.
pub trait IntoPyResult<T> {
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for embspace_core::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
