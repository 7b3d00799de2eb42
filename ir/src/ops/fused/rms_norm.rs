//! `rms_norm(x, scale) {axis = -1, eps = 1e-5}`: root-mean-square normalisation
//! (LLaMA, T5, DeepSeek, Qwen).
//!
//! With `a` = `axis` normalised against rank(x) (negative counts from the end) and
//! `N` = the product of `x.shape[a..]`, for every index `o` over `x.shape[..a]`:
//!
//! ```text
//! ms[o]     = (1/N) * sum_{i in x.shape[a..]} x[o, i]^2
//! y[o, i]   = x[o, i] / sqrt(ms[o] + eps) * scale[o, i]      (scale broadcast to x)
//! ```
//!
//! - `x`: float, any rank >= 1. `scale`: float, numpy-broadcastable to x's shape without
//!   changing it (usually `[x.shape[-1]]`).
//! - `axis` (int, default -1): the first normalised axis; all axes from it on are reduced.
//! - `eps` (float, default 1e-5): added to the mean square, `>= 0`.
//! - Output: x's dtype and shape. Computed in f64, rounded once at the end.
//!
//! Same as ONNX `RMSNormalization` (opset 23) with `epsilon` renamed `eps`, and as
//! `com.microsoft.SimplifiedLayerNormalization`. A residual add before the norm is not part
//! of the op (it stays an `Add`).

use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::Tensor;
use crate::types::ValueType;

use super::{broadcast_to, check_broadcasts_to, float_input, float_tensor, norm_attrs};

pub fn infer(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = float_input(ctx, 0)?;
    norm_attrs(ctx.attrs, x.rank())?;
    check_broadcasts_to(x, float_input(ctx, 1)?, "scale")?;
    Ok(vec![x.clone()])
}

pub fn eval(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = float_tensor(ctx, 0)?;
    let (a, eps) = norm_attrs(ctx.attrs, x.rank())?;
    let shape = x.shape();
    let scale = broadcast_to(float_tensor(ctx, 1)?, shape, "scale")?;
    let inner: usize = shape[a..].iter().product();
    let v = x.to_f64();
    let mut y = vec![0f64; v.len()];
    if inner > 0 {
        for (o, (xs, ys)) in v.chunks(inner).zip(y.chunks_mut(inner)).enumerate() {
            let ms = xs.iter().map(|x| x * x).sum::<f64>() / inner as f64;
            let inv = 1.0 / (ms + eps).sqrt();
            let sc = &scale[o * inner..(o + 1) * inner];
            for ((y, x), s) in ys.iter_mut().zip(xs).zip(sc) {
                *y = x * inv * s;
            }
        }
    }
    Ok(vec![Tensor::from_f64(x.dtype(), shape.to_vec(), &y)])
}

#[cfg(test)]
mod tests {
    use crate::attr::Attr;
    use crate::dtype::DType;
    use crate::ops::fused::test_util::G;
    use crate::ops::reduce::test_util::*;
    use crate::tensor::Tensor;

    #[test]
    fn hand_computed() {
        // Rows [3, 4] and [1, 1]: mean squares 12.5 and 1.
        let x = f32s(&[2, 2], &[3.0, 4.0, 1.0, 1.0]);
        let w = f32s(&[2], &[1.0, 2.0]);
        let a = attrs(&[("eps", Attr::Float(0.0))]);
        let y = run1("rms_norm", &a, &[Some(x.clone()), Some(w.clone())]).unwrap();
        let r = 12.5f64.sqrt();
        assert_close(&y, &[2, 2], &[3.0 / r, 8.0 / r, 1.0, 2.0], 1e-6);
        // eps = 1.5 on the second row: 1/sqrt(2.5).
        let a = attrs(&[("eps", Attr::Float(1.5))]);
        let y = run1("rms_norm", &a, &[Some(x.clone()), Some(w.clone())]).unwrap();
        let r2 = 14f64.sqrt();
        let q = 2.5f64.sqrt();
        assert_close(&y, &[2, 2], &[3.0 / r2, 8.0 / r2, 1.0 / q, 2.0 / q], 1e-6);
        // axis 0 normalises over everything: ms = (9 + 16 + 1 + 1) / 4 = 6.75.
        let a = attrs(&[("eps", Attr::Float(0.0)), ("axis", Attr::Int(0))]);
        let ones = f32s(&[1], &[1.0]);
        let y = run1("rms_norm", &a, &[Some(x), Some(ones)]).unwrap();
        let r = 6.75f64.sqrt();
        assert_close(&y, &[2, 2], &[3.0 / r, 4.0 / r, 1.0 / r, 1.0 / r], 1e-6);
    }

    #[test]
    fn rejects_bad_inputs() {
        let x = f32s(&[2, 2], &[3.0, 4.0, 1.0, 1.0]);
        let w3 = f32s(&[3], &[1.0; 3]);
        assert!(run1("rms_norm", &attrs(&[]), &[Some(x.clone()), Some(w3)]).is_err());
        let w = f32s(&[2], &[1.0; 2]);
        let a = attrs(&[("axis", Attr::Int(2))]);
        assert!(run1("rms_norm", &a, &[Some(x.clone()), Some(w.clone())]).is_err());
        let xi = i64s(&[2], &[1, 2]);
        assert!(run1("rms_norm", &attrs(&[]), &[Some(xi), Some(w)]).is_err());
        assert!(run1("rms_norm", &attrs(&[]), &[Some(x), None]).is_err());
    }

    /// rms_norm == Mul(Div(x, Sqrt(Add(ReduceMean(Mul(x, x)), eps))), scale).
    #[test]
    fn equals_onnx_spelling() {
        let xs: Vec<f64> = (0..24).map(|i| ((i * 7 % 11) as f64 - 5.0) * 0.3).collect();
        let x = Tensor::from_f64(DType::F32, vec![2, 3, 4], &xs);
        let w = Tensor::from_f64(DType::F32, vec![4], &[0.5, -1.0, 2.0, 1.5]);
        let eps = Tensor::from_f64(DType::F32, vec![], &[1e-3]);
        let axes = i64s(&[1], &[-1]);
        let mut g = G::new();
        let (vx, vw) = (g.input("x", &x), g.input("w", &w));
        let ve = g.op(
            "constant",
            attrs(&[("value", Attr::Tensor(eps.into()))]),
            &[],
        );
        let va = g.op(
            "constant",
            attrs(&[("value", Attr::Tensor(axes.into()))]),
            &[],
        );
        let sq = g.op("Mul", attrs(&[]), &[Some(vx), Some(vx)]);
        let ms = g.op("ReduceMean", attrs(&[]), &[Some(sq), Some(va)]);
        let ad = g.op("Add", attrs(&[]), &[Some(ms), Some(ve)]);
        let rt = g.op("Sqrt", attrs(&[]), &[Some(ad)]);
        let dv = g.op("Div", attrs(&[]), &[Some(vx), Some(rt)]);
        let want = g.op("Mul", attrs(&[]), &[Some(dv), Some(vw)]);
        let a = attrs(&[("eps", Attr::Float(1e-3))]);
        let got = g.op("rms_norm", a, &[Some(vx), Some(vw)]);
        let out = g.run(&[want, got]);
        assert_close(&out[1], &[2, 3, 4], &out[0].to_f64(), 1e-6);
    }
}
