//! The CPU target: lowering to a schedule, the static memory plan, Cranelift code
//! generation and the artifact (docs/ARCHITECTURE.md, "CPU target").

pub mod codegen;
pub mod compile;
pub mod lower;
pub mod memory;
#[cfg(test)]
pub mod testing;

pub use compile::{compile, CpuArtifact, CpuOptions};
