//! Losses: `NegativeLogLikelihoodLoss` and `SoftmaxCrossEntropyLoss` (a log-softmax over
//! the class axis followed by the same kernel).

use kiln_ir::attr::AttrsExt;
use kiln_ir::dim::Dim;
use kiln_ir::dtype::DType;
use kiln_ir::graph::NodeId;

use super::{attr_err, float_elem, math, product, wanted};
use crate::cpu::codegen::kernels::reduce::loss::{nll_kernel, Reduction};
use crate::cpu::codegen::kernels::reduce::rows::{self, RowOp};
use crate::cpu::lower::{Arg, Lowerer, Operand};
use crate::error::TargetError;

/// Emits the NLL step over log-probabilities `logp` (`[N, C, d...]`).
fn emit_nll(lw: &mut Lowerer, id: NodeId, logp: &Operand) -> Result<(), TargetError> {
    let e = float_elem(lw, logp)?;
    if logp.shape.len() < 2 {
        return Err(lw.error(format!("expected scores [N, C, ...], got {:?}", logp.shape)));
    }
    let attrs = &lw.graph.node(id).attrs;
    let red = match attrs.str_or("reduction", "mean") {
        Ok("none") => Reduction::None,
        Ok("sum") => Reduction::Sum,
        Ok("mean") => Reduction::Mean,
        Ok(r) => return Err(lw.unsupported(format!("reduction {r:?}"))),
        Err(err) => return Err(attr_err(lw, err)),
    };
    let ignore = attrs.int("ignore_index").map_err(|err| attr_err(lw, err))?;
    let target = lw.input(id, 1)?;
    let target_i32 = match target.dtype {
        DType::I32 => true,
        DType::I64 => false,
        d => return Err(lw.unsupported(format!("a target of dtype {d}"))),
    };
    let weight = lw.opt_input(id, 2);
    if let Some(w) = &weight {
        if w.dtype != logp.dtype || w.numel() != logp.shape[1] {
            return Err(lw.unsupported(format!("a weight {} {:?}", w.dtype, w.shape)));
        }
    }
    let key = format!(
        "nll_{}_{}_{}_{}_{red:?}",
        logp.dtype,
        target.dtype,
        weight.is_some(),
        ignore.is_some()
    );
    let k = lw.kernel(&key, |kb| {
        nll_kernel(kb, e, target_i32, weight.is_some(), ignore.is_some(), red)
    })?;
    let out = lw.output(id, 0);
    lw.emit(
        k,
        vec![
            logp.ptr(),
            target.ptr(),
            weight.map_or(Arg::Int(Dim::from(0i64)), |w| w.ptr()),
            out.ptr(),
            Arg::Int(logp.shape[0].clone()),
            Arg::Int(logp.shape[1].clone()),
            Arg::Int(product(&logp.shape[2..])),
            Arg::Int(Dim::from(ignore.unwrap_or(0))),
        ],
    );
    Ok(())
}

pub fn lower_nll(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    emit_nll(lw, id, &x)
}

pub fn lower_sce(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let e = float_elem(lw, &x)?;
    if x.shape.len() < 2 {
        return Err(lw.error(format!("expected scores [N, C, ...], got {:?}", x.shape)));
    }
    let logp = if wanted(lw, id, 1) {
        lw.output(id, 1)
    } else {
        lw.scratch("log_prob", x.dtype, x.shape.clone())
    };
    let inner = product(&x.shape[2..]);
    let contig = inner.as_const() == Some(1);
    let m = math(lw)?;
    let key = format!(
        "row_LogSoftmax_{}_{}",
        x.dtype,
        if contig { "contig" } else { "strided" }
    );
    let k = lw.kernel(&key, |kb| {
        rows::row_kernel(kb, RowOp::LogSoftmax, e, contig, m)
    })?;
    lw.emit(
        k,
        vec![
            x.ptr(),
            logp.ptr(),
            Arg::int(0i64),
            Arg::Int(x.shape[0].clone()),
            Arg::Int(x.shape[1].clone()),
            Arg::Int(inner),
        ],
    );
    emit_nll(lw, id, &logp)
}
