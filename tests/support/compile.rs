//! Compiling a model for this CPU and loading the artifact, for the tests that run kiln's
//! compiled code (included with `#[path]` by each such test, which uses some of it).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use kiln_compiler::backend;
use kiln_compiler::passes::{PassContext, PassManager};
use kiln_targets::cpu::codegen::isa::CpuFeatures;

/// Sizes of the graph's symbolic dims read from `inputs` (plain-symbol dims only).
pub fn symbol_sizes(
    g: &kiln_ir::Graph,
    inputs: &HashMap<String, kiln_ir::Tensor>,
) -> HashMap<String, i64> {
    let mut sizes = HashMap::new();
    for &v in g.inputs() {
        let Some(t) = g.input_name(v).and_then(|n| inputs.get(n)) else {
            continue;
        };
        for (d, &n) in g.value_type(v).shape.iter().zip(t.shape()) {
            if let Some(s) = d.as_sym() {
                sizes.entry(s.to_string()).or_insert(n as i64);
            }
        }
    }
    sizes
}

/// Compiles the model at `model` with the default pipeline, each symbolic dim bounded to
/// `0..bounds[dim]`, and writes the artifact to a fresh temporary file. Returns the file,
/// the graph's input names in order, and the compile time in seconds.
pub fn compile_to_file(
    model: &Path,
    bounds: &HashMap<String, i64>,
    tag: &str,
) -> Result<(PathBuf, Vec<String>, f64), String> {
    let start = Instant::now();
    let mut g = kiln_compiler::driver::load_model(model).map_err(|e| e.to_string())?;
    let names = g
        .inputs()
        .iter()
        .map(|&v| g.input_name(v).unwrap_or_default().to_string())
        .collect();
    let pm = PassManager::parse(backend::DEFAULT_PIPELINE).map_err(|e| e.to_string())?;
    let art = backend::compile_cpu(
        &mut g,
        &pm,
        &mut PassContext::new(),
        bounds
            .iter()
            .map(|(k, &v)| (k.clone(), (0, v.max(1))))
            .collect(),
        CpuFeatures::host(),
    )
    .map_err(|e| {
        let missing = ops_without_kernels(&g);
        if missing.is_empty() {
            e.to_string()
        } else {
            format!("{e} (ops without a CPU kernel: {})", missing.join(", "))
        }
    })?;
    let dir = std::env::temp_dir().join(format!("kiln-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let path = dir.join(format!("{tag}.kiln"));
    art.write(&path).map_err(|e| e.to_string())?;
    Ok((path, names, start.elapsed().as_secs_f64()))
}

/// The ops of `g` no CPU lowering takes, sorted, with their node counts.
pub fn ops_without_kernels(g: &kiln_ir::Graph) -> Vec<String> {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for id in g.node_ids() {
        let op = &g.node(id).op;
        if !matches!(op.as_str(), "input" | "constant" | "dims")
            && kiln_targets::cpu::lower::ops::lowering(op).is_none()
        {
            *counts.entry(op.clone()).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|(op, n)| format!("{op} x{n}"))
        .collect()
}
