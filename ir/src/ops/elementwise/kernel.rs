//! The machinery every elementwise op shares: values in one of three kinds (floats as f64,
//! integers as i128, bools), numpy broadcasting, and the drivers that read an op's inputs,
//! broadcast them, apply a scalar kernel and build the output tensor.
//!
//! Integers are held in i128 so that every ONNX integer dtype (u64 included) keeps its value
//! and sign; results are truncated to the output dtype, which is wrapping arithmetic.

use std::cmp::Ordering;

use crate::bail;
use crate::dtype::DType;
use crate::ops::{EvalCtx, InferCtx, OpError, OpResult};
use crate::tensor::{strided_offsets, strides, Data, Tensor};
use crate::types::{broadcast_concrete, broadcast_shapes, ValueType};

/// One [`OpSpec`](crate::ops::OpSpec) from an infer body and an eval body:
/// `op!("Add", |ctx| infer_binary(ctx, Accept::Num, false), |ctx| binary(ctx, add))`.
macro_rules! op {
    ($name:literal, |$i:ident| $infer:expr, |$e:ident| $eval:expr) => {
        $crate::ops::OpSpec::new(
            $name,
            {
                fn infer(
                    $i: &$crate::ops::InferCtx,
                ) -> $crate::ops::OpResult<Vec<$crate::types::ValueType>> {
                    $infer
                }
                infer
            },
            {
                fn eval(
                    $e: &$crate::ops::EvalCtx,
                ) -> $crate::ops::OpResult<Vec<$crate::tensor::Tensor>> {
                    $eval
                }
                eval
            },
        )
    };
}
pub(crate) use op;

/// An op's elements in the kind it computes in.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Vals {
    F(Vec<f64>),
    I(Vec<i128>),
    B(Vec<bool>),
}

impl Vals {
    /// The elements of `t`: floats (fp8 decoded) as f64, integers as i128, bools as bool.
    pub fn of(t: &Tensor) -> Vals {
        match t.data() {
            Data::Bool(v) => Vals::B(v.clone()),
            Data::U64(v) => Vals::I(v.iter().map(|&x| i128::from(x)).collect()),
            _ if t.dtype().is_float() => Vals::F(t.to_f64()),
            _ => Vals::I(t.to_i64().into_iter().map(i128::from).collect()),
        }
    }

    /// A tensor of `dtype`: floats round to nearest (fp8 saturating), integers wrap.
    pub fn into_tensor(self, dtype: DType, shape: Vec<usize>) -> OpResult<Tensor> {
        Ok(match self {
            Vals::F(v) => Tensor::from_f64(dtype, shape, &v),
            // Truncating to i64 keeps the low 64 bits, which is all any dtype holds.
            Vals::I(v) => Tensor::from_i64(
                dtype,
                shape,
                &v.iter().map(|&x| x as i64).collect::<Vec<_>>(),
            ),
            Vals::B(v) => Tensor::from_bools(shape, v)
                .map_err(|e| OpError::new(e.to_string()))?
                .cast(dtype),
        })
    }

    /// The elements broadcast from shape `from` to shape `to`.
    pub fn expand(self, from: &[usize], to: &[usize]) -> Vals {
        if from == to {
            return self;
        }
        let map = broadcast_map(from, to);
        fn pick<T: Copy>(v: &[T], map: &[usize]) -> Vec<T> {
            map.iter().map(|&i| v[i]).collect()
        }
        match self {
            Vals::F(v) => Vals::F(pick(&v, &map)),
            Vals::I(v) => Vals::I(pick(&v, &map)),
            Vals::B(v) => Vals::B(pick(&v, &map)),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Vals::F(_) => "float",
            Vals::I(_) => "integer",
            Vals::B(_) => "bool",
        }
    }
}

/// For every element of `out` (row-major), the flat index of the element of a tensor of
/// shape `input` that numpy broadcasting reads there. `input` must broadcast to `out`.
pub(crate) fn broadcast_map(input: &[usize], out: &[usize]) -> Vec<usize> {
    let rank = out.len();
    let pad = rank - input.len();
    let in_strides = strides(input);
    // The input's stride on each output axis; 0 where the input is broadcast.
    let mut st = vec![0usize; rank];
    for (i, &d) in input.iter().enumerate() {
        if d != 1 {
            st[pad + i] = in_strides[i];
        }
    }
    strided_offsets(out, &st)
}

