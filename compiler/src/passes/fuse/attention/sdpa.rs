//! Attention spelled out: `softmax(scale * q·kᵀ + mask) · v` -> `attention`.
//!
//! The region's root is the `p · v` MatMul; from it the rule reads, by computation:
//! - the probabilities: `Softmax(x, axis = last)`, optionally behind a NaN guard
//!   (`Where(IsNaN(p), 0, p)`, fully masked rows; the op gives zeros there too) and with
//!   `x - ReduceMax(x)` (softmax is shift-invariant);
//! - attention sinks (GPT-OSS, DeepSeek-V4): `Concat(logits, sink column)` before the
//!   Softmax and a Slice dropping that column after it; the column must hold one value per
//!   head (broadcast over batch and queries);
//! - mask terms, outermost: `Add` of a float mask (any number of them) or a
//!   `Where(c, logits, -inf | lowest)` fill; each is read by [`mask`]: causal triangles and
//!   sliding-window bands that can be proven become `causal` / `window`, anything else stays
//!   the op's mask input (never dropped), reduced to size 1 along broadcast axes it does
//!   not depend on;
//! - a softcap `c * tanh(x / c)` (Gemma 2);
//! - the scale: Mul or Div by constants on the logits, on q and on k (a sqrt split), in any
//!   number, multiplied together;
//! - `q·kᵀ`: a MatMul whose operands [`layout`] traces to q `[B, H, S, D]` and k
//!   `[B, Hkv, T, D]` through head splits, transposes (`kᵀ` as a Transpose, or k already
//!   laid out transposed) and GQA's repeat_kv (Unsqueeze/Expand/Reshape or Expand/Reshape
//!   of the heads; MatMul broadcasting of one kv head, MQA), and `v` likewise;
//! - a KV cache: k and v concatenated from a graph input (the past) and new entries along
//!   the sequence become `past_k` / `past_v`, with `present_k` / `present_v` replacing the
//!   concatenations where something else reads them.
//!
//! Forms reported: `sdpa` plus `+sinks`, `+cache` as they apply.

use kiln_ir::attr::AttrsExt;
use kiln_ir::infer::add_inferred;
use kiln_ir::{Attr, Attrs, DType, Dim, Graph, NodeId, Value};

use super::formula::{mk, Expr, Formulas, Fun};
use super::layout::{reshape, trace, Atom, Layout, Pick, View};
use super::mask::{band, free_axes, reduce, Band};
use crate::error::CompileError;
use crate::passes::fuse::pattern::{add, out0, scalar_constant, Matcher};
use crate::passes::fuse::Match;

/// The region rooted at `root`, if it is one of this file's forms.
pub fn find(g: &Graph, root: NodeId) -> Option<Match> {
    let n = g.node(root);
    if n.op != "MatMul" || !matches!(n.outputs[0].rank(), 3 | 4) {
        return None;
    }
    let mut m = Matcher::new(g);
    m.take(root);
    let probs = probabilities(&mut m, n.input(0)?)?;
    let logits = logits(&mut m, probs.scores)?;
    let total = logits_shape(g, &logits).last()?.clone();
    Region::new(m, root, probs, logits, total)?.into_match(g)
}

/// What lies between the logits and the `p · v` MatMul.
struct Probs {
    scores: Value,
    /// The sink column concatenated to the logits before the Softmax.
    sinks: Option<Value>,
}

fn last_axis(g: &Graph, v: Value, axis: i64) -> bool {
    let r = g.value_type(v).rank() as i64;
    axis == -1 || axis == r - 1
}

