//! Routing: from the k routing weights and expert indices of each token back to the router
//! logits, recognising what the `moe` op's attributes express.
//!
//! Weights, outermost first:
//! - an optional scale: `w * c` (`routed_scaling_factor`);
//! - an optional renormalisation: `w / ReduceSum(w, [-1], keepdims)` (plus an eps of at most
//!   1e-12) (`normalize_routing_weights`);
//! - the chosen scores: the values of the choosing TopK (its input is then the scores
//!   themselves), or `GatherElements(scores, indices, axis -1)`;
//! - or `Softmax` over the TopK of the logits (GPT-OSS): softmax with renormalisation.
//!
//! Scores: `Softmax(l, -1)`, `Sigmoid(l)`, `Sqrt(Softplus(l))` (also with torch's
//! `softplus` threshold spelled out: `Where(l > t, l, Softplus(l))`, t >= 15).
//!
//! Indices: output 1 of a TopK (largest, last axis) over the selection scores: the scores,
//! plus a `[E]` bias (`selection_bias`), and optionally group-limited (DeepSeek-V3: top-2
//! sum per group, TopK of the groups, a mask scattered from the chosen groups, the others
//! filled with -inf); or `tid2eid[token_ids]` (hash routing).

use kiln_ir::attr::AttrsExt;
use kiln_ir::{DType, Dim, Value};

use super::view::{attempt, fill, is_last, reduce_sum, reshaped_from, times_scalar, top_k};
use crate::passes::fuse::pattern::Matcher;

/// The score function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scoring {
    Softmax,
    Sigmoid,
    SqrtSoftplus,
}

impl Scoring {
    pub fn name(self) -> &'static str {
        match self {
            Scoring::Softmax => "softmax",
            Scoring::Sigmoid => "sigmoid",
            Scoring::SqrtSoftplus => "sqrt_softplus",
        }
    }
}

/// How the experts are chosen.
#[derive(Clone, Debug, PartialEq)]
pub enum Choice {
    /// TopK of the selection scores, optionally with a bias and group-limited.
    TopK {
        bias: Option<Value>,
        /// `(n_group, topk_group)`.
        groups: Option<(usize, usize)>,
    },
    /// `table[token_ids]`: `table` `[V, k]`, `ids` the token ids (`[N]` or a view).
    Hash { table: Value, ids: Value },
    /// TopK of the logits, softmax over the k (GPT-OSS).
    TopKSoftmax,
}

/// A recognised routing.
#[derive(Clone, Debug)]
pub struct Routing {
    pub logits: Value,
    pub k: usize,
    pub scoring: Scoring,
    pub choice: Choice,
    pub normalize: bool,
    pub scale: f64,
}

impl Routing {
    /// A short name of the routing's spelling, for the fusion report.
    pub fn form(&self) -> String {
        let mut f = match &self.choice {
            Choice::TopKSoftmax => return "topk-softmax".into(),
            Choice::Hash { .. } => format!("{}-hash", self.scoring.name()),
            Choice::TopK { bias, groups } => {
                let mut f = format!("{}-topk", self.scoring.name());
                if bias.is_some() {
                    f = format!("{}-bias-topk", self.scoring.name());
                }
                if groups.is_some() {
                    f.push_str("-grouped");
                }
                f
            }
        };
        if self.normalize {
            f.push_str("-norm");
        }
        if self.scale != 1.0 {
            f.push_str("-scaled");
        }
        f.replace('_', "-")
    }
}

/// The routing behind `weights` and `indices` (both `[N, k]`).
pub fn routing(m: &mut Matcher, weights: Value, indices: Value) -> Option<Routing> {
    let k = m.g.value_type(indices).shape.get(1)?.as_const()? as usize;
    let (w, scale) = times_scalar(m, weights).unwrap_or((weights, 1.0));
    if !scale.is_finite() {
        return None;
    }
    // GPT-OSS: softmax over the top-k logits.
    if let Some(r) = attempt(m, |m| topk_softmax(m, w, indices)) {
        return Some(Routing { scale, ..r });
    }
    let (w, normalize) = match attempt(m, |m| renormalised(m, w)) {
        Some(inner) => (inner, true),
        None => (w, false),
    };
    let mut r = chosen(m, w, indices)?;
    if r.k != k {
        return None;
    }
    r.normalize = normalize;
    r.scale = scale;
    Some(r)
}

fn topk_softmax(m: &mut Matcher, w: Value, indices: Value) -> Option<Routing> {
    let sm = m.op(w, "Softmax")?;
    let rank = m.g.value_type(w).rank();
    if !is_last(m.g.node(sm).attrs.int_or("axis", -1).ok()?, rank) {
        return None;
    }
    let vals = m.input(sm, 0)?;
    let t = top_k(m, vals, 0)?;
    if indices
        != (Value {
            node: t.id,
            output: 1,
        })
    {
        return None;
    }
    Some(Routing {
        logits: t.input,
        k: t.k,
        scoring: Scoring::Softmax,
        choice: Choice::TopKSoftmax,
        normalize: true,
        scale: 1.0,
    })
}

