//! What an attention mask term is: a causal triangle or sliding-window band the `attention`
//! op can apply itself (`causal`, `window`), nothing at all, or data to keep as its mask
//! input (with broadcast axes it does not depend on reduced to size 1, as `[B, 1, 1, T]`).
//!
//! A term is read through its [`super::formula::Formulas`] formula over the logits' positions (batch `b`,
//! head `h`, query row `i`, key column `j`). It is positional when it depends on `i` and `j`
//! only through `e = j - i - P` (`P` the KV cache length) and reads no data: its values
//! are then a function of `e` that only changes where a comparison in it does, so sampling
//! `e` around every breakpoint gives all of it. The op's `causal` is `e <= 0`; `window = w`
//! adds `e > -w`. A term is only treated as positional when its values are exactly 0
//! (attend) or `-inf` / the dtype's most negative number (masked), so nothing is assumed.

use kiln_ir::{Attr, Attrs, DType, Dim, Graph, Tensor, Value};

use super::formula::{Affine, Expr, Fun};
use crate::error::CompileError;
use crate::passes::fuse::pattern::{add, constant, scalar_constant};

/// A positional term: positions with `lo <= e <= hi` attend (`None`: unbounded).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Band {
    pub lo: Option<i64>,
    pub hi: Option<i64>,
}

impl Band {
    pub const ALL: Band = Band { lo: None, hi: None };

    pub fn intersect(self, o: Band) -> Band {
        let max = |a: Option<i64>, b: Option<i64>| match (a, b) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, None) | (None, x) => x,
        };
        let min = |a: Option<i64>, b: Option<i64>| match (a, b) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, None) | (None, x) => x,
        };
        Band {
            lo: max(self.lo, o.lo),
            hi: min(self.hi, o.hi),
        }
    }

    /// The op's `(causal, window)` for this band, if it is one it can express.
    pub fn causal_window(self) -> Option<(bool, i64)> {
        match (self.lo, self.hi) {
            (None, None) => Some((false, 0)),
            (None, Some(0)) => Some((true, 0)),
            (Some(lo), Some(0)) if lo <= 0 => Some((true, 1 - lo)),
            _ => None,
        }
    }
}

/// The most negative finite number of `dt` (what exporters fill masked logits with).
fn lowest(dt: DType) -> Option<f64> {
    Some(match dt {
        DType::F32 => f32::MIN as f64,
        DType::F64 => f64::MIN,
        DType::F16 => -65504.0,
        DType::BF16 => -3.389_531_4e38,
        _ => return None,
    })
}

/// The band of a mask formula `e` over a term of shape `shape` (right-aligned with the
/// `[B, H, S, T]` logits) with values of dtype `dt`, if it is positional.
pub fn band(e: &Expr, shape: &[Dim], dt: DType, past: &Dim) -> Option<Band> {
    let r = shape.len();
    if r < 2 || e.has_leaf() {
        return None;
    }
    let (i, j) = (r - 2, r - 1);
    // Broadcast (size-1) axes read index 0 whatever the logits' position.
    let unit: Vec<Affine> = (0..r)
        .map(|ax| {
            if shape[ax].as_const() == Some(1) {
                Affine::constant(r, Dim::from(0i64))
            } else {
                Affine::index(r, ax)
            }
        })
        .collect();
    let e = &e.subst(&unit, r);
    let mut affs = Vec::new();
    e.affines(&mut affs);
    for a in &affs {
        let other = a
            .coef
            .iter()
            .enumerate()
            .any(|(ax, &k)| k != 0 && ax != i && ax != j);
        if other || a.coef[j] != -a.coef[i] {
            return None;
        }
    }
    // i -> 0, j -> e + P, any other (size-1 or ignored) axis -> 0: a formula of e alone.
    let map: Vec<Affine> = (0..r)
        .map(|ax| {
            if ax == j {
                Affine {
                    coef: vec![1],
                    c: past.clone(),
                }
            } else {
                Affine::constant(1, Dim::from(0i64))
            }
        })
        .collect();
    let f = e.subst(&map, 1);
    let mut breaks = vec![0i64];
    atoms_only(&f, false, &mut breaks)?;
    let lo = breaks.iter().min()? - 2;
    let hi = breaks.iter().max()? + 2;
    if hi - lo > 1 << 16 {
        return None;
    }
    let neg = lowest(dt)?;
    let mut attend = Vec::with_capacity((hi - lo + 1) as usize);
    for x in lo..=hi {
        let at = [Affine::constant(0, Dim::from(x))];
        let y = f.subst(&at, 0).num()?;
        attend.push(if y == 0.0 {
            true
        } else if y == f64::NEG_INFINITY || y <= neg {
            false
        } else {
            return None;
        });
    }
    let first = attend.iter().position(|&a| a);
    let Some(first) = first else {
        // Nothing attends anywhere: not something to fold into the op's flags.
        return None;
    };
    let last = attend.iter().rposition(|&a| a)?;
    if attend[first..=last].iter().any(|&a| !a) {
        return None;
    }
    Some(Band {
        lo: (first != 0).then_some(lo + first as i64),
        hi: (last != attend.len() - 1).then_some(lo + last as i64),
    })
}

