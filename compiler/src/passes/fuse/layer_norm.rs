//! `fuse-layer-norm`: layer normalisation -> `layer_norm(x, scale, bias?) {axis, eps}`.
//!
//! Forms (after canonicalize):
//! - `mean-var` (BERT in TorchScript, dynamo, HF's LayerNorm written out):
//!   `d = x - ReduceMean(x, axes)`, `var = ReduceMean(Pow(d, 2) | d * d, axes)`,
//!   `n = d / Sqrt(var + eps)` (or `d * Reciprocal(Sqrt(..))`, `d * (1 / Sqrt(..))`,
//!   `d * Pow(var + eps, -0.5)`), then `n * w + b` with the operands in either order,
//!   `n * w`, `n + b`, or `n` alone (a scale of one, no bias). Both means reduce the same
//!   trailing axes (`axes` = the last k axes, keepdims = 1).
//! - `onnx-LayerNormalization`: the op already, renamed (`epsilon` becomes `eps`), when its
//!   mean and inverse std dev outputs are unused.
//!
//! A scale or bias must be constant over the axes that are not normalised and either
//! constant or the full normalised shape over the rest (`[H]`, `[1, 1, H]`, a scalar): what
//! layer_norm's kernels take. A Mul or Add by anything else (a residual, a per-token gate) is
//! left after the norm. A mean over other axes than the variance's, or over axes that are
//! not trailing, is left alone.

use kiln_ir::attr::AttrsExt;
use kiln_ir::{Attr, Attrs, Dim, Graph, NodeId, Tensor, Value};

use super::pattern::{add, axis_index, constant, out0, sole_user, Matcher};
use super::{Match, Rule};

pub struct FuseLayerNorm;

impl Rule for FuseLayerNorm {
    fn name(&self) -> &'static str {
        "fuse-layer-norm"
    }

    fn find(&self, g: &Graph, root: NodeId) -> Option<Match> {
        match g.node(root).op.as_str() {
            "LayerNormalization" => existing_op(g, root),
            "com.microsoft.SkipLayerNormalization" => super::skip_layer_norm::find(g, root),
            "Add" | "Mul" | "Div" => {
                // A region whose root is read by a scale or bias Mul/Add is found from there.
                if extended_by_user(g, root) {
                    return None;
                }
                spelled(g, root).map(|s| rewrite(g, root, s))
            }
            _ => None,
        }
    }
}

/// A spelled-out layer norm: its normalised input, first normalised axis, eps, scale and
/// bias, and its nodes.
struct Spelled {
    x: Value,
    axis: usize,
    eps: f64,
    scale: Option<Value>,
    bias: Option<Value>,
    nodes: Vec<NodeId>,
}

/// The normalising part: `x`, the first normalised axis, eps.
struct Normalized {
    x: Value,
    axis: usize,
    eps: f64,
}

fn spelled(g: &Graph, root: NodeId) -> Option<Spelled> {
    let mut m = Matcher::new(g);
    let r = out0(root);
    let (norm, scale, bias) = match g.node(root).op.as_str() {
        "Add" => {
            m.take(root);
            let ((norm, scale), b) = m.either(root, |m, v| scaled_or_not(m, v))?;
            if !is_param(g, norm.x, norm.axis, b) {
                return None;
            }
            (norm, scale, Some(b))
        }
        "Mul" => {
            let (norm, scale) = scaled_or_not(&mut m, r)?;
            (norm, scale, None)
        }
        _ => (normalized(&mut m, r)?, None, None),
    };
    Some(Spelled {
        x: norm.x,
        axis: norm.axis,
        eps: norm.eps,
        scale,
        bias,
        nodes: m.nodes(),
    })
}

/// True if `id`'s only reader is a Mul or Add that a layer norm including `id` ends at.
fn extended_by_user(g: &Graph, id: NodeId) -> bool {
    let Some(user) = sole_user(g, out0(id)) else {
        return false;
    };
    matches!(g.node(user).op.as_str(), "Mul" | "Add")
        && spelled(g, user).is_some_and(|s| s.nodes.contains(&id))
}

