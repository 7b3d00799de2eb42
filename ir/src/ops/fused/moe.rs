//! `moe(x, router_logits, w1, b1?, w2, b2?, w3?, b3?, selection_bias?, hash_table?,
//! token_ids?, shared_w1?, shared_w2?, shared_w3?, shared_gate?)`: a mixture-of-experts
//! layer — routing, the routed experts' gated MLPs, the weighted combine and the shared
//! experts. Inputs 0-7 and the attribute names follow ONNX Runtime's `com.microsoft.MoE`.
//!
//! Inputs (`N` tokens = product of x's leading dims, `H` hidden, `E` experts, `I` expert
//! intermediate size; all weights share x's float dtype):
//! - 0 `x` `[..., H]`; 1 `router_logits` `[..., E]` (same leading dims).
//! - 2 `w1` `[E, I, H]` (gate / fc1; `[E, 2I, H]` when `swiglu_fusion` is 1 or 2),
//!   3 `b1` `[E, I]` (`[E, 2I]`).
//! - 4 `w2` `[E, H, I]` (down / fc2), 5 `b2` `[E, H]`.
//! - 6 `w3` `[E, I, H]` (up / fc3, only with `swiglu_fusion` 0), 7 `b3` `[E, I]`.
//! - 8 `selection_bias` `[E]`: added to the scores for choosing experts only (DeepSeek-V3's
//!   `e_score_correction_bias`); the weights use the unbiased scores.
//! - 9 `hash_table` `[V, k]` int and 10 `token_ids` (int, x's leading shape): hash routing
//!   (DeepSeek-V4 `tid2eid`); token `n` goes to experts `hash_table[token_ids[n], :]`.
//!   Both or neither.
//! - 11 `shared_w1` `[Is, H]` (gate), 12 `shared_w2` `[H, Is]`, 13 `shared_w3` `[Is, H]` (up,
//!   required for swiglu): the shared experts, several of them concatenated along `Is`
//!   (which is the same function). 14 `shared_gate` `[H]` or `[1, H]`: Qwen2-MoE's gate,
//!   the shared output is multiplied by `sigmoid(x . shared_gate)`.
//!
//! Attributes:
//! - `k` (int, default 1): experts per token.
//! - `scoring_func` (string, default "softmax"): `s = softmax(l)` over the E logits |
//!   "sigmoid": `s = sigmoid(l)` | "sqrt_softplus": `s = sqrt(ln(1 + exp(l)))`.
//! - `n_group`, `topk_group` (ints, default 1, 1): group-limited routing (DeepSeek-V3). The
//!   E experts form `n_group` equal groups of consecutive experts; a group's score is the
//!   sum of its 2 largest selection scores (its largest if a group holds one expert); only
//!   experts of the `topk_group` best groups can be chosen.
//! - `normalize_routing_weights` (int, default 0): 1 divides the k weights by their sum.
//!   Softmax over all experts then top-k then renormalise equals top-k of the logits then
//!   softmax over the k (GPT-OSS): both are `normalize_routing_weights = 1` with softmax.
//! - `routed_scaling_factor` (float, default 1.0): multiplies the (normalised) weights.
//! - `activation_type` (string, default "swiglu"): "swiglu" | "silu" | "gelu" | "relu" |
//!   "identity". `swiglu` with `activation_alpha` (default 1.0), `activation_beta`
//!   (default 0.0), `swiglu_limit` (optional) is exactly the `swiglu` op's `alpha`, `beta`,
//!   `limit` (GPT-OSS: 1.702, 1.0, 7.0).
//! - `swiglu_fusion` (int, default 0): where swiglu's up projection lives: 0 in `w3`; 1 in
//!   `w1`, interleaved (row `2i` gate, `2i + 1` up); 2 in `w1`, halves (rows `0..I` gate,
//!   `I..2I` up). Biases are split the same way.
//!
//! Semantics per token `n` (row `x_n`, logits `l_n`), all in f64:
//!
//! ```text
//! s      = score(l_n)                                       [E]
//! sel    = s + selection_bias                               (s if absent)
//! chosen = hash_table[token_ids[n]]                         if hash routing, else
//!          the k experts of largest sel among the allowed groups (descending; ties:
//!          lower index first)
//! w_j    = s[chosen_j];  w_j /= sum_j w_j  if normalize_routing_weights;  w_j *= routed_scaling_factor
//! g_e    = w1[e] . x_n + b1[e],  u_e = w3[e] . x_n + b3[e]        [I]
//! h_e    = swiglu(g_e, u_e)                        for "swiglu" (u required)
//!          act(g_e) * u_e   (or act(g_e) without an up projection)   for the others,
//!          act = silu | gelu (exact, erf) | relu | identity
//! y_n    = sum_j w_j * (w2[chosen_j] . h_chosen_j + b2[chosen_j])
//!        + shared(x_n)   with shared(x) = sigmoid(x . shared_gate) * (shared_w2 . h_s),
//!                        h_s = the same activation of (shared_w1 . x, shared_w3 . x)
//! ```
//!
//! Output: x's dtype and shape.

