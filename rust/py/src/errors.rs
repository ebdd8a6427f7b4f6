//! Mapping of core errors onto the exception classes of `embspace.errors`.
//!
//! Each class is a typed PyO3 binding (`import_exception!`) whose class object
//! is imported once and cached. [`import_classes`] runs when `embspace._core`
//! is imported and imports every class then: a class that is missing from
//! `embspace.errors`, or is not an exception class, makes that import fail with
//! an `ImportError` naming it. There is no fallback class, so once the module
//! is imported every core error is raised as its own class.

use embspace_core::Error;
use pyo3::exceptions::{PyException, PyImportError};
use pyo3::import_exception;
use pyo3::prelude::*;
use pyo3::types::PyType;

/// The Python module that defines the exception classes.
const MODULE: &str = "embspace.errors";

/// One typed binding per class, [`to_py`] (an exhaustive `match`, so a new
/// core variant does not compile until it is mapped), the class names, and
/// [`import_classes`], all from one table of `variant => class`.
macro_rules! error_classes {
    ($($variant:ident => $class:ident),+ $(,)?) => {
        $(import_exception!(embspace.errors, $class);)+

        /// The names of the classes of `embspace.errors` that core errors map onto.
        const CLASS_NAMES: &[&str] = &[$(stringify!($class)),+];

        /// The Python exception for a core error: the class of the same kind
        /// in `embspace.errors`, constructed with the core's message.
        pub fn to_py(err: Error) -> PyErr {
            match err {
                $(Error::$variant(msg) => $class::new_err(msg),)+
            }
        }

        /// Imports `embspace.errors` and every class of [`CLASS_NAMES`], checks
        /// that each is an exception class, and fills the cache of each typed
        /// binding, so that raising a core error cannot fail later.
        pub fn import_classes(py: Python<'_>) -> PyResult<()> {
            let module = py.import(MODULE).map_err(|e| {
                import_error(py, format!("embspace._core needs the module {MODULE}"), e)
            })?;
            check_classes(&module)?;
            $(let _ = <$class as pyo3::PyTypeInfo>::type_object(py);)+
            Ok(())
        }
    };
}

error_classes! {
    InvalidParameter => InvalidParameterError,
    ShapeMismatch => ShapeMismatchError,
    NonFinite => NonFiniteError,
    DuplicateEntry => DuplicateEntryError,
    IndexOutOfRange => IndexOutOfRangeError,
    Numerical => NumericalError,
}

/// An `ImportError` with `message`, caused by `cause`.
fn import_error(py: Python<'_>, message: String, cause: PyErr) -> PyErr {
    let err = PyImportError::new_err(message);
    err.set_cause(py, Some(cause));
    err
}

