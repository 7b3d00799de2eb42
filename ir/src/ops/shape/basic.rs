//! Identity, Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Shape, Size.

use crate::attr::AttrsExt;
use crate::bail;
use crate::dim::Dim;
use crate::dtype::DType;
use crate::ops::shape::common::{
    const_ints, count, dims_of, div_exact, ints, make, norm_axes, prod, transpose, vec_len,
    want_int,
};
use crate::ops::util::{one, same_as};
use crate::ops::{EvalCtx, InferCtx, OpError, OpResult};
use crate::tensor::Tensor;
use crate::types::{Shape, ValueType};

fn reshaped(t: &Tensor, shape: Vec<usize>) -> OpResult<Tensor> {
    t.reshaped(shape).map_err(|e| OpError::new(e.to_string()))
}

/// Content of input 0 when it is a symbolic integer vector or scalar.
fn small_dims(ctx: &InferCtx, i: usize) -> Option<Vec<Dim>> {
    if ctx.input(i).ok()?.rank() > 1 {
        return None;
    }
    ctx.dims_input(i)
}

// ---------------------------------------------------------------------------------------
// Identity

pub fn infer_identity(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    same_as(ctx, 0)
}

pub fn eval_identity(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    Ok(vec![ctx.input(0)?.clone()])
}

pub fn sym_identity(ctx: &InferCtx) -> Option<Vec<Dim>> {
    small_dims(ctx, 0)
}

// ---------------------------------------------------------------------------------------
// Reshape

/// The output shape of a reshape of `input` to `spec` (`0` copies the input dim unless
/// `allowzero`, one `-1` is inferred).
fn reshape_dims(input: &[Dim], spec: &[Dim], allowzero: bool) -> OpResult<Shape> {
    let mut out = Vec::with_capacity(spec.len());
    let mut infer_at = None;
    for (i, s) in spec.iter().enumerate() {
        match s.as_const() {
            Some(0) if !allowzero => match input.get(i) {
                Some(d) => out.push(d.clone()),
                None => bail!(
                    "shape {spec:?} copies dim {i} (a 0) of a rank-{} input",
                    input.len()
                ),
            },
            Some(-1) => {
                if infer_at.is_some() {
                    bail!("shape {spec:?} has more than one -1");
                }
                infer_at = Some(i);
                out.push(Dim::from(1i64));
            }
            Some(c) if c < -1 => bail!("shape {spec:?} has an invalid dim {c}"),
            _ => out.push(s.clone()),
        }
    }
    let total = prod(input);
    if let Some(i) = infer_at {
        let others: Vec<Dim> = out
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, d)| d.clone())
            .collect();
        let known = prod(&others);
        match (total.as_const(), known.as_const()) {
            (_, Some(0)) => bail!("shape {spec:?}: cannot infer -1 next to a zero dim"),
            (Some(n), Some(k)) if n % k != 0 => {
                bail!("cannot reshape {input:?} ({n} elements) to {spec:?}")
            }
            _ => {}
        }
        out[i] = div_exact(input, &others);
    } else if let (Some(n), Some(m)) = (total.as_const(), prod(&out).as_const()) {
        if n != m {
            bail!("cannot reshape {input:?} ({n} elements) to {spec:?} ({m} elements)");
        }
    }
    Ok(out)
}

pub fn infer_reshape(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    want_int(ctx, 1, "Reshape shape")?;
    let allowzero = ctx.attrs.int_or("allowzero", 0)? != 0;
    let shape = match ctx.dims_input(1) {
        Some(spec) => reshape_dims(&x.shape, &spec, allowzero)?,
        None => ctx.data_shape(0, vec_len(ctx, 1, "Reshape shape")?),
    };
    one(x.dtype, shape)
}

pub fn eval_reshape(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let spec: Vec<Dim> = ints(ctx.input(1)?, "Reshape shape")?
        .into_iter()
        .map(Dim::from)
        .collect();
    let allowzero = ctx.attrs.int_or("allowzero", 0)? != 0;
    let shape = reshape_dims(&dims_of(x.shape()), &spec, allowzero)?;
    let shape: Vec<usize> = shape
        .iter()
        .map(|d| d.as_const().unwrap_or(0).max(0) as usize)
        .collect();
    if count(&shape) != x.len() {
        bail!("cannot reshape {:?} to {shape:?}", x.shape());
    }
    Ok(vec![reshaped(x, shape)?])
}

