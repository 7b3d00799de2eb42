//! Gather and scatter kernels.
