//! Conv, ConvInteger, QLinearConv, ConvTranspose, DeformConv.
//!
//! Layouts: X `[N, C, in...]`; Conv weights `[M, C/group, k...]`; ConvTranspose weights
//! `[C, M/group, k...]`. Arithmetic is f64 (integer convolutions are exact below 2^53).

use crate::attr::AttrsExt;
use crate::bail;
use crate::dim::Dim;
use crate::dtype::DType;
use crate::ops::conv::window::{ints_attr, AutoPad, Geometry, Tap, Window};
use crate::ops::conv::{check_image, group_attr, kernel_shape};
use crate::ops::util::one;
use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::{numel, Tensor};
use crate::types::{Shape, ValueType};

/// `[N, M, out...]` for a forward convolution of `x` by `w`.
fn conv_shape(ctx: &InferCtx, x: &ValueType, w: &ValueType, auto_pad: bool) -> OpResult<Shape> {
    let n = check_image(x, "the input")?;
    if w.rank() != x.rank() {
        bail!("the weight {w} must have the input's rank {}", x.rank());
    }
    let group = group_attr(ctx.attrs)? as i64;
    if let (Some(c), Some(wc)) = (x.shape[1].as_const(), w.shape[1].as_const()) {
        if c != wc * group {
            bail!("input channels {c} != weight channels {wc} x group {group}");
        }
    }
    if let Some(m) = w.shape[0].as_const() {
        if m % group != 0 {
            bail!("output channels {m} are not divisible by group {group}");
        }
    }
    let spatial = match kernel_shape(ctx.attrs, &w.shape[2..])? {
        Some(k) => {
            let win = Window::from_attrs(ctx.attrs, k)?;
            if !auto_pad && win.auto_pad != AutoPad::NotSet {
                bail!("auto_pad is not an attribute of this op");
            }
            win.out_dims(&x.shape[2..])?
        }
        None => (0..n).map(|a| ctx.data_dim(0, 2 + a)).collect(),
    };
    let mut shape = vec![x.shape[0].clone(), w.shape[0].clone()];
    shape.extend(spatial);
    Ok(shape)
}

/// The window of a forward convolution whose weight has concrete shape `ws`.
fn conv_window(ctx: &EvalCtx, ws: &[usize]) -> OpResult<Window> {
    let k: Vec<i64> = ws[2..].iter().map(|&d| d as i64).collect();
    if let Some(attr) = ctx.attrs.ints("kernel_shape")? {
        if !attr.is_empty() && attr != k {
            bail!("kernel_shape {attr:?} does not match the weight's spatial dims {k:?}");
        }
    }
    Window::from_attrs(ctx.attrs, k)
}

/// Checks concrete conv shapes: x `[N, C, ...]`, w `[M, C/group, ...]` of equal rank.
fn check_conv_shapes(xs: &[usize], ws: &[usize], group: usize) -> OpResult<()> {
    if xs.len() < 3 || ws.len() != xs.len() {
        bail!("input {xs:?} and weight {ws:?} must be [N, C, spatial...] and [M, C/group, k...]");
    }
    if xs[1] != ws[1] * group || !ws[0].is_multiple_of(group) {
        bail!("input {xs:?} and weight {ws:?} do not fit group {group}");
    }
    Ok(())
}

/// Direct grouped convolution: `[N, M, out...]` data from x `[N, C, in...]` and w
/// `[M, C/group, k...]`, plus `bias[m]`.
fn conv_f64(
    x: &[f64],
    xs: &[usize],
    w: &[f64],
    ws: &[usize],
    group: usize,
    geo: &Geometry,
    bias: Option<&[f64]>,
) -> Vec<f64> {
    let (nb, c, m, cg) = (xs[0], xs[1], ws[0], ws[1]);
    let mg = m / group;
    let (isz, osz, ksz) = (geo.in_size(), geo.out_size(), geo.kernel_size());
    let taps = geo.taps();
    let mut y = vec![0.0; nb * m * osz];
    for n in 0..nb {
        for mo in 0..m {
            let g = mo / mg;
            let yrow = &mut y[(n * m + mo) * osz..][..osz];
            if let Some(b) = bias {
                yrow.iter_mut().for_each(|v| *v = b[mo]);
            }
            for cl in 0..cg {
                let ci = g * cg + cl;
                let xp = &x[(n * c + ci) * isz..][..isz];
                let wk = &w[(mo * cg + cl) * ksz..][..ksz];
                for (o, yv) in yrow.iter_mut().enumerate() {
                    let mut acc = 0.0;
                    for (tap, &wv) in taps[o * ksz..][..ksz].iter().zip(wk) {
                        if let Tap::In(off) = *tap {
                            acc += xp[off] * wv;
                        }
                    }
                    *yv += acc;
                }
            }
        }
    }
    y
}

