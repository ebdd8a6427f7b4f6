//! Thread pools with an explicit size, so callers control parallelism.
//!
//! Determinism never depends on the pool size: every parallel loop of the
//! core uses a fixed partition of its work and a fixed reduction order.

use crate::error::{Error, Result};

/// Run `f` inside a rayon pool of `num_threads` threads (0 = rayon's default,
/// the number of logical CPUs).
pub fn with_threads<T: Send, F: FnOnce() -> T + Send>(num_threads: usize, f: F) -> Result<T> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(num_threads)
        .build()
        .map_err(|e| Error::InvalidParameter(format!("cannot start {num_threads} threads: {e}")))?;
    Ok(pool.install(f))
}
