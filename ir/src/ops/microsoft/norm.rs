//! ONNX Runtime's fused normalisations: `com.microsoft.SkipLayerNormalization`,
//! `com.microsoft.SkipSimplifiedLayerNormalization` and `SimplifiedLayerNormalization`
//! (registered by ONNX Runtime in the default domain).
//!
//! - Skip variants normalise `s = input + skip (+ bias)` over the last axis; `skip` may also be
//!   `(1, S, Hd)` or `(S, Hd)` and repeats over the batch. LayerNorm:
//!   `(s - mean) / sqrt(var + eps) * gamma (+ beta)`; simplified (RMS):
//!   `s / sqrt(mean(s^2) + eps) * gamma`. Outputs: the result, mean and inv_std_var
//!   (`(..., 1)`, f32; the simplified form's mean is zeros, as ONNX Runtime leaves it) and `s`.
//!   `epsilon` defaults to 1e-12.
//! - `SimplifiedLayerNormalization(X, scale)` normalises over the axes from `axis` (default -1)
//!   with `epsilon` (default 1e-5); Y has scale's dtype; the second output, inv_std_var, has
//!   X's shape with the normalised axes 1 and the `stash_type` dtype (default f32).

use crate::attr::{Attr, AttrsExt};
use crate::bail;
use crate::dim::Dim;
use crate::dtype::DType;
use crate::ops::attention::common::{float_input, float_input_type};
use crate::ops::elementwise::kernel::broadcast_map;
use crate::ops::util::axis;
use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::Tensor;
use crate::types::ValueType;

