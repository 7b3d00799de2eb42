//! Gather, GatherElements, GatherND.

use crate::attr::AttrsExt;
use crate::bail;
use crate::dim::Dim;
use crate::ops::indexing::{check_index_dtype, norm_index};
use crate::ops::shape::common::{const_ints, count, ints};
use crate::ops::util::{attr_axis, one};
use crate::ops::{EvalCtx, InferCtx, OpError, OpResult};
use crate::tensor::{strides, Tensor};
use crate::types::ValueType;

fn take(t: &Tensor, idx: &[usize], shape: Vec<usize>) -> OpResult<Tensor> {
    t.take(idx, shape).map_err(|e| OpError::new(e.to_string()))
}

// ---------------------------------------------------------------------------------------
// Gather

pub fn infer_gather(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let (x, i) = (ctx.input(0)?, ctx.input(1)?);
    check_index_dtype(i.dtype, "Gather indices")?;
    if x.rank() == 0 {
        bail!("Gather needs data of rank >= 1, got {x}");
    }
    let a = attr_axis(ctx.attrs, 0, x.rank())?;
    if let (Some(d), Some(v)) = (x.shape[a].as_const(), const_ints(ctx, 1)) {
        for &k in &v {
            norm_index(k, d as usize, "Gather")?;
        }
    }
    let mut shape = x.shape[..a].to_vec();
    shape.extend(i.shape.iter().cloned());
    shape.extend(x.shape[a + 1..].iter().cloned());
    one(x.dtype, shape)
}

pub fn eval_gather(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let (x, i) = (ctx.input(0)?, ctx.input(1)?);
    if x.rank() == 0 {
        bail!("Gather needs data of rank >= 1");
    }
    let a = attr_axis(ctx.attrs, 0, x.rank())?;
    let d = x.shape()[a];
    let picks = ints(i, "Gather indices")?
        .into_iter()
        .map(|k| norm_index(k, d, "Gather"))
        .collect::<OpResult<Vec<_>>>()?;
    let outer = count(&x.shape()[..a]);
    let inner = count(&x.shape()[a + 1..]);
    let mut idx = Vec::with_capacity(outer * picks.len() * inner);
    for o in 0..outer {
        for &p in &picks {
            let base = (o * d + p) * inner;
            idx.extend(base..base + inner);
        }
    }
    let mut shape = x.shape()[..a].to_vec();
    shape.extend_from_slice(i.shape());
    shape.extend_from_slice(&x.shape()[a + 1..]);
    Ok(vec![take(x, &idx, shape)?])
}

/// Gather from a symbolic vector at constant indices.
pub fn sym_gather(ctx: &InferCtx) -> Option<Vec<Dim>> {
    if ctx.input(0).ok()?.rank() != 1 || ctx.input(1).ok()?.rank() > 1 {
        return None;
    }
    let v = ctx.dims_input(0)?;
    const_ints(ctx, 1)?
        .into_iter()
        .map(|k| norm_index(k, v.len(), "").ok().map(|k| v[k].clone()))
        .collect()
}

// ---------------------------------------------------------------------------------------
// GatherElements

pub fn infer_gather_elements(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let (x, i) = (ctx.input(0)?, ctx.input(1)?);
    check_index_dtype(i.dtype, "GatherElements indices")?;
    if x.rank() != i.rank() || x.rank() == 0 {
        bail!("GatherElements data {x} and indices {i} must have one rank (>= 1)");
    }
    attr_axis(ctx.attrs, 0, x.rank())?;
    one(x.dtype, i.shape.clone())
}

pub fn eval_gather_elements(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let (x, i) = (ctx.input(0)?, ctx.input(1)?);
    if x.rank() != i.rank() || x.rank() == 0 {
        bail!("GatherElements data and indices must have one rank (>= 1)");
    }
    let a = attr_axis(ctx.attrs, 0, x.rank())?;
    let (xs, is) = (strides(x.shape()), strides(i.shape()));
    for k in 0..x.rank() {
        if k != a && i.shape()[k] > x.shape()[k] {
            bail!(
                "GatherElements indices {:?} exceed data {:?}",
                i.shape(),
                x.shape()
            );
        }
    }
    let d = x.shape()[a];
    let idx = ints(i, "GatherElements indices")?
        .into_iter()
        .enumerate()
        .map(|(f, k)| {
            let k = norm_index(k, d, "GatherElements")?;
            Ok((0..x.rank())
                .map(|ax| {
                    let c = if ax == a {
                        k
                    } else {
                        (f / is[ax]) % i.shape()[ax]
                    };
                    c * xs[ax]
                })
                .sum())
        })
        .collect::<OpResult<Vec<usize>>>()?;
    Ok(vec![take(x, &idx, i.shape().to_vec())?])
}

// ---------------------------------------------------------------------------------------
// GatherND

/// (batch_dims, index depth m) of a GatherND/ScatterND over data rank `r`, indices rank `q`.
pub(crate) fn nd_params(
    b: i64,
    r: usize,
    q: usize,
    m: Option<i64>,
) -> OpResult<(usize, Option<usize>)> {
    if q == 0 {
        bail!("indices must have rank >= 1");
    }
    if b < 0 || b as usize >= q.min(r + 1) {
        bail!("batch_dims {b} is out of range for data rank {r} and indices rank {q}");
    }
    let b = b as usize;
    let m = match m {
        Some(m) if m < 1 || b + m as usize > r => {
            bail!("index depth {m} is out of range for data rank {r} with {b} batch dims")
        }
        Some(m) => Some(m as usize),
        None => None,
    };
    Ok((b, m))
}

