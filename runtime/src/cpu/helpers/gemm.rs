//! The GEMM helpers compiled code calls for MatMul/Gemm-class steps, and `contract`, the
//! generic (any dtype, any einsum-like pattern) product.
//!
//! `gemm_f32` / `gemm_f32_packed` arguments (u64 slots; strides in elements, signed):
//! ```text
//!  0 m   1 n   2 k
//!  3 a   4 rsa 5 csa          A[i, p] at a + i*rsa + p*csa
//!  6 b   7 rsb 8 csb          B[p, j] at b + p*rsb + j*csb (strides ignored for packed B)
//!  9 c  10 rsc                C[i, j] at c + i*rsc + j
//! 11 accumulate               0: C = alpha·A·B, 1: C += alpha·A·B
//! 12 alpha                    f64 bits
//! 13 L                        batch loops, then L groups (outer first) of
//!    count, a stride, b stride, c stride
//! ```
//! For `gemm_f32_packed`, B is `PackedB` panels of a `k x n` matrix and its batch strides
//! count packed floats.
//!
//! `gemm_f32_packed_fused` is `gemm_f32_packed` with an epilogue and a column layout for C
//! (see [`crate::cpu::gemm::sgemm_fused`]); six more slots come before the batch loops:
//! ```text
//! 14 bias                     n floats added per column (0: none)
//! 15 activation               0 none, 1 relu, 2 gelu (erf), 3 gelu (tanh)
//! 16 residual  17 rsr         R[i, j] at residual + i*rsr + j, added last (0: none;
//!                             only without batch loops)
//! 18 block     19 block stride  C[i, j] at c + i*rsc + (j/block)*stride + j%block
//!                             (block a multiple of the GEMM's panel width; 0: plain rows)
//! 20 batch loops, as slot 13 of the others
//! ```
//! It needs `accumulate = 0` and `alpha = 1`.
//!
//! `contract` is documented at [`contract`].

use std::cell::RefCell;

use super::elem::{self, from_code};
use super::{Helper, HelperFn, RunContext};
use crate::cpu::gemm::{
    sgemm, sgemm_fused, Activation, BMatrix, CLayout, Epilogue, PackedB, PackedBRef,
};

/// Slots before the batch loops.
const FIXED: usize = 14;
/// Slots of the fused form's epilogue and C layout, between the fixed ones and the loops.
const FUSED: usize = 6;
/// The most batch loops a call has (the lowering merges contiguous ones).
pub const MAX_LOOPS: usize = 8;

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
    alpha: f32,
    /// (count, a stride, b stride, c stride), outer first: the first `loops` entries.
    batch: [(usize, isize, isize, isize); MAX_LOOPS],
    loops: usize,
    epilogue: Epilogue,
    layout: CLayout,
}
// SAFETY: a call's operands are only read (A, B) or written at disjoint batch entries (C)
// by the tasks that share it.
unsafe impl Sync for Call {}

/// Reads a call; `fused`: the fused form's slots (an unknown activation code is `None`).
///
/// # Safety
/// `args` points at slots laid out as the module documents.
unsafe fn read(args: *const u64, fused: bool) -> Result<Call, String> {
    let head = if fused { FIXED + FUSED } else { FIXED };
    // SAFETY: the caller passes the fixed slots (and the fused ones), then 4 per batch loop.
    let s = unsafe { std::slice::from_raw_parts(args, head) };
    let loops = s[13] as usize;
    // SAFETY: as above.
    let l = unsafe { std::slice::from_raw_parts(args.add(head), 4 * loops) };
    let (epilogue, layout) = if fused {
        let act = Activation::from_code(s[15])
            .ok_or_else(|| format!("gemm: unknown activation code {}", s[15]))?;
        (
            Epilogue {
                bias: s[14] as *const f32,
                act,
                residual: s[16] as *const f32,
                rsr: s[17] as i64 as isize,
            },
            CLayout {
                rsc: s[10] as i64 as isize,
                block: s[18] as usize,
                block_stride: s[19] as i64 as isize,
            },
        )
    } else {
        (Epilogue::NONE, CLayout::rows(s[10] as i64 as isize))
    };
    Ok(Call {
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
        alpha: f64::from_bits(s[12]) as f32,
        batch: {
            let mut b = [(1usize, 0isize, 0isize, 0isize); MAX_LOOPS];
            for (slot, g) in b.iter_mut().zip(l.chunks(4)) {
                *slot = (
                    g[0] as usize,
                    g[1] as i64 as isize,
                    g[2] as i64 as isize,
                    g[3] as i64 as isize,
                );
            }
            b
        },
        loops: loops.min(MAX_LOOPS),
        epilogue,
        layout,
    })
}

