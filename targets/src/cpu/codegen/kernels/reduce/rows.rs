//! Row kernels: the softmax family, `LpNormalization`, arg-reductions and scans.
//!
//! A tensor is seen as `[outer, n, inner]` around one axis; a lane is the `n` elements
//! `base + k * inner`. With `inner == 1` known at compile time (`contig`) lanes are
//! contiguous rows and the kernels use vectors with a scalar tail; otherwise they walk the
//! lane with a stride.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, InstBuilder, Type, Value};

use super::math::{self, MathHelpers};
use super::{fconst, hfold, pin, Bin, Elem, Splat};
use crate::cpu::codegen::kernel::KernelBuilder;
use crate::error::TargetError;

/// One lane: `n` elements from `src` (and `dst`), `stride` elements apart.
#[derive(Clone, Copy)]
pub struct Lane {
    pub e: Elem,
    pub src: Value,
    pub dst: Value,
    pub n: Value,
    pub stride: Value,
    /// The stride is 1 (known statically): vector code.
    pub contig: bool,
}

/// A scalar broadcast to `ty` (a no-op when `ty` is scalar).
pub fn splat_to(kb: &mut KernelBuilder, ty: Type, s: Value) -> Value {
    if ty.is_vector() {
        kb.b.ins().splat(ty, s)
    } else {
        s
    }
}

impl Lane {
    fn at(&self, kb: &mut KernelBuilder, base: Value, i: Value) -> Value {
        let size = self.e.size();
        if self.contig {
            kb.addr(base, i, size)
        } else {
            let k = kb.b.ins().imul(i, self.stride);
            kb.addr(base, k, size)
        }
    }

    /// Visits the lane: `f(ty, i)` for vector blocks (contiguous lanes) then single
    /// elements; `ty` is the vector or scalar type.
    fn visit(
        &self,
        kb: &mut KernelBuilder,
        mut f: impl FnMut(&mut KernelBuilder, Type, Value) -> Result<(), TargetError>,
    ) -> Result<(), TargetError> {
        let zero = kb.iconst(0);
        let rest = match (self.contig, self.e.vector()) {
            (true, Some(vt)) => {
                kb.for_chunks(zero, self.n, self.e.lanes(), |kb, i| f(kb, vt, i))?
            }
            _ => zero,
        };
        let st = self.e.scalar();
        kb.for_range(rest, self.n, 1, |kb, i| f(kb, st, i))
    }

    /// Folds `pre(x)` over the lane with `op`; returns a scalar.
    pub fn fold(
        &self,
        kb: &mut KernelBuilder,
        op: Bin,
        mut pre: impl FnMut(&mut KernelBuilder, Type, Value) -> Result<Value, TargetError>,
    ) -> Result<Value, TargetError> {
        self.fold_map(kb, op, false, &mut pre)
    }

    /// Stores `f(x)` to `dst` and folds the stored values with `op`; returns a scalar.
    pub fn map_fold(
        &self,
        kb: &mut KernelBuilder,
        op: Bin,
        mut f: impl FnMut(&mut KernelBuilder, Type, Value) -> Result<Value, TargetError>,
    ) -> Result<Value, TargetError> {
        self.fold_map(kb, op, true, &mut f)
    }

