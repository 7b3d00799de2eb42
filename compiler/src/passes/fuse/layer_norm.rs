//! `fuse-layer-norm`: layer normalisation -> `layer_norm(x, scale, bias?)`.
//!
//! Forms: none yet (being written).

use kiln_ir::{Graph, NodeId};

use super::{Match, Rule};

pub struct FuseLayerNorm;

impl Rule for FuseLayerNorm {
    fn name(&self) -> &'static str {
        "fuse-layer-norm"
    }

    fn find(&self, _g: &Graph, _root: NodeId) -> Option<Match> {
        None
    }
}
