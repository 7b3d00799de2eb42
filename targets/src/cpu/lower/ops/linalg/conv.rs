//! Conv, ConvInteger, ConvTranspose through the runtime's convolution helpers (f32: im2col
//! panels and GEMM; other dtypes and zero points: direct, in f64). The window geometry
//! (pads resolved for `auto_pad`, symbolic where the input is) travels as arguments.

use kiln_ir::attr::{Attrs, AttrsExt};
use kiln_ir::dim::Dim;
use kiln_ir::dtype::DType;
use kiln_ir::graph::NodeId;
use kiln_ir::ops::conv::window::{ints_attr, AutoPad, Window};

use super::{dtype_code, input_type};
use crate::cpu::lower::{Arg, Lowerer, Operand};
use crate::error::TargetError;

/// Begin and end pads of a forward window over `input` producing `out`.
pub(super) fn forward_pads(win: &Window, input: &[Dim], out: &[Dim]) -> (Vec<Dim>, Vec<Dim>) {
    let n = win.rank();
    let mut begin = Vec::with_capacity(n);
    let mut end = Vec::with_capacity(n);
    for i in 0..n {
        let (b, e) = match win.auto_pad {
            AutoPad::NotSet => (Dim::from(win.pads[i]), Dim::from(win.pads[n + i])),
            AutoPad::Valid => (Dim::from(0i64), Dim::from(0i64)),
            AutoPad::SameUpper | AutoPad::SameLower => {
                let total = out[i]
                    .sub(&Dim::from(1i64))
                    .mul(&Dim::from(win.strides[i]))
                    .add(&Dim::from(win.span(i)))
                    .sub(&input[i])
                    .maximum(&Dim::from(0i64));
                let half = total.floor_div(&Dim::from(2i64));
                if win.auto_pad == AutoPad::SameUpper {
                    (half.clone(), total.sub(&half))
                } else {
                    (total.sub(&half), half)
                }
            }
        };
        begin.push(b);
        end.push(e);
    }
    (begin, end)
}

/// The geometry slots the helpers take (see runtime `helpers/conv.rs`).
#[allow(clippy::too_many_arguments)]
pub(super) fn geometry(
    batch: &Dim,
    channels: &Dim,
    input: &[Dim],
    out: &[Dim],
    kernel: &[Dim],
    win: &Window,
    pad_begin: &[Dim],
    pad_end: &[Dim],
) -> Vec<Arg> {
    let mut a = vec![
        Arg::Bits(input.len() as u64),
        Arg::Int(batch.clone()),
        Arg::Int(channels.clone()),
    ];
    for list in [input, out, kernel] {
        a.extend(list.iter().cloned().map(Arg::Int));
    }
    a.extend(win.strides.iter().map(|&s| Arg::Int(Dim::from(s))));
    a.extend(win.dilations.iter().map(|&s| Arg::Int(Dim::from(s))));
    for list in [pad_begin, pad_end] {
        a.extend(list.iter().cloned().map(Arg::Int));
    }
    a
}

/// The kernel's spatial dims: the weight's, which must agree with `kernel_shape` if given.
fn kernel_dims(lw: &Lowerer, attrs: &Attrs, w: &[Dim]) -> Result<Vec<i64>, TargetError> {
    let attr = attrs.ints("kernel_shape").map_err(|e| lw.error(e))?;
    let from_w: Option<Vec<i64>> = w[2..].iter().map(|d| d.as_const()).collect();
    match (attr, from_w) {
        (Some(k), Some(wk)) if !k.is_empty() && k != wk => Err(lw.error(format!(
            "kernel_shape {k:?} does not match the weight's spatial dims {wk:?}"
        ))),
        (_, Some(wk)) => Ok(wk),
        (Some(k), None) if !k.is_empty() => Ok(k),
        _ => Err(lw.unsupported("a weight with symbolic spatial dims")),
    }
}

fn group(lw: &Lowerer, attrs: &Attrs) -> Result<i64, TargetError> {
    let g = attrs.int_or("group", 1).map_err(|e| lw.error(e))?;
    if g < 1 {
        return Err(lw.error(format!("group must be positive, got {g}")));
    }
    Ok(g)
}

