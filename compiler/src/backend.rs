//! From a loaded graph to a target artifact: the default pipeline, then the target's
//! compiler. Also the bridge between kiln-ir tensors and the runtime's.

use std::collections::HashMap;

use kiln_ir::{DType, Graph, Tensor};
use kiln_runtime::{ElemType, Tensor as RtTensor};
use kiln_targets::ascend::{AscendArtifact, AscendOptions};
use kiln_targets::cpu::codegen::isa::CpuFeatures;
use kiln_targets::cpu::{CpuArtifact, CpuOptions};

use crate::error::CompileError;
use crate::passes::{PassContext, PassManager};

/// The pipeline `kiln compile` runs before lowering unless told otherwise.
pub const DEFAULT_PIPELINE: &str = "canonicalize,fuse,canonicalize";

/// Compiles `g` (after running `pipeline` on it) for the CPU.
pub fn compile_cpu(
    g: &mut Graph,
    pipeline: &PassManager,
    ctx: &mut PassContext,
    bounds: HashMap<String, (i64, i64)>,
    features: CpuFeatures,
) -> Result<CpuArtifact, CompileError> {
    pipeline.run(g, ctx)?;
    kiln_ir::infer::infer_graph(g)?;
    Ok(kiln_targets::cpu::compile(
        g,
        &CpuOptions { features, bounds },
    )?)
}

/// Compiles `g` (after running `pipeline` on it) to an Ascend launch list.
pub fn compile_ascend(
    g: &mut Graph,
    pipeline: &PassManager,
    ctx: &mut PassContext,
    options: &AscendOptions,
) -> Result<AscendArtifact, CompileError> {
    // Static shapes first, so the pipeline folds what depends on shapes alone.
    kiln_targets::ascend::specialize::specialize(g, &options.dims)?;
    kiln_ir::infer::infer_graph(g)?;
    pipeline.run(g, ctx)?;
    kiln_ir::infer::infer_graph(g)?;
    Ok(kiln_targets::ascend::compile(g, options)?)
}

/// The device dtype `--dtype` names: `fp16` (or `f16`), `bf16`.
pub fn parse_device_dtype(s: &str) -> Result<ElemType, String> {
    match s {
        "fp16" | "f16" => Ok(ElemType::F16),
        "bf16" => Ok(ElemType::BF16),
        _ => Err(format!("--dtype {s}: expected fp16 or bf16")),
    }
}

/// Parses `NAME=MIN..MAX` (or `NAME=N`, meaning N..N).
pub fn parse_dim_bound(spec: &str) -> Result<(String, (i64, i64)), String> {
    let err = || format!("--dim {spec}: expected NAME=MIN..MAX (e.g. seq=1..2048) or NAME=N");
    let (name, range) = spec.split_once('=').ok_or_else(err)?;
    let num = |s: &str| s.trim().parse::<i64>().map_err(|_| err());
    let (lo, hi) = match range.split_once("..") {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(range)?, num(range)?),
    };
    if name.is_empty() || lo < 0 || hi < lo {
        return Err(format!("--dim {spec}: bounds must satisfy 0 <= MIN <= MAX"));
    }
    Ok((name.to_string(), (lo, hi)))
}

pub fn elem_type(d: DType) -> ElemType {
    ElemType::from_name(d.name()).expect("the runtime names every kiln-ir dtype")
}

pub fn dtype(e: ElemType) -> DType {
    DType::ALL
        .into_iter()
        .find(|d| d.name() == e.name())
        .expect("kiln-ir names every runtime dtype")
}

pub fn to_runtime(t: &Tensor) -> RtTensor {
    RtTensor::from_bytes(elem_type(t.dtype()), t.shape(), &t.to_le_bytes())
        .expect("a tensor's bytes fit its shape")
}

pub fn from_runtime(t: &RtTensor) -> Result<Tensor, CompileError> {
    Tensor::from_le_bytes(dtype(t.dtype()), t.shape().to_vec(), t.bytes())
        .map_err(|e| CompileError::Invalid(e.to_string()))
}
