//! `Resize` (opset 19): separable nearest / N-linear / N-cubic resampling.
//!
//! Every resized axis is processed on its own (the interpolation is separable): for each
//! output position the source coordinate `x` comes from `coordinate_transformation_mode`,
//! a small kernel of weights is laid over the input positions around `x`, and positions
//! past the edges are clamped to the edge (or dropped and the weights renormalised with
//! `exclude_outside`). With `antialias` the linear and cubic kernels are stretched by
//! `1 / scale` when downsampling.

use crate::attr::{Attrs, AttrsExt};
use crate::bail;
use crate::dim::Dim;
use crate::ops::misc::saturate_from_f64;
use crate::ops::util::{axis as norm_axis, one};
use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::{strides, Tensor};
use crate::types::ValueType;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Nearest,
    Linear,
    Cubic,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Coord {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfCropAndResize,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum NearestMode {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Policy {
    Stretch,
    NotLarger,
    NotSmaller,
}

struct Params {
    mode: Mode,
    coord: Coord,
    nearest: NearestMode,
    cubic_a: f64,
    antialias: bool,
    exclude_outside: bool,
    extrapolation: f64,
    policy: Policy,
    /// The axes that `roi`, `scales` and `sizes` refer to, normalised.
    axes: Vec<usize>,
}

fn params(attrs: &Attrs, rank: usize) -> OpResult<Params> {
    let mode = match attrs.str_or("mode", "nearest")? {
        "nearest" => Mode::Nearest,
        "linear" => Mode::Linear,
        "cubic" => Mode::Cubic,
        m => bail!("Resize mode \"{m}\" is not one of nearest, linear, cubic"),
    };
    let coord = match attrs.str_or("coordinate_transformation_mode", "half_pixel")? {
        "half_pixel" => Coord::HalfPixel,
        "half_pixel_symmetric" => Coord::HalfPixelSymmetric,
        "pytorch_half_pixel" => Coord::PytorchHalfPixel,
        "align_corners" => Coord::AlignCorners,
        "asymmetric" => Coord::Asymmetric,
        "tf_crop_and_resize" => Coord::TfCropAndResize,
        m => bail!("Resize coordinate_transformation_mode \"{m}\" is not supported"),
    };
    let nearest = match attrs.str_or("nearest_mode", "round_prefer_floor")? {
        "round_prefer_floor" => NearestMode::RoundPreferFloor,
        "round_prefer_ceil" => NearestMode::RoundPreferCeil,
        "floor" => NearestMode::Floor,
        "ceil" => NearestMode::Ceil,
        m => bail!("Resize nearest_mode \"{m}\" is not supported"),
    };
    let policy = match attrs.str_or("keep_aspect_ratio_policy", "stretch")? {
        "stretch" => Policy::Stretch,
        "not_larger" => Policy::NotLarger,
        "not_smaller" => Policy::NotSmaller,
        m => bail!("Resize keep_aspect_ratio_policy \"{m}\" is not supported"),
    };
    let axes = match attrs.ints("axes")? {
        Some(a) => {
            let v = a
                .iter()
                .map(|&x| norm_axis(x, rank))
                .collect::<OpResult<Vec<_>>>()?;
            for (i, x) in v.iter().enumerate() {
                if v[..i].contains(x) {
                    bail!("Resize axes {a:?} repeat axis {x}");
                }
            }
            v
        }
        None => (0..rank).collect(),
    };
    Ok(Params {
        mode,
        coord,
        nearest,
        cubic_a: attrs.float_or("cubic_coeff_a", -0.75)? as f64,
        antialias: attrs.int_or("antialias", 0)? != 0,
        exclude_outside: attrs.int_or("exclude_outside", 0)? != 0,
        extrapolation: attrs.float_or("extrapolation_value", 0.0)? as f64,
        policy,
        axes,
    })
}

/// Whether input `i` is present with at least one element (old exporters pass an empty
/// `scales` next to `sizes`).
fn nonempty(ctx: &InferCtx, i: usize) -> bool {
    match ctx.opt_input(i) {
        None => false,
        Some(t) => !t.shape.iter().any(|d| d.as_const() == Some(0)),
    }
}

/// `floor(d * s)` symbolically, where that is exact.
fn scaled_dim(d: &Dim, s: f64) -> Option<Dim> {
    if let Some(c) = d.as_const() {
        return Some(Dim::from((c as f64 * s).floor() as i64));
    }
    if s >= 1.0 && s.fract() == 0.0 {
        return Some(d.mul(&Dim::from(s as i64)));
    }
    let k = 1.0 / s;
    if s > 0.0 && k.fract() == 0.0 && s * k == 1.0 {
        return Some(d.floor_div(&Dim::from(k as i64)));
    }
    None
}

pub fn infer(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    let rank = x.rank();
    let p = params(ctx.attrs, rank)?;
    let mut shape = x.shape.clone();
    let use_scales = nonempty(ctx, 2);
    let use_sizes = !use_scales && nonempty(ctx, 3);
    if !use_scales && !use_sizes {
        bail!("Resize needs a non-empty `scales` or `sizes` input");
    }
    let data_dims = |shape: &mut Vec<Dim>| {
        for &a in &p.axes {
            shape[a] = ctx.data_dim(0, a);
        }
    };
    if use_scales {
        match ctx.const_input(2) {
            Some(t) => {
                let s = t.to_f64();
                if s.len() != p.axes.len() {
                    bail!(
                        "Resize scales has {} values for {} axes",
                        s.len(),
                        p.axes.len()
                    );
                }
                for (i, &a) in p.axes.iter().enumerate() {
                    if s[i] <= 0.0 || !s[i].is_finite() {
                        bail!("Resize scale {} must be positive", s[i]);
                    }
                    shape[a] = match scaled_dim(&x.shape[a], s[i]) {
                        Some(d) => d,
                        None => ctx.data_dim(0, a),
                    };
                }
            }
            None => data_dims(&mut shape),
        }
    } else {
        match ctx.dims_input(3) {
            Some(sizes) => {
                if sizes.len() != p.axes.len() {
                    bail!(
                        "Resize sizes has {} values for {} axes",
                        sizes.len(),
                        p.axes.len()
                    );
                }
                if p.policy == Policy::Stretch {
                    for (i, &a) in p.axes.iter().enumerate() {
                        if sizes[i].as_const().is_some_and(|c| c < 0) {
                            bail!("Resize sizes {:?} has a negative size", sizes);
                        }
                        shape[a] = sizes[i].clone();
                    }
                } else {
                    let consts: Option<(Vec<usize>, Vec<i64>)> = p
                        .axes
                        .iter()
                        .enumerate()
                        .map(|(i, &a)| {
                            Some((x.shape[a].as_const()? as usize, sizes[i].as_const()?))
                        })
                        .collect::<Option<Vec<_>>>()
                        .map(|v| v.into_iter().unzip());
                    match consts {
                        Some((ins, outs)) => {
                            let mut in_full = vec![1usize; rank];
                            for (i, &a) in p.axes.iter().enumerate() {
                                in_full[a] = ins[i];
                            }
                            let (_, out) = plan_sizes(&in_full, &outs, &p)?;
                            for &a in &p.axes {
                                shape[a] = Dim::from(out[a]);
                            }
                        }
                        None => data_dims(&mut shape),
                    }
                }
            }
            None => data_dims(&mut shape),
        }
    }
    one(x.dtype, shape)
}

/// Scales and output sizes of every axis from `sizes` (one per resized axis).
fn plan_sizes(in_shape: &[usize], sizes: &[i64], p: &Params) -> OpResult<(Vec<f64>, Vec<usize>)> {
    let rank = in_shape.len();
    let mut scales = vec![1.0f64; rank];
    let mut out: Vec<usize> = in_shape.to_vec();
    if sizes.len() != p.axes.len() {
        bail!(
            "Resize sizes has {} values for {} axes",
            sizes.len(),
            p.axes.len()
        );
    }
    for (i, &a) in p.axes.iter().enumerate() {
        if sizes[i] < 0 {
            bail!("Resize sizes {sizes:?} has a negative size");
        }
        if in_shape[a] == 0 && sizes[i] != 0 {
            bail!("Resize cannot resize an empty axis {a} to {}", sizes[i]);
        }
        scales[a] = if in_shape[a] == 0 {
            1.0
        } else {
            sizes[i] as f64 / in_shape[a] as f64
        };
        out[a] = sizes[i] as usize;
    }
    if p.policy != Policy::Stretch && !p.axes.is_empty() {
        let it = p.axes.iter().map(|&a| scales[a]);
        let s = if p.policy == Policy::NotLarger {
            it.fold(f64::INFINITY, f64::min)
        } else {
            it.fold(f64::NEG_INFINITY, f64::max)
        };
        for &a in &p.axes {
            scales[a] = s;
            out[a] = (s * in_shape[a] as f64 + 0.5).floor() as usize;
        }
    }
    Ok((scales, out))
}

/// The kernel for one output position: weights for input positions `base + start + i`.
fn kernel(p: &Params, r: f64, scale: f64, w: &mut Vec<f64>) -> i64 {
    w.clear();
    let cubic = |x: f64| -> f64 {
        let a = p.cubic_a;
        let x = x.abs();
        if x <= 1.0 {
            ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
        } else if x < 2.0 {
            ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
        } else {
            0.0
        }
    };
    let normalise = |w: &mut Vec<f64>| {
        let sum: f64 = w.iter().sum();
        if sum != 0.0 {
            w.iter_mut().for_each(|v| *v /= sum);
        }
    };
    match p.mode {
        Mode::Nearest => {
            let up = if r == 1.0 {
                true
            } else {
                match p.nearest {
                    NearestMode::RoundPreferFloor => r > 0.5,
                    NearestMode::RoundPreferCeil => r >= 0.5,
                    NearestMode::Floor => false,
                    NearestMode::Ceil => true,
                }
            };
            w.extend([if up { 0.0 } else { 1.0 }, if up { 1.0 } else { 0.0 }]);
            0
        }
        Mode::Linear if p.antialias => {
            let s = scale.min(1.0);
            let start = (-1.0 / s).floor() as i64 + 1;
            let n = 2 - 2 * start;
            w.extend(
                (start..start + n).map(|i| (1.0 - ((i as f64 - r) * s).abs()).clamp(0.0, 1.0)),
            );
            normalise(w);
            start
        }
        Mode::Linear => {
            w.extend([1.0 - r, r]);
            0
        }
        Mode::Cubic if p.antialias => {
            let s = scale.min(1.0);
            let start = (-2.0 / s).floor() as i64 + 1;
            let end = 2 - start;
            w.extend((start..end).map(|i| cubic(s * (i as f64 - r))));
            normalise(w);
            start
        }
        Mode::Cubic => {
            w.extend((-1..=2).map(|i| cubic(i as f64 - r)));
            -1
        }
    }
}

/// The source coordinate of output position `y` along one axis.
fn source_coord(
    p: &Params,
    y: f64,
    scale: f64,
    len_in: usize,
    len_out: usize,
    roi: (f64, f64),
) -> f64 {
    let n_in = len_in as f64;
    // The fractional output length, as the reference computes it.
    let out_w = scale * n_in;
    match p.coord {
        Coord::HalfPixel => (y + 0.5) / scale - 0.5,
        Coord::HalfPixelSymmetric => {
            let adjustment = len_out as f64 / out_w;
            let offset = n_in / 2.0 * (1.0 - adjustment);
            offset + (y + 0.5) / scale - 0.5
        }
        Coord::PytorchHalfPixel => {
            if len_out > 1 {
                (y + 0.5) / scale - 0.5
            } else {
                0.0
            }
        }
        Coord::AlignCorners => {
            if out_w == 1.0 {
                0.0
            } else {
                y * (n_in - 1.0) / (out_w - 1.0)
            }
        }
        Coord::Asymmetric => y / scale,
        Coord::TfCropAndResize => {
            let (start, end) = roi;
            let x = if len_out > 1 {
                y * (end - start) * (n_in - 1.0) / (out_w - 1.0)
            } else {
                (end - start) * (n_in - 1.0) / 2.0
            };
            x + start * (n_in - 1.0)
        }
    }
}

/// Resamples `data` (shape `shape`) along `axis` to `len_out` positions.
fn resize_axis(
    data: &[f64],
    shape: &[usize],
    axis: usize,
    len_out: usize,
    scale: f64,
    roi: (f64, f64),
    p: &Params,
) -> Vec<f64> {
    let len_in = shape[axis];
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    // Per output position: (first index, weights, clamped indices) or extrapolation.
    let mut taps: Vec<Option<Vec<(usize, f64)>>> = Vec::with_capacity(len_out);
    let mut w = Vec::new();
    for o in 0..len_out {
        let x = source_coord(p, o as f64, scale, len_in, len_out, roi);
        if p.coord == Coord::TfCropAndResize && (x < 0.0 || x > len_in as f64 - 1.0) {
            taps.push(None);
            continue;
        }
        let fl = x.floor();
        // The ratio lies in (0, 1]: an integral coordinate counts from the pixel before.
        let (r, base) = if x == fl {
            (1.0, fl as i64 - 1)
        } else {
            (x - fl, fl as i64)
        };
        let start = kernel(p, r, scale, &mut w);
        if p.exclude_outside {
            for (i, v) in w.iter_mut().enumerate() {
                let idx = base + start + i as i64;
                if idx < 0 || idx >= len_in as i64 {
                    *v = 0.0;
                }
            }
            let sum: f64 = w.iter().sum();
            if sum != 0.0 {
                w.iter_mut().for_each(|v| *v /= sum);
            }
        }
        let t = w
            .iter()
            .enumerate()
            .filter(|(_, &v)| v != 0.0)
            .map(|(i, &v)| {
                let idx = (base + start + i as i64).clamp(0, len_in as i64 - 1) as usize;
                (idx, v)
            })
            .collect();
        taps.push(Some(t));
    }
    let mut out = vec![0.0f64; outer * len_out * inner];
    for b in 0..outer {
        let src = &data[b * len_in * inner..(b + 1) * len_in * inner];
        let dst = &mut out[b * len_out * inner..(b + 1) * len_out * inner];
        for (o, tap) in taps.iter().enumerate() {
            let row = &mut dst[o * inner..(o + 1) * inner];
            match tap {
                None => row.iter_mut().for_each(|v| *v = p.extrapolation),
                Some(t) => {
                    for &(idx, wt) in t {
                        let s = &src[idx * inner..(idx + 1) * inner];
                        for (d, &v) in row.iter_mut().zip(s) {
                            *d += wt * v;
                        }
                    }
                }
            }
        }
    }
    out
}

fn is_close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

pub fn eval(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let rank = x.rank();
    let p = params(ctx.attrs, rank)?;
    let nonempty = |i: usize| ctx.opt_input(i).filter(|t| !t.is_empty());
    let (scales, out_shape) = if let Some(s) = nonempty(2) {
        let s = s.to_f64();
        if s.len() != p.axes.len() {
            bail!(
                "Resize scales has {} values for {} axes",
                s.len(),
                p.axes.len()
            );
        }
        let mut scales = vec![1.0f64; rank];
        let mut out = x.shape().to_vec();
        for (i, &a) in p.axes.iter().enumerate() {
            if s[i] <= 0.0 || !s[i].is_finite() {
                bail!("Resize scale {} must be positive", s[i]);
            }
            scales[a] = s[i];
            out[a] = (s[i] * x.shape()[a] as f64).floor() as usize;
        }
        (scales, out)
    } else if let Some(sz) = nonempty(3) {
        plan_sizes(x.shape(), &sz.to_i64(), &p)?
    } else {
        bail!("Resize needs a non-empty `scales` or `sizes` input");
    };
    let mut roi = vec![(0.0f64, 1.0f64); rank];
    if p.coord == Coord::TfCropAndResize {
        let r = match nonempty(1) {
            Some(r) => r.to_f64(),
            None => bail!("Resize with tf_crop_and_resize needs `roi`"),
        };
        let n = p.axes.len();
        if r.len() != 2 * n {
            bail!("Resize roi has {} values for {n} axes", r.len());
        }
        for (i, &a) in p.axes.iter().enumerate() {
            roi[a] = (r[i], r[n + i]);
        }
    }
    let mut shape = x.shape().to_vec();
    let mut data = x.to_f64();
    for &a in &p.axes {
        let identity = is_close(scales[a], 1.0)
            && out_shape[a] == shape[a]
            && is_close(roi[a].0, 0.0)
            && is_close(roi[a].1, 1.0);
        if identity {
            continue;
        }
        if shape[a] == 0 {
            bail!("Resize cannot resample the empty axis {a}");
        }
        data = resize_axis(&data, &shape, a, out_shape[a], scales[a], roi[a], &p);
        shape[a] = out_shape[a];
    }
    debug_assert_eq!(strides(&shape).len(), rank);
    Ok(vec![saturate_from_f64(x.dtype(), shape, &data)])
}

#[cfg(test)]
mod tests {
    use crate::attr::Attr;
    use crate::ops::misc::testutil::{attrs, close, f32t, i64t, run_op, s};

    fn resize(
        a: &[(&str, Attr)],
        x: (&[usize], &[f32]),
        scales: &[f32],
        sizes: &[i64],
    ) -> (Vec<usize>, Vec<f64>) {
        let inputs = vec![
            f32t(x.0, x.1),
            None,
            (!scales.is_empty()).then(|| f32t(&[scales.len()], scales).unwrap()),
            (!sizes.is_empty()).then(|| i64t(&[sizes.len()], sizes).unwrap()),
        ];
        let out = run_op("Resize", &attrs(a), inputs, 1).unwrap();
        (out[0].shape().to_vec(), out[0].to_f64())
    }

    const X4: [f32; 16] = [
        1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12., 13., 14., 15., 16.,
    ];

    #[test]
    fn nearest_upsample_scales() {
        let (sh, v) = resize(
            &[],
            (&[1, 1, 2, 2], &[1., 2., 3., 4.]),
            &[1., 1., 2., 3.],
            &[],
        );
        assert_eq!(sh, vec![1, 1, 4, 6]);
        let want = [
            1., 1., 1., 2., 2., 2., 1., 1., 1., 2., 2., 2., 3., 3., 3., 4., 4., 4., 3., 3., 3., 4.,
            4., 4.,
        ];
        close(&v, &want, 0.0);
    }

    #[test]
    fn linear_downsample_align_corners_uses_fractional_length() {
        // ONNX's test: 2x4 scaled by 0.6 -> 1x2, x = 3/1.4 along the width.
        let (sh, v) = resize(
            &[
                ("mode", s("linear")),
                ("coordinate_transformation_mode", s("align_corners")),
            ],
            (&[1, 1, 2, 4], &[1., 2., 3., 4., 5., 6., 7., 8.]),
            &[1., 1., 0.6, 0.6],
            &[],
        );
        assert_eq!(sh, vec![1, 1, 1, 2]);
        close(&v, &[1.0, 3.142857142857143], 1e-6);
    }

    #[test]
    fn cubic_upsample_half_pixel() {
        // Values from ONNX's reference for test_resize_upsample_scales_cubic (first row).
        let (sh, v) = resize(
            &[("mode", s("cubic"))],
            (&[1, 1, 4, 4], &X4),
            &[1., 1., 2., 2.],
            &[],
        );
        assert_eq!(sh, vec![1, 1, 8, 8]);
        close(
            &v[..8],
            &[
                0.47265625, 0.76953125, 1.24609375, 1.875, 2.28125, 2.91015625, 3.38671875,
                3.68359375,
            ],
            1e-6,
        );
    }

    #[test]
    fn linear_antialias_downsample() {
        // test_resize_downsample_scales_linear_antialias: 4x4 scaled by 0.6 -> 2x2.
        let (sh, v) = resize(
            &[("mode", s("linear")), ("antialias", Attr::Int(1))],
            (&[1, 1, 4, 4], &X4),
            &[1., 1., 0.6, 0.6],
            &[],
        );
        assert_eq!(sh, vec![1, 1, 2, 2]);
        close(&v, &[2.875, 4.5, 9.375, 11.0], 1e-5);
    }

    #[test]
    fn sizes_not_larger_keeps_aspect() {
        // test_resize_downsample_sizes_nearest_not_larger: 2x4 into at most 1x3 -> 1x2.
        let (sh, v) = resize(
            &[
                ("keep_aspect_ratio_policy", s("not_larger")),
                ("axes", Attr::Ints(vec![2, 3])),
            ],
            (&[1, 1, 2, 4], &[1., 2., 3., 4., 5., 6., 7., 8.]),
            &[],
            &[1, 3],
        );
        assert_eq!(sh, vec![1, 1, 1, 2]);
        close(&v, &[1., 3.], 0.0);
    }

    #[test]
    fn tf_crop_and_resize_extrapolates() {
        let inputs = vec![
            f32t(&[1, 1, 4, 4], &X4),
            f32t(&[8], &[0., 0., 0.4, 0.6, 1., 1., 1.2, 1.7]),
            None,
            i64t(&[4], &[1, 1, 3, 3]),
        ];
        let a = attrs(&[
            ("mode", s("linear")),
            ("coordinate_transformation_mode", s("tf_crop_and_resize")),
            ("extrapolation_value", Attr::Float(10.0)),
        ]);
        let out = run_op("Resize", &a, inputs, 1).unwrap();
        close(
            &out[0].to_f64(),
            &[7.6, 10., 10., 12.4, 10., 10., 10., 10., 10.],
            1e-5,
        );
    }

    #[test]
    fn nearest_modes() {
        // 1-D: 4 -> 8 with asymmetric coordinates x = y / 2.
        let run = |nm: &str| {
            resize(
                &[
                    ("nearest_mode", s(nm)),
                    ("coordinate_transformation_mode", s("asymmetric")),
                ],
                (&[4], &[1., 2., 3., 4.]),
                &[2.],
                &[],
            )
            .1
        };
        close(&run("floor"), &[1., 1., 2., 2., 3., 3., 4., 4.], 0.0);
        close(&run("ceil"), &[1., 2., 2., 3., 3., 4., 4., 4.], 0.0);
        close(
            &run("round_prefer_floor"),
            &[1., 1., 2., 2., 3., 3., 4., 4.],
            0.0,
        );
        close(
            &run("round_prefer_ceil"),
            &[1., 2., 2., 3., 3., 4., 4., 4.],
            0.0,
        );
    }

    #[test]
    fn symbolic_output_dims() {
        use crate::dtype::DType;
        use crate::ops::misc::testutil::{infer_types, ty};
        let x = ty(DType::F32, &["n", "c", "h", "w"]);
        let scales = f32t(&[4], &[1., 1., 2., 0.5]);
        let t = infer_types(
            "Resize",
            &attrs(&[]),
            vec![x.clone(), None, ty(DType::F32, &["4"]), None],
            vec![None, None, scales],
            1,
        )
        .unwrap();
        assert_eq!(format!("{}", t[0]), "f32[n, c, h*2, floordiv(w, 2)]");
        // Unknown scales: the resized dims are data-dependent, the others kept.
        let t = infer_types(
            "Resize",
            &attrs(&[("axes", Attr::Ints(vec![-1]))]),
            vec![x.clone(), None, ty(DType::F32, &["1"]), None],
            vec![],
            1,
        )
        .unwrap();
        assert_eq!(format!("{}", t[0]), "f32[n, c, h, d1]");
        // Known sizes give the dims directly.
        let t = infer_types(
            "Resize",
            &attrs(&[("axes", Attr::Ints(vec![2, 3]))]),
            vec![x, None, None, ty(DType::I64, &["2"])],
            vec![None, None, None, i64t(&[2], &[7, 9])],
            1,
        )
        .unwrap();
        assert_eq!(format!("{}", t[0]), "f32[n, c, 7, 9]");
    }

    #[test]
    fn integer_input_rounds_and_saturates() {
        let x = Some(crate::tensor::Tensor::from_i64(
            crate::dtype::DType::U8,
            vec![4],
            &[0, 0, 255, 255],
        ));
        let a = attrs(&[("mode", s("cubic"))]);
        let out = run_op("Resize", &a, vec![x, None, f32t(&[1], &[2.0]), None], 1).unwrap();
        // Unclamped: 0, -8.96, -26.89, 57.77, 197.23, 281.89, 263.96, 255.
        assert_eq!(out[0].to_i64(), vec![0, 0, 0, 58, 197, 255, 255, 255]);
    }
}
