//! `GridSample` (opset 22, any number of spatial dims) and `AffineGrid` (opset 20).

use crate::attr::AttrsExt;
use crate::bail;
use crate::dim::Dim;
use crate::ops::misc::round_to;
use crate::ops::util::one;
use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::{numel, strides, Tensor};
use crate::types::ValueType;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Nearest,
    Linear,
    Cubic,
}

#[derive(Clone, Copy, PartialEq)]
enum Padding {
    Zeros,
    Border,
    Reflection,
}

pub fn infer_grid_sample(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    let g = ctx.input(1)?;
    if x.rank() < 3 {
        bail!("GridSample input must have rank >= 3, got {x}");
    }
    if g.rank() != x.rank() {
        bail!("GridSample grid {g} must have the rank of the input {x}");
    }
    if let Some(c) = g.shape[g.rank() - 1].as_const() {
        if c as usize != x.rank() - 2 {
            bail!(
                "GridSample grid {g} must end in {} coordinates",
                x.rank() - 2
            );
        }
    }
    let mut shape = vec![x.shape[0].clone(), x.shape[1].clone()];
    shape.extend(g.shape[1..g.rank() - 1].iter().cloned());
    one(x.dtype, shape)
}

/// Reflects `x` into `[lo, hi]` by bouncing off the borders.
fn reflect(x: f64, lo: f64, hi: f64) -> f64 {
    let range = hi - lo;
    if range <= 0.0 {
        return lo;
    }
    if x < lo {
        let dx = lo - x;
        let n = (dx / range).trunc();
        let r = dx - n * range;
        if n as i64 % 2 == 0 {
            lo + r
        } else {
            hi - r
        }
    } else if x > hi {
        let dx = x - hi;
        let n = (dx / range).trunc();
        let r = dx - n * range;
        if n as i64 % 2 == 0 {
            hi - r
        } else {
            lo + r
        }
    } else {
        x
    }
}

fn cubic_coeffs(t: f64) -> [f64; 4] {
    let a = -0.75;
    let k1 = |x: f64| ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    let k2 = |x: f64| ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
    [k2(t + 1.0), k1(t), k1(1.0 - t), k2(2.0 - t)]
}

pub fn eval_grid_sample(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let grid = ctx.input(1)?;
    let mode = match ctx.attrs.str_or("mode", "linear")? {
        "nearest" => Mode::Nearest,
        "linear" | "bilinear" => Mode::Linear,
        "cubic" | "bicubic" => Mode::Cubic,
        m => bail!("GridSample mode \"{m}\" is not one of nearest, linear, cubic"),
    };
    let padding = match ctx.attrs.str_or("padding_mode", "zeros")? {
        "zeros" => Padding::Zeros,
        "border" => Padding::Border,
        "reflection" => Padding::Reflection,
        m => bail!("GridSample padding_mode \"{m}\" is not one of zeros, border, reflection"),
    };
    let align = ctx.attrs.int_or("align_corners", 0)? != 0;
    let xs = x.shape();
    let gs = grid.shape();
    if xs.len() < 3 || gs.len() != xs.len() || gs[gs.len() - 1] != xs.len() - 2 || gs[0] != xs[0] {
        bail!("GridSample cannot sample input {xs:?} with grid {gs:?}");
    }
    let r = xs.len() - 2;
    let (n, c) = (xs[0], xs[1]);
    let dims = &xs[2..];
    if dims.contains(&0) && numel(gs) > 0 {
        bail!("GridSample cannot sample the empty input {xs:?}");
    }
    let spatial: usize = numel(dims);
    let out_sp = &gs[1..gs.len() - 1];
    let npts: usize = numel(out_sp);
    let mut oshape = vec![n, c];
    oshape.extend_from_slice(out_sp);
    let xv = x.to_f64();
    let gv = grid.to_f64();
    let gdt = grid.dtype();
    let dstr = strides(dims);
    let mut out = vec![0.0f64; numel(&oshape)];
    // Per dim: (lo, hi) borders of the valid coordinate range.
    let borders: Vec<(f64, f64)> = dims
        .iter()
        .map(|&d| {
            if align {
                (0.0, d as f64 - 1.0)
            } else {
                (-0.5, d as f64 - 0.5)
            }
        })
        .collect();
    // Per dim taps for one point: (index or None for a zero, weight).
    let mut taps: Vec<Vec<(Option<usize>, f64)>> = vec![Vec::new(); r];
    let fetch = |i: i64, d: usize, k: usize| -> Option<usize> {
        let len = dims[d] as i64;
        match padding {
            Padding::Zeros => (0..len).contains(&i).then_some(i as usize),
            Padding::Border => Some(i.clamp(0, len - 1) as usize),
            Padding::Reflection => {
                let (lo, hi) = borders[k];
                Some((reflect(i as f64, lo, hi) as i64).clamp(0, len - 1) as usize)
            }
        }
    };
    for b in 0..n {
        for p in 0..npts {
            let gbase = (b * npts + p) * r;
            for d in 0..r {
                // The grid lists coordinates innermost dim first.
                let nv = gv[gbase + r - 1 - d];
                let len = dims[d] as f64;
                let mut v = if align {
                    (nv + 1.0) / 2.0 * (len - 1.0)
                } else {
                    ((nv + 1.0) * len - 1.0) / 2.0
                };
                v = round_to(gdt, v);
                if mode == Mode::Nearest {
                    v = v.round_ties_even();
                }
                let (lo, hi) = borders[d];
                if v < lo || v > hi {
                    match padding {
                        Padding::Border => v = v.clamp(0.0, len - 1.0),
                        Padding::Reflection => v = reflect(v, lo, hi),
                        Padding::Zeros => {}
                    }
                }
                let t = &mut taps[d];
                t.clear();
                match mode {
                    Mode::Nearest => t.push((fetch(v as i64, d, d), 1.0)),
                    Mode::Linear => {
                        let f = v.floor();
                        let w = v - f;
                        t.push((fetch(f as i64, d, d), 1.0 - w));
                        t.push((fetch(f as i64 + 1, d, d), w));
                    }
                    Mode::Cubic => {
                        let f = v.floor();
                        let cs = cubic_coeffs(v - f);
                        for (k, &cw) in cs.iter().enumerate() {
                            t.push((fetch(f as i64 - 1 + k as i64, d, d), cw));
                        }
                    }
                }
            }
            // Sum over the tensor product of the taps.
            let mut combos: Vec<(Option<usize>, f64)> = vec![(Some(0), 1.0)];
            for (d, t) in taps.iter().enumerate() {
                let mut next = Vec::with_capacity(combos.len() * t.len());
                for &(off, w) in &combos {
                    for &(i, tw) in t {
                        let o = match (off, i) {
                            (Some(o), Some(i)) => Some(o + i * dstr[d]),
                            _ => None,
                        };
                        next.push((o, w * tw));
                    }
                }
                combos = next;
            }
            for ch in 0..c {
                let base = (b * c + ch) * spatial;
                let v: f64 = combos
                    .iter()
                    .filter_map(|&(o, w)| o.map(|o| w * xv[base + o]))
                    .sum();
                out[(b * c + ch) * npts + p] = v;
            }
        }
    }
    Ok(vec![Tensor::from_f64(x.dtype(), oshape, &out)])
}

