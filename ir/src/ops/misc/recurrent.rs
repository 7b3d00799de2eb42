//! Recurrent-state ops of opset 27: `LinearAttention` (linear / gated / delta / gated-delta
//! rules, GQA) and `CausalConvWithState` (depthwise causal conv1d with a carry state).
//!
//! Both run the recurrence token by token in f64; the state is rounded to f32 after every
//! step, as ONNX's reference keeps it in f32.

use crate::attr::AttrsExt;
use crate::bail;
use crate::dim::Dim;
use crate::ops::misc::round_to;
use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::Tensor;
use crate::types::ValueType;
use crate::DType;

#[derive(Clone, Copy, PartialEq)]
enum Rule {
    Linear,
    Gated,
    Delta,
    GatedDelta,
}

struct Heads {
    q: usize,
    kv: usize,
    rule: Rule,
}

fn heads(attrs: &crate::attr::Attrs) -> OpResult<Heads> {
    let q = attrs
        .int("q_num_heads")?
        .ok_or_else(|| crate::ops::OpError::new("LinearAttention needs q_num_heads"))?;
    let kv = attrs
        .int("kv_num_heads")?
        .ok_or_else(|| crate::ops::OpError::new("LinearAttention needs kv_num_heads"))?;
    if q <= 0 || kv <= 0 || q % kv != 0 {
        bail!("LinearAttention q_num_heads {q} must be a positive multiple of kv_num_heads {kv}");
    }
    let rule = match attrs.str_or("update_rule", "gated_delta")? {
        "linear" => Rule::Linear,
        "gated" => Rule::Gated,
        "delta" => Rule::Delta,
        "gated_delta" => Rule::GatedDelta,
        r => bail!(
            "LinearAttention update_rule \"{r}\" is not one of linear, gated, delta, gated_delta"
        ),
    };
    Ok(Heads {
        q: q as usize,
        kv: kv as usize,
        rule,
    })
}

pub fn infer_linear_attention(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let h = heads(ctx.attrs)?;
    let q = ctx.input(0)?;
    let k = ctx.input(1)?;
    let v = ctx.input(2)?;
    if q.rank() != 3 || k.rank() != 3 || v.rank() != 3 {
        bail!("LinearAttention query, key, value must be rank 3: {q}, {k}, {v}");
    }
    let gating = matches!(h.rule, Rule::Gated | Rule::GatedDelta);
    let delta = matches!(h.rule, Rule::Delta | Rule::GatedDelta);
    if gating != ctx.has_input(4) {
        bail!("LinearAttention decay input must be given exactly for the gated rules");
    }
    if delta != ctx.has_input(5) {
        bail!("LinearAttention beta input must be given exactly for the delta rules");
    }
    let d_k = q.shape[2].floor_div(&Dim::from(h.q));
    let d_v = v.shape[2].floor_div(&Dim::from(h.kv));
    let out = ValueType::new(
        q.dtype,
        vec![
            q.shape[0].clone(),
            q.shape[1].clone(),
            d_v.mul(&Dim::from(h.q)),
        ],
    );
    let sdt = ctx.opt_input(3).map_or(q.dtype, |s| s.dtype);
    let state = ValueType::new(sdt, vec![q.shape[0].clone(), Dim::from(h.kv), d_k, d_v]);
    Ok(vec![out, state])
}