/// The numpy broadcast of concrete shapes, or an error naming them.
pub(crate) fn broadcast_of(shapes: &[&[usize]]) -> OpResult<Vec<usize>> {
    broadcast_concrete(shapes)
        .ok_or_else(|| OpError::new(format!("shapes {shapes:?} do not broadcast together")))
}

/// Which dtypes an op takes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Accept {
    Any,
    /// Floats and integers.
    Num,
    Float,
    Int,
    Bool,
}

pub(crate) fn check_dtype(dtype: DType, accept: Accept) -> OpResult<()> {
    let ok = match accept {
        Accept::Any => true,
        Accept::Num => dtype != DType::Bool,
        Accept::Float => dtype.is_float(),
        Accept::Int => dtype.is_int(),
        Accept::Bool => dtype == DType::Bool,
    };
    if !ok {
        let want = match accept {
            Accept::Any => "any",
            Accept::Num => "a numeric",
            Accept::Float => "a float",
            Accept::Int => "an integer",
            Accept::Bool => "a bool",
        };
        bail!("expects {want} dtype, got {dtype}");
    }
    Ok(())
}

/// Type of an op on one input: the input's shape, with dtype `out` (default: the input's).
pub(crate) fn infer_unary(
    ctx: &InferCtx,
    accept: Accept,
    out: Option<DType>,
) -> OpResult<Vec<ValueType>> {
    let x = ctx.input(0)?;
    check_dtype(x.dtype, accept)?;
    Ok(vec![ValueType::new(
        out.unwrap_or(x.dtype),
        x.shape.clone(),
    )])
}

/// Type of an op broadcasting inputs `inputs` (all present, one dtype): their broadcast
/// shape, with dtype bool if `to_bool`, else theirs.
pub(crate) fn infer_broadcast(
    ctx: &InferCtx,
    inputs: std::ops::Range<usize>,
    accept: Accept,
    to_bool: bool,
) -> OpResult<Vec<ValueType>> {
    let mut types = Vec::new();
    for i in inputs {
        types.push(ctx.input(i)?);
    }
    let Some(first) = types.first() else {
        bail!("needs at least one input");
    };
    let dtype = first.dtype;
    check_dtype(dtype, accept)?;
    if let Some(t) = types.iter().find(|t| t.dtype != dtype) {
        bail!("inputs must share one dtype, got {dtype} and {}", t.dtype);
    }
    let shapes: Vec<&[crate::dim::Dim]> = types.iter().map(|t| t.shape.as_slice()).collect();
    let Some(shape) = broadcast_shapes(&shapes) else {
        let list: Vec<String> = types.iter().map(|t| t.to_string()).collect();
        bail!("input shapes do not broadcast: {}", list.join(", "));
    };
    let dtype = if to_bool { DType::Bool } else { dtype };
    Ok(vec![ValueType::new(dtype, shape)])
}

/// Type of a binary op on inputs 0 and 1.
pub(crate) fn infer_binary(
    ctx: &InferCtx,
    accept: Accept,
    to_bool: bool,
) -> OpResult<Vec<ValueType>> {
    if ctx.inputs.len() > 2 {
        bail!("takes 2 inputs, got {}", ctx.inputs.len());
    }
    infer_broadcast(ctx, 0..2, accept, to_bool)
}

/// Type of a variadic op (Sum, Max, ...): every input broadcast.
pub(crate) fn infer_variadic(ctx: &InferCtx, accept: Accept) -> OpResult<Vec<ValueType>> {
    infer_broadcast(ctx, 0..ctx.inputs.len(), accept, false)
}

/// The output tensor of a kernel's result: bool results are bool, the rest have `dtype`.
fn output(r: Vals, dtype: DType, shape: Vec<usize>) -> OpResult<Vec<Tensor>> {
    let dtype = if matches!(r, Vals::B(_)) {
        DType::Bool
    } else {
        dtype
    };
    Ok(vec![r.into_tensor(dtype, shape)?])
}

