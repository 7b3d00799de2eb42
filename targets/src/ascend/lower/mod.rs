//! Lowering for Ascend: a canonicalized (and fused) graph becomes a [`Program`], a list of
//! kernel launches named and shaped after CANN's aclnn operators, over buffers that the
//! HBM plan ([`crate::ascend::memory`]) places afterwards.
//!
//! Op lowerings live in one file per kernel family, each exporting `OPS: &[(&str,
//! LowerFn)]` (IR op name -> lowering), as the CPU target's `lower/ops` do. A lowering reads
//! its operands through [`Lowerer`] as [`DevTensor`]s (buffer, byte offset, device dtype,
//! format, concrete shape), computes the kernel's tiling under the profile's limits
//! ([`crate::ascend::tiling`]) and pushes a [`Launch`]. An op no family lowers, or a case a
//! lowering does not implement, is an error naming the op: never a silent fallback.
//!
//! Conventions every family relies on:
//! - Shapes are concrete: symbols take the values the launch list is compiled for.
//! - Every float value lives on the device in the device dtype (`--dtype f16 | bf16`);
//!   integer and bool values keep theirs. Float graph inputs and outputs of another dtype
//!   are converted by Cast kernels at the edges. Constants are converted at compile time.
//! - Activations are ND; weights a cube reads are stored FRACTAL_NZ at compile time
//!   ([`Lowerer::nz_weight`]); a producer whose format differs from what a consumer takes
//!   gets a TransData kernel in between ([`Lowerer::to_format`]).

mod activation;
mod attention;
mod elementwise;
mod matmul;
mod moe;
mod moe_experts;
mod moe_shared;
mod movement;
mod norm;
pub mod precision;
mod reduce;
mod rope;
mod scatter;
mod softmax;
mod topk;
mod transdata;
mod view;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kiln_ir::dtype::DType;
use kiln_ir::graph::{Graph, NodeId, Value};
use kiln_ir::tensor::Tensor;
use kiln_runtime::ascend::descriptor::{BufferKind, CoreType, Format, Tiling};
use kiln_runtime::ascend::Profile;
use kiln_runtime::ElemType;

use crate::ascend::format;
use crate::error::TargetError;

/// Lowers one node: reads its operands from `lw`, pushes launches, binds its outputs.
pub type LowerFn = fn(&mut Lowerer, NodeId) -> Result<(), TargetError>;

const FAMILIES: &[&[(&str, LowerFn)]] = &[
    view::OPS,
    elementwise::OPS,
    matmul::OPS,
    movement::OPS,
    reduce::OPS,
    softmax::OPS,
    norm::OPS,
    topk::OPS,
    scatter::OPS,
    activation::OPS,
    rope::OPS,
    attention::OPS,
    moe::OPS,
];

/// The lowering of `op`, if some family has one.
pub fn lowering(op: &str) -> Option<LowerFn> {
    FAMILIES
        .iter()
        .flat_map(|f| f.iter())
        .find(|(name, _)| *name == op)
        .map(|(_, f)| *f)
}

pub type BufId = usize;

/// A region of device memory before placement.
#[derive(Clone, Debug)]
pub struct PlanBuffer {
    pub name: String,
    pub kind: BufferKind,
    pub bytes: u64,
    /// For weights: the offset in the weights section.
    pub weight_offset: Option<u64>,
}

/// A tensor on the device as lowerings see it.
#[derive(Clone, Debug, PartialEq)]
pub struct DevTensor {
    pub buf: BufId,
    /// Byte offset into the buffer.
    pub offset: u64,
    pub dtype: ElemType,
    pub format: Format,
    /// Logical shape.
    pub shape: Vec<i64>,
}

impl DevTensor {
    pub fn numel(&self) -> i64 {
        self.shape.iter().product()
    }

    /// The shape as stored (see [`kiln_runtime::ascend::descriptor::TensorBinding`]).
    pub fn storage_shape(&self) -> Vec<i64> {
        format::storage_shape(&self.shape, self.format)
    }

    pub fn bytes(&self) -> u64 {
        self.storage_shape().iter().product::<i64>() as u64 * self.dtype.size() as u64
    }

    /// Rows x cols when seen as a matrix (all dims but the last folded into rows).
    pub fn matrix(&self) -> (i64, i64) {
        let cols = self.shape.last().copied().unwrap_or(1);
        (self.numel() / cols.max(1), cols)
    }
}

