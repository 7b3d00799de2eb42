//! Matching and rewriting helpers the fusion rules share.
//!
//! A [`Matcher`] walks from a region's root towards its inputs, collecting the nodes it
//! accepts; a failed alternative is undone with [`Matcher::mark`] / [`Matcher::reset`] (or
//! [`Matcher::either`] for commutative operands).

use std::sync::Arc;

use kiln_ir::infer::add_inferred;
use kiln_ir::{Attr, Attrs, DType, Graph, NodeId, Tensor, Value};

use crate::error::CompileError;

/// Output 0 of node `id`.
pub fn out0(id: NodeId) -> Value {
    Value {
        node: id,
        output: 0,
    }
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
