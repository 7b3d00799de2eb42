//! The code of one expression evaluation, on scalars (`w == 1`) or on vectors of `w` lanes:
//! f32 values in f32x4 and bools as i32x4 masks (`w == 4`), f64 values in f64x2 and bools
//! as i64x2 masks (`w == 2`). Scalar bools are i8 0/1.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, Endianness, InstBuilder, MemFlagsData, Type, Value};
use kiln_ir::dtype::DType;
use kiln_runtime::cpu::helpers::HelperSig;

use super::{Cmp, Expr, Node, Op, Options, Ty};
use crate::cpu::codegen::kernel::{mem, KernelBuilder};
use crate::error::TargetError;

/// The runtime helper an f64 math op calls.
pub fn f64_helper(op: Op) -> Option<&'static str> {
    Some(match op {
        Op::Exp => "exp",
        Op::Expm1 => "expm1",
        Op::Log => "log",
        Op::Log1p => "log1p",
        Op::Erf => "erf",
        Op::Erfc => "erfc",
        Op::Tanh => "tanh",
        _ => return None,
    })
}

fn unsupported(what: impl std::fmt::Display) -> TargetError {
    TargetError::Lower(format!("elementwise kernel: {what}"))
}

/// Flags for bitcasts between vector types of different lane counts.
fn le() -> MemFlagsData {
    let mut f = MemFlagsData::new();
    f.set_endianness(Endianness::Little);
    f
}

pub struct Emitter<'k, 'a, 'o> {
    pub kb: &'k mut KernelBuilder<'a>,
    /// Lanes.
    pub w: u8,
    opts: &'o Options,
}

impl<'k, 'a, 'o> Emitter<'k, 'a, 'o> {
    pub fn new(kb: &'k mut KernelBuilder<'a>, w: u8, opts: &'o Options) -> Self {
        Emitter { kb, w, opts }
    }

    /// The instruction builder.
    pub fn ins(&mut self) -> cranelift_frontend::FuncInstBuilder<'_, 'a> {
        self.kb.b.ins()
    }

    /// The Cranelift type of a value of compute type `ty`.
    pub fn vt(&self, ty: Ty) -> Result<Type, TargetError> {
        Ok(match (self.w, ty) {
            (1, Ty::F32) => types::F32,
            (1, Ty::F64) => types::F64,
            (1, Ty::I64 | Ty::U64) => types::I64,
            (1, Ty::Bool) => types::I8,
            (4, Ty::F32) => types::F32X4,
            (4, Ty::Bool) => types::I32X4,
            (2, Ty::F64) => types::F64X2,
            (2, Ty::Bool) => types::I64X2,
            (w, t) => return Err(unsupported(format!("{t:?} in {w} lanes"))),
        })
    }

    /// The integer type holding a float type's bits (lane for lane).
    pub fn bits_ty(&self, ty: Ty) -> Type {
        match (self.w, ty) {
            (1, Ty::F32) => types::I32,
            (1, _) => types::I64,
            (4, _) => types::I32X4,
            _ => types::I64X2,
        }
    }

    /// A float constant of type `ty`, splat to the lanes.
    pub fn fconst(&mut self, ty: Ty, v: f64) -> Value {
        let s = match ty {
            Ty::F32 => self.kb.b.ins().f32const(v as f32),
            _ => self.kb.b.ins().f64const(v),
        };
        self.splat(s, ty)
    }

    /// An integer constant of the bits type of float type `ty`, splat to the lanes.
    pub fn bconst(&mut self, ty: Ty, v: i64) -> Value {
        let t = self.bits_ty(ty);
        let s = self.kb.b.ins().iconst(t.lane_type(), v);
        if t.is_vector() {
            self.kb.b.ins().splat(t, s)
        } else {
            s
        }
    }

