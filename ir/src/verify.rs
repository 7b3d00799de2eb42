//! The verifier: the invariants every pass must keep.

use crate::error::IrError;
use crate::graph::Value;
use crate::graph::{Graph, INPUT_OP};
use crate::infer::{infer_node, FreshSymbols, KnownValues};
use crate::ops::{self, Known};

/// Checks that the graph is acyclic, every op is known, every input and output refers to a
/// live value, and every node's types are what its op infers from its inputs.
pub fn verify(g: &Graph) -> Result<(), IrError> {
    let order = g.topo_order().ok_or(IrError::Cycle)?;
    for &id in &order {
        let node = g.node(id);
        if ops::lookup(&node.op).is_none() {
            return Err(IrError::UnknownOp(node.op.clone()));
        }
        for (i, v) in node.inputs().iter().enumerate() {
            if let Some(v) = v {
                if !g.contains(v.node) || v.output >= g.node(v.node).outputs.len() {
                    return Err(IrError::Invalid(format!(
                        "{} input {i} refers to a value that does not exist",
                        node.label()
                    )));
                }
            }
        }
        if node.op == INPUT_OP
            && !g.inputs().contains(&Value {
                node: id,
                output: 0,
            })
        {
            return Err(IrError::Invalid(format!(
                "{} is not a graph input",
                node.label()
            )));
        }
    }
    for (name, v) in g.outputs() {
        if !g.contains(v.node) || v.output >= g.node(v.node).outputs.len() {
            return Err(IrError::Invalid(format!(
                "graph output \"{name}\" refers to a value that does not exist"
            )));
        }
    }
    let fresh = FreshSymbols::for_graph(g);
    let mut known = KnownValues::new();
    for id in order {
        let (types, sym) = infer_node(g, id, &known, &fresh)?;
        let node = g.node(id);
        if types.len() < node.outputs.len() || types[..node.outputs.len()] != node.outputs[..] {
            return Err(IrError::Invalid(format!(
                "{} has types {:?}, its op infers {:?}",
                node.label(),
                node.outputs,
                &types[..types.len().min(node.outputs.len())]
            )));
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
    }
    Ok(())
}
