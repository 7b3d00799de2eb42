//! The ONNX frontend: an ONNX model in, a kiln graph out.
//!
//! - default domain (`""` / `ai.onnx`) opsets 1 to [`MAX_DEFAULT_OPSET`]; older op forms are
//!   rewritten to the newest signature by [`upgrade`] (one table);
//! - `com.microsoft` opset 1, as `com.microsoft.<OpType>`;
//! - initializers in every encoding ([`tensor`]): small ones become inline constants, larger
//!   ones go to the graph's weight store;
//! - `Constant` nodes become constants; `If` with a condition known at import time is inlined
//!   (with a run-time condition, both branches joined by `Where`); model-local functions are
//!   inlined;
//! - every node's types are inferred as it is added, then the whole graph is re-inferred and
//!   verified.

pub mod attrs;
pub mod tensor;
pub mod upgrade;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use kiln_ir::infer::{infer_node, FreshSymbols, KnownValues};
use kiln_ir::ops::{self, EvalCtx, Known};
use kiln_ir::{Attr, Attrs, DType, Dim, Graph, IrError, NodeId, Tensor, Value, ValueType};
use onnx_protobuf::{
    tensor_shape_proto::dimension, type_proto, FunctionProto, GraphProto, Message, ModelProto,
    NodeProto, TensorProto, TypeProto,
};

use crate::error::CompileError;
use tensor::{dtype_of, tensor_from_proto, ExternalData};
use upgrade::{Draft, Outcome};

/// The newest default-domain opset kiln knows (onnx 1.23).
pub const MAX_DEFAULT_OPSET: i64 = 28;

/// Tensors with at most this many elements are held inline in their `constant` node; larger
/// ones go to the weight store.
pub const INLINE_MAX_ELEMENTS: usize = 16;

/// Imports an ONNX model file (external data resolved relative to its folder).
pub fn import_file(path: &Path) -> Result<Graph, CompileError> {
    let bytes = std::fs::read(path).map_err(|e| CompileError::io(path, e))?;
    let base = path.parent().map(|p| {
        if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        }
    });
    let model = ModelProto::parse_from_bytes(&bytes).map_err(|e| CompileError::File {
        path: path.display().to_string(),
        msg: format!("not an ONNX model: {e}"),
    })?;
    drop(bytes);
    import_model(&model, base)
}

/// Imports a serialized model; external data, if any, is resolved relative to `base_dir`.
pub fn import_bytes(bytes: &[u8], base_dir: Option<&Path>) -> Result<Graph, CompileError> {
    let model = ModelProto::parse_from_bytes(bytes)
        .map_err(|e| CompileError::Invalid(format!("not an ONNX model: {e}")))?;
    import_model(&model, base_dir)
}

/// Imports a decoded model; external data, if any, is resolved relative to `base_dir`.
pub fn import_model(model: &ModelProto, base_dir: Option<&Path>) -> Result<Graph, CompileError> {
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| CompileError::Invalid("the model has no graph".into()))?;
    let mut opsets = HashMap::new();
    for o in &model.opset_import {
        let d = normalize_domain(&o.domain);
        opsets.insert(d.to_string(), o.version);
    }
    let mut functions = HashMap::new();
    for f in &model.functions {
        functions.insert((f.domain.clone(), f.name.clone()), f.clone());
    }
    let mut ext = ExternalData::new(base_dir);
    let (g, scope, inits) = import_interface(graph, &mut ext)?;
    let fresh = FreshSymbols::for_graph(&g);
    let mut imp = Importer {
        g,
        opsets,
        ext,
        known: KnownValues::new(),
        fresh,
        inits,
        functions,
        depth: 0,
    };
    let mut scope = scope;
    for n in &graph.node {
        imp.import_node(n, &mut scope)?;
    }
    let mut outputs = Vec::new();
    let mut declared = Vec::new();
    for o in &graph.output {
        let parts = check_value_type(o.type_.as_ref(), &format!("output \"{}\"", o.name), false)?;
        let v = imp
            .resolve(&scope, &o.name)?
            .ok_or_else(|| CompileError::Invalid("a graph output has an empty name".to_string()))?;
        outputs.push((o.name.clone(), v));
        declared.push(parts.and_then(|p| p.1));
    }
    let mut g = imp.g;
    g.set_outputs(outputs);
    pin_declared_dims(&mut g, &declared);
    kiln_ir::infer::infer_graph(&mut g)?;
    kiln_ir::verify::verify(&g)?;
    Ok(g)
}

