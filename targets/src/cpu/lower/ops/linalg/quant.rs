//! stub
use crate::cpu::lower::Lowerer;
use crate::error::TargetError;
use kiln_ir::graph::NodeId;
pub fn quantize(lw: &mut Lowerer, _id: NodeId) -> Result<(), TargetError> {
    Err(lw.unsupported("quantize"))
}
pub fn dequantize(lw: &mut Lowerer, _id: NodeId) -> Result<(), TargetError> {
    Err(lw.unsupported("dequantize"))
}
pub fn dynamic_quantize(lw: &mut Lowerer, _id: NodeId) -> Result<(), TargetError> {
    Err(lw.unsupported("dynamic_quantize"))
}
