//! The Ascend target: a fused graph to a launch list of CANN-named kernels
//! (docs/ARCHITECTURE.md, "Ascend target").
//!
//! ```text
//! graph --lower--> Program { launches, buffers, weights }     lower/: one file per kernel family
//!                    (kernel, coreType, blockDim, tiling)      tiling/: cube and vector tiling
//!                    weights in the device dtype, FRACTAL_NZ   format.rs
//!       --memory::plan--> HBM offsets (weights first, then liveness first fit)
//!       --compile.rs--> .kiln = header (target ascend) + launch list (JSON) + weights
//! ```
//!
//! The launch list's types, the hardware profiles and the device model that runs and
//! checks it live in kiln-runtime (`kiln_runtime::ascend`): the runtime owns the format.
//! Shapes are static (every symbol given with `--dim`), as CANN's offline compiler wants.

pub mod compile;
pub mod format;
pub mod lower;
pub mod memory;
pub mod specialize;
#[cfg(test)]
pub mod testing;
#[cfg(test)]
mod tests;
pub mod tiling;

pub use compile::{compile, AscendArtifact, AscendOptions};
