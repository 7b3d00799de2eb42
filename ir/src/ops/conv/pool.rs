//! AveragePool, MaxPool, LpPool, GlobalAveragePool, GlobalMaxPool, GlobalLpPool,
//! MaxUnpool, Col2Im.

use crate::attr::AttrsExt;
use crate::bail;
use crate::dim::Dim;
use crate::dtype::DType;
use crate::ops::conv::check_image;
use crate::ops::conv::window::{Geometry, Tap, Window};
use crate::ops::util::one;
use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::{numel, strides, Tensor};
use crate::types::{Shape, ValueType};

/// `[N, C, out...]` of a windowed pool.
fn pool_shape(ctx: &InferCtx) -> OpResult<Shape> {
    let x = ctx.input(0)?;
    let n = check_image(x, "the input")?;
    let win = Window::from_kernel_attr(ctx.attrs)?;
    if win.rank() != n {
        bail!(
            "kernel_shape has {} dims, the input {n} spatial dims",
            win.rank()
        );
    }
    let mut shape = x.shape[..2].to_vec();
    shape.extend(win.out_dims(&x.shape[2..])?);
    Ok(shape)
}

pub fn infer_pool(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    one(ctx.input(0)?.dtype, pool_shape(ctx)?)
}

pub fn infer_max_pool(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let shape = pool_shape(ctx)?;
    let mut out = vec![ValueType::new(ctx.input(0)?.dtype, shape.clone())];
    if ctx.num_outputs > 1 {
        out.push(ValueType::new(DType::I64, shape));
    }
    Ok(out)
}

#[derive(Clone, Copy)]
enum Pool {
    Avg { include_pad: bool },
    Max { column_major: bool },
    Lp(f64),
}

/// Runs a windowed pool; returns Y and, for max, the indices.
fn pool(ctx: &EvalCtx, kind: Pool) -> OpResult<(Tensor, Option<Tensor>)> {
    let x = ctx.input(0)?;
    let xs = x.shape();
    if xs.len() < 3 {
        bail!("the input must be [N, C, spatial...], got {xs:?}");
    }
    let win = Window::from_kernel_attr(ctx.attrs)?;
    if win.rank() != xs.len() - 2 {
        bail!(
            "kernel_shape has {} dims, the input {} spatial dims",
            win.rank(),
            xs.len() - 2
        );
    }
    let geo = win.resolve(&xs[2..])?;
    let (isz, osz, ksz) = (geo.in_size(), geo.out_size(), geo.kernel_size());
    let taps = geo.taps();
    let planes = xs[0] * xs[1];
    let xv = x.to_f64();
    let mut y = vec![0.0; planes * osz];
    let mut idx = match kind {
        Pool::Max { .. } => vec![0i64; planes * osz],
        _ => vec![],
    };
    // Column-major spatial index of a row-major spatial offset (storage_order = 1).
    let row_strides = strides(&xs[2..]);
    let col_index = |off: usize| -> usize {
        let mut rem = off;
        let mut col_stride = 1;
        let mut idx = 0;
        for (a, &s) in row_strides.iter().enumerate() {
            idx += rem / s * col_stride;
            rem %= s;
            col_stride *= xs[2 + a];
        }
        idx
    };
    for p in 0..planes {
        let plane = &xv[p * isz..][..isz];
        for o in 0..osz {
            let window = &taps[o * ksz..][..ksz];
            let out = &mut y[p * osz + o];
            match kind {
                Pool::Avg { include_pad } => {
                    let (mut sum, mut count) = (0.0, 0usize);
                    for t in window {
                        match *t {
                            Tap::In(off) => {
                                sum += plane[off];
                                count += 1;
                            }
                            Tap::Pad if include_pad => count += 1,
                            _ => {}
                        }
                    }
                    *out = sum / count as f64;
                }
                Pool::Max { column_major } => {
                    let mut best: Option<(f64, usize)> = None;
                    for t in window {
                        if let Tap::In(off) = *t {
                            if best.is_none_or(|(b, _)| plane[off] > b) {
                                best = Some((plane[off], off));
                            }
                        }
                    }
                    let (v, off) = best.unwrap_or((f64::NEG_INFINITY, 0));
                    *out = v;
                    let sp = if column_major { col_index(off) } else { off };
                    idx[p * osz + o] = (p * isz + sp) as i64;
                }
                Pool::Lp(pw) => {
                    let sum: f64 = window
                        .iter()
                        .filter_map(|t| match *t {
                            Tap::In(off) => Some(plane[off].abs().powf(pw)),
                            _ => None,
                        })
                        .sum();
                    *out = sum.powf(1.0 / pw);
                }
            }
        }
    }
    let mut shape = xs[..2].to_vec();
    shape.extend(&geo.out);
    let indices = match kind {
        Pool::Max { .. } => Some(Tensor::from_i64(DType::I64, shape.clone(), &idx)),
        _ => None,
    };
    Ok((Tensor::from_f64(x.dtype(), shape, &y), indices))
}