/// Pins the data-dependent dims of graph outputs (symbols no input shape has, which shape
/// inference made up for values it could not see, such as Resize's run-time scales) to the
/// constants the model declares for them; inference keeps them and the interpreter checks
/// them. A symbol declared with two different values stays a symbol.
fn pin_declared_dims(g: &mut Graph, declared: &[Option<Vec<dimension::Value>>]) {
    let mut input_syms = Vec::new();
    for &v in g.inputs() {
        g.value_type(v)
            .shape
            .iter()
            .for_each(|d| d.symbols(&mut input_syms));
    }
    let mut pins: HashMap<String, Option<i64>> = HashMap::new();
    for ((_, v), decl) in g.outputs().iter().zip(declared) {
        let (Some(decl), ty) = (decl, g.value_type(*v)) else {
            continue;
        };
        if decl.len() != ty.shape.len() {
            continue;
        }
        for (d, want) in ty.shape.iter().zip(decl) {
            let (Some(s), dimension::Value::DimValue(c)) = (d.as_sym(), want) else {
                continue;
            };
            if *c < 0 || input_syms.iter().any(|x| &**x == s) {
                continue;
            }
            let e = pins.entry(s.to_string()).or_insert(Some(*c));
            if *e != Some(*c) {
                *e = None;
            }
        }
    }
    let pins: HashMap<String, i64> = pins
        .into_iter()
        .filter_map(|(s, c)| Some((s, c?)))
        .collect();
    if pins.is_empty() {
        return;
    }
    let pin = |s: &str| pins.get(s).map(|&c| Dim::from(c));
    for id in g.node_ids() {
        for t in &mut g.node_mut(id).outputs {
            t.shape = t.shape.iter().map(|d| d.substitute(&pin)).collect();
        }
    }
}

fn normalize_domain(d: &str) -> &str {
    if d == "ai.onnx" {
        ""
    } else {
        d
    }
}

fn domain_label(d: &str) -> &str {
    if d.is_empty() {
        "ai.onnx"
    } else {
        d
    }
}

/// What a name in scope stands for.
#[derive(Clone, Copy)]
enum Binding {
    Value(Value),
    /// An initializer not yet turned into a node (index into `Importer::inits`).
    Init(usize),
    /// An optional input a function call leaves out.
    Absent,
}

type Scope = HashMap<String, Binding>;

struct Init {
    name: String,
    tensor: Arc<Tensor>,
    value: Option<Value>,
}

pub(crate) struct Importer {
    g: Graph,
    opsets: HashMap<String, i64>,
    ext: ExternalData,
    known: KnownValues,
    fresh: FreshSymbols,
    inits: Vec<Init>,
    /// The model's local functions by (domain, name); calls to them are inlined.
    functions: HashMap<(String, String), FunctionProto>,
    /// How deep in function calls the importer is.
    depth: usize,
}

/// How deep function calls may nest.
const MAX_FUNCTION_DEPTH: usize = 16;

/// A tensor type's elem type code and its dims, if it has a shape.
type TensorTypeParts = (i32, Option<Vec<dimension::Value>>);

