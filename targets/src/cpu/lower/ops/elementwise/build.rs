//! Each elementwise op as an expression of primitive operations, following the reference
//! interpreter's definitions (ir/src/ops/elementwise, activation.rs, microsoft/gelu.rs,
//! fused/swiglu.rs). Floats compute in f32 (f16 and bf16 too, rounded to their dtype at the
//! end of each op) or f64; integers in 64 bits, wrapped to their dtype at the end of each op.

use std::f64::consts::{FRAC_1_SQRT_2, PI};

use kiln_ir::attr::AttrsExt;
use kiln_ir::dim::Dim;
use kiln_ir::dtype::DType;
use kiln_ir::graph::NodeId;

use super::{Group, V};
use crate::cpu::codegen::kernels::elementwise::{Cmp, Op, Ty};
use crate::error::TargetError;

type R = Result<V, TargetError>;

/// The expression of node `id`.
pub(super) fn node(g: &mut Group, id: NodeId) -> R {
    let op = g.graph().node(id).op.clone();
    match op.as_str() {
        "Add" => arith(g, id, Op::Add),
        "Sub" => arith(g, id, Op::Sub),
        "Mul" => arith(g, id, Op::Mul),
        "Div" => arith(g, id, Op::Div),
        "Pow" => pow(g, id),
        "Mod" => modulo(g, id),
        "Neg" => num_unary(g, id, Op::Neg),
        "Abs" => num_unary(g, id, Op::Abs),
        "Sign" => num_unary(g, id, Op::Sign),
        "Reciprocal" => float_unary(g, id, |g, x, t| {
            let one = g.fc(t, 1.0);
            g.op(Op::Div, &[one, x], t)
        }),
        "Sqrt" => prim(g, id, Op::Sqrt),
        "Exp" => prim(g, id, Op::Exp),
        "Log" => prim(g, id, Op::Log),
        "Floor" => prim(g, id, Op::Floor),
        "Ceil" => prim(g, id, Op::Ceil),
        "Round" => prim(g, id, Op::Round),
        "Erf" => prim(g, id, Op::Erf),
        "Tanh" => prim(g, id, Op::Tanh),
        "Sin" => prim(g, id, Op::Call1("sin")),
        "Cos" => prim(g, id, Op::Call1("cos")),
        "Tan" => prim(g, id, Op::Call1("tan")),
        "Asin" => prim(g, id, Op::Call1("asin")),
        "Acos" => prim(g, id, Op::Call1("acos")),
        "Atan" => prim(g, id, Op::Call1("atan")),
        "Sinh" => prim(g, id, Op::Call1("sinh")),
        "Cosh" => prim(g, id, Op::Call1("cosh")),
        "Asinh" => prim(g, id, Op::Call1("asinh")),
        "Acosh" => prim(g, id, Op::Call1("acosh")),
        "Atanh" => prim(g, id, Op::Call1("atanh")),
        "Sigmoid" => float_unary(g, id, |g, x, t| sigmoid(g, x, t, 1.0)),
        "Swish" => {
            let alpha = attr_f(g, id, "alpha", 1.0)?;
            float_unary(g, id, |g, x, t| {
                let s = sigmoid(g, x, t, alpha);
                g.op(Op::Mul, &[x, s], t)
            })
        }
        "com.microsoft.QuickGelu" => {
            let alpha = attr_f(g, id, "alpha", 1.702)?;
            float_unary(g, id, |g, x, t| {
                let s = sigmoid(g, x, t, alpha);
                g.op(Op::Mul, &[x, s], t)
            })
        }
        "HardSigmoid" => {
            let alpha = attr_f(g, id, "alpha", 0.2)?;
            let beta = attr_f(g, id, "beta", 0.5)?;
            float_unary(g, id, |g, x, t| hard_sigmoid(g, x, t, alpha, beta))
        }
        "HardSwish" => float_unary(g, id, |g, x, t| {
            let h = hard_sigmoid(g, x, t, 1.0 / 6.0, 0.5);
            g.op(Op::Mul, &[x, h], t)
        }),
        "Relu" => relu(g, id),
        "LeakyRelu" => {
            let alpha = attr_f(g, id, "alpha", 0.01)?;
            float_unary(g, id, |g, x, t| {
                let a = g.fc(t, alpha);
                let ax = g.op(Op::Mul, &[a, x], t);
                let zero = g.fc(t, 0.0);
                let neg = g.op(Op::Cmp(Cmp::Lt), &[x, zero], Ty::Bool);
                g.op(Op::Select, &[neg, ax, x], t)
            })
        }
        "PRelu" => prelu(g, id),
        "Elu" => {
            let alpha = attr_f(g, id, "alpha", 1.0)?;
            float_unary(g, id, |g, x, t| {
                let e = g.op(Op::Expm1, &[x], t);
                let a = g.fc(t, alpha);
                let ae = g.op(Op::Mul, &[a, e], t);
                let zero = g.fc(t, 0.0);
                let pos = g.op(Op::Cmp(Cmp::Gt), &[x, zero], Ty::Bool);
                g.op(Op::Select, &[pos, x, ae], t)
            })
        }
        "Selu" => {
            let alpha = attr_f(g, id, "alpha", f64::from(1.673_263_2f32))?;
            let gamma = attr_f(g, id, "gamma", f64::from(1.050_701f32))?;
            float_unary(g, id, |g, x, t| {
                let e = g.op(Op::Expm1, &[x], t);
                let ga = g.fc(t, gamma * alpha);
                let neg = g.op(Op::Mul, &[ga, e], t);
                let gk = g.fc(t, gamma);
                let pos = g.op(Op::Mul, &[gk, x], t);
                let zero = g.fc(t, 0.0);
                let c = g.op(Op::Cmp(Cmp::Gt), &[x, zero], Ty::Bool);
                g.op(Op::Select, &[c, pos, neg], t)
            })
        }
        "Celu" => {
            let alpha = attr_f(g, id, "alpha", 1.0)?;
            float_unary(g, id, |g, x, t| {
                // max(x, 0) + min(alpha * expm1(x / alpha), 0), with Rust's NaN-ignoring
                // max/min as the reference has them.
                let zero = g.fc(t, 0.0);
                let gt = g.op(Op::Cmp(Cmp::Gt), &[x, zero], Ty::Bool);
                let p = g.op(Op::Select, &[gt, x, zero], t);
                let a = g.fc(t, alpha);
                let xa = g.op(Op::Div, &[x, a], t);
                let e = g.op(Op::Expm1, &[xa], t);
                let q = g.op(Op::Mul, &[a, e], t);
                let lt = g.op(Op::Cmp(Cmp::Lt), &[q, zero], Ty::Bool);
                let q = g.op(Op::Select, &[lt, q, zero], t);
                g.op(Op::Add, &[p, q], t)
            })
        }
        "ThresholdedRelu" => {
            let alpha = attr_f(g, id, "alpha", 1.0)?;
            float_unary(g, id, |g, x, t| {
                let a = g.fc(t, alpha);
                let zero = g.fc(t, 0.0);
                let c = g.op(Op::Cmp(Cmp::Gt), &[x, a], Ty::Bool);
                g.op(Op::Select, &[c, x, zero], t)
            })
        }
        "Softplus" => float_unary(g, id, softplus),
        "Softsign" => float_unary(g, id, |g, x, t| {
            let a = g.op(Op::Abs, &[x], t);
            let one = g.fc(t, 1.0);
            let d = g.op(Op::Add, &[one, a], t);
            g.op(Op::Div, &[x, d], t)
        }),
        "Mish" => float_unary(g, id, |g, x, t| {
            let s = softplus(g, x, t);
            let th = g.op(Op::Tanh, &[s], t);
            g.op(Op::Mul, &[x, th], t)
        }),
        "Gelu" => {
            let approx = g
                .graph()
                .node(id)
                .attrs
                .str_or("approximate", "none")
                .map_err(|e| g.lw.error(e))?
                .to_string();
            match approx.as_str() {
                "none" => float_unary(g, id, gelu_erf),
                "tanh" => float_unary(g, id, gelu_tanh),
                a => Err(g.lw.unsupported(format!("Gelu approximate = {a:?}"))),
            }
        }
        "com.microsoft.Gelu" => float_unary(g, id, gelu_erf),
        "com.microsoft.FastGelu" => fast_gelu(g, id),
        "Shrink" => shrink(g, id),
        "IsNaN" => {
            let x = float_in(g, id, 0)?;
            let n = g.op(Op::IsNaN, &[x.n], Ty::Bool);
            Ok(V { n, dt: DType::Bool })
        }
        "IsInf" => {
            let pos = attr_i(g, id, "detect_positive", 1)? != 0;
            let neg = attr_i(g, id, "detect_negative", 1)? != 0;
            let x = float_in(g, id, 0)?;
            let n = g.op(Op::IsInf { pos, neg }, &[x.n], Ty::Bool);
            Ok(V { n, dt: DType::Bool })
        }
        "Not" => {
            let x = typed_in(g, id, 0, |t| t == Ty::Bool, "a bool")?;
            let n = g.op(Op::Not, &[x.n], Ty::Bool);
            Ok(V { n, dt: DType::Bool })
        }
        "And" => logic(g, id, Op::And),
        "Or" => logic(g, id, Op::Or),
        "Xor" => logic(g, id, Op::Xor),
        "BitwiseAnd" => bitwise(g, id, Op::And),
        "BitwiseOr" => bitwise(g, id, Op::Or),
        "BitwiseXor" => bitwise(g, id, Op::Xor),
        "BitwiseNot" => {
            let x = typed_in(g, id, 0, Ty::is_int, "an integer")?;
            let n = g.op(Op::Not, &[x.n], x.ty());
            Ok(g.finish(n, x.dt))
        }
        "BitShift" => bitshift(g, id),
        "Equal" => compare(g, id, Cmp::Eq),
        "Less" => compare(g, id, Cmp::Lt),
        "LessOrEqual" => compare(g, id, Cmp::Le),
        "Greater" => compare(g, id, Cmp::Gt),
        "GreaterOrEqual" => compare(g, id, Cmp::Ge),
        "Where" => {
            let c = typed_in(g, id, 0, |t| t == Ty::Bool, "a bool")?;
            let x = g.input(id, 1)?;
            let y = g.input(id, 2)?;
            same(g, x, y)?;
            let n = g.op(Op::Select, &[c.n, x.n, y.n], x.ty());
            Ok(V { n, dt: x.dt })
        }
        "Clip" => clip(g, id),
        "Max" => variadic(g, id, Op::Max),
        "Min" => variadic(g, id, Op::Min),
        "Sum" => variadic(g, id, Op::Add),
        "Mean" => mean(g, id),
        "Cast" => {
            let to = g
                .graph()
                .node(id)
                .attrs
                .dtype("to")
                .map_err(|e| g.lw.error(e))?
                .ok_or_else(|| g.lw.error("Cast needs `to`"))?;
            let x = g.input(id, 0)?;
            cast(g, x, to)
        }
        "CastLike" => {
            let to = g.graph().value_type(
                g.graph()
                    .node(id)
                    .input(1)
                    .ok_or_else(|| g.lw.error("CastLike needs a second input"))?,
            );
            let to = to.dtype;
            let x = g.input(id, 0)?;
            cast(g, x, to)
        }
        "swiglu" => swiglu(g, id),
        "SwiGLU" => {
            let alpha = attr_f(g, id, "alpha", 1.0)?;
            let a = float_in(g, id, 0)?;
            let b = float_in(g, id, 1)?;
            same(g, a, b)?;
            let t = a.ty();
            let s = sigmoid(g, a.n, t, alpha);
            let gs = g.op(Op::Mul, &[a.n, s], t);
            let n = g.op(Op::Mul, &[gs, b.n], t);
            Ok(g.finish(n, a.dt))
        }
        other => Err(g.lw.unsupported(format!("elementwise op {other}"))),
    }
}

