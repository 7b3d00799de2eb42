//! Activation functions, on the shared elementwise machinery: computed in f64, rounded to
//! the input's dtype. Float attributes (f32 in ONNX) widen exactly to f64.

use std::f64::consts::{PI, SQRT_2};

use crate::attr::AttrsExt;
use crate::bail;
use crate::ops::elementwise::erf;
use crate::ops::elementwise::kernel::{
    arith, binary, infer_binary, infer_unary, map_float, map_num, map_via_f64, op, unary, Accept,
};
use crate::ops::{EvalCtx, OpResult, OpSpec};
use crate::tensor::Tensor;

/// A float-only activation with float attributes `[name = default, ...]`, bound as f64
/// variables of the same name in the body: `float_act!("Elu", [alpha = 1.0], |x| ...)`.
macro_rules! float_act {
    ($name:literal, [$($attr:ident = $default:expr),*], |$x:ident| $body:expr) => {
        op!(
            $name,
            |ctx| {
                $(ctx.attrs.float_or(stringify!($attr), $default)?;)*
                infer_unary(ctx, Accept::Float, None)
            },
            |ctx| {
                $(let $attr = f64::from(ctx.attrs.float_or(stringify!($attr), $default)?);)*
                unary(ctx, |v| map_float(v, |$x| $body))
            }
        )
    };
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// ln(1 + e^x) without overflow.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// max(0, min(1, alpha*x + beta)).
fn hard_sigmoid(x: f64, alpha: f64, beta: f64) -> f64 {
    (alpha * x + beta).clamp(0.0, 1.0)
}

fn eval_gelu(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let tanh = match ctx.attrs.str_or("approximate", "none")? {
        "none" => false,
        "tanh" => true,
        a => bail!("Gelu approximate must be \"none\" or \"tanh\", got {a:?}"),
    };
    let k = (2.0 / PI).sqrt();
    unary(ctx, |v| {
        map_float(v, |x| {
            if tanh {
                0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
            } else {
                0.5 * x * (1.0 + erf(x / SQRT_2))
            }
        })
    })
}

/// Shrink takes integers too: computed in f64 and truncated back.
fn eval_shrink(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let bias = f64::from(ctx.attrs.float_or("bias", 0.0)?);
    let lambd = f64::from(ctx.attrs.float_or("lambd", 0.5)?);
    unary(ctx, |v| {
        map_via_f64(v, |x| {
            if x < -lambd {
                x + bias
            } else if x > lambd {
                x - bias
            } else {
                0.0
            }
        })
    })
}

pub const SPECS: &[OpSpec] = &[
    op!("Relu", |ctx| infer_unary(ctx, Accept::Num, None), |ctx| {
        unary(ctx, |v| {
            map_num(v, |x| if x < 0.0 { 0.0 } else { x }, |x| x.max(0))
        })
    }),
    float_act!("LeakyRelu", [alpha = 0.01], |x| if x < 0.0 {
        alpha * x
    } else {
        x
    }),
    // Slope broadcasts to x (unidirectionally, by ONNX; numpy broadcasting covers it).
    op!(
        "PRelu",
        |ctx| infer_binary(ctx, Accept::Num, false),
        |ctx| binary(ctx, |x, slope| arith(
            x,
            slope,
            |x, s| if x < 0.0 { s * x } else { x },
            |x, s| Ok(if x < 0 { s.wrapping_mul(x) } else { x })
        ))
    ),
    float_act!("Elu", [alpha = 1.0], |x| if x > 0.0 {
        x
    } else {
        alpha * x.exp_m1()
    }),
    float_act!("Selu", [alpha = 1.673_263_2, gamma = 1.050_701], |x| {
        if x > 0.0 {
            gamma * x
        } else {
            gamma * alpha * x.exp_m1()
        }
    }),
    float_act!("Celu", [alpha = 1.0], |x| x.max(0.0)
        + (alpha * (x / alpha).exp_m1()).min(0.0)),
    float_act!("ThresholdedRelu", [alpha = 1.0], |x| if x > alpha {
        x
    } else {
        0.0
    }),
    float_act!("HardSigmoid", [alpha = 0.2, beta = 0.5], |x| hard_sigmoid(
        x, alpha, beta
    )),
    float_act!("HardSwish", [], |x| x * hard_sigmoid(x, 1.0 / 6.0, 0.5)),
    float_act!("Sigmoid", [], |x| sigmoid(x)),
    float_act!("Tanh", [], |x| x.tanh()),
    float_act!("Softplus", [], |x| softplus(x)),
    float_act!("Softsign", [], |x| x / (1.0 + x.abs())),
    float_act!("Mish", [], |x| x * softplus(x).tanh()),
    float_act!("Swish", [alpha = 1.0], |x| x * sigmoid(alpha * x)),
    op!(
        "Gelu",
        |ctx| {
            match ctx.attrs.str_or("approximate", "none")? {
                "none" | "tanh" => {}
                a => bail!("Gelu approximate must be \"none\" or \"tanh\", got {a:?}"),
            }
            infer_unary(ctx, Accept::Float, None)
        },
        |ctx| eval_gelu(ctx)
    ),
    op!("Shrink", |ctx| infer_unary(ctx, Accept::Num, None), |ctx| {
        eval_shrink(ctx)
    }),
];

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)]
mod tests {
    use crate::attr::Attr;
    use crate::dtype::DType;
    use crate::ops::elementwise::kernel::testing::*;
    use crate::tensor::Data;