pub fn eval_linear_attention(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let h = heads(ctx.attrs)?;
    let (q, k, v) = (ctx.input(0)?, ctx.input(1)?, ctx.input(2)?);
    let past = ctx.opt_input(3);
    let decay = ctx.opt_input(4);
    let beta = ctx.opt_input(5);
    let gating = matches!(h.rule, Rule::Gated | Rule::GatedDelta);
    let delta = matches!(h.rule, Rule::Delta | Rule::GatedDelta);
    if gating != decay.is_some() || delta != beta.is_some() {
        bail!("LinearAttention decay/beta inputs do not fit update rule");
    }
    let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
    if qs.len() != 3 || ks.len() != 3 || vs.len() != 3 {
        bail!("LinearAttention query, key, value must be rank 3: {qs:?}, {ks:?}, {vs:?}");
    }
    let (b, t) = (qs[0], qs[1]);
    if qs[2] % h.q != 0 || vs[2] % h.kv != 0 {
        bail!("LinearAttention head counts do not divide {qs:?} / {vs:?}");
    }
    let d_k = qs[2] / h.q;
    let d_v = vs[2] / h.kv;
    if ks[..2] != qs[..2] || vs[..2] != qs[..2] || ks[2] != h.kv * d_k {
        bail!("LinearAttention shapes do not agree: {qs:?}, {ks:?}, {vs:?}");
    }
    let group = h.q / h.kv;
    let r = |x: f64| x as f32 as f64;
    let (qv, kv, vv) = (q.to_f64(), k.to_f64(), v.to_f64());
    // Decay per (b, t, head, d) as a function; `per_dim` when it has d_k values per head.
    let (dv, decay_per_dim) = match decay {
        Some(d) => {
            let s = d.shape();
            if s.len() != 3 || s[0] != b || s[1] != t {
                bail!("LinearAttention decay shape {s:?} does not fit {qs:?}");
            }
            let per_dim = if s[2] == h.kv * d_k {
                true
            } else if s[2] == h.kv {
                false
            } else {
                bail!(
                    "LinearAttention decay last dim {} must be {} or {}",
                    s[2],
                    h.kv,
                    h.kv * d_k
                );
            };
            (d.to_f64(), per_dim)
        }
        None => (vec![], false),
    };
    let (bv, beta_heads) = match beta {
        Some(x) => {
            let s = x.shape();
            if s.len() != 3 || s[0] != b || s[1] != t || (s[2] != h.kv && s[2] != 1) {
                bail!(
                    "LinearAttention beta shape {s:?} must be [B, T, {}] or [B, T, 1]",
                    h.kv
                );
            }
            (x.to_f64(), s[2])
        }
        None => (vec![], 1),
    };
    let ssz = d_k * d_v;
    let mut state = match past {
        Some(p) => {
            if p.shape() != [b, h.kv, d_k, d_v] {
                bail!(
                    "LinearAttention past_state {:?} must be [{b}, {}, {d_k}, {d_v}]",
                    p.shape(),
                    h.kv
                );
            }
            p.to_f64().into_iter().map(r).collect()
        }
        None => vec![0.0f64; b * h.kv * ssz],
    };
    let scale = match ctx.attrs.float_or("scale", 0.0)? as f64 {
        0.0 => 1.0 / (d_k as f64).sqrt(),
        s => s,
    };
    let mut out = vec![0.0f64; b * t * h.q * d_v];
    let mut vt = vec![0.0f64; d_v];
    for bi in 0..b {
        for ti in 0..t {
            for hk in 0..h.kv {
                let st = &mut state[(bi * h.kv + hk) * ssz..(bi * h.kv + hk + 1) * ssz];
                let kt = &kv[((bi * t + ti) * h.kv + hk) * d_k..][..d_k];
                vt.copy_from_slice(&vv[((bi * t + ti) * h.kv + hk) * d_v..][..d_v]);
                if gating {
                    for d in 0..d_k {
                        let g = if decay_per_dim {
                            dv[((bi * t + ti) * h.kv + hk) * d_k + d]
                        } else {
                            dv[(bi * t + ti) * h.kv + hk]
                        };
                        let e = r(r(g).exp());
                        for m in 0..d_v {
                            st[d * d_v + m] = r(st[d * d_v + m] * e);
                        }
                    }
                }
                if delta {
                    let bt = bv[(bi * t + ti) * beta_heads + if beta_heads == 1 { 0 } else { hk }];
                    for (m, x) in vt.iter_mut().enumerate() {
                        let got: f64 = (0..d_k).map(|d| st[d * d_v + m] * kt[d]).sum();
                        *x = r(bt * r(*x - r(got)));
                    }
                }
                for d in 0..d_k {
                    for m in 0..d_v {
                        st[d * d_v + m] = r(st[d * d_v + m] + kt[d] * vt[m]);
                    }
                }
                for g in 0..group {
                    let hq = hk * group + g;
                    let qt = &qv[((bi * t + ti) * h.q + hq) * d_k..][..d_k];
                    for m in 0..d_v {
                        let o: f64 = (0..d_k).map(|d| qt[d] * st[d * d_v + m]).sum();
                        out[((bi * t + ti) * h.q + hq) * d_v + m] = scale * r(o);
                    }
                }
            }
        }
    }
    let sdt = past.map_or(q.dtype(), |p| p.dtype());
    let mut res = vec![Tensor::from_f64(q.dtype(), vec![b, t, h.q * d_v], &out)];
    if ctx.num_outputs > 1 {
        res.push(Tensor::from_f64(sdt, vec![b, h.kv, d_k, d_v], &state));
    }
    Ok(res)
}

