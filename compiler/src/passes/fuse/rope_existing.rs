//! `com.microsoft.RotaryEmbedding(input, position_ids, cos_cache, sin_cache)` -> `rope`, with
//! the cache rows gathered at the positions, form `com.microsoft.RotaryEmbedding`.
//!
//! - Positions: `position_ids` `[B, S]`, or a `[1]` offset `o` (token `s` at `o + s`).
//! - A 4-D input `[B, N, S, H]` is `rope`'s layout (cos / sin `[S | B, 1, S, R/2]`); a 3-D
//!   input `[B, S, N * H]` is viewed as `[B, S, N, H]` (cos / sin `[B | 1, S, 1, R/2]`) and
//!   merged back. Its head size is `D / num_heads`, or without `num_heads` the rotary
//!   dimension, as ONNX Runtime reads it.
//! - `interleaved` carries over; the first `rotary_embedding_dim` (or all) elements of each
//!   head turn, the rest pass through (`rope`'s partial rotary).
//!
//! Left alone with `is_packed_batching`, or when the head size, the rotary dimension or the
//! positions' shape is not known statically.
//!
//! Belongs to `fuse-rope`: its `find` gains a
//! `"com.microsoft.RotaryEmbedding" => rope_existing::find(g, root)` arm.

use kiln_ir::attr::AttrsExt;
use kiln_ir::{Attr, DType, Graph, NodeId, Tensor};

use super::pattern::{out0, Builder};
use super::Match;

/// The region rooted at `root`, if it is a RotaryEmbedding this rewrite handles.
pub fn find(g: &Graph, root: NodeId) -> Option<Match> {
    let n = g.node(root);
    if n.op != "com.microsoft.RotaryEmbedding" {
        return None;
    }
    let a = &n.attrs;
    if a.int_or("is_packed_batching", 0).ok()? != 0 {
        return None;
    }
    let (x, pos, cos, sin) = (n.input(0)?, n.input(1)?, n.input(2)?, n.input(3)?);
    let (xt, pt, ct, st) = (
        g.value_type(x),
        g.value_type(pos),
        g.value_type(cos),
        g.value_type(sin),
    );
    let dt = xt.dtype;
    if !dt.is_float() || ct.dtype != dt || st.dtype != dt || ct.rank() != 2 || ct.shape != st.shape
    {
        return None;
    }
    let half = ct.shape[1].as_const()?;
    let num_heads = a.int_or("num_heads", 0).ok()?;
    let rot = a.int_or("rotary_embedding_dim", 0).ok()?;
    if num_heads < 0 || rot < 0 || half <= 0 {
        return None;
    }
    let rank = xt.rank();
    let h = match rank {
        4 => xt.shape[3].as_const()?,
        3 => {
            let d = xt.shape[2].as_const()?;
            let h = if num_heads > 0 {
                (d % num_heads == 0).then_some(d / num_heads)?
            } else if rot > 0 {
                rot
            } else {
                2 * half
            };
            if h == 0 || d % h != 0 {
                return None;
            }
            h
        }
        _ => return None,
    };
    let rd = if rot > 0 { rot } else { h };
    if rd > h || rd != 2 * half {
        return None;
    }
    // Positions: a [1] offset or one per token.
    let offset = match pt.rank() {
        1 if pt.shape[0].as_const() == Some(1) => true,
        2 => false,
        _ => return None,
    };
    if !pt.dtype.is_int() {
        return None;
    }
    let interleaved = i64::from(a.int_or("interleaved", 0).ok()? != 0);
    let origin = n.origin.clone();
    Some(Match {
        form: "com.microsoft.RotaryEmbedding",
        nodes: vec![root],
        rewrite: Box::new(move |g: &mut Graph| {
            let mut b = Builder::new(g, &origin);
            let seq_axis = if rank == 4 { 2 } else { 1 };
            let pos = b.op("Cast", &[pos], &[("to", Attr::DType(DType::I64))])?;
            let pos = if offset {
                // o + [0, S): [S].
                let s = b.size(x, seq_axis)?;
                let zero = b.constant(Tensor::from_i64(DType::I64, vec![], &[0]))?;
                let one = b.constant(Tensor::from_i64(DType::I64, vec![], &[1]))?;
                let r = b.op("Range", &[zero, s, one], &[])?;
                b.op("Add", &[r, pos], &[])?
            } else {
                pos
            };
            // The axis of the gathered rows ([S, R/2] or [B, S, R/2]) that stands for heads.
            let heads_axis = match (rank, offset) {
                (4, true) => None,
                (4, false) => Some(1),
                (_, true) => Some(1),
                (_, false) => Some(2),
            };
            let mut tables = Vec::new();
            for cache in [cos, sin] {
                let rows = b.op("Gather", &[cache, pos], &[("axis", Attr::Int(0))])?;
                tables.push(match heads_axis {
                    Some(ax) => {
                        let axes = b.ints(&[ax])?;
                        b.op("Unsqueeze", &[rows, axes], &[])?
                    }
                    None => rows,
                });
            }
            let xin = if rank == 3 {
                let shape = b.ints(&[0, 0, -1, h])?;
                b.op("Reshape", &[x, shape], &[])?
            } else {
                x
            };
            let y = b.op(
                "rope",
                &[xin, tables[0], tables[1]],
                &[("interleaved", Attr::Int(interleaved))],
            )?;
            let y = if rank == 3 {
                let shape = b.ints(&[0, 0, -1])?;
                b.op("Reshape", &[y, shape], &[])?
            } else {
                y
            };
            Ok(vec![(out0(root), y)])
        }),
    })
}