/// The bias as f64, checked to have `m` elements.
fn bias_f64(b: Option<&Tensor>, m: usize) -> OpResult<Option<Vec<f64>>> {
    match b {
        None => Ok(None),
        Some(b) if b.len() == m => Ok(Some(b.to_f64())),
        Some(b) => bail!("the bias has shape {:?}, expected [{m}]", b.shape()),
    }
}

/// Output shape `[N, M, out...]` of a conv given the geometry.
fn out_shape(xs: &[usize], m: usize, geo: &Geometry) -> Vec<usize> {
    let mut s = vec![xs[0], m];
    s.extend(&geo.out);
    s
}

// ---- Conv ----

pub fn infer_conv(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    let shape = conv_shape(ctx, x, ctx.input(1)?, true)?;
    one(x.dtype, shape)
}

pub fn eval_conv(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let (x, w) = (ctx.input(0)?, ctx.input(1)?);
    let group = group_attr(ctx.attrs)?;
    check_conv_shapes(x.shape(), w.shape(), group)?;
    let geo = conv_window(ctx, w.shape())?.resolve(&x.shape()[2..])?;
    let bias = bias_f64(ctx.opt_input(2), w.shape()[0])?;
    let y = conv_f64(
        &x.to_f64(),
        x.shape(),
        &w.to_f64(),
        w.shape(),
        group,
        &geo,
        bias.as_deref(),
    );
    Ok(vec![Tensor::from_f64(
        x.dtype(),
        out_shape(x.shape(), w.shape()[0], &geo),
        &y,
    )])
}

// ---- ConvInteger ----

pub fn infer_conv_integer(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let shape = conv_shape(ctx, ctx.input(0)?, ctx.input(1)?, true)?;
    one(DType::I32, shape)
}

/// `x - x_zero_point` (a scalar zero point).
fn shift_input(x: &Tensor, zp: Option<&Tensor>) -> OpResult<Vec<f64>> {
    let mut v = x.to_f64();
    if let Some(zp) = zp {
        if zp.len() != 1 {
            bail!(
                "the input zero point must be a scalar, got shape {:?}",
                zp.shape()
            );
        }
        let z = zp.to_f64()[0];
        v.iter_mut().for_each(|a| *a -= z);
    }
    Ok(v)
}

/// `w - w_zero_point`, the zero point a scalar or one per output channel.
fn shift_weight(w: &Tensor, zp: Option<&Tensor>) -> OpResult<Vec<f64>> {
    let mut v = w.to_f64();
    if let Some(zp) = zp {
        let z = zp.to_f64();
        let m = w.shape()[0];
        let per = v.len().checked_div(m).unwrap_or(0);
        if z.len() == 1 {
            v.iter_mut().for_each(|a| *a -= z[0]);
        } else if z.len() == m {
            for (i, a) in v.iter_mut().enumerate() {
                *a -= z[i / per];
            }
        } else {
            bail!(
                "the weight zero point has {} elements; expected 1 or {m}",
                z.len()
            );
        }
    }
    Ok(v)
}

pub fn eval_conv_integer(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let (x, w) = (ctx.input(0)?, ctx.input(1)?);
    let group = group_attr(ctx.attrs)?;
    check_conv_shapes(x.shape(), w.shape(), group)?;
    let geo = conv_window(ctx, w.shape())?.resolve(&x.shape()[2..])?;
    let xv = shift_input(x, ctx.opt_input(2))?;
    let wv = shift_weight(w, ctx.opt_input(3))?;
    let y = conv_f64(&xv, x.shape(), &wv, w.shape(), group, &geo, None);
    Ok(vec![Tensor::from_f64(
        DType::I32,
        out_shape(x.shape(), w.shape()[0], &geo),
        &y,
    )])
}

// ---- QLinearConv ----
// Inputs: x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B.

pub fn infer_qlinear_conv(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    let shape = conv_shape(ctx, x, ctx.input(3)?, true)?;
    let dtype = ctx.opt_input(7).map_or(x.dtype, |t| t.dtype);
    one(dtype, shape)
}

/// The saturation range of an 8/16-bit integer dtype.
fn int_range(d: DType) -> OpResult<(f64, f64)> {
    Ok(match d {
        DType::U8 => (0.0, 255.0),
        DType::I8 => (-128.0, 127.0),
        DType::U16 => (0.0, 65535.0),
        DType::I16 => (-32768.0, 32767.0),
        DType::I32 => (i32::MIN as f64, i32::MAX as f64),
        _ => bail!("quantized output dtype must be an integer type, got {d}"),
    })
}

/// Rounds half to even.
fn round_even(v: f64) -> f64 {
    let r = v.round();
    if (v - v.trunc()).abs() == 0.5 {
        2.0 * (v / 2.0).round()
    } else {
        r
    }
}

