//! The ONNX backend node tests: every case passes unless tests/onnx-node-expected-failures.txt
//! lists it, and every listed case still fails (so the list stays true).

use kiln_compiler::conformance::{list_cases, run_cases, ExpectedFailures, Outcome, Summary};
use kiln_tests::{repo_root, shared_dir};

/// The floor: at least this many of the 1,884 cases pass.
const MIN_PASSED: usize = 1300;

#[test]
fn onnx_node_tests_pass_except_the_listed_ones() {
    let Some(dir) = shared_dir("KILN_ONNX_NODE", "onnx-node") else {
        return;
    };
    let list_path = repo_root().join("tests/onnx-node-expected-failures.txt");
    let text = std::fs::read_to_string(&list_path)
        .unwrap_or_else(|e| panic!("{}: {e}", list_path.display()));
    let expected = ExpectedFailures::parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let names = list_cases(&dir, None).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let results = run_cases(&dir, &names, jobs, |_| {});
    let summary = Summary::of(&results, Some(&expected));
    let mut problems = Vec::new();
    for r in &results {
        if let Outcome::Fail(f) = &r.outcome {
            if !expected.contains(&r.name) {
                problems.push(format!("fails, not listed: {}: {f}", r.name));
            }
        }
    }
    for name in &summary.unexpected_passed {
        problems.push(format!("listed as an expected failure but passes: {name}"));
    }
    eprintln!("{}", summary.line());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        summary.passed >= MIN_PASSED,
        "only {} cases pass; the floor is {MIN_PASSED}",
        summary.passed
    );
}
