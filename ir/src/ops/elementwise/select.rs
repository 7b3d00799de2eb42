//! Where, Clip, Cast and CastLike.

use super::kernel::{broadcast_inputs, check_dtype, infer_broadcast, Accept, Vals};
use crate::attr::AttrsExt;
use crate::bail;
use crate::dtype::DType;
use crate::ops::{EvalCtx, InferCtx, OpError, OpResult};
use crate::tensor::Tensor;
use crate::types::{broadcast_shapes, ValueType};

/// Where(cond, x, y): all three broadcast; x and y share the output dtype.
pub fn infer_where(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let c = ctx.input(0)?;
    check_dtype(c.dtype, Accept::Bool)?;
    let xy = infer_broadcast(ctx, 1..3, Accept::Any, false)?;
    let shape = broadcast_shapes(&[&c.shape, &xy[0].shape])
        .ok_or_else(|| OpError::new(format!("condition {c} does not broadcast with {}", xy[0])))?;
    Ok(vec![ValueType::new(xy[0].dtype, shape)])
}

pub fn eval_where(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let dtype = ctx.input(1)?.dtype();
    let (vals, shape) = broadcast_inputs(ctx, 0..3)?;
    let mut it = vals.into_iter();
    let (Some(Vals::B(c)), Some(x), Some(y)) = (it.next(), it.next(), it.next()) else {
        bail!("Where expects a bool condition and two values");
    };
    fn pick<T: Copy>(c: &[bool], x: &[T], y: &[T]) -> Vec<T> {
        c.iter()
            .zip(x.iter().zip(y))
            .map(|(&c, (&x, &y))| if c { x } else { y })
            .collect()
    }
    let r = match (x, y) {
        (Vals::F(x), Vals::F(y)) => Vals::F(pick(&c, &x, &y)),
        (Vals::I(x), Vals::I(y)) => Vals::I(pick(&c, &x, &y)),
        (Vals::B(x), Vals::B(y)) => Vals::B(pick(&c, &x, &y)),
        _ => bail!("Where's x and y must share one dtype"),
    };
    Ok(vec![r.into_tensor(dtype, shape)?])
}

/// Clip(x, min?, max?): min and max are optional scalars of x's dtype.
pub fn infer_clip(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    check_dtype(x.dtype, Accept::Num)?;
    for i in 1..3 {
        if let Some(b) = ctx.opt_input(i) {
            if b.dtype != x.dtype {
                bail!("Clip bound {i} is {b}, the input is {x}");
            }
            if b.rank() > 1 || b.shape.iter().any(|d| d.as_const().is_some_and(|n| n != 1)) {
                bail!("Clip bound {i} must be a scalar, got {b}");
            }
        }
    }
    Ok(vec![x.clone()])
}

/// Clips to [min, max] as `min(max(x, lo), hi)`: when lo > hi, everything becomes hi. NaN
/// stays NaN.
pub fn eval_clip(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let bound = |i: usize| -> OpResult<Option<Vals>> {
        match ctx.opt_input(i) {
            None => Ok(None),
            Some(t) if t.len() == 1 => Ok(Some(Vals::of(t))),
            Some(t) => bail!("Clip bound {i} must be a scalar, got shape {:?}", t.shape()),
        }
    };
    let (lo, hi) = (bound(1)?, bound(2)?);
    super::kernel::unary(ctx, |x| {
        Ok(match x {
            Vals::F(v) => {
                let first = |b: &Option<Vals>| match b {
                    Some(Vals::F(b)) => Some(b[0]),
                    _ => None,
                };
                let (lo, hi) = (first(&lo), first(&hi));
                Vals::F(v.into_iter().map(|x| clip(x, lo, hi)).collect())
            }
            Vals::I(v) => {
                let first = |b: &Option<Vals>| match b {
                    Some(Vals::I(b)) => Some(b[0]),
                    _ => None,
                };
                let (lo, hi) = (first(&lo), first(&hi));
                Vals::I(v.into_iter().map(|x| clip(x, lo, hi)).collect())
            }
            Vals::B(_) => bail!("Clip expects a numeric input"),
        })
    })
}

fn clip<T: PartialOrd + Copy>(x: T, lo: Option<T>, hi: Option<T>) -> T {
    let x = match lo {
        Some(lo) if x < lo => lo,
        _ => x,
    };
    match hi {
        Some(hi) if x > hi => hi,
        _ => x,
    }
}

fn saturate(ctx_attrs: &crate::attr::Attrs) -> OpResult<bool> {
    Ok(ctx_attrs.int_or("saturate", 1)? != 0)
}

fn cast_to(ctx_attrs: &crate::attr::Attrs) -> OpResult<DType> {
    ctx_attrs
        .dtype("to")?
        .ok_or_else(|| OpError::new("Cast needs the `to` attribute"))
}

