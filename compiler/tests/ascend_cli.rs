//! `kiln compile --target ascend*` and `kiln run --profile` through the `kiln` binary: static
//! shapes (every symbolic dim named when one is missing), the help that says so, and a
//! compiled launch list that runs on the device model, prices its kernels and matches the
//! reference interpreter.

use std::path::PathBuf;
use std::process::{Command, Output};

use kiln_compiler::npy;
use kiln_ir::Tensor;

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .output()
        .expect("the kiln binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// A projection with two symbolic dims, written to a fresh folder; returns (folder, model).
fn model(name: &str) -> (PathBuf, String) {
    let d = std::env::temp_dir().join(format!("kiln-ascend-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let w: Vec<String> = (0..16 * 8)
        .map(|i| format!("{}", ((i * 7) % 13) as f32 / 13.0 - 0.5))
        .collect();
    let kir = d.join("proj.kir");
    std::fs::write(
        &kir,
        format!(
            "graph @proj(%x: f32[batch, seq, 16]) -> (y: f32[batch, seq, 8]) {{
               %w = constant {{value = dense<f32[16, 8]>[{}]}} : f32[16, 8]
               %0 = MatMul(%x, %w) : f32[batch, seq, 8]
               return %0
             }}",
            w.join(", ")
        ),
    )
    .unwrap();
    (d, kir.to_string_lossy().to_string())
}

/// The last stderr line of a failing run, without its `error: ` prefix.
fn error(args: &[&str]) -> String {
    let o = kiln(args);
    assert!(!o.status.success(), "kiln {args:?} succeeded");
    let err = text(&o.stderr);
    let last = err.lines().last().unwrap_or_default();
    last.strip_prefix("error: ")
        .unwrap_or_else(|| panic!("kiln {args:?}: no `error: ` line: {err}"))
        .to_string()
}

#[test]
fn without_dims_the_error_names_every_dim() {
    let (d, kir) = model("nodims");
    let out = d.join("p.kiln").to_string_lossy().to_string();
    let base = ["compile", &kir, "-o", &out, "--target", "ascend910b2"];
    assert_eq!(
        error(&base),
        "an Ascend launch list has static shapes: give --dim batch=N --dim seq=N"
    );
    assert_eq!(
        error(&[&base[..], &["--dim", "seq=4"]].concat()),
        "an Ascend launch list has static shapes: give --dim batch=N"
    );
    assert_eq!(
        error(&[&base[..], &["--dim", "batch=2", "--dim", "seq=1..4"]].concat()),
        "--dim seq=1..4: an Ascend launch list has static shapes; give --dim seq=N"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn help_explains_static_shapes() {
    let o = kiln(&["compile", "--help"]);
    assert!(o.status.success());
    let help = text(&o.stdout);
    for want in [
        "its launch\n  list has static shapes",
        "Give every symbolic dim one size with --dim NAME=N",
        "--target ascend910b2 --dtype bf16 --dim seq=1",
    ] {
        assert!(
            help.contains(want),
            "`kiln compile --help` lacks {want:?}:\n{help}"
        );
    }
}

#[test]
fn compiled_runs_priced_and_matches_the_interpreter() {
    let (d, kir) = model("run");
    let art = d.join("p.kiln").to_string_lossy().to_string();
    let o = kiln(&[
        "compile",
        &kir,
        "-o",
        &art,
        "--target",
        "ascend910b2",
        "--dtype",
        "bf16",
        "--dim",
        "batch=2",
        "--dim",
        "seq=3",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let x: Vec<f32> = (0..2 * 3 * 16)
        .map(|i| (i % 11) as f32 / 11.0 - 0.5)
        .collect();
    let input = d.join("x.npy");
    npy::write(&input, &Tensor::from_f32s(vec![2, 3, 16], x).unwrap()).unwrap();
    let bind = format!("x={}", input.display());
    let (dev, int) = (d.join("dev"), d.join("int"));
    let o = kiln(&[
        "run",
        &art,
        "--input",
        &bind,
        "-o",
        &dev.to_string_lossy(),
        "--profile",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let report = text(&o.stdout);
    assert!(
        report.contains("estimated device time on ascend910b2: ") && report.contains("MatMulV3"),
        "{report}"
    );
    let o = kiln(&["run", &kir, "--input", &bind, "-o", &int.to_string_lossy()]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let got = npy::read(&dev.join("y.npy")).unwrap();
    let want = npy::read(&int.join("y.npy")).unwrap();
    assert_eq!(got.shape(), &[2, 3, 8]);
    let scale = want.to_f64().iter().fold(0f64, |m, x| m.max(x.abs()));
    for (a, b) in want.to_f64().iter().zip(got.to_f64()) {
        assert!((a - b).abs() <= 2e-2 * scale, "want {a}, got {b}");
    }
    let _ = std::fs::remove_dir_all(&d);
}