pub fn sym_reshape(ctx: &InferCtx) -> Option<Vec<Dim>> {
    if vec_len(ctx, 1, "").ok()? > 1 {
        return None;
    }
    small_dims(ctx, 0)
}

// ---------------------------------------------------------------------------------------
// Flatten

fn flatten_axis(ctx_axis: i64, rank: usize) -> OpResult<usize> {
    let r = rank as i64;
    let a = if ctx_axis < 0 { ctx_axis + r } else { ctx_axis };
    if a < 0 || a > r {
        bail!("Flatten axis {ctx_axis} is out of range for rank {rank}");
    }
    Ok(a as usize)
}

pub fn infer_flatten(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    let a = flatten_axis(ctx.attrs.int_or("axis", 1)?, x.rank())?;
    one(x.dtype, vec![prod(&x.shape[..a]), prod(&x.shape[a..])])
}

pub fn eval_flatten(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let a = flatten_axis(ctx.attrs.int_or("axis", 1)?, x.rank())?;
    let shape = vec![count(&x.shape()[..a]), count(&x.shape()[a..])];
    Ok(vec![reshaped(x, shape)?])
}

// ---------------------------------------------------------------------------------------
// Squeeze / Unsqueeze

pub fn infer_squeeze(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    want_int(ctx, 1, "Squeeze axes")?;
    let shape = if ctx.has_input(1) {
        let Some(axes) = const_ints(ctx, 1) else {
            // Unknown axes: the dims that are not 1 stay; if they alone fill the output
            // rank, they are the output.
            let n = vec_len(ctx, 1, "Squeeze axes")?;
            let Some(rank) = x.rank().checked_sub(n) else {
                bail!("Squeeze has {n} axes for {x}");
            };
            let kept: Vec<Dim> = x
                .shape
                .iter()
                .filter(|d| d.as_const().is_some_and(|c| c != 1))
                .cloned()
                .collect();
            let shape = if kept.len() == rank {
                kept
            } else {
                ctx.data_shape(0, rank)
            };
            return one(x.dtype, shape);
        };
        let axes = norm_axes(&axes, x.rank())?;
        for &a in &axes {
            if let Some(c) = x.shape[a].as_const() {
                if c != 1 {
                    bail!("cannot squeeze axis {a} of {x}: its size is not 1");
                }
            }
        }
        (0..x.rank())
            .filter(|a| !axes.contains(a))
            .map(|a| x.shape[a].clone())
            .collect()
    } else {
        x.shape
            .iter()
            .filter(|d| d.as_const() != Some(1))
            .cloned()
            .collect()
    };
    one(x.dtype, shape)
}

pub fn eval_squeeze(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let shape = match ctx.opt_input(1) {
        Some(t) => {
            let axes = norm_axes(&ints(t, "Squeeze axes")?, x.rank())?;
            for &a in &axes {
                if x.shape()[a] != 1 {
                    bail!("cannot squeeze axis {a} of shape {:?}", x.shape());
                }
            }
            (0..x.rank())
                .filter(|a| !axes.contains(a))
                .map(|a| x.shape()[a])
                .collect()
        }
        None => x.shape().iter().copied().filter(|&d| d != 1).collect(),
    };
    Ok(vec![reshaped(x, shape)?])
}

pub fn sym_squeeze(ctx: &InferCtx) -> Option<Vec<Dim>> {
    small_dims(ctx, 0)
}

fn unsqueeze_dims<T: Clone>(shape: &[T], axes: &[i64], one: T) -> OpResult<Vec<T>> {
    let rank = shape.len() + axes.len();
    let axes = norm_axes(axes, rank)?;
    let mut src = shape.iter();
    (0..rank)
        .map(|a| {
            if axes.contains(&a) {
                Ok(one.clone())
            } else {
                src.next()
                    .cloned()
                    .ok_or_else(|| OpError::new("Unsqueeze axes are inconsistent"))
            }
        })
        .collect()
}

pub fn infer_unsqueeze(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    want_int(ctx, 1, "Unsqueeze axes")?;
    let Some(axes) = const_ints(ctx, 1) else {
        // Unknown axes: only the rank is known.
        let n = vec_len(ctx, 1, "Unsqueeze axes")?;
        return one(x.dtype, ctx.data_shape(0, x.rank() + n));
    };
    one(x.dtype, unsqueeze_dims(&x.shape, &axes, Dim::from(1i64))?)
}

