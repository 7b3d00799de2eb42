//! The graph: ops on a petgraph `StableGraph`, values as (node, output), weights outside.
//!
//! A node's ordered inputs are the truth; the petgraph edges mirror them (one edge per used
//! input) so that users and topological order come from petgraph. Only the methods here
//! change inputs, which keeps the two in step.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

use petgraph::stable_graph::{NodeIndex, StableGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use crate::attr::{Attr, Attrs};
use crate::tensor::Tensor;
use crate::types::ValueType;

pub type NodeId = NodeIndex<u32>;

/// A value: output `output` of node `node`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Value {
    pub node: NodeId,
    pub output: usize,
}

/// An edge from an output of one node to an input slot of another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    pub output: usize,
    pub input: usize,
}

/// One op application.
#[derive(Clone, Debug)]
pub struct Node {
    /// The op's name in the registry (`MatMul`, `com.microsoft.MoE`, `rms_norm`, `constant`).
    pub op: String,
    pub attrs: Attrs,
    inputs: Vec<Option<Value>>,
    /// One type per output.
    pub outputs: Vec<ValueType>,
    /// Where the node came from (the ONNX node name), for messages; may be empty.
    pub origin: String,
}

impl Node {
    pub fn inputs(&self) -> &[Option<Value>] {
        &self.inputs
    }

    /// Input `i`, if present.
    pub fn input(&self, i: usize) -> Option<Value> {
        self.inputs.get(i).copied().flatten()
    }

    /// A short label for messages: `MatMul node "/layers.0/MatMul"`.
    pub fn label(&self) -> String {
        if self.origin.is_empty() {
            format!("{} node", self.op)
        } else {
            format!("{} node \"{}\"", self.op, self.origin)
        }
    }
}

/// Weights and other large constants, shared by name and never copied by passes.
#[derive(Clone, Default, Debug)]
pub struct WeightStore {
    map: BTreeMap<Arc<str>, Arc<Tensor>>,
}

impl WeightStore {
    pub fn get(&self, name: &str) -> Option<&Arc<Tensor>> {
        self.map.get(name)
    }

    /// Adds a tensor under `name`, or under `name.1`, `name.2`, ... if that is taken; returns
    /// the name used.
    pub fn insert(&mut self, name: &str, t: Arc<Tensor>) -> Arc<str> {
        let mut key: Arc<str> = name.into();
        let mut k = 1;
        while self.map.contains_key(&key) {
            key = format!("{name}.{k}").into();
            k += 1;
        }
        self.map.insert(key.clone(), t);
        key
    }

    /// Adds or replaces the tensor under exactly `name`.
    pub fn set(&mut self, name: &str, t: Arc<Tensor>) {
        self.map.insert(name.into(), t);
    }