    fn fold_map(
        &self,
        kb: &mut KernelBuilder,
        op: Bin,
        store: bool,
        f: &mut dyn FnMut(&mut KernelBuilder, Type, Value) -> Result<Value, TargetError>,
    ) -> Result<Value, TargetError> {
        let e = self.e;
        let st = e.scalar();
        let init = op.identity(kb, e, st);
        let acc_s = kb.var(st, init);
        let lane = *self;
        // One element (scalar) or vector at index i, folded into `acc`.
        let mut step = |kb: &mut KernelBuilder,
                        ty: Type,
                        i: Value,
                        acc: cranelift_frontend::Variable|
         -> Result<(), TargetError> {
            let a = lane.at(kb, lane.src, i);
            let x = e.load(kb, ty, a);
            let y = f(kb, ty, x)?;
            if store {
                let d = lane.at(kb, lane.dst, i);
                e.store(kb, y, d);
            }
            let v = kb.b.use_var(acc);
            let v = op.apply(kb, e, v, y);
            kb.b.def_var(acc, v);
            Ok(())
        };
        let zero = kb.iconst(0);
        let rest = match (self.contig, e.vector()) {
            (true, Some(vt)) => {
                // Independent accumulators hide the latency of the fold (a maximum's
                // compare-select or an add): four for plain folds, two when each element
                // also costs an exp.
                let unroll: i64 = if store { 2 } else { 4 };
                let lanes = e.lanes();
                let vinit = op.identity(kb, e, vt);
                let accs: Vec<_> = (0..unroll).map(|_| kb.var(vt, vinit)).collect();
                let r = kb.for_chunks(zero, self.n, lanes * unroll, |kb, i| {
                    for (k, &acc) in accs.iter().enumerate() {
                        let ik = kb.b.ins().iadd_imm_s(i, k as i64 * lanes);
                        step(kb, vt, ik, acc)?;
                    }
                    Ok(())
                })?;
                let r = kb.for_chunks(r, self.n, lanes, |kb, i| step(kb, vt, i, accs[0]))?;
                let mut v = kb.b.use_var(accs[0]);
                for &acc in &accs[1..] {
                    let w = kb.b.use_var(acc);
                    v = op.apply(kb, e, v, w);
                }
                let h = hfold(kb, e, op, v);
                let s0 = kb.b.use_var(acc_s);
                let s0 = op.apply(kb, e, s0, h);
                kb.b.def_var(acc_s, s0);
                r
            }
            _ => zero,
        };
        kb.for_range(rest, self.n, 1, |kb, i| step(kb, st, i, acc_s))?;
        Ok(kb.b.use_var(acc_s))
    }

    /// Stores `f(x)` to `dst` for every element.
    pub fn map(
        &self,
        kb: &mut KernelBuilder,
        mut f: impl FnMut(&mut KernelBuilder, Type, Value) -> Result<Value, TargetError>,
    ) -> Result<(), TargetError> {
        let lane = *self;
        self.visit(kb, |kb, ty, i| {
            let a = lane.at(kb, lane.src, i);
            let x = lane.e.load(kb, ty, a);
            let y = f(kb, ty, x)?;
            let d = lane.at(kb, lane.dst, i);
            lane.e.store(kb, y, d);
            Ok(())
        })
    }

    /// The same lane read from `dst` (for in-place passes).
    pub fn in_place(&self) -> Lane {
        Lane {
            src: self.dst,
            ..*self
        }
    }
}

/// Calls `body(lane)` for every lane of outer rows `begin..end` of `[outer, n, inner]`
/// tensors at `src` and `dst` (same shape). With `contig`, `inner` must be 1.
pub fn for_lanes(
    kb: &mut KernelBuilder,
    e: Elem,
    (src, dst): (Value, Value),
    (begin, end, n, inner): (Value, Value, Value, Value),
    contig: bool,
    mut body: impl FnMut(&mut KernelBuilder, Lane) -> Result<(), TargetError>,
) -> Result<(), TargetError> {
    let size = e.size();
    let row = kb.b.ins().imul(n, inner);
    kb.for_range(begin, end, 1, |kb, o| {
        let ob = kb.b.ins().imul(o, row);
        if contig {
            let s = kb.addr(src, ob, size);
            let s = pin(kb, s);
            let d = kb.addr(dst, ob, size);
            let d = pin(kb, d);
            let one = kb.iconst(1);
            return body(
                kb,
                Lane {
                    e,
                    src: s,
                    dst: d,
                    n,
                    stride: one,
                    contig,
                },
            );
        }
        let z = kb.iconst(0);
        kb.for_range(z, inner, 1, |kb, j| {
            let b = kb.b.ins().iadd(ob, j);
            let s = kb.addr(src, b, size);
            let d = kb.addr(dst, b, size);
            body(
                kb,
                Lane {
                    e,
                    src: s,
                    dst: d,
                    n,
                    stride: inner,
                    contig,
                },
            )
        })
    })
}

/// Row ops over one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowOp {
    Softmax,
    LogSoftmax,
    Hardmax,
    /// `LpNormalization` with p = 1.
    L1Norm,
    /// `LpNormalization` with p = 2.
    L2Norm,
}

