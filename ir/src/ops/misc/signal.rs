//! Signal processing: `DFT` (opset 20), `STFT` (opset 17), the `HannWindow`,
//! `HammingWindow` and `BlackmanWindow` generators and `MelWeightMatrix`.
//!
//! Complex tensors are real tensors whose last dim is 2 (real, imaginary); a last dim of 1
//! marks a real signal. Transforms are direct O(n^2) sums in f64 with exact twiddles
//! (`k * n mod N`), which is plenty for the sizes these ops see.

use std::f64::consts::PI;

use crate::attr::AttrsExt;
use crate::bail;
use crate::dim::Dim;
use crate::dtype::DType;
use crate::ops::misc::dtype_attr;
use crate::ops::util::{axis as norm_axis, one};
use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::Tensor;
use crate::types::ValueType;

/// The DFT of one complex sequence `x` (zero-padded or truncated to `n`), written to `out`
/// (length `n`). `inverse` uses the positive exponent and divides by `n`.
fn dft_line(
    x: &[(f64, f64)],
    n: usize,
    inverse: bool,
    twiddle: &[(f64, f64)],
    out: &mut Vec<(f64, f64)>,
) {
    out.clear();
    let m = x.len().min(n);
    for k in 0..n {
        let (mut re, mut im) = (0.0, 0.0);
        for (j, &(xr, xi)) in x[..m].iter().enumerate() {
            let (c, s) = twiddle[(k * j) % n];
            // e^{-i theta} = c - i s for the forward transform.
            let s = if inverse { -s } else { s };
            re += xr * c + xi * s;
            im += xi * c - xr * s;
        }
        if inverse {
            re /= n as f64;
            im /= n as f64;
        }
        out.push((re, im));
    }
}

/// `(cos, sin)` of `2 pi t / n` for `t` in `0..n`.
fn twiddles(n: usize) -> Vec<(f64, f64)> {
    (0..n)
        .map(|t| {
            let a = 2.0 * PI * t as f64 / n as f64;
            (a.cos(), a.sin())
        })
        .collect()
}

struct DftArgs {
    axis: Option<usize>,
    length: Option<Dim>,
    inverse: bool,
    onesided: bool,
}

fn dft_args(ctx: &InferCtx, rank: usize) -> OpResult<DftArgs> {
    let axis = if ctx.has_input(2) {
        match ctx
            .dims_input(2)
            .and_then(|d| d.first().and_then(|d| d.as_const()))
        {
            Some(a) => Some(dft_axis(a, rank)?),
            None => None,
        }
    } else {
        Some(dft_axis(ctx.attrs.int_or("axis", -2)?, rank)?)
    };
    let length = if ctx.has_input(1) {
        ctx.dims_input(1).and_then(|d| d.first().cloned())
    } else {
        None
    };
    Ok(DftArgs {
        axis,
        length,
        inverse: ctx.attrs.int_or("inverse", 0)? != 0,
        onesided: ctx.attrs.int_or("onesided", 0)? != 0,
    })
}

/// A DFT axis: any but the last (complex) dim.
fn dft_axis(a: i64, rank: usize) -> OpResult<usize> {
    let ax = norm_axis(a, rank)?;
    if ax + 1 == rank {
        bail!("DFT axis {a} is the complex dim of a rank-{rank} input");
    }
    Ok(ax)
}

pub fn infer_dft(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    let rank = x.rank();
    if rank < 2 {
        bail!("DFT input must have rank >= 2, got {x}");
    }
    if let Some(c) = x.shape[rank - 1].as_const() {
        if c != 1 && c != 2 {
            bail!("DFT input {x} must end in 1 (real) or 2 (complex)");
        }
    }
    let a = dft_args(ctx, rank)?;
    let mut shape = x.shape.clone();
    shape[rank - 1] = Dim::from(if a.inverse && a.onesided { 1i64 } else { 2 });
    match a.axis {
        Some(ax) => {
            let n = match (&a.length, ctx.has_input(1)) {
                (Some(l), _) => Some(l.clone()),
                (None, false) if a.inverse && a.onesided => {
                    Some(x.shape[ax].sub(&Dim::from(1i64)).mul(&Dim::from(2i64)))
                }
                (None, false) => Some(x.shape[ax].clone()),
                (None, true) => None,
            };
            shape[ax] = match n {
                Some(n) if a.onesided && !a.inverse => {
                    n.floor_div(&Dim::from(2i64)).add(&Dim::from(1i64))
                }
                Some(n) => n,
                None => ctx.data_dim(0, ax),
            };
        }
        None => {
            for (i, d) in shape.iter_mut().enumerate().take(rank - 1) {
                *d = ctx.data_dim(0, i);
            }
        }
    }
    one(x.dtype, shape)
}