pub fn eval_average_pool(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let include_pad = ctx.attrs.int_or("count_include_pad", 0)? != 0;
    Ok(vec![pool(ctx, Pool::Avg { include_pad })?.0])
}

pub fn eval_max_pool(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let column_major = match ctx.attrs.int_or("storage_order", 0)? {
        0 => false,
        1 => true,
        s => bail!("storage_order must be 0 or 1, got {s}"),
    };
    let (y, i) = pool(ctx, Pool::Max { column_major })?;
    let mut out = vec![y];
    if ctx.num_outputs > 1 {
        out.extend(i);
    }
    Ok(out)
}

/// The `p` attribute (an int in the newest opsets, a float in the first).
fn p_attr(ctx_attrs: &crate::attr::Attrs) -> OpResult<f64> {
    let p = ctx_attrs.float_or("p", 2.0)? as f64;
    if p <= 0.0 {
        bail!("p must be positive, got {p}");
    }
    Ok(p)
}

pub fn eval_lp_pool(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    Ok(vec![pool(ctx, Pool::Lp(p_attr(ctx.attrs)?))?.0])
}

// ---- Global pools ----

pub fn infer_global_pool(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    if x.rank() < 2 {
        bail!("the input must be [N, C, spatial...], got {x}");
    }
    let mut shape = x.shape[..2].to_vec();
    shape.resize(x.rank(), Dim::from(1i64));
    one(x.dtype, shape)
}

/// Reduces every `[n, c]` plane with `f`.
fn global(ctx: &EvalCtx, f: impl Fn(&[f64]) -> f64) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let xs = x.shape();
    if xs.len() < 2 {
        bail!("the input must be [N, C, spatial...], got {xs:?}");
    }
    let isz = numel(&xs[2..]);
    let xv = x.to_f64();
    let y: Vec<f64> = if isz == 0 {
        vec![f(&[]); xs[0] * xs[1]]
    } else {
        xv.chunks(isz).map(&f).collect()
    };
    let mut shape = xs[..2].to_vec();
    shape.resize(xs.len(), 1);
    Ok(vec![Tensor::from_f64(x.dtype(), shape, &y)])
}

pub fn eval_global_average_pool(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    global(ctx, |v| v.iter().sum::<f64>() / v.len() as f64)
}

pub fn eval_global_max_pool(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    global(ctx, |v| v.iter().copied().fold(f64::NEG_INFINITY, f64::max))
}

pub fn eval_global_lp_pool(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let p = p_attr(ctx.attrs)?;
    global(ctx, |v| {
        v.iter().map(|x| x.abs().powf(p)).sum::<f64>().powf(1.0 / p)
    })
}

// ---- MaxUnpool ----
// Inputs: X [N, C, in...], I (indices into the unpooled tensor), output_shape (optional).

/// The unpooled spatial dims `(in-1)*stride - pads + kernel`.
fn unpool_dims(ctx_attrs: &crate::attr::Attrs, input: &[Dim]) -> OpResult<Vec<Dim>> {
    let win = Window::from_kernel_attr(ctx_attrs)?;
    let n = win.rank();
    if input.len() != n {
        bail!(
            "kernel_shape has {n} dims, the input {} spatial dims",
            input.len()
        );
    }
    Ok((0..n)
        .map(|i| {
            input[i]
                .sub(&Dim::from(1i64))
                .mul(&Dim::from(win.strides[i]))
                .add(&Dim::from(win.kernel[i] - win.pads[i] - win.pads[n + i]))
        })
        .collect())
}

