//! `fuse-rope`: rotary position embedding -> `rope(x, cos, sin) {interleaved, rotary_dim?}`.
//!
//! Forms (after canonicalize; `d` = x's last dim, `h` = d / 2, slices on the last axis):
//! - `rotate-half` (HF LLaMA, Mistral, Qwen): `x * C + rotate_half(x) * S` with
//!   `rotate_half(x) = Concat(-x[h:], x[:h])` (`Neg` or `* -1`), operands in any order;
//! - `rotate-interleaved` (GPT-J, DeepSeek-V4): the same with adjacent pairs,
//!   `rotate(x) = Reshape(Concat(Unsqueeze(-x[1::2], -1), Unsqueeze(x[::2], -1)), [.., d])`;
//!   there `C`, `S` are full-width tables `[.., d]` whose pairs hold one angle: halves equal
//!   (`Concat(f, f)`, `Tile`) or adjacent entries equal (`repeat_interleave` as
//!   Unsqueeze/Expand/Reshape), proven through ops that keep each row of the last axis
//!   (Cos, Sin, Neg, Cast, scalar Mul/Div, Unsqueeze, Squeeze, Reshape and Expand that keep
//!   the last dim, Gather by position and Slice of a cache on other axes), or a constant
//!   whose pairs are equal. rope's half tables are rebuilt from below the duplication
//!   (`Cos(f)` for `Cos(Concat(f, f))`, a gather from the constant's first halves) or,
//!   where a Reshape or Expand lies between, sliced.
//! - `split-halves` / `split-even-odd` (DeepSeek-V3's MLA rope, Meta's reference):
//!   `Concat(a * c - b * s, b * c + a * s)` with `(a, b)` = `(x[:h], x[h:])` or
//!   `(x[::2], x[1::2])` and half tables `c`, `s`. The even/odd form puts its output in
//!   halves order: it is rope on `Concat(x[::2], x[1::2])`.
//!   The split forms' pair may end a longer Concat, `Concat(p.., a * c - b * s, b * c + a * s)`
//!   (the TorchScript exporter flattens DeepSeek-V3's `cat(q_nope, cat(..))` into one): that
//!   becomes `Concat(p.., rope(x))`.
//! - `partial-*`: partial rotary (Phi, GLM): `Concat(rope(x[:r]), x[r:])` -> rope(x)
//!   `{rotary_dim = r}`. A rotated part that is not the first (DeepSeek's `qk_rope_head_dim`
//!   after `qk_nope_head_dim`) is a rope on that slice, concatenated as before.
//!
//! Anything whose halves do not line up (slices that are not the two halves, tables whose
//! pairs are not provably equal, another tensor's rotation) is left alone.

use kiln_ir::attr::AttrsExt;
use kiln_ir::{Attr, Attrs, DType, Dim, Graph, NodeId, Tensor, Value};

use super::pattern::{add, axis_index, constant, other_input, out0, sole_user, Matcher};
use super::{Match, Rule};
use crate::error::CompileError;

pub struct FuseRope;

impl Rule for FuseRope {
    fn name(&self) -> &'static str {
        "fuse-rope"
    }

    fn find(&self, g: &Graph, root: NodeId) -> Option<Match> {
        let op = g.node(root).op.as_str();
        if op == "com.microsoft.RotaryEmbedding" {
            return super::rope_existing::find(g, root);
        }
        if op == "Concat" {
            if let Some(m) = partial(g, root) {
                return Some(m);
            }
        }
        if op != "Add" && op != "Concat" {
            return None;
        }
        if followed_by_partial(g, root) {
            return None;
        }
        let c = core(g, root)?;
        let form = form_name(c.form, false);
        Some(rewrite(g, root, c, form, None))
    }
}

/// How rope's x is obtained.
#[derive(Clone, Copy)]
enum Rotated {
    /// x itself.
    Whole(Value),
    /// `Concat(even, odd)`: the even/odd split put in halves order.
    EvenOdd(Value, Value),
}

/// One of rope's cos/sin tables `[.., h]`, as the rewrite builds it: `base` (its first of
/// each pair when `pairs` is set), with `chain` (ops keeping rows, last op first) replayed.
#[derive(Clone)]
struct Table {
    base: Value,
    pairs: Option<Pairs>,
    chain: Vec<Step>,
}

/// How a full table's pairs lie: `h` = the half width.
#[derive(Clone, Copy)]
struct Pairs {
    interleaved: bool,
    h: i64,
}