/// The body of one row op on one lane.
pub fn row_op(
    kb: &mut KernelBuilder,
    op: RowOp,
    lane: Lane,
    math: MathHelpers,
) -> Result<(), TargetError> {
    let e = lane.e;
    let st = e.scalar();
    match op {
        RowOp::Softmax => {
            let m = lane.fold(kb, Bin::MaxFast, |_, _, x| Ok(x))?;
            let m = Splat::new(kb, e, m);
            let s = lane.map_fold(kb, Bin::Add, |kb, ty, x| {
                let d = kb.b.ins().fsub(x, m.get(ty));
                Ok(math::exp_with(kb, math, ty, d, true))
            })?;
            let one = fconst(kb, st, 1.0);
            let inv = kb.b.ins().fdiv(one, s);
            let inv = Splat::new(kb, e, inv);
            lane.in_place()
                .map(kb, |kb, ty, x| Ok(kb.b.ins().fmul(x, inv.get(ty))))
        }
        RowOp::LogSoftmax => {
            let m = lane.fold(kb, Bin::MaxFast, |_, _, x| Ok(x))?;
            let m = Splat::new(kb, e, m);
            let s = lane.fold(kb, Bin::Add, |kb, ty, x| {
                let d = kb.b.ins().fsub(x, m.get(ty));
                Ok(math::exp_with(kb, math, ty, d, true))
            })?;
            let l = math::log(kb, math, st, s);
            // (x - m) - log(sum): subtracting m first keeps the digits of x near m.
            let l = Splat::new(kb, e, l);
            lane.map(kb, |kb, ty, x| {
                let d = kb.b.ins().fsub(x, m.get(ty));
                Ok(kb.b.ins().fsub(d, l.get(ty)))
            })
        }
        RowOp::Hardmax => {
            // The first index holding the largest value (NaN never wins).
            let zero = kb.iconst(0);
            let best_i = kb.var(types::I64, zero);
            let ninf = fconst(kb, st, f64::NEG_INFINITY);
            let best = kb.var(st, ninf);
            let strided = Lane {
                contig: false,
                ..lane
            };
            kb.for_range(zero, lane.n, 1, |kb, i| {
                let a = strided.at(kb, lane.src, i);
                let x = e.load(kb, st, a);
                let b = kb.b.use_var(best);
                let gt = kb.b.ins().fcmp(FloatCC::GreaterThan, x, b);
                let bi = kb.b.use_var(best_i);
                let nb = kb.b.ins().select(gt, x, b);
                let nbi = kb.b.ins().select(gt, i, bi);
                kb.b.def_var(best, nb);
                kb.b.def_var(best_i, nbi);
                Ok(())
            })?;
            lane.map(kb, |kb, ty, _| Ok(fconst(kb, ty, 0.0)))?;
            let has = kb.b.ins().icmp_imm_s(IntCC::SignedGreaterThan, lane.n, 0);
            kb.if_then(has, |kb| {
                let bi = kb.b.use_var(best_i);
                let a = strided.at(kb, lane.dst, bi);
                let one = fconst(kb, st, 1.0);
                e.store(kb, one, a);
                Ok(())
            })
        }
        RowOp::L1Norm | RowOp::L2Norm => {
            let l2 = op == RowOp::L2Norm;
            let s = lane.fold(kb, Bin::Add, |kb, _, x| {
                Ok(if l2 {
                    kb.b.ins().fmul(x, x)
                } else {
                    kb.b.ins().fabs(x)
                })
            })?;
            let norm = if l2 { kb.b.ins().sqrt(s) } else { s };
            // x / norm; a zero norm means a zero lane, which stays (x / 1).
            let zero = fconst(kb, st, 0.0);
            let is_zero = kb.b.ins().fcmp(FloatCC::Equal, norm, zero);
            let one = fconst(kb, st, 1.0);
            let safe = kb.b.ins().select(is_zero, one, norm);
            let safe = Splat::new(kb, e, safe);
            lane.map(kb, |kb, ty, x| Ok(kb.b.ins().fdiv(x, safe.get(ty))))
        }
    }
}