/// Checks that `e` (over the single index e) uses e only inside comparisons with 0 whose
/// breakpoints are constants, and collects them.
fn atoms_only(f: &Expr, in_cmp: bool, breaks: &mut Vec<i64>) -> Option<()> {
    match f {
        Expr::Num(_) => Some(()),
        Expr::Leaf(..) => None,
        Expr::Lin(a) => {
            if a.is_const() {
                return a.c.as_const().map(|_| ());
            }
            let (k, c) = (a.coef[0], a.c.as_const()?);
            if !in_cmp {
                return None;
            }
            // k * e + c changes sign around e = -c / k.
            breaks.push((-c).div_euclid(k));
            breaks.push((-c).div_euclid(k) + 1);
            Some(())
        }
        Expr::App(fun, _, args) => {
            let cmp = fun.is_comparison();
            args.iter().try_for_each(|x| atoms_only(x, cmp, breaks))
        }
    }
}

/// The axes (of a term of shape `shape`) with size other than 1 that its formula does not
/// depend on.
pub fn free_axes(e: &Expr, shape: &[Dim]) -> Vec<usize> {
    let mut affs = Vec::new();
    e.affines(&mut affs);
    (0..shape.len())
        .filter(|&a| shape[a].as_const() != Some(1) && affs.iter().all(|x| x.coef[a] == 0))
        .collect()
}

/// Term `v` (formula `e`) with its free axes reduced to size 1: the formula re-emitted
/// from its data where it can be, else a Slice of `v`.
pub fn reduce(g: &mut Graph, v: Value, e: &Expr, free: &[usize]) -> Result<Value, CompileError> {
    let ty = g.value_type(v).clone();
    if let Some(x) = emit(g, e, ty.rank(), Some(ty.dtype))? {
        let shape = &g.value_type(x).shape;
        let ok = shape.len() == ty.rank()
            && shape
                .iter()
                .zip(&ty.shape)
                .enumerate()
                .all(|(a, (d, full))| d == full || (free.contains(&a) && d.as_const() == Some(1)))
            && g.value_type(x).dtype == ty.dtype;
        if ok {
            return Ok(x);
        }
    }
    let ints =
        |g: &mut Graph, x: Vec<i64>| constant(g, Tensor::from_i64(DType::I64, vec![x.len()], &x));
    let n = free.len();
    let starts = ints(g, vec![0; n])?;
    let ends = ints(g, vec![1; n])?;
    let axes = ints(g, free.iter().map(|&a| a as i64).collect())?;
    add(
        g,
        "Slice",
        Attrs::new(),
        vec![Some(v), Some(starts), Some(ends), Some(axes)],
        "",
    )
}