use crate::attr::AttrsExt;
use crate::bail;
use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::Tensor;
use crate::types::ValueType;

use super::swiglu::Swiglu;
use super::{float_input, float_tensor};

#[derive(Clone, Copy, PartialEq)]
enum Score {
    Softmax,
    Sigmoid,
    SqrtSoftplus,
}

#[derive(Clone, Copy, PartialEq)]
enum Act {
    Swiglu,
    Silu,
    Gelu,
    Relu,
    Identity,
}

struct Params {
    k: usize,
    score: Score,
    n_group: usize,
    topk_group: usize,
    normalize: bool,
    scaling: f64,
    act: Act,
    swiglu: Swiglu,
    fusion: i64,
}

fn params(attrs: &crate::attr::Attrs) -> OpResult<Params> {
    let k = attrs.int_or("k", 1)?;
    if k < 1 {
        bail!("k must be >= 1, got {k}");
    }
    let score = match attrs.str_or("scoring_func", "softmax")? {
        "softmax" => Score::Softmax,
        "sigmoid" => Score::Sigmoid,
        "sqrt_softplus" => Score::SqrtSoftplus,
        s => bail!("scoring_func must be softmax, sigmoid or sqrt_softplus, got {s:?}"),
    };
    let n_group = attrs.int_or("n_group", 1)?;
    let topk_group = attrs.int_or("topk_group", 1)?;
    if n_group < 1 || topk_group < 1 || topk_group > n_group {
        bail!("need 1 <= topk_group <= n_group, got {topk_group}, {n_group}");
    }
    let normalize = match attrs.int_or("normalize_routing_weights", 0)? {
        0 => false,
        1 => true,
        v => bail!("normalize_routing_weights must be 0 or 1, got {v}"),
    };
    let act = match attrs.str_or("activation_type", "swiglu")? {
        "swiglu" => Act::Swiglu,
        "silu" => Act::Silu,
        "gelu" => Act::Gelu,
        "relu" => Act::Relu,
        "identity" => Act::Identity,
        a => bail!("unsupported activation_type {a:?}"),
    };
    let fusion = attrs.int_or("swiglu_fusion", 0)?;
    if !(0..=2).contains(&fusion) {
        bail!("swiglu_fusion must be 0, 1 or 2, got {fusion}");
    }
    Ok(Params {
        k: k as usize,
        score,
        n_group: n_group as usize,
        topk_group: topk_group as usize,
        normalize,
        scaling: attrs.float_or("routed_scaling_factor", 1.0)? as f64,
        act,
        swiglu: Swiglu::from_attrs(
            attrs,
            ["activation_alpha", "activation_beta", "swiglu_limit"],
        )?,
        fusion,
    })
}

fn need_rank(t: &ValueType, r: usize, what: &str) -> OpResult<()> {
    if t.rank() != r {
        bail!("{what} must have rank {r}, got {t}");
    }
    Ok(())
}

pub fn infer(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let p = params(ctx.attrs)?;
    let x = float_input(ctx, 0)?;
    let l = float_input(ctx, 1)?;
    if x.rank() < 1 || l.rank() != x.rank() {
        bail!("x {x} and router_logits {l} must have the same rank >= 1");
    }
    need_rank(float_input(ctx, 2)?, 3, "w1")?;
    need_rank(float_input(ctx, 4)?, 3, "w2")?;
    if ctx.has_input(6) {
        need_rank(float_input(ctx, 6)?, 3, "w3")?;
    }
    let up = ctx.has_input(6) || p.fusion != 0;
    if p.act == Act::Swiglu && !up {
        bail!("swiglu needs an up projection (w3 or swiglu_fusion 1/2)");
    }
    if ctx.has_input(9) != ctx.has_input(10) {
        bail!("hash_table and token_ids must both be given or both be absent");
    }
    if let Some(e) = l.shape[l.rank() - 1].as_const() {
        if (e as usize) < p.k && !ctx.has_input(9) {
            bail!("k = {} exceeds the {e} experts", p.k);
        }
        if !(e as usize).is_multiple_of(p.n_group) {
            bail!("{e} experts do not form {} equal groups", p.n_group);
        }
    }
    Ok(vec![x.clone()])
}

