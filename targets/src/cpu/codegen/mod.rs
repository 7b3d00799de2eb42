//! Cranelift code generation into one position-independent code blob.

pub mod blob;
pub mod isa;
