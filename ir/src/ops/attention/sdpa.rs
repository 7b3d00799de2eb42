//! ONNX `Attention` (opsets 23, 24 and 25): scaled dot-product attention with MHA / GQA / MQA
//! head sharing, an optional boolean or additive mask, causal masking, left/right windows,
//! softcap, a KV cache (`past_*` -> `present_*`), `nonpad_kv_seqlen` (external cache) and the
//! `qk_matmul_output` debug output.
//!
//! Semantics follow the ONNX reference implementation:
//! - Q, K, V are 4-D `(batch, heads, seq, head_size)` or 3-D `(batch, seq, heads * head_size)`
//!   with `q_num_heads` / `kv_num_heads`; query head `h` reads kv head `h / (q_heads / kv_heads)`.
//! - `present = concat(past, new)` along the sequence; `T = past_seq + kv_seq` keys.
//! - The additive bias of a score is the sum of: the mask (boolean: 0 / -inf; float: its value;
//!   a mask shorter than `T` on its last axis counts as -inf beyond its end; other axes
//!   broadcast), the causal frontier `j <= i + offset`, the window
//!   `i + offset - left <= j <= i + offset + right`, and `j < nonpad_kv_seqlen[b]`, where
//!   `offset` is `past_seq` with a cache, `nonpad_kv_seqlen[b] - q_seq` with an external cache,
//!   else 0.
//! - scores = `softcap(scale * q.k)`; probabilities = softmax(scores + bias); a row whose bias is
//!   -inf everywhere gives zero probabilities (and a zero output row).
//! - `qk_matmul_output_mode`: 0 the scaled scores, 1 after softcap, 2 after adding the bias,
//!   3 the probabilities. (Mode 0 is the raw scores even with a softcap, as the operator spec
//!   and ONNX Runtime have it; ONNX's Python reference returns the softcapped scores there.)
//!
//! Everything is computed in f64 and rounded once to the output dtype (`softmax_precision` is
//! accepted and has nothing left to change).

use crate::attr::AttrsExt;
use crate::bail;
use crate::dim::Dim;
use crate::dtype::DType;
use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::Tensor;
use crate::types::ValueType;

use super::common::{
    div_dim, dot, float_input, float_input_type, positive, same_dim, softcap, softmax_in_place,
    Heads,
};

/// The shape-relevant sizes of one Attention node, symbolically.
struct Dims {
    rank: usize,
    b: Dim,
    nq: Dim,
    nkv: Dim,
    sq: Dim,
    h: Dim,
    hv: Dim,
    /// Keys after the cache append.
    t: Dim,
}

fn heads_attr(ctx_attrs: &crate::attr::Attrs, name: &str) -> OpResult<usize> {
    match ctx_attrs.int(name)? {
        Some(v) => positive(v, name),
        None => bail!("3-D Q, K, V need the `{name}` attribute"),
    }
}