/// The score function applied to one token's logits.
fn scores(kind: Score, l: &[f64]) -> Vec<f64> {
    match kind {
        Score::Softmax => {
            let m = l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = l.iter().map(|v| (v - m).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(|v| v / s).collect()
        }
        Score::Sigmoid => l.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect(),
        Score::SqrtSoftplus => l
            .iter()
            .map(|&v| {
                // softplus(v) = max(v, 0) + ln(1 + exp(-|v|)), stable for large |v|.
                (v.max(0.0) + (-v.abs()).exp().ln_1p()).sqrt()
            })
            .collect(),
    }
}

/// Indices of the `k` largest of `v` among `allowed`, descending, ties to the lower index.
fn top_k(v: &[f64], k: usize, allowed: impl Fn(usize) -> bool) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).filter(|&i| allowed(i)).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// The products `w[r, :] . x` for the given rows `r` of a row-major `w [*, cols]`.
fn matvec(w: &[f64], cols: usize, rows: impl Iterator<Item = usize>, x: &[f64]) -> Vec<f64> {
    rows.map(|r| {
        w[r * cols..(r + 1) * cols]
            .iter()
            .zip(x)
            .map(|(a, b)| a * b)
            .sum()
    })
    .collect()
}

fn activate(p: &Params, g: &[f64], u: Option<&[f64]>) -> Vec<f64> {
    let f = |v: f64| match p.act {
        Act::Silu | Act::Swiglu => v / (1.0 + (-v).exp()),
        Act::Gelu => 0.5 * v * (1.0 + erf(v / std::f64::consts::SQRT_2)),
        Act::Relu => v.max(0.0),
        Act::Identity => v,
    };
    match (p.act, u) {
        (Act::Swiglu, Some(u)) => g
            .iter()
            .zip(u)
            .map(|(&a, &b)| p.swiglu.apply(a, b))
            .collect(),
        (_, Some(u)) => g.iter().zip(u).map(|(&a, &b)| f(a) * b).collect(),
        (_, None) => g.iter().map(|&a| f(a)).collect(),
    }
}

