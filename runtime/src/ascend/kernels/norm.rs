//! RmsNorm (AIV): y = x / sqrt(mean(x^2) + epsilon) * gamma over the last `cols` elements
//! of x (x seen as rows x cols, gamma [cols]), and rstd = 1 / sqrt(mean(x^2) + epsilon)
//! per row in f32, as CANN's RmsNorm returns both. Tiling: the row split
//! ([`super::split::RowSplit`]) and `epsilonBits` (the f32 epsilon's bits). Per tile of rows
//! in UB: the mean square in f32, then the normalised rows rounded to y's dtype. gamma is
//! loaded once per block.
//!
//! AddRmsNorm (AIV): x = x1 + x2 (the residual add, rounded to x's dtype) and the RmsNorm of
//! that x, in one pass: outputs y, rstd and x, as CANN's AddRmsNorm gives them. Same tiling
//! as RmsNorm; x1, x2 and x each have their UB tiles, so x never goes back through HBM
//! before it is normalised.
//!
//! LayerNormV4 (AIV): y = (x - mean) / sqrt(var + epsilon) * gamma + beta over the last
//! `cols` elements (beta optional), and mean and rstd per row in f32. Same tiling.

use crate::ascend::kernels::split::RowSplit;
use crate::ascend::kernels::SimulateFn;
use crate::ascend::sim::core::{matrix_dims, KernelSim, SimResult};
use crate::model::tensor::ElemType;
use crate::reject;

pub const KERNELS: &[(&str, SimulateFn)] = &[
    ("RmsNorm", run),
    ("AddRmsNorm", add_rms_norm),
    ("LayerNormV4", layer_norm),
];

fn epsilon(sim: &KernelSim) -> SimResult<f32> {
    let bits = sim.tiling("epsilonBits")?;
    let Ok(bits) = u32::try_from(bits) else {
        reject!("tiling epsilonBits {bits} is not an f32");
    };
    Ok(f32::from_bits(bits))
}

/// The RmsNorm of `n` rows of `cols` values in f32, as the vector core computes it: each
/// row times its rstd times gamma, and the rstds.
fn rms_norm_rows(
    data: &[f64],
    gamma: &[f64],
    (n, cols): (usize, usize),
    eps: f32,
) -> (Vec<f64>, Vec<f64>) {
    let mut vals = vec![0f64; n * cols];
    let mut rstds = vec![0f64; n];
    for i in 0..n {
        let row = &data[i * cols..(i + 1) * cols];
        let ms = row.iter().map(|&v| (v as f32) * (v as f32)).sum::<f32>() / cols as f32;
        let inv = 1.0 / (ms + eps).sqrt();
        rstds[i] = inv as f64;
        for j in 0..cols {
            vals[i * cols + j] = ((row[j] as f32) * inv * gamma[j] as f32) as f64;
        }
    }
    (vals, rstds)
}

