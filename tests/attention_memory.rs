//! Acceptance (issue 4): fused attention runs in memory linear in the sequence length.
//!
//! One attention layer (q/k/v projections, kiln's fused causal `attention`, output
//! projection) is compiled for seq 1024, 2048 and 4096, one artifact each (the arena is
//! planned for its exact size). For each: no arena buffer is as big as one seq x seq f32
//! matrix, and the arena grows linearly; then the artifact runs in a fresh process (this
//! test binary again) whose peak resident set (VmHWM) is read from /proc/self/status. The
//! peaks must grow linearly: doubling seq from 2048 to 4096 adds about twice what doubling
//! from 1024 to 2048 did (a seq x seq buffer would make it four times), and far less than
//! one 4096 x 4096 score matrix per head would.
//!
//! Ignored (three compiles and runs at up to seq 4096: seconds in release, far longer in a
//! debug build): `cargo test --release -p kiln-tests --test attention_memory -- --ignored
//! --nocapture`

#[path = "support/compile.rs"]
mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use kiln_compiler::backend;
use kiln_compiler::passes::{PassContext, PassManager};
use kiln_ir::{DType, Tensor};
use kiln_runtime::{Model, ModelOptions};
use kiln_targets::cpu::codegen::isa::CpuFeatures;

const HIDDEN: usize = 256;
const HEADS: usize = 4;
const HEAD_DIM: usize = 64;
const SEQS: [usize; 3] = [1024, 2048, 4096];
/// Set in the child process: the artifact to run, and its sequence length.
const CHILD_ARTIFACT: &str = "KILN_ATTENTION_MEMORY_ARTIFACT";
const CHILD_SEQ: &str = "KILN_ATTENTION_MEMORY_SEQ";
const TEST_NAME: &str = "fused_attention_memory_is_linear_in_seq";

