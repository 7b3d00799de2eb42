//! TransData: a tensor from one format to another on the device (ND <-> FRACTAL_NZ), on the
//! vector cores: rows of the matrix view split over blocks, each block walking UB tiles of
//! `tileRows` x `tileCols`, read in the source format and written in the destination's.

use kiln_runtime::ascend::descriptor::{CoreType, Format, Tiling};

use super::{DevTensor, Lowerer};
use crate::error::TargetError;

/// Launches TransData of `src` to `format`; returns the converted tensor.
pub fn lower(lw: &mut Lowerer, src: &DevTensor, format: Format) -> Result<DevTensor, TargetError> {
    let dst = lw.scratch(
        &format!("as {format}"),
        src.dtype,
        format,
        src.shape.clone(),
    );
    let (rows, cols) = src.matrix();
    let size = src.dtype.size() as i64;
    let ub = lw.profile.ub_bytes as i64;
    // Whole 16-row groups; columns padded to 32-byte rows in UB, double-buffered.
    let row_bytes = (cols * size + 31) / 32 * 32;
    let tile_cols = if 2 * 16 * row_bytes <= ub {
        cols
    } else {
        (ub / (2 * 16 * size)) / 16 * 16
    };
    let tile_row_bytes = (tile_cols * size + 31) / 32 * 32;
    let tile_rows = ((ub / (2 * tile_row_bytes)) / 16 * 16).clamp(16, (rows + 15) / 16 * 16);
    let groups = (rows + 15) / 16;
    let cores = lw.profile.aiv_cores as i64;
    let groups_per_core = (groups + cores - 1) / cores;
    let block_dim = ((groups + groups_per_core - 1) / groups_per_core).max(1);
    let tiling = Tiling::new()
        .with("rows", rows)
        .with("cols", cols)
        .with("rowsPerCore", groups_per_core * 16)
        .with("tileRows", tile_rows)
        .with("tileCols", tile_cols)
        .with("bufferNum", 2);
    lw.launch(
        "TransData",
        CoreType::Aiv,
        block_dim as u32,
        tiling,
        vec![Some(src.clone())],
        vec![dst.clone()],
    );
    Ok(dst)
}