pub fn infer_max_unpool(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    check_image(x, "the input")?;
    let shape = if let Some(os) = ctx.opt_input(2) {
        match ctx.dims_input(2) {
            Some(d) if d.len() == x.rank() => d,
            Some(d) => bail!(
                "output_shape {d:?} does not have the input's rank {}",
                x.rank()
            ),
            None => match os.shape.first().and_then(|d| d.as_const()) {
                Some(r) if os.rank() == 1 && r as usize == x.rank() => ctx.data_shape(0, x.rank()),
                _ => bail!(
                    "output_shape must be a 1-D tensor of {} values, got {os}",
                    x.rank()
                ),
            },
        }
    } else {
        let mut s = x.shape[..2].to_vec();
        s.extend(unpool_dims(ctx.attrs, &x.shape[2..])?);
        s
    };
    one(x.dtype, shape)
}

pub fn eval_max_unpool(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let (x, ind) = (ctx.input(0)?, ctx.input(1)?);
    let xs = x.shape();
    if xs.len() < 3 || ind.shape() != xs {
        bail!(
            "X {xs:?} must be [N, C, spatial...] and I of the same shape, got {:?}",
            ind.shape()
        );
    }
    let in_dims: Vec<Dim> = xs[2..].iter().map(|&d| Dim::from(d)).collect();
    let mut natural = xs[..2].to_vec();
    for d in unpool_dims(ctx.attrs, &in_dims)? {
        match d.as_const() {
            Some(c) if c > 0 => natural.push(c as usize),
            _ => bail!("the unpooled shape would be empty for input {xs:?}"),
        }
    }
    let total = numel(&natural);
    let mut flat = vec![0.0; total];
    for (&i, &v) in ind.to_i64().iter().zip(&x.to_f64()) {
        if i < 0 || i as usize >= total {
            bail!("index {i} is outside the unpooled tensor {natural:?}");
        }
        flat[i as usize] = v;
    }
    let shape = match ctx.opt_input(2) {
        None => natural.clone(),
        Some(os) => {
            let s: Vec<i64> = os.to_i64();
            if s.len() != xs.len() || s.iter().zip(&natural).any(|(&a, &b)| a < b as i64) {
                bail!(
                    "output_shape {s:?} must have rank {} and hold the unpooled {natural:?}",
                    xs.len()
                );
            }
            s.iter().map(|&d| d as usize).collect()
        }
    };
    // The unpooled tensor sits at the origin of the (possibly larger) output.
    let mut y = vec![0.0; numel(&shape)];
    let (ns, os) = (strides(&natural), strides(&shape));
    for (i, &v) in flat.iter().enumerate() {
        let mut rem = i;
        let mut o = 0;
        for (&a, &b) in ns.iter().zip(&os) {
            o += rem / a * b;
            rem %= a;
        }
        y[o] = v;
    }
    Ok(vec![Tensor::from_f64(x.dtype(), shape, &y)])
}

// ---- Col2Im ----
// Inputs: input [N, C*prod(block), L], image_shape [n], block_shape [n].

pub fn infer_col2im(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    if x.rank() != 3 {
        bail!("the input must be [N, C*prod(block_shape), L], got {x}");
    }
    let n = match ctx.input(1)?.shape.as_slice() {
        [d] => match d.as_const() {
            Some(n) => n as usize,
            None => bail!("image_shape must have a static length"),
        },
        _ => bail!("image_shape must be 1-D"),
    };
    let image = ctx
        .dims_input(1)
        .unwrap_or_else(|| (0..n).map(|a| ctx.data_dim(0, 2 + a)).collect());
    let channels = match ctx.dims_input(2) {
        Some(b) => {
            let k = b.iter().fold(Dim::from(1i64), |acc, d| acc.mul(d));
            x.shape[1].floor_div(&k)
        }
        None => ctx.data_dim(0, 1),
    };
    let mut shape = vec![x.shape[0].clone(), channels];
    shape.extend(image);
    one(x.dtype, shape)
}

