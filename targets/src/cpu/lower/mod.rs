//! Lowering: a canonicalized graph becomes a [`Program`], a schedule of steps. Each step
//! calls one generated kernel or one runtime helper with an argument list of buffer
//! pointers and symbolic integers, which the entry function evaluates per run.
//!
//! Op lowerings live in `ops/`, one file per family; they see the graph through
//! [`Lowerer`]: operands (buffer, byte offset, dtype, symbolic shape), kernels built on
//! demand and shared between steps with the same key, helpers by name, scratch buffers.

pub mod ops;

use std::collections::{HashMap, HashSet};

use cranelift_codegen::ir::Function;
use cranelift_codegen::isa::OwnedTargetIsa;
use kiln_ir::dim::Dim;
use kiln_ir::dtype::DType;
use kiln_ir::graph::{Graph, NodeId, Value};

use crate::cpu::codegen::kernel::KernelBuilder;
use crate::error::TargetError;

pub type BufId = usize;

/// Where a buffer lives.
#[derive(Clone, Debug, PartialEq)]
pub enum BufKind {
    /// Graph input `i`, owned by the caller.
    Input(usize),
    /// Graph output `i`, allocated by the runtime at its evaluated shape.
    Output(usize),
    /// A weight (or other constant) at this byte offset of the weights section.
    Weight(u64),
    /// An activation in the arena; its offset comes from the memory plan.
    Arena,
}

#[derive(Clone, Debug)]
pub struct Buffer {
    pub name: String,
    pub kind: BufKind,
    /// Size in bytes, symbolic.
    pub bytes: Dim,
}

/// A step's callee.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Callee {
    /// A generated kernel, by index into `Program::kernels`.
    Kernel(usize),
    /// A runtime helper, by index into `Program::helpers` (the helper table order).
    Helper(usize),
}

/// One argument slot of a call.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    /// The address of a buffer plus a byte offset.
    Ptr { buf: BufId, offset: Dim },
    /// An integer (a size, a stride, a count), evaluated per run.
    Int(Dim),
    /// Raw bits (an f64 or f32 constant, a flag).
    Bits(u64),
}

impl Arg {
    pub fn int(d: impl Into<Dim>) -> Arg {
        Arg::Int(d.into())
    }
}

#[derive(Clone, Debug)]
pub struct Step {
    /// What the step computes, for people (`MatMul "/layers.0/MatMul"`).
    pub op: String,
    pub callee: Callee,
    pub args: Vec<Arg>,
}

/// A constant stored in the weights section.
#[derive(Clone, Debug)]
pub struct WeightBlob {
    pub name: String,
    pub offset: u64,
    pub bytes: Vec<u8>,
    /// `dense` or `packed_b`.
    pub layout: &'static str,
}

/// A graph input or output as the manifest describes it.
#[derive(Clone, Debug)]
pub struct Port {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<Dim>,
}

/// The lowered graph.
pub struct Program {
    pub name: String,
    pub inputs: Vec<Port>,
    pub outputs: Vec<Port>,
    pub buffers: Vec<Buffer>,
    pub steps: Vec<Step>,
    /// Generated kernels (name, function), called as `fn(frame, args)`.
    pub kernels: Vec<(String, Function)>,
    pub helpers: Vec<String>,
    pub weights: Vec<WeightBlob>,
    pub weights_len: u64,
}

/// A tensor as op lowerings see it: a buffer, a byte offset into it, a dtype, a shape
/// (row-major, contiguous).
#[derive(Clone, Debug, PartialEq)]
pub struct Operand {
    pub buf: BufId,
    pub offset: Dim,
    pub dtype: DType,
    pub shape: Vec<Dim>,
}

impl Operand {
    /// The pointer argument for this operand.
    pub fn ptr(&self) -> Arg {
        Arg::Ptr {
            buf: self.buf,
            offset: self.offset.clone(),
        }
    }

    /// The number of elements.
    pub fn numel(&self) -> Dim {
        self.shape.iter().fold(Dim::from(1i64), |a, d| a.mul(d))
    }