pub fn eval_qlinear_conv(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let (x, w) = (ctx.input(0)?, ctx.input(3)?);
    let group = group_attr(ctx.attrs)?;
    check_conv_shapes(x.shape(), w.shape(), group)?;
    let m = w.shape()[0];
    let geo = conv_window(ctx, w.shape())?.resolve(&x.shape()[2..])?;
    let xv = shift_input(x, ctx.opt_input(2))?;
    let wv = shift_weight(w, ctx.opt_input(5))?;
    let bias = bias_f64(ctx.opt_input(8), m)?;
    let acc = conv_f64(&xv, x.shape(), &wv, w.shape(), group, &geo, bias.as_deref());
    let scalar = |i: usize, what: &str| -> OpResult<f32> {
        let t = ctx.input(i)?;
        if t.len() != 1 {
            bail!("{what} must be a scalar, got shape {:?}", t.shape());
        }
        Ok(t.to_f64()[0] as f32)
    };
    let xs = scalar(1, "x_scale")?;
    let ys = scalar(6, "y_scale")?;
    let ws: Vec<f32> = ctx.input(4)?.to_f64().iter().map(|&v| v as f32).collect();
    if ws.len() != 1 && ws.len() != m {
        bail!("w_scale has {} elements; expected 1 or {m}", ws.len());
    }
    let (out_dtype, yzp) = match ctx.opt_input(7) {
        Some(z) => {
            if z.len() != 1 {
                bail!("y_zero_point must be a scalar, got shape {:?}", z.shape());
            }
            (z.dtype(), z.to_f64()[0])
        }
        None => (x.dtype(), 0.0),
    };
    let (lo, hi) = int_range(out_dtype)?;
    let osz = geo.out_size();
    let y: Vec<f64> = acc
        .iter()
        .enumerate()
        .map(|(i, &a)| {
            let mo = (i / osz) % m;
            let s = xs * ws[if ws.len() == 1 { 0 } else { mo }] / ys;
            (round_even(a * s as f64) + yzp).clamp(lo, hi)
        })
        .collect();
    Ok(vec![Tensor::from_f64(
        out_dtype,
        out_shape(x.shape(), m, &geo),
        &y,
    )])
}

// ---- ConvTranspose ----

/// The output spatial dims and begin pads of a transposed convolution. `input` is X's
/// spatial dims; pads are only meaningful when every dim is constant.
fn transpose_geometry(
    attrs: &crate::attr::Attrs,
    input: &[Dim],
    kernel: &[i64],
) -> OpResult<(Vec<Dim>, Vec<i64>)> {
    let n = input.len();
    let win = Window::from_attrs(attrs, kernel.to_vec())?;
    let out_pad = ints_attr(attrs, "output_padding", n, 0, 0)?;
    let output_shape = match attrs.ints("output_shape")? {
        Some(v) if v.len() == n + 2 => Some(v[2..].to_vec()),
        Some(v) if v.len() == n => Some(v),
        Some(v) if v.is_empty() => None,
        Some(v) => bail!("output_shape {v:?} does not have {n} spatial dims"),
        None => None,
    };
    let mut out = Vec::with_capacity(n);
    let mut pad_begin = Vec::with_capacity(n);
    for i in 0..n {
        let s = win.strides[i];
        // The full extent: s*(in-1) + output_padding + span.
        let full = input[i]
            .sub(&Dim::from(1i64))
            .mul(&Dim::from(s))
            .add(&Dim::from(out_pad[i] + win.span(i)));
        let o = match (&output_shape, win.auto_pad) {
            (Some(os), _) => Dim::from(os[i]),
            (None, a) if a.is_same() => input[i].mul(&Dim::from(s)),
            (None, AutoPad::Valid) => full.clone(),
            (None, _) => full.sub(&Dim::from(win.pads[i] + win.pads[n + i])),
        };
        let begin = if output_shape.is_some() || win.auto_pad.is_same() {
            match full.sub(&o).as_const() {
                Some(total) => win.auto_pad.split(total.max(0)).0,
                None => 0,
            }
        } else if win.auto_pad == AutoPad::Valid {
            0
        } else {
            win.pads[i]
        };
        if let Some(c) = o.as_const() {
            if c < 0 {
                bail!("the transposed convolution's output dim {i} would be {c}");
            }
        }
        out.push(o);
        pad_begin.push(begin);
    }
    Ok((out, pad_begin))
}

pub fn infer_conv_transpose(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    let w = ctx.input(1)?;
    let n = check_image(x, "the input")?;
    if w.rank() != x.rank() {
        bail!("the weight {w} must have the input's rank {}", x.rank());
    }
    let group = group_attr(ctx.attrs)? as i64;
    if let (Some(c), Some(wc)) = (x.shape[1].as_const(), w.shape[0].as_const()) {
        if c != wc || c % group != 0 {
            bail!("input channels {c} must equal the weight's dim 0 ({wc}) and divide by group {group}");
        }
    }
    let spatial = match kernel_shape(ctx.attrs, &w.shape[2..])? {
        Some(k) => transpose_geometry(ctx.attrs, &x.shape[2..], &k)?.0,
        None => (0..n).map(|a| ctx.data_dim(0, 2 + a)).collect(),
    };
    let mut shape = vec![x.shape[0].clone(), w.shape[1].mul(&Dim::from(group))];
    shape.extend(spatial);
    one(x.dtype, shape)
}

