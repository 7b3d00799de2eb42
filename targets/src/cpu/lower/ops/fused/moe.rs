//! kiln's `moe` and com.microsoft.MoE, lowered to the runtime's `moe` helper.

use kiln_ir::graph::NodeId;

use crate::cpu::lower::Lowerer;
use crate::error::TargetError;

pub fn lower_fused(lw: &mut Lowerer, _id: NodeId) -> Result<(), TargetError> {
    Err(lw.unsupported("moe"))
}

pub fn lower_ms(lw: &mut Lowerer, _id: NodeId) -> Result<(), TargetError> {
    Err(lw.unsupported("com.microsoft.MoE"))
}
