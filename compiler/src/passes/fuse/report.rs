//! The fusion report (`--fusion-report FILE.json`): per rule how many regions it found and
//! rewrote, with each region's form and nodes, and the op histogram of the final graph.
//!
//! ```json
//! {
//!   "rules": {
//!     "fuse-rms-norm": {
//!       "matched": 2, "applied": 2,
//!       "regions": [{"form": "pow-reduce-mean", "applied": true, "nodes": ["/model/Pow", ...]}]
//!     }
//!   },
//!   "ops": {"MatMul": 7, "rms_norm": 2}
//! }
//! ```
//!
//! Every rule of the pipeline appears, with zero counts when it found nothing.

use std::collections::BTreeMap;

use kiln_ir::graph::INPUT_OP;
use kiln_ir::Graph;
use serde::Serialize;

use super::rule_names;
use crate::passes::PassContext;

/// A region a fusion rule found.
#[derive(Clone, Debug, Serialize)]
pub struct FusedRegion {
    /// Which spelling of the computation it was.
    pub form: &'static str,
    /// Whether it was rewritten (false when the rule is disabled).
    pub applied: bool,
    /// The region's nodes, by ONNX name (by op where a node has none).
    pub nodes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct RuleReport {
    pub matched: usize,
    pub applied: usize,
    pub regions: Vec<FusedRegion>,
}

#[derive(Debug, Serialize)]
pub struct FusionReport {
    pub rules: BTreeMap<String, RuleReport>,
    /// How many nodes of each op the final graph has (graph inputs and constants not counted).
    pub ops: BTreeMap<String, usize>,
}

impl FusionReport {
    /// The report of a pipeline run with `ctx`, which left `g`. `ran` are the passes the
    /// pipeline ran; fusion rules among them appear even if they found nothing.
    pub fn new(ctx: &PassContext, g: &Graph, ran: &[&str]) -> FusionReport {
        let mut rules = BTreeMap::new();
        for name in rule_names() {
            let regions = ctx.fusions.get(name).cloned().unwrap_or_default();
            if !ran.contains(&name) && regions.is_empty() {
                continue;
            }
            rules.insert(
                name.to_string(),
                RuleReport {
                    matched: regions.len(),
                    applied: regions.iter().filter(|r| r.applied).count(),
                    regions,
                },
            );
        }
        FusionReport {
            rules,
            ops: op_histogram(g),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serialises") + "\n"
    }
}

/// Nodes per op, leaving out graph inputs, constants and `dims` (which are data, not work).
pub fn op_histogram(g: &Graph) -> BTreeMap<String, usize> {
    let mut ops = BTreeMap::new();
    for id in g.node_ids() {
        let op = &g.node(id).op;
        if matches!(op.as_str(), INPUT_OP | "constant" | "dims") {
            continue;
        }
        *ops.entry(op.clone()).or_default() += 1;
    }
    ops
}
