//! The CPU executor's pieces.

pub mod gemm;
pub mod helpers;
pub mod peak;
