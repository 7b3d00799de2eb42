//! Linear quantization: QuantizeLinear, DequantizeLinear (per-tensor, per-axis and
//! blocked), DynamicQuantizeLinear and QLinearMatMul.
//!
//! Arithmetic follows ONNX's precision rules: the division of QuantizeLinear is rounded
//! to the precision dtype (the `precision` attribute, else the scale's dtype), the product
//! of DequantizeLinear to f32 and then to the output dtype. Integer results round half to
//! even and saturate to the target range; fp8 results saturate unless `saturate = 0`.

use crate::attr::{Attrs, AttrsExt};
use crate::bail;
use crate::dim::Dim;
use crate::dtype::DType;
use crate::ops::misc::{dtype_attr, int_range, round_to};
use crate::ops::util::{axis as norm_axis, one};
use crate::ops::{EvalCtx, InferCtx, OpResult, OpSpec};
use crate::tensor::{numel, Tensor};
use crate::types::{broadcast_concrete, broadcast_shapes, ValueType};

pub const SPECS: &[OpSpec] = &[
    OpSpec::new("QuantizeLinear", infer_quantize, eval_quantize),
    OpSpec::new("DequantizeLinear", infer_dequantize, eval_dequantize),
    OpSpec::new(
        "DynamicQuantizeLinear",
        infer_dynamic_quantize,
        eval_dynamic_quantize,
    ),
    OpSpec::new("QLinearMatMul", infer_qlinear_matmul, eval_qlinear_matmul),
];

/// Whether `dtype` is a type QuantizeLinear can produce here.
fn is_quant_type(dtype: DType) -> bool {
    matches!(
        dtype,
        DType::I8 | DType::U8 | DType::I16 | DType::U16 | DType::I32
    ) || dtype.is_fp8()
}

/// How a scale / zero point maps onto the elements of `x`.
#[derive(Clone, Copy, Debug)]
enum Granularity {
    /// One value.
    Tensor,
    /// One value per index of the axis (`inner` = product of the dims after it).
    Axis { len: usize, inner: usize },
    /// One value per block of `block` indices along the axis, the other dims kept.
    Blocked {
        len: usize,
        blocks: usize,
        block: usize,
        inner: usize,
    },
}

impl Granularity {
    fn index(&self, flat: usize) -> usize {
        match *self {
            Granularity::Tensor => 0,
            Granularity::Axis { len, inner } => (flat / inner) % len,
            Granularity::Blocked {
                len,
                blocks,
                block,
                inner,
            } => {
                let i = flat % inner;
                let rest = flat / inner;
                let a = rest % len;
                let o = rest / len;
                (o * blocks + a / block) * inner + i
            }
        }
    }
}

/// The granularity of a parameter of shape `p` for `x` of shape `x`.
fn granularity(attrs: &Attrs, x: &[usize], p: &[usize], what: &str) -> OpResult<Granularity> {
    if p.is_empty() || numel(p) == 1 {
        return Ok(Granularity::Tensor);
    }
    let block = attrs.int_or("block_size", 0)?;
    let ax = norm_axis(attrs.int_or("axis", 1)?, x.len())?;
    let inner: usize = x[ax + 1..].iter().product();
    if block < 0 {
        bail!("block_size {block} must not be negative");
    }
    if block == 0 {
        if p.len() != 1 || p[0] != x[ax] {
            bail!(
                "{what} of shape {p:?} is neither a scalar nor per-axis for input {x:?} on axis {ax}"
            );
        }
        return Ok(Granularity::Axis { len: x[ax], inner });
    }
    let block = block as usize;
    let blocks = x[ax].div_ceil(block);
    let ok = p.len() == x.len()
        && p.iter()
            .zip(x)
            .enumerate()
            .all(|(i, (&a, &b))| if i == ax { a == blocks } else { a == b });
    if !ok {
        bail!("{what} of shape {p:?} does not block input {x:?} on axis {ax} by {block}");
    }
    Ok(Granularity::Blocked {
        len: x[ax],
        blocks,
        block,
        inner,
    })
}

fn check_same_shape(scale: &Tensor, zp: Option<&Tensor>) -> OpResult<()> {
    if let Some(z) = zp {
        if z.shape() != scale.shape() && !(z.len() == 1 && scale.len() == 1) {
            bail!(
                "zero point shape {:?} differs from scale shape {:?}",
                z.shape(),
                scale.shape()
            );
        }
    }
    Ok(())
}