pub fn infer_affine_grid(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let theta = ctx.input(0)?;
    ctx.input(1)?;
    if theta.rank() != 3 {
        bail!("AffineGrid theta must be [N, r, r+1], got {theta}");
    }
    let shape = match ctx.dims_input(1) {
        Some(size) => {
            if size.len() != 4 && size.len() != 5 {
                bail!("AffineGrid size must have 4 or 5 values, got {size:?}");
            }
            let mut s = vec![size[0].clone()];
            s.extend(size[2..].iter().cloned());
            s.push(Dim::from((size.len() - 2) as i64));
            s
        }
        None => {
            let n = match ctx.input(1)?.shape.first().and_then(|d| d.as_const()) {
                Some(n @ (4 | 5)) => n as usize,
                _ => bail!("AffineGrid size must have a known length of 4 or 5"),
            };
            let mut s = vec![theta.shape[0].clone()];
            for a in 1..n - 1 {
                s.push(ctx.data_dim(0, a));
            }
            s.push(Dim::from((n - 2) as i64));
            s
        }
    };
    one(theta.dtype, shape)
}

pub fn eval_affine_grid(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let theta = ctx.input(0)?;
    let size = ctx.input(1)?.to_i64();
    let align = ctx.attrs.int_or("align_corners", 0)? != 0;
    if size.len() != 4 && size.len() != 5 || size.iter().any(|&s| s < 0) {
        bail!("AffineGrid size must be 4 or 5 non-negative values, got {size:?}");
    }
    let r = size.len() - 2;
    let n = size[0] as usize;
    let ts = theta.shape();
    if ts != [n, r, r + 1] {
        bail!("AffineGrid theta {ts:?} does not fit size {size:?}");
    }
    let dims: Vec<usize> = size[2..].iter().map(|&d| d as usize).collect();
    // Normalised coordinates along each spatial dim.
    let coords: Vec<Vec<f64>> = dims
        .iter()
        .map(|&d| {
            (0..d)
                .map(|i| {
                    let i = i as f64;
                    let d = d as f64;
                    if align {
                        if d <= 1.0 {
                            -1.0
                        } else {
                            -1.0 + i * (2.0 / (d - 1.0))
                        }
                    } else {
                        let step = 2.0 / d;
                        -1.0 + step / 2.0 + i * step
                    }
                })
                .collect()
        })
        .collect();
    let th = theta.to_f64();
    let npts = numel(&dims);
    let dstr = strides(&dims);
    let mut out = Vec::with_capacity(n * npts * r);
    let mut homo = vec![0.0f64; r + 1];
    for b in 0..n {
        let t = &th[b * r * (r + 1)..(b + 1) * r * (r + 1)];
        for p in 0..npts {
            // Homogeneous point, innermost spatial dim first: (x, y[, z], 1).
            for d in 0..r {
                let idx = (p / dstr[d]) % dims[d];
                homo[r - 1 - d] = coords[d][idx];
            }
            homo[r] = 1.0;
            for row in 0..r {
                let v: f64 = (0..=r).map(|k| t[row * (r + 1) + k] * homo[k]).sum();
                out.push(v);
            }
        }
    }
    let mut oshape = vec![n];
    oshape.extend_from_slice(&dims);
    oshape.push(r);
    Ok(vec![Tensor::from_f64(theta.dtype(), oshape, &out)])
}

