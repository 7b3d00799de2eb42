//! Reductions and row-wise ops: `Reduce*`, `ArgMax`/`ArgMin`, `CumSum`/`CumProd`, the
//! softmax family, normalisations and losses.

mod loss;
mod normalize;
mod softmax;

use kiln_ir::attr::AttrsExt;
use kiln_ir::dim::Dim;
use kiln_ir::graph::{NodeId, Value};

use super::LowerFn;
use crate::cpu::codegen::kernels::reduce::{self as k, math::MathHelpers, Elem, RKind};
use crate::cpu::lower::{Arg, Lowerer, Operand};
use crate::error::TargetError;

pub const OPS: &[(&str, LowerFn)] = &[
    ("ReduceSum", |lw, id| lower_reduce(lw, id, RKind::Sum)),
    ("ReduceMean", |lw, id| lower_reduce(lw, id, RKind::Mean)),
    ("ReduceMax", |lw, id| lower_reduce(lw, id, RKind::Max)),
    ("ReduceMin", |lw, id| lower_reduce(lw, id, RKind::Min)),
    ("ReduceProd", |lw, id| lower_reduce(lw, id, RKind::Prod)),
    ("ReduceL1", |lw, id| lower_reduce(lw, id, RKind::L1)),
    ("ReduceL2", |lw, id| lower_reduce(lw, id, RKind::L2)),
    ("ReduceLogSum", |lw, id| lower_reduce(lw, id, RKind::LogSum)),
    ("ReduceLogSumExp", |lw, id| {
        lower_reduce(lw, id, RKind::LogSumExp)
    }),
    ("ReduceSumSquare", |lw, id| {
        lower_reduce(lw, id, RKind::SumSquare)
    }),
    ("ArgMax", |lw, id| softmax::lower_arg(lw, id, true)),
    ("ArgMin", |lw, id| softmax::lower_arg(lw, id, false)),
    ("CumSum", |lw, id| softmax::lower_cum(lw, id, false)),
    ("CumProd", |lw, id| softmax::lower_cum(lw, id, true)),
    ("Softmax", |lw, id| {
        softmax::lower_row(lw, id, k::rows::RowOp::Softmax)
    }),
    ("LogSoftmax", |lw, id| {
        softmax::lower_row(lw, id, k::rows::RowOp::LogSoftmax)
    }),
    ("Hardmax", |lw, id| {
        softmax::lower_row(lw, id, k::rows::RowOp::Hardmax)
    }),
    ("LpNormalization", softmax::lower_lp),
    ("LayerNormalization", normalize::lower_layer_norm),
    ("layer_norm", normalize::lower_layer_norm),
    ("RMSNormalization", normalize::lower_rms_norm),
    ("rms_norm", normalize::lower_rms_norm),
    ("SimplifiedLayerNormalization", normalize::lower_rms_norm),
    (
        "com.microsoft.SkipLayerNormalization",
        normalize::lower_skip_layer_norm,
    ),
    (
        "com.microsoft.SkipSimplifiedLayerNormalization",
        normalize::lower_skip_layer_norm,
    ),
    ("BatchNormalization", normalize::lower_batch_norm),
    ("InstanceNormalization", normalize::lower_instance_norm),
    ("GroupNormalization", normalize::lower_group_norm),
    ("MeanVarianceNormalization", normalize::lower_mvn),
    ("NegativeLogLikelihoodLoss", loss::lower_nll),
    ("SoftmaxCrossEntropyLoss", loss::lower_sce),
];

/// The element handling of `op`'s dtype, or an "unsupported" error.
fn elem(lw: &Lowerer, op: &Operand) -> Result<Elem, TargetError> {
    Elem::of(op.dtype).ok_or_else(|| lw.unsupported(format!("dtype {}", op.dtype)))
}

/// A float element (f32 or f64), or an "unsupported" error.
fn float_elem(lw: &Lowerer, op: &Operand) -> Result<Elem, TargetError> {
    match Elem::of(op.dtype) {
        Some(e) if e.is_float() => Ok(e),
        _ => Err(lw.unsupported(format!("dtype {}", op.dtype))),
    }
}

/// The exp/log helpers, registered.
fn math(lw: &mut Lowerer) -> Result<MathHelpers, TargetError> {
    let fma = lw
        .isa()
        .isa_flags()
        .iter()
        .any(|f| f.name == "has_fma" && f.as_bool() == Some(true));
    Ok(MathHelpers {
        exp: lw.helper_index("exp")?,
        log: lw.helper_index("log")?,
        fma,
    })
}

/// Whether output `i` of `id` exists and something reads it.
fn wanted(lw: &Lowerer, id: NodeId, i: usize) -> bool {
    let node = lw.graph.node(id);
    if i >= node.outputs.len() {
        return false;
    }
    let v = Value {
        node: id,
        output: i,
    };
    !lw.graph.users(v).is_empty() || lw.graph.is_output(v)
}

