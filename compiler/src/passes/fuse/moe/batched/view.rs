//! Small graph views the MoE forms share: row-major reshape chains, constant fills, axes,
//! and a TopK's parameters.

use kiln_ir::attr::AttrsExt;
use kiln_ir::{Dim, Graph, NodeId, Value};

use crate::passes::fuse::pattern::Matcher;

/// Ops that only reinterpret a shape: the elements keep their row-major order.
const RESHAPES: &[&str] = &["Reshape", "Unsqueeze", "Squeeze", "Flatten"];

/// The values `v` is a row-major reshape of, `v` first, following reshape-like ops.
pub fn chain(g: &Graph, mut v: Value) -> Vec<Value> {
    let mut out = vec![v];
    while v.output == 0 && RESHAPES.contains(&g.node(v.node).op.as_str()) {
        match g.node(v.node).input(0) {
            Some(src) => {
                v = src;
                out.push(v);
            }
            None => break,
        }
    }
    out
}

/// The first value in `v`'s reshape chain whose shape is `shape`; the reshapes walked
/// through join the region.
pub fn reshaped_from(m: &mut Matcher, v: Value, shape: &[Dim]) -> Option<Value> {
    let c = chain(m.g, v);
    let i = c.iter().position(|&u| m.g.value_type(u).shape == shape)?;
    for u in &c[..i] {
        m.take(u.node);
    }
    Some(c[i])
}

/// The last value in `v`'s reshape chain whose shape is `shape` (for shapes with ones in
/// them, where nearer views may share the shape); the reshapes walked through join the
/// region.
pub fn deepest_reshaped_from(m: &mut Matcher, v: Value, shape: &[Dim]) -> Option<Value> {
    let c = chain(m.g, v);
    let i = c.iter().rposition(|&u| m.g.value_type(u).shape == shape)?;
    for u in &c[..i] {
        m.take(u.node);
    }
    Some(c[i])
}

/// The last value of `v`'s reshape chain: what `v` is a view of.
pub fn view_root(g: &Graph, v: Value) -> Value {
    *chain(g, v).last().expect("a chain holds v")
}

/// The node producing `v` as its output `output`, if its op is `op`; it joins the region.
pub fn op_out(m: &mut Matcher, v: Value, op: &str, output: usize) -> Option<NodeId> {
    if v.output != output || m.g.node(v.node).op != op {
        return None;
    }
    m.take(v.node);
    Some(v.node)
}

/// True if `axis` (possibly negative) names the last axis of a rank-`rank` tensor.
pub fn is_last(axis: i64, rank: usize) -> bool {
    axis == -1 || axis == rank as i64 - 1
}

/// The single axis of a reduction node (axes as input 1), normalised to be non-negative.
pub fn single_axis(m: &Matcher, id: NodeId) -> Option<usize> {
    let rank = m.g.value_type(m.input(id, 0)?).rank() as i64;
    let axes = m.ints(m.input(id, 1)?)?;
    let [a] = axes[..] else { return None };
    let a = if a < 0 { a + rank } else { a };
    (0..rank).contains(&a).then_some(a as usize)
}

/// `ReduceSum(v, [axis], keepdims)`: the summed value, if the node reduces over `axis`
/// (given non-negative) with that `keepdims`.
pub fn reduce_sum(m: &mut Matcher, v: Value, axis: usize, keepdims: bool) -> Option<Value> {
    let id = m.op(v, "ReduceSum")?;
    let n = m.g.node(id);
    if (n.attrs.int_or("keepdims", 1).ok()? != 0) != keepdims || single_axis(m, id)? != axis {
        return None;
    }
    m.input(id, 0)
}

/// The value every element of `v` holds, if `v` is a constant fill: a constant with all
/// elements equal, `ConstantOfShape`, or an `Expand` of either.
pub fn fill(g: &Graph, v: Value) -> Option<f64> {
    let n = g.node(v.node);
    match n.op.as_str() {
        "constant" => {
            let t = g.const_of(v)?;
            let vals = t.to_f64();
            let first = *vals.first()?;
            vals.iter().all(|&x| x == first).then_some(first)
        }
        "ConstantOfShape" => match n.attrs.get("value") {
            Some(kiln_ir::Attr::Tensor(t)) => t.to_f64().first().copied(),
            None => Some(0.0),
            _ => None,
        },
        "Expand" => fill(g, n.input(0)?),
        _ => None,
    }
}

/// A TopK over the last axis, largest first: its input and k.
pub struct TopK {
    pub id: NodeId,
    pub input: Value,
    pub k: usize,
}

/// The TopK producing `v` as its output `output` (0 values, 1 indices).
pub fn top_k(m: &mut Matcher, v: Value, output: usize) -> Option<TopK> {
    let id = op_out(m, v, "TopK", output)?;
    let n = m.g.node(id);
    let input = n.input(0)?;
    let rank = m.g.value_type(input).rank();
    if n.attrs.int_or("largest", 1).ok()? != 1 || !is_last(n.attrs.int_or("axis", -1).ok()?, rank) {
        return None;
    }
    let k = m.ints(n.input(1)?)?;
    let [k] = k[..] else { return None };
    Some(TopK {
        id,
        input,
        k: usize::try_from(k).ok()?,
    })
}

/// Runs `f`; when it fails, the nodes it took leave the region again.
pub fn attempt<'g, T>(
    m: &mut Matcher<'g>,
    f: impl FnOnce(&mut Matcher<'g>) -> Option<T>,
) -> Option<T> {
    let mark = m.mark();
    let r = f(m);
    if r.is_none() {
        m.reset(mark);
    }
    r
}

/// The constant `c` of `Mul(v, c)` / `Mul(c, v)` for a one-element constant `c`, and `v`.
pub fn times_scalar(m: &mut Matcher, v: Value) -> Option<(Value, f64)> {
    attempt(m, |m| {
        let id = m.op(v, "Mul")?;
        let (c, other) = m.either(id, |m, c| m.scalar(c))?;
        Some((other, c))
    })
}
