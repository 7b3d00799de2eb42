//! OneHot, NonZero, Compress, Unique, TopK.

use std::cmp::Ordering;

use crate::attr::AttrsExt;
use crate::bail;
use crate::dim::Dim;
use crate::dtype::DType;
use crate::ops::indexing::Keys;
use crate::ops::shape::common::{count, ints, make, prod, take_fill};
use crate::ops::util::{attr_axis, axis, axis_incl};
use crate::ops::{EvalCtx, InferCtx, OpError, OpResult};
use crate::tensor::{Data, Tensor};
use crate::types::ValueType;

fn take(t: &Tensor, idx: &[usize], shape: Vec<usize>) -> OpResult<Tensor> {
    t.take(idx, shape).map_err(|e| OpError::new(e.to_string()))
}

/// The flat indices of items `picks` along axis `a` of shape `shape` (each item a slice).
fn take_along(shape: &[usize], a: usize, picks: &[usize]) -> Vec<usize> {
    let (outer, d, inner) = (count(&shape[..a]), shape[a], count(&shape[a + 1..]));
    let mut idx = Vec::with_capacity(outer * picks.len() * inner);
    for o in 0..outer {
        for &p in picks {
            let base = (o * d + p) * inner;
            idx.extend(base..base + inner);
        }
    }
    idx
}

// ---------------------------------------------------------------------------------------
// OneHot

pub fn infer_one_hot(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let (i, depth, v) = (ctx.input(0)?, ctx.input(1)?, ctx.input(2)?);
    if depth.rank() > 1 || v.rank() != 1 {
        bail!("OneHot needs a scalar depth and 1-D values, got {depth} and {v}");
    }
    let a = axis_incl(ctx.attrs.int_or("axis", -1)?, i.rank())?;
    let d = if depth.dtype.is_int() {
        ctx.dims_input(1).and_then(|d| d.first().cloned())
    } else {
        ctx.const_input(1)
            .and_then(|t| t.first_f64())
            .map(|x| Dim::from(x as i64))
    };
    let d = match d {
        Some(d) if d.as_const().is_some_and(|c| c < 1) => {
            bail!("OneHot depth {d} must be positive")
        }
        Some(d) => d,
        None => ctx.data_dim(0, a),
    };
    let mut shape = i.shape.clone();
    shape.insert(a, d);
    Ok(vec![ValueType::new(v.dtype, shape)])
}

pub fn eval_one_hot(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let (i, depth, v) = (ctx.input(0)?, ctx.input(1)?, ctx.input(2)?);
    if v.len() != 2 {
        bail!(
            "OneHot values must hold [off, on], got shape {:?}",
            v.shape()
        );
    }
    let a = axis_incl(ctx.attrs.int_or("axis", -1)?, i.rank())?;
    let Some(d) = depth.first_f64() else {
        bail!("OneHot depth is empty");
    };
    let d = d as i64;
    if d < 1 {
        bail!("OneHot depth {d} must be positive");
    }
    let picks: Vec<i64> = i
        .to_f64()
        .into_iter()
        .map(|x| {
            let x = x as i64;
            if x < 0 {
                x + d
            } else {
                x
            }
        })
        .collect();
    let (outer, inner) = (count(&i.shape()[..a]), count(&i.shape()[a..]));
    let d = d as usize;
    let mut idx = Vec::with_capacity(outer * d * inner);
    for o in 0..outer {
        for k in 0..d {
            for j in 0..inner {
                idx.push(Some(usize::from(picks[o * inner + j] == k as i64)));
            }
        }
    }
    let mut shape = i.shape().to_vec();
    shape.insert(a, d);
    let v = v
        .reshaped(vec![2])
        .map_err(|e| OpError::new(e.to_string()))?;
    Ok(vec![take_fill(&v, &idx, shape, None)?])
}

// ---------------------------------------------------------------------------------------
// NonZero

pub fn infer_non_zero(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    let n = match ctx.const_input(0) {
        Some(t) => Dim::from(t.to_bool().iter().filter(|&&b| b).count()),
        None => ctx.data_dim(0, 1),
    };
    Ok(vec![ValueType::new(
        DType::I64,
        vec![Dim::from(x.rank()), n],
    )])
}