fn attr_f(g: &Group, id: NodeId, name: &str, default: f64) -> Result<f64, TargetError> {
    g.graph()
        .node(id)
        .attrs
        .float(name)
        .map(|v| v.map(f64::from).unwrap_or(default))
        .map_err(|e| g.lw.error(e))
}

fn attr_i(g: &Group, id: NodeId, name: &str, default: i64) -> Result<i64, TargetError> {
    g.graph()
        .node(id)
        .attrs
        .int_or(name, default)
        .map_err(|e| g.lw.error(e))
}

/// Input `i`, whose compute type must satisfy `ok`.
fn typed_in(g: &mut Group, id: NodeId, i: usize, ok: impl Fn(Ty) -> bool, what: &str) -> R {
    let x = g.input(id, i)?;
    if !ok(x.ty()) {
        return Err(g
            .lw
            .unsupported(format!("{} input {i} (expects {what})", x.dt)));
    }
    Ok(x)
}

fn float_in(g: &mut Group, id: NodeId, i: usize) -> R {
    typed_in(g, id, i, Ty::is_float, "a float")
}

fn same(g: &Group, a: V, b: V) -> Result<(), TargetError> {
    if a.dt != b.dt {
        return Err(g
            .lw
            .error(format!("inputs of different dtypes {} and {}", a.dt, b.dt)));
    }
    Ok(())
}