#[cfg(test)]
mod tests {
    use crate::attr::Attr;
    use crate::ops::misc::testutil::{attrs, close, f32t, i64t, run_op, s};

    #[test]
    fn grid_sample_bilinear_zeros_padding() {
        // 1x1x2x2 input; grid points at the centre, a corner and outside.
        let x = f32t(&[1, 1, 2, 2], &[1., 2., 3., 4.]);
        let g = f32t(&[1, 1, 3, 2], &[0., 0., -0.5, -0.5, -2., 0.]);
        let out = run_op("GridSample", &attrs(&[]), vec![x, g], 1).unwrap();
        assert_eq!(out[0].shape(), &[1, 1, 1, 3]);
        // Centre: mean 2.5; (-0.5,-0.5) is pixel (0,0) exactly; x=-2 -> -1.5: all zeros.
        close(&out[0].to_f64(), &[2.5, 1.0, 0.0], 1e-6);
    }

    #[test]
    fn grid_sample_bicubic_onnx_case() {
        let x = f32t(&[1, 1, 3, 2], &[0., 1., 2., 3., 4., 5.]);
        let g = f32t(
            &[1, 2, 4, 2],
            &[
                -1., -1., -0.5, -0.5, -0.2, -0.2, 0., 0., 0., 0., -0.2, -0.2, 0.5, 0.5, 1., 1.,
            ],
        );
        let out = run_op("GridSample", &attrs(&[("mode", s("cubic"))]), vec![x, g], 1).unwrap();
        close(
            &out[0].to_f64(),
            &[
                -0.1406, 0.3828, 1.7556, 2.9688, 2.9688, 1.7556, 5.1445, 1.3906,
            ],
            1e-4,
        );
    }

    #[test]
    fn grid_sample_reflection_and_border() {
        let x = f32t(&[1, 1, 1, 3], &[10., 20., 30.]);
        // x = 1.5 (normalised) -> pixel 2.75 with align_corners=0 (range [-0.5, 2.5]).
        let g = f32t(&[1, 1, 1, 2], &[1.5, 0.]);
        let run = |pm: &str| {
            let a = attrs(&[("padding_mode", s(pm)), ("mode", s("nearest"))]);
            run_op("GridSample", &a, vec![x.clone(), g.clone()], 1).unwrap()[0].to_f64()
        };
        // rint(2.75) = 3 -> border clamps to 2; reflection of 3 about 2.5 is 2.
        close(&run("border"), &[30.], 0.0);
        close(&run("reflection"), &[30.], 0.0);
        close(&run("zeros"), &[0.], 0.0);
    }

    #[test]
    fn affine_grid_identity() {
        let theta = f32t(&[1, 2, 3], &[1., 0., 0., 0., 1., 0.]);
        let size = i64t(&[4], &[1, 1, 2, 3]);
        let a = attrs(&[("align_corners", Attr::Int(1))]);
        let out = run_op("AffineGrid", &a, vec![theta.clone(), size.clone()], 1).unwrap();
        assert_eq!(out[0].shape(), &[1, 2, 3, 2]);
        close(
            &out[0].to_f64(),
            &[-1., -1., 0., -1., 1., -1., -1., 1., 0., 1., 1., 1.],
            1e-6,
        );
        let out = run_op("AffineGrid", &attrs(&[]), vec![theta, size], 1).unwrap();
        let third = 2.0 / 3.0;
        close(
            &out[0].to_f64(),
            &[
                -third, -0.5, 0., -0.5, third, -0.5, -third, 0.5, 0., 0.5, third, 0.5,
            ],
            1e-6,
        );
    }
}
