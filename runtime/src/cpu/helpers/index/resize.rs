//! Resize (opset 19): separable nearest / N-linear / N-cubic resampling, computed in f64
//! axis by axis exactly as kiln's reference interpreter does, so results agree to the last
//! bit for f32 data. Scales, sizes and roi are read at run time (constants are tiny weights);
//! the output shape is the compiled one.

use super::{bytes, bytes_mut, elem, numel, Args};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Nearest,
    Linear,
    Cubic,
}

#[derive(Clone, Copy, PartialEq)]
enum Coord {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfCropAndResize,
}

#[derive(Clone, Copy, PartialEq)]
enum NearestMode {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

#[derive(Clone, Copy, PartialEq)]
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
}

/// The weights for one output position: weights for input positions `base + start + i`.
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
            let start = ((-1.0 / s).floor() as i64).saturating_add(1);
            let n = 2i64
                .saturating_sub(start.saturating_mul(2))
                .clamp(0, 1 << 20);
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
            let start = ((-2.0 / s).floor() as i64).saturating_add(1);
            let end = 2i64
                .saturating_sub(start)
                .min(start.saturating_add(1 << 20));
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
    let outer = numel(&shape[..axis]);
    let inner = numel(&shape[axis + 1..]);
    let mut taps: Vec<Option<Vec<(usize, f64)>>> = Vec::with_capacity(len_out);
    let mut w = Vec::new();
    for o in 0..len_out {
        let x = source_coord(p, o as f64, scale, len_in, len_out, roi);
        if p.coord == Coord::TfCropAndResize && (x < 0.0 || x > len_in as f64 - 1.0) {
            taps.push(None);
            continue;
        }
        let fl = x.floor();
        let (r, base) = if x == fl {
            (1.0, (fl as i64).saturating_sub(1))
        } else {
            (x - fl, fl as i64)
        };
        let start = kernel(p, r, scale, &mut w);
        if p.exclude_outside {
            for (i, v) in w.iter_mut().enumerate() {
                let idx = base.saturating_add(start).saturating_add(i as i64);
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
                let idx = base
                    .saturating_add(start)
                    .saturating_add(i as i64)
                    .clamp(0, len_in as i64 - 1) as usize;
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

/// Reads a small runtime tensor (roi, scales, sizes) as f64s.
fn floats(a: &mut Args) -> Vec<f64> {
    let (p, e, n) = (a.ptr(), a.elem(), a.u());
    let n = n.min(1 << 16);
    // SAFETY: the lowering passes a pointer to `n` elements of type `e`, or 0.
    let b = unsafe { bytes(p, n * e.size()) };
    if b.is_empty() {
        return Vec::new();
    }
    (0..n).map(|i| elem::read_f64(b, e, i)).collect()
}

/// `Resize`.
///
/// Args: `[x, out, dtype, rank, mode, coord, nearest_mode, policy, cubic_a (f64 bits),
/// antialias, exclude_outside, extrapolation (f64 bits), roi, roi_code, roi_len, scales,
/// scales_code, scales_len, sizes, sizes_code, sizes_len, n_axes, in_shape[rank],
/// out_shape[rank], axes[n_axes]]`. Codes: mode 0 nearest 1 linear 2 cubic; coord 0
/// half_pixel 1 half_pixel_symmetric 2 pytorch_half_pixel 3 align_corners 4 asymmetric 5
/// tf_crop_and_resize; nearest_mode 0 round_prefer_floor 1 round_prefer_ceil 2 floor 3 ceil;
/// policy 0 stretch 1 not_larger 2 not_smaller. An absent roi/scales/sizes has pointer 0.
/// Scales are used when present with at least one value, sizes otherwise.
///
/// # Safety
/// The slots hold valid pointers to buffers of the sizes the other slots imply; `out` is
/// disjoint from the inputs.
pub unsafe fn resize(args: *const u64) {
    // SAFETY: slots 3 (rank) and 21 (axes) exist.
    let (rank, naxes) = unsafe { (*args.add(3) as usize, *args.add(21) as usize) };
    let (rank, naxes) = (rank.min(64), naxes.min(64));
    // SAFETY: the slot count these give.
    let mut a = unsafe { Args::new(args, 22 + 2 * rank + naxes) };
    let (x, out) = (a.ptr(), a.ptr());
    let e = a.elem();
    a.u();
    let mode = [Mode::Nearest, Mode::Linear, Mode::Cubic][a.u().min(2)];
    let coord = [
        Coord::HalfPixel,
        Coord::HalfPixelSymmetric,
        Coord::PytorchHalfPixel,
        Coord::AlignCorners,
        Coord::Asymmetric,
        Coord::TfCropAndResize,
    ][a.u().min(5)];
    let nearest = [
        NearestMode::RoundPreferFloor,
        NearestMode::RoundPreferCeil,
        NearestMode::Floor,
        NearestMode::Ceil,
    ][a.u().min(3)];
    let policy = [Policy::Stretch, Policy::NotLarger, Policy::NotSmaller][a.u().min(2)];
    let p = Params {
        mode,
        coord,
        nearest,
        cubic_a: a.f(),
        antialias: a.u() != 0,
        exclude_outside: a.u() != 0,
        extrapolation: a.f(),
    };
    let roi = floats(&mut a);
    let scales_in = floats(&mut a);
    let sizes = floats(&mut a);
    a.u();
    let (in_shape, out_shape, axes) = (a.list(rank), a.list(rank), a.list(naxes));
    let es = e.size();
    // SAFETY: the lowering passes the sizes of these buffers.
    let (x, out) = unsafe {
        (
            bytes(x, numel(&in_shape) * es),
            bytes_mut(out, numel(&out_shape) * es),
        )
    };
    out.fill(0);
    if axes.iter().any(|&ax| ax >= rank) {
        return;
    }
    // Per-axis scales, from `scales` or from `sizes` and the aspect-ratio policy.
    let mut scales = vec![1.0f64; rank];
    if !scales_in.is_empty() {
        if scales_in.len() != naxes || scales_in.iter().any(|&s| s <= 0.0 || !s.is_finite()) {
            return;
        }
        for (i, &ax) in axes.iter().enumerate() {
            scales[ax] = scales_in[i];
        }
    } else {
        if sizes.len() != naxes {
            return;
        }
        for (i, &ax) in axes.iter().enumerate() {
            scales[ax] = if in_shape[ax] == 0 {
                1.0
            } else {
                sizes[i] / in_shape[ax] as f64
            };
        }
        if policy != Policy::Stretch && naxes > 0 {
            let it = axes.iter().map(|&ax| scales[ax]);
            let s = if policy == Policy::NotLarger {
                it.fold(f64::INFINITY, f64::min)
            } else {
                it.fold(f64::NEG_INFINITY, f64::max)
            };
            for &ax in &axes {
                scales[ax] = s;
            }
        }
    }
    let mut rois = vec![(0.0f64, 1.0f64); rank];
    if p.coord == Coord::TfCropAndResize {
        if roi.len() != 2 * naxes {
            return;
        }
        for (i, &ax) in axes.iter().enumerate() {
            rois[ax] = (roi[i], roi[naxes + i]);
        }
    }
    let mut shape = in_shape.clone();
    let mut data: Vec<f64> = (0..numel(&in_shape))
        .map(|i| elem::read_f64(x, e, i))
        .collect();
    for &ax in &axes {
        let identity = is_close(scales[ax], 1.0)
            && out_shape[ax] == shape[ax]
            && is_close(rois[ax].0, 0.0)
            && is_close(rois[ax].1, 1.0);
        if identity {
            continue;
        }
        if shape[ax] == 0 || !(scales[ax] > 0.0 && scales[ax].is_finite()) {
            return;
        }
        data = resize_axis(&data, &shape, ax, out_shape[ax], scales[ax], rois[ax], &p);
        shape[ax] = out_shape[ax];
    }
    if shape != out_shape {
        return;
    }
    for (i, &v) in data.iter().enumerate() {
        elem::write_saturated(out, e, i, v);
    }
}