fn probabilities(m: &mut Matcher, p: Value) -> Option<Probs> {
    let g = m.g;
    let mut x = p;
    let (mut guarded, mut sliced, mut cast) = (false, false, false);
    loop {
        let mark = m.mark();
        if !cast {
            if let Some(u) = float_cast(m, x) {
                x = u;
                cast = true;
                continue;
            }
        }
        if !guarded {
            if let Some(w) = nan_guard(m, x) {
                x = w;
                guarded = true;
                continue;
            }
            m.reset(mark);
        }
        if !sliced {
            if let Some(s) = drop_last_column(m, x) {
                x = s;
                sliced = true;
                continue;
            }
            m.reset(mark);
        }
        break;
    }
    let sm = m.op(x, "Softmax")?;
    if !last_axis(g, x, g.node(sm).attrs.int_or("axis", -1).ok()?) {
        return None;
    }
    let mut s = m.input(sm, 0)?;
    if let Some(u) = float_cast(m, s) {
        s = u;
    }
    let mark = m.mark();
    match shifted_by_max(m, s) {
        Some(u) => s = u,
        None => m.reset(mark),
    }
    if !sliced {
        return Some(Probs {
            scores: s,
            sinks: None,
        });
    }
    let cat = m.op(s, "Concat")?;
    let cn = g.node(cat);
    if cn.inputs().len() != 2 || !last_axis(g, s, cn.attrs.int_or("axis", 0).ok()?) {
        return None;
    }
    let (scores, col) = (cn.input(0)?, cn.input(1)?);
    if g.value_type(col).shape.last()?.as_const() != Some(1) {
        return None;
    }
    Some(Probs {
        scores,
        sinks: Some(col),
    })
}

/// A Cast between float dtypes (HF's softmax in f32 of f16 logits) -> its input: the op
/// computes in f64 throughout.
fn float_cast(m: &mut Matcher, x: Value) -> Option<Value> {
    let g = m.g;
    let n = g.node(x.node);
    let u = n.input(0)?;
    let ok = n.op == "Cast"
        && x.output == 0
        && g.value_type(u).dtype.is_float()
        && n.outputs[0].dtype.is_float();
    ok.then(|| {
        m.take(x.node);
        u
    })
}

/// `Where(IsNaN(s), 0, s)` -> s.
fn nan_guard(m: &mut Matcher, x: Value) -> Option<Value> {
    let w = m.op(x, "Where")?;
    let s = m.input(w, 2)?;
    let isnan = m.op(m.input(w, 0)?, "IsNaN")?;
    (m.input(isnan, 0)? == s && m.scalar(m.input(w, 1)?)? == 0.0).then_some(s)
}

/// `Slice(s, [0], [n - 1], [last])` -> s: drops the last column (the sink's).
fn drop_last_column(m: &mut Matcher, x: Value) -> Option<Value> {
    let g = m.g;
    let sl = m.op(x, "Slice")?;
    let s = m.input(sl, 0)?;
    let starts = m.ints(m.input(sl, 1)?)?;
    let axes = match m.input(sl, 3) {
        Some(a) => m.ints(a)?,
        None => vec![0],
    };
    if let Some(st) = m.input(sl, 4) {
        if m.ints(st)? != [1] {
            return None;
        }
    }
    let (n_in, n_out) = (
        g.value_type(s).shape.last()?.clone(),
        g.value_type(x).shape.last()?.clone(),
    );
    (starts == [0]
        && axes.len() == 1
        && last_axis(g, s, axes[0])
        && n_out.add(&Dim::from(1i64)) == n_in)
        .then_some(s)
}

/// `x - ReduceMax(x, [last], keepdims = 1)` -> x.
fn shifted_by_max(m: &mut Matcher, s: Value) -> Option<Value> {
    let g = m.g;
    let sub = m.op(s, "Sub")?;
    let x = m.input(sub, 0)?;
    let rm = m.op(m.input(sub, 1)?, "ReduceMax")?;
    let n = g.node(rm);
    let axes = m.ints(m.input(rm, 1)?)?;
    (m.input(rm, 0)? == x
        && n.attrs.int_or("keepdims", 1).ok()? == 1
        && axes.len() == 1
        && last_axis(g, x, axes[0]))
    .then_some(x)
}

/// A mask term added to (or filled into) the logits.
#[derive(Clone, Debug)]
enum Term {
    Add(Value),
    /// `Where(cond, logits, fill)` (`attend_if` true) or `Where(cond, fill, logits)`.
    Fill {
        cond: Value,
        fill: f64,
        attend_if: bool,
    },
}

