//! TopK, and selection by content (NonZero, Unique, NonMaxSuppression), whose output
//! sizes depend on data: they compile when the graph pins those sizes (a model's declared
//! output shape does), and a data-dependent size is a compile error naming the op.

use kiln_ir::dim::Dim;
use kiln_ir::graph::NodeId;
use kiln_ir::ops::util::axis;

use super::{attr_axis, attr_int, code, computable, int, int_indices, prod};
use crate::cpu::lower::{Arg, Lowerer};
use crate::error::TargetError;

pub fn top_k(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    computable(lw, x.dtype)?;
    let rank = x.shape.len();
    if rank == 0 {
        return Err(lw.error("TopK needs rank >= 1"));
    }
    let a = attr_axis(lw, id, -1, rank)?;
    let largest = attr_int(lw, id, "largest", 1)? != 0;
    // K is the output's dim along the axis: shape inference read it from the constant or
    // the `dims` that gives it.
    let vals = lw.output(id, 0);
    let idxs = lw.output(id, 1);
    let k = vals.shape[a].clone();
    if let (Some(k), Some(d)) = (k.as_const(), x.shape[a].as_const()) {
        if k > d {
            return Err(lw.error(format!("TopK K = {k} exceeds the dim of {d}")));
        }
    }
    let h = lw.helper("index_top_k")?;
    let args = vec![
        x.ptr(),
        vals.ptr(),
        idxs.ptr(),
        code(lw, x.dtype)?,
        Arg::Int(prod(&x.shape[..a])),
        int(&x.shape[a]),
        Arg::Int(prod(&x.shape[a + 1..])),
        Arg::Int(k),
        Arg::Bits(u64::from(largest)),
    ];
    lw.emit(h, args);
    Ok(())
}

pub fn non_zero(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    computable(lw, x.dtype)?;
    let out = lw.output(id, 0);
    let h = lw.helper("index_non_zero")?;
    let mut args = vec![
        x.ptr(),
        out.ptr(),
        code(lw, x.dtype)?,
        int(&out.shape[1]),
        Arg::Bits(x.shape.len() as u64),
    ];
    args.extend(x.shape.iter().map(int));
    lw.emit(h, args);
    Ok(())
}

pub fn unique(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    computable(lw, x.dtype)?;
    let (outer, d, inner, a) = match lw.graph.node(id).attrs.get("axis") {
        Some(_) => {
            let a = axis(attr_int(lw, id, "axis", 0)?, x.shape.len()).map_err(|e| lw.error(e))?;
            (
                prod(&x.shape[..a]),
                x.shape[a].clone(),
                prod(&x.shape[a + 1..]),
                a,
            )
        }
        None => (Dim::from(1i64), x.numel(), Dim::from(1i64), 0),
    };
    let sorted = attr_int(lw, id, "sorted", 1)? != 0;
    let n_out = lw.graph.node(id).outputs.len();
    let outs: Vec<_> = (0..4)
        .map(|i| (i < n_out).then(|| lw.output(id, i)))
        .collect();
    let u = outs[0]
        .as_ref()
        .map_or(Dim::from(0i64), |y| y.shape[a].clone());
    let h = lw.helper("index_unique")?;
    let mut args = vec![x.ptr()];
    args.extend(
        outs.iter()
            .map(|o| o.as_ref().map_or(Arg::Bits(0), |o| o.ptr())),
    );
    args.extend([
        code(lw, x.dtype)?,
        Arg::Int(outer),
        Arg::Int(d),
        Arg::Int(inner),
        Arg::Int(u),
        Arg::Bits(u64::from(sorted)),
    ]);
    for i in [1, 3] {
        args.push(
            outs[i]
                .as_ref()
                .map_or(Arg::Bits(0), |o| Arg::Int(o.numel())),
        );
    }
    lw.emit(h, args);
    Ok(())
}

pub fn non_max_suppression(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let boxes = lw.input(id, 0)?;
    let scores = lw.input(id, 1)?;
    computable(lw, boxes.dtype)?;
    computable(lw, scores.dtype)?;
    if boxes.shape.len() != 3
        || scores.shape.len() != 3
        || boxes.shape[2].as_const() != Some(4)
        || boxes.shape[0] != scores.shape[0]
        || boxes.shape[1] != scores.shape[2]
    {
        return Err(lw.error(
            "NonMaxSuppression takes boxes [B, N, 4] and scores [B, C, N] of matching sizes",
        ));
    }
    let center = attr_int(lw, id, "center_point_box", 0)? != 0;
    let mut args = vec![boxes.ptr(), scores.ptr()];
    let out = lw.output(id, 0);
    args.extend([
        out.ptr(),
        code(lw, boxes.dtype)?,
        code(lw, scores.dtype)?,
        Arg::Bits(u64::from(center)),
    ]);
    for i in 2..5 {
        match lw.opt_input(id, i) {
            Some(t) if t.numel().as_const() != Some(0) => {
                if i == 2 {
                    int_indices(lw, t.dtype)?;
                } else {
                    computable(lw, t.dtype)?;
                }
                args.extend([t.ptr(), code(lw, t.dtype)?, Arg::Int(t.numel())]);
            }
            _ => args.extend([Arg::Bits(0), Arg::Bits(0), Arg::Bits(0)]),
        }
    }
    args.extend([
        int(&boxes.shape[0]),
        int(&boxes.shape[1]),
        int(&scores.shape[1]),
        int(&out.shape[0]),
    ]);
    let h = lw.helper("index_non_max_suppression")?;
    lw.emit(h, args);
    Ok(())
}
