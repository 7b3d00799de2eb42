//! Movement kernels whose index map depends on run-time data or on the position: Trilu's
//! triangles, ReverseSequence's per-batch lengths, Range's arithmetic sequence.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder};
use kiln_ir::dtype::DType;

use super::{copy_row, elem_type, fill_row};
use crate::cpu::codegen::kernel::{mem, KernelBuilder};
use crate::error::TargetError;

/// The kernel key of [`trilu`].
pub fn trilu_key(esize: usize, upper: bool, k_ptr: bool) -> String {
    format!(
        "trilu_e{esize}_{}_{}",
        if upper { "upper" } else { "lower" },
        if k_ptr { "kptr" } else { "k" }
    )
}

/// The upper (`j - i >= k`) or lower (`j - i <= k`) triangle of a batch of matrices, the
/// rest zero. Args: `[src, dst, batch, rows, cols, k]`, `k` an integer or (with `k_ptr`) the
/// address of an i64.
pub fn trilu(
    kb: &mut KernelBuilder,
    esize: usize,
    upper: bool,
    k_ptr: bool,
) -> Result<(), TargetError> {
    let (src, dst, batch, rows, cols) = (kb.arg(0), kb.arg(1), kb.arg(2), kb.arg(3), kb.arg(4));
    let k = kb.arg(5);
    let k = if k_ptr {
        kb.b.ins().load(types::I64, mem(), k, 0)
    } else {
        k
    };
    let row_bytes = kb.b.ins().imul_imm_s(cols, esize as i64);
    let zero_elem = kb.b.ins().iconst(elem_type(esize), 0);
    let zero = kb.iconst(0);
    kb.for_range(zero, batch, 1, |kb, m| {
        let first_row = kb.b.ins().imul(m, rows);
        let zero = kb.iconst(0);
        kb.for_range(zero, rows, 1, |kb, i| {
            let r = kb.b.ins().iadd(first_row, i);
            let off = kb.b.ins().imul(r, row_bytes);
            let (s, d) = (kb.b.ins().iadd(src, off), kb.b.ins().iadd(dst, off));
            // The split column: upper keeps [i+k, cols), lower keeps [0, i+k+1).
            let z = kb.b.ins().iadd(i, k);
            let z = if upper {
                z
            } else {
                kb.b.ins().iadd_imm_s(z, 1)
            };
            let zero = kb.iconst(0);
            let z = kb.b.ins().smax(z, zero);
            let z = kb.b.ins().smin(z, cols);
            let z_bytes = kb.b.ins().imul_imm_s(z, esize as i64);
            let rest = kb.b.ins().isub(cols, z);
            let rest_bytes = kb.b.ins().imul_imm_s(rest, esize as i64);
            let (s_hi, d_hi) = (kb.b.ins().iadd(s, z_bytes), kb.b.ins().iadd(d, z_bytes));
            if upper {
                fill_row(kb, d, z, zero_elem, esize)?;
                copy_row(kb, s_hi, d_hi, rest_bytes)
            } else {
                copy_row(kb, s, d, z_bytes)?;
                fill_row(kb, d_hi, rest, zero_elem, esize)
            }
        })
    })
}

/// The kernel key of [`reverse_sequence`].
pub fn reverse_sequence_key() -> String {
    "reverse_sequence".into()
}

