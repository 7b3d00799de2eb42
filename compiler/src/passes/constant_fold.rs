//! `constant-fold`: evaluates nodes whose inputs are all constants with their op's reference
//! semantics and replaces them by constants: inline up to [`MAX_INLINE_ELEMENTS`] elements,
//! else a new weight named after the node.

use std::collections::HashMap;
use std::sync::Arc;

use kiln_ir::graph::INPUT_OP;
use kiln_ir::ops::{self, EvalCtx};
use kiln_ir::{Attr, Attrs, Graph, Tensor, Value, ValueType};

use super::cse::is_random;
use super::{rewrite_in_place, Pass, PassContext};
use crate::error::CompileError;

pub struct ConstantFold;

/// Results with more elements than this are not folded. Such results come from small
/// inputs (ConstantOfShape, Expand, Range, Tile, a Transpose or Cast of a large weight):
/// folding them would grow the weights file and the compiler's memory by the full size,
/// while computing them at run time costs little. Large weights are transformed by the
/// targets' own prepacking instead.
pub const MAX_FOLD_ELEMENTS: usize = 1 << 20;

/// Folded results up to this many elements are printed inline in the IR text.
pub const MAX_INLINE_ELEMENTS: usize = 16;

/// The weight name of output `i` of a folded node: its origin (the ONNX node name) or op,
/// with `:i` for nodes of several outputs.
fn weight_name(origin: &str, op: &str, i: usize, outputs: usize) -> String {
    let base = if origin.is_empty() { op } else { origin };
    if outputs > 1 {
        format!("{base}:{i}")
    } else {
        base.to_string()
    }
}

/// True if `t` is what a value of type `ty` can hold (symbolic dims match anything).
fn fits(t: &Tensor, ty: &ValueType) -> bool {
    t.dtype() == ty.dtype
        && t.rank() == ty.rank()
        && ty
            .shape
            .iter()
            .zip(t.shape())
            .all(|(d, &n)| d.as_const().is_none_or(|c| c == n as i64))
}

fn is_used(g: &Graph, v: Value) -> bool {
    g.is_output(v) || !g.users(v).is_empty()
}

impl Pass for ConstantFold {
    fn name(&self) -> &'static str {
        "constant-fold"
    }

    fn run(&self, g: &mut Graph, ctx: &mut PassContext) -> Result<bool, CompileError> {
        let Some(order) = g.topo_order() else {
            return Ok(false);
        };
        let bindings = HashMap::new();
        let mut changed = false;
        'nodes: for id in order {
            if !g.contains(id) {
                continue;
            }
            let node = g.node(id);
            // Nodes without inputs are constants already (or random, or graph inputs).
            if node.inputs().is_empty()
                || matches!(node.op.as_str(), INPUT_OP | "constant" | "dims")
                || is_random(g, id)
            {
                continue;
            }
            let n_out = node.outputs.len();
            if !(0..n_out).any(|i| {
                is_used(
                    g,
                    Value {
                        node: id,
                        output: i,
                    },
                )
            }) {
                continue;
            }
            let mut inputs = Vec::with_capacity(node.inputs().len());
            for v in node.inputs() {
                match v {
                    None => inputs.push(None),
                    Some(v) => match g.const_of(*v) {
                        Some(t) => inputs.push(Some(t)),
                        None => continue 'nodes,
                    },
                }
            }
            let too_large = |ty: &ValueType| {
                ty.concrete_shape().is_some_and(|s| {
                    s.iter()
                        .try_fold(1usize, |a, &d| a.checked_mul(d))
                        .is_none_or(|n| n > MAX_FOLD_ELEMENTS)
                })
            };
            if node.outputs.iter().any(too_large) {
                ctx.record("constant-fold", "too-large", false);
                continue;
            }
            let Some(spec) = ops::lookup(&node.op) else {
                continue;
            };
            let ectx = EvalCtx {
                attrs: &node.attrs,
                inputs,
                num_outputs: n_out,
                output_types: &node.outputs,
                weights: &g.weights,
                bindings: &bindings,
            };
            // An op that cannot evaluate its constant inputs is left for run time, where the
            // error surfaces with its inputs.
            let Ok(results) = (spec.eval)(&ectx) else {
                ctx.record("constant-fold", "eval-error", false);
                continue;
            };
            if results.len() < n_out
                || results
                    .iter()
                    .zip(&node.outputs)
                    .any(|(t, ty)| !fits(t, ty) || t.len() > MAX_FOLD_ELEMENTS)
            {
                ctx.record("constant-fold", "mismatch", false);
                continue;
            }
            let origin = node.origin.clone();
            let op = node.op.clone();
            let mut first = None;
            for (i, t) in results.into_iter().take(n_out).enumerate() {
                let v = Value {
                    node: id,
                    output: i,
                };
                if !is_used(g, v) {
                    continue;
                }
                let ty = ValueType::of(t.dtype(), t.shape());
                let value = if t.len() <= MAX_INLINE_ELEMENTS {
                    Attr::Tensor(Arc::new(t))
                } else {
                    let name = weight_name(&origin, &op, i, n_out);
                    Attr::Weight(g.weights.insert(&name, Arc::new(t)))
                };
                let mut attrs = Attrs::new();
                attrs.insert("value".into(), value);
                if i == 0 {
                    first = Some((attrs, ty));
                } else {
                    let c = g.add_node("constant", attrs, vec![], vec![ty], &origin);
                    g.replace_all_uses(v, Value { node: c, output: 0 });
                }
            }
            // Output 0 becomes the node itself, which keeps its place in the printed order.
            match first {
                Some((attrs, ty)) => rewrite_in_place(g, id, "constant", attrs, ty),
                None => g.remove_node(id),
            }
            ctx.record("constant-fold", "fold", true);
            changed = true;
        }
        if changed {
            // Folded values may have had data-dependent dims that are now known.
            kiln_ir::infer::infer_graph(g)?;
        }
        Ok(changed)
    }
}
