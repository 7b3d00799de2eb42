//! Bad artifacts and bad inputs give one-line errors, never a crash.
//!
//! The artifacts here are written by hand: a manifest and a code section holding a single
//! `ret` as the entry function, so the tests need no compiler. The runtime checks everything
//! below before it calls any code.

use std::path::{Path, PathBuf};

use kiln_runtime::artifact::header::{fnv1a64, HEADER_LEN};
use kiln_runtime::artifact::{write_artifact, ArtifactParts, Features, Target};
use kiln_runtime::model::manifest::{
    ArenaSpec, FunctionSpan, Manifest, SymbolSpec, TensorSpec, MANIFEST_FORMAT,
};
use kiln_runtime::model::DimExpr;
use kiln_runtime::{ElemType, Model, ModelOptions, RuntimeError, Tensor};

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-runtime-robustness-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn spec(name: &str, dtype: &str, shape: Vec<DimExpr>) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        dtype: dtype.into(),
        shape,
        index_range: None,
    }
}

/// x: f32[2, seq], ids: i64[seq] -> y: f32[seq], with seq in 1..16; the code does nothing.
fn manifest() -> Manifest {
    use DimExpr::{Const, Sym};
    Manifest {
        format: MANIFEST_FORMAT.into(),
        name: "t".into(),
        symbols: vec![SymbolSpec {
            name: "seq".into(),
            min: 1,
            max: 16,
        }],
        inputs: vec![
            spec("x", "f32", vec![Const(2), Sym(0)]),
            spec("ids", "i64", vec![Sym(0)]),
        ],
        outputs: vec![spec("y", "f32", vec![Sym(0)])],
        entry: FunctionSpan { offset: 0, len: 1 },
        kernels: vec![],
        helpers: vec![],
        arena: ArenaSpec {
            bytes: 0,
            buffers: vec![],
        },
        weights: vec![],
        steps: vec![],
    }
}

/// Writes an artifact with `manifest` (x86-64 `ret` as its code) needing `features`.
fn write(name: &str, manifest: &Manifest, features: Features) -> PathBuf {
    let path = dir().join(name);
    let json = serde_json::to_vec(manifest).unwrap();
    write_artifact(
        &path,
        &ArtifactParts {
            target: Target::CpuX86_64,
            features,
            manifest: &json,
            code: &[0xC3],
            weights: &[1u8; 100],
        },
    )
    .unwrap();
    path
}

fn good(name: &str) -> PathBuf {
    write(name, &manifest(), Features::NONE)
}

fn load_err(path: &Path) -> String {
    let msg = match Model::load(path) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e.to_string(),
    };
    assert!(!msg.contains('\n'), "not one line: {msg}");
    msg
}

/// Writes `bytes` as a file of its own and returns the error loading it gives.
fn load_bytes_err(name: &str, bytes: &[u8]) -> String {
    let path = dir().join(name);
    std::fs::write(&path, bytes).unwrap();
    load_err(&path)
}

#[test]
fn a_good_artifact_loads_and_runs() {
    let model = Model::load(&good("good.kiln")).unwrap();
    let x = Tensor::zeros(ElemType::F32, &[2, 5]);
    let ids = Tensor::zeros(ElemType::I64, &[5]);
    let out = model.run(&[x, ids]).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].shape(), &[5]);
}

#[test]
fn truncated_artifacts() {
    let bytes = std::fs::read(good("trunc.kiln")).unwrap();
    assert_eq!(
        load_bytes_err("empty.kiln", &[]),
        "corrupt artifact: file is 0 bytes, shorter than the 128-byte header"
    );
    assert_eq!(
        load_bytes_err("t50.kiln", &bytes[..50]),
        "corrupt artifact: file is 50 bytes, shorter than the 128-byte header"
    );
    // Cut inside the manifest, then inside the weights.
    assert_eq!(
        load_bytes_err("t200.kiln", &bytes[..200]),
        format!(
            "corrupt artifact: manifest section (offset 128, {} bytes) lies outside the \
             200-byte file: truncated?",
            serde_json::to_vec(&manifest()).unwrap().len()
        )
    );
    let n = bytes.len() - 10;
    assert_eq!(
        load_bytes_err("tw.kiln", &bytes[..n]),
        format!(
            "corrupt artifact: weights section (offset 8192, 100 bytes) lies outside the \
             {n}-byte file: truncated?"
        )
    );
}

