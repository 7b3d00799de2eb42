//! SoftmaxV2 (AIV) over one axis of `cols` elements, with `inner` elements after it: row
//! r = (o, i) is elements (o·cols + j)·inner + i. Tiling: the row split
//! ([`super::split::RowSplit`]) over the outer·inner rows, and `inner` (1 for the last axis,
//! whose rows are contiguous; else each row is gathered into UB and scattered back). Per
//! tile of rows in UB: the row max, exp(x - max) and its sum in f32, then the quotient
//! rounded to the output dtype.

use crate::ascend::kernels::split::{dims, RowSplit};
use crate::ascend::kernels::SimulateFn;
use crate::ascend::sim::core::{matrix_dims, KernelSim, SimResult};
use crate::reject;

pub const KERNELS: &[(&str, SimulateFn)] = &[("SoftmaxV2", run)];

fn run(sim: &mut KernelSim) -> SimResult<()> {
    let (x, y) = (sim.input(0)?, sim.output(0)?);
    if dims(&x.shape) != dims(&y.shape) || x.dtype != y.dtype {
        reject!(
            "SoftmaxV2 of {} {:?} into {} {:?}",
            x.dtype,
            x.shape,
            y.dtype,
            y.shape
        );
    }
    let inner = sim.tiling_positive("inner")?;
    let (all_rows, last) = matrix_dims(x);
    let numel = all_rows * last;
    let cols = sim.tiling_count("cols")?;
    if cols == 0 || numel % (cols * inner) != 0 {
        reject!("SoftmaxV2 over {cols} elements with {inner} after them does not divide {numel}");
    }
    let rows = numel / cols;
    let split = RowSplit::read(sim, rows, cols)?;
    // Storage index of element j of row r.
    let at = |r: usize, j: usize| ((r / inner) * cols + j) * inner + r % inner;
    let size = x.dtype.size();
    for b in 0..sim.block_dim() {
        let mut core = sim.core(b);
        let xin = split.buffers(&mut core, "x", size, split.buffers)?;
        let out = split.buffers(&mut core, "y", size, split.buffers)?;
        split.buffers(&mut core, "f32 temp", 4, 2)?;
        let dry = core.is_dry();
        for (t, r, n) in split.tiles(b) {
            let slot = t % split.buffers;
            let places: Vec<usize> = (r..r + n)
                .flat_map(|row| (0..cols).map(move |j| at(row, j)))
                .collect();
            if inner == 1 {
                core.load(xin[slot], x, (r, n), (0, cols))?;
            } else {
                core.load_elements(xin[slot], x, &places)?;
            }
            let mut vals = vec![0f64; if dry { 0 } else { n * cols }];
            if !dry {
                let data = core.data(xin[slot]).0;
                for i in 0..n {
                    let row: Vec<f32> = data[i * cols..(i + 1) * cols]
                        .iter()
                        .map(|&v| v as f32)
                        .collect();
                    let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                    let e: Vec<f32> = row.iter().map(|&v| (v - max).exp()).collect();
                    let sum: f32 = e.iter().sum();
                    for (j, v) in e.iter().enumerate() {
                        vals[i * cols + j] = (v / sum) as f64;
                    }
                }
            } else {
                vals = vec![0.0; n * cols];
            }
            // max, subtract, exp, sum, divide.
            core.vector(out[slot], y.dtype, (n, cols), vals, 5)?;
            if inner == 1 {
                core.store(y, out[slot], r, 0)?;
            } else {
                core.scatter(y, out[slot], &places)?;
            }
        }
    }
    Ok(())
}