    /// Row-major strides, in elements.
    pub fn strides(&self) -> Vec<Dim> {
        let mut s = vec![Dim::from(1i64); self.shape.len()];
        for i in (0..self.shape.len().saturating_sub(1)).rev() {
            s[i] = s[i + 1].mul(&self.shape[i + 1]);
        }
        s
    }
}

/// Weights are placed on this boundary in the weights section.
const WEIGHT_ALIGN: u64 = 64;

/// The state of a lowering; op lowerings call its methods.
pub struct Lowerer<'g> {
    pub graph: &'g Graph,
    isa: &'g OwnedTargetIsa,
    program: Program,
    values: HashMap<Value, Operand>,
    kernel_keys: HashMap<String, usize>,
    /// The node being lowered, for step labels and error messages.
    current: String,
    /// Elementwise nodes evaluated inside a later node's kernel (no step, no buffer).
    fused: HashSet<NodeId>,
    /// Nodes computed by an earlier node's step (a GEMM's epilogue): no step of their own.
    absorbed: HashSet<NodeId>,
    /// The user's bounds on dim symbols (`--dim batch=1..1`); the runtime rejects inputs
    /// outside them.
    bounds: HashMap<String, (i64, i64)>,
}

impl<'g> Lowerer<'g> {
    /// The ISA kernels are built for.
    pub fn isa(&self) -> &OwnedTargetIsa {
        self.isa
    }

    /// Whether the ISA has fused multiply-add (else `fma` would become a libcall).
    pub fn has_fma(&self) -> bool {
        self.isa
            .isa_flags()
            .iter()
            .any(|f| f.name == "has_fma" && f.as_bool() == Some(true))
    }

    /// Whether node `id` is an interior node of an elementwise group, computed inside the
    /// kernel of the group's last node.
    pub fn is_fused(&self, id: NodeId) -> bool {
        self.fused.contains(&id)
    }

    /// The value `d` has on every run: a constant, or an expression whose symbols the user's
    /// bounds pin to one value each.
    pub fn fixed_dim(&self, d: &Dim) -> Option<i64> {
        if let Some(c) = d.as_const() {
            return Some(c);
        }
        let mut syms = Vec::new();
        d.symbols(&mut syms);
        let mut values = HashMap::new();
        for s in syms {
            match self.bounds.get(&*s) {
                Some(&(lo, hi)) if lo == hi => values.insert(s.to_string(), lo),
                _ => return None,
            };
        }
        d.eval(&values).ok()
    }

    /// Marks node `id` as computed by a step already emitted (one GEMM for several
    /// MatMuls): the lowering gives it no step when it comes to it.
    pub fn absorb(&mut self, id: NodeId) {
        self.absorbed.insert(id);
    }

    /// The operand of node input `i` (an error if the input is absent).
    pub fn input(&mut self, node: NodeId, i: usize) -> Result<Operand, TargetError> {
        self.opt_input(node, i)
            .ok_or_else(|| self.error(format!("input {i} is missing")))
    }

    /// The operand of node input `i`, if present. A constant is stored in the weights
    /// section the first time an op reads it as an operand (ops that take a constant in
    /// another form, such as prepacked GEMM panels, use [`Lowerer::const_input`] instead).
    pub fn opt_input(&mut self, node: NodeId, i: usize) -> Option<Operand> {
        let v = self.graph.node(node).input(i)?;
        self.value(v)
    }

    /// The value of node input `i` when it is a constant.
    pub fn const_input(
        &self,
        node: NodeId,
        i: usize,
    ) -> Option<std::sync::Arc<kiln_ir::tensor::Tensor>> {
        self.graph.const_of(self.graph.node(node).input(i)?)
    }

    /// The integers node input `i` holds when they are known at compile time, possibly
    /// symbolically: a constant integer tensor, or a `dims` node (`[1, seq, 4, 16]`). For
    /// inputs such as shapes, axes, starts/ends and counts.
    pub fn dims_input(&self, node: NodeId, i: usize) -> Option<Vec<Dim>> {
        let v = self.graph.node(node).input(i)?;
        let producer = self.graph.node(v.node);
        if producer.op == "dims" {
            return match producer.attrs.get("value") {
                Some(kiln_ir::attr::Attr::Dims(d)) => Some(d.clone()),
                _ => None,
            };
        }
        let t = self.graph.const_of(v)?;
        if !t.dtype().is_int() {
            return None;
        }
        Some(t.to_i64().into_iter().map(Dim::from).collect())
    }