    fn act(name: &str, list: &[(&str, Attr)], x: &[f32]) -> Vec<f64> {
        run(name, &attrs(list), &[f32s(&[x.len()], x)])
            .unwrap()
            .to_f64()
    }

    fn close(got: &[f64], want: &[f64]) {
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                "got {got:?}, want {want:?}"
            );
        }
        assert_eq!(got.len(), want.len());
    }

    #[test]
    fn relu_family() {
        let x = [-2.0f32, -0.5, 0.0, 1.5];
        close(&act("Relu", &[], &x), &[0., 0., 0., 1.5]);
        close(&act("LeakyRelu", &[], &x), &[-0.02, -0.005, 0., 1.5]);
        close(
            &act("LeakyRelu", &[("alpha", Attr::Float(0.5))], &x),
            &[-1., -0.25, 0., 1.5],
        );
        close(
            &act("ThresholdedRelu", &[("alpha", Attr::Float(1.0))], &x),
            &[0., 0., 0., 1.5],
        );
        let e = (-2f64).exp_m1();
        close(&act("Elu", &[], &x), &[e, (-0.5f64).exp_m1(), 0., 1.5]);
        let (a, g) = (1.673_263_192_176_818_8, 1.050_701_022_148_132_3);
        close(&act("Selu", &[], &x)[..1], &[g * a * e]);
        close(
            &act("Celu", &[("alpha", Attr::Float(2.0))], &[-2.0])[..],
            &[2.0 * (-1f64).exp_m1()],
        );
        let r = run("Relu", &attrs(&[]), &[ints(DType::I32, &[3], &[-4, 0, 9])]).unwrap();
        assert_eq!(r.data(), &Data::I32(vec![0, 0, 9]));
    }

    #[test]
    fn prelu_broadcasts_slope() {
        let x = f32s(&[2, 2], &[-1., 2., -3., 4.]);
        let slope = f32s(&[2], &[0.5, 0.25]);
        let r = run("PRelu", &attrs(&[]), &[x, slope]).unwrap();
        assert_eq!(r.shape(), &[2, 2]);
        assert_close(&r, &[-0.5, 2., -1.5, 4.], 0.);
    }

    #[test]
    fn smooth_activations() {
        let x = [-1.0f32, 0.0, 2.0];
        let s = |x: f64| 1.0 / (1.0 + (-x).exp());
        close(&act("Sigmoid", &[], &x), &[s(-1.), 0.5, s(2.)]);
        close(&act("Tanh", &[], &x), &[(-1f64).tanh(), 0., 2f64.tanh()]);
        let sp = |x: f64| (1.0 + x.exp()).ln();
        close(&act("Softplus", &[], &x), &[sp(-1.), sp(0.), sp(2.)]);
        close(&act("Softplus", &[], &[1000.0]), &[1000.0]);
        close(&act("Softsign", &[], &x), &[-0.5, 0., 2. / 3.]);
        close(
            &act("Mish", &[], &x),
            &[-sp(-1.).tanh(), 0., 2. * sp(2.).tanh()],
        );
        close(&act("Swish", &[], &x), &[-s(-1.), 0., 2. * s(2.)]);
        close(
            &act("Swish", &[("alpha", Attr::Float(2.0))], &x),
            &[-s(-2.), 0., 2. * s(4.)],
        );
        close(
            &act("HardSigmoid", &[], &[-3.0, 0.0, 1.0, 3.0]),
            &[0., 0.5, 0.7, 1.],
        );
        close(
            &act("HardSwish", &[], &[-4.0, -1.0, 0.0, 1.0, 4.0]),
            &[0., -1. / 3., 0., 2. / 3., 4.],
        );
    }

    #[test]
    fn gelu_exact_and_tanh() {
        // Reference values: 0.5 x (1 + erf(x / sqrt 2)).
        let x = [-1.0, 0.0, 1.0, 3.0];
        close(
            &act("Gelu", &[], &x),
            &[
                -0.15865525393145707,
                0.,
                0.8413447460685429,
                2.99595030590511,
            ],
        );
        let tanh = [("approximate", Attr::Str("tanh".into()))];
        close(
            &act("Gelu", &tanh, &x),
            &[
                -0.15880800939172324,
                0.,
                0.8411919906082768,
                2.996362607918227,
            ],
        );
        let bad = [("approximate", Attr::Str("fast".into()))];
        assert!(run("Gelu", &attrs(&bad), &[f32s(&[1], &[1.0])]).is_err());
    }

    #[test]
    fn shrink() {
        let soft = [("lambd", Attr::Float(1.5)), ("bias", Attr::Float(1.5))];
        close(
            &act("Shrink", &soft, &[-2.0, -1.0, 0.0, 1.0, 2.0]),
            &[-0.5, 0., 0., 0., 0.5],
        );
        close(
            &act("Shrink", &[("lambd", Attr::Float(1.5))], &[-2.0, -1.0, 2.0]),
            &[-2., 0., 2.],
        );
        let r = run(
            "Shrink",
            &attrs(&[("bias", Attr::Float(0.5))]),
            &[ints(DType::I32, &[3], &[-3, 0, 3])],
        )
        .unwrap();
        assert_eq!(r.data(), &Data::I32(vec![-2, 0, 2]));
    }
}
