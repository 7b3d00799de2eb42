//! Elementwise ops: unary, binary, ternary and variadic maps over numpy-broadcast operands,
//! activations, comparisons, logic, casts.
//!
//! Each op becomes an expression ([`Expr`]) of primitive operations; chains of elementwise
//! nodes become one expression: [`fusion`] marks the nodes whose value only feeds
//! elementwise nodes of the same output shape ("interior" nodes). They get no step and no
//! buffer; the group's last node (its root) evaluates the whole tree in one kernel, reading
//! the group's inputs once. Scalar constants become immediates in the code. Kernels are keyed
//! by the expression, the dtypes and the broadcast pattern, so equal groups in different
//! layers share one kernel.

mod build;

use std::collections::{HashMap, HashSet};

use kiln_ir::dim::Dim;
use kiln_ir::dtype::DType;
use kiln_ir::graph::{Graph, NodeId, Value};

use super::LowerFn;
use crate::cpu::codegen::kernels::elementwise::{
    self as kernel, Expr, Layout, Node, Op, Options, Stride, Ty,
};
use crate::cpu::lower::{Arg, Callee, Lowerer, Operand};
use crate::error::TargetError;

pub const OPS: &[(&str, LowerFn)] = &[
    ("Add", lower),
    ("Sub", lower),
    ("Mul", lower),
    ("Div", lower),
    ("Pow", lower),
    ("Mod", lower),
    ("Neg", lower),
    ("Abs", lower),
    ("Sign", lower),
    ("Reciprocal", lower),
    ("Sqrt", lower),
    ("Exp", lower),
    ("Log", lower),
    ("Floor", lower),
    ("Ceil", lower),
    ("Round", lower),
    ("Erf", lower),
    ("Sin", lower),
    ("Cos", lower),
    ("Tan", lower),
    ("Asin", lower),
    ("Acos", lower),
    ("Atan", lower),
    ("Sinh", lower),
    ("Cosh", lower),
    ("Asinh", lower),
    ("Acosh", lower),
    ("Atanh", lower),
    ("Tanh", lower),
    ("Sigmoid", lower),
    ("HardSigmoid", lower),
    ("HardSwish", lower),
    ("Relu", lower),
    ("LeakyRelu", lower),
    ("PRelu", lower),
    ("Elu", lower),
    ("Selu", lower),
    ("Celu", lower),
    ("Softplus", lower),
    ("Softsign", lower),
    ("Mish", lower),
    ("Swish", lower),
    ("Gelu", lower),
    ("ThresholdedRelu", lower),
    ("Shrink", lower),
    ("IsNaN", lower),
    ("IsInf", lower),
    ("Not", lower),
    ("And", lower),
    ("Or", lower),
    ("Xor", lower),
    ("BitwiseAnd", lower),
    ("BitwiseOr", lower),
    ("BitwiseXor", lower),
    ("BitwiseNot", lower),
    ("BitShift", lower),
    ("Equal", lower),
    ("Less", lower),
    ("LessOrEqual", lower),
    ("Greater", lower),
    ("GreaterOrEqual", lower),
    ("Where", lower),
    ("Clip", lower),
    ("Max", lower),
    ("Min", lower),
    ("Sum", lower),
    ("Mean", lower),
    ("Cast", lower),
    ("CastLike", lower),
    ("com.microsoft.Gelu", lower),
    ("com.microsoft.FastGelu", lower),
    ("com.microsoft.QuickGelu", lower),
    ("swiglu", lower),
    ("SwiGLU", lower),
];

/// Most nodes one fused group may hold (its kernel stays of reasonable size).
const MAX_GROUP: usize = 48;

/// Whether `id` is an elementwise node a group can absorb: an op this family builds as an
/// expression, one output, every dtype supported.
fn fusible(graph: &Graph, id: NodeId) -> bool {
    let node = graph.node(id);
    if node.outputs.len() != 1 {
        return false;
    }
    if !OPS.iter().any(|(n, _)| *n == node.op) {
        return false;
    }
    // fp8 values cross group boundaries only (loaded decoded, stored encoded).
    let ok = |d: DType| Ty::of(d).is_some() && !d.is_fp8();
    let out = graph.value_type(Value {
        node: id,
        output: 0,
    });
    ok(out.dtype)
        && node
            .inputs()
            .iter()
            .flatten()
            .all(|v| ok(graph.value_type(*v).dtype))
}

