//! stub
use crate::cpu::lower::Lowerer;
use crate::error::TargetError;
use kiln_ir::graph::NodeId;
pub fn conv(lw: &mut Lowerer, _id: NodeId) -> Result<(), TargetError> {
    Err(lw.unsupported("conv"))
}
pub fn conv_integer(lw: &mut Lowerer, _id: NodeId) -> Result<(), TargetError> {
    Err(lw.unsupported("conv_integer"))
}
pub fn conv_transpose(lw: &mut Lowerer, _id: NodeId) -> Result<(), TargetError> {
    Err(lw.unsupported("conv_transpose"))
}