/// ReverseSequence: for batch `b`, time steps `t < l = clamp(lens[b], 0, nt)` come from
/// `l - 1 - t`, the others stay. Args: `[src, dst, lens (i64s), nb, nt, sb, st, row_bytes]`,
/// strides in bytes; each (batch, time) pair is a contiguous row of `row_bytes`.
pub fn reverse_sequence(kb: &mut KernelBuilder) -> Result<(), TargetError> {
    let (src, dst, lens, nb, nt) = (kb.arg(0), kb.arg(1), kb.arg(2), kb.arg(3), kb.arg(4));
    let (sb, st, row_bytes) = (kb.arg(5), kb.arg(6), kb.arg(7));
    let zero = kb.iconst(0);
    kb.for_range(zero, nb, 1, |kb, b| {
        let lp = kb.addr(lens, b, 8);
        let l = kb.b.ins().load(types::I64, mem(), lp, 0);
        let zero = kb.iconst(0);
        let l = kb.b.ins().smax(l, zero);
        let l = kb.b.ins().smin(l, nt);
        let boff = kb.b.ins().imul(b, sb);
        let (s_b, d_b) = (kb.b.ins().iadd(src, boff), kb.b.ins().iadd(dst, boff));
        let lm1 = kb.b.ins().iadd_imm_s(l, -1);
        kb.for_range(zero, nt, 1, |kb, t| {
            let inside = kb.b.ins().icmp(IntCC::SignedLessThan, t, l);
            let rev = kb.b.ins().isub(lm1, t);
            let from = kb.b.ins().select(inside, rev, t);
            let so = kb.b.ins().imul(from, st);
            let doff = kb.b.ins().imul(t, st);
            let (s, d) = (kb.b.ins().iadd(s_b, so), kb.b.ins().iadd(d_b, doff));
            copy_row(kb, s, d, row_bytes)
        })
    })
}

/// The dtypes [`range`] generates.
pub fn range_supports(dtype: DType) -> bool {
    matches!(
        dtype,
        DType::F32 | DType::F64 | DType::I8 | DType::I16 | DType::I32 | DType::I64
    )
}

/// The kernel key of [`range`].
pub fn range_key(dtype: DType) -> String {
    format!("range_{}", dtype.name())
}

/// `dst[i] = start + i * delta`. Args: `[dst, n, start (address), delta (address)]`. Integers
/// in wrapping i64 arithmetic, floats in f64 (then rounded to the dtype), as the reference.
pub fn range(kb: &mut KernelBuilder, dtype: DType) -> Result<(), TargetError> {
    if !range_supports(dtype) {
        return Err(TargetError::Lower(format!("Range of {}", dtype.name())));
    }
    let (dst, n, sp, dp) = (kb.arg(0), kb.arg(1), kb.arg(2), kb.arg(3));
    let esize = dtype.size();
    let zero = kb.iconst(0);
    match dtype {
        DType::F32 | DType::F64 => {
            let ty = if dtype == DType::F32 {
                types::F32
            } else {
                types::F64
            };
            let mut s = kb.b.ins().load(ty, mem(), sp, 0);
            let mut d = kb.b.ins().load(ty, mem(), dp, 0);
            if dtype == DType::F32 {
                s = kb.b.ins().fpromote(types::F64, s);
                d = kb.b.ins().fpromote(types::F64, d);
            }
            kb.for_range(zero, n, 1, |kb, i| {
                let fi = kb.b.ins().fcvt_from_sint(types::F64, i);
                let v = kb.b.ins().fmul(fi, d);
                let v = kb.b.ins().fadd(s, v);
                let v = if dtype == DType::F32 {
                    kb.b.ins().fdemote(types::F32, v)
                } else {
                    v
                };
                let p = kb.addr(dst, i, esize as i64);
                kb.b.ins().store(mem(), v, p, 0);
                Ok(())
            })
        }
        _ => {
            let ty = elem_type(esize);
            let widen = |kb: &mut KernelBuilder, v| {
                if esize == 8 {
                    v
                } else {
                    kb.b.ins().sextend(types::I64, v)
                }
            };
            let s = kb.b.ins().load(ty, mem(), sp, 0);
            let s = widen(kb, s);
            let d = kb.b.ins().load(ty, mem(), dp, 0);
            let d = widen(kb, d);
            kb.for_range(zero, n, 1, |kb, i| {
                let v = kb.b.ins().imul(i, d);
                let v = kb.b.ins().iadd(s, v);
                let v = if esize == 8 {
                    v
                } else {
                    kb.b.ins().ireduce(ty, v)
                };
                let p = kb.addr(dst, i, esize as i64);
                kb.b.ins().store(mem(), v, p, 0);
                Ok(())
            })
        }
    }
}

