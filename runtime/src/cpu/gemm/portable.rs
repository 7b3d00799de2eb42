//! The portable microkernel: plain Rust, for CPUs without AVX2 and as a cross-check.

use super::{Kernel, Prefetch, NR};

const MR: usize = 4;

pub const KERNEL: Kernel = Kernel {
    name: "portable 4x32",
    mr: MR,
    run: kernel,
    row: None,
};

/// # Safety
/// See [`super::Microkernel`]. Plain Rust has no prefetch: `_prefetch` is not used.
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(
    kc: usize,
    a: *const f32,
    rsa: isize,
    b: *const f32,
    c: *mut f32,
    rsc: isize,
    rows: usize,
    cols: usize,
    accumulate: bool,
    _prefetch: Prefetch,
) {
    let mut acc = [[0.0f32; NR]; MR];
    // SAFETY: the caller guarantees kc*NR floats at b.
    let b = unsafe { std::slice::from_raw_parts(b, kc * NR) };
    for kk in 0..kc {
        let brow = &b[kk * NR..kk * NR + NR];
        for (r, row) in acc.iter_mut().enumerate().take(rows) {
            // SAFETY: A element (r, kk) of the packed panel or of the row-major rows.
            let av = unsafe {
                if rsa == 0 {
                    *a.add(kk * MR + r)
                } else {
                    *a.offset(r as isize * rsa + kk as isize)
                }
            };
            for (x, &bv) in row.iter_mut().zip(brow) {
                *x += av * bv;
            }
        }
    }
    for (r, row) in acc.iter().enumerate().take(rows) {
        // SAFETY: the caller guarantees a rows x cols tile with row stride rsc at c.
        let out = unsafe { std::slice::from_raw_parts_mut(c.offset(r as isize * rsc), cols) };
        for (o, &x) in out.iter_mut().zip(row) {
            *o = if accumulate { *o + x } else { x };
        }
    }
}
