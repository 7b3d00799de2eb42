//! Elementwise kernels: one expression (a DAG of [`Node`]s) over N operands broadcast to an
//! output of rank R, written to a contiguous output.
//!
//! The lowering collapses the output's axes where every operand allows it and describes, per
//! operand and axis, whether the operand moves along it ([`Stride`]): `Zero` (broadcast, known
//! at compile time), `Unit` (the innermost axis of an operand that is contiguous there) or
//! `Arg` (a stride passed at run time). Outer axes are plain loops; the innermost axis runs
//! `W` elements at a time when every operand's innermost stride is `Zero` or `Unit` and the
//! expression's types allow (f32/f16/bf16/bool in f32x4, f64/bool in f64x2), then a scalar
//! tail. Operands that are constant along the innermost axis are loaded once per row.
//!
//! Arguments: `[out, in_0 .. in_{N-1}, extent_0 .. extent_{R-1}, strides...]` where the
//! strides (in elements) are those of the `Arg` entries, operand by operand, axis by axis.

mod convert;
mod emit;
mod math;

use std::collections::HashMap;
use std::fmt::Write;

use cranelift_codegen::ir::{InstBuilder, Value};
use kiln_ir::dtype::DType;

use crate::cpu::codegen::kernel::KernelBuilder;
use crate::error::TargetError;

use emit::Emitter;

/// How a value is held while the kernel computes: f32, f16 and bf16 as f32; integers widened
/// to 64 bits (signed or unsigned); bools as 0/1 (masks in vectors).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ty {
    F32,
    F64,
    I64,
    U64,
    Bool,
}

impl Ty {
    /// The compute type of a dtype's elements (none for the fp8 formats).
    pub fn of(d: DType) -> Option<Ty> {
        Some(match d {
            DType::F32 | DType::F16 | DType::BF16 => Ty::F32,
            DType::F64 => Ty::F64,
            DType::I8 | DType::I16 | DType::I32 | DType::I64 => Ty::I64,
            DType::U8 | DType::U16 | DType::U32 | DType::U64 => Ty::U64,
            DType::Bool => Ty::Bool,
            _ => return None,
        })
    }

    pub fn is_float(self) -> bool {
        matches!(self, Ty::F32 | Ty::F64)
    }

    pub fn is_int(self) -> bool {
        matches!(self, Ty::I64 | Ty::U64)
    }

    fn code(self) -> &'static str {
        match self {
            Ty::F32 => "f",
            Ty::F64 => "d",
            Ty::I64 => "i",
            Ty::U64 => "u",
            Ty::Bool => "b",
        }
    }
}

/// A comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A primitive operation. Arithmetic works on floats and integers alike (integers wrap at 64
/// bits; [`Op::Wrap`] narrows), unless noted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Add,
    Sub,
    Mul,
    /// Floats: IEEE division. Integers: truncating; by zero gives 0, `MIN / -1` wraps.
    Div,
    /// Integers: the remainder with the dividend's sign (`fmod`) or the divisor's; by 0: 0.
    Rem {
        fmod: bool,
    },
    /// NaN-propagating minimum/maximum (-0 < +0).
    Min,
    Max,
    Neg,
    Abs,
    /// -1, 0 or 1 (floats keep ±0 and NaN).
    Sign,
    /// `a * b + c` (floats).
    Fma,
    Sqrt,
    Floor,
    Ceil,
    /// Round half to even.
    Round,
    Trunc,
    Exp,
    /// `exp(x) - 1`, accurate near 0.
    Expm1,
    Log,
    /// `ln(1 + x)`, accurate near 0.
    Log1p,
    Erf,
    /// `1 - erf(x)`, accurate where it is small.
    Erfc,
    Tanh,
    /// A scalar f64 runtime helper on one float.
    Call1(&'static str),
    /// A scalar f64 runtime helper on two floats.
    Call2(&'static str),
    /// A comparison, giving a bool (NaN compares false).
    Cmp(Cmp),
    IsNaN,
    IsInf {
        pos: bool,
        neg: bool,
    },
    /// `(cond, a, b)`: a where cond, else b.
    Select,
    /// Bools: logic. Integers: bitwise.
    And,
    Or,
    Xor,
    Not,
    /// ONNX BitShift on a `width`-bit dtype: out-of-range shifts give what sign extension
    /// alone gives.
    Shift {
        left: bool,
        width: u8,
    },
    /// Conversion to another compute type (float to int: truncating, NaN to 0, saturating
    /// at 64 bits; to bool: non-zero).
    Convert(Ty),
    /// A float rounded to nearest-even in a narrower float dtype, kept in its compute type.
    RoundTo(DType),
    /// An integer truncated to a narrower integer dtype and extended back.
    Wrap(DType),
    /// A float (f64) truncated to an integer as i128, keeping the low 64 bits.
    FloatToLow64,
    /// Integer power by squaring, wrapping (0 to a negative power gives 0).
    IntPow,
}

/// A node of an expression.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    /// Operand `i`, converted from its dtype to its compute type.
    Input(usize),
    /// A constant: f32 or f64 bits, an integer, or 0/1.
    Const(u64),
    Op(Op, Vec<usize>),
}