/// A float op `f` on input 0, rounded to its dtype.
fn float_unary(g: &mut Group, id: NodeId, f: impl FnOnce(&mut Group, usize, Ty) -> usize) -> R {
    let x = float_in(g, id, 0)?;
    let n = f(g, x.n, x.ty());
    Ok(g.finish(n, x.dt))
}

/// One primitive float op on input 0.
fn prim(g: &mut Group, id: NodeId, op: Op) -> R {
    float_unary(g, id, |g, x, t| g.op(op, &[x], t))
}

/// A primitive op on a float or integer input 0.
fn num_unary(g: &mut Group, id: NodeId, op: Op) -> R {
    let x = typed_in(g, id, 0, |t| t != Ty::Bool, "a number")?;
    let n = g.op(op, &[x.n], x.ty());
    Ok(g.finish(n, x.dt))
}

/// Add, Sub, Mul, Div on two numbers of one dtype.
fn arith(g: &mut Group, id: NodeId, op: Op) -> R {
    let x = typed_in(g, id, 0, |t| t != Ty::Bool, "a number")?;
    let y = g.input(id, 1)?;
    same(g, x, y)?;
    let n = g.op(op, &[x.n, y.n], x.ty());
    Ok(g.finish(n, x.dt))
}

fn logic(g: &mut Group, id: NodeId, op: Op) -> R {
    let x = typed_in(g, id, 0, |t| t == Ty::Bool, "a bool")?;
    let y = g.input(id, 1)?;
    same(g, x, y)?;
    let n = g.op(op, &[x.n, y.n], Ty::Bool);
    Ok(V { n, dt: DType::Bool })
}