fn infer_dims(ctx: &InferCtx) -> OpResult<Dims> {
    let q = float_input_type(ctx, 0, "Q", &[3, 4])?;
    let k = float_input_type(ctx, 1, "K", &[3, 4])?;
    let v = float_input_type(ctx, 2, "V", &[3, 4])?;
    if k.rank() != q.rank() || v.rank() != q.rank() {
        bail!("Q, K and V must have the same rank, got {q}, {k}, {v}");
    }
    let rank = q.rank();
    let (nq, nkv, sq, skv, h, hv) = if rank == 3 {
        let nq = heads_attr(ctx.attrs, "q_num_heads")?;
        let nkv = heads_attr(ctx.attrs, "kv_num_heads")?;
        let h = div_dim(&q.shape[2], nq, "Q hidden size / q_num_heads")?;
        let hk = div_dim(&k.shape[2], nkv, "K hidden size / kv_num_heads")?;
        same_dim(&h, &hk, "Q and K head sizes")?;
        let hv = div_dim(&v.shape[2], nkv, "V hidden size / kv_num_heads")?;
        (
            Dim::from(nq),
            Dim::from(nkv),
            q.shape[1].clone(),
            k.shape[1].clone(),
            h,
            hv,
        )
    } else {
        same_dim(&q.shape[3], &k.shape[3], "Q and K head sizes")?;
        same_dim(&k.shape[1], &v.shape[1], "K and V heads")?;
        same_dim(&k.shape[2], &v.shape[2], "K and V sequence lengths")?;
        (
            q.shape[1].clone(),
            k.shape[1].clone(),
            q.shape[2].clone(),
            k.shape[2].clone(),
            q.shape[3].clone(),
            v.shape[3].clone(),
        )
    };
    same_dim(&q.shape[0], &k.shape[0], "Q and K batch sizes")?;
    if let (Some(a), Some(b)) = (nq.as_const(), nkv.as_const()) {
        if b == 0 || a % b != 0 {
            bail!("q heads ({a}) must be a multiple of kv heads ({b})");
        }
    }
    let t = match (ctx.opt_input(4), ctx.opt_input(5)) {
        (Some(pk), Some(pv)) => {
            if pk.rank() != 4 || pv.rank() != 4 {
                bail!("past_key and past_value must be 4-D, got {pk} and {pv}");
            }
            same_dim(
                &pk.shape[2],
                &pv.shape[2],
                "past_key and past_value lengths",
            )?;
            pk.shape[2].add(&skv)
        }
        (None, None) => skv,
        _ => bail!("past_key and past_value must be given together"),
    };
    Ok(Dims {
        rank,
        b: q.shape[0].clone(),
        nq,
        nkv,
        sq,
        h,
        hv,
        t,
    })
}

pub(crate) fn infer(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let d = infer_dims(ctx)?;
    let q = ctx.input(0)?;
    let y = if d.rank == 3 {
        vec![d.b.clone(), d.sq.clone(), d.nq.mul(&d.hv)]
    } else {
        vec![d.b.clone(), d.nq.clone(), d.sq.clone(), d.hv.clone()]
    };
    let kd = ctx.input(1)?.dtype;
    let vd = ctx.input(2)?.dtype;
    let mut out = vec![ValueType::new(q.dtype, y)];
    if ctx.num_outputs > 1 {
        out.push(ValueType::new(
            kd,
            vec![d.b.clone(), d.nkv.clone(), d.t.clone(), d.h.clone()],
        ));
        out.push(ValueType::new(
            vd,
            vec![d.b.clone(), d.nkv.clone(), d.t.clone(), d.hv.clone()],
        ));
        out.push(ValueType::new(q.dtype, vec![d.b, d.nq, d.sq, d.t]));
    }
    Ok(out)
}

/// Q, K or V in head layout, from a 3-D `(b, s, n*h)` or 4-D `(b, n, s, h)` tensor.
fn to_heads(t: &Tensor, n: usize) -> OpResult<Heads> {
    let s = t.shape();
    if t.rank() == 3 {
        let (b, seq, d) = (s[0], s[1], s[2]);
        if d % n != 0 {
            bail!("hidden size {d} is not divisible by {n} heads");
        }
        Ok(Heads::from_bsd(&t.to_f64(), b, seq, d, 0, n, d / n))
    } else {
        Ok(Heads::from_bnsh(t.to_f64(), s[0], s[1], s[2], s[3]))
    }
}

/// An additive mask, broadcast on its leading axes to `(b, heads, q, *)`.
struct Mask {
    vals: Vec<f64>,
    dims: [usize; 4],
}

