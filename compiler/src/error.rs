//! kiln-compiler's error type.

use kiln_ir::IrError;

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The model file cannot be read or decoded.
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    /// The model uses something kiln does not support (op, dtype, attribute type, ...).
    #[error("{0}")]
    Unsupported(String),
    /// The model is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The text IR does not parse.
    #[error("{0}")]
    Parse(String),
    /// A pass pipeline is malformed or a pass failed.
    #[error("{0}")]
    Pass(String),
    #[error(transparent)]
    Ir(#[from] IrError),
    #[error(transparent)]
    Target(#[from] kiln_targets::TargetError),
    #[error(transparent)]
    Runtime(#[from] kiln_runtime::RuntimeError),
    /// Not `#[source]`: the message already carries the I/O error, once.
    #[error("{path}: {err}")]
    Io { path: String, err: std::io::Error },
}

impl CompileError {
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> CompileError {
        CompileError::Io {
            path: path.as_ref().display().to_string(),
            err: source,
        }
    }
}