fn bitwise(g: &mut Group, id: NodeId, op: Op) -> R {
    let x = typed_in(g, id, 0, Ty::is_int, "an integer")?;
    let y = g.input(id, 1)?;
    same(g, x, y)?;
    let n = g.op(op, &[x.n, y.n], x.ty());
    Ok(g.finish(n, x.dt))
}

fn compare(g: &mut Group, id: NodeId, c: Cmp) -> R {
    let x = g.input(id, 0)?;
    let y = g.input(id, 1)?;
    same(g, x, y)?;
    if x.ty() == Ty::Bool && c != Cmp::Eq {
        return Err(g.lw.unsupported("ordering comparisons of bools"));
    }
    let n = g.op(Op::Cmp(c), &[x.n, y.n], Ty::Bool);
    Ok(V { n, dt: DType::Bool })
}

fn bitshift(g: &mut Group, id: NodeId) -> R {
    let left = match g
        .graph()
        .node(id)
        .attrs
        .str("direction")
        .map_err(|e| g.lw.error(e))?
    {
        Some("LEFT") => true,
        Some("RIGHT") => false,
        d => return Err(g.lw.unsupported(format!("BitShift direction {d:?}"))),
    };
    let x = typed_in(g, id, 0, Ty::is_int, "an integer")?;
    let s = g.input(id, 1)?;
    same(g, x, s)?;
    let width = (x.dt.size() * 8) as u8;
    let n = g.op(Op::Shift { left, width }, &[x.n, s.n], x.ty());
    Ok(g.finish(n, x.dt))
}