/// A row-op kernel over outer rows `begin..end` of `[outer, n, inner]` tensors. Args:
/// `[src, dst, begin, end, n, inner]` (the layout `parallel_rows` splits).
pub fn row_kernel(
    kb: &mut KernelBuilder,
    op: RowOp,
    e: Elem,
    contig: bool,
    math: MathHelpers,
) -> Result<(), TargetError> {
    let (src, dst) = (kb.arg(0), kb.arg(1));
    let (begin, end) = (kb.arg(2), kb.arg(3));
    let (n, inner) = (kb.arg(4), kb.arg(5));
    for_lanes(
        kb,
        e,
        (src, dst),
        (begin, end, n, inner),
        contig,
        |kb, lane| row_op(kb, op, lane, math),
    )
}

/// `ArgMax`/`ArgMin` over the middle axis of `[outer, n, inner]`, writing i64 indices
/// `[outer, inner]`. Args: `[src, dst, outer, n, inner]`. Ties go to the first index (the
/// last with `last`); NaN wins, as in numpy.
pub fn arg_kernel(
    kb: &mut KernelBuilder,
    e: Elem,
    max: bool,
    last: bool,
) -> Result<(), TargetError> {
    let (src, dst) = (kb.arg(0), kb.arg(1));
    let (outer, n, inner) = (kb.arg(2), kb.arg(3), kb.arg(4));
    let size = e.size();
    let st = e.scalar();
    let zero = kb.iconst(0);
    let row = kb.b.ins().imul(n, inner);
    kb.for_range(zero, outer, 1, |kb, o| {
        let ob = kb.b.ins().imul(o, row);
        let z = kb.iconst(0);
        kb.for_range(z, inner, 1, |kb, j| {
            let base = kb.b.ins().iadd(ob, j);
            let base = kb.addr(src, base, size);
            let z = kb.iconst(0);
            let best_i = kb.var(types::I64, z);
            let init = match e {
                Elem::Float(_) => fconst(kb, st, 0.0),
                Elem::Int { .. } => kb.iconst(0),
            };
            let best = kb.var(st, init);
            let has = kb.b.ins().icmp_imm_s(IntCC::SignedGreaterThan, n, 0);
            kb.if_then(has, |kb| {
                let x0 = e.load(kb, st, base);
                kb.b.def_var(best, x0);
                Ok(())
            })?;
            let one = kb.iconst(1);
            kb.for_range(one, n, 1, |kb, i| {
                let k = kb.b.ins().imul(i, inner);
                let a = kb.addr(base, k, size);
                let x = e.load(kb, st, a);
                let b = kb.b.use_var(best);
                let better = match e {
                    Elem::Float(_) => {
                        let cc = if max {
                            FloatCC::GreaterThan
                        } else {
                            FloatCC::LessThan
                        };
                        let strict = kb.b.ins().fcmp(cc, x, b);
                        let eq = kb.b.ins().fcmp(FloatCC::Equal, x, b);
                        let x_nan = kb.b.ins().fcmp(FloatCC::Unordered, x, x);
                        let b_nan = kb.b.ins().fcmp(FloatCC::Unordered, b, b);
                        let normal = if last {
                            kb.b.ins().bor(strict, eq)
                        } else {
                            strict
                        };
                        let when_b_ok = kb.b.ins().bor(x_nan, normal);
                        let when_b_nan = if last {
                            x_nan
                        } else {
                            kb.b.ins().iconst(types::I8, 0)
                        };
                        kb.b.ins().select(b_nan, when_b_nan, when_b_ok)
                    }
                    Elem::Int { signed, .. } => {
                        let cc = match (max, signed) {
                            (true, true) => IntCC::SignedGreaterThan,
                            (true, false) => IntCC::UnsignedGreaterThan,
                            (false, true) => IntCC::SignedLessThan,
                            (false, false) => IntCC::UnsignedLessThan,
                        };
                        let strict = kb.b.ins().icmp(cc, x, b);
                        if last {
                            let eq = kb.b.ins().icmp(IntCC::Equal, x, b);
                            kb.b.ins().bor(strict, eq)
                        } else {
                            strict
                        }
                    }
                };
                let nb = kb.b.ins().select(better, x, b);
                let bi = kb.b.use_var(best_i);
                let nbi = kb.b.ins().select(better, i, bi);
                kb.b.def_var(best, nb);
                kb.b.def_var(best_i, nbi);
                Ok(())
            })?;
            let oi = kb.b.ins().imul(o, inner);
            let oi = kb.b.ins().iadd(oi, j);
            let a = kb.addr(dst, oi, 8);
            let bi = kb.b.use_var(best_i);
            kb.b.ins()
                .store(crate::cpu::codegen::kernel::mem(), bi, a, 0);
            Ok(())
        })
    })
}

