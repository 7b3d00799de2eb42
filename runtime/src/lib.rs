//! kiln-runtime: loads a .kiln artifact and runs it. It depends on no other kiln crate.

pub mod artifact;
pub mod ascend;
pub mod cpu;
pub mod error;
pub mod model;

pub use error::RuntimeError;
pub use model::{ElemType, Model, ModelOptions, Tensor};
