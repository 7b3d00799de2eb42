//! Slice, Pad and CenterCropPad.

use crate::attr::AttrsExt;
use crate::bail;
use crate::dim::Dim;
use crate::ops::shape::common::{
    const_ints, index_map, le, norm_axes, opt_ints, smax, smin, strided, take_fill, vec_len,
    want_int, HUGE,
};
use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::{strides, Tensor};
use crate::types::ValueType;

// ---------------------------------------------------------------------------------------
// Slice

/// The first index and the length of a slice `start:end:step` of an axis of size `d`, with
/// ONNX's clamping (to `[0, d]`, or `[0, d-1]` / `[-1, d-1]` for negative steps).
pub(crate) fn slice_axis(d: i64, start: i64, end: i64, step: i64) -> OpResult<(i64, usize)> {
    if step == 0 {
        bail!("Slice step must not be 0");
    }
    if d == 0 {
        return Ok((0, 0));
    }
    let norm = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
    if step > 0 {
        let (s, e) = (norm(start).clamp(0, d), norm(end).clamp(0, d));
        let len = if e > s { (e - s - 1) / step + 1 } else { 0 };
        Ok((s, len as usize))
    } else {
        let (s, e) = (norm(start).clamp(0, d - 1), norm(end).clamp(-1, d - 1));
        let len = if s > e { (s - e - 1) / (-step) + 1 } else { 0 };
        Ok((s, len as usize))
    }
}

/// The length of a slice of an axis of symbolic size `d`; `None` when it cannot be said
/// (a symbolic start or end that may be negative).
fn slice_len_sym(d: &Dim, start: &Dim, end: &Dim, step: i64) -> Option<Dim> {
    if let (Some(dc), Some(s), Some(e)) = (d.as_const(), start.as_const(), end.as_const()) {
        return slice_axis(dc, s, e, step)
            .ok()
            .map(|(_, n)| Dim::from(n as i64));
    }
    let c = |v: i64| Dim::from(v);
    let (lo, hi) = if step > 0 {
        (c(0), d.clone())
    } else {
        (c(-1), d.sub(&c(1)))
    };
    // Normalises a bound: negative constants count from the end; huge ones clamp.
    let norm = |v: &Dim, lo: &Dim| -> Option<Dim> {
        match v.as_const() {
            Some(x) if x >= HUGE => Some(hi.clone()),
            Some(x) if x <= -HUGE => Some(lo.clone()),
            Some(x) if x < 0 => Some(d.add(v)),
            Some(_) => Some(v.clone()),
            None if le(&c(0), v) => Some(v.clone()),
            None => None,
        }
    };
    let clamp = |v: &Dim, lo: &Dim| smin(&smax(v, lo), &hi);
    let (ns, ne) = if step > 0 {
        (norm(start, &lo)?, norm(end, &lo)?)
    } else {
        (norm(start, &c(0))?, norm(end, &lo)?)
    };
    if step > 0 {
        let (s, e) = (clamp(&ns, &c(0)), clamp(&ne, &c(0)));
        let diff = e.sub(&s);
        let diff = if le(&ns, &ne) || s.as_const() == Some(0) {
            diff
        } else {
            smax(&diff, &c(0))
        };
        Some(diff.add(&c(step - 1)).floor_div(&c(step)))
    } else {
        // Reversing a whole axis is common enough to deserve its plain form.
        if step == -1 && le(&hi, &ns) && end.as_const().is_some_and(|x| x <= -HUGE) {
            return Some(d.clone());
        }
        let (s, e) = (clamp(&ns, &c(0)), clamp(&ne, &lo));
        let diff = s.sub(&e);
        let diff = if le(&ne, &ns) {
            diff
        } else {
            smax(&diff, &c(0))
        };
        Some(diff.add(&c(-step - 1)).floor_div(&c(-step)))
    }
}

/// Slice's per-axis parameters: (axis, start, end, step) with axes normalised.
type SliceParams<T> = Vec<(usize, T, T, i64)>;

