//! The expert activation: how the hidden units `h` are computed from the gate (and up)
//! projections.
//!
//! Gated (an up projection): `silu(g) * u` in its spellings (`g * Sigmoid(g)`), GPT-OSS's
//! clamped swiglu (`min(g, L) * Sigmoid(alpha * min(g, L)) * (clamp(u, -L, L) + beta)`),
//! `gelu(g) * u`. Ungated: `silu(g)`, `gelu(g)`, `Relu(g)`. GELU is `Gelu` (exact) or its erf
//! spelling `g * 0.5 * (1 + Erf(g / sqrt 2))`.

use kiln_ir::attr::AttrsExt;
use kiln_ir::{Attr, Attrs, Value};

use super::view::attempt;
use crate::passes::fuse::pattern::Matcher;

/// An activation the `moe` op has.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    /// `min(g, limit) * sigmoid(alpha * min(g, limit)) * (clamp(u, -limit, limit) + beta)`.
    Swiglu {
        alpha: f64,
        beta: f64,
        limit: Option<f64>,
    },
    /// `act(g) * u` with an up projection, `act(g)` without.
    Silu,
    Gelu,
    Relu,
}

impl Act {
    /// The op's attributes for this activation.
    pub fn attrs(&self, a: &mut Attrs) {
        let name = match self {
            Act::Swiglu { alpha, beta, limit } => {
                if *alpha != 1.0 {
                    a.insert("activation_alpha".into(), Attr::Float(*alpha as f32));
                }
                if *beta != 0.0 {
                    a.insert("activation_beta".into(), Attr::Float(*beta as f32));
                }
                if let Some(l) = limit {
                    a.insert("swiglu_limit".into(), Attr::Float(*l as f32));
                }
                "swiglu"
            }
            Act::Silu => "silu",
            Act::Gelu => "gelu",
            Act::Relu => "relu",
        };
        a.insert("activation_type".into(), Attr::Str(name.into()));
    }
}

/// `h`'s activation, gate and up (if gated).
pub fn activation(m: &mut Matcher, h: Value) -> Option<(Act, Value, Option<Value>)> {
    if let Some(r) = attempt(m, |m| gated(m, h)) {
        return Some(r);
    }
    if let Some((g, alpha, limit)) = attempt(m, |m| silu_like(m, h)) {
        return (alpha == 1.0 && limit.is_none()).then_some((Act::Silu, g, None));
    }
    if let Some(g) = attempt(m, |m| gelu(m, h)) {
        return Some((Act::Gelu, g, None));
    }
    let r = m.op(h, "Relu")?;
    Some((Act::Relu, m.input(r, 0)?, None))
}

/// `glu(g) * up(u)` in either order.
fn gated(m: &mut Matcher, h: Value) -> Option<(Act, Value, Option<Value>)> {
    let mul = m.op(h, "Mul")?;
    let ((act, g, u), _) = m.either(mul, |m, a| {
        let b = other(m, mul, a)?;
        if let Some((g, alpha, limit)) = attempt(m, |m| silu_like(m, a)) {
            let (u, beta, up_limit) = up_term(m, b)?;
            if limit != up_limit {
                return None;
            }
            let act = Act::Swiglu { alpha, beta, limit };
            return Some((act, g, u));
        }
        Some((Act::Gelu, gelu(m, a)?, b))
    })?;
    Some((act, g, Some(u)))
}

/// The operand of binary node `id` that is not `v` (the first if both are).
fn other(m: &Matcher, id: kiln_ir::NodeId, v: Value) -> Option<Value> {
    let (a, b) = (m.input(id, 0)?, m.input(id, 1)?);
    Some(if a == v { b } else { a })
}