/// `CumSum`/`CumProd` along an axis read at run time. Args: `[src, dst, axis_ptr, d_0, ..,
/// d_{rank-1}]`; the axis is an i32 (`axis_i32`) or i64 scalar; an out-of-range axis is
/// clamped (the lowering checks constant axes).
pub fn cum_kernel(
    kb: &mut KernelBuilder,
    e: Elem,
    rank: usize,
    axis_i32: bool,
    product: bool,
    exclusive: bool,
    reverse: bool,
) -> Result<(), TargetError> {
    let (src, dst, ap) = (kb.arg(0), kb.arg(1), kb.arg(2));
    let dims: Vec<Value> = (0..rank).map(|i| kb.arg(3 + i)).collect();
    let mem = crate::cpu::codegen::kernel::mem();
    let a = if axis_i32 {
        kb.b.ins().sload32(mem, ap, 0)
    } else {
        kb.b.ins().load(types::I64, mem, ap, 0)
    };
    let r = kb.iconst(rank as i64);
    let neg = kb.b.ins().icmp_imm_s(IntCC::SignedLessThan, a, 0);
    let wrapped = kb.b.ins().iadd(a, r);
    let a = kb.b.ins().select(neg, wrapped, a);
    let zero = kb.iconst(0);
    let top = kb.iconst(rank as i64 - 1);
    let a = kb.b.ins().smax(a, zero);
    let a = kb.b.ins().smin(a, top);
    let mut outer = kb.iconst(1);
    let mut inner = kb.iconst(1);
    let mut n = kb.iconst(1);
    let one = kb.iconst(1);
    for (i, &d) in dims.iter().enumerate() {
        let iv = kb.iconst(i as i64);
        let before = kb.b.ins().icmp(IntCC::SignedGreaterThan, a, iv);
        let after = kb.b.ins().icmp(IntCC::SignedLessThan, a, iv);
        let at = kb.b.ins().icmp(IntCC::Equal, a, iv);
        let f = kb.b.ins().select(before, d, one);
        outer = kb.b.ins().imul(outer, f);
        let f = kb.b.ins().select(after, d, one);
        inner = kb.b.ins().imul(inner, f);
        n = kb.b.ins().select(at, d, n);
    }
    let op = if product { Bin::Mul } else { Bin::Add };
    let st = e.scalar();
    let size = e.size();
    let row = kb.b.ins().imul(n, inner);
    kb.for_range(zero, outer, 1, |kb, o| {
        let ob = kb.b.ins().imul(o, row);
        let z = kb.iconst(0);
        kb.for_range(z, inner, 1, |kb, j| {
            let base = kb.b.ins().iadd(ob, j);
            let init = op.identity(kb, e, st);
            let acc = kb.var(st, init);
            let z = kb.iconst(0);
            kb.for_range(z, n, 1, |kb, s| {
                let k = if reverse {
                    let last = kb.b.ins().iadd_imm_s(n, -1);
                    kb.b.ins().isub(last, s)
                } else {
                    s
                };
                let off = kb.b.ins().imul(k, inner);
                let off = kb.b.ins().iadd(base, off);
                let sa = kb.addr(src, off, size);
                let da = kb.addr(dst, off, size);
                let x = e.load(kb, st, sa);
                let v = kb.b.use_var(acc);
                let nv = op.apply(kb, e, v, x);
                e.store(kb, if exclusive { v } else { nv }, da);
                kb.b.def_var(acc, nv);
                Ok(())
            })
        })
    })
}
