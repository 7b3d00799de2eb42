//! The `expert-loop` spelling (older transformers / TorchScript exports of a loop over the
//! experts, unrolled): every expert's MLP runs on all tokens with its own matrices, is
//! multiplied by its column of the routing weights (zero for tokens that did not choose
//! it), and the products are added up:
//!
//! ```text
//! out = sum_e  mlp_e(x) * col_e          (a tree of Adds, one term per expert)
//! col_e = Slice(D, e, e + 1, axis 1) | Gather(D, e, axis 1)      with the dense [N, E]
//!         D = ScatterElements(zeros, idx, w, axis 1)
//!           | ReduceSum(OneHot(idx, E) * Unsqueeze(w, -1), axis 1)
//!       | ReduceSum(Where(idx == e, w, 0), -1, keepdims) | ReduceSum(w * Cast(idx == e), ..)
//! ```

use kiln_ir::attr::AttrsExt;
use kiln_ir::{Dim, Value};

use super::act::Act;
use super::experts::{mlp, Experts, Mlp};
use super::layout::{Bias, Mat, Weight};
use super::linear::{linear, Linear};
use super::view::{attempt, deepest_reshaped_from, fill, is_last, reduce_sum, reshaped_from};
use crate::passes::fuse::pattern::Matcher;

/// One expert's term of the sum.
pub struct Term {
    pub expert: usize,
    pub weights: Value,
    pub indices: Value,
    mlp: Mlp<Linear>,
}

/// `v` as one expert's weighted output: `mlp_e(x) * col_e` (either order).
pub fn term(m: &mut Matcher, v: Value) -> Option<Term> {
    attempt(m, |m| {
        let mul = m.op(v, "Mul")?;
        let ((expert, weights, indices), y) = m.either(mul, |m, c| column(m, c))?;
        let mut proj = |m: &mut Matcher<'_>, v: Value| linear(m, v);
        let mlp = mlp(m, y, &mut proj, |l: &Linear| l.x)?;
        Some(Term {
            expert,
            weights,
            indices,
            mlp,
        })
    })
}

/// Expert `e`'s routing weight per token, `[N, 1]`: returns `(e, weights, indices)`.
fn column(m: &mut Matcher, c: Value) -> Option<(usize, Value, Value)> {
    let ct = m.g.value_type(c).clone();
    let n = ct.shape.first()?.clone();
    if ct.shape != [n.clone(), Dim::from(1i64)] {
        return None;
    }
    if let Some(r) = attempt(m, |m| masked(m, c)) {
        return Some(r);
    }
    // A column of the dense routing weights, possibly via a [N] Gather.
    let (d, e) = attempt(m, |m| {
        let s = m.op(c, "Slice")?;
        let [start] = m.ints(m.input(s, 1)?)?[..] else {
            return None;
        };
        let [end] = m.ints(m.input(s, 2)?)?[..] else {
            return None;
        };
        let [axis] = m.ints(m.input(s, 3)?)?[..] else {
            return None;
        };
        let steps = match m.input(s, 4) {
            Some(st) => m.ints(st)?,
            None => vec![1],
        };
        let d = m.input(s, 0)?;
        let ok = end == start + 1 && start >= 0 && steps == [1] && (axis == 1 || axis == -1);
        ok.then_some((d, start as usize))
    })
    .or_else(|| {
        attempt(m, |m| {
            let col = super::view::chain(m.g, c)
                .into_iter()
                .find(|u| u.output == 0 && m.g.node(u.node).op == "Gather")?;
            let g = reshaped_from(m, c, &m.g.value_type(col).shape.clone())?;
            let id = m.op(g, "Gather")?;
            let [e] = m.ints(m.input(id, 1)?)?[..] else {
                return None;
            };
            let axis = m.g.node(id).attrs.int_or("axis", 0).ok()?;
            ((axis == 1 || axis == -1) && e >= 0).then_some((m.input(id, 0)?, e as usize))
        })
    })?;
    let dt = m.g.value_type(d).clone();
    let [dn, de] = &dt.shape[..] else {
        return None;
    };
    if *dn != n || de.as_const()? as usize <= e {
        return None;
    }
    let (w, idx) = dense(m, d)?;
    Some((e, w, idx))
}