impl Table {
    fn half(v: Value) -> Table {
        Table {
            base: v,
            pairs: None,
            chain: Vec::new(),
        }
    }
}

/// A node on the way from a full table down to its duplication, and its data input.
#[derive(Clone, Copy)]
struct Step {
    node: NodeId,
    input: usize,
    /// True if it can be applied to the half table as it is (no shape in its inputs).
    replayable: bool,
}

/// A recognised rotation (without the partial-rotary Concat).
struct Core {
    form: Form,
    x: Rotated,
    cos: Table,
    sin: Table,
    interleaved: bool,
    nodes: Vec<NodeId>,
    /// Inputs of the root Concat before a split form's pair, concatenated before the rope.
    prefix: Vec<Value>,
}

#[derive(Clone, Copy, PartialEq)]
enum Form {
    RotateHalf,
    RotateInterleaved,
    SplitHalves,
    SplitEvenOdd,
}

fn form_name(form: Form, partial: bool) -> &'static str {
    match (form, partial) {
        (Form::RotateHalf, false) => "rotate-half",
        (Form::RotateInterleaved, false) => "rotate-interleaved",
        (Form::SplitHalves, false) => "split-halves",
        (Form::SplitEvenOdd, false) => "split-even-odd",
        (Form::RotateHalf, true) => "partial-rotate-half",
        (Form::RotateInterleaved, true) => "partial-rotate-interleaved",
        (Form::SplitHalves, true) => "partial-split-halves",
        (Form::SplitEvenOdd, true) => "partial-split-even-odd",
    }
}

fn core(g: &Graph, root: NodeId) -> Option<Core> {
    match g.node(root).op.as_str() {
        "Add" => rotate(g, root),
        "Concat" => split(g, root),
        _ => None,
    }
}

/// The last dim of `v`, if known.
fn last_dim(g: &Graph, v: Value) -> Option<i64> {
    g.value_type(v).shape.last()?.as_const()
}

/// `x * C + rot(x) * S`.
fn rotate(g: &Graph, root: NodeId) -> Option<Core> {
    let mut m = Matcher::new(g);
    m.take(root);
    let ((x, inter, s_full), c_prod) = m.either(root, |m, v| {
        let mul = m.op(v, "Mul")?;
        let ((x, inter), s) = m.either(mul, |m, r| rotated(m, r))?;
        (m.g.value_type(v) == m.g.value_type(x)).then_some((x, inter, s))
    })?;
    let mul = m.op(c_prod, "Mul")?;
    if g.value_type(c_prod) != g.value_type(x) {
        return None;
    }
    let (_, c_full) = m.either(mul, |_, v| (v == x).then_some(()))?;
    let d = last_dim(g, x)?;
    let (ct, st) = (g.value_type(c_full), g.value_type(s_full));
    if ct != st || ct.rank() < 2 || last_dim(g, c_full)? != d {
        return None;
    }
    let cos = full_table(g, c_full, d, inter)?;
    let sin = full_table(g, s_full, d, inter)?;
    Some(Core {
        form: if inter {
            Form::RotateInterleaved
        } else {
            Form::RotateHalf
        },
        x: Rotated::Whole(x),
        cos,
        sin,
        interleaved: inter,
        nodes: m.nodes(),
        prefix: Vec::new(),
    })
}

/// A last-axis slice `x[start..end; step]`, bounds resolved against x's last dim.
#[derive(Clone, Copy, PartialEq)]
struct LastSlice {
    x: Value,
    start: i64,
    end: i64,
    step: i64,
}

fn last_slice(m: &mut Matcher, v: Value) -> Option<LastSlice> {
    let s = m.op(v, "Slice")?;
    let x = m.input(s, 0)?;
    let rank = m.g.value_type(x).rank();
    let d = last_dim(m.g, x)?;
    let one = |m: &Matcher, i: usize| -> Option<Option<i64>> {
        match m.input(s, i) {
            Some(v) => match m.ints(v)?.as_slice() {
                [a] => Some(Some(*a)),
                _ => None,
            },
            None => Some(None),
        }
    };
    let axis = one(m, 3)?.unwrap_or(0);
    if axis_index(axis, rank)? != rank - 1 {
        return None;
    }
    let step = one(m, 4)?.unwrap_or(1);
    if step <= 0 {
        return None;
    }
    let clamp = |b: i64| if b < 0 { (b + d).max(0) } else { b.min(d) };
    let start = clamp(one(m, 1)??);
    let end = clamp(one(m, 2)??);
    Some(LastSlice {
        x,
        start,
        end,
        step,
    })
}

