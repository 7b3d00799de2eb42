//! `fuse-rms-norm`: root-mean-square normalisation -> `rms_norm(x, scale) {axis, eps}`.
//!
//! Forms (after canonicalize; `ms` = `ReduceMean(sq, axes = [last], keepdims = 1)` with `sq`
//! = `Pow(x, 2)` or `Mul(x, x)`):
//! - `mul-reciprocal-sqrt`: `x * Reciprocal(Sqrt(ms + eps))` (torch dynamo, `torch.rsqrt`);
//! - `div-sqrt`: `x / Sqrt(ms + eps)`;
//! - `mul-div-sqrt`: `x * (1 / Sqrt(ms + eps))`;
//!   each times a scale (`w * n` or `n * w`) where one follows, else with a scale of ones;
//! - `onnx-RMSNormalization` (opset 23) and `SimplifiedLayerNormalization`:
//!   the op already, renamed (its `epsilon` becomes `eps`; its `axis` stays);
//! - `com.microsoft.SkipSimplifiedLayerNormalization`: `s = input + skip (+ bias)` (an `Add`
//!   or two, whose sum also replaces the op's output 3) normalised over the last axis
//!   (`epsilon` default 1e-12); left alone if its mean / inv-std-dev outputs are read or the
//!   skip does not broadcast to the input.
//!
//! The mean must run over the last axis only and the scale must broadcast to x's last axis
//! (a `[H]` or `[1, .., H]` tensor); anything else (a mean over another axis, a scale that
//! broadcasts over tokens) is left alone.

use kiln_ir::attr::AttrsExt;
use kiln_ir::{Attr, Attrs, Dim, Graph, NodeId, Tensor, Value};

use super::pattern::{add, constant, out, out0, Matcher};
use super::skip_layer_norm::skip_sum;
use super::{Match, Rule};

pub struct FuseRmsNorm;

impl Rule for FuseRmsNorm {
    fn name(&self) -> &'static str {
        "fuse-rms-norm"
    }

    fn find(&self, g: &Graph, root: NodeId) -> Option<Match> {
        let n = g.node(root);
        match n.op.as_str() {
            "RMSNormalization" | "SimplifiedLayerNormalization" => existing_op(g, root),
            "com.microsoft.SkipSimplifiedLayerNormalization" => skip_simplified(g, root),
            "Mul" => scaled(g, root).or_else(|| {
                // A normalisation without a scale, unless a scale Mul follows (then that
                // Mul is the root).
                if followed_by_scale(g, root) {
                    return None;
                }
                unscaled(g, root)
            }),
            "Div" => {
                if followed_by_scale(g, root) {
                    return None;
                }
                unscaled(g, root)
            }
            _ => None,
        }
    }
}

/// What the normalising part of a region matched.
struct Normalized {
    form: &'static str,
    x: Value,
    eps: f64,
}

/// `n * w` or `w * n` with `n` a normalisation of x and `w` a scale over x's last axis.
fn scaled(g: &Graph, root: NodeId) -> Option<Match> {
    let mut m = Matcher::new(g);
    m.take(root);
    let (norm, w) = m.either(root, |m, v| normalized(m, v))?;
    if !is_last_axis_scale(g, norm.x, w) {
        return None;
    }
    Some(rewrite(&m, root, norm, Some(w)))
}

fn unscaled(g: &Graph, root: NodeId) -> Option<Match> {
    let mut m = Matcher::new(g);
    let norm = normalized(&mut m, out0(root))?;
    Some(rewrite(&m, root, norm, None))
}

/// True if `id`'s only reader is a Mul that would take it as the normalised operand.
fn followed_by_scale(g: &Graph, id: NodeId) -> bool {
    let users = g.users(out0(id));
    if users.len() != 1 || g.is_output(out0(id)) {
        return false;
    }
    let user = users[0].0;
    user != id && g.node(user).op == "Mul" && scaled(g, user).is_some()
}

