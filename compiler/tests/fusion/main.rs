//! Fusion rule tests: for each rule, graphs in IR text (several sizes, exporters' spellings,
//! near misses that must not fuse), snapshotted before and after, and checked on the
//! reference interpreter: the fused graph computes what the original did.

mod support;

mod attention;
mod attention_ops;
mod attention_repeat_kv;
mod gelu;
mod layer_norm;
mod moe;
mod moe_ops;
mod rms_norm;
mod rope;
mod rope_layer_norm_ops;
mod swiglu;