/// The elem type and shape of a tensor type, or an "unsupported type" error naming `what`.
fn check_value_type(
    tp: Option<&TypeProto>,
    what: &str,
    need_tensor: bool,
) -> Result<Option<TensorTypeParts>, CompileError> {
    let Some(tp) = tp else {
        if need_tensor {
            return Err(CompileError::Invalid(format!("{what} has no type")));
        }
        return Ok(None);
    };
    match &tp.value {
        Some(type_proto::Value::TensorType(t)) => {
            if t.elem_type != 0 || need_tensor {
                dtype_of(t.elem_type, what)?;
            }
            let shape = t.shape.as_ref().map(|s| {
                s.dim
                    .iter()
                    .map(|d| {
                        d.value
                            .clone()
                            .unwrap_or(dimension::Value::DimParam(String::new()))
                    })
                    .collect::<Vec<_>>()
            });
            Ok(Some((t.elem_type, shape)))
        }
        Some(type_proto::Value::SequenceType(_)) => Err(CompileError::Unsupported(format!(
            "unsupported sequence type ({what})"
        ))),
        Some(type_proto::Value::MapType(_)) => Err(CompileError::Unsupported(format!(
            "unsupported map type ({what})"
        ))),
        Some(type_proto::Value::OptionalType(_)) => Err(CompileError::Unsupported(format!(
            "unsupported optional type ({what})"
        ))),
        Some(type_proto::Value::SparseTensorType(_)) => Err(CompileError::Unsupported(format!(
            "unsupported sparse tensor type ({what})"
        ))),
        Some(_) | None => {
            if need_tensor {
                Err(CompileError::Invalid(format!("{what} has no tensor type")))
            } else {
                Ok(None)
            }
        }
    }
}

/// A symbol name from arbitrary text: invalid characters become `_`.
pub fn sanitize_symbol(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.as_bytes()[0].is_ascii_digit() {
        out.insert(0, '_');
    }
    if !kiln_ir::dim::is_symbol_name(&out) {
        out.push('_');
    }
    out
}

/// Graph inputs (those that are not initializers) and initializers.
fn import_interface(
    graph: &GraphProto,
    ext: &mut ExternalData,
) -> Result<(Graph, Scope, Vec<Init>), CompileError> {
    let mut g = Graph::new(&graph.name);
    let mut scope = Scope::new();
    if let Some(s) = graph.sparse_initializer.first() {
        let name = s.values.as_ref().map(|v| v.name.as_str()).unwrap_or("");
        return Err(CompileError::Unsupported(format!(
            "unsupported sparse initializer \"{name}\""
        )));
    }
    let mut inits = Vec::new();
    add_initializers(&graph.initializer, ext, &mut scope, &mut inits)?;
    // Plain symbols first, so that expression dims can refer to them.
    let mut plain: HashSet<String> = HashSet::new();
    for i in &graph.input {
        if let Some(Some(type_proto::Value::TensorType(t))) = i.type_.as_ref().map(|t| &t.value) {
            for d in t.shape.iter().flat_map(|s| s.dim.iter()) {
                if let Some(dimension::Value::DimParam(p)) = &d.value {
                    if kiln_ir::dim::is_symbol_name(p) {
                        plain.insert(p.clone());
                    }
                }
            }
        }
    }
    for i in &graph.input {
        if scope.contains_key(&i.name) {
            continue; // an initializer with a default in the input list: a constant
        }
        let what = format!("input \"{}\"", i.name);
        let (code, shape) = check_value_type(i.type_.as_ref(), &what, true)?
            .ok_or_else(|| CompileError::Invalid(format!("{what} has no type")))?;
        let dtype = dtype_of(code, &what)?;
        let shape = shape.ok_or_else(|| {
            CompileError::Unsupported(format!("unsupported unknown rank ({what})"))
        })?;
        let mut dims = Vec::with_capacity(shape.len());
        for (axis, d) in shape.iter().enumerate() {
            dims.push(match d {
                dimension::Value::DimValue(v) if *v >= 0 => Dim::from(*v),
                dimension::Value::DimValue(v) => {
                    return Err(CompileError::Invalid(format!(
                        "{what} has a negative dim {v} at axis {axis}"
                    )))
                }
                dimension::Value::DimParam(p) if p.is_empty() => {
                    Dim::sym(&sanitize_symbol(&format!("{}_{axis}", i.name)))
                }
                dimension::Value::DimParam(p) => dim_from_param(p, &plain),
                _ => Dim::sym(&sanitize_symbol(&format!("{}_{axis}", i.name))),
            });
        }
        let v = g.add_input(&i.name, ValueType::new(dtype, dims));
        scope.insert(i.name.clone(), Binding::Value(v));
    }
    Ok((g, scope, inits))
}

