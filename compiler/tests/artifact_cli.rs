//! The artifact commands end to end through the `kiln` binary: `compile`, `inspect`,
//! `bench`, and `run` on damaged artifacts (one `error:` line, a failing exit code).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .output()
        .expect("the kiln binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Runs kiln expecting success; returns stdout.
fn ok(args: &[&str]) -> String {
    let o = kiln(args);
    assert!(
        o.status.success(),
        "kiln {args:?} failed:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Runs kiln expecting failure with exactly one stderr line, `error: <msg>`; returns msg.
fn fails(args: &[&str]) -> String {
    let o = kiln(args);
    assert!(!o.status.success(), "kiln {args:?} succeeded");
    assert_ne!(o.status.code(), None, "kiln {args:?} was killed (crash?)");
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "kiln {args:?}: not one line:\n{err}");
    lines[0]
        .strip_prefix("error: ")
        .unwrap_or_else(|| panic!("kiln {args:?}: no `error: ` prefix: {err}"))
        .to_string()
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A small model (views and copies only) compiled to DIR/v.kiln; returns (kir, kiln).
fn compiled(d: &Path) -> (String, String) {
    let kir = d.join("v.kir");
    std::fs::write(
        &kir,
        "graph @views(%x: f32[2, seq], %ids: i64[seq]) -> (y: f32[seq, 2], z: f32[2, seq], w: i64[seq]) {
           %0 = dims {value = dims<[seq, 2]>} : i64[2]
           %1 = Reshape(%x, %0) : f32[seq, 2]
           return %1, %x, %ids
         }",
    )
    .unwrap();
    let out = d.join("v.kiln");
    let (kir, out) = (kir.display().to_string(), out.display().to_string());
    ok(&["compile", &kir, "-o", &out, "--dim", "seq=1..512"]);
    (kir, out)
}

#[test]
fn inspect_shows_the_artifact() {
    let d = dir("inspect");
    let (_, art) = compiled(&d);
    let text = ok(&["inspect", &art]);
    for want in [
        "format    version 1, target cpu-x86_64, manifest kiln-cpu-1",
        "graph     views",
        "this CPU has them all",
        "dims (bounds compiled for)\n  seq  1..512\n",
        "inputs\n  x    f32[2, seq]\n  ids  i64[seq]\n",
        "outputs\n  y  f32[seq, 2]\n  z  f32[2, seq]\n  w  i64[seq]\n",
        "kernel",
        "copy_bytes",
        "schedule: ",
        "memory: arena ",
        "weights: 0 tensors, 0 B",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let all = ok(&["inspect", &art, "--all"]);
    assert!(all.contains("  0  Reshape node"), "{all}");

    let json: serde_json::Value = serde_json::from_str(&ok(&["inspect", &art, "--json"])).unwrap();
    assert_eq!(json["header"]["format_version"], 1);
    assert_eq!(json["header"]["target"], "cpu-x86_64");
    assert_eq!(json["header"]["host_has_features"], true);
    assert_eq!(json["manifest"]["name"], "views");
    assert_eq!(json["manifest"]["symbols"][0]["max"], 512);
    assert_eq!(json["manifest"]["inputs"][1]["dtype"], "i64");
}

#[test]
fn bench_prints_a_median() {
    let d = dir("bench");
    let (kir, art) = compiled(&d);
    let check = |out: &str, runs: usize| {
        let line = out.trim_end();
        let rest = line
            .strip_prefix("median ")
            .unwrap_or_else(|| panic!("{line}"));
        assert!(rest.ends_with(&format!(", {runs} runs)")), "{line}");
        assert!(rest.contains(" ms (min "), "{line}");
    };
    check(
        &ok(&[
            "bench",
            &art,
            "--runs",
            "3",
            "--warmup",
            "1",
            "--threads",
            "1",
        ]),
        3,
    );
    check(&ok(&["bench", &kir, "--runs", "4", "--dim", "seq=7"]), 4);
    assert_eq!(
        fails(&["bench", &art, "--dim", "batch=2"]),
        "--dim batch: the model has no dim named `batch` (its dims: seq)"
    );
    assert_eq!(
        fails(&["bench", &art, "--dim", "seq=1000"]),
        "--dim seq=1000 is outside the bounds the model was compiled for (1..512)"
    );
    assert_eq!(
        fails(&["bench", &art, "--runs", "0"]),
        "--runs must be at least 1"
    );
}

#[test]
fn run_on_a_bad_artifact_is_one_error_line() {
    let d = dir("bad");
    let (_, art) = compiled(&d);
    let good = std::fs::read(&art).unwrap();
    let bad = d.join("bad.kiln");
    let bad_s = bad.display().to_string();
    let write = |bytes: &[u8]| std::fs::write(&bad, bytes).unwrap();

    write(b"not an artifact at all, but long enough to hold a header ......................................................");
    assert_eq!(fails(&["run", &bad_s]), "not a kiln artifact (bad magic)");
    assert_eq!(
        fails(&["inspect", &bad_s]),
        "not a kiln artifact (bad magic)"
    );

    write(&good[..100]);
    assert_eq!(
        fails(&["run", &bad_s]),
        "corrupt artifact: file is 100 bytes, shorter than the 128-byte header"
    );

    let mut b = good.clone();
    b[200] ^= 1;
    write(&b);
    let e = fails(&["run", &bad_s]);
    assert!(
        e.starts_with("corrupt artifact: checksum mismatch (file says ")
            && e.ends_with("): the file is damaged"),
        "{e}"
    );

    let mut b = good.clone();
    b[8] = 3;
    write(&b);
    assert_eq!(
        fails(&["run", &bad_s]),
        "artifact format version 3 is not supported (this runtime reads version 1)"
    );

    // Needing a CPU feature this machine lacks (a feature bit no CPU has, with the checksum
    // recomputed): inspect says so, run refuses.
    let mut b = good.clone();
    let need = u64::from_le_bytes(b[16..24].try_into().unwrap()) | 1 << 40;
    b[16..24].copy_from_slice(&need.to_le_bytes());
    b[72..80].fill(0);
    let code_at = u64::from_le_bytes(b[40..48].try_into().unwrap()) as usize;
    let code_len = u64::from_le_bytes(b[48..56].try_into().unwrap()) as usize;
    let manifest_len = u64::from_le_bytes(b[32..40].try_into().unwrap()) as usize;
    let sum = kiln_runtime::artifact::header::fnv1a64(&[
        &b[..128],
        &b[128..128 + manifest_len],
        &b[code_at..code_at + code_len],
    ]);
    b[72..80].copy_from_slice(&sum.to_le_bytes());
    write(&b);
    assert_eq!(
        fails(&["run", &bad_s]),
        "the artifact needs CPU features this machine lacks: unknown feature bits 0x10000000000"
    );
    let text = ok(&["inspect", &bad_s]);
    assert!(
        text.contains(
            "this CPU LACKS unknown feature bits 0x10000000000 (the artifact will not load here)"
        ),
        "{text}"
    );

    let missing = d.join("missing.kiln").display().to_string();
    assert_eq!(
        fails(&["run", &missing]),
        format!("{missing}: No such file or directory (os error 2)")
    );

    // A good artifact with a missing input.
    assert_eq!(
        fails(&["run", &art]),
        "input \"x\" is missing (f32[2, seq])"
    );
}