pub fn eval_unsqueeze(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let axes = ints(ctx.input(1)?, "Unsqueeze axes")?;
    Ok(vec![reshaped(x, unsqueeze_dims(x.shape(), &axes, 1)?)?])
}

pub fn sym_unsqueeze(ctx: &InferCtx) -> Option<Vec<Dim>> {
    if ctx.input(0).ok()?.rank() != 0 {
        return None;
    }
    small_dims(ctx, 0)
}

// ---------------------------------------------------------------------------------------
// Transpose

fn perm(ctx_perm: Option<Vec<i64>>, rank: usize) -> OpResult<Vec<usize>> {
    let Some(p) = ctx_perm else {
        return Ok((0..rank).rev().collect());
    };
    if p.len() != rank {
        bail!("Transpose perm {p:?} does not fit rank {rank}");
    }
    norm_axes(&p, rank)
}

pub fn infer_transpose(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    let p = perm(ctx.attrs.ints("perm")?, x.rank())?;
    one(x.dtype, p.iter().map(|&a| x.shape[a].clone()).collect())
}

pub fn eval_transpose(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let p = perm(ctx.attrs.ints("perm")?, x.rank())?;
    Ok(vec![transpose(x, &p)?])
}

// ---------------------------------------------------------------------------------------
// Shape / Size

/// The `[start, end)` range of Shape's `start`/`end` attributes, clamped.
fn shape_range(ctx_attrs: &crate::attr::Attrs, rank: usize) -> OpResult<(usize, usize)> {
    let r = rank as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = clamp(ctx_attrs.int_or("start", 0)?);
    let end = clamp(ctx_attrs.int_or("end", r)?);
    Ok((start, end.max(start)))
}

pub fn infer_shape(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    let (s, e) = shape_range(ctx.attrs, x.rank())?;
    one(DType::I64, vec![Dim::from(e - s)])
}

pub fn eval_shape(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    let (s, e) = shape_range(ctx.attrs, x.rank())?;
    let v: Vec<i64> = x.shape()[s..e].iter().map(|&d| d as i64).collect();
    Ok(vec![make(
        DType::I64,
        vec![v.len()],
        crate::tensor::Data::I64(v),
    )?])
}

pub fn sym_shape(ctx: &InferCtx) -> Option<Vec<Dim>> {
    let x = ctx.input(0).ok()?;
    let (s, e) = shape_range(ctx.attrs, x.rank()).ok()?;
    Some(x.shape[s..e].to_vec())
}

pub fn infer_size(ctx: &InferCtx) -> OpResult<Vec<ValueType>> {
    ctx.input(0)?;
    one(DType::I64, vec![])
}

pub fn eval_size(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    Ok(vec![Tensor::scalar_i64(ctx.input(0)?.len() as i64)])
}

pub fn sym_size(ctx: &InferCtx) -> Option<Vec<Dim>> {
    Some(vec![prod(&ctx.input(0).ok()?.shape)])
}

#[cfg(test)]
mod tests {
    use crate::attr::Attr;
    use crate::dtype::DType::{F32, I64};
    use crate::ops::shape::testutil::*;
    use crate::ops::Known;

    #[test]
    fn reshape_symbolic() {
        let x = ty(F32, &["1", "seq", "2048"]);
        let s = ty(I64, &["4"]);
        let a = attrs(&[]);
        let (t, _) = infer(
            "Reshape",
            &a,
            &[Some(x.clone()), Some(s.clone())],
            vec![None, Some(dims(&["0", "0", "-1", "64"]))],
            1,
        )
        .unwrap();
        assert_eq!(t[0].to_string(), "f32[1, seq, 32, 64]");
        let (t, _) = infer(
            "Reshape",
            &a,
            &[Some(x.clone()), Some(ty(I64, &["2"]))],
            vec![None, Some(dims(&["-1", "2048"]))],
            1,
        )
        .unwrap();
        assert_eq!(t[0].to_string(), "f32[seq, 2048]");
        // Unknown shape content: fresh symbols of the right rank.
        let (t, _) = infer("Reshape", &a, &[Some(x), Some(s)], vec![], 1).unwrap();
        assert_eq!(t[0].to_string(), "f32[u0, u1, u2, u3]");
        // A symbolic scalar reshaped to [1] keeps its content.
        let (t, sym) = infer(
            "Reshape",
            &a,
            &[Some(ty(I64, &[])), Some(ty(I64, &["1"]))],
            vec![Some(dims(&["seq+1"])), Some(dims(&["-1"]))],
            1,
        )
        .unwrap();
        assert_eq!(t[0].to_string(), "i64[1]");
        assert_eq!(format!("{:?}", sym.unwrap()), "[seq+1]");
    }

