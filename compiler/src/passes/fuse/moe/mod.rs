//! `fuse-moe`: a mixture-of-experts layer -> kiln's `moe` op.
//!
//! Two families of forms, one file each:
//! - [`batched`]: MoE spelled out by exporters (router MatMul, scores, TopK, the experts'
//!   gathered or looped MLPs, the weighted combine, shared experts);
//! - [`existing`]: `com.microsoft.MoE` (and its quantised variants where supported).

use kiln_ir::{Graph, NodeId};

use super::{Match, Rule};

pub mod batched;
pub mod existing;

pub struct FuseMoe;

impl Rule for FuseMoe {
    fn name(&self) -> &'static str {
        "fuse-moe"
    }

    fn find(&self, g: &Graph, root: NodeId) -> Option<Match> {
        batched::find(g, root).or_else(|| existing::find(g, root))
    }
}
