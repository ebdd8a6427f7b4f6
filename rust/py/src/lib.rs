//! The thin PyO3 layer over `embspace-core`, imported as `embspace._core`.
//!
//! Every function here converts numpy arrays into slices, releases the GIL
//! around the core call (`Python::detach`) and maps core errors onto the typed
//! exceptions of `embspace.errors` (imported with the module: a missing class
//! makes `import embspace._core` fail). The long calls (k-NN, WALS half-sweeps
//! and loss) run through [`interrupt::interruptible`], so Ctrl-C stops them
//! promptly. No algorithm lives in this crate, and none of it uses rayon's
//! global pool (see `embspace_core::parallel`), so a forked process can call
//! it again.

use pyo3::prelude::*;

mod convert;
mod csr;
mod errors;
mod interrupt;
mod knn;
mod ties;
mod wals;

/// The largest ``num_threads`` the core accepts: 4 times the CPUs this
/// process may use (affinity and cgroup quota included), and at least 16.
#[pyfunction]
fn max_threads() -> usize {
    embspace_core::parallel::max_threads()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::import_classes(m.py())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(max_threads, m)?)?;
    csr::register(m)?;
    wals::register(m)?;
    knn::register(m)?;
    ties::register(m)?;
    Ok(())
}
