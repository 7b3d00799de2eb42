//! Normalisations: `Softmax`, `LogSoftmax`, `Hardmax` (opset-13 semantics: one axis),
//! `LayerNormalization`, `RMSNormalization`, `BatchNormalization`, `InstanceNormalization`,
//! `GroupNormalization` (opset 21: scale and bias per channel), `LpNormalization`,
//! `MeanVarianceNormalization`, `LRN`.
//!
//! Everything is computed in f64 and rounded to the output dtype once.

use crate::attr::{Attrs, AttrsExt};
use crate::bail;
use crate::dim::Dim;
use crate::dtype::DType;
use crate::ops::linalg::broadcast_map;
use crate::ops::util::{attr_axis, axis, one};
use crate::ops::{EvalCtx, InferCtx, OpError, OpResult, OpSpec};
use crate::tensor::{numel, Tensor};
use crate::types::{broadcast_concrete, broadcast_shapes, ValueType};

pub const SPECS: &[OpSpec] = &[
    OpSpec::new("Softmax", infer_float_same, eval_softmax),
    OpSpec::new("LogSoftmax", infer_float_same, eval_log_softmax),
    OpSpec::new("Hardmax", infer_float_same, eval_hardmax),
    OpSpec::new("LayerNormalization", infer_layer_norm, eval_layer_norm),
    OpSpec::new("RMSNormalization", infer_rms_norm, eval_rms_norm),
    OpSpec::new("BatchNormalization", infer_batch_norm, eval_batch_norm),
    OpSpec::new(
        "InstanceNormalization",
        infer_channel_norm,
        eval_instance_norm,
    ),
    OpSpec::new("GroupNormalization", infer_channel_norm, eval_group_norm),
    OpSpec::new("LpNormalization", infer_float_same, eval_lp_norm),
    OpSpec::new("MeanVarianceNormalization", infer_float_same, eval_mvn),
    OpSpec::new("LRN", infer_channel_norm, eval_lrn),
];

fn float_input<'a>(ctx: &InferCtx<'a>, i: usize) -> OpResult<&'a ValueType> {
    let t = ctx.input(i)?;
    if !t.dtype.is_float() {
        bail!("input {i} must be a float tensor, got {t}");
    }
    Ok(t)
}

fn float_tensor<'a>(ctx: &'a EvalCtx, i: usize) -> OpResult<&'a Tensor> {
    let t = ctx.input(i)?;
    if !t.dtype().is_float() {
        bail!("input {i} must be a float tensor, got {}", t.dtype());
    }
    Ok(t)
}

fn infer_float_same(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = float_input(ctx, 0)?;
    one(x.dtype, x.shape.clone())
}

fn epsilon(attrs: &Attrs) -> OpResult<f64> {
    Ok(attrs.float_or("epsilon", 1e-5)? as f64)
}

/// Calls `f` on each 1-D lane along `axis` of a tensor of `shape`: the lane's values are
/// gathered into a buffer, `f` rewrites them, and they are scattered back.
fn per_lane(shape: &[usize], a: usize, v: &mut [f64], mut f: impl FnMut(&mut [f64])) {
    let n = shape[a];
    let inner: usize = shape[a + 1..].iter().product();
    let outer: usize = shape[..a].iter().product();
    let mut buf = vec![0f64; n];
    for o in 0..outer {
        for j in 0..inner {
            let base = o * n * inner + j;
            for (i, b) in buf.iter_mut().enumerate() {
                *b = v[base + i * inner];
            }
            f(&mut buf);
            for (i, b) in buf.iter().enumerate() {
                v[base + i * inner] = *b;
            }
        }
    }
}

fn eval_lanes(ctx: &EvalCtx, f: impl FnMut(&mut [f64])) -> OpResult<Vec<Tensor>> {
    let x = float_tensor(ctx, 0)?;
    let a = attr_axis(ctx.attrs, -1, x.rank())?;
    let mut v = x.to_f64();
    per_lane(x.shape(), a, &mut v, f);
    Ok(vec![Tensor::from_f64(x.dtype(), x.shape().to_vec(), &v)])
}