impl Mask {
    fn new(t: &Tensor, b: usize, nq: usize, sq: usize, total: usize) -> OpResult<Mask> {
        if t.rank() == 0 || t.rank() > 4 {
            bail!("attn_mask must have rank 1 to 4, got shape {:?}", t.shape());
        }
        let vals = if t.dtype() == DType::Bool {
            t.to_bool()
                .into_iter()
                .map(|x| if x { 0.0 } else { f64::NEG_INFINITY })
                .collect()
        } else if t.dtype().is_float() {
            t.to_f64()
        } else {
            bail!("attn_mask must be bool or float, got {}", t.dtype());
        };
        let mut dims = [1usize; 4];
        dims[4 - t.rank()..].copy_from_slice(t.shape());
        for (axis, (&m, full)) in dims[..3].iter().zip([b, nq, sq]).enumerate() {
            if m != 1 && m != full {
                bail!(
                    "attn_mask {:?} does not broadcast to ({b}, {nq}, {sq}, {total}) on axis {axis}",
                    t.shape()
                );
            }
        }
        if dims[3] > total {
            bail!(
                "attn_mask's last axis ({}) is longer than the {total} keys",
                dims[3]
            );
        }
        Ok(Mask { vals, dims })
    }

    fn at(&self, b: usize, h: usize, i: usize, j: usize) -> f64 {
        let [mb, mh, mq, mt] = self.dims;
        if j >= mt {
            return f64::NEG_INFINITY;
        }
        let (b, h, i) = (
            if mb == 1 { 0 } else { b },
            if mh == 1 { 0 } else { h },
            if mq == 1 { 0 } else { i },
        );
        self.vals[((b * mh + h) * mq + i) * mt + j]
    }
}

