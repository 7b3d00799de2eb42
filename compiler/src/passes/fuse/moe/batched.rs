//! Mixture-of-experts layers spelled out by exporters -> `moe`.
//!
//! A region is the routing (scores, TopK, renormalisation, scaling; [`router`]), the routed
//! experts in one of two spellings, and optionally shared experts ([`shared`]) added to
//! them. The router's logits (its MatMul/Gemm) stay outside: they are the op's input.
//!
//! Forms, reported as `<experts>/<routing>[+shared|+gated-shared]`:
//! - experts `batched-mm` ([`slots`]: transformers' `batched_mm`, each (token, expert) slot
//!   gathers its expert's stacked weights), root the `ReduceSum` over the k slots;
//! - experts `expert-loop` ([`expert_loop`]: one MLP per expert on all tokens, weighted by
//!   its column of the routing weights), root the top of the Add tree over the experts (a
//!   zero fill it starts from is dropped);
//! - with shared experts, the root is the `Add` of the routed output (or the experts' Add
//!   tree) and the shared MLP;
//! - routing ([`router::Routing::form`]): `softmax-topk[-norm]` (Mixtral, Qwen3-MoE),
//!   `topk-softmax` (GPT-OSS), `sigmoid-bias-topk-grouped-norm-scaled` (DeepSeek-V3),
//!   `sqrt-softplus-hash-norm-scaled` / `sqrt-softplus-bias-topk-norm-scaled`
//!   (DeepSeek-V4), ...
//!
//! Expert weights in another layout than the op's are re-laid at compile time
//! ([`layout`]). What does not fit the op exactly (a renormalisation over another axis,
//! scores the op has no function for, a shared expert with another activation) is not
//! matched, or (for the shared expert) left outside the region.

use std::sync::{Mutex, OnceLock};

use kiln_ir::{Attr, Attrs, DType, Dim, Graph, NodeId, Value, ValueType};

use super::super::pattern::{add, out0, Matcher};
use crate::error::CompileError;
use crate::passes::fuse::Match;

mod act;
mod expert_loop;
mod experts;
mod layout;
mod linear;
mod router;
mod shared;
mod slots;
mod view;

use experts::Experts;
use layout::{Bias, Weight};
use router::{Choice, Routing};
use shared::Shared;

/// The region rooted at `root`, if it is one of this file's forms.
pub fn find(g: &Graph, root: NodeId) -> Option<Match> {
    let r = region(g, root)?;
    // A region that is one term of a larger one (the routed part of a layer with shared
    // experts, a partial sum of the experts) is left to the larger one's root.
    if let Some(user) = enclosing_add(g, root) {
        if region(g, user).is_some() {
            return None;
        }
    }
    Some(r)
}

/// The Add that reads `root`'s output (through reshapes) as its only reader, if any.
fn enclosing_add(g: &Graph, root: NodeId) -> Option<NodeId> {
    let mut v = out0(root);
    loop {
        let users = g.users(v);
        if users.len() != 1 || g.is_output(v) {
            return None;
        }
        let u = users[0].0;
        match g.node(u).op.as_str() {
            "Add" => return Some(u),
            "Reshape" | "Unsqueeze" | "Squeeze" | "Flatten" if users[0].1 == 0 => v = out0(u),
            _ => return None,
        }
    }
}

/// What a region is made of.
struct Parts {
    experts: Experts,
    routing: Routing,
    shared: Option<Shared>,
}

