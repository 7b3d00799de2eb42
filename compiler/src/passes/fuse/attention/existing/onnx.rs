//! ONNX `Attention` (opsets 23-25) -> `attention`, form `onnx-Attention`.
//!
//! - 3-D Q, K, V `[B, S, heads * D]` are split into heads (`q_num_heads`, `kv_num_heads`) and
//!   the output merged back; 4-D ones are `attention`'s layout already.
//! - `is_causal` -> `causal` (query `i` at position `past + i`, as both define it);
//!   `left_window_size` `w` -> `window = w + 1`; a right window is implied by `causal`, and
//!   without it becomes a bool mask `j <= i + past + right`.
//! - `attn_mask` (bool or float) passes through; one shorter than the keys on its last axis
//!   is padded with `false` / `-inf` (ONNX masks the missing keys).
//! - `nonpad_kv_seqlen` (an external cache, per-batch lengths): each entry's causal frontier
//!   and windows are offset by `nonpad[b] - S`, which `causal` cannot say; the whole pattern
//!   becomes a bool mask `[B, 1, S, T]` built from Range and comparisons.
//! - `past_key` / `past_value` and the present outputs are `attention`'s own.
//!
//! Left as it is when `qk_matmul_output` is read (no `attention` output holds the scores, in
//! any `qk_matmul_output_mode`), when dtypes differ, or when the mask's shape cannot be shown
//! to fit.

use kiln_ir::attr::AttrsExt;
use kiln_ir::types::broadcast_shapes;
use kiln_ir::{DType, Dim, Graph, NodeId, Tensor, Value};

use super::common::{
    arange, bin, from_heads, read_outputs, restrict, to_heads, unsqueeze, used, Sdpa,
};
use crate::error::CompileError;
use crate::passes::fuse::pattern::{out, out0, Builder};
use crate::passes::fuse::Match;

struct Plan {
    rank: usize,
    nq: i64,
    nkv: i64,
    past: Option<(Value, Value)>,
    mask: Option<Value>,
    /// Keys the mask lacks on its last axis.
    mask_pad: i64,
    nonpad: Option<Value>,
    scale: Option<f32>,
    softcap: f32,
    causal: bool,
    left: i64,
    right: i64,
}

pub fn find(g: &Graph, root: NodeId) -> Option<Match> {
    let n = g.node(root);
    if used(g, root, 3) {
        return None;
    }
    let (q, k, v) = (n.input(0)?, n.input(1)?, n.input(2)?);
    let (qt, kt, vt) = (g.value_type(q), g.value_type(k), g.value_type(v));
    let rank = qt.rank();
    if !(rank == 3 || rank == 4) || kt.rank() != rank || vt.rank() != rank {
        return None;
    }
    if !qt.dtype.is_float() || kt.dtype != qt.dtype || vt.dtype != qt.dtype {
        return None;
    }
    let a = &n.attrs;
    let (nq, nkv) = if rank == 3 {
        let nq = a.int("q_num_heads").ok()??;
        let nkv = a.int("kv_num_heads").ok()??;
        if nq <= 0 || nkv <= 0 || nq % nkv != 0 {
            return None;
        }
        (nq, nkv)
    } else {
        (0, 0)
    };
    let past = match (n.input(4), n.input(5)) {
        (Some(pk), Some(pv)) => {
            let (pkt, pvt) = (g.value_type(pk), g.value_type(pv));
            if pkt.rank() != 4 || pvt.rank() != 4 || pkt.dtype != qt.dtype || pvt.dtype != qt.dtype
            {
                return None;
            }
            Some((pk, pv))
        }
        (None, None) => None,
        _ => return None,
    };
    let nonpad = n.input(6);
    if nonpad.is_some() && past.is_some() {
        return None;
    }
    if let Some(np) = nonpad {
        if !g.value_type(np).dtype.is_int() || g.value_type(np).rank() != 1 {
            return None;
        }
    }
    let softcap = a.float_or("softcap", 0.0).ok()?;
    let (left, right) = (
        a.int_or("left_window_size", -1).ok()?,
        a.int_or("right_window_size", -1).ok()?,
    );
    if softcap.is_nan() || softcap < 0.0 || left < -1 || right < -1 {
        return None;
    }
    // The shape attention sees: [B, Hq, S, T].
    let b = qt.shape[0].clone();
    let s = qt.shape[if rank == 3 { 1 } else { 2 }].clone();
    let hq = if rank == 3 {
        Dim::from(nq)
    } else {
        qt.shape[1].clone()
    };
    let kv_seq = if rank == 3 {
        kt.shape[1].clone()
    } else {
        kt.shape[2].clone()
    };
    let t = match past {
        Some((pk, _)) => g.value_type(pk).shape[2].add(&kv_seq),
        None => kv_seq,
    };
    let mask = n.input(3);
    let mut mask_pad = 0;
    if let Some(m) = mask {
        let mt = g.value_type(m);
        if !(mt.dtype.is_float() || mt.dtype == DType::Bool) || mt.rank() == 0 || mt.rank() > 4 {
            return None;
        }
        let last = mt.shape[mt.rank() - 1].clone();
        if last != t {
            match (last.as_const(), t.as_const()) {
                (Some(l), Some(tt)) if l < tt => mask_pad = tt - l,
                _ => return None,
            }
        }
        let mut padded = mt.shape.clone();
        *padded.last_mut()? = t.clone();
        let full = [b.clone(), hq, s, t];
        if broadcast_shapes(&[&full, &padded]).as_deref() != Some(&full[..]) {
            return None;
        }
    }
    let plan = Plan {
        rank,
        nq,
        nkv,
        past,
        mask,
        mask_pad,
        nonpad,
        scale: a.float("scale").ok()?,
        softcap,
        causal: a.int_or("is_causal", 0).ok()? != 0,
        left,
        right,
    };
    let presents = read_outputs(g, root, &[1, 2]);
    let origin = n.origin.clone();
    Some(Match {
        form: "onnx-Attention",
        nodes: vec![root],
        rewrite: Box::new(move |g: &mut Graph| {
            let mut bld = Builder::new(g, &origin);
            let outs = rewrite(&mut bld, &plan, q, k, v, !presents.is_empty())?;
            let presents = presents.into_iter().map(|o| (out(root, o), outs[o]));
            Ok(std::iter::once((out0(root), outs[0]))
                .chain(presents)
                .collect())
        }),
    })
}

