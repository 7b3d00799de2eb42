//! One-axis row ops: `Softmax`, `LogSoftmax`, `Hardmax`, `LpNormalization`, `ArgMax`,
//! `ArgMin`, `CumSum`, `CumProd`.

use kiln_ir::attr::AttrsExt;
use kiln_ir::dtype::DType;
use kiln_ir::graph::NodeId;

use super::{attr_err, elem, float_elem, math, norm_axis, split_at_axis};
use crate::cpu::codegen::kernels::reduce::rows::{self, RowOp};
use kiln_ir::dim::Dim;

use crate::cpu::lower::{Arg, Callee, Lowerer};
use crate::error::TargetError;

/// `op` along the node's `axis` attribute (default -1).
pub fn lower_row(lw: &mut Lowerer, id: NodeId, op: RowOp) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let e = float_elem(lw, &x)?;
    let rank = x.shape.len();
    if rank == 0 {
        return Err(lw.unsupported("a scalar input"));
    }
    let a = lw
        .graph
        .node(id)
        .attrs
        .int_or("axis", -1)
        .map_err(|err| attr_err(lw, err))?;
    let a = norm_axis(lw, a, rank)?;
    let (outer, n, inner) = split_at_axis(&x.shape, a);
    let contig = inner.as_const() == Some(1);
    let m = math(lw)?;
    let key = format!(
        "row_{op:?}_{}_{}",
        x.dtype,
        if contig { "contig" } else { "strided" }
    );
    let k = lw.kernel(&key, |kb| rows::row_kernel(kb, op, e, contig, m))?;
    let k = parallel_rows(lw, k, &key, &x.numel(), 6, 3)?;
    let y = lw.output(id, 0);
    lw.emit(
        k,
        vec![
            x.ptr(),
            y.ptr(),
            Arg::int(0i64),
            Arg::Int(outer),
            Arg::Int(n),
            Arg::Int(inner),
        ],
    );
    Ok(())
}

/// Outputs from this many elements (or of symbolic size) run through `parallel_rows`,
/// which decides at run time whether to share the rows out among the run's threads.
const PARALLEL_ELEMS: i64 = 32 * 1024;

/// Kernel `k` (slots `begin, end` at 2 and 3 of `nargs`, then the `rank - 1` extents of a
/// row) behind the runtime's `parallel_rows` when `numel` is large or symbolic.
pub fn parallel_rows(
    lw: &mut Lowerer,
    k: Callee,
    key: &str,
    numel: &Dim,
    nargs: usize,
    rank: usize,
) -> Result<Callee, TargetError> {
    let big = numel.as_const().is_none_or(|n| n >= PARALLEL_ELEMS);
    let Callee::Kernel(body) = k else {
        return Ok(k);
    };
    if !big {
        return Ok(k);
    }
    let helper = lw.helper_index("parallel_rows")?;
    lw.kernel(&format!("par:{key}"), |kb| {
        crate::cpu::codegen::kernels::elementwise::parallel(kb, body, nargs, 2, rank, helper)
    })
}

pub fn lower_lp(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let p = lw
        .graph
        .node(id)
        .attrs
        .int_or("p", 2)
        .map_err(|e| attr_err(lw, e))?;
    match p {
        1 => lower_row(lw, id, RowOp::L1Norm),
        2 => lower_row(lw, id, RowOp::L2Norm),
        _ => Err(lw.unsupported(format!("p = {p}"))),
    }
}

pub fn lower_arg(lw: &mut Lowerer, id: NodeId, max: bool) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let e = elem(lw, &x)?;
    let rank = x.shape.len();
    if rank == 0 {
        return Err(lw.unsupported("a scalar input"));
    }
    let attrs = &lw.graph.node(id).attrs;
    let (a, last) = match (
        attrs.int_or("axis", 0),
        attrs.int_or("select_last_index", 0),
    ) {
        (Ok(a), Ok(l)) => (a, l != 0),
        (Err(err), _) | (_, Err(err)) => return Err(attr_err(lw, err)),
    };
    let a = norm_axis(lw, a, rank)?;
    let (outer, n, inner) = split_at_axis(&x.shape, a);
    let key = format!(
        "arg{}_{}{}",
        if max { "max" } else { "min" },
        x.dtype,
        if last { "_last" } else { "" }
    );
    let k = lw.kernel(&key, |kb| rows::arg_kernel(kb, e, max, last))?;
    let y = lw.output(id, 0);
    lw.emit(
        k,
        vec![
            x.ptr(),
            y.ptr(),
            Arg::Int(outer),
            Arg::Int(n),
            Arg::Int(inner),
        ],
    );
    Ok(())
}

pub fn lower_cum(lw: &mut Lowerer, id: NodeId, product: bool) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let e = elem(lw, &x)?;
    if x.dtype == DType::Bool {
        return Err(lw.unsupported("bool"));
    }
    let rank = x.shape.len();
    if rank == 0 {
        return Err(lw.unsupported("a scalar input"));
    }
    let attrs = &lw.graph.node(id).attrs;
    let (exclusive, reverse) = match (attrs.int_or("exclusive", 0), attrs.int_or("reverse", 0)) {
        (Ok(x), Ok(r)) => (x != 0, r != 0),
        (Err(err), _) | (_, Err(err)) => return Err(attr_err(lw, err)),
    };
    if let Some(d) = lw.dims_input(id, 1) {
        if let [a] = d.as_slice() {
            if let Some(a) = a.as_const() {
                norm_axis(lw, a, rank)?;
            }
        }
    }
    let axis = lw.input(id, 1)?;
    let axis_i32 = match axis.dtype {
        DType::I32 => true,
        DType::I64 => false,
        d => return Err(lw.unsupported(format!("an axis of dtype {d}"))),
    };
    let key = format!(
        "cum{}_{}_r{rank}_{}{}{}",
        if product { "prod" } else { "sum" },
        x.dtype,
        axis.dtype,
        if exclusive { "_excl" } else { "" },
        if reverse { "_rev" } else { "" }
    );
    let k = lw.kernel(&key, |kb| {
        rows::cum_kernel(kb, e, rank, axis_i32, product, exclusive, reverse)
    })?;
    let y = lw.output(id, 0);
    let mut args = vec![x.ptr(), y.ptr(), axis.ptr()];
    args.extend(x.shape.iter().cloned().map(Arg::Int));
    lw.emit(k, args);
    Ok(())
}
