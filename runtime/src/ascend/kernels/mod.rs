//! Kernel simulations, one file per kernel family, each exporting `KERNELS`: a table of
//! (CANN kernel name, simulation). A simulation reads its tiling fields and bindings from
//! the [`KernelSim`], and for each block takes a [`Core`](crate::ascend::sim::core::Core),
//! allocates the local buffers its tiling implies and walks the tiles the tiling says,
//! moving data the way the hardware does (see [`crate::ascend::sim::core`]). It must
//! derive every buffer size and tile from the tiling, never from the shapes alone: the point
//! is to check that the tiling kiln emits is one the hardware can run, and computes the
//! right numbers. The semantics of each kernel are those of the kiln IR op(s) it lowers.
//!
//! A kernel name no family lists is refused by the device model ("no kernel named X").

mod activation;
mod attention;
pub mod elementwise;
pub mod matmul;
mod moe;
mod movement;
mod norm;
mod reduce;
mod rope;
mod scatter;
mod softmax;
pub mod split;
mod topk;
mod transdata;

use crate::ascend::sim::core::{KernelSim, SimResult};

/// Runs one kernel launch on the device model.
pub type SimulateFn = fn(&mut KernelSim) -> SimResult<()>;

const FAMILIES: &[&[(&str, SimulateFn)]] = &[
    elementwise::KERNELS,
    activation::KERNELS,
    rope::KERNELS,
    attention::KERNELS,
    moe::KERNELS,
    matmul::KERNELS,
    transdata::KERNELS,
    movement::KERNELS,
    reduce::KERNELS,
    softmax::KERNELS,
    norm::KERNELS,
    topk::KERNELS,
    scatter::KERNELS,
];

/// The simulation of kernel `name`.
pub fn simulator(name: &str) -> Option<SimulateFn> {
    FAMILIES
        .iter()
        .flat_map(|f| f.iter())
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
}

/// Every kernel name the device model runs.
pub fn names() -> Vec<&'static str> {
    FAMILIES
        .iter()
        .flat_map(|f| f.iter())
        .map(|(n, _)| *n)
        .collect()
}