    fn value(&mut self, v: Value) -> Option<Operand> {
        if let Some(op) = self.values.get(&v) {
            return Some(op.clone());
        }
        if self.graph.node(v.node).op == "dims" {
            return self.materialize_dims(v);
        }
        let t = self.graph.const_of(v)?;
        let name = match self.graph.node(v.node).attrs.get("value") {
            Some(kiln_ir::attr::Attr::Weight(w)) => w.to_string(),
            _ => format!("const {}", v.node.index()),
        };
        let shape = t.shape().iter().map(|&d| Dim::from(d)).collect();
        let op = self.weight(&name, t.dtype(), shape, t.to_le_bytes(), "dense");
        self.values.insert(v, op.clone());
        Some(op)
    }

    /// The operand node output `i` is written to (allocated on first request).
    pub fn output(&mut self, node: NodeId, i: usize) -> Operand {
        let v = Value { node, output: i };
        if let Some(op) = self.values.get(&v) {
            return op.clone();
        }
        let ty = self.graph.value_type(v).clone();
        let name = format!("{}#{i}", self.current);
        let op = self.new_buffer(&name, BufKind::Arena, ty.dtype, ty.shape);
        self.values.insert(v, op.clone());
        op
    }

    /// Makes output `i` of `node` share `src`'s memory (a view: Reshape, Squeeze, ...).
    /// Outputs of the graph get a copy instead, since they live in their own buffers.
    pub fn alias_output(
        &mut self,
        node: NodeId,
        i: usize,
        src: &Operand,
    ) -> Result<(), TargetError> {
        let v = Value { node, output: i };
        let ty = self.graph.value_type(v).clone();
        if self.values.contains_key(&v) {
            let dst = self.output(node, i);
            return self.copy_bytes(src, &dst);
        }
        let view = Operand {
            dtype: ty.dtype,
            shape: ty.shape,
            ..src.clone()
        };
        self.values.insert(v, view);
        Ok(())
    }

    /// A scratch buffer of `bytes`, live from its first to its last use.
    pub fn scratch(&mut self, what: &str, dtype: DType, shape: Vec<Dim>) -> Operand {
        let name = format!("{} {what}", self.current);
        self.new_buffer(&name, BufKind::Arena, dtype, shape)
    }

    /// Stores `bytes` in the weights section and returns an operand over it.
    pub fn weight(
        &mut self,
        name: &str,
        dtype: DType,
        shape: Vec<Dim>,
        bytes: Vec<u8>,
        layout: &'static str,
    ) -> Operand {
        let offset = self.program.weights_len.div_ceil(WEIGHT_ALIGN) * WEIGHT_ALIGN;
        self.program.weights_len = offset + bytes.len() as u64;
        self.program.weights.push(WeightBlob {
            name: name.to_string(),
            offset,
            bytes,
            layout,
        });
        self.new_buffer(name, BufKind::Weight(offset), dtype, shape)
    }

    fn new_buffer(&mut self, name: &str, kind: BufKind, dtype: DType, shape: Vec<Dim>) -> Operand {
        let bytes = shape
            .iter()
            .fold(Dim::from(dtype.size() as i64), |a, d| a.mul(d));
        self.program.buffers.push(Buffer {
            name: name.to_string(),
            kind,
            bytes,
        });
        Operand {
            buf: self.program.buffers.len() - 1,
            offset: Dim::from(0i64),
            dtype,
            shape,
        }
    }

    /// The kernel with `key`, built by `build` the first time it is asked for. The key must
    /// determine the generated code entirely (op, dtypes, rank, flags), never sizes that
    /// are passed as arguments.
    pub fn kernel(
        &mut self,
        key: &str,
        build: impl FnOnce(&mut KernelBuilder) -> Result<(), TargetError>,
    ) -> Result<Callee, TargetError> {
        if let Some(&k) = self.kernel_keys.get(key) {
            return Ok(Callee::Kernel(k));
        }
        let func = KernelBuilder::build(self.isa, key, build)?;
        self.program.kernels.push((key.to_string(), func));
        let k = self.program.kernels.len() - 1;
        self.kernel_keys.insert(key.to_string(), k);
        Ok(Callee::Kernel(k))
    }

