//! QuantizeLinear, DequantizeLinear (per tensor, per axis, blocked) and
//! DynamicQuantizeLinear, through the runtime's quantization helpers.

use kiln_ir::attr::{Attr, Attrs, AttrsExt};
use kiln_ir::dim::Dim;
use kiln_ir::dtype::DType;
use kiln_ir::graph::NodeId;

use super::{dtype_code, prod};
use crate::cpu::lower::{Arg, Lowerer, Operand};
use crate::error::TargetError;

/// The granularity slots `mode, len, blocks, block, inner` of a parameter of shape `p` for
/// `x` of shape `xs`.
fn granularity(
    lw: &Lowerer,
    attrs: &Attrs,
    xs: &[Dim],
    p: &[Dim],
) -> Result<Vec<Arg>, TargetError> {
    let zero = || Arg::Bits(0);
    if p.is_empty() || prod(p).as_const() == Some(1) {
        return Ok(vec![zero(), zero(), zero(), zero(), zero()]);
    }
    let block = attrs.int_or("block_size", 0).map_err(|e| lw.error(e))?;
    let axis = attrs.int_or("axis", 1).map_err(|e| lw.error(e))?;
    let r = xs.len() as i64;
    if axis < -r || axis >= r {
        return Err(lw.error(format!("axis {axis} is out of range for rank {r}")));
    }
    let ax = axis.rem_euclid(r.max(1)) as usize;
    let inner = prod(&xs[ax + 1..]);
    let len = xs[ax].clone();
    if block < 0 {
        return Err(lw.error(format!("block_size {block} must not be negative")));
    }
    if block == 0 {
        if p.len() != 1 || p[0] != len {
            return Err(lw.error(format!(
                "a parameter of shape {p:?} is neither per tensor nor per axis {ax} of {xs:?}"
            )));
        }
        return Ok(vec![
            Arg::Bits(1),
            Arg::Int(len),
            zero(),
            zero(),
            Arg::Int(inner),
        ]);
    }
    let blocks = len.ceil_div(&Dim::from(block));
    if p.len() != xs.len() || p[ax] != blocks {
        return Err(lw.error(format!(
            "a parameter of shape {p:?} does not block {xs:?} on axis {ax} by {block}"
        )));
    }
    Ok(vec![
        Arg::Bits(2),
        Arg::Int(len),
        Arg::Int(blocks),
        Arg::Bits(block as u64),
        Arg::Int(inner),
    ])
}

/// Pointer and dtype slots of an optional operand (null when absent).
fn opt_slots(op: &Option<Operand>) -> [Arg; 2] {
    match op {
        Some(o) => [o.ptr(), Arg::Bits(dtype_code(o.dtype))],
        None => [Arg::Bits(0), Arg::Bits(0)],
    }
}

pub fn quantize(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let scale = lw.input(id, 1)?;
    let zp = lw.opt_input(id, 2);
    let y = lw.output(id, 0);
    let attrs = lw.graph.node(id).attrs.clone();
    let g = granularity(lw, &attrs, &x.shape, &scale.shape)?;
    let prec = match attrs.get("precision") {
        None | Some(Attr::Int(0)) => scale.dtype,
        Some(Attr::DType(d)) => *d,
        Some(Attr::Int(c)) => i32::try_from(*c)
            .ok()
            .and_then(DType::from_onnx_code)
            .ok_or_else(|| lw.unsupported(format!("precision code {c}")))?,
        Some(a) => return Err(lw.error(format!("`precision` must be a dtype, got {a:?}"))),
    };
    let saturate = attrs.int_or("saturate", 1).map_err(|e| lw.error(e))? != 0;
    let callee = lw.helper("quantize_linear")?;
    let mut args = vec![
        x.ptr(),
        Arg::Bits(dtype_code(x.dtype)),
        y.ptr(),
        Arg::Bits(dtype_code(y.dtype)),
        scale.ptr(),
        Arg::Bits(dtype_code(scale.dtype)),
    ];
    args.extend(opt_slots(&zp));
    args.extend([
        Arg::Bits(dtype_code(prec)),
        Arg::Bits(u64::from(saturate)),
        Arg::Int(x.numel()),
    ]);
    args.extend(g);
    lw.emit(callee, args);
    Ok(())
}