/// Emits formula `e` as nodes: a tensor of rank `r` broadcastable to the term's shape, or
/// None if the formula holds index arithmetic (only data and numbers are emitted).
fn emit(
    g: &mut Graph,
    e: &Expr,
    r: usize,
    dt: Option<DType>,
) -> Result<Option<Value>, CompileError> {
    match e {
        Expr::Num(x) => match dt {
            Some(dt) => Ok(Some(scalar_constant(g, dt, *x)?)),
            None => Ok(None),
        },
        Expr::Lin(_) => Ok(None),
        Expr::Leaf(v, at) => emit_leaf(g, *v, at, r),
        Expr::App(f, out, args) => {
            let mut vals: Vec<Option<Value>> = vec![None; args.len()];
            for (k, a) in args.iter().enumerate() {
                if !matches!(a, Expr::Num(_)) {
                    match emit(g, a, r, None)? {
                        Some(x) => vals[k] = Some(x),
                        None => return Ok(None),
                    }
                }
            }
            for (k, a) in args.iter().enumerate() {
                if vals[k].is_some() {
                    continue;
                }
                let want = match f {
                    Fun::Where if k == 0 => DType::Bool,
                    Fun::And | Fun::Or | Fun::Xor | Fun::Not => DType::Bool,
                    f if f.is_comparison() => match vals.iter().flatten().next() {
                        Some(o) => g.value_type(*o).dtype,
                        None => return Ok(None),
                    },
                    Fun::Cast(_) | Fun::IsNaN => return Ok(None),
                    _ => *out,
                };
                vals[k] = emit(g, a, r, Some(want))?;
            }
            let mut attrs = Attrs::new();
            if let Fun::Cast(to) = f {
                attrs.insert("to".into(), Attr::DType(*to));
            }
            Ok(Some(add(g, f.op(), attrs, vals, "")?))
        }
    }
}