/// The interior nodes of the elementwise groups: fusible nodes, not graph outputs, whose
/// every user is a fusible node of the same group with the same output shape. Walks the graph
/// from its outputs back, so users are assigned to a group first. Nodes in `exclude`
/// (computed by another step) join no group.
pub fn fusion(graph: &Graph, exclude: &HashSet<NodeId>) -> HashSet<NodeId> {
    let mut interior = HashSet::new();
    let Some(order) = graph.topo_order() else {
        return interior;
    };
    let mut root_of: HashMap<NodeId, NodeId> = HashMap::new();
    let mut size: HashMap<NodeId, usize> = HashMap::new();
    for &id in order.iter().rev() {
        if !fusible(graph, id) || exclude.contains(&id) {
            continue;
        }
        let v = Value {
            node: id,
            output: 0,
        };
        let shape = &graph.value_type(v).shape;
        let users = graph.users(v);
        let mut root = None;
        let mut ok = !graph.is_output(v) && !users.is_empty();
        for (u, _) in &users {
            let r = root_of.get(u).copied();
            let same_shape = graph
                .value_type(Value {
                    node: *u,
                    output: 0,
                })
                .shape
                == *shape;
            match (r, root) {
                (Some(r), None) if same_shape => root = Some(r),
                (Some(r), Some(q)) if same_shape && r == q => {}
                _ => ok = false,
            }
        }
        match root {
            Some(r) if ok && size.get(&r).copied().unwrap_or(1) < MAX_GROUP => {
                root_of.insert(id, r);
                *size.entry(r).or_insert(1) += 1;
                interior.insert(id);
            }
            _ => {
                root_of.insert(id, id);
            }
        }
    }
    interior
}

/// A value of the expression being built: its node and its dtype.
#[derive(Clone, Copy, Debug)]
pub(super) struct V {
    pub n: usize,
    pub dt: DType,
}

impl V {
    pub fn ty(self) -> Ty {
        Ty::of(self.dt).unwrap_or(Ty::F32)
    }
}

/// The expression of one group under construction.
pub(super) struct Group<'l, 'g> {
    pub lw: &'l mut Lowerer<'g>,
    nodes: Vec<(Node, Ty)>,
    index: HashMap<(Node, Ty), usize>,
    /// The group's inputs, with the values they come from.
    operands: Vec<(Option<Value>, Operand)>,
    built: HashMap<NodeId, V>,
}

impl<'l, 'g> Group<'l, 'g> {
    fn new(lw: &'l mut Lowerer<'g>) -> Self {
        Group {
            lw,
            nodes: Vec::new(),
            index: HashMap::new(),
            operands: Vec::new(),
            built: HashMap::new(),
        }
    }