    #[test]
    fn reshape_eval() {
        let x = floats(&[2, 3, 4], &(0..24).map(|v| v as f32).collect::<Vec<_>>());
        let a = attrs(&[]);
        let out = eval(
            "Reshape",
            &a,
            &[Some(x.clone()), Some(ints(&[2], &[0, -1]))],
            1,
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[2, 12]);
        let err = eval(
            "Reshape",
            &a,
            &[Some(x.clone()), Some(ints(&[2], &[5, -1]))],
            1,
        );
        assert!(err.is_err());
        let az = attrs(&[("allowzero", Attr::Int(1))]);
        let empty = floats(&[0, 3], &[]);
        let out = eval("Reshape", &az, &[Some(empty), Some(ints(&[2], &[3, 0]))], 1).unwrap();
        assert_eq!(out[0].shape(), &[3, 0]);
    }

    #[test]
    fn squeeze_unsqueeze_flatten_transpose() {
        let x = floats(&[1, 3, 1, 2], &[1., 2., 3., 4., 5., 6.]);
        let a = attrs(&[]);
        let out = eval("Squeeze", &a, &[Some(x.clone())], 1).unwrap();
        assert_eq!(out[0].shape(), &[3, 2]);
        let out = eval(
            "Squeeze",
            &a,
            &[Some(x.clone()), Some(ints(&[1], &[-2]))],
            1,
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[1, 3, 2]);
        assert!(eval("Squeeze", &a, &[Some(x.clone()), Some(ints(&[1], &[1]))], 1).is_err());
        let out = eval(
            "Unsqueeze",
            &a,
            &[Some(x.clone()), Some(ints(&[2], &[-1, 0]))],
            1,
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[1, 1, 3, 1, 2, 1]);
        let f = attrs(&[("axis", Attr::Int(-1))]);
        let out = eval("Flatten", &f, &[Some(x.clone())], 1).unwrap();
        assert_eq!(out[0].shape(), &[3, 2]);
        let out = eval(
            "Transpose",
            &a,
            &[Some(floats(&[2, 3], &[1., 2., 3., 4., 5., 6.]))],
            1,
        )
        .unwrap();
        assert_eq!(out[0].shape(), &[3, 2]);
        assert_eq!(out[0].to_f64(), vec![1., 4., 2., 5., 3., 6.]);
        // Unsqueeze of a symbolic scalar gives the same content.
        let (t, sym) = infer(
            "Unsqueeze",
            &a,
            &[Some(ty(I64, &[])), Some(ty(I64, &["1"]))],
            vec![Some(dims(&["seq"])), Some(dims(&["0"]))],
            1,
        )
        .unwrap();
        assert_eq!(t[0].to_string(), "i64[1]");
        assert_eq!(format!("{:?}", sym.unwrap()), "[seq]");
    }

    #[test]
    fn shape_and_size_are_symbolic() {
        let x = ty(F32, &["batch", "seq", "64"]);
        let a = attrs(&[("start", Attr::Int(1)), ("end", Attr::Int(-1))]);
        let (t, sym) = infer("Shape", &a, &[Some(x.clone())], vec![], 1).unwrap();
        assert_eq!(t[0].to_string(), "i64[1]");
        assert_eq!(format!("{:?}", sym.unwrap()), "[seq]");
        let (_, sym) = infer("Size", &attrs(&[]), &[Some(x)], vec![], 1).unwrap();
        assert_eq!(format!("{:?}", sym.unwrap()), "[batch*seq*64]");
        let s = eval(
            "Shape",
            &attrs(&[("start", Attr::Int(-9))]),
            &[Some(floats(&[2, 3], &[0.; 6]))],
            1,
        )
        .unwrap();
        assert_eq!(s[0].to_i64(), vec![2, 3]);
        let _ = Known::Dims(vec![]);
    }
}