/// Reads the complex value at every position of `x` (shape `shape`, last dim 1 or 2).
fn complex_values(x: &Tensor) -> Vec<(f64, f64)> {
    let v = x.to_f64();
    if x.shape().last() == Some(&1) {
        v.into_iter().map(|r| (r, 0.0)).collect()
    } else {
        v.chunks_exact(2).map(|c| (c[0], c[1])).collect()
    }
}

pub fn eval_dft(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let shape = x.shape();
    let rank = shape.len();
    if rank < 2 || !matches!(shape[rank - 1], 1 | 2) {
        bail!("DFT input {shape:?} must have rank >= 2 and end in 1 or 2");
    }
    let axis = match ctx.opt_input(2) {
        Some(t) => match t.first_i64() {
            Some(a) => dft_axis(a, rank)?,
            None => bail!("DFT axis input is empty"),
        },
        None => dft_axis(ctx.attrs.int_or("axis", -2)?, rank)?,
    };
    let inverse = ctx.attrs.int_or("inverse", 0)? != 0;
    let onesided = ctx.attrs.int_or("onesided", 0)? != 0;
    let len_in = shape[axis];
    let n = match ctx.opt_input(1) {
        Some(t) => match t.first_i64() {
            Some(l) if l > 0 => l as usize,
            _ => bail!("DFT dft_length must be a positive scalar"),
        },
        None if inverse && onesided => 2 * len_in.saturating_sub(1),
        None => len_in,
    };
    if n == 0 {
        bail!("DFT length is 0");
    }
    let vals = complex_values(x);
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..rank - 1].iter().product();
    let (n_out, ch_out) = if inverse && onesided {
        (n, 1)
    } else if onesided {
        (n / 2 + 1, 2)
    } else {
        (n, 2)
    };
    let tw = twiddles(n);
    let mut out = vec![0.0f64; outer * n_out * inner * ch_out];
    let mut line = Vec::with_capacity(len_in.max(n));
    let mut res = Vec::with_capacity(n);
    for o in 0..outer {
        for i in 0..inner {
            line.clear();
            line.extend((0..len_in).map(|j| vals[(o * len_in + j) * inner + i]));
            if inverse && onesided {
                // Rebuild the Hermitian spectrum of a real signal of length n from its
                // first n/2 + 1 bins (DC and Nyquist taken as real).
                let half = n / 2 + 1;
                let mut full = vec![(0.0, 0.0); n];
                let m = half.min(len_in);
                full[..m].copy_from_slice(&line[..m]);
                full[0].1 = 0.0;
                if n % 2 == 0 {
                    full[n / 2].1 = 0.0;
                }
                for k in 1..n.div_ceil(2) {
                    let (re, im) = full[k];
                    full[n - k] = (re, -im);
                }
                dft_line(&full, n, true, &tw, &mut res);
            } else {
                dft_line(&line, n, inverse, &tw, &mut res);
            }
            for (k, &(re, im)) in res.iter().take(n_out).enumerate() {
                let at = ((o * n_out + k) * inner + i) * ch_out;
                out[at] = re;
                if ch_out == 2 {
                    out[at + 1] = im;
                }
            }
        }
    }
    let mut oshape = shape.to_vec();
    oshape[axis] = n_out;
    oshape[rank - 1] = ch_out;
    Ok(vec![Tensor::from_f64(x.dtype(), oshape, &out)])
}

/// A scalar integer input's value, symbolically if known.
fn scalar_dim(ctx: &InferCtx, i: usize) -> Option<Dim> {
    ctx.dims_input(i).and_then(|d| d.first().cloned())
}

pub fn infer_stft(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    ctx.input(1)?;
    if x.rank() != 3 {
        bail!("STFT signal must be [batch, length, 1 or 2], got {x}");
    }
    let onesided = ctx.attrs.int_or("onesided", 1)? != 0;
    let frame_len = if ctx.has_input(3) {
        scalar_dim(ctx, 3)
    } else if let Some(w) = ctx.opt_input(2) {
        w.shape.first().cloned()
    } else {
        Some(x.shape[1].clone())
    };
    let step = scalar_dim(ctx, 1);
    let frames = match (&frame_len, &step) {
        (Some(fl), Some(st)) => x.shape[1].sub(fl).floor_div(st).add(&Dim::from(1i64)),
        _ => ctx.data_dim(0, 1),
    };
    let bins = match &frame_len {
        Some(fl) if onesided => fl.floor_div(&Dim::from(2i64)).add(&Dim::from(1i64)),
        Some(fl) => fl.clone(),
        None => ctx.data_dim(0, 2),
    };
    one(
        x.dtype,
        vec![x.shape[0].clone(), frames, bins, Dim::from(2i64)],
    )
}

