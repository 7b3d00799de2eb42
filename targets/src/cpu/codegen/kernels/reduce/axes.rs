//! `Reduce*`: `out[kept] = reduce(src[kept, reduced])` for any set of reduced axes.
//!
//! The lowering drops axes of size 1 and merges neighbouring axes that are both kept or
//! both reduced, so the source is a row-major sequence of groups alternating between kept
//! and reduced (`pattern[i]` = group `i` is reduced). Kept groups in order are the output's
//! order, so outputs are written in sequence without a transpose.
//!
//! - Last group reduced ("rows"): each output folds over contiguous runs, with a vector
//!   accumulator and a scalar tail.
//! - Last group kept ("columns", length `I`): each vector of `I` neighbouring outputs folds
//!   over every reduced element with one vector load each.
//!
//! Floats accumulate in their own type (f32 vectors for f32); integers in i64, wrapping.

use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{types, InstBuilder, Type, Value};

use super::math::{self, select_f, MathHelpers};
use super::{fconst, hfold, int_to_float, nest, pin, Bin, Elem};
use crate::cpu::codegen::kernel::KernelBuilder;
use crate::error::TargetError;

/// The reductions of the `Reduce*` family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RKind {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    L1,
    L2,
    LogSum,
    LogSumExp,
    SumSquare,
}

impl RKind {
    /// Whether integer inputs are reduced exactly (in i64) by this kernel.
    pub fn exact_on_ints(self) -> bool {
        matches!(
            self,
            RKind::Sum | RKind::Max | RKind::Min | RKind::Prod | RKind::L1 | RKind::SumSquare
        )
    }