    pub fn graph(&self) -> &'g Graph {
        self.lw.graph
    }

    /// A node (deduplicated).
    pub fn push(&mut self, node: Node, ty: Ty) -> usize {
        if let Some(&i) = self.index.get(&(node.clone(), ty)) {
            return i;
        }
        self.nodes.push((node.clone(), ty));
        self.index.insert((node, ty), self.nodes.len() - 1);
        self.nodes.len() - 1
    }

    pub fn op(&mut self, op: Op, args: &[usize], ty: Ty) -> usize {
        self.push(Node::Op(op, args.to_vec()), ty)
    }

    /// A float constant of type `ty` (f32 or f64).
    pub fn fc(&mut self, ty: Ty, v: f64) -> usize {
        let bits = match ty {
            Ty::F32 => u64::from((v as f32).to_bits()),
            _ => v.to_bits(),
        };
        self.push(Node::Const(bits), ty)
    }

    /// An integer constant (i64 or u64 compute type).
    pub fn ic(&mut self, ty: Ty, v: i64) -> usize {
        self.push(Node::Const(v as u64), ty)
    }

    /// Node input `i` of `id` (an error if absent).
    pub fn input(&mut self, id: NodeId, i: usize) -> Result<V, TargetError> {
        self.opt_input(id, i)?
            .ok_or_else(|| self.lw.error(format!("input {i} is missing")))
    }

    /// Node input `i` of `id`, if present: the expression of a fused producer, an immediate
    /// for a one-element constant, else an operand of the kernel.
    pub fn opt_input(&mut self, id: NodeId, i: usize) -> Result<Option<V>, TargetError> {
        let graph = self.graph();
        let Some(v) = graph.node(id).input(i) else {
            return Ok(None);
        };
        if self.lw.is_fused(v.node) {
            return self.node(v.node).map(Some);
        }
        let dt = graph.value_type(v).dtype;
        let ty = Ty::of(dt).ok_or_else(|| self.lw.unsupported(format!("dtype {dt}")))?;
        if let Some(t) = graph.const_of(v) {
            if t.len() == 1 {
                let bits = match ty {
                    Ty::F32 => u64::from((t.to_f64()[0] as f32).to_bits()),
                    Ty::F64 => t.to_f64()[0].to_bits(),
                    Ty::Bool => u64::from(t.to_bool()[0]),
                    _ => t.to_i64()[0] as u64,
                };
                let n = self.push(Node::Const(bits), ty);
                return Ok(Some(V { n, dt }));
            }
        }
        if let Some(k) = self.operands.iter().position(|(w, _)| *w == Some(v)) {
            let n = self.push(Node::Input(k), ty);
            return Ok(Some(V { n, dt }));
        }
        let op = self
            .lw
            .opt_input(id, i)
            .ok_or_else(|| self.lw.error(format!("input {i} has no value")))?;
        self.operands.push((Some(v), op));
        let n = self.push(Node::Input(self.operands.len() - 1), ty);
        Ok(Some(V { n, dt }))
    }

    /// Node input `i` of `id` read as a flat tensor of `shape` (same element count).
    pub fn input_as(&mut self, id: NodeId, i: usize, shape: Vec<Dim>) -> Result<V, TargetError> {
        let graph = self.graph();
        let Some(v) = graph.node(id).input(i) else {
            return Err(self.lw.error(format!("input {i} is missing")));
        };
        if self.lw.is_fused(v.node) {
            return Err(self.lw.unsupported("a fused reshaped input"));
        }
        let dt = graph.value_type(v).dtype;
        let ty = Ty::of(dt).ok_or_else(|| self.lw.unsupported(format!("dtype {dt}")))?;
        let mut op = self
            .lw
            .opt_input(id, i)
            .ok_or_else(|| self.lw.error(format!("input {i} has no value")))?;
        op.shape = shape;
        self.operands.push((None, op));
        let n = self.push(Node::Input(self.operands.len() - 1), ty);
        Ok(V { n, dt })
    }

    /// The expression of node `id`'s (only) output.
    pub fn node(&mut self, id: NodeId) -> Result<V, TargetError> {
        if let Some(&v) = self.built.get(&id) {
            return Ok(v);
        }
        let v = build::node(self, id)?;
        let want = self
            .graph()
            .value_type(Value {
                node: id,
                output: 0,
            })
            .dtype;
        if v.dt != want {
            return Err(self
                .lw
                .error(format!("elementwise expression gives {}, not {want}", v.dt)));
        }
        self.built.insert(id, v);
        Ok(v)
    }

    /// Ends a node's computation: floats round to their dtype, integers wrap to it.
    pub fn finish(&mut self, n: usize, dt: DType) -> V {
        let n = match dt {
            DType::F16 | DType::BF16 => self.op(Op::RoundTo(dt), &[n], Ty::F32),
            DType::I8 | DType::I16 | DType::I32 | DType::U8 | DType::U16 | DType::U32 => {
                let ty = Ty::of(dt).unwrap_or(Ty::I64);
                self.op(Op::Wrap(dt), &[n], ty)
            }
            _ => n,
        };
        V { n, dt }
    }

    /// Emits the kernel evaluating the expression rooted at `root` into `out`.
    fn emit(mut self, mut root: V, out: Operand) -> Result<(), TargetError> {
        if out.dtype.is_fp8() && self.nodes[root.n].1 != Ty::U64 {
            let dtype = out.dtype;
            root.n = self.op(Op::Fp8Encode { dtype, sat: true }, &[root.n], Ty::U64);
        }
        if root.dt != out.dtype {
            return Err(self.lw.error(format!(
                "elementwise expression gives {}, the output is {}",
                root.dt, out.dtype
            )));
        }
        // Keep only the nodes the root needs, in order.
        let mut live = vec![false; self.nodes.len()];
        live[root.n] = true;
        for i in (0..=root.n).rev() {
            if live[i] {
                if let Node::Op(_, args) = &self.nodes[i].0 {
                    for &a in args {
                        live[a] = true;
                    }
                }
            }
        }
        let mut remap = vec![usize::MAX; self.nodes.len()];
        let mut nodes = Vec::new();
        let mut used_ops = Vec::new();
        for (i, (node, ty)) in self.nodes.iter().enumerate() {
            if !live[i] {
                continue;
            }
            let node = match node {
                Node::Op(op, args) => Node::Op(*op, args.iter().map(|&a| remap[a]).collect()),
                Node::Input(k) => {
                    let pos = used_ops.iter().position(|&o| o == *k).unwrap_or_else(|| {
                        used_ops.push(*k);
                        used_ops.len() - 1
                    });
                    Node::Input(pos)
                }
                other => other.clone(),
            };
            remap[i] = nodes.len();
            nodes.push((node, *ty));
        }
        let operands: Vec<Operand> = used_ops
            .iter()
            .map(|&k| self.operands[k].1.clone())
            .collect();
        let expr = Expr {
            nodes,
            inputs: operands.iter().map(|o| o.dtype).collect(),
            root: remap[root.n],
            out: out.dtype,
        };
        emit_kernel(self.lw, &expr, &operands, &out)
    }
}

