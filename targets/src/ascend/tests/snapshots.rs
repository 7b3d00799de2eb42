//! Snapshots of launch lists (JSON, as stored in the artifact) for small graphs on every
//! profile: any change of what kiln emits shows up here for review.

use kiln_runtime::ascend::profile::PROFILES;
use kiln_runtime::ElemType;

use crate::ascend::testing::{build, floats, graph};

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