/// 1 / (1 + exp(-alpha x)).
fn sigmoid(g: &mut Group, x: usize, t: Ty, alpha: f64) -> usize {
    let k = g.fc(t, -alpha);
    let z = g.op(Op::Mul, &[k, x], t);
    let e = g.op(Op::Exp, &[z], t);
    let one = g.fc(t, 1.0);
    let d = g.op(Op::Add, &[one, e], t);
    g.op(Op::Div, &[one, d], t)
}

/// `lo <= x <= hi` as the reference clamps (NaN stays NaN).
fn clamp(g: &mut Group, x: usize, t: Ty, lo: Option<usize>, hi: Option<usize>) -> usize {
    let mut r = x;
    if let Some(lo) = lo {
        let c = g.op(Op::Cmp(Cmp::Lt), &[r, lo], Ty::Bool);
        r = g.op(Op::Select, &[c, lo, r], t);
    }
    if let Some(hi) = hi {
        let c = g.op(Op::Cmp(Cmp::Gt), &[r, hi], Ty::Bool);
        r = g.op(Op::Select, &[c, hi, r], t);
    }
    r
}

fn hard_sigmoid(g: &mut Group, x: usize, t: Ty, alpha: f64, beta: f64) -> usize {
    let a = g.fc(t, alpha);
    let b = g.fc(t, beta);
    let y = g.op(Op::Fma, &[a, x, b], t);
    let zero = g.fc(t, 0.0);
    let one = g.fc(t, 1.0);
    clamp(g, y, t, Some(zero), Some(one))
}

/// max(x, 0) + ln(1 + exp(-|x|)).
fn softplus(g: &mut Group, x: usize, t: Ty) -> usize {
    let zero = g.fc(t, 0.0);
    let gt = g.op(Op::Cmp(Cmp::Gt), &[x, zero], Ty::Bool);
    let m = g.op(Op::Select, &[gt, x, zero], t);
    let a = g.op(Op::Abs, &[x], t);
    let na = g.op(Op::Neg, &[a], t);
    let e = g.op(Op::Exp, &[na], t);
    let l = g.op(Op::Log1p, &[e], t);
    g.op(Op::Add, &[m, l], t)
}

/// 0.5 x (1 + erf(x / sqrt 2)), computed as 0.5 x erfc(-x / sqrt 2) (no cancellation for
/// negative x).
fn gelu_erf(g: &mut Group, x: usize, t: Ty) -> usize {
    let k = g.fc(t, -FRAC_1_SQRT_2);
    let z = g.op(Op::Mul, &[x, k], t);
    let e = g.op(Op::Erfc, &[z], t);
    let half = g.fc(t, 0.5);
    let hx = g.op(Op::Mul, &[half, x], t);
    g.op(Op::Mul, &[hx, e], t)
}

/// 0.5 x (1 + tanh(z)) with z = sqrt(2/pi) (x + 0.044715 x^3), computed as
/// x / (1 + exp(-2z)) (the same function, without cancellation for negative x).
fn gelu_tanh(g: &mut Group, x: usize, t: Ty) -> usize {
    let x2 = g.op(Op::Mul, &[x, x], t);
    let c = g.fc(t, 0.044715);
    let one = g.fc(t, 1.0);
    let p = g.op(Op::Fma, &[c, x2, one], t);
    let inner = g.op(Op::Mul, &[x, p], t);
    let k = g.fc(t, -2.0 * (2.0 / PI).sqrt());
    let z = g.op(Op::Mul, &[k, inner], t);
    let e = g.op(Op::Exp, &[z], t);
    let d = g.op(Op::Add, &[one, e], t);
    g.op(Op::Div, &[x, d], t)
}

