//! ScatterElements (and Scatter), ScatterND, TensorScatter, MaxUnpool.

use kiln_ir::dim::Dim;
use kiln_ir::graph::NodeId;
use kiln_ir::ops::util::axis;
use kiln_ir::AttrsExt;

use super::{attr_axis, attr_int, bytes_of, choice, code, computable, int, int_indices, prod};
use crate::cpu::lower::{Arg, Lowerer};
use crate::error::TargetError;

const REDUCTIONS: &[&str] = &["none", "add", "mul", "max", "min"];

/// The reduction code; fp8 data only scatters without one.
fn reduction(lw: &Lowerer, id: NodeId, dtype: kiln_ir::DType) -> Result<u64, TargetError> {
    let r = choice(lw, id, "reduction", "none", REDUCTIONS, &[])?;
    if r != 0 {
        computable(lw, dtype)?;
    }
    Ok(r)
}

pub fn scatter_elements(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let idx = lw.input(id, 1)?;
    let upd = lw.input(id, 2)?;
    int_indices(lw, idx.dtype)?;
    let rank = x.shape.len();
    if rank == 0 || idx.shape.len() != rank || upd.dtype != x.dtype {
        return Err(lw.error("ScatterElements data, indices and updates do not fit"));
    }
    let a = attr_axis(lw, id, 0, rank)?;
    let red = reduction(lw, id, x.dtype)?;
    let out = lw.output(id, 0);
    let h = lw.helper("index_scatter_elements")?;
    let mut args = vec![
        x.ptr(),
        idx.ptr(),
        upd.ptr(),
        out.ptr(),
        code(lw, idx.dtype)?,
        code(lw, x.dtype)?,
        Arg::Bits(red),
        Arg::Int(upd.numel()),
        Arg::Bits(rank as u64),
        Arg::Bits(a as u64),
    ];
    args.extend(x.shape.iter().map(int));
    args.extend(idx.shape.iter().map(int));
    lw.emit(h, args);
    Ok(())
}

pub fn scatter_nd(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let idx = lw.input(id, 1)?;
    let upd = lw.input(id, 2)?;
    int_indices(lw, idx.dtype)?;
    let (r, q) = (x.shape.len(), idx.shape.len());
    let m = idx.shape.last().and_then(Dim::as_const);
    let m = match m.and_then(|m| usize::try_from(m).ok()) {
        Some(m) if m <= r && upd.dtype == x.dtype => m,
        _ => {
            return Err(lw.error(format!(
                "ScatterND indices of depth {m:?} do not fit data of rank {r}"
            )))
        }
    };
    let red = reduction(lw, id, x.dtype)?;
    let out = lw.output(id, 0);
    let h = lw.helper("index_scatter_nd")?;
    let mut args = vec![
        x.ptr(),
        idx.ptr(),
        upd.ptr(),
        out.ptr(),
        code(lw, idx.dtype)?,
        code(lw, x.dtype)?,
        Arg::Bits(red),
        Arg::Int(upd.numel()),
        Arg::Int(prod(&idx.shape[..q - 1])),
        Arg::Bits(r as u64),
        Arg::Bits(m as u64),
    ];
    args.extend(x.shape.iter().map(int));
    lw.emit(h, args);
    Ok(())
}

pub fn tensor_scatter(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let c = lw.input(id, 0)?;
    let u = lw.input(id, 1)?;
    let wi = lw.opt_input(id, 2);
    let rank = c.shape.len();
    let a = axis(attr_int(lw, id, "axis", -2)?, rank).map_err(|e| lw.error(e))?;
    if a == 0 || u.shape.len() != rank || u.dtype != c.dtype {
        return Err(lw.error("TensorScatter update does not fit the cache"));
    }
    let circular = choice(lw, id, "mode", "linear", &["linear", "circular"], &[])?;
    let (wptr, wcode, wlen) = match &wi {
        Some(w) => {
            int_indices(lw, w.dtype)?;
            (w.ptr(), code(lw, w.dtype)?, Arg::Int(w.numel()))
        }
        None => (Arg::Bits(0), Arg::Bits(0), Arg::Bits(0)),
    };
    let out = lw.output(id, 0);
    let h = lw.helper("index_tensor_scatter")?;
    let args = vec![
        c.ptr(),
        u.ptr(),
        wptr,
        out.ptr(),
        wcode,
        int(&c.shape[0]),
        Arg::Int(prod(&c.shape[1..a])),
        int(&c.shape[a]),
        int(&u.shape[a]),
        Arg::Int(bytes_of(&c, &prod(&c.shape[a + 1..]))),
        Arg::Bits(circular),
        Arg::Int(bytes_of(&u, &u.numel())),
        wlen,
    ];
    lw.emit(h, args);
    Ok(())
}

pub fn max_unpool(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let idx = lw.input(id, 1)?;
    int_indices(lw, idx.dtype)?;
    let rank = x.shape.len();
    let g = lw.graph;
    let attrs = &g.node(id).attrs;
    let ints = |name: &str| attrs.ints(name).map_err(|e| lw.error(e));
    let kernel = ints("kernel_shape")?.unwrap_or_default();
    let n = kernel.len();
    let strides = ints("strides")?.unwrap_or_else(|| vec![1; n]);
    let pads = ints("pads")?.unwrap_or_else(|| vec![0; 2 * n]);
    if rank < 3 || n != rank - 2 || strides.len() != n || pads.len() != 2 * n {
        return Err(lw.error("MaxUnpool kernel_shape, strides and pads do not fit the input"));
    }
    if idx.shape != x.shape {
        return Err(lw.error("MaxUnpool indices must have the input's shape"));
    }
    let mut natural = x.shape[..2].to_vec();
    for i in 0..n {
        natural.push(
            x.shape[i + 2]
                .sub(&Dim::from(1i64))
                .mul(&Dim::from(strides[i]))
                .add(&Dim::from(kernel[i] - pads[i] - pads[n + i])),
        );
    }
    let out = lw.output(id, 0);
    let h = lw.helper("index_max_unpool")?;
    let mut args = vec![
        x.ptr(),
        idx.ptr(),
        out.ptr(),
        code(lw, idx.dtype)?,
        Arg::Bits(x.dtype.size() as u64),
        Arg::Int(x.numel()),
        Arg::Bits(rank as u64),
    ];
    args.extend(natural.iter().map(int));
    args.extend(out.shape.iter().map(int));
    lw.emit(h, args);
    Ok(())
}
