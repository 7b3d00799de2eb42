//! stub
use crate::cpu::lower::Lowerer;
use crate::error::TargetError;
use kiln_ir::graph::NodeId;
pub fn max_pool(lw: &mut Lowerer, _id: NodeId) -> Result<(), TargetError> {
    Err(lw.unsupported("max_pool"))
}
pub fn average_pool(lw: &mut Lowerer, _id: NodeId) -> Result<(), TargetError> {
    Err(lw.unsupported("average_pool"))
}
pub fn lp_pool(lw: &mut Lowerer, _id: NodeId) -> Result<(), TargetError> {
    Err(lw.unsupported("lp_pool"))
}
pub fn global_average_pool(lw: &mut Lowerer, _id: NodeId) -> Result<(), TargetError> {
    Err(lw.unsupported("global_average_pool"))
}
pub fn global_max_pool(lw: &mut Lowerer, _id: NodeId) -> Result<(), TargetError> {
    Err(lw.unsupported("global_max_pool"))
}
pub fn global_lp_pool(lw: &mut Lowerer, _id: NodeId) -> Result<(), TargetError> {
    Err(lw.unsupported("global_lp_pool"))
}