pub fn eval_conv_transpose(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let (x, w) = (ctx.input(0)?, ctx.input(1)?);
    let (xs, ws) = (x.shape(), w.shape());
    let group = group_attr(ctx.attrs)?;
    if xs.len() < 3 || ws.len() != xs.len() || ws[0] != xs[1] || xs[1] % group != 0 {
        bail!("input {xs:?} and weight {ws:?} must be [N, C, in...] and [C, M/group, k...] with group {group}");
    }
    let n = xs.len() - 2;
    let kernel: Vec<i64> = ws[2..].iter().map(|&d| d as i64).collect();
    if let Some(attr) = ctx.attrs.ints("kernel_shape")? {
        if !attr.is_empty() && attr != kernel {
            bail!("kernel_shape {attr:?} does not match the weight's spatial dims {kernel:?}");
        }
    }
    let in_dims: Vec<Dim> = xs[2..].iter().map(|&d| Dim::from(d)).collect();
    let (out_dims, pad_begin) = transpose_geometry(ctx.attrs, &in_dims, &kernel)?;
    let out: Vec<usize> = out_dims
        .iter()
        .map(|d| d.as_const().unwrap_or(0) as usize)
        .collect();
    let win = Window::from_attrs(ctx.attrs, kernel)?;
    // Tap j of input position i writes output position i*s - pad_begin + j*d: the same
    // geometry as a forward window over the output, with X's positions as the windows.
    let geo = Geometry {
        input: out.clone(),
        out: xs[2..].to_vec(),
        kernel: ws[2..].to_vec(),
        strides: win.strides.clone(),
        dilations: win.dilations.clone(),
        pad_begin,
        pad_end: vec![0; n],
    };
    let taps = geo.taps();
    let (c, cg, mg) = (xs[1], xs[1] / group, ws[1]);
    let m = mg * group;
    let (isz, osz, ksz) = (geo.out_size(), numel(&out), geo.kernel_size());
    let xv = x.to_f64();
    let wv = w.to_f64();
    let bias = bias_f64(ctx.opt_input(2), m)?;
    let mut y = vec![0.0; xs[0] * m * osz];
    for b in 0..xs[0] {
        for ci in 0..c {
            let g = ci / cg;
            let xp = &xv[(b * c + ci) * isz..][..isz];
            for ml in 0..mg {
                let mo = g * mg + ml;
                let wk = &wv[(ci * mg + ml) * ksz..][..ksz];
                let yp = &mut y[(b * m + mo) * osz..][..osz];
                for (i, &xval) in xp.iter().enumerate() {
                    for (tap, &wval) in taps[i * ksz..][..ksz].iter().zip(wk) {
                        if let Tap::In(off) = *tap {
                            yp[off] += xval * wval;
                        }
                    }
                }
            }
        }
    }
    if let Some(bias) = bias {
        for (i, v) in y.iter_mut().enumerate() {
            *v += bias[(i / osz) % m];
        }
    }
    let mut shape = vec![xs[0], m];
    shape.extend(&out);
    Ok(vec![Tensor::from_f64(x.dtype(), shape, &y)])
}

// ---- DeformConv ----
// Inputs: X [N, C, in...], W [M, C/group, k...], offset [N, offset_group*K*n, out...],
// B [M], mask [N, offset_group*K, out...].

pub fn infer_deform_conv(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    let shape = conv_shape(ctx, x, ctx.input(1)?, false)?;
    one(x.dtype, shape)
}

/// Multilinear interpolation of `plane` (shape `dims`) at real coordinates `at`; positions
/// outside the plane read zero.
fn interpolate(plane: &[f64], dims: &[usize], strides: &[usize], at: &[f64]) -> f64 {
    let n = dims.len();
    let mut total = 0.0;
    'corner: for corner in 0..(1usize << n) {
        let mut weight = 1.0;
        let mut off = 0usize;
        for a in 0..n {
            let lo = at[a].floor();
            let frac = at[a] - lo;
            let hi = corner >> a & 1 == 1;
            let (p, wgt) = if hi {
                (lo + 1.0, frac)
            } else {
                (lo, 1.0 - frac)
            };
            if wgt == 0.0 || p < 0.0 || p >= dims[a] as f64 {
                continue 'corner;
            }
            weight *= wgt;
            off += p as usize * strides[a];
        }
        total += weight * plane[off];
    }
    total
}

