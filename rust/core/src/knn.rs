//! Exact k nearest neighbors (filled in by the k-NN work).