/// Runs `f` on input 0's elements; the output has its shape and dtype (bool if `f` gives
/// bools).
pub(crate) fn unary(
    ctx: &EvalCtx,
    f: impl FnOnce(Vals) -> OpResult<Vals>,
) -> OpResult<Vec<Tensor>> {
    let x = ctx.input(0)?;
    output(f(Vals::of(x))?, x.dtype(), x.shape().to_vec())
}

/// Inputs `inputs` broadcast to their common shape, which is returned too.
pub(crate) fn broadcast_inputs(
    ctx: &EvalCtx,
    inputs: std::ops::Range<usize>,
) -> OpResult<(Vec<Vals>, Vec<usize>)> {
    let mut ts = Vec::new();
    for i in inputs {
        ts.push(ctx.input(i)?);
    }
    let shapes: Vec<&[usize]> = ts.iter().map(|t| t.shape()).collect();
    let shape = broadcast_of(&shapes)?;
    let vals = ts
        .iter()
        .map(|t| Vals::of(t).expand(t.shape(), &shape))
        .collect();
    Ok((vals, shape))
}

/// Runs `f` on inputs 0 and 1 broadcast together; the output has input 0's dtype (bool if
/// `f` gives bools).
pub(crate) fn binary(
    ctx: &EvalCtx,
    f: impl FnOnce(Vals, Vals) -> OpResult<Vals>,
) -> OpResult<Vec<Tensor>> {
    let dtype = ctx.input(0)?.dtype();
    let (vals, shape) = broadcast_inputs(ctx, 0..2)?;
    let [a, b]: [Vals; 2] = vals
        .try_into()
        .map_err(|_| OpError::new("expects 2 inputs"))?;
    output(f(a, b)?, dtype, shape)
}

/// Folds `f` over every input, broadcast together; then `finish` with the input count.
pub(crate) fn variadic(
    ctx: &EvalCtx,
    f: impl Fn(Vals, Vals) -> OpResult<Vals>,
    finish: impl FnOnce(Vals, usize) -> OpResult<Vals>,
) -> OpResult<Vec<Tensor>> {
    let dtype = ctx.input(0)?.dtype();
    let (vals, shape) = broadcast_inputs(ctx, 0..ctx.inputs.len())?;
    let n = vals.len();
    let mut it = vals.into_iter();
    let mut acc = it.next().ok_or_else(|| OpError::new("needs an input"))?;
    for v in it {
        acc = f(acc, v)?;
    }
    output(finish(acc, n)?, dtype, shape)
}

fn zip<A: Copy, B: Copy, R>(a: &[A], b: &[B], f: impl Fn(A, B) -> R) -> Vec<R> {
    a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
}

fn try_zip<A: Copy, B: Copy, R>(
    a: &[A],
    b: &[B],
    f: impl Fn(A, B) -> OpResult<R>,
) -> OpResult<Vec<R>> {
    a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
}

fn mismatch(a: &Vals, b: &Vals, what: &str) -> OpError {
    OpError::new(format!(
        "expects {what} inputs, got {} and {}",
        a.kind(),
        b.kind()
    ))
}

/// Arithmetic: floats by `f`, integers by `i` (which wraps; it may fail, e.g. on /0).
pub(crate) fn arith(
    a: Vals,
    b: Vals,
    f: impl Fn(f64, f64) -> f64,
    i: impl Fn(i128, i128) -> OpResult<i128>,
) -> OpResult<Vals> {
    match (&a, &b) {
        (Vals::F(x), Vals::F(y)) => Ok(Vals::F(zip(x, y, f))),
        (Vals::I(x), Vals::I(y)) => Ok(Vals::I(try_zip(x, y, i)?)),
        _ => Err(mismatch(&a, &b, "two numeric")),
    }
}

/// Comparison of two values of one kind; NaN compares unordered (`f` gets `None`).
pub(crate) fn compare(a: Vals, b: Vals, f: impl Fn(Option<Ordering>) -> bool) -> OpResult<Vals> {
    Ok(Vals::B(match (&a, &b) {
        (Vals::F(x), Vals::F(y)) => zip(x, y, |x, y| f(x.partial_cmp(&y))),
        (Vals::I(x), Vals::I(y)) => zip(x, y, |x, y| f(Some(x.cmp(&y)))),
        (Vals::B(x), Vals::B(y)) => zip(x, y, |x, y| f(Some(x.cmp(&y)))),
        _ => return Err(mismatch(&a, &b, "same-kind")),
    }))
}