pub fn eval_deform_conv(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let (x, w, offset) = (ctx.input(0)?, ctx.input(1)?, ctx.input(2)?);
    let (xs, ws) = (x.shape(), w.shape());
    let group = group_attr(ctx.attrs)?;
    check_conv_shapes(xs, ws, group)?;
    let win = conv_window(ctx, ws)?;
    if win.auto_pad != AutoPad::NotSet {
        bail!("DeformConv has no auto_pad");
    }
    let geo = win.resolve(&xs[2..])?;
    let n = xs.len() - 2;
    let og = ctx.attrs.int_or("offset_group", 1)?;
    let (nb, c, m, cg) = (xs[0], xs[1], ws[0], ws[1]);
    if og < 1 || c % og as usize != 0 {
        bail!("offset_group {og} must be positive and divide the {c} input channels");
    }
    let og = og as usize;
    let (isz, osz, ksz) = (geo.in_size(), geo.out_size(), geo.kernel_size());
    let mut want = vec![nb, og * ksz * n];
    want.extend(&geo.out);
    if offset.shape() != want.as_slice() {
        bail!("offset has shape {:?}, expected {want:?}", offset.shape());
    }
    let mask = match ctx.opt_input(4) {
        Some(mk) => {
            want[1] = og * ksz;
            if mk.shape() != want.as_slice() {
                bail!("mask has shape {:?}, expected {want:?}", mk.shape());
            }
            Some(mk.to_f64())
        }
        None => None,
    };
    let bias = bias_f64(ctx.opt_input(3), m)?;
    let xv = x.to_f64();
    let wv = w.to_f64();
    let ov = offset.to_f64();
    let in_strides = crate::tensor::strides(&xs[2..]);
    let mg = m / group;
    let cpo = c / og;
    let mut y = vec![0.0; nb * m * osz];
    // Sampled columns of one input channel: [K, out].
    let mut col = vec![0.0; ksz * osz];
    let mut at = vec![0.0; n];
    let mut oi = vec![0usize; n];
    let mut ki = vec![0usize; n];
    for b in 0..nb {
        for ci in 0..c {
            let g = ci / cpo;
            let plane = &xv[(b * c + ci) * isz..][..isz];
            oi.iter_mut().for_each(|v| *v = 0);
            for o in 0..osz {
                ki.iter_mut().for_each(|v| *v = 0);
                for k in 0..ksz {
                    for a in 0..n {
                        let ch = (g * ksz + k) * n + a;
                        at[a] = geo.position(a, oi[a], ki[a]) as f64
                            + ov[(b * og * ksz * n + ch) * osz + o];
                    }
                    let mut v = interpolate(plane, &xs[2..], &in_strides, &at);
                    if let Some(mk) = &mask {
                        v *= mk[(b * og * ksz + g * ksz + k) * osz + o];
                    }
                    col[k * osz + o] = v;
                    super::window::increment(&mut ki, &geo.kernel);
                }
                super::window::increment(&mut oi, &geo.out);
            }
            let gi = ci / cg;
            let cl = ci % cg;
            for mo in gi * mg..(gi + 1) * mg {
                let wk = &wv[(mo * cg + cl) * ksz..][..ksz];
                let yp = &mut y[(b * m + mo) * osz..][..osz];
                for (k, &wval) in wk.iter().enumerate() {
                    for (yv, &cv) in yp.iter_mut().zip(&col[k * osz..][..osz]) {
                        *yv += wval * cv;
                    }
                }
            }
        }
    }
    if let Some(bias) = bias {
        for (i, v) in y.iter_mut().enumerate() {
            *v += bias[(i / osz) % m];
        }
    }
    Ok(vec![Tensor::from_f64(
        x.dtype(),
        out_shape(xs, m, &geo),
        &y,
    )])
}

// ---- CausalConvWithState ----
// Inputs: input [B, C, L], weight [C, 1, k], bias [C], past_state [B, C, k-1].
// Outputs: output [B, C, L], present_state [B, C, k-1].

pub fn infer_causal_conv(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    let w = ctx.input(1)?;
    if x.rank() != 3 || w.rank() != 3 {
        bail!("input {x} and weight {w} must be [B, C, L] and [C, 1, k]");
    }
    causal_activation(ctx.attrs)?;
    let state = vec![
        x.shape[0].clone(),
        x.shape[1].clone(),
        w.shape[2].sub(&Dim::from(1i64)),
    ];
    let mut out = vec![x.clone()];
    if ctx.num_outputs > 1 {
        out.push(ValueType::new(x.dtype, state));
    }
    Ok(out)
}

/// Whether the fused activation is SiLU.
fn causal_activation(attrs: &crate::attr::Attrs) -> OpResult<bool> {
    match attrs.str_or("activation", "none")? {
        "none" => Ok(false),
        "silu" | "swish" => Ok(true),
        a => bail!("activation \"{a}\" is not one of none, silu, swish"),
    }
}

