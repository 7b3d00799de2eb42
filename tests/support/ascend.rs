//! Compiling a model for an Ascend profile and running its launch list on the device model,
//! for the tests that check kiln's Ascend target against reference outputs (included with
//! `#[path]` by each such test, which uses some of it).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use kiln_compiler::backend;
use kiln_compiler::passes::{PassContext, PassManager};
use kiln_runtime::ascend::cost::KernelCost;
use kiln_runtime::ascend::{AscendModel, Profile};
use kiln_runtime::ElemType;
use kiln_targets::ascend::{AscendArtifact, AscendOptions};

/// Compiles the model at `model` with `kiln compile`'s default pipeline for `profile` in
/// `dtype`, every symbolic dim fixed to `dims[dim]` (an Ascend launch list is static).
pub fn compile(
    model: &Path,
    profile: &str,
    dtype: ElemType,
    dims: &HashMap<String, i64>,
) -> Result<AscendArtifact, String> {
    let profile = Profile::by_name(profile).ok_or_else(|| format!("no profile {profile}"))?;
    let mut g = kiln_compiler::driver::load_model(model).map_err(|e| e.to_string())?;
    let pm = PassManager::parse(backend::DEFAULT_PIPELINE).map_err(|e| e.to_string())?;
    let options = AscendOptions {
        profile,
        dtype,
        dims: dims.clone(),
    };
    backend::compile_ascend(&mut g, &pm, &mut PassContext::new(), &options)
        .map_err(|e| e.to_string())
}

/// Runs `art` on the device model of its profile with the named `inputs` (taken in the
/// launch list's input order); returns the named outputs and each kernel's priced cost.
#[allow(clippy::type_complexity)]
pub fn run(
    art: &AscendArtifact,
    inputs: &HashMap<String, kiln_ir::Tensor>,
) -> Result<(Vec<(String, kiln_ir::Tensor)>, Vec<KernelCost>), String> {
    let model = AscendModel::new(art.launch.clone(), &art.weights).map_err(|e| e.to_string())?;
    let mut ordered = Vec::new();
    for spec in &art.launch.inputs {
        let t = inputs
            .get(&spec.name)
            .ok_or_else(|| format!("no reference input {}", spec.name))?;
        ordered.push(backend::to_runtime(t));
    }
    let (outs, costs) = model.run_profiled(&ordered).map_err(|e| e.to_string())?;
    let named = art
        .launch
        .outputs
        .iter()
        .zip(&outs)
        .map(|(s, t)| {
            backend::from_runtime(t)
                .map(|t| (s.name.clone(), t))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok((named, costs))
}

/// max|got - want| / max|want| over the finite elements of `want` (the device computes in
/// f16/bf16, so an element's error scales with the output's magnitude, not its own);
/// infinite if the shapes differ or `got` is not finite where `want` is.
pub fn max_relative_error(want: &kiln_ir::Tensor, got: &kiln_ir::Tensor) -> f64 {
    if want.shape() != got.shape() {
        return f64::INFINITY;
    }
    let w = want.to_f64();
    let scale = w
        .iter()
        .filter(|x| x.is_finite())
        .fold(0f64, |m, x| m.max(x.abs()))
        .max(f64::MIN_POSITIVE);
    w.iter()
        .zip(got.to_f64())
        .filter(|(a, _)| a.is_finite())
        .map(|(a, b)| {
            if b.is_finite() {
                (a - b).abs() / scale
            } else {
                f64::INFINITY
            }
        })
        .fold(0.0, f64::max)
}