pub fn eval_col2im(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let xs = x.shape();
    let image: Vec<i64> = ctx.input(1)?.to_i64();
    let block: Vec<i64> = ctx.input(2)?.to_i64();
    let n = image.len();
    if xs.len() != 3 || block.len() != n || n == 0 {
        bail!("Col2Im needs input [N, C*K, L] and image_shape, block_shape of equal length");
    }
    if image.iter().chain(&block).any(|&d| d < 1) {
        bail!("image_shape {image:?} and block_shape {block:?} must be positive");
    }
    let win = Window::from_attrs(ctx.attrs, block.clone())?;
    let img: Vec<usize> = image.iter().map(|&d| d as usize).collect();
    let geo: Geometry = win.resolve(&img)?;
    let (isz, osz, ksz) = (geo.in_size(), geo.out_size(), geo.kernel_size());
    if xs[1] % ksz != 0 || xs[2] != osz {
        bail!(
            "input {xs:?} does not hold C*{ksz} channels of {osz} blocks ({:?})",
            geo.out
        );
    }
    let c = xs[1] / ksz;
    let taps = geo.taps();
    let xv = x.to_f64();
    let mut y = vec![0.0; xs[0] * c * isz];
    for b in 0..xs[0] {
        for ch in 0..c {
            let yp = &mut y[(b * c + ch) * isz..][..isz];
            for k in 0..ksz {
                let row = &xv[((b * c + ch) * ksz + k) * osz..][..osz];
                for (o, &v) in row.iter().enumerate() {
                    if let Tap::In(off) = taps[o * ksz + k] {
                        yp[off] += v;
                    }
                }
            }
        }
    }
    let mut shape = vec![xs[0], c];
    shape.extend(&img);
    Ok(vec![Tensor::from_f64(x.dtype(), shape, &y)])
}

#[cfg(test)]
mod tests {
    use crate::attr::Attr;
    use crate::dtype::DType;
    use crate::ops::conv::testutil::{attrs, close, f32s, ints, run};
    use crate::tensor::Tensor;

    fn iota(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        f32s(shape, &(0..n).map(|i| (i + 1) as f32).collect::<Vec<_>>())
    }

    #[test]
    fn average_pool_pads_with_and_without_count_include_pad() {
        let x = iota(&[1, 1, 3, 3]);
        let a = attrs(&[
            ("kernel_shape", ints(&[2, 2])),
            ("pads", ints(&[1, 1, 0, 0])),
        ]);
        let y = run("AveragePool", &a, vec![Some(x.clone())], 1).unwrap();
        // Windows over rows -1..0 / 0..1 and cols -1..0 / 0..1 / 1..2 ...
        close(&y[0], &[1., 1.5, 2.5, 2.5, 3., 4., 5.5, 6., 7.], 1e-12);
        let mut a2 = a.clone();
        a2.insert("count_include_pad".into(), Attr::Int(1));
        let y = run("AveragePool", &a2, vec![Some(x)], 1).unwrap();
        close(
            &y[0],
            &[0.25, 0.75, 1.25, 1.25, 3., 4., 2.75, 6., 7.],
            1e-12,
        );
    }

    #[test]
    fn average_pool_ceil_excludes_positions_past_the_padding() {
        // 1-D: in 4, kernel 3, stride 2, ceil: windows [0..3) and [2..5); position 4 is
        // past the input and there is no padding, so it never counts.
        let x = f32s(&[1, 1, 4], &[1., 2., 3., 4.]);
        let a = attrs(&[
            ("kernel_shape", ints(&[3])),
            ("strides", ints(&[2])),
            ("ceil_mode", Attr::Int(1)),
            ("count_include_pad", Attr::Int(1)),
        ]);
        let y = run("AveragePool", &a, vec![Some(x)], 1).unwrap();
        close(&y[0], &[2., 3.5], 1e-12);
    }