pub fn eval_causal_conv(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let (x, w) = (ctx.input(0)?, ctx.input(1)?);
    let silu = causal_activation(ctx.attrs)?;
    let (xs, ws) = (x.shape(), w.shape());
    if xs.len() != 3 || ws.len() != 3 || ws[0] != xs[1] || ws[1] != 1 || ws[2] == 0 {
        bail!("input {xs:?} and weight {ws:?} must be [B, C, L] and [C, 1, k] with k >= 1");
    }
    let (nb, c, len, k) = (xs[0], xs[1], xs[2], ws[2]);
    let past = match ctx.opt_input(3) {
        Some(p) if p.shape() == [nb, c, k - 1] => Some(p.to_f64()),
        Some(p) => bail!(
            "past_state has shape {:?}, expected [{nb}, {c}, {}]",
            p.shape(),
            k - 1
        ),
        None => None,
    };
    let bias = bias_f64(ctx.opt_input(2), c)?;
    let (xv, wv) = (x.to_f64(), w.to_f64());
    let plen = len + k - 1;
    let mut y = vec![0.0; nb * c * len];
    let mut state = vec![0.0; nb * c * (k - 1)];
    let mut padded = vec![0.0; plen];
    for b in 0..nb {
        for ch in 0..c {
            let row = b * c + ch;
            match &past {
                Some(p) => padded[..k - 1].copy_from_slice(&p[row * (k - 1)..][..k - 1]),
                None => padded[..k - 1].iter_mut().for_each(|v| *v = 0.0),
            }
            padded[k - 1..].copy_from_slice(&xv[row * len..][..len]);
            let wk = &wv[ch * k..][..k];
            for t in 0..len {
                let acc: f64 = wk.iter().zip(&padded[t..t + k]).map(|(a, b)| a * b).sum();
                y[row * len + t] = acc + bias.as_ref().map_or(0.0, |b| b[ch]);
            }
            state[row * (k - 1)..][..k - 1].copy_from_slice(&padded[plen - (k - 1)..]);
        }
    }
    let mut out = Tensor::from_f64(x.dtype(), xs.to_vec(), &y);
    if silu {
        // SiLU of the convolution as rounded to the dtype.
        let v: Vec<f64> = out
            .to_f64()
            .iter()
            .map(|&a| a / (1.0 + (-a).exp()))
            .collect();
        out = Tensor::from_f64(x.dtype(), xs.to_vec(), &v);
    }
    let mut outs = vec![out];
    if ctx.num_outputs > 1 {
        outs.push(Tensor::from_f64(x.dtype(), vec![nb, c, k - 1], &state));
    }
    Ok(outs)
}

#[cfg(test)]
mod tests {
    use crate::attr::Attr;
    use crate::dtype::DType;
    use crate::ops::conv::testutil::{attrs, close, f32s, ints, run};
    use crate::tensor::Tensor;

    fn iota(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        f32s(shape, &(0..n).map(|i| i as f32).collect::<Vec<_>>())
    }

    #[test]
    fn conv_2d_padded() {
        // ONNX's basic conv example: 5x5 iota, 3x3 ones, pads 1.
        let x = iota(&[1, 1, 5, 5]);
        let w = f32s(&[1, 1, 3, 3], &[1.0; 9]);
        let a = attrs(&[("pads", ints(&[1, 1, 1, 1]))]);
        let y = run("Conv", &a, vec![Some(x.clone()), Some(w.clone())], 1).unwrap();
        #[rustfmt::skip]
        let want = [
            12., 21., 27., 33., 24.,
            33., 54., 63., 72., 51.,
            63., 99., 108., 117., 81.,
            93., 144., 153., 162., 111.,
            72., 111., 117., 123., 84.,
        ];
        close(&y[0], &want, 0.0);
        // Strides 2 with asymmetric padding [1, 0, 1, 0] (the ONNX example): 4x2.
        let a = attrs(&[("pads", ints(&[1, 0, 1, 0])), ("strides", ints(&[2, 2]))]);
        let x = iota(&[1, 1, 7, 5]);
        let y = run("Conv", &a, vec![Some(x), Some(w)], 1).unwrap();
        assert_eq!(y[0].shape(), &[1, 1, 4, 2]);
        close(&y[0], &[21., 33., 99., 117., 189., 207., 171., 183.], 0.0);
    }