fn slice_params<T: Clone>(
    rank: usize,
    starts: Vec<T>,
    ends: Vec<T>,
    axes: Option<Vec<i64>>,
    steps: Option<Vec<i64>>,
) -> OpResult<SliceParams<T>> {
    let n = starts.len();
    if ends.len() != n {
        bail!("Slice has {n} starts but {} ends", ends.len());
    }
    let axes = match axes {
        Some(a) => {
            if a.len() != n {
                bail!("Slice has {n} starts but {} axes", a.len());
            }
            norm_axes(&a, rank)?
        }
        None => {
            if n > rank {
                bail!("Slice has {n} starts for a rank-{rank} input");
            }
            (0..n).collect()
        }
    };
    let steps = steps.unwrap_or_else(|| vec![1; n]);
    if steps.len() != n {
        bail!("Slice has {n} starts but {} steps", steps.len());
    }
    if steps.contains(&0) {
        bail!("Slice steps must not be 0");
    }
    Ok((0..n)
        .map(|i| (axes[i], starts[i].clone(), ends[i].clone(), steps[i]))
        .collect())
}

/// Input `i` as constant integers: `Some(None)` when absent, `None` when unknown.
fn opt_const(ctx: &InferCtx, i: usize) -> Option<Option<Vec<i64>>> {
    if ctx.has_input(i) {
        const_ints(ctx, i).map(Some)
    } else {
        Some(None)
    }
}

pub fn infer_slice(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    for (i, what) in [(1, "starts"), (2, "ends"), (3, "axes"), (4, "steps")] {
        want_int(ctx, i, &format!("Slice {what}"))?;
    }
    ctx.input(1)?;
    ctx.input(2)?;
    let mut shape = x.shape.clone();
    let Some(axes) = opt_const(ctx, 3) else {
        // Which axes are sliced is unknown: every dim may change.
        return Ok(vec![ValueType::new(x.dtype, ctx.data_shape(0, x.rank()))]);
    };
    match (opt_const(ctx, 4), ctx.dims_input(1), ctx.dims_input(2)) {
        (Some(steps), Some(starts), Some(ends)) => {
            for (a, s, e, k) in slice_params(x.rank(), starts, ends, axes, steps)? {
                shape[a] = match slice_len_sym(&x.shape[a], &s, &e, k) {
                    Some(n) => n,
                    None => ctx.data_dim(0, a),
                };
            }
        }
        _ => {
            let n = vec_len(ctx, 1, "Slice starts")?;
            let axes = axes.unwrap_or_else(|| (0..n as i64).collect());
            for a in norm_axes(&axes, x.rank())? {
                shape[a] = ctx.data_dim(0, a);
            }
        }
    }
    Ok(vec![ValueType::new(x.dtype, shape)])
}

pub fn eval_slice(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let starts = opt_ints(ctx, 1, "Slice starts")?.unwrap_or_default();
    let ends = opt_ints(ctx, 2, "Slice ends")?.unwrap_or_default();
    let params = slice_params(
        x.rank(),
        starts,
        ends,
        opt_ints(ctx, 3, "Slice axes")?,
        opt_ints(ctx, 4, "Slice steps")?,
    )?;
    let mut first = vec![0i64; x.rank()];
    let mut steps = vec![1i64; x.rank()];
    let mut lens = x.shape().to_vec();
    for (a, s, e, k) in params {
        let (f, n) = slice_axis(x.shape()[a] as i64, s, e, k)?;
        first[a] = f;
        steps[a] = k;
        lens[a] = n;
    }
    Ok(vec![strided(x, &first, &steps, &lens)?])
}

