//! `simplify`: cheap algebraic cleanups of exporter noise.
//!
//! - `Identity(x)` -> `x`; `Dropout(x)` in inference (no `training_mode`, or a constant
//!   false one, and the mask unused) -> `x`.
//! - `Cast(x) {to = T}` where `x` is already `T` -> `x`; likewise `CastLike(x, y)` with `y` of
//!   `x`'s dtype.
//! - `Expand`, `Squeeze`, `Flatten`, `Tile` whose result has `x`'s type -> `x`.
//! - `Mul(x, 1)`, `Mul(1, x)`, `Div(x, 1)`, `And(x, true)`, `And(true, x)` -> `x` when the
//!   result has `x`'s type (a constant of ones that broadcasts `x` bigger stays).
//! - `Reshape(x, s)` whose result has `x`'s type -> `x`;
//!   `Reshape(Reshape(x, s1), s2)` -> `Reshape(x, s2)` when `s2` is known and copies no dim
//!   from its input (no `0` entry, or `allowzero = 1`).
//! - `Transpose(x)` with the identity permutation -> `x`;
//!   `Transpose(Transpose(x, p1), p2)` -> `Transpose(x, p1[p2])` (or `x` if that is the
//!   identity).

use kiln_ir::attr::AttrsExt;
use kiln_ir::{Attr, Dim, Graph, NodeId, Value};

use super::{Pass, PassContext};
use crate::error::CompileError;

pub struct Simplify;

fn out0(id: NodeId) -> Value {
    Value {
        node: id,
        output: 0,
    }
}

/// The known content of an integer value produced by a `constant` or `dims` node.
fn known_ints(g: &Graph, v: Value) -> Option<Vec<Dim>> {
    if let Some(t) = g.const_of(v) {
        return t
            .dtype()
            .is_int()
            .then(|| t.to_i64().into_iter().map(Dim::from).collect());
    }
    let n = g.node(v.node);
    if n.op == "dims" {
        return n.attrs.dims("value").ok().flatten();
    }
    None
}

/// A Transpose's permutation (default: reversed axes), if valid for its input's rank.
fn perm(g: &Graph, id: NodeId) -> Option<Vec<usize>> {
    let n = g.node(id);
    let rank = g.value_type(n.input(0)?).rank();
    let p: Vec<usize> = match n.attrs.ints("perm").ok()? {
        Some(p) => p
            .iter()
            .map(|&a| usize::try_from(a).ok())
            .collect::<Option<_>>()?,
        None => (0..rank).rev().collect(),
    };
    let mut sorted = p.clone();
    sorted.sort_unstable();
    (sorted == (0..rank).collect::<Vec<_>>()).then_some(p)
}

fn is_identity(p: &[usize]) -> bool {
    p.iter().enumerate().all(|(i, &a)| i == a)
}