fn layer_text() -> String {
    let (h, n, d) = (HIDDEN, HEADS, HEAD_DIM);
    let proj = |name: &str| {
        format!(
            "  %{name}0 = MatMul(%x, %w{name}) : f32[1, seq, {h}]
  %{name}1 = Reshape(%{name}0, %heads) {{allowzero = 0}} : f32[1, seq, {n}, {d}]
  %{name} = Transpose(%{name}1) {{perm = [0, 2, 1, 3]}} : f32[1, {n}, seq, {d}]
"
        )
    };
    format!(
        "graph @attention_layer(%x: f32[1, seq, {h}]) -> (y: f32[1, seq, {h}]) {{
  %wq = constant {{value = @weight(\"wq\")}} : f32[{h}, {h}]
  %wk = constant {{value = @weight(\"wk\")}} : f32[{h}, {h}]
  %wv = constant {{value = @weight(\"wv\")}} : f32[{h}, {h}]
  %wo = constant {{value = @weight(\"wo\")}} : f32[{h}, {h}]
  %heads = constant {{value = dense<i64[4]>[1, -1, {n}, {d}]}} : i64[4]
  %merged = constant {{value = dense<i64[3]>[1, -1, {h}]}} : i64[3]
{q}{k}{v}  %a = attention(%q, %k, %v) {{causal = 1}} : f32[1, {n}, seq, {d}]
  %a1 = Transpose(%a) {{perm = [0, 2, 1, 3]}} : f32[1, seq, {n}, {d}]
  %a2 = Reshape(%a1, %merged) {{allowzero = 0}} : f32[1, seq, {h}]
  %y = MatMul(%a2, %wo) : f32[1, seq, {h}]
  return %y
}}
",
        q = proj("q"),
        k = proj("k"),
        v = proj("v"),
    )
}

/// Small seeded weights (scaled so that the logits stay moderate).
fn weight(seed: u64, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let v: Vec<f64> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) / (HIDDEN as f64).sqrt()
        })
        .collect();
    Tensor::from_f64(DType::F32, shape.to_vec(), &v)
}

/// Compiles the layer for exactly `seq` tokens; returns the artifact's path.
fn compile(seq: usize, dir: &Path) -> PathBuf {
    let mut g = kiln_ir::text::parse(&layer_text()).expect("the layer parses");
    for (i, name) in ["wq", "wk", "wv", "wo"].iter().enumerate() {
        g.weights
            .set(name, Arc::new(weight(i as u64 + 1, &[HIDDEN, HIDDEN])));
    }
    let pm = PassManager::parse(backend::DEFAULT_PIPELINE).expect("the default pipeline parses");
    let bounds = HashMap::from([("seq".to_string(), (seq as i64, seq as i64))]);
    let art = backend::compile_cpu(
        &mut g,
        &pm,
        &mut PassContext::new(),
        bounds,
        CpuFeatures::host(),
    )
    .unwrap_or_else(|e| panic!("compile at seq {seq}: {e}"));
    let ops: Vec<&str> = g
        .node_ids()
        .into_iter()
        .map(|id| g.node(id).op.as_str())
        .collect();
    assert_eq!(
        ops.iter().filter(|&&o| o == "attention").count(),
        1,
        "the compiled graph keeps one fused attention: {ops:?}"
    );
    let path = dir.join(format!("attention_{seq}.kiln"));
    art.write(&path).expect("the artifact is written");
    path
}

/// The artifact's arena size and its biggest buffer (name, bytes), from its manifest.
fn arena(path: &Path) -> (u64, String, u64) {
    let model = Model::load(path).expect("the artifact loads");
    let a = &model.manifest().arena;
    let big = a
        .buffers
        .iter()
        .max_by_key(|b| b.max_bytes)
        .expect("the arena has buffers");
    (a.bytes, big.name.clone(), big.max_bytes)
}

/// A `kB` field of /proc/self/status, in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status reads");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"));
    let kb: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("a number of kB");
    kb * 1024
}

/// In the child process: loads and runs the artifact once, prints the peak resident set.
fn child(path: &str, seq: usize) {
    let model = Model::load_with(
        Path::new(path),
        &ModelOptions {
            threads: 2,
            features: None,
        },
    )
    .expect("the artifact loads");
    let x: Vec<f32> = (0..seq * HIDDEN)
        .map(|i| (i * 7919 % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let x = kiln_runtime::Tensor::from_slice(&[1, seq, HIDDEN], &x).expect("x matches its shape");
    let before = status_bytes("VmHWM:");
    let out = model.run(&[x]).expect("the layer runs");
    let y = out[0].as_slice::<f32>().expect("y is f32");
    assert_eq!(out[0].shape(), [1, seq, HIDDEN]);
    assert!(y.iter().all(|v| v.is_finite()) && y.iter().any(|&v| v != 0.0));
    println!(
        "child: seq {seq} peak-before-run {before} peak {}",
        status_bytes("VmHWM:")
    );
}

/// Runs the artifact in a fresh process; returns its peak resident set in bytes.
fn peak_rss(path: &Path, seq: usize) -> u64 {
    let out = Command::new(std::env::current_exe().expect("the test binary's path"))
        .args([TEST_NAME, "--exact", "--ignored", "--nocapture"])
        .env(CHILD_ARTIFACT, path)
        .env(CHILD_SEQ, seq.to_string())
        .output()
        .expect("the child process starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child at seq {seq} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("child: "))
        .unwrap_or_else(|| panic!("the child printed its peak:\n{stdout}"));
    line.rsplit(' ').next().unwrap().parse().expect("a number")
}

#[test]
#[ignore = "runs attention at seq 4096 in child processes; run with --release --ignored"]
fn fused_attention_memory_is_linear_in_seq() {
    if let Ok(path) = std::env::var(CHILD_ARTIFACT) {
        let seq = std::env::var(CHILD_SEQ)
            .expect("the child's seq")
            .parse()
            .expect("a number");
        return child(&path, seq);
    }
    let dir = std::env::temp_dir().join(format!("kiln-attention-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let mut arenas = Vec::new();
    let mut peaks = Vec::new();
    for seq in SEQS {
        let path = compile(seq, &dir);
        let (bytes, big, big_bytes) = arena(&path);
        let square = (seq * seq * 4) as u64;
        assert!(
            big_bytes < square,
            "seq {seq}: arena buffer {big} ({big_bytes} bytes) is as big as a seq x seq f32 matrix"
        );
        let peak = peak_rss(&path, seq);
        eprintln!(
            "seq {seq:>4}: arena {:7.2} MiB (biggest buffer {big}: {:.2} MiB; one seq x seq f32 matrix: {:.0} MiB), peak RSS {:7.2} MiB",
            mib(bytes),
            mib(big_bytes),
            mib(square),
            mib(peak)
        );
        arenas.push(bytes as f64);
        peaks.push(peak as f64);
    }
    let _ = std::fs::remove_dir_all(&dir);
    for w in arenas.windows(2) {
        assert!(
            w[1] <= 2.2 * w[0],
            "the arena more than doubles with seq: {arenas:?}"
        );
    }
    let (first, second) = (peaks[1] - peaks[0], peaks[2] - peaks[1]);
    eprintln!(
        "peak RSS growth: 1024 -> 2048 {:.2} MiB, 2048 -> 4096 {:.2} MiB (ratio {:.2}; linear 2, quadratic 4)",
        mib(first as u64),
        mib(second as u64),
        second / first
    );
    assert!(
        second <= 2.6 * first.max(1.0),
        "peak RSS grows faster than linearly: {peaks:?}"
    );
    let scores = (HEADS * 4096 * 4096 * 4) as f64;
    assert!(
        peaks[2] - peaks[0] < scores,
        "peak RSS grew {} bytes from seq 1024 to 4096, as much as the {HEADS} heads' score matrices",
        peaks[2] - peaks[0]
    );
}
