//! Every model case runs on the reference interpreter and matches its reference outputs
//! within the tolerance its info.json gives.

use kiln_compiler::conformance::compare;
use kiln_compiler::driver::load_model;
use kiln_tests::model_cases;

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
                Ok(()) => eprintln!("ok   {} {name}", case.name),
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
