//! `shape-propagation`: infers the graph (`kiln_ir::infer::infer_graph`), which also follows
//! shape computations symbolically, and replaces every value whose content is then fully
//! known by a `dims` node, or by a constant when every element is a number. Torch's
//! `Shape -> Gather -> Unsqueeze -> Concat -> Reshape` chains become
//! `Reshape(%x, dims<[1, seq, 4, 16]>)`; the chain itself is left to `dce`.
//!
//! Only contents over the graph inputs' symbols are materialized: a `dims` node has no
//! inputs, so it may run before the node whose output gives a data-dependent symbol its
//! value (`Shape(NonZero(x))` stays as it is).

use std::sync::Arc;

use kiln_ir::graph::INPUT_OP;
use kiln_ir::ops::Known;
use kiln_ir::{Attr, Attrs, DType, Dim, Graph, NodeId, Tensor, Value, ValueType};

use super::constant_fold::MAX_INLINE_ELEMENTS;
use super::{rewrite_in_place, Pass, PassContext};
use crate::error::CompileError;

pub struct ShapePropagation;

/// Symbolic contents longer than this are left alone (they are not shapes).
pub const MAX_ELEMENTS: usize = 64;

/// A `constant` node (all numbers) or a `dims` node holding `dims`, for a value of type `ty`:
/// its op, attributes and type. `None` if `ty` cannot be such a node's type.
fn materialize(dims: &[Dim], ty: &ValueType) -> Option<(&'static str, Attrs, ValueType)> {
    if !ty.dtype.is_int() || ty.rank() > 1 || dims.len() > MAX_ELEMENTS {
        return None;
    }
    let shape: Vec<usize> = if ty.rank() == 0 {
        vec![]
    } else {
        vec![dims.len()]
    };
    if ty.rank() == 0 && dims.len() != 1 {
        return None;
    }
    if let Some(n) = ty.shape.first().and_then(|d| d.as_const()) {
        if n != dims.len() as i64 {
            return None;
        }
    }
    let mut attrs = Attrs::new();
    let consts: Option<Vec<i64>> = dims.iter().map(|d| d.as_const()).collect();
    let (op, out) = match consts {
        // Longer constants are constant-fold's (which makes weights of them).
        Some(values) if values.len() > MAX_INLINE_ELEMENTS => return None,
        Some(values) => {
            let t = Tensor::from_i64(ty.dtype, shape.clone(), &values);
            // Values the dtype cannot hold would change: leave the computation alone.
            if t.to_i64() != values {
                return None;
            }
            attrs.insert("value".into(), Attr::Tensor(Arc::new(t)));
            ("constant", ValueType::of(ty.dtype, &shape))
        }
        None => {
            attrs.insert("value".into(), Attr::Dims(dims.to_vec()));
            if ty.dtype != DType::I64 {
                attrs.insert("dtype".into(), Attr::DType(ty.dtype));
            }
            if ty.rank() == 0 {
                attrs.insert("shape".into(), Attr::Ints(vec![]));
            }
            ("dims", ValueType::of(ty.dtype, &shape))
        }
    };
    Some((op, attrs, out))
}

impl Pass for ShapePropagation {
    fn name(&self) -> &'static str {
        "shape-propagation"
    }

    fn run(&self, g: &mut Graph, ctx: &mut PassContext) -> Result<bool, CompileError> {
        let before: Vec<(NodeId, Vec<ValueType>)> = g
            .node_ids()
            .into_iter()
            .map(|id| (id, g.node(id).outputs.clone()))
            .collect();
        let known = kiln_ir::infer::infer_graph(g)?;
        let mut changed = before
            .iter()
            .any(|(id, types)| g.node(*id).outputs != *types);

        let Some(order) = g.topo_order() else {
            return Ok(changed);
        };
        let mut input_symbols = Vec::new();
        for &v in g.inputs() {
            for d in &g.value_type(v).shape {
                d.symbols(&mut input_symbols);
            }
        }
        for id in order {
            let node = g.node(id);
            let v = Value {
                node: id,
                output: 0,
            };
            let Some(Known::Dims(dims)) = known.get(&v) else {
                continue;
            };
            let replace = match node.op.as_str() {
                INPUT_OP | "constant" => false,
                // A `dims` node of numbers only is a constant.
                "dims" => dims.iter().all(|d| d.is_const()),
                _ => true,
            };
            if !replace || (g.users(v).is_empty() && !g.is_output(v)) {
                continue;
            }
            let mut symbols = Vec::new();
            for d in dims {
                d.symbols(&mut symbols);
            }
            if symbols.iter().any(|s| !input_symbols.contains(s)) {
                ctx.record("shape-propagation", "data-dependent", false);
                continue;
            }
            let ty = node.outputs[0].clone();
            let origin = node.origin.clone();
            let dims = dims.clone();
            if let Some((op, attrs, out)) = materialize(&dims, &ty) {
                if g.node(id).outputs.len() == 1 {
                    // In place: the node keeps its readers and its place in the text.
                    rewrite_in_place(g, id, op, attrs, out);
                } else {
                    let new = g.add_node(op, attrs, vec![], vec![out], &origin);
                    g.replace_all_uses(
                        v,
                        Value {
                            node: new,
                            output: 0,
                        },
                    );
                }
                ctx.record("shape-propagation", "replace", true);
                changed = true;
            }
        }
        if changed {
            kiln_ir::infer::infer_graph(g)?;
        }
        Ok(changed)
    }
}