fn lane_max(s: &[f64]) -> f64 {
    s.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

/// Rounds an intermediate to a sub-f32 dtype. ONNX defines Softmax and LogSoftmax by a
/// function body of ops in the input dtype (Sub, Exp, ReduceSum, Div/Log), and its reference
/// (numpy) rounds each stage to f16; the f16 node tests' expectations carry that rounding,
/// so f16/bf16 lanes round after each stage. f32 and f64 compute in f64 throughout.
fn stage_rounding(d: DType) -> fn(f64) -> f64 {
    match d {
        DType::F16 => |x| half::f16::from_f64(x).to_f64(),
        DType::BF16 => |x| half::bf16::from_f64(x).to_f64(),
        _ => |x| x,
    }
}

fn eval_softmax(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let q = stage_rounding(ctx.input(0)?.dtype());
    eval_lanes(ctx, |s| {
        let m = lane_max(s);
        let mut sum = 0.0;
        for x in s.iter_mut() {
            *x = q(q(*x - m).exp());
            sum += *x;
        }
        let sum = q(sum);
        for x in s.iter_mut() {
            *x /= sum;
        }
    })
}

fn eval_log_softmax(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let q = stage_rounding(ctx.input(0)?.dtype());
    eval_lanes(ctx, |s| {
        let m = lane_max(s);
        for x in s.iter_mut() {
            *x = q(*x - m);
        }
        let lse = q(q(s.iter().map(|&x| q(x.exp())).sum::<f64>()).ln());
        for x in s.iter_mut() {
            *x -= lse;
        }
    })
}

fn eval_hardmax(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    eval_lanes(ctx, |s| {
        let mut best = 0;
        for (i, &x) in s.iter().enumerate() {
            if x > s[best] {
                best = i;
            }
        }
        for (i, x) in s.iter_mut().enumerate() {
            *x = if i == best { 1.0 } else { 0.0 };
        }
    })
}

// ---- LayerNormalization / RMSNormalization ----

/// The dtype `stash_type` names (an ONNX dtype code; default f32).
fn stash_dtype(attrs: &Attrs) -> OpResult<DType> {
    let code = attrs.int_or("stash_type", 1)?;
    match DType::from_onnx_code(code as i32) {
        Some(d) if d.is_float() => Ok(d),
        _ => bail!("unsupported stash_type {code}"),
    }
}

/// Checks that a parameter broadcasts to `x` without changing its shape (symbolically).
fn check_param(x: &ValueType, p: &ValueType, what: &str) -> OpResult<()> {
    match broadcast_shapes(&[&x.shape, &p.shape]) {
        Some(s) if s.len() == x.rank() => Ok(()),
        _ => bail!("{what} {p} does not broadcast to the input {x}"),
    }
}

fn infer_layer_norm(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = float_input(ctx, 0)?;
    let a = attr_axis(ctx.attrs, -1, x.rank())?;
    check_param(x, ctx.input(1)?, "scale")?;
    if let Some(b) = ctx.opt_input(2) {
        check_param(x, b, "bias")?;
    }
    let stash = stash_dtype(ctx.attrs)?;
    let stat_shape: Vec<Dim> = x
        .shape
        .iter()
        .enumerate()
        .map(|(i, d)| if i < a { d.clone() } else { Dim::from(1i64) })
        .collect();
    Ok(vec![
        x.clone(),
        ValueType::new(stash, stat_shape.clone()),
        ValueType::new(stash, stat_shape),
    ])
}

/// A parameter's values broadcast to the full shape `shape` (or `None` when absent).
fn param_full(p: Option<&Tensor>, shape: &[usize], what: &str) -> OpResult<Option<Vec<f64>>> {
    let Some(p) = p else { return Ok(None) };
    if broadcast_concrete(&[shape, p.shape()]).as_deref() != Some(shape) {
        bail!(
            "{what} {:?} does not broadcast to the input {shape:?}",
            p.shape()
        );
    }
    let v = p.to_f64();
    if p.shape() == shape {
        return Ok(Some(v));
    }
    Ok(Some(
        broadcast_map(shape, p.shape())
            .into_iter()
            .map(|i| v[i])
            .collect(),
    ))
}

fn eval_layer_norm(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = float_tensor(ctx, 0)?;
    let a = attr_axis(ctx.attrs, -1, x.rank())?;
    let eps = epsilon(ctx.attrs)?;
    let stash = stash_dtype(ctx.attrs)?;
    let shape = x.shape();
    let scale = param_full(Some(ctx.input(1)?), shape, "scale")?.unwrap_or_default();
    let bias = param_full(ctx.opt_input(2), shape, "bias")?;
    let outer: usize = shape[..a].iter().product();
    let inner: usize = shape[a..].iter().product();
    let v = x.to_f64();
    let mut y = vec![0f64; v.len()];
    let mut means = Vec::with_capacity(outer);
    let mut inv_stds = Vec::with_capacity(outer);
    for o in 0..outer {
        let r = o * inner..(o + 1) * inner;
        let s = &v[r.clone()];
        let mean = s.iter().sum::<f64>() / inner as f64;
        let var = s.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / inner as f64;
        let inv = 1.0 / (var + eps).sqrt();
        for i in r {
            let mut t = (v[i] - mean) * inv * scale[i];
            if let Some(b) = &bias {
                t += b[i];
            }
            y[i] = t;
        }
        means.push(mean);
        inv_stds.push(inv);
    }
    let stat_shape: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if i < a { d } else { 1 })
        .collect();
    Ok(vec![
        Tensor::from_f64(x.dtype(), shape.to_vec(), &y),
        Tensor::from_f64(stash, stat_shape.clone(), &means),
        Tensor::from_f64(stash, stat_shape, &inv_stds),
    ])
}

