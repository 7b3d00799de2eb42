//! `dce`: removes nodes none of whose outputs reach a graph output (graph inputs stay), then
//! weights no node refers to any more.

use std::collections::HashSet;

use kiln_ir::graph::INPUT_OP;
use kiln_ir::{Graph, NodeId};

use super::{Pass, PassContext};
use crate::error::CompileError;
use crate::weights_file::referenced_weights;

pub struct Dce;

/// The nodes some graph output depends on.
pub fn live_nodes(g: &Graph) -> HashSet<NodeId> {
    let mut live = HashSet::new();
    let mut stack: Vec<NodeId> = g.outputs().iter().map(|(_, v)| v.node).collect();
    while let Some(id) = stack.pop() {
        if !g.contains(id) || !live.insert(id) {
            continue;
        }
        stack.extend(g.node(id).inputs().iter().flatten().map(|v| v.node));
    }
    live
}

impl Pass for Dce {
    fn name(&self) -> &'static str {
        "dce"
    }

    fn run(&self, g: &mut Graph, ctx: &mut PassContext) -> Result<bool, CompileError> {
        let live = live_nodes(g);
        let mut changed = false;
        for id in g.node_ids() {
            if !live.contains(&id) && g.node(id).op != INPUT_OP {
                g.remove_node(id);
                ctx.record("dce", "node", true);
                changed = true;
            }
        }
        let used = referenced_weights(g);
        let unused: Vec<String> = g
            .weights
            .iter()
            .filter(|(name, _)| !used.contains(*name))
            .map(|(name, _)| name.to_string())
            .collect();
        for name in unused {
            g.weights.remove(&name);
            ctx.record("dce", "weight", true);
            changed = true;
        }
        Ok(changed)
    }
}
