//! TopKV2 (AIV): the k largest (or smallest) elements of each row of the last axis, with
//! their positions (ties: the lower position first; NaN above every number), sorted.
//! Tiling: the row split ([`super::split::RowSplit`]), `k`, `largest`.

use crate::ascend::kernels::split::RowSplit;
use crate::ascend::kernels::SimulateFn;
use crate::ascend::sim::core::{matrix_dims, KernelSim, SimResult};
use crate::model::tensor::ElemType;
use crate::reject;

pub const KERNELS: &[(&str, SimulateFn)] = &[("TopKV2", run)];

fn run(sim: &mut KernelSim) -> SimResult<()> {
    let (x, values, indices) = (sim.input(0)?, sim.output(0)?, sim.output(1)?);
    let (rows, cols) = matrix_dims(x);
    let k = sim.tiling_count("k")?;
    let largest = sim.tiling_count("largest")? != 0;
    if k > cols || matrix_dims(values) != (rows, k) || matrix_dims(indices) != (rows, k) {
        reject!(
            "TopKV2 with k = {k} of {rows}x{cols} into {:?} and {:?}",
            values.shape,
            indices.shape
        );
    }
    if values.dtype != x.dtype || !matches!(indices.dtype, ElemType::I64 | ElemType::I32) {
        reject!("TopKV2 gives {} values and integer indices", x.dtype);
    }
    let split = RowSplit::read(sim, rows, cols)?;
    let kk = RowSplit {
        cols: k,
        ..copy(&split)
    };
    for b in 0..sim.block_dim() {
        let mut core = sim.core(b);
        let xin = split.buffers(&mut core, "x", x.dtype.size(), split.buffers)?;
        split.buffers(&mut core, "sort keys", 8, 1)?;
        let vq = kk.buffers(&mut core, "values", x.dtype.size(), split.buffers)?;
        let iq = kk.buffers(&mut core, "indices", indices.dtype.size(), split.buffers)?;
        let dry = core.is_dry();
        for (t, r, n) in split.tiles(b) {
            let slot = t % split.buffers;
            core.load(xin[slot], x, (r, n), (0, cols))?;
            let (mut vs, mut is) = (vec![0f64; n * k], vec![0f64; n * k]);
            if !dry {
                let data = core.data(xin[slot]).0;
                for i in 0..n {
                    let row = &data[i * cols..(i + 1) * cols];
                    let mut order: Vec<usize> = (0..cols).collect();
                    order.sort_by(|&p, &q| {
                        let c = key(row[p]).total_cmp(&key(row[q]));
                        (if largest { c.reverse() } else { c }).then(p.cmp(&q))
                    });
                    for (j, &p) in order.iter().take(k).enumerate() {
                        vs[i * k + j] = row[p];
                        is[i * k + j] = p as f64;
                    }
                }
            }
            // A bitonic sort: about log2(cols)^2 passes over the row.
            let passes = (usize::BITS - cols.max(2).leading_zeros()) as u64;
            core.vector(vq[slot], x.dtype, (n, k), vs, passes * passes)?;
            core.vector(iq[slot], indices.dtype, (n, k), is, 1)?;
            core.store(values, vq[slot], r, 0)?;
            core.store(indices, iq[slot], r, 0)?;
        }
    }
    Ok(())
}

/// NaN above every number, -0 equal to 0.
fn key(v: f64) -> f64 {
    if v.is_nan() {
        f64::INFINITY
    } else if v == 0.0 {
        0.0
    } else {
        v
    }
}

fn copy(s: &RowSplit) -> RowSplit {
    RowSplit {
        rows: s.rows,
        cols: s.cols,
        per_core: s.per_core,
        tile_rows: s.tile_rows,
        buffers: s.buffers,
    }
}
