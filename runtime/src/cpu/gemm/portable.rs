//! The portable microkernel: plain Rust, for CPUs without AVX2 and as a cross-check.

use super::{Kernel, NR};

const MR: usize = 4;

pub const KERNEL: Kernel = Kernel {
    name: "portable 4x32",
    mr: MR,
    run: kernel,
};

/// # Safety
/// See [`super::Microkernel`].
unsafe fn kernel(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    let mut acc = [[0.0f32; NR]; MR];
    // SAFETY: the caller guarantees kc*MR floats at a and kc*NR at b.
    let (a, b) = unsafe {
        (
            std::slice::from_raw_parts(a, kc * MR),
            std::slice::from_raw_parts(b, kc * NR),
        )
    };
    for kk in 0..kc {
        let brow = &b[kk * NR..kk * NR + NR];
        for r in 0..MR {
            let av = a[kk * MR + r];
            for j in 0..NR {
                acc[r][j] += av * brow[j];
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        // SAFETY: the caller guarantees an MR x NR tile with row stride ldc at c.
        let out = unsafe { std::slice::from_raw_parts_mut(c.add(r * ldc), NR) };
        for j in 0..NR {
            out[j] = if accumulate { out[j] + row[j] } else { row[j] };
        }
    }
}
