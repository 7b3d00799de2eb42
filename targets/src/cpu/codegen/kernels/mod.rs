//! Kernel generators, one file per family. Each takes a `KernelBuilder` and emits the body;
//! its doc comment gives the argument slots the lowering fills.

mod copy;

pub use copy::{copy_bytes, write_i64s};