pub fn eval_non_zero(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let hits: Vec<usize> = x
        .to_bool()
        .iter()
        .enumerate()
        .filter_map(|(f, &b)| b.then_some(f))
        .collect();
    let st = crate::tensor::strides(x.shape());
    let n = hits.len();
    let mut v = vec![0i64; x.rank() * n];
    for (k, &f) in hits.iter().enumerate() {
        for a in 0..x.rank() {
            v[a * n + k] = ((f / st[a]) % x.shape()[a]) as i64;
        }
    }
    Ok(vec![make(DType::I64, vec![x.rank(), n], Data::I64(v))?])
}

// ---------------------------------------------------------------------------------------
// Compress

pub fn infer_compress(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let (x, c) = (ctx.input(0)?, ctx.input(1)?);
    if c.rank() != 1 {
        bail!("Compress condition must be 1-D, got {c}");
    }
    let a = match ctx.attrs.int("axis")? {
        Some(a) => Some(axis(a, x.rank())?),
        None => None,
    };
    let n = match ctx.const_input(1) {
        Some(t) => Dim::from(t.to_bool().iter().filter(|&&b| b).count()),
        None => ctx.data_dim(0, a.unwrap_or(0)),
    };
    let shape = match a {
        Some(a) => {
            let mut s = x.shape.clone();
            s[a] = n;
            s
        }
        None => vec![n],
    };
    Ok(vec![ValueType::new(x.dtype, shape)])
}

pub fn eval_compress(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let (x, c) = (ctx.input(0)?, ctx.input(1)?);
    let cond = c.to_bool();
    let (shape, a) = match ctx.attrs.int("axis")? {
        Some(a) => (x.shape().to_vec(), axis(a, x.rank())?),
        None => (vec![x.len()], 0),
    };
    let d = shape[a];
    if cond.iter().skip(d).any(|&b| b) {
        bail!("Compress condition selects past the end of a dim of {d}");
    }
    let picks: Vec<usize> = (0..d.min(cond.len())).filter(|&k| cond[k]).collect();
    let idx = take_along(&shape, a, &picks);
    let mut out = shape;
    out[a] = picks.len();
    Ok(vec![take(x, &idx, out)?])
}

// ---------------------------------------------------------------------------------------
// Unique

pub fn infer_unique(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    let a = match ctx.attrs.int("axis")? {
        Some(a) => Some(axis(a, x.rank())?),
        None => None,
    };
    let u = ctx.data_dim(0, a.unwrap_or(0));
    let (y, n) = match a {
        Some(a) => {
            let mut s = x.shape.clone();
            s[a] = u.clone();
            (s, x.shape[a].clone())
        }
        None => (vec![u.clone()], prod(&x.shape)),
    };
    let i64v = |d: Dim| ValueType::new(DType::I64, vec![d]);
    Ok(vec![
        ValueType::new(x.dtype, y),
        i64v(u.clone()),
        i64v(n),
        i64v(u),
    ])
}

pub fn eval_unique(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let sorted = ctx.attrs.int_or("sorted", 1)? != 0;
    let (shape, a) = match ctx.attrs.int("axis")? {
        Some(a) => (x.shape().to_vec(), axis(a, x.rank())?),
        None => (vec![x.len()], 0),
    };
    let keys = Keys::of(x);
    let d = shape[a];
    // Item k is the slice at index k along the axis; compare items element by element.
    let items: Vec<Vec<usize>> = (0..d).map(|k| take_along(&shape, a, &[k])).collect();
    let cmp = |p: usize, q: usize| -> Ordering {
        items[p]
            .iter()
            .zip(&items[q])
            .map(|(&i, &j)| keys.cmp(i, j))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    };
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&p, &q| cmp(p, q));
    // Groups of equal items in sorted order: (first occurrence, count).
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut group_of = vec![0usize; d];
    for (pos, &k) in order.iter().enumerate() {
        if pos == 0 || cmp(order[pos - 1], k).is_ne() {
            groups.push((k, 0));
        }
        let g = groups.len() - 1;
        groups[g].1 += 1;
        group_of[k] = g;
    }
    // Unsorted output lists the groups by first occurrence.
    let mut rank: Vec<usize> = (0..groups.len()).collect();
    if !sorted {
        rank.sort_by_key(|&g| groups[g].0);
    }
    let mut pos_of = vec![0usize; groups.len()];
    for (p, &g) in rank.iter().enumerate() {
        pos_of[g] = p;
    }
    let firsts: Vec<usize> = rank.iter().map(|&g| groups[g].0).collect();
    let counts: Vec<i64> = rank.iter().map(|&g| groups[g].1 as i64).collect();
    let inverse: Vec<i64> = (0..d).map(|k| pos_of[group_of[k]] as i64).collect();
    let mut yshape = shape.clone();
    yshape[a] = firsts.len();
    let y = take(x, &take_along(&shape, a, &firsts), yshape)?;
    let u = firsts.len();
    let vec_i64 = |v: Vec<i64>| make(DType::I64, vec![v.len()], Data::I64(v));
    Ok(vec![
        y,
        vec_i64(firsts.iter().map(|&k| k as i64).collect())?,
        vec_i64(inverse)?,
        make(DType::I64, vec![u], Data::I64(counts))?,
    ])
}

