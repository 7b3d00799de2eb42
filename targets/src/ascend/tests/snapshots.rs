//! Snapshots of launch lists (JSON, as stored in the artifact) for small graphs on every
//! profile: any change of what kiln emits shows up here for review.

use kiln_runtime::ascend::profile::PROFILES;
use kiln_runtime::ElemType;

use crate::ascend::testing::{build, check, floats, graph};

/// A constant of `shape` in text IR, values from [`floats`].
fn constant(shape: &[usize], seed: u64) -> String {
    let v: Vec<String> = floats(shape, seed)
        .to_f64()
        .iter()
        .map(|x| format!("{x}"))
        .collect();
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("dense<f32[{}]>[{}]", dims.join(", "), v.join(", "))
}

fn snapshot(name: &str, text: &str, dims: &[(&str, i64)]) {
    let g = graph(text);
    for p in PROFILES {
        let art = build(&g, p.name, ElemType::F16, dims).unwrap();
        let json = serde_json::to_string_pretty(&art.launch).unwrap();
        insta::assert_snapshot!(format!("{name}_{}", p.name), json);
    }
}

#[test]
fn matmul() {
    let text = format!(
        "graph @mm(%x: f32[1, seq, 48]) -> (y: f32[1, seq, 40]) {{
            %0 = constant {{value = {}}} : f32[48, 40]
            %1 = MatMul(%x, %0) : f32[1, seq, 40]
            return %1
        }}",
        constant(&[48, 40], 1)
    );
    snapshot("matmul", &text, &[("seq", 5)]);
}

/// An attention block: q/k/v projections, heads split (8 query heads sharing 2 key/value
/// heads), causal `attention`, heads merged, output projection. Batch 3 x 8 heads make 24
/// attention tasks: one per AI core on the 910B2 and the 910_93, two on the 910B4's 20.
fn attention_block() -> String {
    format!(
        "graph @attn(%x: f32[3, seq, 64]) -> (y: f32[3, seq, 64]) {{
            %wq = constant {{value = {}}} : f32[64, 64]
            %wk = constant {{value = {}}} : f32[64, 16]
            %wv = constant {{value = {}}} : f32[64, 16]
            %wo = constant {{value = {}}} : f32[64, 64]
            %sq = constant {{value = dense<i64[4]>[3, -1, 8, 8]}} : i64[4]
            %skv = constant {{value = dense<i64[4]>[3, -1, 2, 8]}} : i64[4]
            %so = constant {{value = dense<i64[3]>[3, -1, 64]}} : i64[3]
            %0 = MatMul(%x, %wq) : f32[3, seq, 64]
            %1 = Reshape(%0, %sq) : f32[3, seq, 8, 8]
            %q = Transpose(%1) {{perm = [0, 2, 1, 3]}} : f32[3, 8, seq, 8]
            %2 = MatMul(%x, %wk) : f32[3, seq, 16]
            %3 = Reshape(%2, %skv) : f32[3, seq, 2, 8]
            %k = Transpose(%3) {{perm = [0, 2, 1, 3]}} : f32[3, 2, seq, 8]
            %4 = MatMul(%x, %wv) : f32[3, seq, 16]
            %5 = Reshape(%4, %skv) : f32[3, seq, 2, 8]
            %v = Transpose(%5) {{perm = [0, 2, 1, 3]}} : f32[3, 2, seq, 8]
            %6 = attention(%q, %k, %v) {{causal = 1}} : f32[3, 8, seq, 8]
            %7 = Transpose(%6) {{perm = [0, 2, 1, 3]}} : f32[3, seq, 8, 8]
            %8 = Reshape(%7, %so) : f32[3, seq, 64]
            %9 = MatMul(%8, %wo) : f32[3, seq, 64]
            return %9
        }}",
        constant(&[64, 64], 2),
        constant(&[64, 16], 3),
        constant(&[64, 16], 4),
        constant(&[64, 64], 5)
    )
}

#[test]
fn attention_gqa_causal() {
    let text = attention_block();
    // What is snapshotted computes the block: the device model's output against the
    // interpreter's, in f16.
    let fixed = text.replace("seq", "6");
    let kernels = check(&fixed, &[floats(&[3, 6, 64], 6)], &[], ElemType::F16, 3e-3);
    assert!(kernels.contains(&"FusedInferAttentionScore".to_string()));
    snapshot("attention_gqa_causal", &text, &[("seq", 6)]);
}

#[test]
fn moe_block() {
    // A router matmul and a group-limited sigmoid MoE (DeepSeek-V3 style) with a shared
    // expert: the whole MoE chain, its tilings and attributes.
    let text = format!(
        "graph @moe(%x: f32[seq, 32]) -> (y: f32[seq, 32]) {{
            %0 = constant {{value = {}}} : f32[32, 4]
            %1 = MatMul(%x, %0) : f32[seq, 4]
            %2 = constant {{value = {}}} : f32[4, 32, 32]
            %3 = constant {{value = {}}} : f32[4, 32, 16]
            %4 = constant {{value = {}}} : f32[4]
            %5 = constant {{value = {}}} : f32[16, 32]
            %6 = constant {{value = {}}} : f32[32, 16]
            %7 = constant {{value = {}}} : f32[16, 32]
            %8 = moe(%x, %1, %2, _, %3, _, _, _, %4, _, _, %5, %6, %7) {{k = 2, scoring_func = \"sigmoid\", n_group = 2, topk_group = 1, normalize_routing_weights = 1, routed_scaling_factor = 2.5, swiglu_fusion = 2}} : f32[seq, 32]
            return %8
        }}",
        constant(&[32, 4], 2),
        constant(&[4, 32, 32], 3),
        constant(&[4, 32, 16], 4),
        constant(&[4], 5),
        constant(&[16, 32], 6),
        constant(&[32, 16], 7),
        constant(&[16, 32], 8),
    );
    snapshot("moe_block", &text, &[("seq", 6)]);
}
