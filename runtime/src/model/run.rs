//! `Model`: a loaded CPU artifact, run from any number of threads at once.

use std::path::Path;
use std::sync::Mutex;

use crate::artifact::{ArtifactFile, Features, Target};
use crate::cpu::gemm::Kernel;
use crate::cpu::helpers::{self, RunContext};
use crate::error::RuntimeError;
use crate::model::dim_expr::DimExpr;
use crate::model::frame::{self, FrameLayout};
use crate::model::manifest::{Manifest, TensorSpec, MANIFEST_FORMAT};
use crate::model::tensor::{ElemType, Tensor};

/// How a model runs.
#[derive(Clone, Debug, Default)]
pub struct ModelOptions {
    /// Threads for intra-op parallelism (0: one per core).
    pub threads: usize,
    /// Check the artifact against these CPU features instead of this machine's (tests).
    pub features: Option<Features>,
}

/// A loaded artifact. It is `Send + Sync`: `run` may be called from many threads at once,
/// each run getting its own activation arena.
pub struct Model {
    file: ArtifactFile,
    manifest: Manifest,
    input_types: Vec<ElemType>,
    output_types: Vec<ElemType>,
    layout: FrameLayout,
    entry: crate::artifact::file::FrameFn,
    helper_table: Vec<u64>,
    gemm: Kernel,
    pool: rayon::ThreadPool,
    /// Arenas of finished runs, reused by the next ones.
    arenas: Mutex<Vec<Vec<u64>>>,
}

impl Model {
    /// Loads `path` to run on this machine.
    pub fn load(path: &Path) -> Result<Model, RuntimeError> {
        Model::load_with(path, &ModelOptions::default())
    }

