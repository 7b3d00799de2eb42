//! One loaded model run from several threads at once gives, run after run, exactly the
//! outputs a single-threaded run gives: every run has its own arena and frame.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use kiln_compiler::backend;
use kiln_compiler::passes::{PassContext, PassManager};
use kiln_runtime::{Model, ModelOptions, Tensor};
use kiln_targets::cpu::codegen::isa::CpuFeatures;

const THREADS: usize = 4;
const RUNS: usize = 200;

/// Deterministic floats in [-1, 1).
fn floats(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn dense(shape: &[usize], seed: u64) -> String {
    let n: usize = shape.iter().product();
    let mut s = String::new();
    for (i, v) in floats(n, seed).iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "{v:?}");
    }
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("dense<f32[{}]>[{s}]", dims.join(", "))
}

/// Compiles `text` for this CPU and loads it with `threads` worker threads.
fn load(name: &str, text: &str, threads: usize) -> Model {
    let mut g = kiln_ir::text::parse(text).unwrap_or_else(|e| panic!("{e}"));
    let pm = PassManager::parse(backend::DEFAULT_PIPELINE).unwrap();
    let art = backend::compile_cpu(
        &mut g,
        &pm,
        &mut PassContext::new(),
        HashMap::new(),
        CpuFeatures::host(),
    )
    .unwrap_or_else(|e| panic!("compile: {e}"));
    let dir = std::env::temp_dir().join(format!("kiln-concurrency-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.kiln"));
    art.write(&path).unwrap();
    let model = Model::load_with(
        &path,
        &ModelOptions {
            threads,
            features: None,
        },
    )
    .unwrap_or_else(|e| panic!("load: {e}"));
    let _ = std::fs::remove_file(&path);
    model
}

/// Runs `model` on every input set once single-threaded, then from THREADS threads RUNS
/// times each (thread t cycling through the sets from set t), and compares bit for bit.
fn hammer(model: Model, sets: Vec<Vec<Tensor>>) {
    let want: Vec<Vec<Tensor>> = sets
        .iter()
        .map(|s| model.run(s).unwrap_or_else(|e| panic!("run: {e}")))
        .collect();
    let model = Arc::new(model);
    let sets = Arc::new(sets);
    let want = Arc::new(want);
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (model, sets, want) = (model.clone(), sets.clone(), want.clone());
            std::thread::spawn(move || {
                for r in 0..RUNS {
                    let k = (t + r) % sets.len();
                    let got = model.run(&sets[k]).unwrap_or_else(|e| panic!("run: {e}"));
                    for (o, (g, w)) in got.iter().zip(&want[k]).enumerate() {
                        assert!(
                            g.shape() == w.shape() && g.bytes() == w.bytes(),
                            "thread {t} run {r}: output {o} of input set {k} differs"
                        );
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("a thread failed");
    }
}

/// Views, copies and a dims write: what every artifact does around its kernels.
#[test]
fn views_and_copies_from_four_threads() {
    let model = load(
        "views",
        "graph @v(%x: f32[2, seq]) -> (y: f32[seq, 2], z: f32[2, seq], d: i64[2]) {
           %0 = dims {value = dims<[seq, 2]>} : i64[2]
           %1 = Reshape(%x, %0) : f32[seq, 2]
           return %1, %x, %0
         }",
        2,
    );
    let sets = [37usize, 1, 64, 500]
        .iter()
        .enumerate()
        .map(|(i, &seq)| vec![Tensor::from_slice(&[2, seq], &floats(2 * seq, i as u64)).unwrap()])
        .collect();
    hammer(model, sets);
}

/// `softmax(x @ W + b) @ v + r`: a packed-weight GEMM, a GEMM on an input, softmax and
/// broadcasting adds, at four sequence lengths, with two worker threads shared by all runs.
#[test]
fn matmul_softmax_add_from_four_threads() {
    let text = format!(
        "graph @c(%x: f32[seq, 64], %v: f32[48, 32], %r: f32[seq, 32]) -> (y: f32[seq, 32]) {{
           %0 = constant {{value = {w}}} : f32[64, 48]
           %1 = constant {{value = {b}}} : f32[48]
           %2 = MatMul(%x, %0) : f32[seq, 48]
           %3 = Add(%2, %1) : f32[seq, 48]
           %4 = Softmax(%3) {{axis = -1}} : f32[seq, 48]
           %5 = MatMul(%4, %v) : f32[seq, 32]
           %6 = Add(%5, %r) : f32[seq, 32]
           return %6
         }}",
        w = dense(&[64, 48], 11),
        b = dense(&[48], 12),
    );
    let model = load("compute", &text, 2);
    let sets = [37usize, 1, 128, 301]
        .iter()
        .enumerate()
        .map(|(i, &seq)| {
            let s = 100 * i as u64;
            vec![
                Tensor::from_slice(&[seq, 64], &floats(seq * 64, s)).unwrap(),
                Tensor::from_slice(&[48, 32], &floats(48 * 32, s + 1)).unwrap(),
                Tensor::from_slice(&[seq, 32], &floats(seq * 32, s + 2)).unwrap(),
            ]
        })
        .collect();
    hammer(model, sets);
}