/// The error function to f64 precision: Taylor series below 2.5, continued fraction of
/// erfc above.
fn erf(x: f64) -> f64 {
    let a = x.abs();
    let r = if a < 2.5 {
        // erf(a) = 2/sqrt(pi) * sum_n (-1)^n a^(2n+1) / (n! (2n+1))
        let a2 = a * a;
        let (mut term, mut sum) = (a, a);
        for n in 1..200 {
            term *= -a2 / n as f64;
            let add = term / (2 * n + 1) as f64;
            sum += add;
            if add.abs() < 1e-17 * sum.abs() {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc(a) = exp(-a^2) / sqrt(pi) / (a + (1/2)/(a + 1/(a + (3/2)/(a + ...))))
        let mut f = a;
        for k in (1..80).rev() {
            f = a + (k as f64 / 2.0) / f;
        }
        1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / f
    };
    if x < 0.0 {
        -r
    } else {
        r
    }
}

pub fn eval(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let p = params(ctx.attrs)?;
    let x = float_tensor(ctx, 0)?;
    let lg = float_tensor(ctx, 1)?;
    let w1t = float_tensor(ctx, 2)?;
    let w2t = float_tensor(ctx, 4)?;
    if x.rank() < 1 || lg.rank() != x.rank() || w1t.rank() != 3 || w2t.rank() != 3 {
        bail!("moe: x, router_logits must share their rank; w1, w2 must have rank 3");
    }
    let hid = x.shape()[x.rank() - 1];
    let e = lg.shape()[lg.rank() - 1];
    let n: usize = x.shape()[..x.rank() - 1].iter().product();
    if lg.shape()[..lg.rank() - 1] != x.shape()[..x.rank() - 1] {
        bail!(
            "router_logits {:?} do not match x {:?}",
            lg.shape(),
            x.shape()
        );
    }
    let rows1 = w1t.shape()[1];
    let inter = if p.fusion == 0 { rows1 } else { rows1 / 2 };
    if w1t.shape() != [e, rows1, hid] || (p.fusion != 0 && rows1 % 2 != 0) {
        bail!(
            "w1 {:?} must be [{e}, I, {hid}] (2I rows when fused)",
            w1t.shape()
        );
    }
    if w2t.shape() != [e, hid, inter] {
        bail!("w2 {:?} must be [{e}, {hid}, {inter}]", w2t.shape());
    }
    let opt = |i: usize, shape: &[usize], what: &str| -> OpResult<Option<Vec<f64>>> {
        match ctx.opt_input(i) {
            None => Ok(None),
            Some(t) if t.shape() == shape && t.dtype().is_float() => Ok(Some(t.to_f64())),
            Some(t) => bail!("{what} {:?} must be float {shape:?}", t.shape()),
        }
    };
    let b1 = opt(3, &[e, rows1], "b1")?;
    let b2 = opt(5, &[e, hid], "b2")?;
    let w3 = opt(6, &[e, inter, hid], "w3")?;
    let b3 = opt(7, &[e, inter], "b3")?;
    let bias = opt(8, &[e], "selection_bias")?;
    let has_up = w3.is_some() || p.fusion != 0;
    if p.act == Act::Swiglu && !has_up {
        bail!("swiglu needs an up projection (w3 or swiglu_fusion 1/2)");
    }
    if p.fusion != 0 && w3.is_some() {
        bail!("w3 must be absent when swiglu_fusion is {}", p.fusion);
    }
    let hash = match (ctx.opt_input(9), ctx.opt_input(10)) {
        (None, None) => None,
        (Some(t), Some(ids)) => {
            if !t.dtype().is_int() || t.rank() != 2 || !ids.dtype().is_int() || ids.len() != n {
                bail!("hash_table must be int [V, k] and token_ids int with one id per token");
            }
            Some((t.to_i64(), t.shape()[0], t.shape()[1], ids.to_i64()))
        }
        _ => bail!("hash_table and token_ids must both be given or both be absent"),
    };
    if hash.is_none() && p.k > e {
        bail!("k = {} exceeds the {e} experts", p.k);
    }
    if !e.is_multiple_of(p.n_group) {
        bail!("{e} experts do not form {} equal groups", p.n_group);
    }
    // Shared experts.
    let shared = match (ctx.opt_input(11), ctx.opt_input(12)) {
        (None, None) => None,
        (Some(sw1), Some(sw2)) => {
            let is = sw1.shape().first().copied().unwrap_or(0);
            if sw1.shape() != [is, hid] || sw2.shape() != [hid, is] {
                bail!(
                    "shared_w1 {:?} / shared_w2 {:?} must be [Is, {hid}] / [{hid}, Is]",
                    sw1.shape(),
                    sw2.shape()
                );
            }
            let sw3 = opt(13, &[is, hid], "shared_w3")?;
            if p.act == Act::Swiglu && sw3.is_none() {
                bail!("swiglu shared experts need shared_w3");
            }
            let gate = match ctx.opt_input(14) {
                None => None,
                Some(g) if g.len() == hid && g.dtype().is_float() => Some(g.to_f64()),
                Some(g) => bail!("shared_gate {:?} must hold {hid} values", g.shape()),
            };
            Some((sw1.to_f64(), sw2.to_f64(), sw3, gate, is))
        }
        _ => bail!("shared_w1 and shared_w2 must both be given or both be absent"),
    };
    let (xv, lv, w1, w2) = (x.to_f64(), lg.to_f64(), w1t.to_f64(), w2t.to_f64());
    let gsize = e / p.n_group;
    let mut y = vec![0f64; xv.len()];
    for t in 0..n {
        let xr = &xv[t * hid..(t + 1) * hid];
        let s = scores(p.score, &lv[t * e..(t + 1) * e]);
        let chosen: Vec<usize> = if let Some((tab, v, kk, ids)) = &hash {
            let id = ids[t];
            if id < 0 || id as usize >= *v {
                bail!("token id {id} is outside the hash table's {v} rows");
            }
            let row = &tab[id as usize * kk..(id as usize + 1) * kk];
            row.iter()
                .map(|&ex| {
                    if ex < 0 || ex as usize >= e {
                        bail!("hash table names expert {ex} of {e}");
                    }
                    Ok(ex as usize)
                })
                .collect::<OpResult<_>>()?
        } else {
            let sel: Vec<f64> = match &bias {
                Some(b) => s.iter().zip(b).map(|(a, c)| a + c).collect(),
                None => s.clone(),
            };
            let groups: Vec<usize> = if p.n_group > 1 {
                let gs: Vec<f64> = (0..p.n_group)
                    .map(|g| {
                        let part = &sel[g * gsize..(g + 1) * gsize];
                        top_k(part, 2, |_| true).iter().map(|&i| part[i]).sum()
                    })
                    .collect();
                top_k(&gs, p.topk_group, |_| true)
            } else {
                vec![0]
            };
            top_k(&sel, p.k, |i| {
                p.n_group == 1 || groups.contains(&(i / gsize))
            })
        };
        let mut w: Vec<f64> = chosen.iter().map(|&c| s[c]).collect();
        if p.normalize {
            let sum: f64 = w.iter().sum();
            if sum != 0.0 {
                w.iter_mut().for_each(|v| *v /= sum);
            }
        }
        let yr = &mut y[t * hid..(t + 1) * hid];
        for (&ex, &wj) in chosen.iter().zip(&w) {
            let wj = wj * p.scaling;
            let w1e = &w1[ex * rows1 * hid..(ex + 1) * rows1 * hid];
            let (grows, urows): (Vec<usize>, Vec<usize>) = match p.fusion {
                1 => (
                    (0..inter).map(|i| 2 * i).collect(),
                    (0..inter).map(|i| 2 * i + 1).collect(),
                ),
                2 => ((0..inter).collect(), (inter..2 * inter).collect()),
                _ => ((0..inter).collect(), vec![]),
            };
            let mut g = matvec(w1e, hid, grows.iter().copied(), xr);
            if let Some(b) = &b1 {
                g.iter_mut()
                    .zip(&grows)
                    .for_each(|(v, &r)| *v += b[ex * rows1 + r]);
            }
            let u = if p.fusion != 0 {
                let mut u = matvec(w1e, hid, urows.iter().copied(), xr);
                if let Some(b) = &b1 {
                    u.iter_mut()
                        .zip(&urows)
                        .for_each(|(v, &r)| *v += b[ex * rows1 + r]);
                }
                Some(u)
            } else if let Some(w3) = &w3 {
                let w3e = &w3[ex * inter * hid..(ex + 1) * inter * hid];
                let mut u = matvec(w3e, hid, 0..inter, xr);
                if let Some(b) = &b3 {
                    u.iter_mut()
                        .enumerate()
                        .for_each(|(i, v)| *v += b[ex * inter + i]);
                }
                Some(u)
            } else {
                None
            };
            let h = activate(&p, &g, u.as_deref());
            let down = matvec(
                &w2[ex * hid * inter..(ex + 1) * hid * inter],
                inter,
                0..hid,
                &h,
            );
            for (i, (yv, d)) in yr.iter_mut().zip(down).enumerate() {
                *yv += wj * (d + b2.as_ref().map_or(0.0, |b| b[ex * hid + i]));
            }
        }
        if let Some((sw1, sw2, sw3, gate, is)) = &shared {
            let g = matvec(sw1, hid, 0..*is, xr);
            let u = sw3.as_ref().map(|w| matvec(w, hid, 0..*is, xr));
            let h = activate(&p, &g, u.as_deref());
            let down = matvec(sw2, *is, 0..hid, &h);
            let gs = gate.as_ref().map_or(1.0, |gv| {
                let z: f64 = gv.iter().zip(xr).map(|(a, b)| a * b).sum();
                1.0 / (1.0 + (-z).exp())
            });
            yr.iter_mut().zip(down).for_each(|(yv, d)| *yv += gs * d);
        }
    }
    Ok(vec![Tensor::from_f64(x.dtype(), x.shape().to_vec(), &y)])
}

#[cfg(test)]
mod tests {
    use crate::attr::{Attr, Attrs};
    use crate::ops::reduce::test_util::*;
    use crate::tensor::Tensor;

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// Runs moe with inputs given by index.
    fn moe(a: &Attrs, ins: &[(usize, Tensor)]) -> Tensor {
        let mut v: Vec<Option<Tensor>> = vec![None; 15];
        for (i, t) in ins {
            v[*i] = Some(t.clone());
        }
        while v.last().is_some_and(|t| t.is_none()) {
            v.pop();
        }
        run1("moe", a, &v).unwrap()
    }

    #[test]
    fn softmax_top1_normalise_and_scale() {
        // Token 0 logits [0, ln 3] -> scores [1/4, 3/4] -> expert 1, weight 3/4;
        // token 1 -> expert 0. Experts (identity): e0 = 2x then 1x, e1 = 3x then 10x.
        let x = f32s(&[2, 1], &[1.0, 2.0]);
        let l3 = 3f32.ln();
        let l = f32s(&[2, 2], &[0.0, l3, l3, 0.0]);
        let w1 = f32s(&[2, 1, 1], &[2.0, 3.0]);
        let w2 = f32s(&[2, 1, 1], &[1.0, 10.0]);
        let ins = [(0, x), (1, l), (2, w1), (4, w2)];
        let id = ("activation_type", Attr::Str("identity".into()));
        let y = moe(&attrs(std::slice::from_ref(&id)), &ins);
        assert_close(&y, &[2, 1], &[22.5, 3.0], 1e-6);
        let a = attrs(&[
            id,
            ("normalize_routing_weights", Attr::Int(1)),
            ("routed_scaling_factor", Attr::Float(2.0)),
        ]);
        assert_close(&moe(&a, &ins), &[2, 1], &[60.0, 8.0], 1e-6);
    }

    #[test]
    fn sigmoid_top2_with_selection_bias_swiglu() {
        // Scores all 1/2; the bias picks experts 2 then 1; the weights stay 1/2 each.
        let x = f32s(&[1, 1], &[1.0]);
        let l = f32s(&[1, 3], &[0.0; 3]);
        let w1 = f32s(&[3, 1, 1], &[1.0, 2.0, 3.0]);
        let w2 = f32s(&[3, 1, 1], &[1.0; 3]);
        let w3 = f32s(&[3, 1, 1], &[1.0; 3]);
        let bias = f32s(&[3], &[0.0, 1.0, 2.0]);
        let a = attrs(&[
            ("k", Attr::Int(2)),
            ("scoring_func", Attr::Str("sigmoid".into())),
        ]);
        let y = moe(&a, &[(0, x), (1, l), (2, w1), (4, w2), (6, w3), (8, bias)]);
        let want = 0.5 * 3.0 * sig(3.0) + 0.5 * 2.0 * sig(2.0);
        assert_close(&y, &[1, 1], &[want], 1e-6);
    }

    #[test]
    fn group_limited() {
        // Selection scores [0.8, 0.2, 0.7, 0.7]: group {0, 1} sums to 1.0, group {2, 3} to
        // 1.4, so expert 2 wins (tie with 3, lower index), though expert 0 is the best.
        let x = f32s(&[1, 1], &[1.0]);
        let l = f32s(&[1, 4], &[0.0; 4]);
        let w1 = f32s(&[4, 1, 1], &[1.0; 4]);
        let w2 = f32s(&[4, 1, 1], &[1.0, 2.0, 3.0, 4.0]);
        let bias = f32s(&[4], &[0.3, -0.3, 0.2, 0.2]);
        let ins = [(0, x), (1, l), (2, w1), (4, w2), (8, bias)];
        let base = [
            ("activation_type", Attr::Str("identity".into())),
            ("scoring_func", Attr::Str("sigmoid".into())),
        ];
        assert_close(&moe(&attrs(&base), &ins), &[1, 1], &[0.5], 1e-6);
        let mut g = base.to_vec();
        g.push(("n_group", Attr::Int(2)));
        g.push(("topk_group", Attr::Int(1)));
        assert_close(&moe(&attrs(&g), &ins), &[1, 1], &[1.5], 1e-6);
    }

    #[test]
    fn hash_routed_sqrt_softplus() {
        // Token 0 has id 1 -> expert 0; token 1 has id 0 -> expert 2. Scores sqrt(ln 2).
        let x = f32s(&[1, 2, 1], &[1.0, 1.0]);
        let l = f32s(&[1, 2, 3], &[0.0; 6]);
        let w1 = f32s(&[3, 1, 1], &[1.0; 3]);
        let w2 = f32s(&[3, 1, 1], &[1.0, 2.0, 3.0]);
        let table = i64s(&[2, 1], &[2, 0]);
        let ids = i64s(&[1, 2], &[1, 0]);
        let a = attrs(&[
            ("activation_type", Attr::Str("identity".into())),
            ("scoring_func", Attr::Str("sqrt_softplus".into())),
        ]);
        let y = moe(
            &a,
            &[(0, x), (1, l), (2, w1), (4, w2), (9, table), (10, ids)],
        );
        let s = 2f64.ln().sqrt();
        assert_close(&y, &[1, 2, 1], &[s, 3.0 * s], 1e-6);
    }

    #[test]
    fn gpt_oss_fused_swiglu_with_biases_and_gated_shared_expert() {
        // One expert. w1 holds gate row 2 and up row 3 (interleaved); b1 [0.5, -0.5]:
        // x = 2 gives gate 4.5 and up 5.5, clamped to 5 by limit 5.
        let x = f32s(&[1, 1], &[2.0]);
        let l = f32s(&[1, 1], &[0.0]);
        let w1 = f32s(&[1, 2, 1], &[2.0, 3.0]);
        let b1 = f32s(&[1, 2], &[0.5, -0.5]);
        let w2 = f32s(&[1, 1, 1], &[1.0]);
        let b2 = f32s(&[1, 1], &[0.25]);
        let sw1 = f32s(&[1, 1], &[1.0]);
        let sw2 = f32s(&[1, 1], &[2.0]);
        let sw3 = f32s(&[1, 1], &[1.0]);
        let sg = f32s(&[1], &[0.0]);
        let al = 1.702f32 as f64;
        let routed = 4.5 * sig(al * 4.5) * 6.0 + 0.25;
        let shared = 0.5 * 2.0 * (2.0 * sig(al * 2.0) * 3.0);
        for fusion in [1, 2] {
            let a = attrs(&[
                ("swiglu_fusion", Attr::Int(fusion)),
                ("activation_alpha", Attr::Float(1.702)),
                ("activation_beta", Attr::Float(1.0)),
                ("swiglu_limit", Attr::Float(5.0)),
            ]);
            let ins = [
                (0, x.clone()),
                (1, l.clone()),
                (2, w1.clone()),
                (3, b1.clone()),
                (4, w2.clone()),
                (5, b2.clone()),
            ];
            assert_close(&moe(&a, &ins), &[1, 1], &[routed], 1e-6);
            let mut ins = ins.to_vec();
            ins.extend([
                (11, sw1.clone()),
                (12, sw2.clone()),
                (13, sw3.clone()),
                (14, sg.clone()),
            ]);
            assert_close(&moe(&a, &ins), &[1, 1], &[routed + shared], 1e-6);
        }
    }

    #[test]
    fn gelu_expert_and_errors() {
        let x = f32s(&[1, 1], &[1.0]);
        let l = f32s(&[1, 1], &[0.0]);
        let w = f32s(&[1, 1, 1], &[1.0]);
        let a = attrs(&[("activation_type", Attr::Str("gelu".into()))]);
        let y = moe(
            &a,
            &[
                (0, x.clone()),
                (1, l.clone()),
                (2, w.clone()),
                (4, w.clone()),
            ],
        );
        assert_close(&y, &[1, 1], &[0.841_344_746_068_542_9], 1e-7);
        // swiglu (the default) without an up projection, k above E.
        let ins = [
            Some(x.clone()),
            Some(l.clone()),
            Some(w.clone()),
            None,
            Some(w.clone()),
        ];
        assert!(run1("moe", &attrs(&[]), &ins).is_err());
        let a = attrs(&[
            ("k", Attr::Int(2)),
            ("activation_type", Attr::Str("relu".into())),
        ]);
        assert!(run1("moe", &a, &ins).is_err());
    }

    #[test]
    fn erf_values() {
        for (x, want) in [
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (3.0, 0.999_977_909_503_001_4),
            (-2.0, -0.995_322_265_018_952_7),
        ] {
            assert!((super::erf(x) - want).abs() < 1e-14, "erf({x})");
        }
    }
}
