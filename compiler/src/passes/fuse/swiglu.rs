//! `fuse-swiglu`: gated SiLU -> `swiglu(gate, up) {alpha, beta, limit?}`.
//!
//! Forms (after canonicalize):
//! - `sigmoid-mul`: the product of `g`, `Sigmoid(g)` (or `Sigmoid(alpha * g)`) and `up`, in
//!   any association and order of operands (`Mul(Mul(g, Sigmoid(g)), up)` as dynamo writes
//!   LLaMA's MLP, `g * (Sigmoid(g) * up)`, ...);
//! - `Swish-mul` / `QuickGelu-mul`: ONNX `Swish(g) {alpha}` or ORT's
//!   `com.microsoft.QuickGelu(g) {alpha}` (both `g * sigmoid(alpha * g)`) times `up`;
//! - `clamped` (GPT-OSS, DeepSeek-V4's shared experts): either of the above on
//!   `min(g, limit)` (`Clip(g, _, limit)` or `Min`) and `clamp(up, -limit, limit)` (`Clip`
//!   or `Min`/`Max`) with one limit, optionally `up + beta`.
//!
//! `up + beta` with a scalar beta becomes `beta`; a clamp of only one of gate and up, or of
//! both with different limits, stays a Clip before the swiglu. A sigmoid of another tensor
//! than the gate it multiplies is left alone, as is a product of more than three factors.
//! Experts' activations inside an MoE region are the MoE rule's, which runs first.

use kiln_ir::attr::AttrsExt;
use kiln_ir::{Attr, Attrs, Graph, NodeId, Value};

use super::pattern::{add, out0, sole_user, Matcher};
use super::{Match, Rule};

pub struct FuseSwiglu;

impl Rule for FuseSwiglu {
    fn name(&self) -> &'static str {
        "fuse-swiglu"
    }

    fn find(&self, g: &Graph, root: NodeId) -> Option<Match> {
        if g.node(root).op != "Mul" {
            return None;
        }
        let mut m = Matcher::new(g);
        m.take(root);
        let (a, b) = (m.input(root, 0)?, m.input(root, 1)?);
        // Two factors: Swish/QuickGelu(g) * up.
        for (act, up) in [(a, b), (b, a)] {
            let mark = m.mark();
            if let Some((form, gate, alpha)) = fused_silu(&mut m, act) {
                return Some(rewrite(&mut m, root, form, gate, alpha, up));
            }
            m.reset(mark);
        }
        // Three factors: one operand is the product of two of them.
        for (inner, third) in [(a, b), (b, a)] {
            let mark = m.mark();
            if inner.output == 0 && g.node(inner.node).op == "Mul" && sole_user(g, inner).is_some()
            {
                m.take(inner.node);
                let (x, y) = (m.input(inner.node, 0)?, m.input(inner.node, 1)?);
                if let Some((gate, alpha, up)) = three_factors(&mut m, [x, y, third]) {
                    return Some(rewrite(&mut m, root, "sigmoid-mul", gate, alpha, up));
                }
            }
            m.reset(mark);
        }
        None
    }
}

/// `Swish(g) {alpha}` or `com.microsoft.QuickGelu(g) {alpha}`: form, g, alpha.
fn fused_silu(m: &mut Matcher, v: Value) -> Option<(&'static str, Value, f64)> {
    let (form, id) = if let Some(id) = m.op(v, "Swish") {
        ("Swish-mul", id)
    } else {
        ("QuickGelu-mul", m.op(v, "com.microsoft.QuickGelu")?)
    };
    let default = if form == "Swish-mul" { 1.0 } else { 1.702 };
    let alpha = f64::from(m.g.node(id).attrs.float_or("alpha", default).ok()?);
    Some((form, m.input(id, 0)?, alpha))
}

/// Among three factors, `g`, `Sigmoid(alpha * g)` and up: returns g, alpha, up.
fn three_factors(m: &mut Matcher, f: [Value; 3]) -> Option<(Value, f64, Value)> {
    for s in 0..3 {
        for gi in 0..3 {
            if gi == s {
                continue;
            }
            let up = f[3 - s - gi];
            let mark = m.mark();
            if let Some(alpha) = sigmoid_of(m, f[s], f[gi]) {
                return Some((f[gi], alpha, up));
            }
            m.reset(mark);
        }
    }
    None
}

/// If `v` is `Sigmoid(g)` or `Sigmoid(alpha * g)` (either order): alpha.
fn sigmoid_of(m: &mut Matcher, v: Value, g: Value) -> Option<f64> {
    let sig = m.op(v, "Sigmoid")?;
    let s = m.input(sig, 0)?;
    if s == g {
        return Some(1.0);
    }
    let mul = m.op(s, "Mul")?;
    let (alpha, _) = m.either(mul, |m, a| {
        let alpha = m.scalar(a)?;
        (super::pattern::other_input(m.g, mul, a)? == g).then_some(alpha)
    })?;
    Some(alpha)
}

