//! Splitting a generated kernel's outermost loop over the run's threads.

use rayon::prelude::*;

use super::{Helper, HelperFn, RunContext};

/// A generated kernel: `extern "C" fn(frame, args)`.
type KernelFn = unsafe extern "C" fn(*const u64, *const u64);

/// Below this many elements a kernel runs on the calling thread: splitting costs more than
/// it saves.
const MIN_PARALLEL_ELEMS: u64 = 32 * 1024;

/// `parallel_rows`: args `[kernel, frame, args, nargs, begin_slot, row_elems]`. `kernel`
/// loops over rows `args[begin_slot] .. args[begin_slot + 1]` of `row_elems` elements each
/// (rows of one element are split on multiples of 16) and writes each row's outputs only;
/// the rows are shared out among the pool's threads, each calling `kernel(frame, args')`
/// with its own copy of the arguments and its own range.
///
/// # Safety
/// `args` points at 6 slots as described; `kernel` is a kernel of the running artifact, and
/// `frame` and the argument array are valid for it.
unsafe extern "C" fn parallel_rows(_ctx: *const RunContext, args: *const u64) {
    // SAFETY: the caller passes 6 readable slots (the kernel's own argument array).
    let a = unsafe { std::slice::from_raw_parts(args, 6) };
    // SAFETY: slot 0 holds the address of a kernel of the running artifact (compiled code
    // with the kernel calling convention).
    let kernel: KernelFn = unsafe { std::mem::transmute::<usize, KernelFn>(a[0] as usize) };
    let frame = a[1] as usize;
    // SAFETY: slots 2 and 3 are the kernel's argument array and its length.
    let kargs = unsafe { std::slice::from_raw_parts(a[2] as *const u64, a[3] as usize) };
    let slot = a[4] as usize;
    if slot + 1 >= kargs.len() {
        return;
    }
    let row = a[5].max(1);
    let (begin, end) = (kargs[slot] as i64, kargs[slot + 1] as i64);
    let rows = (end - begin).max(0) as u64;
    let threads = rayon::current_num_threads() as u64;
    if threads < 2 || rows < 2 || rows.saturating_mul(row) < MIN_PARALLEL_ELEMS {
        // SAFETY: the kernel with its own arguments, as the caller would have called it.
        unsafe { kernel(frame as *const u64, kargs.as_ptr()) };
        return;
    }
    let align = if row == 1 { 16 } else { 1 };
    let chunks = threads.min(rows / align).max(1);
    let cut = |c: u64| -> i64 {
        if c >= chunks {
            end
        } else {
            begin + ((rows * c / chunks) / align * align) as i64
        }
    };
    (0..chunks).into_par_iter().for_each(|c| {
        let (lo, hi) = (cut(c), cut(c + 1));
        if lo >= hi {
            return;
        }
        let mut local = kargs.to_vec();
        local[slot] = lo as u64;
        local[slot + 1] = hi as u64;
        // SAFETY: the same kernel on a sub-range of its rows: the rows write disjoint
        // outputs, the frame is only read, and `local` lives until the call returns.
        unsafe { kernel(frame as *const u64, local.as_ptr()) };
    });
}

pub(super) const HELPERS: &[Helper] = &[Helper {
    name: "parallel_rows",
    func: HelperFn::Call(parallel_rows),
}];