/// Plans the loop nest of `operands` broadcast to `out`'s shape, builds (or reuses) the
/// kernel and emits the step.
fn emit_kernel(
    lw: &mut Lowerer,
    expr: &Expr,
    operands: &[Operand],
    out: &Operand,
) -> Result<(), TargetError> {
    let (layout, extents, strides) = plan(&out.shape, operands)?;
    let mut opts = Options {
        fma: lw.has_fma(),
        helpers: HashMap::new(),
    };
    for name in expr.helpers() {
        let i = lw.helper_index(name)?;
        opts.helpers.insert(name, i);
    }
    let key = format!("ew:{}:{}", expr.key(), layout.key());
    let mut callee = lw.kernel(&key, |kb| kernel::elementwise(kb, expr, &layout, &opts))?;
    // Large (or symbolic) outputs share their rows out among the run's threads.
    let big = out.numel().as_const().is_none_or(|n| n >= PARALLEL_ELEMS);
    if big {
        if let Callee::Kernel(body) = callee {
            let helper = lw.helper_index("parallel_rows")?;
            let (nargs, begin) = kernel::arg_slots(expr, &layout);
            let rank = layout.rank;
            callee = lw.kernel(&format!("par:{key}"), |kb| {
                kernel::parallel(kb, body, nargs, begin, rank, helper)
            })?;
        }
    }
    let mut args = vec![out.ptr()];
    args.extend(operands.iter().map(Operand::ptr));
    let mut extents = extents.into_iter();
    args.push(Arg::int(0i64));
    args.extend(extents.next().map(Arg::Int));
    args.extend(extents.map(Arg::Int));
    args.extend(strides.into_iter().map(Arg::Int));
    lw.emit(callee, args);
    Ok(())
}

/// Outputs from this many elements (or of symbolic size) run through `parallel_rows`, which
/// decides at run time.
const PARALLEL_ELEMS: i64 = 32 * 1024;

/// How an operand relates to one output axis.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// Broadcast (its dim is 1).
    Zero,
    /// Its dim is the output's.
    Full,
    /// Its dim is another symbolic expression: equal to the output's or 1 at run time.
    Dyn,
}

