//! Runtime helpers: the functions compiled code calls through the helper table in its
//! frame (no relocations, no linker). An artifact names the helpers it needs; the loader
//! builds the table from those names and refuses artifacts naming one it lacks.

mod attention;
mod conv;
pub mod elem;
pub mod gemm;
mod index;
mod math;
mod moe;
mod quant;

use crate::cpu::gemm::Kernel;

/// State a run hands to `Call` helpers (frame slot `RUN_CONTEXT`).
pub struct RunContext {
    pub gemm: Kernel,
}

/// A helper's calling convention, which the code generator must use to call it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelperSig {
    /// `extern "C" fn(ctx: *const RunContext, args: *const u64)`: a kernel-sized call.
    Call,
    /// `extern "C" fn(f64) -> f64`: a scalar math function.
    F64ToF64,
    /// `extern "C" fn(f64, f64) -> f64`.
    F64F64ToF64,
}

pub type CallFn = unsafe extern "C" fn(ctx: *const RunContext, args: *const u64);
pub type F64ToF64Fn = extern "C" fn(f64) -> f64;
pub type F64F64ToF64Fn = extern "C" fn(f64, f64) -> f64;

#[derive(Clone, Copy)]
pub enum HelperFn {
    Call(CallFn),
    F64ToF64(F64ToF64Fn),
    F64F64ToF64(F64F64ToF64Fn),
}

pub struct Helper {
    pub name: &'static str,
    pub func: HelperFn,
}

impl Helper {
    pub fn sig(&self) -> HelperSig {
        match self.func {
            HelperFn::Call(_) => HelperSig::Call,
            HelperFn::F64ToF64(_) => HelperSig::F64ToF64,
            HelperFn::F64F64ToF64(_) => HelperSig::F64F64ToF64,
        }
    }

    /// The address the helper table holds.
    pub fn address(&self) -> u64 {
        match self.func {
            HelperFn::Call(f) => f as usize as u64,
            HelperFn::F64ToF64(f) => f as usize as u64,
            HelperFn::F64F64ToF64(f) => f as usize as u64,
        }
    }
}

/// Every helper this runtime has.
pub fn all() -> impl Iterator<Item = &'static Helper> {
    [
        gemm::HELPERS,
        math::HELPERS,
        conv::HELPERS,
        attention::HELPERS,
        moe::HELPERS,
        index::HELPERS,
        quant::HELPERS,
    ]
    .into_iter()
    .flatten()
}

/// The helper called `name`.
pub fn find(name: &str) -> Option<&'static Helper> {
    all().find(|h| h.name == name)
}
