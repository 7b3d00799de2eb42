//! `fuse-attention`: scaled dot-product attention -> kiln's `attention` op.
//!
//! Two families of forms, one file each:
//! - [`sdpa`]: attention spelled out by exporters (MatMul, scale, mask, Softmax, MatMul, with
//!   the head reshapes and transposes, GQA's repeat_kv, KV-cache concats);
//! - [`existing`]: attention ops already in the graph (ONNX `Attention`,
//!   `com.microsoft.MultiHeadAttention`, `com.microsoft.GroupQueryAttention`).

use kiln_ir::{DType, Graph, NodeId};

use super::{Match, Rule};

pub mod existing;
pub mod formula;
pub mod layout;
pub mod mask;
pub mod sdpa;

pub struct FuseAttention;

impl Rule for FuseAttention {
    fn name(&self) -> &'static str {
        "fuse-attention"
    }

    fn find(&self, g: &Graph, root: NodeId) -> Option<Match> {
        // The fused kernels serve the model dtypes; f64 attention (test graphs) stays as
        // written, where every target runs it op by op.
        let dtype = g.node(root).outputs.first()?.dtype;
        if !matches!(dtype, DType::F32 | DType::F16 | DType::BF16) {
            return None;
        }
        sdpa::find(g, root).or_else(|| existing::find(g, root))
    }
}