    /// `v` (a scalar of `ty`'s lane type) in every lane.
    fn splat(&mut self, v: Value, ty: Ty) -> Value {
        if self.w == 1 {
            return v;
        }
        let t = match ty {
            Ty::F32 => types::F32X4,
            _ => types::F64X2,
        };
        self.kb.b.ins().splat(t, v)
    }

    /// A float value reinterpreted as its bits, or back.
    pub fn as_bits(&mut self, ty: Ty, v: Value) -> Value {
        let t = self.bits_ty(ty);
        self.kb.b.ins().bitcast(t, MemFlagsData::new(), v)
    }

    pub fn bits_as(&mut self, ty: Ty, v: Value) -> Result<Value, TargetError> {
        let t = self.vt(ty)?;
        Ok(self.kb.b.ins().bitcast(t, MemFlagsData::new(), v))
    }

    /// `c ? a : b` lane by lane, where `c` is a bool (scalar 0/1 or mask).
    pub fn sel(&mut self, c: Value, a: Value, b: Value) -> Value {
        if self.w == 1 {
            return self.kb.b.ins().select(c, a, b);
        }
        let t = self.kb.b.func.dfg.value_type(a);
        let m = if t == self.kb.b.func.dfg.value_type(c) {
            c
        } else {
            self.kb.b.ins().bitcast(t, MemFlagsData::new(), c)
        };
        self.kb.b.ins().bitselect(m, a, b)
    }

    /// A float comparison against a constant.
    pub fn fcmp_c(&mut self, cc: FloatCC, ty: Ty, x: Value, c: f64) -> Value {
        let k = self.fconst(ty, c);
        self.kb.b.ins().fcmp(cc, x, k)
    }

    /// `a * b + c`, fused when the ISA has FMA.
    pub fn fma(&mut self, a: Value, b: Value, c: Value) -> Value {
        if self.opts.fma {
            self.kb.b.ins().fma(a, b, c)
        } else {
            let p = self.kb.b.ins().fmul(a, b);
            self.kb.b.ins().fadd(p, c)
        }
    }

    /// Loads one element group of dtype `dt` at `p`, converted to its compute type.
    pub fn load(&mut self, dt: DType, p: Value) -> Result<Value, TargetError> {
        Ok(match (self.w, dt) {
            (1, DType::F32) => self.ins().load(types::F32, mem(), p, 0),
            (1, DType::F64) => self.ins().load(types::F64, mem(), p, 0),
            (1, DType::F16 | DType::BF16) => {
                let h = self.ins().uload16(types::I32, mem(), p, 0);
                self.half_to_f32(dt, h)?
            }
            (1, DType::Bool) => {
                let b = self.ins().load(types::I8, mem(), p, 0);
                self.ins().icmp_imm_s(IntCC::NotEqual, b, 0)
            }
            (1, DType::I8) => self.ins().sload8(types::I64, mem(), p, 0),
            (1, DType::I16) => self.ins().sload16(types::I64, mem(), p, 0),
            (1, DType::I32) => self.ins().sload32(mem(), p, 0),
            (1, DType::I64 | DType::U64) => self.ins().load(types::I64, mem(), p, 0),
            (1, DType::U8) => self.ins().uload8(types::I64, mem(), p, 0),
            (1, DType::U16) => self.ins().uload16(types::I64, mem(), p, 0),
            (1, DType::U32) => self.ins().uload32(mem(), p, 0),
            (4, DType::F32) => self.ins().load(types::F32X4, mem(), p, 0),
            (4, DType::F16 | DType::BF16) => {
                let q = self.ins().load(types::I64, mem(), p, 0);
                let v = self.ins().scalar_to_vector(types::I64X2, q);
                let v = self.ins().bitcast(types::I16X8, le(), v);
                let h = self.ins().uwiden_low(v);
                self.half_to_f32(dt, h)?
            }
            (4, DType::Bool) => {
                let q = self.ins().load(types::I32, mem(), p, 0);
                let v = self.ins().scalar_to_vector(types::I32X4, q);
                let v = self.ins().bitcast(types::I8X16, le(), v);
                let v = self.ins().uwiden_low(v);
                let v = self.ins().uwiden_low(v);
                let z = self.kb.b.ins().iconst(types::I32, 0);
                let z = self.ins().splat(types::I32X4, z);
                self.ins().icmp(IntCC::NotEqual, v, z)
            }
            (2, DType::F64) => self.ins().load(types::F64X2, mem(), p, 0),
            (2, DType::Bool) => {
                let mut lanes = Vec::with_capacity(2);
                for l in 0..2 {
                    let b = self.ins().load(types::I8, mem(), p, l);
                    lanes.push(self.ins().icmp_imm_s(IntCC::NotEqual, b, 0));
                }
                self.gather_lanes(Ty::Bool, &lanes)?
            }
            (w, d) => return Err(unsupported(format!("loading {d} in {w} lanes"))),
        })
    }

