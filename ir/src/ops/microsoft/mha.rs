//! `com.microsoft.MultiHeadAttention`, as ONNX Runtime 1.31's CPU kernel computes it.
//!
//! Inputs: 0 query `(B, S, D)` (or packed QKV `(B, S, N, 3, H)`), 1 key `(B, L, D)` (or packed
//! KV `(B, L, N, 2, H)`, or already split into heads `(B, N, L, H)`), 2 value `(B, L, Dv)` (or
//! `(B, N, L, Hv)`), 3 bias `(D + D + Dv)`, 4 key_padding_mask, 5 attention_bias
//! `(B|1, N|1, S, T)`, 6 past_key, 7 past_value `(B, N, P, H)`. Outputs: output `(B, S, N*Hv)`,
//! present_key, present_value `(B, N, P + L, H)`, qk `(B, N, S, P + L)`.
//!
//! - The bias is added to the projections (to K and V only when they are not split into
//!   heads); present = concat(past, K or V).
//! - Scores are `scale * q.k` (default scale `1/sqrt(H)`) plus the key padding mask, which adds
//!   `mask_filter_value` (default -10000) where a key is padding: a `(B)` mask gives each
//!   entry's key count, `(B, T)` and `(B, S, T)` masks are 0/1; with
//!   `unidirectional`, keys after `P + s` add the lowest f32 instead. Then attention_bias.
//! - `qk` holds these scores, before the softmax.
//!
//! Buffer sharing (`past_sequence_length`) and beam search (`cache_indirection`) are not
//! supported, as on ONNX Runtime's CPU.

use crate::attr::AttrsExt;
use crate::bail;
use crate::dim::Dim;
use crate::ops::attention::common::{
    div_dim, dot, float_input, float_input_type, positive, softmax_in_place, Heads,
};
use crate::ops::{EvalCtx, InferCtx, OpError, OpResult};
use crate::tensor::Tensor;
use crate::types::ValueType;

fn num_heads(a: &crate::attr::Attrs) -> OpResult<usize> {
    positive(
        a.int("num_heads")?
            .ok_or_else(|| OpError::new("`num_heads` is required"))?,
        "num_heads",
    )
}

pub(crate) fn infer(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let n = num_heads(ctx.attrs)?;
    let nd = Dim::from(n);
    let q = float_input_type(ctx, 0, "query", &[3, 5])?;
    let (b, s) = (q.shape[0].clone(), q.shape[1].clone());
    // (kv length, head size, value head size)
    let (l, h, hv) = if q.rank() == 5 {
        (q.shape[1].clone(), q.shape[4].clone(), q.shape[4].clone())
    } else {
        let h = div_dim(&q.shape[2], n, "query hidden size / num_heads")?;
        let k = float_input_type(ctx, 1, "key", &[3, 4, 5])?;
        match k.rank() {
            5 => (k.shape[1].clone(), h.clone(), h),
            4 => {
                let v = float_input_type(ctx, 2, "value", &[4])?;
                (k.shape[2].clone(), h, v.shape[3].clone())
            }
            _ => {
                let v = float_input_type(ctx, 2, "value", &[3])?;
                let hv = div_dim(&v.shape[2], n, "value hidden size / num_heads")?;
                (k.shape[1].clone(), h, hv)
            }
        }
    };
    let t = match ctx.opt_input(6) {
        Some(pk) if pk.rank() == 4 => pk.shape[2].add(&l),
        Some(pk) => bail!("past_key must be 4-D, got {pk}"),
        None => l,
    };
    let dt = q.dtype;
    Ok(vec![
        ValueType::new(dt, vec![b.clone(), s.clone(), hv.mul(&nd)]),
        ValueType::new(dt, vec![b.clone(), nd.clone(), t.clone(), h]),
        ValueType::new(dt, vec![b.clone(), nd.clone(), t.clone(), hv]),
        ValueType::new(dt, vec![b, nd, s, t]),
    ])
}

