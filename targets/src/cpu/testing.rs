//! Test support: compile a graph written in kiln's text IR, run the artifact with
//! kiln-runtime, and compare every output with the reference interpreter's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use kiln_ir::{Graph, Tensor};
use kiln_runtime::{ElemType, Model, ModelOptions, Tensor as RtTensor};

use crate::cpu::codegen::isa::CpuFeatures;
use crate::cpu::{compile, CpuOptions};
use crate::error::TargetError;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Parses `text` and infers its types.
pub fn graph(text: &str) -> Graph {
    let mut g = kiln_ir::text::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    kiln_ir::infer::infer_graph(&mut g).unwrap_or_else(|e| panic!("{e}\n{text}"));
    g
}

fn to_runtime(t: &Tensor) -> RtTensor {
    let e = ElemType::from_name(t.dtype().name()).expect("runtime dtype");
    RtTensor::from_bytes(e, t.shape(), &t.to_le_bytes()).expect("bytes fit")
}

fn from_runtime(t: &RtTensor) -> Tensor {
    let d = kiln_ir::DType::ALL
        .into_iter()
        .find(|d| d.name() == t.dtype().name())
        .expect("ir dtype");
    Tensor::from_le_bytes(d, t.shape().to_vec(), t.bytes()).expect("bytes fit")
}

/// Compiles `g` for this CPU and loads it (one worker thread).
pub fn load(g: &Graph, features: CpuFeatures) -> Result<Model, TargetError> {
    let options = CpuOptions {
        features,
        bounds: HashMap::new(),
    };
    load_with(g, &options, 1)
}

/// Compiles `g` with `options` and loads it with `threads` worker threads.
pub fn load_with(g: &Graph, options: &CpuOptions, threads: usize) -> Result<Model, TargetError> {
    let art = compile(g, options)?;
    let dir = std::env::temp_dir().join(format!("kiln-targets-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(format!("{}.kiln", COUNTER.fetch_add(1, Ordering::SeqCst)));
    art.write(&path)?;
    let model = Model::load_with(
        &path,
        &ModelOptions {
            threads,
            features: None,
        },
    )
    .map_err(|e| TargetError::Artifact(e.to_string()));
    let _ = std::fs::remove_file(&path);
    model
}

/// Runs a loaded model on named inputs (in the graph's input order).
pub fn run(model: &Model, inputs: &[Tensor]) -> Vec<Tensor> {
    let rt: Vec<_> = inputs.iter().map(to_runtime).collect();
    let outs = model.run(&rt).unwrap_or_else(|e| panic!("run: {e}"));
    outs.iter().map(from_runtime).collect()
}

/// The reference interpreter's outputs (name, tensor) for `g` on `inputs`, given in the
/// order of `g`'s inputs.
pub fn interpret(g: &Graph, inputs: &[Tensor]) -> Vec<(String, Tensor)> {
    let named: HashMap<String, Tensor> = g
        .inputs()
        .iter()
        .map(|&v| g.input_name(v).expect("named input").to_string())
        .zip(inputs.iter().cloned())
        .collect();
    kiln_ir::interp::run(g, &named).unwrap_or_else(|e| panic!("interpreter: {e}"))
}

/// A `dense<f32[shape]>[...]` literal of [`floats`]`(shape, seed)`.
pub fn dense(shape: &[usize], seed: u64) -> String {
    let v: Vec<String> = floats(shape, seed)
        .to_f64()
        .iter()
        .map(|x| format!("{:?}", *x as f32))
        .collect();
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("dense<f32[{}]>[{}]", dims.join(", "), v.join(", "))
}

/// Compiles the graph in `text`, runs it on `inputs` compiled and interpreted, and asserts
/// every output matches: same dtype and shape; integers and bools exactly; floats within
/// `|got - want| <= atol + rtol * |want|` (NaN equals NaN).
pub fn check(text: &str, inputs: &[Tensor], rtol: f64, atol: f64) {
    let g = graph(text);
    let want = interpret(&g, inputs);
    let model = load(&g, CpuFeatures::host()).unwrap_or_else(|e| panic!("compile: {e}\n{text}"));
    let got = run(&model, inputs);
    assert_eq!(got.len(), want.len());
    for ((name, w), g) in want.iter().zip(&got) {
        assert_eq!(w.dtype(), g.dtype(), "output {name}: dtype");
        assert_eq!(w.shape(), g.shape(), "output {name}: shape");
        if w.dtype().is_float() {
            for (i, (a, b)) in w.to_f64().iter().zip(g.to_f64()).enumerate() {
                let ok =
                    (a.is_nan() && b.is_nan()) || a == &b || (a - b).abs() <= atol + rtol * a.abs();
                assert!(ok, "output {name}[{i}]: want {a}, got {b}\n{text}");
            }
        } else {
            assert_eq!(w.to_le_bytes(), g.to_le_bytes(), "output {name}\n{text}");
        }
    }
}

/// Deterministic pseudo-random floats in [-1, 1).
pub fn floats(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let v: Vec<f32> = (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_f32s(shape.to_vec(), v).expect("shape fits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_dims_and_outputs_that_are_inputs() {
        let x = floats(&[2, 3], 1);
        check(
            "graph @t(%x: f32[2, seq]) -> (y: f32[seq, 2], z: f32[2, seq], d: i64[2]) {
               %0 = dims {value = dims<[seq, 2]>} : i64[2]
               %1 = Reshape(%x, %0) : f32[seq, 2]
               return %1, %x, %0
             }",
            &[x],
            0.0,
            0.0,
        );
    }
}