struct Logits {
    qk: NodeId,
    scale: f64,
    softcap: f64,
    terms: Vec<Term>,
}

fn logits_shape<'g>(g: &'g Graph, l: &Logits) -> &'g [Dim] {
    &g.node(l.qk).outputs[0].shape
}

/// The scores below the Softmax: mask terms, then a softcap, then scalings, then `q·kᵀ`.
fn logits(m: &mut Matcher, x: Value) -> Option<Logits> {
    let g = m.g;
    let mut terms = Vec::new();
    let mut x = x;
    // Mask terms.
    loop {
        let mark = m.mark();
        if let Some(a) = m.op(x, "Add") {
            if let Some((y, t)) = m.either(a, |m, y| reaches_matmul(m.g, y).then_some(y)) {
                terms.push(Term::Add(t));
                x = y;
                continue;
            }
        }
        m.reset(mark);
        if let Some(w) = m.op(x, "Where") {
            let (c, a, b) = (m.input(w, 0)?, m.input(w, 1)?, m.input(w, 2)?);
            let fill = |v: Value| m.scalar(v).filter(|&f| is_fill(f));
            if let (Some(f), true) = (fill(b), reaches_matmul(g, a)) {
                terms.push(Term::Fill {
                    cond: c,
                    fill: f,
                    attend_if: true,
                });
                x = a;
                continue;
            }
            if let (Some(f), true) = (fill(a), reaches_matmul(g, b)) {
                terms.push(Term::Fill {
                    cond: c,
                    fill: f,
                    attend_if: false,
                });
                x = b;
                continue;
            }
        }
        m.reset(mark);
        break;
    }
    // Softcap: c * tanh(x / c).
    let mut softcap = 0.0;
    let mark = m.mark();
    match softcapped(m, x) {
        Some((y, c)) => {
            softcap = c;
            x = y;
        }
        None => m.reset(mark),
    }
    // Scalings.
    let mut scale = 1.0;
    while let Some(s) = scaled(m, x) {
        scale *= s.1;
        x = s.0;
    }
    let qk = m.op(x, "MatMul")?;
    Some(Logits {
        qk,
        scale,
        softcap,
        terms,
    })
}

/// True if `x` is the logits side: a chain of Add / Where / Mul / Div / Tanh down to a
/// rank-4 MatMul (the mask side of an Add reads no MatMul that way).
fn reaches_matmul(g: &Graph, x: Value) -> bool {
    reaches(g, x, 8)
}

fn reaches(g: &Graph, x: Value, depth: usize) -> bool {
    let n = g.node(x.node);
    match n.op.as_str() {
        "MatMul" => matches!(n.outputs[0].rank(), 3 | 4),
        "Add" | "Mul" | "Div" | "Tanh" | "Where" if depth > 0 => n
            .inputs()
            .iter()
            .flatten()
            .any(|v| g.const_of(*v).is_none() && reaches(g, *v, depth - 1)),
        _ => false,
    }
}

/// A fill value that masks: `-inf` or a float's most negative finite number.
fn is_fill(f: f64) -> bool {
    f == f64::NEG_INFINITY || f <= -65504.0
}

/// `x * s`, `s * x` or `x / s` with `s` a float scalar constant -> (x, factor).
fn scaled(m: &mut Matcher, x: Value) -> Option<(Value, f64)> {
    let g = m.g;
    let n = g.node(x.node);
    if x.output != 0 || !matches!(n.op.as_str(), "Mul" | "Div") {
        return None;
    }
    let (a, b) = (n.input(0)?, n.input(1)?);
    let scalar = |v: Value| {
        let t = g.const_of(v)?;
        (t.len() == 1 && t.dtype().is_float()).then(|| t.to_f64()[0])
    };
    let (y, s) = match (n.op.as_str(), scalar(a), scalar(b)) {
        ("Mul", None, Some(s)) => (a, s),
        ("Mul", Some(s), None) => (b, s),
        ("Div", None, Some(s)) if s != 0.0 => (a, 1.0 / s),
        _ => return None,
    };
    if g.value_type(y).shape != n.outputs[0].shape {
        return None;
    }
    m.take(x.node);
    Some((y, s))
}

