//! Expert weights as the graph holds them, and their re-layout into the `moe` op's layouts
//! at compile time: `w1`/`w3` `[E, I, H]`, `w2` `[E, H, I]` (each expert's matrix as
//! `[out, in]`, applied as `W x`), biases `[E, out]`, shared weights `[out, in]`.
//!
//! A weight already in the op's layout is passed as it is (it may even be computed at run
//! time); any other must be a constant, and is transposed and/or stacked into a new
//! constant here rather than by run-time Transposes.

use std::sync::Arc;

use kiln_ir::{Attr, Attrs, DType, Graph, Tensor, Value, ValueType};

use crate::error::CompileError;
use crate::passes::constant_fold::MAX_INLINE_ELEMENTS;

/// One 2-D matrix: `[out, in]` when `out_major` (`W x`, Gemm with transB), else `[in, out]`
/// (`x W`, MatMul).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mat {
    pub v: Value,
    pub out_major: bool,
}

/// The experts' matrices of one projection.
#[derive(Clone, Debug, PartialEq)]
pub enum Weight {
    /// One stacked tensor: `[E, out, in]` when `out_major`, else `[E, in, out]`.
    Stacked { v: Value, out_major: bool },
    /// One matrix per expert, in expert order.
    PerExpert(Vec<Mat>),
}

/// The experts' biases of one projection.
#[derive(Clone, Debug, PartialEq)]
pub enum Bias {
    /// `[E, out]`.
    Stacked(Value),
    /// One `[out]` vector per expert, in expert order.
    PerExpert(Vec<Value>),
}

fn dims2(g: &Graph, m: &Mat) -> Option<(usize, usize)> {
    let s = g.value_type(m.v).concrete_shape()?;
    let [a, b] = s[..] else { return None };
    Some(if m.out_major { (a, b) } else { (b, a) })
}

impl Mat {
    /// `(out, in)`, if the shape is known.
    pub fn dims(&self, g: &Graph) -> Option<(usize, usize)> {
        dims2(g, self)
    }

    /// True if the op can take it as it is, or it is a constant to re-lay.
    pub fn usable(&self, g: &Graph) -> bool {
        self.out_major || g.const_of(self.v).is_some()
    }
}

impl Weight {
    /// `(E, out, in)`, if the shapes are known and the experts agree.
    pub fn dims(&self, g: &Graph) -> Option<(usize, usize, usize)> {
        match self {
            Weight::Stacked { v, out_major } => {
                let s = g.value_type(*v).concrete_shape()?;
                let [e, a, b] = s[..] else { return None };
                Some(if *out_major { (e, a, b) } else { (e, b, a) })
            }
            Weight::PerExpert(ms) => {
                let d = dims2(g, ms.first()?)?;
                ms.iter()
                    .all(|m| dims2(g, m) == Some(d))
                    .then_some((ms.len(), d.0, d.1))
            }
        }
    }

    /// True if the op can take it as it is, or every part is a constant to re-lay.
    pub fn usable(&self, g: &Graph) -> bool {
        match self {
            Weight::Stacked { v, out_major } => *out_major || g.const_of(*v).is_some(),
            Weight::PerExpert(ms) => ms.iter().all(|m| g.const_of(m.v).is_some()),
        }
    }

    pub fn dtype(&self, g: &Graph) -> DType {
        match self {
            Weight::Stacked { v, .. } => g.value_type(*v).dtype,
            Weight::PerExpert(ms) => g.value_type(ms[0].v).dtype,
        }
    }
}

impl Bias {
    /// `(E, out)`, if the shapes are known and the experts agree.
    pub fn dims(&self, g: &Graph) -> Option<(usize, usize)> {
        match self {
            Bias::Stacked(v) => {
                let s = g.value_type(*v).concrete_shape()?;
                let [e, o] = s[..] else { return None };
                Some((e, o))
            }
            Bias::PerExpert(vs) => {
                let s = g.value_type(*vs.first()?).concrete_shape()?;
                let [o] = s[..] else { return None };
                let same = vs.iter().all(|&v| {
                    g.value_type(v).concrete_shape().as_deref() == Some(&[o][..])
                        && g.const_of(v).is_some()
                });
                same.then_some((vs.len(), o))
            }
        }
    }
}

/// The weight store name of constant `v`, if it has one.
fn stored_name(g: &Graph, v: Value) -> Option<String> {
    match g.node(v.node).attrs.get("value") {
        Some(Attr::Weight(n)) if g.node(v.node).op == "constant" => Some(n.to_string()),
        _ => None,
    }
}

