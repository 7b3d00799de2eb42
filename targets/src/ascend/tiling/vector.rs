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
