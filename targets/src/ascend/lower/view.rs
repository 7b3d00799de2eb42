//! Views: ops that only change how an ND tensor's elements are indexed share its memory
//! and launch nothing (a real runtime passes the same address with another shape).

use kiln_ir::graph::NodeId;
use kiln_runtime::ascend::descriptor::Format;

use super::{LowerFn, Lowerer};
use crate::error::TargetError;

pub const OPS: &[(&str, LowerFn)] = &[
    ("Reshape", view),
    ("Squeeze", view),
    ("Unsqueeze", view),
    ("Flatten", view),
    ("Identity", view),
];

fn view(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let x = lw.to_format(&x, Format::Nd)?;
    // A view of a value kept in f32 ([`super::precision`]) that is not kept itself.
    let dtype = lw.output_type(id, 0)?.0;
    let x = lw.cast(&x, dtype)?;
    lw.alias_output(id, 0, &x)
}
