//! Symbolic evaluation of the elementwise ops that shape computations go through
//! (`Shape -> Gather -> Mul -> Concat -> Reshape`): the content of a rank-0/1 integer output
//! from the symbolic contents of its inputs, broadcasting scalars against vectors.

use crate::attr::AttrsExt;
use crate::dim::Dim;
use crate::ops::{InferCtx, Known};

/// The symbolic contents of inputs `inputs` (all present, rank ≤ 1, known).
fn args(ctx: &InferCtx, inputs: std::ops::Range<usize>) -> Option<Vec<Vec<Dim>>> {
    inputs
        .map(|i| {
            let t = ctx.opt_input(i)?;
            if t.rank() > 1 {
                return None;
            }
            ctx.dims_input(i)
        })
        .collect()
}

/// Applies `f` elementwise, broadcasting length-1 arguments.
fn zip(args: &[Vec<Dim>], f: impl Fn(&[&Dim]) -> Option<Dim>) -> Option<Vec<Dim>> {
    let n = if args.iter().any(|a| a.is_empty()) {
        0
    } else {
        args.iter().map(|a| a.len()).max()?
    };
    if args.iter().any(|a| a.len() != n && a.len() != 1) {
        return None;
    }
    (0..n)
        .map(|k| {
            let row: Vec<&Dim> = args
                .iter()
                .map(|a| if a.len() == 1 { &a[0] } else { &a[k] })
                .collect();
            f(&row)
        })
        .collect()
}

/// An integer op over every input: `f` on each row of elements.
fn int_op(ctx: &InferCtx, f: impl Fn(&[&Dim]) -> Option<Dim>) -> Option<Vec<Dim>> {
    if !ctx.input(0).ok()?.dtype.is_int() {
        return None;
    }
    zip(&args(ctx, 0..ctx.inputs.len())?, f)
}

pub fn add(ctx: &InferCtx) -> Option<Vec<Dim>> {
    int_op(ctx, |r| Some(r[0].add(r[1])))
}

pub fn sub(ctx: &InferCtx) -> Option<Vec<Dim>> {
    int_op(ctx, |r| Some(r[0].sub(r[1])))
}

pub fn mul(ctx: &InferCtx) -> Option<Vec<Dim>> {
    int_op(ctx, |r| Some(r[0].mul(r[1])))
}

/// Constants divide exactly as ONNX does (truncating). Otherwise both sides are taken as
/// shape values (non-negative, the divisor positive), for which truncation is floor division.
pub fn div(ctx: &InferCtx) -> Option<Vec<Dim>> {
    int_op(ctx, |r| match (r[0].as_const(), r[1].as_const()) {
        (_, Some(0)) => None,
        (Some(a), Some(b)) => Some(Dim::from(a.wrapping_div(b))),
        (_, Some(b)) if b < 0 => None,
        _ => Some(r[0].floor_div(r[1])),
    })
}

/// Like [`div`]: exact on constants; on shape values both `fmod` conventions agree.
pub fn modulo(ctx: &InferCtx) -> Option<Vec<Dim>> {
    let fmod = ctx.attrs.int_or("fmod", 0).ok()? != 0;
    int_op(ctx, |r| match (r[0].as_const(), r[1].as_const()) {
        (_, Some(0)) => None,
        (Some(a), Some(b)) => super::binary::int_mod(a.into(), b.into(), fmod)
            .ok()
            .map(|m| Dim::from(m as i64)),
        (_, Some(b)) if b < 0 => None,
        _ => Some(r[0].modulo(r[1])),
    })
}

pub fn neg(ctx: &InferCtx) -> Option<Vec<Dim>> {
    int_op(ctx, |r| Some(r[0].neg()))
}

pub fn abs(ctx: &InferCtx) -> Option<Vec<Dim>> {
    int_op(ctx, |r| Some(Dim::from(r[0].as_const()?.wrapping_abs())))
}

pub fn sum(ctx: &InferCtx) -> Option<Vec<Dim>> {
    int_op(ctx, |r| fold_consts(r, Dim::add))
}

