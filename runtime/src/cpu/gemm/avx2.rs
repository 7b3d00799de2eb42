//! The AVX2+FMA microkernel: a 3 x 32 tile in 12 ymm accumulators (four loads of B and three
//! broadcasts of A per k), keeping the shared 32-wide B panel layout.

use super::{Kernel, Prefetch, NR};

const MR: usize = 3;

#[cfg(target_arch = "x86_64")]
pub const KERNEL: Kernel = Kernel {
    name: "avx2 3x32",
    mr: MR,
    run: kernel,
    row: None,
};

#[cfg(not(target_arch = "x86_64"))]
pub const KERNEL: Kernel = super::portable::KERNEL;

/// # Safety
/// See [`super::Microkernel`]; the CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
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
    prefetch: Prefetch,
) {
    // SAFETY: KERNEL is only chosen when avx2 and fma are detected; pointers per the contract.
    unsafe {
        let pf = prefetch;
        match (rows, rsa == 0) {
            (3, true) => tile::<3, true>(kc, a, rsa, b, c, rsc, cols, accumulate, pf),
            (2, true) => tile::<2, true>(kc, a, rsa, b, c, rsc, cols, accumulate, pf),
            (1, true) => tile::<1, true>(kc, a, rsa, b, c, rsc, cols, accumulate, pf),
            (3, false) => tile::<3, false>(kc, a, rsa, b, c, rsc, cols, accumulate, pf),
            (2, false) => tile::<2, false>(kc, a, rsa, b, c, rsc, cols, accumulate, pf),
            (1, false) => tile::<1, false>(kc, a, rsa, b, c, rsc, cols, accumulate, pf),
            _ => {}
        }
    }
}

/// An `R x cols` tile (`R <= MR`); A packed (`PACKED`) or row-major with row stride `rsa`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize, const PACKED: bool>(
    kc: usize,
    a: *const f32,
    rsa: isize,
    b: *const f32,
    c: *mut f32,
    rsc: isize,
    cols: usize,
    accumulate: bool,
    prefetch: Prefetch,
) {
    use std::arch::x86_64::*;
    // SAFETY (whole body): a has kc*MR floats (packed) or R rows of kc (row-major), b kc*NR, c an R x cols tile with row stride
    // rsc; loads and stores are unaligned, and masked past cols.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 4]; R];
        let (mut ap, mut bp) = (a, b);
        let fetch = prefetch.lines.min(kc);
        for p in 0..kc {
            if p < fetch {
                _mm_prefetch::<_MM_HINT_T1>(prefetch.line(p));
            }
            let bv = [
                _mm256_loadu_ps(bp),
                _mm256_loadu_ps(bp.add(8)),
                _mm256_loadu_ps(bp.add(16)),
                _mm256_loadu_ps(bp.add(24)),
            ];
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm256_set1_ps(if PACKED {
                    *ap.add(r)
                } else {
                    *ap.offset(r as isize * rsa)
                });
                for (x, b) in row.iter_mut().zip(bv) {
                    *x = _mm256_fmadd_ps(av, b, *x);
                }
            }
            ap = ap.add(if PACKED { MR } else { 1 });
            bp = bp.add(NR);
        }
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        for (r, row) in acc.iter().enumerate() {
            let out = c.offset(r as isize * rsc);
            for (q, &x) in row.iter().enumerate() {
                let o = out.add(8 * q);
                if cols >= 8 * q + 8 {
                    let v = if accumulate {
                        _mm256_add_ps(_mm256_loadu_ps(o), x)
                    } else {
                        x
                    };
                    _mm256_storeu_ps(o, v);
                } else if cols > 8 * q {
                    let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((cols - 8 * q) as i32), lane);
                    let v = if accumulate {
                        _mm256_add_ps(_mm256_maskload_ps(o, mask), x)
                    } else {
                        x
                    };
                    _mm256_maskstore_ps(o, mask, v);
                }
            }
        }
    }
}
