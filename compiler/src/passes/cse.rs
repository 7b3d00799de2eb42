//! `cse`: merges nodes that compute the same thing: same op, same attributes (floats and
//! inline tensors compared bit for bit), same inputs. Nodes are visited in topological
//! order; the first of a group stays and the others' readers move to it.

use std::collections::HashMap;

use kiln_ir::graph::INPUT_OP;
use kiln_ir::text::attrs_to_string;
use kiln_ir::{Graph, NodeId, Value};

use super::{Pass, PassContext};
use crate::error::CompileError;

pub struct Cse;

/// Ops whose every application gives new values.
pub fn is_random_op(op: &str) -> bool {
    matches!(
        op,
        "RandomNormal"
            | "RandomNormalLike"
            | "RandomUniform"
            | "RandomUniformLike"
            | "Multinomial"
            | "Bernoulli"
    )
}

/// True if node `id` may give different values each time it runs: a random op, or a
/// Dropout whose `training_mode` is not a constant false.
pub fn is_random(g: &Graph, id: NodeId) -> bool {
    let n = g.node(id);
    if n.op == "Dropout" {
        return match n.input(2) {
            None => false,
            Some(t) => g.const_of(t).is_none_or(|t| t.to_bool().iter().any(|&b| b)),
        };
    }
    is_random_op(&n.op)
}

impl Pass for Cse {
    fn name(&self) -> &'static str {
        "cse"
    }

    fn run(&self, g: &mut Graph, ctx: &mut PassContext) -> Result<bool, CompileError> {
        let Some(order) = g.topo_order() else {
            return Ok(false);
        };
        // The key spells the node the way the text IR does, which compares attributes
        // exactly (floats by bits) and is deterministic.
        let mut seen: HashMap<String, kiln_ir::NodeId> = HashMap::new();
        let mut changed = false;
        for id in order {
            let node = g.node(id);
            if node.op == INPUT_OP || is_random(g, id) || node.outputs.is_empty() {
                continue;
            }
            let inputs: Vec<String> = node
                .inputs()
                .iter()
                .map(|v| match v {
                    Some(v) => format!("{}:{}", v.node.index(), v.output),
                    None => "_".to_string(),
                })
                .collect();
            let key = format!(
                "{}({}){}#{}",
                node.op,
                inputs.join(","),
                attrs_to_string(&node.attrs),
                node.outputs.len()
            );
            match seen.get(&key) {
                None => {
                    seen.insert(key, id);
                }
                Some(&first) => {
                    for i in 0..node.outputs.len() {
                        g.replace_all_uses(
                            Value {
                                node: id,
                                output: i,
                            },
                            Value {
                                node: first,
                                output: i,
                            },
                        );
                    }
                    g.remove_node(id);
                    ctx.record("cse", "merge", true);
                    changed = true;
                }
            }
        }
        if changed {
            // Data-dependent dims of merged nodes may have had different names: re-infer so
            // readers agree on the survivor's.
            kiln_ir::infer::infer_graph(g)?;
        }
        Ok(changed)
    }
}