/// `-v` as `Neg(v)` or `v * -1`.
fn negated(m: &mut Matcher, v: Value) -> Option<Value> {
    if let Some(n) = m.op(v, "Neg") {
        return m.input(n, 0);
    }
    let mul = m.op(v, "Mul")?;
    let (_, other) = m.either(mul, |m, c| (m.scalar(c)? == -1.0).then_some(()))?;
    Some(other)
}

/// True if Concat node `id` joins exactly two inputs on its last axis.
fn is_last_axis_concat(g: &Graph, id: NodeId) -> bool {
    g.node(id).inputs().len() == 2 && joins_last_axis(g, id)
}

/// True if Concat node `id` joins its inputs on its last axis.
fn joins_last_axis(g: &Graph, id: NodeId) -> bool {
    let n = g.node(id);
    let rank = n.outputs[0].rank();
    n.attrs
        .int("axis")
        .ok()
        .flatten()
        .and_then(|a| axis_index(a, rank))
        == Some(rank - 1)
}

/// `rotate_half(x)` or its interleaved form: returns x and whether pairs are adjacent.
fn rotated(m: &mut Matcher, r: Value) -> Option<(Value, bool)> {
    let g = m.g;
    let d = last_dim(g, r)?;
    if d <= 0 || d % 2 != 0 {
        return None;
    }
    let h = d / 2;
    if let Some(cat) = m.op(r, "Concat") {
        // Concat(-x[h:], x[:h])
        if !is_last_axis_concat(g, cat) {
            return None;
        }
        let x2 = negated(m, m.input(cat, 0)?)?;
        let hi = last_slice(m, x2)?;
        let lo = last_slice(m, m.input(cat, 1)?)?;
        let want_lo = LastSlice {
            x: hi.x,
            start: 0,
            end: h,
            step: 1,
        };
        let want_hi = LastSlice {
            start: h,
            end: d,
            ..want_lo
        };
        let ok = lo == want_lo && hi == want_hi && g.value_type(hi.x) == g.value_type(r);
        return ok.then_some((hi.x, false));
    }
    // Reshape(Concat(Unsqueeze(-x[1::2], -1), Unsqueeze(x[::2], -1), axis = -1), [.., d])
    let re = m.op(r, "Reshape")?;
    let cat = m.op(m.input(re, 0)?, "Concat")?;
    if !is_last_axis_concat(g, cat) {
        return None;
    }
    let ct = g.node(cat).outputs[0].clone();
    let rt = g.value_type(r);
    let rank = rt.rank();
    if ct.rank() != rank + 1
        || ct.shape[..rank - 1] != rt.shape[..rank - 1]
        || ct.shape[rank - 1] != Dim::from(h)
        || ct.shape[rank] != Dim::from(2i64)
    {
        return None;
    }
    let unsqueezed = |m: &mut Matcher, v: Value| -> Option<Value> {
        let u = m.op(v, "Unsqueeze")?;
        let axes = m.ints(m.input(u, 1)?)?;
        (axes.len() == 1 && axis_index(axes[0], rank + 1)? == rank).then_some(())?;
        m.input(u, 0)
    };
    let odd = unsqueezed(m, m.input(cat, 0)?)?;
    let odd = negated(m, odd)?;
    let odd = last_slice(m, odd)?;
    let even = unsqueezed(m, m.input(cat, 1)?)?;
    let even = last_slice(m, even)?;
    let want_even = LastSlice {
        x: odd.x,
        start: 0,
        end: d,
        step: 2,
    };
    // x[1::2] ends at d or at d - 1 (the same elements).
    let ok = even == want_even
        && odd.x == even.x
        && odd.start == 1
        && odd.end >= d - 1
        && odd.step == 2
        && g.value_type(odd.x) == rt;
    ok.then_some((odd.x, true))
}

