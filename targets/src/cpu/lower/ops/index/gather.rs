//! Gather, GatherElements, GatherND, OneHot, Compress.

use kiln_ir::dim::Dim;
use kiln_ir::dtype::DType;
use kiln_ir::graph::NodeId;
use kiln_ir::ops::util::{axis, axis_incl};

use super::{attr_axis, attr_int, bytes_of, code, computable, int, int_indices, prod};
use crate::cpu::lower::{Arg, Lowerer, Operand};
use crate::error::TargetError;

/// Emits `index_gather` over data `[outer, d, row]` (row in bytes) with indices `idx`.
fn emit_gather(
    lw: &mut Lowerer,
    x: &Operand,
    idx: &Operand,
    out: &Operand,
    split: usize,
) -> Result<(), TargetError> {
    let outer = prod(&x.shape[..split]);
    let row = bytes_of(x, &prod(&x.shape[split + 1..]));
    let h = lw.helper("index_gather")?;
    let args = vec![
        x.ptr(),
        idx.ptr(),
        out.ptr(),
        code(lw, idx.dtype)?,
        int(&outer),
        int(&x.shape[split]),
        Arg::Int(idx.numel()),
        Arg::Int(row),
    ];
    lw.emit(h, args);
    Ok(())
}

pub fn gather(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let rank = x.shape.len();
    if rank == 0 {
        return Err(lw.error("Gather needs data of rank >= 1"));
    }
    let a = attr_axis(lw, id, 0, rank)?;
    // A constant single index into data with nothing before the axis picks one contiguous
    // slice: the output is a view.
    if let Some(t) = lw.const_input(id, 1) {
        let outer = prod(&x.shape[..a]).as_const();
        if let (1, Some(1), Some(d)) = (t.len(), outer, x.shape[a].as_const()) {
            let k = t.to_i64()[0];
            let k = if k < 0 { k + d } else { k };
            if (0..d).contains(&k) {
                let row = bytes_of(&x, &prod(&x.shape[a + 1..]));
                let shape = lw.graph.node(id).outputs[0].shape.clone();
                let view = Operand {
                    offset: x.offset.add(&row.mul(&Dim::from(k))),
                    shape,
                    ..x.clone()
                };
                return lw.alias_output(id, 0, &view);
            }
        }
    }
    let idx = lw.input(id, 1)?;
    int_indices(lw, idx.dtype)?;
    let out = lw.output(id, 0);
    emit_gather(lw, &x, &idx, &out, a)
}

pub fn gather_elements(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let idx = lw.input(id, 1)?;
    int_indices(lw, idx.dtype)?;
    let rank = x.shape.len();
    if rank == 0 || idx.shape.len() != rank {
        return Err(lw.error("GatherElements data and indices must have one rank (>= 1)"));
    }
    let a = attr_axis(lw, id, 0, rank)?;
    let out = lw.output(id, 0);
    let h = lw.helper("index_gather_elements")?;
    let mut args = vec![
        x.ptr(),
        idx.ptr(),
        out.ptr(),
        code(lw, idx.dtype)?,
        Arg::Bits(x.dtype.size() as u64),
        Arg::Bits(rank as u64),
        Arg::Bits(a as u64),
    ];
    args.extend(x.shape.iter().map(int));
    args.extend(idx.shape.iter().map(int));
    lw.emit(h, args);
    Ok(())
}