/// A dim from a `dim_param`: a symbol, or an expression over the inputs' plain symbols
/// (`s0 + 1`), or else the text made into a symbol name.
fn dim_from_param(p: &str, plain: &HashSet<String>) -> Dim {
    if kiln_ir::dim::is_symbol_name(p) {
        return Dim::sym(p);
    }
    if let Ok(d) = Dim::parse(p) {
        let mut syms = Vec::new();
        d.symbols(&mut syms);
        if syms.iter().all(|s| plain.contains(&**s)) {
            return d;
        }
    }
    Dim::sym(&sanitize_symbol(p))
}

fn add_initializers(
    list: &[TensorProto],
    ext: &mut ExternalData,
    scope: &mut Scope,
    inits: &mut Vec<Init>,
) -> Result<(), CompileError> {
    for t in list {
        let tensor = tensor_from_proto(t, &format!("initializer \"{}\"", t.name), ext)?;
        scope.insert(t.name.clone(), Binding::Init(inits.len()));
        inits.push(Init {
            name: t.name.clone(),
            tensor: Arc::new(tensor),
            value: None,
        });
    }
    Ok(())
}

/// Appends ` at node "..."` to frontend errors raised while importing a node.
fn at_node(e: CompileError, origin: &str) -> CompileError {
    match e {
        // Already placed (a node inside an inlined If branch).
        CompileError::Unsupported(m) | CompileError::Invalid(m) if m.contains(" at node \"") => {
            if m.starts_with("unsupported") {
                CompileError::Unsupported(m)
            } else {
                CompileError::Invalid(m)
            }
        }
        CompileError::Unsupported(m) => {
            CompileError::Unsupported(format!("{m} at node \"{origin}\""))
        }
        CompileError::Invalid(m) => CompileError::Invalid(format!("{m} at node \"{origin}\"")),
        e => e,
    }
}

fn branch_graph<'a>(n: &'a NodeProto, which: &str) -> Result<&'a GraphProto, CompileError> {
    n.attribute
        .iter()
        .find(|a| a.name == which)
        .and_then(|a| a.g.as_ref())
        .ok_or_else(|| CompileError::Invalid(format!("If has no {which} graph")))
}

fn bind_if_outputs(
    outs: &[&str],
    values: Vec<Value>,
    what: &str,
    scope: &mut Scope,
) -> Result<(), CompileError> {
    if values.len() < outs.len() {
        return Err(CompileError::Invalid(format!(
            "If has {} outputs, its {what} give {}",
            outs.len(),
            values.len()
        )));
    }
    for (name, v) in outs.iter().zip(values) {
        if !name.is_empty() {
            scope.insert(name.to_string(), Binding::Value(v));
        }
    }
    Ok(())
}

impl Importer {
    /// The value a name stands for (`None` for the empty name of an absent input).
    fn resolve(&mut self, scope: &Scope, name: &str) -> Result<Option<Value>, CompileError> {
        if name.is_empty() {
            return Ok(None);
        }
        match scope.get(name) {
            Some(Binding::Value(v)) => Ok(Some(*v)),
            Some(Binding::Absent) => Ok(None),
            Some(Binding::Init(i)) => {
                let i = *i;
                if let Some(v) = self.inits[i].value {
                    return Ok(Some(v));
                }
                let (t, n) = (self.inits[i].tensor.clone(), self.inits[i].name.clone());
                let v = self.konst_arc(t, &n, &n)?;
                self.inits[i].value = Some(v);
                Ok(Some(v))
            }
            None => Err(CompileError::Invalid(format!(
                "value \"{name}\" is used but never defined"
            ))),
        }
    }

    /// The type of a value.
    pub(crate) fn ty(&self, v: Value) -> &ValueType {
        self.g.value_type(v)
    }

    /// The constant behind a value, if it is a `constant` node.
    pub(crate) fn const_of(&self, v: Value) -> Option<Arc<Tensor>> {
        self.g.const_of(v)
    }

    /// Adds a `constant` node: inline when small, else a weight named `name`.
    pub(crate) fn konst(
        &mut self,
        t: Tensor,
        name: &str,
        origin: &str,
    ) -> Result<Value, CompileError> {
        self.konst_arc(Arc::new(t), name, origin)
    }