/// `g' * Sigmoid(alpha * g')` (`g' * Sigmoid(g')` for alpha 1), operands in either order,
/// with `g' = min(g, L)` (Clip with only a max) or `g`: returns `(g, alpha, L)`.
fn silu_like(m: &mut Matcher, v: Value) -> Option<(Value, f64, Option<f64>)> {
    let mul = m.op(v, "Mul")?;
    let ((alpha, gc), _) = m.either(mul, |m, s| {
        let gc = other(m, mul, s)?;
        let sig = m.op(s, "Sigmoid")?;
        let z = m.input(sig, 0)?;
        if z == gc {
            return Some((1.0, gc));
        }
        let (y, alpha) = super::view::times_scalar(m, z)?;
        (y == gc).then_some((alpha, gc))
    })?;
    // The clamp of the gate: min(g, L).
    if let Some(c) = attempt(m, |m| m.op(gc, "Clip")) {
        let n = m.g.node(c);
        let limit = m.scalar(n.input(2)?)?;
        if n.input(1)
            .is_some_and(|lo| m.scalar(lo) != Some(f64::NEG_INFINITY))
            || limit <= 0.0
        {
            return None;
        }
        return Some((n.input(0)?, alpha, Some(limit)));
    }
    Some((gc, alpha, None))
}

/// `u' + beta` or `u'` with `u' = clamp(u, -L, L)` or `u`: returns `(u, beta, L)`.
fn up_term(m: &mut Matcher, v: Value) -> Option<(Value, f64, Option<f64>)> {
    let (uc, beta) = match attempt(m, |m| {
        let add = m.op(v, "Add")?;
        let (beta, uc) = m.either(add, |m, c| m.scalar(c))?;
        Some((uc, beta))
    }) {
        Some(r) => r,
        None => (v, 0.0),
    };
    if let Some(c) = attempt(m, |m| m.op(uc, "Clip")) {
        let n = m.g.node(c);
        let (lo, hi) = (m.scalar(n.input(1)?)?, m.scalar(n.input(2)?)?);
        if lo != -hi || hi <= 0.0 {
            return None;
        }
        return Some((n.input(0)?, beta, Some(hi)));
    }
    Some((uc, beta, None))
}

/// Exact GELU of some `g`: `Gelu(g)` or `g * 0.5 * (1 + Erf(g / sqrt 2))` with the three
/// factors in any order and grouping.
fn gelu(m: &mut Matcher, v: Value) -> Option<Value> {
    if let Some(id) = attempt(m, |m| m.op(v, "Gelu")) {
        let n = m.g.node(id);
        return (n.attrs.str_or("approximate", "none").ok()? == "none")
            .then_some(n.input(0))
            .flatten();
    }
    let mut factors = Vec::new();
    mul_leaves(m, v, 2, &mut factors)?;
    if factors.len() != 3 {
        return None;
    }
    let half = factors.iter().position(|&f| m.scalar(f) == Some(0.5))?;
    factors.remove(half);
    for (i, j) in [(0, 1), (1, 0)] {
        let (g, e) = (factors[i], factors[j]);
        if attempt(m, |m| erf_term(m, e, g)).is_some() {
            return Some(g);
        }
    }
    None
}

/// The operands of a tree of Muls rooted at `v`, at most `depth` Muls deep.
fn mul_leaves(m: &mut Matcher, v: Value, depth: usize, out: &mut Vec<Value>) -> Option<()> {
    if depth == 0 || m.g.node(v.node).op != "Mul" || v.output != 0 {
        out.push(v);
        return Some(());
    }
    m.take(v.node);
    let (a, b) = (m.input(v.node, 0)?, m.input(v.node, 1)?);
    mul_leaves(m, a, depth - 1, out)?;
    mul_leaves(m, b, depth - 1, out)
}

/// `1 + Erf(g / sqrt 2)` (or `g * (1 / sqrt 2)`), the sum in either order.
fn erf_term(m: &mut Matcher, v: Value, g: Value) -> Option<()> {
    let add = m.op(v, "Add")?;
    let (one, e) = m.either(add, |m, c| m.scalar(c))?;
    if one != 1.0 {
        return None;
    }
    let erf = m.op(e, "Erf")?;
    let z = m.input(erf, 0)?;
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * b;
    if let Some(d) = attempt(m, |m| m.op(z, "Div")) {
        let c = m.scalar(m.input(d, 1)?)?;
        return (m.input(d, 0)? == g && close(c, std::f64::consts::SQRT_2)).then_some(());
    }
    let (y, c) = super::view::times_scalar(m, z)?;
    (y == g && close(c, std::f64::consts::FRAC_1_SQRT_2)).then_some(())
}