/// Logic on bools.
pub(crate) fn logic(a: Vals, b: Vals, f: impl Fn(bool, bool) -> bool) -> OpResult<Vals> {
    match (&a, &b) {
        (Vals::B(x), Vals::B(y)) => Ok(Vals::B(zip(x, y, f))),
        _ => Err(mismatch(&a, &b, "bool")),
    }
}

/// Bit operations on integers.
pub(crate) fn bits(a: Vals, b: Vals, f: impl Fn(i128, i128) -> i128) -> OpResult<Vals> {
    match (&a, &b) {
        (Vals::I(x), Vals::I(y)) => Ok(Vals::I(zip(x, y, f))),
        _ => Err(mismatch(&a, &b, "integer")),
    }
}

/// Numeric maximum/minimum (`max` chooses the larger); NaN propagates as in numpy.
pub(crate) fn extremum(a: Vals, b: Vals, max: bool) -> OpResult<Vals> {
    let pick = |o: Ordering| (o == Ordering::Less) == max;
    arith(
        a,
        b,
        |x, y| {
            if x.is_nan() || y.is_nan() {
                f64::NAN
            } else if pick(x.total_cmp(&y)) {
                y
            } else {
                x
            }
        },
        |x, y| Ok(if pick(x.cmp(&y)) { y } else { x }),
    )
}

/// Maps floats by `f`, integers by `i`.
pub(crate) fn map_num(v: Vals, f: impl Fn(f64) -> f64, i: impl Fn(i128) -> i128) -> OpResult<Vals> {
    match v {
        Vals::F(x) => Ok(Vals::F(x.into_iter().map(f).collect())),
        Vals::I(x) => Ok(Vals::I(x.into_iter().map(i).collect())),
        Vals::B(_) => bail!("expects a numeric input, got bool"),
    }
}

/// Maps floats by `f`.
pub(crate) fn map_float(v: Vals, f: impl Fn(f64) -> f64) -> OpResult<Vals> {
    match v {
        Vals::F(x) => Ok(Vals::F(x.into_iter().map(f).collect())),
        other => bail!("expects a float input, got {}", other.kind()),
    }
}

/// Maps integers by `f`.
pub(crate) fn map_int(v: Vals, f: impl Fn(i128) -> i128) -> OpResult<Vals> {
    match v {
        Vals::I(x) => Ok(Vals::I(x.into_iter().map(f).collect())),
        other => bail!("expects an integer input, got {}", other.kind()),
    }
}

/// Maps bools by `f`.
pub(crate) fn map_bool(v: Vals, f: impl Fn(bool) -> bool) -> OpResult<Vals> {
    match v {
        Vals::B(x) => Ok(Vals::B(x.into_iter().map(f).collect())),
        other => bail!("expects a bool input, got {}", other.kind()),
    }
}

/// Tests floats by `f`, giving bools.
pub(crate) fn test_float(v: Vals, f: impl Fn(f64) -> bool) -> OpResult<Vals> {
    match v {
        Vals::F(x) => Ok(Vals::B(x.into_iter().map(f).collect())),
        other => bail!("expects a float input, got {}", other.kind()),
    }
}

/// Maps numbers through f64 by `f`: integers convert to f64 and back, truncating toward zero
/// (as numpy's `astype` does).
pub(crate) fn map_via_f64(v: Vals, f: impl Fn(f64) -> f64) -> OpResult<Vals> {
    match v {
        Vals::I(x) => Ok(Vals::I(
            x.into_iter().map(|x| f64_to_int(f(x as f64))).collect(),
        )),
        v => map_float(v, f),
    }
}

/// A float truncated toward zero to an integer (NaN as 0, beyond range saturating).
pub(crate) fn f64_to_int(x: f64) -> i128 {
    if x.is_nan() {
        0
    } else {
        x as i128
    }
}

/// Tests of the machinery, and a helper for tests of the ops: runs an op through its spec
/// (infer, then eval), checking that eval's output matches infer's type.
#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)]
pub(crate) mod testing {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;
    use crate::attr::{Attr, Attrs};
    use crate::graph::WeightStore;
    use crate::ops::{lookup, Known};