/// An expression: nodes in topological order (arguments before users), each with its
/// compute type.
#[derive(Clone, Debug)]
pub struct Expr {
    pub nodes: Vec<(Node, Ty)>,
    /// Each operand's dtype.
    pub inputs: Vec<DType>,
    /// The node stored to the output.
    pub root: usize,
    /// The output's dtype.
    pub out: DType,
}

impl Expr {
    /// A text that determines the generated code.
    pub fn key(&self) -> String {
        let mut s = String::new();
        for (i, d) in self.inputs.iter().enumerate() {
            let _ = write!(s, "{}{}", if i == 0 { "" } else { "," }, d.name());
        }
        s.push('|');
        for (node, ty) in &self.nodes {
            match node {
                Node::Input(i) => {
                    let _ = write!(s, "i{i}");
                }
                Node::Const(c) => {
                    let _ = write!(s, "c{c:x}");
                }
                Node::Op(op, args) => {
                    let _ = write!(s, "{op:?}(");
                    for (k, a) in args.iter().enumerate() {
                        let _ = write!(s, "{}{a}", if k == 0 { "" } else { "," });
                    }
                    s.push(')');
                }
            }
            s.push_str(ty.code());
            s.push(';');
        }
        let _ = write!(s, "->{}:{}", self.root, self.out.name());
        s.retain(|c| !c.is_whitespace());
        s
    }

    /// Names of the runtime helpers the expression calls.
    pub fn helpers(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (node, ty) in &self.nodes {
            let name = match node {
                Node::Op(Op::Call1(n) | Op::Call2(n), _) => Some(*n),
                Node::Op(Op::FloatToLow64, _) => Some("f64_to_i128_low64"),
                Node::Op(Op::IntPow, _) => Some("int_pow"),
                Node::Op(op, _) if *ty == Ty::F64 => emit::f64_helper(*op),
                _ => None,
            };
            if let Some(n) = name {
                if !out.contains(&n) {
                    out.push(n);
                }
            }
        }
        out
    }

    /// The vector width of the innermost loop: 4 when every value is f32 or bool, 2 when
    /// every value is f64 or bool, else 1.
    pub fn lanes(&self) -> u8 {
        let all = |ok: &[Ty]| self.nodes.iter().all(|(_, t)| ok.contains(t));
        if all(&[Ty::F32, Ty::Bool]) {
            4
        } else if all(&[Ty::F64, Ty::Bool]) {
            2
        } else {
            1
        }
    }
}

/// How an operand moves along one output axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stride {
    /// Broadcast: the same element all along the axis.
    Zero,
    /// Contiguous (innermost axis only).
    Unit,
    /// A stride passed at run time.
    Arg,
}

/// The loop nest: per operand, per output axis (outermost first), its stride kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Layout {
    pub rank: usize,
    pub strides: Vec<Vec<Stride>>,
}

impl Layout {
    pub fn key(&self) -> String {
        let mut s = format!("r{}", self.rank);
        for op in &self.strides {
            s.push('/');
            for st in op {
                s.push(match st {
                    Stride::Zero => '0',
                    Stride::Unit => '1',
                    Stride::Arg => 's',
                });
            }
        }
        s
    }
}

/// Code generation settings from the target.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The ISA has fused multiply-add.
    pub fma: bool,
    /// Helper table index of every helper the expression calls.
    pub helpers: HashMap<&'static str, usize>,
}

/// Emits the kernel for `expr` over `layout`.
pub fn elementwise(
    kb: &mut KernelBuilder,
    expr: &Expr,
    layout: &Layout,
    opts: &Options,
) -> Result<(), TargetError> {
    let n = expr.inputs.len();
    if layout.strides.len() != n || layout.rank == 0 {
        return Err(TargetError::Lower(
            "elementwise kernel: layout does not fit the expression".into(),
        ));
    }
    let rank = layout.rank;
    let out = kb.arg(0);
    let ins: Vec<Value> = (0..n).map(|i| kb.arg(1 + i)).collect();
    let exts: Vec<Value> = (0..rank).map(|k| kb.arg(1 + n + k)).collect();
    let mut next = 1 + n + rank;
    let mut strides: Vec<Vec<Option<Value>>> = Vec::with_capacity(n);
    for op in &layout.strides {
        let mut row = Vec::with_capacity(rank);
        for st in op {
            row.push(match st {
                Stride::Arg => {
                    next += 1;
                    Some(kb.arg(next - 1))
                }
                _ => None,
            });
        }
        strides.push(row);
    }
    // The output is contiguous: its stride on axis k is the product of the extents after k.
    let mut out_strides = vec![kb.iconst(1); rank];
    for k in (0..rank - 1).rev() {
        out_strides[k] = kb.b.ins().imul(out_strides[k + 1], exts[k + 1]);
    }
    let zero = kb.iconst(0);
    let ctx = Nest {
        expr,
        layout,
        opts,
        out,
        ins,
        exts,
        strides,
        out_strides,
    };
    ctx.level(kb, 0, vec![zero; n], zero)
}

