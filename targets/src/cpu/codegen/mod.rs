//! Cranelift code generation: the ISA, kernels, the entry function and the code blob.

pub mod blob;
pub mod dims;
pub mod entry;
pub mod isa;
pub mod kernel;
pub mod kernels;
