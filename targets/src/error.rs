//! kiln-targets' error type.

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The code generator cannot be set up for the requested CPU.
    #[error("cannot target this CPU: {0}")]
    Isa(String),
    /// The graph cannot be compiled for the CPU (an op without a kernel, a data-dependent
    /// shape, ...).
    #[error("{0}")]
    Lower(String),
    /// The artifact could not be written.
    #[error("{0}")]
    Artifact(String),
    /// Cranelift rejected a function kiln generated (a kiln bug).
    #[error("code generation failed in {func}: {msg}")]
    Codegen { func: String, msg: String },
}
