//! Reductions: `ReduceSum` and its relatives (axes as input 1, `keepdims`,
//! `noop_with_empty_axes`), `ArgMax` and `ArgMin`.
//!
//! Float reductions accumulate in f64 and round to the output dtype once. Integer sums,
//! products, maxima and minima are exact in i64 (wrapping into the dtype); integer means and
//! norms go through f64 and truncate, as numpy's `.astype` does.

use crate::attr::AttrsExt;
use crate::bail;
use crate::dim::Dim;
use crate::dtype::DType;
use crate::ops::util::{attr_axis, axis, one};
use crate::ops::{EvalCtx, InferCtx, OpResult, OpSpec};
use crate::tensor::{numel, strided_offsets, strides, Tensor};
use crate::types::{Shape, ValueType};

pub const SPECS: &[OpSpec] = &[
    OpSpec::new("ReduceSum", infer_reduce, eval_sum).with_sym(sym_sum),
    OpSpec::new("ReduceMean", infer_reduce, eval_mean),
    OpSpec::new("ReduceMax", infer_reduce, eval_max).with_sym(sym_max),
    OpSpec::new("ReduceMin", infer_reduce, eval_min).with_sym(sym_min),
    OpSpec::new("ReduceProd", infer_reduce, eval_prod).with_sym(sym_prod),
    OpSpec::new("ReduceL1", infer_reduce, eval_l1),
    OpSpec::new("ReduceL2", infer_reduce, eval_l2),
    OpSpec::new("ReduceLogSum", infer_reduce, eval_log_sum),
    OpSpec::new("ReduceLogSumExp", infer_reduce, eval_log_sum_exp),
    OpSpec::new("ReduceSumSquare", infer_reduce, eval_sum_square),
    OpSpec::new("ArgMax", infer_arg, eval_argmax),
    OpSpec::new("ArgMin", infer_arg, eval_argmin),
];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    L1,
    L2,
    LogSum,
    LogSumExp,
    SumSquare,
}

fn keepdims(attrs: &crate::attr::Attrs) -> OpResult<bool> {
    Ok(attrs.int_or("keepdims", 1)? != 0)
}

fn noop_with_empty_axes(attrs: &crate::attr::Attrs) -> OpResult<bool> {
    Ok(attrs.int_or("noop_with_empty_axes", 0)? != 0)
}

/// Which axes of a rank-`rank` input the axes list reduces; `None` means "no reduction"
/// (empty axes with `noop_with_empty_axes`).
fn reduced_mask(axes: &[i64], rank: usize, noop: bool) -> OpResult<Option<Vec<bool>>> {
    if axes.is_empty() {
        return Ok(if noop { None } else { Some(vec![true; rank]) });
    }
    let mut mask = vec![false; rank];
    for &a in axes {
        let n = axis(a, rank)?;
        if mask[n] {
            bail!("axis {a} appears twice in the reduction axes {axes:?}");
        }
        mask[n] = true;
    }
    Ok(Some(mask))
}

/// The output shape of a reduction with a known mask.
fn reduced_shape<T: Clone>(shape: &[T], mask: &[bool], keep: bool, one: T) -> Vec<T> {
    shape
        .iter()
        .zip(mask)
        .filter_map(|(d, &r)| match (r, keep) {
            (false, _) => Some(d.clone()),
            (true, true) => Some(one.clone()),
            (true, false) => None,
        })
        .collect()
}

/// The reduction axes as far as inference can see them: `Some(axes)` when known.
fn infer_axes(ctx: &InferCtx) -> OpResult<Option<Vec<i64>>> {
    let Some(t) = ctx.opt_input(1) else {
        return Ok(Some(vec![]));
    };
    if t.rank() > 1 {
        bail!("reduction axes must be a 1-D tensor, got {t}");
    }
    if !t.dtype.is_int() {
        bail!("reduction axes must be integers, got {t}");
    }
    if let Some(d) = ctx.dims_input(1) {
        if let Some(v) = d.iter().map(Dim::as_const).collect::<Option<Vec<i64>>>() {
            return Ok(Some(v));
        }
    }
    // An axes input known to be empty by its type.
    if t.rank() == 1 && t.shape[0].as_const() == Some(0) {
        return Ok(Some(vec![]));
    }
    Ok(None)
}

