//! Running a long core call so that Ctrl-C interrupts it.
//!
//! Python runs its signal handlers (the one of SIGINT raises
//! `KeyboardInterrupt`) only in the main thread, between bytecodes, so a
//! Rust call that holds the calling thread until it is done cannot be
//! interrupted. [`interruptible`] therefore runs the core call on a helper
//! thread (which drives the call's own rayon pool) while the calling thread,
//! with the GIL released, wakes every [`POLL`] to run the pending signal
//! handlers (`Python::check_signals`). When a handler raises, the call's
//! [`Cancel`] token is raised; the workers poll it between small units of
//! work (a tile of k-NN candidates, a WALS row), so the call ends within
//! about a unit of work, and the handler's exception is returned. Called
//! from another thread than the main one, `check_signals` has nothing to do
//! and the call simply runs to its end.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use embspace_core::parallel::Cancel;
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;

use crate::errors::to_py;

/// How often the calling thread looks for pending signals.
const POLL: Duration = Duration::from_millis(20);

/// Marks the call finished when dropped, also when the call panics.
struct Finished<'a>(&'a (Mutex<bool>, Condvar));

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        let (flag, cv) = self.0;
        *flag.lock().unwrap_or_else(PoisonError::into_inner) = true;
        cv.notify_all();
    }
}

/// Run `call` (a cancellable core call, given its token) so that a signal
/// handler raising an exception (Ctrl-C) stops it promptly: that exception
/// is then returned, whatever the call returned. Otherwise the call's error
/// is mapped by [`to_py`], and its value returned.
pub fn interruptible<T, F>(py: Python<'_>, call: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce(&Cancel) -> embspace_core::Result<Option<T>> + Send,
{
    let cancel = Cancel::new();
    let done = (Mutex::new(false), Condvar::new());
    let (out, interrupted) = std::thread::scope(|s| {
        let worker = s.spawn(|| {
            let _finished = Finished(&done);
            call(&cancel)
        });
        let mut interrupted: Option<PyErr> = None;
        loop {
            let finished = py.detach(|| {
                let (flag, cv) = &done;
                let guard = flag.lock().unwrap_or_else(PoisonError::into_inner);
                let (guard, _) = cv
                    .wait_timeout_while(guard, POLL, |finished| !*finished)
                    .unwrap_or_else(PoisonError::into_inner);
                *guard
            });
            if finished {
                break;
            }
            if interrupted.is_none() {
                if let Err(e) = py.check_signals() {
                    cancel.cancel();
                    interrupted = Some(e);
                }
            }
        }
        let out = worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (out, interrupted)
    });
    if let Some(e) = interrupted {
        return Err(e);
    }
    match out {
        Ok(Some(v)) => Ok(v),
        Err(e) => Err(to_py(e)),
        // Only `interruptible` holds the token, and it raises it only on an
        // interrupt, handled above.
        Ok(None) => Err(PyKeyboardInterrupt::new_err("the call was cancelled")),
    }
}
