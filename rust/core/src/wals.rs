//! Weighted alternating least squares (filled in by the WALS work).
