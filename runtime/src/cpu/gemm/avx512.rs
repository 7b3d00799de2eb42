//! The AVX-512 microkernel: a 12 x 32 tile in 24 zmm accumulators; per k, two loads of B and
//! twelve broadcasts of A feed 24 FMAs.

use super::{Kernel, NR};

const MR: usize = 12;

#[cfg(target_arch = "x86_64")]
pub const KERNEL: Kernel = Kernel {
    name: "avx512 12x32",
    mr: MR,
    run: kernel,
};

#[cfg(not(target_arch = "x86_64"))]
pub const KERNEL: Kernel = super::portable::KERNEL;

/// # Safety
/// See [`super::Microkernel`]; the CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
unsafe fn kernel(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    // SAFETY: KERNEL is only chosen when avx512f is detected; pointers per the contract.
    unsafe { kernel_avx512(kc, a, b, c, ldc, accumulate) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel_avx512(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    // SAFETY (whole body): a has kc*MR floats, b kc*NR, c an MR x NR tile with stride ldc;
    // unaligned loads and stores are used throughout.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        let (mut ap, mut bp) = (a, b);
        for _ in 0..kc {
            let b0 = _mm512_loadu_ps(bp);
            let b1 = _mm512_loadu_ps(bp.add(16));
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ap.add(r));
                row[0] = _mm512_fmadd_ps(av, b0, row[0]);
                row[1] = _mm512_fmadd_ps(av, b1, row[1]);
            }
            ap = ap.add(MR);
            bp = bp.add(NR);
        }
        for (r, row) in acc.iter().enumerate() {
            let out = c.add(r * ldc);
            let (mut x0, mut x1) = (row[0], row[1]);
            if accumulate {
                x0 = _mm512_add_ps(x0, _mm512_loadu_ps(out));
                x1 = _mm512_add_ps(x1, _mm512_loadu_ps(out.add(16)));
            }
            _mm512_storeu_ps(out, x0);
            _mm512_storeu_ps(out.add(16), x1);
        }
    }
}