fn region(g: &Graph, root: NodeId) -> Option<Match> {
    let mut m = Matcher::new(g);
    let (experts, shared) = match g.node(root).op.as_str() {
        "ReduceSum" => (slots::find(&mut m, root)?, None),
        "Add" => add_tree(&mut m, root)?,
        _ => return None,
    };
    let routing = router::routing(&mut m, experts.weights, experts.indices)?;
    let parts = Parts {
        experts,
        routing,
        shared,
    };
    let n = check(g, &parts)?;
    let form = intern(format!(
        "{}/{}{}",
        parts.experts.form,
        parts.routing.form(),
        match &parts.shared {
            None => "",
            Some(s) if s.gate.is_some() => "+gated-shared",
            Some(_) => "+shared",
        }
    ));
    let origin = g.node(root).origin.clone();
    let root_ty = g.value_type(out0(root)).clone();
    Some(Match {
        form,
        nodes: m.nodes(),
        rewrite: Box::new(move |g: &mut Graph| {
            let y = rewrite(g, &parts, &n, &origin)?;
            let y = if g.value_type(y).shape == root_ty.shape {
                y
            } else {
                reshape(g, y, &root_ty, &origin)
            };
            Ok(vec![(out0(root), y)])
        }),
    })
}

/// An Add tree over the experts' terms and/or a routed `batched-mm` part, plus at most one
/// shared expert.
fn add_tree(m: &mut Matcher, root: NodeId) -> Option<(Experts, Option<Shared>)> {
    let g = m.g;
    let root_ty = g.value_type(out0(root)).clone();
    let mut leaves = Vec::new();
    add_leaves(m, root, &mut leaves);
    let mut terms = Vec::new();
    let mut routed = None;
    let mut shared = None;
    for leaf in leaves {
        if g.value_type(leaf) != &root_ty {
            return None;
        }
        // The zeros an unrolled loop accumulates into.
        if view::fill(g, leaf) == Some(0.0) {
            m.take(leaf.node);
            continue;
        }
        if let Some(t) = view::attempt(m, |m| expert_loop::term(m, leaf)) {
            terms.push(t);
            continue;
        }
        if let Some(e) = view::attempt(m, |m| {
            let c = view::chain(m.g, leaf);
            let sum = *c.last()?;
            if sum.output != 0 || g.node(sum.node).op != "ReduceSum" {
                return None;
            }
            for u in &c[..c.len() - 1] {
                m.take(u.node);
            }
            slots::find(m, sum.node)
        }) {
            if routed.replace(e).is_some() {
                return None;
            }
            continue;
        }
        if let Some(s) = view::attempt(m, |m| shared::shared(m, leaf)) {
            if shared.replace(s).is_some() {
                return None;
            }
            continue;
        }
        return None;
    }
    let experts = match (routed, terms.is_empty()) {
        (Some(e), true) => e,
        (None, false) => expert_loop::assemble(terms)?,
        _ => return None,
    };
    Some((experts, shared))
}

/// The operands of the Adds under `id` (Adds read only by their parent Add join the tree).
fn add_leaves(m: &mut Matcher, id: NodeId, out: &mut Vec<Value>) {
    m.take(id);
    for v in m.g.node(id).inputs().iter().flatten() {
        let inner = v.output == 0
            && m.g.node(v.node).op == "Add"
            && m.g.users(*v).len() == 1
            && !m.g.is_output(*v);
        if inner {
            add_leaves(m, v.node, out);
        } else {
            out.push(*v);
        }
    }
}

/// The sizes of a region, checked against each other.
struct Sizes {
    /// Tokens.
    n: Dim,
}