/// `w / ReduceSum(w, [-1], keepdims = 1)` (optionally `+ eps`, eps <= 1e-12): returns `w`.
fn renormalised(m: &mut Matcher, v: Value) -> Option<Value> {
    let div = m.op(v, "Div")?;
    let (w, den) = (m.input(div, 0)?, m.input(div, 1)?);
    let last = m.g.value_type(w).rank().checked_sub(1)?;
    let den = match attempt(m, |m| {
        let add = m.op(den, "Add")?;
        let (eps, sum) = m.either(add, |m, c| m.scalar(c))?;
        (0.0..=1e-12).contains(&eps).then_some(sum)
    }) {
        Some(sum) => sum,
        None => den,
    };
    (reduce_sum(m, den, last, true)? == w).then_some(w)
}

/// Where the (unscaled, unnormalised) weights `w` come from, and how `indices` were chosen.
fn chosen(m: &mut Matcher, w: Value, indices: Value) -> Option<Routing> {
    // The values of the TopK that chose: the selection scores are the scores.
    if let Some(t) = attempt(m, |m| top_k(m, w, 0)) {
        if indices
            != (Value {
                node: t.id,
                output: 1,
            })
        {
            return None;
        }
        let (scoring, logits) = scores(m, t.input)?;
        return Some(Routing {
            logits,
            k: t.k,
            scoring,
            choice: Choice::TopK {
                bias: None,
                groups: None,
            },
            normalize: false,
            scale: 1.0,
        });
    }
    // The scores gathered at the chosen indices.
    let ge = m.op(w, "GatherElements")?;
    let s = m.input(ge, 0)?;
    let rank = m.g.value_type(s).rank();
    if m.input(ge, 1)? != indices || !is_last(m.g.node(ge).attrs.int_or("axis", 0).ok()?, rank) {
        return None;
    }
    let (scoring, logits) = scores(m, s)?;
    let e = m.g.value_type(s).shape.last()?.as_const()? as usize;
    if let Some((table, ids, k)) = attempt(m, |m| hashed(m, indices)) {
        return Some(Routing {
            logits,
            k,
            scoring,
            choice: Choice::Hash { table, ids },
            normalize: false,
            scale: 1.0,
        });
    }
    let t = top_k(m, indices, 1)?;
    let (bias, groups) = selection(m, t.input, s, e)?;
    Some(Routing {
        logits,
        k: t.k,
        scoring,
        choice: Choice::TopK { bias, groups },
        normalize: false,
        scale: 1.0,
    })
}

/// The score function of `s` and its logits.
fn scores(m: &mut Matcher, s: Value) -> Option<(Scoring, Value)> {
    if let Some(id) = attempt(m, |m| m.op(s, "Softmax")) {
        let rank = m.g.value_type(s).rank();
        return is_last(m.g.node(id).attrs.int_or("axis", -1).ok()?, rank)
            .then_some((Scoring::Softmax, m.input(id, 0)?));
    }
    if let Some(id) = attempt(m, |m| m.op(s, "Sigmoid")) {
        return Some((Scoring::Sigmoid, m.input(id, 0)?));
    }
    let sqrt = m.op(s, "Sqrt")?;
    let sp = m.input(sqrt, 0)?;
    if let Some(id) = attempt(m, |m| m.op(sp, "Softplus")) {
        return Some((Scoring::SqrtSoftplus, m.input(id, 0)?));
    }
    // torch's softplus(l) with its threshold: Where(l > t, l, Softplus(l)). Above t = 15,
    // ln(1 + e^l) and l differ by less than 4e-7 relative: below f32 resolution.
    let wh = m.op(sp, "Where")?;
    let (cond, a, b) = (m.input(wh, 0)?, m.input(wh, 1)?, m.input(wh, 2)?);
    let gt = m.op(cond, "Greater")?;
    let l = m.input(gt, 0)?;
    let t = m.scalar(m.input(gt, 1)?)?;
    let spn = m.op(b, "Softplus")?;
    (a == l && m.input(spn, 0)? == l && t >= 15.0).then_some((Scoring::SqrtSoftplus, l))
}

/// `tid2eid[ids]`: `GatherND(table, ids [N, 1])` or `Gather(table, ids, axis 0)` with an
/// integer constant `[V, k]` table.
fn hashed(m: &mut Matcher, indices: Value) -> Option<(Value, Value, usize)> {
    let (table, ids) = super::linear::gather_rows(m, indices)?;
    let tt = m.g.value_type(table);
    let t = m.g.const_of(table)?;
    if !tt.dtype.is_int() || t.rank() != 2 || !m.g.value_type(ids).dtype.is_int() {
        return None;
    }
    Some((table, ids, t.shape()[1]))
}