fn infer_reduce(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    let keep = keepdims(ctx.attrs)?;
    let noop = noop_with_empty_axes(ctx.attrs)?;
    match infer_axes(ctx)? {
        Some(axes) => match reduced_mask(&axes, x.rank(), noop)? {
            None => one(x.dtype, x.shape.clone()),
            Some(mask) => one(
                x.dtype,
                reduced_shape(&x.shape, &mask, keep, Dim::from(1i64)),
            ),
        },
        None if keep => {
            // Each dim is either kept or becomes 1: only dims already 1 are certain.
            let shape = x
                .shape
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    if d.as_const() == Some(1) {
                        d.clone()
                    } else {
                        ctx.data_dim(0, i)
                    }
                })
                .collect();
            one(x.dtype, shape)
        }
        None => {
            let n = ctx.input(1)?.shape.first().and_then(Dim::as_const);
            match n {
                Some(n) if n > 0 && (n as usize) <= x.rank() => {
                    one(x.dtype, ctx.data_shape(0, x.rank() - n as usize))
                }
                _ => bail!(
                    "with keepdims = 0 the output rank depends on the axes, which are not known"
                ),
            }
        }
    }
}

/// Flat input indices ordered so that each output element's inputs are contiguous (kept
/// axes outer, reduced axes inner, both row-major). `None` when that is already the order.
fn reduction_order(shape: &[usize], mask: &[bool]) -> Option<Vec<usize>> {
    // Axes of size 1 never change the order.
    let big: Vec<(usize, bool)> = shape
        .iter()
        .zip(mask)
        .enumerate()
        .filter(|(_, (&d, _))| d != 1)
        .map(|(i, (_, &r))| (i, r))
        .collect();
    let first_reduced = big.iter().position(|&(_, r)| r);
    let last_kept = big.iter().rposition(|&(_, r)| !r);
    match (first_reduced, last_kept) {
        (Some(f), Some(l)) if f < l => {}
        _ => return None,
    }
    let st = strides(shape);
    let perm: Vec<usize> = (0..shape.len())
        .filter(|&i| !mask[i])
        .chain((0..shape.len()).filter(|&i| mask[i]))
        .collect();
    let pshape: Vec<usize> = perm.iter().map(|&i| shape[i]).collect();
    let pstride: Vec<usize> = perm.iter().map(|&i| st[i]).collect();
    Some(strided_offsets(&pshape, &pstride))
}

/// Reorders `v` so that each output's inputs are contiguous; returns the group size.
fn grouped<T: Copy>(v: Vec<T>, shape: &[usize], mask: &[bool]) -> (Vec<T>, usize) {
    let k: usize = shape
        .iter()
        .zip(mask)
        .filter(|(_, &r)| r)
        .map(|(&d, _)| d)
        .product();
    match reduction_order(shape, mask) {
        Some(order) => (order.iter().map(|&i| v[i]).collect(), k),
        None => (v, k),
    }
}

/// Applies `f` to each group of `k` contiguous elements, `outer` times.
fn per_group<T, U>(v: &[T], outer: usize, k: usize, f: impl Fn(&[T]) -> U) -> Vec<U> {
    (0..outer).map(|o| f(&v[o * k..(o + 1) * k])).collect()
}

/// The smallest and largest value of an integer (or bool) dtype, as i64 bit patterns
/// (`u64::MAX` is -1, which `Tensor::from_i64` turns back into `u64::MAX`).
fn int_limits(d: DType) -> (i64, i64) {
    match d {
        DType::I8 => (i8::MIN as i64, i8::MAX as i64),
        DType::I16 => (i16::MIN as i64, i16::MAX as i64),
        DType::I32 => (i32::MIN as i64, i32::MAX as i64),
        DType::U8 => (0, u8::MAX as i64),
        DType::U16 => (0, u16::MAX as i64),
        DType::U32 => (0, u32::MAX as i64),
        DType::U64 => (0, -1),
        DType::Bool => (0, 1),
        _ => (i64::MIN, i64::MAX),
    }
}