fn infer_rms_norm(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = float_input(ctx, 0)?;
    attr_axis(ctx.attrs, -1, x.rank())?;
    check_param(x, ctx.input(1)?, "scale")?;
    stash_dtype(ctx.attrs)?;
    one(x.dtype, x.shape.clone())
}

fn eval_rms_norm(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = float_tensor(ctx, 0)?;
    let a = attr_axis(ctx.attrs, -1, x.rank())?;
    let eps = epsilon(ctx.attrs)?;
    let shape = x.shape();
    let scale = param_full(Some(ctx.input(1)?), shape, "scale")?.unwrap_or_default();
    let inner: usize = shape[a..].iter().product();
    let outer: usize = shape[..a].iter().product();
    let v = x.to_f64();
    let mut y = vec![0f64; v.len()];
    for o in 0..outer {
        let r = o * inner..(o + 1) * inner;
        let ms = v[r.clone()].iter().map(|x| x * x).sum::<f64>() / inner as f64;
        let inv = 1.0 / (ms + eps).sqrt();
        for i in r {
            y[i] = v[i] * inv * scale[i];
        }
    }
    Ok(vec![Tensor::from_f64(x.dtype(), shape.to_vec(), &y)])
}

// ---- per-channel normalisations: [N, C, spatial...] ----

/// `(n, c, spatial)` of an `[N, C, ...]` tensor.
fn nc_layout(shape: &[usize]) -> OpResult<(usize, usize, usize)> {
    if shape.len() < 2 {
        bail!("expected an input of shape [N, C, ...], got {shape:?}");
    }
    Ok((shape[0], shape[1], shape[2..].iter().product()))
}

/// A per-channel parameter's values, checked to hold `c` elements.
fn channel_param(t: &Tensor, c: usize, what: &str) -> OpResult<Vec<f64>> {
    if t.len() != c || t.rank() > 1 && t.shape().iter().filter(|&&d| d != 1).count() > 1 {
        bail!("{what} must have {c} elements, got shape {:?}", t.shape());
    }
    Ok(t.to_f64())
}

fn infer_channel_norm(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = float_input(ctx, 0)?;
    if x.rank() < 2 {
        bail!("expected an input of shape [N, C, ...], got {x}");
    }
    one(x.dtype, x.shape.clone())
}

fn infer_batch_norm(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = float_input(ctx, 0)?;
    if x.rank() < 2 {
        bail!("expected an input of shape [N, C, ...], got {x}");
    }
    let c = x.shape[1].clone();
    let mean = ctx.input(3)?;
    let var = ctx.input(4)?;
    Ok(vec![
        x.clone(),
        ValueType::new(mean.dtype, vec![c.clone()]),
        ValueType::new(var.dtype, vec![c]),
    ])
}

