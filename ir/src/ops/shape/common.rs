//! Helpers shared by the shape and indexing ops: provable comparisons of symbolic dims,
//! exact symbolic division, dtype-generic gathering with fills, and input readers.

use std::collections::HashMap;

use crate::bail;
use crate::dim::{Atom, Dim, DimOp};
use crate::dtype::DType;
use crate::ops::{EvalCtx, InferCtx, OpError, OpResult};
use crate::tensor::{numel, strides, Data, Tensor};
use crate::types::Shape;

/// A constant at least this large stands for "past the end" (`INT32_MAX`, `INT64_MAX`):
/// it is taken to exceed every dim.
pub(crate) const HUGE: i64 = i32::MAX as i64;

/// True when `d` is provably non-negative, taking every symbol to be a size of at least 1
/// (the convention of exporters, whose dynamic dims are never 0) except the fresh symbols of
/// data-dependent dims (`u0`, `u1`, ...: a NonZero count may well be 0), which are >= 0.
pub(crate) fn nonneg(d: &Dim) -> bool {
    nonneg_within(d, 4)
}

/// With each symbol `s` written `1 + s'` (`s' >= 0`), an expression without a subtraction
/// or a negative coefficient (sums, products, floordiv, mod, min and max of such terms) is
/// non-negative, and those are exactly the printed forms without `-`.
fn sign_free(d: &Dim) -> bool {
    let mut syms = Vec::new();
    d.symbols(&mut syms);
    let shifted = d.substitute(&|s| {
        (syms.iter().any(|x| &**x == s) && !is_fresh(s))
            .then(|| Dim::sym(&format!("{s}_")).add(&Dim::from(1i64)))
    });
    !shifted.to_string().contains('-')
}

/// Whether `s` is a fresh symbol of a data-dependent dim (see `infer::FreshSymbols`).
fn is_fresh(s: &str) -> bool {
    s.len() > 1 && s.starts_with('u') && s[1..].bytes().all(|c| c.is_ascii_digit())
}

/// [`nonneg`] with up to `depth` rewrites of one term by a bound: `c*floordiv(x, k)` by
/// `c/k*(x - mod(x, k))`, a subtracted `min(a, b)` by either operand, an added `max(a, b)`
/// by either operand, an added `min` (or subtracted `max`) by both, a subtracted
/// `mod(x, k)` by `k - 1`.
fn nonneg_within(d: &Dim, depth: usize) -> bool {
    if let Some(c) = d.as_const() {
        return c >= 0;
    }
    if sign_free(d) {
        return true;
    }
    if depth == 0 {
        return false;
    }
    let k_of = |k: &Dim| k.as_const().filter(|&k| k > 0);
    for (mono, c) in d.terms() {
        let [atom] = mono.as_slice() else {
            continue;
        };
        let c = *c;
        let Atom::Op(op, a, b) = atom else {
            continue;
        };
        let (a, b) = (&**a, &**b);
        let whole = match op {
            DimOp::FloorDiv => a.floor_div(b),
            DimOp::Mod => a.modulo(b),
            DimOp::Min => a.minimum(b),
            DimOp::Max => a.maximum(b),
        };
        let rest = d.sub(&whole.mul(&Dim::from(c)));
        let with = |r: &Dim| rest.add(&r.mul(&Dim::from(c)));
        let ok = match op {
            DimOp::FloorDiv => match k_of(b) {
                // k*floordiv(x, k) = x - mod(x, k); scale by k first when k does not divide c.
                Some(k) if c < 0 => {
                    let exact = a.sub(&a.modulo(b));
                    let (scaled_rest, m) = if c % k == 0 {
                        (rest.clone(), c / k)
                    } else {
                        (rest.mul(&Dim::from(k)), c)
                    };
                    nonneg_within(&scaled_rest.add(&exact.mul(&Dim::from(m))), depth - 1)
                }
                _ => false,
            },
            DimOp::Mod => match k_of(b) {
                Some(k) if c < 0 => nonneg_within(&with(&Dim::from(k - 1)), depth - 1),
                _ => false,
            },
            DimOp::Min if c < 0 => {
                nonneg_within(&with(a), depth - 1) || nonneg_within(&with(b), depth - 1)
            }
            DimOp::Max if c > 0 => {
                nonneg_within(&with(a), depth - 1) || nonneg_within(&with(b), depth - 1)
            }
            DimOp::Min | DimOp::Max => {
                nonneg_within(&with(a), depth - 1) && nonneg_within(&with(b), depth - 1)
            }
        };
        if ok {
            return true;
        }
    }
    false
}