/// `Mul(Tanh(x / c | x * (1/c)), c)` -> (x, c).
fn softcapped(m: &mut Matcher, x: Value) -> Option<(Value, f64)> {
    let (t, c) = scaled(m, x)?;
    let th = m.op(t, "Tanh")?;
    let (y, inv) = scaled(m, m.input(th, 0)?)?;
    (c > 0.0 && ((inv * c) - 1.0).abs() < 1e-6).then_some((y, c))
}

/// A KV cache concatenation `Concat(past, new)` along the sequence axis of a source.
#[derive(Clone, Debug)]
struct Cache {
    concat: NodeId,
    past: Value,
    new: Value,
}

/// The cache behind layout `l` (sequence axis `t` of the op), if its source concatenates
/// a graph input (seen through layout nodes) with new entries along that axis.
fn cache_of(g: &Graph, l: &Layout) -> Option<Cache> {
    let src = l.src;
    let n = g.node(src.node);
    if n.op != "Concat" || src.output != 0 || n.inputs().len() != 2 {
        return None;
    }
    let r = g.value_type(src).rank() as i64;
    let axis = n.attrs.int_or("axis", 0).ok()?;
    let axis = if axis < 0 { axis + r } else { axis };
    if l.axes[2] != [axis as usize] {
        return None;
    }
    let (past, new) = (n.input(0)?, n.input(1)?);
    let seen = trace(g, past).src;
    g.inputs().contains(&seen).then_some(Cache {
        concat: src.node,
        past,
        new,
    })
}

/// Everything the rewrite needs.
struct Region {
    root: NodeId,
    nodes: Vec<NodeId>,
    q: Layout,
    k: Layout,
    v: Layout,
    cache: Option<(Cache, Cache)>,
    sinks: Option<Layout>,
    scale: f64,
    softcap: f64,
    causal: bool,
    window: i64,
    /// Mask terms kept as the op's mask, with their formulas.
    masks: Vec<(Term, Expr)>,
    dtype: DType,
    /// The MatMuls' rank: 4, or 3 with batch and heads flattened.
    rank: usize,
    /// Batch and query heads.
    batch_heads: [Dim; 2],
}

