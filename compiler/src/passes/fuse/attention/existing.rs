//! Attention ops already in the graph, rewritten into kiln's `attention` (with the head
//! reshapes and transposes to its `[B, H, S, D]` layout, and whatever masks, rope or cache
//! handling their semantics add). One file per op:
//! - ONNX `Attention` (opsets 23-25), form `onnx-Attention`, in [`onnx`];
//! - `com.microsoft.MultiHeadAttention`, in [`mha`];
//! - `com.microsoft.GroupQueryAttention` (ONNX Runtime GenAI's decoder layers), forms
//!   `com.microsoft.GroupQueryAttention` and `...-windowed-cache`, in [`gqa`].
//!
//! Each matches the op node alone (the region is that node) and leaves it in place when it
//! uses something `attention` cannot express: a read score output (`qk`), quantised caches,
//! explicit position ids. [`common`] holds the layout and mask helpers they share.

use kiln_ir::{Graph, NodeId};

use crate::passes::fuse::Match;

pub mod common;
pub mod gqa;
pub mod mha;
pub mod onnx;

/// The region rooted at `root`, if it is one of this file's forms.
pub fn find(g: &Graph, root: NodeId) -> Option<Match> {
    match g.node(root).op.as_str() {
        "Attention" => onnx::find(g, root),
        "com.microsoft.MultiHeadAttention" => mha::find(g, root),
        "com.microsoft.GroupQueryAttention" => gqa::find(g, root),
        _ => None,
    }
}
