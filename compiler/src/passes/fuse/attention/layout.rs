//! Head layouts: how an operand of the attention MatMuls is laid out from a source tensor.
//!
//! Exporters reach the `[batch, heads, seq, dim]` operands of `q·kᵀ` and `p·v` through
//! chains of Reshape, Transpose, Unsqueeze, Squeeze and Expand (head splits, `kᵀ`, GQA's
//! repeat_kv, TorchScript's `[B*H, T, D]` round trips) and sometimes a Mul or Div by a
//! constant (the scale split over q and k). [`trace`] follows such a chain back to the
//! last value it cannot see through (the source) and describes each axis of the operand as
//! a group of source axes ([`Atom::Src`]) and broadcast copies ([`Atom::Bcast`], from an
//! Expand), in row-major order. [`Layout`] turns that into what the `attention` op needs:
//! the source axes for each of its four axes (emitted as Transpose + Reshape of the
//! source) and the head repetition that a GQA repeat_kv spelled.

use kiln_ir::attr::AttrsExt;
use kiln_ir::{Attr, Attrs, DType, Dim, Graph, NodeId, Tensor, Value, ValueType};

use crate::error::CompileError;
use crate::passes::fuse::pattern::{add, constant, out0};

/// One factor of an axis of a traced value.
#[derive(Clone, Debug, PartialEq)]
pub enum Atom {
    /// Axis `n` of the source.
    Src(usize),
    /// A broadcast axis of this size (an Expand of a size-1 axis).
    Bcast(Dim),
}

/// A value seen as a rearrangement of a source value.
#[derive(Clone, Debug)]
pub struct View {
    pub src: Value,
    pub src_shape: Vec<Dim>,
    /// One group per axis of the value, in row-major order of its factors.
    pub groups: Vec<Vec<Atom>>,
    /// The constant factor the chain multiplied by.
    pub scale: f64,
    /// The chain's nodes, source side first.
    pub nodes: Vec<NodeId>,
    /// Each value along the chain (source first) with its groups and the scale applied up
    /// to it, so that an existing value can stand for a layout instead of a new one.
    pub steps: Vec<(Value, Vec<Vec<Atom>>, f64)>,
}

fn one() -> Dim {
    Dim::from(1i64)
}

fn is_one(d: &Dim) -> bool {
    d.as_const() == Some(1)
}

impl View {
    fn identity(g: &Graph, v: Value) -> View {
        let src_shape = g.value_type(v).shape.clone();
        let groups: Vec<Vec<Atom>> = (0..src_shape.len()).map(|a| vec![Atom::Src(a)]).collect();
        View {
            src: v,
            src_shape,
            steps: vec![(v, groups.clone(), 1.0)],
            groups,
            scale: 1.0,
            nodes: Vec::new(),
        }
    }

    pub fn atom_dim(&self, a: &Atom) -> Dim {
        match a {
            Atom::Src(n) => self.src_shape[*n].clone(),
            Atom::Bcast(d) => d.clone(),
        }
    }

    pub fn group_dim(&self, group: &[Atom]) -> Dim {
        group
            .iter()
            .fold(one(), |acc, a| acc.mul(&self.atom_dim(a)))
    }

    /// The group without its size-1 factors (they carry no data).
    fn strip(&self, group: &[Atom]) -> Vec<Atom> {
        group
            .iter()
            .filter(|a| !is_one(&self.atom_dim(a)))
            .cloned()
            .collect()
    }