fn reduce_f64(kind: Kind, s: &[f64]) -> f64 {
    match kind {
        Kind::Sum => s.iter().sum(),
        Kind::Mean => s.iter().sum::<f64>() / s.len() as f64,
        Kind::Max => s.iter().fold(f64::NEG_INFINITY, |a, &x| {
            if x.is_nan() || a.is_nan() {
                f64::NAN
            } else {
                a.max(x)
            }
        }),
        Kind::Min => s.iter().fold(f64::INFINITY, |a, &x| {
            if x.is_nan() || a.is_nan() {
                f64::NAN
            } else {
                a.min(x)
            }
        }),
        Kind::Prod => s.iter().product(),
        Kind::L1 => s.iter().map(|x| x.abs()).sum(),
        Kind::L2 => s.iter().map(|x| x * x).sum::<f64>().sqrt(),
        Kind::LogSum => s.iter().sum::<f64>().ln(),
        Kind::SumSquare => s.iter().map(|x| x * x).sum(),
        Kind::LogSumExp => {
            let m = s
                .iter()
                .copied()
                .filter(|x| x.is_finite())
                .fold(f64::NEG_INFINITY, f64::max);
            let m = if m.is_finite() { m } else { 0.0 };
            s.iter().map(|&x| (x - m).exp()).sum::<f64>().ln() + m
        }
    }
}

/// Integer reductions that stay exact in i64 (wrapping); `None` for the others.
fn reduce_i64(kind: Kind, s: &[i64], dtype: DType) -> Option<i64> {
    let (lo, hi) = int_limits(dtype);
    let unsigned64 = dtype == DType::U64;
    Some(match kind {
        Kind::Sum => s.iter().fold(0i64, |a, &x| a.wrapping_add(x)),
        Kind::Prod => s.iter().fold(1i64, |a, &x| a.wrapping_mul(x)),
        Kind::SumSquare => s
            .iter()
            .fold(0i64, |a, &x| a.wrapping_add(x.wrapping_mul(x))),
        Kind::L1 => s
            .iter()
            .fold(0i64, |a, &x| a.wrapping_add(x.wrapping_abs())),
        Kind::Max if unsigned64 => s.iter().map(|&x| x as u64).max().unwrap_or(0) as i64,
        Kind::Min if unsigned64 => s.iter().map(|&x| x as u64).min().unwrap_or(u64::MAX) as i64,
        Kind::Max => s.iter().copied().max().unwrap_or(lo),
        Kind::Min => s.iter().copied().min().unwrap_or(hi),
        _ => return None,
    })
}

fn eval_reduce(ctx: &EvalCtx, kind: Kind) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let axes = match ctx.opt_input(1) {
        Some(a) => {
            if !a.dtype().is_int() || a.rank() > 1 {
                bail!(
                    "reduction axes must be a 1-D integer tensor, got {}{:?}",
                    a.dtype(),
                    a.shape()
                );
            }
            a.to_i64()
        }
        None => vec![],
    };
    let Some(mask) = reduced_mask(&axes, x.rank(), noop_with_empty_axes(ctx.attrs)?)? else {
        return Ok(vec![x.clone()]);
    };
    let keep = keepdims(ctx.attrs)?;
    let out_shape = reduced_shape(x.shape(), &mask, keep, 1usize);
    let outer = numel(&out_shape);
    let dtype = x.dtype();
    if dtype.is_int() || dtype == DType::Bool {
        let (v, k) = grouped(x.to_i64(), x.shape(), &mask);
        if reduce_i64(kind, &[], dtype).is_some() {
            let r = per_group(&v, outer, k, |s| reduce_i64(kind, s, dtype).unwrap_or(0));
            return Ok(vec![Tensor::from_i64(dtype, out_shape, &r)]);
        }
        let r = per_group(&v, outer, k, |s| {
            let f: Vec<f64> = s.iter().map(|&x| x as f64).collect();
            reduce_f64(kind, &f)
        });
        return Ok(vec![Tensor::from_f64(dtype, out_shape, &r)]);
    }
    if !dtype.is_float() {
        bail!("cannot reduce a tensor of dtype {dtype}");
    }
    let (v, k) = grouped(x.to_f64(), x.shape(), &mask);
    let r = per_group(&v, outer, k, |s| reduce_f64(kind, s));
    Ok(vec![Tensor::from_f64(dtype, out_shape, &r)])
}