pub fn dequantize(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let scale = lw.input(id, 1)?;
    let zp = lw.opt_input(id, 2);
    let y = lw.output(id, 0);
    let attrs = lw.graph.node(id).attrs.clone();
    let g = granularity(lw, &attrs, &x.shape, &scale.shape)?;
    let callee = lw.helper("dequantize_linear")?;
    let mut args = vec![
        x.ptr(),
        Arg::Bits(dtype_code(x.dtype)),
        y.ptr(),
        Arg::Bits(dtype_code(y.dtype)),
        scale.ptr(),
        Arg::Bits(dtype_code(scale.dtype)),
    ];
    args.extend(opt_slots(&zp));
    args.push(Arg::Int(x.numel()));
    args.extend(g);
    lw.emit(callee, args);
    Ok(())
}

pub fn dynamic_quantize(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    if x.dtype != DType::F32 {
        return Err(lw.unsupported(format!("DynamicQuantizeLinear of {}", x.dtype)));
    }
    let y = lw.output(id, 0);
    let outs = lw.graph.node(id).outputs.len();
    let mut scalar = |i: usize| {
        if i < outs {
            lw.output(id, i).ptr()
        } else {
            Arg::Bits(0)
        }
    };
    let (s, z) = (scalar(1), scalar(2));
    let callee = lw.helper("dynamic_quantize_linear")?;
    lw.emit(callee, vec![x.ptr(), Arg::Int(x.numel()), y.ptr(), s, z]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::cpu::testing::{check, floats};
    use kiln_ir::{DType, Tensor};

    #[test]
    fn quantize_dequantize_granularities() {
        let x = floats(&[2, 3, 4], 1);
        let s = |shape: &[usize], v: Vec<f32>| Tensor::from_f32s(shape.to_vec(), v).unwrap();
        // Per tensor, u8 with zero point.
        check(
            "graph @t(%x: f32[2, 3, 4], %s: f32[], %z: u8[]) -> (y: u8[2, 3, 4], d: f32[2, 3, 4]) {
               %0 = QuantizeLinear(%x, %s, %z) : u8[2, 3, 4]
               %1 = DequantizeLinear(%0, %s, %z) : f32[2, 3, 4]
               return %0, %1
             }",
            &[
                x.clone(),
                s(&[], vec![0.01]),
                Tensor::from_i64(DType::U8, vec![], &[128]),
            ],
            1e-6,
            1e-7,
        );
        // Per axis 1, i8, no zero point on dequantize... and i16 output.
        check(
            "graph @t(%x: f32[2, 3, 4], %s: f32[3], %z: i16[3]) -> (y: i16[2, 3, 4], d: f32[2, 3, 4]) {
               %0 = QuantizeLinear(%x, %s, %z) {axis = 1} : i16[2, 3, 4]
               %1 = DequantizeLinear(%0, %s, %z) {axis = 1} : f32[2, 3, 4]
               return %0, %1
             }",
            &[
                x.clone(),
                s(&[3], vec![0.001, 0.002, 0.0005]),
                Tensor::from_i64(DType::I16, vec![3], &[0, -5, 7]),
            ],
            1e-6,
            1e-7,
        );
        // Blocked along the last axis (4 = blocks of 3, the last partial).
        check(
            "graph @t(%x: f32[2, 3, 4], %s: f32[2, 3, 2]) -> (y: i8[2, 3, 4], d: f32[2, 3, 4]) {
               %0 = QuantizeLinear(%x, %s) {axis = -1, block_size = 3, output_dtype = i8} : i8[2, 3, 4]
               %1 = DequantizeLinear(%0, %s) {axis = -1, block_size = 3} : f32[2, 3, 4]
               return %0, %1
             }",
            &[x.clone(), s(&[2, 3, 2], (1..13).map(|i| i as f32 * 0.003).collect())],
            1e-6,
            1e-7,
        );
        // fp8.
        check(
            "graph @t(%x: f32[2, 3, 4], %s: f32[]) -> (y: f8e4m3fn[2, 3, 4], d: f32[2, 3, 4]) {
               %0 = QuantizeLinear(%x, %s) {output_dtype = f8e4m3fn} : f8e4m3fn[2, 3, 4]
               %1 = DequantizeLinear(%0, %s) : f32[2, 3, 4]
               return %0, %1
             }",
            &[x.clone(), s(&[], vec![0.002])],
            1e-6,
            1e-7,
        );
        check(
            "graph @t(%x: f32[2, 3, 4]) -> (y: u8[2, 3, 4], s: f32[], z: u8[]) {
               %0, %1, %2 = DynamicQuantizeLinear(%x) : u8[2, 3, 4], f32[], u8[]
               return %0, %1, %2
             }",
            &[x],
            0.0,
            0.0,
        );
    }
}
