//! Matching and rewriting helpers the fusion rules share.
//!
//! A [`Matcher`] walks from a region's root towards its inputs, collecting the nodes it
//! accepts; a failed alternative is undone with [`Matcher::mark`] / [`Matcher::reset`] (or
//! [`Matcher::either`] for commutative operands).

use std::sync::Arc;

use kiln_ir::attr::AttrsExt;
use kiln_ir::infer::{add_inferred, infer_node, FreshSymbols, KnownValues};
use kiln_ir::ops::Known;
use kiln_ir::{Attr, Attrs, DType, Dim, Graph, NodeId, Tensor, Value};

use crate::error::CompileError;

/// Output 0 of node `id`.
pub fn out0(id: NodeId) -> Value {
    Value {
        node: id,
        output: 0,
    }
}

/// Output `output` of node `id`.
pub fn out(id: NodeId, output: usize) -> Value {
    Value { node: id, output }
}

/// Walks a candidate region, collecting its nodes.
pub struct Matcher<'g> {
    pub g: &'g Graph,
    nodes: Vec<NodeId>,
}

impl<'g> Matcher<'g> {
    pub fn new(g: &'g Graph) -> Matcher<'g> {
        Matcher {
            g,
            nodes: Vec::new(),
        }
    }

    /// The node producing `v`, if its op is `op`; it joins the region.
    pub fn op(&mut self, v: Value, op: &str) -> Option<NodeId> {
        let id = v.node;
        if v.output != 0 || self.g.node(id).op != op {
            return None;
        }
        self.take(id);
        Some(id)
    }

    /// Adds node `id` to the region (once).
    pub fn take(&mut self, id: NodeId) {
        if !self.nodes.contains(&id) {
            self.nodes.push(id);
        }
    }

    /// Input `i` of node `id`.
    pub fn input(&self, id: NodeId, i: usize) -> Option<Value> {
        self.g.node(id).input(i)
    }

    /// A point to [`reset`](Self::reset) to when an alternative fails.
    pub fn mark(&self) -> usize {
        self.nodes.len()
    }

    /// Forgets the nodes taken since `mark`.
    pub fn reset(&mut self, mark: usize) {
        self.nodes.truncate(mark);
    }

    /// For binary node `id` with commutative operands: `f` applied to one operand, tried on
    /// input 0 then input 1, with the other operand.
    pub fn either<T>(
        &mut self,
        id: NodeId,
        mut f: impl FnMut(&mut Self, Value) -> Option<T>,
    ) -> Option<(T, Value)> {
        let (a, b) = (self.input(id, 0)?, self.input(id, 1)?);
        for (x, other) in [(a, b), (b, a)] {
            let mark = self.mark();
            if let Some(t) = f(self, x) {
                return Some((t, other));
            }
            self.reset(mark);
        }
        None
    }

    /// The constant value of `v` if it holds exactly one element (any shape).
    pub fn scalar(&self, v: Value) -> Option<f64> {
        let t = self.g.const_of(v)?;
        (t.len() == 1).then(|| t.to_f64()[0])
    }

    /// The constant integers of `v`.
    pub fn ints(&self, v: Value) -> Option<Vec<i64>> {
        let t = self.g.const_of(v)?;
        t.dtype().is_int().then(|| t.to_i64())
    }

    /// The region's nodes, in the order taken.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.nodes.clone()
    }
}

/// Adds node `op(inputs) {attrs}` with inferred types; returns its output 0.
pub fn add(
    g: &mut Graph,
    op: &str,
    attrs: Attrs,
    inputs: Vec<Option<Value>>,
    origin: &str,
) -> Result<Value, CompileError> {
    let id = add_inferred(g, op, attrs, inputs, 1, origin)
        .map_err(|e| CompileError::Pass(e.to_string()))?;
    Ok(out0(id))
}

/// Adds a `constant` node holding `t` inline.
pub fn constant(g: &mut Graph, t: Tensor) -> Result<Value, CompileError> {
    let mut attrs = Attrs::new();
    attrs.insert("value".into(), Attr::Tensor(Arc::new(t)));
    add(g, "constant", attrs, vec![], "")
}

/// A scalar constant of dtype `dtype`.
pub fn scalar_constant(g: &mut Graph, dtype: DType, x: f64) -> Result<Value, CompileError> {
    constant(g, Tensor::from_f64(dtype, vec![], &[x]))
}

/// The input of binary node `id` that is not `v` (input 1 when both are `v`).
pub fn other_input(g: &Graph, id: NodeId, v: Value) -> Option<Value> {
    let n = g.node(id);
    let (a, b) = (n.input(0)?, n.input(1)?);
    Some(if a == v { b } else { a })
}

/// The only node reading `v`, if it has exactly one reader (once) and is no graph output.
pub fn sole_user(g: &Graph, v: Value) -> Option<NodeId> {
    let users = g.users(v);
    (users.len() == 1 && !g.is_output(v)).then(|| users[0].0)
}

/// Axis `a` (negative counts from the end) as an index into a shape of rank `rank`.
pub fn axis_index(a: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if a < 0 { a + r } else { a };
    (0..r).contains(&a).then_some(a as usize)
}

