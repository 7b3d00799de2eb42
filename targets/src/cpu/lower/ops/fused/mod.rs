//! Fused and contrib ops: attention (kiln's `attention`, ONNX `Attention`, com.microsoft
//! GroupQueryAttention / MultiHeadAttention), rotary embeddings (kiln's `rope`, ONNX and
//! com.microsoft `RotaryEmbedding`) and mixture of experts (kiln's `moe`, com.microsoft
//! MoE). Each lowers to one runtime helper call whose argument slots are documented in
//! `kiln_runtime::cpu::helpers::{attention, moe}`.

mod attention;
mod gqa;
mod mha;
mod moe;
mod rope;
#[cfg(test)]
mod tests;

use kiln_ir::dim::Dim;
use kiln_ir::dtype::DType;
use kiln_ir::graph::{NodeId, Value};
use kiln_ir::ops::OpError;

use super::LowerFn;
use crate::cpu::lower::{Arg, Lowerer, Operand};
use crate::error::TargetError;

pub const OPS: &[(&str, LowerFn)] = &[
    ("attention", attention::lower_fused),
    ("Attention", attention::lower_onnx),
    ("com.microsoft.GroupQueryAttention", gqa::lower),
    ("com.microsoft.MultiHeadAttention", mha::lower),
    ("rope", rope::lower_fused),
    ("RotaryEmbedding", rope::lower_onnx),
    ("com.microsoft.RotaryEmbedding", rope::lower_ms),
    ("moe", moe::lower_fused),
    ("com.microsoft.MoE", moe::lower_ms),
];

/// Nodes a fused op's step computes besides its own (see `attention::output_transpose`).
pub fn absorbed(g: &kiln_ir::graph::Graph) -> impl Iterator<Item = NodeId> + '_ {
    g.node_ids()
        .into_iter()
        .filter_map(|id| attention::output_transpose(g, id))
}

/// The runtime's element code of a dtype (see the helper docs).
fn elem(lw: &Lowerer, dt: DType, what: &str) -> Result<u64, TargetError> {
    Ok(match dt {
        DType::F32 => 0,
        DType::F16 => 1,
        DType::BF16 => 2,
        DType::Bool => 3,
        DType::I32 => 4,
        DType::I64 => 5,
        _ => return Err(lw.unsupported(format!("{what} of dtype {dt}"))),
    })
}

/// A float tensor the kernels read or write (f32, f16, bf16).
fn float_elem(lw: &Lowerer, dt: DType, what: &str) -> Result<u64, TargetError> {
    match dt {
        DType::F32 | DType::F16 | DType::BF16 => elem(lw, dt, what),
        _ => Err(lw.unsupported(format!("{what} of dtype {dt}"))),
    }
}

/// An integer tensor the kernels read (i32, i64).
fn int_elem(lw: &Lowerer, dt: DType, what: &str) -> Result<u64, TargetError> {
    match dt {
        DType::I32 | DType::I64 => elem(lw, dt, what),
        _ => Err(lw.unsupported(format!("{what} of dtype {dt}"))),
    }
}

/// An attribute read, with the lowering's error.
fn attr<T>(lw: &Lowerer, r: Result<T, OpError>) -> Result<T, TargetError> {
    r.map_err(|e| lw.error(e))
}

/// A dim that must be a compile-time constant.
fn konst(lw: &Lowerer, d: &Dim, what: &str) -> Result<usize, TargetError> {
    match d.as_const() {
        Some(v) if v >= 0 => Ok(v as usize),
        _ => Err(lw.unsupported(format!("a symbolic {what} ({d})"))),
    }
}

/// Whether output `i` of `id` exists and is read by something.
fn used(lw: &Lowerer, id: NodeId, i: usize) -> bool {
    let node = lw.graph.node(id);
    if i >= node.outputs.len() {
        return false;
    }
    let v = Value {
        node: id,
        output: i,
    };
    !lw.graph.users(v).is_empty() || lw.graph.is_output(v)
}

/// Row-major strides of a shape, in elements.
fn strides(shape: &[Dim]) -> Vec<Dim> {
    let mut s = vec![Dim::from(1i64); shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1].mul(&shape[i + 1]);
    }
    s
}

/// The argument slots of a helper call, all zero until set.
struct Slots(Vec<Arg>);

impl Slots {
    fn new(n: usize) -> Slots {
        Slots(vec![Arg::Bits(0); n])
    }

    fn int(&mut self, i: usize, d: impl Into<Dim>) {
        self.0[i] = Arg::Int(d.into());
    }

    fn bits(&mut self, i: usize, b: u64) {
        self.0[i] = Arg::Bits(b);
    }

    fn f32(&mut self, i: usize, v: f32) {
        self.0[i] = Arg::Bits(v.to_bits() as u64);
    }

    /// The address of `op` plus `elems` elements.
    fn ptr(&mut self, i: usize, op: &Operand, elems: &Dim) {
        self.0[i] = Arg::Ptr {
            buf: op.buf,
            offset: op
                .offset
                .add(&elems.mul(&Dim::from(op.dtype.size() as i64))),
        };
    }

    /// A 5-slot view: address (+ `elems`), element code, strides for (batch, head, seq).
    fn view(&mut self, i: usize, op: &Operand, code: u64, elems: &Dim, st: [Dim; 3]) {
        self.ptr(i, op, elems);
        self.bits(i + 1, code);
        let [a, b, c] = st;
        self.int(i + 2, a);
        self.int(i + 3, b);
        self.int(i + 4, c);
    }
}

/// The mask strides (b, h, i, j) of a tensor of `shape` (rank <= 4) broadcast against the
/// full `[B, H, S, T]`: axes of size 1 get stride 0 when `broadcast_last` or not the last.
fn mask_strides(shape: &[Dim], broadcast_last: bool) -> [Dim; 4] {
    let mut dims = vec![Dim::from(1i64); 4 - shape.len()];
    dims.extend_from_slice(shape);
    let st = strides(&dims);
    let mut out: [Dim; 4] = std::array::from_fn(|a| st[a].clone());
    for a in 0..4 {
        if dims[a].as_const() == Some(1) && (a < 3 || broadcast_last) {
            out[a] = Dim::from(0i64);
        }
    }
    out
}

/// Sets a 7-slot mask at `i`: address, element code, four strides, columns.
fn set_mask(s: &mut Slots, i: usize, op: &Operand, code: u64, st: [Dim; 4], cols: Dim) {
    s.ptr(i, op, &Dim::from(0i64));
    s.bits(i + 1, code);
    for (a, d) in st.into_iter().enumerate() {
        s.int(i + 2 + a, d);
    }
    s.int(i + 6, cols);
}
