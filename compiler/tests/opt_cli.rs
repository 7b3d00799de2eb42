//! `kiln opt` from the outside: round trips through .kir files, printing, errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .output()
        .expect("kiln runs")
}

fn ok(args: &[&str]) -> String {
    let out = kiln(args);
    assert!(
        out.status.success(),
        "kiln {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-opt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `kiln opt model -o a.kir && kiln opt a.kir -o b.kir && cmp a.kir b.kir` (weights too);
/// returns a.kir's text.
fn roundtrip(model: &Path, dir: &Path) -> String {
    let a = dir.join("a.kir");
    let b = dir.join("b.kir");
    ok(&["opt", model.to_str().unwrap(), "-o", a.to_str().unwrap()]);
    ok(&["opt", a.to_str().unwrap(), "-o", b.to_str().unwrap()]);
    let ta = std::fs::read_to_string(&a).unwrap();
    assert_eq!(
        ta,
        std::fs::read_to_string(&b).unwrap(),
        "{}",
        model.display()
    );
    let (wa, wb) = (dir.join("a.kir.weights"), dir.join("b.kir.weights"));
    assert_eq!(wa.exists(), wb.exists());
    if wa.exists() {
        assert!(std::fs::read(&wa).unwrap() == std::fs::read(&wb).unwrap());
    }
    // Printing to stdout gives the same text as -o.
    assert_eq!(ok(&["opt", a.to_str().unwrap()]), ta);
    ta
}

#[test]
fn example_model_roundtrips_byte_for_byte() {
    let dir = temp_dir("example");
    let text = roundtrip(&repo().join("examples/tiny_block/model.onnx"), &dir);
    assert!(text.starts_with("graph @"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every model of the zoo (`${KILN_MODELS:-../shared/models}`) the frontend imports: .kir
/// round trips are byte-identical and canonicalize leaves no Shape computations behind.
#[test]
fn zoo_models_roundtrip_and_lose_their_shape_chains() {
    let zoo = std::env::var_os("KILN_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/models"));
    let entries = std::fs::read_dir(&zoo).unwrap_or_else(|e| {
        panic!(
            "no model zoo at {} ({e}): set KILN_MODELS to its folder",
            zoo.display()
        )
    });
    let mut models: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path().join("model.onnx"))
        .filter(|p| p.exists())
        .collect();
    models.sort();
    let mut done = 0;
    for model in models {
        let name = model
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        // Models the frontend cannot import yet are the frontend's to report.
        let probe = kiln(&["opt", model.to_str().unwrap(), "--passes", ""]);
        if !probe.status.success() {
            eprintln!(
                "{name}: not imported: {}",
                String::from_utf8_lossy(&probe.stderr).trim()
            );
            continue;
        }
        let dir = temp_dir(&name);
        let text = roundtrip(&model, &dir);
        assert!(
            !text.contains(" = Shape("),
            "{name}: a Shape survived canonicalize"
        );
        let _ = std::fs::remove_dir_all(&dir);
        done += 1;
    }
    assert!(done > 0, "no zoo model imported");
}

#[test]
fn prints_after_passes_then_the_final_ir() {
    let dir = temp_dir("print");
    let a = dir.join("a.kir");
    std::fs::write(
        &a,
        "graph @g(%x: f32[2]) -> (y: f32[2]) {\n  %0 = Identity(%x) : f32[2]\n  %1 = Identity(%0) : f32[2]\n  return %1\n}\n",
    )
    .unwrap();
    let stats = dir.join("stats.json");
    let out = ok(&[
        "opt",
        a.to_str().unwrap(),
        "--passes",
        "simplify,dce",
        "--print-after",
        "simplify",
        "--stats",
        stats.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(&stats).unwrap(),
        "{\n  \"simplify/identity\": {\n    \"matched\": 2,\n    \"applied\": 2\n  }\n}\n"
    );
    assert_eq!(
        out,
        "// ----- IR after simplify -----\ngraph @g(%x: f32[2]) -> (y: f32[2]) {\n  return %x\n}\ngraph @g(%x: f32[2]) -> (y: f32[2]) {\n  return %x\n}\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn lists_passes_and_rejects_unknown_ones() {
    let list = ok(&["opt", "--list-passes"]);
    let names: Vec<&str> = list
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    let registered: Vec<&str> = kiln_compiler::passes::PASSES
        .iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, registered);
    for name in ["canonicalize", "fuse", "fuse-rms-norm", "simplify"] {
        assert!(names.contains(&name), "{name} is not listed");
    }
    let out = kiln(&["opt", "x.kir", "--passes", "cse,fold"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!(
            "error: unknown pass `fold` (known passes: {})",
            registered.join(", ")
        )
    );
    let out = kiln(&["opt", "x.kir", "--print-before", "canonicalise"]);
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("--print-before: unknown pass `canonicalise`"));
}

#[test]
fn parse_errors_point_into_the_file() {
    let dir = temp_dir("parse");
    let a = dir.join("bad.kir");
    std::fs::write(
        &a,
        "graph @g() -> () {\n  %0 = Frob() : f32[]\n  return\n}\n",
    )
    .unwrap();
    let out = kiln(&["opt", a.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.trim().ends_with("bad.kir:2:8: unknown op `Frob`"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

const RMS_NORM: &str = "graph @g(%x: f32[2, 8], %w: f32[8]) -> (y: f32[2, 8]) {
  %axes = constant {value = dense<i64[1]>[-1]} : i64[1]
  %eps = constant {value = dense<f32[]>[1e-6]} : f32[]
  %0 = Mul(%x, %x) : f32[2, 8]
  %1 = ReduceMean(%0, %axes) {keepdims = 1} : f32[2, 1]
  %2 = Add(%1, %eps) : f32[2, 1]
  %3 = Sqrt(%2) : f32[2, 1]
  %4 = Div(%x, %3) : f32[2, 8]
  %5 = Mul(%4, %w) : f32[2, 8]
  return %5
}
";

#[test]
fn fusion_report_names_regions_and_disable_rule_keeps_them() {
    let dir = temp_dir("fusion-report");
    let a = dir.join("a.kir");
    std::fs::write(&a, RMS_NORM).unwrap();
    let report = dir.join("r.json");
    let out = ok(&[
        "opt",
        a.to_str().unwrap(),
        "--fusion-report",
        report.to_str().unwrap(),
    ]);
    assert!(
        out.contains("= rms_norm(%x, %w) {axis = -1, eps = 1e-6}"),
        "{out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["rules"]["fuse-rms-norm"]["matched"], 1);
    assert_eq!(json["rules"]["fuse-rms-norm"]["applied"], 1);
    assert_eq!(
        json["rules"]["fuse-rms-norm"]["regions"][0],
        serde_json::json!({"form": "div-sqrt", "applied": true,
            "nodes": ["Mul", "Div", "Sqrt", "Add", "ReduceMean", "Mul"]})
    );
    assert_eq!(json["ops"], serde_json::json!({"rms_norm": 1}));

    let out = ok(&[
        "opt",
        a.to_str().unwrap(),
        "--disable-rule",
        "fuse-rms-norm",
        "--fusion-report",
        report.to_str().unwrap(),
    ]);
    assert!(!out.contains("rms_norm"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["rules"]["fuse-rms-norm"]["matched"], 1);
    assert_eq!(json["rules"]["fuse-rms-norm"]["applied"], 0);
    assert_eq!(json["ops"]["Sqrt"], 1);

    let bad = kiln(&["opt", a.to_str().unwrap(), "--disable-rule", "fuse-rms"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.trim().starts_with(
            "error: --disable-rule: unknown fusion rule `fuse-rms` (fusion rules: fuse-rms-norm"
        ),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