pub fn sym_slice(ctx: &InferCtx) -> Option<Vec<Dim>> {
    if ctx.input(0).ok()?.rank() != 1 {
        return None;
    }
    let v = ctx.dims_input(0)?;
    let params = slice_params(
        1,
        const_ints(ctx, 1)?,
        const_ints(ctx, 2)?,
        opt_const(ctx, 3)?,
        opt_const(ctx, 4)?,
    )
    .ok()?;
    let (mut first, mut step, mut len) = (0i64, 1i64, v.len());
    for (_, s, e, k) in params {
        let (f, n) = slice_axis(v.len() as i64, s, e, k).ok()?;
        (first, step, len) = (f, k, n);
    }
    Some(
        (0..len)
            .map(|i| v[(first + i as i64 * step) as usize].clone())
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------
// Pad

fn pad_mode(attrs: &crate::attr::Attrs) -> OpResult<&str> {
    let mode = attrs.str_or("mode", "constant")?;
    if !matches!(mode, "constant" | "reflect" | "edge" | "wrap") {
        bail!("Pad mode \"{mode}\" is not supported");
    }
    Ok(mode)
}

pub fn infer_pad(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    pad_mode(ctx.attrs)?;
    want_int(ctx, 1, "Pad pads")?;
    want_int(ctx, 3, "Pad axes")?;
    if let Some(v) = ctx.opt_input(2) {
        if v.dtype != x.dtype {
            bail!("Pad constant_value {v} does not match the data {x}");
        }
    }
    ctx.input(1)?;
    let axes = match ctx.opt_input(3) {
        Some(_) => match const_ints(ctx, 3) {
            Some(a) => norm_axes(&a, x.rank())?,
            None => return Ok(vec![ValueType::new(x.dtype, ctx.data_shape(0, x.rank()))]),
        },
        None => (0..x.rank()).collect(),
    };
    let mut shape = x.shape.clone();
    match ctx.dims_input(1) {
        Some(pads) => {
            if pads.len() != 2 * axes.len() {
                bail!("Pad has {} pads for {} axes", pads.len(), axes.len());
            }
            for (i, &a) in axes.iter().enumerate() {
                shape[a] = shape[a].add(&pads[i]).add(&pads[axes.len() + i]);
                if shape[a].as_const().is_some_and(|c| c < 0) {
                    bail!("Pad pads {pads:?} crop {x} below zero");
                }
            }
        }
        None => {
            for &a in &axes {
                shape[a] = ctx.data_dim(0, a);
            }
        }
    }
    Ok(vec![ValueType::new(x.dtype, shape)])
}

pub fn eval_pad(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let mode = pad_mode(ctx.attrs)?;
    let pads = opt_ints(ctx, 1, "Pad pads")?.unwrap_or_default();
    let axes = match opt_ints(ctx, 3, "Pad axes")? {
        Some(a) => norm_axes(&a, x.rank())?,
        None => (0..x.rank()).collect(),
    };
    if pads.len() != 2 * axes.len() {
        bail!("Pad has {} pads for {} axes", pads.len(), axes.len());
    }
    let mut begin = vec![0i64; x.rank()];
    let mut end = vec![0i64; x.rank()];
    for (i, &a) in axes.iter().enumerate() {
        begin[a] = pads[i];
        end[a] = pads[axes.len() + i];
    }
    let st = strides(x.shape());
    let mut shape = Vec::with_capacity(x.rank());
    let mut maps = Vec::with_capacity(x.rank());
    for a in 0..x.rank() {
        let d = x.shape()[a] as i64;
        let n = d + begin[a] + end[a];
        if n < 0 {
            bail!("Pad pads {pads:?} crop {:?} below zero", x.shape());
        }
        if d == 0 && n > 0 && mode != "constant" {
            bail!("Pad mode \"{mode}\" cannot pad an empty axis");
        }
        let map = (0..n)
            .map(|o| {
                let i = o - begin[a];
                let src = if (0..d).contains(&i) {
                    Some(i)
                } else {
                    match mode {
                        "edge" => Some(i.clamp(0, d - 1)),
                        "wrap" => Some(i.rem_euclid(d)),
                        "reflect" if d == 1 => Some(0),
                        "reflect" => {
                            let p = 2 * (d - 1);
                            let m = i.rem_euclid(p);
                            Some(if m >= d { p - m } else { m })
                        }
                        _ => None,
                    }
                };
                src.map(|s| s as usize * st[a])
            })
            .collect();
        shape.push(n as usize);
        maps.push(map);
    }
    let fill = ctx.opt_input(2).filter(|t| !t.is_empty());
    Ok(vec![take_fill(x, &index_map(&maps), shape, fill)?])
}

// ---------------------------------------------------------------------------------------
// CenterCropPad

fn ccp_axes(attrs: &crate::attr::Attrs, rank: usize, n: usize) -> OpResult<Vec<usize>> {
    let axes = match attrs.ints("axes")? {
        Some(a) => norm_axes(&a, rank)?,
        None => (0..rank).collect(),
    };
    if axes.len() != n {
        bail!("CenterCropPad has {n} target sizes for {} axes", axes.len());
    }
    Ok(axes)
}

pub fn infer_center_crop_pad(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    want_int(ctx, 1, "CenterCropPad shape")?;
    let mut shape = x.shape.clone();
    match ctx.dims_input(1) {
        Some(target) => {
            for (a, t) in ccp_axes(ctx.attrs, x.rank(), target.len())?
                .into_iter()
                .zip(target)
            {
                shape[a] = t;
            }
        }
        None => {
            let n = vec_len(ctx, 1, "CenterCropPad shape")?;
            for a in ccp_axes(ctx.attrs, x.rank(), n)? {
                shape[a] = ctx.data_dim(0, a);
            }
        }
    }
    Ok(vec![ValueType::new(x.dtype, shape)])
}

pub fn eval_center_crop_pad(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let target = opt_ints(ctx, 1, "CenterCropPad shape")?.unwrap_or_default();
    let axes = ccp_axes(ctx.attrs, x.rank(), target.len())?;
    let st = strides(x.shape());
    let mut shape = x.shape().to_vec();
    for (&a, &t) in axes.iter().zip(&target) {
        if t < 0 {
            bail!("CenterCropPad target size {t} is negative");
        }
        shape[a] = t as usize;
    }
    let maps: Vec<Vec<Option<usize>>> = (0..x.rank())
        .map(|a| {
            let (d, n) = (x.shape()[a] as i64, shape[a] as i64);
            // Cropping starts inside the input; padding starts the input inside the output.
            let shift = if n <= d { (d - n) / 2 } else { -((n - d) / 2) };
            (0..n)
                .map(|o| {
                    let i = o + shift;
                    (0..d).contains(&i).then(|| i as usize * st[a])
                })
                .collect()
        })
        .collect();
    Ok(vec![take_fill(x, &index_map(&maps), shape, None)?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::Attr;
    use crate::dtype::DType::{F32, I64};
    use crate::ops::shape::testutil::*;

    #[test]
    fn slice_clamping_matches_numpy() {
        // (d, start, end, step) -> (first, len), as numpy's x[start:end:step].
        assert_eq!(slice_axis(10, 1, 1000, 1).unwrap(), (1, 9));
        assert_eq!(slice_axis(10, -3, -1, 1).unwrap(), (7, 2));
        assert_eq!(slice_axis(10, -1, i64::MIN, -1).unwrap(), (9, 10));
        assert_eq!(slice_axis(10, 20, 0, -2).unwrap(), (9, 5));
        assert_eq!(slice_axis(10, 5, 2, 1).unwrap(), (5, 0));
        assert_eq!(slice_axis(3, 0, 3, 2).unwrap(), (0, 2));
        assert_eq!(slice_axis(0, -1, i64::MIN, -1).unwrap(), (0, 0));
        assert!(slice_axis(3, 0, 3, 0).is_err());
    }

    #[test]
    fn slice_eval_negative_steps() {
        let x = floats(&[2, 4], &[1., 2., 3., 4., 5., 6., 7., 8.]);
        let a = attrs(&[]);
        let out = eval(
            "Slice",
            &a,
            &[
                Some(x),
                Some(ints(&[2], &[0, -1])),
                Some(ints(&[2], &[-1, 0])),
                Some(ints(&[2], &[0, 1])),
                Some(ints(&[2], &[1, -2])),
            ],
            1,
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[1, 2]);
        assert_eq!(out[0].to_f64(), vec![4., 2.]);
    }

    #[test]
    fn slice_symbolic() {
        let x = ty(F32, &["1", "seq+1"]);
        let i1 = ty(I64, &["1"]);
        let run = |s: &str, e: &str, k: &str| {
            infer(
                "Slice",
                &attrs(&[]),
                &[
                    Some(x.clone()),
                    Some(i1.clone()),
                    Some(i1.clone()),
                    Some(i1.clone()),
                    Some(i1.clone()),
                ],
                vec![
                    None,
                    Some(dims(&[s])),
                    Some(dims(&[e])),
                    Some(dims(&["-1"])),
                    Some(dims(&[k])),
                ],
                1,
            )
            .unwrap()
            .0[0]
                .to_string()
        };
        assert_eq!(run("0", "seq", "1"), "f32[1, seq]");
        assert_eq!(run("1", "seq+1", "1"), "f32[1, seq]");
        assert_eq!(run("0", "9223372036854775807", "1"), "f32[1, seq+1]");
        assert_eq!(run("-1", "-9223372036854775807", "-1"), "f32[1, seq+1]");
        assert_eq!(run("0", "-1", "1"), "f32[1, seq]");
        assert_eq!(
            run("0", "9223372036854775807", "2"),
            "f32[1, floordiv(seq+2, 2)]"
        );
        // Symbols are sizes >= 1: the last element, everything but the first.
        assert_eq!(run("-1", "9223372036854775807", "1"), "f32[1, 1]");
        assert_eq!(run("1", "9223372036854775807", "1"), "f32[1, seq]");
        assert_eq!(
            run("0", "floordiv(seq, 4)*4", "1"),
            "f32[1, floordiv(seq, 4)*4]"
        );
        // Not provable: kept exact with min/max.
        assert_eq!(run("0", "5", "1"), "f32[1, min(seq+1, 5)]");
        assert_eq!(run("2", "9223372036854775807", "1"), "f32[1, seq-1]");
        assert_eq!(
            run("3", "9223372036854775807", "1"),
            "f32[1, seq-min(seq+1, 3)+1]"
        );
        // Slicing a symbolic shape vector.
        let (_, sym) = infer(
            "Slice",
            &attrs(&[]),
            &[Some(ty(I64, &["3"])), Some(i1.clone()), Some(i1.clone())],
            vec![
                Some(dims(&["1", "seq", "64"])),
                Some(dims(&["-2"])),
                Some(dims(&["9223372036854775807"])),
            ],
            1,
        )
        .unwrap();
        assert_eq!(format!("{:?}", sym.unwrap()), "[seq, 64]");
    }

    #[test]
    fn pad_modes() {
        let x = floats(&[4], &[1., 2., 3., 4.]);
        let pads = Some(ints(&[2], &[3, 2]));
        let run = |mode: &str| {
            eval(
                "Pad",
                &attrs(&[("mode", Attr::Str(mode.into()))]),
                &[Some(x.clone()), pads.clone(), Some(Tensor::scalar_f32(9.))],
                1,
            )
            .unwrap()[0]
                .to_f64()
        };
        assert_eq!(run("constant"), vec![9., 9., 9., 1., 2., 3., 4., 9., 9.]);
        assert_eq!(run("edge"), vec![1., 1., 1., 1., 2., 3., 4., 4., 4.]);
        assert_eq!(run("reflect"), vec![4., 3., 2., 1., 2., 3., 4., 3., 2.]);
        assert_eq!(run("wrap"), vec![2., 3., 4., 1., 2., 3., 4., 1., 2.]);
        // Negative pads crop; axes select.
        let y = floats(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let out = eval(
            "Pad",
            &attrs(&[]),
            &[
                Some(y),
                Some(ints(&[2], &[-1, 1])),
                None,
                Some(ints(&[1], &[-1])),
            ],
            1,
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[2, 3]);
        assert_eq!(out[0].to_f64(), vec![2., 3., 0., 5., 6., 0.]);
    }

    #[test]
    fn center_crop_pad() {
        let x = floats(&[5], &[1., 2., 3., 4., 5.]);
        let out = eval(
            "CenterCropPad",
            &attrs(&[]),
            &[Some(x.clone()), Some(ints(&[1], &[2]))],
            1,
        )
        .unwrap();
        assert_eq!(out[0].to_f64(), vec![2., 3.]);
        let out = eval(
            "CenterCropPad",
            &attrs(&[]),
            &[Some(x), Some(ints(&[1], &[8]))],
            1,
        )
        .unwrap();
        assert_eq!(out[0].to_f64(), vec![0., 1., 2., 3., 4., 5., 0., 0.]);
    }
}