/// True when `a <= b` provably (symbolic values are taken to lie strictly between
/// `-HUGE` and [`HUGE`]).
pub(crate) fn le(a: &Dim, b: &Dim) -> bool {
    match (a.as_const(), b.as_const()) {
        (Some(x), Some(y)) => return x <= y,
        (Some(x), None) if x <= -HUGE => return true,
        (None, Some(y)) if y >= HUGE => return true,
        _ => {}
    }
    nonneg(&b.sub(a))
}

/// `max(a, b)`, simplified when one side provably dominates.
pub(crate) fn smax(a: &Dim, b: &Dim) -> Dim {
    if le(a, b) {
        b.clone()
    } else if le(b, a) {
        a.clone()
    } else {
        a.maximum(b)
    }
}

/// `min(a, b)`, simplified when one side provably dominates.
pub(crate) fn smin(a: &Dim, b: &Dim) -> Dim {
    if le(a, b) {
        a.clone()
    } else if le(b, a) {
        b.clone()
    } else {
        a.minimum(b)
    }
}

/// The product of dims.
pub(crate) fn prod(dims: &[Dim]) -> Dim {
    dims.iter().fold(Dim::from(1i64), |acc, d| acc.mul(d))
}

/// `g / f` when the division is exact, as a dim `h` with `f * h == g`. Tries setting the
/// divisor's symbols to 1 (`b*seq*8 / b` gives `seq*8`), then constant ratios.
pub(crate) fn ratio(g: &Dim, f: &Dim) -> Option<Dim> {
    if let Some(c) = f.as_const() {
        if c == 0 {
            return None;
        }
        let h = g.floor_div(f);
        return (f.mul(&h) == *g).then_some(h);
    }
    let mut fsyms = Vec::new();
    f.symbols(&mut fsyms);
    let at_one =
        |d: &Dim| d.substitute(&|s| fsyms.iter().any(|x| &**x == s).then(|| Dim::from(1i64)));
    if let Some(c) = at_one(f).as_const() {
        if c != 0 {
            let h = at_one(g).floor_div(&Dim::from(c));
            if f.mul(&h) == *g {
                return Some(h);
            }
        }
    }
    let mut syms = Vec::new();
    g.symbols(&mut syms);
    f.symbols(&mut syms);
    for v in [7i64, 3] {
        let b: HashMap<String, i64> = syms.iter().map(|s| (s.to_string(), v)).collect();
        let (gv, fv) = (g.eval(&b).ok()?, f.eval(&b).ok()?);
        if fv != 0 && gv % fv == 0 {
            let h = Dim::from(gv / fv);
            if f.mul(&h) == *g {
                return Some(h);
            }
        }
    }
    None
}

/// `prod(num) / prod(den)` for a quotient known to be exact (a reshape's `-1`): equal
/// factors cancel first, then [`ratio`] divides, so that `[1, seq, 2048] / [1, seq, 64]`
/// gives `32` and `[batch*seq, 8] / [batch, 4]` gives `seq*2`.
pub(crate) fn div_exact(num: &[Dim], den: &[Dim]) -> Dim {
    let mut num: Vec<Dim> = num.to_vec();
    let mut rest = Vec::new();
    for f in den {
        match num.iter().position(|g| g == f) {
            Some(i) => {
                num.remove(i);
            }
            None => rest.push(f.clone()),
        }
    }
    let (g, f) = (prod(&num), prod(&rest));
    ratio(&g, &f).unwrap_or_else(|| g.floor_div(&f))
}

/// A shape of constant dims.
pub(crate) fn dims_of(shape: &[usize]) -> Shape {
    shape.iter().map(|&d| Dim::from(d)).collect()
}

/// A tensor from parts, as an [`OpError`] on mismatch.
pub(crate) fn make(dtype: DType, shape: Vec<usize>, data: Data) -> OpResult<Tensor> {
    Tensor::with_dtype(dtype, shape, data).map_err(|e| OpError::new(e.to_string()))
}

/// The elements of an integer tensor.
pub(crate) fn ints(t: &Tensor, what: &str) -> OpResult<Vec<i64>> {
    if !t.dtype().is_int() {
        bail!("{what} must be an integer tensor, got {}", t.dtype());
    }
    Ok(t.to_i64())
}