/// A packed 5-D `(B, S, N, parts, H)` tensor's part `p` as heads.
fn unpack(x: &[f64], sh: &[usize], part: usize) -> Heads {
    let (b, s, n, parts, h) = (sh[0], sh[1], sh[2], sh[3], sh[4]);
    let mut out = Heads::zeros(b, n, s, h);
    for bi in 0..b {
        for si in 0..s {
            for ni in 0..n {
                let src = (((bi * s + si) * n + ni) * parts + part) * h;
                out.row_mut(bi, ni, si).copy_from_slice(&x[src..src + h]);
            }
        }
    }
    out
}

fn add_bias(x: &mut Heads, bias: &[f64]) {
    for bi in 0..x.b {
        for ni in 0..x.n {
            for si in 0..x.s {
                let h = x.h;
                for (v, bb) in x.row_mut(bi, ni, si).iter_mut().zip(&bias[ni * h..]) {
                    *v += bb;
                }
            }
        }
    }
}

pub(crate) fn eval(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let n = num_heads(ctx.attrs)?;
    if ctx.opt_input(8).is_some() || ctx.opt_input(9).is_some() {
        bail!("past_sequence_length / cache_indirection are not supported");
    }
    let query = float_input(ctx, 0, "query", &[3, 5])?;
    let qd = query.to_f64();
    let qs = query.shape();
    let (b, s) = (qs[0], qs[1]);
    let bias = match ctx.opt_input(3) {
        Some(_) => Some(float_input(ctx, 3, "bias", &[1])?.to_f64()),
        None => None,
    };
    // q, k, v heads and whether k/v take the bias.
    let (mut q, mut k, mut v, kv_bias) = if query.rank() == 5 {
        if qs[2] != n || qs[3] != 3 {
            bail!("packed QKV must be (B, S, {n}, 3, H), got {qs:?}");
        }
        (
            unpack(&qd, qs, 0),
            unpack(&qd, qs, 1),
            unpack(&qd, qs, 2),
            true,
        )
    } else {
        if qs[2] % n != 0 {
            bail!(
                "query hidden size {} is not divisible by num_heads {n}",
                qs[2]
            );
        }
        let h = qs[2] / n;
        let q = Heads::from_bsd(&qd, b, s, qs[2], 0, n, h);
        let key = float_input(ctx, 1, "key", &[3, 4, 5])?;
        let ks = key.shape();
        match key.rank() {
            5 => {
                if ks[0] != b || ks[2] != n || ks[3] != 2 || ks[4] != h {
                    bail!("packed KV must be ({b}, L, {n}, 2, {h}), got {ks:?}");
                }
                let kd = key.to_f64();
                (q, unpack(&kd, ks, 0), unpack(&kd, ks, 1), true)
            }
            4 => {
                let value = float_input(ctx, 2, "value", &[4])?;
                let vs = value.shape();
                if ks != [b, n, ks[2], h] || vs[..3] != ks[..3] {
                    bail!("key {ks:?} / value {vs:?} must be ({b}, {n}, L, H)");
                }
                let k = Heads::from_bnsh(key.to_f64(), b, n, ks[2], h);
                let v = Heads::from_bnsh(value.to_f64(), b, n, vs[2], vs[3]);
                (q, k, v, false)
            }
            _ => {
                let value = float_input(ctx, 2, "value", &[3])?;
                let vs = value.shape();
                if ks != [b, ks[1], n * h] || vs[0] != b || vs[1] != ks[1] || vs[2] % n != 0 {
                    bail!("key {ks:?} / value {vs:?} do not match query {qs:?}");
                }
                let k = Heads::from_bsd(&key.to_f64(), b, ks[1], ks[2], 0, n, h);
                let v = Heads::from_bsd(&value.to_f64(), b, vs[1], vs[2], 0, n, vs[2] / n);
                (q, k, v, true)
            }
        }
    };
    let (h, hv) = (q.h, v.h);
    if let Some(bv) = &bias {
        let d = n * h;
        if bv.len() != 2 * d + n * hv {
            bail!("bias must hold {} values, got {}", 2 * d + n * hv, bv.len());
        }
        add_bias(&mut q, &bv[..d]);
        if kv_bias {
            add_bias(&mut k, &bv[d..2 * d]);
            add_bias(&mut v, &bv[2 * d..]);
        }
    }
    let (k, v, past) = match (ctx.opt_input(6), ctx.opt_input(7)) {
        (Some(pk), Some(pv)) => {
            let p = pk.shape().get(2).copied().unwrap_or(0);
            if pk.shape() != [b, n, p, h] || pv.shape() != [b, n, p, hv] {
                bail!(
                    "past_key {:?} / past_value {:?} must be ({b}, {n}, P, {h} / {hv})",
                    pk.shape(),
                    pv.shape()
                );
            }
            (
                concat(&Heads::from_bnsh(pk.to_f64(), b, n, p, h), &k),
                concat(&Heads::from_bnsh(pv.to_f64(), b, n, p, hv), &v),
                p,
            )
        }
        (None, None) => (k, v, 0),
        _ => bail!("past_key and past_value must be given together"),
    };
    let t = k.s;

    let filter = ctx.attrs.float_or("mask_filter_value", -10000.0)? as f64;
    let causal = ctx.attrs.int_or("unidirectional", 0)? != 0;
    let scale = match ctx.attrs.float("scale")? {
        Some(x) if x != 0.0 => x as f64,
        _ => 1.0 / (h as f64).sqrt(),
    };
    // The additive (B, S, T) mask.
    let mut mask = vec![0.0; b * s * t];
    if let Some(m) = ctx.opt_input(4) {
        if !m.dtype().is_int() {
            bail!(
                "key_padding_mask must be an integer tensor, got {}",
                m.dtype()
            );
        }
        let mv = m.to_i64();
        let ms = m.shape();
        match ms.len() {
            1 if ms[0] == b => {
                for bi in 0..b {
                    let end = mv[bi].max(0) as usize;
                    for si in 0..s {
                        for x in &mut mask[(bi * s + si) * t + end.min(t)..(bi * s + si + 1) * t] {
                            *x = filter;
                        }
                    }
                }
            }
            2 if ms == [b, t] => {
                for bi in 0..b {
                    for si in 0..s {
                        for j in 0..t {
                            if mv[bi * t + j] <= 0 {
                                mask[(bi * s + si) * t + j] = filter;
                            }
                        }
                    }
                }
            }
            3 if ms == [b, s, t] => {
                for (x, &m) in mask.iter_mut().zip(&mv) {
                    if m <= 0 {
                        *x = filter;
                    }
                }
            }
            _ => bail!("key_padding_mask {ms:?} is not (B), (B, T) or (B, S, T) with B = {b}, S = {s}, T = {t}"),
        }
    }
    if causal {
        for bi in 0..b {
            for si in 0..s {
                for j in past + si + 1..t {
                    mask[(bi * s + si) * t + j] = f32::MIN as f64;
                }
            }
        }
    }
    let attn_bias = match ctx.opt_input(5) {
        Some(a) => {
            let a_t = float_input(ctx, 5, "attention_bias", &[4])?;
            let sh = a.shape();
            if (sh[0] != 1 && sh[0] != b) || (sh[1] != 1 && sh[1] != n) || sh[2] != s || sh[3] != t
            {
                bail!("attention_bias must be (B or 1, N or 1, {s}, {t}), got {sh:?}");
            }
            Some((a_t.to_f64(), sh[0], sh[1]))
        }
        None => None,
    };

    let mut out = Heads::zeros(b, n, s, hv);
    let mut qk = vec![0.0; b * n * s * t];
    for bi in 0..b {
        for ni in 0..n {
            for si in 0..s {
                let base = ((bi * n + ni) * s + si) * t;
                let row = &mut qk[base..base + t];
                let qrow = q.row(bi, ni, si);
                for (j, x) in row.iter_mut().enumerate() {
                    *x = dot(qrow, k.row(bi, ni, j)) * scale + mask[(bi * s + si) * t + j];
                }
                if let Some((ab, bb, bn)) = &attn_bias {
                    let o = (((if *bb == 1 { 0 } else { bi }) * bn
                        + if *bn == 1 { 0 } else { ni })
                        * s
                        + si)
                        * t;
                    for (x, y) in row.iter_mut().zip(&ab[o..o + t]) {
                        *x += y;
                    }
                }
                let mut p = row.to_vec();
                softmax_in_place(&mut p, None);
                let o = out.row_mut(bi, ni, si);
                for (w, j) in p.iter().zip(0..t) {
                    for (x, y) in o.iter_mut().zip(v.row(bi, ni, j)) {
                        *x += w * y;
                    }
                }
            }
        }
    }
    let dt = query.dtype();
    Ok(vec![
        Tensor::from_f64(dt, vec![b, s, n * hv], &out.to_bsd()),
        Tensor::from_f64(dt, k.shape(), &k.data),
        Tensor::from_f64(dt, v.shape(), &v.data),
        Tensor::from_f64(dt, vec![b, n, s, t], &qk),
    ])
}

