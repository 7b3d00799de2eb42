//! The `batched-mm` spelling (transformers' `batched_mm` experts, torch dynamo): each token
//! is repeated k times (`S = N k` slots), each slot gathers its expert's stacked weights
//! (`GatherND`/`Gather` by the flattened expert indices) and runs a batched MatMul, and the
//! weighted slots are summed per token:
//!
//! ```text
//! xs  = Reshape(Expand(Unsqueeze(x, 1), [1, k, 1]), [S, H])
//! up  = Squeeze(MatMul(GatherND(W1, idx), Unsqueeze(xs, -1)))   (+ GatherND(b1, idx))
//! y   = Squeeze(MatMul(GatherND(W2, idx), Unsqueeze(act(..), -1)))
//! out = ReduceSum(Reshape(y * Unsqueeze(Reshape(w, [S]), -1), [N, k, H]), axis 1)
//! ```
//!
//! (or `x @ W` with `[E, in, out]` weights; the weighting after the reshape to `[N, k, H]`).

use kiln_ir::attr::AttrsExt;
use kiln_ir::{Dim, NodeId, Value};

use super::experts::{is_rows, mlp, Experts};
use super::linear::{gathered, Gathered};
use super::view::{attempt, deepest_reshaped_from, reshaped_from, single_axis, view_root};
use crate::passes::fuse::pattern::Matcher;

/// The routed experts whose combine is `root` (a `ReduceSum` over the k slots).
pub fn find(m: &mut Matcher, root: NodeId) -> Option<Experts> {
    let n = m.g.node(root);
    if n.op != "ReduceSum" || n.attrs.int_or("keepdims", 1).ok()? != 0 {
        return None;
    }
    m.take(root);
    let t = m.input(root, 0)?;
    let tt = m.g.value_type(t).clone();
    let [nd, kd, h] = &tt.shape[..] else {
        return None;
    };
    if single_axis(m, root)? != 1 {
        return None;
    }
    let k = kd.as_const()?;
    let s = nd.mul(kd);
    let (y, weights) = weighted(m, t, nd, kd, &s, h)?;
    let mut proj = |m: &mut Matcher<'_>, v: Value| gathered(m, v, &s);
    let e = mlp(m, y, &mut proj, |p: &Gathered| p.x)?;
    // Every projection gathers by the same indices, and the first reads each token k times.
    let idx_root = view_root(m.g, e.down.idx);
    let all = [Some(&e.gate), e.up.as_ref(), Some(&e.down)];
    if all
        .iter()
        .flatten()
        .any(|p| view_root(m.g, p.idx) != idx_root)
    {
        return None;
    }
    let indices = deepest_reshaped_from(m, e.down.idx, &[nd.clone(), kd.clone()])?;
    let x = repeated(m, e.gate.x, nd, k, h)?;
    let up = e.up.map(|p| (p.w, p.bias));
    let (w3, b3) = match up {
        Some((w, b)) => (Some(w), b),
        None => (None, None),
    };
    Some(Experts {
        form: "batched-mm",
        x,
        weights,
        indices,
        w1: e.gate.w,
        b1: e.gate.bias,
        w2: e.down.w,
        b2: e.down.bias,
        w3,
        b3,
        fusion: e.fusion,
        act: e.act,
    })
}

/// `t` (`[N, k, H]`) as the expert outputs `y` (`[S, H]`) times the routing weights: returns
/// `y` and the weights (`[N, k]`).
fn weighted(
    m: &mut Matcher,
    t: Value,
    n: &Dim,
    k: &Dim,
    s: &Dim,
    h: &Dim,
) -> Option<(Value, Value)> {
    let nk = [n.clone(), k.clone()];
    // Weighted per slot, then viewed as [N, k, H].
    if let Some(r) = attempt(m, |m| {
        let p = reshaped_from(m, t, &[s.clone(), h.clone()])?;
        let mul = m.op(p, "Mul")?;
        let (w, y) = m.either(mul, |m, c| {
            let ct = m.g.value_type(c);
            (ct.shape == [s.clone(), Dim::from(1i64)]).then_some(())?;
            deepest_reshaped_from(m, c, &nk)
        })?;
        is_rows(m, y, s, h).then_some((y, w))
    }) {
        return Some(r);
    }
    // Viewed as [N, k, H], then weighted by [N, k, 1].
    let mul = m.op(t, "Mul")?;
    let (w, yv) = m.either(mul, |m, c| {
        let ct = m.g.value_type(c);
        (ct.shape == [n.clone(), k.clone(), Dim::from(1i64)]).then_some(())?;
        deepest_reshaped_from(m, c, &nk)
    })?;
    // The expert outputs, as a view of the down projection.
    Some((yv, w))
}

/// `xs` (`[S, H]`) as each token of `x` (`[N, H]`) repeated `k` times in a row:
/// `Reshape(Expand(Unsqueeze(x, 1), [.., k, ..]))` (or `Tile`), or a view of `x` when k is
/// 1; returns `x`.
fn repeated(m: &mut Matcher, xs: Value, n: &Dim, k: i64, h: &Dim) -> Option<Value> {
    // With k = 1 the repeat is a no-op that canonicalize removes: xs is a view of x.
    if k == 1 {
        return deepest_reshaped_from(m, xs, &[n.clone(), h.clone()]);
    }
    let nkh = [n.clone(), Dim::from(k), h.clone()];
    let e = reshaped_from(m, xs, &nkh)?;
    let id = attempt(m, |m| m.op(e, "Expand")).or_else(|| m.op(e, "Tile"))?;
    if m.g.node(id).op == "Tile" && m.ints(m.input(id, 1)?)? != [1, k, 1] {
        return None;
    }
    let one = m.input(id, 0)?;
    let x = reshaped_from(m, one, &[n.clone(), Dim::from(1i64), h.clone()])?;
    deepest_reshaped_from(m, x, &[n.clone(), h.clone()])
}