fn slots(op: &Option<Operand>) -> [Arg; 2] {
    match op {
        Some(o) => [o.ptr(), Arg::Bits(dtype_code(o.dtype))],
        None => [Arg::Bits(0), Arg::Bits(0)],
    }
}

/// Which node inputs a convolution reads.
struct ConvInputs {
    x: usize,
    w: usize,
    bias: Option<usize>,
    x_zero: Option<usize>,
    w_zero: Option<usize>,
}

/// Emits the `conv` helper for the node's convolution, writing `y` (of the node's output
/// shape; its dtype may differ, e.g. an f64 accumulator).
fn emit_conv(
    lw: &mut Lowerer,
    id: NodeId,
    ins: &ConvInputs,
    y: &Operand,
) -> Result<(), TargetError> {
    let attrs = lw.graph.node(id).attrs.clone();
    let (xt, wt) = (input_type(lw, id, ins.x)?, input_type(lw, id, ins.w)?);
    if xt.shape.len() < 3 || wt.shape.len() != xt.shape.len() {
        return Err(lw.error("Conv needs [N, C, spatial...] input and weight of equal rank"));
    }
    let kernel = kernel_dims(lw, &attrs, &wt.shape)?;
    let win = Window::from_attrs(&attrs, kernel.clone()).map_err(|e| lw.error(e))?;
    let g = group(lw, &attrs)?;
    let input = &xt.shape[2..];
    let out = y.shape[2..].to_vec();
    let (pb, pe) = forward_pads(&win, input, &out);
    let (x, w) = (lw.input(id, ins.x)?, lw.input(id, ins.w)?);
    let opt = |lw: &mut Lowerer, i: Option<usize>| i.and_then(|i| lw.opt_input(id, i));
    let (bias, xzp, wzp) = (opt(lw, ins.bias), opt(lw, ins.x_zero), opt(lw, ins.w_zero));
    if let Some(z) = &xzp {
        if z.numel().as_const() != Some(1) {
            return Err(lw.unsupported("an input zero point that is not a scalar"));
        }
    }
    let wzp_count = match &wzp {
        Some(z) => {
            let n = z.numel();
            if n.as_const() != Some(1) && n != wt.shape[0] {
                return Err(lw.error("the weight zero point must have 1 or M elements"));
            }
            n
        }
        None => Dim::from(1i64),
    };
    let callee = lw.helper("conv")?;
    let mut args = vec![
        x.ptr(),
        Arg::Bits(dtype_code(x.dtype)),
        w.ptr(),
        Arg::Bits(dtype_code(w.dtype)),
        y.ptr(),
        Arg::Bits(dtype_code(y.dtype)),
    ];
    args.extend(slots(&bias));
    args.extend(slots(&xzp));
    args.extend(slots(&wzp));
    args.extend([
        Arg::Int(wzp_count),
        Arg::Bits(g as u64),
        Arg::Int(wt.shape[0].clone()),
    ]);
    let kd: Vec<Dim> = kernel.iter().map(|&k| Dim::from(k)).collect();
    args.extend(geometry(
        &xt.shape[0],
        &xt.shape[1],
        input,
        &out,
        &kd,
        &win,
        &pb,
        &pe,
    ));
    lw.emit(callee, args);
    Ok(())
}

pub fn conv(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let y = lw.output(id, 0);
    let ins = ConvInputs {
        x: 0,
        w: 1,
        bias: Some(2),
        x_zero: None,
        w_zero: None,
    };
    emit_conv(lw, id, &ins, &y)
}

pub fn conv_integer(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let y = lw.output(id, 0);
    let ins = ConvInputs {
        x: 0,
        w: 1,
        bias: None,
        x_zero: Some(2),
        w_zero: Some(3),
    };
    emit_conv(lw, id, &ins, &y)
}