impl Region {
    fn new(m: Matcher, root: NodeId, probs: Probs, logits: Logits, total: Dim) -> Option<Region> {
        let g = m.g;
        let qk = g.node(logits.qk);
        let lshape = qk.outputs[0].shape.clone();
        let dtype = qk.outputs[0].dtype;
        // Nothing between the MatMuls may broadcast the logits to another shape.
        let softmax_in = probs.scores;
        if g.value_type(softmax_in).shape != lshape {
            return None;
        }
        let mut nodes = m.nodes();
        let (qo, kto) = (qk.input(0)?, qk.input(1)?);
        let vo = g.node(root).input(1)?;
        let (qv, kv, vv) = (trace(g, qo), trace(g, kto), trace(g, vo));
        if vv.scale != 1.0 {
            return None;
        }
        use Pick::{Axis, Split};
        // Rank 4: [B, H, S, D]; rank 3: [B*H, S, D] (bmm), batch and heads split apart.
        let rank = lshape.len();
        let (qp, kp, vp): (&[Pick], &[Pick], &[Pick]) = if rank == 4 {
            (
                &[Axis(0), Axis(1), Axis(2), Axis(3)],
                &[Axis(0), Axis(1), Axis(3), Axis(2)],
                &[Axis(0), Axis(1), Axis(2), Axis(3)],
            )
        } else {
            (
                &[Split(0), Axis(1), Axis(2)],
                &[Split(0), Axis(2), Axis(1)],
                &[Split(0), Axis(1), Axis(2)],
            )
        };
        let q = Layout::new(&qv, qp, None)?;
        let k = Layout::new(&kv, kp, Some(1))?;
        let v = Layout::new(&vv, vp, Some(1))?;
        let out = &g.node(root).outputs[0].shape;
        // q [B, Hq, S, Dk], k [B, Hkv, T, Dk], v [B, Hkv, T, Dv], out [B, Hq, S, Dv].
        let (b, hq, s, dk) = (&q.dims[0], &q.dims[1], &q.dims[2], &q.dims[3]);
        let shares = |l: &Layout, operand: Value| {
            // One kv head shared by MatMul broadcasting: the operand's heads axis is 1.
            let bcast = g.value_type(operand).shape[rank - 3].as_const() == Some(1);
            let hkv = &l.dims[1];
            hkv.mul(&l.repeat) == *hq || (bcast && hkv.as_const() == Some(1))
        };
        let lead: Vec<Dim> = if rank == 4 {
            vec![b.clone(), hq.clone()]
        } else {
            vec![b.mul(hq)]
        };
        let ok = (rank == 4 || rank == 3)
            && k.dims[0] == *b
            && v.dims[0] == *b
            && k.dims[3] == *dk
            && k.dims[1] == v.dims[1]
            && k.dims[2] == v.dims[2]
            && k.dims[2] == total
            && shares(&k, kto)
            && shares(&v, vo)
            && out[..rank - 2] == lead[..]
            && out[rank - 2..] == [s.clone(), v.dims[3].clone()]
            && lshape[..rank - 2] == lead[..]
            && lshape[rank - 2] == *s
            && (rank == 4 || probs.sinks.is_none())
            && [qv.src, kv.src, vv.src]
                .iter()
                .all(|x| g.value_type(*x).dtype == dtype);
        if !ok || !dtype.is_float() {
            return None;
        }
        for w in [&qv, &kv, &vv] {
            nodes.extend(w.nodes.iter().copied());
        }
        let sinks = match probs.sinks {
            Some(col) => Some(sink_layout(g, col, hq, dtype, &mut nodes)?),
            None => None,
        };
        let cache = match (cache_of(g, &k), cache_of(g, &v)) {
            (Some(a), Some(c)) => {
                let p = |c: &Cache, l: &Layout| {
                    let r = g.value_type(c.past).shape.clone();
                    l.axes[2]
                        .iter()
                        .fold(Dim::from(1i64), |acc, &a| acc.mul(&r[a]))
                };
                if p(&a, &k) != p(&c, &v) {
                    return None;
                }
                nodes.push(a.concat);
                nodes.push(c.concat);
                Some((a, c))
            }
            _ => None,
        };
        let past = match &cache {
            Some((a, _)) => {
                let r = g.value_type(a.past).shape.clone();
                k.axes[2]
                    .iter()
                    .fold(Dim::from(1i64), |acc, &x| acc.mul(&r[x]))
            }
            None => Dim::from(0i64),
        };
        // Mask terms: positional ones that together make a causal band become flags.
        let mut f = Formulas::new(g);
        let mut classified = Vec::new();
        for t in &logits.terms {
            let (e, shape, dt) = match t {
                Term::Add(x) => {
                    let ty = g.value_type(*x);
                    if !ty.dtype.is_float() {
                        return None;
                    }
                    (f.of(*x), ty.shape.clone(), ty.dtype)
                }
                Term::Fill {
                    cond,
                    fill,
                    attend_if,
                } => {
                    let ty = g.value_type(*cond);
                    if ty.dtype != DType::Bool {
                        return None;
                    }
                    let c = f.of(*cond);
                    let (a, b) = if *attend_if {
                        (Expr::Num(0.0), Expr::Num(*fill))
                    } else {
                        (Expr::Num(*fill), Expr::Num(0.0))
                    };
                    let e = mk(Fun::Where, dtype, vec![c, a, b], ty.rank());
                    (e, ty.shape.clone(), dtype)
                }
            };
            let bd = band(&e, &shape, dt, &past);
            classified.push((t.clone(), e, bd));
        }
        let combined = classified
            .iter()
            .filter_map(|(_, _, b)| *b)
            .fold(Band::ALL, Band::intersect);
        let (causal, window, masks) = match combined.causal_window() {
            Some((c, w)) => (
                c,
                w,
                classified
                    .into_iter()
                    .filter(|(_, _, b)| b.is_none())
                    .map(|(t, e, _)| (t, e))
                    .collect(),
            ),
            None => (
                false,
                0,
                classified.into_iter().map(|(t, e, _)| (t, e)).collect(),
            ),
        };
        nodes.sort();
        nodes.dedup();
        let batch_heads = [q.dims[0].clone(), q.dims[1].clone()];
        Some(Region {
            root,
            nodes,
            q,
            k,
            v,
            cache,
            sinks,
            scale: qv.scale * kv.scale * logits.scale,
            softcap: logits.softcap,
            causal,
            window,
            masks,
            dtype,
            rank,
            batch_heads,
        })
    }