pub(crate) fn eval(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let q_t = float_input(ctx, 0, "Q", &[3, 4])?;
    let k_t = float_input(ctx, 1, "K", &[3, 4])?;
    let v_t = float_input(ctx, 2, "V", &[3, 4])?;
    let rank = q_t.rank();
    if k_t.rank() != rank || v_t.rank() != rank {
        bail!("Q, K and V must have the same rank");
    }
    let (nq, nkv) = if rank == 3 {
        (
            heads_attr(ctx.attrs, "q_num_heads")?,
            heads_attr(ctx.attrs, "kv_num_heads")?,
        )
    } else {
        (q_t.shape()[1], k_t.shape()[1])
    };
    let q = to_heads(q_t, nq)?;
    let k_new = to_heads(k_t, nkv)?;
    let v_new = to_heads(v_t, nkv)?;
    let (b, sq, h) = (q.b, q.s, q.h);
    if k_new.b != b || v_new.b != b {
        bail!("Q, K and V must have the same batch size");
    }
    if k_new.h != h {
        bail!("Q head size {h} != K head size {}", k_new.h);
    }
    if v_new.n != nkv || v_new.s != k_new.s {
        bail!("K and V must have the same heads and sequence length");
    }
    if nkv == 0 || nq % nkv != 0 {
        bail!("q heads ({nq}) must be a multiple of kv heads ({nkv})");
    }
    let hv = v_new.h;

    // The KV cache.
    let past = match (ctx.opt_input(4), ctx.opt_input(5)) {
        (Some(pk), Some(pv)) => Some((pk, pv)),
        (None, None) => None,
        _ => bail!("past_key and past_value must be given together"),
    };
    let (k, v, past_len) = match past {
        Some((pk, pv)) => {
            let p = pk.shape().get(2).copied().unwrap_or(0);
            if pk.shape() != [b, nkv, p, h] || pv.shape() != [b, nkv, p, hv] {
                bail!(
                    "past_key {:?} / past_value {:?} do not match ({b}, {nkv}, past, {h} / {hv})",
                    pk.shape(),
                    pv.shape()
                );
            }
            let k = append(&Heads::from_bnsh(pk.to_f64(), b, nkv, p, h), &k_new);
            let v = append(&Heads::from_bnsh(pv.to_f64(), b, nkv, p, hv), &v_new);
            (k, v, p)
        }
        None => (k_new, v_new, 0),
    };
    let total = k.s;

    let nonpad = match ctx.opt_input(6) {
        Some(t) => {
            if past.is_some() {
                bail!("nonpad_kv_seqlen cannot be combined with past_key / past_value");
            }
            if !t.dtype().is_int() || t.len() != b {
                bail!(
                    "nonpad_kv_seqlen must be {b} integers, got {} {:?}",
                    t.dtype(),
                    t.shape()
                );
            }
            Some(t.to_i64())
        }
        None => None,
    };
    let mask = match ctx.opt_input(3) {
        Some(t) => Some(Mask::new(t, b, nq, sq, total)?),
        None => None,
    };

    let scale = match ctx.attrs.float("scale")? {
        Some(s) => s as f64,
        None => 1.0 / (h as f64).sqrt(),
    };
    let cap = ctx.attrs.float_or("softcap", 0.0)? as f64;
    let causal = ctx.attrs.int_or("is_causal", 0)? != 0;
    let left = ctx.attrs.int_or("left_window_size", -1)?;
    let right = ctx.attrs.int_or("right_window_size", -1)?;
    if left < -1 || right < -1 {
        bail!("window sizes must be -1 or nonnegative, got {left} and {right}");
    }
    let mode = ctx.attrs.int_or("qk_matmul_output_mode", 0)?;
    if !(0..=3).contains(&mode) {
        bail!("qk_matmul_output_mode must be 0 to 3, got {mode}");
    }

    let group = nq / nkv;
    let mut y = Heads::zeros(b, nq, sq, hv);
    let want_qk = ctx.num_outputs > 3;
    let mut qk_out = if want_qk {
        vec![0.0; b * nq * sq * total]
    } else {
        Vec::new()
    };
    let mut bias = vec![0.0; total];
    let mut scores = vec![0.0; total];
    for bi in 0..b {
        let offset: i64 = match &nonpad {
            Some(np) => np[bi] - sq as i64,
            None => past_len as i64,
        };
        for hq in 0..nq {
            let hk = hq / group;
            for i in 0..sq {
                let p = i as i64 + offset;
                for (j, bj) in bias.iter_mut().enumerate() {
                    let jj = j as i64;
                    let mut x = match &mask {
                        Some(m) => m.at(bi, hq, i, j),
                        None => 0.0,
                    };
                    let allowed = (!causal || jj <= p)
                        && (left < 0 || p - jj <= left)
                        && (right < 0 || jj - p <= right)
                        && nonpad.as_ref().is_none_or(|np| jj < np[bi]);
                    if !allowed {
                        x += f64::NEG_INFINITY;
                    }
                    *bj = x;
                }
                let qrow = q.row(bi, hq, i);
                let base = ((bi * nq + hq) * sq + i) * total;
                for (j, s) in scores.iter_mut().enumerate() {
                    let raw = dot(qrow, k.row(bi, hk, j)) * scale;
                    if want_qk && mode == 0 {
                        qk_out[base + j] = raw;
                    }
                    *s = softcap(raw, cap);
                    if want_qk && mode == 1 {
                        qk_out[base + j] = *s;
                    }
                    *s += bias[j];
                    if want_qk && mode == 2 {
                        qk_out[base + j] = *s;
                    }
                }
                if bias.iter().all(|&x| x == f64::NEG_INFINITY) {
                    scores.iter_mut().for_each(|x| *x = 0.0);
                } else {
                    softmax_in_place(&mut scores, None);
                }
                if want_qk && mode == 3 {
                    qk_out[base..base + total].copy_from_slice(&scores);
                }
                let out = y.row_mut(bi, hq, i);
                for (j, &w) in scores.iter().enumerate() {
                    if w != 0.0 {
                        for (o, x) in out.iter_mut().zip(v.row(bi, hk, j)) {
                            *o += w * x;
                        }
                    } else if v.row(bi, hk, j).iter().any(|x| !x.is_finite()) {
                        // 0 * inf is NaN, as in a matmul.
                        for (o, x) in out.iter_mut().zip(v.row(bi, hk, j)) {
                            *o += w * x;
                        }
                    }
                }
            }
        }
    }

    let dt = q_t.dtype();
    let y_t = if rank == 3 {
        Tensor::from_f64(dt, vec![b, sq, nq * hv], &y.to_bsd())
    } else {
        Tensor::from_f64(dt, y.shape(), &y.data)
    };
    let mut outs = vec![y_t];
    if ctx.num_outputs > 1 {
        outs.push(Tensor::from_f64(k_t.dtype(), k.shape(), &k.data));
        outs.push(Tensor::from_f64(v_t.dtype(), v.shape(), &v.data));
        outs.push(Tensor::from_f64(dt, vec![b, nq, sq, total], &qk_out));
    }
    Ok(outs)
}