/// Checks that the parts agree (tokens, hidden size, experts, k, intermediate sizes, dtypes)
/// and that the op can take them.
fn check(g: &Graph, p: &Parts) -> Option<Sizes> {
    let (e, r) = (&p.experts, &p.routing);
    let xt = g.value_type(e.x);
    let [n, h] = &xt.shape[..] else { return None };
    let h = h.as_const()? as usize;
    let dtype = xt.dtype;
    if !dtype.is_float() {
        return None;
    }
    let lt = g.value_type(r.logits);
    let [ln, le] = &lt.shape[..] else { return None };
    let experts = le.as_const()? as usize;
    let nk = [n.clone(), Dim::from(r.k)];
    if ln != n
        || lt.dtype != dtype
        || g.value_type(e.weights).shape != nk
        || g.value_type(e.indices).shape != nk
        || g.value_type(e.weights).dtype != dtype
    {
        return None;
    }
    if !matches!(r.choice, Choice::Hash { .. }) && r.k > experts {
        return None;
    }
    // Routed expert weights.
    let (e1, rows1, in1) = e.w1.dims(g)?;
    let inter = if e.fusion == 0 { rows1 } else { rows1 / 2 };
    let same_dtype = |w: &Weight| w.dtype(g) == dtype;
    if e1 != experts
        || in1 != h
        || (e.fusion != 0 && rows1 % 2 != 0)
        || e.w2.dims(g)? != (experts, h, inter)
        || !same_dtype(&e.w1)
        || !same_dtype(&e.w2)
        || !e.w1.usable(g)
        || !e.w2.usable(g)
    {
        return None;
    }
    if let Some(w3) = &e.w3 {
        if w3.dims(g)? != (experts, inter, h) || !same_dtype(w3) || !w3.usable(g) {
            return None;
        }
    }
    let bias_ok = |b: &Option<Bias>, rows: usize| {
        b.as_ref()
            .is_none_or(|b| b.dims(g) == Some((experts, rows)) && bias_dtype(g, b) == dtype)
    };
    if !bias_ok(&e.b1, rows1) || !bias_ok(&e.b2, h) || !bias_ok(&e.b3, inter) {
        return None;
    }
    match &r.choice {
        Choice::TopK {
            bias: Some(b),
            groups,
        } => {
            let bt = g.value_type(*b);
            if bt.shape != [Dim::from(experts)] || bt.dtype != dtype {
                return None;
            }
            // Fewer allowed experts than k would let the graph's TopK pick masked ones.
            if groups
                .is_some_and(|(ng, tg)| !experts.is_multiple_of(ng) || tg * (experts / ng) < r.k)
            {
                return None;
            }
        }
        Choice::Hash { table, ids } => {
            let it = g.value_type(*ids);
            let count = it.shape.iter().fold(Dim::from(1i64), |a, d| a.mul(d));
            if count != *n || g.value_type(*table).shape.get(1) != Some(&Dim::from(r.k)) {
                return None;
            }
        }
        _ => {}
    }
    if let Some(s) = &p.shared {
        if view::view_root(g, s.x) != view::view_root(g, e.x) || s.act != e.act {
            return None;
        }
        let (is, sh) = s.w1.dims(g)?;
        let ok = sh == h
            && s.w2.dims(g)? == (h, is)
            && s.w3.is_none_or(|w| w.dims(g) == Some((is, h)))
            && s.gate.is_none_or(|w| w.dims(g) == Some((1, h)))
            && [Some(s.w1), Some(s.w2), s.w3, s.gate]
                .iter()
                .flatten()
                .all(|w| w.usable(g) && g.value_type(w.v).dtype == dtype);
        if !ok || (e.w3.is_some() || e.fusion != 0) != s.w3.is_some() {
            return None;
        }
    }
    Some(Sizes { n: n.clone() })
}

fn bias_dtype(g: &Graph, b: &Bias) -> DType {
    match b {
        Bias::Stacked(v) => g.value_type(*v).dtype,
        Bias::PerExpert(vs) => g.value_type(vs[0]).dtype,
    }
}

