//! kiln-targets' error type.

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The code generator cannot be set up for the requested CPU.
    #[error("cannot target this CPU: {0}")]
    Isa(String),
    /// Cranelift rejected a function kiln generated (a kiln bug).
    #[error("code generation failed in {func}: {msg}")]
    Codegen { func: String, msg: String },
}