// ---------------------------------------------------------------------------------------
// TopK

pub fn infer_top_k(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let (x, k) = (ctx.input(0)?, ctx.input(1)?);
    if !k.dtype.is_int() || k.rank() > 1 {
        bail!("TopK K must be a 1-element integer tensor, got {k}");
    }
    if x.rank() == 0 {
        bail!("TopK needs rank >= 1, got {x}");
    }
    let a = attr_axis(ctx.attrs, -1, x.rank())?;
    let n = match ctx.dims_input(1).and_then(|v| v.first().cloned()) {
        Some(n) => {
            if let Some(c) = n.as_const() {
                if c < 0 || x.shape[a].as_const().is_some_and(|d| c > d) {
                    bail!("TopK K = {c} is out of range for {x}");
                }
            }
            n
        }
        None => ctx.data_dim(0, a),
    };
    let mut shape = x.shape.clone();
    shape[a] = n;
    Ok(vec![
        ValueType::new(x.dtype, shape.clone()),
        ValueType::new(DType::I64, shape),
    ])
}

pub fn eval_top_k(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let kt = ctx.input(1)?;
    let kv = ints(kt, "TopK K")?;
    if kv.len() != 1 {
        bail!("TopK K must hold one value, got {kv:?}");
    }
    if x.rank() == 0 {
        bail!("TopK needs rank >= 1");
    }
    let a = attr_axis(ctx.attrs, -1, x.rank())?;
    let largest = ctx.attrs.int_or("largest", 1)? != 0;
    let d = x.shape()[a];
    if kv[0] < 0 || kv[0] as usize > d {
        bail!("TopK K = {} is out of range for a dim of {d}", kv[0]);
    }
    let k = kv[0] as usize;
    let keys = Keys::of(x);
    let (outer, inner) = (count(&x.shape()[..a]), count(&x.shape()[a + 1..]));
    let mut shape = x.shape().to_vec();
    shape[a] = k;
    let n = count(&shape);
    let (mut flat, mut pos) = (vec![0usize; n], vec![0i64; n]);
    let mut line: Vec<usize> = Vec::with_capacity(d);
    for o in 0..outer {
        for j in 0..inner {
            let at = |p: usize| (o * d + p) * inner + j;
            line.clear();
            line.extend(0..d);
            line.sort_by(|&p, &q| {
                let c = keys.cmp(at(p), at(q));
                (if largest { c.reverse() } else { c }).then(p.cmp(&q))
            });
            for (r, &p) in line.iter().take(k).enumerate() {
                let out = (o * k + r) * inner + j;
                flat[out] = at(p);
                pos[out] = p as i64;
            }
        }
    }
    Ok(vec![
        take(x, &flat, shape.clone())?,
        make(DType::I64, shape, Data::I64(pos))?,
    ])
}

#[cfg(test)]
mod tests {
    use crate::attr::Attr;
    use crate::dtype::DType::{F32, I64};
    use crate::ops::shape::testutil::*;
    use crate::tensor::Tensor;

