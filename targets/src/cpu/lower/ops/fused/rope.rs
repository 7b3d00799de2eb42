//! Rotary embeddings: kiln's `rope`, ONNX `RotaryEmbedding` (opset 23) and
//! com.microsoft.RotaryEmbedding, lowered to the runtime's `rotary` helper.

use kiln_ir::attr::AttrsExt;
use kiln_ir::dim::Dim;
use kiln_ir::graph::NodeId;

use super::{attr, float_elem, int_elem, konst, strides, Slots};
use crate::cpu::lower::{Lowerer, Operand};
use crate::error::TargetError;

const SLOTS: usize = 26;

fn zero() -> Dim {
    Dim::from(0i64)
}

/// Fills the slots shared by every rotary lowering and emits the call.
#[allow(clippy::too_many_arguments)]
fn emit(
    lw: &mut Lowerer,
    id: NodeId,
    mut s: Slots,
    x: &Operand,
    dims: [Dim; 4],
    view: [Dim; 3],
    half: Dim,
    interleaved: bool,
    cos: &Operand,
    sin: &Operand,
    rows: Dim,
) -> Result<(), TargetError> {
    let code = float_elem(lw, x.dtype, "X")?;
    let [b, h, sq, d] = dims;
    s.int(0, b);
    s.int(1, h);
    s.int(2, sq);
    s.int(3, d);
    s.int(4, half);
    s.bits(5, interleaved as u64);
    s.view(6, x, code, &zero(), view.clone());
    let out = lw.output(id, 0);
    s.view(11, &out, code, &zero(), view);
    let cc = float_elem(lw, cos.dtype, "cos")?;
    let sc = float_elem(lw, sin.dtype, "sin")?;
    s.ptr(16, cos, &zero());
    s.bits(17, cc);
    s.ptr(18, sin, &zero());
    s.bits(19, sc);
    s.int(20, rows);
    let helper = lw.helper("rotary")?;
    lw.emit(helper, s.0);
    Ok(())
}

/// kiln's `rope(x, cos, sin) {interleaved, rotary_dim?}`: cos/sin `[..., S, R/2]` broadcast
/// over x's leading axes.
pub fn lower_fused(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let a = lw.graph.node(id).attrs.clone();
    let x = lw.input(id, 0)?;
    let cos = lw.input(id, 1)?;
    let sin = lw.input(id, 2)?;
    let r = x.shape.len();
    if r < 2 || cos.shape.len() < 2 || cos.shape != sin.shape || cos.shape.len() > r {
        return Err(lw.error("rope needs x of rank >= 2 and cos, sin of one shape"));
    }
    let interleaved = attr(lw, a.int_or("interleaved", 0))? != 0;
    let d = x.shape[r - 1].clone();
    let half = cos.shape[cos.shape.len() - 1].clone();
    let lead = &x.shape[..r - 1];
    let mut clead = vec![Dim::from(1i64); r - cos.shape.len()];
    clead.extend_from_slice(&cos.shape[..cos.shape.len() - 1]);
    // Row strides of x and of the tables over the leading axes (0 where cos broadcasts).
    let xs = strides(lead);
    let cs_full = strides(&clead);
    let mut axes: Vec<(Dim, Dim, Dim)> = Vec::new();
    for i in 0..lead.len() {
        let bcast = clead[i].as_const() == Some(1) && lead[i].as_const() != Some(1);
        let c = if bcast { zero() } else { cs_full[i].clone() };
        axes.push((lead[i].clone(), xs[i].clone(), c));
    }
    let (sq, sx, sc) = axes.pop().expect("rank >= 2");
    // Merge the outer axes into at most two (batch, head).
    let mut outer: Vec<(Dim, Dim, Dim)> = Vec::new();
    for (n, x_st, c_st) in axes {
        if n.as_const() == Some(1) {
            continue;
        }
        if let Some(last) = outer.last_mut() {
            if last.1 == n.mul(&x_st) && last.2 == n.mul(&c_st) {
                *last = (last.0.mul(&n), x_st, c_st);
                continue;
            }
        }
        outer.push((n, x_st, c_st));
    }
    if outer.len() > 2 {
        return Err(lw.unsupported("rope tables broadcast over more than two axis groups"));
    }
    while outer.len() < 2 {
        outer.insert(0, (Dim::from(1i64), zero(), zero()));
    }
    let mut s = Slots::new(SLOTS);
    s.bits(21, 0);
    s.int(22, outer[0].2.clone());
    s.int(23, outer[1].2.clone());
    s.int(24, sc);
    let rows = clead.iter().fold(Dim::from(1i64), |a, d| a.mul(d));
    let view = [outer[0].1.mul(&d), outer[1].1.mul(&d), sx.mul(&d)];
    let dims = [outer[0].0.clone(), outer[1].0.clone(), sq, d];
    emit(
        lw,
        id,
        s,
        &x,
        dims,
        view,
        half,
        interleaved,
        &cos,
        &sin,
        rows,
    )
}

