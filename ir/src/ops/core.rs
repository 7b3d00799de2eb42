//! kiln's structural ops: graph inputs, constants, symbolic integers.

use crate::attr::{Attr, AttrsExt};
use crate::bail;
use crate::dim::Dim;
use crate::dtype::DType;
use crate::ops::util::one;
use crate::ops::{EvalCtx, InferCtx, OpError, OpResult, OpSpec};
use crate::tensor::Tensor;
use crate::types::ValueType;

pub const SPECS: &[OpSpec] = &[
    OpSpec::new("input", infer_input, eval_input),
    OpSpec::new("constant", infer_constant, eval_constant).with_sym(sym_constant),
    OpSpec::new("dims", infer_dims, eval_dims).with_sym(sym_dims),
];

/// A graph input's type is fixed when it is added; the interpreter supplies its value.
fn infer_input(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    match ctx.previous {
        Some(p) if p.len() == 1 => Ok(p.to_vec()),
        _ => bail!("a graph input needs its declared type"),
    }
}

fn eval_input(_: &EvalCtx) -> OpResult<Vec<Tensor>> {
    bail!("graph inputs are supplied by the caller, not evaluated")
}

fn constant_tensor<'a>(
    attrs: &'a crate::attr::Attrs,
    weights: &'a crate::graph::WeightStore,
) -> OpResult<std::sync::Arc<Tensor>> {
    match attrs.get("value") {
        Some(Attr::Tensor(t)) => Ok(t.clone()),
        Some(Attr::Weight(name)) => weights
            .get(name)
            .cloned()
            .ok_or_else(|| OpError::new(format!("weight \"{name}\" has no data"))),
        _ => bail!("constant needs a `value` tensor or weight"),
    }
}

/// `constant {value = ...}`: an inline tensor or a named weight.
fn infer_constant(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    // A weight whose data is absent (IR text printed without its weights) keeps its type.
    if let (Some(Attr::Weight(name)), Some(p)) = (ctx.attrs.get("value"), ctx.previous) {
        if ctx.weights.get(name).is_none() && p.len() == 1 {
            return Ok(p.to_vec());
        }
    }
    let t = constant_tensor(ctx.attrs, ctx.weights)?;
    one(t.dtype(), t.shape().iter().map(|&d| Dim::from(d)).collect())
}

fn eval_constant(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    Ok(vec![(*constant_tensor(ctx.attrs, ctx.weights)?).clone()])
}

fn sym_constant(ctx: &InferCtx) -> Option<Vec<Dim>> {
    let t = constant_tensor(ctx.attrs, ctx.weights).ok()?;
    (t.dtype().is_int() && t.rank() <= 1).then(|| t.to_i64().into_iter().map(Dim::from).collect())
}

/// `dims {value = [1, seq, 4], dtype = i64, shape = [3]}`: integers known symbolically,
/// materialised from the symbol bindings at run time. `shape` is `[]` for a scalar.
fn dims_attrs(ctx_attrs: &crate::attr::Attrs) -> OpResult<(Vec<Dim>, DType, Vec<i64>)> {
    let value = ctx_attrs
        .dims("value")?
        .ok_or_else(|| OpError::new("dims needs `value`"))?;
    let dtype = ctx_attrs.dtype("dtype")?.unwrap_or(DType::I64);
    let shape = ctx_attrs
        .ints("shape")?
        .unwrap_or_else(|| vec![value.len() as i64]);
    if !dtype.is_int() {
        bail!("dims dtype must be an integer type, got {dtype}");
    }
    if shape.iter().product::<i64>() != value.len() as i64 || shape.len() > 1 {
        bail!("dims shape {shape:?} does not hold {} values", value.len());
    }
    Ok((value, dtype, shape))
}

fn infer_dims(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let (_, dtype, shape) = dims_attrs(ctx.attrs)?;
    one(dtype, shape.into_iter().map(Dim::from).collect())
}

fn eval_dims(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let (value, dtype, shape) = dims_attrs(ctx.attrs)?;
    let v = value
        .iter()
        .map(|d| d.eval(ctx.bindings))
        .collect::<Result<Vec<i64>, _>>()
        .map_err(|e| OpError::new(e.to_string()))?;
    Ok(vec![Tensor::from_i64(
        dtype,
        shape.iter().map(|&d| d as usize).collect(),
        &v,
    )])
}

fn sym_dims(ctx: &InferCtx) -> Option<Vec<Dim>> {
    dims_attrs(ctx.attrs).ok().map(|(v, _, _)| v)
}