fn eval_sum(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    eval_reduce(ctx, Kind::Sum)
}
fn eval_mean(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    eval_reduce(ctx, Kind::Mean)
}
fn eval_max(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    eval_reduce(ctx, Kind::Max)
}
fn eval_min(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    eval_reduce(ctx, Kind::Min)
}
fn eval_prod(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    eval_reduce(ctx, Kind::Prod)
}
fn eval_l1(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    eval_reduce(ctx, Kind::L1)
}
fn eval_l2(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    eval_reduce(ctx, Kind::L2)
}
fn eval_log_sum(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    eval_reduce(ctx, Kind::LogSum)
}
fn eval_log_sum_exp(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    eval_reduce(ctx, Kind::LogSumExp)
}
fn eval_sum_square(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    eval_reduce(ctx, Kind::SumSquare)
}

/// Symbolic content of a reduction over a known rank-0/1 integer input (a shape's dims).
fn sym_reduce(ctx: &InferCtx, kind: Kind) -> Option<Vec<Dim>> {
    let x = ctx.opt_input(0)?;
    if x.rank() > 1 {
        return None;
    }
    let v = ctx.dims_input(0)?;
    let axes = infer_axes(ctx).ok()??;
    let noop = noop_with_empty_axes(ctx.attrs).ok()?;
    let Some(mask) = reduced_mask(&axes, x.rank(), noop).ok()? else {
        return Some(v);
    };
    if x.rank() == 0 || !mask[0] {
        return Some(v);
    }
    let mut it = v.into_iter();
    let r = match kind {
        Kind::Sum => it.fold(Dim::from(0i64), |a, d| a.add(&d)),
        Kind::Prod => it.fold(Dim::from(1i64), |a, d| a.mul(&d)),
        Kind::Max => {
            let first = it.next()?;
            it.fold(first, |a, d| a.maximum(&d))
        }
        Kind::Min => {
            let first = it.next()?;
            it.fold(first, |a, d| a.minimum(&d))
        }
        _ => return None,
    };
    Some(vec![r])
}

fn sym_sum(ctx: &InferCtx) -> Option<Vec<Dim>> {
    sym_reduce(ctx, Kind::Sum)
}
fn sym_prod(ctx: &InferCtx) -> Option<Vec<Dim>> {
    sym_reduce(ctx, Kind::Prod)
}
fn sym_max(ctx: &InferCtx) -> Option<Vec<Dim>> {
    sym_reduce(ctx, Kind::Max)
}
fn sym_min(ctx: &InferCtx) -> Option<Vec<Dim>> {
    sym_reduce(ctx, Kind::Min)
}

// ---- ArgMax / ArgMin ----

fn infer_arg(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    let a = attr_axis(ctx.attrs, 0, x.rank())?;
    let keep = keepdims(ctx.attrs)?;
    let mut shape: Shape = x.shape.clone();
    if keep {
        shape[a] = Dim::from(1i64);
    } else {
        shape.remove(a);
    }
    one(DType::I64, shape)
}

/// Index of the extreme element of `s`: the largest when `max`, else the smallest; ties
/// go to the first (or the last with `last`). NaN wins, as in numpy.
fn arg_extreme<T: PartialOrd + Copy>(s: &[T], max: bool, last: bool) -> usize {
    #[allow(clippy::eq_op)]
    let is_nan = |x: T| x != x;
    let mut best = 0usize;
    for (i, &x) in s.iter().enumerate().skip(1) {
        let b = s[best];
        let better = if is_nan(b) {
            last && is_nan(x)
        } else if is_nan(x) {
            true
        } else if max {
            x > b || (last && x == b)
        } else {
            x < b || (last && x == b)
        };
        if better {
            best = i;
        }
    }
    best
}

