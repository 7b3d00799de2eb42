//! The ONNX backend node tests, on the reference interpreter and compiled for this CPU: every
//! case passes unless the engine's expected-failures list names it, and every listed case
//! still fails (so the lists stay true).

use kiln_compiler::conformance::{
    list_cases, run_cases_with_timeout, Engine, ExpectedFailures, Outcome, Summary,
    DEFAULT_TIMEOUT,
};
use kiln_tests::{repo_root, shared_dir};

#[test]
fn onnx_node_tests_pass_on_the_interpreter_except_the_listed_ones() {
    check(Engine::Interpreter, "tests/onnx-node-expected-failures.txt", 1300);
}

#[test]
fn onnx_node_tests_pass_compiled_except_the_listed_ones() {
    check(Engine::Compiled, "tests/onnx-node-compiled-expected-failures.txt", 1250);
}

/// Runs the suite on `engine`, checks it against the list at `list`, and requires at least
/// `min_passed` passing cases (the issues' floors).
fn check(engine: Engine, list: &str, min_passed: usize) {
    let Some(dir) = shared_dir("KILN_ONNX_NODE", "onnx-node") else {
        return;
    };
    let list_path = repo_root().join(list);
    let text = std::fs::read_to_string(&list_path)
        .unwrap_or_else(|e| panic!("{}: {e}", list_path.display()));
    let expected = ExpectedFailures::parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let names = list_cases(&dir, None).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
    let results = run_cases_with_timeout(&dir, &names, jobs, DEFAULT_TIMEOUT, engine, |_| {});
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
    eprintln!("{engine:?}: {}", summary.line());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        summary.passed >= min_passed,
        "{engine:?}: only {} cases pass; the floor is {min_passed}",
        summary.passed
    );
}