    /// Loads one element at `p` and repeats it in every lane.
    pub fn load_splat(&mut self, dt: DType, p: Value) -> Result<Value, TargetError> {
        let w = self.w;
        self.w = 1;
        let v = self.load(dt, p);
        self.w = w;
        let v = v?;
        let ty = Ty::of(dt).ok_or_else(|| unsupported(dt))?;
        Ok(match ty {
            _ if w == 1 => v,
            Ty::Bool => {
                let (lane, vt) = if w == 4 {
                    (types::I32, types::I32X4)
                } else {
                    (types::I64, types::I64X2)
                };
                let x = self.kb.b.ins().uextend(lane, v);
                let m = self.kb.b.ins().ineg(x);
                self.kb.b.ins().splat(vt, m)
            }
            _ => self.splat(v, ty),
        })
    }

    /// Stores `v` (of the compute type of `dt`) to `p` as `dt`.
    pub fn store(&mut self, dt: DType, v: Value, p: Value) -> Result<(), TargetError> {
        match (self.w, dt) {
            (1, DType::F32 | DType::F64 | DType::I64 | DType::U64 | DType::Bool)
            | (4, DType::F32)
            | (2, DType::F64) => {
                self.kb.b.ins().store(mem(), v, p, 0);
            }
            (1, DType::F16 | DType::BF16) => {
                let h = self.f32_to_half(dt, v)?;
                self.kb.b.ins().istore16(mem(), h, p, 0);
            }
            (1, DType::I8 | DType::U8) => {
                self.kb.b.ins().istore8(mem(), v, p, 0);
            }
            (1, DType::I16 | DType::U16) => {
                self.kb.b.ins().istore16(mem(), v, p, 0);
            }
            (1, DType::I32 | DType::U32) => {
                self.kb.b.ins().istore32(mem(), v, p, 0);
            }
            (4, DType::F16 | DType::BF16) => {
                let h = self.f32_to_half(dt, v)?;
                let n = self.kb.b.ins().unarrow(h, h);
                let q = self.kb.b.ins().bitcast(types::I64X2, le(), n);
                let q = self.kb.b.ins().extractlane(q, 0);
                self.kb.b.ins().store(mem(), q, p, 0);
            }
            (4, DType::Bool) => {
                let one = self.kb.b.ins().iconst(types::I32, 1);
                let one = self.kb.b.ins().splat(types::I32X4, one);
                let b = self.kb.b.ins().band(v, one);
                let n = self.kb.b.ins().snarrow(b, b);
                let n = self.kb.b.ins().snarrow(n, n);
                let q = self.kb.b.ins().bitcast(types::I32X4, le(), n);
                let q = self.kb.b.ins().extractlane(q, 0);
                self.kb.b.ins().store(mem(), q, p, 0);
            }
            (2, DType::Bool) => {
                for l in 0..2u8 {
                    let x = self.kb.b.ins().extractlane(v, l);
                    let x = self.kb.b.ins().ireduce(types::I8, x);
                    let x = self.kb.b.ins().band_imm_u(x, 1);
                    self.kb.b.ins().store(mem(), x, p, i32::from(l));
                }
            }
            (w, d) => return Err(unsupported(format!("storing {d} in {w} lanes"))),
        }
        Ok(())
    }

