//! kiln's `moe` and com.microsoft.MoE, lowered to the runtime's `moe` helper. Constant
//! expert weights are stored prepacked (each expert's `Wᵀ` in GEMM panels); weights computed
//! at run time must be f32 and are packed per call.

use kiln_ir::attr::{Attrs, AttrsExt};
use kiln_ir::dim::Dim;
use kiln_ir::dtype::DType;
use kiln_ir::graph::NodeId;

use super::{attr, float_elem, int_elem, konst, Slots};
use crate::cpu::lower::Lowerer;
use crate::error::TargetError;

/// The `moe` helper's slot count.
const SLOTS: usize = 52;

/// Sets weight `input` of `id`, an `(experts, out, in)` matrix stack, at `slot` (address,
/// layout): prepacked when constant, else read as dense f32.
fn weight(
    lw: &mut Lowerer,
    id: NodeId,
    input: usize,
    s: &mut Slots,
    slot: usize,
    shape: [usize; 3],
) -> Result<(), TargetError> {
    let [e, out, inp] = shape;
    if let Some(t) = lw.const_input(id, input) {
        if t.shape().iter().product::<usize>() != e * out * inp {
            return Err(lw.error(format!(
                "input {input} has shape {:?}, expected {e} x {out} x {inp}",
                t.shape()
            )));
        }
        let w: Vec<f32> = t.to_f64().into_iter().map(|v| v as f32).collect();
        let packed = kiln_runtime::cpu::moe::prepack(&w, e, out, inp);
        let bytes: Vec<u8> = packed.iter().flat_map(|v| v.to_le_bytes()).collect();
        let name = format!("{} input {input} packed", lw.graph.node(id).label());
        let op = lw.weight(
            &name,
            DType::F32,
            vec![Dim::from(packed.len())],
            bytes,
            "packed_b",
        );
        s.ptr(slot, &op, &Dim::from(0i64));
        s.bits(slot + 1, 0);
    } else {
        let op = lw.input(id, input)?;
        if op.dtype != DType::F32 {
            return Err(
                lw.unsupported(format!("non-constant expert weights of dtype {}", op.dtype))
            );
        }
        s.ptr(slot, &op, &Dim::from(0i64));
        s.bits(slot + 1, 1);
    }
    Ok(())
}

/// A float vector/matrix input at `slot` (address, element code).
fn float_ptr(
    lw: &mut Lowerer,
    id: NodeId,
    input: usize,
    s: &mut Slots,
    slot: usize,
    len: usize,
) -> Result<bool, TargetError> {
    let Some(op) = lw.opt_input(id, input) else {
        return Ok(false);
    };
    let c = float_elem(lw, op.dtype, "a bias")?;
    if op.numel().as_const() != Some(len as i64) {
        return Err(lw.error(format!("input {input} must hold {len} values")));
    }
    s.ptr(slot, &op, &Dim::from(0i64));
    s.bits(slot + 1, c);
    Ok(true)
}

/// The constant dims of input `i`.
fn shape_of(lw: &mut Lowerer, id: NodeId, i: usize) -> Result<Vec<usize>, TargetError> {
    let v = lw
        .graph
        .node(id)
        .input(i)
        .ok_or_else(|| lw.error(format!("input {i} is missing")))?;
    let shape = lw.graph.value_type(v).shape.clone();
    shape
        .iter()
        .map(|d| konst(lw, d, "weight dim"))
        .collect::<Result<Vec<_>, _>>()
}

/// x, router logits, output; returns (tokens, hidden, experts).
fn io(lw: &mut Lowerer, id: NodeId, s: &mut Slots) -> Result<(Dim, usize, usize), TargetError> {
    let x = lw.input(id, 0)?;
    let r = lw.input(id, 1)?;
    let xc = float_elem(lw, x.dtype, "x")?;
    let rc = float_elem(lw, r.dtype, "router logits")?;
    let hd = konst(lw, &x.shape[x.shape.len() - 1], "hidden size")?;
    let e = konst(lw, &r.shape[r.shape.len() - 1], "expert count")?;
    let tokens = x.numel().floor_div(&Dim::from(hd.max(1)));
    s.int(0, tokens.clone());
    s.int(1, hd);
    s.int(2, e);
    s.ptr(5, &x, &Dim::from(0i64));
    s.bits(6, xc);
    s.ptr(7, &r, &Dim::from(0i64));
    s.bits(8, rc);
    let out = lw.output(id, 0);
    s.ptr(9, &out, &Dim::from(0i64));
    s.bits(10, xc);
    Ok((tokens, hd, e))
}

