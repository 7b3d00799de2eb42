//! Symbolic evaluation of the elementwise ops that shape computations go through
//! (`Shape -> Gather -> Mul -> Concat -> Reshape`): the content of a rank-0/1 integer output
//! from the symbolic contents of its inputs, broadcasting scalars against vectors.

use crate::attr::AttrsExt;
use crate::dim::{Atom, Dim, DimOp};
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

/// Equal as 0/1: equal expressions are equal; ones differing by a non-zero constant are not,
/// nor are ones one of which provably exceeds the other. Symbols stand for sizes, so
/// `Equal(dims<[1, seq, 16]>, -1)` (TorchScript's `expand`, which replaces -1 entries of
/// the target shape) is all false, while `Equal(seq, 1)` and `Equal(seq, 0)` are unknown.
pub fn equal(ctx: &InferCtx) -> Option<Vec<Dim>> {
    int_op(ctx, |r| {
        if r[0] == r[1] {
            return Some(Dim::from(1i64));
        }
        let one = Dim::from(1i64);
        let differ = r[0].sub(r[1]).is_const()
            || at_least_zero(&r[0].sub(r[1]).sub(&one))
            || at_least_zero(&r[1].sub(r[0]).sub(&one));
        differ.then(|| Dim::from(0i64))
    })
}

/// True when `d` is non-negative for every value of its symbols, each a size (>= 0): a
/// non-negative constant term plus positive multiples of products of non-negative atoms.
fn at_least_zero(d: &Dim) -> bool {
    d.terms().iter().all(|(mono, c)| {
        if mono.is_empty() {
            *c >= 0
        } else {
            *c > 0 && mono.iter().all(atom_at_least_zero)
        }
    })
}

/// Whether an atom of a [`Dim`] is non-negative for every value of its symbols.
fn atom_at_least_zero(a: &Atom) -> bool {
    let positive_const = |d: &Dim| d.as_const().is_some_and(|k| k > 0);
    match a {
        Atom::Sym(_) => true,
        Atom::Op(DimOp::FloorDiv, x, k) => at_least_zero(x) && positive_const(k),
        // Python's `%` has the divisor's sign.
        Atom::Op(DimOp::Mod, _, k) => positive_const(k),
        Atom::Op(DimOp::Min, x, y) => at_least_zero(x) && at_least_zero(y),
        Atom::Op(DimOp::Max, x, y) => at_least_zero(x) || at_least_zero(y),
    }
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
        // seq is a size, so never -1.
        assert_eq!(
            sym("Equal", &none, vec![v.clone(), scalar(-1)]),
            Some(vec![Dim::from(0i64), Dim::from(1i64)])
        );
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

    /// Equal of a shape value against a number it can never be, and against ones it can.
    #[test]
    fn equal_decides_sizes_against_values_they_cannot_take() {
        let none = Attrs::new();
        let seq = Dim::sym("seq");
        let past = Dim::sym("past");
        let d = |text: &str| Dim::parse(text).unwrap();
        let equal = |a: Dim, b: i64| sym("Equal", &none, vec![dims(&[a]), scalar(b)]);
        let never = Some(vec![Dim::from(0i64)]);
        for a in [
            seq.clone(),
            d("past+seq"),
            d("seq*4"),
            d("floordiv(seq+1, 2)"),
            d("mod(seq, 3)"),
            d("max(seq, -3)"),
            d("min(seq, past*2)"),
            d("past*seq+7"),
        ] {
            assert_eq!(equal(a.clone(), -1), never, "{a} vs -1");
        }
        // Values a size can take stay unknown.
        for (a, b) in [
            (seq.clone(), 0),
            (seq.clone(), 1),
            (seq.clone(), 16),
            (d("seq-1"), -1),
            (d("-seq"), -1),
            (d("past-seq"), -1),
            (d("floordiv(seq, -2)"), -1),
            (d("mod(seq, -3)"), -1),
            (d("min(seq, -3)"), -1),
            (d("seq*4"), 8),
        ] {
            assert_eq!(equal(a.clone(), b), None, "{a} vs {b}");
        }
        // Between symbolic values: one provably exceeding the other, or not.
        let equal_dims =
            |a: &str, b: &Dim| sym("Equal", &none, vec![dims(&[d(a)]), dims(&[b.clone()])]);
        assert_eq!(equal_dims("seq*2+1", &seq), never);
        assert_eq!(equal_dims("past+seq+1", &past), never);
        assert_eq!(equal_dims("past", &d("past+seq+1")), never);
        assert_eq!(equal_dims("past+seq", &past), None);
        assert_eq!(equal_dims("seq*2", &seq), None);
    }

    /// TorchScript's `expand(x, shape)`: `Where(Equal(shape, -1), 1, shape)` is `shape`.
    #[test]
    fn torchscript_expand_shape_folds_to_the_shape() {
        let none = Attrs::new();
        let shape = dims(&[
            Dim::from(1i64),
            Dim::from(-1i64),
            Dim::from(8i64),
            Dim::sym("seq"),
            Dim::from(16i64),
        ]);
        let minus_ones = dims(&vec![Dim::from(-1i64); 5]);
        let ones = dims(&vec![Dim::from(1i64); 5]);
        let eq = sym("Equal", &none, vec![shape.clone(), minus_ones]).unwrap();
        assert_eq!(eq, [0, 1, 0, 0, 0].map(Dim::from_i64).to_vec(),);
        let cond = (ValueType::of(DType::Bool, &[5]), Some(Known::Dims(eq)));
        assert_eq!(
            sym("Where", &none, vec![cond, ones, shape]),
            Some(vec![
                Dim::from(1i64),
                Dim::from(1i64),
                Dim::from(8i64),
                Dim::sym("seq"),
                Dim::from(16i64)
            ])
        );
    }
}
