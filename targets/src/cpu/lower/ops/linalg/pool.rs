//! AveragePool, MaxPool (with indices), LpPool and the global pools through the runtime's
//! `pool` helper; a global pool is one window covering the whole plane.

use kiln_ir::attr::AttrsExt;
use kiln_ir::dim::Dim;
use kiln_ir::graph::NodeId;
use kiln_ir::ops::conv::window::{AutoPad, Window};

use super::conv::{forward_pads, geometry};
use super::{dtype_code, input_type};
use crate::cpu::lower::{Arg, Lowerer};
use crate::error::TargetError;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Average,
    Max,
    Lp,
}

fn p_attr(lw: &Lowerer, id: NodeId) -> Result<f64, TargetError> {
    let p = lw
        .graph
        .node(id)
        .attrs
        .float_or("p", 2.0)
        .map_err(|e| lw.error(e))? as f64;
    if p <= 0.0 {
        return Err(lw.error(format!("p must be positive, got {p}")));
    }
    Ok(p)
}

fn lower_pool(lw: &mut Lowerer, id: NodeId, kind: Kind, global: bool) -> Result<(), TargetError> {
    let attrs = lw.graph.node(id).attrs.clone();
    let xt = input_type(lw, id, 0)?;
    if xt.shape.len() < 3 {
        return Err(lw.unsupported("a pool of an input without spatial axes"));
    }
    let n = xt.shape.len() - 2;
    let input = xt.shape[2..].to_vec();
    let y = lw.output(id, 0);
    let out = y.shape[2..].to_vec();
    let (win, kernel, pb, pe) = if global {
        let win = Window {
            kernel: vec![1; n],
            strides: vec![1; n],
            dilations: vec![1; n],
            pads: vec![0; 2 * n],
            auto_pad: AutoPad::NotSet,
            ceil_mode: false,
        };
        let z = vec![Dim::from(0i64); n];
        (win, input.clone(), z.clone(), z)
    } else {
        let win = Window::from_kernel_attr(&attrs).map_err(|e| lw.error(e))?;
        if win.rank() != n {
            return Err(lw.error(format!(
                "kernel_shape has {} dims, the input {n} spatial dims",
                win.rank()
            )));
        }
        let (pb, pe) = forward_pads(&win, &input, &out);
        let k = win.kernel.iter().map(|&k| Dim::from(k)).collect();
        (win, k, pb, pe)
    };
    let include_pad = attrs
        .int_or("count_include_pad", 0)
        .map_err(|e| lw.error(e))?
        != 0;
    let storage = attrs.int_or("storage_order", 0).map_err(|e| lw.error(e))?;
    if !(0..=1).contains(&storage) {
        return Err(lw.error(format!("storage_order must be 0 or 1, got {storage}")));
    }
    let p = if kind == Kind::Lp {
        p_attr(lw, id)?
    } else {
        2.0
    };
    let indices = if kind == Kind::Max && lw.graph.node(id).outputs.len() > 1 {
        lw.output(id, 1).ptr()
    } else {
        Arg::Bits(0)
    };
    let x = lw.input(id, 0)?;
    let callee = lw.helper("pool")?;
    let mut args = vec![
        x.ptr(),
        Arg::Bits(dtype_code(x.dtype)),
        y.ptr(),
        indices,
        Arg::Bits(match kind {
            Kind::Average => 0,
            Kind::Max => 1,
            Kind::Lp => 2,
        }),
        Arg::Bits(u64::from(include_pad)),
        Arg::Bits(p.to_bits()),
        Arg::Bits(storage as u64),
    ];
    args.extend(geometry(
        &xt.shape[0],
        &xt.shape[1],
        &input,
        &out,
        &kernel,
        &win,
        &pb,
        &pe,
    ));
    lw.emit(callee, args);
    Ok(())
}

pub fn max_pool(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    lower_pool(lw, id, Kind::Max, false)
}

pub fn average_pool(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    lower_pool(lw, id, Kind::Average, false)
}

pub fn lp_pool(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    lower_pool(lw, id, Kind::Lp, false)
}

pub fn global_average_pool(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    lower_pool(lw, id, Kind::Average, true)
}

pub fn global_max_pool(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    lower_pool(lw, id, Kind::Max, true)
}

pub fn global_lp_pool(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    lower_pool(lw, id, Kind::Lp, true)
}