pub fn eval_stft(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let shape = x.shape();
    if shape.len() != 3 || !matches!(shape[2], 1 | 2) {
        bail!("STFT signal must be [batch, length, 1 or 2], got {shape:?}");
    }
    let (batch, len) = (shape[0], shape[1]);
    let step = match ctx.input(1)?.first_i64() {
        Some(s) if s > 0 => s as usize,
        _ => bail!("STFT frame_step must be a positive scalar"),
    };
    let window = ctx.opt_input(2).map(|w| w.to_f64());
    let frame_len = match (ctx.opt_input(3), &window) {
        (Some(t), _) => match t.first_i64() {
            Some(l) if l > 0 => l as usize,
            _ => bail!("STFT frame_length must be a positive scalar"),
        },
        (None, Some(w)) => w.len(),
        (None, None) => len,
    };
    if let Some(w) = &window {
        if w.len() != frame_len {
            bail!(
                "STFT window has {} values for frame_length {frame_len}",
                w.len()
            );
        }
    }
    if frame_len == 0 || frame_len > len {
        bail!("STFT frame_length {frame_len} does not fit a signal of length {len}");
    }
    let onesided = ctx.attrs.int_or("onesided", 1)? != 0;
    if onesided && shape[2] == 2 {
        bail!("STFT cannot return a one-sided spectrum of a complex signal");
    }
    let frames = (len - frame_len) / step + 1;
    let bins = if onesided {
        frame_len / 2 + 1
    } else {
        frame_len
    };
    let vals = complex_values(x);
    let tw = twiddles(frame_len);
    let mut out = Vec::with_capacity(batch * frames * bins * 2);
    let mut line = Vec::with_capacity(frame_len);
    let mut res = Vec::with_capacity(frame_len);
    for b in 0..batch {
        for f in 0..frames {
            line.clear();
            for j in 0..frame_len {
                let (re, im) = vals[b * len + f * step + j];
                let w = window.as_ref().map_or(1.0, |w| w[j]);
                line.push((re * w, im * w));
            }
            dft_line(&line, frame_len, false, &tw, &mut res);
            for &(re, im) in res.iter().take(bins) {
                out.extend([re, im]);
            }
        }
    }
    Ok(vec![Tensor::from_f64(
        x.dtype(),
        vec![batch, frames, bins, 2],
        &out,
    )])
}

fn window_dtype(ctx_attrs: &crate::attr::Attrs) -> OpResult<DType> {
    Ok(dtype_attr(ctx_attrs, "output_datatype")?.unwrap_or(DType::F32))
}

pub fn infer_window(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let s = ctx.input(0)?;
    if !s.dtype.is_int() {
        bail!("window size must be an integer, got {s}");
    }
    let n = scalar_dim(ctx, 0).unwrap_or_else(|| ctx.data_dim(0, 0));
    one(window_dtype(ctx.attrs)?, vec![n])
}

fn eval_window(ctx: &EvalCtx, f: fn(f64, f64) -> f64) -> OpResult<Vec<Tensor>> {
    let size = match ctx.input(0)?.first_i64() {
        Some(s) if s >= 0 => s as usize,
        _ => bail!("window size must be a non-negative scalar"),
    };
    let periodic = ctx.attrs.int_or("periodic", 1)? != 0;
    let denom = if periodic {
        size
    } else {
        size.saturating_sub(1)
    } as f64;
    let v: Vec<f64> = (0..size)
        .map(|i| {
            if denom == 0.0 {
                1.0
            } else {
                f(i as f64, denom)
            }
        })
        .collect();
    Ok(vec![Tensor::from_f64(
        window_dtype(ctx.attrs)?,
        vec![size],
        &v,
    )])
}

pub fn eval_hann(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    eval_window(ctx, |i, n| (PI * i / n).sin().powi(2))
}

pub fn eval_hamming(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    const ALPHA: f64 = 25.0 / 46.0;
    eval_window(ctx, |i, n| ALPHA - (1.0 - ALPHA) * (2.0 * PI * i / n).cos())
}

pub fn eval_blackman(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    eval_window(ctx, |i, n| {
        0.42 - 0.5 * (2.0 * PI * i / n).cos() + 0.08 * (4.0 * PI * i / n).cos()
    })
}

