//! Ops that only reinterpret the shape of contiguous data: the output is a view of the
//! input's buffer and no step is emitted.

use kiln_ir::graph::NodeId;

use super::LowerFn;
use crate::cpu::lower::Lowerer;
use crate::error::TargetError;

pub const OPS: &[(&str, LowerFn)] = &[
    ("Identity", view),
    ("Reshape", view),
    ("Flatten", view),
    ("Squeeze", view),
    ("Unsqueeze", view),
];

fn view(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let src = lw.input(id, 0)?;
    lw.alias_output(id, 0, &src)
}
