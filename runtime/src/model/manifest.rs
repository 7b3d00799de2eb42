//! The manifest of a CPU artifact: what the runtime needs to bind inputs, size the arena
//! and call the code, and what `kiln inspect` shows. Stored as JSON in the artifact.

use serde::{Deserialize, Serialize};

use crate::model::dim_expr::DimExpr;

/// The manifest's format, bumped with any incompatible change of these types.
pub const MANIFEST_FORMAT: &str = "kiln-cpu-1";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// The graph's name.
    pub name: String,
    /// The symbolic dims, with the bounds the artifact was compiled for.
    pub symbols: Vec<SymbolSpec>,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    /// The model's entry function: `extern "C" fn(frame: *const u64)`, see [`Frame`](crate::model::frame).
    pub entry: FunctionSpan,
    /// Generated kernels: `extern "C" fn(frame: *const u64, args: *const u64)`.
    pub kernels: Vec<KernelSpec>,
    /// Runtime helpers the code calls, in the order of the helper table it indexes.
    pub helpers: Vec<String>,
    pub arena: ArenaSpec,
    pub weights: Vec<WeightSpec>,
    /// The schedule, one line per step, for people reading `kiln inspect`.
    pub steps: Vec<StepSpec>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymbolSpec {
    pub name: String,
    pub min: i64,
    pub max: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    pub name: String,
    /// An element type name as kiln's IR prints it (`f32`, `i64`, `bool`, ...).
    pub dtype: String,
    pub shape: Vec<DimExpr>,
    /// For an integer input used as indices (a Gather's, say): the values are valid in
    /// `0..index_range` (the smallest axis they index). Informative: tools such as `kiln
    /// bench` use it to generate inputs; the runtime does not check it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_range: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionSpan {
    pub offset: u64,
    pub len: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelSpec {
    pub name: String,
    pub offset: u64,
    pub len: u64,
}

/// The activation arena: one block per run, buffers at fixed offsets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArenaSpec {
    /// Size at the symbols' upper bounds.
    pub bytes: u64,
    pub buffers: Vec<BufferSpec>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferSpec {
    /// The value (or scratch space) it holds.
    pub name: String,
    pub offset: u64,
    /// Its size for given symbol values; checked against `max_bytes` on every run.
    pub bytes: DimExpr,
    pub max_bytes: u64,
    /// The steps (indices into `steps`) between which it is live, inclusive.
    pub live: (u32, u32),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightSpec {
    pub name: String,
    /// Offset into the weights section (64-byte aligned).
    pub offset: u64,
    pub bytes: u64,
    /// `dense` (row-major) or `packed_b` (GEMM panels, see `cpu::gemm::PackedB`).
    pub layout: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepSpec {
    /// The IR op(s) the step computes.
    pub op: String,
    /// The kernel or helper it calls.
    pub kernel: String,
}