    #[test]
    fn infer_symbolic_spatial_dims() {
        use crate::dim::Dim;
        use crate::graph::WeightStore;
        use crate::ops::{lookup, InferCtx};
        use crate::types::ValueType;
        let x = ValueType::new(
            DType::F32,
            vec![Dim::sym("n"), Dim::from(2i64), Dim::sym("h"), Dim::sym("w")],
        );
        let infer = |op: &str, a: &crate::attr::Attrs, w: &[usize]| {
            let w = ValueType::of(DType::F32, w);
            let weights = WeightStore::default();
            let fresh = || Dim::sym("fresh");
            let ctx = InferCtx {
                attrs: a,
                inputs: vec![Some(&x), Some(&w)],
                known: vec![None, None],
                num_outputs: 1,
                weights: &weights,
                previous: None,
                fresh: &fresh,
            };
            (lookup(op).unwrap().infer)(&ctx).unwrap()[0].clone()
        };
        let a = attrs(&[("strides", ints(&[2, 1])), ("pads", ints(&[1, 0, 1, 0]))]);
        let t = infer("Conv", &a, &[4, 2, 3, 3]);
        let two = Dim::from(2i64);
        let h = Dim::sym("h")
            .sub(&Dim::from(1i64))
            .floor_div(&two)
            .add(&Dim::from(1i64));
        let wd = Dim::sym("w").sub(&two);
        assert_eq!(t.shape, vec![Dim::sym("n"), Dim::from(4i64), h, wd]);
        // ConvTranspose: 2*(h-1) + 1 + 3 and 2*(w-1) + 3; channels from the weight's dim 1.
        let a = attrs(&[
            ("strides", ints(&[2, 2])),
            ("output_padding", ints(&[1, 0])),
        ]);
        let t = infer("ConvTranspose", &a, &[2, 1, 3, 3]);
        let h = Dim::sym("h").mul(&two).add(&two);
        let wd = Dim::sym("w").mul(&two).add(&Dim::from(1i64));
        assert_eq!(t.shape, vec![Dim::sym("n"), Dim::from(1i64), h, wd]);
    }

    #[test]
    fn conv_group_bias_dilation_1d() {
        // Two groups of one channel each; dilation 2, kernel 2; bias.
        let x = f32s(&[1, 2, 5], &[1., 2., 3., 4., 5., 10., 20., 30., 40., 50.]);
        let w = f32s(&[2, 1, 2], &[1., -1., 2., 1.]);
        let b = f32s(&[2], &[0.5, -0.5]);
        let a = attrs(&[("group", Attr::Int(2)), ("dilations", ints(&[2]))]);
        let y = run("Conv", &a, vec![Some(x), Some(w), Some(b)], 1).unwrap();
        // ch0: x[i] - x[i+2] + 0.5 = -1.5; ch1: 2x[i] + x[i+2] - 0.5
        close(&y[0], &[-1.5, -1.5, -1.5, 49.5, 79.5, 109.5], 0.0);
    }

    #[test]
    fn conv_same_lower_and_integer() {
        let x = Tensor::from_i64(DType::U8, vec![1, 1, 3], &[2, 3, 4]);
        let w = Tensor::from_i64(DType::U8, vec![1, 1, 2], &[1, 2]);
        let xz = Tensor::from_i64(DType::U8, vec![], &[1]);
        let a = attrs(&[("auto_pad", Attr::Str("SAME_LOWER".into()))]);
        let y = run("ConvInteger", &a, vec![Some(x), Some(w), Some(xz)], 1).unwrap();
        assert_eq!(y[0].dtype(), DType::I32);
        // shifted x = [1, 2, 3], pad one before: [0,1],[1,2],[2,3] . [1,2]
        assert_eq!(y[0].to_i64(), vec![2, 5, 8]);
    }

    #[test]
    fn qlinear_conv_rounds_and_saturates() {
        let x = Tensor::from_i64(DType::U8, vec![1, 1, 1, 3], &[10, 20, 255]);
        let w = Tensor::from_i64(DType::U8, vec![1, 1, 1, 1], &[3]);
        let s = |v: f32| Tensor::scalar_f32(v);
        let z = |v: i64| Tensor::from_i64(DType::U8, vec![], &[v]);
        let y = run(
            "QLinearConv",
            &attrs(&[]),
            vec![
                Some(x),
                Some(s(0.5)),
                Some(z(0)),
                Some(w),
                Some(s(1.0)),
                Some(z(1)),
                Some(s(4.0)),
                Some(z(3)),
            ],
            1,
        )
        .unwrap();
        // acc = 2x; y = round(2x * 0.125) + 3 = [2.5 -> 2, 5, 63.75 -> 64] + 3
        assert_eq!(y[0].to_i64(), vec![5, 8, 67]);
    }

    #[test]
    fn conv_transpose_basic_and_output_shape() {
        // ONNX example: 3x3 iota, two 3x3 ones filters, stride 1 -> 5x5.
        let x = iota(&[1, 1, 3, 3]);
        let w = f32s(&[1, 2, 3, 3], &[1.0; 18]);
        let y = run(
            "ConvTranspose",
            &attrs(&[]),
            vec![Some(x.clone()), Some(w.clone())],
            1,
        )
        .unwrap();
        assert_eq!(y[0].shape(), &[1, 2, 5, 5]);
        #[rustfmt::skip]
        let plane = [
            0., 1., 3., 3., 2.,
            3., 8., 15., 12., 7.,
            9., 21., 36., 27., 15.,
            9., 20., 33., 24., 13.,
            6., 13., 21., 15., 8.,
        ];
        let want: Vec<f64> = plane.iter().chain(plane.iter()).copied().collect();
        close(&y[0], &want, 0.0);
        // Pads 1 crop one position from each side.
        let y = run(
            "ConvTranspose",
            &attrs(&[("pads", ints(&[1, 1, 1, 1]))]),
            vec![Some(x.clone()), Some(w.clone())],
            1,
        )
        .unwrap();
        assert_eq!(y[0].shape(), &[1, 2, 3, 3]);
        close(
            &y[0].take(&[0, 1, 2], vec![3]).unwrap(),
            &[8., 15., 12.],
            0.0,
        );
        // Strides 3x2 with output_shape 10x8: the 9x7 result, a zero row and column after.
        let a = attrs(&[("strides", ints(&[3, 2])), ("output_shape", ints(&[10, 8]))]);
        let y = run("ConvTranspose", &a, vec![Some(x), Some(w)], 1).unwrap();
        assert_eq!(y[0].shape(), &[1, 2, 10, 8]);
        let v = y[0].to_f64();
        assert_eq!(&v[0..8], &[0., 0., 1., 1., 3., 2., 2., 0.]);
        assert_eq!(&v[72..80], &[0.0; 8]);
    }