fn quantize_out_dtype(attrs: &Attrs, zp: Option<DType>) -> OpResult<DType> {
    let attr = dtype_attr(attrs, "output_dtype")?;
    let d = match (zp, attr) {
        (Some(z), Some(a)) if z != a => {
            bail!("QuantizeLinear output_dtype {a} differs from the zero point's {z}")
        }
        (Some(z), _) => z,
        (None, Some(a)) => a,
        (None, None) => DType::U8,
    };
    if !is_quant_type(d) {
        bail!("QuantizeLinear cannot produce {d}");
    }
    Ok(d)
}

fn infer_quantize(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    ctx.input(1)?;
    let d = quantize_out_dtype(ctx.attrs, ctx.opt_input(2).map(|t| t.dtype))?;
    one(d, x.shape.clone())
}

fn eval_quantize(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let scale = ctx.input(1)?;
    let zp = ctx.opt_input(2);
    check_same_shape(scale, zp)?;
    let out = quantize_out_dtype(ctx.attrs, zp.map(|t| t.dtype()))?;
    let g = granularity(ctx.attrs, x.shape(), scale.shape(), "y_scale")?;
    let prec = dtype_attr(ctx.attrs, "precision")?.unwrap_or(scale.dtype());
    let saturate = ctx.attrs.int_or("saturate", 1)? != 0;
    let xs = x.to_f64();
    let ss = scale.to_f64();
    let zs = zp.map(|z| z.to_f64());
    let q: Vec<f64> = xs
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let k = g.index(i);
            let d = round_to(prec, round_to(prec, v) / round_to(prec, ss[k]));
            let z = zs.as_ref().map_or(0.0, |z| z[k]);
            if out.is_fp8() {
                d + z
            } else {
                let (lo, hi) = int_range(out);
                (d.round_ties_even() + z).clamp(lo, hi)
            }
        })
        .collect();
    Ok(vec![Tensor::from_f64_sat(
        out,
        x.shape().to_vec(),
        &q,
        saturate,
    )])
}

fn dequantize_out_dtype(attrs: &Attrs, scale: DType) -> OpResult<DType> {
    let d = dtype_attr(attrs, "output_dtype")?.unwrap_or(scale);
    if !matches!(d, DType::F32 | DType::F16 | DType::BF16) {
        bail!("DequantizeLinear cannot produce {d}");
    }
    Ok(d)
}

fn infer_dequantize(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    let s = ctx.input(1)?;
    if let Some(z) = ctx.opt_input(2) {
        if z.dtype != x.dtype {
            bail!(
                "DequantizeLinear zero point is {}, the input is {}",
                z.dtype,
                x.dtype
            );
        }
    }
    one(dequantize_out_dtype(ctx.attrs, s.dtype)?, x.shape.clone())
}

fn eval_dequantize(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let scale = ctx.input(1)?;
    let zp = ctx.opt_input(2);
    check_same_shape(scale, zp)?;
    let out = dequantize_out_dtype(ctx.attrs, scale.dtype())?;
    let g = granularity(ctx.attrs, x.shape(), scale.shape(), "x_scale")?;
    let ss = scale.to_f64();
    let zs = zp.map(|z| z.to_f64());
    let y: Vec<f64> = x
        .to_f64()
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let k = g.index(i);
            let z = zs.as_ref().map_or(0.0, |z| z[k]);
            round_to(DType::F32, (v - z) * ss[k])
        })
        .collect();
    Ok(vec![Tensor::from_f64(out, x.shape().to_vec(), &y)])
}

fn infer_dynamic_quantize(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    if x.dtype != DType::F32 {
        bail!("DynamicQuantizeLinear takes f32, got {}", x.dtype);
    }
    Ok(vec![
        ValueType::new(DType::U8, x.shape.clone()),
        ValueType::new(DType::F32, vec![]),
        ValueType::new(DType::U8, vec![]),
    ])
}

