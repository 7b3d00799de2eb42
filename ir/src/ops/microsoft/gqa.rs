//! `com.microsoft.GroupQueryAttention`, as ONNX Runtime 1.31's CPU kernel computes it.
//!
//! Inputs: 0 query `(B, S, N*H)` (or packed QKV `(B, S, (N + 2*Nk)*H)` when key and value are
//! absent), 1 key, 2 value `(B, S, Nk*H)`, 3 past_key, 4 past_value `(B, Nk, P, H)`,
//! 5 seqlens_k `(B)` (total length - 1 per batch entry), 6 total_sequence_length (scalar, the
//! batch maximum), 7 cos_cache, 8 sin_cache `(max_pos, rotary_dim / 2)`, 9 position_ids
//! `(B, S)`, 10 attention_bias `(B|1, N|1, S, T)`, 11 head_sink `(N)`. Outputs: output
//! `(B, S, N*H)`, present_key, present_value `(B, Nk, L, H)`, output_qk `(B, N, S, T)`.
//!
//! - First prompt (`S == total_sequence_length`): no past is read; query `s` of entry `b` sees
//!   keys `[0, min(s + 1, seqlens_k[b] + 1))`. Otherwise entry `b` has
//!   `past = seqlens_k[b] + 1 - S` cached rows and query `s` sees keys up to `past + s`.
//!   With `causal = 0` every query sees all `seqlens_k[b] + 1` keys.
//! - `local_window_size = W >= 0` keeps the last `W` keys of each query's causal range.
//! - present: rows `[0, past)` copied from past, the new keys at `[past, past + S)`, zeros
//!   after; `L = max(total_sequence_length, P)`. Keys are read from this buffer.
//! - Rotary (`do_rotary`) turns Q and the new K at positions `s` (first prompt; with
//!   `position_ids`, `position_ids[0] + s`) or `past + s` (or `position_ids[b, s]`).
//! - Scores `softcap(scale * q.k) + attention_bias`; softmax, with one more denominator term
//!   `exp(head_sink[h])` (or `exp(0)` for `smooth_softmax`); `qk_output` 1 writes the scores,
//!   2 the probabilities, zero outside each query's key range (ONNX Runtime leaves columns
//!   past an entry's own total length unwritten).
//! - `sliding_window_cache = 1`: the caches hold `C` (past_key's length) rows, of which the
//!   first `R(P)` are the most recent positions, `R(n) = n` for `n <= C`, else
//!   `n - G * ceil((n - C) / G)` with `G = C - W + 1`; after the step the first `R(P + S)`
//!   rows of present hold the most recent positions (the rest are zero here; ONNX Runtime
//!   leaves them unspecified). Attention itself is the same as with a full cache, the window
//!   counted in absolute positions; `attention_bias`'s last axis is absolute too.
//!
//! Quantized caches (`k_quant_type`), q/k norm weights and shared-KV mode are not supported.
//! Padding queries of a ragged first prompt (`s > seqlens_k[b]`) see keys
//! `[0, seqlens_k[b] + 1)` less the window, as ONNX Runtime's reference path computes them
//! (its fused path may differ on those rows, which carry no meaning).

use crate::attr::{Attrs, AttrsExt};
use crate::bail;
use crate::dim::Dim;
use crate::ops::attention::common::{
    div_dim, dot, float_input, float_input_type, positive, rotate, softcap, softmax_in_place,
    Heads, RopeCache,
};
use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::Tensor;
use crate::types::ValueType;

struct Params {
    n: usize,
    nk: usize,
    scale: f64,
    softcap: f64,
    window: i64,
    rotary: bool,
    interleaved: bool,
    smooth: bool,
    qk_output: i64,
    windowed_cache: bool,
    causal: bool,
}