/// Mean and (population) variance of a slice.
fn mean_var(s: &[f64]) -> (f64, f64) {
    let n = s.len() as f64;
    let mean = s.iter().sum::<f64>() / n;
    let var = s.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var)
}

fn eval_batch_norm(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = float_tensor(ctx, 0)?;
    let (n, c, sp) = nc_layout(x.shape())?;
    let eps = epsilon(ctx.attrs)?;
    let momentum = ctx.attrs.float_or("momentum", 0.9)? as f64;
    let training = ctx.attrs.int_or("training_mode", 0)? != 0;
    let scale = channel_param(ctx.input(1)?, c, "scale")?;
    let bias = channel_param(ctx.input(2)?, c, "bias")?;
    let (mean_t, var_t) = (ctx.input(3)?, ctx.input(4)?);
    let in_mean = channel_param(mean_t, c, "mean")?;
    let in_var = channel_param(var_t, c, "var")?;
    let v = x.to_f64();
    let (mean, var) = if training {
        let mut means = Vec::with_capacity(c);
        let mut vars = Vec::with_capacity(c);
        for ch in 0..c {
            let s: Vec<f64> = (0..n)
                .flat_map(|b| v[(b * c + ch) * sp..(b * c + ch + 1) * sp].iter().copied())
                .collect();
            let (m, var) = mean_var(&s);
            means.push(m);
            vars.push(var);
        }
        (means, vars)
    } else {
        (in_mean.clone(), in_var.clone())
    };
    let mut y = vec![0f64; v.len()];
    for b in 0..n {
        for ch in 0..c {
            let k = scale[ch] / (var[ch] + eps).sqrt();
            for i in (b * c + ch) * sp..(b * c + ch + 1) * sp {
                y[i] = (v[i] - mean[ch]) * k + bias[ch];
            }
        }
    }
    let (run_mean, run_var): (Vec<f64>, Vec<f64>) = if training {
        (
            (0..c)
                .map(|i| in_mean[i] * momentum + mean[i] * (1.0 - momentum))
                .collect(),
            (0..c)
                .map(|i| in_var[i] * momentum + var[i] * (1.0 - momentum))
                .collect(),
        )
    } else {
        (in_mean, in_var)
    };
    Ok(vec![
        Tensor::from_f64(x.dtype(), x.shape().to_vec(), &y),
        Tensor::from_f64(mean_t.dtype(), vec![c], &run_mean),
        Tensor::from_f64(var_t.dtype(), vec![c], &run_var),
    ])
}

fn eval_instance_norm(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = float_tensor(ctx, 0)?;
    let (n, c, sp) = nc_layout(x.shape())?;
    let eps = epsilon(ctx.attrs)?;
    let scale = channel_param(ctx.input(1)?, c, "scale")?;
    let bias = channel_param(ctx.input(2)?, c, "bias")?;
    let v = x.to_f64();
    let mut y = vec![0f64; v.len()];
    for b in 0..n {
        for ch in 0..c {
            let r = (b * c + ch) * sp..(b * c + ch + 1) * sp;
            let (m, var) = mean_var(&v[r.clone()]);
            let k = scale[ch] / (var + eps).sqrt();
            for i in r {
                y[i] = (v[i] - m) * k + bias[ch];
            }
        }
    }
    Ok(vec![Tensor::from_f64(x.dtype(), x.shape().to_vec(), &y)])
}

fn eval_group_norm(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = float_tensor(ctx, 0)?;
    let (n, c, sp) = nc_layout(x.shape())?;
    let eps = epsilon(ctx.attrs)?;
    let g = ctx
        .attrs
        .int("num_groups")?
        .ok_or_else(|| OpError::new("GroupNormalization needs `num_groups`"))?;
    if g <= 0 || c % g as usize != 0 {
        bail!("num_groups {g} does not divide the {c} channels");
    }
    let g = g as usize;
    let per = c / g;
    // Opset 21: per-channel scale and bias. (Opset 18's per-group form, if it reaches here,
    // is spread over each group's channels.)
    let per_channel = |t: &Tensor, what: &str| -> OpResult<Vec<f64>> {
        if t.len() == g && g != c {
            let v = t.to_f64();
            return Ok((0..c).map(|ch| v[ch / per]).collect());
        }
        channel_param(t, c, what)
    };
    let scale = per_channel(ctx.input(1)?, "scale")?;
    let bias = per_channel(ctx.input(2)?, "bias")?;
    let v = x.to_f64();
    let mut y = vec![0f64; v.len()];
    let len = per * sp;
    for b in 0..n {
        for gi in 0..g {
            let start = (b * c + gi * per) * sp;
            let (m, var) = mean_var(&v[start..start + len]);
            let inv = 1.0 / (var + eps).sqrt();
            for (j, i) in (start..start + len).enumerate() {
                let ch = gi * per + j / sp;
                y[i] = (v[i] - m) * inv * scale[ch] + bias[ch];
            }
        }
    }
    Ok(vec![Tensor::from_f64(x.dtype(), x.shape().to_vec(), &y)])
}