/// `concat(past, new)` along the sequence axis.
fn append(past: &Heads, new: &Heads) -> Heads {
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
    use crate::ops::attention::common::testing::{assert_close, f32s, i64s, run};
    use crate::tensor::Tensor;

    fn attrs(list: &[(&str, Attr)]) -> Attrs {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    /// One head, head size 1: scores are q*k, so the numbers are easy to follow.
    #[test]
    fn causal_single_head() {
        // q = [1, 1], k = [0, ln 3], v = [10, 20], scale 1.
        let q = f32s(&[1, 1, 2, 1], &[1.0, 1.0]);
        let k = f32s(&[1, 1, 2, 1], &[0.0, 3f32.ln()]);
        let v = f32s(&[1, 1, 2, 1], &[10.0, 20.0]);
        let a = attrs(&[("scale", Attr::Float(1.0)), ("is_causal", Attr::Int(1))]);
        let y = run(
            "Attention",
            &[Some(q.clone()), Some(k.clone()), Some(v.clone())],
            a,
            1,
        )
        .expect("attention");
        // Row 0 sees only key 0; row 1 weights 1:3.
        assert_close(&y[0], &[10.0, 17.5], 1e-6);
        let y = run(
            "Attention",
            &[Some(q), Some(k), Some(v)],
            attrs(&[("scale", Attr::Float(1.0))]),
            1,
        )
        .expect("attention");
        assert_close(&y[0], &[17.5, 17.5], 1e-6);
    }

    /// 3-D inputs with two query heads sharing one kv head, a past cache, and every output.
    #[test]
    fn gqa_with_past_and_outputs() {
        // b=1, q_seq=1, q heads 2, kv heads 1, head size 1.
        let q = f32s(&[1, 1, 2], &[1.0, 2.0]);
        let k = f32s(&[1, 1, 1], &[1.0]);
        let v = f32s(&[1, 1, 1], &[5.0]);
        let pk = f32s(&[1, 1, 1, 1], &[0.0]);
        let pv = f32s(&[1, 1, 1, 1], &[1.0]);
        let a = attrs(&[
            ("q_num_heads", Attr::Int(2)),
            ("kv_num_heads", Attr::Int(1)),
            ("scale", Attr::Float(1.0)),
            ("is_causal", Attr::Int(1)),
            ("qk_matmul_output_mode", Attr::Int(3)),
        ]);
        let out = run(
            "Attention",
            &[Some(q), Some(k), Some(v), None, Some(pk), Some(pv)],
            a,
            4,
        )
        .expect("attention");
        // Head 0: scores [0, 1] -> p = [1, e] / (1 + e); head 1: scores [0, 2].
        let e1 = 1f64.exp();
        let e2 = 2f64.exp();
        let p0 = [1.0 / (1.0 + e1), e1 / (1.0 + e1)];
        let p1 = [1.0 / (1.0 + e2), e2 / (1.0 + e2)];
        assert_close(&out[0], &[p0[0] + 5.0 * p0[1], p1[0] + 5.0 * p1[1]], 1e-6);
        assert_eq!(out[1].shape(), &[1, 1, 2, 1]);
        assert_close(&out[1], &[0.0, 1.0], 0.0);
        assert_close(&out[2], &[1.0, 5.0], 0.0);
        assert_close(&out[3], &[p0[0], p0[1], p1[0], p1[1]], 1e-6);
    }

    #[test]
    fn masks_softcap_and_fully_masked_rows() {
        let q = f32s(&[1, 1, 2, 1], &[1.0, 1.0]);
        let k = f32s(&[1, 1, 3, 1], &[0.0, 1.0, 2.0]);
        let v = f32s(&[1, 1, 3, 1], &[1.0, 2.0, 4.0]);
        // Bool mask of length 2 (key 2 is padding): row 0 allows key 1 only, row 1 nothing.
        let m = Tensor::from_bools(vec![2, 2], vec![false, true, false, false]).expect("mask");
        let a = attrs(&[
            ("scale", Attr::Float(1.0)),
            ("qk_matmul_output_mode", Attr::Int(2)),
        ]);
        let out = run(
            "Attention",
            &[Some(q.clone()), Some(k.clone()), Some(v.clone()), Some(m)],
            a,
            4,
        )
        .expect("attention");
        assert_close(&out[0], &[2.0, 0.0], 0.0);
        let ninf = f64::NEG_INFINITY;
        assert_eq!(out[3].to_f64(), vec![ninf, 1.0, ninf, ninf, ninf, ninf]);
        // Additive mask and softcap 1: scores tanh(k) + mask.
        let m = f32s(&[3], &[0.0, 0.0, -1e9]);
        let a = attrs(&[
            ("scale", Attr::Float(1.0)),
            ("softcap", Attr::Float(1.0)),
            ("qk_matmul_output_mode", Attr::Int(1)),
        ]);
        let out = run("Attention", &[Some(q), Some(k), Some(v), Some(m)], a, 4).expect("attention");
        let t1 = 1f64.tanh();
        let w = [1.0 / (1.0 + t1.exp()), t1.exp() / (1.0 + t1.exp())];
        assert_close(&out[0], &[w[0] + 2.0 * w[1], w[0] + 2.0 * w[1]], 1e-6);
        assert_close(&out[3], &[0.0, t1, 2f64.tanh(), 0.0, t1, 2f64.tanh()], 1e-6);
    }

    #[test]
    fn nonpad_and_windows() {
        // Four keys, two valid; one query at offset 2 - 1 = 1 (causal: keys 0, 1).
        let q = f32s(&[1, 1, 1, 1], &[0.0]);
        let k = f32s(&[1, 1, 4, 1], &[0.0; 4]);
        let v = f32s(&[1, 1, 4, 1], &[1.0, 3.0, 100.0, 100.0]);
        let a = attrs(&[("is_causal", Attr::Int(1))]);
        let y = run(
            "Attention",
            &[
                Some(q.clone()),
                Some(k.clone()),
                Some(v.clone()),
                None,
                None,
                None,
                Some(i64s(&[1], &[2])),
            ],
            a,
            1,
        )
        .expect("attention");
        assert_close(&y[0], &[2.0], 1e-6);
        // Window of one to the left at position 1 of 4 queries... use q_seq 4, no causal:
        // query i sees keys i-1..=i.
        let q = f32s(&[1, 1, 4, 1], &[0.0; 4]);
        let v = f32s(&[1, 1, 4, 1], &[1.0, 3.0, 5.0, 7.0]);
        let a = attrs(&[
            ("left_window_size", Attr::Int(1)),
            ("right_window_size", Attr::Int(0)),
        ]);
        let y = run("Attention", &[Some(q), Some(k), Some(v)], a, 1).expect("attention");
        assert_close(&y[0], &[1.0, 2.0, 4.0, 6.0], 1e-6);
    }
}
