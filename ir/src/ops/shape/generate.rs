//! Expand, Tile, ConstantOfShape, Range, EyeLike, Trilu.

use crate::attr::AttrsExt;
use crate::bail;
use crate::dim::Dim;
use crate::dtype::DType;
use crate::ops::shape::common::{
    const_ints, count, index_map, ints, scalar_int, smax, take_fill, vec_len, want_int,
};
use crate::ops::util::one;
use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::{strides, Tensor};
use crate::types::{broadcast_concrete, broadcast_shapes, ValueType};

// ---------------------------------------------------------------------------------------
// Expand

pub fn infer_expand(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    want_int(ctx, 1, "Expand shape")?;
    let shape = match ctx.dims_input(1) {
        Some(target) => match broadcast_shapes(&[&x.shape, &target]) {
            Some(s) => s,
            None => bail!("cannot expand {x} to {target:?}"),
        },
        None => {
            let n = vec_len(ctx, 1, "Expand shape")?;
            let rank = n.max(x.rank());
            (0..rank)
                .map(|a| {
                    let d = (a + x.rank()).checked_sub(rank).map(|i| &x.shape[i]);
                    match d {
                        Some(d) if d.as_const().is_some_and(|c| c != 1) => d.clone(),
                        _ => ctx.data_dim(0, a),
                    }
                })
                .collect()
        }
    };
    one(x.dtype, shape)
}

/// Flat-index maps reading `x` broadcast to `shape` (numpy rules, aligned right).
fn broadcast_maps(x: &[usize], shape: &[usize]) -> Vec<Vec<Option<usize>>> {
    let st = strides(x);
    let pad = shape.len() - x.len();
    shape
        .iter()
        .enumerate()
        .map(|(a, &n)| {
            if a < pad || x[a - pad] == 1 {
                vec![Some(0); n]
            } else {
                (0..n).map(|i| Some(i * st[a - pad])).collect()
            }
        })
        .collect()
}

pub fn eval_expand(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let target = ints(ctx.input(1)?, "Expand shape")?;
    if target.iter().any(|&d| d < 0) {
        bail!("Expand shape {target:?} has a negative dim");
    }
    let target: Vec<usize> = target.into_iter().map(|d| d as usize).collect();
    let Some(shape) = broadcast_concrete(&[x.shape(), &target]) else {
        bail!("cannot expand {:?} to {target:?}", x.shape());
    };
    let maps = broadcast_maps(x.shape(), &shape);
    Ok(vec![take_fill(x, &index_map(&maps), shape, None)?])
}

