//! The Ascend target end to end: lower to launches, plan HBM, and assemble the launch
//! list and weights into a .kiln artifact (target `ascend`, no code section).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use kiln_ir::graph::Graph;
use kiln_runtime::artifact::{write_artifact, ArtifactParts, Features, Target};
use kiln_runtime::ascend::descriptor::{
    IoBinding, KernelDesc, LaunchList, TensorBinding, Workspace, LAUNCH_FORMAT,
};
use kiln_runtime::ascend::Profile;
use kiln_runtime::ElemType;

use crate::ascend::lower::{lower, DevTensor, Port};
use crate::ascend::memory;
use crate::ascend::specialize::input_symbols;
use crate::error::TargetError;

#[derive(Clone, Debug)]
pub struct AscendOptions {
    pub profile: &'static Profile,
    /// The device dtype of float values: f16 or bf16.
    pub dtype: ElemType,
    /// The size of every symbolic dim (`--dim seq=7`).
    pub dims: HashMap<String, i64>,
}

/// A compiled Ascend artifact, ready to write.
pub struct AscendArtifact {
    pub launch: LaunchList,
    pub weights: Vec<u8>,
}

impl AscendArtifact {
    pub fn write(&self, path: &Path) -> Result<(), TargetError> {
        let manifest = serde_json::to_vec(&self.launch)
            .map_err(|e| TargetError::Lower(format!("launch list: {e}")))?;
        write_artifact(
            path,
            &ArtifactParts {
                target: Target::Ascend,
                features: Features::NONE,
                manifest: &manifest,
                code: &[],
                weights: &self.weights,
            },
        )
        .map_err(|e| TargetError::Artifact(e.to_string()))
    }
}

/// Compiles `graph` (canonicalized; every value typed; best [`specialize`]d to the dims
/// first) for `options.profile`.
///
/// [`specialize`]: crate::ascend::specialize::specialize
pub fn compile(graph: &Graph, options: &AscendOptions) -> Result<AscendArtifact, TargetError> {
    if !matches!(options.dtype, ElemType::F16 | ElemType::BF16) {
        return Err(TargetError::Lower(format!(
            "--dtype {}: Ascend kernels compute in f16 or bf16",
            options.dtype
        )));
    }
    let missing: Vec<String> = input_symbols(graph)
        .into_iter()
        .filter(|s| !options.dims.contains_key(s))
        .map(|s| format!("--dim {s}=N"))
        .collect();
    if !missing.is_empty() {
        return Err(TargetError::Lower(format!(
            "an Ascend launch list has static shapes: give {}",
            missing.join(" ")
        )));
    }
    let program = lower(graph, options.profile, options.dtype, &options.dims)?;
    let hbm = memory::plan(&program);
    let bind = |t: &DevTensor| TensorBinding {
        buffer: t.buf as u32,
        offset: hbm.buffers[t.buf].offset + t.offset,
        dtype: t.dtype,
        format: t.format,
        shape: t.shape.clone(),
        storage_shape: t.storage_shape(),
    };
    let kernels = program
        .launches
        .iter()
        .map(|l| KernelDesc {
            kernel_name: l.kernel_name.clone(),
            op: l.op.clone(),
            core_type: l.core_type,
            block_dim: l.block_dim,
            workspace: l.workspace.map(|w| Workspace {
                buffer: w as u32,
                offset: hbm.buffers[w].offset,
                bytes: hbm.buffers[w].bytes,
            }),
            op_para_size: l.tiling.size(),
            tiling: l.tiling.clone(),
            attrs: l.attrs.clone(),
            inputs: l.inputs.iter().map(|t| t.as_ref().map(bind)).collect(),
            outputs: l.outputs.iter().map(bind).collect(),
        })
        .collect();
    let io = |ports: &[Port]| {
        ports
            .iter()
            .map(|p| IoBinding {
                name: p.name.clone(),
                buffer: p.buf as u32,
                dtype: p.dtype,
                shape: p.shape.clone(),
            })
            .collect()
    };
    let launch = LaunchList {
        format: LAUNCH_FORMAT.to_string(),
        name: program.name.clone(),
        profile: options.profile.name.to_string(),
        dtype: options.dtype,
        dims: options
            .dims
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect::<BTreeMap<_, _>>(),
        inputs: io(&program.inputs),
        outputs: io(&program.outputs),
        hbm,
        kernels,
    };
    Ok(AscendArtifact {
        launch,
        weights: program.weights,
    })
}