pub fn infer_mel(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    for i in 0..5 {
        ctx.input(i)?;
    }
    let bins = scalar_dim(ctx, 0).unwrap_or_else(|| ctx.data_dim(0, 1));
    let spec = scalar_dim(ctx, 1)
        .map(|d| d.floor_div(&Dim::from(2i64)).add(&Dim::from(1i64)))
        .unwrap_or_else(|| ctx.data_dim(0, 0));
    one(window_dtype(ctx.attrs)?, vec![spec, bins])
}

/// Python's float floor division, which the reference uses for bin positions.
fn py_floordiv(a: f64, b: f64) -> f64 {
    let m = a % b;
    let mut div = (a - m) / b;
    if m != 0.0 && ((b < 0.0) != (m < 0.0)) {
        div -= 1.0;
    }
    if div != 0.0 {
        let f = div.floor();
        if div - f > 0.5 {
            f + 1.0
        } else {
            f
        }
    } else {
        0.0f64.copysign(a / b)
    }
}

pub fn eval_mel(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let int = |i: usize| -> OpResult<i64> {
        ctx.input(i)?
            .first_i64()
            .ok_or_else(|| crate::ops::OpError::new(format!("MelWeightMatrix input {i} is empty")))
    };
    let (num_mel, dft_len, rate) = (int(0)?, int(1)?, int(2)?);
    let lower_t = ctx.input(3)?;
    let upper = ctx.input(4)?.first_f64().unwrap_or(0.0);
    let lower = lower_t.first_f64().unwrap_or(0.0);
    if num_mel < 0 || dft_len < 0 || rate <= 0 {
        bail!("MelWeightMatrix needs num_mel_bins, dft_length >= 0 and sample_rate > 0");
    }
    // The mel edges in the precision of the hertz inputs, as ONNX's reference does.
    let fdt = lower_t.dtype();
    let r = |x: f64| crate::ops::misc::round_to(fdt, x);
    let mel = |hz: f64| r(r(2595.0 * r(r(hz / 700.0).ln_1p())) / r(10f64.ln()));
    let (low_mel, high_mel) = (mel(lower), mel(upper));
    let nbins = num_mel as usize + 2;
    let step = r((high_mel - low_mel) / nbins as f64);
    let bins: Vec<i64> = (0..nbins)
        .map(|i| {
            let m = i as f64 * step + low_mel;
            let hz = 700.0 * (m / 2595.0 * 10f64.ln()).exp_m1();
            py_floordiv((dft_len + 1) as f64 * hz, rate as f64) as i64
        })
        .collect();
    let nspec = dft_len as usize / 2 + 1;
    let nm = num_mel as usize;
    let mut out = vec![0.0f64; nspec * nm];
    let mut set = |j: i64, i: usize, v: f64| -> OpResult<()> {
        if j < 0 || j as usize >= nspec {
            bail!("MelWeightMatrix band edge {j} lies outside the {nspec} spectrogram bins");
        }
        out[j as usize * nm + i] = v;
        Ok(())
    };
    for i in 0..nm {
        let (lo, c, hi) = (bins[i], bins[i + 1], bins[i + 2]);
        if c == lo {
            set(c, i, 1.0)?;
        } else {
            for j in lo..=c {
                set(j, i, (j - lo) as f64 / (c - lo) as f64)?;
            }
        }
        if hi > c {
            for j in c..hi {
                set(j, i, (hi - j) as f64 / (hi - c) as f64)?;
            }
        }
    }
    Ok(vec![Tensor::from_f64(
        window_dtype(ctx.attrs)?,
        vec![nspec, nm],
        &out,
    )])
}

#[cfg(test)]
mod tests {
    use crate::attr::Attr;
    use crate::dtype::DType;
    use crate::ops::misc::testutil::{attrs, close, f32t, i64t, run_op};
    use crate::tensor::Tensor;

