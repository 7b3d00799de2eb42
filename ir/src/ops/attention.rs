//! Attention-family ops of the ONNX default domain: `Attention` (opsets 23-25),
//! `RotaryEmbedding` (opset 23) and `SwiGLU`. The helpers in [`common`] are shared with the
//! ONNX Runtime contrib ops in [`super::microsoft`].

pub(crate) mod common;
mod rotary;
mod sdpa;

use crate::attr::AttrsExt;
use crate::bail;
use crate::ops::{EvalCtx, InferCtx, OpResult, OpSpec};
use crate::tensor::Tensor;
use crate::types::ValueType;

use common::{float_input, float_input_type};

pub const SPECS: &[OpSpec] = &[
    OpSpec::new("Attention", sdpa::infer, sdpa::eval),
    OpSpec::new("RotaryEmbedding", rotary::infer, rotary::eval),
    OpSpec::new("SwiGLU", infer_swiglu, eval_swiglu),
];

/// `SwiGLU(A, B) = A * sigmoid(alpha * A) * B`: the gate `A` and the value `B` have the same
/// shape (no broadcasting).
fn infer_swiglu(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let a = float_input_type(ctx, 0, "A", &[0, 1, 2, 3, 4, 5, 6, 7, 8])?;
    let b = ctx.input(1)?;
    if b.dtype != a.dtype || b.rank() != a.rank() {
        bail!("SwiGLU inputs must have the same type, got {a} and {b}");
    }
    for (x, y) in a.shape.iter().zip(&b.shape) {
        if let (Some(p), Some(q)) = (x.as_const(), y.as_const()) {
            if p != q {
                bail!("SwiGLU inputs must have the same shape, got {a} and {b}");
            }
        }
    }
    Ok(vec![a.clone()])
}

fn eval_swiglu(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let a = ctx.input(0)?;
    common::require_float(a.dtype(), "A")?;
    let b = float_input(ctx, 1, "B", &[a.rank()])?;
    if a.shape() != b.shape() || a.dtype() != b.dtype() {
        bail!(
            "SwiGLU inputs must have the same type and shape, got {} {:?} and {} {:?}",
            a.dtype(),
            a.shape(),
            b.dtype(),
            b.shape()
        );
    }
    let alpha = ctx.attrs.float_or("alpha", 1.0)? as f64;
    let y: Vec<f64> = a
        .to_f64()
        .into_iter()
        .zip(b.to_f64())
        .map(|(g, v)| g / (1.0 + (-alpha * g).exp()) * v)
        .collect();
    Ok(vec![Tensor::from_f64(a.dtype(), a.shape().to_vec(), &y)])
}

#[cfg(test)]
mod tests {
    use super::common::testing::{assert_close, f32s, run};
    use crate::attr::{Attr, Attrs};

    #[test]
    fn swiglu() {
        let a = f32s(&[3], &[0.0, 2.0, -1.0]);
        let b = f32s(&[3], &[5.0, 3.0, 2.0]);
        let y = run(
            "SwiGLU",
            &[Some(a.clone()), Some(b.clone())],
            Attrs::new(),
            1,
        )
        .expect("swiglu");
        let s = |x: f64| 1.0 / (1.0 + (-x).exp());
        assert_close(&y[0], &[0.0, 2.0 * s(2.0) * 3.0, -s(-1.0) * 2.0], 1e-7);
        let attrs: Attrs = [("alpha".to_string(), Attr::Float(2.0))]
            .into_iter()
            .collect();
        let y = run("SwiGLU", &[Some(a), Some(b)], attrs, 1).expect("swiglu");
        assert_close(&y[0], &[0.0, 2.0 * s(4.0) * 3.0, -s(-2.0) * 2.0], 1e-7);
    }
}
