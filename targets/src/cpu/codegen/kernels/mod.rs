//! Kernel generators, one file (or folder) per family. Each generator takes a
//! `KernelBuilder` and emits the body; its doc comment gives the argument slots the lowering
//! fills.

mod copy;
pub mod elementwise;
pub mod gather;
pub mod reduce;
pub mod strided;

pub use copy::{copy_bytes, write_i64s};
