//! ONNX Runtime's GELU-family activations:
//! - `com.microsoft.Gelu`: `0.5 x (1 + erf(x / sqrt 2))`;
//! - `com.microsoft.FastGelu(X, bias?)`: `0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))`
//!   with `z = X + bias` (the bias runs along the last axis);
//! - `com.microsoft.QuickGelu`: `x * sigmoid(alpha x)`, `alpha` default 1.702.

use crate::attr::AttrsExt;
use crate::bail;
use crate::ops::attention::common::require_float;
use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::Tensor;
use crate::types::ValueType;

pub(crate) fn infer_unary(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    require_float(x.dtype, "X")?;
    Ok(vec![x.clone()])
}

fn map(ctx: &EvalCtx, f: impl Fn(f64) -> f64) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    require_float(x.dtype(), "X")?;
    let y: Vec<f64> = x.to_f64().into_iter().map(f).collect();
    Ok(vec![Tensor::from_f64(x.dtype(), x.shape().to_vec(), &y)])
}

pub(crate) fn eval_gelu(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    map(ctx, |x| 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)))
}

fn gelu_tanh(x: f64) -> f64 {
    const C: f64 = 0.797_884_560_802_865_4; // sqrt(2 / pi)
    0.5 * x * (1.0 + (C * (x + 0.044715 * x * x * x)).tanh())
}

pub(crate) fn eval_fast_gelu(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    require_float(x.dtype(), "X")?;
    let mut v = x.to_f64();
    if let Some(b) = ctx.opt_input(1) {
        require_float(b.dtype(), "bias")?;
        let bv = b.to_f64();
        let last = x.shape().last().copied().unwrap_or(1);
        if bv.len() != last || b.rank() > x.rank() {
            bail!("bias {:?} must run along X's last axis ({last})", b.shape());
        }
        for (i, e) in v.iter_mut().enumerate() {
            *e += bv[i % last];
        }
    }
    let y: Vec<f64> = v.into_iter().map(gelu_tanh).collect();
    Ok(vec![Tensor::from_f64(x.dtype(), x.shape().to_vec(), &y)])
}

pub(crate) fn eval_quick_gelu(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let alpha = ctx.attrs.float_or("alpha", 1.702)? as f64;
    map(ctx, |x| x / (1.0 + (-alpha * x).exp()))
}

/// The error function, to about 1e-15: its Taylor series near zero, the continued fraction of
/// `erfc` beyond.
pub(crate) fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let r = if a < 2.0 {
        // erf(x) = 2/sqrt(pi) sum_n (-1)^n x^(2n+1) / (n! (2n+1))
        let mut term = a;
        let mut sum = a;
        let x2 = a * a;
        for n in 1..100 {
            let n = n as f64;
            term *= -x2 / n;
            let t = term / (2.0 * n + 1.0);
            sum += t;
            if t.abs() <= 1e-17 * sum.abs() {
                break;
            }
        }
        sum * std::f64::consts::FRAC_2_SQRT_PI
    } else if a < 6.0 {
        // erfc(a) = exp(-a^2)/sqrt(pi) / (a + (1/2)/(a + 1/(a + (3/2)/(a + ...))))
        let mut t = a;
        for k in (1..=80).rev() {
            t = a + (k as f64 / 2.0) / t;
        }
        1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / t
    } else {
        1.0
    };
    if x < 0.0 {
        -r
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::erf;
    use crate::attr::Attrs;
    use crate::ops::attention::common::testing::{assert_close, f32s, run};

    #[test]
    fn erf_values() {
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (-1.5, -0.966_105_146_475_310_7),
            (2.0, 0.995_322_265_018_952_7),
            (3.0, 0.999_977_909_503_001_4),
            (4.5, 0.999_999_999_803_384),
        ] {
            assert!((erf(x) - want).abs() < 1e-14, "erf({x}) = {}", erf(x));
        }
    }

    #[test]
    fn gelus() {
        let x = f32s(&[2, 2], &[0.0, 1.0, -1.0, 2.0]);
        let g = |v: f64| 0.5 * v * (1.0 + erf(v / 2f64.sqrt()));
        let y = run("com.microsoft.Gelu", &[Some(x.clone())], Attrs::new(), 1).expect("gelu");
        assert_close(&y[0], &[0.0, g(1.0), g(-1.0), g(2.0)], 1e-7);
        let bias = f32s(&[2], &[1.0, 0.0]);
        let y = run(
            "com.microsoft.FastGelu",
            &[Some(x.clone()), Some(bias)],
            Attrs::new(),
            1,
        )
        .expect("fastgelu");
        let t = super::gelu_tanh;
        assert_close(&y[0], &[t(1.0), t(1.0), t(0.0), t(2.0)], 1e-7);
        let y = run("com.microsoft.QuickGelu", &[Some(x)], Attrs::new(), 1).expect("quickgelu");
        let q = |v: f64| v / (1.0 + (-1.702 * v).exp());
        assert_close(&y[0], &[0.0, q(1.0), q(-1.0), q(2.0)], 1e-6);
    }
}
