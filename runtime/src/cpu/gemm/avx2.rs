//! The AVX2+FMA microkernel: a 3 x 32 tile in 12 ymm accumulators (four loads of B and three
//! broadcasts of A per k), keeping the shared 32-wide B panel layout.

use super::{Kernel, NR};

const MR: usize = 3;

#[cfg(target_arch = "x86_64")]
pub const KERNEL: Kernel = Kernel {
    name: "avx2 3x32",
    mr: MR,
    run: kernel,
};

#[cfg(not(target_arch = "x86_64"))]
pub const KERNEL: Kernel = super::portable::KERNEL;

/// # Safety
/// See [`super::Microkernel`]; the CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
unsafe fn kernel(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    // SAFETY: KERNEL is only chosen when avx2 and fma are detected; pointers per the contract.
    unsafe { kernel_avx2(kc, a, b, c, ldc, accumulate) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_avx2(
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
        let mut acc = [[_mm256_setzero_ps(); 4]; MR];
        let (mut ap, mut bp) = (a, b);
        for _ in 0..kc {
            let bv = [
                _mm256_loadu_ps(bp),
                _mm256_loadu_ps(bp.add(8)),
                _mm256_loadu_ps(bp.add(16)),
                _mm256_loadu_ps(bp.add(24)),
            ];
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_ps(*ap.add(r));
                for (x, b) in row.iter_mut().zip(bv) {
                    *x = _mm256_fmadd_ps(av, b, *x);
                }
            }
            ap = ap.add(MR);
            bp = bp.add(NR);
        }
        for (r, row) in acc.iter().enumerate() {
            let out = c.add(r * ldc);
            for (q, &x) in row.iter().enumerate() {
                let v = if accumulate {
                    _mm256_add_ps(x, _mm256_loadu_ps(out.add(8 * q)))
                } else {
                    x
                };
                _mm256_storeu_ps(out.add(8 * q), v);
            }
        }
    }
}