/// Per-thread buffer reused from call to call: a product to scale by alpha and add to C.
#[derive(Default)]
struct Scratch {
    t: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Grows `v` to at least `len` elements (contents unspecified) and returns that prefix.
fn grow(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if v.len() < len {
        v.resize(len, 0.0);
    }
    &mut v[..len]
}

/// How B is given to [`product`].
#[derive(Clone, Copy)]
enum BArg {
    Packed(*const f32),
    Strided(*const f32, isize, isize),
}

/// `C (+)= alpha·A·B` for one matrix of the batch.
///
/// # Safety
/// The pointers and strides describe valid matrices; C does not overlap A or B and no other
/// thread touches this C.
#[allow(clippy::too_many_arguments)]
unsafe fn product(
    ctx: &RunContext,
    s: &mut Scratch,
    (m, n, k): (usize, usize, usize),
    (a, rsa, csa): (*const f32, isize, isize),
    b: BArg,
    (c, rsc): (*mut f32, isize),
    accumulate: bool,
    alpha: f32,
    fused: Option<(&Epilogue, CLayout)>,
) {
    if m == 0 || n == 0 {
        return;
    }
    if let (Some((ep, layout)), BArg::Packed(p)) = (fused, b) {
        let b = BMatrix::Packed(PackedBRef {
            k,
            n,
            // SAFETY: a packed B of this k x n holds packed_len floats (the lowering packed
            // it so).
            data: unsafe { std::slice::from_raw_parts(p, PackedB::packed_len(k, n)) },
        });
        // SAFETY: the operands are valid at these strides, C (at this layout) is ours, the
        // epilogue's bias and residual are readable (caller).
        unsafe { sgemm_fused(ctx.gemm, m, n, k, a, rsa, csa, b, c, layout, ep, false) };
        return;
    }
    if let (1, BArg::Strided(bp, rsb, _)) = (n, b) {
        // A matrix-vector product: dot products over A's rows, no panels to pad to NR.
        for i in 0..m {
            // SAFETY: row i of A and the column of B are readable (caller).
            let d = unsafe { dot(a.offset(i as isize * rsa), csa, bp, rsb, k) };
            // SAFETY: (i, 0) is inside C (caller).
            unsafe {
                let cp = c.offset(i as isize * rsc);
                *cp = if accumulate {
                    *cp + alpha * d
                } else {
                    alpha * d
                };
            }
        }
        return;
    }
    let b = match b {
        BArg::Packed(p) => BMatrix::Packed(PackedBRef {
            k,
            n,
            // SAFETY: a packed B of this k x n holds packed_len floats (the lowering packed
            // it so).
            data: unsafe { std::slice::from_raw_parts(p, PackedB::packed_len(k, n)) },
        }),
        BArg::Strided(ptr, rs, cs) => BMatrix::Strided { ptr, rs, cs },
    };
    if alpha == 1.0 || !accumulate {
        // SAFETY: the operands are valid at these strides and C is ours (caller).
        unsafe { sgemm(ctx.gemm, m, n, k, a, rsa, csa, b, c, rsc, accumulate) };
        if alpha != 1.0 {
            for i in 0..m {
                for j in 0..n {
                    // SAFETY: (i, j) is inside C (caller).
                    unsafe { *c.offset(i as isize * rsc + j as isize) *= alpha };
                }
            }
        }
    } else {
        let t = grow(&mut s.t, m * n);
        // SAFETY: as above, with t an m x n row-major buffer of our own.
        unsafe {
            sgemm(
                ctx.gemm,
                m,
                n,
                k,
                a,
                rsa,
                csa,
                b,
                t.as_mut_ptr(),
                n as isize,
                false,
            )
        };
        for i in 0..m {
            for j in 0..n {
                // SAFETY: (i, j) is inside C (caller).
                unsafe { *c.offset(i as isize * rsc + j as isize) += alpha * t[i * n + j] };
            }
        }
    }
}

/// `Σ_p x[p*sx] · y[p*sy]` over `k` terms, in eight interleaved partial sums.
///
/// # Safety
/// The `k` elements of x and y at those strides are readable.
unsafe fn dot(x: *const f32, sx: isize, y: *const f32, sy: isize, k: usize) -> f32 {
    let mut acc = [0f32; 8];
    let full = k / 8 * 8;
    // SAFETY: every index is below k (caller).
    unsafe {
        if sx == 1 && sy == 1 {
            let (xs, ys) = (
                std::slice::from_raw_parts(x, k),
                std::slice::from_raw_parts(y, k),
            );
            for (xc, yc) in xs[..full].chunks_exact(8).zip(ys[..full].chunks_exact(8)) {
                for l in 0..8 {
                    acc[l] += xc[l] * yc[l];
                }
            }
        } else {
            for p in (0..full).step_by(8) {
                for (l, a) in acc.iter_mut().enumerate() {
                    let q = (p + l) as isize;
                    *a += *x.offset(q * sx) * *y.offset(q * sy);
                }
            }
        }
        let mut sum =
            ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        for p in full..k {
            sum += *x.offset(p as isize * sx) * *y.offset(p as isize * sy);
        }
        sum
    }
}

/// Pointers moved into parallel batch tasks.
#[derive(Clone, Copy)]
struct Ptrs {
    a: *const f32,
    b: *const f32,
    c: *mut f32,
}
// SAFETY: the tasks of one call read A and B and write disjoint matrices of C.
unsafe impl Send for Ptrs {}
unsafe impl Sync for Ptrs {}

/// A batch runs its matrices in parallel when each is too small for the GEMM to split
/// (below these `m*n*k` and `k*n`, the GEMM's own thresholds).
const PAR_BATCH_MAX_MNK: usize = 1 << 22;
const PAR_BATCH_MAX_KN: usize = 1 << 18;

/// Runs every matrix of the batch.
///
/// # Safety
/// As the helpers' contract: the arguments describe valid operands for every batch index.
unsafe fn run(ctx: &RunContext, c: &Call, packed: bool, fused: bool) {
    if fused && (c.accumulate || c.alpha != 1.0 || !packed) {
        ctx.fail("gemm: a fused epilogue needs a packed B, alpha 1 and no accumulation");
        return;
    }
    if fused && c.loops > 0 && !c.epilogue.residual.is_null() {
        ctx.fail("gemm: a residual cannot be combined with batch loops");
        return;
    }
    let batch = &c.batch[..c.loops];
    let total: usize = batch.iter().map(|b| b.0).product();
    if total == 0 {
        return;
    }
    let offsets = |mut idx: usize| -> (isize, isize, isize) {
        let (mut oa, mut ob, mut oc) = (0isize, 0isize, 0isize);
        for &(count, sa, sb, sc) in batch.iter().rev() {
            let i = (idx % count) as isize;
            idx /= count;
            oa += i * sa;
            ob += i * sb;
            oc += i * sc;
        }
        (oa, ob, oc)
    };
    let ptrs = Ptrs {
        a: c.a,
        b: c.b,
        c: c.c,
    };
    let one = |s: &mut Scratch, idx: usize| {
        let (oa, ob, oc) = offsets(idx);
        let p = ptrs;
        // SAFETY: batch offsets stay inside the operands (the lowering sized them), and
        // distinct batch indices write distinct matrices of C.
        unsafe {
            let b = if packed {
                BArg::Packed(p.b.offset(ob))
            } else {
                BArg::Strided(p.b.offset(ob), c.rsb, c.csb)
            };
            product(
                ctx,
                s,
                (c.m, c.n, c.k),
                (p.a.offset(oa), c.rsa, c.csa),
                b,
                (p.c.offset(oc), c.rsc),
                c.accumulate,
                c.alpha,
                fused.then_some((&c.epilogue, c.layout)),
            )
        }
    };
    let small = c.m.saturating_mul(c.n).saturating_mul(c.k) < PAR_BATCH_MAX_MNK
        && c.k.saturating_mul(c.n) < PAR_BATCH_MAX_KN;
    // The scratch is taken out of its cell while in use: a thread that picks up another task
    // while waiting inside a (parallel) GEMM then starts from an empty buffer instead of
    // sharing it.
    let with_scratch = |f: &dyn Fn(&mut Scratch)| {
        let mut s = SCRATCH.with(|c| std::mem::take(&mut *c.borrow_mut()));
        f(&mut s);
        SCRATCH.with(|c| *c.borrow_mut() = s);
    };
    if total > 1 && small && rayon::current_num_threads() > 1 {
        use rayon::prelude::*;
        (0..total)
            .into_par_iter()
            .for_each(|idx| with_scratch(&|s| one(s, idx)));
    } else {
        with_scratch(&|s| {
            for idx in 0..total {
                one(s, idx);
            }
        });
    }
}

/// # Safety
/// `ctx` and `args` as the helper table's `Call` convention and the module doc say.
unsafe extern "C" fn gemm_f32(ctx: *const RunContext, args: *const u64) {
    // SAFETY: forwarded from the caller.
    unsafe { call(&*ctx, args, false, false) }
}

/// # Safety
/// As `gemm_f32`, with B prepacked.
unsafe extern "C" fn gemm_f32_packed(ctx: *const RunContext, args: *const u64) {
    // SAFETY: forwarded from the caller.
    unsafe { call(&*ctx, args, true, false) }
}

/// # Safety
/// As `gemm_f32_packed`, with the fused form's slots.
unsafe extern "C" fn gemm_f32_packed_fused(ctx: *const RunContext, args: *const u64) {
    // SAFETY: forwarded from the caller.
    unsafe { call(&*ctx, args, true, true) }
}

/// # Safety
/// As the helpers.
unsafe fn call(ctx: &RunContext, args: *const u64, packed: bool, fused: bool) {
    // SAFETY: forwarded from the caller.
    match unsafe { read(args, fused) } {
        // SAFETY: as above.
        Ok(c) => unsafe { run(ctx, &c, packed, fused) },
        Err(msg) => ctx.fail(msg),
    }
}

/// An operand of [`contract`]: a base pointer, a dtype, and one stride per loop axis.
struct View {
    ptr: *const u8,
    dtype: crate::model::tensor::ElemType,
    strides: Vec<isize>,
}

/// Reads a view (pointer, dtype code, `axes` strides) at `s[*at..]`.
fn read_view(s: &[u64], at: &mut usize, axes: usize) -> View {
    let v = View {
        ptr: s[*at] as *const u8,
        dtype: from_code(s[*at + 1]),
        strides: s[*at + 2..*at + 2 + axes]
            .iter()
            .map(|&x| x as i64 as isize)
            .collect(),
    };
    *at += 2 + axes;
    v
}

/// Every offset `sum(idx[a] * strides[a])` over the row-major index space `sizes`.
fn offsets(sizes: &[usize], strides: &[isize]) -> Vec<isize> {
    let mut out = vec![0isize];
    for (&n, &s) in sizes.iter().zip(strides) {
        let mut next = Vec::with_capacity(out.len() * n);
        for &o in &out {
            for i in 0..n as isize {
                next.push(o + i * s);
            }
        }
        out = next;
    }
    out
}

/// The generic product: `out[o] (+)= alpha · Σ_r Π_i (x_i[o, r] - zp_i[o, r])` over a loop
/// space of `O` kept axes and `R` summed ones, every operand given by strides over that
/// space (0 where it broadcasts, summed strides for repeated einsum labels).
///
/// Arguments:
/// ```text
/// 0 out  1 out dtype  2 mode (0: f64 arithmetic, 1: wrapping i64)  3 alpha (f64 bits)
/// 4 accumulate (add to out)  5 O  6 R
/// then the O+R sizes, then O output strides, then I (number of inputs), and per input:
///   ptr, dtype, O+R strides, zero-point ptr (0: none), zero-point dtype, O+R strides
/// ```
/// Float mode multiplies in f64, sums in ascending order of the summed index, and rounds
/// once on store; integer mode wraps (alpha is ignored).
///
/// # Safety
/// `ctx` and `args` as the helper table's `Call` convention and the layout above say; every
/// strided access stays inside its buffer.
unsafe extern "C" fn contract(_ctx: *const RunContext, args: *const u64) {
    // SAFETY: the caller passes the slots the layout describes; the header first.
    let head = unsafe { std::slice::from_raw_parts(args, 7) };
    let (o_axes, r_axes) = (head[5] as usize, head[6] as usize);
    let axes = o_axes + r_axes;
    let inputs_at = 7 + axes + o_axes;
    // SAFETY: as above, through the input count.
    let count = unsafe { *args.add(inputs_at) } as usize;
    let len = inputs_at + 1 + count * 2 * (2 + axes);
    // SAFETY: as above, the whole list.
    let s = unsafe { std::slice::from_raw_parts(args, len) };
    let out = s[0] as *mut u8;
    let out_t = from_code(s[1]);
    let int = s[2] == 1;
    let alpha = f64::from_bits(s[3]);
    let accumulate = s[4] != 0;
    let sizes: Vec<usize> = s[7..7 + axes].iter().map(|&x| x as usize).collect();
    let out_strides: Vec<isize> = s[7 + axes..inputs_at]
        .iter()
        .map(|&x| x as i64 as isize)
        .collect();
    let mut at = inputs_at + 1;
    let mut views = Vec::with_capacity(count);
    for _ in 0..count {
        let x = read_view(s, &mut at, axes);
        let zp = read_view(s, &mut at, axes);
        views.push((x, (!zp.ptr.is_null()).then_some(zp)));
    }
    let (o_sizes, r_sizes) = sizes.split_at(o_axes);
    let o_out = offsets(o_sizes, &out_strides);
    let split = |v: &View| {
        (
            offsets(o_sizes, &v.strides[..o_axes]),
            offsets(r_sizes, &v.strides[o_axes..]),
        )
    };
    let offs: Vec<_> = views
        .iter()
        .map(|(x, zp)| (split(x), zp.as_ref().map(split)))
        .collect();
    let inner = r_sizes.iter().product::<usize>();
    for (o, &yo) in o_out.iter().enumerate() {
        // SAFETY: every offset is inside its operand (caller).
        unsafe {
            if int {
                let mut sum = 0i64;
                for r in 0..inner {
                    let mut prod = 1i64;
                    for ((x, zp), ((xo, xr), zo)) in views.iter().zip(&offs) {
                        let mut v = elem::load_i64(x.dtype, x.ptr, xo[o] + xr[r]);
                        if let (Some(z), Some((zo, zr))) = (zp, zo) {
                            v = v.wrapping_sub(elem::load_i64(z.dtype, z.ptr, zo[o] + zr[r]));
                        }
                        prod = prod.wrapping_mul(v);
                    }
                    sum = sum.wrapping_add(prod);
                }
                if accumulate {
                    sum = sum.wrapping_add(elem::load_i64(out_t, out, yo));
                }
                elem::store_i64(out_t, out, yo, sum);
            } else {
                let mut sum = 0f64;
                for r in 0..inner {
                    let mut prod = 1f64;
                    for ((x, zp), ((xo, xr), zo)) in views.iter().zip(&offs) {
                        let mut v = elem::load_f64(x.dtype, x.ptr, xo[o] + xr[r]);
                        if let (Some(z), Some((zo, zr))) = (zp, zo) {
                            v -= elem::load_f64(z.dtype, z.ptr, zo[o] + zr[r]);
                        }
                        prod *= v;
                    }
                    sum += prod;
                }
                if alpha != 1.0 {
                    sum *= alpha;
                }
                if accumulate {
                    sum += elem::load_f64(out_t, out, yo);
                }
                elem::store_f64(out_t, out, yo, sum, true);
            }
        }
    }
}

/// `y[i, j] = beta · c[i*rsc + j*csc]` for an `m x n` row-major y: Gemm's C term broadcast
/// into the output before the product accumulates onto it.
///
/// Arguments: `y | c | m | n | rsc | csc | beta (f64 bits)`.
///
/// # Safety
/// `ctx`/`args` per the `Call` convention; y holds `m*n` floats, c every strided element.
unsafe extern "C" fn fill_f32(_ctx: *const RunContext, args: *const u64) {
    // SAFETY: 7 slots (caller).
    let s = unsafe { std::slice::from_raw_parts(args, 7) };
    let (y, c) = (s[0] as *mut f32, s[1] as *const f32);
    let (m, n) = (s[2] as usize, s[3] as usize);
    let (rsc, csc) = (s[4] as i64 as isize, s[5] as i64 as isize);
    let beta = f64::from_bits(s[6]);
    for i in 0..m {
        for j in 0..n {
            // SAFETY: (i, j) is inside y and its C element inside c (caller).
            unsafe {
                let v = *c.offset(i as isize * rsc + j as isize * csc) as f64;
                *y.add(i * n + j) = (beta * v) as f32;
            }
        }
    }
}

/// Det: the determinant of each of `count` row-major `n x n` matrices, by LU decomposition
/// with partial pivoting in f64.
///
/// Arguments: `x | dtype | y | count | n`.
///
/// # Safety
/// `ctx`/`args` per the `Call` convention; x holds `count*n*n` elements, y `count`.
unsafe extern "C" fn det(_ctx: *const RunContext, args: *const u64) {
    // SAFETY: 5 slots (caller).
    let s = unsafe { std::slice::from_raw_parts(args, 5) };
    let (x, t, y) = (s[0] as *const u8, from_code(s[1]), s[2] as *mut u8);
    let (count, n) = (s[3] as usize, s[4] as usize);
    let mut a = vec![0f64; n * n];
    for m in 0..count {
        for (i, v) in a.iter_mut().enumerate() {
            // SAFETY: matrix m's elements are inside x (caller).
            *v = unsafe { elem::load_f64(t, x, (m * n * n + i) as isize) };
        }
        let mut d = 1.0;
        for c in 0..n {
            let p = (c..n)
                .max_by(|&i, &j| a[i * n + c].abs().total_cmp(&a[j * n + c].abs()))
                .unwrap_or(c);
            if a[p * n + c] == 0.0 {
                d = 0.0;
                break;
            }
            if p != c {
                for j in 0..n {
                    a.swap(p * n + j, c * n + j);
                }
                d = -d;
            }
            let piv = a[c * n + c];
            d *= piv;
            for i in c + 1..n {
                let f = a[i * n + c] / piv;
                if f != 0.0 {
                    for j in c..n {
                        a[i * n + j] -= f * a[c * n + j];
                    }
                }
            }
        }
        // SAFETY: element m of y (caller).
        unsafe { elem::store_f64(t, y, m as isize, d, true) };
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
    Helper {
        name: "gemm_f32_packed_fused",
        func: HelperFn::Call(gemm_f32_packed_fused),
    },
    Helper {
        name: "contract",
        func: HelperFn::Call(contract),
    },
    Helper {
        name: "fill_f32",
        func: HelperFn::Call(fill_f32),
    },
    Helper {
        name: "det",
        func: HelperFn::Call(det),
    },
];