/// Swiglu parameters at slots 47..50.
fn swiglu(lw: &Lowerer, a: &Attrs, s: &mut Slots) -> Result<(), TargetError> {
    s.f32(47, attr(lw, a.float_or("activation_alpha", 1.0))?);
    s.f32(48, attr(lw, a.float_or("activation_beta", 0.0))?);
    if let Some(l) = attr(lw, a.float("swiglu_limit"))? {
        s.f32(49, l);
        s.bits(50, 1);
    }
    Ok(())
}

/// kiln's `moe`.
pub fn lower_fused(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let a = lw.graph.node(id).attrs.clone();
    let mut s = Slots::new(SLOTS);
    let (_, hd, e) = io(lw, id, &mut s)?;
    let k = attr(lw, a.int_or("k", 1))?;
    let fusion = attr(lw, a.int_or("swiglu_fusion", 0))?;
    let w1s = shape_of(lw, id, 2)?;
    if w1s.len() != 3 || w1s[0] != e || w1s[2] != hd {
        return Err(lw.error("w1 must be [E, I, H]"));
    }
    let rows1 = w1s[1];
    let inter = if fusion == 0 { rows1 } else { rows1 / 2 };
    let has_w3 = lw.graph.node(id).input(6).is_some();
    let up = match (fusion, has_w3) {
        (1, false) => 2,
        (2, false) => 3,
        (0, true) => 1,
        (0, false) => 0,
        _ => return Err(lw.error("swiglu_fusion must be 0, 1 or 2, and w3 absent when fused")),
    };
    let act = match attr(lw, a.str_or("activation_type", "swiglu"))? {
        "swiglu" => 0,
        "silu" => 1,
        "gelu" => 2,
        "relu" => 4,
        "identity" => 5,
        other => return Err(lw.unsupported(format!("activation_type {other:?}"))),
    };
    if act == 0 && up == 0 {
        return Err(lw.error("swiglu needs an up projection (w3 or swiglu_fusion 1/2)"));
    }
    s.int(3, inter);
    s.int(4, k.max(1));
    weight(lw, id, 2, &mut s, 11, [e, rows1, hd])?;
    float_ptr(lw, id, 3, &mut s, 13, e * rows1)?;
    weight(lw, id, 4, &mut s, 15, [e, hd, inter])?;
    float_ptr(lw, id, 5, &mut s, 17, e * hd)?;
    if has_w3 {
        weight(lw, id, 6, &mut s, 19, [e, inter, hd])?;
        float_ptr(lw, id, 7, &mut s, 21, e * inter)?;
    }
    float_ptr(lw, id, 8, &mut s, 23, e)?;
    match (lw.opt_input(id, 9), lw.opt_input(id, 10)) {
        (None, None) => {}
        (Some(tab), Some(ids)) => {
            if tab.shape.len() != 2 {
                return Err(lw.error("hash_table must be [V, k]"));
            }
            let tc = int_elem(lw, tab.dtype, "hash_table")?;
            let ic = int_elem(lw, ids.dtype, "token_ids")?;
            s.ptr(25, &tab, &Dim::from(0i64));
            s.bits(26, tc);
            s.int(27, tab.shape[0].clone());
            s.int(28, tab.shape[1].clone());
            s.ptr(29, &ids, &Dim::from(0i64));
            s.bits(30, ic);
        }
        _ => return Err(lw.error("hash_table and token_ids must both be given or both be absent")),
    }
    if lw.graph.node(id).input(9).is_none() && (k < 1 || k as usize > e) {
        return Err(lw.error(format!("k = {k} must be in 1..={e}")));
    }
    if lw.graph.node(id).input(11).is_some() {
        let sw1 = shape_of(lw, id, 11)?;
        if sw1.len() != 2 || sw1[1] != hd {
            return Err(lw.error("shared_w1 must be [Is, H]"));
        }
        let is = sw1[0];
        weight(lw, id, 11, &mut s, 31, [1, is, hd])?;
        weight(lw, id, 12, &mut s, 33, [1, hd, is])?;
        if lw.graph.node(id).input(13).is_some() {
            weight(lw, id, 13, &mut s, 35, [1, is, hd])?;
        } else if act == 0 {
            return Err(lw.error("swiglu shared experts need shared_w3"));
        }
        s.int(37, is);
        float_ptr(lw, id, 14, &mut s, 38, hd)?;
    }
    let score = match attr(lw, a.str_or("scoring_func", "softmax"))? {
        "softmax" => 0,
        "sigmoid" => 1,
        "sqrt_softplus" => 2,
        other => return Err(lw.error(format!("scoring_func {other:?}"))),
    };
    s.bits(40, score);
    let (ng, tg) = (
        attr(lw, a.int_or("n_group", 1))?,
        attr(lw, a.int_or("topk_group", 1))?,
    );
    if ng < 1 || tg < 1 || tg > ng || e % ng as usize != 0 {
        return Err(lw.error("need 1 <= topk_group <= n_group dividing the experts"));
    }
    s.int(41, ng);
    s.int(42, tg);
    s.bits(
        43,
        (attr(lw, a.int_or("normalize_routing_weights", 0))? != 0) as u64,
    );
    s.f32(44, attr(lw, a.float_or("routed_scaling_factor", 1.0))?);
    s.bits(45, act);
    s.bits(46, up);
    swiglu(lw, &a, &mut s)?;
    s.bits(51, 0);
    let h = lw.helper("moe")?;
    lw.emit(h, s.0);
    Ok(())
}

