//! Loading a model from any input kiln takes (.onnx or .kir).

use std::path::Path;

use kiln_ir::Graph;

use crate::error::CompileError;

/// Loads an .onnx model or a .kir text IR file (with its weights file, if one is beside it).
pub fn load_model(path: &Path) -> Result<Graph, CompileError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("onnx") => crate::frontend::onnx::import_file(path),
        Some("kir") => crate::weights_file::read_kir(path),
        _ => Err(CompileError::File {
            path: path.display().to_string(),
            msg: "unknown input kind: expected a .onnx model or a .kir IR file".into(),
        }),
    }
}
