//! Thread pools with an explicit size, and cooperative cancellation.
//!
//! Determinism never depends on the pool size: every parallel loop of the
//! core uses a fixed partition of its work and a fixed reduction order.
//!
//! # No global pool
//!
//! Every parallel loop of the core runs inside [`with_threads`], which builds
//! a pool for the one call and drops it when the call returns; nothing in the
//! core uses (or even initialises) rayon's global pool. So no worker thread
//! outlives a call, and a process forked between two calls (Python's
//! `multiprocessing` forks by default on Linux) starts its next call with a
//! fresh pool. A persistent pool would be inherited by the child without its
//! threads, and the child's first parallel call would wait for them forever.
//! `tests/no_global_pool.rs` checks that no public function touches the
//! global pool.
//!
//! # Cancellation
//!
//! The long calls ([`crate::knn::knn_cancellable`],
//! [`crate::wals::half_sweep_run`], [`crate::wals::loss_cancellable`])
//! take a [`Cancel`] that their workers poll between small units of work (a
//! tile of k-NN candidates, a row of WALS); once it is raised they stop and
//! return `Ok(None)`. The Python binding raises it from the calling thread
//! when a signal handler (Ctrl-C) raises an exception.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The largest `num_threads` accepted: 4 times the number of CPUs this
/// process may use (`std::thread::available_parallelism`, which honours CPU
/// affinity and cgroup quotas, as rayon's default does), and at least 16.
/// More threads than that only add start-up time (thousands of threads take
/// seconds to start) and contention.
pub fn max_threads() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        cpus.saturating_mul(4).max(16)
    })
}

/// Run `f` inside a new rayon pool of `num_threads` threads (0 = rayon's
/// default, the number of CPUs available), dropped when `f` returns.
///
/// `num_threads` above [`max_threads`] is an [`Error::InvalidParameter`].
pub fn with_threads<T: Send, F: FnOnce() -> T + Send>(num_threads: usize, f: F) -> Result<T> {
    let max = max_threads();
    if num_threads > max {
        return Err(Error::InvalidParameter(format!(
            "num_threads = {num_threads} exceeds the maximum {max} (4 x the CPUs available, \
             at least 16)"
        )));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(num_threads)
        .build()
        .map_err(|e| Error::InvalidParameter(format!("cannot start {num_threads} threads: {e}")))?;
    Ok(pool.install(f))
}

/// A request to stop a call early, shared by whoever may raise it and the
/// workers of the call, which poll it.
#[derive(Debug, Default)]
pub struct Cancel(AtomicBool);

impl Cancel {
    /// A token that has not been raised.
    pub const fn new() -> Self {
        Cancel(AtomicBool::new(false))
    }

    /// Ask the calls polling this token to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`Cancel::cancel`] was called.
    #[inline]
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The value of a cancellable call made with a token that nobody else can
/// see, so nobody can raise it.
pub(crate) fn never_cancelled<T>(r: Result<Option<T>>) -> Result<T> {
    r.map(|v| v.expect("a Cancel nobody holds is never raised"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_more_threads_than_the_maximum() {
        let max = max_threads();
        assert!(max >= 16);
        assert_eq!(with_threads(3, rayon::current_num_threads).unwrap(), 3);
        let err = with_threads(max + 1, || ()).unwrap_err();
        assert!(matches!(err, Error::InvalidParameter(ref m) if m.contains("exceeds")));
        assert!(with_threads(usize::MAX, || ()).is_err());
    }

    #[test]
    fn a_token_stays_raised() {
        let c = Cancel::new();
        assert!(!c.is_cancelled());
        c.cancel();
        assert!(c.is_cancelled());
    }
}