    /// Lane `l` of `v` (of type `ty`) as a scalar of the scalar representation.
    fn lane(&mut self, ty: Ty, v: Value, l: u8) -> Value {
        if self.w == 1 {
            return v;
        }
        let x = self.kb.b.ins().extractlane(v, l);
        if ty == Ty::Bool {
            let x = self.kb.b.ins().ireduce(types::I8, x);
            self.kb.b.ins().band_imm_u(x, 1)
        } else {
            x
        }
    }

    /// A vector of type `ty` from scalars, one per lane.
    fn gather_lanes(&mut self, ty: Ty, lanes: &[Value]) -> Result<Value, TargetError> {
        let vt = self.vt(ty)?;
        let mut acc: Option<Value> = None;
        for (l, &x) in lanes.iter().enumerate() {
            let x = if ty == Ty::Bool {
                let x = self.kb.b.ins().uextend(vt.lane_type(), x);
                self.kb.b.ins().ineg(x)
            } else {
                x
            };
            acc = Some(match acc {
                None => self.kb.b.ins().splat(vt, x),
                Some(a) => self.kb.b.ins().insertlane(a, x, l as u8),
            });
        }
        acc.ok_or_else(|| unsupported("no lanes"))
    }

    /// Applies `f` (scalar code) lane by lane.
    fn per_lane(
        &mut self,
        out: Ty,
        args: &[(Value, Ty)],
        mut f: impl FnMut(&mut Self, &[Value]) -> Result<Value, TargetError>,
    ) -> Result<Value, TargetError> {
        let w = self.w;
        if w == 1 {
            let a: Vec<Value> = args.iter().map(|a| a.0).collect();
            return f(self, &a);
        }
        let mut lanes = Vec::with_capacity(w as usize);
        for l in 0..w {
            let a: Vec<Value> = args.iter().map(|&(v, t)| self.lane(t, v, l)).collect();
            self.w = 1;
            let r = f(self, &a);
            self.w = w;
            lanes.push(r?);
        }
        self.gather_lanes(out, &lanes)
    }

    /// Calls f64 helper `name` on scalar f64 arguments.
    fn call(&mut self, name: &'static str, args: &[Value]) -> Result<Value, TargetError> {
        let idx = *self
            .opts
            .helpers
            .get(name)
            .ok_or_else(|| unsupported(format!("helper `{name}` is not registered")))?;
        let sig = if args.len() == 1 {
            HelperSig::F64ToF64
        } else {
            HelperSig::F64F64ToF64
        };
        self.kb
            .call_helper(idx, sig, args)
            .ok_or_else(|| unsupported(format!("helper `{name}` returns nothing")))
    }

    /// A float helper on values of type `ty` (f32 widened and rounded back).
    fn call_float(
        &mut self,
        name: &'static str,
        ty: Ty,
        args: &[(Value, Ty)],
    ) -> Result<Value, TargetError> {
        self.per_lane(ty, args, |s, a| {
            let a: Vec<Value> = a
                .iter()
                .map(|&x| {
                    if ty == Ty::F32 {
                        s.kb.b.ins().fpromote(types::F64, x)
                    } else {
                        x
                    }
                })
                .collect();
            let r = s.call(name, &a)?;
            Ok(if ty == Ty::F32 {
                s.kb.b.ins().fdemote(types::F32, r)
            } else {
                r
            })
        })
    }