/// `n * w` (either order) with `w` a scale, or `n` alone.
fn scaled_or_not(m: &mut Matcher, v: Value) -> Option<(Normalized, Option<Value>)> {
    let mark = m.mark();
    if let Some(mul) = m.op(v, "Mul") {
        let g = m.g;
        if let Some((norm, w)) = m.either(mul, |m, n| normalized(m, n)) {
            if is_param(g, norm.x, norm.axis, w) {
                return Some((norm, Some(w)));
            }
        }
        m.reset(mark);
    }
    Some((normalized(m, v)?, None))
}

/// `d / Sqrt(var + eps)` and the other spellings of `d` times the inverse std dev.
fn normalized(m: &mut Matcher, v: Value) -> Option<Normalized> {
    if let Some(div) = m.op(v, "Div") {
        let d = m.input(div, 0)?;
        let s = m.input(div, 1)?;
        let var_eps = if let Some(sqrt) = m.op(s, "Sqrt") {
            m.input(sqrt, 0)?
        } else {
            let p = m.op(s, "Pow")?;
            (m.scalar(m.input(p, 1)?)? == 0.5).then_some(())?;
            m.input(p, 0)?
        };
        return with_variance(m, d, var_eps);
    }
    let mul = m.op(v, "Mul")?;
    let (var_eps, d) = m.either(mul, |m, inv| inverse_std_dev(m, inv))?;
    with_variance(m, d, var_eps)
}

/// `Reciprocal(Sqrt(ve))`, `1 / Sqrt(ve)` or `Pow(ve, -0.5)`: returns `ve`.
fn inverse_std_dev(m: &mut Matcher, v: Value) -> Option<Value> {
    if let Some(r) = m.op(v, "Reciprocal") {
        let sqrt = m.op(m.input(r, 0)?, "Sqrt")?;
        return m.input(sqrt, 0);
    }
    if let Some(d) = m.op(v, "Div") {
        (m.scalar(m.input(d, 0)?)? == 1.0).then_some(())?;
        let sqrt = m.op(m.input(d, 1)?, "Sqrt")?;
        return m.input(sqrt, 0);
    }
    let p = m.op(v, "Pow")?;
    (m.scalar(m.input(p, 1)?)? == -0.5).then_some(())?;
    m.input(p, 0)
}

/// `d` centred (`x - mean`) and `var_eps` = `ReduceMean(d^2) + eps` over the same axes.
fn with_variance(m: &mut Matcher, d: Value, var_eps: Value) -> Option<Normalized> {
    let (x, axis) = centered(m, d)?;
    let add = m.op(var_eps, "Add")?;
    let (_, eps) = m.either(add, |m, var| {
        let mean = m.op(var, "ReduceMean")?;
        let sq = m.input(mean, 0)?;
        let d2 = if let Some(p) = m.op(sq, "Pow") {
            (m.scalar(m.input(p, 1)?)? == 2.0).then_some(())?;
            m.input(p, 0)?
        } else {
            let mul = m.op(sq, "Mul")?;
            let (a, b) = (m.input(mul, 0)?, m.input(mul, 1)?);
            (a == b).then_some(a)?
        };
        // The variance of the same centred x (an exporter may centre it twice).
        if d2 != d && centered(m, d2)? != (x, axis) {
            return None;
        }
        (trailing_axes(m, mean, m.g.value_type(x).rank())? == axis).then_some(())
    })?;
    let eps = m.scalar(eps)?;
    (eps >= 0.0).then_some(Normalized { x, axis, eps })
}

/// `x - ReduceMean(x, axes)`: returns x and the first of its trailing `axes`.
fn centered(m: &mut Matcher, d: Value) -> Option<(Value, usize)> {
    let sub = m.op(d, "Sub")?;
    let x = m.input(sub, 0)?;
    let mean = m.op(m.input(sub, 1)?, "ReduceMean")?;
    (m.input(mean, 0)? == x).then_some(())?;
    let axis = trailing_axes(m, mean, m.g.value_type(x).rank())?;
    Some((x, axis))
}

