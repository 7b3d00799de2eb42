//! The CPU executor's pieces.

pub mod attention;
pub mod gemm;
pub mod helpers;
pub mod moe;
pub mod peak;