/// The dense `[N, E]` routing weights `d` as the `[N, k]` weights scattered at the chosen
/// experts: returns `(weights, indices)`.
fn dense(m: &mut Matcher, d: Value) -> Option<(Value, Value)> {
    let e = m.g.value_type(d).shape.get(1)?.as_const()?;
    if let Some(sc) = attempt(m, |m| m.op(d, "ScatterElements")) {
        let n = m.g.node(sc);
        let rank = m.g.value_type(d).rank();
        let ok = fill(m.g, n.input(0)?) == Some(0.0)
            && is_last(n.attrs.int_or("axis", 0).ok()?, rank)
            && n.attrs.str_or("reduction", "none").ok()? == "none";
        let (idx, w) = (n.input(1)?, n.input(2)?);
        let same = m.g.value_type(idx).shape == m.g.value_type(w).shape;
        return (ok && same).then_some((w, idx));
    }
    // ReduceSum over k of OneHot(idx, E) * w[..., None].
    let prod = reduce_sum(m, d, 1, false)?;
    let mul = m.op(prod, "Mul")?;
    let (idx, wcol) = m.either(mul, |m, oh| {
        let id = m.op(oh, "OneHot")?;
        let n = m.g.node(id);
        let rank = m.g.value_type(oh).rank();
        let vals = m.g.const_of(n.input(2)?)?.to_f64();
        let depth = m.scalar(n.input(1)?)?;
        let ok = vals == [0.0, 1.0]
            && depth == e as f64
            && is_last(n.attrs.int_or("axis", -1).ok()?, rank);
        ok.then_some(n.input(0)?)
    })?;
    let it = m.g.value_type(idx).shape.clone();
    let w = deepest_reshaped_from(m, wcol, &it)?;
    Some((w, idx))
}

/// `ReduceSum(Where(idx == e, w, 0), [-1], keepdims = 1)` or
/// `ReduceSum(w * Cast(idx == e), ..)`: returns `(e, w, idx)`.
fn masked(m: &mut Matcher, c: Value) -> Option<(usize, Value, Value)> {
    let rank = m.g.value_type(c).rank();
    let inner = reduce_sum(m, c, rank - 1, true)?;
    let (mask, w) = if let Some(wh) = attempt(m, |m| m.op(inner, "Where")) {
        if fill(m.g, m.input(wh, 2)?) != Some(0.0) {
            return None;
        }
        (m.input(wh, 0)?, m.input(wh, 1)?)
    } else {
        let mul = m.op(inner, "Mul")?;
        let (mask, w) = m.either(mul, |m, cast| {
            let id = m.op(cast, "Cast")?;
            m.input(id, 0)
        })?;
        (mask, w)
    };
    let eq = m.op(mask, "Equal")?;
    let (e, idx) = m.either(eq, |m, c| m.scalar(c))?;
    let ok = e >= 0.0
        && e.fract() == 0.0
        && m.g.value_type(idx).dtype.is_int()
        && m.g.value_type(idx).shape == m.g.value_type(w).shape;
    ok.then_some((e as usize, w, idx))
}

/// The routed experts from their terms (any order; each expert exactly once).
pub fn assemble(mut terms: Vec<Term>) -> Option<Experts> {
    terms.sort_by_key(|t| t.expert);
    let first = terms.first()?;
    let same = |t: &Term| {
        t.weights == first.weights
            && t.indices == first.indices
            && t.mlp.act == first.mlp.act
            && t.mlp.fusion == first.mlp.fusion
            && t.mlp.up.is_some() == first.mlp.up.is_some()
            && t.mlp.gate.x == first.mlp.gate.x
            && t.mlp.gate.bias.is_some() == first.mlp.gate.bias.is_some()
            && t.mlp.down.bias.is_some() == first.mlp.down.bias.is_some()
            && t.mlp.up.as_ref().map(|u| u.bias.is_some())
                == first.mlp.up.as_ref().map(|u| u.bias.is_some())
    };
    if terms
        .iter()
        .enumerate()
        .any(|(i, t)| t.expert != i || !same(t))
    {
        return None;
    }
    let (x, weights, indices, act, fusion): (Value, Value, Value, Act, i64) = (
        first.mlp.gate.x,
        first.weights,
        first.indices,
        first.mlp.act,
        first.mlp.fusion,
    );
    let mats = |f: &dyn Fn(&Mlp<Linear>) -> Option<&Linear>| -> Option<(Weight, Option<Bias>)> {
        let ls: Vec<&Linear> = terms.iter().map(|t| f(&t.mlp)).collect::<Option<_>>()?;
        let w = Weight::PerExpert(ls.iter().map(|l| l.w).collect::<Vec<Mat>>());
        let b = ls
            .iter()
            .map(|l| l.bias)
            .collect::<Option<Vec<_>>>()
            .map(Bias::PerExpert);
        Some((w, b))
    };
    let (w1, b1) = mats(&|p| Some(&p.gate))?;
    let (w2, b2) = mats(&|p| Some(&p.down))?;
    let (w3, b3) = match mats(&|p| p.up.as_ref()) {
        Some((w, b)) => (Some(w), b),
        None => (None, None),
    };
    Some(Experts {
        form: "expert-loop",
        x,
        weights,
        indices,
        w1,
        b1,
        w2,
        b2,
        w3,
        b3,
        fusion,
        act,
    })
}
