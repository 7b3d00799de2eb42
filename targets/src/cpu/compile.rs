//! The CPU target end to end: lower, plan memory, generate code, and assemble the artifact.

use std::collections::HashMap;
use std::path::Path;

use kiln_ir::graph::{Graph, Value};
use kiln_ir::AttrsExt;
use kiln_runtime::artifact::{write_artifact, ArtifactParts, Features, Target};
use kiln_runtime::model::frame::FrameLayout;
use kiln_runtime::model::manifest::{
    ArenaSpec, BufferSpec, FunctionSpan, KernelSpec, Manifest, StepSpec, SymbolSpec, TensorSpec,
    WeightSpec, MANIFEST_FORMAT,
};

use crate::cpu::codegen::blob::CodeBlob;
use crate::cpu::codegen::dims::SymbolTable;
use crate::cpu::codegen::entry::build_entry;
use crate::cpu::codegen::isa::{x86_64_isa, CpuFeatures};
use crate::cpu::lower::{lower_bounded, BufKind, Callee, Port, Program};
use crate::cpu::memory::{plan, MemoryPlan};
use crate::error::TargetError;

/// The largest default a symbol gets when the user gives no `--dim` bound for it.
pub const DEFAULT_MAX_DIM: i64 = 4096;
/// Defaults shrink until the arena fits in this many bytes.
pub const DEFAULT_ARENA_BUDGET: u64 = 2 << 30;

#[derive(Clone, Debug)]
pub struct CpuOptions {
    pub features: CpuFeatures,
    /// Bounds the user gave (`--dim seq=1..2048`), by symbol name.
    pub bounds: HashMap<String, (i64, i64)>,
}

/// A compiled CPU artifact, ready to write.
pub struct CpuArtifact {
    pub manifest: Manifest,
    pub code: Vec<u8>,
    pub weights: Vec<u8>,
    pub features: Features,
    /// Symbols whose bounds were defaulted, with the bounds chosen.
    pub defaulted: Vec<(String, i64, i64)>,
}

impl CpuArtifact {
    pub fn write(&self, path: &Path) -> Result<(), TargetError> {
        let manifest = serde_json::to_vec(&self.manifest)
            .map_err(|e| TargetError::Lower(format!("manifest: {e}")))?;
        write_artifact(
            path,
            &ArtifactParts {
                target: Target::CpuX86_64,
                features: self.features,
                manifest: &manifest,
                code: &self.code,
                weights: &self.weights,
            },
        )
        .map_err(|e| TargetError::Artifact(e.to_string()))
    }
}

/// The model's symbols: every symbol in an input's shape, in order of first appearance.
fn input_symbols(program: &Program) -> SymbolTable {
    let mut names: Vec<String> = Vec::new();
    for p in &program.inputs {
        for d in &p.shape {
            let mut syms = Vec::new();
            d.symbols(&mut syms);
            for s in syms {
                if !names.iter().any(|n| **n == *s) {
                    names.push(s.to_string());
                }
            }
        }
    }
    SymbolTable { names }
}

/// Compiles `graph` (canonicalized; every value typed) for the CPU.
pub fn compile(graph: &Graph, options: &CpuOptions) -> Result<CpuArtifact, TargetError> {
    let isa = x86_64_isa(options.features)?;
    let program = lower_bounded(graph, &isa, &options.bounds)?;
    let symbols = input_symbols(&program);
    for name in options.bounds.keys() {
        if symbols.index(name).is_none() {
            let known = if symbols.names.is_empty() {
                "it has none; every shape is static".to_string()
            } else {
                format!("its dims are: {}", symbols.names.join(", "))
            };
            return Err(TargetError::Lower(format!(
                "--dim {name}: the model has no dim named `{name}` ({known})"
            )));
        }
    }
    // Defaulted symbols start at DEFAULT_MAX_DIM and halve until the arena fits the budget.
    let defaulted: Vec<&String> = symbols
        .names
        .iter()
        .filter(|n| !options.bounds.contains_key(*n))
        .collect();
    let mut default_max = DEFAULT_MAX_DIM;
    let (bounds, memory) = loop {
        let mut bounds = options.bounds.clone();
        for n in &defaulted {
            bounds.insert((*n).clone(), (0, default_max));
        }
        let memory = plan(&program, &bounds)?;
        if defaulted.is_empty() || memory.arena_bytes <= DEFAULT_ARENA_BUDGET || default_max == 1 {
            break (bounds, memory);
        }
        default_max /= 2;
    };
    let layout = FrameLayout {
        inputs: program.inputs.len(),
        outputs: program.outputs.len(),
        symbols: symbols.names.len(),
    };
    let entry = build_entry(&isa, &program, &memory, &symbols, layout)?;
    let mut blob = CodeBlob::new(isa);
    for (name, f) in &program.kernels {
        blob.add(name, f.clone())?;
    }
    let entry_index = blob.add("entry", entry)?;
    let (code, placed) = blob.finish()?;
    let mut weights = vec![0u8; program.weights_len as usize];
    for w in &program.weights {
        weights[w.offset as usize..w.offset as usize + w.bytes.len()].copy_from_slice(&w.bytes);
    }
    let mut manifest = manifest(&program, &memory, &symbols, &bounds, &placed, entry_index)?;
    for (spec, &v) in manifest.inputs.iter_mut().zip(graph.inputs()) {
        spec.index_range = index_range(graph, v);
    }
    let features = Features::from_names(&options.features.names()).map_err(TargetError::Isa)?;
    Ok(CpuArtifact {
        manifest,
        code,
        weights,
        features,
        defaulted: defaulted
            .iter()
            .map(|n| (n.to_string(), 0, default_max))
            .collect(),
    })
}

