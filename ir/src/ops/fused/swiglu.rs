//! `swiglu(gate, up) {alpha = 1.0, beta = 0.0, limit?}`: the gated SiLU unit of LLaMA-style
//! MLPs, and with `limit` the clamped variant of GPT-OSS.
//!
//! Elementwise, with `gate` and `up` numpy-broadcast together:
//!
//! ```text
//! g   = min(gate, limit)                 if limit is set, else gate
//! u   = clamp(up, -limit, limit)         if limit is set, else up
//! out = g * sigmoid(alpha * g) * (u + beta)
//! ```
//!
//! - `gate`, `up`: float tensors of the same dtype, broadcastable to each other.
//! - `alpha` (float, default 1.0): the sigmoid's slope; 1.0 is plain SiLU, GPT-OSS uses 1.702.
//! - `beta` (float, default 0.0): added to `up`; GPT-OSS uses 1.0.
//! - `limit` (float, optional, > 0): clamps `gate` from above and `up` to `[-limit, limit]`
//!   (GPT-OSS: 7.0). Absent: no clamping.
//! - Output: gate's dtype, the broadcast shape. Computed in f64.
//!
//! LLaMA's `silu(gate) * up` is the default; GPT-OSS's
//! `(clamp(up, -7, 7) + 1) * min(gate, 7) * sigmoid(1.702 * min(gate, 7))` is
//! `{alpha = 1.702, beta = 1.0, limit = 7.0}`. The names follow ONNX Runtime's
//! `com.microsoft.MoE` (`activation_alpha`, `activation_beta`, `swiglu_limit`). Splitting a
//! fused gate/up projection (interleaved or halves) is not part of the op: gate and up are
//! separate inputs.

use crate::attr::{Attrs, AttrsExt};
use crate::bail;
use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::Tensor;
use crate::types::{broadcast_concrete, broadcast_shapes, ValueType};

use super::{broadcast_index, float_input, float_tensor};

/// The parameters of one swiglu: `alpha`, `beta`, `limit`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Swiglu {
    pub alpha: f64,
    pub beta: f64,
    pub limit: Option<f64>,
}

impl Swiglu {
    /// Reads `alpha`, `beta`, `limit` (under the given attribute names).
    pub fn from_attrs(attrs: &Attrs, names: [&str; 3]) -> OpResult<Swiglu> {
        let alpha = attrs.float_or(names[0], 1.0)? as f64;
        let beta = attrs.float_or(names[1], 0.0)? as f64;
        let limit = attrs.float(names[2])?.map(f64::from);
        if let Some(l) = limit {
            if l.is_nan() || l <= 0.0 {
                bail!("{} must be > 0, got {l}", names[2]);
            }
        }
        Ok(Swiglu { alpha, beta, limit })
    }

    /// The unit on one gate/up pair.
    pub fn apply(&self, gate: f64, up: f64) -> f64 {
        let (g, u) = match self.limit {
            Some(l) => (gate.min(l), up.clamp(-l, l)),
            None => (gate, up),
        };
        g / (1.0 + (-self.alpha * g).exp()) * (u + self.beta)
    }
}

const NAMES: [&str; 3] = ["alpha", "beta", "limit"];

pub fn infer(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let g = float_input(ctx, 0)?;
    let u = float_input(ctx, 1)?;
    if g.dtype != u.dtype {
        bail!("gate {g} and up {u} must have the same dtype");
    }
    Swiglu::from_attrs(ctx.attrs, NAMES)?;
    match broadcast_shapes(&[&g.shape, &u.shape]) {
        Some(s) => Ok(vec![ValueType::new(g.dtype, s)]),
        None => bail!("gate {g} and up {u} do not broadcast"),
    }
}

pub fn eval(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let g = float_tensor(ctx, 0)?;
    let u = float_tensor(ctx, 1)?;
    let p = Swiglu::from_attrs(ctx.attrs, NAMES)?;
    let Some(shape) = broadcast_concrete(&[g.shape(), u.shape()]) else {
        bail!(
            "gate {:?} and up {:?} do not broadcast",
            g.shape(),
            u.shape()
        );
    };
    let (gv, uv) = (g.to_f64(), u.to_f64());
    let y: Vec<f64> = if g.shape() == u.shape() {
        gv.iter().zip(&uv).map(|(&a, &b)| p.apply(a, b)).collect()
    } else {
        let gi = broadcast_index(&shape, g.shape());
        let ui = broadcast_index(&shape, u.shape());
        gi.iter()
            .zip(&ui)
            .map(|(&i, &j)| p.apply(gv[i], uv[j]))
            .collect()
    };
    Ok(vec![Tensor::from_f64(g.dtype(), shape, &y)])
}

#[cfg(test)]
mod tests {
    use crate::attr::Attr;
    use crate::ops::reduce::test_util::*;

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    #[test]
    fn plain() {
        let g = f32s(&[3], &[0.0, 1.0, -2.0]);
        let u = f32s(&[3], &[5.0, 2.0, 3.0]);
        let y = run1("swiglu", &attrs(&[]), &[Some(g), Some(u)]).unwrap();
        let want = [0.0, 2.0 * sig(1.0), -6.0 * sig(-2.0)];
        assert_close(&y, &[3], &want, 1e-6);
    }

    #[test]
    fn broadcasts() {
        let g = f32s(&[2, 1], &[1.0, 2.0]);
        let u = f32s(&[2], &[1.0, -1.0]);
        let y = run1("swiglu", &attrs(&[]), &[Some(g), Some(u)]).unwrap();
        let (a, b) = (sig(1.0), 2.0 * sig(2.0));
        assert_close(&y, &[2, 2], &[a, -a, b, -b], 1e-6);
    }

    #[test]
    fn gpt_oss_clamped() {
        // gate 10 clamps to 7; up -9 clamps to -7, up 8 to 7; gate -10 is not clamped.
        let g = f32s(&[4], &[10.0, 10.0, -10.0, 1.0]);
        let u = f32s(&[4], &[-9.0, 8.0, 0.5, 0.0]);
        let a = attrs(&[
            ("alpha", Attr::Float(1.702)),
            ("beta", Attr::Float(1.0)),
            ("limit", Attr::Float(7.0)),
        ]);
        let y = run1("swiglu", &a, &[Some(g), Some(u)]).unwrap();
        let al = 1.702f32 as f64;
        let glu = |x: f64| x * sig(al * x);
        let want = [glu(7.0) * -6.0, glu(7.0) * 8.0, glu(-10.0) * 1.5, glu(1.0)];
        assert_close(&y, &[4], &want, 1e-6);
        let bad = attrs(&[("limit", Attr::Float(0.0))]);
        let g = f32s(&[1], &[1.0]);
        assert!(run1("swiglu", &bad, &[Some(g.clone()), Some(g)]).is_err());
    }
}
