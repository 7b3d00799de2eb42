//! Fusion passes: recognise the computations behind kiln's fused ops (ir/src/ops/fused) in
//! exported graphs and rewrite each into one fused node.
//!
//! Every fusion is a [`Rule`]: given a candidate root node (the last node of a region), it
//! either finds the whole region and says how to rewrite it, or returns `None` and the graph
//! stays as it was. Rules match the computation, not one exporter's node order; they run
//! after `canonicalize`, so exporter noise (Identity, no-op Casts and Reshapes, composed
//! Transposes, shape arithmetic) is gone and constants are folded.
//!
//! [`Fusion`] drives one rule as a pass: it visits nodes in topological order, asks the
//! rule at each, records each region found (its form and node names, for the fusion report)
//! and applies it unless the rule is disabled (`--disable-rule`); dead region nodes are then
//! removed. The composite `fuse` runs every rule in [`RULES`] order.
//!
//! Rules (one file each):
//! - `fuse-rms-norm` -> `rms_norm`;
//! - `fuse-layer-norm` -> `layer_norm`;
//! - `fuse-rope` -> `rope`;
//! - `fuse-attention` -> `attention` (rope'd q and k are its inputs, so rope runs first);
//! - `fuse-moe` -> `moe` (before `fuse-swiglu`, which would take the experts' activations);
//! - `fuse-swiglu` -> `swiglu`;
//! - `fuse-gelu` -> ONNX `Gelu` (already the exact op; no kiln op of its own).

use kiln_ir::{Graph, NodeId, Value};

use super::{dce, Pass, PassContext};
use crate::error::CompileError;

pub mod attention;
pub mod gelu;
pub mod layer_norm;
pub mod moe;
pub mod pattern;
pub mod report;
pub mod rms_norm;
pub mod rope;
pub mod rope_existing;
pub mod skip_layer_norm;
pub mod swiglu;

/// How a matched region is rewritten: builds the fused node(s) and returns, for each value
/// the rest of the graph reads from the region, the value that replaces it.
pub type Rewrite = Box<dyn FnOnce(&mut Graph) -> Result<Vec<(Value, Value)>, CompileError>>;

/// A region a rule recognised.
pub struct Match {
    /// Which spelling matched (`"pow-reduce-mean"`, `"SimplifiedLayerNormalization"`):
    /// reported, so one can see which forms a model used.
    pub form: &'static str,
    /// Every node of the region (the rewritten computation), root included.
    pub nodes: Vec<NodeId>,
    pub rewrite: Rewrite,
}

/// A fusion rule.
pub trait Rule: Sync {
    /// The pass name, also the rule's name in reports and `--disable-rule`
    /// (`fuse-rms-norm`).
    fn name(&self) -> &'static str;

    /// Finds the region whose last node is `root`, if there is one.
    fn find(&self, g: &Graph, root: NodeId) -> Option<Match>;
}

/// Every fusion rule, in the order the composite `fuse` runs them.
pub fn rules() -> Vec<Box<dyn Rule>> {
    vec![
        Box::new(rms_norm::FuseRmsNorm),
        Box::new(layer_norm::FuseLayerNorm),
        Box::new(rope::FuseRope),
        Box::new(attention::FuseAttention),
        Box::new(moe::FuseMoe),
        Box::new(swiglu::FuseSwiglu),
        Box::new(gelu::FuseGelu),
    ]
}

/// The names of every fusion rule.
pub fn rule_names() -> Vec<&'static str> {
    rules().iter().map(|r| r.name()).collect()
}

/// One rule run as a pass.
pub struct Fusion {
    rule: Box<dyn Rule>,
}

impl Fusion {
    pub fn new(rule: Box<dyn Rule>) -> Fusion {
        Fusion { rule }
    }

    /// The fusion pass of the rule named `name`.
    pub fn named(name: &str) -> Option<Fusion> {
        rules()
            .into_iter()
            .find(|r| r.name() == name)
            .map(Fusion::new)
    }
}

/// A node's name for reports: its ONNX name where it has one, else its op.
fn node_name(g: &Graph, id: NodeId) -> String {
    let n = g.node(id);
    if n.origin.is_empty() {
        n.op.clone()
    } else {
        n.origin.clone()
    }
}

impl Pass for Fusion {
    fn name(&self) -> &'static str {
        self.rule.name()
    }

    fn run(&self, g: &mut Graph, ctx: &mut PassContext) -> Result<bool, CompileError> {
        let name = self.rule.name();
        let order = g
            .topo_order()
            .ok_or_else(|| CompileError::Pass("the graph has a cycle".into()))?;
        let enabled = ctx.rule_enabled(name);
        let mut changed = false;
        for id in order {
            // A rewrite may have removed nodes; the dead remains of a region are never roots.
            if !g.contains(id) || g.user_nodes(id).is_empty() && !is_read_as_output(g, id) {
                continue;
            }
            let Some(m) = self.rule.find(g, id) else {
                continue;
            };
            let nodes = m.nodes.iter().map(|&n| node_name(g, n)).collect();
            ctx.record_region(name, m.form, nodes, enabled);
            if enabled {
                for (old, new) in (m.rewrite)(g)? {
                    g.replace_all_uses(old, new);
                }
                changed = true;
            }
        }
        if changed {
            dce::Dce.run(g, ctx)?;
        }
        Ok(changed)
    }
}

fn is_read_as_output(g: &Graph, id: NodeId) -> bool {
    g.outputs().iter().any(|(_, v)| v.node == id)
}

/// `fuse`: every fusion rule, in order.
pub struct Fuse {
    members: Vec<Fusion>,
}

impl Fuse {
    pub fn new() -> Fuse {
        Fuse {
            members: rules().into_iter().map(Fusion::new).collect(),
        }
    }
}

impl Default for Fuse {
    fn default() -> Self {
        Fuse::new()
    }
}

impl Pass for Fuse {
    fn name(&self) -> &'static str {
        "fuse"
    }

    fn members(&self) -> Vec<&'static str> {
        self.members.iter().map(|p| p.name()).collect()
    }

    fn run(&self, g: &mut Graph, ctx: &mut PassContext) -> Result<bool, CompileError> {
        ctx.enter(self.name(), 1);
        let mut any = false;
        for p in &self.members {
            let r = ctx.run_pass(p, g);
            match r {
                Ok(c) => any |= c,
                Err(e) => {
                    ctx.leave();
                    return Err(e);
                }
            }
            if ctx.stopped() {
                break;
            }
        }
        ctx.leave();
        Ok(any)
    }
}