    #[test]
    fn max_pool_with_indices_and_storage_order() {
        let x = f32s(&[1, 1, 2, 3], &[1., 6., 3., 4., 5., 2.]);
        let a = attrs(&[("kernel_shape", ints(&[2, 2]))]);
        let y = run("MaxPool", &a, vec![Some(x.clone())], 2).unwrap();
        close(&y[0], &[6., 6.], 0.0);
        assert_eq!(y[1].to_i64(), vec![1, 1]);
        let mut a2 = a.clone();
        a2.insert("storage_order".into(), Attr::Int(1));
        let x2 = f32s(&[1, 1, 2, 3], &[1., 2., 3., 4., 5., 9.]);
        let y = run("MaxPool", &a2, vec![Some(x2)], 2).unwrap();
        close(&y[0], &[5., 9.], 0.0);
        // (1,1) and (1,2) in column-major over [2, 3]: 1 + 1*2 = 3, 1 + 2*2 = 5.
        assert_eq!(y[1].to_i64(), vec![3, 5]);
        // uint8 stays uint8; dilation 2 over a row of 5.
        let x = Tensor::from_i64(DType::U8, vec![1, 1, 5], &[9, 1, 3, 200, 4]);
        let a = attrs(&[("kernel_shape", ints(&[2])), ("dilations", ints(&[2]))]);
        let y = run("MaxPool", &a, vec![Some(x)], 1).unwrap();
        assert_eq!(y[0].dtype(), DType::U8);
        assert_eq!(y[0].to_i64(), vec![9, 200, 4]);
    }

    #[test]
    fn lp_pool_and_global_pools() {
        let x = f32s(&[1, 1, 4], &[3., -4., 0., 1.]);
        let a = attrs(&[("kernel_shape", ints(&[2])), ("strides", ints(&[2]))]);
        let y = run("LpPool", &a, vec![Some(x.clone())], 1).unwrap();
        close(&y[0], &[5., 1.], 1e-12);
        let y = run(
            "GlobalLpPool",
            &attrs(&[("p", Attr::Int(1))]),
            vec![Some(x.clone())],
            1,
        )
        .unwrap();
        assert_eq!(y[0].shape(), &[1, 1, 1]);
        close(&y[0], &[8.], 1e-12);
        let y = run("GlobalAveragePool", &attrs(&[]), vec![Some(x.clone())], 1).unwrap();
        close(&y[0], &[0.], 1e-12);
        let y = run("GlobalMaxPool", &attrs(&[]), vec![Some(x)], 1).unwrap();
        close(&y[0], &[3.], 1e-12);
    }

    #[test]
    fn max_unpool_places_values_and_pads_to_output_shape() {
        let x = f32s(&[1, 1, 2, 2], &[5., 6., 7., 8.]);
        let i = Tensor::from_i64s(vec![1, 1, 2, 2], vec![5, 7, 13, 15]).unwrap();
        let a = attrs(&[("kernel_shape", ints(&[2, 2])), ("strides", ints(&[2, 2]))]);
        let y = run("MaxUnpool", &a, vec![Some(x.clone()), Some(i.clone())], 1).unwrap();
        assert_eq!(y[0].shape(), &[1, 1, 4, 4]);
        let mut want = vec![0.0; 16];
        (want[5], want[7], want[13], want[15]) = (5., 6., 7., 8.);
        close(&y[0], &want, 0.0);
        let os = Tensor::from_i64s(vec![4], vec![1, 1, 5, 5]).unwrap();
        let y = run("MaxUnpool", &a, vec![Some(x), Some(i), Some(os)], 1).unwrap();
        assert_eq!(y[0].shape(), &[1, 1, 5, 5]);
        let mut want = vec![0.0; 25];
        (want[6], want[8], want[16], want[18]) = (5., 6., 7., 8.);
        close(&y[0], &want, 0.0);
    }

    #[test]
    fn col2im_sums_overlapping_blocks() {
        // image 1x3, block 1x2: blocks at cols 0 and 1; col 1 gets both.
        let x = f32s(&[1, 2, 2], &[1., 2., 10., 20.]);
        let image = Tensor::from_i64s(vec![2], vec![1, 3]).unwrap();
        let block = Tensor::from_i64s(vec![2], vec![1, 2]).unwrap();
        let y = run(
            "Col2Im",
            &attrs(&[]),
            vec![Some(x), Some(image), Some(block)],
            1,
        )
        .unwrap();
        assert_eq!(y[0].shape(), &[1, 1, 1, 3]);
        // k=0 row [1, 2] at cols 0,1; k=1 row [10, 20] at cols 1,2.
        close(&y[0], &[1., 12., 20.], 0.0);
    }
}