/// The first axis of a keepdims ReduceMean over the trailing axes `a..rank` (all axes when
/// none are given).
fn trailing_axes(m: &Matcher, mean: NodeId, rank: usize) -> Option<usize> {
    let n = m.g.node(mean);
    if n.attrs.int_or("keepdims", 1).ok()? != 1 || rank == 0 {
        return None;
    }
    let mut axes: Vec<usize> = match n.input(1) {
        Some(a) => m
            .ints(a)?
            .into_iter()
            .map(|a| axis_index(a, rank))
            .collect::<Option<_>>()?,
        None if n.attrs.int_or("noop_with_empty_axes", 0).ok()? == 0 => (0..rank).collect(),
        None => return None,
    };
    axes.sort_unstable();
    axes.dedup();
    let first = *axes.first()?;
    (axes == (first..rank).collect::<Vec<_>>()).then_some(first)
}

/// True if `p` can be layer_norm's scale or bias for x normalised from `axis`: x's dtype,
/// of size 1 over the leading axes, and all 1 or x's dims over the normalised ones.
fn is_param(g: &Graph, x: Value, axis: usize, p: Value) -> bool {
    let (xt, pt) = (g.value_type(x), g.value_type(p));
    if pt.dtype != xt.dtype || pt.rank() > xt.rank() {
        return false;
    }
    let pad = xt.rank() - pt.rank();
    let one = Dim::from(1i64);
    let at = |i: usize| if i < pad { &one } else { &pt.shape[i - pad] };
    let rank = xt.rank();
    (0..axis).all(|i| *at(i) == one)
        && ((axis..rank).all(|i| *at(i) == one) || (axis..rank).all(|i| *at(i) == xt.shape[i]))
}

fn rewrite(g: &Graph, root: NodeId, s: Spelled) -> Match {
    let origin = g.node(root).origin.clone();
    let rank = g.value_type(s.x).rank() as i64;
    let dtype = g.value_type(s.x).dtype;
    Match {
        form: "mean-var",
        nodes: s.nodes,
        rewrite: Box::new(move |g: &mut Graph| {
            let scale = match s.scale {
                Some(w) => w,
                None => constant(g, Tensor::from_f64(dtype, vec![1], &[1.0]))?,
            };
            let mut attrs = Attrs::new();
            attrs.insert("axis".into(), Attr::Int(s.axis as i64 - rank));
            attrs.insert("eps".into(), Attr::Float(s.eps as f32));
            let y = add(
                g,
                "layer_norm",
                attrs,
                vec![Some(s.x), Some(scale), s.bias],
                &origin,
            )?;
            Ok(vec![(out0(root), y)])
        }),
    }
}

/// ONNX `LayerNormalization` whose statistics outputs nothing reads.
fn existing_op(g: &Graph, root: NodeId) -> Option<Match> {
    let n = g.node(root);
    let stat_read = (1..n.outputs.len()).any(|o| {
        let v = Value {
            node: root,
            output: o,
        };
        !g.users(v).is_empty() || g.is_output(v)
    });
    if stat_read || n.attrs.int_or("stash_type", 1).ok()? != 1 {
        return None;
    }
    let (x, w, b) = (n.input(0)?, n.input(1)?, n.input(2));
    let axis = n.attrs.int_or("axis", -1).ok()?;
    let eps = n.attrs.float_or("epsilon", 1e-5).ok()?;
    let origin = n.origin.clone();
    Some(Match {
        form: "onnx-LayerNormalization",
        nodes: vec![root],
        rewrite: Box::new(move |g: &mut Graph| {
            let mut attrs = Attrs::new();
            attrs.insert("axis".into(), Attr::Int(axis));
            attrs.insert("eps".into(), Attr::Float(eps));
            let y = add(g, "layer_norm", attrs, vec![Some(x), Some(w), b], &origin)?;
            Ok(vec![(out0(root), y)])
        }),
    })
}