    /// Evaluates `expr` on the operands' values; returns the root's value.
    pub fn expr(&mut self, expr: &Expr, inputs: &[Value]) -> Result<Value, TargetError> {
        // The store rounds to the output dtype, so a final RoundTo to it is redundant.
        let mut root = expr.root;
        if let (Node::Op(Op::RoundTo(d), args), Ty::F32) = &expr.nodes[root] {
            if *d == expr.out {
                root = args[0];
            }
        }
        let mut vals: Vec<Option<Value>> = vec![None; expr.nodes.len()];
        for (i, (node, ty)) in expr.nodes.iter().enumerate().take(root + 1) {
            let v = match node {
                Node::Input(k) => *inputs
                    .get(*k)
                    .ok_or_else(|| unsupported(format!("no operand {k}")))?,
                Node::Const(bits) => self.constant(*ty, *bits)?,
                Node::Op(op, args) => {
                    let mut a = Vec::with_capacity(args.len());
                    for &j in args {
                        let v = vals
                            .get(j)
                            .copied()
                            .flatten()
                            .ok_or_else(|| unsupported(format!("node {i} uses node {j}")))?;
                        a.push((v, expr.nodes[j].1));
                    }
                    self.op(*op, *ty, &a)?
                }
            };
            vals[i] = Some(v);
        }
        vals[root].ok_or_else(|| unsupported("no root"))
    }

    fn constant(&mut self, ty: Ty, bits: u64) -> Result<Value, TargetError> {
        Ok(match ty {
            Ty::F32 => self.fconst(ty, f64::from(f32::from_bits(bits as u32))),
            Ty::F64 => self.fconst(ty, f64::from_bits(bits)),
            Ty::I64 | Ty::U64 => {
                let t = self.vt(ty)?;
                self.kb.b.ins().iconst(t, bits as i64)
            }
            Ty::Bool => {
                let t = self.vt(ty)?;
                if self.w == 1 {
                    self.kb.b.ins().iconst(t, (bits & 1) as i64)
                } else {
                    let x = self.kb.b.ins().iconst(t.lane_type(), -((bits & 1) as i64));
                    self.kb.b.ins().splat(t, x)
                }
            }
        })
    }