    pub fn attrs(list: &[(&str, Attr)]) -> Attrs {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    /// Runs op `name` on `inputs` (None: absent) and returns its one output.
    pub fn run_opt(name: &str, attrs: &Attrs, inputs: &[Option<Tensor>]) -> OpResult<Tensor> {
        let spec = lookup(name).unwrap_or_else(|| panic!("no op {name}"));
        let types: Vec<Option<ValueType>> = inputs
            .iter()
            .map(|t| t.as_ref().map(|t| ValueType::of(t.dtype(), t.shape())))
            .collect();
        let weights = WeightStore::default();
        let fresh = || crate::dim::Dim::sym("fresh");
        let ictx = InferCtx {
            attrs,
            inputs: types.iter().map(|t| t.as_ref()).collect(),
            known: inputs
                .iter()
                .map(|t| t.clone().map(|t| Known::Tensor(Arc::new(t))))
                .collect(),
            num_outputs: 1,
            weights: &weights,
            previous: None,
            fresh: &fresh,
        };
        let out_types = (spec.infer)(&ictx)?;
        let bindings = HashMap::new();
        let ectx = EvalCtx {
            attrs,
            inputs: inputs.iter().map(|t| t.clone().map(Arc::new)).collect(),
            num_outputs: 1,
            output_types: &out_types,
            weights: &weights,
            bindings: &bindings,
        };
        let out = (spec.eval)(&ectx)?;
        assert_eq!(out.len(), 1);
        let t = out.into_iter().next().unwrap();
        assert_eq!(
            ValueType::of(t.dtype(), t.shape()),
            out_types[0],
            "{name}: eval disagrees with infer"
        );
        Ok(t)
    }

    pub fn run(name: &str, attrs: &Attrs, inputs: &[Tensor]) -> OpResult<Tensor> {
        let inputs: Vec<Option<Tensor>> = inputs.iter().cloned().map(Some).collect();
        run_opt(name, attrs, &inputs)
    }

    pub fn f32s(shape: &[usize], v: &[f32]) -> Tensor {
        Tensor::from_f32s(shape.to_vec(), v.to_vec()).unwrap()
    }

    pub fn ints(dtype: DType, shape: &[usize], v: &[i64]) -> Tensor {
        Tensor::from_i64(dtype, shape.to_vec(), v)
    }

    pub fn bools(shape: &[usize], v: &[bool]) -> Tensor {
        Tensor::from_bools(shape.to_vec(), v.to_vec()).unwrap()
    }

    /// Asserts `t` holds `want` (as f64) to within `tol`, NaNs matching.
    pub fn assert_close(t: &Tensor, want: &[f64], tol: f64) {
        let got = t.to_f64();
        assert_eq!(got.len(), want.len(), "got {got:?}, want {want:?}");
        for (g, w) in got.iter().zip(want) {
            let ok = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= tol;
            assert!(ok, "got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn broadcast_map_follows_numpy() {
        // [3,1] against [2,1,4] -> [2,3,4]
        let m = broadcast_map(&[3, 1], &[2, 3, 4]);
        let want: Vec<usize> = (0..24).map(|i| (i / 4) % 3).collect();
        assert_eq!(m, want);
        assert_eq!(broadcast_map(&[], &[2, 2]), vec![0; 4]);
        assert_eq!(broadcast_map(&[1, 3], &[2, 3]), vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(broadcast_map(&[2, 1], &[2, 3]), vec![0, 0, 0, 1, 1, 1]);
        assert_eq!(broadcast_map(&[2, 0], &[2, 0]), Vec::<usize>::new());
    }

    #[test]
    fn vals_keep_u64_and_wrap_on_output() {
        let t = Tensor::new(vec![2], Data::U64(vec![u64::MAX, 3])).unwrap();
        let v = Vals::of(&t);
        assert_eq!(v, Vals::I(vec![u64::MAX as i128, 3]));
        let back = Vals::I(vec![300, -1])
            .into_tensor(DType::U8, vec![2])
            .unwrap();
        assert_eq!(back.data(), &Data::U8(vec![44, 255]));
    }
}
