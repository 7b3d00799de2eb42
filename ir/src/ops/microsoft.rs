//! ONNX Runtime contrib ops (`com.microsoft.*`, plus `SimplifiedLayerNormalization`, which
//! ONNX Runtime registers in the default domain), with the semantics of ONNX Runtime 1.31's
//! CPU kernels. Each submodule documents its op's inputs and the exact rules.

mod gelu;
mod gqa;
mod mha;
mod moe;
mod norm;
mod rotary;

use crate::ops::OpSpec;

pub const SPECS: &[OpSpec] = &[
    OpSpec::new("com.microsoft.GroupQueryAttention", gqa::infer, gqa::eval),
    OpSpec::new("com.microsoft.MultiHeadAttention", mha::infer, mha::eval),
    OpSpec::new("com.microsoft.MoE", moe::infer, moe::eval),
    OpSpec::new(
        "com.microsoft.SkipLayerNormalization",
        norm::infer_skip,
        norm::eval_skip_layer_norm,
    ),
    OpSpec::new(
        "com.microsoft.SkipSimplifiedLayerNormalization",
        norm::infer_skip,
        norm::eval_skip_simplified,
    ),
    OpSpec::new(
        "SimplifiedLayerNormalization",
        norm::infer_simplified,
        norm::eval_simplified,
    ),
    OpSpec::new("com.microsoft.RotaryEmbedding", rotary::infer, rotary::eval),
    OpSpec::new("com.microsoft.Gelu", gelu::infer_unary, gelu::eval_gelu),
    OpSpec::new(
        "com.microsoft.FastGelu",
        gelu::infer_unary,
        gelu::eval_fast_gelu,
    ),
    OpSpec::new(
        "com.microsoft.QuickGelu",
        gelu::infer_unary,
        gelu::eval_quick_gelu,
    ),
];