fn concat(past: &Heads, new: &Heads) -> Heads {
    let mut out = Heads::zeros(past.b, past.n, past.s + new.s, past.h);
    for b in 0..past.b {
        for n in 0..past.n {
            for s in 0..past.s {
                out.row_mut(b, n, s).copy_from_slice(past.row(b, n, s));
            }
            for s in 0..new.s {
                out.row_mut(b, n, past.s + s)
                    .copy_from_slice(new.row(b, n, s));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::attr::{Attr, Attrs};
    use crate::ops::attention::common::testing::{assert_close, f32s, i32s, run};

    fn attrs(list: &[(&str, Attr)]) -> Attrs {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn padding_bias_and_past() {
        // One head of size 1, one query, one new key plus one past key.
        let q = f32s(&[1, 1, 1], &[1.0]);
        let k = f32s(&[1, 1, 1], &[0.0]);
        let v = f32s(&[1, 1, 1], &[4.0]);
        // bias: q += 0, k += ln 3, v += 0.
        let bias = f32s(&[3], &[0.0, 3f32.ln(), 0.0]);
        let pk = f32s(&[1, 1, 1, 1], &[0.0]);
        let pv = f32s(&[1, 1, 1, 1], &[8.0]);
        let a = attrs(&[("num_heads", Attr::Int(1)), ("scale", Attr::Float(1.0))]);
        let out = run(
            "com.microsoft.MultiHeadAttention",
            &[
                Some(q.clone()),
                Some(k.clone()),
                Some(v.clone()),
                Some(bias.clone()),
                None,
                None,
                Some(pk.clone()),
                Some(pv.clone()),
            ],
            a.clone(),
            4,
        )
        .expect("mha");
        // Scores [0, ln 3]: weights 1:3 over values [8, 4].
        assert_close(&out[0], &[5.0], 1e-6);
        assert_close(&out[1], &[0.0, 3f64.ln()], 1e-6);
        assert_close(&out[3], &[0.0, 3f64.ln()], 1e-6);
        // Key 1 padded out by a length-1 mask: filter -10000 leaves key 0 alone.
        let out = run(
            "com.microsoft.MultiHeadAttention",
            &[
                Some(q),
                Some(k),
                Some(v),
                Some(bias),
                Some(i32s(&[1], &[1])),
                None,
                Some(pk),
                Some(pv),
            ],
            a,
            4,
        )
        .expect("mha");
        assert_close(&out[0], &[8.0], 1e-6);
        assert_close(&out[3], &[0.0, 3f64.ln() - 10000.0], 1e-7);
    }
}