/// A new constant holding `t`: inline when small, else in the weight store under a name
/// derived from `base`.
fn new_constant(g: &mut Graph, base: &str, t: Tensor) -> Value {
    let ty = ValueType::of(t.dtype(), t.shape());
    let value = if t.len() <= MAX_INLINE_ELEMENTS {
        Attr::Tensor(Arc::new(t))
    } else {
        Attr::Weight(g.weights.insert(base, Arc::new(t)))
    };
    let mut attrs = Attrs::new();
    attrs.insert("value".into(), value);
    let id = g.add_node("constant", attrs, vec![], vec![ty], "");
    Value {
        node: id,
        output: 0,
    }
}

fn constant_of(g: &Graph, v: Value) -> Result<Arc<Tensor>, CompileError> {
    g.const_of(v).ok_or_else(|| {
        CompileError::Pass("fuse-moe: an expert weight to re-lay is not a constant".into())
    })
}

/// Appends matrix `t` (`[out, in]` if `out_major`, else `[in, out]`) as `[out, in]`.
fn push_out_major(dst: &mut Vec<f64>, t: &[f64], rows: usize, cols: usize, out_major: bool) {
    if out_major {
        dst.extend_from_slice(&t[..rows * cols]);
    } else {
        // t is [in = cols, out = rows].
        for o in 0..rows {
            dst.extend((0..cols).map(|i| t[i * rows + o]));
        }
    }
}

/// `w` as the op's `[E, out, in]` value.
pub fn stacked(g: &mut Graph, w: &Weight, suffix: &str) -> Result<Value, CompileError> {
    let bad = || CompileError::Pass("fuse-moe: expert weights of unknown shape".into());
    let (e, out, inp) = w.dims(g).ok_or_else(bad)?;
    let dtype = w.dtype(g);
    let (parts, base): (Vec<Mat>, Value) = match w {
        Weight::Stacked {
            out_major: true, v, ..
        } => return Ok(*v),
        Weight::Stacked { v, .. } => (vec![], *v),
        Weight::PerExpert(ms) => (ms.clone(), ms[0].v),
    };
    let mut data = Vec::with_capacity(e * out * inp);
    if parts.is_empty() {
        let t = constant_of(g, base)?.to_f64();
        for x in 0..e {
            push_out_major(&mut data, &t[x * out * inp..], out, inp, false);
        }
    } else {
        for p in &parts {
            push_out_major(
                &mut data,
                &constant_of(g, p.v)?.to_f64(),
                out,
                inp,
                p.out_major,
            );
        }
    }
    let name = format!(
        "{}{suffix}",
        stored_name(g, base).unwrap_or_else(|| "moe".into())
    );
    let t = Tensor::from_f64(dtype, vec![e, out, inp], &data);
    Ok(new_constant(g, &name, t))
}

/// `b` as the op's `[E, out]` value.
pub fn stacked_bias(g: &mut Graph, b: &Bias) -> Result<Value, CompileError> {
    match b {
        Bias::Stacked(v) => Ok(*v),
        Bias::PerExpert(vs) => {
            let (e, out) = b.dims(g).ok_or_else(|| {
                CompileError::Pass("fuse-moe: expert biases of unknown shape".into())
            })?;
            let mut data = Vec::with_capacity(e * out);
            for &v in vs {
                data.extend(constant_of(g, v)?.to_f64());
            }
            let dtype = g.value_type(vs[0]).dtype;
            let name = format!(
                "{}.stacked",
                stored_name(g, vs[0]).unwrap_or_else(|| "moe.bias".into())
            );
            Ok(new_constant(
                g,
                &name,
                Tensor::from_f64(dtype, vec![e, out], &data),
            ))
        }
    }
}

/// `m` as an `[out, in]` value.
pub fn out_major(g: &mut Graph, m: &Mat, suffix: &str) -> Result<Value, CompileError> {
    if m.out_major {
        return Ok(m.v);
    }
    let (out, inp) = m.dims(g).ok_or_else(|| {
        CompileError::Pass("fuse-moe: a shared expert weight of unknown shape".into())
    })?;
    let mut data = Vec::with_capacity(out * inp);
    push_out_major(&mut data, &constant_of(g, m.v)?.to_f64(), out, inp, false);
    let dtype = g.value_type(m.v).dtype;
    let name = format!(
        "{}{suffix}",
        stored_name(g, m.v).unwrap_or_else(|| "moe".into())
    );
    Ok(new_constant(
        g,
        &name,
        Tensor::from_f64(dtype, vec![out, inp], &data),
    ))
}