/// `axis` normalised against `rank` (negative counts from the end).
fn norm_axis(lw: &Lowerer, a: i64, rank: usize) -> Result<usize, TargetError> {
    let r = rank as i64;
    if a < -r || a >= r.max(1) {
        return Err(lw.error(format!("axis {a} is out of range for rank {rank}")));
    }
    Ok(if a < 0 { (a + r) as usize } else { a as usize })
}

fn attr_err(lw: &Lowerer, e: impl std::fmt::Display) -> TargetError {
    lw.error(e)
}

fn product(dims: &[Dim]) -> Dim {
    dims.iter().fold(Dim::from(1i64), |a, d| a.mul(d))
}

/// `(outer, n, inner)` of a shape around axis `a`.
fn split_at_axis(shape: &[Dim], a: usize) -> (Dim, Dim, Dim) {
    (
        product(&shape[..a]),
        shape[a].clone(),
        product(&shape[a + 1..]),
    )
}

/// The reduced axes of a `Reduce*` node: `None` for "no reduction" (empty axes with
/// `noop_with_empty_axes`).
fn reduce_mask(lw: &Lowerer, id: NodeId, rank: usize) -> Result<Option<Vec<bool>>, TargetError> {
    let node = lw.graph.node(id);
    let noop = node
        .attrs
        .int_or("noop_with_empty_axes", 0)
        .map_err(|e| attr_err(lw, e))?
        != 0;
    let axes: Vec<i64> = match node.input(1) {
        None => vec![],
        Some(v) => match lw.dims_input(id, 1) {
            Some(d) => d
                .iter()
                .map(|d| d.as_const())
                .collect::<Option<Vec<i64>>>()
                .ok_or_else(|| lw.unsupported("symbolic reduction axes"))?,
            None => {
                let t = lw.graph.value_type(v);
                if t.shape.len() == 1 && t.shape[0].as_const() == Some(0) {
                    vec![]
                } else {
                    return Err(lw.unsupported("reduction axes computed at run time"));
                }
            }
        },
    };
    if axes.is_empty() {
        return Ok(if noop { None } else { Some(vec![true; rank]) });
    }
    let mut mask = vec![false; rank];
    for &a in &axes {
        let n = norm_axis(lw, a, rank)?;
        if mask[n] {
            return Err(lw.error(format!("axis {a} appears twice in {axes:?}")));
        }
        mask[n] = true;
    }
    Ok(Some(mask))
}

/// Groups of a shape under a reduction mask: axes of size 1 dropped, neighbours with the
/// same status merged. Always holds a reduced group.
fn reduce_groups(shape: &[Dim], mask: &[bool]) -> Vec<(Dim, bool)> {
    let mut groups: Vec<(Dim, bool)> = Vec::new();
    for (d, &r) in shape.iter().zip(mask) {
        if d.as_const() == Some(1) {
            continue;
        }
        match groups.last_mut() {
            Some((g, gr)) if *gr == r => *g = g.mul(d),
            _ => groups.push((d.clone(), r)),
        }
    }
    if !groups.iter().any(|g| g.1) {
        groups.push((Dim::from(1i64), true));
    }
    groups
}

fn lower_reduce(lw: &mut Lowerer, id: NodeId, kind: RKind) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let e = elem(lw, &x)?;
    if !e.is_float() && !kind.exact_on_ints() {
        return Err(lw.unsupported(format!("{kind:?} of {}", x.dtype)));
    }
    if x.dtype == kiln_ir::dtype::DType::Bool && !matches!(kind, RKind::Max | RKind::Min) {
        return Err(lw.unsupported(format!("{kind:?} of bool")));
    }
    let Some(mask) = reduce_mask(lw, id, x.shape.len())? else {
        return lw.alias_output(id, 0, &x);
    };
    let groups = reduce_groups(&x.shape, &mask);
    let pattern: Vec<bool> = groups.iter().map(|g| g.1).collect();
    let math = if kind.needs_math() {
        Some(math(lw)?)
    } else {
        None
    };
    let pat: String = pattern.iter().map(|&r| if r { 'R' } else { 'K' }).collect();
    let key = format!("reduce_{kind:?}_{}_{pat}", x.dtype);
    let kern = lw.kernel(&key, |kb| k::reduce(kb, kind, e, &pattern, math))?;
    let y = lw.output(id, 0);
    let mut args = vec![x.ptr(), y.ptr()];
    args.extend(groups.into_iter().map(|g| Arg::Int(g.0)));
    lw.emit(kern, args);
    Ok(())
}

#[cfg(test)]
mod tests;