    pub fn load_with(path: &Path, options: &ModelOptions) -> Result<Model, RuntimeError> {
        let file = match options.features {
            Some(f) => ArtifactFile::open_with_features(path, f)?,
            None => ArtifactFile::open(path)?,
        };
        if file.header.target != Target::CpuX86_64 {
            return Err(RuntimeError::Corrupt(format!(
                "this is a {} artifact; only cpu-x86_64 artifacts run on the CPU executor",
                file.header.target.name()
            )));
        }
        let bad = |m: String| RuntimeError::Corrupt(format!("manifest: {m}"));
        let manifest: Manifest =
            serde_json::from_slice(&file.manifest).map_err(|e| bad(e.to_string()))?;
        if manifest.format != MANIFEST_FORMAT {
            return Err(bad(format!(
                "format `{}` is not `{MANIFEST_FORMAT}`",
                manifest.format
            )));
        }
        let types = |specs: &[TensorSpec]| {
            specs
                .iter()
                .map(|s| {
                    ElemType::from_name(&s.dtype)
                        .ok_or_else(|| bad(format!("unknown dtype `{}` of `{}`", s.dtype, s.name)))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let input_types = types(&manifest.inputs)?;
        let output_types = types(&manifest.outputs)?;
        let helper_table = manifest
            .helpers
            .iter()
            .map(|n| {
                helpers::find(n).map(|h| h.address()).ok_or_else(|| {
                    RuntimeError::Corrupt(format!(
                        "the artifact needs runtime helper `{n}`, which this runtime lacks"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let code_len = file.code.as_ref().map_or(0, |c| c.len()) as u64;
        for k in &manifest.kernels {
            if k.offset.checked_add(k.len).is_none_or(|end| end > code_len) {
                return Err(bad(format!("kernel `{}` lies outside the code", k.name)));
            }
        }
        let entry = file
            .function(manifest.entry.offset as usize)
            .ok_or_else(|| bad("entry function lies outside the code".into()))?;
        let weights_len = file.weights.as_ref().map_or(0, |w| w.len()) as u64;
        for w in &manifest.weights {
            if w.offset
                .checked_add(w.bytes)
                .is_none_or(|end| end > weights_len)
            {
                return Err(bad(format!("weight `{}` lies outside the weights", w.name)));
            }
        }
        for b in &manifest.arena.buffers {
            if b.offset
                .checked_add(b.max_bytes)
                .is_none_or(|end| end > manifest.arena.bytes)
            {
                return Err(bad(format!("buffer `{}` lies outside the arena", b.name)));
            }
        }
        let layout = FrameLayout {
            inputs: manifest.inputs.len(),
            outputs: manifest.outputs.len(),
            symbols: manifest.symbols.len(),
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(options.threads)
            .thread_name(|i| format!("kiln-worker-{i}"))
            .build()
            .map_err(|e| RuntimeError::Corrupt(format!("cannot start worker threads: {e}")))?;
        Ok(Model {
            file,
            manifest,
            input_types,
            output_types,
            layout,
            entry,
            helper_table,
            gemm: Kernel::detect(),
            pool,
            arenas: Mutex::new(Vec::new()),
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Binds the symbols from the inputs' shapes and checks every input against its spec.
    fn bind(&self, inputs: &[Tensor]) -> Result<Vec<i64>, RuntimeError> {
        let m = &self.manifest;
        let bad = |msg: String| Err(RuntimeError::BadInput(msg));
        if inputs.len() != m.inputs.len() {
            let names: Vec<&str> = m.inputs.iter().map(|s| s.name.as_str()).collect();
            return bad(format!(
                "the model takes {} input{} ({}), got {}",
                m.inputs.len(),
                if m.inputs.len() == 1 { "" } else { "s" },
                names.join(", "),
                inputs.len()
            ));
        }
        let names: Vec<String> = m.symbols.iter().map(|s| s.name.clone()).collect();
        // Each symbol's value, with the input and dim it was read from.
        let mut symbols: Vec<Option<(i64, usize, usize)>> = vec![None; m.symbols.len()];
        for (i, (spec, t)) in m.inputs.iter().zip(inputs).enumerate() {
            if t.dtype() != self.input_types[i] {
                return bad(format!(
                    "input `{}`: expected dtype {}, got {}",
                    spec.name,
                    self.input_types[i],
                    t.dtype()
                ));
            }
            let shown: Vec<String> = spec.shape.iter().map(|d| d.display(&names)).collect();
            if t.shape().len() != spec.shape.len() {
                return bad(format!(
                    "input `{}`: expected rank {} (shape [{}]), got shape {:?}",
                    spec.name,
                    spec.shape.len(),
                    shown.join(", "),
                    t.shape()
                ));
            }
            for (d, (&got, want)) in t.shape().iter().zip(&spec.shape).enumerate() {
                if let Some(s) = want.as_sym() {
                    match symbols.get(s).copied().flatten() {
                        Some((v, from, from_dim)) if v != got as i64 => {
                            return bad(format!(
                                "input `{}` dim {d} is {got}, but `{}` is {v} (from input `{}` dim {from_dim})",
                                spec.name, names[s], m.inputs[from].name
                            ))
                        }
                        Some(_) => {}
                        None if s < symbols.len() => symbols[s] = Some((got as i64, i, d)),
                        None => {
                            return Err(RuntimeError::Corrupt(format!(
                                "manifest: input `{}` names symbol {s}",
                                spec.name
                            )))
                        }
                    }
                }
            }
        }
        let mut values = Vec::with_capacity(symbols.len());
        for (s, v) in m.symbols.iter().zip(&symbols) {
            let Some((v, _, _)) = *v else {
                return Err(RuntimeError::Corrupt(format!(
                    "manifest: symbol `{}` is not the dim of any input",
                    s.name
                )));
            };
            if v < s.min || v > s.max {
                return Err(RuntimeError::DimOutOfBounds {
                    name: s.name.clone(),
                    value: v,
                    min: s.min,
                    max: s.max,
                });
            }
            values.push(v);
        }
        for (spec, t) in m.inputs.iter().zip(inputs) {
            for (d, (&got, want)) in t.shape().iter().zip(&spec.shape).enumerate() {
                let w = want.eval(&values);
                if w != Some(got as i64) {
                    let expected = match (want, w) {
                        (DimExpr::Const(c), _) => c.to_string(),
                        (_, Some(w)) => format!("{} = {w}", want.display(&names)),
                        (_, None) => want.display(&names),
                    };
                    return bad(format!(
                        "input `{}` dim {d} is {got}, expected {expected}",
                        spec.name
                    ));
                }
            }
        }
        Ok(values)
    }

    /// Runs the model on `inputs` (in the manifest's order) and returns its outputs.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, RuntimeError> {
        Ok(self.run_with(inputs, false)?.0)
    }

    /// As [`Model::run`], and also how long each step of the manifest's schedule took
    /// (a clock read after every step: a few tens of nanoseconds each).
    pub fn run_profiled(
        &self,
        inputs: &[Tensor],
    ) -> Result<(Vec<Tensor>, Vec<std::time::Duration>), RuntimeError> {
        let (outputs, times) = self.run_with(inputs, true)?;
        Ok((outputs, times.unwrap_or_default()))
    }

    fn run_with(
        &self,
        inputs: &[Tensor],
        profile: bool,
    ) -> Result<(Vec<Tensor>, Option<Vec<std::time::Duration>>), RuntimeError> {
        let symbols = self.bind(inputs)?;
        let corrupt = |m: String| RuntimeError::Corrupt(format!("manifest: {m}"));
        for b in &self.manifest.arena.buffers {
            let need = b
                .bytes
                .eval(&symbols)
                .ok_or_else(|| corrupt(format!("size of `{}`", b.name)))?;
            if need < 0 || need as u64 > b.max_bytes {
                return Err(corrupt(format!(
                    "buffer `{}` needs {need} bytes, more than the {} planned",
                    b.name, b.max_bytes
                )));
            }
        }
        let mut outputs = Vec::with_capacity(self.manifest.outputs.len());
        for (spec, &ty) in self.manifest.outputs.iter().zip(&self.output_types) {
            let shape = spec
                .shape
                .iter()
                .map(|d| d.eval(&symbols).filter(|&v| v >= 0).map(|v| v as usize))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| corrupt(format!("shape of output `{}`", spec.name)))?;
            outputs.push(Tensor::zeros(ty, &shape));
        }
        let words = (self.manifest.arena.bytes as usize).div_ceil(8);
        let mut arena = self
            .arenas
            .lock()
            .map_err(|_| corrupt("arena pool poisoned".into()))?
            .pop()
            .unwrap_or_default();
        if arena.len() < words.max(1) {
            // Zeroed allocation: the OS maps pages lazily, so a run only pays for (and the
            // process only holds) the arena pages its sizes touch.
            arena = vec![0u64; words.max(1)];
        }
        let mut frame = vec![0u64; self.layout.len()];
        frame[frame::HELPER_TABLE] = self.helper_table.as_ptr() as u64;
        let steps = self.manifest.steps.len();
        let context = if profile {
            RunContext::profiled(self.gemm, steps)
        } else {
            RunContext::new(self.gemm)
        };
        frame[frame::RUN_CONTEXT] = &context as *const RunContext as u64;
        frame[frame::ARENA] = arena.as_mut_ptr() as u64;
        frame[frame::WEIGHTS] = self.file.weights.as_ref().map_or(0, |w| w.as_ptr() as u64);
        for (i, t) in inputs.iter().enumerate() {
            frame[self.layout.input(i)] = t.as_ptr() as u64;
        }
        for (i, t) in outputs.iter_mut().enumerate() {
            frame[self.layout.output(i)] = t.as_mut_ptr() as u64;
        }
        for (i, &v) in symbols.iter().enumerate() {
            frame[self.layout.symbol(i)] = v as u64;
        }
        let entry = self.entry;
        let start = std::time::Instant::now();
        // The frame's address crosses into the pool's worker as an integer (a pointer is not
        // Send); the frame outlives the call.
        let frame_addr = frame.as_ptr() as usize;
        self.pool.install(|| {
            super::awake::with_workers_awake(|| {
                // SAFETY: the frame is laid out as `model::frame` documents for this manifest;
                // the inputs were checked against their specs, the outputs allocated at their
                // evaluated shapes, and the arena is as large as the plan (whose buffer sizes
                // were checked for these symbols above). The code was checksummed and compiled
                // for this CPU's features.
                unsafe { entry(frame_addr as *const u64) }
            })
        });
        if let Ok(mut pool) = self.arenas.lock() {
            pool.push(arena);
        }
        if let Some(msg) = context.error.into_inner() {
            return Err(RuntimeError::BadInput(msg));
        }
        let times = match context.step_ends.map(|m| m.into_inner()) {
            Some(Ok(ends)) if ends.len() == steps => {
                let mut prev = start;
                let times = ends
                    .iter()
                    .map(|&t| {
                        let d = t.saturating_duration_since(prev);
                        prev = t;
                        d
                    })
                    .collect();
                Some(times)
            }
            Some(Ok(ends)) => {
                return Err(corrupt(format!(
                    "the code ran {} steps, the schedule lists {steps}",
                    ends.len()
                )))
            }
            _ => None,
        };
        Ok((outputs, times))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_model_is_send_and_sync() {
        fn shared<T: Send + Sync>() {}
        shared::<super::Model>();
    }
}