/// Col2Im: columns `[N, C*prod(block), L]` summed back into `[N, C, image...]`.
pub fn col2im(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let attrs = lw.graph.node(id).attrs.clone();
    let image = lw
        .dims_input(id, 1)
        .ok_or_else(|| lw.unsupported("Col2Im with an image_shape computed at run time"))?;
    let block: Vec<i64> = lw
        .dims_input(id, 2)
        .and_then(|b| b.iter().map(|d| d.as_const()).collect())
        .ok_or_else(|| lw.unsupported("Col2Im with a block_shape not known at compile time"))?;
    if block.len() != image.len() || block.is_empty() {
        return Err(lw.error("image_shape and block_shape must have the same, non-zero length"));
    }
    let win = Window::from_attrs(&attrs, block.clone()).map_err(|e| lw.error(e))?;
    let out = win.out_dims(&image).map_err(|e| lw.error(e))?;
    let (pb, pe) = forward_pads(&win, &image, &out);
    let x = lw.input(id, 0)?;
    let y = lw.output(id, 0);
    let kernel: Vec<Dim> = block.iter().map(|&k| Dim::from(k)).collect();
    let callee = lw.helper("col2im")?;
    let mut args = vec![x.ptr(), Arg::Bits(dtype_code(x.dtype)), y.ptr()];
    args.extend(geometry(
        &y.shape[0],
        &y.shape[1],
        &image,
        &out,
        &kernel,
        &win,
        &pb,
        &pe,
    ));
    lw.emit(callee, args);
    Ok(())
}

/// MaxUnpool: scatters X to the flat positions I of the unpooled tensor, zeros elsewhere.
pub fn max_unpool(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let attrs = lw.graph.node(id).attrs.clone();
    let win = Window::from_kernel_attr(&attrs).map_err(|e| lw.error(e))?;
    let (x, ind) = (lw.input(id, 0)?, lw.input(id, 1)?);
    let n = win.rank();
    if x.shape.len() != n + 2 {
        return Err(lw.error("kernel_shape does not match the input's spatial dims"));
    }
    let mut natural = x.shape[..2].to_vec();
    for i in 0..n {
        natural.push(
            x.shape[2 + i]
                .sub(&Dim::from(1i64))
                .mul(&Dim::from(win.strides[i]))
                .add(&Dim::from(win.kernel[i] - win.pads[i] - win.pads[n + i])),
        );
    }
    let y = lw.output(id, 0);
    let callee = lw.helper("max_unpool")?;
    let mut args = vec![
        x.ptr(),
        Arg::Bits(dtype_code(x.dtype)),
        ind.ptr(),
        Arg::Int(x.numel()),
        y.ptr(),
        Arg::Bits((n + 2) as u64),
    ];
    args.extend(natural.into_iter().map(Arg::Int));
    args.extend(y.shape.iter().cloned().map(Arg::Int));
    lw.emit(callee, args);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::cpu::testing::{check, floats};
    use kiln_ir::DType;

    #[test]
    fn pools() {
        let x = floats(&[2, 3, 6, 7], 1);
        for (op, attrs, y) in [
            ("MaxPool", "{kernel_shape = [3, 3]}", "2, 3, 4, 5"),
            (
                "MaxPool",
                "{ceil_mode = 1, kernel_shape = [2, 2], pads = [1, 1, 1, 1], strides = [2, 2]}",
                "2, 3, 4, 4",
            ),
            (
                "MaxPool",
                "{dilations = [2, 2], kernel_shape = [2, 2]}",
                "2, 3, 4, 5",
            ),
            (
                "AveragePool",
                "{count_include_pad = 1, kernel_shape = [3, 3], pads = [1, 1, 1, 1]}",
                "2, 3, 6, 7",
            ),
            (
                "AveragePool",
                "{auto_pad = \"SAME_LOWER\", kernel_shape = [2, 3], strides = [2, 1]}",
                "2, 3, 3, 7",
            ),
            (
                "AveragePool",
                "{ceil_mode = 1, kernel_shape = [3, 3], strides = [2, 2]}",
                "2, 3, 3, 3",
            ),
            ("LpPool", "{kernel_shape = [2, 2], p = 3}", "2, 3, 5, 6"),
            ("GlobalAveragePool", "", "2, 3, 1, 1"),
            ("GlobalMaxPool", "", "2, 3, 1, 1"),
            ("GlobalLpPool", "{p = 2}", "2, 3, 1, 1"),
        ] {
            check(
                &format!(
                    "graph @t(%x: f32[2, 3, 6, 7]) -> (y: f32[{y}]) {{
                       %0 = {op}(%x) {attrs} : f32[{y}]
                       return %0
                     }}"
                ),
                std::slice::from_ref(&x),
                1e-5,
                1e-6,
            );
        }
        check(
            "graph @t(%x: f32[2, 3, 6, 7]) -> (y: f32[2, 3, 3, 3], i: i64[2, 3, 3, 3]) {
               %0, %1 = MaxPool(%x) {kernel_shape = [2, 3], storage_order = 1, strides = [2, 2]} : f32[2, 3, 3, 3], i64[2, 3, 3, 3]
               return %0, %1
             }",
            std::slice::from_ref(&x),
            0.0,
            0.0,
        );
        check(
            "graph @t(%x: u8[2, 3, 6, 7]) -> (y: u8[2, 3, 5, 6]) {
               %0 = MaxPool(%x) {kernel_shape = [2, 2]} : u8[2, 3, 5, 6]
               return %0
             }",
            &[x.cast(DType::U8)],
            0.0,
            0.0,
        );
    }
}
