//! embspace-core: the pure-Rust hot loops of embspace.
//!
//! Nothing in this crate knows about Python. Every public function validates its
//! input and returns [`Error`] instead of panicking, so the binding layer can map
//! each failure onto a typed Python exception.

pub mod csr;
pub mod dense;
pub mod error;
pub mod knn;
pub mod parallel;
pub mod spmv;
pub mod ties;
pub mod wals;

pub use error::{Error, Result};