/// Adds the `moe` node (and the re-laid weights); returns its output.
fn rewrite(g: &mut Graph, p: &Parts, s: &Sizes, origin: &str) -> Result<Value, CompileError> {
    let (e, r) = (&p.experts, &p.routing);
    let mut inputs: Vec<Option<Value>> = vec![None; 15];
    inputs[0] = Some(e.x);
    inputs[1] = Some(r.logits);
    inputs[2] = Some(layout::stacked(g, &e.w1, ".moe_w1")?);
    inputs[3] =
        e.b1.as_ref()
            .map(|b| layout::stacked_bias(g, b))
            .transpose()?;
    inputs[4] = Some(layout::stacked(g, &e.w2, ".moe_w2")?);
    inputs[5] =
        e.b2.as_ref()
            .map(|b| layout::stacked_bias(g, b))
            .transpose()?;
    inputs[6] =
        e.w3.as_ref()
            .map(|w| layout::stacked(g, w, ".moe_w3"))
            .transpose()?;
    inputs[7] =
        e.b3.as_ref()
            .map(|b| layout::stacked_bias(g, b))
            .transpose()?;
    let mut attrs = Attrs::new();
    attrs.insert("k".into(), Attr::Int(r.k as i64));
    match &r.choice {
        Choice::TopK { bias, groups } => {
            inputs[8] = *bias;
            if let Some((ng, tg)) = groups {
                attrs.insert("n_group".into(), Attr::Int(*ng as i64));
                attrs.insert("topk_group".into(), Attr::Int(*tg as i64));
            }
        }
        Choice::Hash { table, ids } => {
            inputs[9] = Some(*table);
            // The ids as one per token: a view the graph already has, else a new one.
            let want = ValueType::new(g.value_type(*ids).dtype, vec![s.n.clone()]);
            let have = view::chain(g, *ids)
                .into_iter()
                .find(|&v| g.value_type(v) == &want);
            inputs[10] = Some(match have {
                Some(v) => v,
                None => reshape(g, *ids, &want, origin),
            });
        }
        Choice::TopKSoftmax => {}
    }
    if let Some(sh) = &p.shared {
        let one = |g: &mut Graph, w: &layout::Mat, suffix| layout::out_major(g, w, suffix);
        inputs[11] = Some(one(g, &sh.w1, ".moe_shared_w1")?);
        inputs[12] = Some(one(g, &sh.w2, ".moe_shared_w2")?);
        inputs[13] = sh.w3.map(|w| one(g, &w, ".moe_shared_w3")).transpose()?;
        inputs[14] = sh
            .gate
            .map(|w| one(g, &w, ".moe_shared_gate"))
            .transpose()?;
    }
    while inputs.last() == Some(&None) {
        inputs.pop();
    }
    attrs.insert(
        "scoring_func".into(),
        Attr::Str(r.scoring.name().to_string()),
    );
    attrs.insert(
        "normalize_routing_weights".into(),
        Attr::Int(r.normalize as i64),
    );
    if r.scale != 1.0 {
        attrs.insert("routed_scaling_factor".into(), Attr::Float(r.scale as f32));
    }
    e.act.attrs(&mut attrs);
    if e.fusion != 0 {
        attrs.insert("swiglu_fusion".into(), Attr::Int(e.fusion));
    }
    add(g, "moe", attrs, inputs, origin)
}

/// `Reshape(v, ty.shape)`, the shape given by a `dims` node (it may be symbolic).
fn reshape(g: &mut Graph, v: Value, ty: &ValueType, origin: &str) -> Value {
    let mut a = Attrs::new();
    a.insert("value".into(), Attr::Dims(ty.shape.clone()));
    let shape_ty = ValueType::of(DType::I64, &[ty.rank()]);
    let shape = g.add_node("dims", a, vec![], vec![shape_ty], origin);
    let id = g.add_node(
        "Reshape",
        Attrs::new(),
        vec![Some(v), Some(out0(shape))],
        vec![ValueType::new(g.value_type(v).dtype, ty.shape.clone())],
        origin,
    );
    out0(id)
}

/// Form names are built from parts; each distinct one is kept once for the process.
fn intern(s: String) -> &'static str {
    static NAMES: OnceLock<Mutex<Vec<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(n) = names.iter().find(|n| **n == s) {
        return n;
    }
    let n: &'static str = Box::leak(s.into_boxed_str());
    names.push(n);
    n
}
