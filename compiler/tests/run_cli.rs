//! `kiln run` from the outside: bad input from a user is a one-line error and a non-zero
//! exit, never a panic.

use std::path::PathBuf;
use std::process::Command;

fn example(rel: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/tiny_block")
        .join(rel)
        .display()
        .to_string()
}

/// Runs `kiln run` and returns its stderr, asserting it failed with exit code 1.
fn fails(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("run")
        .args(args)
        .output()
        .expect("kiln starts");
    assert_eq!(out.status.code(), Some(1), "kiln run {args:?} should fail");
    let err = String::from_utf8(out.stderr).expect("utf-8");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err.trim_end().to_string()
}

#[test]
fn bad_inputs_are_one_line_errors() {
    let model = example("model.onnx");
    let ids = format!("ids={}", example("inputs/ids.npy"));
    assert_eq!(
        fails(&[&model]),
        "error: input \"ids\" is missing (i64[1, seq])"
    );
    let wrong_dtype = format!("ids={}", example("outputs/logits.npy"));
    assert_eq!(
        fails(&[&model, "--input", &wrong_dtype]),
        "error: input \"ids\" has dtype f32, the graph expects i64"
    );
    let wrong_name = format!("tokens={}", example("inputs/ids.npy"));
    assert_eq!(
        fails(&[&model, "--input", &ids, "--input", &wrong_name]),
        "error: the graph has no input named \"tokens\" (its inputs: ids)"
    );
    assert_eq!(
        fails(&[&model, "--input", "ids"]),
        "error: --input ids: expected NAME=FILE.npy"
    );
    assert_eq!(
        fails(&[&model, "--input", &ids, "--input", &ids]),
        "error: --input ids is given twice"
    );
    assert_eq!(
        fails(&["/nonexistent/model.onnx"]),
        "error: /nonexistent/model.onnx: No such file or directory (os error 2)"
    );
    assert_eq!(
        fails(&["model.txt"]),
        "error: model.txt: unknown input kind: expected a .onnx model or a .kir IR file"
    );
}
