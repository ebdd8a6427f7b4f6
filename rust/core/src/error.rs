//! The error type shared by every fallible function of the core.

use thiserror::Error as ThisError;

/// Why a core operation refused its input. Each variant maps onto one typed
/// exception of `embspace.errors` in the binding layer.
#[derive(Debug, Clone, PartialEq, Eq, ThisError)]
pub enum Error {
    /// A parameter is out of its documented range (negative weight, k too large, ...).
    #[error("{0}")]
    InvalidParameter(String),
    /// Array lengths or matrix shapes that must agree do not.
    #[error("{0}")]
    ShapeMismatch(String),
    /// A value that must be finite is NaN or infinite.
    #[error("{0}")]
    NonFinite(String),
    /// The same (row, column) pair appears more than once.
    #[error("{0}")]
    DuplicateEntry(String),
    /// An index points outside its dimension.
    #[error("{0}")]
    IndexOutOfRange(String),
    /// A linear system could not be solved (not positive definite).
    #[error("{0}")]
    Numerical(String),
}

/// Result alias of the core.
pub type Result<T> = std::result::Result<T, Error>;
