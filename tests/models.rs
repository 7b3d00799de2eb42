//! Every model case runs on the reference interpreter and matches its reference outputs
//! within the tolerance its info.json gives.

use kiln_compiler::conformance::compare;
use kiln_compiler::driver::load_model;
use kiln_tests::model_cases;

fn max_abs_error(a: &kiln_ir::Tensor, b: &kiln_ir::Tensor) -> f64 {
    a.to_f64()
        .iter()
        .zip(b.to_f64())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn every_model_matches_its_reference_on_the_interpreter() {
    let cases = model_cases();
    let mut failures = Vec::new();
    for case in &cases {
        let result = load_model(&case.model())
            .map_err(|e| e.to_string())
            .and_then(|g| kiln_ir::interp::run(&g, &case.inputs()).map_err(|e| e.to_string()));
        let outputs = match result {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{}: {e}", case.name));
                continue;
            }
        };
        for (name, want) in case.outputs() {
            let got = outputs.iter().find(|(n, _)| *n == name).map(|(_, t)| t);
            let verdict = match got {
                None => Err("not produced".to_string()),
                Some(got) => compare(&want, got, case.rtol, case.atol),
            };
            match verdict {
                Ok(()) => eprintln!(
                    "ok   {:<22} {name:<18} max abs error {:.2e} (atol {:e}, rtol {:e})",
                    case.name,
                    max_abs_error(&want, got.expect("compared, so present")),
                    case.atol,
                    case.rtol
                ),
                Err(e) => failures.push(format!("{} output {name}: {e}", case.name)),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{} model cases match their references", cases.len());
}

/// The README's quick-start example gives ONNX Runtime's logits.
#[test]
fn bundled_example_matches_onnx_runtime() {
    let dir = kiln_tests::repo_root().join("examples/tiny_block");
    let case = kiln_tests::ModelCase {
        name: "tiny_block".into(),
        dir,
        atol: 1e-4,
        rtol: 1e-4,
    };
    let g = load_model(&case.model()).unwrap_or_else(|e| panic!("{e}"));
    let out = kiln_ir::interp::run(&g, &case.inputs()).unwrap_or_else(|e| panic!("{e}"));
    let (name, want) = &case.outputs()[0];
    assert_eq!(out[0].0, *name);
    compare(want, &out[0].1, case.rtol, case.atol).unwrap_or_else(|e| panic!("{e}"));
}