    /// One primitive op with result type `ty` on arguments (value, type).
    pub fn op(&mut self, op: Op, ty: Ty, a: &[(Value, Ty)]) -> Result<Value, TargetError> {
        let need = match op {
            Op::Fma | Op::Select => 3,
            Op::Add
            | Op::Sub
            | Op::Mul
            | Op::Div
            | Op::Rem { .. }
            | Op::Min
            | Op::Max
            | Op::Call2(_)
            | Op::Cmp(_)
            | Op::And
            | Op::Or
            | Op::Xor
            | Op::Shift { .. }
            | Op::IntPow => 2,
            _ => 1,
        };
        if a.len() != need {
            return Err(unsupported(format!("{op:?} takes {need} arguments")));
        }
        let x = a[0].0;
        let xt = a[0].1;
        let y = a.get(1).map(|v| v.0).unwrap_or(x);
        let f = xt.is_float();
        let signed = xt == Ty::I64;
        Ok(match op {
            Op::Add if f => self.ins().fadd(x, y),
            Op::Sub if f => self.ins().fsub(x, y),
            Op::Mul if f => self.ins().fmul(x, y),
            Op::Div if f => self.ins().fdiv(x, y),
            Op::Min if f => self.ins().fmin(x, y),
            Op::Max if f => self.ins().fmax(x, y),
            Op::Neg if f => self.ins().fneg(x),
            Op::Abs if f => self.ins().fabs(x),
            Op::Add => self.ins().iadd(x, y),
            Op::Sub => self.ins().isub(x, y),
            Op::Mul => self.ins().imul(x, y),
            Op::Div => self.int_div(x, y, signed),
            Op::Rem { fmod } => self.int_rem(x, y, signed, fmod),
            Op::Min if signed => self.ins().smin(x, y),
            Op::Max if signed => self.ins().smax(x, y),
            Op::Min => self.ins().umin(x, y),
            Op::Max => self.ins().umax(x, y),
            Op::Neg => self.ins().ineg(x),
            Op::Abs if signed => self.ins().iabs(x),
            Op::Abs => x,
            Op::Sign => self.sign(x, xt)?,
            Op::Fma => self.fma(x, y, a[2].0),
            Op::Sqrt => self.ins().sqrt(x),
            Op::Floor => self.ins().floor(x),
            Op::Ceil => self.ins().ceil(x),
            Op::Round => self.ins().nearest(x),
            Op::Trunc => self.ins().trunc(x),
            Op::Exp | Op::Expm1 | Op::Log | Op::Log1p | Op::Erf | Op::Erfc | Op::Tanh
                if ty == Ty::F32 =>
            {
                match op {
                    Op::Exp => self.exp_f32(x)?,
                    Op::Expm1 => self.expm1_f32(x)?,
                    Op::Log => self.log_f32(x)?,
                    Op::Log1p => self.log1p_f32(x)?,
                    Op::Erf => self.erf_f32(x)?,
                    Op::Erfc => self.erfc_f32(x)?,
                    _ => self.tanh_f32(x)?,
                }
            }
            Op::Exp | Op::Expm1 | Op::Log | Op::Log1p | Op::Erf | Op::Erfc | Op::Tanh => {
                let name = f64_helper(op).ok_or_else(|| unsupported(format!("{op:?}")))?;
                self.call_float(name, ty, a)?
            }
            Op::Call1(name) | Op::Call2(name) => self.call_float(name, ty, a)?,
            Op::Cmp(c) => self.compare(c, xt, x, y),
            Op::IsNaN => self.ins().fcmp(FloatCC::Unordered, x, x),
            Op::IsInf { pos, neg } => {
                let p = self.fcmp_c(FloatCC::Equal, xt, x, f64::INFINITY);
                let n = self.fcmp_c(FloatCC::Equal, xt, x, f64::NEG_INFINITY);
                match (pos, neg) {
                    (true, true) => self.ins().bor(p, n),
                    (true, false) => p,
                    (false, true) => n,
                    (false, false) => self.ins().band_not(p, p),
                }
            }
            Op::Select => {
                let (c, t, e) = (a[0].0, a[1].0, a[2].0);
                self.sel(c, t, e)
            }
            Op::And => self.ins().band(x, y),
            Op::Or => self.ins().bor(x, y),
            Op::Xor => self.ins().bxor(x, y),
            Op::Not if xt == Ty::Bool && self.w == 1 => self.ins().bxor_imm_u(x, 1),
            Op::Not => self.ins().bnot(x),
            Op::Shift { left, width } => self.shift(x, y, signed, left, width),
            Op::Convert(to) => self.convert(x, xt, to)?,
            Op::RoundTo(d) => self.round_to(x, xt, d)?,
            Op::Wrap(d) => self.wrap(x, d),
            Op::FloatToLow64 => {
                let r = self.per_lane(Ty::F64, a, |s, a| s.call("f64_to_i128_low64", a))?;
                self.ins().bitcast(types::I64, MemFlagsData::new(), r)
            }
            Op::IntPow => {
                let xb = self.ins().bitcast(types::F64, MemFlagsData::new(), x);
                let yb = self.ins().bitcast(types::F64, MemFlagsData::new(), y);
                let r = self.call("int_pow", &[xb, yb])?;
                self.ins().bitcast(types::I64, MemFlagsData::new(), r)
            }
        })
    }

    /// Truncating integer division; by zero gives 0, `MIN / -1` wraps to MIN.
    fn int_div(&mut self, x: Value, y: Value, signed: bool) -> Value {
        let zero = self.ins().iconst(types::I64, 0);
        let one = self.ins().iconst(types::I64, 1);
        let y0 = self.ins().icmp_imm_s(IntCC::Equal, y, 0);
        if !signed {
            let ys = self.ins().select(y0, one, y);
            let q = self.ins().udiv(x, ys);
            return self.ins().select(y0, zero, q);
        }
        let m1 = self.ins().icmp_imm_s(IntCC::Equal, y, -1);
        let bad = self.ins().bor(y0, m1);
        let ys = self.ins().select(bad, one, y);
        let q = self.ins().sdiv(x, ys);
        let nx = self.ins().ineg(x);
        let q = self.ins().select(m1, nx, q);
        self.ins().select(y0, zero, q)
    }