/// A kernel launch before memory placement.
#[derive(Clone, Debug)]
pub struct Launch {
    pub kernel_name: String,
    pub op: String,
    pub core_type: CoreType,
    pub block_dim: u32,
    /// Workspace buffer, if the kernel needs one.
    pub workspace: Option<BufId>,
    pub tiling: Tiling,
    /// The operator's attributes in words (see [`kiln_runtime::ascend::descriptor::KernelDesc`]).
    pub attrs: BTreeMap<String, String>,
    pub inputs: Vec<Option<DevTensor>>,
    pub outputs: Vec<DevTensor>,
}

/// A graph input or output.
#[derive(Clone, Debug)]
pub struct Port {
    pub name: String,
    pub buf: BufId,
    pub dtype: ElemType,
    pub shape: Vec<i64>,
}

/// The lowered graph.
pub struct Program {
    pub name: String,
    pub inputs: Vec<Port>,
    pub outputs: Vec<Port>,
    pub buffers: Vec<PlanBuffer>,
    pub launches: Vec<Launch>,
    /// The weights section: device dtype, weights in their device format.
    pub weights: Vec<u8>,
}

/// Weights start on this boundary in the weights section (and so in HBM).
const WEIGHT_ALIGN: u64 = 512;

/// The state of a lowering; op lowerings call its methods.
pub struct Lowerer<'g> {
    pub graph: &'g Graph,
    pub profile: &'static Profile,
    /// The device dtype of float values.
    pub dtype: ElemType,
    dims: HashMap<String, i64>,
    program: Program,
    values: HashMap<Value, DevTensor>,
    /// Constants already stored, by (value, format).
    stored: HashMap<(Value, Format), DevTensor>,
    /// The node being lowered, for kernel labels and error messages.
    current: String,
    /// Float values kept in f32 on the device ([`precision`]).
    f32_values: std::collections::HashSet<Value>,
}

/// The runtime's name for an IR dtype.
pub fn elem_type(d: DType) -> ElemType {
    ElemType::from_name(d.name()).expect("the runtime names every kiln-ir dtype")
}

impl<'g> Lowerer<'g> {
    /// The concrete shape of an IR value.
    pub fn shape_of(&self, v: Value) -> Result<Vec<i64>, TargetError> {
        self.graph
            .value_type(v)
            .shape
            .iter()
            .map(|d| {
                d.eval(&self.dims).map_err(|_| {
                    self.error(format!(
                        "dim {d} has a symbol without a size; give it with --dim NAME=N"
                    ))
                })
            })
            .collect()
    }

    /// The device dtype of values of IR dtype `d`.
    pub fn device_dtype(&self, d: DType) -> Result<ElemType, TargetError> {
        match d {
            DType::F32 | DType::F16 | DType::BF16 | DType::F64 => Ok(self.dtype),
            DType::I64 | DType::I32 | DType::I8 | DType::U8 | DType::Bool => Ok(elem_type(d)),
            _ => Err(self.unsupported(format!("dtype {d}"))),
        }
    }

    /// The device dtype of IR value `v`: f32 for the floats [`precision`] keeps.
    pub fn value_dtype(&self, v: Value) -> Result<ElemType, TargetError> {
        let d = self.graph.value_type(v).dtype;
        if d.is_float() && self.f32_values.contains(&v) {
            return Ok(ElemType::F32);
        }
        self.device_dtype(d)
    }

    /// The type node output `i` has on the device: dtype and shape.
    pub fn output_type(&self, node: NodeId, i: usize) -> Result<(ElemType, Vec<i64>), TargetError> {
        let v = Value { node, output: i };
        Ok((self.value_dtype(v)?, self.shape_of(v)?))
    }

    /// The device tensor of node input `i` (an error if absent).
    pub fn input(&mut self, node: NodeId, i: usize) -> Result<DevTensor, TargetError> {
        match self.opt_input(node, i)? {
            Some(t) => Ok(t),
            None => Err(self.error(format!("input {i} is missing"))),
        }
    }

    /// The device tensor of node input `i`, if present. A constant is stored (converted to
    /// its device dtype, ND) the first time an op reads it this way.
    pub fn opt_input(&mut self, node: NodeId, i: usize) -> Result<Option<DevTensor>, TargetError> {
        match self.graph.node(node).input(i) {
            Some(v) => self.value(v).map(Some),
            None => Ok(None),
        }
    }