/// The dtype of saved statistics for input dtype `dt`.
fn stat_dtype(dt: DType) -> DType {
    if dt == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

fn stat_shape(shape: &[Dim], from: usize) -> Vec<Dim> {
    shape
        .iter()
        .enumerate()
        .map(|(i, d)| {
            if i >= from {
                Dim::from(1i64)
            } else {
                d.clone()
            }
        })
        .collect()
}

pub(crate) fn infer_skip(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = float_input_type(ctx, 0, "input", &[2, 3])?;
    float_input_type(ctx, 1, "skip", &[2, 3])?;
    float_input_type(ctx, 2, "gamma", &[1])?;
    let last = x.rank() - 1;
    let stat = ValueType::new(stat_dtype(x.dtype), stat_shape(&x.shape, last));
    Ok(vec![x.clone(), stat.clone(), stat, x.clone()])
}

fn eval_skip(ctx: &EvalCtx, simplified: bool) -> OpResult<Vec<Tensor>> {
    let x_t = float_input(ctx, 0, "input", &[2, 3])?;
    let skip_t = float_input(ctx, 1, "skip", &[2, 3])?;
    let gamma = float_input(ctx, 2, "gamma", &[1])?.to_f64();
    let (beta_i, bias_i) = if simplified { (None, 3) } else { (Some(3), 4) };
    let hd = *x_t.shape().last().unwrap_or(&0);
    let vec_input = |i: usize, name: &str| -> OpResult<Option<Vec<f64>>> {
        match ctx.opt_input(i) {
            Some(_) => {
                let t = float_input(ctx, i, name, &[1])?;
                if t.len() != hd {
                    bail!("{name} must hold {hd} values, got {:?}", t.shape());
                }
                Ok(Some(t.to_f64()))
            }
            None => Ok(None),
        }
    };
    if gamma.len() != hd {
        bail!("gamma must hold {hd} values, got {}", gamma.len());
    }
    let beta = match beta_i {
        Some(i) => vec_input(i, "beta")?,
        None => None,
    };
    let bias = vec_input(bias_i, "bias")?;
    let skip = skip_t.to_f64();
    let ss = skip_t.shape();
    let fits = ss.last() == Some(&hd)
        && (x_t.is_empty() || (!skip.is_empty() && x_t.len() % skip.len() == 0));
    if !fits {
        bail!("skip {ss:?} does not match input {:?}", x_t.shape());
    }
    let x = x_t.to_f64();
    let rows = x.len().checked_div(hd).unwrap_or(0);
    let mut out = vec![0.0; x.len()];
    let mut sum = vec![0.0; x.len()];
    let mut means = vec![0.0; rows];
    let mut inv = vec![0.0; rows];
    let eps = ctx.attrs.float_or("epsilon", 1e-12)? as f64;
    for r in 0..rows {
        let s = &mut sum[r * hd..(r + 1) * hd];
        for (j, v) in s.iter_mut().enumerate() {
            let i = r * hd + j;
            *v = x[i] + skip[i % skip.len()] + bias.as_ref().map_or(0.0, |b| b[j]);
        }
        let n = hd as f64;
        let (mean, var) = if simplified {
            (0.0, s.iter().map(|v| v * v).sum::<f64>() / n)
        } else {
            let m = s.iter().sum::<f64>() / n;
            (m, s.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n)
        };
        let is = 1.0 / (var + eps).sqrt();
        for (j, o) in out[r * hd..(r + 1) * hd].iter_mut().enumerate() {
            *o = (s[j] - mean) * is * gamma[j] + beta.as_ref().map_or(0.0, |b| b[j]);
        }
        means[r] = mean;
        inv[r] = is;
    }
    let dt = x_t.dtype();
    let mut stat_shape = x_t.shape().to_vec();
    if let Some(l) = stat_shape.last_mut() {
        *l = 1;
    }
    let sd = stat_dtype(dt);
    Ok(vec![
        Tensor::from_f64(dt, x_t.shape().to_vec(), &out),
        Tensor::from_f64(sd, stat_shape.clone(), &means),
        Tensor::from_f64(sd, stat_shape, &inv),
        Tensor::from_f64(dt, x_t.shape().to_vec(), &sum),
    ])
}

pub(crate) fn eval_skip_layer_norm(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    eval_skip(ctx, false)
}

pub(crate) fn eval_skip_simplified(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    eval_skip(ctx, true)
}

fn stash_dtype(ctx_attrs: &crate::attr::Attrs) -> OpResult<DType> {
    match ctx_attrs.get("stash_type") {
        None => Ok(DType::F32),
        Some(Attr::DType(d)) => Ok(*d),
        Some(Attr::Int(c)) => DType::from_onnx_code(*c as i32)
            .filter(|d| d.is_float())
            .ok_or_else(|| crate::ops::OpError::new(format!("bad stash_type {c}"))),
        Some(a) => bail!("stash_type must be a dtype, got {a:?}"),
    }
}

pub(crate) fn infer_simplified(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    crate::ops::attention::common::require_float(x.dtype, "X")?;
    let scale = ctx.input(1)?;
    crate::ops::attention::common::require_float(scale.dtype, "scale")?;
    let ax = axis(ctx.attrs.int_or("axis", -1)?, x.rank())?;
    Ok(vec![
        ValueType::new(scale.dtype, x.shape.clone()),
        ValueType::new(stash_dtype(ctx.attrs)?, stat_shape(&x.shape, ax)),
    ])
}

pub(crate) fn eval_simplified(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x_t = ctx.input(0)?;
    crate::ops::attention::common::require_float(x_t.dtype(), "X")?;
    let scale_t = ctx.input(1)?;
    crate::ops::attention::common::require_float(scale_t.dtype(), "scale")?;
    let ax = axis(ctx.attrs.int_or("axis", -1)?, x_t.rank())?;
    let eps = ctx.attrs.float_or("epsilon", 1e-5)? as f64;
    let inner: usize = x_t.shape()[ax..].iter().product();
    let scale = scale_t.to_f64();
    // The scale broadcasts against the normalised axes.
    let ss = scale_t.shape();
    let inner_shape = &x_t.shape()[ax..];
    if ss.len() > inner_shape.len()
        || ss
            .iter()
            .rev()
            .zip(inner_shape.iter().rev())
            .any(|(&a, &b)| a != 1 && a != b)
    {
        bail!(
            "scale {:?} does not broadcast to the normalised shape {:?}",
            ss,
            inner_shape
        );
    }
    let scale_at = broadcast_map(ss, inner_shape);
    let x = x_t.to_f64();
    let rows = x.len().checked_div(inner).unwrap_or(0);
    let mut y = vec![0.0; x.len()];
    let mut inv = vec![0.0; rows];
    for r in 0..rows {
        let row = &x[r * inner..(r + 1) * inner];
        let ms = row.iter().map(|v| v * v).sum::<f64>() / inner as f64;
        let is = 1.0 / (ms + eps).sqrt();
        for (j, o) in y[r * inner..(r + 1) * inner].iter_mut().enumerate() {
            *o = row[j] * is * scale[scale_at[j]];
        }
        inv[r] = is;
    }
    let mut stat_shape = x_t.shape().to_vec();
    for d in &mut stat_shape[ax..] {
        *d = 1;
    }
    Ok(vec![
        Tensor::from_f64(scale_t.dtype(), x_t.shape().to_vec(), &y),
        Tensor::from_f64(stash_dtype(ctx.attrs)?, stat_shape, &inv),
    ])
}

#[cfg(test)]
mod tests {
    use crate::attr::{Attr, Attrs};
    use crate::ops::attention::common::testing::{assert_close, f32s, run};

    #[test]
    fn skip_layer_norm_outputs() {
        // Row sums [1, 3] (+ bias [0, 0]): mean 2, var 1.
        let x = f32s(&[1, 1, 2], &[0.0, 2.0]);
        let skip = f32s(&[1, 2], &[1.0, 1.0]);
        let gamma = f32s(&[2], &[1.0, 2.0]);
        let beta = f32s(&[2], &[0.5, 0.5]);
        let a: Attrs = [("epsilon".to_string(), Attr::Float(0.0))]
            .into_iter()
            .collect();
        let out = run(
            "com.microsoft.SkipLayerNormalization",
            &[
                Some(x.clone()),
                Some(skip.clone()),
                Some(gamma.clone()),
                Some(beta),
            ],
            a.clone(),
            4,
        )
        .expect("sln");
        assert_close(&out[0], &[-0.5, 2.5], 1e-7);
        assert_eq!(out[1].shape(), &[1, 1, 1]);
        assert_close(&out[1], &[2.0], 0.0);
        assert_close(&out[2], &[1.0], 0.0);
        assert_close(&out[3], &[1.0, 3.0], 0.0);
        // RMS of [1, 3] is sqrt(5).
        let out = run(
            "com.microsoft.SkipSimplifiedLayerNormalization",
            &[Some(x), Some(skip), Some(gamma)],
            a,
            4,
        )
        .expect("ssln");
        let r = 5f64.sqrt();
        assert_close(&out[0], &[1.0 / r, 6.0 / r], 1e-7);
        assert_close(&out[1], &[0.0], 0.0);
        assert_close(&out[2], &[1.0 / r], 1e-7);
        assert_close(&out[3], &[1.0, 3.0], 0.0);
    }

    #[test]
    fn simplified_layer_norm_over_two_axes() {
        // Normalise over axes 1..: row [1, 1, 1, 1] has RMS 1; [2, 2, 2, 2] RMS 2.
        let x = f32s(&[2, 2, 2], &[1., 1., 1., 1., 2., 2., 2., 2.]);
        let scale = f32s(&[2], &[1.0, 3.0]);
        let a: Attrs = [
            ("axis".to_string(), Attr::Int(1)),
            ("epsilon".to_string(), Attr::Float(0.0)),
        ]
        .into_iter()
        .collect();
        let out = run(
            "SimplifiedLayerNormalization",
            &[Some(x), Some(scale)],
            a,
            2,
        )
        .expect("simplified");
        assert_close(&out[0], &[1., 3., 1., 3., 1., 3., 1., 3.], 1e-7);
        assert_eq!(out[1].shape(), &[2, 1, 1]);
        assert_close(&out[1], &[1.0, 0.5], 1e-7);
    }
}
