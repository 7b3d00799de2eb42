//! `attention(q, k, v, mask?, past_k?, past_v?, sinks?) {scale?, causal = 0, window = 0,
//! softcap = 0.0}`: scaled dot-product attention with heads, GQA/MQA head sharing, a
//! KV cache, causal and sliding-window masking and attention sinks.
//!
//! Inputs (layout `[batch, heads, seq, head_dim]` throughout; fusion inserts transposes):
//! - 0 `q`: float `[B, Hq, S, Dk]`.
//! - 1 `k`: `[B, Hkv, T, Dk]`; 2 `v`: `[B, Hkv, T, Dv]`. `Hq` must be a multiple of `Hkv`:
//!   query head `h` uses kv head `h / (Hq / Hkv)` (MHA `Hkv = Hq`, GQA, MQA `Hkv = 1`).
//!   `Dv` may differ from `Dk` (MLA); `k` and `v` may be the same value (DeepSeek-V4).
//!   q, k, v (and past_k, past_v) share one float dtype.
//! - 3 `mask` (optional): numpy-broadcastable to `[B, Hq, S, P + T]` (rank <= 4). Float:
//!   added to the logits (in f64; `-inf` masks). Bool: `true` = may attend, `false` =
//!   masked (the same as adding `-inf`).
//! - 4 `past_k` `[B, Hkv, P, Dk]`, 5 `past_v` `[B, Hkv, P, Dv]` (optional, both or
//!   neither; `P` = 0 when absent): the KV cache. Keys/values are
//!   `K = concat(past_k, k)`, `V = concat(past_v, v)` along axis 2, `P + T` of them.
//! - 6 `sinks` (optional): float `[Hq]`, one learned logit per query head (GPT-OSS).
//!
//! Attributes:
//! - `scale` (float, default `1 / sqrt(Dk)`).
//! - `causal` (int 0/1, default 0): query `i` sits at absolute position `P + i` and sees key
//!   `j` only if `j <= P + i` (with no cache and `S != T`, this aligns query 0 with key 0).
//! - `window` (int >= 0, default 0 = unlimited): sliding window; query `i` sees key `j` only
//!   if `j > P + i - window`, i.e. the `window` most recent positions up to its own
//!   (Mistral, GPT-OSS's banded layers). Independent of `causal` (usually both are set).
//! - `softcap` (float >= 0, default 0 = off): logits become `softcap * tanh(logits / softcap)`
//!   before the mask is added (Gemma 2, as ONNX `Attention`).
//!
//! Semantics, per batch `b`, query head `h`, query `i`, with `g = h / (Hq / Hkv)`:
//!
//! ```text
//! l[j]  = scale * sum_d q[b, h, i, d] * K[b, g, j, d]            j in 0..P+T
//! l[j]  = softcap * tanh(l[j] / softcap)                         if softcap > 0
//! l[j] += mask[b, h, i, j]         (bool mask: 0 if true, -inf if false)
//! l[j]  = -inf   if causal and j > P + i,   or window > 0 and j <= P + i - window
//! m     = max(max_j l[j], sinks[h])                               (sinks[h] = -inf if absent)
//! den   = sum_j exp(l[j] - m) + exp(sinks[h] - m)
//! out[b, h, i, :] = sum_j exp(l[j] - m) / den * V[b, g, j, :]
//! ```
//!
//! all in f64. A row whose logits are all `-inf` (fully masked) gives zeros (with a sink the
//! formula gives that too; without one softmax would be 0/0 — kiln defines it as 0, as
//! flash-attention kernels do, rather than NaN).
//!
//! Outputs: 0 `out` `[B, Hq, S, Dv]` (q's dtype); optionally 1 `present_k`
//! `[B, Hkv, P + T, Dk]` and 2 `present_v` `[B, Hkv, P + T, Dv]` (= K and V).

use crate::attr::AttrsExt;
use crate::bail;
use crate::dim::Dim;
use crate::dtype::DType;
use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::Tensor;
use crate::types::{broadcast_shapes, ValueType};