fn params(a: &Attrs) -> OpResult<Params> {
    let n = positive(
        a.int("num_heads")?
            .ok_or_else(|| crate::ops::OpError::new("`num_heads` is required"))?,
        "num_heads",
    )?;
    let nk = positive(
        a.int("kv_num_heads")?
            .ok_or_else(|| crate::ops::OpError::new("`kv_num_heads` is required"))?,
        "kv_num_heads",
    )?;
    if n % nk != 0 {
        bail!("num_heads ({n}) must be a multiple of kv_num_heads ({nk})");
    }
    for q in ["k_quant_type", "v_quant_type"] {
        let t = a.str_or(q, "NONE")?;
        if t != "NONE" {
            bail!("quantized KV caches (`{q}` = {t}) are not supported");
        }
    }
    let window = a.int_or("local_window_size", -1)?;
    let causal = match a.int_or("causal", 1)? {
        0 => false,
        1 => true,
        c => bail!("`causal` must be 0 or 1, got {c}"),
    };
    if !causal && window != -1 {
        bail!("local_window_size must be -1 when causal is 0");
    }
    let windowed_cache = a.int_or("sliding_window_cache", 0)? == 1;
    if windowed_cache && window <= 0 {
        bail!("sliding_window_cache = 1 requires local_window_size > 0");
    }
    let qk_output = a.int_or("qk_output", 0)?;
    if !(0..=2).contains(&qk_output) {
        bail!("qk_output must be 0, 1 or 2, got {qk_output}");
    }
    let scale = a.float_or("scale", 0.0)? as f64;
    Ok(Params {
        n,
        nk,
        scale,
        softcap: a.float_or("softcap", 0.0)? as f64,
        window,
        rotary: a.int_or("do_rotary", 0)? == 1,
        interleaved: a.int_or("rotary_interleaved", 0)? == 1,
        smooth: a.int_or("smooth_softmax", 0)? == 1,
        qk_output,
        windowed_cache,
        causal,
    })
}

pub(crate) fn infer(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let p = params(ctx.attrs)?;
    let q = float_input_type(ctx, 0, "query", &[3])?;
    let packed = !ctx.has_input(1);
    let h = if packed {
        if ctx.has_input(2) {
            bail!("key and value must both be given or both be absent (packed QKV)");
        }
        div_dim(&q.shape[2], p.n + 2 * p.nk, "packed QKV hidden size")?
    } else {
        float_input_type(ctx, 1, "key", &[3])?;
        float_input_type(ctx, 2, "value", &[3])?;
        div_dim(&q.shape[2], p.n, "query hidden size / num_heads")?
    };
    let (b, s) = (q.shape[0].clone(), q.shape[1].clone());
    let total = ctx
        .dims_input(6)
        .filter(|d| d.len() == 1)
        .map(|d| d[0].clone());
    let past = ctx.opt_input(3);
    if past.is_some() != ctx.has_input(4) {
        bail!("past_key and past_value must be given together");
    }
    if let Some(pk) = past {
        if pk.rank() != 4 {
            bail!("past_key must be 4-D, got {pk}");
        }
    }
    let cache_dtype = past.map_or(q.dtype, |t| t.dtype);
    let present_len = if p.windowed_cache {
        match past {
            Some(pk) => pk.shape[2].clone(),
            None => bail!("sliding_window_cache = 1 needs past_key and past_value"),
        }
    } else {
        match (&total, past) {
            (Some(t), Some(pk)) => t.maximum(&pk.shape[2]),
            (Some(t), None) => t.clone(),
            (None, _) => ctx.data_dim(1, 2),
        }
    };
    let total = total.unwrap_or_else(|| ctx.data_dim(3, 3));
    let nk = Dim::from(p.nk);
    let present = ValueType::new(cache_dtype, vec![b.clone(), nk, present_len, h.clone()]);
    Ok(vec![
        ValueType::new(q.dtype, vec![b.clone(), s.clone(), h.mul(&Dim::from(p.n))]),
        present.clone(),
        present,
        ValueType::new(q.dtype, vec![b, Dim::from(p.n), s, total]),
    ])
}

/// The rows the windowed cache keeps after `n` positions: capacity `c`, reclaiming `gap`
/// rows at a time.
fn resident(n: usize, c: usize, gap: usize) -> usize {
    if n <= c {
        n
    } else {
        n - gap * (n - c).div_ceil(gap)
    }
}

