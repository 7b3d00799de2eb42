//! kiln-runtime's error type.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("not a kiln artifact (bad magic)")]
    NotAnArtifact,
    #[error(
        "artifact format version {found} is not supported (this runtime reads version {supported})"
    )]
    Version { found: u32, supported: u32 },
    #[error("corrupt artifact: {0}")]
    Corrupt(String),
    #[error("the artifact needs CPU features this machine lacks: {missing}")]
    CpuFeatures { missing: String },
    /// An input that does not fit the model (count, dtype, shape).
    #[error("{0}")]
    BadInput(String),
    #[error(
        "dim `{name}` = {value} is outside the bounds the model was compiled for ({min}..{max})"
    )]
    DimOutOfBounds {
        name: String,
        value: i64,
        min: i64,
        max: i64,
    },
    /// Not `#[source]`: the message already carries the I/O error, once.
    #[error("{path}: {err}")]
    Io { path: String, err: std::io::Error },
}

impl RuntimeError {
    pub fn io(path: &Path, source: std::io::Error) -> RuntimeError {
        RuntimeError::Io {
            path: path.display().to_string(),
            err: source,
        }
    }
}
