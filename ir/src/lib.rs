//! kiln-ir: the graph IR of kiln.
//!
//! - [`dtype`], [`dim`], [`types`]: element types, symbolic dims, value types.
//! - [`tensor`]: concrete tensors, for constants and the interpreter.
//! - [`graph`]: the graph (petgraph), its values and its weight store.
//! - [`ops`]: every op's shape rule and reference semantics, in one place per op.
//! - [`infer`], [`verify`]: whole-graph inference and the verifier.
//! - [`interp`]: the reference interpreter, the project's oracle.
//! - [`text`]: the text IR, printed and parsed.

pub mod attr;
pub mod dim;
pub mod dtype;
pub mod error;
pub mod fp8;
pub mod graph;
pub mod infer;
pub mod interp;
pub mod ops;
pub mod tensor;
pub mod text;
pub mod types;
pub mod verify;

pub use attr::{Attr, Attrs, AttrsExt};
pub use dim::Dim;
pub use dtype::DType;
pub use error::IrError;
pub use graph::{Graph, Node, NodeId, Value};
pub use tensor::{Data, Tensor};
pub use types::{Shape, ValueType};