use super::{float_input, float_tensor};

struct Params {
    scale: Option<f64>,
    causal: bool,
    window: usize,
    softcap: f64,
}

fn params(attrs: &crate::attr::Attrs) -> OpResult<Params> {
    let scale = attrs.float("scale")?.map(f64::from);
    let causal = match attrs.int_or("causal", 0)? {
        0 => false,
        1 => true,
        c => bail!("causal must be 0 or 1, got {c}"),
    };
    let window = attrs.int_or("window", 0)?;
    if window < 0 {
        bail!("window must be >= 0, got {window}");
    }
    let softcap = attrs.float_or("softcap", 0.0)? as f64;
    if softcap.is_nan() || softcap < 0.0 {
        bail!("softcap must be >= 0, got {softcap}");
    }
    Ok(Params {
        scale,
        causal,
        window: window as usize,
        softcap,
    })
}

/// Two dims that must agree: an error only when both are constants and differ.
fn same(a: &Dim, b: &Dim, what: &str) -> OpResult<()> {
    match (a.as_const(), b.as_const()) {
        (Some(x), Some(y)) if x != y => bail!("{what}: {x} != {y}"),
        _ => Ok(()),
    }
}

pub fn infer(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    params(ctx.attrs)?;
    let q = float_input(ctx, 0)?;
    let k = float_input(ctx, 1)?;
    let v = float_input(ctx, 2)?;
    for (t, n) in [(q, "q"), (k, "k"), (v, "v")] {
        if t.rank() != 4 {
            bail!("{n} must have rank 4 [batch, heads, seq, dim], got {t}");
        }
        if t.dtype != q.dtype {
            bail!("q, k, v must share one dtype, got {q}, {k}, {v}");
        }
    }
    let (qs, ks, vs) = (&q.shape, &k.shape, &v.shape);
    same(&qs[0], &ks[0], "batch of q and k")?;
    same(&qs[0], &vs[0], "batch of q and v")?;
    same(&ks[1], &vs[1], "heads of k and v")?;
    same(&ks[2], &vs[2], "seq of k and v")?;
    same(&qs[3], &ks[3], "head dim of q and k")?;
    if let (Some(hq), Some(hkv)) = (qs[1].as_const(), ks[1].as_const()) {
        if hkv == 0 || hq % hkv != 0 {
            bail!("q heads {hq} must be a multiple of kv heads {hkv}");
        }
    }
    let mut total = ks[2].clone();
    match (ctx.opt_input(4), ctx.opt_input(5)) {
        (None, None) => {}
        (Some(pk), Some(pv)) => {
            for (t, like, n) in [(pk, k, "past_k"), (pv, v, "past_v")] {
                if t.rank() != 4 || t.dtype != q.dtype {
                    bail!("{n} must be {} [batch, heads, past, dim], got {t}", q.dtype);
                }
                same(&t.shape[0], &like.shape[0], "batch of the cache")?;
                same(&t.shape[1], &like.shape[1], "heads of the cache")?;
                same(&t.shape[3], &like.shape[3], "head dim of the cache")?;
            }
            same(
                &pk.shape[2],
                &pv.shape[2],
                "past length of past_k and past_v",
            )?;
            total = pk.shape[2].add(&ks[2]);
        }
        _ => bail!("past_k and past_v must both be given or both be absent"),
    }
    if let Some(m) = ctx.opt_input(3) {
        if !(m.dtype.is_float() || m.dtype == DType::Bool) || m.rank() > 4 {
            bail!("mask must be float or bool of rank <= 4, got {m}");
        }
        let full = [qs[0].clone(), qs[1].clone(), qs[2].clone(), total.clone()];
        match broadcast_shapes(&[&full, &m.shape]) {
            Some(b) if b.len() == 4 => {}
            _ => bail!("mask {m} does not broadcast to [B, Hq, S, P + T]"),
        }
    }
    if let Some(s) = ctx.opt_input(6) {
        if !s.dtype.is_float() || s.rank() != 1 {
            bail!("sinks must be a float vector [Hq], got {s}");
        }
        same(&s.shape[0], &qs[1], "sinks length and q heads")?;
    }
    let out = vec![
        ValueType::new(
            q.dtype,
            vec![qs[0].clone(), qs[1].clone(), qs[2].clone(), vs[3].clone()],
        ),
        ValueType::new(
            k.dtype,
            vec![ks[0].clone(), ks[1].clone(), total.clone(), ks[3].clone()],
        ),
        ValueType::new(
            v.dtype,
            vec![vs[0].clone(), vs[1].clone(), total, vs[3].clone()],
        ),
    ];
    Ok(out)
}

