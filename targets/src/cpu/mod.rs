//! The CPU target: Cranelift code generation (see docs/ARCHITECTURE.md for the plan).

pub mod codegen;
