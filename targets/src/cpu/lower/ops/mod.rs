//! Op lowerings by family, one file (or folder) each. Every family exports `OPS`, its
//! table of (op name, lowering); `lower_node` looks the op up. An op no family takes is a
//! compile error naming it, never a silent fallback.

mod elementwise;
mod fused;
mod index;
mod linalg;
mod movement;
mod reduce;
mod view;

use kiln_ir::graph::NodeId;

pub use elementwise::fusion as elementwise_fusion;
pub use linalg::absorbed;

use crate::cpu::lower::Lowerer;
use crate::error::TargetError;

/// Lowers one node: reads its operands from `lw`, emits steps, binds its outputs.
pub type LowerFn = fn(&mut Lowerer, NodeId) -> Result<(), TargetError>;

const FAMILIES: &[&[(&str, LowerFn)]] = &[
    view::OPS,
    elementwise::OPS,
    movement::OPS,
    reduce::OPS,
    index::OPS,
    linalg::OPS,
    fused::OPS,
];

/// The lowering of `op`, if some family has one.
pub fn lowering(op: &str) -> Option<LowerFn> {
    FAMILIES
        .iter()
        .flat_map(|f| f.iter())
        .find(|(name, _)| *name == op)
        .map(|(_, f)| *f)
}

/// Lowers one node.
pub fn lower_node(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let node = lw.graph.node(id);
    match lowering(&node.op) {
        Some(f) => f(lw, id),
        None => Err(TargetError::Lower(format!(
            "{}: op {} has no CPU kernel",
            node.label(),
            node.op
        ))),
    }
}
