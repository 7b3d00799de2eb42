//! Fused and contrib ops: attention (ONNX Attention, com.microsoft GQA/MHA), MoE, rope, and the fused ops of kiln's IR.

use super::LowerFn;

pub const OPS: &[(&str, LowerFn)] = &[];
