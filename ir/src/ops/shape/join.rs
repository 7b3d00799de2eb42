//! Concat and Split.

use crate::attr::AttrsExt;
use crate::bail;
use crate::dim::Dim;
use crate::ops::shape::common::{cat_data, count, ints, make, strided, want_int};
use crate::ops::util::{attr_axis, axis};
use crate::ops::{EvalCtx, InferCtx, OpError, OpResult};
use crate::tensor::Tensor;
use crate::types::ValueType;

fn concat_axis(attrs: &crate::attr::Attrs, rank: usize) -> OpResult<usize> {
    match attrs.int("axis")? {
        Some(a) => axis(a, rank),
        None => bail!("Concat needs an `axis` attribute"),
    }
}

pub fn infer_concat(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let first = ctx.input(0)?;
    let ax = concat_axis(ctx.attrs, first.rank())?;
    let mut shape = first.shape.clone();
    for i in 1..ctx.inputs.len() {
        let t = ctx.input(i)?;
        if t.dtype != first.dtype || t.rank() != first.rank() {
            bail!("Concat inputs {first} and {t} do not match");
        }
        for (a, (acc, d)) in shape.iter_mut().zip(&t.shape).enumerate() {
            if a == ax {
                *acc = acc.add(d);
                continue;
            }
            match (acc.as_const(), d.as_const()) {
                (Some(x), Some(y)) if x != y => {
                    bail!("Concat inputs {first} and {t} differ on axis {a}")
                }
                (None, Some(_)) => *acc = d.clone(),
                _ => {}
            }
        }
    }
    Ok(vec![ValueType::new(first.dtype, shape)])
}

pub fn eval_concat(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let parts: Vec<&Tensor> = (0..ctx.inputs.len())
        .map(|i| ctx.input(i))
        .collect::<OpResult<_>>()?;
    let first = parts[0];
    let ax = concat_axis(ctx.attrs, first.rank())?;
    let mut shape = first.shape().to_vec();
    shape[ax] = 0;
    for t in &parts {
        if t.dtype() != first.dtype() || t.rank() != first.rank() {
            bail!(
                "Concat inputs {:?} and {:?} do not match",
                first.shape(),
                t.shape()
            );
        }
        for a in 0..t.rank() {
            if a != ax && t.shape()[a] != first.shape()[a] {
                bail!(
                    "Concat inputs {:?} and {:?} differ on axis {a}",
                    first.shape(),
                    t.shape()
                );
            }
        }
        shape[ax] += t.shape()[ax];
    }
    let outer = count(&first.shape()[..ax]);
    let chunks: Vec<usize> = parts.iter().map(|t| count(&t.shape()[ax..])).collect();
    let mut offsets = Vec::with_capacity(parts.len());
    let mut off = 0;
    for t in &parts {
        offsets.push(off);
        off += t.len();
    }
    let mut idx = Vec::with_capacity(count(&shape));
    for o in 0..outer {
        for (k, &c) in chunks.iter().enumerate() {
            idx.extend((0..c).map(|j| offsets[k] + o * c + j));
        }
    }
    let data = cat_data(&parts.iter().map(|t| t.data()).collect::<Vec<_>>())?;
    Ok(vec![make(first.dtype(), shape, data.take(&idx))?])
}

pub fn sym_concat(ctx: &InferCtx) -> Option<Vec<Dim>> {
    let mut out = Vec::new();
    for i in 0..ctx.inputs.len() {
        if ctx.input(i).ok()?.rank() != 1 {
            return None;
        }
        out.extend(ctx.dims_input(i)?);
    }
    Some(out)
}

/// The sizes of Split's outputs along an axis of size `d`, symbolically.
fn split_sizes(ctx_attrs: &crate::attr::Attrs, d: &Dim, n: usize) -> OpResult<Vec<Dim>> {
    if let Some(k) = ctx_attrs.int("num_outputs")? {
        if k < 1 || k as usize != n {
            bail!("Split num_outputs = {k} but the node has {n} outputs");
        }
        let k = Dim::from(k);
        let chunk = d.add(&k).sub(&Dim::from(1i64)).floor_div(&k);
        let last = d.sub(&chunk.mul(&Dim::from(n as i64 - 1)));
        if last.as_const().is_some_and(|c| c < 0) {
            bail!("cannot split a dim of {d} into {n} chunks of {chunk}");
        }
        let mut v = vec![chunk; n - 1];
        v.push(last);
        return Ok(v);
    }
    if n == 0 {
        bail!("Split needs at least one output");
    }
    if let Some(c) = d.as_const() {
        if c % n as i64 != 0 {
            bail!("cannot split a dim of {c} into {n} equal parts");
        }
    }
    Ok(vec![d.floor_div(&Dim::from(n as i64)); n])
}

