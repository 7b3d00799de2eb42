//! `layer_norm(x, scale, bias?) {axis = -1, eps = 1e-5}`: layer normalisation (BERT,
//! MiniLM, GPT-2).
//!
//! With `a` = `axis` normalised against rank(x) and `N` = the product of `x.shape[a..]`,
//! for every index `o` over `x.shape[..a]`:
//!
//! ```text
//! mean[o]  = (1/N) * sum_i x[o, i]
//! var[o]   = (1/N) * sum_i (x[o, i] - mean[o])^2           (biased variance)
//! y[o, i]  = (x[o, i] - mean[o]) / sqrt(var[o] + eps) * scale[o, i] + bias[o, i]
//! ```
//!
//! - `x`: float, rank >= 1. `scale` and the optional `bias` (0 when absent): float,
//!   numpy-broadcastable to x's shape without changing it (usually `[x.shape[-1]]`).
//! - `axis` (int, default -1): the first normalised axis. `eps` (float, default 1e-5, >= 0).
//! - Output: one tensor of x's dtype and shape (no mean / inv-std-dev outputs, unlike ONNX
//!   `LayerNormalization`, whose output 0 it equals). Computed in f64.

use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::Tensor;
use crate::types::ValueType;

use super::{broadcast_to, check_broadcasts_to, float_input, float_tensor, norm_attrs};

pub fn infer(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = float_input(ctx, 0)?;
    norm_attrs(ctx.attrs, x.rank())?;
    check_broadcasts_to(x, float_input(ctx, 1)?, "scale")?;
    if ctx.has_input(2) {
        check_broadcasts_to(x, float_input(ctx, 2)?, "bias")?;
    }
    Ok(vec![x.clone()])
}

pub fn eval(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = float_tensor(ctx, 0)?;
    let (a, eps) = norm_attrs(ctx.attrs, x.rank())?;
    let shape = x.shape();
    let scale = broadcast_to(float_tensor(ctx, 1)?, shape, "scale")?;
    let bias = match ctx.opt_input(2) {
        Some(_) => Some(broadcast_to(float_tensor(ctx, 2)?, shape, "bias")?),
        None => None,
    };
    let inner: usize = shape[a..].iter().product();
    let v = x.to_f64();
    let mut y = vec![0f64; v.len()];
    if inner > 0 {
        for (o, (xs, ys)) in v.chunks(inner).zip(y.chunks_mut(inner)).enumerate() {
            let n = inner as f64;
            let mean = xs.iter().sum::<f64>() / n;
            let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
            let inv = 1.0 / (var + eps).sqrt();
            for (i, (y, x)) in ys.iter_mut().zip(xs).enumerate() {
                let j = o * inner + i;
                *y = (x - mean) * inv * scale[j] + bias.as_ref().map_or(0.0, |b| b[j]);
            }
        }
    }
    Ok(vec![Tensor::from_f64(x.dtype(), shape.to_vec(), &y)])
}

#[cfg(test)]
mod tests {
    use crate::attr::Attr;
    use crate::ops::reduce::test_util::*;

    #[test]
    fn hand_computed() {
        // Row [1, 3]: mean 2, var 1 -> [-1, 1]. Row [0, 4]: mean 2, var 4 -> [-1, 1].
        let x = f32s(&[2, 2], &[1.0, 3.0, 0.0, 4.0]);
        let w = f32s(&[2], &[1.0, 2.0]);
        let b = f32s(&[2], &[0.5, 0.0]);
        let a = attrs(&[("eps", Attr::Float(0.0))]);
        let y = run1(
            "layer_norm",
            &a,
            &[Some(x.clone()), Some(w.clone()), Some(b)],
        )
        .unwrap();
        assert_close(&y, &[2, 2], &[-0.5, 2.0, -0.5, 2.0], 1e-6);
        // No bias, eps = 3: row 0 scaled by 1/2, row 1 by 1/sqrt(7).
        let a = attrs(&[("eps", Attr::Float(3.0))]);
        let y = run1("layer_norm", &a, &[Some(x.clone()), Some(w), None]).unwrap();
        let s = 7f64.sqrt();
        assert_close(&y, &[2, 2], &[-0.5, 1.0, -2.0 / s, 4.0 / s], 1e-6);
        // axis 0: mean 2, var (1 + 1 + 4 + 4) / 4 = 2.5.
        let a = attrs(&[("eps", Attr::Float(0.0)), ("axis", Attr::Int(0))]);
        let one = f32s(&[1], &[1.0]);
        let y = run1("layer_norm", &a, &[Some(x), Some(one)]).unwrap();
        let s = 2.5f64.sqrt();
        assert_close(&y, &[2, 2], &[-1.0 / s, 1.0 / s, -2.0 / s, 2.0 / s], 1e-6);
    }

    #[test]
    fn rejects_bad_bias() {
        let x = f32s(&[2, 2], &[1.0, 3.0, 0.0, 4.0]);
        let w = f32s(&[2], &[1.0, 2.0]);
        let b = f32s(&[3], &[0.0; 3]);
        assert!(run1("layer_norm", &attrs(&[]), &[Some(x), Some(w), Some(b)]).is_err());
    }
}