/// Integer input `i` of an eval, if present.
pub(crate) fn opt_ints(ctx: &EvalCtx, i: usize, what: &str) -> OpResult<Option<Vec<i64>>> {
    ctx.opt_input(i).map(|t| ints(t, what)).transpose()
}

/// The single integer of a scalar (or one-element) integer tensor.
pub(crate) fn scalar_int(t: &Tensor, what: &str) -> OpResult<i64> {
    let v = ints(t, what)?;
    if v.len() != 1 {
        bail!("{what} must hold one value, got shape {:?}", t.shape());
    }
    Ok(v[0])
}

/// Input `i`'s content as constant integers, if it is statically known.
pub(crate) fn const_ints(ctx: &InferCtx, i: usize) -> Option<Vec<i64>> {
    ctx.dims_input(i)?.iter().map(|d| d.as_const()).collect()
}

/// The length of the 1-D input `i` (a shape-like tensor), which must be a constant.
pub(crate) fn vec_len(ctx: &InferCtx, i: usize, what: &str) -> OpResult<usize> {
    let t = ctx.input(i)?;
    match t.shape.as_slice() {
        [] => Ok(1),
        [d] => match d.as_const() {
            Some(n) => Ok(n as usize),
            None => bail!("{what} must have a constant length, got {t}"),
        },
        _ => bail!("{what} must be 1-D, got {t}"),
    }
}

/// Checks that input `i` is an integer tensor.
pub(crate) fn want_int(ctx: &InferCtx, i: usize, what: &str) -> OpResult<()> {
    if let Some(t) = ctx.opt_input(i) {
        if !t.dtype.is_int() {
            bail!("{what} must be an integer tensor, got {t}");
        }
    }
    Ok(())
}

/// Normalises `a` against `rank` when negative; out of range is an error.
pub(crate) fn norm_axes(axes: &[i64], rank: usize) -> OpResult<Vec<usize>> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = crate::ops::util::axis(a, rank)?;
        if out.contains(&n) {
            bail!("axis {a} is repeated in {axes:?}");
        }
        out.push(n);
    }
    Ok(out)
}

/// Concatenates data vectors of one storage type.
pub(crate) fn cat_data(parts: &[&Data]) -> OpResult<Data> {
    macro_rules! cat {
        ($($v:ident),*) => {
            match parts.first() {
                None => bail!("nothing to concatenate"),
                $(Some(Data::$v(_)) => {
                    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
                    for p in parts {
                        match p {
                            Data::$v(x) => out.extend_from_slice(x),
                            _ => bail!("cannot concatenate tensors of different element types"),
                        }
                    }
                    Data::$v(out)
                })*
            }
        };
    }
    Ok(cat!(
        F32, F64, F16, BF16, F8, I8, I16, I32, I64, U8, U16, U32, U64, Bool
    ))
}

/// For each output axis, the flat-index contribution of each output coordinate (`None` for
/// a fill). Combines them into flat source indices of the whole output, row-major.
pub(crate) fn index_map(maps: &[Vec<Option<usize>>]) -> Vec<Option<usize>> {
    let mut acc: Vec<Option<usize>> = vec![Some(0)];
    for m in maps {
        let mut next = Vec::with_capacity(acc.len() * m.len());
        for a in &acc {
            for b in m {
                next.push(match (a, b) {
                    (Some(a), Some(b)) => Some(a + b),
                    _ => None,
                });
            }
        }
        acc = next;
    }
    acc
}

/// The elements of `t` at flat `idx`, `None` taking `fill` (cast to `t`'s dtype; zero when
/// absent), shaped `shape`.
pub(crate) fn take_fill(
    t: &Tensor,
    idx: &[Option<usize>],
    shape: Vec<usize>,
    fill: Option<&Tensor>,
) -> OpResult<Tensor> {
    if idx.iter().all(|i| i.is_some()) {
        let flat: Vec<usize> = idx.iter().map(|i| i.unwrap_or(0)).collect();
        return t
            .take(&flat, shape)
            .map_err(|e| OpError::new(e.to_string()));
    }
    let fill = match fill {
        Some(f) => {
            if f.is_empty() {
                bail!("the fill value is empty");
            }
            f.cast(t.dtype())
                .take(&[0], vec![1])
                .map_err(|e| OpError::new(e.to_string()))?
        }
        None => Tensor::zeros(t.dtype(), vec![1]),
    };
    let n = t.len();
    let data = cat_data(&[t.data(), fill.data()])?;
    let flat: Vec<usize> = idx.iter().map(|i| i.unwrap_or(n)).collect();
    make(t.dtype(), shape, data.take(&flat))
}

