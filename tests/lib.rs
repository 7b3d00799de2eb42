//! Helpers shared by kiln's integration tests: where the shared data lives, and the model
//! cases in it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use kiln_compiler::npy;
use kiln_ir::Tensor;

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A shared data folder: `$env` if set, else `../shared/<sub>` beside the repository. When it
/// is absent the test fails saying so, unless KILN_ALLOW_MISSING_DATA=1, in which case it
/// says so and the caller skips: never a silent pass.
pub fn shared_dir(env: &str, sub: &str) -> Option<PathBuf> {
    let dir = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("..").join("shared").join(sub));
    if dir.is_dir() {
        return Some(dir);
    }
    let msg = format!(
        "{} is absent: put ../shared beside the checkout or set {env} to the folder",
        dir.display()
    );
    if std::env::var("KILN_ALLOW_MISSING_DATA").as_deref() == Ok("1") {
        eprintln!("SKIPPED (KILN_ALLOW_MISSING_DATA=1): {msg}");
        return None;
    }
    panic!("{msg} (or set KILN_ALLOW_MISSING_DATA=1 to skip these tests)");
}

/// One model case: `NAME/model.onnx`, `inputs/*.npy`, `outputs/*.npy`, `info.json`.
pub struct ModelCase {
    pub name: String,
    pub dir: PathBuf,
    pub atol: f64,
    pub rtol: f64,
}

impl ModelCase {
    pub fn model(&self) -> PathBuf {
        self.dir.join("model.onnx")
    }

    /// The reference inputs, by name.
    pub fn inputs(&self) -> HashMap<String, Tensor> {
        npy_files(&self.dir.join("inputs")).into_iter().collect()
    }

    /// The reference outputs, by name (an output without a file is not compared).
    pub fn outputs(&self) -> Vec<(String, Tensor)> {
        npy_files(&self.dir.join("outputs"))
    }
}

fn npy_files(dir: &Path) -> Vec<(String, Tensor)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "npy"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let t = npy::read(&p).unwrap_or_else(|e| panic!("{e}"));
            (name, t)
        })
        .collect()
}

/// Every case under `${KILN_MODELS:-../shared/models}`, sorted by name.
pub fn model_cases() -> Vec<ModelCase> {
    let Some(root) = shared_dir("KILN_MODELS", "models") else {
        return vec![];
    };
    let mut cases = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        let info: serde_json::Value = std::fs::read_to_string(dir.join("info.json"))
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_else(|| panic!("{}: no readable info.json", dir.display()));
        let tol = |k: &str| {
            info[k]
                .as_f64()
                .unwrap_or_else(|| panic!("{}: info.json has no {k}", dir.display()))
        };
        cases.push(ModelCase {
            name: dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string(),
            atol: tol("atol"),
            rtol: tol("rtol"),
            dir,
        });
    }
    assert!(
        !cases.is_empty(),
        "{}: no model cases in it",
        root.display()
    );
    cases
}
