//! com.microsoft.GroupQueryAttention, lowered to the runtime's `gqa` helper (rotary, KV
//! cache append, windowed caches, sinks, softcap, score output).

use kiln_ir::attr::AttrsExt;
use kiln_ir::dim::Dim;
use kiln_ir::graph::NodeId;

use super::{attr, float_elem, int_elem, mask_strides, set_mask, strides, used, Slots};
use crate::cpu::lower::Lowerer;
use crate::error::TargetError;

const SLOTS: usize = 80;

pub fn lower(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let a = lw.graph.node(id).attrs.clone();
    let n = attr(lw, a.int("num_heads"))?.unwrap_or(0);
    let nk = attr(lw, a.int("kv_num_heads"))?.unwrap_or(0);
    if n <= 0 || nk <= 0 || n % nk != 0 {
        return Err(lw.error("num_heads must be a positive multiple of kv_num_heads"));
    }
    for qt in ["k_quant_type", "v_quant_type"] {
        if attr(lw, a.str_or(qt, "NONE"))? != "NONE" {
            return Err(lw.unsupported("quantized KV caches"));
        }
    }
    for i in 12..lw.graph.node(id).inputs().len() {
        if lw.graph.node(id).input(i).is_some() {
            return Err(lw.unsupported(format!("GroupQueryAttention input {i}")));
        }
    }
    let zero = Dim::from(0i64);
    let query = lw.input(id, 0)?;
    if query.shape.len() != 3 {
        return Err(lw.error("query must be 3-D"));
    }
    let qc = float_elem(lw, query.dtype, "query")?;
    let (b, s, d) = (
        query.shape[0].clone(),
        query.shape[1].clone(),
        query.shape[2].clone(),
    );
    let (nd, nkd) = (Dim::from(n), Dim::from(nk));
    let packed = lw.opt_input(id, 1).is_none();
    let mut sl = Slots::new(SLOTS);
    let h = if packed {
        if lw.opt_input(id, 2).is_some() {
            return Err(lw.error("key and value must both be given or both be absent"));
        }
        let h = d.floor_div(&Dim::from(n + 2 * nk));
        let st = [s.mul(&d), h.clone(), d.clone()];
        sl.view(7, &query, qc, &zero, st.clone());
        sl.view(12, &query, qc, &nd.mul(&h), st.clone());
        sl.view(17, &query, qc, &nd.add(&nkd).mul(&h), st);
        h
    } else {
        let key = lw.input(id, 1)?;
        let value = lw.input(id, 2)?;
        if key.dtype != query.dtype || value.dtype != query.dtype {
            return Err(lw.unsupported("key / value of another dtype than query"));
        }
        let h = d.floor_div(&nd);
        sl.view(7, &query, qc, &zero, [s.mul(&d), h.clone(), d.clone()]);
        for (slot, op) in [(12, &key), (17, &value)] {
            let kd = op.shape[2].clone();
            sl.view(slot, op, qc, &zero, [s.mul(&kd), h.clone(), kd]);
        }
        h
    };
    for (i, x) in [&b, &nd, &nkd, &s, &h].into_iter().enumerate() {
        sl.int(i, x.clone());
    }
    let bhsd = |shape: &[Dim]| {
        let st = strides(shape);
        [st[0].clone(), st[1].clone(), st[2].clone()]
    };
    let past = match (lw.opt_input(id, 3), lw.opt_input(id, 4)) {
        (Some(pk), Some(pv)) => Some((pk, pv)),
        (None, None) => None,
        _ => return Err(lw.error("past_key and past_value must be given together")),
    };
    let mut cache_code = qc;
    if let Some((pk, pv)) = &past {
        if pk.shape.len() != 4 || pv.shape.len() != 4 {
            return Err(lw.error("past_key and past_value must be 4-D"));
        }
        cache_code = float_elem(lw, pk.dtype, "past_key")?;
        sl.int(5, pk.shape[2].clone());
        sl.view(22, pk, cache_code, &zero, bhsd(&pk.shape));
        sl.view(27, pv, cache_code, &zero, bhsd(&pv.shape));
    }
    let out = lw.output(id, 0);
    sl.view(
        32,
        &out,
        qc,
        &zero,
        [s.mul(&nd).mul(&h), h.clone(), nd.mul(&h)],
    );
    let present_ty = lw.graph.node(id).outputs.get(1).cloned();
    match &present_ty {
        Some(t) => sl.int(6, t.shape[2].clone()),
        None => sl.bits(6, i64::MAX as u64),
    }
    for (i, slot) in [(1, 37), (2, 42)] {
        if used(lw, id, i) {
            let o = lw.output(id, i);
            let c = float_elem(lw, o.dtype, "present")?;
            if c != cache_code {
                return Err(lw.unsupported("a present cache of another dtype than past"));
            }
            sl.view(slot, &o, c, &zero, bhsd(&o.shape));
        }
    }
    let seqlens = lw.input(id, 5)?;
    let c = int_elem(lw, seqlens.dtype, "seqlens_k")?;
    sl.ptr(47, &seqlens, &zero);
    sl.bits(48, c);
    let total = lw.input(id, 6)?;
    let c = int_elem(lw, total.dtype, "total_sequence_length")?;
    sl.ptr(49, &total, &zero);
    sl.bits(50, c);
    sl.f32(51, attr(lw, a.float_or("scale", 0.0))?);
    sl.f32(52, attr(lw, a.float_or("softcap", 0.0))?);
    let causal = attr(lw, a.int_or("causal", 1))? != 0;
    let rotary = attr(lw, a.int_or("do_rotary", 0))? == 1;
    let interleaved = attr(lw, a.int_or("rotary_interleaved", 0))? == 1;
    let smooth = attr(lw, a.int_or("smooth_softmax", 0))? == 1;
    let windowed = attr(lw, a.int_or("sliding_window_cache", 0))? == 1;
    let window = attr(lw, a.int_or("local_window_size", -1))?;
    if !causal && window != -1 {
        return Err(lw.error("local_window_size must be -1 when causal is 0"));
    }
    if windowed && (window <= 0 || past.is_none()) {
        return Err(lw.error(
            "sliding_window_cache = 1 needs local_window_size > 0 and past_key / past_value",
        ));
    }
    let flags = causal as u64
        | (rotary as u64) << 1
        | (interleaved as u64) << 2
        | (smooth as u64) << 3
        | (windowed as u64) << 4;
    sl.bits(53, flags);
    sl.bits(54, window as u64);
    if rotary {
        let cos = lw.input(id, 7)?;
        let sin = lw.input(id, 8)?;
        if cos.shape.len() != 2 || sin.shape != cos.shape {
            return Err(lw.error("cos_cache and sin_cache must be 2-D of one shape"));
        }
        let cc = float_elem(lw, cos.dtype, "cos_cache")?;
        let sc = float_elem(lw, sin.dtype, "sin_cache")?;
        sl.ptr(55, &cos, &zero);
        sl.bits(56, cc);
        sl.ptr(57, &sin, &zero);
        sl.bits(58, sc);
        sl.int(59, cos.shape[0].clone());
        sl.int(60, cos.shape[1].clone());
        if let Some(ids) = lw.opt_input(id, 9) {
            let c = int_elem(lw, ids.dtype, "position_ids")?;
            sl.ptr(61, &ids, &zero);
            sl.bits(62, c);
        }
    }
    if let Some(m) = lw.opt_input(id, 10) {
        if m.shape.len() != 4 {
            return Err(lw.error("attention_bias must be 4-D"));
        }
        let c = float_elem(lw, m.dtype, "attention_bias")?;
        let st = mask_strides(&m.shape, false);
        set_mask(&mut sl, 63, &m, c, st, m.shape[3].clone());
    }
    if let Some(sk) = lw.opt_input(id, 11) {
        let c = float_elem(lw, sk.dtype, "head_sink")?;
        sl.ptr(70, &sk, &zero);
        sl.bits(71, c);
    }
    let qk_mode = attr(lw, a.int_or("qk_output", 0))?;
    if used(lw, id, 3) && qk_mode != 0 {
        if windowed {
            return Err(lw.unsupported("qk_output with sliding_window_cache"));
        }
        let o = lw.output(id, 3);
        let c = float_elem(lw, o.dtype, "output_qk")?;
        sl.view(72, &o, c, &zero, bhsd(&o.shape));
        sl.int(77, o.shape[3].clone());
        sl.bits(78, qk_mode as u64);
    } else if used(lw, id, 3) {
        return Err(lw.unsupported("output_qk without qk_output"));
    }
    let helper = lw.helper("gqa")?;
    lw.emit(helper, sl.0);
    Ok(())
}
