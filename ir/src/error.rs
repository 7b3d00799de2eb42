//! kiln-ir's error type.

use crate::dim::DimError;
use crate::tensor::TensorError;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IrError {
    /// An op rejected its inputs or attributes; `node` is its label.
    #[error("{node}: {msg}")]
    Op { node: String, msg: String },
    #[error("unknown op `{0}`")]
    UnknownOp(String),
    #[error("the graph has a cycle")]
    Cycle,
    /// The graph breaks an invariant (the verifier's findings).
    #[error("invalid graph: {0}")]
    Invalid(String),
    /// The caller's inputs do not fit the graph.
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Dim(#[from] DimError),
    #[error(transparent)]
    Tensor(#[from] TensorError),
}
