//! `com.microsoft.MoE`, as ONNX Runtime 1.31's CPU kernel computes it.
//!
//! Inputs: 0 input `(T, Hd)` or `(B, S, Hd)`, 1 router_probs `(T, E)` (logits),
//! 2 fc1_experts_weights `(E, f*I, Hd)`, 3 fc1_experts_bias `(E, f*I)`, 4 fc2_experts_weights
//! `(E, Hd, I)`, 5 fc2_experts_bias `(E, Hd)`, 6 fc3_experts_weights `(E, I, Hd)`,
//! 7 fc3_experts_bias `(E, I)`; `f` is 2 for a fused SwiGLU (`swiglu_fusion` 1 or 2), else 1.
//! Weights are `(out, in)`: `fc1(x) = W1 x + b1`.
//!
//! Per token: softmax over the router logits; the `k` largest probabilities (ties to the higher
//! expert index); with `normalize_routing_weights` divided by their sum (if above 1e-8, else
//! `1/k` each). The output is `sum_i w_i * (W2 act(...) + b2)` over the chosen experts, with
//! `activation_type`:
//! - `relu`, `silu` (`x * sigmoid(x)`), `gelu` (the tanh approximation, as ONNX Runtime's CPU
//!   kernel), `identity` of `fc1(x)`, times `fc3(x)` when fc3 is given (a gated MLP);
//! - `swiglu`: gate `g` and linear `l` from `fc1(x)` interleaved (`swiglu_fusion` 1: `g =
//!   h[2i]`, `l = h[2i+1]`), concatenated (2: `g = h[i]`, `l = h[I+i]`), or `g = fc1(x)`,
//!   `l = fc3(x)` (0); with `swiglu_limit`, `g = min(g, limit)` and `l = clamp(l, -limit,
//!   limit)`; then `g * sigmoid(alpha * g) * (l + beta)` (`activation_alpha`, default 1,
//!   `activation_beta`, default 0).
//!
//! `use_sparse_mixer` needs `k = 2` and is otherwise ignored, as on ONNX Runtime's CPU.

use crate::attr::AttrsExt;
use crate::bail;
use crate::ops::attention::common::{float_input, float_input_type, positive};
use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::Tensor;
use crate::types::ValueType;

#[derive(Clone, Copy, PartialEq)]
enum Act {
    Relu,
    Gelu,
    Silu,
    Identity,
    SwiGlu,
}

