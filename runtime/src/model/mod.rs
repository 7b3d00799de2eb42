//! Loading a CPU artifact and running it.

mod awake;
pub mod dim_expr;
pub mod frame;
pub mod manifest;
mod run;
pub mod tensor;

pub use dim_expr::DimExpr;
pub use manifest::Manifest;
pub use run::{Model, ModelOptions};
pub use tensor::{ElemType, Element, Tensor};
