//! Shape and dtype inference over a whole graph, with symbolic evaluation of shape
//! computations along the way.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::attr::Attrs;
use crate::dim::Dim;
use crate::error::IrError;
use crate::graph::{Graph, NodeId, Value};
use crate::ops::{self, InferCtx, Known};
use crate::types::ValueType;

/// Statically known contents of values.
pub type KnownValues = HashMap<Value, Known>;

/// Hands out symbols not used anywhere in a graph, for data-dependent dims.
pub struct FreshSymbols {
    used: RefCell<HashSet<Arc<str>>>,
    next: Cell<usize>,
}

impl FreshSymbols {
    pub fn for_graph(g: &Graph) -> FreshSymbols {
        let mut used = Vec::new();
        for id in g.node_ids() {
            for t in &g.node(id).outputs {
                for d in &t.shape {
                    d.symbols(&mut used);
                }
            }
        }
        FreshSymbols {
            used: RefCell::new(used.into_iter().collect()),
            next: Cell::new(0),
        }
    }

    pub fn fresh(&self) -> Dim {
        loop {
            let k = self.next.get();
            self.next.set(k + 1);
            let name: Arc<str> = format!("u{k}").into();
            if self.used.borrow_mut().insert(name.clone()) {
                return Dim::sym(&name);
            }
        }
    }
}

/// What is statically known about value `v`: from `known`, or from a `constant` / `dims`
/// producer.
pub fn known_value(g: &Graph, v: Value, known: &KnownValues) -> Option<Known> {
    if let Some(k) = known.get(&v) {
        return Some(k.clone());
    }
    if let Some(t) = g.const_of(v) {
        return Some(Known::Tensor(t));
    }
    None
}

/// Infers the output types of node `id` (and the symbolic content of output 0, if its op
/// can say), from the current types of its inputs.
pub fn infer_node(
    g: &Graph,
    id: NodeId,
    known: &KnownValues,
    fresh: &FreshSymbols,
) -> Result<(Vec<ValueType>, Option<Vec<Dim>>), IrError> {
    let node = g.node(id);
    infer_op(
        g,
        &node.op,
        &node.attrs,
        node.inputs(),
        node.outputs.len(),
        Some(&node.outputs),
        known,
        fresh,
    )
    .map_err(|msg| IrError::Op {
        node: node.label(),
        msg,
    })
}

#[allow(clippy::too_many_arguments)]
fn infer_op(
    g: &Graph,
    op: &str,
    attrs: &Attrs,
    inputs: &[Option<Value>],
    num_outputs: usize,
    previous: Option<&[ValueType]>,
    known: &KnownValues,
    fresh: &FreshSymbols,
) -> Result<(Vec<ValueType>, Option<Vec<Dim>>), String> {
    let spec = ops::lookup(op).ok_or_else(|| format!("unknown op `{op}`"))?;
    let fresh_fn = || fresh.fresh();
    let ctx = InferCtx {
        attrs,
        inputs: inputs.iter().map(|v| v.map(|v| g.value_type(v))).collect(),
        known: inputs
            .iter()
            .map(|v| v.and_then(|v| known_value(g, v, known)))
            .collect(),
        num_outputs,
        weights: &g.weights,
        previous: previous.filter(|p| !p.is_empty()),
        fresh: &fresh_fn,
    };
    let types = (spec.infer)(&ctx).map_err(|e| e.0)?;
    let sym = spec.sym.and_then(|f| f(&ctx));
    Ok((types, sym))
}

/// Adds a node whose output types are inferred from its inputs.
pub fn add_inferred(
    g: &mut Graph,
    op: &str,
    attrs: Attrs,
    inputs: Vec<Option<Value>>,
    num_outputs: usize,
    origin: &str,
) -> Result<NodeId, IrError> {
    let fresh = FreshSymbols::for_graph(g);
    let (types, _) = infer_op(
        g,
        op,
        &attrs,
        &inputs,
        num_outputs,
        None,
        &KnownValues::new(),
        &fresh,
    )
    .map_err(|msg| IrError::Op {
        node: if origin.is_empty() {
            format!("{op} node")
        } else {
            format!("{op} node \"{origin}\"")
        },
        msg,
    })?;
    Ok(g.add_node(op, attrs, inputs, types, origin))
}

/// Re-infers every node's output types in topological order and returns the symbolic
/// contents found on the way.
pub fn infer_graph(g: &mut Graph) -> Result<KnownValues, IrError> {
    let order = g.topo_order().ok_or(IrError::Cycle)?;
    let fresh = FreshSymbols::for_graph(g);
    let mut known = KnownValues::new();
    for id in order {
        let (mut types, sym) = infer_node(g, id, &known, &fresh)?;
        let node = g.node(id);
        // Ops may give more outputs than a node uses (ONNX's optional trailing outputs).
        if types.len() > node.outputs.len() && !node.outputs.is_empty() {
            types.truncate(node.outputs.len());
        }
        if types.len() != node.outputs.len() && !node.outputs.is_empty() {
            return Err(IrError::Op {
                node: node.label(),
                msg: format!(
                    "has {} outputs, its op gives {}",
                    node.outputs.len(),
                    types.len()
                ),
            });
        }
        if let Some(s) = sym {
            known.insert(
                Value {
                    node: id,
                    output: 0,
                },
                Known::Dims(s),
            );
        }
        g.node_mut(id).outputs = types;
    }
    Ok(known)
}