/// QLinearConv: the convolution of the zero-point-shifted operands plus the int32 bias,
/// exact in an f64 accumulator, then requantized with `x_scale · w_scale / y_scale` (in
/// f32) and `y_zero_point`.
pub fn qlinear_conv(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let y = lw.output(id, 0);
    let acc = lw.scratch("accumulator", DType::F64, y.shape.clone());
    let ins = ConvInputs {
        x: 0,
        w: 3,
        bias: Some(8),
        x_zero: Some(2),
        w_zero: Some(5),
    };
    emit_conv(lw, id, &ins, &acc)?;
    let rank = y.shape.len();
    let mut params = Vec::new();
    for i in [1, 4, 6, 7] {
        let p = lw.opt_input(id, i);
        let mut st = vec![Dim::from(0i64); rank];
        if let Some(p) = &p {
            let n = p.numel();
            if n.as_const() != Some(1) {
                if i != 4 || n != y.shape[1] {
                    return Err(
                        lw.unsupported(format!("QLinearConv parameter {i} of shape {:?}", p.shape))
                    );
                }
                st[1] = Dim::from(1i64);
            }
        }
        params.push((p, st));
    }
    let callee = lw.helper("qlinear_requantize")?;
    let mut args = vec![
        acc.ptr(),
        y.ptr(),
        Arg::Bits(dtype_code(y.dtype)),
        Arg::Bits(dtype_code(DType::F32)),
        Arg::Bits(rank as u64),
    ];
    args.extend(y.shape.iter().cloned().map(Arg::Int));
    for (p, st) in params {
        args.extend(slots(&p));
        args.extend(st.into_iter().map(Arg::Int));
    }
    lw.emit(callee, args);
    Ok(())
}

/// DeformConv: inputs X, W, offset, B (optional), mask (optional).
pub fn deform_conv(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let attrs = lw.graph.node(id).attrs.clone();
    let (xt, wt) = (input_type(lw, id, 0)?, input_type(lw, id, 1)?);
    if xt.shape.len() < 3 || wt.shape.len() != xt.shape.len() {
        return Err(lw.error("DeformConv needs [N, C, spatial...] input and weight of equal rank"));
    }
    let kernel = kernel_dims(lw, &attrs, &wt.shape)?;
    let win = Window::from_attrs(&attrs, kernel.clone()).map_err(|e| lw.error(e))?;
    if win.auto_pad != AutoPad::NotSet {
        return Err(lw.error("DeformConv has no auto_pad"));
    }
    let g = group(lw, &attrs)?;
    let og = attrs.int_or("offset_group", 1).map_err(|e| lw.error(e))?;
    if og < 1 {
        return Err(lw.error(format!("offset_group {og} must be positive")));
    }
    let y = lw.output(id, 0);
    let input = &xt.shape[2..];
    let out = y.shape[2..].to_vec();
    let (pb, pe) = forward_pads(&win, input, &out);
    let (x, w, off) = (lw.input(id, 0)?, lw.input(id, 1)?, lw.input(id, 2)?);
    let (bias, mask) = (lw.opt_input(id, 3), lw.opt_input(id, 4));
    let callee = lw.helper("deform_conv")?;
    let mut args = vec![
        x.ptr(),
        Arg::Bits(dtype_code(x.dtype)),
        w.ptr(),
        Arg::Bits(dtype_code(w.dtype)),
        off.ptr(),
        Arg::Bits(dtype_code(off.dtype)),
    ];
    args.extend(slots(&bias));
    args.extend(slots(&mask));
    args.extend([
        y.ptr(),
        Arg::Bits(g as u64),
        Arg::Int(wt.shape[0].clone()),
        Arg::Bits(og as u64),
    ]);
    let kd: Vec<Dim> = kernel.iter().map(|&k| Dim::from(k)).collect();
    args.extend(geometry(
        &xt.shape[0],
        &xt.shape[1],
        input,
        &out,
        &kd,
        &win,
        &pb,
        &pe,
    ));
    lw.emit(callee, args);
    Ok(())
}

