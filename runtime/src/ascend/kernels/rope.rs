//! RotaryPositionEmbedding (AIV), kiln's `rope`: x [..., S, D] rows of D; cos and sin
//! [..., S, h] (one angle per rotated pair, h = R/2) broadcast over x's leading dims. The
//! first R = 2h elements of each row rotate in pairs, halves (`interleaved` = 0: (p, p+h))
//! or adjacent (1: (2p, 2p+1)); the rest pass through. Tiling: the row split
//! ([`super::split::RowSplit`]) over x's rows, `half` (h) and `interleaved`. Per tile: x's
//! rows and the matching cos/sin rows into UB, rotation in f32, rounded to x's dtype.

use crate::ascend::kernels::split::{dims, ravel, unravel, RowSplit};
use crate::ascend::kernels::SimulateFn;
use crate::ascend::sim::core::{matrix_dims, KernelSim, SimResult};
use crate::reject;

pub const KERNELS: &[(&str, SimulateFn)] = &[("RotaryPositionEmbedding", run)];

fn run(sim: &mut KernelSim) -> SimResult<()> {
    let (x, cos, sin, y) = (sim.input(0)?, sim.input(1)?, sim.input(2)?, sim.output(0)?);
    let (rows, d) = matrix_dims(x);
    let h = sim.tiling_count("half")?;
    let interleaved = sim.tiling_count("interleaved")? != 0;
    if y.shape != x.shape || y.dtype != x.dtype || 2 * h > d {
        reject!(
            "RotaryPositionEmbedding of {:?} with {h} pairs into {:?}",
            x.shape,
            y.shape
        );
    }
    if cos.shape != sin.shape
        || cos.shape.last().copied() != Some(h as i64)
        || cos.dtype != x.dtype
        || sin.dtype != x.dtype
    {
        reject!(
            "cos and sin must both be {} [..., {h}], not {:?} and {:?}",
            x.dtype,
            cos.shape,
            sin.shape
        );
    }
    // x's leading dims and cos's, right-aligned: the cos row of each x row.
    let lead = dims(&x.shape[..x.shape.len() - 1]);
    let clead = dims(&cos.shape[..cos.shape.len() - 1]);
    if clead.len() > lead.len()
        || clead
            .iter()
            .rev()
            .zip(lead.iter().rev())
            .any(|(&c, &l)| c != 1 && c != l)
    {
        reject!("cos {:?} does not broadcast to x {:?}", cos.shape, x.shape);
    }
    let split = RowSplit::read(sim, rows, d)?;
    let half_split = RowSplit {
        cols: h,
        rows: split.rows,
        per_core: split.per_core,
        tile_rows: split.tile_rows,
        buffers: split.buffers,
    };
    let size = x.dtype.size();
    let mut li = vec![0; lead.len()];
    let mut ci = vec![0; clead.len()];
    for b in 0..sim.block_dim() {
        let mut core = sim.core(b);
        let xq = split.buffers(&mut core, "x", size, split.buffers)?;
        let cq = half_split.buffers(&mut core, "cos", size, split.buffers)?;
        let sq = half_split.buffers(&mut core, "sin", size, split.buffers)?;
        let yq = split.buffers(&mut core, "y", size, split.buffers)?;
        split.buffers(&mut core, "f32 temp", 4, 1)?;
        let dry = core.is_dry();
        for (t, r, n) in split.tiles(b) {
            let slot = t % split.buffers;
            core.load(xq[slot], x, (r, n), (0, d))?;
            let mut places = Vec::with_capacity(n * h);
            for row in r..r + n {
                unravel(row, &lead, &mut li);
                let off = lead.len() - clead.len();
                for (k, c) in ci.iter_mut().enumerate() {
                    *c = if clead[k] == 1 { 0 } else { li[k + off] };
                }
                let base = ravel(&ci, &clead) * h;
                places.extend(base..base + h);
            }
            core.load_elements(cq[slot], cos, &places)?;
            core.load_elements(sq[slot], sin, &places)?;
            let mut vals = vec![0f64; n * d];
            if !dry {
                let (xv, cv, sv) = (
                    core.data(xq[slot]).0,
                    core.data(cq[slot]).0,
                    core.data(sq[slot]).0,
                );
                for i in 0..n {
                    let row = &xv[i * d..(i + 1) * d];
                    let out = &mut vals[i * d..(i + 1) * d];
                    for (o, &v) in out.iter_mut().zip(row) {
                        *o = v;
                    }
                    for p in 0..h {
                        let (c, s) = (cv[i * h + p] as f32, sv[i * h + p] as f32);
                        let (a, bb) = if interleaved {
                            (2 * p, 2 * p + 1)
                        } else {
                            (p, p + h)
                        };
                        let (xa, xb) = (row[a] as f32, row[bb] as f32);
                        out[a] = (xa * c - xb * s) as f64;
                        out[bb] = (xb * c + xa * s) as f64;
                    }
                }
            }
            core.vector(yq[slot], y.dtype, (n, d), vals, 4)?;
            core.store(y, yq[slot], r, 0)?;
        }
    }
    Ok(())
}