/// `concat(past, new)` along axis 2 of `[B, H, *, D]` tensors, as f64.
fn concat_seq(past: Option<&Tensor>, new: &Tensor) -> (Vec<f64>, usize) {
    let s = new.shape();
    let (bh, t, d) = (s[0] * s[1], s[2], s[3]);
    let nv = new.to_f64();
    let Some(past) = past else { return (nv, t) };
    let p = past.shape()[2];
    let pv = past.to_f64();
    let mut out = Vec::with_capacity(bh * (p + t) * d);
    for i in 0..bh {
        out.extend_from_slice(&pv[i * p * d..(i + 1) * p * d]);
        out.extend_from_slice(&nv[i * t * d..(i + 1) * t * d]);
    }
    (out, p + t)
}

pub fn eval(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let p = params(ctx.attrs)?;
    let q = float_tensor(ctx, 0)?;
    let k = float_tensor(ctx, 1)?;
    let v = float_tensor(ctx, 2)?;
    if q.rank() != 4 || k.rank() != 4 || v.rank() != 4 {
        bail!("q, k, v must have rank 4");
    }
    let (b, hq, s, dk) = (q.shape()[0], q.shape()[1], q.shape()[2], q.shape()[3]);
    let (hkv, t, dv) = (k.shape()[1], k.shape()[2], v.shape()[3]);
    if k.shape() != [b, hkv, t, dk] || v.shape()[..3] != [b, hkv, t] {
        bail!(
            "shapes of q {:?}, k {:?}, v {:?} do not agree",
            q.shape(),
            k.shape(),
            v.shape()
        );
    }
    if hkv == 0 || hq % hkv != 0 {
        bail!("q heads {hq} must be a multiple of kv heads {hkv}");
    }
    let (pk, pv) = (ctx.opt_input(4), ctx.opt_input(5));
    let past = match (pk, pv) {
        (None, None) => 0,
        (Some(a), Some(c)) => {
            let n = a.shape().get(2).copied().unwrap_or(0);
            if a.shape() != [b, hkv, n, dk] || c.shape() != [b, hkv, n, dv] {
                bail!(
                    "past_k {:?} / past_v {:?} do not match k, v",
                    a.shape(),
                    c.shape()
                );
            }
            n
        }
        _ => bail!("past_k and past_v must both be given or both be absent"),
    };
    let (kf, tt) = concat_seq(pk, k);
    let (vf, _) = concat_seq(pv, v);
    // Mask: strides over [B, Hq, S, P + T], 0 along broadcast axes.
    let mask = match ctx.opt_input(3) {
        None => None,
        Some(m) => {
            let full = [b, hq, s, tt];
            if m.rank() > 4 {
                bail!("mask must have rank <= 4");
            }
            let mut shape4 = vec![1usize; 4 - m.rank()];
            shape4.extend_from_slice(m.shape());
            let mut strides = [0usize; 4];
            let mut acc = 1usize;
            for a in (0..4).rev() {
                if shape4[a] != 1 {
                    if shape4[a] != full[a] {
                        bail!("mask {:?} does not broadcast to {full:?}", m.shape());
                    }
                    strides[a] = acc;
                }
                acc *= shape4[a];
            }
            let vals: Vec<f64> = if m.dtype() == DType::Bool {
                m.to_bool()
                    .into_iter()
                    .map(|x| if x { 0.0 } else { f64::NEG_INFINITY })
                    .collect()
            } else if m.dtype().is_float() {
                m.to_f64()
            } else {
                bail!("mask must be float or bool, got {}", m.dtype());
            };
            Some((vals, strides))
        }
    };
    let sinks = match ctx.opt_input(6) {
        None => None,
        Some(t) => {
            if t.shape() != [hq] || !t.dtype().is_float() {
                bail!("sinks must be float [{hq}], got {:?}", t.shape());
            }
            Some(t.to_f64())
        }
    };
    let scale = p.scale.unwrap_or(1.0 / (dk as f64).sqrt());
    let qv = q.to_f64();
    let group = hq / hkv;
    let mut out = vec![0f64; b * hq * s * dv];
    let mut l = vec![0f64; tt];
    for bi in 0..b {
        for h in 0..hq {
            let g = h / group;
            let kb = &kf[(bi * hkv + g) * tt * dk..(bi * hkv + g + 1) * tt * dk];
            let vb = &vf[(bi * hkv + g) * tt * dv..(bi * hkv + g + 1) * tt * dv];
            for i in 0..s {
                let qr = &qv[((bi * hq + h) * s + i) * dk..((bi * hq + h) * s + i + 1) * dk];
                let pos = past + i;
                for (j, lj) in l.iter_mut().enumerate() {
                    let kr = &kb[j * dk..(j + 1) * dk];
                    let mut x = scale * qr.iter().zip(kr).map(|(a, c)| a * c).sum::<f64>();
                    if p.softcap > 0.0 {
                        x = p.softcap * (x / p.softcap).tanh();
                    }
                    if let Some((mv, st)) = &mask {
                        x += mv[bi * st[0] + h * st[1] + i * st[2] + j * st[3]];
                    }
                    if (p.causal && j > pos) || (p.window > 0 && j + p.window <= pos) {
                        x = f64::NEG_INFINITY;
                    }
                    *lj = x;
                }
                let sink = sinks.as_ref().map_or(f64::NEG_INFINITY, |sv| sv[h]);
                let m = l.iter().copied().fold(sink, f64::max);
                if m == f64::NEG_INFINITY {
                    continue; // fully masked: zeros
                }
                let mut den = (sink - m).exp();
                for lj in l.iter_mut() {
                    *lj = (*lj - m).exp();
                    den += *lj;
                }
                let o = &mut out[((bi * hq + h) * s + i) * dv..((bi * hq + h) * s + i + 1) * dv];
                for (j, &w) in l.iter().enumerate() {
                    if w == 0.0 {
                        continue;
                    }
                    let w = w / den;
                    for (od, vd) in o.iter_mut().zip(&vb[j * dv..(j + 1) * dv]) {
                        *od += w * vd;
                    }
                }
            }
        }
    }
    let mut res = vec![Tensor::from_f64(q.dtype(), vec![b, hq, s, dv], &out)];
    if ctx.num_outputs > 1 {
        res.push(Tensor::from_f64(k.dtype(), vec![b, hkv, tt, dk], &kf));
        res.push(Tensor::from_f64(v.dtype(), vec![b, hkv, tt, dv], &vf));
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use crate::attr::Attr;
    use crate::dtype::DType;
    use crate::ops::fused::test_util::G;
    use crate::ops::reduce::test_util::*;
    use crate::tensor::Tensor;

    #[test]
    fn single_query_softmax() {
        // Logits [0, ln 3] -> weights [1/4, 3/4]; values 10, 2 -> 4.
        let q = f32s(&[1, 1, 1, 1], &[1.0]);
        let k = f32s(&[1, 1, 2, 1], &[0.0, 3f32.ln()]);
        let v = f32s(&[1, 1, 2, 1], &[10.0, 2.0]);
        let a = attrs(&[("scale", Attr::Float(1.0))]);
        let y = run1(
            "attention",
            &a,
            &[Some(q.clone()), Some(k.clone()), Some(v.clone())],
        )
        .unwrap();
        assert_close(&y, &[1, 1, 1, 1], &[4.0], 1e-6);
        // Default scale 1/sqrt(4) with q = 2 in a 4-dim head: same logits.
        let q4 = f32s(&[1, 1, 1, 4], &[2.0, 0.0, 0.0, 0.0]);
        let k4 = f32s(
            &[1, 1, 2, 4],
            &[0.0, 0.0, 0.0, 0.0, 3f32.ln(), 0.0, 0.0, 0.0],
        );
        let y = run1(
            "attention",
            &attrs(&[]),
            &[Some(q4), Some(k4), Some(v.clone())],
        )
        .unwrap();
        assert_close(&y, &[1, 1, 1, 1], &[4.0], 1e-6);
        // Float mask -inf on key 1 leaves key 0 alone; bool mask false everywhere -> zeros.
        let m = f32s(&[2], &[0.0, f32::NEG_INFINITY]);
        let ins = [Some(q.clone()), Some(k.clone()), Some(v.clone()), Some(m)];
        let y = run1("attention", &a, &ins).unwrap();
        assert_close(&y, &[1, 1, 1, 1], &[10.0], 1e-6);
        let m = Tensor::from_bools(vec![1, 2], vec![false, false]).unwrap();
        let y = run1("attention", &a, &[Some(q), Some(k), Some(v), Some(m)]).unwrap();
        assert_close(&y, &[1, 1, 1, 1], &[0.0], 0.0);
    }

    #[test]
    fn softcap_bounds_the_logits() {
        // Logits [0, 2] capped at 1 become [0, tanh 2]; values 0, 1.
        let q = f32s(&[1, 1, 1, 1], &[1.0]);
        let k = f32s(&[1, 1, 2, 1], &[0.0, 2.0]);
        let v = f32s(&[1, 1, 2, 1], &[0.0, 1.0]);
        let a = attrs(&[("scale", Attr::Float(1.0)), ("softcap", Attr::Float(1.0))]);
        let y = run1("attention", &a, &[Some(q), Some(k), Some(v)]).unwrap();
        let w = 1.0 / (1.0 + (-(2f64.tanh())).exp());
        assert_close(&y, &[1, 1, 1, 1], &[w], 1e-6);
    }

    /// The text IR prints the fused op under its own name and parses it back.
    #[test]
    fn text_round_trip() {
        let q = f32s(&[1, 2, 3, 4], &[0.5; 24]);
        let k = f32s(&[1, 1, 3, 4], &[0.25; 12]);
        let mut g = G::new();
        let (vq, vk) = (g.input("q", &q), g.input("k", &k));
        let a = attrs(&[("causal", Attr::Int(1)), ("window", Attr::Int(2))]);
        let o = g.op("attention", a, &[Some(vq), Some(vk), Some(vk)]);
        g.g.add_output("o", o);
        let text = crate::text::print(&g.g);
        assert!(text.contains("attention("), "{text}");
        let back = crate::text::parse(&text).expect("parses");
        assert_eq!(crate::text::print(&back), text);
    }

    #[test]
    fn gqa_cache_causal_window() {
        // Two query heads share one kv head; all logits 0, so each query averages the
        // values it may see. Cache holds 1 position (value 1); new values 2, 4.
        let q = f32s(&[1, 2, 2, 1], &[0.0; 4]);
        let k = f32s(&[1, 1, 2, 1], &[0.0; 2]);
        let v = f32s(&[1, 1, 2, 1], &[2.0, 4.0]);
        let pk = f32s(&[1, 1, 1, 1], &[5.0]);
        let pv = f32s(&[1, 1, 1, 1], &[1.0]);
        let ins = [Some(q), Some(k), Some(v), None, Some(pk), Some(pv)];
        // Causal: query 0 (position 1) sees keys 0, 1; query 1 (position 2) sees 0, 1, 2.
        let a = attrs(&[("causal", Attr::Int(1))]);
        let out = run("attention", &a, &ins, 3).unwrap();
        assert_close(
            &out[0],
            &[1, 2, 2, 1],
            &[1.5, 7.0 / 3.0, 1.5, 7.0 / 3.0],
            1e-6,
        );
        assert_close(&out[1], &[1, 1, 3, 1], &[5.0, 0.0, 0.0], 0.0);
        assert_close(&out[2], &[1, 1, 3, 1], &[1.0, 2.0, 4.0], 0.0);
        // Window 2: query 0 sees keys 0, 1; query 1 sees keys 1, 2.
        let a = attrs(&[("causal", Attr::Int(1)), ("window", Attr::Int(2))]);
        let y = run1("attention", &a, &ins).unwrap();
        assert_close(&y, &[1, 2, 2, 1], &[1.5, 3.0, 1.5, 3.0], 1e-6);
        // Not causal: every query sees all three.
        let y = run1("attention", &attrs(&[]), &ins).unwrap();
        assert_close(&y, &[1, 2, 2, 1], &[7.0 / 3.0; 4], 1e-6);
    }

    #[test]
    fn sinks_join_the_denominator() {
        // Logits 0, 0 and sink ln 2 (head 0): weights 1/4, 1/4 (1/2 goes to the sink).
        // Head 1 has sink -inf: plain softmax.
        let q = f32s(&[1, 2, 1, 1], &[0.0; 2]);
        let k = f32s(&[1, 1, 2, 1], &[0.0; 2]);
        let v = f32s(&[1, 1, 2, 2], &[2.0, 1.0, 4.0, 1.0]);
        let sinks = f32s(&[2], &[2f32.ln(), f32::NEG_INFINITY]);
        let ins = [Some(q), Some(k), Some(v), None, None, None, Some(sinks)];
        let y = run1("attention", &attrs(&[]), &ins).unwrap();
        assert_close(&y, &[1, 2, 1, 2], &[1.5, 0.5, 3.0, 1.0], 1e-6);
    }

    #[test]
    fn rejects_bad_shapes() {
        let q = f32s(&[1, 3, 1, 1], &[0.0; 3]);
        let k = f32s(&[1, 2, 1, 1], &[0.0; 2]);
        assert!(run1(
            "attention",
            &attrs(&[]),
            &[Some(q.clone()), Some(k.clone()), Some(k.clone())]
        )
        .is_err());
        let q = f32s(&[1, 2, 1, 1], &[0.0; 2]);
        let pk = f32s(&[1, 2, 1, 1], &[0.0; 2]);
        let ins = [Some(q), Some(k.clone()), Some(k), None, Some(pk)];
        assert!(run1("attention", &attrs(&[]), &ins).is_err());
    }

    /// causal + window over a cache == the ONNX spelling on Concat(past, new) with the
    /// equivalent additive mask (0 where j <= P + i and j > P + i - window, else -inf).
    #[test]
    fn causal_window_cache_equals_onnx_spelling_with_mask() {
        let (h, s, p, t, d, win) = (2usize, 3usize, 2usize, 3usize, 2usize, 3usize);
        let f = |n: usize, m: f64| -> Vec<f64> {
            (0..n).map(|i| ((i as f64 + 1.0) * m).cos()).collect()
        };
        let t4 = |shape: [usize; 4], m: f64| {
            Tensor::from_f64(DType::F32, shape.to_vec(), &f(shape.iter().product(), m))
        };
        let (q, k, v) = (
            t4([1, h, s, d], 0.3),
            t4([1, h, t, d], 0.8),
            t4([1, h, t, d], 1.1),
        );
        let (pk, pv) = (t4([1, h, p, d], 1.7), t4([1, h, p, d], 0.6));
        let mask: Vec<f64> = (0..s * (p + t))
            .map(|n| {
                let (i, j) = (n / (p + t), n % (p + t));
                if j <= p + i && j + win > p + i {
                    0.0
                } else {
                    f64::NEG_INFINITY
                }
            })
            .collect();
        let m = Tensor::from_f64(DType::F32, vec![s, p + t], &mask);
        let mut g = G::new();
        let vq = g.input("q", &q);
        let (vk, vv) = (g.input("k", &k), g.input("v", &v));
        let (vpk, vpv) = (g.input("pk", &pk), g.input("pv", &pv));
        let vm = g.input("m", &m);
        let seq = attrs(&[("axis", Attr::Int(2))]);
        let kk = g.op("Concat", seq.clone(), &[Some(vpk), Some(vk)]);
        let vvv = g.op("Concat", seq, &[Some(vpv), Some(vv)]);
        let perm = attrs(&[("perm", Attr::Ints(vec![0, 1, 3, 2]))]);
        let kt = g.op("Transpose", perm, &[Some(kk)]);
        let qk = g.op("MatMul", attrs(&[]), &[Some(vq), Some(kt)]);
        let masked = g.op("Add", attrs(&[]), &[Some(qk), Some(vm)]);
        let pr = g.op(
            "Softmax",
            attrs(&[("axis", Attr::Int(-1))]),
            &[Some(masked)],
        );
        let want = g.op("MatMul", attrs(&[]), &[Some(pr), Some(vvv)]);
        let a = attrs(&[
            ("scale", Attr::Float(1.0)),
            ("causal", Attr::Int(1)),
            ("window", Attr::Int(win as i64)),
        ]);
        let ins = [Some(vq), Some(vk), Some(vv), None, Some(vpk), Some(vpv)];
        let got = g.op("attention", a, &ins);
        let out = g.run(&[want, got]);
        assert_close(&out[1], &[1, h, s, d], &out[0].to_f64(), 1e-5);
    }

    /// attention == MatMul(Softmax(MatMul(q, Transpose(k)) * scale + mask), v), with
    /// Dv != Dk (MLA-style) and a float mask broadcast over batch and heads.
    #[test]
    fn equals_onnx_spelling() {
        let (b, h, s, t, dk, dv) = (2usize, 3usize, 4usize, 5usize, 2usize, 3usize);
        let f = |n: usize, m: f64| -> Vec<f64> {
            (0..n).map(|i| ((i as f64 + 1.0) * m).sin()).collect()
        };
        let q = Tensor::from_f64(DType::F32, vec![b, h, s, dk], &f(b * h * s * dk, 0.7));
        let k = Tensor::from_f64(DType::F32, vec![b, h, t, dk], &f(b * h * t * dk, 1.3));
        let v = Tensor::from_f64(DType::F32, vec![b, h, t, dv], &f(b * h * t * dv, 0.9));
        let m = Tensor::from_f64(DType::F32, vec![1, 1, s, t], &f(s * t, 2.1));
        let sc = Tensor::from_f64(DType::F32, vec![], &[0.8]);
        let mut g = G::new();
        let (vq, vk, vv, vm) = (
            g.input("q", &q),
            g.input("k", &k),
            g.input("v", &v),
            g.input("m", &m),
        );
        let vs = g.op(
            "constant",
            attrs(&[("value", Attr::Tensor(sc.into()))]),
            &[],
        );
        let perm = attrs(&[("perm", Attr::Ints(vec![0, 1, 3, 2]))]);
        let kt = g.op("Transpose", perm, &[Some(vk)]);
        let qk = g.op("MatMul", attrs(&[]), &[Some(vq), Some(kt)]);
        let scaled = g.op("Mul", attrs(&[]), &[Some(qk), Some(vs)]);
        let masked = g.op("Add", attrs(&[]), &[Some(scaled), Some(vm)]);
        let p = g.op(
            "Softmax",
            attrs(&[("axis", Attr::Int(-1))]),
            &[Some(masked)],
        );
        let want = g.op("MatMul", attrs(&[]), &[Some(p), Some(vv)]);
        let a = attrs(&[("scale", Attr::Float(0.8))]);
        let got = g.op("attention", a, &[Some(vq), Some(vk), Some(vv), Some(vm)]);
        let out = g.run(&[want, got]);
        assert_close(&out[1], &[b, h, s, dv], &out[0].to_f64(), 1e-5);
    }
}
