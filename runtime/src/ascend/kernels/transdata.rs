//! TransData (AIV): a tensor from one format to another (ND <-> FRACTAL_NZ), same dtype
//! and logical shape. Tiling: rows, cols (the matrix view), rowsPerCore (a multiple of
//! 16), tileRows, tileCols, bufferNum. Block b converts rows b·rowsPerCore.. in UB tiles of
//! tileRows x tileCols: read in the source's format, written in the destination's.

use crate::ascend::kernels::SimulateFn;
use crate::ascend::sim::core::{matrix_dims, KernelSim, Mem, SimResult};
use crate::reject;

pub const KERNELS: &[(&str, SimulateFn)] = &[("TransData", run)];

fn run(sim: &mut KernelSim) -> SimResult<()> {
    let (src, dst) = (sim.input(0)?, sim.output(0)?);
    if src.dtype != dst.dtype || src.shape != dst.shape {
        reject!(
            "converts a {} {:?} tensor into a {} {:?} one",
            src.dtype,
            src.shape,
            dst.dtype,
            dst.shape
        );
    }
    let (rows, cols) = matrix_dims(src);
    if sim.tiling_count("rows")? != rows || sim.tiling_count("cols")? != cols {
        reject!("the tiling's rows x cols is not the tensor's {rows}x{cols}");
    }
    let per_core = sim.tiling_positive("rowsPerCore")?;
    let (tile_rows, tile_cols) = (
        sim.tiling_positive("tileRows")?,
        sim.tiling_positive("tileCols")?,
    );
    let buffers = sim.tiling_positive("bufferNum")?;
    if per_core % 16 != 0 {
        reject!("rowsPerCore = {per_core} is not a whole number of 16-row fractals");
    }
    if per_core * sim.block_dim() < rows {
        reject!(
            "{} blocks of {per_core} rows do not cover {rows} rows",
            sim.block_dim()
        );
    }
    let align = sim.profile.ub_align;
    let row_bytes = (tile_cols as u64 * src.dtype.size() as u64).div_ceil(align) * align;
    for b in 0..sim.block_dim() {
        let mut core = sim.core(b);
        let q = (0..buffers)
            .map(|i| core.alloc(Mem::Ub, &format!("tile{i}"), tile_rows as u64 * row_bytes))
            .collect::<SimResult<Vec<_>>>()?;
        let (r0, r1) = (b * per_core, rows.min((b + 1) * per_core));
        let mut t = 0;
        for r in (r0..r1).step_by(tile_rows) {
            let nr = tile_rows.min(r1 - r);
            for c in (0..cols).step_by(tile_cols) {
                let nc = tile_cols.min(cols - c);
                let buf = q[t % buffers];
                t += 1;
                core.load(buf, src, (r, nr), (c, nc))?;
                core.store(dst, buf, r, c)?;
            }
        }
    }
    Ok(())
}