/// The kernel key of [`dropout`].
pub fn dropout_key(x: DType, ratio: DType) -> String {
    format!("dropout_{}_{}", x.name(), ratio.name())
}

/// Dropout with a precomputed uniform draw per element. Args: `[x, y, mask, n, uniforms
/// (f64s), ratio (address), training (address of a bool)]`. In training mode with a non-zero
/// ratio `r`, element `i` is kept when `uniforms[i] >= r` and scaled by `1 / (1 - r)`
/// (each step rounded to the ratio's dtype, the product to the data's), else zeroed;
/// otherwise `y = x` and the mask is all true. `x` and `ratio` are f32 or f64.
pub fn dropout(kb: &mut KernelBuilder, x_dt: DType, r_dt: DType) -> Result<(), TargetError> {
    use cranelift_codegen::ir::condcodes::FloatCC;
    let float = |d: DType| match d {
        DType::F32 => Some(types::F32),
        DType::F64 => Some(types::F64),
        _ => None,
    };
    let (Some(xt), Some(rt)) = (float(x_dt), float(r_dt)) else {
        return Err(TargetError::Lower(format!(
            "Dropout of {} with a {} ratio",
            x_dt.name(),
            r_dt.name()
        )));
    };
    let (x, y, mask, n) = (kb.arg(0), kb.arg(1), kb.arg(2), kb.arg(3));
    let (u, rp, tp) = (kb.arg(4), kb.arg(5), kb.arg(6));
    // Rounds an f64 to `t` and back.
    let round = |kb: &mut KernelBuilder, t, v| {
        if t == types::F32 {
            let s = kb.b.ins().fdemote(types::F32, v);
            kb.b.ins().fpromote(types::F64, s)
        } else {
            v
        }
    };
    let r = kb.b.ins().load(rt, mem(), rp, 0);
    let r = if rt == types::F32 {
        kb.b.ins().fpromote(types::F64, r)
    } else {
        r
    };
    let t = kb.b.ins().load(types::I8, mem(), tp, 0);
    let zero_f = kb.b.ins().f64const(0.0);
    let one_f = kb.b.ins().f64const(1.0);
    let training = kb.b.ins().icmp_imm_s(IntCC::NotEqual, t, 0);
    let nonzero = kb.b.ins().fcmp(FloatCC::NotEqual, r, zero_f);
    let active = kb.b.ins().band(training, nonzero);
    let keep_frac = kb.b.ins().fsub(one_f, r);
    let keep_frac = round(kb, rt, keep_frac);
    let scale = kb.b.ins().fdiv(one_f, keep_frac);
    let scale = round(kb, rt, scale);
    let xs = x_dt.size() as i64;
    let zero = kb.iconst(0);
    kb.for_range(zero, n, 1, |kb, i| {
        let xp = kb.addr(x, i, xs);
        let xv = kb.b.ins().load(xt, mem(), xp, 0);
        let xv = if xt == types::F32 {
            kb.b.ins().fpromote(types::F64, xv)
        } else {
            xv
        };
        let up = kb.addr(u, i, 8);
        let ui = kb.b.ins().load(types::F64, mem(), up, 0);
        let keep = kb.b.ins().fcmp(FloatCC::GreaterThanOrEqual, ui, r);
        let scaled = kb.b.ins().fmul(xv, scale);
        let zeroed = kb.b.ins().fmul(zero_f, xv);
        let dropped = kb.b.ins().select(keep, scaled, zeroed);
        let v = kb.b.ins().select(active, dropped, xv);
        let v = if xt == types::F32 {
            kb.b.ins().fdemote(types::F32, v)
        } else {
            v
        };
        let yp = kb.addr(y, i, xs);
        kb.b.ins().store(mem(), v, yp, 0);
        let inactive = kb.b.ins().icmp_imm_s(IntCC::Equal, active, 0);
        let m = kb.b.ins().bor(keep, inactive);
        let mp = kb.b.ins().iadd(mask, i);
        kb.b.ins().store(mem(), m, mp, 0);
        Ok(())
    })
}
