//! Strided copy kernels: an N-d view of a source into a contiguous destination.