/// `Concat(p.., a * c - b * s, b * c + a * s)` with (a, b) the halves or the even/odd
/// elements of x and any inputs `p` before them.
fn split(g: &Graph, root: NodeId) -> Option<Core> {
    let n = g.node(root).inputs().len();
    if n < 2 || !joins_last_axis(g, root) {
        return None;
    }
    let mut m = Matcher::new(g);
    m.take(root);
    let prefix = (0..n - 2)
        .map(|i| m.input(root, i))
        .collect::<Option<Vec<_>>>()?;
    let (y1, y2) = (m.input(root, n - 2)?, m.input(root, n - 1)?);
    let sub = m.op(y1, "Sub")?;
    let (p, q) = (m.input(sub, 0)?, m.input(sub, 1)?);
    let (pm, qm) = (m.op(p, "Mul")?, m.op(q, "Mul")?);
    let add = m.op(y2, "Add")?;
    // a * c - b * s: try each operand of each product as the slice.
    let mut found = None;
    'choice: for i in 0..2 {
        for j in 0..2 {
            let mark = m.mark();
            let (a_v, c) = (m.input(pm, i)?, m.input(pm, 1 - i)?);
            let (b_v, s) = (m.input(qm, j)?, m.input(qm, 1 - j)?);
            if let (Some(a), Some(b)) = (last_slice(&mut m, a_v), last_slice(&mut m, b_v)) {
                if a.x == b.x && second_half(&mut m, add, (a_v, b_v), (c, s)) {
                    found = Some((a, a_v, c, b, b_v, s));
                    break 'choice;
                }
            }
            m.reset(mark);
        }
    }
    let (a, a_v, c, b, b_v, s) = found?;
    let x = a.x;
    let d = last_dim(g, x)?;
    if b.x != x || d <= 0 || d % 2 != 0 {
        return None;
    }
    let h = d / 2;
    let (form, rotated) = if (a.start, a.end, a.step, b.start, b.end, b.step) == (0, h, 1, h, d, 1)
    {
        (Form::SplitHalves, Rotated::Whole(x))
    } else if (a.start, a.end, a.step, b.start, b.step) == (0, d, 2, 1, 2) && b.end >= d - 1 {
        (Form::SplitEvenOdd, Rotated::EvenOdd(a_v, b_v))
    } else {
        return None;
    };
    // Half tables: one angle per pair, broadcasting over the half's leading axes.
    let (ct, st, at) = (g.value_type(c), g.value_type(s), g.value_type(a_v));
    if ct != st || ct.rank() < 2 || last_dim(g, c)? != h || g.value_type(y1) != at {
        return None;
    }
    Some(Core {
        form,
        x: rotated,
        cos: Table::half(c),
        sin: Table::half(s),
        interleaved: false,
        nodes: m.nodes(),
        prefix,
    })
}

/// True if Add node `add` is `b * c + a * s` in any order.
fn second_half(
    m: &mut Matcher,
    add: NodeId,
    (a, b): (Value, Value),
    (c, s): (Value, Value),
) -> bool {
    let product = |m: &mut Matcher, v: Value, x: Value, t: Value| -> Option<()> {
        let mul = m.op(v, "Mul")?;
        let ((), other) = m.either(mul, |_, u| (u == x).then_some(()))?;
        (other == t).then_some(())
    };
    m.either(add, |m, p| {
        product(m, p, b, c)?;
        product(m, other_input(m.g, add, p)?, a, s)
    })
    .is_some()
}

/// `Concat(core(x[:r]), x[r:])`.
fn partial(g: &Graph, root: NodeId) -> Option<Match> {
    if !is_last_axis_concat(g, root) {
        return None;
    }
    let n = g.node(root);
    let (rot, pass) = (n.input(0)?, n.input(1)?);
    if rot.output != 0 {
        return None;
    }
    let c = core(g, rot.node)?;
    let Rotated::Whole(xr) = c.x else {
        return None;
    };
    if !c.prefix.is_empty() {
        return None;
    }
    let mut m = Matcher::new(g);
    m.take(root);
    let head = last_slice(&mut m, xr)?;
    let tail = last_slice(&mut m, pass)?;
    let d = last_dim(g, head.x)?;
    let r = head.end;
    let ok = head.x == tail.x
        && (head.start, head.step, tail.start, tail.end, tail.step) == (0, 1, r, d, 1)
        && r > 0
        && r < d;
    if !ok {
        return None;
    }
    let mut c = c;
    c.x = Rotated::Whole(head.x);
    for id in m.nodes() {
        if !c.nodes.contains(&id) {
            c.nodes.push(id);
        }
    }
    let form = form_name(c.form, true);
    Some(rewrite(g, root, c, form, Some(r)))
}

/// True if `id`'s only reader is a partial-rotary Concat that takes it.
fn followed_by_partial(g: &Graph, id: NodeId) -> bool {
    sole_user(g, out0(id)).is_some_and(|u| g.node(u).op == "Concat" && partial(g, u).is_some())
}