fn eval_dynamic_quantize(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let xs: Vec<f32> = x.to_f64().iter().map(|&v| v as f32).collect();
    // The range always includes 0; all arithmetic in f32 as the spec's reference.
    let max = xs.iter().fold(0.0f32, |a, &b| a.max(b));
    let min = xs.iter().fold(0.0f32, |a, &b| a.min(b));
    let scale = if max == min { 1.0f32 } else { max - min } / 255.0f32;
    let zp = (0.0f32 - min / scale).clamp(0.0, 255.0).round_ties_even();
    let y: Vec<f64> = xs
        .iter()
        .map(|&v| ((v / scale).round_ties_even() + zp).clamp(0.0, 255.0) as f64)
        .collect();
    let out = vec![
        Tensor::from_f64(DType::U8, x.shape().to_vec(), &y),
        Tensor::from_f64(DType::F32, vec![], &[scale as f64]),
        Tensor::from_f64(DType::U8, vec![], &[zp as f64]),
    ];
    Ok(out.into_iter().take(ctx.num_outputs.max(1)).collect())
}

/// The numpy-matmul output shape of `a` and `b` (rank-1 operands promoted and dropped).
fn matmul_shape(a: &[Dim], b: &[Dim]) -> OpResult<Vec<Dim>> {
    if a.is_empty() || b.is_empty() {
        bail!("QLinearMatMul inputs must have rank >= 1");
    }
    let a2: Vec<Dim> = if a.len() == 1 {
        vec![Dim::from(1i64), a[0].clone()]
    } else {
        a.to_vec()
    };
    let b2: Vec<Dim> = if b.len() == 1 {
        vec![b[0].clone(), Dim::from(1i64)]
    } else {
        b.to_vec()
    };
    let (k1, k2) = (&a2[a2.len() - 1], &b2[b2.len() - 2]);
    if let (Some(x), Some(y)) = (k1.as_const(), k2.as_const()) {
        if x != y {
            bail!("QLinearMatMul inner dims differ: {a:?} x {b:?}");
        }
    }
    let batch = broadcast_shapes(&[&a2[..a2.len() - 2], &b2[..b2.len() - 2]])
        .ok_or_else(|| crate::ops::OpError::new(format!("cannot broadcast {a:?} with {b:?}")))?;
    let mut out = batch;
    if a.len() > 1 {
        out.push(a2[a2.len() - 2].clone());
    }
    if b.len() > 1 {
        out.push(b2[b2.len() - 1].clone());
    }
    Ok(out)
}

fn infer_qlinear_matmul(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let a = ctx.input(0)?;
    let b = ctx.input(3)?;
    for i in [1, 2, 4, 5, 6] {
        ctx.input(i)?;
    }
    let yz = ctx.input(7)?;
    one(yz.dtype, matmul_shape(&a.shape, &b.shape)?)
}