fn conv_activation(attrs: &crate::attr::Attrs) -> OpResult<bool> {
    match attrs.str_or("activation", "none")? {
        "none" => Ok(false),
        "silu" | "swish" => Ok(true),
        a => bail!("CausalConvWithState activation \"{a}\" is not one of none, silu, swish"),
    }
}

pub fn infer_causal_conv(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    conv_activation(ctx.attrs)?;
    let x = ctx.input(0)?;
    let w = ctx.input(1)?;
    if x.rank() != 3 || w.rank() != 3 {
        bail!("CausalConvWithState takes input [B, C, L] and weight [C, 1, k]: {x}, {w}");
    }
    let state = vec![
        x.shape[0].clone(),
        x.shape[1].clone(),
        w.shape[2].sub(&Dim::from(1i64)),
    ];
    Ok(vec![x.clone(), ValueType::new(x.dtype, state)])
}

pub fn eval_causal_conv(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let silu = conv_activation(ctx.attrs)?;
    let x = ctx.input(0)?;
    let w = ctx.input(1)?;
    let (xs, ws) = (x.shape(), w.shape());
    if xs.len() != 3 || ws.len() != 3 || ws[0] != xs[1] || ws[1] != 1 || ws[2] == 0 {
        bail!("CausalConvWithState takes input [B, C, L] and weight [C, 1, k]: {xs:?}, {ws:?}");
    }
    let (b, c, l, k) = (xs[0], xs[1], xs[2], ws[2]);
    let bias = match ctx.opt_input(2) {
        Some(t) if t.shape() == [c] => Some(t.to_f64()),
        Some(t) => bail!("CausalConvWithState bias {:?} must be [{c}]", t.shape()),
        None => None,
    };
    let past = match ctx.opt_input(3) {
        Some(t) if t.shape() == [b, c, k - 1] => Some(t.to_f64()),
        Some(t) => bail!(
            "CausalConvWithState past_state {:?} must be [{b}, {c}, {}]",
            t.shape(),
            k - 1
        ),
        None => None,
    };
    let dt: DType = x.dtype();
    let xv = x.to_f64();
    let wv = w.to_f64();
    let plen = l + k - 1;
    let mut out = Vec::with_capacity(b * c * l);
    let mut state = Vec::with_capacity(b * c * (k - 1));
    let mut padded = vec![0.0f64; plen];
    for bi in 0..b {
        for ch in 0..c {
            if let Some(p) = &past {
                padded[..k - 1].copy_from_slice(&p[(bi * c + ch) * (k - 1)..][..k - 1]);
            } else {
                padded[..k - 1].iter_mut().for_each(|v| *v = 0.0);
            }
            padded[k - 1..].copy_from_slice(&xv[(bi * c + ch) * l..][..l]);
            let kw = &wv[ch * k..][..k];
            for i in 0..l {
                let mut s: f64 = (0..k).map(|j| kw[j] * padded[i + j]).sum();
                if let Some(bb) = &bias {
                    s += bb[ch];
                }
                let s = round_to(dt, s);
                out.push(if silu { s / (1.0 + (-s).exp()) } else { s });
            }
            state.extend_from_slice(&padded[plen - (k - 1)..]);
        }
    }
    let mut res = vec![Tensor::from_f64(dt, vec![b, c, l], &out)];
    if ctx.num_outputs > 1 {
        res.push(Tensor::from_f64(dt, vec![b, c, k - 1], &state));
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use crate::attr::Attr;
    use crate::ops::misc::testutil::{attrs, close, f32t, run_op, s};

    #[test]
    fn linear_attention_linear_rule_accumulates_state() {
        // One head, d_k = d_v = 1: S_t = S_{t-1} + k v, o_t = scale q S_t.
        let a = attrs(&[
            ("q_num_heads", Attr::Int(1)),
            ("kv_num_heads", Attr::Int(1)),
            ("update_rule", s("linear")),
            ("scale", Attr::Float(1.0)),
        ]);
        let q = f32t(&[1, 3, 1], &[1., 2., 1.]);
        let k = f32t(&[1, 3, 1], &[1., 1., 2.]);
        let v = f32t(&[1, 3, 1], &[3., 4., 5.]);
        let out = run_op(
            "LinearAttention",
            &a,
            vec![q, k, v, f32t(&[1, 1, 1, 1], &[1.])],
            2,
        )
        .unwrap();
        // S: 1 -> 4 -> 8 -> 18.
        close(&out[0].to_f64(), &[4., 16., 18.], 1e-6);
        close(&out[1].to_f64(), &[18.], 1e-6);
    }

    #[test]
    fn linear_attention_gated_delta() {
        // S_t = e^g S + b k (v - e^g S k) with scalars: g = ln 0.5, b = 0.5, k = 1.
        let a = attrs(&[
            ("q_num_heads", Attr::Int(1)),
            ("kv_num_heads", Attr::Int(1)),
            ("scale", Attr::Float(1.0)),
        ]);
        let one = f32t(&[1, 1, 1], &[1.]);
        let out = run_op(
            "LinearAttention",
            &a,
            vec![
                one.clone(),
                one,
                f32t(&[1, 1, 1], &[6.]),
                f32t(&[1, 1, 1, 1], &[4.]),
                f32t(&[1, 1, 1], &[0.5f32.ln()]),
                f32t(&[1, 1, 1], &[0.5]),
            ],
            2,
        )
        .unwrap();
        // e^g S = 2; v' = 0.5 (6 - 2) = 2; S = 4.
        close(&out[1].to_f64(), &[4.], 1e-6);
        close(&out[0].to_f64(), &[4.], 1e-6);
    }

    #[test]
    fn causal_conv_with_past_state_and_silu() {
        let x = f32t(&[1, 1, 3], &[1., 2., 3.]);
        let w = f32t(&[1, 1, 3], &[1., 10., 100.]);
        let past = f32t(&[1, 1, 2], &[5., 6.]);
        let out = run_op(
            "CausalConvWithState",
            &attrs(&[]),
            vec![x.clone(), w.clone(), None, past],
            2,
        )
        .unwrap();
        // Padded [5, 6, 1, 2, 3].
        close(&out[0].to_f64(), &[165., 216., 321.], 1e-9);
        close(&out[1].to_f64(), &[2., 3.], 0.0);
        let a = attrs(&[("activation", s("silu"))]);
        let out = run_op(
            "CausalConvWithState",
            &a,
            vec![x, w, f32t(&[1], &[-100.]), None],
            1,
        )
        .unwrap();
        let silu = |v: f64| v / (1.0 + (-v).exp());
        close(&out[0].to_f64(), &[silu(0.), silu(110.), silu(221.)], 1e-5);
    }
}