/// The half table of full table `v` (last dim `d`) whose pairs are equal.
fn full_table(g: &Graph, v: Value, d: i64, interleaved: bool) -> Option<Table> {
    let pairs = Some(Pairs {
        interleaved,
        h: d / 2,
    });
    let mut chain: Vec<Step> = Vec::new();
    let mut cur = v;
    for _ in 0..16 {
        // Replayed on the half table where the chain allows it, else v sliced.
        let replayed = chain.iter().all(|s| s.replayable);
        if let Some(base) = undoubled(g, cur, d, interleaved) {
            return Some(if replayed {
                Table {
                    base,
                    pairs: None,
                    chain,
                }
            } else {
                Table {
                    base: v,
                    pairs,
                    chain: Vec::new(),
                }
            });
        }
        if let Some(t) = g.const_of(cur) {
            pairs_equal(&t, d, interleaved).then_some(())?;
            return Some(if replayed {
                Table {
                    base: cur,
                    pairs,
                    chain,
                }
            } else {
                Table {
                    base: v,
                    pairs,
                    chain: Vec::new(),
                }
            });
        }
        let step = row_keeping(g, cur, d)?;
        cur = g.node(step.node).input(step.input)?;
        chain.push(step);
    }
    None
}

/// True if every row of constant `t` (last dim `d`) has equal pairs.
fn pairs_equal(t: &Tensor, d: i64, interleaved: bool) -> bool {
    let d = d as usize;
    if t.shape().last() != Some(&d) || !t.dtype().is_float() {
        return false;
    }
    let h = d / 2;
    t.to_f64().chunks(d).all(|row| {
        (0..h).all(|p| {
            if interleaved {
                row[2 * p] == row[2 * p + 1]
            } else {
                row[p] == row[p + h]
            }
        })
    })
}

/// The undoubled table below `v` if `v` repeats it: `Concat(a, a)` or `Tile(a, [.., 2])`
/// (halves); `Reshape(Expand(Unsqueeze(a, -1), [.., 2]))` or
/// `Reshape(Concat(Unsqueeze(a, -1), Unsqueeze(a, -1)))` (adjacent pairs).
fn undoubled(g: &Graph, v: Value, d: i64, interleaved: bool) -> Option<Value> {
    if v.output != 0 {
        return None;
    }
    let n = g.node(v.node);
    let h = d / 2;
    let half = |a: Value| (last_dim(g, a) == Some(h)).then_some(a);
    if !interleaved {
        return match n.op.as_str() {
            "Concat" if is_last_axis_concat(g, v.node) && n.input(0) == n.input(1) => {
                half(n.input(0)?)
            }
            "Tile" => {
                let reps = g.const_of(n.input(1)?)?.to_i64();
                let (last, lead) = reps.split_last()?;
                (*last == 2 && lead.iter().all(|&r| r == 1)).then_some(())?;
                half(n.input(0)?)
            }
            _ => None,
        };
    }
    if n.op != "Reshape" {
        return None;
    }
    let e = n.input(0)?;
    let et = g.value_type(e);
    let vt = g.value_type(v);
    let rank = vt.rank();
    if et.rank() != rank + 1
        || et.shape[..rank - 1] != vt.shape[..rank - 1]
        || et.shape[rank - 1] != Dim::from(h)
        || et.shape[rank] != Dim::from(2i64)
        || e.output != 0
    {
        return None;
    }
    let en = g.node(e.node);
    let u = match en.op.as_str() {
        "Expand" => en.input(0)?,
        "Concat" if is_last_axis_concat(g, e.node) && en.input(0) == en.input(1) => en.input(0)?,
        _ => return None,
    };
    let un = g.node(u.node);
    if u.output != 0 || un.op != "Unsqueeze" {
        return None;
    }
    let axes = g.const_of(un.input(1)?)?.to_i64();
    (axes.len() == 1 && axis_index(axes[0], rank + 1)? == rank).then_some(())?;
    half(un.input(0)?)
}