/// The collapsed loop nest: the layout, the extents and the stride arguments.
fn plan(out: &[Dim], operands: &[Operand]) -> Result<(Layout, Vec<Dim>, Vec<Dim>), TargetError> {
    let rank = out.len();
    let one = Dim::from(1i64);
    // Per operand: its dims and contiguous strides aligned to the output's axes.
    let mut aligned: Vec<Vec<(Dim, Dim)>> = Vec::with_capacity(operands.len());
    for op in operands {
        if op.shape.len() > rank {
            return Err(TargetError::Lower(format!(
                "elementwise operand of rank {} for an output of rank {rank}",
                op.shape.len()
            )));
        }
        let pad = rank - op.shape.len();
        let st = op.strides();
        let mut v = vec![(one.clone(), Dim::from(0i64)); pad];
        v.extend(op.shape.iter().cloned().zip(st));
        aligned.push(v);
    }
    // Axes: (extent, per operand (kind, stride)).
    type Axis = (Dim, Vec<(Kind, Dim)>);
    let mut axes: Vec<Axis> = Vec::new();
    for k in 0..rank {
        if out[k].as_const() == Some(1) {
            continue;
        }
        let per: Vec<(Kind, Dim)> = aligned
            .iter()
            .map(|a| {
                let (d, s) = &a[k];
                if *d == out[k] {
                    (Kind::Full, s.clone())
                } else if d.as_const() == Some(1) {
                    (Kind::Zero, Dim::from(0i64))
                } else {
                    // 0 when the dim turns out to be 1, else the stride.
                    let moves = d.sub(&one).minimum(&one);
                    (Kind::Dyn, s.mul(&moves))
                }
            })
            .collect();
        if let Some((ext, prev)) = axes.last_mut() {
            let mergeable = prev.iter().zip(&per).all(|(a, b)| {
                matches!(
                    (a.0, b.0),
                    (Kind::Zero, Kind::Zero) | (Kind::Full, Kind::Full)
                )
            });
            if mergeable {
                *ext = ext.mul(&out[k]);
                *prev = per;
                continue;
            }
        }
        axes.push((out[k].clone(), per));
    }
    if axes.is_empty() {
        axes.push((
            one.clone(),
            vec![(Kind::Zero, Dim::from(0i64)); operands.len()],
        ));
    }
    let r = axes.len();
    let mut strides = vec![Vec::with_capacity(r); operands.len()];
    let mut stride_args = Vec::new();
    for (j, row) in strides.iter_mut().enumerate() {
        for (k, (_, per)) in axes.iter().enumerate() {
            let (kind, s) = &per[j];
            row.push(match kind {
                Kind::Zero => Stride::Zero,
                Kind::Full if k + 1 == r && s.as_const() == Some(1) => Stride::Unit,
                _ => {
                    stride_args.push(s.clone());
                    Stride::Arg
                }
            });
        }
    }
    let extents = axes.into_iter().map(|(e, _)| e).collect();
    Ok((Layout { rank: r, strides }, extents, stride_args))
}

/// Lowers an elementwise node: the root of its group (interior nodes are skipped by the
/// lowering loop and evaluated inside their root's kernel).
fn lower(lw: &mut Lowerer, id: NodeId) -> Result<(), TargetError> {
    let node = lw.graph.node(id);
    if matches!(node.op.as_str(), "Cast" | "CastLike") {
        // A cast to the same dtype is the input itself (bit for bit, fp8 NaNs included).
        let same = node.input(0).is_some_and(|v| {
            lw.graph.value_type(v).dtype
                == lw
                    .graph
                    .value_type(Value {
                        node: id,
                        output: 0,
                    })
                    .dtype
        });
        if same {
            let x = lw.input(id, 0)?;
            return lw.alias_output(id, 0, &x);
        }
    }
    let out = lw.output(id, 0);
    let mut g = Group::new(lw);
    let root = g.node(id)?;
    g.emit(root, out)
}

#[cfg(test)]
mod tests;
