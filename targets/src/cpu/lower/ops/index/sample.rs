//! Resize, GridSample, AffineGrid, RoiAlign: resampling helpers computed in f64.

use kiln_ir::graph::NodeId;
use kiln_ir::ops::util::axis;
use kiln_ir::AttrsExt;

use super::{attr_float, attr_int, choice, code, computable, int};
use crate::cpu::lower::{Arg, Lowerer, Operand};
use crate::error::TargetError;

/// Pointer, dtype code and element count of an optional small input (roi, scales, sizes);
/// zeros when absent or empty.
fn small(lw: &Lowerer, op: Option<&Operand>) -> Result<[Arg; 3], TargetError> {
    Ok(match op {
        Some(o) if o.numel().as_const() != Some(0) => {
            [o.ptr(), code(lw, o.dtype)?, Arg::Int(o.numel())]
        }
        _ => [Arg::Bits(0), Arg::Bits(0), Arg::Bits(0)],
    })
}

pub fn resize(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    computable(lw, x.dtype)?;
    let rank = x.shape.len();
    let mode = choice(
        lw,
        id,
        "mode",
        "nearest",
        &["nearest", "linear", "cubic"],
        &[],
    )?;
    let coord = choice(
        lw,
        id,
        "coordinate_transformation_mode",
        "half_pixel",
        &[
            "half_pixel",
            "half_pixel_symmetric",
            "pytorch_half_pixel",
            "align_corners",
            "asymmetric",
            "tf_crop_and_resize",
        ],
        &[],
    )?;
    let nearest = choice(
        lw,
        id,
        "nearest_mode",
        "round_prefer_floor",
        &["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"],
        &[],
    )?;
    let policy = choice(
        lw,
        id,
        "keep_aspect_ratio_policy",
        "stretch",
        &["stretch", "not_larger", "not_smaller"],
        &[],
    )?;
    let g = lw.graph;
    let axes = match g.node(id).attrs.ints("axes").map_err(|e| lw.error(e))? {
        Some(v) => v
            .iter()
            .map(|&a| axis(a, rank))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| lw.error(e))?,
        None => (0..rank).collect(),
    };
    let roi = if coord == 5 {
        lw.opt_input(id, 1)
    } else {
        None
    };
    let scales = lw.opt_input(id, 2);
    let sizes = lw.opt_input(id, 3);
    let scales_used = scales.as_ref().filter(|s| s.numel().as_const() != Some(0));
    let sizes_used = if scales_used.is_some() {
        None
    } else {
        sizes.as_ref()
    };
    if scales_used.is_none() && sizes_used.is_none() {
        return Err(lw.error("Resize needs a non-empty `scales` or `sizes` input"));
    }
    let out = lw.output(id, 0);
    let h = lw.helper("index_resize")?;
    let mut args = vec![
        x.ptr(),
        out.ptr(),
        code(lw, x.dtype)?,
        Arg::Bits(rank as u64),
        Arg::Bits(mode),
        Arg::Bits(coord),
        Arg::Bits(nearest),
        Arg::Bits(policy),
        Arg::Bits(attr_float(lw, id, "cubic_coeff_a", -0.75)?.to_bits()),
        Arg::Bits(u64::from(attr_int(lw, id, "antialias", 0)? != 0)),
        Arg::Bits(u64::from(attr_int(lw, id, "exclude_outside", 0)? != 0)),
        Arg::Bits(attr_float(lw, id, "extrapolation_value", 0.0)?.to_bits()),
    ];
    args.extend(small(lw, roi.as_ref())?);
    args.extend(small(lw, scales_used)?);
    args.extend(small(lw, sizes_used)?);
    args.push(Arg::Bits(axes.len() as u64));
    args.extend(x.shape.iter().map(int));
    args.extend(out.shape.iter().map(int));
    args.extend(axes.iter().map(|&a| Arg::Bits(a as u64)));
    lw.emit(h, args);
    Ok(())
}

