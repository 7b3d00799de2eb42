//! `fuse-rope`: rotary position embedding -> `rope(x, cos, sin)`.
//!
//! Forms: none yet (being written).

use kiln_ir::{Graph, NodeId};

use super::{Match, Rule};

pub struct FuseRope;

impl Rule for FuseRope {
    fn name(&self) -> &'static str {
        "fuse-rope"
    }

    fn find(&self, _g: &Graph, _root: NodeId) -> Option<Match> {
        None
    }
}