#[test]
fn a_corrupted_byte_fails_the_checksum() {
    let bytes = std::fs::read(good("sum.kiln")).unwrap();
    let stored = u64::from_le_bytes(bytes[72..80].try_into().unwrap());
    // One flipped bit in the manifest, then in the code.
    for (name, at) in [("manifest.kiln", HEADER_LEN + 5), ("code.kiln", 4096)] {
        let mut b = bytes.clone();
        b[at] ^= 0x10;
        let mut head = b[..HEADER_LEN].to_vec();
        head[72..80].fill(0);
        let mlen = serde_json::to_vec(&manifest()).unwrap().len();
        let actual = fnv1a64(&[&head, &b[HEADER_LEN..HEADER_LEN + mlen], &b[4096..4097]]);
        assert_eq!(
            load_bytes_err(name, &b),
            format!(
                "corrupt artifact: checksum mismatch (file says {stored:016x}, contents give \
                 {actual:016x}): the file is damaged"
            )
        );
    }
}

#[test]
fn wrong_magic_and_version() {
    let bytes = std::fs::read(good("magic.kiln")).unwrap();
    let mut b = bytes.clone();
    b[..4].copy_from_slice(b"\x08\x07\x12\x04"); // what an .onnx file starts with
    assert_eq!(
        load_bytes_err("magic2.kiln", &b),
        "not a kiln artifact (bad magic)"
    );
    let mut b = bytes.clone();
    b[8..12].copy_from_slice(&2u32.to_le_bytes());
    assert_eq!(
        load_bytes_err("version.kiln", &b),
        "artifact format version 2 is not supported (this runtime reads version 1)"
    );
    let mut b = bytes;
    b[12..16].copy_from_slice(&7u32.to_le_bytes());
    assert_eq!(
        load_bytes_err("target.kiln", &b),
        "corrupt artifact: unknown target code 7"
    );
}

#[test]
fn missing_cpu_features() {
    let needs = Features::from_names(&["avx2", "fma"]).unwrap();
    let path = write("features.kiln", &manifest(), needs);
    let only_avx = ModelOptions {
        features: Some(Features::from_names(&["sse4.2", "avx"]).unwrap()),
        ..ModelOptions::default()
    };
    let e = Model::load_with(&path, &only_avx).err().unwrap();
    assert!(matches!(e, RuntimeError::CpuFeatures { .. }));
    assert_eq!(
        e.to_string(),
        "the artifact needs CPU features this machine lacks: avx2, fma"
    );
    let all = ModelOptions {
        features: Some(needs),
        ..ModelOptions::default()
    };
    assert!(Model::load_with(&path, &all).is_ok());
    // A feature bit this runtime has no name for (a newer compiler's) is still reported.
    let path = write("future.kiln", &manifest(), Features::from_bits(1 << 40));
    assert_eq!(
        load_err(&path),
        "the artifact needs CPU features this machine lacks: unknown feature bits 0x10000000000"
    );
}

