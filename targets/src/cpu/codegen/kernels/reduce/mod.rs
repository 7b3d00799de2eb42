//! Reduction and row kernels: `Reduce*` over any set of axes, arg-reductions, scans, the
//! softmax family, normalisations and losses.
//!
//! Shared pieces live here: [`Elem`] (how a kernel loads, computes and stores one dtype),
//! float constants, combining operators, horizontal folds and loop nests.

mod axes;
pub mod loss;
pub mod math;
pub mod norm;
pub mod rows;

pub use axes::{reduce, RKind};

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Type, Value};
use kiln_ir::dtype::DType;

use crate::cpu::codegen::kernel::{mem, KernelBuilder};
use crate::error::TargetError;

/// How a kernel handles one element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    /// f32 or f64, computed in that type, in vectors of 16 bytes.
    Float(Type),
    /// An integer or bool stored as `mem`, computed in i64 (wrapping).
    Int { mem: Type, signed: bool },
}

impl Elem {
    pub fn of(d: DType) -> Option<Elem> {
        Some(match d {
            DType::F32 => Elem::Float(types::F32),
            DType::F64 => Elem::Float(types::F64),
            DType::I8 => Elem::Int {
                mem: types::I8,
                signed: true,
            },
            DType::I16 => Elem::Int {
                mem: types::I16,
                signed: true,
            },
            DType::I32 => Elem::Int {
                mem: types::I32,
                signed: true,
            },
            DType::I64 => Elem::Int {
                mem: types::I64,
                signed: true,
            },
            DType::U8 | DType::Bool => Elem::Int {
                mem: types::I8,
                signed: false,
            },
            DType::U16 => Elem::Int {
                mem: types::I16,
                signed: false,
            },
            DType::U32 => Elem::Int {
                mem: types::I32,
                signed: false,
            },
            DType::U64 => Elem::Int {
                mem: types::I64,
                signed: false,
            },
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> i64 {
        match self {
            Elem::Float(t) => t.bytes() as i64,
            Elem::Int { mem, .. } => mem.bytes() as i64,
        }
    }

    /// The type values are computed in.
    pub fn scalar(self) -> Type {
        match self {
            Elem::Float(t) => t,
            Elem::Int { .. } => types::I64,
        }
    }

    /// The 16-byte vector type of a float element (`None` for integers).
    pub fn vector(self) -> Option<Type> {
        match self {
            Elem::Float(t) => t.by(16 / t.bytes()),
            Elem::Int { .. } => None,
        }
    }

    pub fn lanes(self) -> i64 {
        self.vector().map_or(1, |v| v.lane_count() as i64)
    }

    pub fn is_float(self) -> bool {
        matches!(self, Elem::Float(_))
    }

    /// Loads one element (`ty` = the scalar type) or one vector (`ty` = the vector type).
    pub fn load(self, kb: &mut KernelBuilder, ty: Type, addr: Value) -> Value {
        match self {
            Elem::Float(_) => kb.b.ins().load(ty, mem(), addr, 0),
            Elem::Int { mem: m, signed } => {
                let ins = kb.b.ins();
                match (m, signed) {
                    (types::I64, _) => ins.load(types::I64, mem(), addr, 0),
                    (types::I32, true) => ins.sload32(mem(), addr, 0),
                    (types::I32, false) => ins.uload32(mem(), addr, 0),
                    (types::I16, true) => ins.sload16(types::I64, mem(), addr, 0),
                    (types::I16, false) => ins.uload16(types::I64, mem(), addr, 0),
                    (_, true) => ins.sload8(types::I64, mem(), addr, 0),
                    (_, false) => ins.uload8(types::I64, mem(), addr, 0),
                }
            }
        }
    }

    /// Stores a value computed by this element's rules.
    pub fn store(self, kb: &mut KernelBuilder, v: Value, addr: Value) {
        match self {
            Elem::Float(_) => {
                kb.b.ins().store(mem(), v, addr, 0);
            }
            Elem::Int { mem: m, .. } => {
                let ins = kb.b.ins();
                match m {
                    types::I64 => ins.store(mem(), v, addr, 0),
                    types::I32 => ins.istore32(mem(), v, addr, 0),
                    types::I16 => ins.istore16(mem(), v, addr, 0),
                    _ => ins.istore8(mem(), v, addr, 0),
                };
            }
        }
    }
}

/// A float constant of type `ty` (scalar, or splat into a vector).
pub fn fconst(kb: &mut KernelBuilder, ty: Type, x: f64) -> Value {
    let s = if ty.lane_type() == types::F32 {
        kb.b.ins().f32const(x as f32)
    } else {
        kb.b.ins().f64const(x)
    };
    if ty.is_vector() {
        kb.b.ins().splat(ty, s)
    } else {
        s
    }
}

/// An f64 passed as raw bits in argument slot `i`, converted to the float type `ty`.
pub fn float_arg(kb: &mut KernelBuilder, i: usize, ty: Type) -> Value {
    let bits = kb.arg(i);
    let d =
        kb.b.ins()
            .bitcast(types::F64, cranelift_codegen::ir::MemFlagsData::new(), bits);
    if ty == types::F32 {
        kb.b.ins().fdemote(types::F32, d)
    } else {
        d
    }
}

/// An integer as a float of type `ty`.
pub fn int_to_float(kb: &mut KernelBuilder, ty: Type, i: Value) -> Value {
    kb.b.ins().fcvt_from_sint(ty, i)
}

/// A binary combining operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bin {
    Add,
    Mul,
    Max,
    Min,
    /// The larger value, where a NaN may or may not win (cheaper than `Max` on vectors;
    /// for softmax, whose sum turns any NaN into NaN anyway).
    MaxFast,
}

impl Bin {
    /// `a op b` for values of element `e` (NaN propagates through float max/min).
    pub fn apply(self, kb: &mut KernelBuilder, e: Elem, a: Value, b: Value) -> Value {
        if let (Bin::MaxFast, Elem::Float(_)) = (self, e) {
            let ty = kb.b.func.dfg.value_type(a);
            return math::select_f(
                kb,
                ty,
                cranelift_codegen::ir::condcodes::FloatCC::GreaterThan,
                a,
                b,
                a,
                b,
            );
        }
        let ins = kb.b.ins();
        match (self, e) {
            (Bin::Add, Elem::Float(_)) => ins.fadd(a, b),
            (Bin::Mul, Elem::Float(_)) => ins.fmul(a, b),
            (Bin::Max | Bin::MaxFast, Elem::Float(_)) => ins.fmax(a, b),
            (Bin::Min, Elem::Float(_)) => ins.fmin(a, b),
            (Bin::Add, Elem::Int { .. }) => ins.iadd(a, b),
            (Bin::Mul, Elem::Int { .. }) => ins.imul(a, b),
            (Bin::Max | Bin::MaxFast, Elem::Int { signed: true, .. }) => ins.smax(a, b),
            (Bin::Min, Elem::Int { signed: true, .. }) => ins.smin(a, b),
            (Bin::Max | Bin::MaxFast, Elem::Int { signed: false, .. }) => ins.umax(a, b),
            (Bin::Min, Elem::Int { signed: false, .. }) => ins.umin(a, b),
        }
    }

    /// The identity of the operator for element `e`, as a value of type `ty`.
    pub fn identity(self, kb: &mut KernelBuilder, e: Elem, ty: Type) -> Value {
        match e {
            Elem::Float(_) => {
                let v = match self {
                    Bin::Add => 0.0,
                    Bin::Mul => 1.0,
                    Bin::Max | Bin::MaxFast => f64::NEG_INFINITY,
                    Bin::Min => f64::INFINITY,
                };
                fconst(kb, ty, v)
            }
            Elem::Int { mem: m, signed } => {
                let bits = m.bits();
                let v: i64 = match (self, signed) {
                    (Bin::Add, _) => 0,
                    (Bin::Mul, _) => 1,
                    (Bin::Max | Bin::MaxFast, true) => -(1i64 << (bits - 1).min(63)),
                    (Bin::Min, true) => {
                        if bits == 64 {
                            i64::MAX
                        } else {
                            (1i64 << (bits - 1)) - 1
                        }
                    }
                    (Bin::Max | Bin::MaxFast, false) => 0,
                    (Bin::Min, false) => {
                        if bits == 64 {
                            -1
                        } else {
                            (1i64 << bits) - 1
                        }
                    }
                };
                kb.iconst(v)
            }
        }
    }
}

/// Folds the lanes of vector `v` with `op` into a scalar.
pub fn hfold(kb: &mut KernelBuilder, e: Elem, op: Bin, v: Value) -> Value {
    let n = kb.b.func.dfg.value_type(v).lane_count();
    let mut acc = kb.b.ins().extractlane(v, 0);
    for i in 1..n {
        let x = kb.b.ins().extractlane(v, i as u8);
        acc = op.apply(kb, e, acc, x);
    }
    acc
}

/// Nested loops over `(size, stride)` pairs, outermost first: calls `body` with
/// `base + sum(i_k * stride_k)` for every index combination.
pub fn nest(
    kb: &mut KernelBuilder,
    dims: &[(Value, Value)],
    base: Value,
    body: &mut dyn FnMut(&mut KernelBuilder, Value) -> Result<(), TargetError>,
) -> Result<(), TargetError> {
    match dims.split_first() {
        None => body(kb, base),
        Some((&(n, stride), rest)) => {
            let zero = kb.iconst(0);
            kb.for_range(zero, n, 1, |kb, i| {
                let off = kb.b.ins().imul(i, stride);
                let b = kb.b.ins().iadd(base, off);
                nest(kb, rest, b, body)
            })
        }
    }
}

/// `a * b` of two i64 values.
pub fn imul(kb: &mut KernelBuilder, a: Value, b: Value) -> Value {
    kb.b.ins().imul(a, b)
}

/// Is `x` NaN (scalar float)?
pub fn is_nan(kb: &mut KernelBuilder, x: Value) -> Value {
    kb.b.ins()
        .fcmp(cranelift_codegen::ir::condcodes::FloatCC::Unordered, x, x)
}

/// `i < n` (signed) as a branch condition.
pub fn lt(kb: &mut KernelBuilder, i: Value, n: Value) -> Value {
    kb.b.ins().icmp(IntCC::SignedLessThan, i, n)
}

/// `v`, recomputed nowhere: Cranelift's optimizer places pure values at their uses and
/// does not reliably hoist them out of loops again, so a per-row invariant used inside a
/// loop (a row address, a broadcast maximum) is passed through a stack slot, whose load
/// stays where it is emitted.
pub fn pin(kb: &mut KernelBuilder, v: Value) -> Value {
    use cranelift_codegen::ir::{StackSlotData, StackSlotKind};
    let ty = kb.b.func.dfg.value_type(v);
    let bytes = ty.bytes();
    let slot = kb.b.create_sized_stack_slot(StackSlotData::new(
        StackSlotKind::ExplicitSlot,
        bytes,
        bytes.trailing_zeros() as u8,
    ));
    kb.b.ins().stack_store(types::I64, v, slot, 0);
    kb.b.ins().stack_load(types::I64, ty, slot, 0)
}

/// A scalar invariant and its broadcast, both pinned (see [`pin`]), to use in loops that
/// visit vectors and single elements.
#[derive(Clone, Copy)]
pub struct Splat {
    pub s: Value,
    pub v: Option<Value>,
}

impl Splat {
    pub fn new(kb: &mut KernelBuilder, e: Elem, s: Value) -> Splat {
        let v = e.vector().map(|vt| {
            let v = kb.b.ins().splat(vt, s);
            pin(kb, v)
        });
        Splat { s: pin(kb, s), v }
    }

    /// The value for type `ty` (vector or scalar).
    pub fn get(&self, ty: Type) -> Value {
        match (ty.is_vector(), self.v) {
            (true, Some(v)) => v,
            _ => self.s,
        }
    }
}