/// For each element of `dst` (row-major), the flat index into `src` under numpy
/// broadcasting.
fn broadcast_index(src: &[usize], dst: &[usize]) -> Vec<usize> {
    let n = numel(dst);
    let pad = dst.len() - src.len();
    let mut sstr = vec![0usize; dst.len()];
    let mut acc = 1;
    for i in (0..src.len()).rev() {
        sstr[pad + i] = if src[i] == 1 { 0 } else { acc };
        acc *= src[i];
    }
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; dst.len()];
    for _ in 0..n {
        out.push(idx.iter().zip(&sstr).map(|(a, b)| a * b).sum());
        for d in (0..dst.len()).rev() {
            idx[d] += 1;
            if idx[d] < dst[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

/// Values of a parameter broadcast to `shape`. A 1-D parameter of `a` (per row) with the
/// length of `a`'s rows stands for shape `[M, 1]`.
fn spread(p: &Tensor, shape: &[usize], per_row: bool) -> OpResult<Vec<f64>> {
    let mut ps = p.shape().to_vec();
    if per_row && ps.len() == 1 && ps[0] != 1 && shape.len() >= 2 && ps[0] == shape[shape.len() - 2]
    {
        ps.push(1);
    }
    if ps.len() > shape.len() || broadcast_concrete(&[&ps, shape]).as_deref() != Some(shape) {
        bail!(
            "QLinearMatMul parameter of shape {:?} does not broadcast to {shape:?}",
            p.shape()
        );
    }
    let v = p.to_f64();
    Ok(broadcast_index(&ps, shape)
        .into_iter()
        .map(|i| v[i])
        .collect())
}

fn eval_qlinear_matmul(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let a = ctx.input(0)?;
    let b = ctx.input(3)?;
    let (a_s, a_z, b_s, b_z, y_s, y_z) = (
        ctx.input(1)?,
        ctx.input(2)?,
        ctx.input(4)?,
        ctx.input(5)?,
        ctx.input(6)?,
        ctx.input(7)?,
    );
    if a.rank() == 0 || b.rank() == 0 {
        bail!("QLinearMatMul inputs must have rank >= 1");
    }
    let out_dt = y_z.dtype();
    if !(matches!(out_dt, DType::I8 | DType::U8) || out_dt.is_fp8()) {
        bail!("QLinearMatMul cannot produce {out_dt}");
    }
    // Promote rank-1 operands as numpy does.
    let ash: Vec<usize> = if a.rank() == 1 {
        vec![1, a.shape()[0]]
    } else {
        a.shape().to_vec()
    };
    let bsh: Vec<usize> = if b.rank() == 1 {
        vec![b.shape()[0], 1]
    } else {
        b.shape().to_vec()
    };
    let av: Vec<f64> = {
        let z = spread(a_z, &ash, true)?;
        a.to_f64().iter().zip(z).map(|(x, z)| x - z).collect()
    };
    let bv: Vec<f64> = {
        let z = spread(b_z, &bsh, false)?;
        b.to_f64().iter().zip(z).map(|(x, z)| x - z).collect()
    };
    let (m, k) = (ash[ash.len() - 2], ash[ash.len() - 1]);
    let (k2, n) = (bsh[bsh.len() - 2], bsh[bsh.len() - 1]);
    if k != k2 {
        bail!(
            "QLinearMatMul inner dims differ: {:?} x {:?}",
            a.shape(),
            b.shape()
        );
    }
    let batch =
        broadcast_concrete(&[&ash[..ash.len() - 2], &bsh[..bsh.len() - 2]]).ok_or_else(|| {
            crate::ops::OpError::new(format!(
                "QLinearMatMul cannot broadcast {:?} with {:?}",
                a.shape(),
                b.shape()
            ))
        })?;
    let nb = numel(&batch);
    let a_idx = broadcast_index(&ash[..ash.len() - 2], &batch);
    let b_idx = broadcast_index(&bsh[..bsh.len() - 2], &batch);
    let mut full = batch.clone();
    full.extend([m, n]);
    let mut c = vec![0.0f64; nb * m * n];
    for bi in 0..nb {
        let ab = &av[a_idx[bi] * m * k..(a_idx[bi] + 1) * m * k];
        let bb = &bv[b_idx[bi] * k * n..(b_idx[bi] + 1) * k * n];
        let cb = &mut c[bi * m * n..(bi + 1) * m * n];
        for i in 0..m {
            for p in 0..k {
                let x = ab[i * k + p];
                if x == 0.0 {
                    continue;
                }
                for j in 0..n {
                    cb[i * n + j] += x * bb[p * n + j];
                }
            }
        }
    }
    // The requantisation multiplier in the scales' precision.
    let ts = a_s.dtype();
    let sa = spread(a_s, &full, true)?;
    let sb = spread(b_s, &full, false)?;
    let sy = spread(y_s, &full, false)?;
    let zy = spread(y_z, &full, false)?;
    let q: Vec<f64> = (0..c.len())
        .map(|i| {
            let mult = round_to(ts, round_to(ts, sa[i] * sb[i]) / sy[i]);
            let d = c[i] * mult + zy[i];
            if out_dt.is_fp8() {
                d
            } else {
                let (lo, hi) = int_range(out_dt);
                d.round_ties_even().clamp(lo, hi)
            }
        })
        .collect();
    let mut shape = batch;
    if a.rank() > 1 {
        shape.push(m);
    }
    if b.rank() > 1 {
        shape.push(n);
    }
    Ok(vec![Tensor::from_f64(out_dt, shape, &q)])
}

#[cfg(test)]
mod tests {
    use crate::attr::Attr;
    use crate::dtype::DType;
    use crate::ops::misc::testutil::{attrs, close, f32t, run_op};
    use crate::tensor::Tensor;

    fn t(dtype: DType, shape: &[usize], v: &[f64]) -> Option<Tensor> {
        Some(Tensor::from_f64(dtype, shape.to_vec(), v))
    }

    #[test]
    fn quantize_per_tensor_rounds_half_even_and_saturates() {
        let out = run_op(
            "QuantizeLinear",
            &attrs(&[]),
            vec![
                f32t(&[6], &[0., 2., 3., 1000., -254., -1000.]),
                f32t(&[], &[2.]),
                t(DType::U8, &[], &[128.]),
            ],
            1,
        )
        .unwrap();
        // 1.5 rounds to 2, 1000/2 + 128 saturates to 255, -127 + 128 = 1, -500 + 128 -> 0.
        assert_eq!(out[0].dtype(), DType::U8);
        assert_eq!(out[0].to_i64(), vec![128, 129, 130, 255, 1, 0]);
    }

    #[test]
    fn quantize_blocked_asymmetric() {
        // ONNX's test_quantizelinear_blocked_asymmetric.
        let out = run_op(
            "QuantizeLinear",
            &attrs(&[("axis", Attr::Int(1)), ("block_size", Attr::Int(2))]),
            vec![
                f32t(
                    &[3, 4],
                    &[6., 12., 50., 5., 1., 8., 4., 5., 0., 20., 10., 4.],
                ),
                f32t(&[3, 2], &[1.5, 2.5, 3., 4.9, 5.1, 6.9]),
                t(DType::U8, &[3, 2], &[0., 1., 1., 0., 2., 3.]),
            ],
            1,
        )
        .unwrap();
        assert_eq!(out[0].to_i64(), vec![4, 8, 21, 3, 1, 4, 1, 1, 2, 6, 4, 4]);
    }

    #[test]
    fn quantize_fp8_saturate_flag() {
        let run = |sat: i64| {
            run_op(
                "QuantizeLinear",
                &attrs(&[
                    ("saturate", Attr::Int(sat)),
                    ("output_dtype", Attr::DType(DType::F8E4M3FN)),
                ]),
                vec![f32t(&[3], &[1., 200., 1e5]), f32t(&[], &[2.])],
                1,
            )
            .unwrap()[0]
                .to_f64()
        };
        close(&run(1), &[0.5, 96., 448.], 0.0);
        let v = run(0);
        assert_eq!(&v[..2], &[0.5, 96.]);
        assert!(v[2].is_nan());
    }

    #[test]
    fn dequantize_per_axis_and_output_dtype() {
        let out = run_op(
            "DequantizeLinear",
            &attrs(&[("axis", Attr::Int(1)), ("output_dtype", Attr::Int(10))]),
            vec![
                t(DType::I8, &[2, 2], &[-128., 127., 0., 3.]),
                f32t(&[2], &[0.5, 2.]),
                t(DType::I8, &[2], &[0., 1.]),
            ],
            1,
        )
        .unwrap();
        assert_eq!(out[0].dtype(), DType::F16);
        close(&out[0].to_f64(), &[-64., 252., 0., 4.], 0.0);
    }

    #[test]
    fn dynamic_quantize() {
        // ONNX's test_dynamicquantizelinear.
        let out = run_op(
            "DynamicQuantizeLinear",
            &attrs(&[]),
            vec![f32t(&[6], &[0., 2., -3., -2.5, 1.34, 0.5])],
            3,
        )
        .unwrap();
        assert_eq!(out[0].to_i64(), vec![153, 255, 0, 26, 221, 179]);
        assert_eq!(out[1].to_f64(), vec![0.019607843831181526]);
        assert_eq!(out[2].to_i64(), vec![153]);
    }

    #[test]
    fn qlinear_matmul_int8() {
        // ONNX's test_qlinearmatmul_2D_int8_float32.
        let out = run_op(
            "QLinearMatMul",
            &attrs(&[]),
            vec![
                t(
                    DType::I8,
                    &[2, 4],
                    &[81., 109., -127., 111., -124., 87., -128., -98.],
                ),
                f32t(&[1], &[0.0066]),
                t(DType::I8, &[1], &[-14.]),
                t(
                    DType::I8,
                    &[4, 3],
                    &[
                        25., -76., 117., -67., -101., -128., -127., 0., 119., 0., 127., 120.,
                    ],
                ),
                f32t(&[1], &[0.00705]),
                t(DType::I8, &[1], &[-13.]),
                f32t(&[1], &[0.0107]),
                t(DType::I8, &[1], &[-9.]),
            ],
            1,
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[2, 3]);
        assert_eq!(out[0].to_i64(), vec![41, -12, -9, 1, -75, -128]);
    }
}