    /// Applies node `id` (whose data input is this view's value) to the view.
    fn apply(&mut self, g: &Graph, id: NodeId) -> Option<()> {
        let n = g.node(id);
        let out = &n.outputs.first()?.shape;
        match n.op.as_str() {
            "Transpose" => {
                let r = self.groups.len();
                let perm = match n.attrs.ints("perm").ok()? {
                    Some(p) => p,
                    None => (0..r as i64).rev().collect(),
                };
                if perm.len() != r {
                    return None;
                }
                self.groups = perm
                    .iter()
                    .map(|&p| self.groups.get(usize::try_from(p).ok()?).cloned())
                    .collect::<Option<_>>()?;
            }
            "Unsqueeze" | "Squeeze" | "Reshape" => self.regroup(out)?,
            "Expand" => {
                let r = self.groups.len();
                if out.len() < r {
                    return None;
                }
                let lead = out.len() - r;
                let mut groups = Vec::with_capacity(out.len());
                for d in &out[..lead] {
                    groups.push(if is_one(d) {
                        vec![]
                    } else {
                        vec![Atom::Bcast(d.clone())]
                    });
                }
                for (grp, d) in self.groups.iter().zip(&out[lead..]) {
                    let have = self.group_dim(grp);
                    if have == *d {
                        groups.push(grp.clone());
                    } else if is_one(&have) {
                        groups.push(vec![Atom::Bcast(d.clone())]);
                    } else {
                        return None;
                    }
                }
                self.groups = groups;
            }
            "Mul" | "Div" => {
                let s = scalar_operand(g, id)?;
                if n.op == "Div" {
                    if s == 0.0 {
                        return None;
                    }
                    self.scale /= s;
                } else {
                    self.scale *= s;
                }
            }
            _ => return None,
        }
        Some(())
    }

    /// Regroups the factors for an output of shape `out` holding the same elements in the
    /// same row-major order (Reshape, Squeeze, Unsqueeze), if every output axis is a run of
    /// whole factors.
    fn regroup(&mut self, out: &[Dim]) -> Option<()> {
        let atoms: Vec<Atom> = self.groups.iter().flat_map(|grp| self.strip(grp)).collect();
        let mut it = atoms.into_iter().peekable();
        let mut groups = Vec::with_capacity(out.len());
        for d in out {
            let mut grp = Vec::new();
            let mut prod = one();
            while prod != *d {
                if let (Some(p), Some(want)) = (prod.as_const(), d.as_const()) {
                    if p > want {
                        return None;
                    }
                }
                let a = it.next()?;
                prod = prod.mul(&self.atom_dim(&a));
                grp.push(a);
            }
            groups.push(grp);
        }
        if it.peek().is_some() {
            return None;
        }
        self.groups = groups;
        Some(())
    }
}

/// The constant operand of binary node `id` if it holds one float element and the node's
/// output has the other operand's shape; the scale factor a Mul or Div applies.
fn scalar_operand(g: &Graph, id: NodeId) -> Option<f64> {
    let n = g.node(id);
    let (a, b) = (n.input(0)?, n.input(1)?);
    let other = data_operand(g, id)?;
    let c = if other == a { b } else { a };
    if n.op == "Div" && other != a {
        return None;
    }
    let t = g.const_of(c)?;
    if t.len() != 1 || !t.dtype().is_float() {
        return None;
    }
    (g.value_type(other).shape == n.outputs[0].shape).then(|| t.to_f64()[0])
}

/// The input of a view node that carries the data (for Mul / Div, the non-constant one).
fn data_operand(g: &Graph, id: NodeId) -> Option<Value> {
    let n = g.node(id);
    match n.op.as_str() {
        "Transpose" | "Reshape" | "Unsqueeze" | "Squeeze" | "Expand" => n.input(0),
        "Mul" => {
            let (a, b) = (n.input(0)?, n.input(1)?);
            match (g.const_of(a).is_some(), g.const_of(b).is_some()) {
                (false, true) => Some(a),
                (true, false) => Some(b),
                _ => None,
            }
        }
        "Div" => {
            let (a, b) = (n.input(0)?, n.input(1)?);
            (g.const_of(b).is_some() && g.const_of(a).is_none()).then_some(a)
        }
        _ => None,
    }
}

