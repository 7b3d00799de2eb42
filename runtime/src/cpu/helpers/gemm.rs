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
use crate::cpu::gemm::{sgemm, BMatrix, PackedB, PackedBRef};

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

/// # Safety
/// `ctx` and `args` as the helper table's `Call` convention and the module doc say.
unsafe fn batched(ctx: *const RunContext, args: *const u64, packed: bool) {
    // SAFETY: forwarded from the caller.
    let (ctx, c) = unsafe { (&*ctx, read(args)) };
    let [(b0, as0, bs0, cs0), (b1, as1, bs1, cs1)] = c.batch;
    let len = PackedB::packed_len(c.k, c.n);
    for i0 in 0..b0 as isize {
        for i1 in 0..b1 as isize {
            // SAFETY: the lowering sized the operands for every batch entry; a packed B
            // entry holds `len` floats.
            unsafe {
                let a = c.a.offset(i0 * as0 + i1 * as1);
                let b = c.b.offset(i0 * bs0 + i1 * bs1);
                let cp = c.c.offset(i0 * cs0 + i1 * cs1);
                let b = if packed {
                    BMatrix::Packed(PackedBRef {
                        k: c.k,
                        n: c.n,
                        data: std::slice::from_raw_parts(b, len),
                    })
                } else {
                    BMatrix::Strided {
                        ptr: b,
                        rs: c.rsb,
                        cs: c.csb,
                    }
                };
                sgemm(
                    ctx.gemm,
                    c.m,
                    c.n,
                    c.k,
                    a,
                    c.rsa,
                    c.csa,
                    b,
                    cp,
                    c.rsc,
                    c.accumulate,
                );
            }
        }
    }
}

/// # Safety
/// As [`batched`].
unsafe extern "C" fn gemm_f32(ctx: *const RunContext, args: *const u64) {
    // SAFETY: forwarded from the caller.
    unsafe { batched(ctx, args, false) }
}

/// # Safety
/// As [`batched`], with B prepacked.
unsafe extern "C" fn gemm_f32_packed(ctx: *const RunContext, args: *const u64) {
    // SAFETY: forwarded from the caller.
    unsafe { batched(ctx, args, true) }
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