pub fn infer_cast(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    saturate(ctx.attrs)?;
    Ok(vec![ValueType::new(cast_to(ctx.attrs)?, x.shape.clone())])
}

pub fn eval_cast(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let to = cast_to(ctx.attrs)?;
    Ok(vec![ctx.input(0)?.cast_sat(to, saturate(ctx.attrs)?)])
}

pub fn infer_castlike(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    saturate(ctx.attrs)?;
    Ok(vec![ValueType::new(ctx.input(1)?.dtype, x.shape.clone())])
}

pub fn eval_castlike(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let to = ctx.input(1)?.dtype();
    Ok(vec![ctx.input(0)?.cast_sat(to, saturate(ctx.attrs)?)])
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)]
mod tests {
    use super::super::kernel::testing::*;
    use crate::attr::Attr;
    use crate::dtype::DType;
    use crate::tensor::Data;

    #[test]
    fn where_broadcasts_three_ways() {
        let c = bools(&[2, 1], &[true, false]);
        let x = f32s(&[3], &[1., 2., 3.]);
        let y = f32s(&[], &[-1.]);
        let r = run("Where", &attrs(&[]), &[c.clone(), x, y]).unwrap();
        assert_eq!(r.shape(), &[2, 3]);
        assert_close(&r, &[1., 2., 3., -1., -1., -1.], 0.);
        let xi = ints(DType::I64, &[1], &[7]);
        let yi = ints(DType::I64, &[3], &[4, 5, 6]);
        let r = run("Where", &attrs(&[]), &[c.clone(), xi, yi]).unwrap();
        assert_eq!(r.data(), &Data::I64(vec![7, 7, 7, 4, 5, 6]));
        let bad = run(
            "Where",
            &attrs(&[]),
            &[c, f32s(&[1], &[1.]), ints(DType::I64, &[1], &[1])],
        );
        assert!(bad.is_err());
    }

    #[test]
    fn clip_bounds_are_optional() {
        let x = f32s(&[5], &[-3., -1., 0., 1., f32::NAN]);
        let lo = f32s(&[], &[-2.]);
        let hi = f32s(&[], &[0.5]);
        let r = run_opt(
            "Clip",
            &attrs(&[]),
            &[Some(x.clone()), Some(lo.clone()), Some(hi.clone())],
        )
        .unwrap();
        assert_close(&r, &[-2., -1., 0., 0.5, f64::NAN], 0.);
        let r = run_opt(
            "Clip",
            &attrs(&[]),
            &[Some(x.clone()), None, Some(hi.clone())],
        )
        .unwrap();
        assert_close(&r, &[-3., -1., 0., 0.5, f64::NAN], 0.);
        let r = run_opt("Clip", &attrs(&[]), &[Some(x.clone())]).unwrap();
        assert_close(&r, &[-3., -1., 0., 1., f64::NAN], 0.);
        // min > max: everything is max.
        let r = run(
            "Clip",
            &attrs(&[]),
            &[x, f32s(&[], &[2.]), f32s(&[], &[1.])],
        )
        .unwrap();
        assert_close(&r, &[1., 1., 1., 1., f64::NAN], 0.);
        let xi = ints(DType::I8, &[3], &[-100, 5, 100]);
        let r = run_opt(
            "Clip",
            &attrs(&[]),
            &[Some(xi), Some(ints(DType::I8, &[], &[-10])), None],
        )
        .unwrap();
        assert_eq!(r.data(), &Data::I8(vec![-10, 5, 100]));
    }

    #[test]
    fn cast_and_castlike() {
        let x = f32s(&[4], &[1.7, -1.7, 0.0, 1000.0]);
        let to = |d| attrs(&[("to", Attr::DType(d))]);
        let r = run("Cast", &to(DType::I32), &[x.clone()]).unwrap();
        assert_eq!(r.data(), &Data::I32(vec![1, -1, 0, 1000]));
        let r = run("Cast", &to(DType::Bool), &[x.clone()]).unwrap();
        assert_eq!(r.data(), &Data::Bool(vec![true, true, false, true]));
        let r = run("Cast", &to(DType::F8E4M3FN), &[x.clone()]).unwrap();
        assert_close(&r, &[1.75, -1.75, 0., 448.], 0.);
        let mut a = to(DType::F8E4M3FN);
        a.insert("saturate".into(), Attr::Int(0));
        let r = run("Cast", &a, &[x.clone()]).unwrap();
        assert!(r.to_f64()[3].is_nan());
        let like = Tensor::from_f64(DType::F16, vec![0], &[]);
        let r = run("CastLike", &attrs(&[]), &[x, like]).unwrap();
        assert_eq!(r.dtype(), DType::F16);
        assert_close(&r, &[1.7001953125, -1.7001953125, 0., 1000.], 0.);
        assert!(run("Cast", &attrs(&[]), &[f32s(&[1], &[1.])]).is_err());
    }

    use crate::tensor::Tensor;
}