/// ONNX `RotaryEmbedding(X, cos_cache, sin_cache, position_ids?)`.
pub fn lower_onnx(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let a = lw.graph.node(id).attrs.clone();
    let x = lw.input(id, 0)?;
    let cos = lw.input(id, 1)?;
    let sin = lw.input(id, 2)?;
    let interleaved = attr(lw, a.int_or("interleaved", 0))? != 0;
    let (dims, view) = match x.shape.len() {
        4 => {
            let st = strides(&x.shape);
            (
                [
                    x.shape[0].clone(),
                    x.shape[1].clone(),
                    x.shape[2].clone(),
                    x.shape[3].clone(),
                ],
                [st[0].clone(), st[1].clone(), st[2].clone()],
            )
        }
        3 => {
            let n = attr(lw, a.int_or("num_heads", 0))?;
            if n <= 0 {
                return Err(lw.error("a 3-D input needs the num_heads attribute"));
            }
            let dd = x.shape[2].clone();
            let h = dd.floor_div(&Dim::from(n));
            (
                [
                    x.shape[0].clone(),
                    Dim::from(n),
                    x.shape[1].clone(),
                    h.clone(),
                ],
                [x.shape[1].mul(&dd), h, dd],
            )
        }
        _ => return Err(lw.error("X must be 3-D or 4-D")),
    };
    let rd = attr(lw, a.int_or("rotary_embedding_dim", 0))?;
    let half = if rd > 0 {
        Dim::from(rd / 2)
    } else {
        dims[3].floor_div(&Dim::from(2i64))
    };
    let chalf = &cos.shape[cos.shape.len() - 1];
    if let (Some(c), Some(hh)) = (chalf.as_const(), half.as_const()) {
        if c != hh {
            return Err(lw.error("cos_cache's last dim must be rotary_embedding_dim / 2"));
        }
    }
    let mut s = Slots::new(SLOTS);
    let rows = match lw.opt_input(id, 3) {
        Some(ids) => {
            if cos.shape.len() != 2 {
                return Err(lw.error("with position_ids the caches must be 2-D"));
            }
            let c = int_elem(lw, ids.dtype, "position_ids")?;
            s.bits(21, 1);
            s.ptr(22, &ids, &zero());
            s.bits(23, c);
            s.int(24, dims[2].clone());
            s.int(25, 1i64);
            cos.shape[0].clone()
        }
        None => {
            if cos.shape.len() != 3 {
                return Err(lw.error("without position_ids the caches must be 3-D"));
            }
            s.bits(21, 0);
            let per_batch = cos.shape[0].as_const() != Some(1);
            s.int(
                22,
                if per_batch {
                    cos.shape[1].clone()
                } else {
                    zero()
                },
            );
            s.int(23, 0i64);
            s.int(24, 1i64);
            cos.shape[0].mul(&cos.shape[1])
        }
    };
    emit(
        lw,
        id,
        s,
        &x,
        dims,
        view,
        half,
        interleaved,
        &cos,
        &sin,
        rows,
    )
}

/// com.microsoft.RotaryEmbedding(input, position_ids, cos_cache, sin_cache).
pub fn lower_ms(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let a = lw.graph.node(id).attrs.clone();
    if attr(lw, a.int_or("is_packed_batching", 0))? != 0 {
        return Err(lw.unsupported("is_packed_batching"));
    }
    let x = lw.input(id, 0)?;
    let pos = lw.input(id, 1)?;
    let cos = lw.input(id, 2)?;
    let sin = lw.input(id, 3)?;
    if cos.shape.len() != 2 || sin.shape != cos.shape {
        return Err(lw.error("cos_cache and sin_cache must be 2-D of one shape"));
    }
    let interleaved = attr(lw, a.int_or("interleaved", 0))? != 0;
    let num_heads = attr(lw, a.int_or("num_heads", 0))?;
    let rot = attr(lw, a.int_or("rotary_embedding_dim", 0))?;
    let half = cos.shape[1].clone();
    let (dims, view) = match x.shape.len() {
        4 => {
            let st = strides(&x.shape);
            (
                [
                    x.shape[0].clone(),
                    x.shape[1].clone(),
                    x.shape[2].clone(),
                    x.shape[3].clone(),
                ],
                [st[0].clone(), st[1].clone(), st[2].clone()],
            )
        }
        3 => {
            let dd = x.shape[2].clone();
            let h = if num_heads > 0 {
                dd.floor_div(&Dim::from(num_heads))
            } else if rot > 0 {
                Dim::from(rot)
            } else {
                half.mul(&Dim::from(2i64))
            };
            let hc = konst(lw, &h, "head size")?;
            if hc == 0 || konst(lw, &dd, "hidden size")? % hc != 0 {
                return Err(lw.error("the hidden size is not a whole number of heads"));
            }
            (
                [
                    x.shape[0].clone(),
                    dd.floor_div(&h),
                    x.shape[1].clone(),
                    h.clone(),
                ],
                [x.shape[1].mul(&dd), h, dd],
            )
        }
        _ => return Err(lw.error("input must be 3-D or 4-D")),
    };
    let rd = if rot > 0 {
        Dim::from(rot)
    } else {
        dims[3].clone()
    };
    if let (Some(r), Some(hh)) = (rd.as_const(), half.as_const()) {
        if r != 2 * hh {
            return Err(lw.error("cos_cache's second dim must be half the rotary dimension"));
        }
    }
    let mut s = Slots::new(SLOTS);
    let c = int_elem(lw, pos.dtype, "position_ids")?;
    if pos.shape.len() == 1 && pos.shape[0].as_const() == Some(1) {
        s.bits(21, 2);
        s.ptr(22, &pos, &zero());
        s.bits(23, c);
    } else if pos.shape.len() == 2 {
        s.bits(21, 1);
        s.ptr(22, &pos, &zero());
        s.bits(23, c);
        s.int(24, dims[2].clone());
        s.int(25, 1i64);
    } else {
        return Err(lw.error("position_ids must be (1) or (B, S)"));
    }
    let rows = cos.shape[0].clone();
    emit(
        lw,
        id,
        s,
        &x,
        dims,
        view,
        half,
        interleaved,
        &cos,
        &sin,
        rows,
    )
}