    fn konst_arc(
        &mut self,
        t: Arc<Tensor>,
        name: &str,
        origin: &str,
    ) -> Result<Value, CompileError> {
        let value = if t.len() <= INLINE_MAX_ELEMENTS {
            Attr::Tensor(t)
        } else {
            Attr::Weight(self.g.weights.insert(name, t))
        };
        let mut attrs = Attrs::new();
        attrs.insert("value".into(), value);
        let id = self.add("constant", attrs, vec![], 1, origin)?;
        Ok(Value {
            node: id,
            output: 0,
        })
    }

    /// Adds a node and infers its output types from what is known so far.
    pub(crate) fn add(
        &mut self,
        op: &str,
        attrs: Attrs,
        inputs: Vec<Option<Value>>,
        num_outputs: usize,
        origin: &str,
    ) -> Result<NodeId, CompileError> {
        let placeholder = ValueType::new(DType::F32, vec![]);
        let id = self
            .g
            .add_node(op, attrs, inputs, vec![placeholder; num_outputs], origin);
        let (mut types, sym) = infer_node(&self.g, id, &self.known, &self.fresh)?;
        if types.len() < num_outputs {
            return Err(CompileError::Ir(IrError::Op {
                node: self.g.node(id).label(),
                msg: format!("has {num_outputs} outputs, its op gives {}", types.len()),
            }));
        }
        types.truncate(num_outputs);
        self.g.node_mut(id).outputs = types;
        if let Some(s) = sym {
            self.known.insert(
                Value {
                    node: id,
                    output: 0,
                },
                Known::Dims(s),
            );
        }
        Ok(id)
    }

    /// Adds a one-output node and returns its value.
    pub(crate) fn add1(
        &mut self,
        op: &str,
        attrs: Attrs,
        inputs: Vec<Option<Value>>,
        origin: &str,
    ) -> Result<Value, CompileError> {
        let id = self.add(op, attrs, inputs, 1, origin)?;
        Ok(Value {
            node: id,
            output: 0,
        })
    }

    /// The value of `v` if it can be computed at import time: a constant, symbolic integers
    /// that are all known, or an op over such values.
    pub(crate) fn try_eval(&self, v: Value, depth: usize) -> Option<Arc<Tensor>> {
        if let Some(t) = self.g.const_of(v) {
            return Some(t);
        }
        let ty = self.g.value_type(v);
        if let Some(Known::Dims(ds)) = self.known.get(&v) {
            let vals: Option<Vec<i64>> = ds.iter().map(|d| d.as_const()).collect();
            if let (Some(vals), Some(shape)) = (vals, ty.concrete_shape()) {
                if vals.len() == shape.iter().product::<usize>() {
                    return Some(Arc::new(Tensor::from_i64(ty.dtype, shape, &vals)));
                }
            }
        }
        if depth == 0 {
            return None;
        }
        let node = self.g.node(v.node);
        if node.op == kiln_ir::graph::INPUT_OP {
            return None;
        }
        let spec = ops::lookup(&node.op)?;
        let mut inputs = Vec::new();
        for i in node.inputs() {
            inputs.push(match i {
                Some(i) => Some(self.try_eval(*i, depth - 1)?),
                None => None,
            });
        }
        let bindings = HashMap::new();
        let ctx = EvalCtx {
            attrs: &node.attrs,
            inputs,
            num_outputs: node.outputs.len(),
            output_types: &node.outputs,
            weights: &self.g.weights,
            bindings: &bindings,
        };
        let mut out = (spec.eval)(&ctx).ok()?;
        (v.output < out.len()).then(|| Arc::new(out.swap_remove(v.output)))
    }

    fn opset(&self, domain: &str) -> Option<i64> {
        self.opsets.get(domain).copied()
    }

    fn import_node(&mut self, n: &NodeProto, scope: &mut Scope) -> Result<(), CompileError> {
        let origin = if !n.name.is_empty() {
            n.name.clone()
        } else {
            n.output
                .iter()
                .find(|o| !o.is_empty())
                .cloned()
                .unwrap_or_default()
        };
        self.import_node_inner(n, scope, &origin)
            .map_err(|e| at_node(e, &origin))
    }

