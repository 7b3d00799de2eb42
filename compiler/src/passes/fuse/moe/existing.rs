//! `com.microsoft.MoE` -> `moe`, form `com.microsoft.MoE`.
//!
//! `moe`'s inputs 0-7 and attributes are ONNX Runtime's, so the op is renamed, with:
//! - `activation_type` written out (ONNX Runtime's default is `relu`, `moe`'s `swiglu`);
//! - `swiglu_fusion` kept only with `swiglu` (ONNX Runtime ignores it for the others), and
//!   `fc3` dropped when fused (ONNX Runtime ignores it then);
//! - router logits given per token `[T, E]` for an input `[B, S, H]` reshaped to
//!   `[B, S, E]` (`moe` wants the same leading dims).
//!
//! Left as it is for what `moe` computes differently: `gelu` (ONNX Runtime's CPU kernel uses
//! the tanh approximation, `moe` the exact erf), `use_sparse_mixer`, a non-positive
//! `swiglu_limit`, `swiglu` without an up projection, or weights of another dtype. ONNX
//! Runtime breaks ties between equal router probabilities towards the higher expert index,
//! `moe` towards the lower: the two differ only on exactly tied logits.

use kiln_ir::attr::AttrsExt;
use kiln_ir::{Attr, Attrs, Dim, Graph, NodeId};

use crate::passes::fuse::pattern::{is_bound, out0, Builder};
use crate::passes::fuse::Match;

/// The region rooted at `root`, if it is one of this file's forms.
pub fn find(g: &Graph, root: NodeId) -> Option<Match> {
    let nd = g.node(root);
    if nd.op != "com.microsoft.MoE" {
        return None;
    }
    let a = &nd.attrs;
    let act = a.str_or("activation_type", "relu").ok()?.to_string();
    if !matches!(act.as_str(), "relu" | "silu" | "identity" | "swiglu") {
        return None;
    }
    if a.int_or("use_sparse_mixer", 0).ok()? != 0 {
        return None;
    }
    let k = a.int_or("k", 1).ok()?;
    let normalize = a.int_or("normalize_routing_weights", 0).ok()?;
    let fusion = a.int_or("swiglu_fusion", 0).ok()?;
    if k < 1 || !(0..=1).contains(&normalize) || !(0..=2).contains(&fusion) {
        return None;
    }
    let swiglu = act == "swiglu";
    let fusion = if swiglu { fusion } else { 0 };
    let limit = a.float("swiglu_limit").ok()?;
    if swiglu && limit.is_some_and(|l| l.is_nan() || l <= 0.0) {
        return None;
    }
    let x = nd.input(0)?;
    let router = nd.input(1)?;
    let (xt, rt) = (g.value_type(x), g.value_type(router));
    let dt = xt.dtype;
    if !dt.is_float() || xt.rank() < 2 || rt.rank() != 2 {
        return None;
    }
    // Every weight and bias in x's dtype, fc1 / fc2 of rank 3.
    for i in 1..8 {
        if let Some(v) = nd.input(i) {
            if g.value_type(v).dtype != dt {
                return None;
            }
        }
    }
    let (w1, w2) = (nd.input(2)?, nd.input(4)?);
    if g.value_type(w1).rank() != 3 || g.value_type(w2).rank() != 3 {
        return None;
    }
    let (w3, b3) = if fusion != 0 {
        (None, None)
    } else {
        (nd.input(6), nd.input(7))
    };
    if swiglu && fusion == 0 && w3.is_none() {
        return None;
    }
    if b3.is_some() && w3.is_none() {
        return None;
    }
    // The router's rows as x's leading dims, unless they already are.
    let lead = &xt.shape[..xt.rank() - 1];
    let e = rt.shape[1].clone();
    let router_shape: Option<Vec<Dim>> = if xt.rank() == 2 {
        None
    } else {
        let mut s = lead.to_vec();
        s.push(e);
        if !s.iter().all(|d| is_bound(g, d)) {
            return None;
        }
        Some(s)
    };
    let mut at = Attrs::new();
    at.insert("k".into(), Attr::Int(k));
    at.insert("normalize_routing_weights".into(), Attr::Int(normalize));
    at.insert("activation_type".into(), Attr::Str(act.clone()));
    if swiglu {
        at.insert("swiglu_fusion".into(), Attr::Int(fusion));
        at.insert(
            "activation_alpha".into(),
            Attr::Float(a.float_or("activation_alpha", 1.0).ok()?),
        );
        at.insert(
            "activation_beta".into(),
            Attr::Float(a.float_or("activation_beta", 0.0).ok()?),
        );
        if let Some(l) = limit {
            at.insert("swiglu_limit".into(), Attr::Float(l));
        }
    }
    let inputs = vec![
        Some(x),
        Some(router),
        Some(w1),
        nd.input(3),
        Some(w2),
        nd.input(5),
        w3,
        b3,
    ];
    let origin = nd.origin.clone();
    Some(Match {
        form: "com.microsoft.MoE",
        nodes: vec![root],
        rewrite: Box::new(move |g: &mut Graph| {
            let mut b = Builder::new(g, &origin);
            let mut inputs = inputs;
            if let Some(shape) = router_shape {
                let shape = b.dims(&shape, false)?;
                inputs[1] = Some(b.op("Reshape", &[router, shape], &[])?);
            }
            while inputs.last() == Some(&None) {
                inputs.pop();
            }
            let y = b.node("moe", at, inputs, 1)?[0];
            Ok(vec![(out0(root), y)])
        }),
    })
}