fn rewrite(
    b: &mut Builder,
    p: &Plan,
    q: Value,
    k: Value,
    v: Value,
    presents: bool,
) -> Result<Vec<Value>, CompileError> {
    let (q, k, v) = if p.rank == 3 {
        (
            to_heads(b, q, p.nq)?,
            to_heads(b, k, p.nkv)?,
            to_heads(b, v, p.nkv)?,
        )
    } else {
        (q, k, v)
    };
    let mut mask = match p.mask {
        Some(m) if p.mask_pad > 0 => {
            let mt = b.g.value_type(m).clone();
            let r = mt.rank();
            let mut pads = vec![0i64; 2 * r];
            pads[2 * r - 1] = p.mask_pad;
            let pads = b.ints(&pads)?;
            let fill = if mt.dtype == DType::Bool {
                b.constant(
                    Tensor::from_bools(vec![], vec![false])
                        .map_err(|e| CompileError::Pass(e.to_string()))?,
                )?
            } else {
                b.scalar(mt.dtype, f64::NEG_INFINITY)?
            };
            Some(b.op("Pad", &[m, pads, fill], &[])?)
        }
        m => m,
    };
    let mut sdpa = Sdpa::new(q, k, v);
    if let Some(np) = p.nonpad {
        // Per-batch offsets: everything positional goes into the mask.
        let s = b.size(q, 2)?;
        let t = b.size(k, 2)?;
        let i = arange(b, s)?;
        let i = unsqueeze(b, i, &[1])?; // [S, 1]
        let j = arange(b, t)?;
        let j = unsqueeze(b, j, &[0])?; // [1, T]
        let np = b.op("Cast", &[np], &[("to", kiln_ir::Attr::DType(DType::I64))])?;
        let np = unsqueeze(b, np, &[1, 2])?; // [B, 1, 1]
        let off = bin(b, "Sub", np, s)?;
        let pos = bin(b, "Add", i, off)?; // [B, S, 1]
        let mut allowed = bin(b, "Less", j, np)?; // [B, 1, T]
        if p.causal {
            let c = bin(b, "LessOrEqual", j, pos)?;
            allowed = bin(b, "And", allowed, c)?;
        }
        if p.left >= 0 {
            let l = super::common::int(b, p.left)?;
            let lo = bin(b, "Sub", pos, l)?;
            let c = bin(b, "GreaterOrEqual", j, lo)?;
            allowed = bin(b, "And", allowed, c)?;
        }
        if p.right >= 0 {
            let r = super::common::int(b, p.right)?;
            let hi = bin(b, "Add", pos, r)?;
            let c = bin(b, "LessOrEqual", j, hi)?;
            allowed = bin(b, "And", allowed, c)?;
        }
        let allowed = unsqueeze(b, allowed, &[1])?;
        mask = Some(restrict(b, mask, allowed)?);
    } else {
        sdpa.causal = p.causal;
        sdpa.window = if p.left >= 0 { p.left + 1 } else { 0 };
        if p.right >= 0 && !p.causal {
            // j <= i + past + right, a [S, T] bool mask.
            let s = b.size(q, 2)?;
            let i = arange(b, s)?;
            let i = unsqueeze(b, i, &[1])?;
            let kv = b.size(k, 2)?;
            let t = match p.past {
                Some((pk, _)) => {
                    let pl = b.size(pk, 2)?;
                    bin(b, "Add", pl, kv)?
                }
                None => kv,
            };
            let j = arange(b, t)?;
            let j = unsqueeze(b, j, &[0])?;
            let mut hi = i;
            if let Some((pk, _)) = p.past {
                let pl = b.size(pk, 2)?;
                hi = bin(b, "Add", hi, pl)?;
            }
            let r = super::common::int(b, p.right)?;
            let hi = bin(b, "Add", hi, r)?;
            let allowed = bin(b, "LessOrEqual", j, hi)?;
            mask = Some(restrict(b, mask, allowed)?);
        }
    }
    sdpa.mask = mask;
    sdpa.past = p.past;
    sdpa.scale = p.scale;
    sdpa.softcap = p.softcap;
    let mut outs = sdpa.build(b, presents)?;
    if p.rank == 3 {
        outs[0] = from_heads(b, outs[0])?;
    }
    Ok(outs)
}