/// CausalConvWithState: depthwise causal 1-D convolution with a carried state.
pub fn causal_conv(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let silu = match lw
        .graph
        .node(id)
        .attrs
        .str_or("activation", "none")
        .map_err(|e| lw.error(e))?
    {
        "none" => false,
        "silu" | "swish" => true,
        a => return Err(lw.error(format!("activation \"{a}\" is not none, silu or swish"))),
    };
    let (x, w) = (lw.input(id, 0)?, lw.input(id, 1)?);
    if x.shape.len() != 3 || w.shape.len() != 3 {
        return Err(lw.error("CausalConvWithState needs [B, C, L] input and [C, 1, k] weight"));
    }
    let (bias, past) = (lw.opt_input(id, 2), lw.opt_input(id, 3));
    let y = lw.output(id, 0);
    let state = if lw.graph.node(id).outputs.len() > 1 {
        lw.output(id, 1).ptr()
    } else {
        Arg::Bits(0)
    };
    let callee = lw.helper("causal_conv")?;
    let mut args = vec![
        x.ptr(),
        Arg::Bits(dtype_code(x.dtype)),
        w.ptr(),
        Arg::Bits(dtype_code(w.dtype)),
    ];
    args.extend(slots(&bias));
    args.extend(slots(&past));
    args.extend([
        y.ptr(),
        state,
        Arg::Int(x.shape[0].clone()),
        Arg::Int(x.shape[1].clone()),
        Arg::Int(x.shape[2].clone()),
        Arg::Int(w.shape[2].clone()),
        Arg::Bits(u64::from(silu)),
    ]);
    lw.emit(callee, args);
    Ok(())
}