/// The step from `v` down to its data input if `v`'s node keeps each row of the last axis
/// (of size `d`) as it is.
fn row_keeping(g: &Graph, v: Value, d: i64) -> Option<Step> {
    if v.output != 0 || last_dim(g, v) != Some(d) {
        return None;
    }
    let n = g.node(v.node);
    let rank = g.value_type(v).rank();
    let step = |input: usize, replayable: bool| {
        let i = n.input(input)?;
        (last_dim(g, i) == Some(d)).then_some(Step {
            node: v.node,
            input,
            replayable,
        })
    };
    let scalar = |i: usize| {
        n.input(i)
            .and_then(|c| g.const_of(c))
            .is_some_and(|t| t.len() == 1)
    };
    let in_rank = |i: usize| n.input(i).map(|x| g.value_type(x).rank());
    match n.op.as_str() {
        "Cos" | "Sin" | "Neg" | "Cast" | "Identity" => step(0, true),
        "Mul" if scalar(1) => step(0, true),
        "Mul" if scalar(0) => step(1, true),
        "Div" if scalar(1) => step(0, true),
        "Unsqueeze" => step(0, true),
        // Squeeze without axes would also drop a last dim of 1 in the half table.
        "Squeeze" => step(0, n.input(1).is_some()),
        "Reshape" | "Expand" => step(0, false),
        "Gather" => {
            let r = in_rank(0)?;
            let axis = axis_index(n.attrs.int_or("axis", 0).ok()?, r)?;
            (axis != r - 1).then_some(())?;
            step(0, true)
        }
        "Slice" => {
            let r = in_rank(0)?;
            let axes = g.const_of(n.input(3)?)?.to_i64();
            let last = axes
                .iter()
                .any(|&a| axis_index(a, r).is_none_or(|a| a == r - 1));
            (!last).then_some(())?;
            step(0, true)
        }
        "Transpose" => {
            let perm = n.attrs.ints("perm").ok()??;
            (perm.last() == Some(&(rank as i64 - 1))).then_some(())?;
            step(0, true)
        }
        _ => None,
    }
}

/// Builds table `t` in `g`.
fn build_table(g: &mut Graph, t: Table) -> Result<Value, CompileError> {
    let mut cur = match t.pairs {
        None => t.base,
        Some(Pairs { interleaved, h }) => {
            let k =
                |g: &mut Graph, x: i64| constant(g, Tensor::from_i64(DType::I64, vec![1], &[x]));
            let start = k(g, 0)?;
            let (end, step) = if interleaved {
                (k(g, 2 * h)?, k(g, 2)?)
            } else {
                (k(g, h)?, k(g, 1)?)
            };
            let axis = k(g, -1)?;
            let inputs = vec![Some(t.base), Some(start), Some(end), Some(axis), Some(step)];
            add(g, "Slice", Attrs::new(), inputs, "")?
        }
    };
    for s in t.chain.iter().rev() {
        let n = g.node(s.node).clone();
        let mut inputs = n.inputs().to_vec();
        inputs[s.input] = Some(cur);
        cur = add(g, &n.op, n.attrs.clone(), inputs, &n.origin)?;
    }
    Ok(cur)
}

fn rewrite(g: &Graph, root: NodeId, c: Core, form: &'static str, rotary_dim: Option<i64>) -> Match {
    let origin = g.node(root).origin.clone();
    let Core {
        x,
        cos,
        sin,
        interleaved,
        nodes,
        prefix,
        ..
    } = c;
    Match {
        form,
        nodes,
        rewrite: Box::new(move |g: &mut Graph| {
            let x = match x {
                Rotated::Whole(x) => x,
                Rotated::EvenOdd(even, odd) => {
                    let mut attrs = Attrs::new();
                    attrs.insert("axis".into(), Attr::Int(-1));
                    add(g, "Concat", attrs, vec![Some(even), Some(odd)], "")?
                }
            };
            let cos = build_table(g, cos)?;
            let sin = build_table(g, sin)?;
            let mut attrs = Attrs::new();
            attrs.insert("interleaved".into(), Attr::Int(interleaved as i64));
            if let Some(r) = rotary_dim {
                attrs.insert("rotary_dim".into(), Attr::Int(r));
            }
            let y = add(
                g,
                "rope",
                attrs,
                vec![Some(x), Some(cos), Some(sin)],
                &origin,
            )?;
            if prefix.is_empty() {
                return Ok(vec![(out0(root), y)]);
            }
            let mut attrs = Attrs::new();
            attrs.insert("axis".into(), Attr::Int(-1));
            let inputs = prefix.into_iter().chain([y]).map(Some).collect();
            let joined = add(g, "Concat", attrs, inputs, &origin)?;
            Ok(vec![(out0(root), joined)])
        }),
    }
}