fn eval_arg(ctx: &EvalCtx, max: bool) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let a = attr_axis(ctx.attrs, 0, x.rank())?;
    let keep = keepdims(ctx.attrs)?;
    let last = ctx.attrs.int_or("select_last_index", 0)? != 0;
    if x.shape()[a] == 0 {
        bail!(
            "cannot take the arg{} over an empty axis",
            if max { "max" } else { "min" }
        );
    }
    let mut mask = vec![false; x.rank()];
    mask[a] = true;
    let out_shape = reduced_shape(x.shape(), &mask, keep, 1usize);
    let outer = numel(&out_shape);
    let r: Vec<i64> = if x.dtype().is_float() {
        let (v, k) = grouped(x.to_f64(), x.shape(), &mask);
        per_group(&v, outer, k, |s| arg_extreme(s, max, last) as i64)
    } else if x.dtype() == DType::U64 {
        let u: Vec<u64> = x.to_i64().into_iter().map(|v| v as u64).collect();
        let (v, k) = grouped(u, x.shape(), &mask);
        per_group(&v, outer, k, |s| arg_extreme(s, max, last) as i64)
    } else {
        let (v, k) = grouped(x.to_i64(), x.shape(), &mask);
        per_group(&v, outer, k, |s| arg_extreme(s, max, last) as i64)
    };
    Ok(vec![Tensor::from_i64(DType::I64, out_shape, &r)])
}

fn eval_argmax(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    eval_arg(ctx, true)
}
fn eval_argmin(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    eval_arg(ctx, false)
}

/// Runs single ops on concrete tensors for the unit tests of this module's siblings.
#[cfg(test)]
pub(crate) mod test_util {
    use std::collections::HashMap;
    use std::sync::Arc;

    use crate::attr::{Attr, Attrs};
    use crate::graph::WeightStore;
    use crate::ops::{lookup, EvalCtx, InferCtx, Known, OpResult};
    use crate::tensor::Tensor;
    use crate::types::ValueType;

    pub fn attrs(list: &[(&str, Attr)]) -> Attrs {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    /// Infers (with every input's content known) and evaluates `op`, checking that the
    /// inferred types match the computed tensors.
    pub fn run(
        op: &str,
        attrs: &Attrs,
        inputs: &[Option<Tensor>],
        num_outputs: usize,
    ) -> OpResult<Vec<Tensor>> {
        let spec = lookup(op).expect("op is registered");
        let weights = WeightStore::default();
        let types: Vec<Option<ValueType>> = inputs
            .iter()
            .map(|t| t.as_ref().map(|t| ValueType::of(t.dtype(), t.shape())))
            .collect();
        let fresh = || crate::dim::Dim::sym("unknown");
        let ictx = InferCtx {
            attrs,
            inputs: types.iter().map(|t| t.as_ref()).collect(),
            known: inputs
                .iter()
                .map(|t| t.as_ref().map(|t| Known::Tensor(Arc::new(t.clone()))))
                .collect(),
            num_outputs,
            weights: &weights,
            previous: None,
            fresh: &fresh,
        };
        let out_types = (spec.infer)(&ictx)?;
        let bindings = HashMap::new();
        let ectx = EvalCtx {
            attrs,
            inputs: inputs.iter().map(|t| t.clone().map(Arc::new)).collect(),
            num_outputs,
            output_types: &out_types,
            weights: &weights,
            bindings: &bindings,
        };
        let outs = (spec.eval)(&ectx)?;
        assert!(outs.len() >= num_outputs, "{op}: too few outputs");
        for (t, ty) in outs.iter().zip(&out_types).take(num_outputs) {
            assert_eq!(
                ValueType::of(t.dtype(), t.shape()),
                *ty,
                "{op}: inferred type differs from the computed tensor"
            );
        }
        Ok(outs)
    }

    /// As [`run`] for one output.
    pub fn run1(op: &str, attrs: &Attrs, inputs: &[Option<Tensor>]) -> OpResult<Tensor> {
        Ok(run(op, attrs, inputs, 1)?.remove(0))
    }

    pub fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_f32s(shape.to_vec(), v.to_vec()).expect("valid tensor")
    }

    pub fn i64s(shape: &[usize], v: &[i64]) -> Tensor {
        Tensor::from_i64s(shape.to_vec(), v.to_vec()).expect("valid tensor")
    }