/// What a node simplifies to.
enum Rewrite {
    /// Output 0 is this value.
    Forward(Value, &'static str),
    /// Read input `slot` from another value (and maybe change attributes).
    Rewire {
        slot: usize,
        from: Value,
        attr: Option<(&'static str, Attr)>,
        rule: &'static str,
    },
}

fn rewrite(g: &Graph, id: NodeId) -> Option<Rewrite> {
    let n = g.node(id);
    let x = n.input(0)?;
    let xt = g.value_type(x);
    let same_type = n.outputs.first() == Some(xt);
    match n.op.as_str() {
        "Identity" => same_type.then_some(Rewrite::Forward(x, "identity")),
        "Dropout" => {
            let training = match n.input(2) {
                None => false,
                Some(t) => g.const_of(t)?.to_bool().iter().any(|&b| b),
            };
            let mask_used = n.outputs.len() > 1 && {
                let m = Value {
                    node: id,
                    output: 1,
                };
                g.is_output(m) || !g.users(m).is_empty()
            };
            (!training && !mask_used && same_type).then_some(Rewrite::Forward(x, "dropout"))
        }
        "Cast" => (n.attrs.dtype("to").ok()? == Some(xt.dtype) && same_type)
            .then_some(Rewrite::Forward(x, "cast")),
        "CastLike" => (g.value_type(n.input(1)?).dtype == xt.dtype && same_type)
            .then_some(Rewrite::Forward(x, "cast")),
        // Shape-only ops whose result has the input's type leave every element in place.
        "Expand" | "Squeeze" | "Flatten" | "Tile" => {
            same_type.then_some(Rewrite::Forward(x, "shape-noop"))
        }
        // `x * 1` and `x / 1` are `x` exactly (NaN, -0.0 and all); so is `x and true`.
        "Mul" | "Div" | "And" => {
            let (v, c) = match (g.const_of(x), n.input(1)) {
                (Some(c), Some(y)) if n.op != "Div" => (y, c),
                _ => (x, g.const_of(n.input(1)?)?),
            };
            let all_one = !c.is_empty() && c.to_f64().iter().all(|&e| e == 1.0);
            (all_one && n.outputs.first() == Some(g.value_type(v)))
                .then_some(Rewrite::Forward(v, "identity-element"))
        }
        "Reshape" => {
            if same_type {
                return Some(Rewrite::Forward(x, "reshape-noop"));
            }
            let inner = g.node(x.node);
            if inner.op != "Reshape" {
                return None;
            }
            let allowzero = n.attrs.int_or("allowzero", 0).ok()? != 0;
            let s2 = known_ints(g, n.input(1)?)?;
            if !allowzero && s2.iter().any(|d| d.as_const() == Some(0)) {
                return None;
            }
            Some(Rewrite::Rewire {
                slot: 0,
                from: inner.input(0)?,
                attr: None,
                rule: "reshape-reshape",
            })
        }
        "Transpose" => {
            let p2 = perm(g, id)?;
            if is_identity(&p2) && same_type {
                return Some(Rewrite::Forward(x, "transpose-identity"));
            }
            if g.node(x.node).op != "Transpose" {
                return None;
            }
            let p1 = perm(g, x.node)?;
            if p1.len() != p2.len() {
                return None;
            }
            let q: Vec<usize> = p2.iter().map(|&i| p1[i]).collect();
            let src = g.node(x.node).input(0)?;
            if is_identity(&q) && n.outputs.first() == Some(g.value_type(src)) {
                return Some(Rewrite::Forward(src, "transpose-transpose"));
            }
            Some(Rewrite::Rewire {
                slot: 0,
                from: src,
                attr: Some(("perm", Attr::Ints(q.iter().map(|&a| a as i64).collect()))),
                rule: "transpose-transpose",
            })
        }
        _ => None,
    }
}

impl Pass for Simplify {
    fn name(&self) -> &'static str {
        "simplify"
    }

    fn run(&self, g: &mut Graph, ctx: &mut PassContext) -> Result<bool, CompileError> {
        let Some(order) = g.topo_order() else {
            return Ok(false);
        };
        let mut changed = false;
        for id in order {
            if !g.contains(id) {
                continue;
            }
            match rewrite(g, id) {
                None => {}
                Some(Rewrite::Forward(v, rule)) => {
                    g.replace_all_uses(out0(id), v);
                    if g.node(id).outputs.len() == 1 {
                        g.remove_node(id);
                    }
                    ctx.record("simplify", rule, true);
                    changed = true;
                }
                Some(Rewrite::Rewire {
                    slot,
                    from,
                    attr,
                    rule,
                }) => {
                    g.set_input(id, slot, Some(from));
                    if let Some((k, a)) = attr {
                        g.node_mut(id).attrs.insert(k.to_string(), a);
                    }
                    ctx.record("simplify", rule, true);
                    changed = true;
                }
            }
        }
        if changed {
            kiln_ir::infer::infer_graph(g)?;
        }
        Ok(changed)
    }
}