/// Leaf `v` read at `at` as a rank-`r` tensor: each axis of `v` either indexed by one axis
/// of the term or, when of size 1, by 0.
fn emit_leaf(
    g: &mut Graph,
    v: Value,
    at: &[Affine],
    r: usize,
) -> Result<Option<Value>, CompileError> {
    let shape = g.value_type(v).shape.clone();
    let mut dropped = Vec::new();
    let mut kept: Vec<(usize, usize)> = Vec::new(); // (axis of v, axis of the term)
    for (k, a) in at.iter().enumerate() {
        let unit: Vec<usize> = (0..r).filter(|&o| a.coef[o] != 0).collect();
        if a.is_const() && a.c.as_const() == Some(0) && shape[k].as_const() == Some(1) {
            dropped.push(k);
        } else if unit.len() == 1 && a.coef[unit[0]] == 1 && a.c.as_const() == Some(0) {
            if kept.iter().any(|&(_, o)| o == unit[0]) {
                return Ok(None);
            }
            kept.push((k, unit[0]));
        } else {
            return Ok(None);
        }
    }
    let ints =
        |g: &mut Graph, x: Vec<i64>| constant(g, Tensor::from_i64(DType::I64, vec![x.len()], &x));
    let mut x = v;
    if !dropped.is_empty() {
        let axes = ints(g, dropped.iter().map(|&a| a as i64).collect())?;
        x = add(g, "Squeeze", Attrs::new(), vec![Some(x), Some(axes)], "")?;
    }
    // Axes of x are now the kept ones in order; sort them by the term axis they feed.
    let mut order: Vec<usize> = (0..kept.len()).collect();
    order.sort_by_key(|&n| kept[n].1);
    if order.iter().enumerate().any(|(n, &o)| n != o) {
        let mut attrs = Attrs::new();
        attrs.insert(
            "perm".into(),
            Attr::Ints(order.iter().map(|&o| o as i64).collect()),
        );
        x = add(g, "Transpose", attrs, vec![Some(x)], "")?;
    }
    let mut targets: Vec<usize> = kept.iter().map(|&(_, o)| o).collect();
    targets.sort();
    let missing: Vec<i64> = (0..r)
        .filter(|o| !targets.contains(o))
        .map(|o| o as i64)
        .collect();
    if !missing.is_empty() {
        let axes = ints(g, missing)?;
        x = add(g, "Unsqueeze", Attrs::new(), vec![Some(x), Some(axes)], "")?;
    }
    Ok(Some(x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::fuse::attention::formula::mk;

    /// `j - i - k` over a `[S, T]` term.
    fn diff(k: i64) -> Expr {
        Expr::Lin(Affine {
            coef: vec![-1, 1],
            c: Dim::from(-k),
        })
    }

    fn cmp(f: Fun, k: i64) -> Expr {
        mk(f, DType::Bool, vec![diff(k), Expr::Num(0.0)], 2)
    }

    fn fill(cond: Expr, masked: f64) -> Expr {
        mk(
            Fun::Where,
            DType::F32,
            vec![cond, Expr::Num(0.0), Expr::Num(masked)],
            2,
        )
    }

    fn shape() -> Vec<Dim> {
        vec![Dim::sym("s"), Dim::sym("t")]
    }

    const MIN: f64 = f32::MIN as f64;

    #[test]
    fn causal_and_window_bands() {
        let zero = Dim::from(0i64);
        let causal = fill(cmp(Fun::Le, 0), MIN);
        let b = band(&causal, &shape(), DType::F32, &zero).unwrap();
        assert_eq!(
            b,
            Band {
                lo: None,
                hi: Some(0)
            }
        );
        assert_eq!(b.causal_window(), Some((true, 0)));
        // j > i - 3 and j <= i: the 3 most recent positions.
        let win = mk(
            Fun::And,
            DType::Bool,
            vec![cmp(Fun::Gt, -3), cmp(Fun::Le, 0)],
            2,
        );
        let b = band(&fill(win, f64::NEG_INFINITY), &shape(), DType::F32, &zero).unwrap();
        assert_eq!(
            b,
            Band {
                lo: Some(-2),
                hi: Some(0)
            }
        );
        assert_eq!(b.causal_window(), Some((true, 3)));
    }

    /// With a cache of `p` positions, query i sits at p + i: `j <= i + p` is causal, and
    /// `j <= i` (no offset) is not.
    #[test]
    fn causal_relative_to_the_cache() {
        let p = Dim::sym("p");
        let with_offset = Expr::Lin(Affine {
            coef: vec![-1, 1],
            c: p.neg(),
        });
        let le = mk(Fun::Le, DType::Bool, vec![with_offset, Expr::Num(0.0)], 2);
        let b = band(&fill(le, MIN), &shape(), DType::F32, &p).unwrap();
        assert_eq!(b.causal_window(), Some((true, 0)));
        // Without the offset the breakpoint is symbolic relative to p: not read.
        assert_eq!(
            band(&fill(cmp(Fun::Le, 0), MIN), &shape(), DType::F32, &p),
            None
        );
    }

    #[test]
    fn what_is_not_a_band() {
        let zero = Dim::from(0i64);
        // One position off: a band, but not one the op's flags express.
        let ahead = band(&fill(cmp(Fun::Le, 1), MIN), &shape(), DType::F32, &zero).unwrap();
        assert_eq!(
            ahead,
            Band {
                lo: None,
                hi: Some(1)
            }
        );
        assert_eq!(ahead.causal_window(), None);
        // Masked with -1: a bias, not a mask.
        assert_eq!(
            band(&fill(cmp(Fun::Le, 0), -1.0), &shape(), DType::F32, &zero),
            None
        );
        // Attending at e <= 0 and at e = 2: not contiguous.
        let gap = mk(
            Fun::Or,
            DType::Bool,
            vec![cmp(Fun::Le, 0), cmp(Fun::Eq, 2)],
            2,
        );
        assert_eq!(band(&fill(gap, MIN), &shape(), DType::F32, &zero), None);
        // Nothing attends.
        assert_eq!(band(&Expr::Num(MIN), &shape(), DType::F32, &zero), None);
        // Depends on i alone.
        let rows = mk(
            Fun::Le,
            DType::Bool,
            vec![
                Expr::Lin(Affine {
                    coef: vec![1, 0],
                    c: Dim::from(0i64),
                }),
                Expr::Num(2.0),
            ],
            2,
        );
        assert_eq!(band(&fill(rows, MIN), &shape(), DType::F32, &zero), None);
    }

    #[test]
    fn bands_intersect() {
        let a = Band {
            lo: None,
            hi: Some(0),
        };
        let b = Band {
            lo: Some(-4),
            hi: Some(3),
        };
        assert_eq!(
            a.intersect(b),
            Band {
                lo: Some(-4),
                hi: Some(0)
            }
        );
        assert_eq!(a.intersect(Band::ALL), a);
        assert_eq!(Band::ALL.causal_window(), Some((false, 0)));
    }
}
