//! Shared experts: a plain MLP on every token added to the routed output (DeepSeek; several
//! shared experts are one MLP with their intermediate sizes concatenated), optionally gated
//! per token by `sigmoid(x . gate)` (Qwen2-MoE's `shared_expert_gate`).

use kiln_ir::Value;

use super::act::Act;
use super::experts::{mlp, Mlp};
use super::layout::Mat;
use super::linear::{linear, Linear};
use super::view::attempt;
use crate::passes::fuse::pattern::Matcher;

/// A recognised shared expert.
pub struct Shared {
    /// Its input (a view of the routed experts' tokens).
    pub x: Value,
    pub act: Act,
    /// Gate (`[Is, H]` after re-layout), down (`[H, Is]`), up (`[Is, H]`).
    pub w1: Mat,
    pub w2: Mat,
    pub w3: Option<Mat>,
    /// `[H]` or `[1, H]` after re-layout.
    pub gate: Option<Mat>,
}

/// `v` as a shared expert: `mlp(x)` or `Sigmoid(x G) * mlp(x)` (either order).
pub fn shared(m: &mut Matcher, v: Value) -> Option<Shared> {
    if let Some(s) = attempt(m, |m| plain(m, v)) {
        return Some(s);
    }
    attempt(m, |m| {
        let mul = m.op(v, "Mul")?;
        let (gate, s) = m.either(mul, |m, sg| {
            let sig = m.op(sg, "Sigmoid")?;
            linear(m, m.input(sig, 0)?)
        })?;
        let mut s = plain(m, s)?;
        let (out, _) = gate.w.dims(m.g)?;
        if gate.x != s.x || gate.bias.is_some() || out != 1 {
            return None;
        }
        s.gate = Some(gate.w);
        Some(s)
    })
}

fn plain(m: &mut Matcher, v: Value) -> Option<Shared> {
    let mut proj = |m: &mut Matcher<'_>, v: Value| linear(m, v);
    let Mlp {
        act,
        fusion,
        gate,
        up,
        down,
    } = mlp(m, v, &mut proj, |l: &Linear| l.x)?;
    // The op's shared experts have no biases and separate gate and up matrices.
    if fusion != 0
        || gate.bias.is_some()
        || down.bias.is_some()
        || up.as_ref().is_some_and(|u| u.bias.is_some())
    {
        return None;
    }
    Some(Shared {
        x: gate.x,
        act,
        w1: gate.w,
        w2: down.w,
        w3: up.map(|u| u.w),
        gate: None,
    })
}
