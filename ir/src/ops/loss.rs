//! Loss ops: `NegativeLogLikelihoodLoss` (opset 22) and `SoftmaxCrossEntropyLoss`
//! (opset 13).
//!
//! Both take scores `[N, C, d1, ..., dk]` (k >= 0), integer targets `[N, d1, ..., dk]`, an
//! optional per-class weight `[C]`, the `reduction` (`none`, `sum`, `mean`, default `mean`)
//! and an optional `ignore_index`. The element loss is `-weight[t] * score[n, t, d...]` with
//! `t = target[n, d...]`; an element whose target equals `ignore_index` has loss 0 and weight
//! 0 (its target need not be a valid class). `mean` divides the summed loss by the summed
//! weights of the elements (1 each without a weight input), so ignored elements do not count.

use crate::attr::{Attrs, AttrsExt};
use crate::bail;
use crate::dim::Dim;
use crate::dtype::DType;
use crate::ops::{EvalCtx, InferCtx, OpResult, OpSpec};
use crate::tensor::Tensor;
use crate::types::{Shape, ValueType};

pub const SPECS: &[OpSpec] = &[
    OpSpec::new("NegativeLogLikelihoodLoss", infer_nll, eval_nll),
    OpSpec::new("SoftmaxCrossEntropyLoss", infer_sce, eval_sce),
];

#[derive(Clone, Copy, PartialEq, Debug)]
enum Reduction {
    None,
    Sum,
    Mean,
}

fn reduction(attrs: &Attrs, op: &str) -> OpResult<Reduction> {
    match attrs.str_or("reduction", "mean")? {
        "none" => Ok(Reduction::None),
        "sum" => Ok(Reduction::Sum),
        "mean" => Ok(Reduction::Mean),
        r => bail!("{op}: reduction must be none, sum or mean, got {r:?}"),
    }
}

/// Two dims that are known to differ (both constant and unequal).
fn differ(a: &Dim, b: &Dim) -> bool {
    matches!((a.as_const(), b.as_const()), (Some(x), Some(y)) if x != y)
}

/// Checks the operand types of a loss op; returns the loss type.
fn infer_loss(ctx: &InferCtx, op: &str) -> OpResult<ValueType> {
    let x = ctx.input(0)?;
    let t = ctx.input(1)?;
    if !x.dtype.is_float() {
        bail!("{op}: the scores must be floating point, got {x}");
    }
    if x.rank() < 2 {
        bail!("{op}: the scores must have shape [N, C, d1, ...], got {x}");
    }
    if !matches!(t.dtype, DType::I32 | DType::I64) {
        bail!("{op}: the target must be int32 or int64, got {t}");
    }
    if t.rank() != x.rank() - 1 {
        bail!(
            "{op}: the target of scores {x} must have rank {}, got {t}",
            x.rank() - 1
        );
    }
    // The loss has the target's shape [N, d1, ...]; prefer whichever dim is constant.
    let mut shape: Shape = Vec::with_capacity(t.rank());
    for (i, td) in t.shape.iter().enumerate() {
        let xd = &x.shape[if i == 0 { 0 } else { i + 1 }];
        if differ(xd, td) {
            bail!("{op}: target {t} does not match scores {x}");
        }
        shape.push(if td.is_const() {
            td.clone()
        } else {
            xd.clone()
        });
    }
    if let Some(w) = ctx.opt_input(2) {
        if w.dtype != x.dtype || w.rank() != 1 || differ(&w.shape[0], &x.shape[1]) {
            bail!(
                "{op}: the weight must be {}[C] for scores {x}, got {w}",
                x.dtype
            );
        }
    }
    if reduction(ctx.attrs, op)? != Reduction::None {
        shape.clear();
    }
    Ok(ValueType::new(x.dtype, shape))
}

fn infer_nll(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    Ok(vec![infer_loss(ctx, "NegativeLogLikelihoodLoss")?])
}

fn infer_sce(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let loss = infer_loss(ctx, "SoftmaxCrossEntropyLoss")?;
    let mut out = vec![loss];
    if ctx.num_outputs > 1 {
        out.push(ctx.input(0)?.clone());
    }
    Ok(out)
}