/// Attributes from a list of pairs.
pub fn attrs(list: &[(&str, Attr)]) -> Attrs {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// True if every symbol of `d` names a dim of one of the graph's inputs, so that a `dims`
/// node can materialise it at run time (a data-dependent dim cannot).
pub fn is_bound(g: &Graph, d: &Dim) -> bool {
    let mut want = Vec::new();
    d.symbols(&mut want);
    if want.is_empty() {
        return true;
    }
    let mut have = Vec::new();
    for &v in g.inputs() {
        for x in &g.value_type(v).shape {
            x.symbols(&mut have);
        }
    }
    want.iter().all(|s| have.contains(s))
}

/// Adds the nodes of a rewrite. Unlike [`add`], it remembers what is known about the integer
/// tensors it makes (constants, `dims`, and what ops with a symbolic rule compute from them),
/// so that a Reshape, Expand or Range reading them gets exact, symbolic output types.
pub struct Builder<'g> {
    pub g: &'g mut Graph,
    origin: String,
    known: KnownValues,
}

impl<'g> Builder<'g> {
    /// A builder whose nodes carry `origin` (the ONNX name of the node they replace).
    pub fn new(g: &'g mut Graph, origin: &str) -> Builder<'g> {
        Builder {
            g,
            origin: origin.to_string(),
            known: KnownValues::new(),
        }
    }

    fn known_of(&self, v: Value) -> Option<Known> {
        if let Some(k) = self.known.get(&v) {
            return Some(k.clone());
        }
        let n = self.g.node(v.node);
        if n.op == "dims" {
            return n.attrs.dims("value").ok().flatten().map(Known::Dims);
        }
        None
    }

    /// Adds `op(inputs) {attrs}` with `num_outputs` outputs; returns them.
    pub fn node(
        &mut self,
        op: &str,
        attrs: Attrs,
        inputs: Vec<Option<Value>>,
        num_outputs: usize,
    ) -> Result<Vec<Value>, CompileError> {
        let err = |e: kiln_ir::IrError| CompileError::Pass(e.to_string());
        let id = add_inferred(self.g, op, attrs, inputs.clone(), num_outputs, &self.origin)
            .map_err(err)?;
        let mut known = KnownValues::new();
        for v in inputs.iter().flatten() {
            if let Some(k) = self.known_of(*v) {
                known.insert(*v, k);
            }
        }
        let fresh = FreshSymbols::for_graph(self.g);
        let (mut types, sym) = infer_node(self.g, id, &known, &fresh).map_err(err)?;
        // Ops may infer more outputs than asked for; the node has the ones it was given.
        types.truncate(num_outputs);
        self.g.node_mut(id).outputs = types;
        if let Some(s) = sym {
            self.known.insert(out0(id), Known::Dims(s));
        }
        Ok((0..num_outputs)
            .map(|output| Value { node: id, output })
            .collect())
    }

    /// Adds `op(inputs) {attrs}`; returns output 0.
    pub fn op(
        &mut self,
        op: &str,
        inputs: &[Value],
        attrs: &[(&str, Attr)],
    ) -> Result<Value, CompileError> {
        let inputs = inputs.iter().map(|&v| Some(v)).collect();
        Ok(self.node(op, self::attrs(attrs), inputs, 1)?[0])
    }

    /// A constant tensor.
    pub fn constant(&mut self, t: Tensor) -> Result<Value, CompileError> {
        let v = self.op("constant", &[], &[("value", Attr::Tensor(Arc::new(t)))])?;
        Ok(v)
    }

    /// A 1-D i64 constant.
    pub fn ints(&mut self, values: &[i64]) -> Result<Value, CompileError> {
        self.constant(Tensor::from_i64(DType::I64, vec![values.len()], values))
    }

    /// A scalar constant of dtype `dtype`.
    pub fn scalar(&mut self, dtype: DType, x: f64) -> Result<Value, CompileError> {
        self.constant(Tensor::from_f64(dtype, vec![], &[x]))
    }

    /// The integers `dims` as a 1-D i64 tensor (`scalar`: one of them as a scalar): a
    /// constant when they are numbers, else a `dims` node. Their symbols must be bound
    /// ([`is_bound`]).
    pub fn dims(&mut self, dims: &[Dim], scalar: bool) -> Result<Value, CompileError> {
        if let Some(c) = dims
            .iter()
            .map(|d| d.as_const())
            .collect::<Option<Vec<_>>>()
        {
            let shape = if scalar { vec![] } else { vec![c.len()] };
            return self.constant(Tensor::from_i64(DType::I64, shape, &c));
        }
        if dims.iter().any(|d| !is_bound(self.g, d)) {
            return Err(CompileError::Pass(format!(
                "dims {dims:?} depend on data; they cannot be materialised"
            )));
        }
        let mut a = vec![("value", Attr::Dims(dims.to_vec()))];
        if scalar {
            a.push(("shape", Attr::Ints(vec![])));
        }
        self.op("dims", &[], &a)
    }

    /// Axis `axis` of `v`'s shape as an i64 scalar: from its type when that is known
    /// statically, else read at run time.
    pub fn size(&mut self, v: Value, axis: usize) -> Result<Value, CompileError> {
        let d = self.g.value_type(v).shape[axis].clone();
        if is_bound(self.g, &d) {
            return self.dims(&[d], true);
        }
        let a = axis as i64;
        let s = self.op(
            "Shape",
            &[v],
            &[("start", Attr::Int(a)), ("end", Attr::Int(a + 1))],
        )?;
        let zero = self.ints(&[0])?;
        self.op("Squeeze", &[s, zero], &[])
    }
}
