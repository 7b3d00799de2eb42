//! The GEMM helpers compiled code calls for MatMul/Gemm-class steps.
//!
//! Arguments (u64 slots; strides in elements, signed):
//! ```text
//!  0 m   1 n   2 k
//!  3 a   4 rsa 5 csa          A[i, p] at a + i*rsa + p*csa
//!  6 b   7 rsb 8 csb          B[p, j] at b + p*rsb + j*csb (ignored for packed B)
//!  9 c  10 rsc                C[i, j] at c + i*rsc + j
//! 11 accumulate (0: C = A·B, 1: C += A·B)
//! 12 batch0 13 a_stride0 14 b_stride0 15 c_stride0   outer batch loop
//! 16 batch1 17 a_stride1 18 b_stride1 19 c_stride1   inner batch loop
//! ```
//! For `gemm_f32_packed`, B is `PackedB` panels of a `k x n` matrix and its batch strides
//! count packed floats.

use super::{Helper, HelperFn, RunContext};
use crate::cpu::gemm::{gemm, PackedB, PackedBRef};

pub const ARGS: usize = 20;

struct Call {
    m: usize,
    n: usize,
    k: usize,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    c: *mut f32,
    rsc: isize,
    accumulate: bool,
    batch: [(usize, isize, isize, isize); 2],
}

/// # Safety
/// `args` points at [`ARGS`] slots laid out as the module documents.
unsafe fn read(args: *const u64) -> Call {
    // SAFETY: the caller passes ARGS readable slots.
    let s = unsafe { std::slice::from_raw_parts(args, ARGS) };
    Call {
        m: s[0] as usize,
        n: s[1] as usize,
        k: s[2] as usize,
        a: s[3] as *const f32,
        rsa: s[4] as i64 as isize,
        csa: s[5] as i64 as isize,
        b: s[6] as *const f32,
        rsb: s[7] as i64 as isize,
        csb: s[8] as i64 as isize,
        c: s[9] as *mut f32,
        rsc: s[10] as i64 as isize,
        accumulate: s[11] != 0,
        batch: [
            (
                s[12] as usize,
                s[13] as i64 as isize,
                s[14] as i64 as isize,
                s[15] as i64 as isize,
            ),
            (
                s[16] as usize,
                s[17] as i64 as isize,
                s[18] as i64 as isize,
                s[19] as i64 as isize,
            ),
        ],
    }
}

/// Runs one (unbatched) product with B given by `b_for`.
///
/// # Safety
/// The pointers and strides describe valid, non-overlapping (A, B vs C) matrices.
unsafe fn one(ctx: &RunContext, c: &Call, a: *const f32, bp: &[f32], cp: *mut f32) {
    let (m, n, k) = (c.m, c.n, c.k);
    // A row-major with unit column stride is read in place; anything else is copied.
    let a_copy: Vec<f32>;
    let (a_slice, lda): (&[f32], usize) = if c.csa == 1 && c.rsa >= k as isize {
        let len = if m == 0 {
            0
        } else {
            (m - 1) * c.rsa as usize + k
        };
        // SAFETY: rows of A are `rsa` apart and `k` long, all inside A.
        (
            unsafe { std::slice::from_raw_parts(a, len) },
            c.rsa as usize,
        )
    } else {
        a_copy = (0..m * k)
            .map(|x| {
                let (i, p) = (x / k.max(1), x % k.max(1));
                // SAFETY: (i, p) is inside A.
                unsafe { *a.offset(i as isize * c.rsa + p as isize * c.csa) }
            })
            .collect();
        (&a_copy, k)
    };
    let ldc = c.rsc as usize;
    let c_len = if m == 0 { 0 } else { (m - 1) * ldc + n };
    // SAFETY: C's rows are `rsc` apart and `n` long, inside C; C does not overlap A or B.
    let c_slice = unsafe { std::slice::from_raw_parts_mut(cp, c_len) };
    let packed = PackedBRef { k, n, data: bp };
    if m > 0 && n > 0 {
        let _ = gemm(
            ctx.gemm,
            m,
            a_slice,
            lda.max(1),
            packed,
            c_slice,
            ldc.max(1),
            c.accumulate,
        );
    }
}

/// # Safety
/// `ctx` and `args` as the helper table's `Call` convention and the module doc say.
unsafe extern "C" fn gemm_f32(ctx: *const RunContext, args: *const u64) {
    // SAFETY: forwarded from the caller.
    let (ctx, c) = unsafe { (&*ctx, read(args)) };
    let [(b0, as0, bs0, cs0), (b1, as1, bs1, cs1)] = c.batch;
    for i0 in 0..b0 as isize {
        for i1 in 0..b1 as isize {
            // SAFETY: batch offsets stay inside the operands (the lowering sized them).
            unsafe {
                let a = c.a.offset(i0 * as0 + i1 * as1);
                let b = c.b.offset(i0 * bs0 + i1 * bs1);
                let cp = c.c.offset(i0 * cs0 + i1 * cs1);
                let dense: Vec<f32> = (0..c.k * c.n)
                    .map(|x| *b.offset((x / c.n) as isize * c.rsb + (x % c.n) as isize * c.csb))
                    .collect();
                let packed = PackedB::pack(&dense, c.k, c.n, c.n);
                one(ctx, &c, a, &packed.data, cp);
            }
        }
    }
}

/// # Safety
/// As `gemm_f32`, with B prepacked.
unsafe extern "C" fn gemm_f32_packed(ctx: *const RunContext, args: *const u64) {
    // SAFETY: forwarded from the caller.
    let (ctx, c) = unsafe { (&*ctx, read(args)) };
    let [(b0, as0, bs0, cs0), (b1, as1, bs1, cs1)] = c.batch;
    let len = PackedB::packed_len(c.k, c.n);
    for i0 in 0..b0 as isize {
        for i1 in 0..b1 as isize {
            // SAFETY: the packed panels of each batch entry hold `len` floats.
            unsafe {
                let a = c.a.offset(i0 * as0 + i1 * as1);
                let b = std::slice::from_raw_parts(c.b.offset(i0 * bs0 + i1 * bs1), len);
                let cp = c.c.offset(i0 * cs0 + i1 * cs1);
                one(ctx, &c, a, b, cp);
            }
        }
    }
}

pub(super) const HELPERS: &[Helper] = &[
    Helper {
        name: "gemm_f32",
        func: HelperFn::Call(gemm_f32),
    },
    Helper {
        name: "gemm_f32_packed",
        func: HelperFn::Call(gemm_f32_packed),
    },
];