pub(crate) fn infer(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = float_input_type(ctx, 0, "input", &[2, 3])?;
    float_input_type(ctx, 1, "router_probs", &[2])?;
    float_input_type(ctx, 2, "fc1_experts_weights", &[3])?;
    float_input_type(ctx, 4, "fc2_experts_weights", &[3])?;
    Ok(vec![x.clone()])
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn gelu_tanh(x: f64) -> f64 {
    const C: f64 = 0.797_884_560_802_865_4; // sqrt(2 / pi)
    0.5 * x * (1.0 + (C * (x + 0.044715 * x * x * x)).tanh())
}

/// `W x + b` for one expert's `(out, in)` weights.
fn linear(w: &[f64], b: Option<&[f64]>, x: &[f64], out: usize) -> Vec<f64> {
    let n = x.len();
    (0..out)
        .map(|o| {
            let row = &w[o * n..(o + 1) * n];
            let s: f64 = row.iter().zip(x).map(|(a, b)| a * b).sum();
            s + b.map_or(0.0, |b| b[o])
        })
        .collect()
}

pub(crate) fn eval(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let a = ctx.attrs;
    let x_t = float_input(ctx, 0, "input", &[2, 3])?;
    let r_t = float_input(ctx, 1, "router_probs", &[2])?;
    let w1_t = float_input(ctx, 2, "fc1_experts_weights", &[3])?;
    let w2_t = float_input(ctx, 4, "fc2_experts_weights", &[3])?;
    let hd = *x_t.shape().last().unwrap_or(&0);
    let tokens = x_t.len().checked_div(hd).unwrap_or(0);
    let e = r_t.shape()[1];
    if r_t.shape()[0] != tokens {
        bail!(
            "router_probs {:?} must have one row per token ({tokens})",
            r_t.shape()
        );
    }
    let act = match a.str_or("activation_type", "relu")? {
        "relu" => Act::Relu,
        "gelu" => Act::Gelu,
        "silu" => Act::Silu,
        "identity" => Act::Identity,
        "swiglu" => Act::SwiGlu,
        other => bail!("unsupported activation_type \"{other}\""),
    };
    let fusion = a.int_or("swiglu_fusion", 0)?;
    if !(0..=2).contains(&fusion) {
        bail!("swiglu_fusion must be 0, 1 or 2, got {fusion}");
    }
    let k = positive(a.int_or("k", 1)?, "k")?;
    if k > e {
        bail!("k ({k}) exceeds the number of experts ({e})");
    }
    if a.int_or("use_sparse_mixer", 0)? != 0 && k != 2 {
        bail!("use_sparse_mixer needs k = 2");
    }
    let normalize = a.int_or("normalize_routing_weights", 0)? != 0;
    let alpha = a.float_or("activation_alpha", 1.0)? as f64;
    let beta = a.float_or("activation_beta", 0.0)? as f64;
    let limit = a.float("swiglu_limit")?.map(f64::from);

    let inter = w2_t.shape()[2];
    let fused = act == Act::SwiGlu && fusion != 0;
    let f1 = if fused { 2 * inter } else { inter };
    if w1_t.shape() != [e, f1, hd] {
        bail!(
            "fc1_experts_weights must be ({e}, {f1}, {hd}), got {:?}",
            w1_t.shape()
        );
    }
    if w2_t.shape() != [e, hd, inter] {
        bail!(
            "fc2_experts_weights must be ({e}, {hd}, {inter}), got {:?}",
            w2_t.shape()
        );
    }
    let bias = |i: usize, len: usize, name: &str| -> OpResult<Option<Vec<f64>>> {
        match ctx.opt_input(i) {
            Some(_) => {
                let t = float_input(ctx, i, name, &[2])?;
                if t.shape() != [e, len] {
                    bail!("{name} must be ({e}, {len}), got {:?}", t.shape());
                }
                Ok(Some(t.to_f64()))
            }
            None => Ok(None),
        }
    };
    let b1 = bias(3, f1, "fc1_experts_bias")?;
    let b2 = bias(5, hd, "fc2_experts_bias")?;
    let w3 = match ctx.opt_input(6) {
        Some(_) => {
            let t = float_input(ctx, 6, "fc3_experts_weights", &[3])?;
            if t.shape() != [e, inter, hd] {
                bail!(
                    "fc3_experts_weights must be ({e}, {inter}, {hd}), got {:?}",
                    t.shape()
                );
            }
            Some(t.to_f64())
        }
        None => None,
    };
    let b3 = bias(7, inter, "fc3_experts_bias")?;
    if act == Act::SwiGlu && fusion == 0 && w3.is_none() {
        bail!("swiglu with swiglu_fusion = 0 needs fc3_experts_weights");
    }
    if b3.is_some() && w3.is_none() {
        bail!("fc3_experts_bias needs fc3_experts_weights");
    }

    let x = x_t.to_f64();
    let router = r_t.to_f64();
    let w1 = w1_t.to_f64();
    let w2 = w2_t.to_f64();
    let slice = |v: &Option<Vec<f64>>, ex: usize, len: usize| -> Option<Vec<f64>> {
        v.as_ref().map(|v| v[ex * len..(ex + 1) * len].to_vec())
    };
    let mut out = vec![0.0; x.len()];
    for t in 0..tokens {
        let xt = &x[t * hd..(t + 1) * hd];
        let mut probs = router[t * e..(t + 1) * e].to_vec();
        crate::ops::attention::common::softmax_in_place(&mut probs, None);
        let mut order: Vec<usize> = (0..e).collect();
        // Descending by probability; ties to the higher expert index.
        order.sort_by(|&i, &j| {
            probs[j]
                .partial_cmp(&probs[i])
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(j.cmp(&i))
        });
        let chosen = &order[..k];
        let mut weights: Vec<f64> = chosen.iter().map(|&i| probs[i]).collect();
        if normalize {
            let sum: f64 = weights.iter().sum();
            if sum > 1e-8 {
                weights.iter_mut().for_each(|w| *w /= sum);
            } else {
                weights.iter_mut().for_each(|w| *w = 1.0 / k as f64);
            }
        }
        for (&ex, &wt) in chosen.iter().zip(&weights) {
            if wt <= 0.0 {
                continue;
            }
            let h1 = linear(
                &w1[ex * f1 * hd..(ex + 1) * f1 * hd],
                slice(&b1, ex, f1).as_deref(),
                xt,
                f1,
            );
            let h3 = w3.as_ref().map(|w3| {
                linear(
                    &w3[ex * inter * hd..(ex + 1) * inter * hd],
                    slice(&b3, ex, inter).as_deref(),
                    xt,
                    inter,
                )
            });
            let hidden: Vec<f64> = (0..inter)
                .map(|i| {
                    if act == Act::SwiGlu {
                        let (g, l) = match (fusion, &h3) {
                            (1, _) => (h1[2 * i], h1[2 * i + 1]),
                            (2, _) => (h1[i], h1[inter + i]),
                            (_, Some(h3)) => (h1[i], h3[i]),
                            _ => (h1[i], 0.0),
                        };
                        let (g, l) = match limit {
                            Some(lim) => (g.min(lim), l.clamp(-lim, lim)),
                            None => (g, l),
                        };
                        g * sigmoid(alpha * g) * (l + beta)
                    } else {
                        let v = h1[i];
                        let y = match act {
                            Act::Relu => v.max(0.0),
                            Act::Gelu => gelu_tanh(v),
                            Act::Silu => v * sigmoid(v),
                            _ => v,
                        };
                        h3.as_ref().map_or(y, |h3| y * h3[i])
                    }
                })
                .collect();
            let y = linear(
                &w2[ex * hd * inter..(ex + 1) * hd * inter],
                slice(&b2, ex, hd).as_deref(),
                &hidden,
                hd,
            );
            for (o, v) in out[t * hd..(t + 1) * hd].iter_mut().zip(&y) {
                *o += wt * v;
            }
        }
    }
    Ok(vec![Tensor::from_f64(
        x_t.dtype(),
        x_t.shape().to_vec(),
        &out,
    )])
}

#[cfg(test)]
mod tests {
    use crate::attr::{Attr, Attrs};
    use crate::ops::attention::common::testing::{assert_close, f32s, run};

    fn attrs(list: &[(&str, Attr)]) -> Attrs {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    /// Two experts of hidden 1, inter 1; expert e doubles (e=0) or negates (e=1) its input.
    #[test]
    fn routing_top1_and_top2() {
        let x = f32s(&[2, 1], &[3.0, 3.0]);
        // Token 0 prefers expert 0 (logits ln 3 : 0 -> probs 0.75 : 0.25); token 1 ties.
        let r = f32s(&[2, 2], &[3f32.ln(), 0.0, 0.0, 0.0]);
        let w1 = f32s(&[2, 1, 1], &[1.0, 1.0]);
        let w2 = f32s(&[2, 1, 1], &[2.0, -1.0]);
        let inputs = [Some(x), Some(r), Some(w1), None, Some(w2)];
        let y = run(
            "com.microsoft.MoE",
            &inputs,
            attrs(&[
                ("k", Attr::Int(1)),
                ("activation_type", Attr::Str("identity".into())),
            ]),
            1,
        )
        .expect("moe");
        // Token 0: 0.75 * 6; token 1: a tie goes to expert 1: 0.5 * -3.
        assert_close(&y[0], &[4.5, -1.5], 1e-6);
        let y = run(
            "com.microsoft.MoE",
            &inputs,
            attrs(&[
                ("k", Attr::Int(2)),
                ("activation_type", Attr::Str("identity".into())),
                ("normalize_routing_weights", Attr::Int(1)),
            ]),
            1,
        )
        .expect("moe");
        assert_close(&y[0], &[0.75 * 6.0 - 0.25 * 3.0, 1.5], 1e-6);
    }

    /// Interleaved SwiGLU with a limit and biases, one expert.
    #[test]
    fn swiglu_interleaved_clamped() {
        let x = f32s(&[1, 1], &[1.0]);
        let r = f32s(&[1, 1], &[0.0]);
        // fc1 rows: gate 10 (clamped to 2), linear -5 (clamped to -2); bias 0 / 1.
        let w1 = f32s(&[1, 2, 1], &[10.0, -6.0]);
        let b1 = f32s(&[1, 2], &[0.0, 1.0]);
        let w2 = f32s(&[1, 1, 1], &[1.0]);
        let b2 = f32s(&[1, 1], &[0.5]);
        let y = run(
            "com.microsoft.MoE",
            &[Some(x), Some(r), Some(w1), Some(b1), Some(w2), Some(b2)],
            attrs(&[
                ("k", Attr::Int(1)),
                ("activation_type", Attr::Str("swiglu".into())),
                ("swiglu_fusion", Attr::Int(1)),
                ("swiglu_limit", Attr::Float(2.0)),
                ("activation_alpha", Attr::Float(1.0)),
                ("activation_beta", Attr::Float(1.0)),
            ]),
            1,
        )
        .expect("moe");
        let g = 2.0f64;
        let want = g / (1.0 + (-g).exp()) * (-2.0 + 1.0) + 0.5;
        assert_close(&y[0], &[want], 1e-6);
    }
}