/// The loss of `x` (log-probabilities, `shape = [N, C, d...]`, flat) against `target`,
/// reduced as asked; the result has the target's shape for `none`, else is a scalar.
fn nll(
    op: &str,
    attrs: &Attrs,
    x: &[f64],
    shape: &[usize],
    target: &Tensor,
    weight: Option<&Tensor>,
) -> OpResult<(Vec<f64>, Vec<usize>)> {
    let red = reduction(attrs, op)?;
    let ignore = attrs.int("ignore_index")?;
    if shape.len() < 2 {
        bail!("{op}: the scores must have shape [N, C, d1, ...], got {shape:?}");
    }
    let (n, c) = (shape[0], shape[1]);
    let d: usize = shape[2..].iter().product();
    let mut tshape = vec![n];
    tshape.extend_from_slice(&shape[2..]);
    if target.shape() != &tshape[..] {
        bail!(
            "{op}: target shape {:?} does not match scores shape {shape:?}",
            target.shape()
        );
    }
    let w = weight.map(|w| w.to_f64());
    if let Some(w) = &w {
        if w.len() != c {
            bail!("{op}: the weight has {} elements for {c} classes", w.len());
        }
    }
    let target = target.to_i64();
    let mut loss = vec![0.0; n * d];
    let mut wsum = 0.0;
    for i in 0..n {
        for j in 0..d {
            let t = target[i * d + j];
            if Some(t) == ignore {
                continue;
            }
            if t < 0 || t as usize >= c {
                bail!("{op}: target {t} is not a class in [0, {c})");
            }
            let t = t as usize;
            let wt = w.as_ref().map_or(1.0, |w| w[t]);
            loss[i * d + j] = -x[(i * c + t) * d + j] * wt;
            wsum += wt;
        }
    }
    Ok(match red {
        Reduction::None => (loss, tshape),
        Reduction::Sum => (vec![loss.iter().sum()], vec![]),
        Reduction::Mean => (vec![loss.iter().sum::<f64>() / wsum], vec![]),
    })
}

fn eval_nll(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let (loss, shape) = nll(
        "NegativeLogLikelihoodLoss",
        ctx.attrs,
        &x.to_f64(),
        x.shape(),
        ctx.input(1)?,
        ctx.opt_input(2),
    )?;
    Ok(vec![Tensor::from_f64(x.dtype(), shape, &loss)])
}

/// `log_softmax` over axis 1 of `x` shaped `[N, C, d...]`.
fn log_softmax_axis1(x: &[f64], shape: &[usize]) -> Vec<f64> {
    let (n, c) = (shape[0], shape[1]);
    let d: usize = shape[2..].iter().product();
    let mut out = vec![0.0; x.len()];
    for i in 0..n {
        for j in 0..d {
            let at = |k: usize| (i * c + k) * d + j;
            let m = (0..c).map(|k| x[at(k)]).fold(f64::NEG_INFINITY, f64::max);
            let lse = m + (0..c).map(|k| (x[at(k)] - m).exp()).sum::<f64>().ln();
            for k in 0..c {
                out[at(k)] = x[at(k)] - lse;
            }
        }
    }
    out
}