#[test]
fn damaged_manifests() {
    let mut m = manifest();
    m.format = "kiln-cpu-0".into();
    assert_eq!(
        load_err(&write("format.kiln", &m, Features::NONE)),
        "corrupt artifact: manifest: format `kiln-cpu-0` is not `kiln-cpu-1`"
    );
    let mut m = manifest();
    m.inputs[0].dtype = "f128".into();
    assert_eq!(
        load_err(&write("dtype.kiln", &m, Features::NONE)),
        "corrupt artifact: manifest: unknown dtype `f128` of `x`"
    );
    let mut m = manifest();
    m.helpers.push("no_such_helper".into());
    assert_eq!(
        load_err(&write("helper.kiln", &m, Features::NONE)),
        "corrupt artifact: the artifact needs runtime helper `no_such_helper`, which this \
         runtime lacks"
    );
    let mut m = manifest();
    m.entry.offset = 5000;
    assert_eq!(
        load_err(&write("entry.kiln", &m, Features::NONE)),
        "corrupt artifact: manifest: entry function lies outside the code"
    );
    let mut m = manifest();
    m.weights.push(kiln_runtime::model::manifest::WeightSpec {
        name: "w".into(),
        offset: 64,
        bytes: 64,
        layout: "dense".into(),
    });
    assert_eq!(
        load_err(&write("weight.kiln", &m, Features::NONE)),
        "corrupt artifact: manifest: weight `w` lies outside the weights"
    );
    let path = dir().join("json.kiln");
    write_artifact(
        &path,
        &ArtifactParts {
            target: Target::CpuX86_64,
            features: Features::NONE,
            manifest: b"{\"format\": 1",
            code: &[0xC3],
            weights: &[],
        },
    )
    .unwrap();
    assert!(load_err(&path).starts_with("corrupt artifact: manifest: "));
}

fn run_err(model: &Model, inputs: &[Tensor]) -> String {
    let msg = model.run(inputs).expect_err("the run fails").to_string();
    assert!(!msg.contains('\n'), "not one line: {msg}");
    msg
}

#[test]
fn bad_inputs() {
    let model = Model::load(&good("inputs.kiln")).unwrap();
    let f32s = |s: &[usize]| Tensor::zeros(ElemType::F32, s);
    let i64s = |s: &[usize]| Tensor::zeros(ElemType::I64, s);
    assert_eq!(
        run_err(&model, &[f32s(&[2, 4])]),
        "the model takes 2 inputs (x, ids), got 1"
    );
    assert_eq!(
        run_err(&model, &[f32s(&[2, 4]), i64s(&[4]), i64s(&[4])]),
        "the model takes 2 inputs (x, ids), got 3"
    );
    assert_eq!(
        run_err(&model, &[f32s(&[2, 4]), f32s(&[4])]),
        "input `ids`: expected dtype i64, got f32"
    );
    assert_eq!(
        run_err(&model, &[f32s(&[8]), i64s(&[4])]),
        "input `x`: expected rank 2 (shape [2, seq]), got shape [8]"
    );
    assert_eq!(
        run_err(&model, &[f32s(&[3, 4]), i64s(&[4])]),
        "input `x` dim 0 is 3, expected 2"
    );
    assert_eq!(
        run_err(&model, &[f32s(&[2, 4]), i64s(&[5])]),
        "input `ids` dim 0 is 5, but `seq` is 4 (from input `x` dim 1)"
    );
    assert_eq!(
        run_err(&model, &[f32s(&[2, 17]), i64s(&[17])]),
        "dim `seq` = 17 is outside the bounds the model was compiled for (1..16)"
    );
    assert_eq!(
        run_err(&model, &[f32s(&[2, 0]), i64s(&[0])]),
        "dim `seq` = 0 is outside the bounds the model was compiled for (1..16)"
    );
    // The model still runs after all that.
    assert!(model.run(&[f32s(&[2, 16]), i64s(&[16])]).is_ok());
}

#[test]
fn derived_dims_are_checked() {
    use DimExpr::{Const, Mul, Sym};
    let mut m = manifest();
    m.inputs[1].shape = vec![Mul(vec![Const(2), Sym(0)])];
    let model = Model::load(&write("derived.kiln", &m, Features::NONE)).unwrap();
    let x = Tensor::zeros(ElemType::F32, &[2, 3]);
    assert_eq!(
        run_err(&model, &[x.clone(), Tensor::zeros(ElemType::I64, &[5])]),
        "input `ids` dim 0 is 5, expected 2*seq = 6"
    );
    assert!(model.run(&[x, Tensor::zeros(ElemType::I64, &[6])]).is_ok());
}