pub fn grid_sample(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let grid = lw.input(id, 1)?;
    computable(lw, x.dtype)?;
    computable(lw, grid.dtype)?;
    let rank = x.shape.len();
    if rank < 3 || grid.shape.len() != rank {
        return Err(lw.error("GridSample input and grid must have one rank (>= 3)"));
    }
    let mode = choice(
        lw,
        id,
        "mode",
        "linear",
        &["nearest", "linear", "cubic"],
        &[("bilinear", "linear"), ("bicubic", "cubic")],
    )?;
    let padding = choice(
        lw,
        id,
        "padding_mode",
        "zeros",
        &["zeros", "border", "reflection"],
        &[],
    )?;
    let align = attr_int(lw, id, "align_corners", 0)? != 0;
    let out = lw.output(id, 0);
    let h = lw.helper("index_grid_sample")?;
    let mut args = vec![
        x.ptr(),
        grid.ptr(),
        out.ptr(),
        code(lw, x.dtype)?,
        code(lw, grid.dtype)?,
        Arg::Bits(mode),
        Arg::Bits(padding),
        Arg::Bits(u64::from(align)),
        Arg::Bits(rank as u64),
    ];
    args.extend(x.shape.iter().map(int));
    args.extend(grid.shape.iter().map(int));
    lw.emit(h, args);
    Ok(())
}

pub fn affine_grid(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let theta = lw.input(id, 0)?;
    computable(lw, theta.dtype)?;
    let align = attr_int(lw, id, "align_corners", 0)? != 0;
    let out = lw.output(id, 0);
    let rank = out.shape.len();
    if rank < 3 || theta.shape.len() != 3 {
        return Err(lw.error("AffineGrid theta must be [N, r, r+1]"));
    }
    let r = rank - 2;
    let h = lw.helper("index_affine_grid")?;
    let mut args = vec![
        theta.ptr(),
        out.ptr(),
        code(lw, theta.dtype)?,
        Arg::Bits(u64::from(align)),
        Arg::Int(theta.numel()),
        int(&out.shape[0]),
        Arg::Bits(r as u64),
    ];
    args.extend(out.shape[1..=r].iter().map(int));
    lw.emit(h, args);
    Ok(())
}

pub fn roi_align(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let x = lw.input(id, 0)?;
    let rois = lw.input(id, 1)?;
    let bi = lw.input(id, 2)?;
    computable(lw, x.dtype)?;
    computable(lw, rois.dtype)?;
    if x.shape.len() != 4 || rois.shape.len() != 2 || rois.shape[1].as_const() != Some(4) {
        return Err(lw.error("RoiAlign takes X [N, C, H, W] and rois [R, 4]"));
    }
    if bi.shape.len() != 1 || bi.shape[0] != rois.shape[0] {
        return Err(lw.error("RoiAlign batch_indices must be [R] for rois [R, 4]"));
    }
    if !bi.dtype.is_int() {
        return Err(lw.unsupported(format!("{} batch indices", bi.dtype)));
    }
    let half_pixel = choice(
        lw,
        id,
        "coordinate_transformation_mode",
        "half_pixel",
        &["output_half_pixel", "half_pixel"],
        &[],
    )?;
    let max_mode = choice(lw, id, "mode", "avg", &["avg", "max"], &[])?;
    let (oh, ow) = (
        attr_int(lw, id, "output_height", 1)?,
        attr_int(lw, id, "output_width", 1)?,
    );
    let sampling = attr_int(lw, id, "sampling_ratio", 0)?;
    if oh < 1 || ow < 1 || sampling < 0 {
        return Err(lw.error(format!(
            "RoiAlign output size {oh}x{ow} and sampling_ratio {sampling} are invalid"
        )));
    }
    let scale = attr_float(lw, id, "spatial_scale", 1.0)?;
    let out = lw.output(id, 0);
    let h = lw.helper("index_roi_align")?;
    let mut args = vec![
        x.ptr(),
        rois.ptr(),
        bi.ptr(),
        out.ptr(),
        code(lw, x.dtype)?,
        code(lw, rois.dtype)?,
        code(lw, bi.dtype)?,
        Arg::Bits(half_pixel),
        Arg::Bits(max_mode),
        Arg::Bits(oh as u64),
        Arg::Bits(ow as u64),
        Arg::Bits(sampling as u64),
        Arg::Bits(scale.to_bits()),
    ];
    args.extend(x.shape.iter().map(int));
    args.push(int(&rois.shape[0]));
    lw.emit(h, args);
    Ok(())
}
