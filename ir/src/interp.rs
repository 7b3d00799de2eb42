//! The reference interpreter: runs a graph op by op with each op's reference semantics.
//! It is the oracle every pass and backend is checked against, so it stays simple.

use std::collections::HashMap;
use std::sync::Arc;

use crate::dim::Dim;
use crate::error::IrError;
use crate::graph::{Graph, Value, INPUT_OP};
use crate::ops::{self, EvalCtx};
use crate::tensor::Tensor;
use crate::types::ValueType;

/// Binds the graph's symbols from the shapes of the given inputs, checking dtypes, ranks
/// and constant dims. Returns the bindings.
pub fn bind_inputs(
    g: &Graph,
    inputs: &HashMap<String, Tensor>,
) -> Result<HashMap<String, i64>, IrError> {
    let mut bindings = HashMap::new();
    for name in inputs.keys() {
        if !g.inputs().iter().any(|&v| g.input_name(v) == Some(name)) {
            let known: Vec<_> = g.inputs().iter().filter_map(|&v| g.input_name(v)).collect();
            return Err(IrError::Input(format!(
                "the graph has no input named \"{name}\" (its inputs: {})",
                known.join(", ")
            )));
        }
    }
    let mut deferred = Vec::new();
    for &v in g.inputs() {
        let name = g.input_name(v).unwrap_or_default();
        let ty = g.value_type(v);
        let t = inputs
            .get(name)
            .ok_or_else(|| IrError::Input(format!("input \"{name}\" is missing ({ty})")))?;
        if t.dtype() != ty.dtype {
            return Err(IrError::Input(format!(
                "input \"{name}\" has dtype {}, the graph expects {}",
                t.dtype(),
                ty.dtype
            )));
        }
        if t.rank() != ty.rank() {
            return Err(IrError::Input(format!(
                "input \"{name}\" has shape {:?}, the graph expects {ty}",
                t.shape()
            )));
        }
        for (axis, (d, &n)) in ty.shape.iter().zip(t.shape()).enumerate() {
            if let Some(s) = d.as_sym() {
                match bindings.get(s) {
                    Some(&b) if b != n as i64 => {
                        return Err(IrError::Input(format!(
                            "input \"{name}\" dim {axis} is {n}, but {s} is already {b} from another input"
                        )))
                    }
                    _ => {
                        bindings.insert(s.to_string(), n as i64);
                    }
                }
            } else {
                deferred.push((name, axis, d, n));
            }
        }
    }
    for (name, axis, d, n) in deferred {
        let want = d.eval(&bindings)?;
        if want != n as i64 {
            return Err(IrError::Input(format!(
                "input \"{name}\" dim {axis} is {n}, the graph expects {d} = {want}"
            )));
        }
    }
    Ok(bindings)
}

/// Checks a computed tensor against its declared type, binding data-dependent symbols on
/// first sight.
fn check_output(
    t: &Tensor,
    ty: &ValueType,
    bindings: &mut HashMap<String, i64>,
) -> Result<(), String> {
    if t.dtype() != ty.dtype || t.rank() != ty.rank() {
        return Err(format!(
            "computed {}{:?}, its type says {ty}",
            t.dtype(),
            t.shape()
        ));
    }
    for (d, &n) in ty.shape.iter().zip(t.shape()) {
        let ok = match d.eval(bindings) {
            Ok(v) => v == n as i64,
            Err(_) => match d.as_sym() {
                Some(s) => {
                    bindings.insert(s.to_string(), n as i64);
                    true
                }
                // An expression over an unbound data-dependent symbol: not checkable.
                None => true,
            },
        };
        if !ok {
            return Err(format!(
                "computed {}{:?}, its type says {ty}",
                t.dtype(),
                t.shape()
            ));
        }
    }
    Ok(())
}

/// Runs the graph on named inputs; returns the graph outputs in order, with their names.
pub fn run(g: &Graph, inputs: &HashMap<String, Tensor>) -> Result<Vec<(String, Tensor)>, IrError> {
    let mut bindings = bind_inputs(g, inputs)?;
    let order = g.topo_order().ok_or(IrError::Cycle)?;
    // How many readers each value has left; a value is dropped after its last reader.
    let mut uses: HashMap<Value, usize> = HashMap::new();
    for &id in &order {
        for v in g.node(id).inputs().iter().flatten() {
            *uses.entry(*v).or_default() += 1;
        }
    }
    for (_, v) in g.outputs() {
        *uses.entry(*v).or_default() += 1;
    }
    let mut env: HashMap<Value, Arc<Tensor>> = HashMap::new();
    for &v in g.inputs() {
        let name = g.input_name(v).unwrap_or_default();
        env.insert(v, Arc::new(inputs[name].clone()));
    }
    for id in order {
        let node = g.node(id);
        if node.op == INPUT_OP {
            continue;
        }
        let spec = ops::lookup(&node.op).ok_or_else(|| IrError::UnknownOp(node.op.clone()))?;
        let args: Vec<Option<Arc<Tensor>>> = node
            .inputs()
            .iter()
            .map(|v| v.and_then(|v| env.get(&v).cloned()))
            .collect();
        let ctx = EvalCtx {
            attrs: &node.attrs,
            inputs: args,
            num_outputs: node.outputs.len(),
            output_types: &node.outputs,
            weights: &g.weights,
            bindings: &bindings,
        };
        let mut results = (spec.eval)(&ctx).map_err(|e| IrError::Op {
            node: node.label(),
            msg: e.0,
        })?;
        drop(ctx);
        if results.len() < node.outputs.len() {
            return Err(IrError::Op {
                node: node.label(),
                msg: format!(
                    "computed {} outputs, the node has {}",
                    results.len(),
                    node.outputs.len()
                ),
            });
        }
        results.truncate(node.outputs.len());
        for (i, (t, ty)) in results.into_iter().zip(&node.outputs).enumerate() {
            check_output(&t, ty, &mut bindings).map_err(|msg| IrError::Op {
                node: node.label(),
                msg: format!("output {i}: {msg}"),
            })?;
            let v = Value {
                node: id,
                output: i,
            };
            if uses.get(&v).copied().unwrap_or(0) > 0 {
                env.insert(v, Arc::new(t));
            }
        }
        for v in node.inputs().iter().flatten() {
            if let Some(n) = uses.get_mut(v) {
                *n -= 1;
                if *n == 0 {
                    env.remove(v);
                }
            }
        }
    }
    g.outputs()
        .iter()
        .map(|(name, v)| {
            env.get(v)
                .map(|t| (name.clone(), (**t).clone()))
                .ok_or_else(|| IrError::Invalid(format!("output \"{name}\" was not computed")))
        })
        .collect()
}

/// The concrete shape of `ty` under `bindings`, for callers that make inputs.
pub fn concrete_shape(
    ty: &ValueType,
    bindings: &HashMap<String, i64>,
) -> Result<Vec<usize>, IrError> {
    ty.shape
        .iter()
        .map(|d: &Dim| Ok(d.eval(bindings)?.max(0) as usize))
        .collect()
}