pub fn sym_expand(ctx: &InferCtx) -> Option<Vec<Dim>> {
    let x = ctx.input(0).ok()?;
    let target = const_ints(ctx, 1)?;
    if x.rank() > 1 || target.len() > 1 {
        return None;
    }
    let v = ctx.dims_input(0)?;
    let n = match target.first() {
        Some(&t) if t != 1 => t as usize,
        _ => v.len(),
    };
    if v.len() == n {
        Some(v)
    } else if v.len() == 1 {
        Some(vec![v[0].clone(); n])
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------
// Tile

pub fn infer_tile(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    want_int(ctx, 1, "Tile repeats")?;
    let shape = match ctx.dims_input(1) {
        Some(r) => {
            if r.len() != x.rank() {
                bail!("Tile has {} repeats for {x}", r.len());
            }
            x.shape.iter().zip(&r).map(|(d, r)| d.mul(r)).collect()
        }
        None => ctx.data_shape(0, x.rank()),
    };
    one(x.dtype, shape)
}

pub fn eval_tile(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let reps = ints(ctx.input(1)?, "Tile repeats")?;
    if reps.len() != x.rank() || reps.iter().any(|&r| r < 0) {
        bail!("Tile repeats {reps:?} do not fit shape {:?}", x.shape());
    }
    let st = strides(x.shape());
    let mut shape = Vec::with_capacity(x.rank());
    let maps: Vec<Vec<Option<usize>>> = (0..x.rank())
        .map(|a| {
            let d = x.shape()[a];
            let n = d * reps[a] as usize;
            shape.push(n);
            (0..n).map(|o| Some((o % d.max(1)) * st[a])).collect()
        })
        .collect();
    Ok(vec![take_fill(x, &index_map(&maps), shape, None)?])
}

// ---------------------------------------------------------------------------------------
// ConstantOfShape

fn cos_value(attrs: &crate::attr::Attrs) -> OpResult<Tensor> {
    match attrs.tensor("value")? {
        Some(t) => {
            if t.len() != 1 {
                bail!(
                    "ConstantOfShape value must hold one element, got {:?}",
                    t.shape()
                );
            }
            Ok((*t).clone())
        }
        None => Ok(Tensor::scalar_f32(0.0)),
    }
}

pub fn infer_constant_of_shape(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    want_int(ctx, 0, "ConstantOfShape input")?;
    let v = cos_value(ctx.attrs)?;
    let shape = match ctx.dims_input(0) {
        Some(s) => {
            if s.iter().any(|d| d.as_const().is_some_and(|c| c < 0)) {
                bail!("ConstantOfShape shape {s:?} has a negative dim");
            }
            s
        }
        None => ctx.data_shape(0, vec_len(ctx, 0, "ConstantOfShape input")?),
    };
    one(v.dtype(), shape)
}

pub fn eval_constant_of_shape(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let v = cos_value(ctx.attrs)?;
    let s = ints(ctx.input(0)?, "ConstantOfShape input")?;
    if s.iter().any(|&d| d < 0) {
        bail!("ConstantOfShape shape {s:?} has a negative dim");
    }
    let shape: Vec<usize> = s.into_iter().map(|d| d as usize).collect();
    let idx = vec![Some(0); count(&shape)];
    Ok(vec![take_fill(&v, &idx, shape, None)?])
}

pub fn sym_constant_of_shape(ctx: &InferCtx) -> Option<Vec<Dim>> {
    let v = cos_value(ctx.attrs).ok()?;
    if !v.dtype().is_int() {
        return None;
    }
    let s = const_ints(ctx, 0)?;
    let n = match s.as_slice() {
        [] => 1,
        [n] if (0..=4096).contains(n) => *n as usize,
        _ => return None,
    };
    Some(vec![Dim::from(v.to_i64()[0]); n])
}

// ---------------------------------------------------------------------------------------
// Range

/// The dtype of Range's three scalar inputs.
fn range_dtype(ctx: &InferCtx) -> OpResult<DType> {
    let t = ctx.input(0)?;
    for i in 0..3 {
        let u = ctx.input(i)?;
        if u.dtype != t.dtype || u.rank() > 1 || u.shape.iter().any(|d| d.as_const() != Some(1)) {
            bail!("Range needs three scalars of one dtype, got {t} and {u}");
        }
    }
    Ok(t.dtype)
}

/// `max(ceil((limit - start) / delta), 0)` for floats.
fn range_len_f(start: f64, limit: f64, delta: f64) -> OpResult<usize> {
    if delta == 0.0 || !delta.is_finite() {
        bail!("Range delta must be non-zero and finite, got {delta}");
    }
    let n = ((limit - start) / delta).ceil();
    if n.is_nan() {
        bail!("Range of {start}..{limit} by {delta} has no length");
    }
    Ok(n.max(0.0) as usize)
}

pub fn infer_range(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let dtype = range_dtype(ctx)?;
    let len = if dtype.is_int() {
        match (ctx.dims_input(0), ctx.dims_input(1), ctx.dims_input(2)) {
            (Some(s), Some(l), Some(d)) => match d[0].as_const() {
                Some(0) => bail!("Range delta must not be 0"),
                Some(k) => {
                    let span = l[0].sub(&s[0]);
                    let n = if k > 0 {
                        span.add(&Dim::from(k - 1)).floor_div(&Dim::from(k))
                    } else {
                        span.ceil_div(&Dim::from(k))
                    };
                    smax(&n, &Dim::from(0i64))
                }
                None => ctx.data_dim(0, 0),
            },
            _ => ctx.data_dim(0, 0),
        }
    } else {
        match (ctx.const_input(0), ctx.const_input(1), ctx.const_input(2)) {
            (Some(s), Some(l), Some(d)) => {
                let f = |t: &Tensor| t.first_f64().unwrap_or(0.0);
                Dim::from(range_len_f(f(s), f(l), f(d))?)
            }
            _ => ctx.data_dim(0, 0),
        }
    };
    one(dtype, vec![len])
}

pub fn eval_range(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let (s, l, d) = (ctx.input(0)?, ctx.input(1)?, ctx.input(2)?);
    let dtype = s.dtype();
    if l.dtype() != dtype || d.dtype() != dtype || [s, l, d].iter().any(|t| t.len() != 1) {
        bail!("Range needs three scalars of one dtype");
    }
    if dtype.is_int() {
        let (s, l, d) = (
            scalar_int(s, "start")?,
            scalar_int(l, "limit")?,
            scalar_int(d, "delta")?,
        );
        if d == 0 {
            bail!("Range delta must not be 0");
        }
        let span = l as i128 - s as i128;
        let d128 = d as i128;
        // Ceiling division: truncate, then round up an inexact positive quotient.
        let q = span / d128;
        let q = if span % d128 != 0 && (span < 0) == (d128 < 0) {
            q + 1
        } else {
            q
        };
        let n = q.max(0) as usize;
        let v: Vec<i64> = (0..n as i64)
            .map(|i| s.wrapping_add(i.wrapping_mul(d)))
            .collect();
        return Ok(vec![Tensor::from_i64(dtype, vec![n], &v)]);
    }
    let f = |t: &Tensor| t.first_f64().unwrap_or(0.0);
    let (s, l, d) = (f(s), f(l), f(d));
    let n = range_len_f(s, l, d)?;
    let low = matches!(dtype, DType::F16 | DType::BF16);
    let v: Vec<f64> = if low && ctx.attrs.int_or("stash_type", 1)? == 0 {
        // Computed in the input type itself: round the product and the sum.
        let r = |x: f64| Tensor::from_f64(dtype, vec![], &[x]).to_f64()[0];
        (0..n).map(|i| r(s + r(i as f64 * d))).collect()
    } else if low {
        (0..n)
            .map(|i| (s as f32 + i as f32 * d as f32) as f64)
            .collect()
    } else {
        (0..n).map(|i| s + i as f64 * d).collect()
    };
    Ok(vec![Tensor::from_f64(dtype, vec![n], &v)])
}

pub fn sym_range(ctx: &InferCtx) -> Option<Vec<Dim>> {
    let (s, l, d) = (
        const_ints(ctx, 0)?,
        const_ints(ctx, 1)?,
        const_ints(ctx, 2)?,
    );
    let (s, l, d) = (*s.first()?, *l.first()?, *d.first()?);
    if d == 0 {
        return None;
    }
    let n = ((l as i128 - s as i128) as f64 / d as f64).ceil().max(0.0) as usize;
    if n > 4096 {
        return None;
    }
    Some((0..n as i64).map(|i| Dim::from(s + i * d)).collect())
}

// ---------------------------------------------------------------------------------------
// EyeLike / Trilu

/// EyeLike's `dtype` (a dtype, or an ONNX dtype code), else the input's.
fn eye_dtype(attrs: &crate::attr::Attrs, input: DType) -> OpResult<DType> {
    match attrs.get("dtype") {
        Some(crate::attr::Attr::Int(code)) => match DType::from_onnx_code(*code as i32) {
            Some(d) => Ok(d),
            None => bail!("EyeLike dtype code {code} is not supported"),
        },
        _ => Ok(attrs.dtype("dtype")?.unwrap_or(input)),
    }
}

pub fn infer_eye_like(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    if x.rank() != 2 {
        bail!("EyeLike needs a 2-D input, got {x}");
    }
    one(eye_dtype(ctx.attrs, x.dtype)?, x.shape.clone())
}

pub fn eval_eye_like(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    if x.rank() != 2 {
        bail!("EyeLike needs a 2-D input, got {:?}", x.shape());
    }
    let k = ctx.attrs.int_or("k", 0)?;
    let (r, c) = (x.shape()[0], x.shape()[1]);
    let mut v = vec![0.0; r * c];
    for i in 0..r {
        let j = i as i64 + k;
        if (0..c as i64).contains(&j) {
            v[i * c + j as usize] = 1.0;
        }
    }
    let dtype = eye_dtype(ctx.attrs, x.dtype())?;
    Ok(vec![Tensor::from_f64(dtype, vec![r, c], &v)])
}

pub fn infer_trilu(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    want_int(ctx, 1, "Trilu k")?;
    if x.rank() < 2 {
        bail!("Trilu needs rank >= 2, got {x}");
    }
    Ok(vec![x.clone()])
}

pub fn eval_trilu(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    if x.rank() < 2 {
        bail!("Trilu needs rank >= 2, got {:?}", x.shape());
    }
    let k = match ctx.opt_input(1) {
        Some(t) => scalar_int(t, "Trilu k")?,
        None => 0,
    };
    let upper = ctx.attrs.int_or("upper", 1)? != 0;
    let (r, c) = (x.shape()[x.rank() - 2], x.shape()[x.rank() - 1]);
    let idx: Vec<Option<usize>> = (0..x.len())
        .map(|f| {
            let (i, j) = ((f / c) % r.max(1), f % c);
            let diff = j as i64 - i as i64;
            let keep = if upper { diff >= k } else { diff <= k };
            keep.then_some(f)
        })
        .collect();
    Ok(vec![take_fill(x, &idx, x.shape().to_vec(), None)?])
}

#[cfg(test)]
mod tests {
    use crate::attr::Attr;
    use crate::dtype::DType::{F32, I64};
    use crate::ops::shape::testutil::*;
    use crate::tensor::Tensor;

    #[test]
    fn expand_and_tile() {
        let x = floats(&[3, 1], &[1., 2., 3.]);
        let out = eval(
            "Expand",
            &attrs(&[]),
            &[Some(x.clone()), Some(ints(&[3], &[2, 1, 2]))],
            1,
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[2, 3, 2]);
        assert_eq!(out[0].to_f64()[..6], [1., 1., 2., 2., 3., 3.]);
        let out = eval(
            "Tile",
            &attrs(&[]),
            &[Some(x), Some(ints(&[2], &[2, 2]))],
            1,
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[6, 2]);
        assert_eq!(out[0].to_f64()[..6], [1., 1., 2., 2., 3., 3.]);
        let (t, _) = infer(
            "Expand",
            &attrs(&[]),
            &[Some(ty(F32, &["1", "1", "seq"])), Some(ty(I64, &["3"]))],
            vec![None, Some(dims(&["1", "4", "1"]))],
            1,
        )
        .unwrap();
        assert_eq!(t[0].to_string(), "f32[1, 4, seq]");
        let (_, sym) = infer(
            "Expand",
            &attrs(&[]),
            &[Some(ty(I64, &[])), Some(ty(I64, &["1"]))],
            vec![Some(dims(&["seq"])), Some(dims(&["3"]))],
            1,
        )
        .unwrap();
        assert_eq!(format!("{:?}", sym.unwrap()), "[seq, seq, seq]");
    }

    #[test]
    fn constant_of_shape_and_range() {
        let v = Tensor::from_i64s(vec![1], vec![7]).unwrap();
        let a = attrs(&[("value", Attr::Tensor(v.into()))]);
        let out = eval("ConstantOfShape", &a, &[Some(ints(&[2], &[2, 2]))], 1).unwrap();
        assert_eq!(out[0].to_i64(), vec![7; 4]);
        let (t, sym) = infer(
            "ConstantOfShape",
            &a,
            &[Some(ty(I64, &["1"]))],
            vec![Some(dims(&["3"]))],
            1,
        )
        .unwrap();
        assert_eq!(t[0].to_string(), "i64[3]");
        assert_eq!(format!("{:?}", sym.unwrap()), "[7, 7, 7]");
        let (t, _) = infer(
            "ConstantOfShape",
            &attrs(&[]),
            &[Some(ty(I64, &["2"]))],
            vec![Some(dims(&["1", "seq"]))],
            1,
        )
        .unwrap();
        assert_eq!(t[0].to_string(), "f32[1, seq]");

        let s = |v: i64| Tensor::scalar_i64(v);
        let out = eval(
            "Range",
            &attrs(&[]),
            &[Some(s(10)), Some(s(4)), Some(s(-3))],
            1,
        )
        .unwrap();
        assert_eq!(out[0].to_i64(), vec![10, 7]);
        let f = |v: f32| Tensor::scalar_f32(v);
        let out = eval(
            "Range",
            &attrs(&[]),
            &[Some(f(0.5)), Some(f(2.0)), Some(f(0.5))],
            1,
        )
        .unwrap();
        assert_eq!(out[0].to_f64(), vec![0.5, 1.0, 1.5]);
        let sc = ty(I64, &[]);
        let (t, _) = infer(
            "Range",
            &attrs(&[]),
            &[Some(sc.clone()), Some(sc.clone()), Some(sc.clone())],
            vec![Some(dims(&["0"])), Some(dims(&["seq"])), Some(dims(&["1"]))],
            1,
        )
        .unwrap();
        assert_eq!(t[0].to_string(), "i64[seq]");
        let (t, _) = infer(
            "Range",
            &attrs(&[]),
            &[Some(sc.clone()), Some(sc.clone()), Some(sc.clone())],
            vec![
                Some(dims(&["past"])),
                Some(dims(&["past+seq"])),
                Some(dims(&["2"])),
            ],
            1,
        )
        .unwrap();
        assert_eq!(t[0].to_string(), "i64[floordiv(seq+1, 2)]");
    }

    #[test]
    fn eye_and_trilu() {
        let x = floats(&[2, 3], &[5.; 6]);
        let a = attrs(&[("k", Attr::Int(1)), ("dtype", Attr::DType(I64))]);
        let out = eval("EyeLike", &a, &[Some(x)], 1).unwrap();
        assert_eq!(out[0].to_i64(), vec![0, 1, 0, 0, 0, 1]);
        let m = floats(&[3, 3], &[1., 2., 3., 4., 5., 6., 7., 8., 9.]);
        let out = eval("Trilu", &attrs(&[]), &[Some(m.clone())], 1).unwrap();
        assert_eq!(out[0].to_f64(), vec![1., 2., 3., 0., 5., 6., 0., 0., 9.]);
        let low = attrs(&[("upper", Attr::Int(0))]);
        let out = eval("Trilu", &low, &[Some(m), Some(Tensor::scalar_i64(-1))], 1).unwrap();
        assert_eq!(out[0].to_f64(), vec![0., 0., 0., 4., 0., 0., 7., 8., 0.]);
    }
}
