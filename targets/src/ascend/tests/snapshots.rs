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
