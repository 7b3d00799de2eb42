//! Vector tiling: `total` elements cut into `blockDim` runs of `blockLength` (one per AIV
//! core), each walked in UB tiles of `tileLength` elements. A tile needs `ub_bytes_per_elem`
//! bytes of UB per element across all the kernel's UB buffers (inputs, outputs, f32
//! temporaries, times `bufferNum` for double buffering), so
//! `tileLength * ub_bytes_per_elem <= UB`. Lengths are multiples of 32 elements, so every
//! buffer is a whole number of 32-byte blocks whatever its dtype.

use kiln_runtime::ascend::descriptor::Tiling;
use kiln_runtime::ascend::Profile;

/// Below this many elements per core, fewer cores are used.
const MIN_BLOCK: i64 = 1024;
const ALIGN: i64 = 32;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VectorTiling {
    pub total: i64,
    pub block_length: i64,
    pub tile_length: i64,
    pub buffer_num: i64,
    pub block_dim: u32,
}

fn up(x: i64, a: i64) -> i64 {
    (x + a - 1) / a * a
}

/// Splits `total` elements; `ub_bytes_per_elem(buffer_num)` is the UB bytes a tile
/// element costs with that many buffers per queue.
pub fn split(
    p: &Profile,
    total: i64,
    ub_bytes_per_elem: impl Fn(i64) -> i64,
) -> Result<VectorTiling, String> {
    let total = total.max(0);
    let cores = p.aiv_cores as i64;
    let blocks = ((total + MIN_BLOCK - 1) / MIN_BLOCK).clamp(1, cores);
    let block_length = up((total + blocks - 1) / blocks, ALIGN).max(ALIGN);
    let block_dim = ((total + block_length - 1) / block_length).max(1);
    let ub = p.ub_bytes as i64;
    for buffer_num in [2, 1] {
        let per = ub_bytes_per_elem(buffer_num).max(1);
        let fit = ub / per / ALIGN * ALIGN;
        if fit >= ALIGN {
            return Ok(VectorTiling {
                total,
                block_length,
                tile_length: fit.min(block_length),
                buffer_num,
                block_dim: block_dim as u32,
            });
        }
    }
    Err(format!(
        "a {ALIGN}-element tile does not fit UB ({} B per element)",
        ub_bytes_per_elem(1)
    ))
}

impl VectorTiling {
    pub fn data(&self) -> Tiling {
        Tiling::new()
            .with("totalLength", self.total)
            .with("blockLength", self.block_length)
            .with("tileLength", self.tile_length)
            .with("bufferNum", self.buffer_num)
    }
}

/// Row tiling for row-wise kernels (Softmax, norms): `rows` x `cols`, whole rows per
/// block (`rowsPerCore`) and per UB tile (`tileRows`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowTiling {
    pub rows: i64,
    pub cols: i64,
    pub rows_per_core: i64,
    pub tile_rows: i64,
    pub buffer_num: i64,
    pub block_dim: u32,
}

/// UB bytes of one row of `cols` elements of `elem_bytes`, padded to 32 bytes.
pub fn row_bytes(cols: i64, elem_bytes: i64) -> i64 {
    up(cols * elem_bytes, ALIGN)
}

/// Splits `rows` rows over the vector cores; `per_row(buffer_num)` is the UB bytes one row
/// of a tile costs, `fixed` what a block needs besides (a gamma row).
pub fn rows(
    p: &Profile,
    rows: i64,
    cols: i64,
    per_row: impl Fn(i64) -> i64,
    fixed: i64,
) -> Result<RowTiling, String> {
    let cores = p.aiv_cores as i64;
    let blocks = rows.clamp(1, cores);
    let rows_per_core = ((rows + blocks - 1) / blocks).max(1);
    let block_dim = ((rows + rows_per_core - 1) / rows_per_core).max(1);
    let ub = p.ub_bytes as i64 - fixed;
    for buffer_num in [2, 1] {
        let fit = ub / per_row(buffer_num).max(1);
        if fit >= 1 {
            return Ok(RowTiling {
                rows,
                cols,
                rows_per_core,
                tile_rows: fit.min(rows_per_core),
                buffer_num,
                block_dim: block_dim as u32,
            });
        }
    }
    Err(format!(
        "a row of {cols} elements ({} B of UB) does not fit UB",
        per_row(1) + fixed
    ))
}

impl RowTiling {
    pub fn data(&self) -> Tiling {
        Tiling::new()
            .with("rows", self.rows)
            .with("cols", self.cols)
            .with("rowsPerCore", self.rows_per_core)
            .with("tileRows", self.tile_rows)
            .with("bufferNum", self.buffer_num)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_runtime::ascend::profile::ASCEND910B2;

    #[test]
    fn splits_over_cores_and_ub() {
        // f16 a + b -> c, double-buffered, f32 temporaries for 3 values: 2*6 + 12 B.
        let t = split(&ASCEND910B2, 1 << 20, |n| n * 6 + 12).unwrap();
        assert_eq!((t.block_dim, t.block_length), (48, 21856));
        assert_eq!(t.tile_length, 8192);
        assert_eq!(t.buffer_num, 2);
        let t = split(&ASCEND910B2, 7, |n| n * 6 + 12).unwrap();
        assert_eq!((t.block_dim, t.block_length, t.tile_length), (1, 32, 32));
        assert!(split(&ASCEND910B2, 7, |_| 1 << 20).is_err());
    }
}