/// How the selection scores `sel` (the choosing TopK's input) derive from the scores `s`:
/// `(selection_bias, groups)`.
#[allow(clippy::type_complexity)]
fn selection(
    m: &mut Matcher,
    sel: Value,
    s: Value,
    e: usize,
) -> Option<(Option<Value>, Option<(usize, usize)>)> {
    if let Some((biased, groups)) = attempt(m, |m| grouped(m, sel, e)) {
        return Some((biased_by(m, biased, s)?, Some(groups)));
    }
    Some((biased_by(m, sel, s)?, None))
}

/// `None` if `v` is `s`, the bias if `v` is `s + bias` with a constant-shaped `[E]` bias.
fn biased_by(m: &mut Matcher, v: Value, s: Value) -> Option<Option<Value>> {
    if v == s {
        return Some(None);
    }
    let add = m.op(v, "Add")?;
    let (_, bias) = m.either(add, |_, x| (x == s).then_some(()))?;
    let st = m.g.value_type(s);
    let bt = m.g.value_type(bias);
    let e = st.shape.last()?.clone();
    (bt.dtype == st.dtype && bt.shape == [e]).then_some(Some(bias))
}

/// Group-limited selection: `Where(mask, sel0, -inf)` (or `Where(Not(mask), -inf, sel0)`)
/// where the mask keeps the experts of the `topk_group` groups of largest top-2 sum.
/// Returns `sel0` and `(n_group, topk_group)`.
fn grouped(m: &mut Matcher, sel: Value, e: usize) -> Option<(Value, (usize, usize))> {
    let wh = m.op(sel, "Where")?;
    let (cond, a, b) = (m.input(wh, 0)?, m.input(wh, 1)?, m.input(wh, 2)?);
    let very_negative = |m: &Matcher, v: Value| m.scalar(v).is_some_and(|x| x <= -1e30);
    let (mask, sel0) = if very_negative(m, a) {
        let not = m.op(cond, "Not")?;
        (m.input(not, 0)?, b)
    } else if very_negative(m, b) {
        (cond, a)
    } else {
        return None;
    };
    // The bool mask [N, E]: a Cast of the float group mask expanded over each group.
    let mask = match attempt(m, |m| m.op(mask, "Cast")) {
        Some(c) => m.input(c, 0)?,
        None => mask,
    };
    let n = m.g.value_type(sel0).shape.first()?.clone();
    let expanded = chain_to_op(m, mask, "Expand")?;
    let et = m.g.value_type(expanded).clone();
    let [_, ng, gs] = &et.shape[..] else {
        return None;
    };
    let (ng, gs) = (ng.as_const()? as usize, gs.as_const()? as usize);
    if ng * gs != e || et.shape[0] != n {
        return None;
    }
    let ex = m.op(expanded, "Expand")?;
    let gm = reshaped_from(m, m.input(ex, 0)?, &[n.clone(), Dim::from(ng)])?;
    // The group mask: ones scattered at the chosen groups into zeros.
    let sc = m.op(gm, "ScatterElements")?;
    let scn = m.g.node(sc);
    if fill(m.g, scn.input(0)?) != Some(0.0)
        || fill(m.g, scn.input(2)?) != Some(1.0)
        || scn.attrs.int_or("axis", 0).ok()? != 1
        || scn.attrs.str_or("reduction", "none").ok()? != "none"
    {
        return None;
    }
    let gt = top_k(m, scn.input(1)?, 1)?;
    let topk_group = gt.k;
    // The group scores: the sum of each group's two largest selection scores.
    let gsum = reduce_sum(m, gt.input, 2, false)?;
    let t2 = top_k(m, gsum, 0)?;
    if t2.k != 2.min(gs) {
        return None;
    }
    let grouped_sel = reshaped_from(m, t2.input, &[n.clone(), Dim::from(e)])?;
    if grouped_sel != sel0
        || m.g.value_type(t2.input).shape != [n, Dim::from(ng), Dim::from(gs)]
        || topk_group > ng
        || m.g.value_type(sel0).dtype == DType::Bool
    {
        return None;
    }
    Some((sel0, (ng, topk_group)))
}

/// The first value in `v`'s reshape chain produced by `op` (the reshapes join the region).
fn chain_to_op(m: &mut Matcher, v: Value, op: &str) -> Option<Value> {
    let c = super::view::chain(m.g, v);
    let i = c
        .iter()
        .position(|u| u.output == 0 && m.g.node(u.node).op == op)?;
    for u in &c[..i] {
        m.take(u.node);
    }
    Some(c[i])
}