    #[test]
    fn conv_transpose_same_upper_group() {
        // 1-D, stride 2, SAME_UPPER: out = 2*in; total pad = k - s = 1 -> begin 0, end 1.
        let x = f32s(&[1, 2, 2], &[1., 2., 3., 4.]);
        let w = f32s(&[2, 1, 3], &[1., 1., 1., 1., 10., 100.]);
        let a = attrs(&[
            ("strides", ints(&[2])),
            ("auto_pad", Attr::Str("SAME_UPPER".into())),
            ("group", Attr::Int(2)),
        ]);
        let y = run("ConvTranspose", &a, vec![Some(x), Some(w)], 1).unwrap();
        assert_eq!(y[0].shape(), &[1, 2, 4]);
        // full ch0: [1,1,1+2,2,2]; ch1: [3,30,300+4,40,400]; keep the first 4.
        close(&y[0], &[1., 1., 3., 2., 3., 30., 304., 40.], 0.0);
    }

    #[test]
    fn deform_conv_zero_offset_is_conv_and_half_offset_interpolates() {
        let x = iota(&[1, 1, 3, 3]);
        let w = f32s(&[1, 1, 2, 2], &[1.0; 4]);
        let off = f32s(&[1, 8, 2, 2], &[0.0; 32]);
        let y = run(
            "DeformConv",
            &attrs(&[]),
            vec![Some(x.clone()), Some(w.clone()), Some(off)],
            1,
        )
        .unwrap();
        close(&y[0], &[8., 12., 20., 24.], 0.0);
        // Offset every tap by +0.5 rows; mask 0.5 on all taps, bias 1.
        let mut o = vec![0.0f32; 32];
        for k in 0..4 {
            for p in 0..4 {
                o[(k * 2) * 4 + p] = 0.5;
            }
        }
        let off = f32s(&[1, 8, 2, 2], &o);
        let mask = f32s(&[1, 4, 2, 2], &[0.5; 16]);
        let b = f32s(&[1], &[1.0]);
        let y = run(
            "DeformConv",
            &attrs(&[]),
            vec![Some(x), Some(w), Some(off), Some(b), Some(mask)],
            1,
        )
        .unwrap();
        // Window (0,0) samples rows 0.5 and 1.5 at cols 0,1: 1.5+2.5+4.5+5.5 = 14; window
        // (1,0) samples rows 1.5 and 2.5, half of row 2.5 outside: 4.5+5.5+3+3.5 = 16.5.
        close(&y[0], &[1. + 7., 1. + 9., 1. + 8.25, 1. + 9.75], 1e-9);
    }

    #[test]
    fn causal_conv_with_state_carries_the_last_positions() {
        // k = 3; channel 0 weights [1, 10, 100]; past state [1, 2]; input [3, 4].
        let x = f32s(&[1, 1, 2], &[3., 4.]);
        let w = f32s(&[1, 1, 3], &[1., 10., 100.]);
        let past = f32s(&[1, 1, 2], &[1., 2.]);
        let y = run(
            "CausalConvWithState",
            &attrs(&[]),
            vec![Some(x.clone()), Some(w.clone()), None, Some(past)],
            2,
        )
        .unwrap();
        // padded [1, 2, 3, 4]: 1 + 20 + 300, 2 + 30 + 400; state [3, 4].
        close(&y[0], &[321., 432.], 0.0);
        close(&y[1], &[3., 4.], 0.0);
        // No state: zeros before; SiLU; bias.
        let b = f32s(&[1], &[-300.]);
        let a = attrs(&[("activation", Attr::Str("silu".into()))]);
        let y = run(
            "CausalConvWithState",
            &a,
            vec![Some(x), Some(w), Some(b)],
            2,
        )
        .unwrap();
        let silu = |v: f64| v / (1.0 + (-v).exp());
        close(&y[0], &[silu(0.0), silu(30.0 - 300.0 + 400.0)], 1e-6);
        close(&y[1], &[3., 4.], 0.0);
    }
}