struct Nest<'e> {
    expr: &'e Expr,
    layout: &'e Layout,
    opts: &'e Options,
    out: Value,
    ins: Vec<Value>,
    exts: Vec<Value>,
    strides: Vec<Vec<Option<Value>>>,
    out_strides: Vec<Value>,
}

impl Nest<'_> {
    /// The loop over axis `k`, with each operand's and the output's element offsets.
    fn level(
        &self,
        kb: &mut KernelBuilder,
        k: usize,
        offs: Vec<Value>,
        out_off: Value,
    ) -> Result<(), TargetError> {
        if k + 1 == self.layout.rank {
            return self.inner(kb, &offs, out_off);
        }
        let zero = kb.iconst(0);
        kb.for_range(zero, self.exts[k], 1, |kb, i| {
            let offs: Vec<Value> = offs
                .iter()
                .enumerate()
                .map(|(j, &o)| match self.strides[j][k] {
                    Some(s) => {
                        let d = kb.b.ins().imul(i, s);
                        kb.b.ins().iadd(o, d)
                    }
                    None => o,
                })
                .collect();
            let d = kb.b.ins().imul(i, self.out_strides[k]);
            let out_off = kb.b.ins().iadd(out_off, d);
            self.level(kb, k + 1, offs, out_off)
        })
    }

    /// The innermost axis: vector chunks, then a scalar tail.
    fn inner(
        &self,
        kb: &mut KernelBuilder,
        offs: &[Value],
        out_off: Value,
    ) -> Result<(), TargetError> {
        let last = self.layout.rank - 1;
        let n = self.exts[last];
        let expr = self.expr;
        // Row base addresses.
        let bases: Vec<Value> = offs
            .iter()
            .enumerate()
            .map(|(j, &o)| kb.addr(self.ins[j], o, expr.inputs[j].size() as i64))
            .collect();
        let out_base = kb.addr(self.out, out_off, expr.out.size() as i64);
        let kinds: Vec<Stride> = self.layout.strides.iter().map(|s| s[last]).collect();
        let vectorize = kinds.iter().all(|k| *k != Stride::Arg) && expr.lanes() > 1;
        let zero = kb.iconst(0);
        let tail_start = if vectorize {
            let w = expr.lanes();
            // Operands constant along the row: loaded once.
            let mut fixed = HashMap::new();
            for (j, kind) in kinds.iter().enumerate() {
                if *kind == Stride::Zero {
                    let mut em = Emitter::new(kb, w, self.opts);
                    fixed.insert(j, em.load_splat(expr.inputs[j], bases[j])?);
                }
            }
            kb.for_chunks(zero, n, i64::from(w), |kb, i| {
                let mut em = Emitter::new(kb, w, self.opts);
                let mut inputs = Vec::with_capacity(bases.len());
                for (j, &base) in bases.iter().enumerate() {
                    inputs.push(match fixed.get(&j) {
                        Some(&v) => v,
                        None => {
                            let dt = expr.inputs[j];
                            let p = em.kb.addr(base, i, dt.size() as i64);
                            em.load(dt, p)?
                        }
                    });
                }
                let v = em.expr(expr, &inputs)?;
                let p = em.kb.addr(out_base, i, expr.out.size() as i64);
                em.store(expr.out, v, p)
            })?
        } else {
            zero
        };
        let mut fixed = HashMap::new();
        for (j, kind) in kinds.iter().enumerate() {
            if *kind == Stride::Zero {
                let mut em = Emitter::new(kb, 1, self.opts);
                fixed.insert(j, em.load(expr.inputs[j], bases[j])?);
            }
        }
        kb.for_range(tail_start, n, 1, |kb, i| {
            let mut em = Emitter::new(kb, 1, self.opts);
            let mut inputs = Vec::with_capacity(bases.len());
            for (j, &base) in bases.iter().enumerate() {
                inputs.push(match fixed.get(&j) {
                    Some(&v) => v,
                    None => {
                        let dt = expr.inputs[j];
                        let idx = match self.strides[j][last] {
                            Some(s) => em.kb.b.ins().imul(i, s),
                            None => i,
                        };
                        let p = em.kb.addr(base, idx, dt.size() as i64);
                        em.load(dt, p)?
                    }
                });
            }
            let v = em.expr(expr, &inputs)?;
            let p = em.kb.addr(out_base, i, expr.out.size() as i64);
            em.store(expr.out, v, p)
        })
    }
}