    /// The value of node input `i` when it is a constant.
    pub fn const_input(&self, node: NodeId, i: usize) -> Option<Arc<Tensor>> {
        self.graph.const_of(self.graph.node(node).input(i)?)
    }

    /// The integers node input `i` holds when known at compile time (constants and `dims`,
    /// evaluated): shapes, axes, starts.
    pub fn ints_input(&self, node: NodeId, i: usize) -> Option<Vec<i64>> {
        let v = self.graph.node(node).input(i)?;
        let producer = self.graph.node(v.node);
        if producer.op == "dims" {
            return match producer.attrs.get("value") {
                Some(kiln_ir::attr::Attr::Dims(d)) => {
                    d.iter().map(|d| d.eval(&self.dims).ok()).collect()
                }
                _ => None,
            };
        }
        let t = self.graph.const_of(v)?;
        t.dtype().is_int().then(|| t.to_i64())
    }

    fn value(&mut self, v: Value) -> Result<DevTensor, TargetError> {
        if let Some(t) = self.values.get(&v) {
            return Ok(t.clone());
        }
        if self.graph.node(v.node).op == "dims" {
            let ints = self
                .ints_input_value(v)
                .ok_or_else(|| self.error("a dims value with an unbound symbol"))?;
            let t =
                Tensor::from_i64s(vec![ints.len()], ints).map_err(|e| self.error(e.to_string()))?;
            return self.store_constant(v, &t, Format::Nd);
        }
        match self.graph.const_of(v) {
            Some(t) => self.store_constant(v, &t, Format::Nd),
            None => Err(self.error(format!(
                "value {}#{} has no device tensor (its producer was not lowered)",
                self.graph.node(v.node).label(),
                v.output
            ))),
        }
    }

    fn ints_input_value(&self, v: Value) -> Option<Vec<i64>> {
        match self.graph.node(v.node).attrs.get("value") {
            Some(kiln_ir::attr::Attr::Dims(d)) => {
                d.iter().map(|d| d.eval(&self.dims).ok()).collect()
            }
            _ => None,
        }
    }

    fn store_constant(
        &mut self,
        v: Value,
        t: &Tensor,
        fmt: Format,
    ) -> Result<DevTensor, TargetError> {
        if let Some(d) = self.stored.get(&(v, fmt)) {
            return Ok(d.clone());
        }
        let dtype = self.value_dtype(v)?;
        let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
        if fmt == Format::FractalNz && shape.len() < 2 {
            return Err(self.error(format!(
                "FRACTAL_NZ needs a matrix, the constant has shape {shape:?}"
            )));
        }
        let bytes = format::encode(t, dtype, fmt).map_err(|e| self.error(e))?;
        let name = match self.graph.node(v.node).attrs.get("value") {
            Some(kiln_ir::attr::Attr::Weight(w)) => w.to_string(),
            _ => format!("const {}", v.node.index()),
        };
        let name = match fmt {
            Format::Nd => name,
            Format::FractalNz => format!("{name} (FRACTAL_NZ)"),
        };
        let d = self.weight(&name, dtype, fmt, shape, bytes);
        self.stored.insert((v, fmt), d.clone());
        if fmt == Format::Nd {
            self.values.insert(v, d.clone());
        }
        Ok(d)
    }

    /// Node input `i` as a FRACTAL_NZ weight stored at compile time, if it is a constant
    /// (what a cube kernel's B operand wants); `None` if it is computed at run time.
    pub fn nz_weight(&mut self, node: NodeId, i: usize) -> Result<Option<DevTensor>, TargetError> {
        let Some(v) = self.graph.node(node).input(i) else {
            return Ok(None);
        };
        match self.graph.const_of(v) {
            Some(t) => self.store_constant(v, &t, Format::FractalNz).map(Some),
            None => Ok(None),
        }
    }

    /// Stores `bytes` (already in `dtype` and `format`) in the weights section.
    pub fn weight(
        &mut self,
        name: &str,
        dtype: ElemType,
        format: Format,
        shape: Vec<i64>,
        bytes: Vec<u8>,
    ) -> DevTensor {
        let w = &mut self.program.weights;
        let offset = (w.len() as u64).div_ceil(WEIGHT_ALIGN) * WEIGHT_ALIGN;
        w.resize(offset as usize, 0);
        w.extend_from_slice(&bytes);
        self.program.buffers.push(PlanBuffer {
            name: name.to_string(),
            kind: BufferKind::Weight,
            bytes: bytes.len() as u64,
            weight_offset: Some(offset),
        });
        DevTensor {
            buf: self.program.buffers.len() - 1,
            offset: 0,
            dtype,
            format,
            shape,
        }
    }