/// Folds `f` over a row, constants first (so `max(seq, 1, 0)` is `max(1, seq)`).
fn fold_consts(r: &[&Dim], f: impl Fn(&Dim, &Dim) -> Dim) -> Option<Dim> {
    let (consts, rest): (Vec<&Dim>, Vec<&Dim>) = r.iter().partition(|d| d.is_const());
    consts
        .into_iter()
        .chain(rest)
        .map(|d| (*d).clone())
        .reduce(|a, b| f(&a, &b))
}

pub fn max(ctx: &InferCtx) -> Option<Vec<Dim>> {
    int_op(ctx, |r| fold_consts(r, Dim::maximum))
}

pub fn min(ctx: &InferCtx) -> Option<Vec<Dim>> {
    int_op(ctx, |r| fold_consts(r, Dim::minimum))
}

/// Casts between integer types (and from bool) keep the content.
fn cast_to(ctx: &InferCtx, to: crate::dtype::DType) -> Option<Vec<Dim>> {
    let from = ctx.input(0).ok()?.dtype;
    if !to.is_int() || !(from.is_int() || from == crate::dtype::DType::Bool) {
        return None;
    }
    let a = args(ctx, 0..1)?;
    a.into_iter().next()
}

pub fn cast(ctx: &InferCtx) -> Option<Vec<Dim>> {
    cast_to(ctx, ctx.attrs.dtype("to").ok()??)
}

pub fn castlike(ctx: &InferCtx) -> Option<Vec<Dim>> {
    cast_to(ctx, ctx.input(1).ok()?.dtype)
}

/// Equal as 0/1: equal expressions are equal; ones differing by a non-zero constant are not.
pub fn equal(ctx: &InferCtx) -> Option<Vec<Dim>> {
    int_op(ctx, |r| {
        if r[0] == r[1] {
            Some(Dim::from(1i64))
        } else {
            r[0].sub(r[1]).as_const().map(|_| Dim::from(0i64))
        }
    })
}

/// Where with a known condition selecting between known integers.
pub fn where_(ctx: &InferCtx) -> Option<Vec<Dim>> {
    let c = ctx.input(0).ok()?;
    if c.rank() > 1 || !ctx.input(1).ok()?.dtype.is_int() {
        return None;
    }
    let cond: Vec<Dim> = match ctx.known.first()?.as_ref()? {
        Known::Tensor(t) => t
            .to_bool()
            .into_iter()
            .map(|b| Dim::from(i64::from(b)))
            .collect(),
        Known::Dims(d) => d.clone(),
    };
    let mut all = vec![cond];
    all.extend(args(ctx, 1..3)?);
    zip(&all, |r| {
        Some(if r[0].as_const()? != 0 { r[1] } else { r[2] }.clone())
    })
}