pub fn infer_gather_nd(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let (x, i) = (ctx.input(0)?, ctx.input(1)?);
    check_index_dtype(i.dtype, "GatherND indices")?;
    let q = i.rank();
    let m = i.shape.last().and_then(|d| d.as_const());
    let (b, m) = nd_params(ctx.attrs.int_or("batch_dims", 0)?, x.rank(), q, m)?;
    let Some(m) = m else {
        bail!("GatherND indices {i} need a constant last dim");
    };
    let mut shape = i.shape[..q - 1].to_vec();
    shape.extend(x.shape[b + m..].iter().cloned());
    one(x.dtype, shape)
}

pub fn eval_gather_nd(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let (x, i) = (ctx.input(0)?, ctx.input(1)?);
    let q = i.rank();
    let m = i.shape().last().map(|&d| d as i64);
    let (b, m) = nd_params(ctx.attrs.int_or("batch_dims", 0)?, x.rank(), q, m)?;
    let m = m.unwrap_or(0);
    if i.shape()[..b] != x.shape()[..b] {
        bail!(
            "GatherND batch dims of {:?} and {:?} differ",
            i.shape(),
            x.shape()
        );
    }
    let xs = strides(x.shape());
    let inner = count(&x.shape()[b + m..]);
    let per_batch = count(&i.shape()[b..q - 1]);
    let batch_stride = count(&x.shape()[b..]);
    let v = ints(i, "GatherND indices")?;
    let n = count(&i.shape()[..q - 1]);
    let mut idx = Vec::with_capacity(n * inner);
    for t in 0..n {
        let mut off = (t / per_batch.max(1)) * batch_stride;
        for k in 0..m {
            let d = x.shape()[b + k];
            off += norm_index(v[t * m + k], d, "GatherND")? * xs[b + k];
        }
        idx.extend(off..off + inner);
    }
    let mut shape = i.shape()[..q - 1].to_vec();
    shape.extend_from_slice(&x.shape()[b + m..]);
    Ok(vec![take(x, &idx, shape)?])
}

#[cfg(test)]
mod tests {
    use crate::attr::Attr;
    use crate::dtype::DType::I64;
    use crate::ops::shape::testutil::*;

    #[test]
    fn gather_axes_and_negative_indices() {
        let x = floats(&[3, 2], &[1., 2., 3., 4., 5., 6.]);
        let out = eval(
            "Gather",
            &attrs(&[]),
            &[Some(x.clone()), Some(ints(&[2, 2], &[0, -1, 1, 2]))],
            1,
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[2, 2, 2]);
        assert_eq!(out[0].to_f64(), vec![1., 2., 5., 6., 3., 4., 5., 6.]);
        let a = attrs(&[("axis", Attr::Int(1))]);
        let out = eval("Gather", &a, &[Some(x.clone()), Some(ints(&[], &[-1]))], 1).unwrap();
        assert_eq!(out[0].shape(), &[3]);
        assert_eq!(out[0].to_f64(), vec![2., 4., 6.]);
        assert!(eval("Gather", &a, &[Some(x), Some(ints(&[1], &[2]))], 1).is_err());
        let (t, sym) = infer(
            "Gather",
            &attrs(&[]),
            &[Some(ty(I64, &["3"])), Some(ty(I64, &[]))],
            vec![Some(dims(&["1", "seq", "64"])), Some(dims(&["-2"]))],
            1,
        )
        .unwrap();
        assert_eq!(t[0].to_string(), "i64[]");
        assert_eq!(format!("{:?}", sym.unwrap()), "[seq]");
    }

    #[test]
    fn gather_elements_and_nd() {
        let x = floats(&[2, 2], &[1., 2., 3., 4.]);
        let a = attrs(&[("axis", Attr::Int(1))]);
        let out = eval(
            "GatherElements",
            &a,
            &[Some(x.clone()), Some(ints(&[2, 2], &[0, 0, -1, 0]))],
            1,
        )
        .unwrap();
        assert_eq!(out[0].to_f64(), vec![1., 1., 4., 3.]);
        let out = eval(
            "GatherND",
            &attrs(&[]),
            &[Some(x.clone()), Some(ints(&[2, 2], &[0, 0, 1, 1]))],
            1,
        )
        .unwrap();
        assert_eq!(out[0].to_f64(), vec![1., 4.]);
        let out = eval(
            "GatherND",
            &attrs(&[]),
            &[Some(x.clone()), Some(ints(&[2, 1], &[1, 0]))],
            1,
        )
        .unwrap();
        assert_eq!(out[0].to_f64(), vec![3., 4., 1., 2.]);
        // batch_dims = 1: each batch row picks its own element.
        let b = attrs(&[("batch_dims", Attr::Int(1))]);
        let out = eval("GatherND", &b, &[Some(x), Some(ints(&[2, 1], &[1, 0]))], 1).unwrap();
        assert_eq!(out[0].shape(), &[2]);
        assert_eq!(out[0].to_f64(), vec![2., 3.]);
    }
}