/// FastGelu(X, bias?): gelu_tanh(X + bias), the bias running along X's last axis.
fn fast_gelu(g: &mut Group, id: NodeId) -> R {
    let x = float_in(g, id, 0)?;
    let t = x.ty();
    let mut z = x.n;
    if g.graph().node(id).input(1).is_some() {
        let xs = &g
            .graph()
            .value_type(
                g.graph()
                    .node(id)
                    .input(0)
                    .ok_or_else(|| g.lw.error("no X"))?,
            )
            .shape;
        let last = xs.last().cloned().unwrap_or(Dim::from(1i64));
        let b = g.input_as(id, 1, vec![last])?;
        same(g, x, b)?;
        z = g.op(Op::Add, &[x.n, b.n], t);
    }
    let n = gelu_tanh(g, z, t);
    Ok(g.finish(n, x.dt))
}

fn relu(g: &mut Group, id: NodeId) -> R {
    let x = typed_in(g, id, 0, |t| t != Ty::Bool, "a number")?;
    let t = x.ty();
    let n = match t {
        Ty::F32 | Ty::F64 => {
            let zero = g.fc(t, 0.0);
            let c = g.op(Op::Cmp(Cmp::Lt), &[x.n, zero], Ty::Bool);
            g.op(Op::Select, &[c, zero, x.n], t)
        }
        Ty::I64 => {
            let zero = g.ic(t, 0);
            g.op(Op::Max, &[x.n, zero], t)
        }
        _ => x.n,
    };
    Ok(g.finish(n, x.dt))
}

fn prelu(g: &mut Group, id: NodeId) -> R {
    let x = typed_in(g, id, 0, |t| t != Ty::Bool, "a number")?;
    let s = g.input(id, 1)?;
    same(g, x, s)?;
    let t = x.ty();
    let zero = if t.is_float() {
        g.fc(t, 0.0)
    } else {
        g.ic(t, 0)
    };
    let c = g.op(Op::Cmp(Cmp::Lt), &[x.n, zero], Ty::Bool);
    let sx = g.op(Op::Mul, &[s.n, x.n], t);
    let n = g.op(Op::Select, &[c, sx, x.n], t);
    Ok(g.finish(n, x.dt))
}

/// Shrink: floats directly; integers through f64 and truncated back, as the reference does.
fn shrink(g: &mut Group, id: NodeId) -> R {
    let bias = attr_f(g, id, "bias", 0.0)?;
    let lambd = attr_f(g, id, "lambd", 0.5)?;
    let x = typed_in(g, id, 0, |t| t != Ty::Bool, "a number")?;
    let (xf, t) = if x.ty().is_int() {
        (g.op(Op::Convert(Ty::F64), &[x.n], Ty::F64), Ty::F64)
    } else {
        (x.n, x.ty())
    };
    let l = g.fc(t, lambd);
    let nl = g.fc(t, -lambd);
    let b = g.fc(t, bias);
    let zero = g.fc(t, 0.0);
    let lo = g.op(Op::Cmp(Cmp::Lt), &[xf, nl], Ty::Bool);
    let hi = g.op(Op::Cmp(Cmp::Gt), &[xf, l], Ty::Bool);
    let plus = g.op(Op::Add, &[xf, b], t);
    let minus = g.op(Op::Sub, &[xf, b], t);
    let r = g.op(Op::Select, &[hi, minus, zero], t);
    let r = g.op(Op::Select, &[lo, plus, r], t);
    if x.ty().is_int() {
        let i = g.op(Op::FloatToLow64, &[r], x.ty());
        return Ok(g.finish(i, x.dt));
    }
    Ok(g.finish(r, x.dt))
}