    /// Whether the kernel calls the `exp`/`log` helpers.
    pub fn needs_math(self) -> bool {
        matches!(self, RKind::LogSum | RKind::LogSumExp)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pre {
    Id,
    Abs,
    Square,
    /// `exp(x - m)`, with `m` the previous pass's result (0 when not finite).
    ExpMinus,
}

#[derive(Clone, Copy)]
struct Pass {
    op: Bin,
    pre: Pre,
}

fn passes(kind: RKind) -> Vec<Pass> {
    let p = |op, pre| Pass { op, pre };
    match kind {
        RKind::Sum | RKind::Mean | RKind::LogSum => vec![p(Bin::Add, Pre::Id)],
        RKind::Max => vec![p(Bin::Max, Pre::Id)],
        RKind::Min => vec![p(Bin::Min, Pre::Id)],
        RKind::Prod => vec![p(Bin::Mul, Pre::Id)],
        RKind::L1 => vec![p(Bin::Add, Pre::Abs)],
        RKind::L2 | RKind::SumSquare => vec![p(Bin::Add, Pre::Square)],
        RKind::LogSumExp => vec![p(Bin::Max, Pre::Id), p(Bin::Add, Pre::ExpMinus)],
    }
}

struct Ctx {
    kind: RKind,
    e: Elem,
    math: Option<MathHelpers>,
    /// The number of reduced elements (i64).
    count: Value,
}

impl Ctx {
    fn math(&self) -> Result<MathHelpers, TargetError> {
        self.math
            .ok_or_else(|| TargetError::Lower("reduction kernel built without math helpers".into()))
    }

    /// `m` if finite, else 0 (LogSumExp's shift).
    fn finite_or_zero(&self, kb: &mut KernelBuilder, ty: Type, m: Value) -> Value {
        let d = kb.b.ins().fsub(m, m);
        let zero = fconst(kb, ty, 0.0);
        select_f(kb, ty, FloatCC::Equal, d, zero, m, zero)
    }

    fn pre(
        &self,
        kb: &mut KernelBuilder,
        ty: Type,
        pre: Pre,
        x: Value,
        shift: Option<Value>,
    ) -> Result<Value, TargetError> {
        Ok(match (pre, self.e) {
            (Pre::Id, _) => x,
            (Pre::Abs, Elem::Float(_)) => kb.b.ins().fabs(x),
            (Pre::Abs, Elem::Int { .. }) => kb.b.ins().iabs(x),
            (Pre::Square, Elem::Float(_)) => kb.b.ins().fmul(x, x),
            (Pre::Square, Elem::Int { .. }) => kb.b.ins().imul(x, x),
            (Pre::ExpMinus, _) => {
                let m = shift.ok_or_else(|| TargetError::Lower("missing shift".into()))?;
                let d = kb.b.ins().fsub(x, m);
                math::exp(kb, self.math()?, ty, d)
            }
        })
    }

    /// The result from the passes' results `r`.
    fn post(&self, kb: &mut KernelBuilder, ty: Type, r: &[Value]) -> Result<Value, TargetError> {
        let last = *r.last().expect("one pass at least");
        Ok(match self.kind {
            RKind::Mean => {
                let c = int_to_float(kb, ty.lane_type(), self.count);
                let c = if ty.is_vector() {
                    kb.b.ins().splat(ty, c)
                } else {
                    c
                };
                kb.b.ins().fdiv(last, c)
            }
            RKind::L2 => kb.b.ins().sqrt(last),
            RKind::LogSum => math::log(kb, self.math()?, ty, last),
            RKind::LogSumExp => {
                let m = self.finite_or_zero(kb, ty, r[0]);
                let l = math::log(kb, self.math()?, ty, last);
                kb.b.ins().fadd(l, m)
            }
            _ => last,
        })
    }

    fn shift(&self, kb: &mut KernelBuilder, ty: Type, pass: Pass, r: &[Value]) -> Option<Value> {
        (pass.pre == Pre::ExpMinus).then(|| self.finite_or_zero(kb, ty, r[0]))
    }
}

/// A variable of type `ty` holding `init`.
fn var(kb: &mut KernelBuilder, ty: Type, init: Value) -> cranelift_frontend::Variable {
    kb.var(ty, init)
}

/// Emits a reduction kernel. Args: `[src, dst, size_0, .., size_{m-1}]` with the group
/// sizes of `pattern` (which must end... either way; see the module docs).
pub fn reduce(
    kb: &mut KernelBuilder,
    kind: RKind,
    e: Elem,
    pattern: &[bool],
    math: Option<MathHelpers>,
) -> Result<(), TargetError> {
    if pattern.is_empty() {
        return Err(TargetError::Lower("empty reduction pattern".into()));
    }
    let (src, dst) = (kb.arg(0), kb.arg(1));
    let m = pattern.len();
    let sizes: Vec<Value> = (0..m).map(|i| kb.arg(2 + i)).collect();
    let mut strides = vec![kb.iconst(1); m];
    for i in (0..m - 1).rev() {
        strides[i] = kb.b.ins().imul(strides[i + 1], sizes[i + 1]);
    }
    let mut count = kb.iconst(1);
    for (i, &r) in pattern.iter().enumerate() {
        if r {
            count = kb.b.ins().imul(count, sizes[i]);
        }
    }
    let ctx = Ctx {
        kind,
        e,
        math,
        count,
    };
    let size = e.size();
    let zero = kb.iconst(0);
    let out = var(kb, types::I64, zero);
    if pattern[m - 1] {
        let kept: Vec<(Value, Value)> = (0..m)
            .filter(|&i| !pattern[i])
            .map(|i| (sizes[i], strides[i]))
            .collect();
        let red: Vec<(Value, Value)> = (0..m - 1)
            .filter(|&i| pattern[i])
            .map(|i| (sizes[i], strides[i]))
            .collect();
        let len = sizes[m - 1];
        nest(kb, &kept, zero, &mut |kb, base| {
            let mut results = Vec::new();
            for pass in passes(kind) {
                let st = e.scalar();
                let shift_s = ctx.shift(kb, st, pass, &results);
                let shift_v = match (shift_s, e.vector()) {
                    (Some(s), Some(vt)) => Some(kb.b.ins().splat(vt, s)),
                    _ => None,
                };
                let init = pass.op.identity(kb, e, st);
                let acc_s = var(kb, st, init);
                // Four vector accumulators hide the fold's latency.
                let acc_v = match e.vector() {
                    Some(vt) => {
                        let init = pass.op.identity(kb, e, vt);
                        let accs: Vec<_> = (0..4).map(|_| var(kb, vt, init)).collect();
                        Some((vt, accs))
                    }
                    None => None,
                };
                nest(kb, &red, base, &mut |kb, rb| {
                    let row = kb.addr(src, rb, size);
                    let row = pin(kb, row);
                    let z = kb.iconst(0);
                    let rest = match &acc_v {
                        Some((vt, accs)) => {
                            let vt = *vt;
                            let lanes = e.lanes();
                            let one = |kb: &mut KernelBuilder, i: Value, k: usize| {
                                let a = kb.addr(row, i, size);
                                let a = kb.b.ins().iadd_imm_s(a, k as i64 * lanes * size);
                                let x = e.load(kb, vt, a);
                                let x = ctx.pre(kb, vt, pass.pre, x, shift_v)?;
                                let acc = kb.b.use_var(accs[k]);
                                let acc = pass.op.apply(kb, e, acc, x);
                                kb.b.def_var(accs[k], acc);
                                Ok::<(), TargetError>(())
                            };
                            let r = kb.for_chunks(z, len, 4 * lanes, |kb, i| {
                                for k in 0..4 {
                                    one(kb, i, k)?;
                                }
                                Ok(())
                            })?;
                            kb.for_chunks(r, len, lanes, |kb, i| one(kb, i, 0))?
                        }
                        None => z,
                    };
                    kb.for_range(rest, len, 1, |kb, i| {
                        let a = kb.addr(row, i, size);
                        let x = e.load(kb, st, a);
                        let x = ctx.pre(kb, st, pass.pre, x, shift_s)?;
                        let acc = kb.b.use_var(acc_s);
                        let acc = pass.op.apply(kb, e, acc, x);
                        kb.b.def_var(acc_s, acc);
                        Ok(())
                    })
                })?;
                let mut r = kb.b.use_var(acc_s);
                if let Some((_, accs)) = &acc_v {
                    let mut v = kb.b.use_var(accs[0]);
                    for &acc in &accs[1..] {
                        let w = kb.b.use_var(acc);
                        v = pass.op.apply(kb, e, v, w);
                    }
                    let h = hfold(kb, e, pass.op, v);
                    r = pass.op.apply(kb, e, h, r);
                }
                results.push(r);
            }
            let y = ctx.post(kb, e.scalar(), &results)?;
            let o = kb.b.use_var(out);
            let a = kb.addr(dst, o, size);
            e.store(kb, y, a);
            let o = kb.b.ins().iadd_imm_s(o, 1);
            kb.b.def_var(out, o);
            Ok(())
        })
    } else {
        let kept: Vec<(Value, Value)> = (0..m - 1)
            .filter(|&i| !pattern[i])
            .map(|i| (sizes[i], strides[i]))
            .collect();
        let red: Vec<(Value, Value)> = (0..m)
            .filter(|&i| pattern[i])
            .map(|i| (sizes[i], strides[i]))
            .collect();
        let width = sizes[m - 1];
        nest(kb, &kept, zero, &mut |kb, base| {
            let o = kb.b.use_var(out);
            let obase = kb.b.ins().imul(o, width);
            let z = kb.iconst(0);
            // One column block of type `ty` at inner index `i`.
            let column = |kb: &mut KernelBuilder, ty: Type, i: Value| {
                let mut results = Vec::new();
                let start = kb.b.ins().iadd(base, i);
                for pass in passes(kind) {
                    let shift = ctx.shift(kb, ty, pass, &results);
                    let init = pass.op.identity(kb, e, ty);
                    let acc = var(kb, ty, init);
                    nest(kb, &red, start, &mut |kb, rb| {
                        let a = kb.addr(src, rb, size);
                        let x = e.load(kb, ty, a);
                        let x = ctx.pre(kb, ty, pass.pre, x, shift)?;
                        let v = kb.b.use_var(acc);
                        let v = pass.op.apply(kb, e, v, x);
                        kb.b.def_var(acc, v);
                        Ok(())
                    })?;
                    results.push(kb.b.use_var(acc));
                }
                let y = ctx.post(kb, ty, &results)?;
                let oi = kb.b.ins().iadd(obase, i);
                let a = kb.addr(dst, oi, size);
                e.store(kb, y, a);
                Ok::<(), TargetError>(())
            };
            let rest = match e.vector() {
                Some(vt) => kb.for_chunks(z, width, e.lanes(), |kb, i| column(kb, vt, i))?,
                None => z,
            };
            kb.for_range(rest, width, 1, |kb, i| column(kb, e.scalar(), i))?;
            let o = kb.b.ins().iadd_imm_s(o, 1);
            kb.b.def_var(out, o);
            Ok(())
        })
    }
}