/// `Ok` when `module` defines every class of [`CLASS_NAMES`] as a subclass of
/// `Exception`; otherwise an `ImportError` naming the first class that is not.
fn check_classes(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    for name in CLASS_NAMES {
        let what = format!("embspace._core needs the exception class {MODULE}.{name}");
        let attr = module
            .getattr(*name)
            .map_err(|e| import_error(py, what.clone(), e))?;
        let is_exception = match attr.cast::<PyType>() {
            Ok(class) => class.is_subclass_of::<PyException>()?,
            Err(_) => false,
        };
        if !is_exception {
            return Err(PyImportError::new_err(format!(
                "{what}, but {MODULE}.{name} is {}, not a subclass of Exception",
                attr.repr()?
            )));
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    //! These tests embed Python: `cargo test -p embspace-py` links libpython
    //! (the wheel does not: maturin sets `PYO3_BUILD_EXTENSION_MODULE`).

    use super::*;
    use pyo3::exceptions::PyAttributeError;
    use pyo3::types::PyDict;
    use std::ffi::CString;

    /// `python/embspace/errors.py` imported as `embspace.errors` under a bare
    /// `embspace` package: the real `__init__` needs the compiled extension.
    fn real_errors(py: Python<'_>) -> Bound<'_, PyModule> {
        let globals = PyDict::new(py);
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../python/embspace");
        globals.set_item("package_dir", dir).unwrap();
        py.run(
            c"import sys, types\n\
              package = types.ModuleType('embspace')\n\
              package.__path__ = [package_dir]\n\
              sys.modules['embspace'] = package\n",
            Some(&globals),
            None,
        )
        .unwrap();
        py.import(MODULE)
            .expect("python/embspace/errors.py imports")
    }

    #[test]
    fn every_core_error_raises_its_class_with_the_core_message() {
        Python::initialize();
        Python::attach(|py| {
            let module = real_errors(py);
            import_classes(py).expect("every class imports");
            // (error, its class in embspace.errors, the builtin that class derives from)
            let cases = [
                (
                    Error::InvalidParameter("k must be >= 1".into()),
                    "InvalidParameterError",
                    "ValueError",
                ),
                (
                    Error::ShapeMismatch("x has 3 rows".into()),
                    "ShapeMismatchError",
                    "ValueError",
                ),
                (
                    Error::NonFinite("value NaN".into()),
                    "NonFiniteError",
                    "ValueError",
                ),
                (
                    Error::DuplicateEntry("row 1, column 0".into()),
                    "DuplicateEntryError",
                    "ValueError",
                ),
                (
                    Error::IndexOutOfRange("row index 7".into()),
                    "IndexOutOfRangeError",
                    "IndexError",
                ),
                (
                    Error::Numerical("pivot 2".into()),
                    "NumericalError",
                    "ArithmeticError",
                ),
            ];
            assert_eq!(cases.len(), CLASS_NAMES.len());
            let builtins = py.import("builtins").unwrap();
            let base = module.getattr("EmbspaceError").unwrap();
            for (err, class, builtin) in cases {
                let msg = err.to_string();
                let value = to_py(err).into_value(py).into_bound(py);
                assert!(
                    value.get_type().is(module.getattr(class).unwrap()),
                    "{class}"
                );
                assert!(
                    value.is_instance(&base).unwrap(),
                    "{class} is an EmbspaceError"
                );
                let builtin = builtins.getattr(builtin).unwrap();
                assert!(
                    value.is_instance(&builtin).unwrap(),
                    "{class} is a {builtin}"
                );
                assert_eq!(value.str().unwrap().to_string(), msg);
            }
        });
    }

    /// A new module `name` made of the classes `CLASS_NAMES` (each a
    /// `ValueError`) but `NumericalError`, then `numerical` (Python source).
    fn errors_module<'py>(py: Python<'py>, name: &str, numerical: &str) -> Bound<'py, PyModule> {
        let mut code = String::new();
        for class in CLASS_NAMES.iter().filter(|&&c| c != "NumericalError") {
            code.push_str(&format!("class {class}(ValueError): pass\n"));
        }
        code.push_str(numerical);
        let name = CString::new(name).unwrap();
        PyModule::from_code(py, &CString::new(code).unwrap(), &name, &name).unwrap()
    }

    /// The `ImportError` of `check_classes` on `module` and its message.
    fn import_error_of(py: Python<'_>, module: &Bound<'_, PyModule>) -> (PyErr, String) {
        let err = check_classes(module).expect_err("the module lacks a class");
        assert!(err.is_instance_of::<PyImportError>(py), "{err}");
        let msg = err.value(py).str().unwrap().to_string();
        (err, msg)
    }

    #[test]
    fn a_missing_or_wrong_class_is_an_import_error_naming_it() {
        Python::initialize();
        Python::attach(|py| {
            let complete = errors_module(
                py,
                "complete_errors",
                "class NumericalError(ArithmeticError): pass\n",
            );
            check_classes(&complete).expect("every class is there");

            let (err, msg) = import_error_of(py, &errors_module(py, "missing_errors", ""));
            assert_eq!(
                msg,
                "embspace._core needs the exception class embspace.errors.NumericalError"
            );
            let cause = err.cause(py).expect("the failed lookup is the cause");
            assert!(cause.is_instance_of::<PyAttributeError>(py), "{cause}");

            let (_, msg) =
                import_error_of(py, &errors_module(py, "int_errors", "NumericalError = 3\n"));
            assert_eq!(
                msg,
                "embspace._core needs the exception class embspace.errors.NumericalError, \
                 but embspace.errors.NumericalError is 3, not a subclass of Exception"
            );

            let plain = errors_module(py, "plain_errors", "class NumericalError: pass\n");
            let (_, msg) = import_error_of(py, &plain);
            assert_eq!(
                msg,
                "embspace._core needs the exception class embspace.errors.NumericalError, \
                 but embspace.errors.NumericalError is <class 'plain_errors.NumericalError'>, \
                 not a subclass of Exception"
            );
        });
    }
}