/// The exclusive upper bound of the indices integer value `v` holds, when it reaches the
/// indices of a Gather or GatherElements (through casts and reshapes): the smallest size of
/// an axis it indexes, if that size is static.
fn index_range(graph: &Graph, v: Value) -> Option<i64> {
    if !graph.value_type(v).dtype.is_int() {
        return None;
    }
    let mut best: Option<i64> = None;
    let mut todo = vec![v];
    let mut seen = std::collections::HashSet::new();
    while let Some(v) = todo.pop() {
        if !seen.insert(v) {
            continue;
        }
        for (user, i) in graph.users(v) {
            let node = graph.node(user);
            match (node.op.as_str(), i) {
                ("Gather" | "GatherElements", 1) => {
                    let Some(data) = node.input(0) else { continue };
                    let shape = &graph.value_type(data).shape;
                    let rank = shape.len() as i64;
                    let axis = node.attrs.int_or("axis", 0).unwrap_or(0);
                    let axis = if axis < 0 { axis + rank } else { axis };
                    if let Some(n) = usize::try_from(axis)
                        .ok()
                        .and_then(|a| shape.get(a))
                        .and_then(|d| d.as_const())
                    {
                        best = Some(best.map_or(n, |b| b.min(n)));
                    }
                }
                ("Cast", 0)
                    if graph
                        .value_type(Value {
                            node: user,
                            output: 0,
                        })
                        .dtype
                        .is_int() =>
                {
                    todo.push(Value {
                        node: user,
                        output: 0,
                    })
                }
                ("Reshape" | "Squeeze" | "Unsqueeze" | "Flatten" | "Identity" | "Expand", 0) => {
                    todo.push(Value {
                        node: user,
                        output: 0,
                    })
                }
                _ => {}
            }
        }
    }
    best
}

fn manifest(
    program: &Program,
    memory: &MemoryPlan,
    symbols: &SymbolTable,
    bounds: &HashMap<String, (i64, i64)>,
    placed: &[crate::cpu::codegen::blob::PlacedFunction],
    entry: usize,
) -> Result<Manifest, TargetError> {
    let ports = |ps: &[Port]| {
        ps.iter()
            .map(|p| {
                Ok(TensorSpec {
                    name: p.name.clone(),
                    dtype: p.dtype.name().to_string(),
                    shape: p
                        .shape
                        .iter()
                        .map(|d| symbols.expr(d))
                        .collect::<Result<_, _>>()?,
                    index_range: None,
                })
            })
            .collect::<Result<Vec<_>, TargetError>>()
    };
    let mut buffers = Vec::new();
    for (i, buf) in program.buffers.iter().enumerate() {
        if let Some(p) = &memory.placements[i] {
            buffers.push(BufferSpec {
                name: buf.name.clone(),
                offset: p.offset,
                bytes: symbols.expr(&buf.bytes)?,
                max_bytes: p.max_bytes,
                live: p.live,
            });
        }
    }
    let _ = BufKind::Arena;
    Ok(Manifest {
        format: MANIFEST_FORMAT.to_string(),
        name: program.name.clone(),
        symbols: symbols
            .names
            .iter()
            .map(|n| {
                let (min, max) = bounds.get(n).copied().unwrap_or((1, 1));
                SymbolSpec {
                    name: n.clone(),
                    min,
                    max,
                }
            })
            .collect(),
        inputs: ports(&program.inputs)?,
        outputs: ports(&program.outputs)?,
        entry: FunctionSpan {
            offset: placed[entry].offset as u64,
            len: placed[entry].len as u64,
        },
        kernels: placed[..entry]
            .iter()
            .map(|f| KernelSpec {
                name: f.name.clone(),
                offset: f.offset as u64,
                len: f.len as u64,
            })
            .collect(),
        helpers: program.helpers.clone(),
        arena: ArenaSpec {
            bytes: memory.arena_bytes,
            buffers,
        },
        weights: program
            .weights
            .iter()
            .map(|w| WeightSpec {
                name: w.name.clone(),
                offset: w.offset,
                bytes: w.bytes.len() as u64,
                layout: w.layout.to_string(),
            })
            .collect(),
        steps: program
            .steps
            .iter()
            .map(|s| StepSpec {
                op: s.op.clone(),
                kernel: match s.callee {
                    Callee::Kernel(k) => program.kernels[k].0.clone(),
                    Callee::Helper(h) => format!("helper {}", program.helpers[h]),
                },
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_ranges_follow_gathers_through_casts_and_reshapes() {
        let g = crate::cpu::testing::graph(
            "graph @t(%ids: i64[seq], %tt: i32[seq], %mask: i64[seq], %x: f32[seq]) -> (a: f32[seq, 4], b: f32[1, seq, 4], m: i64[seq], y: f32[seq]) {
               %0 = constant {value = dense<f32[10, 4]>[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]} : f32[10, 4]
               %1 = constant {value = dense<f32[3, 4]>[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]} : f32[3, 4]
               %2 = Gather(%0, %ids) {axis = 0} : f32[seq, 4]
               %3 = Gather(%1, %ids) {axis = -2} : f32[seq, 4]
               %4 = Cast(%tt) {to = i64} : i64[seq]
               %5 = constant {value = dense<i64[1]>[0]} : i64[1]
               %6 = Unsqueeze(%4, %5) : i64[1, seq]
               %7 = Gather(%0, %6) {axis = 0} : f32[1, seq, 4]
               return %2, %7, %mask, %x
             }",
        );
        let ranges: Vec<_> = g.inputs().iter().map(|&v| index_range(&g, v)).collect();
        assert_eq!(ranges, [Some(3), Some(10), None, None]);
    }
}
