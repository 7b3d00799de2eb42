//! Every model case, compiled for this CPU with `kiln compile`'s defaults and run by
//! kiln-runtime, matches its reference outputs within the tolerance its info.json gives;
//! so does the bundled example. Each output's max error is printed beside its tolerance.

#[path = "support/compile.rs"]
mod support;

use kiln_compiler::backend;
use kiln_compiler::conformance::compare;
use kiln_runtime::{Model, ModelOptions};
use kiln_tests::{model_cases, ModelCase};

fn max_abs_error(a: &kiln_ir::Tensor, b: &kiln_ir::Tensor) -> f64 {
    a.to_f64()
        .iter()
        .zip(b.to_f64())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// Compiles, loads and runs one case; its failures (one line each) go to `failures`.
fn check(case: &ModelCase, failures: &mut Vec<String>) {
    let inputs = case.inputs();
    let fail = |failures: &mut Vec<String>, what: String| {
        eprintln!("FAIL {:<22} {what}", case.name);
        failures.push(format!("{}: {what}", case.name));
    };
    let g = match kiln_compiler::driver::load_model(&case.model()) {
        Ok(g) => g,
        Err(e) => return fail(failures, format!("load: {e}")),
    };
    let sizes = support::symbol_sizes(&g, &inputs);
    drop(g);
    let (path, names, secs) = match support::compile_to_file(&case.model(), &sizes, &case.name) {
        Ok(x) => x,
        Err(e) => return fail(failures, format!("compile: {e}")),
    };
    let model = Model::load_with(
        &path,
        &ModelOptions {
            threads: 2,
            features: None,
        },
    );
    let _ = std::fs::remove_file(&path);
    let model = match model {
        Ok(m) => m,
        Err(e) => return fail(failures, format!("load: {e}")),
    };
    let mut ordered = Vec::new();
    for n in &names {
        match inputs.get(n) {
            Some(t) => ordered.push(backend::to_runtime(t)),
            None => return fail(failures, format!("no reference input {n}")),
        }
    }
    let start = std::time::Instant::now();
    let outs = match model.run(&ordered) {
        Ok(o) => o,
        Err(e) => return fail(failures, format!("run: {e}")),
    };
    let run_ms = start.elapsed().as_secs_f64() * 1e3;
    eprintln!(
        "ran  {:<22} compiled in {secs:.1} s, first run {run_ms:.1} ms",
        case.name
    );
    let got: Vec<(String, kiln_ir::Tensor)> = model
        .manifest()
        .outputs
        .iter()
        .zip(&outs)
        .filter_map(|(s, t)| Some((s.name.clone(), backend::from_runtime(t).ok()?)))
        .collect();
    for (name, want) in case.outputs() {
        let Some((_, got)) = got.iter().find(|(n, _)| *n == name) else {
            fail(failures, format!("output {name}: not produced"));
            continue;
        };
        let err = if want.shape() == got.shape() {
            format!("{:.2e}", max_abs_error(&want, got))
        } else {
            "-".into()
        };
        match compare(&want, got, case.rtol, case.atol) {
            Ok(()) => eprintln!(
                "ok   {:<22} {name:<18} max abs error {err} (atol {:e}, rtol {:e})",
                case.name, case.atol, case.rtol
            ),
            Err(e) => fail(
                failures,
                format!("output {name}: {e} (max abs error {err})"),
            ),
        }
    }
}

#[test]
fn every_model_compiled_matches_its_reference() {
    let cases = model_cases();
    let mut failures = Vec::new();
    for case in &cases {
        check(case, &mut failures);
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "{} compiled model cases match their references",
        cases.len()
    );
}

/// The README's example, compiled, gives ONNX Runtime's logits.
#[test]
fn bundled_example_compiled_matches_onnx_runtime() {
    let case = ModelCase {
        name: "tiny_block".into(),
        dir: kiln_tests::repo_root().join("examples/tiny_block"),
        atol: 1e-4,
        rtol: 1e-4,
    };
    let mut failures = Vec::new();
    check(&case, &mut failures);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Row `b` of `t`'s first axis, as a batch of one.
fn row(t: &kiln_ir::Tensor, b: usize) -> kiln_ir::Tensor {
    let mut shape = t.shape().to_vec();
    let n = t.to_le_bytes().len() / shape[0].max(1);
    shape[0] = 1;
    let bytes = &t.to_le_bytes()[b * n..(b + 1) * n];
    kiln_ir::Tensor::from_le_bytes(t.dtype(), shape, bytes).expect("a row fits")
}

/// MiniLM compiled for a batch of one (`--dim batch=1..1`, as it is benchmarked), where each
/// layer's Q, K and V projections are one GEMM step, matches its reference row by row.
#[test]
fn minilm_batch_of_one_merges_qkv_and_matches_each_row() {
    let Some(case) = model_cases().into_iter().find(|c| c.name == "minilm") else {
        eprintln!("SKIPPED: no minilm case among the shared models");
        return;
    };
    let inputs = case.inputs();
    let mut g = kiln_compiler::driver::load_model(&case.model()).unwrap();
    let names: Vec<String> = g
        .inputs()
        .iter()
        .map(|&v| g.input_name(v).unwrap_or_default().to_string())
        .collect();
    let seq = inputs["input_ids"].shape()[1] as i64;
    let bounds = [("batch".to_string(), (1, 1)), ("seq".to_string(), (1, seq))];
    let pm = kiln_compiler::passes::PassManager::parse(backend::DEFAULT_PIPELINE).unwrap();
    let art = backend::compile_cpu(
        &mut g,
        &pm,
        &mut kiln_compiler::passes::PassContext::new(),
        bounds.into_iter().collect(),
        kiln_targets::cpu::codegen::isa::CpuFeatures::host(),
    )
    .unwrap();
    let path = std::env::temp_dir().join(format!("kiln-minilm-b1-{}.kiln", std::process::id()));
    art.write(&path).unwrap();
    let model = Model::load_with(
        &path,
        &ModelOptions {
            threads: 2,
            features: None,
        },
    )
    .unwrap();
    let _ = std::fs::remove_file(&path);
    // Per layer: Q/K/V as one step, the output projection, the two FFN products.
    let steps = &model.manifest().steps;
    let count = |k: &str| steps.iter().filter(|s| s.kernel.contains(k)).count();
    let layers = count("helper attention");
    assert!(layers > 0);
    assert_eq!(count("helper gemm_f32"), 4 * layers);
    let (name, want) = &case.outputs()[0];
    for b in 0..inputs["input_ids"].shape()[0] {
        let ordered: Vec<_> = names
            .iter()
            .map(|n| backend::to_runtime(&row(&inputs[n], b)))
            .collect();
        let outs = model.run(&ordered).unwrap();
        let got = backend::from_runtime(&outs[0]).unwrap();
        compare(&row(want, b), &got, case.rtol, case.atol)
            .unwrap_or_else(|e| panic!("{name} row {b}: {e}"));
    }
}
