//! The thin PyO3 layer over `embspace-core`, imported as `embspace._core`.
//!
//! Every function here converts numpy arrays into slices, releases the GIL
//! around the core call (`Python::detach`) and maps core errors onto the typed
//! exceptions of `embspace.errors`. No algorithm lives in this crate.

use pyo3::prelude::*;

mod convert;
mod csr;
mod errors;
mod knn;
mod ties;
mod wals;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    csr::register(m)?;
    wals::register(m)?;
    knn::register(m)?;
    ties::register(m)?;
    Ok(())
}
