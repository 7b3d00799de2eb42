//! `com.microsoft.SkipLayerNormalization(input, skip, gamma, beta?, bias?)` -> the residual
//! sum `input + skip (+ bias)` as Adds (which also replace the op's output 3 where it is
//! read) and `layer_norm(sum, gamma, beta) {axis = -1, eps}` (`epsilon`, default 1e-12), form
//! `com.microsoft.SkipLayerNormalization`.
//!
//! Left alone when the mean or inverse std dev outputs are read, when the skip only tiles the
//! input (ONNX Runtime accepts a `[2, H]` skip for `[4, H]` rows; no broadcasting Add does
//! that), or when gamma, beta or bias do not run over the last axis alone.
//!
//! Belongs to `fuse-layer-norm`: its `find` gains a
//! `"com.microsoft.SkipLayerNormalization" => skip_layer_norm::find(g, root)` arm.

use kiln_ir::attr::AttrsExt;
use kiln_ir::types::broadcast_shapes;
use kiln_ir::{Attr, Attrs, Dim, Graph, NodeId, Value};

use super::pattern::{add, out, out0};
use super::Match;
use crate::error::CompileError;

/// The residual sum of the Skip*Normalization ops: `x + skip`, plus `bias` when given.
pub fn skip_sum(
    g: &mut Graph,
    x: Value,
    skip: Value,
    bias: Option<Value>,
    origin: &str,
) -> Result<Value, CompileError> {
    let s = add(g, "Add", Attrs::new(), vec![Some(x), Some(skip)], origin)?;
    match bias {
        Some(b) => add(g, "Add", Attrs::new(), vec![Some(s), Some(b)], origin),
        None => Ok(s),
    }
}

/// The region rooted at `root`, if it is a SkipLayerNormalization this rewrite handles.
pub fn find(g: &Graph, root: NodeId) -> Option<Match> {
    let n = g.node(root);
    if n.op != "com.microsoft.SkipLayerNormalization" {
        return None;
    }
    let read = |o: usize| {
        let v = out(root, o);
        o < n.outputs.len() && (!g.users(v).is_empty() || g.is_output(v))
    };
    if read(1) || read(2) {
        return None;
    }
    let (x, skip, gamma) = (n.input(0)?, n.input(1)?, n.input(2)?);
    let (beta, bias) = (n.input(3), n.input(4));
    let xt = g.value_type(x);
    if !xt.dtype.is_float() || xt.rank() < 1 {
        return None;
    }
    let skip_t = g.value_type(skip);
    if skip_t.dtype != xt.dtype
        || broadcast_shapes(&[&xt.shape, &skip_t.shape]).as_ref() != Some(&xt.shape)
    {
        return None;
    }
    // gamma, beta, bias: vectors over the last axis.
    let last = xt.shape.last()?;
    let over_last = |v: Value| {
        let t = g.value_type(v);
        t.dtype == xt.dtype
            && t.rank() >= 1
            && t.rank() <= xt.rank()
            && t.shape.last() == Some(last)
            && t.shape[..t.rank() - 1]
                .iter()
                .all(|d| *d == Dim::from(1i64))
    };
    if ![Some(gamma), beta, bias]
        .into_iter()
        .flatten()
        .all(over_last)
    {
        return None;
    }
    let eps = n.attrs.float_or("epsilon", 1e-12).ok()?;
    let origin = n.origin.clone();
    let sum_read = read(3);
    Some(Match {
        form: "com.microsoft.SkipLayerNormalization",
        nodes: vec![root],
        rewrite: Box::new(move |g: &mut Graph| {
            let s = skip_sum(g, x, skip, bias, &origin)?;
            let mut attrs = Attrs::new();
            attrs.insert("axis".into(), Attr::Int(-1));
            attrs.insert("eps".into(), Attr::Float(eps));
            let mut inputs = vec![Some(s), Some(gamma)];
            if beta.is_some() {
                inputs.push(beta);
            }
            let y = add(g, "layer_norm", attrs, inputs, &origin)?;
            let mut pairs = vec![(out0(root), y)];
            if sum_read {
                pairs.push((out(root, 3), s));
            }
            Ok(pairs)
        }),
    })
}