pub fn gather_nd(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let idx = lw.input(id, 1)?;
    int_indices(lw, idx.dtype)?;
    let (r, q) = (x.shape.len(), idx.shape.len());
    let b = attr_int(lw, id, "batch_dims", 0)?;
    let m = idx.shape.last().and_then(Dim::as_const);
    let (b, m) = match (usize::try_from(b), m.and_then(|m| usize::try_from(m).ok())) {
        (Ok(b), Some(m)) if q >= 1 && b < q && m >= 1 && b + m <= r => (b, m),
        _ => {
            return Err(lw.error(format!(
                "GatherND batch_dims {b} and index depth {m:?} do not fit data rank {r}, indices rank {q}"
            )))
        }
    };
    let out = lw.output(id, 0);
    let h = lw.helper("index_gather_nd")?;
    let mut args = vec![
        x.ptr(),
        Arg::Int(bytes_of(&x, &x.numel())),
        idx.ptr(),
        out.ptr(),
        code(lw, idx.dtype)?,
        Arg::Int(bytes_of(&x, &prod(&x.shape[b + m..]))),
        Arg::Int(prod(&idx.shape[..b])),
        Arg::Int(prod(&idx.shape[b..q - 1])),
        Arg::Bits(m as u64),
    ];
    args.extend(x.shape[b..b + m].iter().map(int));
    lw.emit(h, args);
    Ok(())
}

pub fn one_hot(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let idx = lw.input(id, 0)?;
    let values = lw.input(id, 2)?;
    if idx.dtype.is_fp8() {
        return Err(lw.unsupported(format!("{} indices", idx.dtype)));
    }
    if values.numel().as_const() != Some(2) {
        return Err(lw.error("OneHot values must hold [off, on]"));
    }
    let a = axis_incl(attr_int(lw, id, "axis", -1)?, idx.shape.len()).map_err(|e| lw.error(e))?;
    let out = lw.output(id, 0);
    let depth = out.shape[a].clone();
    let h = lw.helper("index_one_hot")?;
    let args = vec![
        idx.ptr(),
        values.ptr(),
        out.ptr(),
        code(lw, idx.dtype)?,
        Arg::Bits(values.dtype.size() as u64),
        Arg::Int(prod(&idx.shape[..a])),
        Arg::Int(depth),
        Arg::Int(prod(&idx.shape[a..])),
    ];
    lw.emit(h, args);
    Ok(())
}

/// Compress with a constant condition is a gather at constant positions; with a run-time
/// condition a helper picks the positions (the output size must be pinned).
pub fn compress(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let cond = lw.const_input(id, 1);
    let x = lw.input(id, 0)?;
    let ax = match lw.graph.node(id).attrs.get("axis") {
        Some(_) => {
            Some(axis(attr_int(lw, id, "axis", 0)?, x.shape.len()).map_err(|e| lw.error(e))?)
        }
        None => None,
    };
    let (data, a) = match ax {
        Some(a) => (x.clone(), a),
        None => (
            Operand {
                shape: vec![x.numel()],
                ..x.clone()
            },
            0,
        ),
    };
    let Some(cond) = cond else {
        let c = lw.input(id, 1)?;
        computable(lw, c.dtype)?;
        let out = lw.output(id, 0);
        let h = lw.helper("index_compress")?;
        let args = vec![
            data.ptr(),
            c.ptr(),
            out.ptr(),
            code(lw, c.dtype)?,
            Arg::Int(prod(&data.shape[..a])),
            int(&data.shape[a]),
            Arg::Int(bytes_of(&data, &prod(&data.shape[a + 1..]))),
            Arg::Int(c.numel()),
            int(&out.shape[a]),
        ];
        lw.emit(h, args);
        return Ok(());
    };
    let picks: Vec<i64> = cond
        .to_bool()
        .iter()
        .enumerate()
        .filter(|&(_, &c)| c)
        .map(|(k, _)| k as i64)
        .collect();
    if let Some(d) = data.shape[a].as_const() {
        if picks.last().is_some_and(|&k| k >= d) {
            return Err(lw.error(format!(
                "Compress condition selects past the end of a dim of {d}"
            )));
        }
    }
    let n = picks.len();
    let bytes = picks.iter().flat_map(|k| k.to_le_bytes()).collect();
    let name = format!("Compress positions {}", id.index());
    let idx = lw.weight(&name, DType::I64, vec![Dim::from(n)], bytes, "dense");
    let out = lw.output(id, 0);
    emit_gather(lw, &data, &idx, &out, a)
}
