//! Tiling: how a kernel's work is cut for the hardware, computed at compile time under the
//! profile's limits and stored in the kernel's tiling data, as CANN's host-side tiling
//! functions do. By core type, since kernel families share them: [`cube`] for matmul-like
//! kernels (base blocks in L0A/L0B/L0C, L1 depth, work per core), [`vector`] for kernels on
//! the vector cores (a 1-D split over blocks and UB tiles).

pub mod cube;
pub mod vector;