fn eval_lp_norm(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let p = ctx.attrs.int_or("p", 2)?;
    if p != 1 && p != 2 {
        bail!("LpNormalization supports p = 1 or 2, got {p}");
    }
    eval_lanes(ctx, |s| {
        let norm = if p == 1 {
            s.iter().map(|x| x.abs()).sum::<f64>()
        } else {
            s.iter().map(|x| x * x).sum::<f64>().sqrt()
        };
        for x in s.iter_mut() {
            *x = if norm == 0.0 { 0.0 } else { *x / norm };
        }
    })
}

fn eval_mvn(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = float_tensor(ctx, 0)?;
    let r = x.rank();
    let axes = ctx.attrs.ints("axes")?.unwrap_or_else(|| vec![0, 2, 3]);
    let mut mask = vec![false; r];
    for &a in &axes {
        let n = axis(a, r)?;
        if mask[n] {
            bail!("axis {a} appears twice in {axes:?}");
        }
        mask[n] = true;
    }
    // Statistics over the masked axes, for each combination of the others.
    let shape = x.shape();
    let stat_shape: Vec<usize> = shape
        .iter()
        .zip(&mask)
        .map(|(&d, &m)| if m { 1 } else { d })
        .collect();
    let to_stat = broadcast_map(shape, &stat_shape);
    let ns = numel(&stat_shape);
    let count = (numel(shape) / ns.max(1)) as f64;
    let v = x.to_f64();
    let mut mean = vec![0f64; ns];
    for (&s, &x) in to_stat.iter().zip(&v) {
        mean[s] += x;
    }
    mean.iter_mut().for_each(|m| *m /= count);
    let mut var = vec![0f64; ns];
    for (&s, &x) in to_stat.iter().zip(&v) {
        var[s] += (x - mean[s]) * (x - mean[s]);
    }
    var.iter_mut().for_each(|m| *m /= count);
    let y: Vec<f64> = to_stat
        .iter()
        .zip(&v)
        .map(|(&s, &x)| (x - mean[s]) / (var[s].sqrt() + 1e-9))
        .collect();
    Ok(vec![Tensor::from_f64(x.dtype(), shape.to_vec(), &y)])
}