    fn import_node_inner(
        &mut self,
        n: &NodeProto,
        scope: &mut Scope,
        origin: &str,
    ) -> Result<(), CompileError> {
        let domain = normalize_domain(&n.domain).to_string();
        if !domain.is_empty() && domain != "com.microsoft" {
            let key = (n.domain.clone(), n.op_type.clone());
            if let Some(f) = self.functions.get(&key).cloned() {
                return self.inline_function(n, &f, scope, origin);
            }
        }
        let opset = self.opset(&domain);
        let unsupported = |why: &str| {
            let v = opset.map_or("?".to_string(), |v| v.to_string());
            CompileError::Unsupported(format!(
                "unsupported op {} (domain {}, opset {v}){why}",
                n.op_type,
                domain_label(&domain)
            ))
        };
        let Some(opset) = opset else {
            return Err(unsupported(": the model imports no opset for this domain"));
        };
        let op = match domain.as_str() {
            "" => {
                if !(1..=MAX_DEFAULT_OPSET).contains(&opset) {
                    return Err(unsupported(&format!(
                        ": kiln knows default-domain opsets 1 to {MAX_DEFAULT_OPSET}"
                    )));
                }
                upgrade::rename(&n.op_type, opset).to_string()
            }
            "com.microsoft" => {
                if opset != 1 {
                    return Err(unsupported(": kiln knows com.microsoft opset 1"));
                }
                format!("com.microsoft.{}", n.op_type)
            }
            _ => return Err(unsupported("")),
        };
        // Outputs: trailing empty names are absent optional outputs.
        let mut outs: Vec<&str> = n.output.iter().map(String::as_str).collect();
        while outs.last() == Some(&"") {
            outs.pop();
        }
        if domain.is_empty() && n.op_type == "Constant" {
            return self.import_constant(n, &outs, scope, origin);
        }
        if domain.is_empty() && n.op_type == "If" {
            return self.import_if(n, &outs, scope, origin, &unsupported);
        }
        if ops::lookup(&op).is_none() {
            return Err(unsupported(""));
        }
        let mut attrs = Attrs::new();
        for a in &n.attribute {
            if let Some(v) = attrs::convert(&n.op_type, a, &mut self.ext)? {
                attrs.insert(a.name.clone(), v);
            }
        }
        let mut inputs = Vec::with_capacity(n.input.len());
        for i in &n.input {
            inputs.push(self.resolve(scope, i)?);
        }
        while inputs.last() == Some(&None) {
            inputs.pop();
        }
        let mut draft = Draft {
            op,
            op_type: n.op_type.clone(),
            opset,
            inputs,
            attrs,
            num_outputs: outs.len(),
            origin: origin.to_string(),
        };
        let values = match upgrade::apply(self, &mut draft)? {
            Outcome::Replaced(values) => values,
            Outcome::Node => {
                if draft.num_outputs == 0 {
                    return Ok(());
                }
                while draft.inputs.last() == Some(&None) {
                    draft.inputs.pop();
                }
                let id = self.add(
                    &draft.op,
                    draft.attrs,
                    draft.inputs,
                    draft.num_outputs,
                    origin,
                )?;
                (0..draft.num_outputs)
                    .map(|output| Value { node: id, output })
                    .collect()
            }
        };
        for (name, v) in outs.iter().zip(values) {
            if !name.is_empty() {
                scope.insert(name.to_string(), Binding::Value(v));
            }
        }
        Ok(())
    }