    /// Asserts elementwise closeness (and equal shapes).
    pub fn assert_close(t: &Tensor, shape: &[usize], want: &[f64], tol: f64) {
        assert_eq!(t.shape(), shape, "shape");
        let got = t.to_f64();
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let ok = (g - w).abs() <= tol * (1.0 + w.abs()) || (g.is_nan() && w.is_nan()) || g == w;
            assert!(ok, "element {i}: got {g}, want {w} (all: {got:?})");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::*;
    use crate::attr::Attr;
    use crate::dtype::DType;
    use crate::tensor::Tensor;

    fn x234() -> Tensor {
        f32s(&[2, 3, 4], &(0..24).map(|i| i as f32).collect::<Vec<_>>())
    }

    #[test]
    fn sum_over_middle_axis_keepdims() {
        let y = run1(
            "ReduceSum",
            &attrs(&[]),
            &[Some(x234()), Some(i64s(&[1], &[1]))],
        )
        .unwrap();
        // out[i, 0, l] = sum_j x[i, j, l] = 3*(12i + l) + 12
        let want: Vec<f64> = (0..2)
            .flat_map(|i| (0..4).map(move |l| (36 * i + 3 * l + 12) as f64))
            .collect();
        assert_close(&y, &[2, 1, 4], &want, 0.0);
    }

    #[test]
    fn mean_over_two_axes_no_keepdims() {
        let y = run1(
            "ReduceMean",
            &attrs(&[("keepdims", Attr::Int(0))]),
            &[Some(x234()), Some(i64s(&[2], &[0, -1]))],
        )
        .unwrap();
        // mean over i, l of 12i + 4j + l = 6 + 4j + 1.5
        assert_close(&y, &[3], &[7.5, 11.5, 15.5], 0.0);
    }

    #[test]
    fn default_axes_reduce_all_and_noop() {
        let y = run1("ReduceMax", &attrs(&[]), &[Some(x234()), None]).unwrap();
        assert_close(&y, &[1, 1, 1], &[23.0], 0.0);
        let y = run1(
            "ReduceSum",
            &attrs(&[("noop_with_empty_axes", Attr::Int(1))]),
            &[Some(x234()), Some(i64s(&[0], &[]))],
        )
        .unwrap();
        assert_eq!(y, x234());
    }

    #[test]
    fn empty_set_identities() {
        let x = f32s(&[2, 0, 4], &[]);
        let ax = Some(i64s(&[1], &[1]));
        let cases = [
            ("ReduceSum", 0.0),
            ("ReduceProd", 1.0),
            ("ReduceMax", f64::NEG_INFINITY),
            ("ReduceMin", f64::INFINITY),
            ("ReduceL1", 0.0),
            ("ReduceL2", 0.0),
            ("ReduceSumSquare", 0.0),
            ("ReduceLogSum", f64::NEG_INFINITY),
            ("ReduceLogSumExp", f64::NEG_INFINITY),
        ];
        for (op, v) in cases {
            let y = run1(op, &attrs(&[]), &[Some(x.clone()), ax.clone()]).unwrap();
            assert_close(&y, &[2, 1, 4], &[v; 8], 0.0);
        }
        let xi = Tensor::from_i64(DType::I32, vec![0, 3], &[]);
        let ax0 = Some(i64s(&[1], &[0]));
        let y = run1("ReduceMax", &attrs(&[]), &[Some(xi.clone()), ax0.clone()]).unwrap();
        assert_eq!(y.to_i64(), vec![i32::MIN as i64; 3]);
        let y = run1("ReduceMin", &attrs(&[]), &[Some(xi), ax0.clone()]).unwrap();
        assert_eq!(y.to_i64(), vec![i32::MAX as i64; 3]);
        let xb = Tensor::from_bools(vec![0, 2], vec![]).unwrap();
        let y = run1("ReduceMax", &attrs(&[]), &[Some(xb), ax0]).unwrap();
        assert_eq!(y.to_bool(), vec![false, false]);
    }

    #[test]
    fn norms_and_logs() {
        let x = f32s(&[2, 2], &[3.0, -4.0, 1.0, 2.0]);
        let ax = Some(i64s(&[1], &[1]));
        let y = run1("ReduceL1", &attrs(&[]), &[Some(x.clone()), ax.clone()]).unwrap();
        assert_close(&y, &[2, 1], &[7.0, 3.0], 0.0);
        let y = run1("ReduceL2", &attrs(&[]), &[Some(x.clone()), ax.clone()]).unwrap();
        assert_close(&y, &[2, 1], &[5.0, 5f64.sqrt()], 1e-7);
        let y = run1(
            "ReduceSumSquare",
            &attrs(&[]),
            &[Some(x.clone()), ax.clone()],
        )
        .unwrap();
        assert_close(&y, &[2, 1], &[25.0, 5.0], 0.0);
        let y = run1("ReduceLogSum", &attrs(&[]), &[Some(x.clone()), ax.clone()]).unwrap();
        assert_close(&y, &[2, 1], &[f64::NAN, 3f64.ln()], 1e-7);
        let big = f32s(&[1, 2], &[1000.0, 1000.0]);
        let y = run1("ReduceLogSumExp", &attrs(&[]), &[Some(big), ax]).unwrap();
        assert_close(&y, &[1, 1], &[1000.0 + 2f64.ln()], 1e-7);
    }

    #[test]
    fn integer_reductions_are_exact_and_truncate_means() {
        let x = Tensor::from_i64(DType::I64, vec![3], &[i64::MAX - 2, 1, 1]);
        let y = run1(
            "ReduceSum",
            &attrs(&[("keepdims", Attr::Int(0))]),
            &[Some(x), None],
        )
        .unwrap();
        assert_eq!(y.to_i64(), vec![i64::MAX]);
        let x = Tensor::from_i64(DType::I32, vec![3], &[1, 2, 2]);
        let y = run1("ReduceMean", &attrs(&[]), &[Some(x), None]).unwrap();
        assert_eq!((y.dtype(), y.to_i64()), (DType::I32, vec![1]));
    }

    #[test]
    fn bad_axes_are_errors() {
        let e = run1(
            "ReduceSum",
            &attrs(&[]),
            &[Some(x234()), Some(i64s(&[1], &[3]))],
        );
        assert!(e.is_err());
        let e = run1(
            "ReduceSum",
            &attrs(&[]),
            &[Some(x234()), Some(i64s(&[2], &[1, -2]))],
        );
        assert!(e.is_err());
    }

    #[test]
    fn argmax_argmin_ties_and_keepdims() {
        let x = f32s(&[2, 3], &[1.0, 5.0, 5.0, 2.0, 0.0, 0.0]);
        let y = run1(
            "ArgMax",
            &attrs(&[("axis", Attr::Int(1))]),
            &[Some(x.clone())],
        )
        .unwrap();
        assert_eq!((y.shape().to_vec(), y.to_i64()), (vec![2, 1], vec![1, 0]));
        let a = attrs(&[
            ("axis", Attr::Int(-1)),
            ("keepdims", Attr::Int(0)),
            ("select_last_index", Attr::Int(1)),
        ]);
        let y = run1("ArgMax", &a, &[Some(x.clone())]).unwrap();
        assert_eq!((y.shape().to_vec(), y.to_i64()), (vec![2], vec![2, 0]));
        let y = run1("ArgMin", &a, &[Some(x.clone())]).unwrap();
        assert_eq!(y.to_i64(), vec![0, 2]);
        let y = run1("ArgMin", &attrs(&[]), &[Some(x)]).unwrap();
        assert_eq!(
            (y.shape().to_vec(), y.to_i64()),
            (vec![1, 3], vec![0, 1, 1])
        );
    }

    #[test]
    fn unknown_axes_keep_rank() {
        use crate::graph::WeightStore;
        use crate::ops::{lookup, InferCtx};
        use crate::types::ValueType;
        let x = ValueType::of(DType::F32, &[2, 1, 4]);
        let ax = ValueType::of(DType::I64, &[1]);
        let w = WeightStore::default();
        let fresh = || crate::dim::Dim::sym("r");
        let a = attrs(&[]);
        let ctx = InferCtx {
            attrs: &a,
            inputs: vec![Some(&x), Some(&ax)],
            known: vec![None, None],
            num_outputs: 1,
            weights: &w,
            previous: None,
            fresh: &fresh,
        };
        let t = (lookup("ReduceSum").unwrap().infer)(&ctx).unwrap();
        assert_eq!(t[0].to_string(), "f32[r, 1, r]");
    }
}