fn pow(g: &mut Group, id: NodeId) -> R {
    let x = typed_in(g, id, 0, |t| t != Ty::Bool, "a number")?;
    let y = typed_in(g, id, 1, |t| t != Ty::Bool, "a number")?;
    let t = x.ty();
    // A constant exponent of 1 or 2 needs no call.
    if let Some(e) = g.lw.const_input(id, 1).filter(|e| e.len() == 1) {
        let e = e.to_f64()[0];
        if e == 1.0 {
            return Ok(x);
        }
        if e == 2.0 {
            let n = g.op(Op::Mul, &[x.n, x.n], t);
            return Ok(g.finish(n, x.dt));
        }
    }
    let n = match (t.is_float(), y.ty().is_float()) {
        (true, _) if y.ty() == t => g.op(Op::Call2("pow"), &[x.n, y.n], t),
        (true, _) => {
            // Mixed types: in f64, as the reference computes.
            let xf = convert_float(g, x, Ty::F64);
            let yf = convert_float(g, y, Ty::F64);
            let p = g.op(Op::Call2("pow"), &[xf, yf], Ty::F64);
            convert_float(
                g,
                V {
                    n: p,
                    dt: DType::F64,
                },
                t,
            )
        }
        (false, false) => {
            let yi = g.op(Op::Convert(Ty::I64), &[y.n], Ty::I64);
            g.op(Op::IntPow, &[x.n, yi], t)
        }
        (false, true) => {
            // The reference: (x as f64).powf(y), truncated toward zero as i128.
            let xf = g.op(Op::Convert(Ty::F64), &[x.n], Ty::F64);
            let yf = convert_float(g, y, Ty::F64);
            let p = g.op(Op::Call2("pow"), &[xf, yf], Ty::F64);
            g.op(Op::FloatToLow64, &[p], t)
        }
    };
    Ok(g.finish(n, x.dt))
}

/// A number `v` as a float of type `t` (exact for the exponents Pow sees).
fn convert_float(g: &mut Group, v: V, t: Ty) -> usize {
    if v.ty() == t {
        v.n
    } else {
        g.op(Op::Convert(t), &[v.n], t)
    }
}

fn modulo(g: &mut Group, id: NodeId) -> R {
    let fmod = match attr_i(g, id, "fmod", 0)? {
        0 => false,
        1 => true,
        v => return Err(g.lw.unsupported(format!("Mod fmod = {v}"))),
    };
    let x = typed_in(g, id, 0, |t| t != Ty::Bool, "a number")?;
    let y = g.input(id, 1)?;
    same(g, x, y)?;
    let t = x.ty();
    let n = if t.is_float() {
        let f = if fmod { "fmod" } else { "float_mod" };
        g.op(Op::Call2(f), &[x.n, y.n], t)
    } else {
        g.op(Op::Rem { fmod }, &[x.n, y.n], t)
    };
    Ok(g.finish(n, x.dt))
}

fn clip(g: &mut Group, id: NodeId) -> R {
    let x = typed_in(g, id, 0, |t| t != Ty::Bool, "a number")?;
    let lo = g.opt_input(id, 1)?;
    let hi = g.opt_input(id, 2)?;
    for b in [lo, hi].into_iter().flatten() {
        same(g, x, b)?;
    }
    let n = clamp(g, x.n, x.ty(), lo.map(|v| v.n), hi.map(|v| v.n));
    Ok(V { n, dt: x.dt })
}

/// Sum, Max, Min over every input.
fn variadic(g: &mut Group, id: NodeId, op: Op) -> R {
    let count = g.graph().node(id).inputs().len();
    let first = typed_in(g, id, 0, |t| t != Ty::Bool, "a number")?;
    let mut acc = first.n;
    for i in 1..count {
        let v = g.input(id, i)?;
        same(g, first, v)?;
        acc = g.op(op, &[acc, v.n], first.ty());
    }
    Ok(g.finish(acc, first.dt))
}

/// Mean: the sum over the count (integers truncate).
fn mean(g: &mut Group, id: NodeId) -> R {
    let count = g.graph().node(id).inputs().len();
    let first = typed_in(g, id, 0, |t| t != Ty::Bool, "a number")?;
    let t = first.ty();
    let mut acc = first.n;
    for i in 1..count {
        let v = g.input(id, i)?;
        same(g, first, v)?;
        acc = g.op(Op::Add, &[acc, v.n], t);
    }
    let k = if t.is_float() {
        g.fc(t, count as f64)
    } else {
        g.ic(t, count as i64)
    };
    let n = g.op(Op::Div, &[acc, k], t);
    Ok(g.finish(n, first.dt))
}