fn eval_sce(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    const OP: &str = "SoftmaxCrossEntropyLoss";
    let x = ctx.input(0)?;
    if x.rank() < 2 {
        bail!(
            "{OP}: the scores must have shape [N, C, d1, ...], got {:?}",
            x.shape()
        );
    }
    let logp = log_softmax_axis1(&x.to_f64(), x.shape());
    let (loss, shape) = nll(
        OP,
        ctx.attrs,
        &logp,
        x.shape(),
        ctx.input(1)?,
        ctx.opt_input(2),
    )?;
    let mut out = vec![Tensor::from_f64(x.dtype(), shape, &loss)];
    if ctx.num_outputs > 1 {
        out.push(Tensor::from_f64(x.dtype(), x.shape().to_vec(), &logp));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::attr::Attr;
    use crate::dim::Dim;
    use crate::dtype::DType;
    use crate::ops::misc::testutil::{attrs, f32t, i64t, infer_types, run_op};
    use crate::types::ValueType;

    const NLL: &str = "NegativeLogLikelihoodLoss";
    const SCE: &str = "SoftmaxCrossEntropyLoss";

    fn red(r: &str) -> (&'static str, Attr) {
        ("reduction", Attr::Str(r.to_string()))
    }

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }

    // Scores [N=2, C=3, d=2]: x[n, c, j] = 10n + 3c + j (+ 0.5 for j = 1).
    fn scores() -> Option<crate::tensor::Tensor> {
        let mut v = vec![];
        for n in 0..2 {
            for c in 0..3 {
                for j in 0..2 {
                    v.push((10 * n + 3 * c + j) as f32 + if j == 1 { 0.5 } else { 0.0 });
                }
            }
        }
        f32t(&[2, 3, 2], &v)
    }

    #[test]
    fn nll_none_gathers_negated_scores() {
        // targets [[2, 0], [1, 1]] pick x[0,2,0]=6, x[0,0,1]=1.5, x[1,1,0]=13, x[1,1,1]=14.5.
        let out = run_op(
            NLL,
            &attrs(&[red("none")]),
            vec![scores(), i64t(&[2, 2], &[2, 0, 1, 1])],
            1,
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[2, 2]);
        assert_eq!(out[0].to_f64(), vec![-6.0, -1.5, -13.0, -14.5]);
    }

    #[test]
    fn nll_weighted_mean_divides_by_weight_sum() {
        // weights [1, 2, 4]: losses -24, -1.5, -26, -29; sum -80.5 over weights 4+1+2+2 = 9.
        let w = f32t(&[3], &[1.0, 2.0, 4.0]);
        let t = i64t(&[2, 2], &[2, 0, 1, 1]);
        let out = run_op(NLL, &attrs(&[]), vec![scores(), t.clone(), w.clone()], 1).unwrap();
        assert!(out[0].shape().is_empty());
        close(&out[0].to_f64(), &[-80.5 / 9.0]);
        let out = run_op(NLL, &attrs(&[red("sum")]), vec![scores(), t, w], 1).unwrap();
        assert_eq!(out[0].to_f64(), vec![-80.5]);
    }

    #[test]
    fn nll_ignore_index_may_lie_outside_the_classes() {
        // ignore_index -7: the ignored elements weigh nothing, even in the mean.
        let a = attrs(&[("ignore_index", Attr::Int(-7))]);
        let t = i64t(&[2, 2], &[-7, 0, 1, -7]);
        let out = run_op(NLL, &a, vec![scores(), t.clone()], 1).unwrap();
        close(&out[0].to_f64(), &[-(1.5 + 13.0) / 2.0]);
        let mut a = a;
        a.insert("reduction".into(), Attr::Str("none".into()));
        let out = run_op(NLL, &a, vec![scores(), t], 1).unwrap();
        assert_eq!(out[0].to_f64(), vec![0.0, -1.5, -13.0, 0.0]);
    }

    #[test]
    fn nll_two_d_and_bad_targets() {
        let x = f32t(&[2, 3], &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]);
        let out = run_op(
            NLL,
            &attrs(&[red("sum")]),
            vec![x.clone(), i64t(&[2], &[2, 0])],
            1,
        )
        .unwrap();
        close(&out[0].to_f64(), &[-0.7]);
        let err = run_op(NLL, &attrs(&[]), vec![x.clone(), i64t(&[2], &[3, 0])], 1);
        assert!(err.unwrap_err().0.contains("not a class"));
        let err = run_op(NLL, &attrs(&[]), vec![x.clone(), i64t(&[3], &[0, 0, 0])], 1);
        assert!(err.is_err());
        let err = run_op(NLL, &attrs(&[red("avg")]), vec![x, i64t(&[2], &[0, 0])], 1);
        assert!(err.unwrap_err().0.contains("reduction"));
    }

    #[test]
    fn nll_infers_symbolic_shapes() {
        let n = Dim::sym("n");
        let x = ValueType::new(DType::F32, vec![n.clone(), 5usize.into(), Dim::sym("h")]);
        let t = ValueType::new(DType::I64, vec![Dim::sym("m"), 7usize.into()]);
        let a = attrs(&[red("none")]);
        let out = infer_types(NLL, &a, vec![Some(x.clone()), Some(t)], vec![], 1).unwrap();
        assert_eq!(out[0].shape, vec![n, Dim::from(7usize)]);
        let t = ValueType::new(DType::I64, vec![Dim::sym("n"), 7usize.into()]);
        let out = infer_types(
            NLL,
            &attrs(&[]),
            vec![Some(x.clone()), Some(t.clone())],
            vec![],
            1,
        );
        assert!(out.unwrap()[0].shape.is_empty());
        let w = ValueType::new(DType::F32, vec![4usize.into()]);
        let bad = infer_types(NLL, &attrs(&[]), vec![Some(x), Some(t), Some(w)], vec![], 1);
        assert!(bad.is_err());
    }

    #[test]
    fn sce_log_prob_and_loss() {
        // Row [0, ln 2, ln 5] has log-softmax [-ln 8, ln 2 - ln 8, ln 5 - ln 8].
        let (l2, l5, l8) = (2f64.ln(), 5f64.ln(), 8f64.ln());
        let x = f32t(&[2, 3], &[0.0, l2 as f32, l5 as f32, 1.0, 1.0, 1.0]);
        let a = attrs(&[red("none")]);
        let out = run_op(SCE, &a, vec![x.clone(), i64t(&[2], &[2, 1])], 2).unwrap();
        let l3 = 3f64.ln();
        close(&out[0].to_f64(), &[l8 - l5, l3]);
        assert_eq!(out[1].shape(), &[2, 3]);
        close(&out[1].to_f64(), &[-l8, l2 - l8, l5 - l8, -l3, -l3, -l3]);
        // Weighted mean with ignore_index 1: only the first row counts.
        let a = attrs(&[("ignore_index", Attr::Int(1))]);
        let w = f32t(&[3], &[1.0, 1.0, 3.0]);
        let out = run_op(SCE, &a, vec![x, i64t(&[2], &[2, 1]), w], 1).unwrap();
        assert_eq!(out.len(), 1);
        close(&out[0].to_f64(), &[l8 - l5]);
    }

    #[test]
    fn sce_over_spatial_dims() {
        // [N=1, C=2, d=2]: column 0 is [0, 0] (log p = -ln 2 each), column 1 is [3, 1].
        let x = f32t(&[1, 2, 2], &[0.0, 3.0, 0.0, 1.0]);
        let out = run_op(
            SCE,
            &attrs(&[red("sum")]),
            vec![x, i64t(&[1, 2], &[1, 0])],
            2,
        )
        .unwrap();
        let (l2, a, b) = (
            2f64.ln(),
            (1.0 + (-2f64).exp()).ln(),
            (1.0 + 2f64.exp()).ln(),
        );
        close(&out[0].to_f64(), &[l2 + a]);
        close(&out[1].to_f64(), &[-l2, -a, -l2, -b]);
    }
}