    pub fn remove(&mut self, name: &str) -> Option<Arc<Tensor>> {
        self.map.remove(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &Arc<Tensor>)> {
        self.map.iter()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The name of the op that stands for a graph input.
pub const INPUT_OP: &str = "input";

/// A dataflow graph with named inputs and outputs.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub name: String,
    g: StableGraph<Node, Edge>,
    /// Graph inputs in order; each is output 0 of an `input` node.
    inputs: Vec<Value>,
    /// Graph outputs in order, with their names.
    outputs: Vec<(String, Value)>,
    pub weights: WeightStore,
}

impl Graph {
    pub fn new(name: &str) -> Graph {
        Graph {
            name: name.to_string(),
            ..Graph::default()
        }
    }

    /// Adds a graph input.
    pub fn add_input(&mut self, name: &str, ty: ValueType) -> Value {
        let mut attrs = Attrs::new();
        attrs.insert("name".into(), Attr::Str(name.to_string()));
        let id = self.g.add_node(Node {
            op: INPUT_OP.to_string(),
            attrs,
            inputs: vec![],
            outputs: vec![ty],
            origin: name.to_string(),
        });
        let v = Value {
            node: id,
            output: 0,
        };
        self.inputs.push(v);
        v
    }

    pub fn inputs(&self) -> &[Value] {
        &self.inputs
    }

    /// The name of a graph input value.
    pub fn input_name(&self, v: Value) -> Option<&str> {
        match self.g[v.node].attrs.get("name") {
            Some(Attr::Str(s)) if self.g[v.node].op == INPUT_OP => Some(s),
            _ => None,
        }
    }

    pub fn outputs(&self) -> &[(String, Value)] {
        &self.outputs
    }

    pub fn add_output(&mut self, name: &str, v: Value) {
        self.outputs.push((name.to_string(), v));
    }

    pub fn set_outputs(&mut self, outputs: Vec<(String, Value)>) {
        self.outputs = outputs;
    }

    /// Adds a node; `outputs` are its output types (use `infer::add_inferred` to compute them).
    pub fn add_node(
        &mut self,
        op: &str,
        attrs: Attrs,
        inputs: Vec<Option<Value>>,
        outputs: Vec<ValueType>,
        origin: &str,
    ) -> NodeId {
        let id = self.g.add_node(Node {
            op: op.to_string(),
            attrs,
            inputs: inputs.clone(),
            outputs,
            origin: origin.to_string(),
        });
        for (i, v) in inputs.iter().enumerate() {
            if let Some(v) = v {
                self.g.add_edge(
                    v.node,
                    id,
                    Edge {
                        output: v.output,
                        input: i,
                    },
                );
            }
        }
        id
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.g.contains_node(id)
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.g[id]
    }

    /// Mutable access to op, attributes, types and origin (inputs change through
    /// [`Graph::set_input`]).
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.g[id]
    }

    pub fn value_type(&self, v: Value) -> &ValueType {
        &self.g[v.node].outputs[v.output]
    }

    /// Number of live nodes (inputs included).
    pub fn node_count(&self) -> usize {
        self.g.node_count()
    }

    /// All live node ids, in insertion order.
    pub fn node_ids(&self) -> Vec<NodeId> {
        self.g.node_indices().collect()
    }

    /// Replaces input `i` of `id`.
    pub fn set_input(&mut self, id: NodeId, i: usize, v: Option<Value>) {
        let old: Vec<_> = self
            .g
            .edges_directed(id, Direction::Incoming)
            .filter(|e| e.weight().input == i)
            .map(|e| e.id())
            .collect();
        for e in old {
            self.g.remove_edge(e);
        }
        let node = &mut self.g[id];
        if node.inputs.len() <= i {
            node.inputs.resize(i + 1, None);
        }
        node.inputs[i] = v;
        if let Some(v) = v {
            self.g.add_edge(
                v.node,
                id,
                Edge {
                    output: v.output,
                    input: i,
                },
            );
        }
    }

    /// Replaces every input list of `id` at once.
    pub fn set_inputs(&mut self, id: NodeId, inputs: Vec<Option<Value>>) {
        let n = self.g[id].inputs.len().max(inputs.len());
        for i in 0..n {
            self.set_input(id, i, inputs.get(i).copied().flatten());
        }
        self.g[id].inputs.truncate(inputs.len());
    }

    /// The (node, input slot) pairs that read `v`, sorted.
    pub fn users(&self, v: Value) -> Vec<(NodeId, usize)> {
        let mut u: Vec<_> = self
            .g
            .edges_directed(v.node, Direction::Outgoing)
            .filter(|e| e.weight().output == v.output)
            .map(|e| (e.target(), e.weight().input))
            .collect();
        u.sort();
        u
    }

    /// Nodes reading any output of `id`, sorted and unique.
    pub fn user_nodes(&self, id: NodeId) -> Vec<NodeId> {
        let mut u: Vec<_> = self.g.neighbors_directed(id, Direction::Outgoing).collect();
        u.sort();
        u.dedup();
        u
    }

    /// True if a graph output is `v`.
    pub fn is_output(&self, v: Value) -> bool {
        self.outputs.iter().any(|(_, o)| *o == v)
    }

    /// Makes every reader of `old` (nodes and graph outputs) read `new` instead.
    pub fn replace_all_uses(&mut self, old: Value, new: Value) {
        for (n, i) in self.users(old) {
            self.set_input(n, i, Some(new));
        }
        for (_, o) in self.outputs.iter_mut() {
            if *o == old {
                *o = new;
            }
        }
    }

    /// Removes a node and its edges. Readers of its outputs are left with dangling inputs,
    /// so remove only unused nodes (the verifier reports dangling inputs).
    pub fn remove_node(&mut self, id: NodeId) {
        self.g.remove_node(id);
        self.inputs.retain(|v| v.node != id);
    }

    /// Nodes in a topological order, deterministic: among ready nodes the oldest comes first,
    /// so a graph parsed from text keeps its textual order. `None` if there is a cycle.
    pub fn topo_order(&self) -> Option<Vec<NodeId>> {
        let mut indeg: HashMap<NodeId, usize> = HashMap::new();
        for id in self.g.node_indices() {
            let preds: std::collections::HashSet<NodeId> =
                self.g.neighbors_directed(id, Direction::Incoming).collect();
            indeg.insert(id, preds.len());
        }
        let mut ready: BinaryHeap<Reverse<NodeId>> = indeg
            .iter()
            .filter(|(_, &d)| d == 0)
            .map(|(&id, _)| Reverse(id))
            .collect();
        let mut order = Vec::with_capacity(indeg.len());
        while let Some(Reverse(id)) = ready.pop() {
            order.push(id);
            for succ in self.user_nodes(id) {
                let d = indeg.get_mut(&succ)?;
                *d -= 1;
                if *d == 0 {
                    ready.push(Reverse(succ));
                }
            }
        }
        (order.len() == indeg.len()).then_some(order)
    }

    /// The tensor of a `constant` node, whether inline or in the weight store.
    pub fn const_value(&self, id: NodeId) -> Option<Arc<Tensor>> {
        let n = &self.g[id];
        if n.op != "constant" {
            return None;
        }
        match n.attrs.get("value")? {
            Attr::Tensor(t) => Some(t.clone()),
            Attr::Weight(name) => self.weights.get(name).cloned(),
            _ => None,
        }
    }

    /// The constant tensor behind value `v`, if `v` is produced by a `constant` node.
    pub fn const_of(&self, v: Value) -> Option<Arc<Tensor>> {
        self.const_value(v.node)
    }
}