    /// The runtime helper called `name`; an error if this runtime has none by that name.
    pub fn helper(&mut self, name: &str) -> Result<Callee, TargetError> {
        if kiln_runtime::cpu::helpers::find(name).is_none() {
            return Err(self.error(format!("runtime helper `{name}` does not exist")));
        }
        let i = match self.program.helpers.iter().position(|h| h == name) {
            Some(i) => i,
            None => {
                self.program.helpers.push(name.to_string());
                self.program.helpers.len() - 1
            }
        };
        Ok(Callee::Helper(i))
    }

    /// Index of helper `name` in the helper table (registering it), for kernels that call
    /// helpers themselves.
    pub fn helper_index(&mut self, name: &str) -> Result<usize, TargetError> {
        match self.helper(name)? {
            Callee::Helper(i) => Ok(i),
            Callee::Kernel(_) => unreachable!("helper() returns helpers"),
        }
    }

    /// A `dims` node's symbolic integers, written to a buffer when some op reads them as
    /// data (ops that only need the values, like Reshape's shape, never ask).
    fn materialize_dims(&mut self, v: Value) -> Option<Operand> {
        let dims = match self.graph.node(v.node).attrs.get("value") {
            Some(kiln_ir::attr::Attr::Dims(d)) => d.clone(),
            _ => return None,
        };
        let saved = std::mem::replace(&mut self.current, self.graph.node(v.node).label());
        let ty = self.graph.value_type(v).clone();
        let out = self.new_buffer(
            &format!("{}#0", self.current),
            BufKind::Arena,
            ty.dtype,
            ty.shape,
        );
        let n = dims.len();
        let k = self
            .kernel(&format!("write_i64x{n}"), |kb| {
                crate::cpu::codegen::kernels::write_i64s(kb, n)
            })
            .ok()?;
        let mut args = vec![out.ptr()];
        args.extend(dims.into_iter().map(Arg::Int));
        self.emit(k, args);
        self.current = saved;
        self.values.insert(v, out.clone());
        Some(out)
    }

    /// Appends a step to the schedule.
    pub fn emit(&mut self, callee: Callee, args: Vec<Arg>) {
        self.program.steps.push(Step {
            op: self.current.clone(),
            callee,
            args,
        });
    }

    /// Copies `src` into `dst` byte for byte (same number of bytes).
    pub fn copy_bytes(&mut self, src: &Operand, dst: &Operand) -> Result<(), TargetError> {
        let k = self.kernel("copy_bytes", crate::cpu::codegen::kernels::copy_bytes)?;
        let bytes = src.numel().mul(&Dim::from(src.dtype.size() as i64));
        self.emit(k, vec![src.ptr(), dst.ptr(), Arg::Int(bytes)]);
        Ok(())
    }

    /// An error about the node being lowered.
    pub fn error(&self, msg: impl std::fmt::Display) -> TargetError {
        TargetError::Lower(format!("{}: {msg}", self.current))
    }

    /// "op X has no CPU kernel for <detail>".
    pub fn unsupported(&self, detail: impl std::fmt::Display) -> TargetError {
        TargetError::Lower(format!("{}: no CPU kernel for {detail}", self.current))
    }
}

/// An error naming the node and op when an output's shape depends on data (a dim symbol
/// that no graph input's shape has), which a static memory plan cannot hold.
fn check_static_outputs(lw: &Lowerer, id: NodeId) -> Result<(), TargetError> {
    let node = lw.graph.node(id);
    for (i, ty) in node.outputs.iter().enumerate() {
        let mut syms = Vec::new();
        ty.shape.iter().for_each(|d| d.symbols(&mut syms));
        let unknown = syms.iter().find(|s| {
            !lw.program
                .inputs
                .iter()
                .any(|p| p.shape.iter().any(|d| has_sym(d, s)))
        });
        if let Some(s) = unknown {
            return Err(lw.error(format!(
                "output {i} of {} has the data-dependent shape {ty} (dim `{s}` comes from the values of an input, not from input shapes); kiln compiles static and input-derived shapes only",
                node.op
            )));
        }
    }
    Ok(())
}