fn add_rms_norm(sim: &mut KernelSim) -> SimResult<()> {
    let (x1, x2, gamma) = (sim.input(0)?, sim.input(1)?, sim.input(2)?);
    let (y, rstd, x) = (sim.output(0)?, sim.output(1)?, sim.output(2)?);
    let (rows, cols) = matrix_dims(x1);
    let same = |b: &crate::ascend::descriptor::TensorBinding| {
        matrix_dims(b) == (rows, cols) && b.dtype == x1.dtype
    };
    if !(same(x2) && same(y) && same(x)) {
        reject!(
            "AddRmsNorm of {} {:?} and {} {:?} into {} {:?} and {} {:?}",
            x1.dtype,
            x1.shape,
            x2.dtype,
            x2.shape,
            y.dtype,
            y.shape,
            x.dtype,
            x.shape
        );
    }
    if gamma.numel() as usize != cols
        || rstd.numel() as usize != rows
        || rstd.dtype != ElemType::F32
    {
        reject!("AddRmsNorm takes gamma [{cols}] and gives rstd f32[{rows}]");
    }
    let eps = epsilon(sim)?;
    let split = RowSplit::read(sim, rows, cols)?;
    let size = x1.dtype.size();
    let gamma_row = RowSplit {
        tile_rows: 1,
        ..split
    };
    for b in 0..sim.block_dim() {
        let mut core = sim.core(b);
        let a_in = split.buffers(&mut core, "x1", size, split.buffers)?;
        let b_in = split.buffers(&mut core, "x2", size, split.buffers)?;
        let sum = split.buffers(&mut core, "x", size, split.buffers)?;
        let out = split.buffers(&mut core, "y", size, split.buffers)?;
        let g = gamma_row.buffers(&mut core, "gamma", gamma.dtype.size(), 1)?[0];
        split.buffers(&mut core, "f32 temp", 4, 1)?;
        let rs = core.alloc(
            crate::ascend::sim::core::Mem::Ub,
            "rstd",
            (split.tile_rows * 4).div_ceil(32) as u64 * 32,
        )?;
        let dry = core.is_dry();
        let mut loaded = false;
        for (t, r, n) in split.tiles(b) {
            if !loaded {
                core.load(g, gamma, (0, 1), (0, cols))?;
                loaded = true;
            }
            let slot = t % split.buffers;
            core.load(a_in[slot], x1, (r, n), (0, cols))?;
            core.load(b_in[slot], x2, (r, n), (0, cols))?;
            let mut sums = vec![0f64; n * cols];
            if !dry {
                let (av, bv) = (core.data(a_in[slot]).0, core.data(b_in[slot]).0);
                for (s, (&a, &b)) in sums.iter_mut().zip(av.iter().zip(bv)) {
                    *s = ((a as f32) + (b as f32)) as f64;
                }
            }
            // add, rounded to x's dtype: the norm reads the x it stores, as an Add then
            // an RmsNorm would.
            core.vector(sum[slot], x.dtype, (n, cols), sums, 1)?;
            core.store(x, sum[slot], r, 0)?;
            let (vals, rstds) = if dry {
                (vec![0f64; n * cols], vec![0f64; n])
            } else {
                rms_norm_rows(core.data(sum[slot]).0, core.data(g).0, (n, cols), eps)
            };
            // square, sum, rsqrt; scale, gamma.
            core.vector(rs, ElemType::F32, (1, n), rstds, 3)?;
            core.store_flat(rstd, rs, r)?;
            core.vector(out[slot], y.dtype, (n, cols), vals, 4)?;
            core.store(y, out[slot], r, 0)?;
        }
    }
    Ok(())
}

fn run(sim: &mut KernelSim) -> SimResult<()> {
    let (x, gamma, y, rstd) = (sim.input(0)?, sim.input(1)?, sim.output(0)?, sim.output(1)?);
    let (rows, cols) = matrix_dims(x);
    if matrix_dims(y) != (rows, cols) || y.dtype != x.dtype {
        reject!(
            "RmsNorm of {} {:?} into {} {:?}",
            x.dtype,
            x.shape,
            y.dtype,
            y.shape
        );
    }
    if gamma.numel() as usize != cols
        || rstd.numel() as usize != rows
        || rstd.dtype != ElemType::F32
    {
        reject!("RmsNorm takes gamma [{cols}] and gives rstd f32[{rows}]");
    }
    let eps = epsilon(sim)?;
    let split = RowSplit::read(sim, rows, cols)?;
    let size = x.dtype.size();
    let gamma_row = RowSplit {
        tile_rows: 1,
        ..split
    };
    for b in 0..sim.block_dim() {
        let mut core = sim.core(b);
        let xin = split.buffers(&mut core, "x", size, split.buffers)?;
        let out = split.buffers(&mut core, "y", size, split.buffers)?;
        let g = gamma_row.buffers(&mut core, "gamma", gamma.dtype.size(), 1)?[0];
        split.buffers(&mut core, "f32 temp", 4, 1)?;
        let rs = core.alloc(
            crate::ascend::sim::core::Mem::Ub,
            "rstd",
            (split.tile_rows * 4).div_ceil(32) as u64 * 32,
        )?;
        let dry = core.is_dry();
        let mut loaded = false;
        for (t, r, n) in split.tiles(b) {
            if !loaded {
                core.load(g, gamma, (0, 1), (0, cols))?;
                loaded = true;
            }
            let slot = t % split.buffers;
            core.load(xin[slot], x, (r, n), (0, cols))?;
            let (vals, rstds) = if dry {
                (vec![0f64; n * cols], vec![0f64; n])
            } else {
                rms_norm_rows(core.data(xin[slot]).0, core.data(g).0, (n, cols), eps)
            };
            // square, sum, rsqrt; scale, gamma.
            core.vector(rs, ElemType::F32, (1, n), rstds, 3)?;
            core.store_flat(rstd, rs, r)?;
            core.vector(out[slot], y.dtype, (n, cols), vals, 4)?;
            core.store(y, out[slot], r, 0)?;
        }
    }
    Ok(())
}