    fn import_constant(
        &mut self,
        n: &NodeProto,
        outs: &[&str],
        scope: &mut Scope,
        origin: &str,
    ) -> Result<(), CompileError> {
        let [out] = outs else {
            return Err(CompileError::Invalid(format!(
                "Constant must have 1 output, has {}",
                outs.len()
            )));
        };
        let a = n
            .attribute
            .first()
            .filter(|_| n.attribute.len() == 1)
            .ok_or_else(|| {
                CompileError::Invalid("Constant needs exactly one value attribute".into())
            })?;
        let t = match a.name.as_str() {
            "value" => match attrs::convert("Constant", a, &mut self.ext)? {
                Some(Attr::Tensor(t)) => t,
                _ => {
                    return Err(CompileError::Invalid(
                        "Constant.value must be a TENSOR".into(),
                    ))
                }
            },
            "value_float" => Arc::new(Tensor::scalar_f32(a.f)),
            "value_floats" => Arc::new(
                Tensor::from_f32s(vec![a.floats.len()], a.floats.clone()).map_err(IrError::from)?,
            ),
            "value_int" => Arc::new(Tensor::scalar_i64(a.i)),
            "value_ints" => Arc::new(
                Tensor::from_i64s(vec![a.ints.len()], a.ints.clone()).map_err(IrError::from)?,
            ),
            "value_string" | "value_strings" => {
                return Err(CompileError::Unsupported(format!(
                    "unsupported dtype string (Constant.{})",
                    a.name
                )))
            }
            "sparse_value" => {
                return Err(CompileError::Unsupported(
                    "unsupported sparse tensor (Constant.sparse_value)".into(),
                ))
            }
            other => {
                return Err(CompileError::Invalid(format!(
                    "unknown Constant attribute `{other}`"
                )))
            }
        };
        let v = self.konst_arc(t, out, origin)?;
        scope.insert(out.to_string(), Binding::Value(v));
        Ok(())
    }

    fn import_if(
        &mut self,
        n: &NodeProto,
        outs: &[&str],
        scope: &mut Scope,
        origin: &str,
        unsupported: &dyn Fn(&str) -> CompileError,
    ) -> Result<(), CompileError> {
        let cond_name = n.input.first().map(String::as_str).unwrap_or("");
        let cond = self
            .resolve(scope, cond_name)?
            .ok_or_else(|| CompileError::Invalid("If needs a condition".into()))?;
        let Some(t) = self.try_eval(cond, 32) else {
            return self.import_if_as_where(n, outs, scope, origin, cond, unsupported);
        };
        if t.len() != 1 {
            return Err(CompileError::Invalid(format!(
                "If condition must have one element, has {}",
                t.len()
            )));
        }
        let taken = if t.to_bool()[0] {
            "then_branch"
        } else {
            "else_branch"
        };
        let values = self.import_branch(branch_graph(n, taken)?, scope)?;
        bind_if_outputs(outs, values, taken, scope)
    }

    /// An If whose condition is only known at run time: both branches are imported and each
    /// output selects between them with `Where`, which is exact when both branches have the
    /// same output types (ONNX branches are pure).
    fn import_if_as_where(
        &mut self,
        n: &NodeProto,
        outs: &[&str],
        scope: &mut Scope,
        origin: &str,
        cond: Value,
        unsupported: &dyn Fn(&str) -> CompileError,
    ) -> Result<(), CompileError> {
        let then_v = self.import_branch(branch_graph(n, "then_branch")?, scope)?;
        let else_v = self.import_branch(branch_graph(n, "else_branch")?, scope)?;
        let cty = self.ty(cond).clone();
        if cty.dtype != DType::Bool || cty.shape.iter().any(|d| d.as_const() != Some(1)) {
            return Err(unsupported(&format!(
                ": its condition is not known at import time and is {cty}, not one bool"
            )));
        }
        let mut cond = cond;
        if !cty.shape.is_empty() {
            let empty = Tensor::from_i64s(vec![0], vec![]).map_err(IrError::from)?;
            let shape = self.konst(empty, &format!("{origin}.scalar_shape"), origin)?;
            cond = self.add1(
                "Reshape",
                Attrs::new(),
                vec![Some(cond), Some(shape)],
                origin,
            )?;
        }
        let mut values = Vec::new();
        for (k, (t, e)) in then_v.iter().zip(&else_v).enumerate().take(outs.len()) {
            if self.ty(*t) != self.ty(*e) {
                return Err(unsupported(&format!(
                    ": its condition is not known at import time and output {k} is {} in then_branch, {} in else_branch",
                    self.ty(*t),
                    self.ty(*e)
                )));
            }
            let v = self.add1(
                "Where",
                Attrs::new(),
                vec![Some(cond), Some(*t), Some(*e)],
                origin,
            )?;
            values.push(v);
        }
        bind_if_outputs(outs, values, "branches", scope)
    }

