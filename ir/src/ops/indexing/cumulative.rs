//! CumSum and CumProd.

use crate::attr::AttrsExt;
use crate::bail;
use crate::ops::shape::common::{count, scalar_int};
use crate::ops::util::axis;
use crate::ops::{EvalCtx, InferCtx, OpResult};
use crate::tensor::Tensor;
use crate::types::ValueType;

pub fn infer_cum(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let (x, a) = (ctx.input(0)?, ctx.input(1)?);
    if !a.dtype.is_int() || a.rank() > 1 {
        bail!("the axis must be an integer scalar, got {a}");
    }
    if x.dtype == crate::dtype::DType::Bool {
        bail!("cannot accumulate {x}");
    }
    Ok(vec![x.clone()])
}

/// Runs an inclusive/exclusive, forward/reverse scan along the axis given by input 1.
fn scan<T: Copy>(
    ctx: &EvalCtx,
    v: Vec<T>,
    init: T,
    f: impl Fn(T, T) -> T,
) -> OpResult<(Vec<T>, Vec<usize>)> {
    let x = ctx.input(0)?;
    let a = axis(scalar_int(ctx.input(1)?, "axis")?, x.rank())?;
    let exclusive = ctx.attrs.int_or("exclusive", 0)? != 0;
    let reverse = ctx.attrs.int_or("reverse", 0)? != 0;
    let (outer, d, inner) = (
        count(&x.shape()[..a]),
        x.shape()[a],
        count(&x.shape()[a + 1..]),
    );
    let mut out = v.clone();
    for o in 0..outer {
        for j in 0..inner {
            let mut acc = init;
            for s in 0..d {
                let k = if reverse { d - 1 - s } else { s };
                let at = (o * d + k) * inner + j;
                if exclusive {
                    out[at] = acc;
                    acc = f(acc, v[at]);
                } else {
                    acc = f(acc, v[at]);
                    out[at] = acc;
                }
            }
        }
    }
    Ok((out, x.shape().to_vec()))
}

fn eval_cum(ctx: &EvalCtx, product: bool) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let dtype = x.dtype();
    if dtype.is_float() {
        let (init, f): (f64, fn(f64, f64) -> f64) = if product {
            (1.0, |a, b| a * b)
        } else {
            (0.0, |a, b| a + b)
        };
        let (v, shape) = scan(ctx, x.to_f64(), init, f)?;
        Ok(vec![Tensor::from_f64(dtype, shape, &v)])
    } else if dtype.is_int() {
        let (init, f): (i64, fn(i64, i64) -> i64) = if product {
            (1, i64::wrapping_mul)
        } else {
            (0, i64::wrapping_add)
        };
        let (v, shape) = scan(ctx, x.to_i64(), init, f)?;
        Ok(vec![Tensor::from_i64(dtype, shape, &v)])
    } else {
        bail!("cannot accumulate {dtype}")
    }
}

pub fn eval_cum_sum(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    eval_cum(ctx, false)
}

pub fn eval_cum_prod(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    eval_cum(ctx, true)
}

#[cfg(test)]
mod tests {
    use crate::attr::Attr;
    use crate::ops::shape::testutil::*;
    use crate::tensor::Tensor;

    #[test]
    fn scans() {
        let x = floats(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let ax = Some(Tensor::scalar_i64(1));
        let run = |op: &str, ex: i64, rev: i64| {
            let a = attrs(&[("exclusive", Attr::Int(ex)), ("reverse", Attr::Int(rev))]);
            eval(op, &a, &[Some(x.clone()), ax.clone()], 1).unwrap()[0].to_f64()
        };
        assert_eq!(run("CumSum", 0, 0), vec![1., 3., 6., 4., 9., 15.]);
        assert_eq!(run("CumSum", 1, 0), vec![0., 1., 3., 0., 4., 9.]);
        assert_eq!(run("CumSum", 0, 1), vec![6., 5., 3., 15., 11., 6.]);
        assert_eq!(run("CumSum", 1, 1), vec![5., 3., 0., 11., 6., 0.]);
        assert_eq!(run("CumProd", 0, 0), vec![1., 2., 6., 4., 20., 120.]);
        assert_eq!(run("CumProd", 1, 1), vec![6., 3., 1., 30., 6., 1.]);
        let out = eval(
            "CumSum",
            &attrs(&[]),
            &[Some(ints(&[3], &[1, 2, 3])), Some(Tensor::scalar_i64(-1))],
            1,
        )
        .unwrap();
        assert_eq!(out[0].to_i64(), vec![1, 3, 6]);
    }
}
