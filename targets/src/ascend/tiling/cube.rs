//! Cube tiling (MatMulV3 and the kernels built like it).
//!
//! The output [batch, M, N] is cut into baseM x baseN tiles, each accumulated in L0C over
//! K in baseK steps: a baseM x baseK block of A in L0A times a baseK x baseN block of B in
//! L0B. L1 holds `depthA1` A blocks and `depthB1` B blocks, loaded `stepKa` / `stepKb` K
//! steps at a time (two loads in flight when depth = 2 x step). Tiles are dealt to blocks in
//! contiguous runs of `tilesPerCore` (batch-major, then M, then N). Limits (fp16/bf16, 2 B):
//!
//! ```text
//! baseM, baseN, baseK multiples of 16
//! dbL0A * baseM * baseK * 2 <= L0A      dbL0B * baseK * baseN * 2 <= L0B
//! dbL0C * baseM * baseN * 4 <= L0C
//! depthA1 * baseM * baseK * 2 + depthB1 * baseK * baseN * 2 <= L1
//! blockDim <= AIC cores
//! ```

use kiln_runtime::ascend::descriptor::Tiling;
use kiln_runtime::ascend::Profile;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CubeTiling {
    pub batch: i64,
    pub m: i64,
    pub n: i64,
    pub k: i64,
    pub base_m: i64,
    pub base_n: i64,
    pub base_k: i64,
    pub step_ka: i64,
    pub step_kb: i64,
    pub depth_a1: i64,
    pub depth_b1: i64,
    pub db_l0a: i64,
    pub db_l0b: i64,
    pub db_l0c: i64,
    pub tiles_per_core: i64,
    pub block_dim: u32,
}

fn up16(x: i64) -> i64 {
    (x + 15) / 16 * 16
}

/// The tiling of a [batch, M, K] x [batch, K, N] product with 2-byte inputs on `p`.
pub fn tile(p: &Profile, batch: i64, m: i64, n: i64, k: i64) -> Result<CubeTiling, String> {
    if batch < 1 || m < 1 || n < 1 || k < 1 {
        return Err(format!(
            "an empty matmul (batch {batch}, M {m}, N {n}, K {k})"
        ));
    }
    let (l0a, l0b, l0c, l1) = (
        p.l0a_bytes as i64,
        p.l0b_bytes as i64,
        p.l0c_bytes as i64,
        p.l1_bytes as i64,
    );
    let base_m = up16(m).min(128);
    let base_n = up16(n).min(256);
    let db_l0c = if 2 * base_m * base_n * 4 <= l0c { 2 } else { 1 };
    // The largest baseK (a multiple of 16, at most K rounded up) double-buffered in L0A and
    // L0B; single-buffered if even 16 does not fit twice.
    let fits = |bk: i64, db: i64| db * base_m * bk * 2 <= l0a && db * bk * base_n * 2 <= l0b;
    let cap = up16(k).min(256);
    let (base_k, db) = match (16..=cap).rev().step_by(16).find(|&bk| fits(bk, 2)) {
        Some(bk) => (bk, 2),
        None => (16, 1),
    };
    if !fits(base_k, db) {
        return Err(format!("no base block fits L0 for M {m}, N {n}, K {k}"));
    }
    let k_steps = (k + base_k - 1) / base_k;
    let mut step = k_steps.min(4);
    let l1_need = |s: i64| 2 * s * base_m * base_k * 2 + 2 * s * base_k * base_n * 2;
    while step > 1 && l1_need(step) > l1 {
        step -= 1;
    }
    if l1_need(step) > l1 {
        return Err(format!("no L1 depth fits for M {m}, N {n}, K {k}"));
    }
    let tiles = batch * ((m + base_m - 1) / base_m) * ((n + base_n - 1) / base_n);
    let cores = p.aic_cores as i64;
    let tiles_per_core = (tiles + cores - 1) / cores;
    let block_dim = (tiles + tiles_per_core - 1) / tiles_per_core;
    Ok(CubeTiling {
        batch,
        m,
        n,
        k,
        base_m,
        base_n,
        base_k,
        step_ka: step,
        step_kb: step,
        depth_a1: 2 * step,
        depth_b1: 2 * step,
        db_l0a: db,
        db_l0b: db,
        db_l0c,
        tiles_per_core,
        block_dim: block_dim as u32,
    })
}

impl CubeTiling {
    /// The tiling data, in the order the kernel reads it.
    pub fn data(&self) -> Tiling {
        Tiling::new()
            .with("batch", self.batch)
            .with("m", self.m)
            .with("n", self.n)
            .with("k", self.k)
            .with("baseM", self.base_m)
            .with("baseN", self.base_n)
            .with("baseK", self.base_k)
            .with("stepKa", self.step_ka)
            .with("stepKb", self.step_kb)
            .with("depthA1", self.depth_a1)
            .with("depthB1", self.depth_b1)
            .with("dbL0A", self.db_l0a)
            .with("dbL0B", self.db_l0b)
            .with("dbL0C", self.db_l0c)
            .with("tilesPerCore", self.tiles_per_core)
            .with("usedCoreNum", self.block_dim as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_runtime::ascend::profile::{ASCEND910B2, ASCEND910B4};

    #[test]
    fn tiles_respect_the_buffers() {
        let t = tile(&ASCEND910B2, 1, 4096, 4096, 4096).unwrap();
        assert_eq!((t.base_m, t.base_n, t.base_k), (128, 256, 64));
        assert_eq!((t.db_l0a, t.db_l0c, t.step_ka, t.depth_a1), (2, 1, 4, 8));
        assert_eq!((t.tiles_per_core, t.block_dim), (22, 24));
        let t = tile(&ASCEND910B4, 1, 1, 4096, 4096).unwrap();
        assert_eq!((t.base_m, t.base_n, t.base_k), (16, 256, 64));
        assert_eq!((t.tiles_per_core, t.block_dim), (1, 16));
        let t = tile(&ASCEND910B2, 3, 5, 7, 9).unwrap();
        assert_eq!((t.base_m, t.base_n, t.base_k, t.db_l0c), (16, 16, 16, 2));
        assert_eq!((t.tiles_per_core, t.block_dim), (1, 3));
        assert!(tile(&ASCEND910B2, 1, 0, 4, 4).is_err());
    }
}
