//! What every fusion test uses: parse a graph, give its weights seeded random values, run a
//! pipeline, compare the interpreter's outputs before and after, and return the snapshot
//! text.

use std::collections::HashMap;
use std::sync::Arc;

use kiln_compiler::passes::fuse::report::FusionReport;
use kiln_compiler::passes::{PassContext, PassManager};
use kiln_ir::text::{parse, print};
use kiln_ir::{Attr, DType, Graph, Tensor, ValueType};

/// The pipeline fusion tests run: what `kiln opt` runs by default.
pub const PIPELINE: &str = kiln_compiler::backend::DEFAULT_PIPELINE;

/// Seeded uniform values in [-1, 1) (xorshift), so that tests need no data files.
pub struct Random(u64);

impl Random {
    pub fn new(seed: u64) -> Random {
        Random(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    /// A tensor of type `ty` (concrete shape): floats in [-1, 1), ints in 0..int_range,
    /// bools random.
    pub fn tensor(&mut self, dtype: DType, shape: &[usize], int_range: i64) -> Tensor {
        let n: usize = shape.iter().product();
        if dtype.is_float() {
            let v: Vec<f64> = (0..n).map(|_| self.next()).collect();
            Tensor::from_f64(dtype, shape.to_vec(), &v)
        } else if dtype == DType::Bool {
            Tensor::from_bools(shape.to_vec(), (0..n).map(|_| self.next() > 0.0).collect())
                .expect("shape matches")
        } else {
            let v: Vec<i64> = (0..n)
                .map(|_| ((self.next() + 1.0) / 2.0 * int_range as f64) as i64)
                .collect();
            Tensor::from_i64(dtype, shape.to_vec(), &v)
        }
    }
}

/// Parses `text` and gives every `@weight("name")` it reads a seeded random tensor of its
/// printed type.
pub fn graph(text: &str) -> Graph {
    let mut g = parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut rng = Random::new(7);
    for id in g.node_ids() {
        let n = g.node(id);
        let Some(Attr::Weight(name)) = n.attrs.get("value") else {
            continue;
        };
        if g.weights.get(name).is_some() {
            continue;
        }
        let ty: &ValueType = &n.outputs[0];
        let shape = ty.concrete_shape().expect("weights have concrete shapes");
        let t = rng.tensor(ty.dtype, &shape, 4);
        let name = name.to_string();
        g.weights.set(&name, Arc::new(t));
    }
    g
}

/// Random inputs for `g` with its symbols bound by `dims`; integer inputs in 0..int_range.
pub fn inputs(g: &Graph, dims: &[(&str, i64)], int_range: i64) -> HashMap<String, Tensor> {
    let bindings: HashMap<String, i64> = dims.iter().map(|(n, v)| (n.to_string(), *v)).collect();
    let mut rng = Random::new(11);
    g.inputs()
        .iter()
        .map(|&v| {
            let ty = g.value_type(v);
            let shape = ty.eval_shape(&bindings).expect("dims bind every symbol");
            let name = g.input_name(v).expect("an input").to_string();
            (name, rng.tensor(ty.dtype, &shape, int_range))
        })
        .collect()
}

/// Runs `pipeline` on `g` and returns the fused graph and the fusion report.
pub fn fuse(g: &Graph, pipeline: &str) -> (Graph, FusionReport) {
    let mut fused = g.clone();
    let pm = PassManager::parse(pipeline).unwrap();
    let mut ctx = PassContext::new();
    pm.run(&mut fused, &mut ctx)
        .unwrap_or_else(|e| panic!("{e}"));
    let report = FusionReport::new(&ctx, &fused, &pm.names());
    (fused, report)
}

/// Largest |a - b| over every output of the two graphs on the same inputs.
pub fn max_difference(a: &Graph, b: &Graph, feeds: &HashMap<String, Tensor>) -> f64 {
    let ra = kiln_ir::interp::run(a, feeds).unwrap_or_else(|e| panic!("before: {e}"));
    let rb = kiln_ir::interp::run(b, feeds).unwrap_or_else(|e| panic!("after: {e}"));
    let mut worst = 0.0f64;
    for ((na, ta), (nb, tb)) in ra.iter().zip(&rb) {
        assert_eq!(na, nb);
        assert_eq!(ta.shape(), tb.shape(), "output {na}");
        for (x, y) in ta.to_f64().iter().zip(tb.to_f64()) {
            worst = worst.max((x - y).abs());
        }
    }
    worst
}

/// The snapshot of a fusion: input IR, pipeline, output IR and the op counts. Checks on the
/// interpreter, with `dims` binding the symbols, that the outputs agree within `tol`.
pub fn check(text: &str, dims: &[(&str, i64)], tol: f64) -> String {
    check_with(text, PIPELINE, dims, 4, tol)
}

/// [`check`] on the graph as the ONNX frontend would build it: every node's types inferred
/// from its op and inputs alone. The text's declared types pin dims that depend on data at
/// run time (a parsed node keeps a declared dim where inference cannot tell), which an
/// imported model has no way to do; so a test of what canonicalize decides forgets them.
pub fn check_as_imported(text: &str, dims: &[(&str, i64)], tol: f64) -> String {
    let mut g = graph(text);
    for id in g.node_ids() {
        if g.node(id).op != kiln_ir::graph::INPUT_OP {
            g.node_mut(id).outputs.clear();
        }
    }
    kiln_ir::infer::infer_graph(&mut g).unwrap_or_else(|e| panic!("{e}"));
    check_graph(g, text, PIPELINE, dims, 4, tol)
}

pub fn check_with(
    text: &str,
    pipeline: &str,
    dims: &[(&str, i64)],
    int_range: i64,
    tol: f64,
) -> String {
    check_graph(graph(text), text, pipeline, dims, int_range, tol)
}

/// [`check_with`] on `g`, parsed from `text` (which the snapshot shows).
fn check_graph(
    g: Graph,
    text: &str,
    pipeline: &str,
    dims: &[(&str, i64)],
    int_range: i64,
    tol: f64,
) -> String {
    let (fused, report) = fuse(&g, pipeline);
    let out = print(&fused);
    assert_eq!(
        print(&parse(&out).unwrap()),
        out,
        "output does not read back"
    );
    let feeds = inputs(&g, dims, int_range);
    let d = max_difference(&g, &fused, &feeds);
    assert!(
        d <= tol,
        "fused graph differs from the original by {d} (tolerance {tol})"
    );
    let rules: Vec<String> = report
        .rules
        .iter()
        .filter(|(_, r)| r.matched > 0)
        .map(|(n, r)| format!("{n}: matched {}, applied {}", r.matched, r.applied))
        .collect();
    format!(
        "{}\n// ----- {pipeline} ----->\n// {}\n\n{out}",
        print(&parse(text).unwrap()),
        if rules.is_empty() {
            "no fusion".to_string()
        } else {
            rules.join("; ")
        }
    )
}
