//! Linear algebra: MatMul and Gemm (f32 through the GEMM helpers with prepacked weights,
//! other dtypes through the generic `contract` helper), Einsum, the integer and quantized
//! products, quantization, Conv and ConvTranspose, pooling. A GEMM computes the bias,
//! activation, residual and head split after it (`epilogue`); projections that share their
//! input (Q, K, V) share one GEMM (`siblings`).
//!
//! Strides here are in elements and symbolic (`Dim`): one artifact serves every `seq`.

mod conv;
mod epilogue;
mod matmul;
mod pool;
mod quant;
mod siblings;

pub use epilogue::absorbed;

use kiln_ir::dim::Dim;
use kiln_ir::dtype::DType;
use kiln_ir::graph::NodeId;
use kiln_ir::types::ValueType;
use kiln_runtime::cpu::helpers::elem;
use kiln_runtime::ElemType;

use super::LowerFn;
use crate::cpu::lower::{Arg, Lowerer, Operand};
use crate::error::TargetError;

pub const OPS: &[(&str, LowerFn)] = &[
    ("MatMul", matmul::matmul),
    ("Gemm", matmul::gemm),
    ("MatMulInteger", matmul::matmul_integer),
    ("QLinearMatMul", matmul::qlinear_matmul),
    ("Einsum", matmul::einsum),
    ("Det", matmul::det),
    ("QuantizeLinear", quant::quantize),
    ("DequantizeLinear", quant::dequantize),
    ("DynamicQuantizeLinear", quant::dynamic_quantize),
    ("Conv", conv::conv),
    ("ConvInteger", conv::conv_integer),
    ("ConvTranspose", conv::conv_transpose),
    ("QLinearConv", conv::qlinear_conv),
    ("DeformConv", conv::deform_conv),
    ("CausalConvWithState", conv::causal_conv),
    ("Col2Im", pool::col2im),
    ("MaxUnpool", pool::max_unpool),
    ("MaxPool", pool::max_pool),
    ("AveragePool", pool::average_pool),
    ("LpPool", pool::lp_pool),
    ("GlobalAveragePool", pool::global_average_pool),
    ("GlobalMaxPool", pool::global_max_pool),
    ("GlobalLpPool", pool::global_lp_pool),
];

/// The helper-argument code of a dtype.
pub(crate) fn dtype_code(d: DType) -> u64 {
    ElemType::from_name(d.name()).map_or(0, elem::code)
}

fn one() -> Dim {
    Dim::from(1i64)
}

fn zero() -> Dim {
    Dim::from(0i64)
}

/// The product of `dims`.
pub(crate) fn prod(dims: &[Dim]) -> Dim {
    dims.iter().fold(one(), |a, d| a.mul(d))
}

/// Row-major contiguous strides of `shape`.
pub(crate) fn contiguous(shape: &[Dim]) -> Vec<Dim> {
    let mut s = vec![one(); shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1].mul(&shape[i + 1]);
    }
    s
}

/// Strides of a contiguous tensor of `shape` broadcast (numpy, right-aligned) to `target`:
/// 0 along axes it lacks or has size 1 on. `None` when the shapes do not provably broadcast.
pub(crate) fn bcast_strides(shape: &[Dim], target: &[Dim]) -> Option<Vec<Dim>> {
    if shape.len() > target.len() {
        return None;
    }
    let pad = target.len() - shape.len();
    let st = contiguous(shape);
    let mut out = vec![zero(); target.len()];
    for (i, d) in shape.iter().enumerate() {
        let t = &target[pad + i];
        if d.as_const() == Some(1) {
            continue;
        }
        if d != t {
            return None;
        }
        out[pad + i] = st[i].clone();
    }
    Some(out)
}

/// The type of node input `i` (an error if absent).
pub(crate) fn input_type(lw: &Lowerer, id: NodeId, i: usize) -> Result<ValueType, TargetError> {
    let v = lw
        .graph
        .node(id)
        .input(i)
        .ok_or_else(|| lw.error(format!("input {i} is missing")))?;
    Ok(lw.graph.value_type(v).clone())
}

/// Whether node input `i` is present.
pub(crate) fn has_input(lw: &Lowerer, id: NodeId, i: usize) -> bool {
    lw.graph.node(id).input(i).is_some()
}

/// One operand of a `contract` step: the tensor, its strides over the loop space, and an
/// optional zero point (with its own strides) subtracted from each element.
pub(crate) struct Term {
    pub x: Operand,
    pub strides: Vec<Dim>,
    pub zp: Option<(Operand, Vec<Dim>)>,
}

/// The arithmetic of a `contract` step.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Mode {
    Float,
    Int,
}

/// Emits `out[o] (+)= alpha · Σ_r Π terms` over the loop space `sizes` (the first `kept`
/// axes are the output's, with strides `out_strides`; the rest are summed).
#[allow(clippy::too_many_arguments)]
pub(crate) fn emit_contract(
    lw: &mut Lowerer,
    out: &Operand,
    out_strides: &[Dim],
    sizes: &[Dim],
    mode: Mode,
    alpha: f64,
    accumulate: bool,
    terms: &[Term],
) -> Result<(), TargetError> {
    let kept = out_strides.len();
    let callee = lw.helper("contract")?;
    let mut args = vec![
        out.ptr(),
        Arg::Bits(dtype_code(out.dtype)),
        Arg::Bits(u64::from(mode == Mode::Int)),
        Arg::Bits(alpha.to_bits()),
        Arg::Bits(u64::from(accumulate)),
        Arg::Bits(kept as u64),
        Arg::Bits((sizes.len() - kept) as u64),
    ];
    args.extend(sizes.iter().cloned().map(Arg::Int));
    args.extend(out_strides.iter().cloned().map(Arg::Int));
    args.push(Arg::Bits(terms.len() as u64));
    for t in terms {
        args.push(t.x.ptr());
        args.push(Arg::Bits(dtype_code(t.x.dtype)));
        args.extend(t.strides.iter().cloned().map(Arg::Int));
        match &t.zp {
            Some((z, s)) => {
                args.push(z.ptr());
                args.push(Arg::Bits(dtype_code(z.dtype)));
                args.extend(s.iter().cloned().map(Arg::Int));
            }
            None => {
                args.push(Arg::Bits(0));
                args.push(Arg::Bits(0));
                args.extend((0..sizes.len()).map(|_| Arg::Bits(0)));
            }
        }
    }
    lw.emit(callee, args);
    Ok(())
}