/// A clamp `Clip(v, lo?, hi)` or `Min(v, hi)` / `Max(Min(v, hi), lo)` / `Min(Max(v, lo), hi)`
/// with scalar bounds: (v, lo, hi, nodes).
fn clamp(g: &Graph, v: Value) -> Option<(Value, Option<f64>, f64, Vec<NodeId>)> {
    if v.output != 0 {
        return None;
    }
    let n = g.node(v.node);
    let scalar = |x: Option<Value>| {
        let t = g.const_of(x?)?;
        (t.len() == 1).then(|| t.to_f64()[0])
    };
    match n.op.as_str() {
        "Clip" => {
            let hi = scalar(n.input(2))?;
            let lo = match n.input(1) {
                Some(_) => Some(scalar(n.input(1))?),
                None => None,
            };
            Some((n.input(0)?, lo, hi, vec![v.node]))
        }
        "Min" | "Max" if n.inputs().len() == 2 => {
            let (a, b) = (n.input(0)?, n.input(1)?);
            let (x, c) = match (scalar(Some(a)), scalar(Some(b))) {
                (None, Some(c)) => (a, c),
                (Some(c), None) => (b, c),
                _ => return None,
            };
            if n.op == "Min" {
                // Min(Max(x, lo), hi) or Min(x, hi).
                if let Some((y, None, lo, mut nodes)) = clamp_max(g, x) {
                    nodes.push(v.node);
                    return Some((y, Some(lo), c, nodes));
                }
                return Some((x, None, c, vec![v.node]));
            }
            // Max(Min(x, hi), lo).
            let (y, None, hi, mut nodes) = clamp(g, x)? else {
                return None;
            };
            nodes.push(v.node);
            Some((y, Some(c), hi, nodes))
        }
        _ => None,
    }
}

/// `Max(x, lo)` with a scalar lo, as (x, None, lo, nodes), for `Min(Max(x, lo), hi)`.
fn clamp_max(g: &Graph, v: Value) -> Option<(Value, Option<f64>, f64, Vec<NodeId>)> {
    if v.output != 0 || g.node(v.node).op != "Max" || sole_user(g, v).is_none() {
        return None;
    }
    let n = g.node(v.node);
    let (a, b) = (n.input(0)?, n.input(1)?);
    let scalar = |x: Value| {
        let t = g.const_of(x)?;
        (t.len() == 1).then(|| t.to_f64()[0])
    };
    match (scalar(a), scalar(b)) {
        (None, Some(c)) => Some((a, None, c, vec![v.node])),
        (Some(c), None) => Some((b, None, c, vec![v.node])),
        _ => None,
    }
}

/// True if `lo` is no bound at all (absent or the most negative float).
fn unbounded_below(lo: Option<f64>) -> bool {
    lo.is_none_or(|l| l <= f64::from(f32::MIN))
}

fn rewrite(
    m: &mut Matcher,
    root: NodeId,
    form: &'static str,
    gate: Value,
    alpha: f64,
    up: Value,
) -> Match {
    let g = m.g;
    // up + beta.
    let (mut up, mut beta) = (up, 0.0);
    if up.output == 0 && g.node(up.node).op == "Add" && sole_user(g, up).is_some() {
        let n = g.node(up.node);
        let (a, b) = (n.input(0), n.input(1));
        if let (Some(a), Some(b)) = (a, b) {
            let s = |x: Value| m.scalar(x);
            let found = match (s(a), s(b)) {
                (None, Some(c)) => Some((a, c)),
                (Some(c), None) => Some((b, c)),
                _ => None,
            };
            if let Some((x, c)) = found {
                m.take(up.node);
                (up, beta) = (x, c);
            }
        }
    }
    // min(gate, limit) with clamp(up, -limit, limit).
    let mut gate = gate;
    let mut limit = None;
    let mut form = form;
    if let (Some((gx, glo, ghi, gnodes)), Some((ux, Some(ulo), uhi, unodes))) =
        (clamp(g, gate), clamp(g, up))
    {
        if unbounded_below(glo) && ghi > 0.0 && ghi == uhi && ulo == -uhi {
            // The clamped gate feeds the sigmoid and the product: the region's.
            for id in gnodes.into_iter().chain(unodes) {
                m.take(id);
            }
            (gate, up, limit) = (gx, ux, Some(ghi));
            form = "clamped";
        }
    }
    let origin = g.node(root).origin.clone();
    Match {
        form,
        nodes: m.nodes(),
        rewrite: Box::new(move |g: &mut Graph| {
            let mut attrs = Attrs::new();
            attrs.insert("alpha".into(), Attr::Float(alpha as f32));
            attrs.insert("beta".into(), Attr::Float(beta as f32));
            if let Some(l) = limit {
                attrs.insert("limit".into(), Attr::Float(l as f32));
            }
            let y = add(g, "swiglu", attrs, vec![Some(gate), Some(up)], &origin)?;
            Ok(vec![(out0(root), y)])
        }),
    }
}
