//! The routed experts as recognised by either spelling ([`super::slots`],
//! [`super::expert_loop`]), and the gated MLP both share: down(act(gate(x), up(x))), with
//! gate and up as separate projections or one projection split into halves (`Split`) or
//! interleaved (`Slice` with step 2).

use kiln_ir::attr::AttrsExt;
use kiln_ir::{Dim, Value};

use super::act::{activation, Act};
use super::layout::{Bias, Weight};
use super::view::{attempt, is_last, op_out};
use crate::passes::fuse::pattern::Matcher;

/// The routed experts of a region.
pub struct Experts {
    /// Which spelling (`batched-mm`, `expert-loop`).
    pub form: &'static str,
    /// The tokens, `[N, H]`.
    pub x: Value,
    /// The routing weights and chosen experts, `[N, k]` each.
    pub weights: Value,
    pub indices: Value,
    pub w1: Weight,
    pub b1: Option<Bias>,
    pub w2: Weight,
    pub b2: Option<Bias>,
    pub w3: Option<Weight>,
    pub b3: Option<Bias>,
    /// 0: up in `w3` (or none); 1: interleaved in `w1`; 2: halves of `w1`.
    pub fusion: i64,
    pub act: Act,
}

/// A gated (or plain) MLP whose projections are `P`s.
pub struct Mlp<P> {
    pub act: Act,
    pub fusion: i64,
    pub gate: P,
    pub up: Option<P>,
    pub down: P,
}

/// `out = down(act(gate, up))` with projections recognised by `proj`; `input` gives a
/// projection's input.
pub fn mlp<'g, P>(
    m: &mut Matcher<'g>,
    out: Value,
    proj: &mut impl FnMut(&mut Matcher<'g>, Value) -> Option<P>,
    input: impl Fn(&P) -> Value,
) -> Option<Mlp<P>> {
    let down = proj(m, out)?;
    let (act, g, u) = activation(m, input(&down))?;
    let Some(u) = u else {
        let gate = proj(m, g)?;
        return Some(Mlp {
            act,
            fusion: 0,
            gate,
            up: None,
            down,
        });
    };
    if let Some((fusion, p)) = attempt(m, |m| fused_gate_up(m, g, u)) {
        let gate = proj(m, p)?;
        return Some(Mlp {
            act,
            fusion,
            gate,
            up: None,
            down,
        });
    }
    let gate = proj(m, g)?;
    let up = proj(m, u)?;
    (input(&gate) == input(&up)).then_some(Mlp {
        act,
        fusion: 0,
        gate,
        up: Some(up),
        down,
    })
}

/// Gate and up as parts of one projection `p` along its last axis: its first and second
/// halves (outputs 0 and 1 of an equal `Split`, or two `Slice`s: fusion 2), or its even and
/// odd elements (`Slice`s from 0 and from 1 with step 2: fusion 1). Returns `(fusion, p)`.
fn fused_gate_up(m: &mut Matcher, g: Value, u: Value) -> Option<(i64, Value)> {
    if g.node == u.node && g.output == 0 && u.output == 1 {
        let id = op_out(m, g, "Split", 0)?;
        let n = m.g.node(id);
        let p = n.input(0)?;
        let pt = m.g.value_type(p);
        let rank = pt.rank();
        if n.outputs.len() != 2
            || !is_last(n.attrs.int_or("axis", 0).ok()?, rank)
            || m.g.value_type(g).shape != m.g.value_type(u).shape
        {
            return None;
        }
        return Some((2, p));
    }
    let (pg, g_range) = last_axis_slice(m, g)?;
    let (pu, u_range) = last_axis_slice(m, u)?;
    let dim = m.g.value_type(pg).shape.last()?.as_const()?;
    if pg != pu || dim % 2 != 0 {
        return None;
    }
    let half = dim / 2;
    match (g_range, u_range) {
        ((0, 2), (1, 2)) => Some((1, pg)),
        ((0, 1), (s, 1))
            if s == half && last_dim(m, g) == Some(half) && last_dim(m, u) == Some(half) =>
        {
            Some((2, pg))
        }
        _ => None,
    }
}

fn last_dim(m: &Matcher, v: Value) -> Option<i64> {
    m.g.value_type(v).shape.last()?.as_const()
}

/// `Slice(p, [start], [end], [last], [step])` reaching the end of the axis (or, with step 1,
/// any end): returns `(p, (start, step))`.
fn last_axis_slice(m: &mut Matcher, v: Value) -> Option<(Value, (i64, i64))> {
    let id = m.op(v, "Slice")?;
    let p = m.input(id, 0)?;
    let pt = m.g.value_type(p).clone();
    let dim = pt.shape.last()?.as_const()?;
    let one = |m: &Matcher, i: usize| -> Option<i64> {
        let [x] = m.ints(m.input(id, i)?)?[..] else {
            return None;
        };
        Some(x)
    };
    let (start, end, axis) = (one(m, 1)?, one(m, 2)?, one(m, 3)?);
    let step = match m.input(id, 4) {
        Some(_) => one(m, 4)?,
        None => 1,
    };
    let ok = is_last(axis, pt.rank()) && (0..dim).contains(&start) && (step == 1 || end >= dim);
    ok.then_some((p, (start, step)))
}

/// True if `v` has shape `[n, h]`.
pub fn is_rows(m: &Matcher, v: Value, n: &Dim, h: &Dim) -> bool {
    m.g.value_type(v).shape == [n.clone(), h.clone()]
}