    #[test]
    fn one_hot_wraps_and_skips() {
        let v = floats(&[2], &[0., 5.]);
        let out = eval(
            "OneHot",
            &attrs(&[]),
            &[
                Some(ints(&[3], &[1, -1, 7])),
                Some(Tensor::scalar_i64(3)),
                Some(v.clone()),
            ],
            1,
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[3, 3]);
        assert_eq!(out[0].to_f64(), vec![0., 5., 0., 0., 0., 5., 0., 0., 0.]);
        let a = attrs(&[("axis", Attr::Int(0))]);
        let out = eval(
            "OneHot",
            &a,
            &[
                Some(ints(&[2], &[0, 2])),
                Some(Tensor::scalar_f32(3.0)),
                Some(v),
            ],
            1,
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[3, 2]);
        assert_eq!(out[0].to_f64(), vec![5., 0., 0., 0., 0., 5.]);
    }

    #[test]
    fn nonzero_and_compress() {
        let x = floats(&[2, 2], &[1., 0., 0., 3.]);
        let out = eval("NonZero", &attrs(&[]), &[Some(x.clone())], 1).unwrap();
        assert_eq!(out[0].shape(), &[2, 2]);
        assert_eq!(out[0].to_i64(), vec![0, 1, 0, 1]);
        let c = Tensor::from_bools(vec![2], vec![false, true]).unwrap();
        let a = attrs(&[("axis", Attr::Int(1))]);
        let out = eval("Compress", &a, &[Some(x.clone()), Some(c.clone())], 1).unwrap();
        assert_eq!(out[0].to_f64(), vec![0., 3.]);
        let out = eval("Compress", &attrs(&[]), &[Some(x), Some(c)], 1).unwrap();
        assert_eq!(out[0].to_f64(), vec![0.]);
    }

    #[test]
    fn unique_sorted_and_not() {
        let x = floats(&[6], &[2., 1., 1., 3., 4., 3.]);
        let out = eval("Unique", &attrs(&[]), &[Some(x.clone())], 4).unwrap();
        assert_eq!(out[0].to_f64(), vec![1., 2., 3., 4.]);
        assert_eq!(out[1].to_i64(), vec![1, 0, 3, 4]);
        assert_eq!(out[2].to_i64(), vec![1, 0, 0, 2, 3, 2]);
        assert_eq!(out[3].to_i64(), vec![2, 1, 2, 1]);
        let a = attrs(&[("sorted", Attr::Int(0))]);
        let out = eval("Unique", &a, &[Some(x)], 4).unwrap();
        assert_eq!(out[0].to_f64(), vec![2., 1., 3., 4.]);
        assert_eq!(out[1].to_i64(), vec![0, 1, 3, 4]);
        assert_eq!(out[2].to_i64(), vec![0, 1, 1, 2, 3, 2]);
        assert_eq!(out[3].to_i64(), vec![1, 2, 2, 1]);
        // Rows of a matrix.
        let m = floats(&[3, 2], &[1., 2., 0., 9., 1., 2.]);
        let a = attrs(&[("axis", Attr::Int(0))]);
        let out = eval("Unique", &a, &[Some(m)], 4).unwrap();
        assert_eq!(out[0].shape(), &[2, 2]);
        assert_eq!(out[0].to_f64(), vec![0., 9., 1., 2.]);
        assert_eq!(out[2].to_i64(), vec![1, 0, 1]);
    }

    #[test]
    fn top_k_ties_take_lower_index() {
        let x = floats(&[2, 3], &[1., 3., 3., 5., 5., 5.]);
        let out = eval(
            "TopK",
            &attrs(&[]),
            &[Some(x.clone()), Some(ints(&[1], &[2]))],
            2,
        )
        .unwrap();
        assert_eq!(out[0].to_f64(), vec![3., 3., 5., 5.]);
        assert_eq!(out[1].to_i64(), vec![1, 2, 0, 1]);
        let a = attrs(&[("largest", Attr::Int(0)), ("axis", Attr::Int(0))]);
        let out = eval("TopK", &a, &[Some(x), Some(ints(&[1], &[1]))], 2).unwrap();
        assert_eq!(out[0].to_f64(), vec![1., 3., 3.]);
        assert_eq!(out[1].to_i64(), vec![0, 0, 0]);
        let (t, _) = infer(
            "TopK",
            &attrs(&[]),
            &[Some(ty(F32, &["seq", "8"])), Some(ty(I64, &["1"]))],
            vec![None, Some(dims(&["2"]))],
            2,
        )
        .unwrap();
        assert_eq!(t[1].to_string(), "i64[seq, 2]");
    }
}
