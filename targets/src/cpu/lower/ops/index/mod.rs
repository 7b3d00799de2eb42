//! Indexing: the gathers and scatters, OneHot, TopK, Resize, GridSample, RoiAlign,
//! MaxUnpool, AffineGrid, and selection by content (Compress, NonZero, Unique,
//! NonMaxSuppression) when the graph pins its output sizes.
//!
//! Each op is one call of a runtime helper (`runtime/src/cpu/helpers/index/`), whose doc
//! comment gives its argument slots; sizes stay symbolic. Indices are data: the helpers
//! check each one, so a bad index never touches memory outside a buffer (gathers give
//! zeros, scatters skip the update) where the interpreter would stop with an error.

mod gather;
mod sample;
mod scatter;
mod select;

#[cfg(test)]
mod tests;

use kiln_ir::dim::Dim;
use kiln_ir::dtype::DType;
use kiln_ir::graph::NodeId;
use kiln_ir::ops::util::axis;
use kiln_ir::AttrsExt;
use kiln_runtime::ElemType;

use super::LowerFn;
use crate::cpu::lower::{Arg, Lowerer, Operand};
use crate::error::TargetError;

pub const OPS: &[(&str, LowerFn)] = &[
    ("Gather", gather::gather),
    ("GatherElements", gather::gather_elements),
    ("GatherND", gather::gather_nd),
    ("OneHot", gather::one_hot),
    ("Compress", gather::compress),
    ("ScatterElements", scatter::scatter_elements),
    ("Scatter", scatter::scatter_elements),
    ("ScatterND", scatter::scatter_nd),
    ("TensorScatter", scatter::tensor_scatter),
    ("MaxUnpool", scatter::max_unpool),
    ("TopK", select::top_k),
    ("NonZero", select::non_zero),
    ("Unique", select::unique),
    ("NonMaxSuppression", select::non_max_suppression),
    ("Resize", sample::resize),
    ("GridSample", sample::grid_sample),
    ("AffineGrid", sample::affine_grid),
    ("RoiAlign", sample::roi_align),
];

/// The runtime's dtype code of `d` (its position in `ElemType::ALL`).
fn code(lw: &Lowerer, d: DType) -> Result<Arg, TargetError> {
    ElemType::ALL
        .iter()
        .position(|e| e.name() == d.name())
        .map(|c| Arg::Bits(c as u64))
        .ok_or_else(|| lw.unsupported(format!("{d} elements")))
}

/// Rejects fp8 data, which the arithmetic helpers do not read.
fn computable(lw: &Lowerer, d: DType) -> Result<(), TargetError> {
    if d.is_fp8() {
        return Err(lw.unsupported(format!("{d} data")));
    }
    Ok(())
}

/// Rejects index tensors that are not integers.
fn int_indices(lw: &Lowerer, d: DType) -> Result<(), TargetError> {
    if !d.is_int() {
        return Err(lw.unsupported(format!("{d} indices")));
    }
    Ok(())
}

/// The product of `dims`.
fn prod(dims: &[Dim]) -> Dim {
    dims.iter().fold(Dim::from(1i64), |a, d| a.mul(d))
}

fn int(d: &Dim) -> Arg {
    Arg::Int(d.clone())
}

/// `n` (a count of elements of `op`) in bytes.
fn bytes_of(op: &Operand, n: &Dim) -> Dim {
    n.mul(&Dim::from(op.dtype.size() as i64))
}

fn attr_int(lw: &Lowerer, id: NodeId, name: &str, default: i64) -> Result<i64, TargetError> {
    lw.graph
        .node(id)
        .attrs
        .int_or(name, default)
        .map_err(|e| lw.error(e))
}

fn attr_str(lw: &Lowerer, id: NodeId, name: &str, default: &str) -> Result<String, TargetError> {
    lw.graph
        .node(id)
        .attrs
        .str_or(name, default)
        .map(str::to_string)
        .map_err(|e| lw.error(e))
}

fn attr_float(lw: &Lowerer, id: NodeId, name: &str, default: f32) -> Result<f64, TargetError> {
    lw.graph
        .node(id)
        .attrs
        .float_or(name, default)
        .map(f64::from)
        .map_err(|e| lw.error(e))
}

/// The `axis` attribute normalised against `rank`.
fn attr_axis(lw: &Lowerer, id: NodeId, default: i64, rank: usize) -> Result<usize, TargetError> {
    axis(attr_int(lw, id, "axis", default)?, rank).map_err(|e| lw.error(e))
}

/// A string attribute as the position of its value in `choices` (several spellings of a
/// choice share its code through `alias`).
fn choice(
    lw: &Lowerer,
    id: NodeId,
    name: &str,
    default: &str,
    choices: &[&str],
    alias: &[(&str, &str)],
) -> Result<u64, TargetError> {
    let v = attr_str(lw, id, name, default)?;
    let v = alias
        .iter()
        .find(|(a, _)| *a == v)
        .map_or(v.as_str(), |(_, to)| *to);
    choices
        .iter()
        .position(|c| *c == v)
        .map(|p| p as u64)
        .ok_or_else(|| lw.unsupported(format!("{name} \"{v}\"")))
}
