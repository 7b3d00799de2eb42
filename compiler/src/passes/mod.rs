//! Graph passes and the pass manager.
//!
//! A [`Pass`] rewrites a graph in place and says whether it changed anything. Passes are
//! found by name in [`PASSES`]; a [`PassManager`] runs a pipeline given as text
//! (`canonicalize,dce`), verifies the IR after every pass (naming the pass that broke it),
//! and through [`PassContext`] prints the IR before/after passes, dumps numbered .kir files
//! and stops after a given pass.
//!
//! Passes (one file each):
//! - `constant-fold`: evaluates nodes whose inputs are all constants.
//! - `shape-propagation`: replaces shape computations whose result is known symbolically by
//!   `dims` nodes (or constants).
//! - `simplify`: algebraic cleanups of exporter noise (Identity, Reshape of Reshape, Cast to
//!   the same dtype, identity or composed Transposes, inference-mode Dropout).
//! - `cse`: merges nodes computing the same thing.
//! - `dce`: removes nodes that no graph output depends on, and weights nothing refers to.
//! - `canonicalize`: all of the above, to a fixed point.
//! - `fuse-*`: fusion rules ([`fuse`]), each rewriting a recognised computation into one of
//!   kiln's fused ops; `fuse` runs them all.

use std::collections::BTreeMap;

use kiln_ir::{Attrs, Graph, NodeId, ValueType};

use crate::error::CompileError;

pub mod canonicalize;
pub mod constant_fold;
pub mod cse;
pub mod dce;
pub mod fuse;
pub mod manager;
pub mod shape_propagation;
pub mod simplify;

pub use manager::{Instrumentation, PassContext, PassManager};

/// A graph rewrite.
pub trait Pass {
    /// The name pipelines use (`constant-fold`).
    fn name(&self) -> &'static str;

    /// Rewrites `g`; returns whether anything changed. Must leave a graph the verifier
    /// accepts.
    fn run(&self, g: &mut Graph, ctx: &mut PassContext) -> Result<bool, CompileError>;

    /// The passes this one runs itself (a composite such as `canonicalize`), by name.
    fn members(&self) -> Vec<&'static str> {
        Vec::new()
    }
}

/// A registered pass: its name, a one-line description, and how to make one.
pub struct PassInfo {
    pub name: &'static str,
    pub description: &'static str,
    pub create: fn() -> Box<dyn Pass>,
}

/// Every pass, by name.
pub const PASSES: &[PassInfo] = &[
    PassInfo {
        name: "canonicalize",
        description: "constant-fold, shape-propagation, simplify, cse and dce, repeated until nothing changes",
        create: || Box::new(canonicalize::Canonicalize::new()),
    },
    PassInfo {
        name: "constant-fold",
        description: "evaluate nodes whose inputs are all constants (results up to 1M elements)",
        create: || Box::new(constant_fold::ConstantFold),
    },
    PassInfo {
        name: "cse",
        description: "merge nodes with the same op, attributes and inputs (the first one stays)",
        create: || Box::new(cse::Cse),
    },
    PassInfo {
        name: "dce",
        description: "remove nodes no graph output depends on, and weights nothing refers to",
        create: || Box::new(dce::Dce),
    },
    PassInfo {
        name: "fuse",
        description: "every fusion rule, in order: fuse-rms-norm, fuse-layer-norm, fuse-rope, fuse-attention, fuse-moe, fuse-swiglu, fuse-gelu",
        create: || Box::new(fuse::Fuse::new()),
    },
    PassInfo {
        name: "fuse-rms-norm",
        description: "x / sqrt(mean(x^2) + eps) * w (and ONNX RMSNormalization, SimplifiedLayerNormalization) -> rms_norm",
        create: || Box::new(fuse::Fusion::new(Box::new(fuse::rms_norm::FuseRmsNorm))),
    },
    PassInfo {
        name: "fuse-layer-norm",
        description: "(x - mean) / sqrt(var + eps) * w + b (and LayerNormalization) -> layer_norm",
        create: || Box::new(fuse::Fusion::new(Box::new(fuse::layer_norm::FuseLayerNorm))),
    },
    PassInfo {
        name: "fuse-rope",
        description: "rotary position embedding (rotate-half or interleaved) -> rope",
        create: || Box::new(fuse::Fusion::new(Box::new(fuse::rope::FuseRope))),
    },
    PassInfo {
        name: "fuse-attention",
        description: "softmax(q.k^T * scale + mask) . v with heads, GQA, KV cache (and ONNX Attention, com.microsoft MultiHeadAttention/GroupQueryAttention) -> attention",
        create: || Box::new(fuse::Fusion::new(Box::new(fuse::attention::FuseAttention))),
    },
    PassInfo {
        name: "fuse-moe",
        description: "router, top-k, experts' gated MLPs, weighted combine, shared experts (and com.microsoft.MoE) -> moe",
        create: || Box::new(fuse::Fusion::new(Box::new(fuse::moe::FuseMoe))),
    },
    PassInfo {
        name: "fuse-swiglu",
        description: "silu(gate) * up, and GPT-OSS's clamped form -> swiglu",
        create: || Box::new(fuse::Fusion::new(Box::new(fuse::swiglu::FuseSwiglu))),
    },
    PassInfo {
        name: "fuse-gelu",
        description: "GELU spelled out (erf or tanh form) -> Gelu",
        create: || Box::new(fuse::Fusion::new(Box::new(fuse::gelu::FuseGelu))),
    },
    PassInfo {
        name: "shape-propagation",
        description: "replace shape computations known symbolically by `dims` nodes or constants",
        create: || Box::new(shape_propagation::ShapePropagation),
    },
    PassInfo {
        name: "simplify",
        description: "remove Identity, no-op Cast/Reshape/Transpose and inference Dropout; merge Reshape and Transpose chains",
        create: || Box::new(simplify::Simplify),
    },
];

/// The registered pass named `name`.
pub fn lookup(name: &str) -> Option<&'static PassInfo> {
    PASSES.iter().find(|p| p.name == name)
}

/// Every pass name, comma separated, for messages.
pub fn known_names() -> String {
    PASSES.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
}

/// A new instance of the pass named `name`, or an error listing the known passes.
pub fn create(name: &str) -> Result<Box<dyn Pass>, CompileError> {
    match lookup(name) {
        Some(p) => Ok((p.create)()),
        None => Err(CompileError::Pass(format!(
            "unknown pass `{name}` (known passes: {})",
            known_names()
        ))),
    }
}

/// How often a rewrite rule matched and how often it was applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RuleStats {
    pub matched: u64,
    pub applied: u64,
}

/// Per-rule counters, keyed `pass/rule`.
pub type Stats = BTreeMap<String, RuleStats>;

/// Turns node `id` into an input-less node of `op` with `attrs` and the one output type
/// `ty`, keeping its id: its readers stay, and so does its place in the printed order.
/// Readers of its other outputs must have been moved away first.
pub(crate) fn rewrite_in_place(g: &mut Graph, id: NodeId, op: &str, attrs: Attrs, ty: ValueType) {
    g.set_inputs(id, Vec::new());
    let n = g.node_mut(id);
    n.op = op.to_string();
    n.attrs = attrs;
    n.outputs = vec![ty];
}