/// `v` as a view of the furthest source a chain of layout nodes (and constant scalings)
/// reaches.
pub fn trace(g: &Graph, v: Value) -> View {
    let id = v.node;
    if v.output != 0 {
        return View::identity(g, v);
    }
    let Some(u) = data_operand(g, id) else {
        return View::identity(g, v);
    };
    let mut w = trace(g, u);
    if w.apply(g, id).is_none() {
        return View::identity(g, v);
    }
    w.nodes.push(id);
    w.steps.push((v, w.groups.clone(), w.scale));
    w
}

/// Which axis of a traced operand feeds an axis of the op.
#[derive(Clone, Copy, Debug)]
pub enum Pick {
    Axis(usize),
    /// An axis holding batch and heads flattened (`[B*H, S, D]` operands): feeds two.
    Split(usize),
}

/// Removes the trailing broadcast factors of a heads group; returns their product.
fn pop_repeat(grp: &mut Vec<Atom>) -> Dim {
    let mut repeat = one();
    while let Some(Atom::Bcast(d)) = grp.last() {
        repeat = repeat.mul(d);
        grp.pop();
    }
    repeat
}

/// What the `attention` op reads from a traced operand: the source axes of each of its
/// axes, and for the heads axis the repetition GQA's repeat_kv spelled.
#[derive(Clone, Debug)]
pub struct Layout {
    pub src: Value,
    /// Source axes for each output axis, in order.
    pub axes: Vec<Vec<usize>>,
    /// The output's dims.
    pub dims: Vec<Dim>,
    /// How many times the heads axis repeats each source head (1 without repeat_kv).
    pub repeat: Dim,
    /// An existing value already in this layout (reused instead of new nodes).
    pub existing: Option<Value>,
}

impl Layout {
    /// The layout reading operand axes `picks` of `view` (e.g. `[0, 1, 3, 2]` for `kᵀ`).
    /// `heads`: the output position of the heads axis, whose trailing broadcast factors
    /// become [`repeat`](Self::repeat); every other broadcast factor is refused (it would
    /// repeat data along batch, sequence or head dim).
    pub fn new(view: &View, picks: &[Pick], heads: Option<usize>) -> Option<Layout> {
        let mut groups: Vec<Vec<Atom>> = Vec::with_capacity(4);
        let mut repeat = one();
        for p in picks {
            match *p {
                Pick::Axis(o) => {
                    let mut grp = view.strip(view.groups.get(o)?);
                    if heads == Some(groups.len()) {
                        repeat = repeat.mul(&pop_repeat(&mut grp));
                    }
                    groups.push(grp);
                }
                Pick::Split(o) => {
                    // Batch and heads flattened into one axis: the heads are its minor
                    // (last) source factor, with any repetition after them.
                    let mut grp = view.strip(view.groups.get(o)?);
                    if heads == Some(groups.len() + 1) {
                        repeat = repeat.mul(&pop_repeat(&mut grp));
                    }
                    let h = grp.pop().into_iter().collect();
                    groups.push(grp);
                    groups.push(h);
                }
            }
        }
        let axes: Vec<Vec<usize>> = groups
            .iter()
            .map(|grp| {
                grp.iter()
                    .map(|a| match a {
                        Atom::Src(n) => Some(*n),
                        Atom::Bcast(_) => None,
                    })
                    .collect::<Option<_>>()
            })
            .collect::<Option<_>>()?;
        let dims = axes
            .iter()
            .map(|grp| {
                grp.iter()
                    .fold(one(), |acc, &n| acc.mul(&view.src_shape[n]))
            })
            .collect();
        // The latest value along the chain that already has this layout (unscaled).
        let existing = view
            .steps
            .iter()
            .rev()
            .find(|(_, st, scale)| {
                *scale == 1.0
                    && st.len() == groups.len()
                    && st.iter().zip(&groups).all(|(a, b)| view.strip(a) == *b)
            })
            .map(|(v, _, _)| *v);
        Some(Layout {
            src: view.src,
            axes,
            dims,
            repeat,
            existing,
        })
    }