/// `x * inv(ms + eps)` in one of the forms.
fn normalized(m: &mut Matcher, v: Value) -> Option<Normalized> {
    if let Some(id) = m.op(v, "Div") {
        // x / Sqrt(ms + eps)
        let x = m.input(id, 0)?;
        let sqrt = m.op(m.input(id, 1)?, "Sqrt")?;
        let eps = mean_square_plus_eps(m, m.input(sqrt, 0)?, x)?;
        return Some(Normalized {
            form: "div-sqrt",
            x,
            eps,
        });
    }
    let id = m.op(v, "Mul")?;
    let ((form, eps), x) = m.either(id, |m, inv| {
        let x = other_input(m.g, id, inv)?;
        if let Some(r) = m.op(inv, "Reciprocal") {
            let sqrt = m.op(m.input(r, 0)?, "Sqrt")?;
            let eps = mean_square_plus_eps(m, m.input(sqrt, 0)?, x)?;
            return Some(("mul-reciprocal-sqrt", eps));
        }
        let d = m.op(inv, "Div")?;
        if m.scalar(m.input(d, 0)?)? != 1.0 {
            return None;
        }
        let sqrt = m.op(m.input(d, 1)?, "Sqrt")?;
        let eps = mean_square_plus_eps(m, m.input(sqrt, 0)?, x)?;
        Some(("mul-div-sqrt", eps))
    })?;
    Some(Normalized { form, x, eps })
}

/// The input of binary node `id` that is not `v`.
fn other_input(g: &Graph, id: NodeId, v: Value) -> Option<Value> {
    let n = g.node(id);
    let (a, b) = (n.input(0)?, n.input(1)?);
    Some(if a == v { b } else { a })
}

/// `ReduceMean(sq(x), [last], keepdims = 1) + eps`; returns eps.
fn mean_square_plus_eps(m: &mut Matcher, v: Value, x: Value) -> Option<f64> {
    let add = m.op(v, "Add")?;
    let (_, eps) = m.either(add, |m, mean| mean_square(m, mean, x))?;
    let eps = m.scalar(eps)?;
    (eps >= 0.0).then_some(eps)
}

/// `ReduceMean(Pow(x, 2) | Mul(x, x), [last], keepdims = 1)`.
fn mean_square(m: &mut Matcher, v: Value, x: Value) -> Option<()> {
    let mean = m.op(v, "ReduceMean")?;
    if !is_last_axis_mean(m, mean, x) {
        return None;
    }
    // The root mean square of a centred x is a layer norm: fuse-layer-norm's.
    let n = m.g.node(x.node);
    if x.output == 0 && n.op == "Sub" {
        let centre = n.input(1)?;
        let c = m.g.node(centre.node);
        if c.op == "ReduceMean" && c.input(0) == n.input(0) && is_last_axis_mean(m, centre.node, x)
        {
            return None;
        }
    }
    let sq = m.input(mean, 0)?;
    if let Some(p) = m.op(sq, "Pow") {
        return (m.input(p, 0)? == x && m.scalar(m.input(p, 1)?)? == 2.0).then_some(());
    }
    let mul = m.op(sq, "Mul")?;
    (m.input(mul, 0)? == x && m.input(mul, 1)? == x).then_some(())
}

/// True if `mean` is a keepdims ReduceMean over x's last axis only.
fn is_last_axis_mean(m: &Matcher, mean: NodeId, x: Value) -> bool {
    let n = m.g.node(mean);
    if n.attrs.int_or("keepdims", 1).ok() != Some(1) {
        return false;
    }
    let rank = m.g.value_type(x).rank() as i64;
    let Some(axes) = n.input(1).and_then(|a| m.ints(a)) else {
        return false;
    };
    axes.len() == 1 && (axes[0] == rank - 1 || axes[0] == -1)
}

/// True if `w` broadcasts along x's last axis only: shape `[..1, H]` with `H` x's last dim.
fn is_last_axis_scale(g: &Graph, x: Value, w: Value) -> bool {
    let (xt, wt) = (g.value_type(x), g.value_type(w));
    if wt.dtype != xt.dtype || wt.rank() == 0 || wt.rank() > xt.rank() {
        return false;
    }
    let (last, lead) = wt.shape.split_last().expect("rank >= 1");
    Some(last) == xt.shape.last() && lead.iter().all(|d| *d == Dim::from(1i64))
}

