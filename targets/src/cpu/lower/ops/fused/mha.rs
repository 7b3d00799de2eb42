//! com.microsoft.MultiHeadAttention, lowered to the runtime's `mha` helper.

use kiln_ir::attr::AttrsExt;
use kiln_ir::dim::Dim;
use kiln_ir::graph::NodeId;

use super::{attr, float_elem, int_elem, konst, mask_strides, set_mask, strides, used, Slots};
use crate::cpu::lower::Lowerer;
use crate::error::TargetError;

const SLOTS: usize = 68;

pub fn lower(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let a = lw.graph.node(id).attrs.clone();
    let n = attr(lw, a.int("num_heads"))?.unwrap_or(0);
    if n <= 0 {
        return Err(lw.error("num_heads must be positive"));
    }
    if lw.opt_input(id, 8).is_some() || lw.opt_input(id, 9).is_some() {
        return Err(lw.unsupported("past_sequence_length / cache_indirection"));
    }
    let zero = Dim::from(0i64);
    let nd = Dim::from(n);
    let q = lw.input(id, 0)?;
    let code = float_elem(lw, q.dtype, "query")?;
    let (b, sq) = (q.shape[0].clone(), q.shape[1].clone());
    let mut s = Slots::new(SLOTS);
    let bhsd = |shape: &[Dim]| {
        let st = strides(shape);
        [st[0].clone(), st[1].clone(), st[2].clone()]
    };
    // (kv length, dk, dv, kv bias)
    let (l, dk, dv, kv_bias) = match q.shape.len() {
        5 => {
            // Packed QKV (B, S, N, 3, H).
            let h = q.shape[4].clone();
            let st = strides(&q.shape);
            let v = [st[0].clone(), st[3].mul(&Dim::from(3i64)), st[1].clone()];
            s.view(7, &q, code, &zero, v.clone());
            s.view(12, &q, code, &h, v.clone());
            s.view(17, &q, code, &h.mul(&Dim::from(2i64)), v);
            (sq.clone(), h.clone(), h, true)
        }
        3 => {
            let d = q.shape[2].clone();
            let h = d.floor_div(&nd);
            s.view(7, &q, code, &zero, [sq.mul(&d), h.clone(), d.clone()]);
            let k = lw.input(id, 1)?;
            if k.dtype != q.dtype {
                return Err(lw.unsupported("key of another dtype than query"));
            }
            match k.shape.len() {
                5 => {
                    let st = strides(&k.shape);
                    let v = [st[0].clone(), st[3].mul(&Dim::from(2i64)), st[1].clone()];
                    s.view(12, &k, code, &zero, v.clone());
                    s.view(17, &k, code, &h, v);
                    (k.shape[1].clone(), h.clone(), h, true)
                }
                4 => {
                    let v = lw.input(id, 2)?;
                    s.view(12, &k, code, &zero, bhsd(&k.shape));
                    s.view(17, &v, code, &zero, bhsd(&v.shape));
                    (k.shape[2].clone(), h, v.shape[3].clone(), false)
                }
                3 => {
                    let v = lw.input(id, 2)?;
                    let (kd, vd) = (k.shape[2].clone(), v.shape[2].clone());
                    let hv = vd.floor_div(&nd);
                    s.view(12, &k, code, &zero, [k.shape[1].mul(&kd), h.clone(), kd]);
                    s.view(17, &v, code, &zero, [v.shape[1].mul(&vd), hv.clone(), vd]);
                    (k.shape[1].clone(), h, hv, true)
                }
                _ => return Err(lw.error("key must be 3-D, 4-D or 5-D")),
            }
        }
        _ => return Err(lw.error("query must be 3-D or 5-D")),
    };
    for (i, d) in [&b, &nd, &sq, &l, &dk, &dv].into_iter().enumerate() {
        s.int(i, d.clone());
    }
    let past = match (lw.opt_input(id, 6), lw.opt_input(id, 7)) {
        (Some(pk), Some(pv)) => Some((pk, pv)),
        (None, None) => None,
        _ => return Err(lw.error("past_key and past_value must be given together")),
    };
    let mut total = l.clone();
    if let Some((pk, pv)) = &past {
        if pk.dtype != q.dtype || pv.dtype != q.dtype || pk.shape.len() != 4 {
            return Err(lw.unsupported("a past cache of another dtype or rank"));
        }
        s.int(6, pk.shape[2].clone());
        s.view(22, pk, code, &zero, bhsd(&pk.shape));
        s.view(27, pv, code, &zero, bhsd(&pv.shape));
        total = pk.shape[2].add(&l);
    }
    let out = lw.output(id, 0);
    s.view(
        32,
        &out,
        code,
        &zero,
        [sq.mul(&nd).mul(&dv), dv.clone(), nd.mul(&dv)],
    );
    for (i, slot) in [(1, 37), (2, 42)] {
        if used(lw, id, i) {
            let o = lw.output(id, i);
            s.view(slot, &o, code, &zero, bhsd(&o.shape));
        }
    }
    if let Some(bias) = lw.opt_input(id, 3) {
        let c = float_elem(lw, bias.dtype, "bias")?;
        s.ptr(47, &bias, &zero);
        s.bits(48, c);
    }
    let causal = attr(lw, a.int_or("unidirectional", 0))? != 0;
    s.bits(49, causal as u64 | (kv_bias as u64) << 1);
    let scale = match attr(lw, a.float("scale"))? {
        Some(x) if x != 0.0 => x,
        _ => 1.0 / (konst(lw, &dk, "head size")? as f32).sqrt(),
    };
    s.f32(50, scale);
    s.f32(51, attr(lw, a.float_or("mask_filter_value", -10000.0))?);
    if let Some(m) = lw.opt_input(id, 4) {
        let c = int_elem(lw, m.dtype, "key_padding_mask")?;
        s.ptr(52, &m, &zero);
        s.bits(53, c);
        let kind = match m.shape.len() {
            1..=3 => m.shape.len() as u64,
            _ => return Err(lw.error("key_padding_mask must be (B), (B, T) or (B, S, T)")),
        };
        s.bits(54, kind);
    }
    if let Some(m) = lw.opt_input(id, 5) {
        if m.shape.len() != 4 {
            return Err(lw.error("attention_bias must be 4-D"));
        }
        let c = float_elem(lw, m.dtype, "attention_bias")?;
        let st = mask_strides(&m.shape, false);
        set_mask(&mut s, 55, &m, c, st, m.shape[3].clone());
    }
    if used(lw, id, 3) {
        let o = lw.output(id, 3);
        let c = float_elem(lw, o.dtype, "qk")?;
        s.view(62, &o, c, &zero, bhsd(&o.shape));
        s.int(67, total);
    }
    let helper = lw.helper("mha")?;
    lw.emit(helper, s.0);
    Ok(())
}