pub fn infer_split(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    want_int(ctx, 1, "Split sizes")?;
    let ax = attr_axis(ctx.attrs, 0, x.rank())?;
    let n = ctx.num_outputs;
    let d = &x.shape[ax];
    let sizes = if ctx.has_input(1) {
        match ctx.dims_input(1) {
            Some(v) => {
                if v.len() != n {
                    bail!("Split has {} sizes for {n} outputs", v.len());
                }
                let total = v.iter().fold(Dim::from(0i64), |a, b| a.add(b));
                if let (Some(t), Some(c)) = (total.as_const(), d.as_const()) {
                    if t != c {
                        bail!("Split sizes {v:?} do not add up to {c}");
                    }
                }
                if v.iter().any(|s| s.as_const().is_some_and(|c| c < 0)) {
                    bail!("Split sizes {v:?} must not be negative");
                }
                v
            }
            None => (0..n).map(|i| ctx.data_dim(i, ax)).collect(),
        }
    } else {
        split_sizes(ctx.attrs, d, n)?
    };
    Ok(sizes
        .into_iter()
        .map(|s| {
            let mut shape = x.shape.clone();
            shape[ax] = s;
            ValueType::new(x.dtype, shape)
        })
        .collect())
}

pub fn eval_split(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let ax = attr_axis(ctx.attrs, 0, x.rank())?;
    let n = ctx.num_outputs;
    let d = x.shape()[ax];
    let sizes: Vec<usize> = match ctx.opt_input(1) {
        Some(t) => {
            let v = ints(t, "Split sizes")?;
            if v.len() != n || v.iter().any(|&s| s < 0) || v.iter().sum::<i64>() != d as i64 {
                bail!("Split sizes {v:?} do not split a dim of {d} into {n} outputs");
            }
            v.into_iter().map(|s| s as usize).collect()
        }
        None => split_sizes(ctx.attrs, &Dim::from(d), n)?
            .iter()
            .map(|s| {
                s.as_const()
                    .map(|c| c as usize)
                    .ok_or_else(|| OpError::new("Split size is not constant"))
            })
            .collect::<OpResult<_>>()?,
    };
    let mut out = Vec::with_capacity(n);
    let mut start = 0i64;
    let mut starts = vec![0i64; x.rank()];
    let steps = vec![1i64; x.rank()];
    for s in sizes {
        starts[ax] = start;
        let mut lens = x.shape().to_vec();
        lens[ax] = s;
        out.push(strided(x, &starts, &steps, &lens)?);
        start += s as i64;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::attr::Attr;
    use crate::dtype::DType::{F32, I64};
    use crate::ops::shape::testutil::*;

    #[test]
    fn concat_values_and_symbols() {
        let a = attrs(&[("axis", Attr::Int(-1))]);
        let x = floats(&[2, 1], &[1., 2.]);
        let y = floats(&[2, 2], &[3., 4., 5., 6.]);
        let out = eval("Concat", &a, &[Some(x), Some(y)], 1).unwrap();
        assert_eq!(out[0].shape(), &[2, 3]);
        assert_eq!(out[0].to_f64(), vec![1., 3., 4., 2., 5., 6.]);
        let (t, sym) = infer(
            "Concat",
            &attrs(&[("axis", Attr::Int(0))]),
            &[Some(ty(I64, &["1"])), Some(ty(I64, &["2"]))],
            vec![Some(dims(&["1"])), Some(dims(&["seq", "64"]))],
            1,
        )
        .unwrap();
        assert_eq!(t[0].to_string(), "i64[3]");
        assert_eq!(format!("{:?}", sym.unwrap()), "[1, seq, 64]");
        let (t, _) = infer(
            "Concat",
            &a,
            &[Some(ty(F32, &["1", "seq"])), Some(ty(F32, &["1", "past"]))],
            vec![],
            1,
        )
        .unwrap();
        assert_eq!(t[0].to_string(), "f32[1, past+seq]");
    }

    #[test]
    fn split_forms() {
        let x = floats(&[7], &[1., 2., 3., 4., 5., 6., 7.]);
        let a = attrs(&[("num_outputs", Attr::Int(3))]);
        let out = eval("Split", &a, &[Some(x.clone())], 3).unwrap();
        let lens: Vec<_> = out.iter().map(|t| t.shape()[0]).collect();
        assert_eq!(lens, vec![3, 3, 1]);
        assert_eq!(out[2].to_f64(), vec![7.]);
        let out = eval(
            "Split",
            &attrs(&[]),
            &[Some(x.clone()), Some(ints(&[2], &[2, 5]))],
            2,
        )
        .unwrap();
        assert_eq!(out[1].to_f64(), vec![3., 4., 5., 6., 7.]);
        assert!(eval("Split", &attrs(&[]), &[Some(x)], 2).is_err());
        let (t, _) = infer("Split", &a, &[Some(ty(F32, &["seq", "4"]))], vec![], 3).unwrap();
        assert_eq!(t[0].to_string(), "f32[floordiv(seq+2, 3), 4]");
        let a1 = attrs(&[("axis", Attr::Int(1))]);
        let (t, _) = infer("Split", &a1, &[Some(ty(F32, &["2", "seq*2"]))], vec![], 2).unwrap();
        assert_eq!(t[1].to_string(), "f32[2, seq]");
    }
}
