//! Data movement: strided copies (Transpose, Slice, Expand, Concat, Split, Pad, Tile, ...)
//! and generated data (Range, ConstantOfShape, Trilu, ...).
//!
//! Every copy is described as axes of (extent, source stride, destination stride) in
//! elements, symbolic; [`copy`] drops unit dims, merges dims contiguous on both sides and
//! picks the innermost loop's form, so a kernel is keyed by rank, element size and that
//! form only. A result that is contiguous data of its source becomes a view
//! ([`copy_to_output`]): no step at all.

mod generate;
mod shape;
#[cfg(test)]
mod tests;

use kiln_ir::dim::Dim;
use kiln_ir::graph::{NodeId, Value};
use kiln_ir::types::ValueType;

use super::LowerFn;
use crate::cpu::codegen::kernels::strided::{self, Inner};
use crate::cpu::lower::{Arg, Lowerer, Operand};
use crate::error::TargetError;

pub const OPS: &[(&str, LowerFn)] = &[
    ("Transpose", shape::transpose),
    ("Slice", shape::slice),
    ("Expand", shape::expand),
    ("Concat", shape::concat),
    ("Split", shape::split),
    ("Tile", shape::tile),
    ("Pad", shape::pad),
    ("CenterCropPad", shape::center_crop_pad),
    ("DepthToSpace", shape::depth_to_space),
    ("SpaceToDepth", shape::space_to_depth),
    ("Trilu", generate::trilu),
    ("Range", generate::range),
    ("ConstantOfShape", generate::constant_of_shape),
    ("EyeLike", generate::eye_like),
    ("ReverseSequence", generate::reverse_sequence),
    ("Shape", generate::shape),
    ("Size", generate::size),
    ("BitCast", generate::bit_cast),
    ("Dropout", generate::dropout),
];

pub(super) fn c(v: i64) -> Dim {
    Dim::from(v)
}

/// One dim of a strided copy: extent, source stride and destination stride, in elements.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Axis {
    pub n: Dim,
    pub ss: Dim,
    pub ds: Dim,
}

impl Axis {
    pub fn new(n: &Dim, ss: &Dim, ds: &Dim) -> Axis {
        Axis {
            n: n.clone(),
            ss: ss.clone(),
            ds: ds.clone(),
        }
    }
}

/// Row-major strides of `shape`, in elements.
pub(super) fn strides(shape: &[Dim]) -> Vec<Dim> {
    let mut s = vec![c(1); shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1].mul(&shape[i + 1]);
    }
    s
}

/// The product of `dims`.
pub(super) fn prod(dims: &[Dim]) -> Dim {
    dims.iter().fold(c(1), |a, d| a.mul(d))
}

/// Drops unit dims and merges neighbours contiguous in both source and destination. `None`
/// when the index space is empty (a dim is the constant 0).
pub(super) fn simplify(axes: Vec<Axis>) -> Option<Vec<Axis>> {
    if axes.iter().any(|a| a.n.as_const() == Some(0)) {
        return None;
    }
    let mut out: Vec<Axis> = Vec::with_capacity(axes.len());
    for a in axes.into_iter().rev() {
        if a.n.as_const() == Some(1) {
            continue;
        }
        match out.last_mut() {
            Some(inner) if a.ss == inner.ss.mul(&inner.n) && a.ds == inner.ds.mul(&inner.n) => {
                inner.n = inner.n.mul(&a.n);
            }
            _ => out.push(a),
        }
    }
    out.reverse();
    Some(out)
}

/// Whether simplified `axes` read one contiguous run, in order, into a contiguous run.
fn is_contiguous(axes: &[Axis]) -> bool {
    match axes {
        [] => true,
        [a] => a.ss.as_const() == Some(1) && a.ds.as_const() == Some(1),
        _ => false,
    }
}

/// `op` moved by `elems` elements.
pub(super) fn shifted(op: &Operand, elems: &Dim) -> Operand {
    Operand {
        offset: op.offset.add(&elems.mul(&c(op.dtype.size() as i64))),
        ..op.clone()
    }
}