    /// Integer remainder with the dividend's sign (`fmod`) or the divisor's; by 0 gives 0.
    fn int_rem(&mut self, x: Value, y: Value, signed: bool, fmod: bool) -> Value {
        let zero = self.ins().iconst(types::I64, 0);
        let one = self.ins().iconst(types::I64, 1);
        let y0 = self.ins().icmp_imm_s(IntCC::Equal, y, 0);
        if !signed {
            let ys = self.ins().select(y0, one, y);
            let r = self.ins().urem(x, ys);
            return self.ins().select(y0, zero, r);
        }
        let m1 = self.ins().icmp_imm_s(IntCC::Equal, y, -1);
        let bad = self.ins().bor(y0, m1);
        let ys = self.ins().select(bad, one, y);
        let r = self.ins().srem(x, ys);
        let r = self.ins().select(bad, zero, r);
        if fmod {
            return r;
        }
        // Python-style: a non-zero remainder whose sign differs from the divisor's moves by y.
        let nz = self.ins().icmp_imm_s(IntCC::NotEqual, r, 0);
        let sx = self.ins().bxor(r, y);
        let differ = self.ins().icmp_imm_s(IntCC::SignedLessThan, sx, 0);
        let fix = self.ins().band(nz, differ);
        let ry = self.ins().iadd(r, y);
        self.ins().select(fix, ry, r)
    }

    fn sign(&mut self, x: Value, xt: Ty) -> Result<Value, TargetError> {
        Ok(match xt {
            Ty::F32 | Ty::F64 => {
                let gt = self.fcmp_c(FloatCC::GreaterThan, xt, x, 0.0);
                let lt = self.fcmp_c(FloatCC::LessThan, xt, x, 0.0);
                let one = self.fconst(xt, 1.0);
                let m1 = self.fconst(xt, -1.0);
                let r = self.sel(lt, m1, x);
                self.sel(gt, one, r)
            }
            Ty::I64 => {
                let gt = self.ins().icmp_imm_s(IntCC::SignedGreaterThan, x, 0);
                let lt = self.ins().icmp_imm_s(IntCC::SignedLessThan, x, 0);
                let g = self.ins().uextend(types::I64, gt);
                let l = self.ins().uextend(types::I64, lt);
                self.ins().isub(g, l)
            }
            Ty::U64 => {
                let nz = self.kb.b.ins().icmp_imm_s(IntCC::NotEqual, x, 0);
                self.kb.b.ins().uextend(types::I64, nz)
            }
            Ty::Bool => return Err(unsupported("Sign of a bool")),
        })
    }

    fn compare(&mut self, c: Cmp, xt: Ty, x: Value, y: Value) -> Value {
        if xt.is_float() {
            let cc = match c {
                Cmp::Eq => FloatCC::Equal,
                Cmp::Lt => FloatCC::LessThan,
                Cmp::Le => FloatCC::LessThanOrEqual,
                Cmp::Gt => FloatCC::GreaterThan,
                Cmp::Ge => FloatCC::GreaterThanOrEqual,
            };
            return self.kb.b.ins().fcmp(cc, x, y);
        }
        // Bools (0/1, or masks where true is all ones) compare as unsigned.
        let signed = xt == Ty::I64;
        let cc = match (c, signed) {
            (Cmp::Eq, _) => IntCC::Equal,
            (Cmp::Lt, true) => IntCC::SignedLessThan,
            (Cmp::Le, true) => IntCC::SignedLessThanOrEqual,
            (Cmp::Gt, true) => IntCC::SignedGreaterThan,
            (Cmp::Ge, true) => IntCC::SignedGreaterThanOrEqual,
            (Cmp::Lt, false) => IntCC::UnsignedLessThan,
            (Cmp::Le, false) => IntCC::UnsignedLessThanOrEqual,
            (Cmp::Gt, false) => IntCC::UnsignedGreaterThan,
            (Cmp::Ge, false) => IntCC::UnsignedGreaterThanOrEqual,
        };
        self.kb.b.ins().icmp(cc, x, y)
    }