    /// The device tensor node output `i` is written to (allocated on first request), ND.
    pub fn output(&mut self, node: NodeId, i: usize) -> Result<DevTensor, TargetError> {
        let v = Value { node, output: i };
        if let Some(t) = self.values.get(&v) {
            return Ok(t.clone());
        }
        let (dtype, shape) = self.output_type(node, i)?;
        let t = self.new_tensor(
            &format!("{}#{i}", self.current),
            BufferKind::Activation,
            dtype,
            Format::Nd,
            shape,
        );
        self.values.insert(v, t.clone());
        Ok(t)
    }

    /// Makes output `i` of `node` a view of `src` with the output's shape (Reshape and
    /// friends: no kernel). Only ND tensors have views.
    pub fn alias_output(
        &mut self,
        node: NodeId,
        i: usize,
        src: &DevTensor,
    ) -> Result<(), TargetError> {
        if src.format != Format::Nd {
            return Err(self.error(format!("a view of a {} tensor", src.format)));
        }
        let (dtype, shape) = self.output_type(node, i)?;
        if dtype != src.dtype {
            return Err(self.error(format!("a {dtype} view of a {} tensor", src.dtype)));
        }
        let view = DevTensor {
            shape,
            ..src.clone()
        };
        self.values.insert(Value { node, output: i }, view);
        Ok(())
    }

    /// A scratch tensor, live from the launch that first touches it to the last.
    pub fn scratch(
        &mut self,
        what: &str,
        dtype: ElemType,
        format: Format,
        shape: Vec<i64>,
    ) -> DevTensor {
        let name = format!("{} {what}", self.current);
        self.new_tensor(&name, BufferKind::Activation, dtype, format, shape)
    }

    /// A workspace of `bytes` for the next launch.
    pub fn workspace(&mut self, bytes: u64) -> BufId {
        let name = format!("{} workspace", self.current);
        self.new_buffer(&name, BufferKind::Workspace, bytes)
    }

    fn new_buffer(&mut self, name: &str, kind: BufferKind, bytes: u64) -> BufId {
        self.program.buffers.push(PlanBuffer {
            name: name.to_string(),
            kind,
            bytes,
            weight_offset: None,
        });
        self.program.buffers.len() - 1
    }

    fn new_tensor(
        &mut self,
        name: &str,
        kind: BufferKind,
        dtype: ElemType,
        format: Format,
        shape: Vec<i64>,
    ) -> DevTensor {
        let bytes = format::storage_shape(&shape, format)
            .iter()
            .product::<i64>() as u64
            * dtype.size() as u64;
        let buf = self.new_buffer(name, kind, bytes);
        DevTensor {
            buf,
            offset: 0,
            dtype,
            format,
            shape,
        }
    }