pub(crate) fn eval(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let p = params(ctx.attrs)?;
    if ctx.opt_input(14).is_some() || ctx.opt_input(15).is_some() {
        bail!("q_norm_weight / k_norm_weight are not supported (as in ONNX Runtime's CPU kernel)");
    }
    let query = float_input(ctx, 0, "query", &[3])?;
    let [b, s, d] = [query.shape()[0], query.shape()[1], query.shape()[2]];
    let (n, nk) = (p.n, p.nk);
    let qd = query.to_f64();
    let (mut q, mut k_new, v_new, h) = match (ctx.opt_input(1), ctx.opt_input(2)) {
        (None, None) => {
            if d % (n + 2 * nk) != 0 {
                bail!(
                    "packed QKV hidden size {d} is not divisible by num_heads + 2 * kv_num_heads"
                );
            }
            let h = d / (n + 2 * nk);
            (
                Heads::from_bsd(&qd, b, s, d, 0, n, h),
                Heads::from_bsd(&qd, b, s, d, n * h, nk, h),
                Heads::from_bsd(&qd, b, s, d, (n + nk) * h, nk, h),
                h,
            )
        }
        (Some(_), Some(_)) => {
            if d % n != 0 {
                bail!("query hidden size {d} is not divisible by num_heads {n}");
            }
            let h = d / n;
            let key = float_input(ctx, 1, "key", &[3])?;
            let value = float_input(ctx, 2, "value", &[3])?;
            for (name, t) in [("key", key), ("value", value)] {
                if t.shape() != [b, s, nk * h] {
                    bail!(
                        "{name} must have shape ({b}, {s}, {}), got {:?}",
                        nk * h,
                        t.shape()
                    );
                }
            }
            (
                Heads::from_bsd(&qd, b, s, d, 0, n, h),
                Heads::from_bsd(&key.to_f64(), b, s, nk * h, 0, nk, h),
                Heads::from_bsd(&value.to_f64(), b, s, nk * h, 0, nk, h),
                h,
            )
        }
        _ => bail!("key and value must both be given or both be absent (packed QKV)"),
    };

    let past = match (ctx.opt_input(3), ctx.opt_input(4)) {
        (Some(pk), Some(pv)) => {
            let len = pk.shape().get(2).copied().unwrap_or(0);
            for (name, t) in [("past_key", pk), ("past_value", pv)] {
                if t.shape() != [b, nk, len, h] {
                    bail!(
                        "{name} must have shape ({b}, {nk}, {len}, {h}), got {:?}",
                        t.shape()
                    );
                }
            }
            Some((
                Heads::from_bnsh(pk.to_f64(), b, nk, len, h),
                Heads::from_bnsh(pv.to_f64(), b, nk, len, h),
            ))
        }
        (None, None) => None,
        _ => bail!("past_key and past_value must be given together"),
    };
    let past_len = past.as_ref().map_or(0, |(k, _)| k.s);
    let cache_dtype = ctx.opt_input(3).map_or(query.dtype(), |t| t.dtype());

    let seqlens = ctx.input(5)?;
    if !seqlens.dtype().is_int() || seqlens.len() != b {
        bail!(
            "seqlens_k must hold {b} integers, got {:?}",
            seqlens.shape()
        );
    }
    let seqlens = seqlens.to_i64();
    let total_t = ctx.input(6)?;
    let total = match (total_t.dtype().is_int(), total_t.first_i64()) {
        (true, Some(t)) if total_t.len() == 1 && t >= 0 => t as usize,
        _ => bail!("total_sequence_length must be one nonnegative integer"),
    };
    let prompt = s == total;
    let first_prompt = prompt && !p.windowed_cache;
    let present_len = if p.windowed_cache {
        if past.is_none() {
            bail!("sliding_window_cache = 1 needs past_key and past_value");
        }
        if past_len < p.window as usize {
            bail!(
                "the windowed cache's capacity ({past_len}) is smaller than local_window_size ({})",
                p.window
            );
        }
        past_len
    } else {
        total.max(past_len)
    };
    let mut tot = Vec::with_capacity(b);
    for &sk in &seqlens {
        if sk < 0 || (!p.windowed_cache && sk as usize >= present_len) {
            bail!("seqlens_k value {sk} is out of range [0, {present_len})");
        }
        if !first_prompt && (sk as usize) + 1 < s {
            bail!("seqlens_k value {sk} is too small for a sequence of {s}");
        }
        tot.push(sk as usize + 1);
    }

    if p.rotary {
        let (cos, sin) = match (ctx.opt_input(7), ctx.opt_input(8)) {
            (Some(c), Some(sn)) => (c, sn),
            _ => bail!("do_rotary needs cos_cache and sin_cache"),
        };
        if cos.rank() != 2 {
            bail!("cos_cache must be 2-D, got {:?}", cos.shape());
        }
        let cache = RopeCache::new(cos, sin)?;
        if 2 * cache.half > h {
            bail!(
                "cos_cache's second dim ({}) must be at most head_size / 2 ({})",
                cache.half,
                h / 2
            );
        }
        let pos_ids = match ctx.opt_input(9) {
            Some(t) => {
                if !t.dtype().is_int() || t.shape() != [b, s] {
                    bail!(
                        "position_ids must be integers of shape ({b}, {s}), got {:?}",
                        t.shape()
                    );
                }
                Some(t.to_i64())
            }
            None => None,
        };
        for bi in 0..b {
            for si in 0..s {
                let pos = match (&pos_ids, prompt) {
                    (Some(ids), true) => ids[0] + si as i64,
                    (Some(ids), false) => ids[bi * s + si],
                    (None, true) => si as i64,
                    (None, false) => (tot[bi] - s + si) as i64,
                };
                let (c, sn) = cache.at(pos)?;
                for hi in 0..n {
                    rotate(q.row_mut(bi, hi, si), c, sn, p.interleaved);
                }
                for hi in 0..nk {
                    rotate(k_new.row_mut(bi, hi, si), c, sn, p.interleaved);
                }
            }
        }
    }

    let bias = match ctx.opt_input(10) {
        Some(t) => {
            crate::ops::attention::common::require_float(t.dtype(), "attention_bias")?;
            let sh = t.shape();
            if t.rank() != 4
                || (sh[0] != 1 && sh[0] != b)
                || (sh[1] != 1 && sh[1] != n)
                || sh[2] != s
            {
                bail!("attention_bias must be (B or 1, N or 1, {s}, T), got {sh:?}");
            }
            Some((t.to_f64(), [sh[0], sh[1], sh[3]]))
        }
        None => None,
    };
    let sink = match ctx.opt_input(11) {
        Some(t) => {
            crate::ops::attention::common::require_float(t.dtype(), "head_sink")?;
            if t.len() != n {
                bail!("head_sink must hold {n} values, got {:?}", t.shape());
            }
            Some(t.to_f64())
        }
        None => None,
    };
    if p.windowed_cache && p.qk_output != 0 {
        bail!("qk_output is not supported with sliding_window_cache = 1");
    }

    let scale = if p.scale == 0.0 {
        1.0 / (h as f64).sqrt()
    } else {
        p.scale
    };
    let group = n / nk;
    let mut out = Heads::zeros(b, n, s, h);
    let mut present_k = Heads::zeros(b, nk, present_len, h);
    let mut present_v = Heads::zeros(b, nk, present_len, h);
    let want_qk = p.qk_output != 0 && ctx.num_outputs > 3;
    let mut qk = if want_qk {
        vec![0.0; b * n * s * total]
    } else {
        Vec::new()
    };

    for (bi, &tot_b) in tot.iter().enumerate() {
        // The keys of this entry: `keys[j]` has absolute position `base + j`.
        let (keys, vals, past_rows, base) = if p.windowed_cache {
            let (pk, pv) = past.as_ref().map(|(k, v)| (k, v)).ok_or_else(|| {
                crate::ops::OpError::new("sliding_window_cache = 1 needs past_key and past_value")
            })?;
            let gap = past_len - p.window as usize + 1;
            let before = tot_b.saturating_sub(s);
            let res = resident(before, past_len, gap);
            let after = resident(before + s, past_len, gap);
            let (keys, vals) = gather(pk, pv, &k_new, &v_new, bi, res);
            // Present: the most recent `after` rows.
            for hk in 0..nk {
                for r in 0..after {
                    let src = res + s - after + r;
                    present_k
                        .row_mut(bi, hk, r)
                        .copy_from_slice(keys.row(0, hk, src));
                    present_v
                        .row_mut(bi, hk, r)
                        .copy_from_slice(vals.row(0, hk, src));
                }
            }
            (keys, vals, res, before - res)
        } else {
            let rows = if first_prompt { 0 } else { tot_b - s };
            if rows > past_len || rows + s > present_len {
                bail!(
                    "batch entry {bi} needs {rows} past rows plus {s} new ones, but the caches hold {past_len} and {present_len}"
                );
            }
            for hk in 0..nk {
                if let Some((pk, pv)) = &past {
                    for r in 0..rows {
                        present_k
                            .row_mut(bi, hk, r)
                            .copy_from_slice(pk.row(bi, hk, r));
                        present_v
                            .row_mut(bi, hk, r)
                            .copy_from_slice(pv.row(bi, hk, r));
                    }
                }
                for r in 0..s {
                    present_k
                        .row_mut(bi, hk, rows + r)
                        .copy_from_slice(k_new.row(bi, hk, r));
                    present_v
                        .row_mut(bi, hk, rows + r)
                        .copy_from_slice(v_new.row(bi, hk, r));
                }
            }
            // Attention reads this entry's present buffer (zero past the new rows), as ONNX
            // Runtime does.
            let (keys, vals) = (entry(&present_k, bi), entry(&present_v, bi));
            (keys, vals, rows, 0)
        };
        // The keys each query may see, as [lo, hi) rows of `keys`.
        let n_keys = if p.windowed_cache { keys.s } else { tot_b };
        for hi in 0..n {
            let hk = hi / group;
            for si in 0..s {
                let (lo, end) = if !p.causal {
                    (0, n_keys)
                } else {
                    let end = (past_rows + si + 1).min(n_keys);
                    let lo = if p.window >= 0 && end > p.window as usize {
                        end - p.window as usize
                    } else {
                        0
                    };
                    (lo, end)
                };
                let qrow = q.row(bi, hi, si);
                let mut row: Vec<f64> = (lo..end)
                    .map(|j| softcap(dot(qrow, keys.row(0, hk, j)) * scale, p.softcap))
                    .collect();
                if let Some((bv, [bb, bn, bt])) = &bias {
                    let o = ((if *bb == 1 { 0 } else { bi }) * bn + if *bn == 1 { 0 } else { hi })
                        * s
                        + si;
                    for (x, j) in row.iter_mut().zip(lo..end) {
                        let col = base + j;
                        if col >= *bt {
                            bail!("attention_bias's last axis ({bt}) is too short for key {col}");
                        }
                        *x += bv[o * bt + col];
                    }
                }
                let qk_base = ((bi * n + hi) * s + si) * total;
                if want_qk && p.qk_output == 1 {
                    write_qk(&mut qk, qk_base, total, lo, &row)?;
                }
                let sink_logit = match &sink {
                    Some(v) => Some(v[hi]),
                    None if p.smooth => Some(0.0),
                    None => None,
                };
                softmax_in_place(&mut row, sink_logit);
                if want_qk && p.qk_output == 2 {
                    write_qk(&mut qk, qk_base, total, lo, &row)?;
                }
                let o = out.row_mut(bi, hi, si);
                for (w, j) in row.iter().zip(lo..end) {
                    for (x, v) in o.iter_mut().zip(vals.row(0, hk, j)) {
                        *x += w * v;
                    }
                }
            }
        }
    }

    let dt = query.dtype();
    Ok(vec![
        Tensor::from_f64(dt, vec![b, s, n * h], &out.to_bsd()),
        Tensor::from_f64(cache_dtype, present_k.shape(), &present_k.data),
        Tensor::from_f64(cache_dtype, present_v.shape(), &present_v.data),
        Tensor::from_f64(dt, vec![b, n, s, total], &qk),
    ])
}