    /// ONNX BitShift: shifts outside `[0, width)` give 0 (-1 for a right shift of a negative
    /// signed value).
    fn shift(&mut self, x: Value, s: Value, signed: bool, left: bool, width: u8) -> Value {
        let ok = self
            .ins()
            .icmp_imm_s(IntCC::UnsignedLessThan, s, i64::from(width));
        let amount = self.ins().band_imm_u(s, 63);
        let zero = self.ins().iconst(types::I64, 0);
        if left {
            let r = self.ins().ishl(x, amount);
            return self.ins().select(ok, r, zero);
        }
        if signed {
            let r = self.ins().sshr(x, amount);
            let fill = self.ins().sshr_imm_u(x, 63);
            self.ins().select(ok, r, fill)
        } else {
            let r = self.ins().ushr(x, amount);
            self.ins().select(ok, r, zero)
        }
    }

    /// An integer narrowed to `d`'s width and extended back.
    fn wrap(&mut self, x: Value, d: DType) -> Value {
        let narrow = match d {
            DType::I8 | DType::U8 => types::I8,
            DType::I16 | DType::U16 => types::I16,
            DType::I32 | DType::U32 => types::I32,
            _ => return x,
        };
        let n = self.kb.b.ins().ireduce(narrow, x);
        if d.is_signed_int() {
            self.kb.b.ins().sextend(types::I64, n)
        } else {
            self.kb.b.ins().uextend(types::I64, n)
        }
    }

    fn convert(&mut self, x: Value, from: Ty, to: Ty) -> Result<Value, TargetError> {
        Ok(match (from, to) {
            _ if from == to => x,
            (Ty::I64, Ty::U64) | (Ty::U64, Ty::I64) => x,
            (Ty::F32, Ty::F64) if self.w == 1 => self.ins().fpromote(types::F64, x),
            (Ty::F64, Ty::F32) if self.w == 1 => self.ins().fdemote(types::F32, x),
            (Ty::F32 | Ty::F64, Ty::I64 | Ty::U64) if self.w == 1 => {
                self.ins().fcvt_to_sint_sat(types::I64, x)
            }
            (Ty::I64, Ty::F32 | Ty::F64) if self.w == 1 => {
                let t = self.vt(to)?;
                self.ins().fcvt_from_sint(t, x)
            }
            (Ty::U64, Ty::F32 | Ty::F64) if self.w == 1 => {
                let t = self.vt(to)?;
                self.ins().fcvt_from_uint(t, x)
            }
            (Ty::Bool, Ty::F32 | Ty::F64) => {
                let one = self.fconst(to, 1.0);
                if self.w == 1 {
                    let zero = self.fconst(to, 0.0);
                    self.ins().select(x, one, zero)
                } else {
                    let ob = self.as_bits(to, one);
                    let r = self.ins().band(x, ob);
                    self.bits_as(to, r)?
                }
            }
            (Ty::Bool, Ty::I64 | Ty::U64) if self.w == 1 => self.ins().uextend(types::I64, x),
            (Ty::F32 | Ty::F64, Ty::Bool) => {
                let z = self.fconst(from, 0.0);
                self.ins().fcmp(FloatCC::NotEqual, x, z)
            }
            (Ty::I64 | Ty::U64, Ty::Bool) if self.w == 1 => {
                self.ins().icmp_imm_s(IntCC::NotEqual, x, 0)
            }
            _ => {
                return Err(unsupported(format!(
                    "converting {from:?} to {to:?} in {} lanes",
                    self.w
                )))
            }
        })
    }
}