/// Emits the copy of `axes` from `src` (moved by `soff` elements) into `dst` (moved by
/// `doff`). Nothing is emitted for an empty index space.
pub(super) fn copy(
    lw: &mut Lowerer,
    src: &Operand,
    soff: &Dim,
    dst: &Operand,
    doff: &Dim,
    axes: Vec<Axis>,
) -> Result<(), TargetError> {
    let esize = src.dtype.size();
    if dst.dtype.size() != esize {
        return Err(lw.error(format!(
            "copy of {} into {}",
            src.dtype.name(),
            dst.dtype.name()
        )));
    }
    let Some(mut axes) = simplify(axes) else {
        return Ok(());
    };
    if axes.is_empty() {
        axes.push(Axis::new(&c(1), &c(1), &c(1)));
    }
    let last = axes.len() - 1;
    let one = Some(1);
    let (ss, ds) = (axes[last].ss.as_const(), axes[last].ds.as_const());
    // A dim contiguous in the source other than the last: a transpose.
    let src_contig = axes[..last].iter().rposition(|a| a.ss.as_const() == one);
    let inner = match (ss, ds, src_contig) {
        (Some(1), Some(1), _) => Inner::Contig,
        (Some(0), Some(1), _) => Inner::Bcast,
        (_, Some(1), Some(j)) => {
            // That dim goes second to last (loop order is free).
            let a = axes.remove(j);
            axes.insert(axes.len() - 1, a);
            Inner::Transpose
        }
        _ => Inner::Gather,
    };
    let rank = axes.len();
    let key = strided::copy_key(rank, esize, inner);
    let k = lw.kernel(&key, |kb| strided::strided_copy(kb, rank, esize, inner))?;
    let e = c(esize as i64);
    let mut args = vec![shifted(src, soff).ptr(), shifted(dst, doff).ptr()];
    args.extend(axes.iter().map(|a| Arg::Int(a.n.clone())));
    args.extend(axes.iter().map(|a| Arg::Int(a.ss.mul(&e))));
    args.extend(axes.iter().map(|a| Arg::Int(a.ds.mul(&e))));
    lw.emit(k, args);
    Ok(())
}

/// Output `i` of `node` as `axes` of `src` (from `soff` elements on), with destination
/// strides those of the contiguous output: a view when the data is contiguous in `src`, a
/// copy otherwise.
pub(super) fn copy_to_output(
    lw: &mut Lowerer,
    node: NodeId,
    i: usize,
    src: &Operand,
    soff: &Dim,
    axes: Vec<Axis>,
) -> Result<(), TargetError> {
    // A view has the output's shape (a graph output gets a copy of that many bytes).
    let ty = out_type(lw, node, i);
    let view = |soff: &Dim| Operand {
        dtype: ty.dtype,
        shape: ty.shape.clone(),
        ..shifted(src, soff)
    };
    match simplify(axes.clone()) {
        // Nothing to read: any valid address serves.
        None => lw.alias_output(node, i, &view(&c(0))),
        Some(s) if is_contiguous(&s) => lw.alias_output(node, i, &view(soff)),
        Some(_) => {
            let dst = lw.output(node, i);
            copy(lw, src, soff, &dst, &c(0), axes)
        }
    }
}

/// The value a fill writes.
#[derive(Clone, Debug)]
pub(super) enum FillValue {
    /// The element's little-endian bits.
    Bits(u64),
    /// The element at this operand's address.
    At(Operand),
}

impl FillValue {
    /// The first element of `t`'s bytes (zero when `t` is empty).
    pub fn of_tensor(t: &kiln_ir::tensor::Tensor) -> FillValue {
        let bytes = t.to_le_bytes();
        let mut b = [0u8; 8];
        let n = t.dtype().size().min(bytes.len());
        b[..n].copy_from_slice(&bytes[..n]);
        FillValue::Bits(u64::from_le_bytes(b))
    }
}