fn rewrite(m: &Matcher, root: NodeId, norm: Normalized, w: Option<Value>) -> Match {
    let g = m.g;
    let origin = g.node(root).origin.clone();
    let x = norm.x;
    let ty = g.value_type(x).clone();
    Match {
        form: norm.form,
        nodes: m.nodes(),
        rewrite: Box::new(move |g: &mut Graph| {
            let w = match w {
                Some(w) => w,
                None => {
                    let h = ty.shape.last().and_then(|d| d.as_const()).ok_or_else(|| {
                        crate::error::CompileError::Pass(
                            "rms_norm without a scale needs a known last dim".into(),
                        )
                    })?;
                    let ones = Tensor::from_f64(ty.dtype, vec![h as usize], &vec![1.0; h as usize]);
                    constant(g, ones)?
                }
            };
            let mut attrs = Attrs::new();
            attrs.insert("axis".into(), Attr::Int(-1));
            attrs.insert("eps".into(), Attr::Float(norm.eps as f32));
            let y = add(g, "rms_norm", attrs, vec![Some(x), Some(w)], &origin)?;
            Ok(vec![(out0(root), y)])
        }),
    }
}

/// ONNX `RMSNormalization` / `SimplifiedLayerNormalization`: the same op.
fn existing_op(g: &Graph, root: NodeId) -> Option<Match> {
    let n = g.node(root);
    // Extra outputs (the inverse std dev) have no rms_norm counterpart.
    if (1..n.outputs.len()).any(|o| {
        !g.users(Value {
            node: root,
            output: o,
        })
        .is_empty()
            || g.is_output(Value {
                node: root,
                output: o,
            })
    }) {
        return None;
    }
    if n.attrs.int_or("stash_type", 1).ok()? != 1 {
        return None;
    }
    let (x, w) = (n.input(0)?, n.input(1)?);
    let axis = n.attrs.int_or("axis", -1).ok()?;
    let eps = f64::from(n.attrs.float_or("epsilon", 1e-5).ok()?);
    let form = if n.op == "RMSNormalization" {
        "onnx-RMSNormalization"
    } else {
        "SimplifiedLayerNormalization"
    };
    let origin = n.origin.clone();
    Some(Match {
        form,
        nodes: vec![root],
        rewrite: Box::new(move |g: &mut Graph| {
            let mut attrs = Attrs::new();
            attrs.insert("axis".into(), Attr::Int(axis));
            attrs.insert("eps".into(), Attr::Float(eps as f32));
            let y = add(g, "rms_norm", attrs, vec![Some(x), Some(w)], &origin)?;
            Ok(vec![(out0(root), y)])
        }),
    })
}

/// `com.microsoft.SkipSimplifiedLayerNormalization(input, skip, gamma, bias?)`: the residual
/// sum, then rms_norm of it.
fn skip_simplified(g: &Graph, root: NodeId) -> Option<Match> {
    let n = g.node(root);
    let read = |o: usize| {
        let v = Value {
            node: root,
            output: o,
        };
        o < n.outputs.len() && (!g.users(v).is_empty() || g.is_output(v))
    };
    if read(1) || read(2) {
        return None;
    }
    let (x, skip, gamma) = (n.input(0)?, n.input(1)?, n.input(2)?);
    let bias = n.input(3);
    let xt = g.value_type(x);
    if !xt.dtype.is_float() || xt.rank() < 1 {
        return None;
    }
    // The skip (and bias) must broadcast to the input without changing its shape, as the
    // sum is the input's shape; gamma and bias run over the last axis.
    for v in [Some(skip), bias].into_iter().flatten() {
        let t = g.value_type(v);
        let b = kiln_ir::types::broadcast_shapes(&[&xt.shape, &t.shape]);
        if t.dtype != xt.dtype || b.as_ref() != Some(&xt.shape) {
            return None;
        }
    }
    if !is_last_axis_scale(g, x, gamma) || bias.is_some_and(|b| !is_last_axis_scale(g, x, b)) {
        return None;
    }
    let eps = f64::from(n.attrs.float_or("epsilon", 1e-12).ok()?);
    let origin = n.origin.clone();
    let sum_read = read(3);
    Some(Match {
        form: "com.microsoft.SkipSimplifiedLayerNormalization",
        nodes: vec![root],
        rewrite: Box::new(move |g: &mut Graph| {
            let s = skip_sum(g, x, skip, bias, &origin)?;
            let mut attrs = Attrs::new();
            attrs.insert("axis".into(), Attr::Int(-1));
            attrs.insert("eps".into(), Attr::Float(eps as f32));
            let y = add(g, "rms_norm", attrs, vec![Some(s), Some(gamma)], &origin)?;
            let mut pairs = vec![(out0(root), y)];
            if sum_read {
                pairs.push((out(root, 3), s));
            }
            Ok(pairs)
        }),
    })
}
