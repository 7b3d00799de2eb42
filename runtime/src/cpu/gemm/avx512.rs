//! The AVX-512 microkernel: a 12 x 32 tile in 24 zmm accumulators; per k, two loads of B and
//! twelve broadcasts of A feed 24 FMAs. Shorter tiles (the last rows of A) run the same code
//! with fewer rows; narrower ones (the last panel of B) store through masks.

use super::{Kernel, Prefetch, NR, ROW_PANELS};

const MR: usize = 12;

#[cfg(target_arch = "x86_64")]
pub const KERNEL: Kernel = Kernel {
    name: "avx512 12x32",
    mr: MR,
    run: kernel,
    row: Some(row),
};

#[cfg(not(target_arch = "x86_64"))]
pub const KERNEL: Kernel = super::portable::KERNEL;

/// # Safety
/// See [`super::Microkernel`]; the CPU must have AVX-512F.
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
    // SAFETY: KERNEL is only chosen when avx512f is detected; pointers per the contract.
    unsafe {
        macro_rules! rows {
            ($($r:literal)*) => {
                match (rows, rsa == 0) {
                    $(($r, true) => tile::<$r, true>(kc, a, rsa, b, c, rsc, cols, accumulate, prefetch),
                      ($r, false) => tile::<$r, false>(kc, a, rsa, b, c, rsc, cols, accumulate, prefetch),)*
                    _ => {}
                }
            };
        }
        rows!(1 2 3 4 5 6 7 8 9 10 11 12)
    }
}

/// An `R x cols` tile (`R <= MR`); A packed (`PACKED`) or row-major with row stride `rsa`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
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
        // The C tile is needed only after the K loop: start fetching it now.
        for r in 0..R {
            let row = c.wrapping_offset(r as isize * rsc) as *const i8;
            _mm_prefetch::<_MM_HINT_T0>(row);
            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(64));
        }
        let mut acc = [[_mm512_setzero_ps(); 2]; R];
        let (mut ap, mut bp) = (a, b);
        let fetch = prefetch.lines.min(kc);
        for p in 0..kc {
            if p < fetch {
                _mm_prefetch::<_MM_HINT_T1>(prefetch.line(p));
            }
            // B streams from L2: fetch 8 rows (1 KiB) ahead.
            _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(8 * NR) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(8 * NR + 16) as *const i8);
            let b0 = _mm512_loadu_ps(bp);
            let b1 = _mm512_loadu_ps(bp.add(16));
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(if PACKED {
                    *ap.add(r)
                } else {
                    *ap.offset(r as isize * rsa)
                });
                row[0] = _mm512_fmadd_ps(av, b0, row[0]);
                row[1] = _mm512_fmadd_ps(av, b1, row[1]);
            }
            ap = ap.add(if PACKED { MR } else { 1 });
            bp = bp.add(NR);
        }
        if cols == NR {
            for (r, row) in acc.iter().enumerate() {
                let out = c.offset(r as isize * rsc);
                let (mut x0, mut x1) = (row[0], row[1]);
                if accumulate {
                    x0 = _mm512_add_ps(_mm512_loadu_ps(out), x0);
                    x1 = _mm512_add_ps(_mm512_loadu_ps(out.add(16)), x1);
                }
                _mm512_storeu_ps(out, x0);
                _mm512_storeu_ps(out.add(16), x1);
            }
        } else {
            let m0: __mmask16 = if cols >= 16 { 0xffff } else { (1 << cols) - 1 };
            let m1: __mmask16 = if cols <= 16 {
                0
            } else {
                (1 << (cols - 16)) - 1
            };
            for (r, row) in acc.iter().enumerate() {
                let out = c.offset(r as isize * rsc);
                let (mut x0, mut x1) = (row[0], row[1]);
                if accumulate {
                    x0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, out), x0);
                    x1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, out.add(16)), x1);
                }
                _mm512_mask_storeu_ps(out, m0, x0);
                _mm512_mask_storeu_ps(out.add(16), m1, x1);
            }
        }
    }
}

/// # Safety
/// See [`super::RowKernel`]; the CPU must have AVX-512F.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn row(
    kc: usize,
    a: *const f32,
    csa: isize,
    b: *const f32,
    pstride: usize,
    c: *mut f32,
    cols: usize,
    accumulate: bool,
) {
    // SAFETY: KERNEL is only chosen when avx512f is detected; pointers per the contract.
    unsafe {
        match cols.div_ceil(NR) {
            4 => row_panels::<4>(kc, a, csa, b, pstride, c, cols, accumulate),
            3 => row_panels::<3>(kc, a, csa, b, pstride, c, cols, accumulate),
            2 => row_panels::<2>(kc, a, csa, b, pstride, c, cols, accumulate),
            1 => row_panels::<1>(kc, a, csa, b, pstride, c, cols, accumulate),
            _ => {}
        }
    }
}

/// One row of C over `P` panels: 2P accumulators, each summed over k in order from zero
/// exactly as in [`tile`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn row_panels<const P: usize>(
    kc: usize,
    a: *const f32,
    csa: isize,
    b: *const f32,
    pstride: usize,
    c: *mut f32,
    cols: usize,
    accumulate: bool,
) {
    use std::arch::x86_64::*;
    const { assert!(P <= ROW_PANELS) };
    // SAFETY (whole body): kc elements of A at stride csa, P panels of kc x NR floats
    // pstride apart, and cols (> (P-1)*NR) elements of C; C is accessed through masks.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); 2]; P];
        let mut bp = b;
        for p in 0..kc {
            let av = _mm512_set1_ps(*a.offset(p as isize * csa));
            for (q, x) in acc.iter_mut().enumerate() {
                let panel = bp.add(q * pstride);
                x[0] = _mm512_fmadd_ps(av, _mm512_loadu_ps(panel), x[0]);
                x[1] = _mm512_fmadd_ps(av, _mm512_loadu_ps(panel.add(16)), x[1]);
            }
            bp = bp.add(NR);
        }
        for (v, &x) in acc.iter().flatten().enumerate() {
            let lanes = cols.saturating_sub(16 * v).min(16);
            let mask: __mmask16 = ((1u32 << lanes) - 1) as __mmask16;
            let out = c.add(16 * v);
            let x = if accumulate {
                _mm512_add_ps(_mm512_maskz_loadu_ps(mask, out), x)
            } else {
                x
            };
            _mm512_mask_storeu_ps(out, mask, x);
        }
    }
}
