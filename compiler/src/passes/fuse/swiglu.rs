//! `fuse-swiglu`: gated activations (SiLU(gate) * up, clamped GPT-OSS form) -> `swiglu(gate, up)`.
//!
//! Forms: none yet (being written).

use kiln_ir::{Graph, NodeId};

use super::{Match, Rule};

pub struct FuseSwiglu;

impl Rule for FuseSwiglu {
    fn name(&self) -> &'static str {
        "fuse-swiglu"
    }

    fn find(&self, _g: &Graph, _root: NodeId) -> Option<Match> {
        None
    }
}