fn eval_lrn(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = float_tensor(ctx, 0)?;
    let (n, c, sp) = nc_layout(x.shape())?;
    let size = ctx
        .attrs
        .int("size")?
        .ok_or_else(|| OpError::new("LRN needs `size`"))?;
    if size <= 0 {
        bail!("LRN size must be positive, got {size}");
    }
    let alpha = ctx.attrs.float_or("alpha", 1e-4)? as f64;
    let beta = ctx.attrs.float_or("beta", 0.75)? as f64;
    let bias = ctx.attrs.float_or("bias", 1.0)? as f64;
    let lo = ((size - 1) / 2) as usize;
    let hi = (size / 2) as usize; // ceil((size - 1) / 2)
    let v = x.to_f64();
    let mut y = vec![0f64; v.len()];
    for b in 0..n {
        for ch in 0..c {
            let (c0, c1) = (ch.saturating_sub(lo), (ch + hi).min(c - 1));
            for s in 0..sp {
                let sq: f64 = (c0..=c1)
                    .map(|k| v[(b * c + k) * sp + s])
                    .map(|t| t * t)
                    .sum();
                let i = (b * c + ch) * sp + s;
                y[i] = v[i] / (bias + alpha / size as f64 * sq).powf(beta);
            }
        }
    }
    Ok(vec![Tensor::from_f64(x.dtype(), x.shape().to_vec(), &y)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::Attr;
    use crate::ops::reduce::test_util::*;

    #[test]
    fn softmax_family() {
        let x = Tensor::from_f64(
            DType::F64,
            vec![2, 2],
            &[1e4, 1e4, 1000.0, 1000.0 + 2f64.ln()],
        );
        let a0 = attrs(&[("axis", Attr::Int(0))]);
        let y = run1("Softmax", &attrs(&[]), &[Some(x.clone())]).unwrap();
        assert_close(&y, &[2, 2], &[0.5, 0.5, 1.0 / 3.0, 2.0 / 3.0], 1e-9);
        let y = run1("Softmax", &a0, &[Some(x.clone())]).unwrap();
        assert_close(&y, &[2, 2], &[1.0, 1.0, 0.0, 0.0], 1e-9);
        let y = run1("LogSoftmax", &attrs(&[]), &[Some(x.clone())]).unwrap();
        let l2 = 2f64.ln();
        let l3 = 3f64.ln();
        assert_close(&y, &[2, 2], &[-l2, -l2, -l3, l2 - l3], 1e-9);
        let h = f32s(&[2, 3], &[1.0, 3.0, 3.0, -1.0, -2.0, -3.0]);
        let y = run1("Hardmax", &attrs(&[]), &[Some(h.clone())]).unwrap();
        assert_close(&y, &[2, 3], &[0.0, 1.0, 0.0, 1.0, 0.0, 0.0], 0.0);
        let y = run1("Hardmax", &a0, &[Some(h)]).unwrap();
        assert_close(&y, &[2, 3], &[1.0, 1.0, 1.0, 0.0, 0.0, 0.0], 0.0);
    }

    #[test]
    fn f16_softmax_rounds_each_stage() {
        // Rounding once would give 0.4755859375 for the last element; the staged f16
        // computation of ONNX's reference gives 0.475341796875.
        let x = Tensor::from_f64(DType::F16, vec![3], &[0.1, -0.1, 0.6]);
        let y = run1("Softmax", &attrs(&[]), &[Some(x)]).unwrap();
        assert_close(
            &y,
            &[3],
            &[0.288330078125, 0.236083984375, 0.475341796875],
            0.0,
        );
    }

    #[test]
    fn layer_norm_with_stats() {
        let x = f32s(&[2, 2], &[1.0, 3.0, -1.0, -1.0]);
        let w = f32s(&[2], &[1.0, 2.0]);
        let b = f32s(&[2], &[0.5, 0.0]);
        let a = attrs(&[("epsilon", Attr::Float(0.0))]);
        let out = run("LayerNormalization", &a, &[Some(x), Some(w), Some(b)], 3).unwrap();
        assert_close(&out[0], &[2, 2], &[-0.5, 2.0, f64::NAN, f64::NAN], 1e-6);
        assert_close(&out[1], &[2, 1], &[2.0, -1.0], 0.0);
        assert_close(&out[2], &[2, 1], &[1.0, f64::INFINITY], 0.0);
        // axis 0 normalises over everything.
        let x = f32s(&[2, 2], &[0.0, 0.0, 2.0, 2.0]);
        let w = f32s(&[2, 2], &[1.0; 4]);
        let a = attrs(&[("axis", Attr::Int(0)), ("epsilon", Attr::Float(0.0))]);
        let out = run("LayerNormalization", &a, &[Some(x), Some(w), None], 2).unwrap();
        assert_close(&out[0], &[2, 2], &[-1.0, -1.0, 1.0, 1.0], 1e-7);
        assert_close(&out[1], &[1, 1], &[1.0], 0.0);
    }

    #[test]
    fn rms_norm() {
        let x = f32s(&[1, 2], &[3.0, 4.0]);
        let w = f32s(&[2], &[1.0, 2.0]);
        let a = attrs(&[("epsilon", Attr::Float(0.0))]);
        let y = run1("RMSNormalization", &a, &[Some(x), Some(w)]).unwrap();
        let rms = 12.5f64.sqrt();
        assert_close(&y, &[1, 2], &[3.0 / rms, 8.0 / rms], 1e-6);
    }

    #[test]
    fn batch_norm_inference_and_training() {
        let x = f32s(&[2, 2, 1], &[1.0, 10.0, 3.0, 20.0]);
        let s = f32s(&[2], &[1.0, 2.0]);
        let b = f32s(&[2], &[0.0, 1.0]);
        let m = f32s(&[2], &[1.0, 10.0]);
        let v = f32s(&[2], &[4.0, 1.0]);
        let ins = [Some(x), Some(s), Some(b), Some(m), Some(v)];
        let a = attrs(&[("epsilon", Attr::Float(0.0))]);
        let y = run1("BatchNormalization", &a, &ins).unwrap();
        assert_close(&y, &[2, 2, 1], &[0.0, 1.0, 1.0, 21.0], 1e-7);
        let a = attrs(&[
            ("epsilon", Attr::Float(0.0)),
            ("training_mode", Attr::Int(1)),
            ("momentum", Attr::Float(0.5)),
        ]);
        let out = run("BatchNormalization", &a, &ins, 3).unwrap();
        // Batch stats: channel 0 mean 2 var 1; channel 1 mean 15 var 25.
        assert_close(&out[0], &[2, 2, 1], &[-1.0, -1.0, 1.0, 3.0], 1e-7);
        assert_close(&out[1], &[2], &[1.5, 12.5], 1e-7);
        assert_close(&out[2], &[2], &[2.5, 13.0], 1e-7);
    }

    #[test]
    fn instance_and_group_norm() {
        let x = f32s(&[1, 2, 2], &[0.0, 2.0, 5.0, 5.0]);
        let s = f32s(&[2], &[1.0, 3.0]);
        let b = f32s(&[2], &[0.0, 1.0]);
        let a = attrs(&[("epsilon", Attr::Float(0.0))]);
        let y = run1(
            "InstanceNormalization",
            &a,
            &[Some(x.clone()), Some(s.clone()), Some(b.clone())],
        )
        .unwrap();
        assert_close(&y, &[1, 2, 2], &[-1.0, 1.0, f64::NAN, f64::NAN], 1e-7);
        // One group over both channels: mean 3, var (9+1+4+4)/4 = 4.5.
        let a = attrs(&[("epsilon", Attr::Float(0.0)), ("num_groups", Attr::Int(1))]);
        let y = run1("GroupNormalization", &a, &[Some(x), Some(s), Some(b)]).unwrap();
        let sd = 4.5f64.sqrt();
        assert_close(
            &y,
            &[1, 2, 2],
            &[-3.0 / sd, -1.0 / sd, 6.0 / sd + 1.0, 6.0 / sd + 1.0],
            1e-7,
        );
    }

    #[test]
    fn lp_mvn_lrn() {
        let x = f32s(&[2, 2], &[3.0, -4.0, 0.0, 0.0]);
        let y = run1("LpNormalization", &attrs(&[]), &[Some(x.clone())]).unwrap();
        assert_close(&y, &[2, 2], &[0.6, -0.8, 0.0, 0.0], 1e-7);
        let y = run1(
            "LpNormalization",
            &attrs(&[("p", Attr::Int(1))]),
            &[Some(x.clone())],
        )
        .unwrap();
        assert_close(&y, &[2, 2], &[3.0 / 7.0, -4.0 / 7.0, 0.0, 0.0], 1e-7);
        let m = f32s(&[1, 2, 2], &[1.0, 3.0, 10.0, 10.0]);
        let y = run1(
            "MeanVarianceNormalization",
            &attrs(&[("axes", Attr::Ints(vec![2]))]),
            &[Some(m)],
        )
        .unwrap();
        assert_close(&y, &[1, 2, 2], &[-1.0, 1.0, 0.0, 0.0], 1e-7);
        // LRN size 2: window [c, c+1].
        let l = f32s(&[1, 3, 1], &[1.0, 2.0, 3.0]);
        let a = attrs(&[
            ("size", Attr::Int(2)),
            ("alpha", Attr::Float(2.0)),
            ("beta", Attr::Float(1.0)),
            ("bias", Attr::Float(1.0)),
        ]);
        let y = run1("LRN", &a, &[Some(l)]).unwrap();
        assert_close(&y, &[1, 3, 1], &[1.0 / 6.0, 2.0 / 14.0, 3.0 / 10.0], 1e-7);
    }
}