/// The first `rows` cached rows of batch entry `b` followed by its new keys / values, as a
/// one-entry head array.
fn gather(
    past_k: &Heads,
    past_v: &Heads,
    new_k: &Heads,
    new_v: &Heads,
    b: usize,
    rows: usize,
) -> (Heads, Heads) {
    let (nk, s, h) = (new_k.n, new_k.s, new_k.h);
    let mut k = Heads::zeros(1, nk, rows + s, h);
    let mut v = Heads::zeros(1, nk, rows + s, h);
    for hk in 0..nk {
        for r in 0..rows {
            k.row_mut(0, hk, r).copy_from_slice(past_k.row(b, hk, r));
            v.row_mut(0, hk, r).copy_from_slice(past_v.row(b, hk, r));
        }
        for r in 0..s {
            k.row_mut(0, hk, rows + r)
                .copy_from_slice(new_k.row(b, hk, r));
            v.row_mut(0, hk, rows + r)
                .copy_from_slice(new_v.row(b, hk, r));
        }
    }
    (k, v)
}

/// Batch entry `b` of a head array, as a one-entry array.
fn entry(x: &Heads, b: usize) -> Heads {
    let len = x.n * x.s * x.h;
    Heads::from_bnsh(x.data[b * len..(b + 1) * len].to_vec(), 1, x.n, x.s, x.h)
}

