//! `fuse-gelu`: GELU spelled out (erf form, tanh approximation) -> ONNX `Gelu`.
//!
//! Forms: none yet (being written).

use kiln_ir::{Graph, NodeId};

use super::{Match, Rule};

pub struct FuseGelu;

impl Rule for FuseGelu {
    fn name(&self) -> &'static str {
        "fuse-gelu"
    }

    fn find(&self, _g: &Graph, _root: NodeId) -> Option<Match> {
        None
    }
}