/// com.microsoft.MoE (ONNX Runtime 1.31's CPU semantics).
pub fn lower_ms(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let a = lw.graph.node(id).attrs.clone();
    let mut s = Slots::new(SLOTS);
    let (_, hd, e) = io(lw, id, &mut s)?;
    let k = attr(lw, a.int_or("k", 1))?;
    if k < 1 || k as usize > e {
        return Err(lw.error(format!("k = {k} must be in 1..={e}")));
    }
    if attr(lw, a.int_or("use_sparse_mixer", 0))? != 0 && k != 2 {
        return Err(lw.error("use_sparse_mixer needs k = 2"));
    }
    let act = match attr(lw, a.str_or("activation_type", "relu"))? {
        "swiglu" => 0,
        "silu" => 1,
        "gelu" => 3,
        "relu" => 4,
        "identity" => 5,
        other => return Err(lw.unsupported(format!("activation_type {other:?}"))),
    };
    let fusion = attr(lw, a.int_or("swiglu_fusion", 0))?;
    if !(0..=2).contains(&fusion) {
        return Err(lw.error("swiglu_fusion must be 0, 1 or 2"));
    }
    let w2s = shape_of(lw, id, 4)?;
    if w2s.len() != 3 || w2s[0] != e || w2s[1] != hd {
        return Err(lw.error("fc2_experts_weights must be (E, H, I)"));
    }
    let inter = w2s[2];
    let fused = act == 0 && fusion != 0;
    let rows1 = if fused { 2 * inter } else { inter };
    let has_w3 = lw.graph.node(id).input(6).is_some();
    let up = match (act, fusion, has_w3) {
        (0, 1, _) => 2,
        (0, 2, _) => 3,
        (_, _, true) => 1,
        (0, _, false) => {
            return Err(lw.error("swiglu with swiglu_fusion = 0 needs fc3_experts_weights"))
        }
        _ => 0,
    };
    if up == 1 && fused {
        return Err(lw.error("fc3 with a fused swiglu"));
    }
    s.int(3, inter);
    s.int(4, k);
    weight(lw, id, 2, &mut s, 11, [e, rows1, hd])?;
    float_ptr(lw, id, 3, &mut s, 13, e * rows1)?;
    weight(lw, id, 4, &mut s, 15, [e, hd, inter])?;
    float_ptr(lw, id, 5, &mut s, 17, e * hd)?;
    if up == 1 {
        weight(lw, id, 6, &mut s, 19, [e, inter, hd])?;
        float_ptr(lw, id, 7, &mut s, 21, e * inter)?;
    } else if lw.graph.node(id).input(7).is_some() {
        return Err(lw.error("fc3_experts_bias needs fc3_experts_weights"));
    }
    s.bits(40, 0);
    s.int(41, 1i64);
    s.int(42, 1i64);
    let normalize = attr(lw, a.int_or("normalize_routing_weights", 0))? != 0;
    s.bits(43, if normalize { 2 } else { 0 });
    s.f32(44, 1.0);
    s.bits(45, act);
    s.bits(46, up);
    swiglu(lw, &a, &mut s)?;
    s.bits(51, 3);
    let h = lw.helper("moe")?;
    lw.emit(h, s.0);
    Ok(())
}