fn has_sym(d: &Dim, s: &str) -> bool {
    let mut v = Vec::new();
    d.symbols(&mut v);
    v.iter().any(|x| &**x == s)
}

/// Lowers `graph` (canonicalized, with every value's type inferred).
pub fn lower(graph: &Graph, isa: &OwnedTargetIsa) -> Result<Program, TargetError> {
    lower_bounded(graph, isa, &HashMap::new())
}

/// [`lower`], knowing the user's bounds on dim symbols: a symbol bounded to one value
/// (`--dim batch=1..1`) may shape the code like a constant.
pub fn lower_bounded(
    graph: &Graph,
    isa: &OwnedTargetIsa,
    bounds: &HashMap<String, (i64, i64)>,
) -> Result<Program, TargetError> {
    let order = graph
        .topo_order()
        .ok_or_else(|| TargetError::Lower("the graph has a cycle".into()))?;
    let mut lw = Lowerer {
        graph,
        isa,
        program: Program {
            name: graph.name.clone(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            buffers: Vec::new(),
            steps: Vec::new(),
            kernels: Vec::new(),
            helpers: Vec::new(),
            weights: Vec::new(),
            weights_len: 0,
        },
        values: HashMap::new(),
        kernel_keys: HashMap::new(),
        current: String::new(),
        fused: HashSet::new(),
        absorbed: ops::absorbed(graph),
        bounds: bounds.clone(),
    };
    lw.fused = ops::elementwise_fusion(graph, &lw.absorbed);
    for (i, &v) in graph.inputs().iter().enumerate() {
        let ty = graph.value_type(v).clone();
        let name = graph.input_name(v).unwrap_or("input").to_string();
        lw.program.inputs.push(Port {
            name: name.clone(),
            dtype: ty.dtype,
            shape: ty.shape.clone(),
        });
        let op = lw.new_buffer(&name, BufKind::Input(i), ty.dtype, ty.shape);
        lw.values.insert(v, op);
    }
    // Outputs get their own buffers up front, so the ops producing them write in place. A
    // value that is an input, a constant, or a second output gets copied at the end.
    let mut late_copies = Vec::new();
    for (i, (name, v)) in graph.outputs().iter().enumerate() {
        let ty = graph.value_type(*v).clone();
        lw.program.outputs.push(Port {
            name: name.clone(),
            dtype: ty.dtype,
            shape: ty.shape.clone(),
        });
        let op = lw.new_buffer(name, BufKind::Output(i), ty.dtype, ty.shape);
        let producer = &graph.node(v.node).op;
        if lw.values.contains_key(v) || matches!(producer.as_str(), "input" | "constant" | "dims") {
            late_copies.push((*v, op));
        } else {
            lw.values.insert(*v, op);
        }
    }
    for id in order {
        let node = graph.node(id);
        lw.current = node.label();
        if matches!(node.op.as_str(), "input" | "constant" | "dims")
            || lw.is_fused(id)
            || lw.absorbed.contains(&id)
        {
            continue; // constants are stored, dims written, when first read; fused nodes
                      // are computed by their group's kernel, absorbed ones by an earlier step
        }
        check_static_outputs(&lw, id)?;
        ops::lower_node(&mut lw, id)?;
        for i in 0..node.outputs.len() {
            let v = Value {
                node: id,
                output: i,
            };
            let read = graph.users(v).iter().any(|(u, _)| !lw.absorbed.contains(u));
            if !lw.values.contains_key(&v) && (read || graph.is_output(v)) {
                return Err(lw.error(format!("the lowering left output {i} without a buffer")));
            }
        }
    }
    lw.current = "output".into();
    for (v, dst) in late_copies {
        let src = lw
            .value(v)
            .ok_or_else(|| lw.error("an output has no value"))?;
        lw.copy_bytes(&src, &dst)?;
    }
    Ok(lw.program)
}
