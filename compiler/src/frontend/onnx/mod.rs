//! The ONNX frontend.

use std::path::Path;

use kiln_ir::Graph;

use crate::error::CompileError;

/// Imports an ONNX model file (external data resolved relative to it).
pub fn import_file(path: &Path) -> Result<Graph, CompileError> {
    Err(CompileError::Unsupported(format!(
        "{}: the ONNX frontend is not built yet",
        path.display()
    )))
}