/// `t` with its axes permuted (`out axis k = in axis perm[k]`).
pub(crate) fn transpose(t: &Tensor, perm: &[usize]) -> OpResult<Tensor> {
    let st = strides(t.shape());
    let shape: Vec<usize> = perm.iter().map(|&p| t.shape()[p]).collect();
    let maps: Vec<Vec<Option<usize>>> = perm
        .iter()
        .map(|&p| (0..t.shape()[p]).map(|i| Some(i * st[p])).collect())
        .collect();
    take_fill(t, &index_map(&maps), shape, None)
}

/// Elements `start, start+step, ...` (`len` of them) along each axis.
pub(crate) fn strided(
    t: &Tensor,
    starts: &[i64],
    steps: &[i64],
    lens: &[usize],
) -> OpResult<Tensor> {
    let st = strides(t.shape());
    let maps: Vec<Vec<Option<usize>>> = (0..t.rank())
        .map(|a| {
            (0..lens[a])
                .map(|i| Some((starts[a] + i as i64 * steps[a]) as usize * st[a]))
                .collect()
        })
        .collect();
    take_fill(t, &index_map(&maps), lens.to_vec(), None)
}

/// Number of elements of a concrete shape (re-exported for the op files).
pub(crate) fn count(shape: &[usize]) -> usize {
    numel(shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provable_comparisons() {
        let seq = Dim::sym("seq");
        let one = Dim::from(1i64);
        assert!(le(&Dim::from(0i64), &seq));
        assert!(le(&seq, &seq.add(&one)));
        assert!(le(&one, &seq));
        assert!(!le(&Dim::from(2i64), &seq));
        assert!(le(&Dim::from(0i64), &seq.sub(&one)));
        let four = Dim::from(4i64);
        let down = seq.floor_div(&four).mul(&four);
        assert!(le(&down, &seq));
        assert_eq!(smin(&seq, &down), down);
        assert!(le(&seq.floor_div(&four).mul(&Dim::from(2i64)), &seq));
        let m = Dim::from(512i64).minimum(&seq);
        assert!(le(&m, &seq) && le(&m, &Dim::from(512i64)));
        assert!(!le(&seq, &m));
        assert!(le(&seq.modulo(&four), &Dim::from(3i64)));
        // Data-dependent counts may be 0.
        assert!(!le(&one, &Dim::sym("u0")));
        assert!(le(&Dim::from(0i64), &Dim::sym("u0")));
        assert_eq!(smin(&seq, &Dim::from(i64::MAX)), seq);
        assert_eq!(smax(&seq.sub(&one), &seq), seq);
        assert_eq!(smax(&seq, &Dim::from(0i64)), seq);
        assert_eq!(
            smin(&Dim::from(i64::MAX), &Dim::from(HUGE)),
            Dim::from(HUGE)
        );
    }

    #[test]
    fn exact_division_cancels_factors() {
        let seq = Dim::sym("seq");
        let c = |v: i64| Dim::from(v);
        assert_eq!(
            div_exact(&[c(1), seq.clone(), c(2048)], &[c(1), seq.clone(), c(64)]),
            c(32)
        );
        assert_eq!(
            div_exact(&[seq.mul(&c(4))], std::slice::from_ref(&seq)),
            c(4)
        );
        assert_eq!(div_exact(&[c(1), seq.clone(), c(64)], &[c(64)]), seq);
        let b = Dim::sym("batch");
        assert_eq!(
            div_exact(&[b.mul(&seq), c(8)], &[b.clone(), c(4)]),
            seq.mul(&c(2))
        );
    }

    #[test]
    fn fills_and_transposes() {
        let t = Tensor::from_i64s(vec![2, 3], vec![1, 2, 3, 4, 5, 6]).unwrap();
        let tt = transpose(&t, &[1, 0]).unwrap();
        assert_eq!(tt.shape(), &[3, 2]);
        assert_eq!(tt.to_i64(), vec![1, 4, 2, 5, 3, 6]);
        let f = Tensor::scalar_i64(9);
        let r = take_fill(&t, &[Some(5), None, Some(0)], vec![3], Some(&f)).unwrap();
        assert_eq!(r.to_i64(), vec![6, 9, 1]);
    }
}