    /// Appends a launch; its `op` label is the node being lowered.
    pub fn launch(
        &mut self,
        kernel_name: &str,
        core_type: CoreType,
        block_dim: u32,
        tiling: Tiling,
        inputs: Vec<Option<DevTensor>>,
        outputs: Vec<DevTensor>,
    ) {
        self.launch_with_workspace(
            kernel_name,
            core_type,
            block_dim,
            tiling,
            inputs,
            outputs,
            None,
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub fn launch_with_workspace(
        &mut self,
        kernel_name: &str,
        core_type: CoreType,
        block_dim: u32,
        tiling: Tiling,
        inputs: Vec<Option<DevTensor>>,
        outputs: Vec<DevTensor>,
        workspace: Option<BufId>,
    ) {
        self.program.launches.push(Launch {
            kernel_name: kernel_name.to_string(),
            op: self.current.clone(),
            core_type,
            block_dim,
            workspace,
            tiling,
            attrs: BTreeMap::new(),
            inputs,
            outputs,
        });
    }

    /// Sets the attributes of the last launch.
    pub fn set_attrs(&mut self, attrs: &[(&str, String)]) {
        let last = self
            .program
            .launches
            .last_mut()
            .expect("attributes follow a launch");
        last.attrs = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
    }

    /// `t` in `format`: itself if it already is, else the output of a TransData kernel.
    pub fn to_format(&mut self, t: &DevTensor, format: Format) -> Result<DevTensor, TargetError> {
        if t.format == format {
            return Ok(t.clone());
        }
        transdata::lower(self, t, format)
    }

    /// `t` converted to `dtype` by a Cast kernel (itself if it already has it).
    pub fn cast(&mut self, t: &DevTensor, dtype: ElemType) -> Result<DevTensor, TargetError> {
        if t.dtype == dtype {
            return Ok(t.clone());
        }
        let out = self.scratch(
            &format!("cast to {dtype}"),
            dtype,
            Format::Nd,
            t.shape.clone(),
        );
        elementwise::cast(self, t, &out)?;
        Ok(out)
    }

    /// An error about the node being lowered.
    pub fn error(&self, msg: impl std::fmt::Display) -> TargetError {
        TargetError::Lower(format!("{}: {msg}", self.current))
    }

    /// "no Ascend kernel for <detail>".
    pub fn unsupported(&self, detail: impl std::fmt::Display) -> TargetError {
        TargetError::Lower(format!("{}: no Ascend kernel for {detail}", self.current))
    }
}

/// Lowers `graph` (canonicalized, types inferred) for `profile`, float values in `dtype`,
/// symbols at the sizes `dims` gives.
pub fn lower(
    graph: &Graph,
    profile: &'static Profile,
    dtype: ElemType,
    dims: &HashMap<String, i64>,
) -> Result<Program, TargetError> {
    let order = graph
        .topo_order()
        .ok_or_else(|| TargetError::Lower("the graph has a cycle".into()))?;
    let mut lw = Lowerer {
        graph,
        profile,
        dtype,
        dims: dims.clone(),
        program: Program {
            name: graph.name.clone(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            buffers: Vec::new(),
            launches: Vec::new(),
            weights: Vec::new(),
        },
        values: HashMap::new(),
        stored: HashMap::new(),
        current: String::new(),
        f32_values: precision::f32_values(graph),
    };
    for &v in graph.inputs() {
        let name = graph.input_name(v).unwrap_or("input").to_string();
        lw.current = format!("input \"{name}\"");
        let ir = graph.value_type(v).dtype;
        let (host, dev) = (elem_type(ir), lw.value_dtype(v)?);
        let shape = lw.shape_of(v)?;
        let t = lw.new_tensor(&name, BufferKind::Input, host, Format::Nd, shape.clone());
        lw.program.inputs.push(Port {
            name,
            buf: t.buf,
            dtype: host,
            shape,
        });
        let t = lw.cast(&t, dev)?;
        lw.values.insert(v, t);
    }
    for id in order {
        let node = graph.node(id);
        if matches!(node.op.as_str(), "input" | "constant" | "dims") {
            continue; // constants are stored when first read
        }
        lw.current = node.label();
        match lowering(&node.op) {
            Some(f) => f(&mut lw, id)?,
            None => {
                return Err(TargetError::Lower(format!(
                    "{}: op {} has no Ascend kernel",
                    node.label(),
                    node.op
                )))
            }
        }
        for i in 0..node.outputs.len() {
            let v = Value {
                node: id,
                output: i,
            };
            if !lw.values.contains_key(&v) && (!graph.users(v).is_empty() || graph.is_output(v)) {
                return Err(lw.error(format!("the lowering left output {i} without a tensor")));
            }
        }
    }
    // Outputs: the value converted to the graph's dtype into a buffer of its own.
    for (name, v) in graph.outputs() {
        lw.current = format!("output \"{name}\"");
        let t = lw.value(*v)?;
        let host = elem_type(graph.value_type(*v).dtype);
        let t = lw.to_format(&t, Format::Nd)?;
        // A value computed into a buffer of its own, in the right dtype, becomes the output
        // buffer; anything else (an input, a weight, a view, a second output) is copied.
        let own = {
            let b = &lw.program.buffers[t.buf];
            b.kind == BufferKind::Activation && t.offset == 0 && b.bytes == t.bytes()
        };
        let out = if t.dtype == host && own {
            lw.program.buffers[t.buf].kind = BufferKind::Output;
            lw.program.buffers[t.buf].name = name.clone();
            t
        } else {
            let out = lw.new_tensor(name, BufferKind::Output, host, Format::Nd, t.shape.clone());
            if t.dtype == host {
                elementwise::copy(&mut lw, &t, &out)?;
            } else {
                elementwise::cast(&mut lw, &t, &out)?;
            }
            out
        };
        lw.program.outputs.push(Port {
            name: name.clone(),
            buf: out.buf,
            dtype: host,
            shape: out.shape,
        });
    }
    Ok(lw.program)
}