    fn form(&self) -> &'static str {
        match (self.sinks.is_some(), self.cache.is_some()) {
            (false, false) => "sdpa",
            (true, false) => "sdpa+sinks",
            (false, true) => "sdpa+cache",
            (true, true) => "sdpa+sinks+cache",
        }
    }

    fn into_match(self, g: &Graph) -> Option<Match> {
        let form = self.form();
        let nodes = self.nodes.clone();
        let origin = g.node(self.root).origin.clone();
        // present_k / present_v replace a cache concatenation others read, when the op's
        // layout is the concatenation's own.
        let present = self.cache.as_ref().map(|(a, c)| {
            let reads = |cc: &Cache, l: &Layout| {
                let v = out0(cc.concat);
                let outside =
                    g.is_output(v) || g.users(v).iter().any(|(u, _)| !self.nodes.contains(u));
                (outside && l.is_source(g)).then_some(v)
            };
            (reads(a, &self.k), reads(c, &self.v))
        });
        Some(Match {
            form,
            nodes,
            rewrite: Box::new(move |g: &mut Graph| self.rewrite(g, &origin, present)),
        })
    }

    fn rewrite(
        self,
        g: &mut Graph,
        origin: &str,
        present: Option<(Option<Value>, Option<Value>)>,
    ) -> Result<Vec<(Value, Value)>, CompileError> {
        let q = self.q.emit(g)?;
        let (k, v, past) = match &self.cache {
            Some((ck, cv)) => {
                let k = self.k.emit_from(g, ck.new)?;
                let v = self.v.emit_from(g, cv.new)?;
                let pk = self.k.emit_from(g, ck.past)?;
                let pv = self.v.emit_from(g, cv.past)?;
                (k, v, Some((pk, pv)))
            }
            None => {
                let k = self.k.emit(g)?;
                // DeepSeek-V4 reads one tensor as both k and v: keep it one value.
                let v = if self.v.src == self.k.src
                    && self.v.axes == self.k.axes
                    && self.v.existing == self.k.existing
                {
                    k
                } else {
                    self.v.emit(g)?
                };
                (k, v, None)
            }
        };
        let mask = self.emit_mask(g)?;
        let sinks = match &self.sinks {
            Some(l) => Some(l.emit(g)?),
            None => None,
        };
        let mut attrs = Attrs::new();
        attrs.insert("scale".into(), Attr::Float(self.scale as f32));
        if self.causal {
            attrs.insert("causal".into(), Attr::Int(1));
        }
        if self.window > 0 {
            attrs.insert("window".into(), Attr::Int(self.window));
        }
        if self.softcap > 0.0 {
            attrs.insert("softcap".into(), Attr::Float(self.softcap as f32));
        }
        let mut inputs = vec![Some(q), Some(k), Some(v), mask];
        if past.is_some() || sinks.is_some() {
            inputs.push(past.map(|p| p.0));
            inputs.push(past.map(|p| p.1));
        }
        if sinks.is_some() {
            inputs.push(sinks);
        }
        let (pk, pv) = present.unwrap_or((None, None));
        let n_out = if pk.is_some() || pv.is_some() { 3 } else { 1 };
        let id = add_inferred(g, "attention", attrs, inputs, n_out, origin)
            .map_err(|e| CompileError::Pass(e.to_string()))?;
        // Inference gives every output; keep those read.
        g.node_mut(id).outputs.truncate(n_out);
        let mut out = out0(id);
        if self.rank == 3 {
            let dims = g.node(self.root).outputs[0].shape.clone();
            out = reshape(g, out, &dims)?;
        }
        let mut pairs = vec![(out0(self.root), out)];
        for (o, old) in [(1, pk), (2, pv)] {
            if let Some(old) = old {
                pairs.push((
                    old,
                    Value {
                        node: id,
                        output: o,
                    },
                ));
            }
        }
        Ok(pairs)
    }

    /// The mask input: the kept terms (reduced along axes they do not depend on), summed.
    fn emit_mask(&self, g: &mut Graph) -> Result<Option<Value>, CompileError> {
        let mut parts = Vec::new();
        for (t, e) in &self.masks {
            let x = match t {
                Term::Add(v) => {
                    let shape = g.value_type(*v).shape.clone();
                    let free = free_axes(e, &shape);
                    if free.is_empty() {
                        *v
                    } else {
                        reduce(g, *v, e, &free)?
                    }
                }
                Term::Fill {
                    cond,
                    fill,
                    attend_if,
                } => {
                    if *fill == f64::NEG_INFINITY && *attend_if && self.masks.len() == 1 {
                        // A bool mask: true attends.
                        *cond
                    } else {
                        let z = scalar_constant(g, self.dtype, 0.0)?;
                        let f = scalar_constant(g, self.dtype, *fill)?;
                        let (a, b) = if *attend_if { (z, f) } else { (f, z) };
                        add(
                            g,
                            "Where",
                            Attrs::new(),
                            vec![Some(*cond), Some(a), Some(b)],
                            "",
                        )?
                    }
                }
            };
            parts.push(self.heads_split(g, x)?);
        }
        let mut it = parts.into_iter();
        let Some(mut acc) = it.next() else {
            return Ok(None);
        };
        for x in it {
            acc = add(g, "Add", Attrs::new(), vec![Some(acc), Some(x)], "")?;
        }
        Ok(Some(acc))
    }
}

