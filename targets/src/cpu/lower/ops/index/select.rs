//! TopK, and the ops whose output shape depends on data (NonZero, Unique,
//! NonMaxSuppression, Compress with a run-time condition).

use kiln_ir::graph::NodeId;

use super::{attr_axis, attr_int, code, computable, int, prod};
use crate::cpu::lower::{Arg, Lowerer};
use crate::error::TargetError;

pub fn top_k(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    computable(lw, x.dtype)?;
    let rank = x.shape.len();
    if rank == 0 {
        return Err(lw.error("TopK needs rank >= 1"));
    }
    let a = attr_axis(lw, id, -1, rank)?;
    let largest = attr_int(lw, id, "largest", 1)? != 0;
    // K is the output's dim along the axis: shape inference read it from the constant or
    // the `dims` that gives it.
    let vals = lw.output(id, 0);
    let idxs = lw.output(id, 1);
    let k = vals.shape[a].clone();
    if let (Some(k), Some(d)) = (k.as_const(), x.shape[a].as_const()) {
        if k > d {
            return Err(lw.error(format!("TopK K = {k} exceeds the dim of {d}")));
        }
    }
    let h = lw.helper("index_top_k")?;
    let args = vec![
        x.ptr(),
        vals.ptr(),
        idxs.ptr(),
        code(lw, x.dtype)?,
        Arg::Int(prod(&x.shape[..a])),
        int(&x.shape[a]),
        Arg::Int(prod(&x.shape[a + 1..])),
        Arg::Int(k),
        Arg::Bits(u64::from(largest)),
    ];
    lw.emit(h, args);
    Ok(())
}

/// An op whose output shape depends on the values of its inputs: a static memory plan
/// cannot hold it, so compiling it is an error that says why.
pub fn data_dependent(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let node = lw.graph.node(id);
    let types: Vec<String> = node.outputs.iter().map(|t| t.to_string()).collect();
    Err(lw.error(format!(
        "{}'s output shape ({}) depends on the values of its inputs; kiln compiles static and input-derived shapes only",
        node.op,
        types.join(", ")
    )))
}