/// Fills the view `dims` (extent, destination stride in elements) of `dst` from `doff` on.
pub(super) fn fill(
    lw: &mut Lowerer,
    dst: &Operand,
    doff: &Dim,
    dims: Vec<(Dim, Dim)>,
    value: &FillValue,
) -> Result<(), TargetError> {
    let esize = dst.dtype.size();
    let axes = dims
        .into_iter()
        .map(|(n, ds)| Axis { n, ss: c(0), ds })
        .collect();
    let Some(mut axes) = simplify(axes) else {
        return Ok(());
    };
    if axes.is_empty() {
        axes.push(Axis::new(&c(1), &c(0), &c(1)));
    }
    let rank = axes.len();
    let contig = axes[rank - 1].ds.as_const() == Some(1);
    let from_ptr = matches!(value, FillValue::At(_));
    let key = strided::fill_key(rank, esize, contig, from_ptr);
    let k = lw.kernel(&key, |kb| {
        strided::strided_fill(kb, rank, esize, contig, from_ptr)
    })?;
    let e = c(esize as i64);
    let mut args = vec![
        shifted(dst, doff).ptr(),
        match value {
            FillValue::Bits(b) => Arg::Bits(*b),
            FillValue::At(op) => op.ptr(),
        },
    ];
    args.extend(axes.iter().map(|a| Arg::Int(a.n.clone())));
    args.extend(axes.iter().map(|a| Arg::Int(a.ds.mul(&e))));
    lw.emit(k, args);
    Ok(())
}

/// Fills all of `dst`.
pub(super) fn fill_all(
    lw: &mut Lowerer,
    dst: &Operand,
    value: &FillValue,
) -> Result<(), TargetError> {
    let n = dst.numel();
    fill(lw, dst, &c(0), vec![(n, c(1))], value)
}

/// The type of output `i` of `node`.
pub(super) fn out_type(lw: &Lowerer, node: NodeId, i: usize) -> ValueType {
    lw.graph.value_type(Value { node, output: i }).clone()
}

/// The type of input `i` of `node`, if present.
pub(super) fn in_type(lw: &Lowerer, node: NodeId, i: usize) -> Option<ValueType> {
    let v = lw.graph.node(node).input(i)?;
    Some(lw.graph.value_type(v).clone())
}

/// [`Lowerer::dims_input`] when every value is a constant.
pub(super) fn const_ints(lw: &Lowerer, node: NodeId, i: usize) -> Option<Vec<i64>> {
    lw.dims_input(node, i)?
        .iter()
        .map(|d| d.as_const())
        .collect()
}

/// Whether `i` is a present input of `node`.
pub(super) fn has_input(lw: &Lowerer, node: NodeId, i: usize) -> bool {
    lw.graph.node(node).input(i).is_some()
}

/// Whether output `i` of `node` is read by anything.
pub(super) fn is_used(lw: &Lowerer, node: NodeId, i: usize) -> bool {
    let v = Value { node, output: i };
    !lw.graph.users(v).is_empty() || lw.graph.is_output(v)
}

/// Normalises axis `a` for `rank`.
pub(super) fn norm_axis(lw: &Lowerer, a: i64, rank: usize) -> Result<usize, TargetError> {
    let r = rank as i64;
    let n = if a < 0 { a + r } else { a };
    if (0..r).contains(&n) {
        Ok(n as usize)
    } else {
        Err(lw.error(format!("axis {a} is out of range for rank {rank}")))
    }
}

/// Maps an attribute error to a lowering error.
pub(super) fn attr_err<'a>(
    lw: &'a Lowerer<'_>,
) -> impl Fn(kiln_ir::ops::OpError) -> TargetError + 'a {
    move |e| lw.error(e)
}

/// Whether `d` is non-negative for every value of its symbols (all sizes, so >= 0): true
/// for sums, products, floordiv, mod, min and max of symbols and non-negative constants,
/// which are the printed forms without a minus sign.
pub(super) fn nonneg(d: &Dim) -> bool {
    match d.as_const() {
        Some(v) => v >= 0,
        None => !d.to_string().contains('-'),
    }
}