/// gate * sigmoid(alpha * gate) * (up + beta), with GPT-OSS's clamps when `limit` is set.
fn swiglu(g: &mut Group, id: NodeId) -> R {
    let alpha = attr_f(g, id, "alpha", 1.0)?;
    let beta = attr_f(g, id, "beta", 0.0)?;
    let limit = g
        .graph()
        .node(id)
        .attrs
        .float("limit")
        .map_err(|e| g.lw.error(e))?
        .map(f64::from);
    let gate = float_in(g, id, 0)?;
    let up = float_in(g, id, 1)?;
    same(g, gate, up)?;
    let t = gate.ty();
    let (mut gn, mut un) = (gate.n, up.n);
    if let Some(l) = limit {
        // gate.min(l) keeps l for a NaN gate; up.clamp(-l, l) keeps NaN.
        let lk = g.fc(t, l);
        let nl = g.fc(t, -l);
        let c = g.op(Op::Cmp(Cmp::Lt), &[gn, lk], Ty::Bool);
        gn = g.op(Op::Select, &[c, gn, lk], t);
        un = clamp(g, un, t, Some(nl), Some(lk));
    }
    let s = sigmoid(g, gn, t, alpha);
    let gs = g.op(Op::Mul, &[gn, s], t);
    if beta != 0.0 {
        let b = g.fc(t, beta);
        un = g.op(Op::Add, &[un, b], t);
    }
    let n = g.op(Op::Mul, &[gs, un], t);
    Ok(g.finish(n, gate.dt))
}

/// Cast with the reference's rules: floats round to nearest even; float to integer truncates
/// toward zero (NaN to 0) as i64 and wraps to narrower integers (as i128 for u64); integer to
/// integer wraps; to bool is "non-zero"; fp8 is not supported.
pub(super) fn cast(g: &mut Group, x: V, to: DType) -> R {
    let from = x.dt;
    let (Some(ft), Some(tt)) = (Ty::of(from), Ty::of(to)) else {
        return Err(g.lw.unsupported(format!("Cast from {from} to {to}")));
    };
    if from == to {
        return Ok(x);
    }
    let n = match (ft, tt) {
        (_, Ty::Bool) | (Ty::Bool, _) => g.op(Op::Convert(tt), &[x.n], tt),
        (Ty::F32, Ty::F32) => return Ok(g.finish(x.n, to)),
        (Ty::F32, Ty::F64) => g.op(Op::Convert(Ty::F64), &[x.n], Ty::F64),
        (Ty::F64, Ty::F32) => {
            let r = g.op(Op::RoundTo(to), &[x.n], Ty::F64);
            g.op(Op::Convert(Ty::F32), &[r], Ty::F32)
        }
        (Ty::F32 | Ty::F64, Ty::I64 | Ty::U64) => {
            if to == DType::U64 {
                let d = convert_float(g, x, Ty::F64);
                g.op(Op::FloatToLow64, &[d], tt)
            } else {
                let i = g.op(Op::Convert(tt), &[x.n], tt);
                return Ok(g.finish(i, to));
            }
        }
        (Ty::I64, Ty::F32) if from == DType::I64 && to == DType::F32 => {
            g.op(Op::Convert(Ty::F32), &[x.n], Ty::F32)
        }
        (Ty::I64 | Ty::U64, Ty::F32) => {
            let d = g.op(Op::Convert(Ty::F64), &[x.n], Ty::F64);
            let r = g.op(Op::RoundTo(to), &[d], Ty::F64);
            g.op(Op::Convert(Ty::F32), &[r], Ty::F32)
        }
        (Ty::I64 | Ty::U64, Ty::F64) => g.op(Op::Convert(Ty::F64), &[x.n], Ty::F64),
        (Ty::I64 | Ty::U64, Ty::I64 | Ty::U64) => {
            let i = g.op(Op::Convert(tt), &[x.n], tt);
            return Ok(g.finish(i, to));
        }
        _ => return Err(g.lw.unsupported(format!("Cast from {from} to {to}"))),
    };
    Ok(V { n, dt: to })
}
