//! .kir files on disk: the IR text, plus its weights in a file beside it.

use std::path::Path;

use kiln_ir::Graph;

use crate::error::CompileError;

/// Reads a .kir file and the weights file beside it, if any.
pub fn read_kir(path: &Path) -> Result<Graph, CompileError> {
    Err(CompileError::Unsupported(format!(
        "{}: reading .kir is not built yet",
        path.display()
    )))
}
