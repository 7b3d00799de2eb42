//! The Ascend executor: runs the launch lists kiln's Ascend target emits.
//!
//! ```text
//! .kiln (target ascend) = header + launch list (JSON manifest) + weights (device dtype,
//!                         matmul weights already in FRACTAL_NZ)
//! AscendModel::load --> AscendDevice::load (HBM plan checked, weights copied to HBM)
//! AscendModel::run  --> execute: inputs to HBM, AscendDevice::launch per kernel, outputs back
//! ```
//!
//! - [`profile`]: the hardware (Ascend910B2, 910B4, 910_93): core counts, buffer sizes,
//!   alignments, clock, bandwidths, each with its source.
//! - [`descriptor`]: the launch list: per kernel what CANN's kernel metadata carries
//!   (kernelName, coreType, blockDim, workspace, opParaSize, tiling data) and the tensor
//!   bindings (HBM offset, shape, storage shape, dtype, format); the HBM plan.
//! - [`device`]: the [`AscendDevice`](device::AscendDevice) trait (HBM, copies, launches)
//!   and the host side of a run. [`sim::SimDevice`] is the CPU model of the device; a real
//!   device over AscendCL is another implementation of the same trait.
//! - [`sim`]: the device model. Checks the plan and every descriptor, runs each kernel block
//!   by block through a core's local memories (GM -> L1 -> L0A/L0B -> cube -> L0C -> GM,
//!   GM -> UB -> GM), rejecting any tile over a buffer or misaligned, computing in the
//!   device's dtypes (f16/bf16 in, f32 accumulation).
//! - [`kernels`]: one file per kernel family, each a table of (CANN kernel name,
//!   simulation); the simulations implement the semantics of the kiln IR ops they lower.
//! - [`cost`]: prices each launch (cube and vector cycles, data movement, HBM traffic,
//!   launch overhead); `kiln run --profile` prints it.

pub mod cost;
pub mod descriptor;
pub mod device;
pub mod error;
pub mod kernels;
pub mod model;
pub mod profile;
pub mod report;
pub mod sim;

pub use descriptor::LaunchList;
pub use error::AscendError;
pub use model::AscendModel;
pub use profile::Profile;
