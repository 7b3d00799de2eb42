//! What the existing-op attention rewrites share: moving heads into `attention`'s
//! `[B, H, S, D]` layout and back, index tensors for masks, and the `attention` node itself.

use kiln_ir::{Attr, DType, Graph, NodeId, Value};

use crate::error::CompileError;
use crate::passes::fuse::pattern::{attrs, Builder};

type R<T> = Result<T, CompileError>;

/// True if output `o` of node `id` exists and is read (by a node or as a graph output).
pub fn used(g: &Graph, id: NodeId, o: usize) -> bool {
    let v = Value {
        node: id,
        output: o,
    };
    o < g.node(id).outputs.len() && (!g.users(v).is_empty() || g.is_output(v))
}

/// The outputs of `id` that are read, among those listed.
pub fn read_outputs(g: &Graph, id: NodeId, outputs: &[usize]) -> Vec<usize> {
    outputs
        .iter()
        .copied()
        .filter(|&o| used(g, id, o))
        .collect()
}

/// `[B, S, N * H]` -> `[B, N, S, H]`.
pub fn to_heads(b: &mut Builder, x: Value, n: i64) -> R<Value> {
    let shape = b.ints(&[0, 0, n, -1])?;
    let x = b.op("Reshape", &[x, shape], &[])?;
    bsnh_to_heads(b, x)
}

/// `[B, S, N, H]` -> `[B, N, S, H]`.
pub fn bsnh_to_heads(b: &mut Builder, x: Value) -> R<Value> {
    b.op("Transpose", &[x], &[("perm", Attr::Ints(vec![0, 2, 1, 3]))])
}

/// `[B, N, S, H]` -> `[B, S, N * H]`.
pub fn from_heads(b: &mut Builder, y: Value) -> R<Value> {
    let y = b.op("Transpose", &[y], &[("perm", Attr::Ints(vec![0, 2, 1, 3]))])?;
    let shape = b.ints(&[0, 0, -1])?;
    b.op("Reshape", &[y, shape], &[])
}

/// `0, 1, .., n - 1` (i64) for an i64 scalar `n`.
pub fn arange(b: &mut Builder, n: Value) -> R<Value> {
    let zero = b.constant(kiln_ir::Tensor::from_i64(DType::I64, vec![], &[0]))?;
    let one = b.constant(kiln_ir::Tensor::from_i64(DType::I64, vec![], &[1]))?;
    b.op("Range", &[zero, n, one], &[])
}

/// An i64 scalar constant.
pub fn int(b: &mut Builder, x: i64) -> R<Value> {
    b.constant(kiln_ir::Tensor::from_i64(DType::I64, vec![], &[x]))
}

pub fn unsqueeze(b: &mut Builder, v: Value, axes: &[i64]) -> R<Value> {
    let axes = b.ints(axes)?;
    b.op("Unsqueeze", &[v, axes], &[])
}

/// Binary op shorthand.
pub fn bin(b: &mut Builder, op: &str, x: Value, y: Value) -> R<Value> {
    b.op(op, &[x, y], &[])
}

/// `mask` further restricted to where `allowed` (bool) holds: a bool mask is and-ed, a float
/// mask gets `-inf` where not allowed; no mask becomes `allowed`.
pub fn restrict(b: &mut Builder, mask: Option<Value>, allowed: Value) -> R<Value> {
    let Some(m) = mask else { return Ok(allowed) };
    let dt = b.g.value_type(m).dtype;
    if dt == DType::Bool {
        return bin(b, "And", m, allowed);
    }
    let ninf = b.scalar(dt, f64::NEG_INFINITY)?;
    b.op("Where", &[allowed, m, ninf], &[])
}

/// The operands and attributes of one `attention` node.
pub struct Sdpa {
    pub q: Value,
    pub k: Value,
    pub v: Value,
    pub mask: Option<Value>,
    pub past: Option<(Value, Value)>,
    pub sinks: Option<Value>,
    pub scale: Option<f32>,
    pub causal: bool,
    /// 0: unlimited.
    pub window: i64,
    pub softcap: f32,
}

impl Sdpa {
    pub fn new(q: Value, k: Value, v: Value) -> Sdpa {
        Sdpa {
            q,
            k,
            v,
            mask: None,
            past: None,
            sinks: None,
            scale: None,
            causal: false,
            window: 0,
            softcap: 0.0,
        }
    }

    /// Adds the `attention` node; returns its output and, with `presents`, the two caches
    /// (`concat(past, k)`, `concat(past, v)`).
    pub fn build(&self, b: &mut Builder, presents: bool) -> R<Vec<Value>> {
        let mut a = Vec::new();
        if let Some(s) = self.scale {
            a.push(("scale", Attr::Float(s)));
        }
        if self.causal {
            a.push(("causal", Attr::Int(1)));
        }
        if self.window > 0 {
            a.push(("window", Attr::Int(self.window)));
        }
        if self.softcap > 0.0 {
            a.push(("softcap", Attr::Float(self.softcap)));
        }
        let mut inputs = vec![Some(self.q), Some(self.k), Some(self.v), self.mask];
        if self.past.is_some() || self.sinks.is_some() {
            inputs.push(self.past.map(|p| p.0));
            inputs.push(self.past.map(|p| p.1));
        }
        if self.sinks.is_some() {
            inputs.push(self.sinks);
        }
        while inputs.last() == Some(&None) {
            inputs.pop();
        }
        b.node("attention", attrs(&a), inputs, if presents { 3 } else { 1 })
    }
}
