//! Static shapes: an Ascend launch list is compiled for one size of every symbolic dim
//! (as CANN's offline compiler wants). Substituting the sizes into the graph before the
//! pass pipeline lets constant folding remove everything computed from shapes alone
//! (position ranges, causal masks, shape arithmetic), which then needs no kernel.

use std::collections::HashMap;

use kiln_ir::attr::Attr;
use kiln_ir::dim::Dim;
use kiln_ir::graph::Graph;

use crate::error::TargetError;

/// The symbols of the graph's input shapes, in order of first appearance.
pub fn input_symbols(graph: &Graph) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for &v in graph.inputs() {
        for d in &graph.value_type(v).shape {
            let mut syms = Vec::new();
            d.symbols(&mut syms);
            for s in syms {
                if !names.iter().any(|n| **n == *s) {
                    names.push(s.to_string());
                }
            }
        }
    }
    names
}

/// Checks that `dims` sizes exactly the symbols of the graph's input shapes.
pub fn check_dims(graph: &Graph, dims: &HashMap<String, i64>) -> Result<(), TargetError> {
    let symbols = input_symbols(graph);
    let mut given: Vec<&String> = dims.keys().collect();
    given.sort();
    for name in given {
        if !symbols.contains(name) {
            let known = if symbols.is_empty() {
                "it has none; every shape is static".to_string()
            } else {
                format!("its dims are: {}", symbols.join(", "))
            };
            return Err(TargetError::Lower(format!(
                "--dim {name}: the model has no dim named `{name}` ({known})"
            )));
        }
    }
    let missing: Vec<String> = symbols
        .iter()
        .filter(|s| !dims.contains_key(*s))
        .map(|s| format!("--dim {s}=N"))
        .collect();
    if !missing.is_empty() {
        return Err(TargetError::Lower(format!(
            "an Ascend launch list has static shapes: give {}",
            missing.join(" ")
        )));
    }
    Ok(())
}

/// Replaces every symbol `dims` sizes by its size, in value types and `dims` attributes,
/// after checking `dims` with [`check_dims`]. Re-infer the graph afterwards.
pub fn specialize(graph: &mut Graph, dims: &HashMap<String, i64>) -> Result<(), TargetError> {
    check_dims(graph, dims)?;
    let subst = |name: &str| dims.get(name).map(|&v| Dim::from(v));
    for id in graph.node_ids() {
        let node = graph.node_mut(id);
        for ty in &mut node.outputs {
            for d in &mut ty.shape {
                *d = d.substitute(&subst);
            }
        }
        for attr in node.attrs.values_mut() {
            if let Attr::Dims(ds) = attr {
                for d in ds {
                    *d = d.substitute(&subst);
                }
            }
        }
    }
    Ok(())
}
