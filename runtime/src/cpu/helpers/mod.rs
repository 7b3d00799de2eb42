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
mod parallel;
mod quant;

use crate::cpu::gemm::Kernel;

/// State a run hands to `Call` helpers (frame slot `RUN_CONTEXT`); one per run.
#[repr(C)]
pub struct RunContext {
    /// The step hook, or 0: `extern "C" fn(ctx: *const RunContext, step: u64)`, which the
    /// entry function calls after each step when it is set (compiled code reads it at
    /// [`RunContext::STEP_HOOK_OFFSET`]). Profiled runs set it to record step times.
    pub step_hook: u64,
    pub gemm: Kernel,
    /// The first error a helper found in this run's data (a length or position out of
    /// range): the run fails with it. The helper still returns normally, memory-safe.
    pub error: std::sync::OnceLock<String>,
    /// When each step ended, in step order (profiled runs only).
    pub step_ends: Option<std::sync::Mutex<Vec<std::time::Instant>>>,
}

/// Type of [`RunContext::step_hook`].
pub type StepHook = extern "C" fn(ctx: *const RunContext, step: u64);

impl RunContext {
    /// Byte offset of `step_hook`, which the entry function loads.
    pub const STEP_HOOK_OFFSET: i32 = std::mem::offset_of!(RunContext, step_hook) as i32;

    pub fn new(gemm: Kernel) -> RunContext {
        RunContext {
            step_hook: 0,
            gemm,
            error: std::sync::OnceLock::new(),
            step_ends: None,
        }
    }

    /// A context that records when each of `steps` steps ends.
    pub fn profiled(gemm: Kernel, steps: usize) -> RunContext {
        RunContext {
            step_hook: record_step_end as StepHook as usize as u64,
            step_ends: Some(std::sync::Mutex::new(Vec::with_capacity(steps))),
            ..RunContext::new(gemm)
        }
    }

    /// Records a data error (the first one of a run is kept).
    pub fn fail(&self, msg: impl Into<String>) {
        let _ = self.error.set(msg.into());
    }
}

/// The step hook of profiled runs: notes the time (steps end in schedule order).
extern "C" fn record_step_end(ctx: *const RunContext, _step: u64) {
    let now = std::time::Instant::now();
    // SAFETY: the entry function passes the run's live context.
    let ctx = unsafe { &*ctx };
    if let Some(Ok(mut ends)) = ctx.step_ends.as_ref().map(|m| m.lock()) {
        ends.push(now);
    }
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
        parallel::HELPERS,
    ]
    .into_iter()
    .flatten()
}

/// The helper called `name`.
pub fn find(name: &str) -> Option<&'static Helper> {
    all().find(|h| h.name == name)
}