pub fn conv_transpose(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let attrs = lw.graph.node(id).attrs.clone();
    let (xt, wt) = (input_type(lw, id, 0)?, input_type(lw, id, 1)?);
    if xt.shape.len() < 3 || wt.shape.len() != xt.shape.len() {
        return Err(
            lw.error("ConvTranspose needs [N, C, spatial...] input and weight of equal rank")
        );
    }
    let n = xt.shape.len() - 2;
    let kernel = kernel_dims(lw, &attrs, &wt.shape)?;
    let win = Window::from_attrs(&attrs, kernel.clone()).map_err(|e| lw.error(e))?;
    let g = group(lw, &attrs)?;
    let out_pad = ints_attr(&attrs, "output_padding", n, 0, 0).map_err(|e| lw.error(e))?;
    let has_output_shape = matches!(
        attrs.ints("output_shape").map_err(|e| lw.error(e))?,
        Some(v) if !v.is_empty()
    );
    let y = lw.output(id, 0);
    let out = y.shape[2..].to_vec();
    let input = &xt.shape[2..];
    let mut pb = Vec::with_capacity(n);
    for i in 0..n {
        let full = input[i]
            .sub(&Dim::from(1i64))
            .mul(&Dim::from(win.strides[i]))
            .add(&Dim::from(out_pad[i] + win.span(i)));
        pb.push(if has_output_shape || win.auto_pad.is_same() {
            let total = full.sub(&out[i]).maximum(&Dim::from(0i64));
            let half = total.floor_div(&Dim::from(2i64));
            if win.auto_pad == AutoPad::SameUpper {
                half
            } else {
                total.sub(&half)
            }
        } else if win.auto_pad == AutoPad::Valid {
            Dim::from(0i64)
        } else {
            Dim::from(win.pads[i])
        });
    }
    let pe = vec![Dim::from(0i64); n];
    let (x, w) = (lw.input(id, 0)?, lw.input(id, 1)?);
    let bias = lw.opt_input(id, 2);
    let callee = lw.helper("conv_transpose")?;
    let mut args = vec![
        x.ptr(),
        Arg::Bits(dtype_code(x.dtype)),
        w.ptr(),
        Arg::Bits(dtype_code(w.dtype)),
        y.ptr(),
        Arg::Bits(dtype_code(y.dtype)),
    ];
    args.extend(slots(&bias));
    args.extend([Arg::Bits(g as u64), Arg::Int(y.shape[1].clone())]);
    let kd: Vec<Dim> = kernel.iter().map(|&k| Dim::from(k)).collect();
    // The forward geometry over Y: its "input" is Y's spatial dims, its windows X's.
    args.extend(geometry(
        &xt.shape[0],
        &xt.shape[1],
        &out,
        input,
        &kd,
        &win,
        &pb,
        &pe,
    ));
    lw.emit(callee, args);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::cpu::testing::{check, floats};
    use kiln_ir::{DType, Tensor};

    fn run(x: &[usize], w: &[usize], y: &str, attrs: &str, bias: bool) {
        let fmt = |s: &[usize]| {
            s.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut inputs = vec![floats(x, 1), floats(w, 2)];
        let (bp, ba) = if bias {
            inputs.push(floats(&[w[0]], 3));
            (format!(", %b: f32[{}]", w[0]), ", %b")
        } else {
            (String::new(), "")
        };
        check(
            &format!(
                "graph @t(%x: f32[{}], %w: f32[{}]{bp}) -> (y: f32[{y}]) {{
                   %0 = Conv(%x, %w{ba}) {attrs} : f32[{y}]
                   return %0
                 }}",
                fmt(x),
                fmt(w)
            ),
            &inputs,
            1e-4,
            1e-5,
        );
    }

    #[test]
    fn conv_shapes_and_attributes() {
        run(&[1, 1, 5, 5], &[1, 1, 3, 3], "1, 1, 3, 3", "", false);
        run(
            &[2, 3, 7, 6],
            &[4, 3, 3, 2],
            "2, 4, 4, 3",
            "{pads = [1, 0, 1, 1], strides = [2, 2]}",
            true,
        );
        run(
            &[1, 4, 9],
            &[6, 2, 3],
            "1, 6, 5",
            "{dilations = [2], group = 2}",
            true,
        );
        run(
            &[1, 2, 5, 6],
            &[3, 2, 3, 3],
            "1, 3, 3, 3",
            "{auto_pad = \"SAME_UPPER\", strides = [2, 2]}",
            false,
        );
        run(
            &[1, 2, 5, 6],
            &[3, 2, 2, 3],
            "1, 3, 5, 6",
            "{auto_pad = \"SAME_LOWER\"}",
            false,
        );
        run(
            &[1, 2, 4, 4, 4],
            &[2, 2, 2, 2, 2],
            "1, 2, 3, 3, 3",
            "{auto_pad = \"VALID\"}",
            true,
        );
    }

    #[test]
    fn conv_symbolic_length() {
        check(
            "graph @t(%x: f32[1, 2, seq], %w: f32[3, 2, 3]) -> (y: f32[1, 3, seq]) {
               %0 = Conv(%x, %w) {auto_pad = \"SAME_UPPER\"} : f32[1, 3, seq]
               return %0
             }",
            &[floats(&[1, 2, 11], 1), floats(&[3, 2, 3], 2)],
            1e-4,
            1e-5,
        );
    }

    #[test]
    fn conv_integer_and_f64() {
        let x = Tensor::from_i64(
            DType::U8,
            vec![1, 1, 4, 4],
            &(0..16).map(|v| v * 13 % 256).collect::<Vec<_>>(),
        );
        let w = Tensor::from_i64(DType::U8, vec![2, 1, 2, 2], &[1, 2, 3, 4, 250, 6, 7, 8]);
        check(
            "graph @t(%x: u8[1, 1, 4, 4], %w: u8[2, 1, 2, 2], %xz: u8[], %wz: u8[2]) -> (y: i32[1, 2, 4, 4]) {
               %0 = ConvInteger(%x, %w, %xz, %wz) {pads = [1, 1, 0, 0]} : i32[1, 2, 4, 4]
               return %0
             }",
            &[
                x,
                w,
                Tensor::from_i64(DType::U8, vec![], &[3]),
                Tensor::from_i64(DType::U8, vec![2], &[1, 200]),
            ],
            0.0,
            0.0,
        );
        check(
            "graph @t(%x: f64[1, 2, 5], %w: f64[2, 2, 2]) -> (y: f64[1, 2, 2]) {
               %0 = Conv(%x, %w) {strides = [2]} : f64[1, 2, 2]
               return %0
             }",
            &[
                floats(&[1, 2, 5], 1).cast(DType::F64),
                floats(&[2, 2, 2], 2).cast(DType::F64),
            ],
            1e-12,
            1e-12,
        );
    }

    #[test]
    fn conv_transpose_variants() {
        let cases: &[(&[usize], &[usize], &str, &str)] = &[
            (&[1, 1, 3, 3], &[1, 2, 3, 3], "1, 2, 5, 5", ""),
            (
                &[1, 2, 3, 3],
                &[2, 2, 3, 3],
                "1, 2, 9, 9",
                "{pads = [1, 1, 1, 1], strides = [3, 3], output_padding = [2, 2]}",
            ),
            (
                &[1, 4, 5],
                &[4, 1, 3],
                "1, 2, 9",
                "{group = 2, dilations = [2]}",
            ),
            (
                &[1, 1, 3, 3],
                &[1, 2, 3, 3],
                "1, 2, 6, 6",
                "{auto_pad = \"SAME_UPPER\", strides = [2, 2]}",
            ),
            (
                &[1, 1, 3],
                &[1, 2, 3],
                "1, 2, 10",
                "{output_shape = [10], strides = [3]}",
            ),
        ];
        let fmt = |s: &[usize]| {
            s.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (x, w, y, attrs) in cases {
            let m = w[1] * if attrs.contains("group = 2") { 2 } else { 1 };
            check(
                &format!(
                    "graph @t(%x: f32[{}], %w: f32[{}], %b: f32[{m}]) -> (y: f32[{y}]) {{
                       %0 = ConvTranspose(%x, %w, %b) {attrs} : f32[{y}]
                       return %0
                     }}",
                    fmt(x),
                    fmt(w)
                ),
                &[floats(x, 1), floats(w, 2), floats(&[m], 3)],
                1e-4,
                1e-5,
            );
        }
    }
    #[test]
    fn causal_qlinear_and_deform() {
        check(
            "graph @t(%x: f32[2, 3, seq], %w: f32[3, 1, 4], %b: f32[3], %p: f32[2, 3, 3]) -> (y: f32[2, 3, seq], s: f32[2, 3, 3]) {
               %0, %1 = CausalConvWithState(%x, %w, %b, %p) {activation = \"silu\"} : f32[2, 3, seq], f32[2, 3, 3]
               return %0, %1
             }",
            &[
                floats(&[2, 3, 5], 1),
                floats(&[3, 1, 4], 2),
                floats(&[3], 3),
                floats(&[2, 3, 3], 4),
            ],
            1e-5,
            1e-6,
        );
        let x = Tensor::from_i64(
            DType::U8,
            vec![1, 2, 4, 4],
            &(0..32).map(|v| v * 7 % 256).collect::<Vec<_>>(),
        );
        let w = Tensor::from_i64(
            DType::I8,
            vec![3, 2, 2, 2],
            &(0..24).map(|v| v * 11 % 256 - 128).collect::<Vec<_>>(),
        );
        let f = |v: &[f32]| Tensor::from_f32s(vec![v.len()], v.to_vec()).unwrap();
        let s = |v: f32| Tensor::from_f32s(vec![], vec![v]).unwrap();
        check(
            "graph @t(%x: u8[1, 2, 4, 4], %xs: f32[], %xz: u8[], %w: i8[3, 2, 2, 2], %ws: f32[3], %wz: i8[], %ys: f32[], %yz: u8[], %b: i32[3]) -> (y: u8[1, 3, 3, 3]) {
               %0 = QLinearConv(%x, %xs, %xz, %w, %ws, %wz, %ys, %yz, %b) : u8[1, 3, 3, 3]
               return %0
             }",
            &[
                x,
                s(0.05),
                Tensor::from_i64(DType::U8, vec![], &[10]),
                w,
                f(&[0.01, 0.02, 0.005]),
                Tensor::from_i64(DType::I8, vec![], &[0]),
                s(0.3),
                Tensor::from_i64(DType::U8, vec![], &[100]),
                Tensor::from_i64(DType::I32, vec![3], &[-50, 0, 75]),
            ],
            0.0,
            0.0,
        );
        let off = floats(&[1, 8, 2, 2], 5);
        check(
            "graph @t(%x: f32[1, 2, 3, 3], %w: f32[2, 2, 2, 2], %o: f32[1, 8, 2, 2], %b: f32[2], %m: f32[1, 4, 2, 2]) -> (y: f32[1, 2, 2, 2]) {
               %0 = DeformConv(%x, %w, %o, %b, %m) : f32[1, 2, 2, 2]
               return %0
             }",
            &[
                floats(&[1, 2, 3, 3], 1),
                floats(&[2, 2, 2, 2], 2),
                off,
                floats(&[2], 3),
                floats(&[1, 4, 2, 2], 4),
            ],
            1e-5,
            1e-6,
        );
    }
}
