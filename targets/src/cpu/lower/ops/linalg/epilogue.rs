//! What a MatMul's GEMM step can compute after the product, absorbing the nodes that follow
//! it: a bias Add of a constant vector, an activation (Gelu, Relu), a residual Add, or the
//! head split `Reshape [.., S, H, D] -> Transpose` that attention inputs go through (the
//! GEMM then writes `[.., H, S, D]` directly). Decided once per graph before lowering
//! ([`absorbed`]), and again by the MatMul lowering ([`plan`]), the same way. MatMuls with
//! such a plan that read the same A may then share one step (`siblings.rs`).

use std::collections::HashSet;

use kiln_ir::attr::AttrsExt;
use kiln_ir::dtype::DType;
use kiln_ir::graph::{Graph, NodeId, Value};
use kiln_runtime::cpu::gemm::{Activation, NR};

/// The nodes a MatMul's GEMM absorbs, and what it computes for them.
#[derive(Clone, Debug, PartialEq)]
pub struct GemmFusion {
    /// The bias Add and the input index of its constant vector.
    pub bias: Option<(NodeId, usize)>,
    pub act: Activation,
    /// The residual Add and the input index of the residual.
    pub residual: Option<(NodeId, usize)>,
    /// Head size `D` of a head split: C is written as `[.., H, S, D]`.
    pub heads: Option<i64>,
    /// Every absorbed node, in order; the GEMM writes the last one's output.
    pub nodes: Vec<NodeId>,
}

fn out0(id: NodeId) -> Value {
    Value {
        node: id,
        output: 0,
    }
}

/// The one user of `id`'s single output (and which input it is), when that output is not
/// a graph output: only then can the user be computed in `id`'s place.
fn sole_user(g: &Graph, id: NodeId) -> Option<(NodeId, usize)> {
    let v = out0(id);
    if g.node(id).outputs.len() != 1 || g.is_output(v) {
        return None;
    }
    match g.users(v)[..] {
        [(u, i)] => Some((u, i)),
        _ => None,
    }
}

/// Whether `node` is an ancestor of `of` (so lowered before it in any order).
fn is_ancestor(g: &Graph, node: NodeId, of: NodeId) -> bool {
    let mut seen = HashSet::new();
    let mut todo = vec![of];
    while let Some(n) = todo.pop() {
        for v in g.node(n).inputs().iter().flatten() {
            if v.node == node {
                return true;
            }
            if seen.insert(v.node) {
                todo.push(v.node);
            }
        }
    }
    false
}

/// The activation node `id` computes, if the GEMM's epilogue has it.
fn activation(g: &Graph, id: NodeId) -> Option<Activation> {
    let node = g.node(id);
    match node.op.as_str() {
        "Relu" => Some(Activation::Relu),
        "com.microsoft.Gelu" => Some(Activation::Gelu),
        "Gelu" => match node.attrs.str_or("approximate", "none").ok()? {
            "none" => Some(Activation::Gelu),
            "tanh" => Some(Activation::GeluTanh),
            _ => None,
        },
        _ => None,
    }
}

/// The fusion MatMul `id` gets, if any: f32, B a 2-D constant (its panels prepacked), and
/// at least one node after it to absorb.
pub fn plan(g: &Graph, id: NodeId) -> Option<GemmFusion> {
    let node = g.node(id);
    if node.op != "MatMul" {
        return None;
    }
    let (a, b) = (node.input(0)?, node.input(1)?);
    let ty = g.value_type(out0(id));
    let (ta, tb) = (g.value_type(a), g.value_type(b));
    if ty.dtype != DType::F32 || ta.dtype != DType::F32 || tb.dtype != DType::F32 {
        return None;
    }
    if tb.shape.len() != 2 || ta.shape.len() < 2 || g.const_of(b).is_none() {
        return None;
    }
    let n = tb.shape[1].as_const()?;
    let mut f = GemmFusion {
        bias: None,
        act: Activation::None,
        residual: None,
        heads: None,
        nodes: Vec::new(),
    };
    let mut cur = id;
    // Each absorbed node keeps the MatMul's output type (no broadcast that grows it).
    let same_type = |u: NodeId| g.value_type(out0(u)) == ty;
    if let Some((u, i)) = sole_user(g, cur) {
        let other = g.node(u).input(1 - i.min(1));
        let bias = other.filter(|_| g.node(u).op == "Add" && i < 2 && same_type(u));
        if let Some(c) = bias.and_then(|v| g.const_of(v)) {
            let dims: Vec<usize> = c.shape().iter().copied().skip_while(|&d| d == 1).collect();
            let full = c.shape().len() <= ty.shape.len();
            if full && c.dtype() == DType::F32 && dims == [n as usize] {
                f.bias = Some((u, 1 - i));
                f.nodes.push(u);
                cur = u;
            }
        }
    }
    if let Some((u, 0)) = sole_user(g, cur) {
        if let Some(act) = activation(g, u).filter(|_| same_type(u)) {
            f.act = act;
            f.nodes.push(u);
            cur = u;
        }
    }
    if let Some((u, i)) = sole_user(g, cur) {
        let other = g.node(u).input(1 - i.min(1));
        let residual = other.filter(|v| {
            g.node(u).op == "Add"
                && i < 2
                && same_type(u)
                && g.value_type(*v) == ty
                && g.const_of(*v).is_none()
                && (g.node(v.node).op == "input" || is_ancestor(g, v.node, id))
        });
        if residual.is_some() {
            f.residual = Some((u, 1 - i));
            f.nodes.push(u);
            cur = u;
        }
    }
    if f.residual.is_none() {
        if let Some((heads, d)) = head_split(g, cur, n) {
            f.heads = Some(d);
            f.nodes.extend(heads);
        }
    }
    (!f.nodes.is_empty()).then_some(f)
}

/// `Reshape [.., S, N] -> [.., S, H, D]` then `Transpose` swapping `S` and `H`, after node
/// `cur` (rank 2 or 3 output), with `D` a multiple of the GEMM's panel width: the two
/// nodes and `D`.
fn head_split(g: &Graph, cur: NodeId, n: i64) -> Option<([NodeId; 2], i64)> {
    let shape = &g.value_type(out0(cur)).shape;
    let r = shape.len();
    if !(r == 2 || r == 3) {
        return None;
    }
    let (re, 0) = sole_user(g, cur)? else {
        return None;
    };
    let (tr, 0) = sole_user(g, re)? else {
        return None;
    };
    if g.node(re).op != "Reshape" || g.node(tr).op != "Transpose" {
        return None;
    }
    let rs = &g.value_type(out0(re)).shape;
    if rs.len() != r + 1 || rs[..r - 1] != shape[..r - 1] {
        return None;
    }
    let (h, d) = (rs[r - 1].as_const()?, rs[r].as_const()?);
    if h * d != n || d <= 0 || d % NR as i64 != 0 {
        return None;
    }
    let perm = g.node(tr).attrs.ints("perm").ok()??;
    let want: Vec<i64> = if r == 3 {
        vec![0, 2, 1, 3]
    } else {
        vec![1, 0, 2]
    };
    (perm == want).then_some(([re, tr], d))
}

/// Every node some MatMul's GEMM computes (see [`plan`]): lowering skips them.
pub fn absorbed(g: &Graph) -> HashSet<NodeId> {
    g.node_ids()
        .into_iter()
        .filter_map(|id| plan(g, id))
        .flat_map(|f| f.nodes)
        .collect()
}