impl Region {
    /// A rank-3 mask `[B*H, S, T]` of flattened logits as `[B, H, S, T]`.
    fn heads_split(&self, g: &mut Graph, x: Value) -> Result<Value, CompileError> {
        let shape = g.value_type(x).shape.clone();
        if self.rank != 3 || shape.len() != 3 || shape[0].as_const() == Some(1) {
            return Ok(x);
        }
        let [b, h] = self.batch_heads.clone();
        reshape(g, x, &[b, h, shape[1].clone(), shape[2].clone()])
    }
}

/// The sinks `[Hq]` behind a sink column `[.., Hq, .., 1]` that holds one value per head.
fn sink_layout(
    g: &Graph,
    col: Value,
    hq: &Dim,
    dtype: DType,
    nodes: &mut Vec<NodeId>,
) -> Option<Layout> {
    let ty = g.value_type(col);
    if ty.rank() != 4 || ty.dtype != dtype {
        return None;
    }
    let view: View = trace(g, col);
    if view.scale != 1.0 {
        return None;
    }
    // Batch, query and the column axis may only broadcast.
    for a in [0, 2, 3] {
        let grp = &view.groups[a];
        if grp
            .iter()
            .any(|x| matches!(x, Atom::Src(_)) && view.atom_dim(x).as_const() != Some(1))
        {
            return None;
        }
    }
    let l = Layout::new(&view, &[Pick::Axis(1)], None)?;
    if l.dims[0] != *hq {
        return None;
    }
    // Source axes outside the heads must be size 1 (the reshape to [Hq] drops them).
    let src_shape = &view.src_shape;
    if (0..src_shape.len()).any(|a| !l.axes[0].contains(&a) && src_shape[a].as_const() != Some(1)) {
        return None;
    }
    nodes.extend(view.nodes.iter().copied());
    Some(l)
}
