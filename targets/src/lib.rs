//! kiln-targets: code generation for the CPU (Cranelift) and, later, Ascend targets.

pub mod cpu;
pub mod error;

pub use error::TargetError;