    #[test]
    fn dft_real_forward_inverse_and_onesided() {
        let x = f32t(&[4, 1], &[1., 2., 3., 4.]);
        let axis = i64t(&[], &[0]);
        let out = run_op("DFT", &attrs(&[]), vec![x.clone(), None, axis.clone()], 1).unwrap();
        assert_eq!(out[0].shape(), &[4, 2]);
        close(
            &out[0].to_f64(),
            &[10., 0., -2., 2., -2., 0., -2., -2.],
            1e-9,
        );
        // The inverse brings the spectrum back.
        let inv = run_op(
            "DFT",
            &attrs(&[("inverse", Attr::Int(1))]),
            vec![Some(out[0].clone()), None, axis.clone()],
            1,
        )
        .unwrap();
        close(&inv[0].to_f64(), &[1., 0., 2., 0., 3., 0., 4., 0.], 1e-6);
        // One-sided forward keeps n/2 + 1 bins; one-sided inverse (irfft) restores the signal.
        let a = attrs(&[("onesided", Attr::Int(1))]);
        let half = run_op("DFT", &a, vec![x, None, axis.clone()], 1).unwrap();
        assert_eq!(half[0].shape(), &[3, 2]);
        let a = attrs(&[("onesided", Attr::Int(1)), ("inverse", Attr::Int(1))]);
        let back = run_op("DFT", &a, vec![Some(half[0].clone()), None, axis], 1).unwrap();
        assert_eq!(back[0].shape(), &[4, 1]);
        close(&back[0].to_f64(), &[1., 2., 3., 4.], 1e-6);
    }

    #[test]
    fn dft_length_pads_with_zeros() {
        let x = f32t(&[1, 2, 1], &[1., 1.]);
        let out = run_op("DFT", &attrs(&[]), vec![x, i64t(&[], &[4]), None], 1).unwrap();
        assert_eq!(out[0].shape(), &[1, 4, 2]);
        close(&out[0].to_f64(), &[2., 0., 1., -1., 0., 0., 1., 1.], 1e-9);
    }

    #[test]
    fn symbolic_shapes() {
        use crate::ops::misc::testutil::{infer_types, ty};
        let x = ty(DType::F32, &["b", "n", "1"]);
        let a = attrs(&[("onesided", Attr::Int(1))]);
        let t = infer_types(
            "DFT",
            &a,
            vec![x.clone(), None, ty(DType::I64, &[])],
            vec![None, None, i64t(&[], &[1])],
            1,
        )
        .unwrap();
        assert_eq!(format!("{}", t[0]), "f32[b, floordiv(n, 2)+1, 2]");
        let t = infer_types(
            "STFT",
            &attrs(&[]),
            vec![x, ty(DType::I64, &[]), None, ty(DType::I64, &[])],
            vec![None, i64t(&[], &[4]), None, i64t(&[], &[16])],
            1,
        )
        .unwrap();
        assert_eq!(format!("{}", t[0]), "f32[b, floordiv(n-16, 4)+1, 9, 2]");
    }

    #[test]
    fn stft_frames() {
        let x = f32t(&[1, 6, 1], &[1., 2., 3., 4., 5., 6.]);
        let out = run_op(
            "STFT",
            &attrs(&[]),
            vec![x, i64t(&[], &[2]), None, i64t(&[], &[4])],
            1,
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[1, 2, 3, 2]);
        // Frames [1,2,3,4] and [3,4,5,6].
        close(
            &out[0].to_f64(),
            &[10., 0., -2., 2., -2., 0., 18., 0., -2., 2., -2., 0.],
            1e-9,
        );
    }

    #[test]
    fn windows() {
        let size = i64t(&[], &[4]);
        let out = run_op("HannWindow", &attrs(&[]), vec![size.clone()], 1).unwrap();
        close(&out[0].to_f64(), &[0., 0.5, 1., 0.5], 1e-7);
        let a = attrs(&[
            ("periodic", Attr::Int(0)),
            ("output_datatype", Attr::Int(11)),
        ]);
        let out = run_op("HammingWindow", &a, vec![size.clone()], 1).unwrap();
        assert_eq!(out[0].dtype(), DType::F64);
        let (al, be) = (25.0 / 46.0, 21.0 / 46.0);
        close(
            &out[0].to_f64(),
            &[al - be, al + be / 2., al + be / 2., al - be],
            1e-12,
        );
        let out = run_op("BlackmanWindow", &attrs(&[]), vec![size], 1).unwrap();
        close(&out[0].to_f64(), &[0., 0.34, 1., 0.34], 1e-7);
    }

    #[test]
    fn mel_weight_matrix_onnx_case() {
        let i32s = |v: i64| Some(Tensor::from_i64(DType::I32, vec![], &[v]));
        let out = run_op(
            "MelWeightMatrix",
            &attrs(&[]),
            vec![
                i32s(8),
                i32s(16),
                i32s(8192),
                f32t(&[], &[0.]),
                f32t(&[], &[4096.]),
            ],
            1,
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[9, 8]);
        let v = out[0].to_f64();
        // First rows of ONNX's expected output.
        close(
            &v[..16],
            &[
                1., 1., 0., 0., 0., 0., 0., 0., 0., 0., 1., 1., 0., 0., 0., 0.,
            ],
            0.0,
        );
    }
}
