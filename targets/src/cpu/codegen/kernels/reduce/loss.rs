//! The negative log-likelihood loss (also the second half of softmax cross-entropy).

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};

use super::{fconst, Elem};
use crate::cpu::codegen::kernel::{mem, KernelBuilder};
use crate::error::TargetError;

/// How the per-element losses are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    None,
    Sum,
    Mean,
}

/// `loss[i, j] = -weight[t] * x[i, t, j]` with `t = target[i, j]`, over `x: [N, C, D]`
/// (log-probabilities) and `target: [N, D]`. An element whose target is `ignore_index` has
/// loss 0 and weight 0; a target outside `[0, C)` gives NaN (nothing is read for it).
/// `Sum`/`Mean` accumulate in f64; `Mean` divides by the summed weights.
/// Args: `[x, target, weight, out, N, C, D, ignore_index]`.
pub fn nll_kernel(
    kb: &mut KernelBuilder,
    e: Elem,
    target_i32: bool,
    weight: bool,
    ignore: bool,
    red: Reduction,
) -> Result<(), TargetError> {
    let st = e.scalar();
    let size = e.size();
    let (x, target, w, out) = (kb.arg(0), kb.arg(1), kb.arg(2), kb.arg(3));
    let (n, c, d, ig) = (kb.arg(4), kb.arg(5), kb.arg(6), kb.arg(7));
    let acc_ty = types::F64;
    let z = fconst(kb, acc_ty, 0.0);
    let sum = kb.var(acc_ty, z);
    let wsum = kb.var(acc_ty, z);
    let total = kb.b.ins().imul(n, d);
    let zero = kb.iconst(0);
    kb.for_range(zero, total, 1, |kb, k| {
        let i = kb.b.ins().udiv(k, d);
        let j = kb.b.ins().urem(k, d);
        let t = if target_i32 {
            let a = kb.addr(target, k, 4);
            kb.b.ins().sload32(mem(), a, 0)
        } else {
            let a = kb.addr(target, k, 8);
            kb.b.ins().load(types::I64, mem(), a, 0)
        };
        let ge = kb.b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, t, 0);
        let lt = kb.b.ins().icmp(IntCC::SignedLessThan, t, c);
        let valid = kb.b.ins().band(ge, lt);
        let tc = kb.b.ins().select(valid, t, zero);
        // x[i, tc, j]
        let row = kb.b.ins().imul(i, c);
        let row = kb.b.ins().iadd(row, tc);
        let row = kb.b.ins().imul(row, d);
        let at = kb.b.ins().iadd(row, j);
        let a = kb.addr(x, at, size);
        let xv = e.load(kb, st, a);
        let wv = if weight {
            let a = kb.addr(w, tc, size);
            e.load(kb, st, a)
        } else {
            fconst(kb, st, 1.0)
        };
        let l = kb.b.ins().fmul(xv, wv);
        let l = kb.b.ins().fneg(l);
        let nan = fconst(kb, st, f64::NAN);
        let l = kb.b.ins().select(valid, l, nan);
        let (l, wv) = if ignore {
            let is_ig = kb.b.ins().icmp(IntCC::Equal, t, ig);
            let zf = fconst(kb, st, 0.0);
            (
                kb.b.ins().select(is_ig, zf, l),
                kb.b.ins().select(is_ig, zf, wv),
            )
        } else {
            (l, wv)
        };
        if red == Reduction::None {
            let a = kb.addr(out, k, size);
            e.store(kb, l, a);
        } else {
            let (l, wv): (Value, Value) = if st == types::F32 {
                (
                    kb.b.ins().fpromote(acc_ty, l),
                    kb.b.ins().fpromote(acc_ty, wv),
                )
            } else {
                (l, wv)
            };
            let s = kb.b.use_var(sum);
            let s = kb.b.ins().fadd(s, l);
            kb.b.def_var(sum, s);
            let s = kb.b.use_var(wsum);
            let s = kb.b.ins().fadd(s, wv);
            kb.b.def_var(wsum, s);
        }
        Ok(())
    })?;
    if red != Reduction::None {
        let mut r = kb.b.use_var(sum);
        if red == Reduction::Mean {
            let ws = kb.b.use_var(wsum);
            r = kb.b.ins().fdiv(r, ws);
        }
        if st == types::F32 {
            r = kb.b.ins().fdemote(types::F32, r);
        }
        e.store(kb, r, out);
    }
    Ok(())
}