fn write_qk(qk: &mut [f64], base: usize, total: usize, lo: usize, row: &[f64]) -> OpResult<()> {
    if lo + row.len() > total {
        bail!("output_qk's last axis (total_sequence_length = {total}) is too short");
    }
    qk[base + lo..base + lo + row.len()].copy_from_slice(row);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::resident;
    use crate::attr::{Attr, Attrs};
    use crate::ops::attention::common::testing::{assert_close, f32s, i32s, run};

    fn attrs(list: &[(&str, Attr)]) -> Attrs {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn windowed_cache_rows() {
        // Capacity 8, window 5: gap 4.
        let r: Vec<usize> = (0..=14).map(|n| resident(n, 8, 4)).collect();
        assert_eq!(r, vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 5, 6, 7, 8, 5, 6]);
    }

    /// Packed QKV, one query head and one kv head of size 1, a first prompt of two tokens.
    #[test]
    fn prompt_causal() {
        // Token t: q, k, v. Scores use scale 1.
        let qkv = f32s(&[1, 2, 3], &[1.0, 0.0, 10.0, 1.0, 2f32.ln(), 40.0]);
        let a = attrs(&[
            ("num_heads", Attr::Int(1)),
            ("kv_num_heads", Attr::Int(1)),
            ("scale", Attr::Float(1.0)),
        ]);
        let out = run(
            "com.microsoft.GroupQueryAttention",
            &[
                Some(qkv),
                None,
                None,
                None,
                None,
                Some(i32s(&[1], &[1])),
                Some(i32s(&[], &[2])),
            ],
            a,
            3,
        )
        .expect("gqa");
        // Row 1 weights keys 1:2 -> (10 + 2 * 40) / 3.
        assert_close(&out[0], &[10.0, 30.0], 1e-6);
        assert_close(&out[1], &[0.0, 2f64.ln()], 1e-6);
        assert_close(&out[2], &[10.0, 40.0], 0.0);
    }

    /// Decode with a past of two rows (buffer of three), a head sink and the qk output.
    #[test]
    fn decode_with_sink() {
        // Two query heads share one kv head; head size 1.
        let q = f32s(&[1, 1, 2], &[1.0, 0.0]);
        let k = f32s(&[1, 1, 1], &[0.0]);
        let v = f32s(&[1, 1, 1], &[3.0]);
        let pk = f32s(&[1, 1, 3, 1], &[0.0, 0.0, 99.0]);
        let pv = f32s(&[1, 1, 3, 1], &[1.0, 2.0, 99.0]);
        let sink = f32s(&[2], &[f32::NEG_INFINITY, 0.0]);
        let a = attrs(&[
            ("num_heads", Attr::Int(2)),
            ("kv_num_heads", Attr::Int(1)),
            ("qk_output", Attr::Int(2)),
        ]);
        let out = run(
            "com.microsoft.GroupQueryAttention",
            &[
                Some(q),
                Some(k),
                Some(v),
                Some(pk),
                Some(pv),
                Some(i32s(&[1], &[2])),
                Some(i32s(&[], &[3])),
                None,
                None,
                None,
                None,
                Some(sink),
            ],
            a,
            4,
        )
        .expect("gqa");
        // All scores 0: head 0 averages [1, 2, 3]; head 1's sink takes a quarter.
        assert_close(&out[0], &[2.0, 1.5], 1e-6);
        assert_eq!(out[1].shape(), &[1, 1, 3, 1]);
        assert_close(&out[1], &[0.0, 0.0, 0.0], 0.0);
        assert_close(&out[2], &[1.0, 2.0, 3.0], 0.0);
        let t = 1.0 / 3.0;
        assert_close(&out[3], &[t, t, t, 0.25, 0.25, 0.25], 1e-6);
    }

    /// Rotary at the decode position, and a local window of one key.
    #[test]
    fn rotary_and_window() {
        // Head size 2; cos/sin table of 2 positions, position 1 turns by 90 degrees.
        let cos = f32s(&[2, 1], &[1.0, 0.0]);
        let sin = f32s(&[2, 1], &[0.0, 1.0]);
        let q = f32s(&[1, 1, 2], &[1.0, 0.0]);
        let k = f32s(&[1, 1, 2], &[1.0, 0.0]);
        let v = f32s(&[1, 1, 2], &[5.0, 6.0]);
        let pk = f32s(&[1, 1, 1, 2], &[0.0, 0.0]);
        let pv = f32s(&[1, 1, 1, 2], &[1.0, 1.0]);
        let a = attrs(&[
            ("num_heads", Attr::Int(1)),
            ("kv_num_heads", Attr::Int(1)),
            ("do_rotary", Attr::Int(1)),
            ("local_window_size", Attr::Int(1)),
        ]);
        let out = run(
            "com.microsoft.GroupQueryAttention",
            &[
                Some(q),
                Some(k),
                Some(v),
                Some(pk),
                Some(pv),
                Some(i32s(&[1], &[1])),
                Some(i32s(&[], &[2])),
                Some(cos),
                Some(sin),
            ],
            a,
            3,
        )
        .expect("gqa");
        // The window keeps only the new key; the new key is rotated to (0, 1).
        assert_close(&out[0], &[5.0, 6.0], 1e-6);
        assert_close(&out[1], &[0.0, 0.0, 0.0, 1.0], 1e-6);
    }

    /// A windowed cache of capacity 2 with window 2: decode at absolute position 2.
    #[test]
    fn windowed_cache_decode() {
        let q = f32s(&[1, 1, 1], &[0.0]);
        let k = f32s(&[1, 1, 1], &[7.0]);
        let v = f32s(&[1, 1, 1], &[30.0]);
        // Resident rows: positions 0 and 1 (values 10, 20).
        let pk = f32s(&[1, 1, 2, 1], &[5.0, 6.0]);
        let pv = f32s(&[1, 1, 2, 1], &[10.0, 20.0]);
        let a = attrs(&[
            ("num_heads", Attr::Int(1)),
            ("kv_num_heads", Attr::Int(1)),
            ("local_window_size", Attr::Int(2)),
            ("sliding_window_cache", Attr::Int(1)),
        ]);
        let out = run(
            "com.microsoft.GroupQueryAttention",
            &[
                Some(q),
                Some(k),
                Some(v),
                Some(pk),
                Some(pv),
                Some(i32s(&[1], &[2])),
                Some(i32s(&[], &[3])),
            ],
            a,
            3,
        )
        .expect("gqa");
        // The window is positions 1 and 2; the cache keeps them in rows 0 and 1.
        assert_close(&out[0], &[25.0], 1e-6);
        assert_close(&out[1], &[6.0, 7.0], 0.0);
        assert_close(&out[2], &[20.0, 30.0], 0.0);
    }
}