fn layer_norm(sim: &mut KernelSim) -> SimResult<()> {
    let (x, gamma, y) = (sim.input(0)?, sim.input(1)?, sim.output(0)?);
    let beta = sim.opt_input(2);
    let (mean_out, rstd_out) = (sim.output(1)?, sim.output(2)?);
    let (rows, cols) = matrix_dims(x);
    if matrix_dims(y) != (rows, cols) || y.dtype != x.dtype {
        reject!(
            "LayerNormV4 of {} {:?} into {} {:?}",
            x.dtype,
            x.shape,
            y.dtype,
            y.shape
        );
    }
    let stats_ok = [mean_out, rstd_out]
        .iter()
        .all(|b| b.numel() as usize == rows && b.dtype == ElemType::F32);
    if gamma.numel() as usize != cols
        || beta.is_some_and(|b| b.numel() as usize != cols)
        || !stats_ok
    {
        reject!("LayerNormV4 takes gamma and beta [{cols}] and gives mean and rstd f32[{rows}]");
    }
    let eps = epsilon(sim)?;
    let split = RowSplit::read(sim, rows, cols)?;
    let size = x.dtype.size();
    let one_row = RowSplit {
        tile_rows: 1,
        ..split
    };
    for b in 0..sim.block_dim() {
        let mut core = sim.core(b);
        let xin = split.buffers(&mut core, "x", size, split.buffers)?;
        let out = split.buffers(&mut core, "y", size, split.buffers)?;
        let g = one_row.buffers(&mut core, "gamma", gamma.dtype.size(), 1)?[0];
        let be = match beta {
            Some(bb) => Some(one_row.buffers(&mut core, "beta", bb.dtype.size(), 1)?[0]),
            None => None,
        };
        split.buffers(&mut core, "f32 temp", 4, 1)?;
        let stat_bytes = (split.tile_rows * 4).div_ceil(32) as u64 * 32;
        let ms = core.alloc(crate::ascend::sim::core::Mem::Ub, "mean", stat_bytes)?;
        let rs = core.alloc(crate::ascend::sim::core::Mem::Ub, "rstd", stat_bytes)?;
        let dry = core.is_dry();
        let mut loaded = false;
        for (t, r, n) in split.tiles(b) {
            if !loaded {
                core.load(g, gamma, (0, 1), (0, cols))?;
                if let (Some(bt), Some(bb)) = (be, beta) {
                    core.load(bt, bb, (0, 1), (0, cols))?;
                }
                loaded = true;
            }
            let slot = t % split.buffers;
            core.load(xin[slot], x, (r, n), (0, cols))?;
            let mut vals = vec![0f64; n * cols];
            let (mut means, mut rstds) = (vec![0f64; n], vec![0f64; n]);
            if !dry {
                let data = core.data(xin[slot]).0;
                let gv = core.data(g).0;
                let bv = be.map(|bt| core.data(bt).0);
                for i in 0..n {
                    let row: Vec<f32> = data[i * cols..(i + 1) * cols]
                        .iter()
                        .map(|&v| v as f32)
                        .collect();
                    let mean = row.iter().sum::<f32>() / cols as f32;
                    let var =
                        row.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / cols as f32;
                    let inv = 1.0 / (var + eps).sqrt();
                    means[i] = mean as f64;
                    rstds[i] = inv as f64;
                    for j in 0..cols {
                        let shift = bv.map_or(0.0, |bv| bv[j] as f32);
                        vals[i * cols + j] = ((row[j] - mean) * inv * gv[j] as f32 + shift) as f64;
                    }
                }
            }
            // sum, subtract, square, sum, rsqrt; scale, gamma, beta.
            core.vector(ms, ElemType::F32, (1, n), means, 2)?;
            core.store_flat(mean_out, ms, r)?;
            core.vector(rs, ElemType::F32, (1, n), rstds, 3)?;
            core.store_flat(rstd_out, rs, r)?;
            core.vector(out[slot], y.dtype, (n, cols), vals, 6)?;
            core.store(y, out[slot], r, 0)?;
        }
    }
    Ok(())
}