#[cfg(test)]
#[allow(clippy::cloned_ref_to_slice_refs)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::attr::{Attr, Attrs};
    use crate::dtype::DType;
    use crate::graph::WeightStore;
    use crate::ops::lookup;
    use crate::tensor::Tensor;
    use crate::types::ValueType;

    /// Runs op `name`'s sym on inputs given as (type, known content).
    fn sym(name: &str, attrs: &Attrs, inputs: Vec<(ValueType, Option<Known>)>) -> Option<Vec<Dim>> {
        let weights = WeightStore::default();
        let fresh = || Dim::sym("fresh");
        let ctx = InferCtx {
            attrs,
            inputs: inputs.iter().map(|(t, _)| Some(t)).collect(),
            known: inputs.iter().map(|(_, k)| k.clone()).collect(),
            num_outputs: 1,
            weights: &weights,
            previous: None,
            fresh: &fresh,
        };
        (lookup(name)?.sym?)(&ctx)
    }

    fn dims(v: &[Dim]) -> (ValueType, Option<Known>) {
        (
            ValueType::of(DType::I64, &[v.len()]),
            Some(Known::Dims(v.to_vec())),
        )
    }

    fn scalar(c: i64) -> (ValueType, Option<Known>) {
        (
            ValueType::of(DType::I64, &[]),
            Some(Known::Tensor(Arc::new(Tensor::scalar_i64(c)))),
        )
    }

    #[test]
    fn shape_arithmetic_broadcasts_scalars() {
        let seq = Dim::sym("seq");
        let batch = Dim::sym("batch");
        let none = Attrs::new();
        let v = dims(&[batch.clone(), seq.clone(), Dim::from(64i64)]);
        assert_eq!(
            sym("Mul", &none, vec![v.clone(), scalar(2)]),
            Some(vec![
                batch.mul(&Dim::from(2i64)),
                seq.mul(&Dim::from(2i64)),
                Dim::from(128i64)
            ])
        );
        assert_eq!(
            sym("Div", &none, vec![v.clone(), scalar(2)]),
            Some(vec![
                batch.floor_div(&Dim::from(2i64)),
                seq.floor_div(&Dim::from(2i64)),
                Dim::from(32i64)
            ])
        );
        assert_eq!(
            sym("Div", &none, vec![scalar(-7), scalar(2)]),
            Some(vec![Dim::from(-3i64)])
        );
        assert_eq!(sym("Div", &none, vec![v.clone(), scalar(0)]), None);
        assert_eq!(sym("Div", &none, vec![v.clone(), scalar(-2)]), None);
        assert_eq!(
            sym(
                "Div",
                &none,
                vec![dims(&[seq.clone()]), dims(&[seq.clone()])]
            ),
            Some(vec![Dim::from(1i64)])
        );
        assert_eq!(
            sym("Mod", &none, vec![scalar(-7), scalar(2)]),
            Some(vec![Dim::from(1i64)])
        );
        assert_eq!(
            sym(
                "Add",
                &none,
                vec![dims(&[seq.clone()]), dims(&[batch.clone()])]
            ),
            Some(vec![seq.add(&batch)])
        );
        assert_eq!(
            sym(
                "Sub",
                &none,
                vec![dims(&[seq.clone(), seq.clone()]), dims(&[seq.clone()])]
            ),
            Some(vec![Dim::from(0i64), Dim::from(0i64)])
        );
        assert_eq!(
            sym("Neg", &none, vec![dims(&[seq.clone()])]),
            Some(vec![seq.neg()])
        );
        assert_eq!(
            sym("Abs", &none, vec![scalar(-4)]),
            Some(vec![Dim::from(4i64)])
        );
        assert_eq!(sym("Abs", &none, vec![dims(&[seq.clone()])]), None);
        assert_eq!(
            sym(
                "Max",
                &none,
                vec![dims(&[seq.clone()]), scalar(1), scalar(0)]
            ),
            Some(vec![seq.maximum(&Dim::from(1i64))])
        );
        // Lengths that do not broadcast, or unknown inputs, give nothing.
        assert_eq!(
            sym(
                "Add",
                &none,
                vec![
                    dims(&[seq.clone(), seq.clone()]),
                    dims(&vec![seq.clone(); 3])
                ]
            ),
            None
        );
        assert_eq!(
            sym(
                "Add",
                &none,
                vec![
                    dims(&[seq.clone()]),
                    (ValueType::of(DType::I64, &[1]), None)
                ]
            ),
            None
        );
    }

    #[test]
    fn casts_equal_and_where() {
        let seq = Dim::sym("seq");
        let to = |d| Attrs::from([("to".to_string(), Attr::DType(d))]);
        let v = dims(&[seq.clone(), Dim::from(-1i64)]);
        assert_eq!(
            sym("Cast", &to(DType::I32), vec![v.clone()]),
            Some(vec![seq.clone(), Dim::from(-1i64)])
        );
        assert_eq!(sym("Cast", &to(DType::F32), vec![v.clone()]), None);
        let none = Attrs::new();
        let eq = sym("Equal", &none, vec![v.clone(), scalar(-1)]);
        // seq vs -1 is not decidable; -1 vs -1 is.
        assert_eq!(eq, None);
        let w = dims(&[seq.clone(), seq.add(&Dim::from(1i64))]);
        assert_eq!(
            sym("Equal", &none, vec![w, dims(&[seq.clone()])]),
            Some(vec![Dim::from(1i64), Dim::from(0i64)])
        );
        let cond = (
            ValueType::of(DType::Bool, &[2]),
            Some(Known::Tensor(Arc::new(
                Tensor::from_bools(vec![2], vec![true, false]).unwrap(),
            ))),
        );
        assert_eq!(
            sym(
                "Where",
                &none,
                vec![cond, scalar(1), dims(&[seq.clone(), Dim::from(8i64)])]
            ),
            Some(vec![Dim::from(1i64), Dim::from(8i64)])
        );
    }
}