    /// Inlines a call to a model-local function: its nodes read the call's inputs, its
    /// attribute references take the call's attributes (or the function's defaults).
    fn inline_function(
        &mut self,
        n: &NodeProto,
        f: &FunctionProto,
        scope: &mut Scope,
        origin: &str,
    ) -> Result<(), CompileError> {
        if self.depth >= MAX_FUNCTION_DEPTH {
            return Err(CompileError::Unsupported(format!(
                "unsupported function nesting deeper than {MAX_FUNCTION_DEPTH} (function {}.{})",
                f.domain, f.name
            )));
        }
        let mut fscope = Scope::new();
        for (i, formal) in f.input.iter().enumerate() {
            let actual = n.input.get(i).map(String::as_str).unwrap_or("");
            let b = match self.resolve(scope, actual)? {
                Some(v) => Binding::Value(v),
                None => Binding::Absent,
            };
            fscope.insert(formal.clone(), b);
        }
        let mut attr_vals: HashMap<&str, &onnx_protobuf::AttributeProto> = HashMap::new();
        for a in &f.attribute_proto {
            attr_vals.insert(&a.name, a);
        }
        for a in &n.attribute {
            attr_vals.insert(&a.name, a);
        }
        let saved = self.opsets.clone();
        for o in &f.opset_import {
            self.opsets
                .insert(normalize_domain(&o.domain).to_string(), o.version);
        }
        self.depth += 1;
        let mut run = || -> Result<(), CompileError> {
            for inner in &f.node {
                let mut inner = inner.clone();
                let local = if inner.name.is_empty() {
                    inner.output.first().cloned().unwrap_or_default()
                } else {
                    inner.name.clone()
                };
                inner.name = format!("{origin}/{local}");
                let mut attrs = Vec::with_capacity(inner.attribute.len());
                for a in inner.attribute.drain(..) {
                    if a.ref_attr_name.is_empty() {
                        attrs.push(a);
                    } else if let Some(src) = attr_vals.get(a.ref_attr_name.as_str()) {
                        let mut b = (*src).clone();
                        b.name = a.name.clone();
                        attrs.push(b);
                    }
                }
                inner.attribute = attrs;
                self.import_node(&inner, &mut fscope)?;
            }
            Ok(())
        };
        let r = run();
        self.depth -= 1;
        self.opsets = saved;
        r?;
        for (k, out) in n.output.iter().enumerate() {
            if out.is_empty() {
                continue;
            }
            let formal = f.output.get(k).ok_or_else(|| {
                CompileError::Invalid(format!(
                    "function {}.{} has {} outputs, the call uses {}",
                    f.domain,
                    f.name,
                    f.output.len(),
                    n.output.len()
                ))
            })?;
            match self.resolve(&fscope, formal)? {
                Some(v) => {
                    scope.insert(out.clone(), Binding::Value(v));
                }
                None => {
                    return Err(CompileError::Invalid(format!(
                        "function {}.{} output \"{formal}\" is not computed",
                        f.domain, f.name
                    )))
                }
            }
        }
        Ok(())
    }

    /// Imports a subgraph's nodes in a scope that sees the outer names; returns its outputs.
    fn import_branch(&mut self, g: &GraphProto, outer: &Scope) -> Result<Vec<Value>, CompileError> {
        let mut scope = outer.clone();
        if !g.input.is_empty() {
            return Err(CompileError::Invalid(format!(
                "an If branch has {} inputs, it must have none",
                g.input.len()
            )));
        }
        if !g.sparse_initializer.is_empty() {
            return Err(CompileError::Unsupported(
                "unsupported sparse initializer in a subgraph".into(),
            ));
        }
        add_initializers(&g.initializer, &mut self.ext, &mut scope, &mut self.inits)?;
        for n in &g.node {
            self.import_node(n, &mut scope)?;
        }
        let mut out = Vec::new();
        for o in &g.output {
            check_value_type(o.type_.as_ref(), &format!("output \"{}\"", o.name), false)?;
            let v = self.resolve(&scope, &o.name)?.ok_or_else(|| {
                CompileError::Invalid("a subgraph output has an empty name".into())
            })?;
            out.push(v);
        }
        Ok(out)
    }
}
