//! Packing A into row panels and B into [`NR`]-wide column panels.

use super::NR;

/// Packs `B[k, n]` (element `(p, j)` at `b + p*rs + j*cs`) into panels of [`NR`] columns at
/// `out` (see [`super::PackedB`]), zero-padding the last panel.
///
/// # Safety
/// Every element of B is readable; `out` has `packed_len(k, n)` writable floats.
pub(super) unsafe fn pack_b(
    k: usize,
    n: usize,
    b: *const f32,
    rs: isize,
    cs: isize,
    out: *mut f32,
) {
    for p in 0..n.div_ceil(NR) {
        let cols = NR.min(n - p * NR);
        let src = unsafe { b.offset((p * NR) as isize * cs) };
        let dst = unsafe { out.add(p * k * NR) };
        // SAFETY (all blocks below): rows < k and columns < cols of this panel are in B;
        // destination rows < k of the panel are in out.
        if cs == 1 {
            for kk in 0..k {
                unsafe {
                    let d = dst.add(kk * NR);
                    std::ptr::copy_nonoverlapping(src.offset(kk as isize * rs), d, cols);
                    std::ptr::write_bytes(d.add(cols), 0, NR - cols);
                }
            }
        } else if rs == 1 {
            // Contiguous columns (e.g. B = Kᵀ): a transpose, like packing row-major A.
            unsafe { pack_rows(cols, k, NR, src, cs, dst) };
            for kk in 0..k {
                unsafe { std::ptr::write_bytes(dst.add(kk * NR + cols), 0, NR - cols) };
            }
        } else if rs.unsigned_abs() < cs.unsigned_abs() {
            // Columns are closer to contiguous than rows: read down each column.
            for j in 0..cols {
                let s = unsafe { src.offset(j as isize * cs) };
                for kk in 0..k {
                    unsafe { *dst.add(kk * NR + j) = *s.offset(kk as isize * rs) };
                }
            }
            for kk in 0..k {
                unsafe { std::ptr::write_bytes(dst.add(kk * NR + cols), 0, NR - cols) };
            }
        } else {
            for kk in 0..k {
                let s = unsafe { src.offset(kk as isize * rs) };
                let d = unsafe { dst.add(kk * NR) };
                for j in 0..cols {
                    unsafe { *d.add(j) = *s.offset(j as isize * cs) };
                }
                unsafe { std::ptr::write_bytes(d.add(cols), 0, NR - cols) };
            }
        }
    }
}

/// Packs `A[mc, kc]` (element `(i, p)` at `a + i*rsa + p*csa`) into row panels of `mr` at
/// `out`: panel `q` starts at `q*mr*kc`, element `(q*mr + r, p)` at `p*mr + r`. Rows past
/// `mc` in the last panel are left as they are (kernels read only the valid rows).
///
/// # Safety
/// Every element of A is readable; `out` has `mc.next_multiple_of(mr) * kc` writable floats.
pub(super) unsafe fn pack_a(
    mc: usize,
    kc: usize,
    mr: usize,
    a: *const f32,
    rsa: isize,
    csa: isize,
    out: *mut f32,
) {
    for q in 0..mc.div_ceil(mr) {
        let rows = mr.min(mc - q * mr);
        // SAFETY (whole loop): rows q*mr .. q*mr+rows of A, panel q of out.
        unsafe {
            let src = a.offset((q * mr) as isize * rsa);
            let dst = out.add(q * mr * kc);
            if csa == 1 {
                pack_rows(rows, kc, mr, src, rsa, dst);
            } else if rsa == 1 {
                for p in 0..kc {
                    std::ptr::copy_nonoverlapping(
                        src.offset(p as isize * csa),
                        dst.add(p * mr),
                        rows,
                    );
                }
            } else {
                for p in 0..kc {
                    for r in 0..rows {
                        *dst.add(p * mr + r) = *src.offset(r as isize * rsa + p as isize * csa);
                    }
                }
            }
        }
    }
}

/// `pack_a` for one panel of row-major A (unit column stride): a transpose, done in 4 x 4
/// blocks with SSE on x86_64.
///
/// # Safety
/// As [`pack_a`] for `rows` rows and one panel.
unsafe fn pack_rows(rows: usize, kc: usize, mr: usize, a: *const f32, rsa: isize, out: *mut f32) {
    let mut r0 = 0;
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        let kc4 = kc / 4 * 4;
        while r0 + 4 <= rows {
            // SAFETY: rows r0..r0+4, columns < kc4 of A; out rows < kc of the panel.
            unsafe {
                let s0 = a.offset(r0 as isize * rsa);
                let s1 = s0.offset(rsa);
                let s2 = s1.offset(rsa);
                let s3 = s2.offset(rsa);
                let mut p = 0;
                while p < kc4 {
                    let x0 = _mm_loadu_ps(s0.add(p));
                    let x1 = _mm_loadu_ps(s1.add(p));
                    let x2 = _mm_loadu_ps(s2.add(p));
                    let x3 = _mm_loadu_ps(s3.add(p));
                    let t0 = _mm_unpacklo_ps(x0, x1);
                    let t1 = _mm_unpacklo_ps(x2, x3);
                    let t2 = _mm_unpackhi_ps(x0, x1);
                    let t3 = _mm_unpackhi_ps(x2, x3);
                    let d = out.add(p * mr + r0);
                    _mm_storeu_ps(d, _mm_movelh_ps(t0, t1));
                    _mm_storeu_ps(d.add(mr), _mm_movehl_ps(t1, t0));
                    _mm_storeu_ps(d.add(2 * mr), _mm_movelh_ps(t2, t3));
                    _mm_storeu_ps(d.add(3 * mr), _mm_movehl_ps(t3, t2));
                    p += 4;
                }
                for p in kc4..kc {
                    for r in r0..r0 + 4 {
                        *out.add(p * mr + r) = *a.offset(r as isize * rsa + p as isize);
                    }
                }
            }
            r0 += 4;
        }
    }
    for r in r0..rows {
        // SAFETY: row r < rows of A, columns < kc; out rows < kc of the panel.
        unsafe {
            let s = a.offset(r as isize * rsa);
            for p in 0..kc {
                *out.add(p * mr + r) = *s.add(p);
            }
        }
    }
}
