//! kiln-targets: code generation for the CPU (Cranelift) and Ascend (kernel launch lists) targets.

pub mod ascend;
pub mod cpu;
pub mod error;

pub use error::TargetError;