    /// True if the source itself is in this layout (no node needed).
    pub fn is_source(&self, g: &Graph) -> bool {
        let shape = &g.value_type(self.src).shape;
        let moved: Vec<usize> = self
            .axes
            .iter()
            .flatten()
            .copied()
            .filter(|&a| !is_one(&shape[a]))
            .collect();
        *shape == self.dims && moved.windows(2).all(|w| w[0] < w[1])
    }

    /// The value in this layout: the existing one, or Transpose + Reshape of the source.
    pub fn emit(&self, g: &mut Graph) -> Result<Value, CompileError> {
        match self.existing {
            Some(v) => Ok(v),
            None => self.emit_from(g, self.src),
        }
    }

    /// The same rearrangement applied to `src`, a tensor shaped like the source except in
    /// the sizes of its axes (a KV cache's past part of a concatenation).
    pub fn emit_from(&self, g: &mut Graph, src: Value) -> Result<Value, CompileError> {
        let ty = g.value_type(src).clone();
        let mut perm: Vec<usize> = self.axes.iter().flatten().copied().collect();
        let rest: Vec<usize> = (0..ty.rank()).filter(|a| !perm.contains(a)).collect();
        perm.extend(rest);
        // Size-1 axes do not order anything: without a reordering of the others, a
        // Reshape alone gives the layout.
        let moved: Vec<usize> = perm
            .iter()
            .copied()
            .filter(|&a| !is_one(&ty.shape[a]))
            .collect();
        let mut x = src;
        if moved.windows(2).any(|w| w[0] > w[1]) {
            let mut attrs = Attrs::new();
            attrs.insert(
                "perm".into(),
                Attr::Ints(perm.iter().map(|&p| p as i64).collect()),
            );
            x = add(g, "Transpose", attrs, vec![Some(x)], "")?;
        }
        let dims: Vec<Dim> = self
            .axes
            .iter()
            .map(|grp| grp.iter().fold(one(), |acc, &n| acc.mul(&ty.shape[n])))
            .collect();
        if g.value_type(x).shape != dims {
            x = reshape(g, x, &dims)?;
        }
        Ok(x)
    }
}

/// `Reshape(x, dims)`, its shape a constant or, with symbols, a `dims` node; an Unsqueeze
/// when it only inserts size-1 axes.
pub fn reshape(g: &mut Graph, x: Value, dims: &[Dim]) -> Result<Value, CompileError> {
    let have = g.value_type(x).shape.clone();
    let mut inserted = Vec::new();
    let mut k = 0;
    for (o, d) in dims.iter().enumerate() {
        if k < have.len() && have[k] == *d {
            k += 1;
        } else if is_one(d) {
            inserted.push(o as i64);
        } else {
            break;
        }
    }
    if k == have.len() && inserted.len() + k == dims.len() {
        let axes = constant(
            g,
            Tensor::from_i64(DType::I64, vec![inserted.len()], &inserted),
        )?;
        return add(g, "Unsqueeze", Attrs::new(), vec![Some(x), Some(axes)], "");
    }
    let consts: Option<Vec<i64>> = dims.iter().map(|d| d.as_const()).collect();
    let shape = match consts {
        Some(c) => constant(g, Tensor::from_i64(DType::I64, vec![c.len()], &c))?,
        None => {
            let mut attrs = Attrs::new();
            attrs.insert("value".into(), Attr::Dims(dims.to_vec()));
            let ty = ValueType::new(DType::I64, vec![Dim::from(dims.len() as i64)]);
            out0(g.add_node("dims", attrs, vec![], vec![ty], ""))
        }
    };
    let dtype = g.value_type(x).dtype;
    let mut attrs = Attrs::new();
    attrs.insert("allowzero".into(), Attr::Int(1));
    // The output type is known exactly; inference could not see a `dims` shape's content.
    let ty = ValueType::new(dtype, dims.to_vec());
    Ok(out0(g.add_node(
        "Reshape",
        attrs,
        vec![Some(x), Some(shape)],
        vec![ty],
        "",
    )))
}
