//! Op lowerings by family. `lower_node` dispatches on the op name; an op no family takes is
//! a compile error naming it, never a silent fallback.

mod view;

use kiln_ir::graph::NodeId;

use crate::cpu::lower::Lowerer;
use crate::error::TargetError;

/// Lowers one node.
pub fn lower_node(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let op = lw.graph.node(id).op.clone();
    match op.as_str() {
        "Identity" | "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" => view::lower(lw, id),
        _ => Err(TargetError::Lower(format!(
            "{}: op {op} has no CPU kernel",
            lw.graph.node(id).label()
        ))),
    }
}
